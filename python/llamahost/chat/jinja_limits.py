"""Time, size and memory limits for the Jinja chat-template sandbox (see ``jinja_template``).

A template must not be able to build a value larger than ``max_output_chars`` at all,
so every size is estimated *before* the value exists, from the sizes of what it is built
from. Sizes are measured three ways, each an upper bound computed without building the
value, over a budget (counting stops as soon as the limit is passed, so measuring a huge
value costs no more than measuring one at the limit), cycle-safe and deadline-checked:

- text size: the characters ``str(value)`` produces, nested strings counted as their
  ``repr`` (quotes and escapes included); what ``{{ value }}``, ``~`` and every
  stringifying filter would build;
- JSON size: the characters ``json.dumps`` produces with the given indent and separators;
- weight: how much a container holds, strings by length and every nested object at
  least :data:`ITEM_WEIGHT` characters (a small object costs 50 to 100 bytes however
  short it prints), so a list of a million one-character strings is as large as
  32 million characters.

A render's memory is bounded twice: no single value may weigh more than
``max_output_chars``, and values the template built and still holds may not add up to
more than ``max_memory_bytes``. The second is kept by a ledger: built values (from
:data:`LEDGER_MIN_BYTES`, or from 64 bytes for values the template keeps: assigned with
``{% set %}`` or ``{% with %}``, passed to a macro, returned by one) are recorded with
their size, and when the total grows, those only the ledger still references are
dropped, so what is counted is what the template holds (in variables, recursive macro
frames, output buffers), not what it once built. The render's inputs are the caller's
memory and never count.

Everything raises :class:`~llamahost.errors.TemplateLimitError` naming the limit.
"""

from __future__ import annotations

import itertools
import json
import math
import pprint
import re
import string
import sys
import time
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    Sized,
    ValuesView,
)
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, cast

from jinja2 import Environment
from jinja2.filters import make_attrgetter
from jinja2.runtime import Undefined
from jinja2.utils import Namespace
from markupsafe import Markup

from llamahost.errors import TemplateLimitError

__all__ = [
    "ITEM_WEIGHT",
    "LEDGER_MIN_BYTES",
    "MAX_INTEGER_BITS",
    "GuardedIterator",
    "Limits",
    "OutputBuffer",
    "RenderState",
    "bounded_json",
    "bounded_pprint",
    "bounded_wordcount",
    "check_deadline",
    "current_render",
    "filter_policy",
    "method_policy",
    "rendering",
    "test_policy",
]

#: The least a nested object counts toward a container's weight, in characters.
ITEM_WEIGHT: Final = 32

#: Built values smaller than this many bytes are not recorded in the memory ledger.
LEDGER_MIN_BYTES: Final = 4096

#: Integers above this many bits are refused (``10 ** 10 ** 9`` would take minutes).
MAX_INTEGER_BITS: Final = 1 << 16

#: Values a template keeps in variables are recorded from this many bytes (see ``hold``).
_HELD_MIN_BYTES: Final = 64

#: Strings shorter than this are never large enough for the ledger (4 bytes a character).
_SHORT_STRING: Final = LEDGER_MIN_BYTES // 4

#: The ledger first looks for dead values once it holds this many bytes.
_FIRST_PURGE_BYTES: Final = 4 << 20

#: Strings longer than this are measured by escape counts or chunk by chunk.
_SHORT_TEXT: Final = 64
_CHUNK: Final = 1 << 16

#: Every this many measured objects, the deadline is checked.
_TICK: Final = 1024

#: A buffer joins its small pieces into one string once it holds this many of them ...
_BUFFER_PIECES: Final = 1024
#: ... or this many characters of them (pieces as long as LEDGER_MIN_BYTES stay as they are).
_BUFFER_SMALL_CHARS: Final = 8192

#: How many ``|sum`` list copies (items copied, in total) count as one character of work.
_SUM_COPIES_PER_CHAR: Final = 16

#: Characters ``str.isspace`` accepts (``str.split()`` and regex ``\s`` split on them).
_WHITESPACE: Final = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
#: Characters ``str.splitlines`` breaks at.
_LINE_BREAKS: Final = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
#: Characters ``textwrap`` breaks chunks at (its whitespace, and hyphens).
_WRAP_BREAKS: Final = "\t\n\x0b\x0c\r -"
#: Characters the ``title`` filter starts a new word after.
_TITLE_BREAKS: Final = _WHITESPACE + "-({[<"
#: Characters whose lower, title or case-folded form is longer than their upper one.
_CASE_GROWERS: Final = "\u0130\u1e9e"

_PRINTF_FIELD: Final = re.compile(
    r"%(?:%|(?:\(([^)]*)\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%]?))"
)
_WORD: Final = re.compile(r"\w+")


# --------------------------------------------------------------------------- render state


@dataclass(frozen=True)
class Limits:
    """The limits one template renders under."""

    max_seconds: float
    max_chars: int
    max_bytes: int


