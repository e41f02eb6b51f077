"""Token bytes -> text that is safe to emit while streaming.

Two things are held back until they are decided:

- an incomplete UTF-8 character (a token may carry only part of one), and
- text that may be the start of a stop string (``"<|e"`` while waiting for ``"<|end|>"``).

When a stop string appears, everything before it is emitted and the stream stops; the
stop string itself and anything after it are never emitted. Joining every emitted piece
gives exactly what a non-streaming call returns.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class TextStream:
    """Feed token pieces with :meth:`push`; emit what it returns; call :meth:`finish` last."""

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self._stop = tuple(s for s in stop if s)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""
        self.stopped_by: str | None = None

    @property
    def stopped(self) -> bool:
        return self.stopped_by is not None

    def push(self, piece: bytes) -> str:
        """Add one token's bytes; return the text that can be emitted now."""
        if self.stopped_by is not None:
            return ""
        text = self._held + self._decoder.decode(piece)
        if not self._stop:
            self._held = ""
            return text
        cut, hit = self._first_stop(text)
        if hit is not None:
            self.stopped_by = hit
            self._held = ""
            return text[:cut]
        keep = self._partial_stop_suffix(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep] if keep else text

    def finish(self) -> str:
        """Flush at the end of generation: held-back text that never became a stop string."""
        if self.stopped_by is not None:
            return ""
        text = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        if self._stop:
            cut, hit = self._first_stop(text)
            if hit is not None:
                self.stopped_by = hit
                return text[:cut]
        return text

    def _first_stop(self, text: str) -> tuple[int, str | None]:
        best, hit = len(text), None
        for s in self._stop:
            i = text.find(s)
            if i != -1 and i < best:
                best, hit = i, s
        return best, hit

    def _partial_stop_suffix(self, text: str) -> int:
        """Length of the longest end of `text` that begins some stop string."""
        longest = 0
        for s in self._stop:
            for n in range(min(len(s) - 1, len(text)), longest, -1):
                if text.endswith(s[:n]):
                    longest = n
                    break
        return longest
