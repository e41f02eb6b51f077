"""The filters the Jinja sandbox implements itself, each bounded while it builds its result.

``tojson`` (as ``transformers`` defines it), ``pprint`` and ``wordcount`` replace Jinja's
own: the size of the JSON or pretty-printed text is measured before it is built (see
``jinja_limits``), long encodings check the deadline as they go, and ``wordcount`` counts
without building a list of the words. Every other filter keeps Jinja's implementation and
is checked by its policy in ``jinja_checks``.
"""

from __future__ import annotations

import json
import pprint
import re
from typing import Any, Final

from llamahost.chat.jinja_limits import PPRINT, RenderState, json_style, measure, text_size

__all__ = ["bounded_json", "bounded_pprint", "bounded_wordcount"]

#: JSON texts estimated longer than this are encoded piece by piece (checking the time).
_STREAM_JSON_FROM: Final = 1 << 16

#: Every this many words ``wordcount`` checks the deadline.
_WORDS_PER_TICK: Final = 1024

_WORD: Final = re.compile(r"\w+")


def bounded_json(
    state: RenderState,
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """``tojson`` as ``transformers`` defines it (plain ``json.dumps``, no HTML escaping),
    with the JSON text's size checked before it is built."""
    what = "|tojson's result"
    style, indent_len = json_style(ensure_ascii, indent, separators)
    if indent_len is not None:
        state.check_chars(indent_len, "a JSON indent")
    size = measure(value, state, style)
    state.check_chars(size, what)
    encoder = json.JSONEncoder(
        ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )
    if indent is None or size < _STREAM_JSON_FROM:
        text = encoder.encode(value)
    else:
        # With an indent the encoder runs in Python: check the time as it goes.
        pieces: list[str] = []
        length = 0
        for piece in encoder.iterencode(value):
            length += len(piece)
            state.check_chars(length, what)
            state.check_time()
            pieces.append(piece)
        text = "".join(pieces)
    state.remember(text)
    return text


class _LimitedStream:
    """A text stream for ``pprint`` that refuses to grow past the size limit."""

    def __init__(self, state: RenderState) -> None:
        self._state = state
        self._pieces: list[str] = []
        self._length = 0

    def write(self, text: str) -> int:
        self._length += len(text)
        self._state.check_chars(self._length, "|pprint's result")
        self._state.check_time()
        self._pieces.append(text)
        return len(text)

    def getvalue(self) -> str:
        return "".join(self._pieces)


class _DeadlinePrinter(pprint.PrettyPrinter):
    """``pprint.PrettyPrinter`` that checks the deadline for every object it formats."""

    def __init__(self, state: RenderState, stream: _LimitedStream) -> None:
        super().__init__(stream=stream)  # type: ignore[arg-type]
        self._state = state

    def format(
        self, object: object, context: dict[int, int], maxlevels: int, level: int
    ) -> tuple[str, bool, bool]:
        """Check the deadline, then format as ``pprint`` does."""
        self._state.check_time()
        return super().format(object, context, maxlevels, level)


def bounded_pprint(state: RenderState, value: Any) -> str:
    """``pprint`` (``pprint.pformat``) with its input and output sizes checked."""
    what = "|pprint's result"
    state.check_chars(text_size(value, state), what)
    state.check_weight(measure(value, state, PPRINT), what)
    stream = _LimitedStream(state)
    _DeadlinePrinter(state, stream).pprint(value)
    text = stream.getvalue()[:-1]  # pprint() ends with a newline; pformat() does not
    state.remember(text)
    return text


def bounded_wordcount(state: RenderState, value: object) -> int:
    """``wordcount``: the words of ``str(value)``, counted without a list of them."""
    text = state.to_text(value, "|wordcount's input")
    count = 0
    for count, _match in enumerate(_WORD.finditer(text), start=1):
        if not count % _WORDS_PER_TICK:
            state.check_time()
    return count
