"""How the CLI writes numbers, sizes, times and tables, the way Ollama's CLI writes them::

    human_bytes(98_362_432)          -> "98 MB"      (decimal units, as ``ollama list``)
    human_time(ago, now)             -> "2 minutes ago", "4 minutes from now", "Forever"
    go_duration(1_234_567_891)       -> "1.234567891s"   (Go's time.Duration.String)
    short_duration(103.2)            -> "1m43s"      (ETAs)
    render_table(header, rows)       -> columns padded to their widest cell, left-aligned
    render_sections(sections)        -> the indented blocks of ``ollama show``

Only human_time reads the clock, and takes ``now`` for tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone

COLUMN_GAP = "    "  # between table columns (``ollama list`` pads with a tab stop)
SECTION_INDENT = "  "
ROW_INDENT = "    "

_BYTE_UNITS = (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("KB", 1000))


def human_bytes(count: int | float) -> str:
    """A byte count with a decimal unit: ``"512 B"``, ``"1.5 KB"``, ``"98 MB"``, ``"4.7 GB"``.

    Values of 10 units or more are whole numbers; smaller ones keep one decimal unless whole.
    """
    for unit, size in _BYTE_UNITS:
        if count >= size:
            value = count / size
            if value >= 10 or value == math.trunc(value):
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}"
    return f"{int(count)} B"


def _human_duration(seconds: float) -> str:
    """Ollama's rough duration words: ``"Less than a second"``, ``"About a minute"``, ..."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = int(seconds // 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // (24 * 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    return f"{hours // (24 * 365)} years"


def _go_div(a: int, b: int) -> int:
    """Go's integer division: the quotient truncated toward zero."""
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def human_time(when: datetime | None, now: datetime | None = None, never: str = "Never") -> str:
    """How long ago `when` was, in words (``"2 minutes ago"``), or how far ahead it is
    (``"4 minutes from now"``; ``"Forever"`` more than 20 years ahead, as Ollama's
    ``ps`` shows a model kept loaded); `never` when it is None."""
    if when is None:
        return never
    current = now if now is not None else datetime.now(timezone.utc)
    delta = (current - when).total_seconds()
    if _go_div(_go_div(int(delta / 3600), 24), 365) < -20:
        return "Forever"
    if delta < 0:
        return _human_duration(-delta) + " from now"
    return _human_duration(delta) + " ago"


def _trimmed_fraction(whole: int, fraction: int, digits: int) -> str:
    """``whole.fraction`` with `digits` fraction digits, trailing zeros (and dot) dropped."""
    text = f"{fraction:0{digits}d}".rstrip("0")
    return f"{whole}.{text}" if text else str(whole)


def go_duration(nanoseconds: int) -> str:
    """A duration as Go's ``time.Duration.String`` writes it (Ollama's ``--verbose`` stats).

    ``0s``, ``850ns``, ``12.5µs``, ``3.25ms``, ``1.5s``, ``2m3.000000001s``, ``1h0m0s``.
    """
    ns = int(nanoseconds)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_trimmed_fraction(ns // 1_000, ns % 1_000, 3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_trimmed_fraction(ns // 1_000_000, ns % 1_000_000, 6)}ms"
    total_seconds, fraction = divmod(ns, 1_000_000_000)
    hours, rest = divmod(total_seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = _trimmed_fraction(seconds, fraction, 9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def short_duration(seconds: float) -> str:
    """A whole-second duration for an ETA: ``"5s"``, ``"1m43s"``, ``"2h5m0s"``."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def render_table(header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, each as wide as its widest cell, separated by a gap.

    Every line ends with a newline; trailing blanks are dropped. With no rows, only the
    header is written.
    """
    lines = [list(header)] if header else []
    lines += [list(row) for row in rows]
    if not lines:
        return ""
    n_columns = max(len(line) for line in lines)
    widths = [
        max((len(line[i]) for line in lines if i < len(line)), default=0) for i in range(n_columns)
    ]
    out = []
    for line in lines:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line)]
        out.append(COLUMN_GAP.join(cells).rstrip() + "\n")
    return "".join(out)


def render_sections(sections: Sequence[tuple[str, Sequence[Sequence[str]]]]) -> str:
    """Titled blocks as ``ollama show`` prints them: an indented title, then indented rows.

    Rows with several cells are aligned as a table; empty sections are left out.
    """
    blocks = []
    for title, rows in sections:
        if not rows:
            continue
        table = render_table(None, rows)
        body = "".join(ROW_INDENT + line for line in table.splitlines(keepends=True))
        blocks.append(f"{SECTION_INDENT}{title}\n{body}")
    return "\n".join(blocks)
