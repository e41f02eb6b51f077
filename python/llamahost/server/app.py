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

Seams for the scheduler and the inference routes (modules other parts provide):

- ``llamahost.server.scheduler`` may define ``create_scheduler(config, store)``; its
  result becomes ``app.state.scheduler`` (else None, and inference answers 503). When the
  app starts, ``scheduler.start()`` is called if it exists; when it stops (and in
  ``serve``'s last step), ``scheduler.shutdown()``; either may be a coroutine function.
- ``llamahost.server.routes_inference`` may define ``routes() -> list[BaseRoute]``; they
  are mounted after the model-management routes. Inference paths they do not serve
  answer 503 (``/api/ps``: an empty list).
- ``llamahost.server.routes_openai`` serves OpenAI's ``/v1`` over the same inference
  path; ``openai_errors.OpenAIErrorShape`` (outermost middleware) gives every ``/v1``
  error OpenAI's shape, whoever wrote it.

``app.state`` holds ``config``, ``store`` (the ModelStore), ``scheduler``,
``shutdown_event`` (an asyncio.Event set when shutdown begins: ``streaming.py``) and
``closers`` (functions called when the app stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import logging
import math
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from llamahost.errors import LlamahostError, OptionError
from llamahost.host_address import DEFAULT_HOST, DEFAULT_PORT, ServerAddress
from llamahost.server import errors, security
from llamahost.server.schemas import parse_keep_alive
from llamahost.store.model_store import ModelStore, default_root

logger = logging.getLogger("llamahost.server")

DEFAULT_MAX_BODY_BYTES = 64 << 20
INFERENCE_PATHS = ("/api/generate", "/api/chat", "/api/embed", "/api/embeddings")
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
    keep_alive_s: float = 300.0
    """Default keep_alive in seconds (``math.inf``: keep loaded, 0: unload at once)."""
    num_parallel: int = 1
    """Request slots per runner."""
    max_loaded_models: int = 3
    """Models loaded at once."""
    max_queue: int = 512
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
            num_parallel=_integer(env, "LLAMAHOST_NUM_PARALLEL", 1, minimum=1),
            max_loaded_models=_integer(env, "LLAMAHOST_MAX_LOADED_MODELS", 3, minimum=0),
            max_queue=_integer(env, "LLAMAHOST_MAX_QUEUE", 512, minimum=1),
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
        return 300.0
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


def _optional_module(name: str) -> Any:
    """The module ``name`` if it is installed, else None (errors inside it propagate)."""
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def _default_scheduler(config: ServerConfig, store: ModelStore) -> Any:
    module = _optional_module("llamahost.server.scheduler")
    factory = getattr(module, "create_scheduler", None)
    return factory(config, store) if factory is not None else None


async def _call(target: Any, method: str) -> None:
    function = getattr(target, method, None)
    if function is None:
        return
    result = function()
    if inspect.isawaitable(result):
        await result


async def shutdown_scheduler(app: Starlette) -> None:
    """Call ``scheduler.shutdown()`` once (the lifespan and ``serve`` both ask)."""
    if getattr(app.state, "scheduler_stopped", False):
        return
    app.state.scheduler_stopped = True
    try:
        await _call(app.state.scheduler, "shutdown")
    except Exception:
        logger.exception("the scheduler did not shut down cleanly")


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.loop = asyncio.get_running_loop()
    await _call(app.state.scheduler, "start")
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


async def _unavailable(request: Request) -> Response:
    return errors.error_response(
        503, "inference is not available: this server has no scheduler to run models"
    )


async def _no_running_models(request: Request) -> Response:
    return JSONResponse({"models": []})


def _routes() -> list[BaseRoute]:
    from llamahost.server import routes_models, routes_openai

    routes: list[BaseRoute] = list(routes_models.routes())
    inference = _optional_module("llamahost.server.routes_inference")
    if inference is not None:
        routes += inference.routes()
    routes += routes_openai.routes()
    served = {getattr(route, "path", None) for route in routes}
    routes += [
        Route(path, _unavailable, methods=["POST"])
        for path in INFERENCE_PATHS
        if path not in served
    ]
    if "/api/ps" not in served:
        routes.append(Route("/api/ps", _no_running_models, methods=["GET"]))
    return routes


def create_app(
    config: ServerConfig,
    *,
    store: ModelStore | None = None,
    scheduler: Any = None,
    routes: Sequence[BaseRoute] | None = None,
) -> Starlette:
    """The server's ASGI app for ``config``: security middleware, Ollama's routes.

    ``store`` defaults to ``ModelStore(config.models)``; ``scheduler`` to what
    ``llamahost.server.scheduler.create_scheduler`` makes, if that exists; ``routes`` to
    the model-management routes plus the inference routes (see the module docstring).
    """
    from llamahost.server.openai_errors import OpenAIErrorShape

    store = store if store is not None else ModelStore(config.models)
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
        routes=list(routes) if routes is not None else _routes(),
        middleware=middleware,
        exception_handlers=handlers,
        lifespan=_lifespan,
    )
    app.state.config = config
    app.state.store = store
    app.state.scheduler = scheduler if scheduler is not None else _default_scheduler(config, store)
    app.state.shutdown_event = asyncio.Event()
    app.state.scheduler_stopped = False
    app.state.closers = []  # called when the app stops (e.g. the upload leases)
    return app


__all__ = ["INFERENCE_PATHS", "ServerConfig", "create_app", "parse_host", "shutdown_scheduler"]
