"""Limits on one render: a deadline, an output cap, a per-value cap and a memory budget.

A Modelfile TEMPLATE is untrusted code (it can come from a registry layer), so everything a
render produces goes through a ``Sink``, a string builder that checks each piece *before* it
is kept: the piece may not take the sink past its character cap, its bytes are charged to the
render's memory budget, and the deadline is checked every few writes. A single function call
(``printf`` with hundreds of megabyte-sized arguments, a ten-million-column width, ``urlquery``
over a big string) therefore stops within its first few pieces, not after it has built
gigabytes. Transforms that grow their input (quoting, escaping, JSON) feed the sink in
``CHUNK``-sized pieces so they are bounded and interruptible too.

The budget charges every built value cumulatively and never gives bytes back, so a template
that rebuilds a large value in a loop runs out of budget even though each copy is freed.
Normal templates build far less than the default budget: their output is mostly template
text and message contents, which are written without copying.

Every limit raises TemplateLimitError naming the limit and its option.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable

from llamahost.errors import TemplateLimitError

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_MAX_OUTPUT_CHARS = 4 * 1024 * 1024
DEFAULT_MAX_MEMORY_BYTES = 32 * 1024 * 1024

CHUNK = 1 << 16  # characters transformed at a time by growing transforms
_CHECK_EVERY = 256  # sink writes between deadline checks
_JOIN_EVERY = 1024  # small pieces a sink keeps before joining them into one
_EMPTY_SIZE = sys.getsizeof("")


def str_bytes(s: str) -> int:
    """Bytes the characters of ``s`` take in memory (1, 2 or 4 per character), in O(1)."""
    if s.isascii():
        return len(s)
    # CPython stores a string with 1, 2 or 4 bytes per character; getsizeof tells which.
    width = round((sys.getsizeof(s) - _EMPTY_SIZE) / (len(s) + 1))
    return len(s) * max(1, min(width, 4))


class Budget:
    """The limits shared by every execution of one render call.

    ``clock`` returns seconds (monotonic); ``today`` returns the local date, for Ollama's
    ``currentDate``/``yesterdayDate``. Both are injectable so tests can control them.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        timeout_s: float,
        max_output_chars: int,
        max_memory_bytes: int,
        today: Callable[[], datetime.date] = datetime.date.today,
    ) -> None:
        self.clock, self.today = clock, today
        self.timeout_s = timeout_s
        self.deadline = clock() + timeout_s
        self.max_output_chars = max_output_chars
        self.max_memory_bytes = max_memory_bytes
        self.built_bytes = 0

    def check_time(self) -> None:
        if self.clock() > self.deadline:
            raise TemplateLimitError(
                f"template rendering took longer than {self.timeout_s} s (`timeout_s`)"
            )

    def charge(self, nbytes: int) -> None:
        """Count ``nbytes`` more bytes built; past ``max_memory_bytes`` the render stops."""
        self.built_bytes += nbytes
        if self.built_bytes > self.max_memory_bytes:
            raise TemplateLimitError(
                f"template built more than {self.max_memory_bytes} bytes of values and output"
                " (`max_memory_bytes`)"
            )

    def value_sink(self, what: str) -> Sink:
        """A sink for one value a function builds, e.g. ``what="`printf` result"``."""
        return Sink(self, self.max_output_chars, what)

    def output_sink(self) -> Sink:
        return Sink(self, self.max_output_chars, "template output")


class Sink:
    """A string builder that refuses to grow past ``limit`` characters (see the module doc)."""

    __slots__ = ("_joined", "_writes", "budget", "limit", "parts", "size", "what")

    def __init__(self, budget: Budget | None, limit: int, what: str) -> None:
        self.budget, self.limit, self.what = budget, limit, what
        self.parts: list[str] = []
        self.size = 0
        self._writes = 0
        self._joined = 0  # parts before this index are already joined chunks

    @property
    def remaining(self) -> int:
        return self.limit - self.size

    def too_big(self) -> TemplateLimitError:
        return TemplateLimitError(
            f"{self.what} exceeds {self.limit} characters (`max_output_chars`)"
        )

    def reserve(self, n: int) -> None:
        """Raise now if ``n`` more characters would not fit (call before building them)."""
        if self.size + n > self.limit:
            raise self.too_big()

    def write(self, s: str) -> None:
        n = len(s)
        if not n:
            return
        if self.size + n > self.limit:
            raise self.too_big()
        self.size += n
        parts = self.parts
        parts.append(s)
        if len(parts) - self._joined >= _JOIN_EVERY:  # keep per-piece overhead bounded
            parts[self._joined :] = ["".join(parts[self._joined :])]
            self._joined = len(parts)
        budget = self.budget
        if budget is not None:
            budget.charge(str_bytes(s))
            self._writes += 1
            if n > CHUNK or self._writes % _CHECK_EVERY == 0:
                budget.check_time()

    def tick(self) -> None:
        """A deadline check for loops that write nothing."""
        if self.budget is not None:
            self.budget.check_time()

    def getvalue(self) -> str:
        if len(self.parts) > 1:
            self.parts[:] = ["".join(self.parts)]
            self._joined = 1
        return self.parts[0] if self.parts else ""


def unbounded_sink() -> Sink:
    """A sink without limits, for the public helpers used outside a render (``go_json``)."""
    return Sink(None, sys.maxsize, "value")
