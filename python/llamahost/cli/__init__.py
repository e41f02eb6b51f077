"""The ``llamahost`` command line, modelled on Ollama's (``ollama run/pull/list/...``).

    $ llamahost create mymodel -f Modelfile
    $ llamahost list
    $ llamahost run mymodel "Why is the sky blue?"
    $ llamahost run mymodel                      # interactive

``main(argv)`` is the console script's entry point (``python -m llamahost.cli`` works
too). It returns the exit code: 0, or 1 after writing ``Error: <message>`` to stderr for
any error llamahost raises on purpose (never a traceback for those); 130 after Ctrl+C.

When a server answers at ``LLAMAHOST_HOST``, ``run``, ``pull``, ``push``, ``create``,
``list``, ``show``, ``cp`` and ``rm`` go through it (``cli/client.py``), else they work on
the store in this process; ``ps`` and ``stop`` need one. Either way they print the same.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from llamahost.cli.output import fail
from llamahost.cli.parser import RUN_HANDLER, build_parser
from llamahost.errors import LlamahostError

INTERRUPTED_EXIT_CODE = 130


def _handler(name: str) -> Callable[..., int]:
    """The function a command names as ``module:function`` (a module of this package),
    its module imported only now."""
    module, function = name.split(":")
    handler: Callable[..., int] = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    return handler


def _os_error_message(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"{reason}: {exc.filename}" if exc.filename else reason


def _through_server(args: object) -> bool:
    """Whether the command will use a server (then the local store need not be usable)."""
    mode = getattr(args, "server", None)
    if mode == "require":
        return True
    if mode != "prefer":
        return False
    from llamahost.cli.client import server_client

    return server_client() is not None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``llamahost`` command; return its exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["runner"]:  # the runner has llama-server's flags: its own parser
        from llamahost.runner.main import main as runner_main

        return runner_main(arguments[1:])
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:
            # `run MODEL --verbose more words`: words after an option still belong to PROMPT
            if getattr(args, "handler", None) == RUN_HANDLER and not any(
                extra.startswith("-") for extra in extras
            ):
                args.prompt += extras
            else:
                parser.error(f"unrecognized arguments: {' '.join(extras)}")
    except SystemExit as exc:  # --help, or a usage error already reported
        return exc.code if isinstance(exc.code, int) else 1
    if os.environ.get("LLAMAHOST_DEBUG"):
        # The extension reads LLAMAHOST_DEBUG itself when (and if) a command loads it.
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    if args.version:
        from llamahost.cli.version import version_text

        sys.stdout.write(version_text())
        return 0
    handler_name = getattr(args, "handler", None)
    if handler_name is None:
        parser.print_help()
        return 0
    try:
        handler = _handler(handler_name)
        from llamahost.store.model_store import ModelStore

        store = ModelStore()
        if not _through_server(args):
            from llamahost.cli.store_check import store_problem

            problem = store_problem(store, writable=getattr(args, "writes_store", False))
            if problem is not None:
                return fail(problem)
        return handler(args, store)
    except LlamahostError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return INTERRUPTED_EXIT_CODE
    except BrokenPipeError:
        # The reader went away (`llamahost list | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:
        return fail(_os_error_message(exc))


__all__ = ["main"]
