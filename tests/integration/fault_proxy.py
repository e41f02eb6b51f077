"""A fault-injecting HTTP proxy to put in front of a real registry in tests.

It forwards every request to the upstream registry (keeping the client's ``Host`` header,
so the upload URLs the registry hands out point back through the proxy) and logs each one.
Per test, it can be told to:

- cut the next GET of a blob after a fraction of its body (the connection is closed),
- trickle the next GET of a blob: a part of its body at once, then one byte per interval
  (a peer that never quite stops, which no socket timeout notices),
- trickle the headers of the next response, a byte per interval, without end,
- flip one byte in the middle of the next GET of a blob,
- drop the ``Range`` header of the next GET of a blob (so the registry answers 200),
- demand a Bearer token (it serves the token at ``/token`` itself) or Basic credentials,
- redirect blob GETs to another base URL (another proxy, on another host name).

The faults are one-shot: after one, the proxy forwards faithfully again. Without an
upstream it answers every request with 404 and only logs it (a host that must not be
contacted).
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import re
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_BLOB_PATH = re.compile(r"/v2/.+/blobs/(sha256:[0-9a-f]{64})(?:\?.*)?")
# Headers that describe one connection, not the message: never forwarded.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
     "upgrade", "proxy-authorization", "proxy-authenticate"}
)  # fmt: skip
_NOT_COPIED_BACK = _HOP_BY_HOP | {"content-length", "date", "server"}


@dataclass
class ProxiedRequest:
    """One request the proxy received, and what it did with it."""

    method: str
    path: str
    headers: dict[str, str]
    """Request headers, names lower-cased."""
    status: int = 0
    body_bytes: int = 0
    """Response body bytes sent to the client."""
    fault: str | None = None
    """``"cut"``, ``"flip"``, ``"trickle"``, ``"slow headers"``, ``"range ignored"``,
    ``"redirect"``, ``"auth"``, ``"token"``, or None."""
    cut_at: int | None = None

    @property
    def blob_digest(self) -> str | None:
        """The ``sha256:<hex>`` of a blob request's path, else None."""
        match = _BLOB_PATH.fullmatch(self.path)
        return match.group(1) if match else None


@dataclass
class _Faults:
    cut: dict[str, float] = field(default_factory=dict)
    trickle: dict[str, tuple[int, float]] = field(default_factory=dict)  # bytes first, interval
    slow_headers: float | None = None  # interval between header bytes, for the next response
    flip: set[str] = field(default_factory=set)
    ignore_range: set[str] = field(default_factory=set)
    bearer: tuple[str, str, str] | None = None  # token, realm, service
    basic: str | None = None  # the expected "Basic <b64>" header
    redirect_blobs_to: str | None = None