class RenderState:
    """What one render may still use: its deadline, its size limit, its memory ledger.

    Hooks find the running render's state in :data:`current_render`; outside a render
    (while a template compiles) they use an untimed state that checks sizes only.
    ``inputs`` are the ids of the render's input data (messages, tools ...): that is the
    caller's memory, never counted as the template's.
    """

    def __init__(
        self, limits: Limits, *, timed: bool = True, inputs: set[int] | None = None
    ) -> None:
        self.limits = limits
        self.inputs: set[int] = set() if inputs is None else inputs
        self.max_chars = limits.max_chars
        self.deadline = time.monotonic() + limits.max_seconds if timed else math.inf
        self._held_values: list[object] = []
        self._held_sizes: list[int] = []
        self._held_ids: set[int] = set()
        self._held = 0
        self._next_purge = min(_FIRST_PURGE_BYTES, limits.max_bytes)

    # time --------------------------------------------------------------------

    def check_time(self) -> None:
        """Raise TemplateLimitError once the render has run past its deadline."""
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(
                f"chat template ran longer than max_render_seconds={self.limits.max_seconds:g}"
            )

    # sizes -------------------------------------------------------------------

    def check_chars(self, size: int, what: str) -> None:
        """Refuse to build ``what``, a text of ``size`` characters, past the limit."""
        if size > self.max_chars:
            raise TemplateLimitError(
                f"chat template tried to build {what} of about {size} characters; "
                f"the limit is max_output_chars={self.max_chars}"
            )

    def check_weight(self, size: int, what: str) -> None:
        """Refuse to build ``what``, a value weighing ``size``, past the limit."""
        if size > self.max_chars:
            raise TemplateLimitError(
                f"chat template tried to build {what} of about {size} characters "
                f"(each item counts as at least {ITEM_WEIGHT}); "
                f"the limit is max_output_chars={self.max_chars}"
            )

    def check_bits(self, bits: int, what: str) -> None:
        """Refuse to build an integer of more than MAX_INTEGER_BITS bits."""
        if bits > MAX_INTEGER_BITS:
            raise TemplateLimitError(
                f"chat template tried to build {what}, an integer of about {bits} bits; "
                f"the limit is {MAX_INTEGER_BITS} bits"
            )

    def text_len(self, value: object, what: str) -> int:
        """Characters ``str(value)`` would have, after checking that it may be built."""
        size = text_size(value, self)
        self.check_chars(size, what)
        return size

    def to_text(self, value: object, what: str) -> str:
        """``str(value)``, built only once its size is known to be within the limit."""
        if isinstance(value, str):
            return str(value)
        self.text_len(value, what)
        text = str(value)
        self.remember(text)
        return text

    def weight(self, value: object) -> int:
        """The weight of ``value`` (or a number past the limit, once it is past it)."""
        return measure(value, self, _WEIGHT)

    # memory ------------------------------------------------------------------

    def remember(self, value: object) -> None:
        """Record a large value the template built, so that holding on to it counts.

        Small values are left out (a render builds many, and most die at once); a
        template can only keep them by :meth:`hold`.
        """
        if isinstance(value, str):
            if len(value) < _SHORT_STRING:
                return
            size = sys.getsizeof(value)
        elif isinstance(value, (list, tuple, dict, bytes)):
            size = sys.getsizeof(value)
            if size + 48 * len(value) >= LEDGER_MIN_BYTES:
                size = self._container_bytes(value)
        else:
            return
        if size >= LEDGER_MIN_BYTES:
            self._record(value, size)

    def hold(self, value: object) -> None:
        """Record a value the template keeps (in a variable, a namespace, a macro
        argument): then even small ones count, since a recursive macro keeps one per call.
        """
        if id(value) in self.inputs:
            return
        if isinstance(value, str):
            size = sys.getsizeof(value)
        elif isinstance(value, (list, tuple, dict, bytes)):
            size = self._container_bytes(value)
        else:
            return
        if size >= _HELD_MIN_BYTES:
            self._record(value, size)

    def _container_bytes(self, value: list[Any] | tuple[Any, ...] | dict[Any, Any] | bytes) -> int:
        """Bytes a container adds: itself and its small items that are not inputs
        (large items are recorded on their own when they are built)."""
        size = sys.getsizeof(value)
        if isinstance(value, bytes):
            return size
        items: Iterable[Any] = (
            itertools.chain.from_iterable(value.items()) if isinstance(value, dict) else value
        )
        inputs = self.inputs
        for item in items:
            item_size = sys.getsizeof(item)
            if item_size < LEDGER_MIN_BYTES and id(item) not in inputs:
                size += item_size
        return size

    def _record(self, value: object, size: int) -> None:
        if id(value) in self._held_ids:
            return
        self._held_ids.add(id(value))
        self._held_values.append(value)
        self._held_sizes.append(size)
        self._held += size
        if self._held > self._next_purge:
            self._purge()

    def remember_new(self, result: object, *inputs: object) -> None:
        """Record ``result`` unless it is one of the values it was computed from."""
        if type(result) is str and len(result) < _SHORT_STRING:
            return
        for value in inputs:
            if result is value:
                return
        self.remember(result)

    def _purge(self) -> None:
        """Forget values nothing but the ledger holds; fail if the rest is over the limit."""
        values, sizes = self._held_values, self._held_sizes
        kept_values: list[object] = []
        kept_sizes: list[int] = []
        held = 0
        # Newest first: a dead container is dropped before the values it holds are looked at.
        while values:
            value = values.pop()
            size = sizes.pop()
            if sys.getrefcount(value) > _UNREFERENCED:
                kept_values.append(value)
                kept_sizes.append(size)
                held += size
            else:
                self._held_ids.discard(id(value))
            del value
        kept_values.reverse()
        kept_sizes.reverse()
        self._held_values, self._held_sizes, self._held = kept_values, kept_sizes, held
        if held > self.limits.max_bytes:
            raise TemplateLimitError(
                f"chat template holds about {held} bytes of values it built; "
                f"the limit is max_memory_bytes={self.limits.max_bytes}"
            )
        self._next_purge = min(self.limits.max_bytes, max(2 * held, held + _FIRST_PURGE_BYTES))

    @property
    def held_bytes(self) -> int:
        """Bytes the ledger counts now (values may have died since the last purge)."""
        return self._held


def _unreferenced_refcount() -> int:
    """``sys.getrefcount`` of a value only a local variable refers to (as in ``_purge``)."""
    values: list[object] = [object()]
    value = values.pop()
    return sys.getrefcount(value)


_UNREFERENCED: Final = _unreferenced_refcount()


#: The running render's state; None while no render runs (e.g. while a template compiles).
current_render: ContextVar[RenderState | None] = ContextVar(
    "llamahost_template_render", default=None
)
_current_state = current_render


@contextmanager
def rendering(state: RenderState) -> Iterator[RenderState]:
    """``with rendering(state):`` makes ``state`` the running render's state."""
    token = _current_state.set(state)
    try:
        yield state
    finally:
        _current_state.reset(token)


def check_deadline() -> None:
    """Check the running render's deadline (there is none while a template compiles)."""
    state = _current_state.get()
    if state is not None:
        state.check_time()


# --------------------------------------------------------------------------- text sizes


def _count_any(text: str, characters: str) -> int:
    """How many characters of ``text`` are any of ``characters``."""
    return sum(text.count(character) for character in characters)


