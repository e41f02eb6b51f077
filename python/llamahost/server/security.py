"""The server's security defaults, as pure ASGI middleware (streaming and cancellation pass
through untouched, unlike Starlette's BaseHTTPMiddleware).

In the order a request meets them (``app.create_app`` stacks them so):

1. :class:`AccessLog`: one line per request on the ``llamahost.server`` logger when it
   ends: method, path, status, latency in ms, and the model when a route named one
   (:func:`note_model`). Refused requests are logged too.
2. :class:`HostCheck`: the ``Host`` header must name this machine, else 403: a loopback
   or private address, the address the connection arrived on, ``localhost`` or
   ``*.localhost``, this machine's host name, or the host the server is bound to. A web
   page that rebinds its own DNS name to 127.0.0.1 (DNS rebinding) still sends its own
   name, and is refused.
3. :class:`Cors`: an ``Origin`` in ``LLAMAHOST_ORIGINS`` (comma-separated, ``*`` for any,
   ``*`` wildcards inside a pattern) or one of Ollama's defaults (``http(s)://localhost``,
   ``127.0.0.1``, ``0.0.0.0`` and ``[::1]`` on any port; ``app://``, ``file://``,
   ``tauri://``, ``vscode-webview://``, ``vscode-file://``) gets the CORS headers, and its
   preflight (``OPTIONS`` with ``Access-Control-Request-Method``) a 204. A request from any
   other origin is refused with 403, preflight or not, as Ollama's gin-cors does: a page
   elsewhere cannot make a browser send even a "simple" POST here (a CSRF).
4. :class:`ApiKey`: with ``LLAMAHOST_API_KEY`` set, every request but ``GET /`` and
   ``HEAD /`` needs ``Authorization: Bearer <key>`` (compared in constant time), else 401
   ``{"error": "unauthorized"}``.
5. :class:`BodyLimit`: a request body over the cap (64 MiB by default) is refused with 413,
   from its ``Content-Length`` before any byte is read, or as soon as the bytes read pass
   the cap. Blob uploads (``/api/blobs/``) are exempt: they stream to disk, hashed as they
   are written.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("llamahost.server")

LOG_SCOPE_KEY = "llamahost.log"
"""Scope key of a mutable dict the access log reads (``model``) when the request ends."""

_LOCAL_ORIGINS = tuple(
    f"{scheme}://{host}{port}"
    for host in ("localhost", "127.0.0.1", "0.0.0.0", "[::1]")
    for scheme in ("http", "https")
    for port in ("", ":*")
)
DEFAULT_ORIGIN_PATTERNS: tuple[str, ...] = (
    *_LOCAL_ORIGINS,
    *("app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*"),
)
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
ALLOWED_HEADERS = ", ".join(
    (
        "Authorization",
        "Content-Type",
        "User-Agent",
        "Accept",
        "X-Requested-With",
        "OpenAI-Beta",
        "x-stainless-arch",
        "x-stainless-async",
        "x-stainless-custom-poll-interval",
        "x-stainless-helper-method",
        "x-stainless-lang",
        "x-stainless-os",
        "x-stainless-package-version",
        "x-stainless-poll-helper",
        "x-stainless-retry-count",
        "x-stainless-runtime",
        "x-stainless-runtime-version",
        "x-stainless-timeout",
    )
)
PREFLIGHT_MAX_AGE_S = 12 * 3600


async def send_error(
    send: Send, status: int, message: str, headers: Iterable[tuple[str, str]] = ()
) -> None:
    """Answer ``{"error": message}`` with ``status`` straight from middleware."""
    body = json.dumps({"error": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(name.lower().encode(), value.encode()) for name, value in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def note_model(scope: Scope, model: str) -> None:
    """Name the model a request is about, for its access-log line."""
    log = scope.get(LOG_SCOPE_KEY)
    if isinstance(log, dict):
        log["model"] = model


class AccessLog:
    """One INFO line per request when it ends: ``POST /api/show 200 3.1ms model=x``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: list[int] = []
        log: dict[str, Any] = {}
        scope[LOG_SCOPE_KEY] = log

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        except BaseException:
            status.append(500)
            raise
        finally:
            elapsed_ms = (time.perf_counter() - start) * 1000
            model = f" model={log['model']}" if log.get("model") else ""
            logger.info(
                "%s %s %d %.1fms%s",
                scope.get("method", "-"),
                scope.get("path", "-"),
                status[0] if status else 0,
                elapsed_ms,
                model,
            )


# ---- Host --------------------------------------------------------------------------------


