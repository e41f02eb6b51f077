"""``llamahost runner``: load one model and serve it (see :mod:`llamahost.runner`).

    llamahost runner --model SmolLM2-135M-Instruct.Q4_1.gguf --ctx-size 4096 --parallel 4 \\
        --port 8081

Flags take one dash or two (``-ctx-size`` / ``--ctx-size``), as Ollama's runner and
llama-server do, plus llama-server's short forms (``-m``, ``-c``, ``-b``, ``-ngl``, ``-np``,
``-t``, ``-fa``). The HTTP app is up at once; the weights load in a thread (``/health``
reports the progress). A load that fails is reported by ``/health`` and ends the process
with status 1. With ``--watch-stdin`` (how the server starts it) the runner exits when its
standard input closes, so it never outlives the server that started it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llamahost.engine.options import Options
from llamahost.errors import LlamahostError
from llamahost.runner.state import LaunchConfig, RunnerState

if TYPE_CHECKING:
    import uvicorn

SECRET_VARIABLE = "LLAMAHOST_RUNNER_SECRET"
#: After a failed load the process lingers this long so that /health can report why.
ERROR_LINGER_S = 2.0

log = logging.getLogger("llamahost.runner")


def _flag(parser: argparse.ArgumentParser, name: str, *short: str, **kwargs: object) -> None:
    """``--name`` and ``-name`` (Go style), plus llama-server's short forms."""
    parser.add_argument(f"--{name}", f"-{name}", *short, **kwargs)  # type: ignore[arg-type]


def _on_off(text: str) -> bool | None:
    value = text.lower()
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no"):
        return False
    if value == "auto":
        return None
    raise argparse.ArgumentTypeError(f"expected on, off or auto, got {text!r}")


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        message = f"expected numbers separated by commas, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llamahost runner",
        description="Load one GGUF model and serve it over HTTP (llama-server compatible "
        "endpoints, plus Ollama's /api/generate, /api/chat and /api/embed). Started by "
        "`llamahost serve` for each loaded model; usable by hand.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _flag(
        parser,
        "model",
        "-m",
        action="append",
        required=True,
        metavar="PATH",
        help="a GGUF file, the first shard of a split model, or (repeated) every shard",
    )
    _flag(parser, "ctx-size", "-c", type=int, default=4096, help="context of each slot, tokens")
    _flag(parser, "batch-size", "-b", type=int, default=512, help="tokens decoded per step")
    _flag(parser, "parallel", "-np", type=int, default=1, help="slots: requests decoded together")
    _flag(parser, "threads", "-t", type=int, default=0, help="CPU threads (0: one per core)")
    _flag(
        parser,
        "n-gpu-layers",
        "-ngl",
        type=int,
        default=-1,
        help="layers offloaded to the GPU (-1: all that the build can offload)",
    )
    _flag(parser, "main-gpu", "-mg", type=int, default=0, help="GPU for small tensors")
    _flag(
        parser,
        "tensor-split",
        "-ts",
        type=_floats,
        default=None,
        metavar="A,B,...",
        help="share of the model on each GPU",
    )
    _flag(
        parser,
        "flash-attn",
        "-fa",
        type=_on_off,
        default=None,
        metavar="on|off|auto",
        help="flash attention (auto when not given)",
    )
    _flag(parser, "kv-cache-type", "-ctk", default="f16", help="KV cache element type")
    _flag(
        parser,
        "lora",
        action="append",
        default=[],
        metavar="PATH",
        help="a LoRA adapter GGUF (repeatable)",
    )
    _flag(parser, "mlock", action="store_true", help="lock the weights in RAM")
    _flag(parser, "no-mmap", action="store_true", help="read the weights instead of mapping them")
    _flag(parser, "port", type=int, default=None, help="listen on 127.0.0.1:PORT")
    _flag(parser, "socket", default=None, metavar="PATH", help="listen on this Unix socket")
    _flag(parser, "verbose", "-v", action="store_true", help="log llama.cpp's messages too")
    _flag(
        parser,
        "watch-stdin",
        action="store_true",
        help="exit when standard input closes (how the server ties a runner to itself)",
    )
    return parser


def launch_config(args: argparse.Namespace) -> LaunchConfig:
    """The runner's options from its flags (OptionError names the option)."""
    options = Options.from_mapping(
        {
            "num_ctx": args.ctx_size,
            "num_batch": args.batch_size,
            "num_thread": args.threads,
            "num_gpu": args.n_gpu_layers,
            "main_gpu": args.main_gpu,
            "flash_attn": args.flash_attn,
            "kv_cache_type": args.kv_cache_type,
            "use_mlock": args.mlock,
            "use_mmap": False if args.no_mmap else None,
        }
    )
    if args.parallel < 1:
        raise LlamahostError(f"--parallel must be >= 1, got {args.parallel}")
    return LaunchConfig(
        model_paths=list(args.model),
        options=options,
        parallel=args.parallel,
        adapters=list(args.lora),
        tensor_split=list(args.tensor_split or []),
    )


def _watch_stdin() -> None:
    """Exit as soon as standard input reaches its end (the server went away)."""
    # os.read, not sys.stdin: a daemon thread blocked in a buffered read makes the
    # interpreter abort at shutdown ("could not acquire lock for <stdin>").
    try:
        while os.read(0, 65536):
            pass
    except OSError:
        pass
    log.info("standard input closed: exiting")
    os._exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = os.environ.get("LLAMAHOST_DEBUG", "") not in ("", "0")
    args.verbose = args.verbose or debug
    if (args.port is None) == (args.socket is None):
        print("Error: give exactly one of --port or --socket", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        # Under the server (--watch-stdin) each line is re-logged with its time and model.
        format=("" if args.watch_stdin else "%(asctime)s ") + "%(levelname)s %(name)s: %(message)s",
    )
    try:
        config = launch_config(args)
    except LlamahostError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    if args.watch_stdin:
        threading.Thread(target=_watch_stdin, name="llamahost-stdin", daemon=True).start()

    import uvicorn

    from llamahost import _native
    from llamahost.runner.app import create_app

    if not debug:  # LLAMAHOST_DEBUG: the extension forwards everything by itself
        _native.set_log_level(1 if args.verbose else 3)
    state = RunnerState(config)
    app = create_app(state, secret=os.environ.pop(SECRET_VARIABLE, None) or None)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=args.port or 0,
            uds=args.socket,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
    )

    def load_then_watch() -> None:
        state.load()
        if state.error is not None:
            time.sleep(ERROR_LINGER_S)  # let the server read /health's reason
            server.should_exit = True

    threading.Thread(target=load_then_watch, name="llamahost-load", daemon=True).start()
    if args.socket:
        _restrict_socket_when_bound(server, args.socket)
    server.run()
    engine = state.engine
    if engine is not None:
        engine.close()
    return 1 if state.error is not None else 0


def _restrict_socket_when_bound(server: uvicorn.Server, path: str) -> None:
    """uvicorn makes its socket world-writable once it has bound it (``started`` then goes
    true); the runner's is for its owner only. Changing the mode before that races uvicorn's
    own chmod."""

    def restrict() -> None:
        for _ in range(6000):
            if server.started and os.path.exists(path):
                os.chmod(path, 0o600)
                return
            time.sleep(0.01)

    threading.Thread(target=restrict, daemon=True).start()


if __name__ == "__main__":
    raise SystemExit(main())
