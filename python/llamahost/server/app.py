"""The server's configuration (from ``LLAMAHOST_*`` variables) and its ASGI app.

    config = ServerConfig.from_env()          # OptionError naming the variable on a bad value
    app = create_app(config)                  # a Starlette app; serve.py runs it with uvicorn

Environment (all optional):

    LLAMAHOST_HOST               where to listen: host[:port] (default 127.0.0.1:11434);
                                 ``http://`` is accepted, IPv6 as [::1]:11434
    LLAMAHOST_MODELS             the model store (default ~/.llamahost/models)
    LLAMAHOST_KEEP_ALIVE         how long a model stays loaded after its last request:
                                 a duration (5m, 1h30m) or seconds; 0 unloads at once,
                                 negative keeps it loaded (default 5m)
    LLAMAHOST_NUM_PARALLEL       request slots per loaded model (default 1)
    LLAMAHOST_MAX_LOADED_MODELS  models loaded at once (default 3; 0 means the default)
    LLAMAHOST_MAX_QUEUE          requests waiting for a model before 503 (default 512)
    LLAMAHOST_ORIGINS            extra CORS origins, comma-separated (``*`` allows any)
    LLAMAHOST_API_KEY            require ``Authorization: Bearer <key>`` (but on ``/``)
    LLAMAHOST_DEBUG              1/true for debug logs

The routes: the model-management ones (``routes_models``), the inference ones
(``routes_inference``: generate, chat, embed, embeddings, ps, run by the scheduler's
runners) and OpenAI's ``/v1`` over the same inference path (``routes_openai``);
``openai_errors.OpenAIErrorShape`` (outermost middleware) gives every ``/v1`` error
OpenAI's shape, whoever wrote it.

``app.state`` holds ``config``, ``store`` (the ModelStore), ``scheduler`` (shut down when
the app stops, or in ``serve``'s last step), ``shutdown_event`` (an asyncio.Event set when
shutdown begins: ``streaming.py``) and ``closers`` (functions called when the app stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from llamahost.errors import LlamahostError, OptionError
from llamahost.host_address import DEFAULT_HOST, DEFAULT_PORT, ServerAddress
from llamahost.server import errors, routes_inference, routes_models, routes_openai, security
from llamahost.server.openai_errors import OpenAIErrorShape
from llamahost.server.scheduler import (
    DEFAULT_KEEP_ALIVE_S,
    DEFAULT_MAX_LOADED_MODELS,
    DEFAULT_MAX_QUEUE,
    DEFAULT_NUM_PARALLEL,
    Scheduler,
    SchedulerConfig,
)
from llamahost.server.schemas import parse_keep_alive
from llamahost.store.model_store import ModelStore, default_root

logger = logging.getLogger("llamahost.server")

DEFAULT_MAX_BODY_BYTES = 64 << 20
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class ServerConfig:
    """What ``llamahost serve`` runs with; :meth:`from_env` reads it from the environment."""

    host: str = DEFAULT_HOST
    """Address to listen on (an IP address or a name; IPv6 without brackets)."""
    port: int = DEFAULT_PORT
    """TCP port to listen on."""
    models: Path = field(default_factory=default_root)
    """The model store's folder."""
    keep_alive_s: float = DEFAULT_KEEP_ALIVE_S
    """Default keep_alive in seconds (``math.inf``: keep loaded, 0: unload at once)."""
    num_parallel: int = DEFAULT_NUM_PARALLEL
    """Request slots per runner."""
    max_loaded_models: int = DEFAULT_MAX_LOADED_MODELS
    """Models loaded at once."""
    max_queue: int = DEFAULT_MAX_QUEUE
    """Requests that may wait for a runner before the next gets 503."""
    origins: tuple[str, ...] = ()
    """Extra allowed CORS origins (patterns; ``*`` for any)."""
    api_key: str | None = None
    """When set, ``Authorization: Bearer <api_key>`` is required."""
    debug: bool = False
    """Debug logging."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Largest request body (blob uploads excepted)."""

    @property
    def address(self) -> str:
        """``host:port`` as a URL writes it (``[::1]:11434``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerConfig:
        """The configuration the ``LLAMAHOST_*`` variables describe (module docstring).

        OptionError names the variable and what it accepts when a value is malformed.
        """
        env = os.environ if environ is None else environ
        host, port = parse_host(env.get("LLAMAHOST_HOST", ""))
        models = env.get("LLAMAHOST_MODELS")
        return cls(
            host=host,
            port=port,
            models=Path(models).expanduser() if models else default_root(),
            keep_alive_s=_keep_alive(env.get("LLAMAHOST_KEEP_ALIVE", "")),
            num_parallel=_integer(env, "LLAMAHOST_NUM_PARALLEL", DEFAULT_NUM_PARALLEL, minimum=1),
            max_loaded_models=_integer(
                env, "LLAMAHOST_MAX_LOADED_MODELS", DEFAULT_MAX_LOADED_MODELS, minimum=0
            ),
            max_queue=_integer(env, "LLAMAHOST_MAX_QUEUE", DEFAULT_MAX_QUEUE, minimum=1),
            origins=tuple(
                o.strip() for o in env.get("LLAMAHOST_ORIGINS", "").split(",") if o.strip()
            ),
            api_key=env.get("LLAMAHOST_API_KEY") or None,
            debug=_boolean(env, "LLAMAHOST_DEBUG"),
        )


def parse_host(text: str) -> tuple[str, int]:
    """``LLAMAHOST_HOST`` as the (host, port) to listen on (see ``llamahost.host_address``);
    a path is refused here."""
    address = ServerAddress.parse(text)
    if address.path:
        raise OptionError(
            f"LLAMAHOST_HOST must be host[:port], got {text!r} (a path is not allowed)",
            "LLAMAHOST_HOST",
        )
    return address.host, address.port


def _keep_alive(text: str) -> float:
    if not text.strip():
        return DEFAULT_KEEP_ALIVE_S
    try:
        seconds = parse_keep_alive(text)
    except ValueError as exc:
        raise OptionError(
            f"LLAMAHOST_KEEP_ALIVE must be a duration such as 5m or 1h30m, or seconds: {exc}",
            "LLAMAHOST_KEEP_ALIVE",
        ) from None
    return math.inf if seconds is None else seconds


def _integer(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < minimum:
        raise OptionError(f"{name} must be an integer >= {minimum}, got {text!r}", name)
    return int(text)


def _boolean(env: Mapping[str, str], name: str) -> bool:
    text = env.get(name, "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise OptionError(f"{name} must be 1/true/yes/on or 0/false/no/off, got {text!r}", name)


# ---- the app ----------------------------------------------------------------------------


async def shutdown_scheduler(app: Starlette) -> None:
    """Call ``scheduler.shutdown()`` once (the lifespan and ``serve`` both ask)."""
    if getattr(app.state, "scheduler_stopped", False):
        return
    app.state.scheduler_stopped = True
    try:
        await app.state.scheduler.shutdown()
    except Exception:
        logger.exception("the scheduler did not shut down cleanly")


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.loop = asyncio.get_running_loop()  # serve.py's SIGTERM handler sets events on it
    try:
        yield
    finally:
        app.state.shutdown_event.set()
        await shutdown_scheduler(app)
        for close in app.state.closers:
            try:
                close()
            except Exception:
                logger.exception("cleanup at shutdown failed")


def _routes() -> list[BaseRoute]:
    return [*routes_models.routes(), *routes_inference.routes(), *routes_openai.routes()]


def create_app(config: ServerConfig) -> Starlette:
    """The server's ASGI app for ``config``: security middleware, the routes (see the
    module docstring), the model store at ``config.models`` and a scheduler for runners."""
    store = ModelStore(config.models)
    middleware = [
        Middleware(OpenAIErrorShape),  # /v1's errors in OpenAI's shape, whoever wrote them
        Middleware(security.AccessLog),
        Middleware(security.HostCheck, bind_host=config.host),
        Middleware(security.Cors, origins=config.origins),
        Middleware(security.ApiKey, key=config.api_key),
        Middleware(security.BodyLimit, max_bytes=config.max_body_bytes),
    ]
    handlers: dict[Any, Any] = {
        errors.APIError: errors.handle_api_error,
        LlamahostError: errors.handle_api_error,
        HTTPException: errors.handle_http_exception,
        Exception: errors.handle_unexpected,
    }
    app = Starlette(
        routes=_routes(),
        middleware=middleware,
        exception_handlers=handlers,
        lifespan=_lifespan,
    )
    app.state.config = config
    app.state.store = store
    app.state.scheduler = Scheduler(SchedulerConfig.of(config))
    app.state.shutdown_event = asyncio.Event()
    app.state.scheduler_stopped = False
    app.state.closers = []  # called when the app stops (e.g. the upload leases)
    return app


__all__ = ["ServerConfig", "create_app", "parse_host", "shutdown_scheduler"]