def _chunked_len(text: str, encode: Callable[[str], str], state: RenderState) -> int:
    """Length of a quoted encoding of ``text`` (repr, JSON), computed chunk by chunk."""
    total = 2
    for start in range(0, len(text), _CHUNK):
        state.check_time()
        total += len(encode(text[start : start + _CHUNK])) - 2
        if total > state.max_chars:
            break
    return total


def _repr_text_len(text: str, state: RenderState) -> int:
    """Length of ``repr(text)``, or an upper bound of it."""
    if len(text) <= _SHORT_TEXT:
        return len(repr(text))
    if text.isprintable():
        return len(text) + 2 + text.count("\\") + text.count("'")
    return _chunked_len(text, repr, state) + text.count("'")


def _json_encoder(ensure_ascii: bool) -> Callable[[str], str]:
    """The function ``json`` quotes strings with."""
    if ensure_ascii:
        return json.encoder.encode_basestring_ascii
    return json.encoder.encode_basestring


def _json_text_len(text: str, ensure_ascii: bool, state: RenderState) -> int:
    """Length of ``text`` as a JSON string."""
    encode = _json_encoder(ensure_ascii)
    if len(text) <= _SHORT_TEXT:
        return len(encode(text))
    if text.isprintable() and (text.isascii() or not ensure_ascii):
        return len(text) + 2 + text.count('"') + text.count("\\")
    return _chunked_len(text, encode, state)


def _bytes_repr_len(data: bytes | bytearray) -> int:
    """Upper bound of ``len(repr(data))``."""
    return 4 * len(data) + 3


def _int_len(number: int) -> int:
    """Characters of ``str(number)`` (an upper bound for very large ones)."""
    if -(10**18) < number < 10**18:
        return len(str(number))
    return int(number.bit_length() * 0.30103) + 3


def case_size(text: str, state: RenderState) -> int:
    """Upper bound of the length of ``text`` upper-, lower-, title- or case-folded."""
    if text.isascii():
        return len(text)
    if 3 * len(text) <= state.max_chars:
        return 3 * len(text)
    total = _count_any(text, _CASE_GROWERS)
    for start in range(0, len(text), _CHUNK):
        state.check_time()
        total += len(text[start : start + _CHUNK].upper())
        if total > state.max_chars:
            break
    return total


def escaped_size(text: str) -> int:
    """Length of ``markupsafe.escape(text)``."""
    return (
        len(text)
        + 4 * (text.count("&") + text.count('"') + text.count("'"))
        + 3 * (text.count("<") + text.count(">"))
    )


def _pieces_bound(text: str, separators: str, state: RenderState, factor: int = 1) -> int:
    """Upper bound of the pieces ``text`` splits into at any of ``separators``.

    Counting is skipped (a piece per character assumed) for texts so short that
    ``factor`` items per piece would still be within the limit.
    """
    if (len(text) + 1) * ITEM_WEIGHT * factor <= state.max_chars:
        return len(text) + 1
    return _count_any(text, separators) + 1


# --------------------------------------------------------------------------- deep sizes


class _Style:
    """How ``measure`` sizes values: as text, as JSON, or by weight."""

    __slots__ = ("ensure_ascii", "indent", "item_separator", "key_separator", "kind")

    def __init__(
        self,
        kind: str,
        *,
        ensure_ascii: bool = False,
        indent: int = 0,
        item_separator: int = 2,
        key_separator: int = 2,
    ) -> None:
        self.kind = kind
        self.ensure_ascii = ensure_ascii
        self.indent = indent
        self.item_separator = item_separator
        self.key_separator = key_separator


_TEXT: Final = _Style("text")
_WEIGHT: Final = _Style("weight")
_PPRINT: Final = _Style("pprint")


def _json_style(
    ensure_ascii: bool, indent: object, separators: object
) -> tuple[_Style, int | None]:
    """The measuring style for ``json.dumps`` with these options, and the indent's length."""
    indent_len: int | None
    if indent is None:
        indent_len = None
    elif isinstance(indent, str):
        indent_len = len(indent)
    elif isinstance(indent, int):
        indent_len = max(indent, 0)
    else:
        indent_len = 0
    item_separator, key_separator = (", " if indent_len is None else ","), ": "
    if (
        isinstance(separators, (tuple, list))
        and len(separators) == 2
        and all(isinstance(part, str) for part in separators)
    ):
        item_separator, key_separator = separators
    style = _Style(
        "json",
        ensure_ascii=ensure_ascii,
        indent=-1 if indent_len is None else indent_len,
        item_separator=len(item_separator),
        key_separator=len(key_separator),
    )
    return style, indent_len


def _layout(value: object, style: _Style, depth: int) -> tuple[int, Iterator[Any]] | None:
    """A container's own characters (brackets, separators) and its children; None for leaves."""
    if style.kind == "json":
        return _json_layout(value, style, depth)
    cls = type(value)
    if cls is list or cls is tuple:
        items = cast("list[Any] | tuple[Any, ...]", value)
        return 2 + 2 * len(items), iter(items)
    if cls is dict:
        mapping = cast("dict[Any, Any]", value)
        return 2 + 4 * len(mapping), itertools.chain.from_iterable(mapping.items())
    if isinstance(value, (list, tuple, dict, set, frozenset)) or (
        cls not in _LEAF_TYPES and isinstance(value, (KeysView, ValuesView, ItemsView))
    ):
        count = len(value)
        overhead = 2 + 2 * count
        if isinstance(value, dict):
            return overhead + 2 * count, itertools.chain.from_iterable(value.items())
        if type(value) not in (list, tuple, dict):
            overhead += len(type(value).__name__) + 3
            fields = getattr(type(value), "_fields", None)
            if isinstance(fields, tuple):
                overhead += sum(len(str(field)) + 1 for field in fields)
        return overhead, iter(value)
    if isinstance(value, Namespace):
        attrs = object.__getattribute__(value, "_Namespace__attrs")
        if isinstance(attrs, dict):
            return 14 + 4 * len(attrs), itertools.chain.from_iterable(attrs.items())
    return None


