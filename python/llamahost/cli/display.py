"""Writing a streamed answer to the terminal: word wrap, thinking, and ``--verbose`` stats.

    writer = AnswerWriter(sys.stdout, wrap=True)
    for chunk in model.chat(messages, stream=True):
        writer.thinking(chunk.message.thinking)
        writer.content(chunk.message.content)
    writer.finish()
    sys.stderr.write(stats_text(chunk.metrics))

Word wrap works like Ollama's: text is written as it arrives; when a line would pass the
terminal's width (less 5 columns), the word being written is moved to the next line with
a cursor move. It is on only when the output is a terminal at least 10 columns wide.
Thinking is written between ``Thinking...`` and ``...done thinking.``, dimmed on a terminal.
"""

from __future__ import annotations

import os
import unicodedata
from typing import TextIO

from llamahost.cli.tables import go_duration
from llamahost.engine.responses import Metrics

MIN_WRAP_WIDTH = 10
WRAP_MARGIN = 5
_DIM = "\x1b[90m"
_RESET = "\x1b[0m"


def terminal_width(stream: TextIO) -> int:
    """The width of the terminal `stream` writes to, or 0 when it is not a terminal."""
    try:
        if not stream.isatty():
            return 0
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


class AnswerWriter:
    """Writes an answer's pieces to `stream` as they come, wrapping words if asked.

    ``wrap`` asks for word wrap; it happens only on a terminal of at least 10 columns
    (``width`` overrides the width read from `stream`). ``color`` dims thinking text
    (default: when `stream` is a terminal).
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        wrap: bool = True,
        color: bool | None = None,
        width: int | None = None,
    ) -> None:
        self.stream = stream
        columns = terminal_width(stream) if width is None else width
        self.width = columns if wrap and columns >= MIN_WRAP_WIDTH else 0
        self.color = terminal_width(stream) > 0 if color is None else color
        self._column = 0  # display columns on the current line
        self._word = ""  # the word being written (since the last blank)
        self._in_thinking = False
        self.wrote_anything = False
        self.ends_with_newline = True

    def thinking(self, text: str) -> None:
        """Write reasoning text; the first piece opens the ``Thinking...`` block."""
        if not text:
            return
        if not self._in_thinking:
            self._in_thinking = True
            self._emit((_DIM if self.color else "") + "Thinking...\n")
            self._column, self._word = 0, ""
        self._write_wrapped(text)

    def content(self, text: str) -> None:
        """Write answer text; closes an open thinking block first."""
        if not text:
            return
        self._close_thinking()
        self._write_wrapped(text)

    def finish(self) -> None:
        """Close a thinking block left open and flush."""
        self._close_thinking()
        self.stream.flush()

    def _close_thinking(self) -> None:
        if self._in_thinking:
            self._in_thinking = False
            end = "\n" if not self.ends_with_newline else ""
            self._emit(end + "...done thinking.\n\n" + (_RESET if self.color else ""))
            self._column, self._word = 0, ""

    def _write_wrapped(self, text: str) -> None:
        if not self.width:
            self._emit(text)
            return
        out: list[str] = []
        limit = self.width - WRAP_MARGIN
        for char in text:
            width = _char_width(char)
            if char == "\n":
                out.append(char)
                self._column, self._word = 0, ""
            elif self._column + width > limit and not char.isspace():
                word_width = sum(_char_width(c) for c in self._word)
                if word_width > self.width - 2 * WRAP_MARGIN or not self._word:
                    out.append("\n" + char)  # a word longer than a line: just break it
                    self._column, self._word = width, char
                else:
                    out.append(f"\x1b[{word_width}D\x1b[K\n{self._word}{char}")
                    self._column = word_width + width
                    self._word += char
            elif self._column + width > limit:
                out.append("\n")  # a blank at the margin becomes the line break
                self._column, self._word = 0, ""
            else:
                out.append(char)
                self._column += width
                self._word = "" if char.isspace() or width > 1 else self._word + char
        self._emit("".join(out))

    def _emit(self, text: str) -> None:
        if text:
            self.stream.write(text)
            self.stream.flush()
            self.wrote_anything = True
            self.ends_with_newline = text.endswith("\n") or (
                self.color and text.endswith("\n" + _RESET)
            )


def stats_text(metrics: Metrics) -> str:
    """Ollama's ``--verbose`` block: durations in Go's notation, rates in tokens/s."""
    lines = []
    if metrics.total_duration > 0:
        lines.append(f"total duration:       {go_duration(metrics.total_duration)}")
    if metrics.load_duration > 0:
        lines.append(f"load duration:        {go_duration(metrics.load_duration)}")
    if metrics.prompt_eval_count > 0:
        lines.append(f"prompt eval count:    {metrics.prompt_eval_count} token(s)")
    if metrics.prompt_eval_duration > 0:
        lines.append(f"prompt eval duration: {go_duration(metrics.prompt_eval_duration)}")
        rate = metrics.prompt_eval_count / (metrics.prompt_eval_duration / 1e9)
        lines.append(f"prompt eval rate:     {rate:.2f} tokens/s")
    if metrics.eval_count > 0:
        lines.append(f"eval count:           {metrics.eval_count} token(s)")
    if metrics.eval_duration > 0:
        lines.append(f"eval duration:        {go_duration(metrics.eval_duration)}")
        lines.append(f"eval rate:            {metrics.tokens_per_second:.2f} tokens/s")
    return "".join(line + "\n" for line in lines)
