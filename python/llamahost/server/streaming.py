"""NDJSON answers: a stream of JSON lines, or (``stream: false``) the last one.

    events = thread_events(lambda report: client.pull(name, root, progress=report))
    return await ndjson_response(request, events, stream=pull_request.streaming)

:func:`ndjson_response` waits for the first event before answering, so an error that comes
first gets its own HTTP status and an ``{"error": ...}`` body (as Ollama's
``streamResponse`` does); an error after that ends the stream with an ``{"error": ...}``
line. A stream also ends with an error line when the server shuts down
(:func:`shutdown_event`, set by ``serve`` on SIGTERM/Ctrl-C), and stops iterating its
source as soon as the client disconnects: the source generator is closed, so its
``finally`` blocks run (a thread started by :func:`thread_events` is told to stop).

Events are mappings or WireModels (written with ``to_wire()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from llamahost.server.errors import (
    error_for,
    error_line,
    error_response,
    exception_message,
    redact,
    store_root_of,
)
from llamahost.server.schemas import WireModel

Event = Mapping[str, Any] | WireModel
SHUTDOWN_MESSAGE = "the server is shutting down"


def shutdown_event(request: Request) -> asyncio.Event:
    """Set when the server starts shutting down; streams end with an error line then."""
    event = getattr(request.app.state, "shutdown_event", None)
    if not isinstance(event, asyncio.Event):
        event = asyncio.Event()
        request.app.state.shutdown_event = event
    return event


def encode_line(event: Event) -> bytes:
    """One NDJSON line."""
    data = event.to_wire() if isinstance(event, WireModel) else dict(event)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


async def ndjson_response(
    request: Request, events: AsyncIterator[Event], *, stream: bool = True
) -> Response:
    """Stream ``events`` as NDJSON, or (``stream`` false) answer with the last one.

    An exception from ``events`` before the first event is an error answer with the
    exception's status (``errors.status_for``); later, a last ``{"error": ...}`` line.
    """
    if not stream:
        return await last_event_response(request, events)
    try:
        first = await events.__anext__()
    except StopAsyncIteration:
        return JSONResponse({})
    except Exception as exc:
        await _close(events)
        return error_for(request, exc)
    return NDJSONStream(request, encode_line(first), events)


async def last_event_response(request: Request, events: AsyncIterator[Event]) -> Response:
    """The last event as one JSON object, or the error answer if ``events`` raised.

    The client going away (or the server shutting down: 503) stops the iteration too.
    """
    last: list[Event] = [{}]
    failure: list[Exception] = []

    async def consume() -> None:
        try:
            async for event in events:
                last[0] = event
        except Exception as exc:
            failure.append(exc)

    try:
        stopped_by = await watched(request.receive, shutdown_event(request), consume)
    finally:
        await _close(events)
    if stopped_by == "shutdown":
        return error_response(503, SHUTDOWN_MESSAGE)
    if stopped_by == "disconnect":
        return error_response(499, "the client closed the connection")  # never delivered
    if failure:
        return error_for(request, failure[0])
    event = last[0]
    return JSONResponse(event.to_wire() if isinstance(event, WireModel) else dict(event))


async def _close(events: AsyncIterator[Event]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


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


class NDJSONStream(Response):
    """A streamed ``application/x-ndjson`` answer that stops on disconnect or shutdown."""

    media_type = "application/x-ndjson"

    def __init__(self, request: Request, first_line: bytes, events: AsyncIterator[Event]) -> None:
        # Not Response.__init__: it would declare Content-Length: 0.
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"application/x-ndjson")]
        self._request = request
        self._first_line = first_line
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
        try:
            await send(start)

            async def body() -> None:
                await self._send_events(send)

            stopped_by = await watched(receive, shutdown_event(self._request), body)
            if stopped_by != "disconnect":
                tail = error_line(SHUTDOWN_MESSAGE) if stopped_by == "shutdown" else b""
                await send({"type": "http.response.body", "body": tail, "more_body": False})
        except OSError:
            pass  # the client went away
        finally:
            await _close(self._events)

    async def _send_events(self, send: Send) -> None:
        """The lines; an exception from the events becomes the last line (one from ``send``,
        the client going away, propagates)."""
        await send({"type": "http.response.body", "body": self._first_line, "more_body": True})
        while True:
            try:
                event = await self._events.__anext__()
            except StopAsyncIteration:
                return
            except Exception as exc:
                message = redact(exception_message(exc), store_root_of(self._request))
                line = error_line(message)
                await send({"type": "http.response.body", "body": line, "more_body": True})
                return
            line = encode_line(event)
            await send({"type": "http.response.body", "body": line, "more_body": True})


# ---- blocking work in a thread, its progress as events ----------------------------------


class OperationCancelled(Exception):
    """Raised inside a progress callback once nobody listens to the operation any more."""


Report = Callable[[Any], None]


def thread_events(
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
    return _thread_events(work, name)


async def _thread_events(
    work: Callable[[Report], None], name: str
) -> AsyncIterator[dict[str, Any]]:
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
    "NDJSONStream",
    "OperationCancelled",
    "encode_line",
    "last_event_response",
    "ndjson_response",
    "shutdown_event",
    "thread_events",
]