def _json_layout(value: object, style: _Style, depth: int) -> tuple[int, Iterator[Any]] | None:
    """``_layout`` for JSON: arrays and objects (with their keys) are containers."""
    if not isinstance(value, (list, tuple, dict)):
        return None
    count = len(value)
    overhead = 2 + style.item_separator * count
    if style.indent >= 0 and count:
        overhead += count * (1 + style.indent * (depth + 1)) + 1 + style.indent * depth
    if not isinstance(value, dict):
        return overhead, iter(value)
    overhead += style.key_separator * count
    encode = _json_encoder(style.ensure_ascii)
    for key in value:
        if type(key) is str and len(key) <= _SHORT_TEXT:
            overhead += len(encode(key))
        elif isinstance(key, str):
            overhead += _json_text_len(key, style.ensure_ascii, _IDLE_FOR_KEYS)
        else:
            overhead += _leaf_size(key, style, _IDLE_FOR_KEYS) + 2
    return overhead, iter(value.values())


def _leaf_size(value: object, style: _Style, state: RenderState) -> int:
    """Size of a value that is not a container, nested inside one."""
    if isinstance(value, str):
        if style.kind == "weight":
            return len(value) + 4
        if style.kind == "pprint":
            # pprint wraps a long string word by word, in Python: each word is an item.
            words = _count_any(value, _WHITESPACE) + 1 if len(value) > _SHORT_TEXT else 0
            return len(value) + 4 + words * ITEM_WEIGHT
        if style.kind == "json":
            return _json_text_len(value, style.ensure_ascii, state)
        size = _repr_text_len(value, state)
        return size if type(value) is str else size + len(type(value).__name__) + 2
    if value is None or value is True or value is False:
        return 5
    if isinstance(value, int):
        return _int_len(value)
    if isinstance(value, float):
        return len(repr(value)) + 6
    if isinstance(value, (bytes, bytearray)):
        return len(value) + 4 if style.kind != "text" else _bytes_repr_len(value)
    if style.kind != "text":
        return ITEM_WEIGHT
    if isinstance(value, Undefined):
        return 9
    try:
        return len(repr(value))
    except Exception:
        return ITEM_WEIGHT


def measure(value: object, state: RenderState, style: _Style, *, limit: int | None = None) -> int:
    """Size of ``value`` in ``style``; stops counting once past ``limit`` (default: the
    render's size limit), so the result is exact up to the limit and "too big" beyond.

    Containers are walked without recursion; one that contains itself counts as its
    ``[...]`` marker where it recurs, as ``repr`` prints it.
    """
    budget = state.max_chars if limit is None else limit
    if type(value) is str and style.kind in ("text", "weight"):
        return len(value)
    root = None if type(value) in _LEAF_TYPES else _layout(value, style, 0)
    if root is None:
        if isinstance(value, str) and style.kind in ("text", "weight"):
            return len(value)
        return _leaf_size(value, style, state)
    total, children = root
    active = {id(value)}
    stack: list[tuple[Iterator[Any], int, int]] = [(children, 1, id(value))]
    weighted = style.kind in ("weight", "pprint")
    short_json = _json_encoder(style.ensure_ascii) if style.kind == "json" else None
    visited = 0
    while stack:
        children, depth, owner = stack[-1]
        for child in children:
            visited += 1
            if not visited % _TICK:
                state.check_time()
            cls = type(child)
            if cls in _LEAF_TYPES:
                if short_json is not None and cls is str and len(child) <= _SHORT_TEXT:
                    size = len(short_json(child))  # the common case, kept short
                else:
                    size = _leaf_size(child, style, state)
            else:
                layout = _layout(child, style, depth)
                if layout is None:
                    size = _leaf_size(child, style, state)
                elif id(child) in active:
                    size = 5
                else:
                    size, grandchildren = layout
                    total += max(size, ITEM_WEIGHT) if weighted else size
                    if total > budget:
                        return total
                    active.add(id(child))
                    stack.append((grandchildren, depth + 1, id(child)))
                    break  # walk the child's items; this loop resumes after them
            total += max(size, ITEM_WEIGHT) if weighted else size
            if total > budget:
                return total
        else:
            stack.pop()
            active.discard(owner)
    return total


_LEAF_TYPES: Final = frozenset({str, int, float, bool, type(None)})
_IDLE_FOR_KEYS: Final = RenderState(Limits(math.inf, sys.maxsize, sys.maxsize), timed=False)


