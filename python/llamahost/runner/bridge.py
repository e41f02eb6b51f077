"""Running a blocking generation under asyncio: a thread produces, the request awaits.

Generation is synchronous (the batch engine's chunks arrive through a blocking queue), so
each request runs its iterator in a thread of its own and hands items to the event loop.
Closing the bridge (the client went away, the stream ended early) sets the request's
``cancel`` event: the batch engine drops the request at its next step, whether it was
queued, reading its prompt or decoding.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Generic, TypeVar

from starlette.requests import Request

T = TypeVar("T")

_END = object()


class Bridge(Generic[T]):
    """Items of `make(cancel)` (called in a new thread), awaited one at a time."""

    def __init__(self, make: Callable[[threading.Event], Iterator[T]]) -> None:
        self.cancel = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._thread = threading.Thread(target=self._produce, args=(make,), daemon=True)
        self._thread.start()

    def _put(self, item: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancel.set()

    def _produce(self, make: Callable[[threading.Event], Iterator[T]]) -> None:
        try:
            iterator = make(self.cancel)
            try:
                for item in iterator:
                    self._put(item)
                    if self.cancel.is_set():
                        break
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
            self._put(_END)
        except BaseException as exc:  # re-raised on the event loop's side
            self._put(exc)

    async def next(self) -> T | None:
        """The next item, None at the end; an exception the producer raised is raised here."""
        item = await self._queue.get()
        if item is _END:
            return None
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[return-value]

    async def items(self) -> AsyncIterator[T]:
        """Every item; leaving early (or being cancelled) cancels the generation."""
        try:
            while (item := await self.next()) is not None:
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self.cancel.set()


async def until_disconnected(request: Request, bridge: Bridge[T]) -> None:
    """Cancel `bridge` when the client disconnects (for responses that are not streamed;
    a streamed response notices by itself)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            bridge.close()
            return
