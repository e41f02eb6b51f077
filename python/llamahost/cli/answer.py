"""Streaming one answer to the terminal, with Ctrl+C stopping just that answer.

The model runs in a worker thread, so Ctrl+C is handled at once even during a long decode:
the handler sets a flag and aborts the running decode, the worker closes the stream, and
the model stays usable. Used by ``llamahost run`` and its REPL.
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from llamahost.cli.display import AnswerWriter
from llamahost.engine.model import Model
from llamahost.engine.responses import ChatChunk, Metrics
from llamahost.engine.structured import Format
from llamahost.errors import AbortedError

POLL_INTERVAL_S = 0.05


class InterruptFlag:
    """Set by Ctrl+C while an answer streams; also aborts the model's running decode."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.event = threading.Event()

    @property
    def interrupted(self) -> bool:
        return self.event.is_set()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()
        self.model.abort()


@contextmanager
def catching_interrupts(model: Model) -> Iterator[InterruptFlag]:
    """Ctrl+C sets the yielded flag (and aborts the decode) instead of raising."""
    flag = InterruptFlag(model)
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
    stream: Iterator[ChatChunk],
    out: queue.Queue[ChatChunk | BaseException | None],
    stop: InterruptFlag,
) -> None:
    """The worker thread: move chunks into `out`, then None (or the exception raised)."""
    try:
        try:
            for chunk in stream:
                out.put(chunk)
                if stop.interrupted:
                    break
        finally:
            close = getattr(stream, "close", None)  # a generator: release the model now
            if close is not None:
                close()
        out.put(None)
    except BaseException as exc:  # handed to the main thread, which re-raises it
        out.put(exc)


def stream_answer(
    model: Model,
    messages: Sequence[Mapping[str, Any]],
    writer: AnswerWriter,
    *,
    format: Format = None,
    think: bool | None = None,
    options: Mapping[str, Any] | None = None,
    show_thinking: bool = True,
) -> Answer:
    """Stream the model's reply to `messages` through `writer` until done or Ctrl+C.

    The model runs in a worker thread, so Ctrl+C is handled at once even during a long
    decode: the handler aborts it (Model.abort from another thread is the supported way),
    the worker closes the stream, and what was written so far is the answer.
    """
    content: list[str] = []
    thinking: list[str] = []
    metrics = None
    chunks: queue.Queue[ChatChunk | BaseException | None] = queue.Queue()
    with catching_interrupts(model) as flag:
        stream = model.chat(
            messages, stream=True, format=format, think=think, options=dict(options or {})
        )
        worker = threading.Thread(target=_produce, args=(stream, chunks, flag), daemon=True)
        worker.start()
        while not flag.interrupted:
            try:
                item = chunks.get(timeout=POLL_INTERVAL_S)
            except queue.Empty:
                continue
            if item is None:
                break
            if isinstance(item, BaseException):
                if isinstance(item, AbortedError) and flag.interrupted:
                    break
                raise item
            if show_thinking:
                writer.thinking(item.message.thinking)
            writer.content(item.message.content)
            content.append(item.message.content)
            thinking.append(item.message.thinking)
            if item.done:
                metrics = item.metrics
        while worker.is_alive():  # after Ctrl+C: keep aborting until the worker has stopped
            model.abort()
            worker.join(POLL_INTERVAL_S)
        writer.finish()
    return Answer("".join(content), "".join(thinking), metrics, flag.interrupted)