def text_size(value: object, state: RenderState) -> int:
    """Characters of ``str(value)``: exact for strings, an upper bound otherwise."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int) and type(value) is int:
        return _int_len(value)
    if value is None or isinstance(value, (bool, int, float)):
        return _leaf_size(value, _TEXT, state)
    if isinstance(value, Undefined):
        return 0
    return measure(value, state, _TEXT)


def repr_size(value: object, state: RenderState) -> int:
    """Characters of ``repr(value)`` (an upper bound)."""
    if isinstance(value, str):
        return _leaf_size(value, _TEXT, state)
    if isinstance(value, Undefined):
        return 9
    return text_size(value, state)


# --------------------------------------------------------------------------- iteration


def item_count(value: object) -> int | None:
    """How many items iterating ``value`` yields, where that is known without iterating."""
    if isinstance(value, GuardedIterator) or not isinstance(value, Sized):
        return None
    try:
        return len(value)
    except Exception:
        return None


class GuardedIterator(Iterator[Any]):
    """A lazy result (``map``, ``select``, ``batch``...) whose items count as they come.

    Each item checks the deadline and adds its weight; the items together may weigh no
    more than the limit (whoever consumes them may keep them all).
    """

    def __init__(self, items: Iterator[Any], state: RenderState, what: str) -> None:
        self._items = items
        self._state = state
        self._what = what
        self._weight = 0

    def __iter__(self) -> GuardedIterator:
        return self

    def __next__(self) -> Any:
        state = self._state
        state.check_time()
        item = next(self._items)
        if type(item) is str:
            self._weight += max(len(item) + 4, ITEM_WEIGHT)
        elif type(item) in _LEAF_TYPES:
            self._weight += ITEM_WEIGHT
        else:
            remaining = state.max_chars - self._weight
            self._weight += max(measure(item, state, _WEIGHT, limit=remaining), ITEM_WEIGHT)
        if self._weight > state.max_chars:
            state.check_weight(self._weight, self._what)
        return item

    def __repr__(self) -> str:
        return repr(self._items)


def materialize(state: RenderState, value: Any, what: str) -> list[Any] | tuple[Any, ...]:
    """The items of ``value`` as a list or tuple, counted against the limit."""
    if isinstance(value, (list, tuple)):
        return value
    count = item_count(value)
    if count is not None:
        state.check_weight(count * ITEM_WEIGHT, what)
        return list(value)
    return list(GuardedIterator(iter(value), state, what))


# --------------------------------------------------------------------------- formatting


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    """Argument ``index`` (positional) or ``name`` (keyword), or None when not given."""
    if len(args) > index:
        return args[index]
    return kwargs.get(name)


def _arg_or(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any
) -> Any:
    value = _arg(args, kwargs, index, name)
    return default if value is None and name not in kwargs and len(args) <= index else value


def printf_size(state: RenderState, fmt: str, values: Any, what: str) -> int:
    """Upper bound of ``len(fmt % values)``, checked against the limit."""
    total = len(fmt)
    escape = 5 if isinstance(fmt, Markup) else 1
    positional = list(values) if isinstance(values, tuple) else [values]
    index = 0
    for match in _PRINTF_FIELD.finditer(fmt):
        key, width, precision, conversion = match.groups()
        if match.group(0) == "%%":
            continue
        for number in (width, precision):
            if number == "*":
                raise TemplateLimitError(
                    f"chat template used a `*` width in {what}; only literal widths are "
                    f"allowed, so that the size is known before it is built"
                )
            if number is not None:
                total += int(number)
        if key is not None:
            try:
                value = values[key]
            except Exception:
                value = ""
        elif index < len(positional):
            value = positional[index]
            index += 1
        else:
            value = ""
        size = repr_size(value, state) * escape
        if conversion == "a":
            size *= 10
        total += size
        state.check_chars(total, what)
    return total


def str_format_size(
    state: RenderState, fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> int:
    """Upper bound of ``len(fmt.format(*args, **kwargs))``, checked against the limit."""
    what = "the result of str.format()"
    total = len(fmt)
    escape = 5 if isinstance(fmt, Markup) else 1
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return total
    automatic = 0
    for _literal, field, spec, conversion in fields:
        if field is None:
            continue
        if spec and "{" in spec:
            raise TemplateLimitError(
                "chat template used a nested field in a str.format spec; only literal "
                "widths are allowed, so that the size is known before it is built"
            )
        total += sum(int(number) for number in re.findall(r"\d+", spec or ""))
        head = re.split(r"[.\[]", field, maxsplit=1)[0]
        value: Any = ""
        if head == "":
            value = args[automatic] if automatic < len(args) else ""
            automatic += 1
        elif head.isdigit():
            value = args[int(head)] if int(head) < len(args) else ""
        else:
            try:
                value = kwargs[head]
            except Exception:
                value = ""
        size = (repr_size(value, state) if conversion else text_size(value, state)) * escape
        total += size * (10 if conversion == "a" else 1)
        state.check_chars(total, what)
    return total


def _replace_size(text: str, old: str, new: str, count: object) -> int:
    """Length of ``text.replace(old, new, count)``, over-estimated, without building it."""
    occurrences = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * len(new)


# --------------------------------------------------------------------------- filter policies

#: ``policy(state, environment, what, args, kwargs)`` checks a call before it runs and may
#: return replacement ``(args, kwargs)`` (e.g. an iterator already consumed into a list).
Policy = Callable[
    [RenderState, Environment, str, tuple[Any, ...], dict[str, Any]],
    "tuple[tuple[Any, ...], dict[str, Any]] | None",
]


@dataclass(frozen=True)
class FilterPolicy:
    """How a filter (or test) is checked: ``pre`` before the call, then its result:
    ``"iter"`` wraps a lazy result in a GuardedIterator, ``"check"`` weighs the result,
    ``"keep"`` records it in the memory ledger, ``"none"`` returns it as it is."""

    pre: Policy | None
    post: str


def _pre_iterate(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """A filter that makes a container of its input's items (a string gives one per char)."""
    count = item_count(args[0]) if args else None
    if count is not None:
        state.check_weight(count * ITEM_WEIGHT, what)


