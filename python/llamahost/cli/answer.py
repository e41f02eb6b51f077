"""Streaming one answer to the terminal, with Ctrl+C stopping just that answer.

The answer comes from a :class:`ChunkSource`: a model in this process (:class:`ModelChat`)
or a server's streamed ``/api/chat`` (:class:`ServerChat`). Its chunks are read in a worker
thread, so Ctrl+C is handled at once even during a long decode, a model load or a wait for
the server: the handler sets a flag and calls the source's ``cancel()`` (the model's abort,
or shutting down the HTTP connection, which the server takes as the client leaving: it stops
generating and frees the slot). The worker then ends, and what was written so far is the
answer. Used by ``llamahost run`` and its REPL.
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from llamahost.cli.display import AnswerWriter
from llamahost.engine.responses import ChatChunk, Message, Metrics

if TYPE_CHECKING:
    from llamahost.cli.client import Client
    from llamahost.engine.model import Model
    from llamahost.engine.structured import Format

POLL_INTERVAL_S = 0.05


class ChunkSource(Protocol):
    """Where an answer's chunks come from."""

    cancel_wait_s: float | None
    """After Ctrl+C, how long to wait for the worker to stop (None: until it has)."""

    def chunks(self) -> Iterator[ChatChunk]:
        """The answer's chunks (read in a worker thread); the last has ``done``."""

    def cancel(self) -> None:
        """Stop the answer; called from the Ctrl+C handler, maybe more than once."""


class ModelChat:
    """A chat answer from a model loaded in this process."""

    cancel_wait_s: float | None = None  # the model must be idle before anyone closes or reuses it

    def __init__(
        self,
        model: Model,
        messages: Sequence[Mapping[str, Any]],
        *,
        format: Format = None,
        think: bool | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.messages = list(messages)
        self.format = format
        self.think = think
        self.options = dict(options or {})

    def chunks(self) -> Iterator[ChatChunk]:
        stream = self.model.chat(
            self.messages, stream=True, format=self.format, think=self.think, options=self.options
        )
        try:
            yield from stream
        finally:
            close = getattr(stream, "close", None)  # a generator: release the model now
            if close is not None:
                close()

    def cancel(self) -> None:
        self.model.abort()


class ServerChat:
    """A chat answer streamed by a server (``POST /api/chat``)."""

    cancel_wait_s: float | None = 2.0  # shutting the socket down wakes the reader at once

    def __init__(self, client: Client, request: Mapping[str, Any]) -> None:
        self.stream = client.stream_chat(request)

    def chunks(self) -> Iterator[ChatChunk]:
        for data in self.stream:
            yield chunk_of(data)

    def cancel(self) -> None:
        self.stream.cancel()


def chunk_of(data: Mapping[str, Any]) -> ChatChunk:
    """A ChatChunk from one ``/api/chat`` line."""
    message = data.get("message") or {}
    metrics = None
    if data.get("done"):
        metrics = Metrics(
            **{
                name: int(data.get(name) or 0)
                for name in (
                    "total_duration",
                    "load_duration",
                    "prompt_eval_count",
                    "prompt_eval_duration",
                    "eval_count",
                    "eval_duration",
                )
            }
        )
    return ChatChunk(
        message=Message(
            role=str(message.get("role") or "assistant"),
            content=str(message.get("content") or ""),
            thinking=str(message.get("thinking") or ""),
        ),
        done=bool(data.get("done")),
        done_reason=data.get("done_reason"),
        metrics=metrics,
    )


class InterruptFlag:
    """Set by Ctrl+C while an answer streams; also cancels the source."""

    def __init__(self, source: ChunkSource) -> None:
        self.source = source
        self.event = threading.Event()

    @property
    def interrupted(self) -> bool:
        return self.event.is_set()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()
        self.source.cancel()


@contextmanager
def catching_interrupts(source: ChunkSource) -> Iterator[InterruptFlag]:
    """Ctrl+C sets the yielded flag (and cancels the source) instead of raising."""
    flag = InterruptFlag(source)
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signal handlers can only be installed from the main thread
        return
    previous = signal.signal(signal.SIGINT, flag)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class Answer:
    """What one streamed answer produced; ``interrupted`` when Ctrl+C stopped it."""

    content: str
    thinking: str
    metrics: Metrics | None
    interrupted: bool


def _produce(
    source: ChunkSource,
    out: queue.Queue[ChatChunk | BaseException | None],
    stop: InterruptFlag,
) -> None:
    """The worker thread: move chunks into `out`, then None (or the exception raised)."""
    try:
        chunks = source.chunks()
        try:
            for chunk in chunks:
                out.put(chunk)
                if stop.interrupted:
                    break
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        out.put(None)
    except BaseException as exc:  # handed to the main thread, which re-raises it
        out.put(exc)


def stream_answer(
    source: ChunkSource, writer: AnswerWriter, *, show_thinking: bool = True
) -> Answer:
    """Stream `source`'s answer through `writer` until done or Ctrl+C.

    An error the source raises is raised here, unless Ctrl+C came first (then the error is
    the cancellation's echo, and what was written so far is the answer).
    """
    content: list[str] = []
    thinking: list[str] = []
    metrics = None
    chunks: queue.Queue[ChatChunk | BaseException | None] = queue.Queue()
    with catching_interrupts(source) as flag:
        worker = threading.Thread(target=_produce, args=(source, chunks, flag), daemon=True)
        worker.start()
        while not flag.interrupted:
            try:
                item = chunks.get(timeout=POLL_INTERVAL_S)
            except queue.Empty:
                continue
            if item is None:
                break
            if isinstance(item, BaseException):
                if flag.interrupted:
                    break
                raise item
            if show_thinking:
                writer.thinking(item.message.thinking)
            writer.content(item.message.content)
            content.append(item.message.content)
            thinking.append(item.message.thinking)
            if item.done:
                metrics = item.metrics
        waited, limit = 0.0, source.cancel_wait_s
        while worker.is_alive() and (limit is None or waited < limit):  # after Ctrl+C
            source.cancel()
            worker.join(POLL_INTERVAL_S)
            waited += POLL_INTERVAL_S
        writer.finish()
    return Answer("".join(content), "".join(thinking), metrics, flag.interrupted)
