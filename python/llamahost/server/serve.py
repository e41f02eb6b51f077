"""``llamahost serve``: the app on uvicorn, at LLAMAHOST_HOST, until SIGTERM or Ctrl-C.

    serve_forever(ServerConfig.from_env())   # returns when the server has stopped

Shutdown, on the first SIGTERM or SIGINT: the listening socket closes (no new
connections), every open NDJSON stream ends with an ``{"error": "the server is shutting
down"}`` line (``streaming.shutdown_event``), connections get ``GRACE_S`` seconds to
finish, then the scheduler's ``shutdown()`` stops every runner, so no runner process is
left behind. A second Ctrl-C skips the wait. ``serve_forever`` then returns 0 after
SIGTERM, 130 after Ctrl-C (the CLI's exit code for an interrupt).

Logging: the ``llamahost`` loggers (the access log is ``llamahost.server``) and uvicorn's
go to stderr; INFO, or DEBUG with ``LLAMAHOST_DEBUG``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from types import FrameType

import uvicorn
from starlette.applications import Starlette

import llamahost
from llamahost.errors import LlamahostError
from llamahost.server.app import ServerConfig, create_app, shutdown_scheduler

logger = logging.getLogger("llamahost.server")

GRACE_S = 5
INTERRUPTED_EXIT_CODE = 130  # as the CLI answers Ctrl-C
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app's streams as soon as a shutdown signal arrives."""

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self.app = app
        self.signals: list[int] = []

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        loop = getattr(self.app.state, "loop", None)
        event = self.app.state.shutdown_event
        if isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal once it has stopped; serve_forever returns instead.
        self.signals.extend(self._captured_signals)
        self._captured_signals.clear()


def configure_logging(debug: bool) -> None:
    """Send llamahost's and uvicorn's logs to stderr (once)."""
    level = logging.DEBUG if debug else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    for name, name_level in (
        ("llamahost", level),
        ("uvicorn", level if debug else logging.WARNING),
    ):
        named = logging.getLogger(name)
        named.setLevel(name_level)
        if not any(getattr(h, "_llamahost_serve", False) for h in named.handlers):
            handler._llamahost_serve = True  # type: ignore[attr-defined]
            named.addHandler(handler)
        named.propagate = False


def bind_socket(config: ServerConfig) -> socket.socket:
    """A socket bound to the configured address; LlamahostError naming LLAMAHOST_HOST if
    the address cannot be used (in use, not this machine's, a name that does not resolve)."""
    try:
        infos = socket.getaddrinfo(
            config.host, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise LlamahostError(
            f"cannot listen on {config.address} (LLAMAHOST_HOST): {exc.strerror or exc}"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = " (is another llamahost or Ollama running there?)" if exc.errno == 98 else ""
        raise LlamahostError(
            f"cannot listen on {config.address} (LLAMAHOST_HOST): {exc.strerror or exc}{hint}"
        ) from None
    return sock


def serve_forever(config: ServerConfig) -> int:
    """Serve until a shutdown signal; 0 once everything (runners included) has stopped."""
    configure_logging(config.debug)
    sock = bind_socket(config)
    app = create_app(config)
    uvicorn_config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,  # security.AccessLog writes one line per request
        lifespan="on",
        timeout_graceful_shutdown=GRACE_S,
        server_header=False,
        proxy_headers=False,
        ws="none",
    )
    server = _Server(uvicorn_config, app)
    logger.info("Listening on %s (version %s)", config.address, llamahost.__version__)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        if not app.state.scheduler_stopped:
            asyncio.run(shutdown_scheduler(app))
    logger.info("stopped")
    return INTERRUPTED_EXIT_CODE if signal.SIGINT in server.signals else 0


__all__ = ["GRACE_S", "bind_socket", "configure_logging", "serve_forever"]