class FaultProxy:
    """An HTTP proxy on ``bind_host`` (a free port) in front of ``upstream`` (``host:port``)."""

    def __init__(self, upstream: str | None, *, bind_host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._log: list[ProxiedRequest] = []
        self._faults = _Faults()
        self._server = ThreadingHTTPServer((bind_host, 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fault-proxy-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the host part of model names pulled through this proxy."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop serving and close the listening socket (a trickle in progress ends)."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- configuration ------------------------------------------------------------------

    def cut_next_blob(self, digest: str, fraction: float = 0.5) -> None:
        """Close the connection of the next GET of ``digest`` after ``fraction`` of its body."""
        with self._lock:
            self._faults.cut[digest] = fraction

    def trickle_next_blob(self, digest: str, *, first: int, interval_s: float) -> None:
        """Send the next GET of ``digest`` its first ``first`` bytes at once, then one byte
        every ``interval_s`` seconds until the client gives up (or the body ends)."""
        with self._lock:
            self._faults.trickle[digest] = (first, interval_s)

    def trickle_next_headers(self, interval_s: float) -> None:
        """Answer the next request with headers that never end: a byte per ``interval_s``."""
        with self._lock:
            self._faults.slow_headers = interval_s

    def _take_slow_headers(self) -> float | None:
        with self._lock:
            interval, self._faults.slow_headers = self._faults.slow_headers, None
        return interval

    def flip_next_blob(self, digest: str) -> None:
        """Invert one byte in the middle of the body of the next GET of ``digest``."""
        with self._lock:
            self._faults.flip.add(digest)

    def ignore_next_range(self, digest: str) -> None:
        """Drop the ``Range`` header of the next GET of ``digest``: the upstream sends 200."""
        with self._lock:
            self._faults.ignore_range.add(digest)

    def require_bearer(self, token: str, realm: str, service: str = "test-registry") -> None:
        """Answer 401 with a Bearer challenge unless a token from ``/token`` is sent.

        ``GET /token?scope=repository:<repo>:<actions>`` on this proxy answers
        ``{"token": "<token>/<actions>"}``. As in a token-authenticated registry, a token
        for ``pull`` admits GET and HEAD, other methods need one for ``pull,push``.
        """
        with self._lock:
            self._faults.bearer = (token, realm, service)

    def require_basic(self, username: str, password: str) -> None:
        """Answer 401 with a Basic challenge unless these credentials are sent."""
        pair = base64.b64encode(f"{username}:{password}".encode()).decode()
        with self._lock:
            self._faults.basic = f"Basic {pair}"

    def redirect_blobs_to(self, base_url: str | None) -> None:
        """Answer blob GETs with ``307 Location: <base_url><path>`` (None: stop)."""
        with self._lock:
            self._faults.redirect_blobs_to = base_url

    # -- the log ------------------------------------------------------------------------

    @property
    def requests(self) -> list[ProxiedRequest]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._log)

    def blob_gets(self, digest: str) -> list[ProxiedRequest]:
        """The GETs of blob ``digest`` answered with 200 or 206 by the upstream."""
        return [
            r
            for r in self.requests
            if r.method == "GET" and r.blob_digest == digest and r.status in (200, 206)
        ]

    def _record(self, request: ProxiedRequest) -> None:
        with self._lock:
            self._log.append(request)

    def _take_ignore_range(self, digest: str) -> bool:
        with self._lock:
            taken = digest in self._faults.ignore_range
            self._faults.ignore_range.discard(digest)
        return taken

    def _take(self, digest: str | None) -> tuple[float | None, bool]:
        """Consume the one-shot faults set for ``digest``: (cut fraction, flip)."""
        if digest is None:
            return None, False
        with self._lock:
            cut = self._faults.cut.pop(digest, None)
            flip = digest in self._faults.flip
            self._faults.flip.discard(digest)
        return cut, flip

    def _take_trickle(self, digest: str | None) -> tuple[int, float] | None:
        if digest is None:
            return None
        with self._lock:
            return self._faults.trickle.pop(digest, None)


class _Handler(BaseHTTPRequestHandler):
    """Forwards one request, applying the proxy's faults."""

    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet; the proxy has its own log."""

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    @property
    def proxy(self) -> FaultProxy:
        return self.server.proxy  # type: ignore[attr-defined]

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        record = ProxiedRequest(
            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}
        )
        self.proxy._record(record)
        slow_headers = self.proxy._take_slow_headers()
        if slow_headers is not None:
            record.fault = "slow headers"
            self._trickle_headers(slow_headers)
            return
        with self.proxy._lock:
            faults = copy.copy(self.proxy._faults)  # bearer, basic and redirect are read here
        if self.proxy.upstream is None:
            self._reply(record, 404, _oci_error("NAME_UNKNOWN", "nothing here"))
            return
        if faults.bearer and self.path.startswith("/token"):
            record.fault = "token"
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            actions = query.get("scope", ["::"])[-1].rpartition(":")[2]
            issued = f"{faults.bearer[0]}/{actions}"
            self._reply(record, 200, json.dumps({"token": issued}).encode())
            return
        if not self._authorized(record, faults):
            return
        digest = record.blob_digest if self.command == "GET" else None
        if digest and faults.redirect_blobs_to:
            record.fault = "redirect"
            location = faults.redirect_blobs_to.rstrip("/") + self.path
            self._reply(record, 307, b"", {"Location": location})
            return
        self._forward(record, body, digest)

    def _authorized(self, record: ProxiedRequest, faults: _Faults) -> bool:
        """Send a 401 challenge and return False unless the request carries what is required."""
        sent = record.headers.get("authorization")
        if faults.bearer:
            token, realm, service = faults.bearer
            action = "pull" if self.command in ("GET", "HEAD") else "pull,push"
            prefix, _, granted = (sent or "").partition("/")
            if prefix == f"Bearer {token}" and set(action.split(",")) <= set(granted.split(",")):
                return True
            match = re.fullmatch(r"/v2/(.+)/(?:manifests|blobs)/.*", self.path.split("?")[0])
            scope = f"repository:{match.group(1)}:{action}" if match else "registry:catalog:*"
            challenge = f'Bearer realm="{realm}",service="{service}",scope="{scope}"'
        elif faults.basic:
            if sent == faults.basic:
                return True
            challenge = 'Basic realm="test-registry"'
        else:
            return True
        record.fault = "auth"
        body = _oci_error("UNAUTHORIZED", "authentication required")
        self._reply(record, 401, body, {"WWW-Authenticate": challenge})
        return False

    def _forward(self, record: ProxiedRequest, body: bytes | None, digest: str | None) -> None:
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in _HOP_BY_HOP and k.lower() != "authorization"
        }
        if digest and "range" in record.headers and self.proxy._take_ignore_range(digest):
            record.fault = "range ignored"
            headers = {k: v for k, v in headers.items() if k.lower() != "range"}
        upstream = http.client.HTTPConnection(self.proxy.upstream, timeout=30)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = b"" if self.command == "HEAD" else response.read()
        finally:
            upstream.close()
        record.status = response.status
        cut, flip, trickle = None, False, None
        if response.status in (200, 206):
            cut, flip = self.proxy._take(digest)
            trickle = self.proxy._take_trickle(digest)
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in _NOT_COPIED_BACK:
                self.send_header(name, value)
        self.send_header("Content-Length", response.getheader("Content-Length") or str(len(data)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if flip and data:
            mutable = bytearray(data)
            mutable[len(data) // 2] ^= 0xFF
            data = bytes(mutable)
            record.fault = "flip"
        if cut is not None:
            record.fault, record.cut_at = "cut", int(len(data) * cut)
            data = data[: record.cut_at]
        if trickle is not None:
            record.fault = "trickle"
            self._trickle(record, data, *trickle)
            return
        self.wfile.write(data)
        record.body_bytes = len(data)
        if cut is not None:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_WR)

    def _trickle(self, record: ProxiedRequest, data: bytes, first: int, interval_s: float) -> None:
        """Write ``data[:first]``, then a byte per ``interval_s`` until the client leaves."""
        self.close_connection = True
        try:
            self.wfile.write(data[:first])
            self.wfile.flush()
            record.body_bytes = min(first, len(data))
            for offset in range(first, len(data)):
                if self.proxy._stopping.wait(interval_s):
                    return
                self.wfile.write(data[offset : offset + 1])
                self.wfile.flush()
                record.body_bytes = offset + 1
        except OSError:
            return  # the client gave up: what the trickle is for

    def _trickle_headers(self, interval_s: float) -> None:
        """A status line, then one endless header, a byte per ``interval_s``."""
        self.close_connection = True
        head = b"HTTP/1.1 200 OK\r\nX-Slow: "
        try:
            for index in range(1 << 20):
                if self.proxy._stopping.wait(interval_s):
                    return
                byte = head[index : index + 1] if index < len(head) else b"z"
                self.wfile.write(byte)
                self.wfile.flush()
        except OSError:
            return  # the client gave up

    def _reply(
        self,
        record: ProxiedRequest,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        record.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
            record.body_bytes = len(body)


def _oci_error(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()
