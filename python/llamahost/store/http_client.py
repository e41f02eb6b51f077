"""One HTTP request at a time, with deadlines: what the registry client sends and reads.

- :func:`send` makes one request over a fresh connection (``http.client``: no redirects,
  no retries, no proxies from the environment) and returns the response, body unread.
- :meth:`HttpResponse.read_chunk` reads the body piece by piece; :meth:`read_capped`
  reads a body that is not a blob (a manifest, error JSON, a token) and gives up on one
  larger than the cap.

Deadlines (:class:`Deadlines`), so that no peer can hold a pull forever:

- ``response_s``: connecting, and then receiving the complete status line and headers
  once the request is sent, each within this time. A watchdog timer shuts the socket down
  when it passes, so a server trickling its headers a byte at a time is cut off too.
- ``stall_s`` and ``min_speed_bps``: while a body is read, every ``stall_s`` seconds must
  bring at least ``min_speed_bps * stall_s`` bytes. Total silence is caught at the end of
  the window by the socket timeout; a trickle (1 byte every 5 s keeps a socket timeout
  happy forever) by counting. Either raises :class:`TransferStalled`.

Network failures raise the ``OSError``/``HTTPException`` they are; :func:`is_transient`
says which ones a retry may get past (TransferStalled is one: a retry resumes).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from types import TracebackType
from typing import BinaryIO

from llamahost.errors import RegistryResponseError

DEFAULT_MAX_BODY_BYTES = 4 << 20
"""Cap on a body that is not a blob: a manifest, error JSON or token response."""

CHUNK_SIZE = 1 << 20

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)
"""Network failures worth retrying: refused or reset connections, timeouts, cut bodies."""

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses a registry or its storage sends for a failure that may pass."""

RequestBody = bytes | Callable[[], BinaryIO] | None
"""A request body: bytes, or a function opening a fresh binary file each time it is sent."""

_ssl_context: ssl.SSLContext | None = None


@dataclass(frozen=True)
class Deadlines:
    """How long a peer may take (see the module docstring); all in seconds."""

    response_s: float = 60.0
    """To connect, and to send the whole status line and headers once asked."""
    stall_s: float = 30.0
    """The window over which a body's speed is measured."""
    min_speed_bps: int = 1024
    """Bytes per second a body must average over each window."""

    def speed_text(self) -> str:
        """``1 KiB/s``-style text of the minimum speed, for messages."""
        speed = self.min_speed_bps
        return f"{speed // 1024} KiB/s" if speed % 1024 == 0 else f"{speed} B/s"


