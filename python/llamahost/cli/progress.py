"""Progress display for pull, push and create: one line per status, one bar per blob.

The printer is the ``progress`` callback of RegistryClient.pull/push and create_model: it
takes their ProgressEvents (``status``, and for blob transfers ``digest``, ``total`` and
``completed``).

On a terminal the lines are redrawn in place (at most ten times a second)::

    pulling manifest
    pulling 1a2b3c4d5e6f...  45% ▕███████         ▏  44 MB/98 MB   12 MB/s   4s
    pulling 7c8d9e0f1a2b... 100% ▕████████████████▏ 1.2 KB
    verifying sha256 digest

Anywhere else (a pipe, a log file) it writes plain lines: each status once, and for each
blob a line when it starts, one per 10% of progress, and one when it completes::

    pulling 1a2b3c4d5e6f: 0% (0 B/98 MB)
    pulling 1a2b3c4d5e6f: 10% (9.8 MB/98 MB, 12 MB/s, 7s left)
"""

from __future__ import annotations

import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from llamahost.cli.tables import human_bytes, short_duration

REDRAW_INTERVAL_S = 0.1
RATE_WINDOW_S = 5.0
PLAIN_STEP_PERCENT = 10
_HIDE_CURSOR = "\x1b[?25l"
_SHOW_CURSOR = "\x1b[?25h"
_CLEAR_LINE = "\x1b[K"


class ProgressLike(Protocol):
    """What the printer reads from an event (registry.ProgressEvent has these fields)."""

    @property
    def status(self) -> str: ...
    @property
    def digest(self) -> str | None: ...
    @property
    def total(self) -> int | None: ...
    @property
    def completed(self) -> int | None: ...


@dataclass
class _Bar:
    """One blob's transfer: its latest status, size, bytes done and recent samples."""

    status: str
    total: int
    completed: int = 0
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    printed_step: int = -1  # plain mode: the last 10% step written

    def update(self, status: str, completed: int, now: float) -> None:
        if completed < self.completed:
            self.samples.clear()  # a restarted transfer: the old rate means nothing
        self.status = status
        self.completed = min(completed, self.total)
        self.samples.append((now, self.completed))
        while len(self.samples) > 2 and now - self.samples[0][0] > RATE_WINDOW_S:
            self.samples.popleft()

    @property
    def done(self) -> bool:
        return self.completed >= self.total

    @property
    def percent(self) -> int:
        return 100 if self.total <= 0 else int(100 * self.completed / self.total)

    def rate(self) -> float | None:
        """Bytes per second over the last few seconds, or None before there is a measure."""
        if len(self.samples) < 2:
            return None
        (t0, c0), (t1, c1) = self.samples[0], self.samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 - t0 >= 0.2 and c1 > c0 else None

    def eta(self) -> float | None:
        rate = self.rate()
        return None if not rate else (self.total - self.completed) / rate


class ProgressPrinter:
    """Writes progress events to `stream`: redrawn bars on a terminal, plain lines elsewhere.

    ``tty`` forces the mode (default: whether `stream` is a terminal). Call :meth:`close`
    (or use it as a context manager) when the operation ends, so the last state is shown
    and the cursor is back.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.tty = _is_tty(stream) if tty is None else tty
        self._clock = clock
        self._lines: list[str | _Bar] = []  # statuses and bars, in the order they came
        self._bars: dict[str, _Bar] = {}
        self._last_status: str | None = None
        self._drawn = 0  # terminal lines drawn by the last redraw
        self._last_redraw = float("-inf")
        self._closed = False

    def __enter__(self) -> ProgressPrinter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, event: ProgressLike) -> None:
        now = self._clock()
        if event.digest and event.total:
            bar = self._bars.get(event.digest)
            is_new = bar is None
            if bar is None:
                bar = self._bars[event.digest] = _Bar(event.status, event.total)
                self._lines.append(bar)
            bar.update(event.status, event.completed or 0, now)
            if self.tty:
                self._redraw(force=is_new or bar.done)
            else:
                self._print_plain_bar(bar)
            return
        if event.status == self._last_status:
            return
        self._last_status = event.status
        self._lines.append(event.status)
        if self.tty:
            self._redraw(force=True)
        else:
            self._write(event.status + "\n")

    def close(self) -> None:
        """Draw the final state (on a terminal) and show the cursor again."""
        if self._closed:
            return
        self._closed = True
        if self.tty and self._drawn:
            self._redraw(force=True)
            self._write(_SHOW_CURSOR)

    # ---- plain lines --------------------------------------------------------------------

    def _print_plain_bar(self, bar: _Bar) -> None:
        step = 100 if bar.done else bar.percent // PLAIN_STEP_PERCENT * PLAIN_STEP_PERCENT
        if step <= bar.printed_step:
            return
        bar.printed_step = step
        details = f"{human_bytes(bar.completed)}/{human_bytes(bar.total)}"
        rate, eta = bar.rate(), bar.eta()
        if not bar.done and rate:
            details += f", {human_bytes(rate)}/s"
            if eta is not None:
                details += f", {short_duration(eta)} left"
        self._write(f"{_label(bar.status)}: {bar.percent}% ({details})\n")

    # ---- terminal -----------------------------------------------------------------------

    def _redraw(self, *, force: bool) -> None:
        now = self._clock()
        if not force and now - self._last_redraw < REDRAW_INTERVAL_S:
            return
        self._last_redraw = now
        width = shutil.get_terminal_size((80, 24)).columns
        parts = [_HIDE_CURSOR] if not self._drawn else []
        if self._drawn:
            parts.append(f"\x1b[{self._drawn}A")
        for line in self._lines:
            text = line if isinstance(line, str) else _bar_line(line, width)
            parts.append("\r" + text[: max(width - 1, 1)] + _CLEAR_LINE + "\n")
        self._drawn = len(self._lines)
        self._write("".join(parts))

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _label(status: str) -> str:
    """``pulling 1a2b3c4d5e6f`` stays; a long status (a full digest) is cut to 12 hex."""
    head, _, tail = status.rpartition(" ")
    if tail.startswith("sha256:") and len(tail) > 19:
        return f"{head} {tail[7:19]}" if head else tail[7:19]
    return status


def _bar_line(bar: _Bar, width: int) -> str:
    """``<status>... 45% ▕███   ▏ 44 MB/98 MB  12 MB/s  4s`` (size alone once done)."""
    head = f"{_label(bar.status)}... {bar.percent:3d}% "
    if bar.done:
        tail = f" {human_bytes(bar.total)}"
    else:
        tail = f" {human_bytes(bar.completed)}/{human_bytes(bar.total)}"
        rate, eta = bar.rate(), bar.eta()
        if rate:
            tail += f"  {human_bytes(rate)}/s"
            if eta is not None:
                tail += f"  {short_duration(eta)}"
    cells = max(10, min(50, width - 1 - len(head) - len(tail) - 2))
    filled = cells * bar.percent // 100
    return f"{head}▕{'█' * filled}{' ' * (cells - filled)}▏{tail}"


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