def split_host(value: str) -> str:
    """The host part of a ``Host`` header (``[::1]:11434`` -> ``::1``), lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


class HostCheck:
    """403 unless the ``Host`` header names this machine (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, bind_host: str) -> None:
        self.app = app
        names = {"localhost", bind_host.lower().strip("[]")}
        hostname = socket.gethostname().lower()
        if hostname:
            names |= {hostname, hostname.partition(".")[0], f"{hostname.partition('.')[0]}.local"}
        self.names = frozenset(name for name in names if name)

    def allowed(self, host: str, local_address: str | None) -> bool:
        """Whether ``host`` (a Host header's host part) names this machine."""
        if not host or host in self.names or host.endswith(".localhost"):
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_loopback or address.is_private or address.is_unspecified:
            return True
        return address.is_link_local or host == (local_address or "").lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("host", "")
        host = split_host(header)
        server = scope.get("server") or (None, None)
        if not self.allowed(host, server[0]):
            shown = header if len(header) <= 100 else header[:97] + "..."
            await send_error(
                send,
                403,
                f"forbidden: the Host header {shown!r} does not name this machine "
                "(a protection against DNS rebinding); use localhost or an address of it",
            )
            return
        await self.app(scope, receive, send)


# ---- CORS --------------------------------------------------------------------------------


class Cors:
    """CORS for the allowed origins; 403 for any request from another origin."""

    def __init__(self, app: ASGIApp, *, origins: Sequence[str] = ()) -> None:
        self.app = app
        configured = [origin.strip().rstrip("/") for origin in origins if origin.strip()]
        self.allow_any = "*" in configured
        self.patterns = tuple(
            _wildcard(pattern.lower()) for pattern in (*configured, *DEFAULT_ORIGIN_PATTERNS)
        )

    def allowed(self, origin: str, host: str) -> bool:
        """Whether a request from ``origin`` may be served (``host``: its Host header)."""
        origin = origin.lower().rstrip("/")
        if self.allow_any or origin in (f"http://{host}", f"https://{host}"):
            return True
        return any(pattern.fullmatch(origin) for pattern in self.patterns)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if not self.allowed(origin, headers.get("host", "").lower()):
            shown = origin if len(origin) <= 100 else origin[:97] + "..."
            await send_error(
                send,
                403,
                f"forbidden: origin {shown!r} is not allowed; add it to LLAMAHOST_ORIGINS "
                "to let web pages there use this server",
            )
            return
        cors_headers = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"vary", b"Origin"),
        ]
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            preflight = [
                *cors_headers,
                (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
                (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                (b"access-control-max-age", str(PREFLIGHT_MAX_AGE_S).encode()),
                (b"content-length", b"0"),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": preflight})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *cors_headers]}
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _wildcard(pattern: str) -> re.Pattern[str]:
    """An origin pattern where only ``*`` is special (any run of characters)."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


# ---- API key -----------------------------------------------------------------------------


class ApiKey:
    """``Authorization: Bearer <key>`` on every request but ``GET /`` and ``HEAD /``."""

    def __init__(self, app: ASGIApp, *, key: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {key}".encode() if key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.expected is None
            or scope["type"] != "http"
            or (scope["path"] == "/" and scope["method"] in ("GET", "HEAD"))
        ):
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                given = value
                break
        if not hmac.compare_digest(given, self.expected):
            await send_error(send, 401, "unauthorized", [("WWW-Authenticate", "Bearer")])
            return
        await self.app(scope, receive, send)


# ---- body size ---------------------------------------------------------------------------


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a body passes the cap (BodyLimit answers 413)."""


class BodyLimit:
    """413 for a request body over ``max_bytes``, except under ``exempt_prefixes``."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, exempt_prefixes: Sequence[str] = ("/api/blobs/",)
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt_prefixes = tuple(exempt_prefixes)

    def message(self) -> str:
        return f"the request body is larger than the {_size(self.max_bytes)} limit"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            # The body is not read, so the connection cannot carry another request.
            close = [("Connection", "close")]
            if length.isdigit():
                await send_error(send, 413, self.message(), close)
            else:
                await send_error(send, 400, f"invalid Content-Length {length[:40]!r}", close)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.message())
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await send_error(send, 413, str(exc), [("Connection", "close")])


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n}-byte"


__all__ = [
    "DEFAULT_ORIGIN_PATTERNS",
    "LOG_SCOPE_KEY",
    "AccessLog",
    "ApiKey",
    "BodyLimit",
    "BodyTooLarge",
    "Cors",
    "HostCheck",
    "note_model",
    "send_error",
    "split_host",
]