class TransferStalled(TimeoutError):
    """A body moved too slowly (or not at all) over a stall window; a retry may resume."""


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a network failure that a retry may get past.

    A TLS certificate that fails verification will fail again, and so does a host name
    that does not resolve (EAI_NONAME): neither is retried.
    """
    if isinstance(exc, ssl.CertificateError):
        return False
    if isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_NONAME:
        return False
    return isinstance(exc, TRANSIENT_ERRORS)


def network_reason(exc: BaseException) -> str:
    """A failure in words: ``Name or service not known``, ``TransferStalled: ...``."""
    if isinstance(exc, socket.gaierror) and exc.strerror:
        return exc.strerror
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{type(exc).__name__}: {exc}"


def _tls_context() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context


class HttpResponse:
    """A response whose body has not been read yet; close it (or use ``with``) when done.

    Body reads enforce ``deadlines`` (stall window and minimum speed).
    """

    def __init__(
        self,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        method: str,
        url: str,
        *,
        sock: socket.socket | None = None,
        deadlines: Deadlines | None = None,
    ) -> None:
        self._connection = connection
        self._response = response
        self._sock = sock
        self.deadlines = deadlines or Deadlines()
        self.method = method
        self.url = url
        self.status = response.status
        self.reason = response.reason
        self.headers: Message = response.headers
        self._window_start = time.monotonic()
        self._window_bytes = 0

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or None."""
        return self._response.getheader(name)

    def content_length(self) -> int | None:
        """The ``Content-Length`` as a non-negative int, or None if missing or malformed."""
        value = (self.header("Content-Length") or "").strip()
        return int(value) if value.isdigit() else None

    def read_chunk(self, size: int = CHUNK_SIZE) -> bytes:
        """Up to ``size`` body bytes; ``b""`` at the end of the body or when the peer closed.

        TransferStalled if the body moves slower than the deadlines allow.
        """
        deadlines = self.deadlines
        now = time.monotonic()
        if now - self._window_start >= deadlines.stall_s:
            self._check_window(now)
        if self._sock is not None:
            # Silence must be noticed when it makes a window too slow: at the end of this
            # window, or of the next one if this one already has its bytes.
            remaining = deadlines.stall_s - (now - self._window_start)
            if self._window_bytes >= deadlines.min_speed_bps * deadlines.stall_s:
                remaining += deadlines.stall_s
            self._sock.settimeout(max(remaining, 0.001))
        try:
            chunk = self._response.read1(size)
        except TimeoutError as exc:
            raise self._stalled(time.monotonic()) from exc
        self._window_bytes += len(chunk)
        return chunk

    def _check_window(self, now: float) -> None:
        """Close the current stall window: TransferStalled if it brought too few bytes."""
        if self._window_bytes < self.deadlines.min_speed_bps * self.deadlines.stall_s:
            raise self._stalled(now)
        self._window_start, self._window_bytes = now, 0

    def _stalled(self, now: float) -> TransferStalled:
        deadlines = self.deadlines
        return TransferStalled(
            f"the transfer stalled: {self._window_bytes} bytes in the last "
            f"{now - self._window_start:.3g} s (at least {deadlines.speed_text()} over "
            f"{deadlines.stall_s:g} s is required)"
        )

    def read_capped(self, limit: int) -> bytes | None:
        """The whole body, or None (and the response closed) if it is longer than ``limit``.

        A body cut short of its ``Content-Length`` raises ``http.client.IncompleteRead``
        (transient, see :func:`is_transient`).
        """
        if self.method == "HEAD":
            return b""
        length = self.content_length()
        if length is not None and length > limit:
            self.close()
            return None
        parts: list[bytes] = []
        total = 0
        while chunk := self.read_chunk(min(CHUNK_SIZE, limit + 1)):
            total += len(chunk)
            if total > limit:
                self.close()
                return None
            parts.append(chunk)
        body = b"".join(parts)
        if length is not None and total < length:
            raise http.client.IncompleteRead(body, length - total)
        return body

    def close(self) -> None:
        """Drop the rest of the body and the connection."""
        self._response.close()
        self._connection.close()

    def __enter__(self) -> HttpResponse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Watchdog:
    """Shuts ``sock`` down if the block takes longer than ``seconds``; then ``fired``."""

    def __init__(self, sock: socket.socket | None, seconds: float) -> None:
        self._sock = sock
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        if self._sock is not None:
            with contextlib.suppress(OSError):  # already closed
                self._sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()


def send(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: RequestBody = None,
    deadlines: Deadlines | None = None,
) -> HttpResponse:
    """Send one request to an ``http`` or ``https`` URL over a new connection.

    HTTPS verifies the server's certificate against the system's CAs. A file ``body``
    needs its ``Content-Length`` in ``headers``; it is opened here and closed after
    sending. Network failures raise the ``OSError``/``HTTPException`` they are; missing
    the response deadline raises TimeoutError.
    """
    deadlines = deadlines or Deadlines()
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
        parts = parts._replace(netloc="")  # refused just below
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryResponseError(f"cannot send a request to {url!r}: not an http(s) URL")
    timeout = deadlines.response_s
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname, port, timeout=timeout, context=_tls_context(), blocksize=CHUNK_SIZE
        )
    else:
        connection = http.client.HTTPConnection(
            parts.hostname, port, timeout=timeout, blocksize=CHUNK_SIZE
        )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.connect()
        sock = connection.sock
        try:
            if callable(body):
                with body() as stream:
                    connection.request(method, target, body=stream, headers=dict(headers))
            else:
                connection.request(method, target, body=body, headers=dict(headers))
        except ValueError as exc:  # http.client refuses control characters in URL or headers
            raise RegistryResponseError(f"cannot send a request to {url!r}: {exc}") from exc
        with _Watchdog(sock, timeout) as watchdog:
            try:
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                if watchdog.fired:
                    raise TimeoutError(
                        f"no complete response headers from {parts.hostname} within {timeout:g} s"
                    ) from exc
                raise
    except BaseException:
        connection.close()
        raise
    return HttpResponse(connection, response, method, url, sock=sock, deadlines=deadlines)
