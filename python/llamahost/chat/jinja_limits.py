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
import sys
import time
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Sized,
    ValuesView,
)
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, cast

from jinja2.runtime import Undefined
from jinja2.utils import Namespace

from llamahost.errors import TemplateLimitError

__all__ = [
    "ITEM_WEIGHT",
    "LEDGER_MIN_BYTES",
    "LINE_BREAKS",
    "MAX_INTEGER_BITS",
    "PPRINT",
    "SHORT_STRING",
    "TEXT",
    "WEIGHT",
    "WHITESPACE",
    "GuardedIterator",
    "Limits",
    "OutputBuffer",
    "RenderState",
    "Style",
    "case_size",
    "check_deadline",
    "count_any",
    "current_render",
    "escaped_size",
    "item_count",
    "json_style",
    "materialize",
    "measure",
    "pieces_bound",
    "rendering",
    "repr_size",
    "text_size",
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
SHORT_STRING: Final = LEDGER_MIN_BYTES // 4

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

#: Characters ``str.isspace`` accepts (``str.split()`` and regex ``\s`` split on them).
WHITESPACE: Final = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
#: Characters ``str.splitlines`` breaks at.
LINE_BREAKS: Final = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
#: Characters whose lower, title or case-folded form is longer than their upper one.
_CASE_GROWERS: Final = "\u0130\u1e9e"


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
        return measure(value, self, WEIGHT)

    # memory ------------------------------------------------------------------

    def remember(self, value: object) -> None:
        """Record a large value the template built, so that holding on to it counts.

        Small values are left out (a render builds many, and most die at once); a
        template can only keep them by :meth:`hold`.
        """
        if isinstance(value, str):
            if len(value) < SHORT_STRING:
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
        if type(result) is str and len(result) < SHORT_STRING:
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


@contextmanager
def rendering(state: RenderState) -> Iterator[RenderState]:
    """``with rendering(state):`` makes ``state`` the running render's state."""
    token = current_render.set(state)
    try:
        yield state
    finally:
        current_render.reset(token)


def check_deadline() -> None:
    """Check the running render's deadline (there is none while a template compiles)."""
    state = current_render.get()
    if state is not None:
        state.check_time()


# --------------------------------------------------------------------------- text sizes


def count_any(text: str, characters: str) -> int:
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
    """Characters of ``str(number)``; for a very large one, an upper bound of it in any
    base and with digit separators (``'{:_b}'.format(number)``)."""
    if -(10**18) < number < 10**18:
        return len(str(number))
    return number.bit_length() * 5 // 4 + 3


def case_size(text: str, state: RenderState) -> int:
    """Upper bound of the length of ``text`` upper-, lower-, title- or case-folded."""
    if text.isascii():
        return len(text)
    if 3 * len(text) <= state.max_chars:
        return 3 * len(text)
    total = count_any(text, _CASE_GROWERS)
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


def pieces_bound(text: str, separators: str, state: RenderState, factor: int = 1) -> int:
    """Upper bound of the pieces ``text`` splits into at any of ``separators``.

    Counting is skipped (a piece per character assumed) for texts so short that
    ``factor`` items per piece would still be within the limit.
    """
    if (len(text) + 1) * ITEM_WEIGHT * factor <= state.max_chars:
        return len(text) + 1
    return count_any(text, separators) + 1


# --------------------------------------------------------------------------- deep sizes


class Style:
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


TEXT: Final = Style("text")
WEIGHT: Final = Style("weight")
PPRINT: Final = Style("pprint")


def json_style(ensure_ascii: bool, indent: object, separators: object) -> tuple[Style, int | None]:
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
    style = Style(
        "json",
        ensure_ascii=ensure_ascii,
        indent=-1 if indent_len is None else indent_len,
        item_separator=len(item_separator),
        key_separator=len(key_separator),
    )
    return style, indent_len


def _layout(value: object, style: Style, depth: int) -> tuple[int, Iterator[Any]] | None:
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
        # A subclass, set or view prints its type name (a named tuple its field names too).
        overhead += len(cls.__name__) + 3
        fields = getattr(cls, "_fields", None)
        if isinstance(fields, tuple):
            overhead += sum(len(str(field)) + 1 for field in fields)
        return overhead, iter(value)
    if isinstance(value, Namespace):
        attrs = object.__getattribute__(value, "_Namespace__attrs")
        if isinstance(attrs, dict):
            return 14 + 4 * len(attrs), itertools.chain.from_iterable(attrs.items())
    return None


def _json_layout(value: object, style: Style, depth: int) -> tuple[int, Iterator[Any]] | None:
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


def _leaf_size(value: object, style: Style, state: RenderState) -> int:
    """Size of a value that is not a container, nested inside one."""
    if isinstance(value, str):
        if style.kind == "weight":
            return len(value) + 4
        if style.kind == "pprint":
            # pprint wraps a long string word by word, in Python: each word is an item.
            words = count_any(value, WHITESPACE) + 1 if len(value) > _SHORT_TEXT else 0
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


def measure(value: object, state: RenderState, style: Style, *, limit: int | None = None) -> int:
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
    if type(value) is int:
        return _int_len(value)
    if value is None or isinstance(value, (bool, int, float)):
        return _leaf_size(value, TEXT, state)
    if isinstance(value, Undefined):
        return 0
    return measure(value, state, TEXT)


def repr_size(value: object, state: RenderState) -> int:
    """Characters of ``repr(value)`` (an upper bound)."""
    if isinstance(value, str):
        return _leaf_size(value, TEXT, state)
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
            self._weight += max(measure(item, state, WEIGHT, limit=remaining), ITEM_WEIGHT)
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
