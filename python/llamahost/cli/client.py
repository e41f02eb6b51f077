"""A small client of a running ``llamahost serve`` (Ollama's REST API), for the command line.

    client = server_client()            # a Client if a server answers at LLAMAHOST_HOST, else None
    client.list_models()                # GET /api/tags
    for event in client.pull("llama3.2", insecure=False): ...   # NDJSON progress
    with client.stream_chat({"model": "m", "messages": [...]}) as answer:
        for chunk in answer: ...        # answer.cancel() from another thread stops it

Where the server is (``LLAMAHOST_HOST``) is read as Ollama reads ``OLLAMA_HOST``: ``host``,
``host:port``, ``:port``, ``[::1]:port``, ``http://host:port``, ``https://host[:port]/path``;
a missing host is 127.0.0.1, a missing port 11434 (443 for https). A server listening on
every address (``0.0.0.0``, ``::``) is reached on loopback. ``LLAMAHOST_API_KEY``, when set,
is sent as ``Authorization: Bearer <key>``.

:func:`server_client` probes once per process: a TCP connect (refused at once when nothing
listens, so a command without a server pays about a millisecond and never imports httpx),
then ``GET /`` with a short timeout. Any HTTP answer counts as a server.

Errors: a server's ``{"error": ...}`` answer (or a stream's error line) is a
:class:`ServerError` carrying the server's message and HTTP status, so the CLI prints
``Error: <message>`` as it does for the same failure in-process; a server that cannot be
reached is :class:`ServerUnavailableError` ("could not connect to llamahost at ...; start it
with "llamahost serve""); one that goes away mid-answer is :class:`ServerConnectionError`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from llamahost.errors import LlamahostError
from llamahost.host_address import ServerAddress

if TYPE_CHECKING:
    import httpx

PROBE_TIMEOUT_S = 1.0
CONNECT_TIMEOUT_S = 5.0
UPLOAD_CHUNK_BYTES = 1 << 20


# ---- errors -----------------------------------------------------------------------------


class ServerError(LlamahostError):
    """The server answered with an error; the message is the server's own."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ServerUnavailableError(LlamahostError):
    """No llamahost server answers at LLAMAHOST_HOST."""


class ServerConnectionError(LlamahostError):
    """The connection to the server broke before its answer was complete."""


# ---- where the server is ----------------------------------------------------------------


def unavailable_message(address: ServerAddress) -> str:
    """What a command that needs a server says when none answers."""
    return (
        f"could not connect to llamahost at {address.shown} (LLAMAHOST_HOST); "
        'start it with "llamahost serve"'
    )


# ---- finding the server -----------------------------------------------------------------


def _port_open(address: ServerAddress, timeout: float) -> bool:
    try:
        with socket.create_connection((address.connect_host, address.port), timeout=timeout):
            return True
    except OSError:
        return False


@functools.cache
def server_client() -> Client | None:
    """The server at ``LLAMAHOST_HOST`` if one answers, else None; asked once per process."""
    address = ServerAddress.from_env()
    if not _port_open(address, PROBE_TIMEOUT_S):
        return None
    client = Client(address, api_key=os.environ.get("LLAMAHOST_API_KEY") or None)
    if not client.ping():
        client.close()
        return None
    return client


def require_server() -> Client:
    """The server at ``LLAMAHOST_HOST``; ServerUnavailableError when none answers."""
    client = server_client()
    if client is None:
        raise ServerUnavailableError(unavailable_message(ServerAddress.from_env()))
    return client


# ---- what the API returns ---------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """One progress line of pull, push or create (the ProgressPrinter reads these fields)."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Progress:
        return cls(
            str(data.get("status", "")),
            data.get("digest") or None,
            data.get("total"),
            data.get("completed"),
        )


ProgressCallback = Callable[[Progress], None]


# ---- the client ---------------------------------------------------------------------------


def _error_message(response: httpx.Response) -> str:
    """The server's ``{"error": ...}`` text, else the status line."""
    try:
        data = json.loads(response.read() or b"null")
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    return f"the server answered {response.status_code} {response.reason_phrase}".rstrip()


