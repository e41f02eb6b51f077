"""Answers made of events: NDJSON lines as they come, or (``stream: false``) the last one.

    events = thread_events(lambda report: client.pull(name, root, progress=report))
    return EventResponse(request, events, stream=pull_request.streaming)

:class:`EventResponse` runs the events inside the ASGI call, so the first event (or the
first error) decides the status line: an error that comes first gets its own HTTP status
and an ``{"error": ...}`` body (as Ollama's ``streamResponse`` does); an error after that
ends the stream with an ``{"error": ...}`` line. While it runs, it watches its client and
the server: a disconnect (while waiting for the first event or streaming) stops the
iteration and closes the events, so their ``finally`` blocks run (a runner request is
closed, a thread started by :func:`thread_events` is told to stop); the server's shutdown
(:func:`shutdown_event`, set by ``serve`` on SIGTERM/Ctrl-C) ends a stream with an error
line, or answers 503 before it started. The inference routes (``routes_inference``) and
OpenAI's (``routes_openai``: SSE) use it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from llamahost.errors import LlamahostError
from llamahost.server.errors import (
    APIError,
    error_line,
    exception_message,
    json_bytes,
    redact,
    status_for,
    store_root_of,
)

log = logging.getLogger("llamahost.server")

SHUTDOWN_MESSAGE = "the server is shutting down"
JSON_MEDIA_TYPE = "application/json; charset=utf-8"


def shutdown_event(request: Request) -> asyncio.Event:
    """Set when the server starts shutting down; streams end with an error line then."""
    event: asyncio.Event = request.app.state.shutdown_event
    return event


def encode_line(event: Mapping[str, Any]) -> bytes:
    """One NDJSON line."""
    return json_bytes(event) + b"\n"


async def watched(
    receive: Receive, shutdown: asyncio.Event, body: Callable[[], Awaitable[None]]
) -> str | None:
    """Run ``body`` (which handles its own errors) until it ends, the client disconnects
    or the server shuts down; None, ``"disconnect"`` or ``"shutdown"``: what ended it."""
    stopped_by: list[str] = []
    async with anyio.create_task_group() as group:

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            stopped_by.append("disconnect")
            group.cancel_scope.cancel()

        async def watch_shutdown() -> None:
            await shutdown.wait()
            stopped_by.append("shutdown")
            group.cancel_scope.cancel()

        group.start_soon(watch_disconnect)
        group.start_soon(watch_shutdown)
        try:
            await body()
        except OSError:
            stopped_by.append("disconnect")  # the client went away while we were writing
        group.cancel_scope.cancel()
    return stopped_by[0] if stopped_by else None


class EventResponse(Response):
    """The answer of a request whose result is a series of events (dicts), produced while
    its client stays connected (see the module docstring).

    With `stream` each event is an NDJSON line, else the last one is the body. The wire
    format is NDJSON with Ollama's errors; a subclass changes it by overriding
    ``stream_media_type`` and the ``encode_*`` methods (``routes_openai``: SSE, OpenAI's
    errors).
    """

    stream_media_type = "application/x-ndjson"

    def encode_event(self, item: Mapping[str, Any]) -> bytes:
        """One streamed object."""
        return encode_line(item)

    def encode_error_event(self, message: str) -> bytes:
        """The streamed object that ends a stream with an error."""
        return error_line(message)

    def encode_error(self, status: int, message: str) -> bytes:
        """The body of an error answer."""
        return json_bytes({"error": message})

    def encode_end(self) -> bytes:
        """What ends a stream that finished well."""
        return b""

    def logs_failure(self, exc: BaseException) -> bool:
        """Whether an error answer (a 5xx) for `exc` is worth a log line of its own."""
        return True

    def __init__(
        self, request: Request, events: AsyncIterator[dict[str, Any]], *, stream: bool
    ) -> None:
        super().__init__(content=None, status_code=200)
        self._request = request
        self._events = events
        self._stream = stream
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            stopped_by = await watched(
                receive, shutdown_event(self._request), lambda: self._respond(send)
            )
            if stopped_by == "shutdown":
                if self._started:
                    await self._body(send, self.encode_error_event(SHUTDOWN_MESSAGE), more=False)
                else:
                    closing = APIError(503, SHUTDOWN_MESSAGE, {"Retry-After": "5"})
                    await self._error(send, closing)
        except OSError:
            pass  # the client went away while we were writing
        finally:
            with contextlib.suppress(Exception):
                await self._events.aclose()  # type: ignore[attr-defined]

    async def _start(self, send: Send, status: int, media_type: str, headers: Any = None) -> None:
        raw = [(b"content-type", media_type.encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        self._started = True

    async def _body(self, send: Send, data: bytes, *, more: bool) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": more})

    async def _error(self, send: Send, exc: BaseException) -> None:
        message = redact(exception_message(exc), store_root_of(self._request))
        status = status_for(exc)
        if status == 503:
            log.warning("%s refused: %s", self._request.url.path, message)
        elif status >= 500 and self.logs_failure(exc):
            log.error("%s failed: %s", self._request.url.path, message)
        headers = exc.headers if isinstance(exc, APIError) else None
        await self._start(send, status, JSON_MEDIA_TYPE, headers)
        await self._body(send, self.encode_error(status, message), more=False)

    async def _respond(self, send: Send) -> None:
        try:
            first = await self._events.__anext__()
        except StopAsyncIteration:
            first = {}
        except Exception as exc:
            await self._error(send, exc)
            return
        if not self._stream:
            last = first
            try:
                async for item in self._events:
                    last = item
            except Exception as exc:
                await self._error(send, exc)
                return
            await self._start(send, 200, JSON_MEDIA_TYPE)
            await self._body(send, json_bytes(last), more=False)
            return
        await self._start(send, 200, self.stream_media_type)
        await self._body(send, self.encode_event(first), more=True)
        end = self.encode_end()
        try:
            async for item in self._events:
                await self._body(send, self.encode_event(item), more=True)
        except OSError:
            raise  # the client is gone: nobody to tell
        except Exception as exc:
            message = redact(exception_message(exc), store_root_of(self._request))
            if not isinstance(exc, (LlamahostError, APIError)):
                log.error("%s failed while streaming", self._request.url.path, exc_info=exc)
            await self._body(send, self.encode_error_event(message), more=True)
            end = b""
        await self._body(send, end, more=False)


# ---- blocking work in a thread, its progress as events ----------------------------------


class OperationCancelled(Exception):
    """Raised inside a progress callback once nobody listens to the operation any more."""


Report = Callable[[Any], None]


async def thread_events(
    work: Callable[[Report], None], *, name: str = "llamahost-worker"
) -> AsyncIterator[dict[str, Any]]:
    """Run ``work(report)`` in a daemon thread; yield what it reports, as dicts.

    ``report`` takes a mapping or an object with ``to_dict()`` (store ProgressEvents).
    Successive events with the same ``status`` and ``digest`` that the consumer has not
    taken yet are merged (only the newest is kept), so a slow client never makes memory
    grow. When the consumer stops (disconnect, shutdown, an error), the next ``report``
    call raises OperationCancelled inside the thread, which ends the work; an exception
    ``work`` raises is raised by the iterator after the events before it.
    """
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    lock = threading.Lock()
    pending: list[dict[str, Any]] = []
    outcome: list[BaseException] = []
    finished = threading.Event()
    cancelled = threading.Event()

    def notify() -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            loop.call_soon_threadsafe(wake.set)

    def report(event: Any) -> None:
        if cancelled.is_set():
            raise OperationCancelled("cancelled: the client went away")
        data = dict(event.to_dict() if hasattr(event, "to_dict") else event)
        with lock:
            last = pending[-1] if pending else None
            if last is not None and (last.get("status"), last.get("digest")) == (
                data.get("status"),
                data.get("digest"),
            ):
                pending[-1] = data
            else:
                pending.append(data)
        notify()

    def run() -> None:
        try:
            work(report)
        except BaseException as exc:
            outcome.append(exc)
        finally:
            with lock:
                finished.set()
            notify()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            await wake.wait()
            wake.clear()
            with lock:
                items, done = list(pending), finished.is_set()
                pending.clear()
            for item in items:
                yield item
            if done:
                break
        if outcome and not isinstance(outcome[0], OperationCancelled):
            raise outcome[0]
    finally:
        cancelled.set()


__all__ = [
    "SHUTDOWN_MESSAGE",
    "EventResponse",
    "OperationCancelled",
    "encode_line",
    "shutdown_event",
    "thread_events",
    "watched",
]