def _pre_reverse(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """``reverse`` reverses a string as a string, anything else into a list."""
    if args and not isinstance(args[0], str):
        _pre_iterate(state, env, what, args, kwargs)


def _pre_pairs(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """A filter that makes a tuple (or group) per item of its input."""
    count = item_count(args[0]) if args else None
    if count is not None:
        state.check_weight(2 * count * ITEM_WEIGHT, what)


def _pre_text(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """A filter that builds ``str(value)`` and returns no more than that."""
    if args:
        state.text_len(args[0], what)


def _pre_case(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """``upper``, ``lower``, ``capitalize``: a character may become up to three."""
    if not args:
        return
    value = args[0]
    size = case_size(value, state) if isinstance(value, str) else 3 * state.text_len(value, what)
    state.check_chars(size, what)


def _pre_title(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """``title`` splits its input into words first."""
    if not args:
        return
    _pre_case(state, env, what, args, kwargs)
    text = state.to_text(args[0], what)
    state.check_weight(2 * _pieces_bound(text, _TITLE_BREAKS, state, 2) * ITEM_WEIGHT, what)


def _pre_center(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    size = state.text_len(args[0], what) if args else 0
    width = _arg_or(args, kwargs, 1, "width", 80)
    if isinstance(width, int):
        state.check_chars(max(size, width), what)


def _pre_escape(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """``escape`` returns what is already markup as it is and escapes the rest."""
    if args and not hasattr(args[0], "__html__"):
        _pre_forceescape(state, env, what, args, kwargs)


def _pre_forceescape(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """``forceescape`` escapes ``str(value)``: a character becomes up to five."""
    if not args:
        return
    if isinstance(args[0], str):
        state.check_chars(escaped_size(args[0]), what)
    else:
        state.check_chars(5 * state.text_len(args[0], what), what)


def _pre_format(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    if not args:
        return
    fmt = state.to_text(args[0], what)
    printf_size(state, fmt, kwargs or tuple(args[1:]), what)


def _pre_indent(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    if not args or not isinstance(args[0], str):
        return
    text = args[0]
    width = _arg_or(args, kwargs, 1, "width", 4)
    pad = len(width) if isinstance(width, str) else max(width, 0) if isinstance(width, int) else 0
    lines = _count_any(text, _LINE_BREAKS) + 2
    state.check_weight(len(text) + lines * ITEM_WEIGHT, what)
    state.check_chars(len(text) + 1 + lines * pad, what)


def _pre_join(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    if not args:
        return None
    items = materialize(state, args[0], what)
    separator = state.text_len(_arg_or(args, kwargs, 1, "d", ""), what)
    attribute = _arg(args, kwargs, 2, "attribute")
    values: Iterable[Any] = items
    if attribute is not None:
        values = map(make_attrgetter(env, attribute), items)
    total = separator * max(len(items) - 1, 0)
    state.check_chars(total, what)
    for value in values:
        state.check_time()
        total += text_size(value, state)
        state.check_chars(total, what)
    return (items, *args[1:]), kwargs


def _pre_sum(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    if not args:
        return None
    items = materialize(state, args[0], what)
    attribute = _arg(args, kwargs, 1, "attribute")
    start = _arg_or(args, kwargs, 2, "start", 0)
    values = list(map(make_attrgetter(env, attribute), items)) if attribute is not None else items
    if isinstance(start, (list, tuple)):
        length = len(start)
        weight = state.weight(start)
        for value in values:
            state.check_time()
            if isinstance(value, (list, tuple)):
                length += len(value)
                weight += state.weight(value)
                state.check_weight(weight, what)
        work = length * len(values)
        if work > _SUM_COPIES_PER_CHAR * state.max_chars:
            raise TemplateLimitError(
                f"chat template tried to add up {len(values)} sequences into one of "
                f"{length} items, copying about {work} items; the limit is "
                f"{_SUM_COPIES_PER_CHAR} copies per character of max_output_chars="
                f"{state.max_chars}"
            )
    return (values, None, start), {}


def _pre_batch(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    _pre_iterate(state, env, what, args, kwargs)
    size = _arg(args, kwargs, 1, "linecount")
    fill = _arg(args, kwargs, 2, "fill_with")
    if isinstance(size, int) and fill is not None:
        state.check_weight(max(size, 0) * ITEM_WEIGHT, what)


def _pre_slice(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    _pre_iterate(state, env, what, args, kwargs)
    slices = _arg(args, kwargs, 1, "slices")
    if isinstance(slices, int):
        state.check_weight(2 * max(slices, 0) * ITEM_WEIGHT, what)


def _pre_replace(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    if len(args) < 3 and ("old" not in kwargs or "new" not in kwargs):
        return
    text = state.to_text(args[0], what)
    old = state.to_text(_arg(args, kwargs, 1, "old"), what)
    new = state.to_text(_arg(args, kwargs, 2, "new"), what)
    state.check_chars(_replace_size(text, old, new, _arg(args, kwargs, 3, "count")), what)


def _pre_striptags(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    if args:
        text = state.to_text(args[0], what)
        state.check_weight(_pieces_bound(text, _WHITESPACE, state) * ITEM_WEIGHT, what)


def _pre_urlencode(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    if args:
        # UTF-8 takes up to 4 bytes a character, each quoted as %XX.
        state.check_chars(12 * state.text_len(args[0], what), what)


def _pre_urlize(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    if not args:
        return
    text = state.to_text(args[0], what)
    words = _pieces_bound(text, _WHITESPACE, state, 2)
    state.check_weight(2 * words * ITEM_WEIGHT, what)
    extra = sum(
        state.text_len(_arg(args, kwargs, index, name) or "", what)
        for index, name in ((3, "target"), (4, "rel"))
    )
    state.check_chars(2 * escaped_size(text) + words * (extra + 64), what)


def _pre_wordwrap(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    if not args or not isinstance(args[0], str):
        return
    text = args[0]
    width = _arg_or(args, kwargs, 1, "width", 79)
    if not isinstance(width, int) or width <= 0:
        return
    wrapstring = _arg(args, kwargs, 3, "wrapstring")
    joint = len(wrapstring) if isinstance(wrapstring, str) else len(env.newline_sequence)
    chunks = 2 * _pieces_bound(text, _WRAP_BREAKS, state, 4)
    lines = len(text) // width + chunks + _count_any(text, _LINE_BREAKS) + 1
    state.check_weight((chunks + lines) * ITEM_WEIGHT, what)
    state.check_chars(len(text) + lines * joint, what)


def _pre_xmlattr(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    if args and isinstance(args[0], Mapping):
        count = len(args[0])
        state.check_weight(count * ITEM_WEIGHT, what)
        state.check_chars(5 * state.text_len(args[0], what) + 4 * count + 1, what)


def _pre_generic(
    state: RenderState, env: Environment, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """An unlisted filter or callable: its inputs together must be within the limit."""
    total = 0
    for value in itertools.chain(args, kwargs.values()):
        total += state.weight(value)
        state.check_weight(total, f"the arguments of {what.removeprefix('the result of ')}")


_NONE: Final = FilterPolicy(None, "none")
_GENERIC: Final = FilterPolicy(_pre_generic, "check")

_FILTER_POLICIES: Final[dict[str, FilterPolicy]] = {
    **dict.fromkeys(
        (
            "abs",
            "attr",
            "count",
            "d",
            "default",
            "filesizeformat",
            "first",
            "float",
            "int",
            "last",
            "length",
            "random",
            "round",
            "truncate",
            # Implemented here with their own checks:
            "pprint",
            "tojson",
            "wordcount",
        ),
        _NONE,
    ),
    "min": FilterPolicy(_pre_iterate, "none"),
    "max": FilterPolicy(_pre_iterate, "none"),
    "list": FilterPolicy(_pre_iterate, "keep"),
    "sort": FilterPolicy(_pre_iterate, "keep"),
    "reverse": FilterPolicy(_pre_reverse, "keep"),
    "unique": FilterPolicy(_pre_iterate, "iter"),
    "map": FilterPolicy(_pre_iterate, "iter"),
    "select": FilterPolicy(_pre_iterate, "iter"),
    "reject": FilterPolicy(_pre_iterate, "iter"),
    "selectattr": FilterPolicy(_pre_iterate, "iter"),
    "rejectattr": FilterPolicy(_pre_iterate, "iter"),
    "items": FilterPolicy(_pre_pairs, "iter"),
    "dictsort": FilterPolicy(_pre_pairs, "keep"),
    "groupby": FilterPolicy(_pre_pairs, "keep"),
    "batch": FilterPolicy(_pre_batch, "iter"),
    "slice": FilterPolicy(_pre_slice, "iter"),
    "sum": FilterPolicy(_pre_sum, "check"),
    "join": FilterPolicy(_pre_join, "keep"),
    "capitalize": FilterPolicy(_pre_case, "keep"),
    "lower": FilterPolicy(_pre_case, "keep"),
    "upper": FilterPolicy(_pre_case, "keep"),
    "title": FilterPolicy(_pre_title, "keep"),
    "center": FilterPolicy(_pre_center, "keep"),
    "e": FilterPolicy(_pre_escape, "keep"),
    "escape": FilterPolicy(_pre_escape, "keep"),
    "forceescape": FilterPolicy(_pre_forceescape, "keep"),
    "format": FilterPolicy(_pre_format, "keep"),
    "indent": FilterPolicy(_pre_indent, "keep"),
    "replace": FilterPolicy(_pre_replace, "keep"),
    "safe": FilterPolicy(_pre_text, "keep"),
    "string": FilterPolicy(_pre_text, "keep"),
    "trim": FilterPolicy(_pre_text, "keep"),
    "striptags": FilterPolicy(_pre_striptags, "keep"),
    "urlencode": FilterPolicy(_pre_urlencode, "keep"),
    "urlize": FilterPolicy(_pre_urlize, "keep"),
    "wordwrap": FilterPolicy(_pre_wordwrap, "keep"),
    "xmlattr": FilterPolicy(_pre_xmlattr, "keep"),
}

#: Tests that stringify their argument; every other known test only compares.
_TEST_POLICIES: Final[dict[str, FilterPolicy]] = {
    "lower": FilterPolicy(_pre_text, "none"),
    "upper": FilterPolicy(_pre_text, "none"),
}
_KNOWN_TESTS: Final = frozenset(
    [
        "!=",
        "<",
        "<=",
        "==",
        ">",
        ">=",
        "boolean",
        "callable",
        "defined",
        "divisibleby",
        "eq",
        "equalto",
        "escaped",
        "even",
        "false",
        "filter",
        "float",
        "ge",
        "greaterthan",
        "gt",
        "in",
        "integer",
        "iterable",
        "le",
        "lessthan",
        "lt",
        "mapping",
        "ne",
        "none",
        "number",
        "odd",
        "sameas",
        "sequence",
        "string",
        "test",
        "true",
        "undefined",
    ]
)


def filter_policy(name: str) -> FilterPolicy:
    """How the filter ``name`` is checked (unlisted filters: inputs and result weighed)."""
    return _FILTER_POLICIES.get(name, _GENERIC)


def test_policy(name: str) -> FilterPolicy:
    """How the test ``name`` is checked."""
    if name in _TEST_POLICIES:
        return _TEST_POLICIES[name]
    return _NONE if name in _KNOWN_TESTS else _GENERIC


# --------------------------------------------------------------------------- method policies

#: ``check(state, owner, what, args, kwargs)`` runs before a method of a built-in type.
MethodCheck = Callable[
    [RenderState, Any, str, tuple[Any, ...], dict[str, Any]],
    "tuple[tuple[Any, ...], dict[str, Any]] | None",
]


def _method_what(owner: object, name: str) -> str:
    return f"the result of {type(owner).__name__}.{name}()"


def _check_padded(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    width = _arg(args, kwargs, 0, "width")
    if isinstance(width, int):
        state.check_chars(max(len(owner), width), what)


def _check_case(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    if isinstance(owner, str):
        state.check_chars(case_size(owner, state), what)


def _check_expandtabs(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    size = _arg_or(args, kwargs, 0, "tabsize", 8)
    if isinstance(size, int):
        tab = b"\t" if isinstance(owner, bytes) else "\t"
        state.check_chars(len(owner) + owner.count(tab) * max(size, 0), what)


def _check_replace(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    old, new = _arg(args, kwargs, 0, "old"), _arg(args, kwargs, 1, "new")
    if type(old) is not type(new) or not isinstance(old, (str, bytes)):
        return
    count = _arg_or(args, kwargs, 2, "count", -1)
    occurrences = len(owner) + 1 if not old else owner.count(old)
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    escape = 5 if isinstance(owner, Markup) else 1
    state.check_chars(len(owner) + occurrences * len(new) * escape, what)


def _check_join(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    if not args:
        return None
    items = materialize(state, args[0], what)
    escape = 5 if isinstance(owner, Markup) else 1
    total = len(owner) * max(len(items) - 1, 0)
    state.check_chars(total, what)
    for item in items:
        state.check_time()
        total += (len(item) if isinstance(item, (str, bytes)) else text_size(item, state)) * escape
        state.check_chars(total, what)
    return (items, *args[1:]), kwargs


def _check_split(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    separator = _arg(args, kwargs, 0, "sep")
    maxsplit = _arg_or(args, kwargs, 1, "maxsplit", -1)
    if isinstance(owner, bytes):
        pieces = len(owner) + 1
    elif separator is None:
        pieces = _pieces_bound(owner, _WHITESPACE, state)
    elif isinstance(separator, str) and separator:
        pieces = owner.count(separator) + 1
    else:
        return
    if isinstance(maxsplit, int) and maxsplit >= 0:
        pieces = min(pieces, maxsplit + 1)
    state.check_weight(len(owner) + pieces * ITEM_WEIGHT, what)


def _check_splitlines(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    pieces = len(owner) + 1 if isinstance(owner, bytes) else _count_any(owner, _LINE_BREAKS) + 1
    state.check_weight(len(owner) + pieces * ITEM_WEIGHT, what)


def _check_partition(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    state.check_weight(len(owner) + 3 * ITEM_WEIGHT, what)


def _check_encode(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    # Some codecs (unicode_escape) write up to ten bytes a character.
    state.check_chars(10 * len(owner) + 16, what)


def _check_decode(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    state.check_chars(4 * len(owner) + 16, what)


def _check_hex(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    separator = _arg(args, kwargs, 0, "sep")
    joint = len(separator) if isinstance(separator, (str, bytes)) else 0
    state.check_chars(len(owner) * (2 + joint), what)


def _check_translate(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    table = _arg(args, kwargs, 0, "table")
    if isinstance(owner, bytes):
        return
    entries: Iterable[Any]
    if isinstance(table, Mapping):
        entries = table.values()
    elif isinstance(table, (list, tuple)):
        entries = table
    else:
        return
    longest = 1
    for entry in entries:
        state.check_time()
        if isinstance(entry, str):
            longest = max(longest, len(entry))
    state.check_chars(len(owner) * longest, what)


def _check_copy(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    state.check_weight(len(owner) * ITEM_WEIGHT, what)


def _check_fromkeys(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    if not args:
        return None
    keys = materialize(state, args[0], what)
    value = args[1] if len(args) > 1 else None
    state.check_weight(len(keys) * (ITEM_WEIGHT + max(state.weight(value), ITEM_WEIGHT)), what)
    return (keys, *args[1:]), kwargs


def _check_to_bytes(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    length = _arg_or(args, kwargs, 0, "length", 1)
    if isinstance(length, int):
        state.check_chars(4 * length + 3, what)


def _check_from_bytes(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    data = _arg(args, kwargs, 0, "bytes")
    count = item_count(data)
    if count is not None:
        state.check_bits(8 * count, what)


def _no_check(
    state: RenderState, owner: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """A method whose result is no larger than its owner (or a number or a bool)."""


_TEXT_METHODS: Final[dict[str, MethodCheck]] = {
    **dict.fromkeys(
        [
            "count",
            "endswith",
            "find",
            "index",
            "isalnum",
            "isalpha",
            "isascii",
            "isdecimal",
            "isdigit",
            "isidentifier",
            "islower",
            "isnumeric",
            "isprintable",
            "isspace",
            "istitle",
            "isupper",
            "lstrip",
            "removeprefix",
            "removesuffix",
            "rfind",
            "rindex",
            "rstrip",
            "startswith",
            "strip",
            "unescape",
            "striptags",
        ],
        _no_check,
    ),
    **dict.fromkeys(["capitalize", "casefold", "lower", "upper", "swapcase", "title"], _check_case),
    **dict.fromkeys(["center", "ljust", "rjust", "zfill"], _check_padded),
    "expandtabs": _check_expandtabs,
    "replace": _check_replace,
    "join": _check_join,
    "split": _check_split,
    "rsplit": _check_split,
    "splitlines": _check_splitlines,
    "partition": _check_partition,
    "rpartition": _check_partition,
    "encode": _check_encode,
    "decode": _check_decode,
    "hex": _check_hex,
    "translate": _check_translate,
}
_CONTAINER_METHODS: Final[dict[str, MethodCheck]] = {
    **dict.fromkeys(["count", "index", "get", "items", "keys", "values"], _no_check),
    "copy": _check_copy,
    "fromkeys": _check_fromkeys,
}
_INT_METHODS: Final[dict[str, MethodCheck]] = {
    **dict.fromkeys(
        ["as_integer_ratio", "bit_count", "bit_length", "conjugate", "is_integer", "hex"], _no_check
    ),
    "to_bytes": _check_to_bytes,
    "from_bytes": _check_from_bytes,
}


def method_policy(function: object) -> tuple[MethodCheck, Any] | None:
    """The check for ``function`` if it is a method of a built-in type, with its owner."""
    owner = getattr(function, "__self__", None)
    name = getattr(function, "__name__", None)
    if owner is None or not isinstance(name, str):
        return None
    table: Mapping[str, MethodCheck]
    if isinstance(owner, (str, bytes)):
        table = _TEXT_METHODS
    elif isinstance(owner, (list, tuple, dict)) or owner is dict:
        table = _CONTAINER_METHODS
    elif isinstance(owner, (int, float)) or owner is int:
        table = _INT_METHODS
    else:
        return None
    check = table.get(name)
    return None if check is None else (check, owner)


def method_label(function: object) -> str:
    """How an error names the result of ``function``."""
    owner = getattr(function, "__self__", None)
    name = getattr(function, "__name__", "a function")
    if owner is None or isinstance(owner, type) or owner.__class__.__module__ != "builtins":
        return f"the result of {name}()"
    return _method_what(owner, name)


# --------------------------------------------------------------------------- bounded filters


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
    style, indent_len = _json_style(ensure_ascii, indent, separators)
    if indent_len is not None:
        state.check_chars(indent_len, "a JSON indent")
    size = measure(value, state, style)
    state.check_chars(size, what)
    encoder = json.JSONEncoder(
        ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )
    if indent is None or size < _CHUNK:
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
    state.check_weight(measure(value, state, _PPRINT), what)
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
        if not count % _TICK:
            state.check_time()
    return count


# --------------------------------------------------------------------------- output buffers


class OutputBuffer(list[str]):
    """What a macro, call block or ``{% set %}`` block writes, limited as it is written.

    The compiled template appends output pieces here (instead of to a plain list) and
    joins them with ``Environment.concat``. The buffer counts the characters written
    against the size limit and joins runs of small pieces as it goes, so a loop writing
    single characters holds strings, not a pointer per character.
    """

    __slots__ = ("_chars", "_small", "_start", "_state")

    def __init__(self, state: RenderState) -> None:
        super().__init__()
        self._state = state
        self._chars = 0
        self._small = 0
        self._start = 0

    def append(self, piece: str) -> None:
        """Add one output piece."""
        size = len(piece)
        self._chars += size
        if self._chars > self._state.max_chars:
            self._state.check_chars(self._chars, "a block of output")
        list.append(self, piece)
        if size < LEDGER_MIN_BYTES:
            self._small += size
        if len(self) - self._start >= _BUFFER_PIECES or self._small >= _BUFFER_SMALL_CHARS:
            self._compact()

    def extend(self, pieces: Iterable[str]) -> None:
        """Add several output pieces."""
        for piece in pieces:
            self.append(piece)

    def _compact(self) -> None:
        self._state.check_time()
        block = "".join(self[self._start :])
        del self[self._start :]
        list.append(self, block)
        self._start = len(self)
        self._small = 0
        self._state.remember(block)

    def text(self) -> str:
        """Everything written, as one string (a macro's result, a ``{% set %}`` block's)."""
        text = "".join(self)
        self._state.hold(text)
        return text