class Client:
    """Requests to one server. Methods raise ServerError, ServerUnavailableError or
    ServerConnectionError (all LlamahostErrors)."""

    def __init__(self, address: ServerAddress, *, api_key: str | None = None) -> None:
        self.address = address
        self.api_key = api_key
        self._http = self._new_http()

    def _new_http(self, **options: Any) -> httpx.Client:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.Client(
            base_url=self.address.url,
            headers=headers,
            # Loading a model, hashing a big file or decoding a long prompt can keep a
            # server silent for minutes: no read timeout (Ctrl+C stops the command).
            timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT_S),
            verify=self.address.scheme == "https",  # plain http: no CA bundle to load
            trust_env=False,
            **options,
        )

    def close(self) -> None:
        self._http.close()

    # ---- plumbing -------------------------------------------------------------------------

    def _transport_error(self, exc: Exception) -> LlamahostError:
        import httpx

        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            return ServerUnavailableError(unavailable_message(self.address))
        return ServerConnectionError(
            f"the connection to llamahost at {self.address.shown} was lost before its "
            f"answer was complete ({type(exc).__name__}: {exc or 'no details'})"
        )

    def ping(self) -> bool:
        """Whether an HTTP server answers ``GET /`` (within PROBE_TIMEOUT_S)."""
        import httpx

        try:
            self._http.get("/", timeout=PROBE_TIMEOUT_S)
        except httpx.HTTPError:
            return False
        return True

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """One request; the JSON answer (None for an empty body)."""
        import httpx

        try:
            response = self._http.request(method, path, json=body, **params)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code >= 400:
            raise ServerError(_error_message(response), response.status_code)
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError:
            raise ServerError(
                f"the server at {self.address.shown} sent an answer that is not JSON: "
                f"{response.text[:200]!r}",
                response.status_code,
            ) from None

    def stream_lines(self, path: str, body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """``POST path`` and yield its NDJSON objects; an ``{"error"}`` line raises."""
        import httpx

        try:
            with self._http.stream("POST", path, json=dict(body)) as response:
                yield from _ndjson(response)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None

    def _progress(self, path: str, body: Mapping[str, Any]) -> Iterator[Progress]:
        for data in self.stream_lines(path, body):
            yield Progress.of(data)

    # ---- the API ------------------------------------------------------------------------

    def _models(self, path: str) -> list[dict[str, Any]]:
        data = self.request("GET", path)
        models = data.get("models") if isinstance(data, dict) else None
        return [model for model in models or [] if isinstance(model, dict)]

    def list_models(self) -> list[dict[str, Any]]:
        """``GET /api/tags``: the stored models, newest first."""
        return self._models("/api/tags")

    def running(self) -> list[dict[str, Any]]:
        """``GET /api/ps``: the loaded models."""
        return self._models("/api/ps")

    def show(
        self,
        model: str,
        *,
        system: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``POST /api/show``; ``system``/``options`` show the model as a session changed it."""
        body: dict[str, Any] = {"model": model}
        if system:
            body["system"] = system
        if options:
            body["options"] = dict(options)
        data = self.request("POST", "/api/show", body)
        return data if isinstance(data, dict) else {}

    def copy(self, source: str, destination: str) -> None:
        self.request("POST", "/api/copy", {"source": source, "destination": destination})

    def delete(self, model: str) -> None:
        self.request("DELETE", "/api/delete", {"model": model})

    def pull(self, model: str, *, insecure: bool = False) -> Iterator[Progress]:
        return self._progress("/api/pull", {"model": model, "insecure": insecure})

    def push(self, model: str, *, insecure: bool = False) -> Iterator[Progress]:
        return self._progress("/api/push", {"model": model, "insecure": insecure})

    def create(self, request: Mapping[str, Any]) -> Iterator[Progress]:
        return self._progress("/api/create", request)

    def generate(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/generate`` without streaming (load or unload a model)."""
        data = self.request("POST", "/api/generate", {**request, "stream": False})
        return data if isinstance(data, dict) else {}

    def has_blob(self, digest: str) -> bool:
        """``HEAD /api/blobs/<digest>``."""
        import httpx

        try:
            response = self._http.head(f"/api/blobs/{digest}")
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise ServerError(_error_message(response), response.status_code)
        return True

    def upload_blob(
        self, digest: str, path: Path, size: int, sent: Callable[[int], None] | None = None
    ) -> None:
        """``POST /api/blobs/<digest>`` with the file's bytes, streamed; ``sent(n)`` after
        each chunk with the bytes sent so far."""

        def chunks() -> Iterator[bytes]:
            done = 0
            with open(path, "rb") as stream:
                while chunk := stream.read(UPLOAD_CHUNK_BYTES):
                    yield chunk
                    done += len(chunk)
                    if sent is not None:
                        sent(done)

        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        self.request("POST", f"/api/blobs/{digest}", content=chunks(), headers=headers)

    def stream_chat(self, request: Mapping[str, Any]) -> AnswerStream:
        """``POST /api/chat`` streamed; see :class:`AnswerStream`."""
        return AnswerStream(self, "/api/chat", {**request, "stream": True})


def _ndjson(response: httpx.Response) -> Iterator[dict[str, Any]]:
    if response.status_code >= 400:
        raise ServerError(_error_message(response), response.status_code)
    for line in response.iter_lines():
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            raise ServerConnectionError(
                f"the server sent a malformed line: {line[:200]!r}"
            ) from None
        if not isinstance(data, dict):
            continue
        if "error" in data:
            raise ServerError(str(data["error"]))
        yield data


class AnswerStream:
    """A streamed answer that another thread (a Ctrl+C handler) can :meth:`cancel` at any
    moment: while the request waits for a runner, while the model loads, or mid-answer.

    It has a connection of its own, whose socket is shut down on cancel: the reading
    thread wakes up at once and the server sees the client go, which stops the request
    and frees its slot (closing a socket another thread reads does neither on Linux).
    """

    def __init__(self, client: Client, path: str, body: Mapping[str, Any]) -> None:
        self._client = client
        self._path = path
        self._body = dict(body)
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._cancelled = False

    def __enter__(self) -> AnswerStream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cancel()

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        if event != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets.append(sock)
                cancelled = self._cancelled
            if cancelled:
                _shut(sock)

    def cancel(self) -> None:
        """Stop the answer (safe from a signal handler and from any thread, repeatedly)."""
        with self._lock:
            self._cancelled = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import httpx

        if self._cancelled:
            return
        http = self._client._new_http()
        try:
            request = http.build_request(
                "POST", self._path, json=self._body, extensions={"trace": self._trace}
            )
            response = http.send(request, stream=True)
            try:
                yield from _ndjson(response)
            finally:
                response.close()
        except httpx.HTTPError as exc:
            if not self._cancelled:
                raise self._client._transport_error(exc) from None
        finally:
            http.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


__all__ = [
    "AnswerStream",
    "Client",
    "Progress",
    "ServerAddress",
    "ServerConnectionError",
    "ServerError",
    "ServerUnavailableError",
    "require_server",
    "server_client",
    "unavailable_message",
]
