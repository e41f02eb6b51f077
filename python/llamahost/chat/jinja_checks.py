"""How each operator, filter, test and built-in method of a Jinja chat template is bounded.

``jinja_sandbox`` calls these checks before the operation runs; they estimate the size
of the result from the sizes of the arguments (see ``jinja_limits`` for how sizes are
measured) and raise :class:`~llamahost.errors.TemplateLimitError` when it would be over
the limit. Operations whose result can be larger than their input each have their own
estimate:

- ``%`` and ``|format`` (printf), ``str.format``: the format's literal text and widths,
  plus the size of each argument a field refers to (a field may refer to one many times);
- filters: a growth estimate each (``center``, ``indent``, ``replace``, ``join``,
  ``wordwrap``, ``urlize``, ``escape`` ...). Filters that make a container of their
  input's items (``list``, ``sort``, ``batch``, ``dictsort`` ...) count each item
  (a string's characters are its items) and lazy ones (``map``, ``select``,
  ``unique`` ...) count what they yield. ``tojson``, ``pprint`` and ``wordcount`` are
  reimplemented with their checks in ``jinja_filters``. Filters that only shrink or
  pick (``length``, ``first``, ``trim`` ...) need no estimate;
- methods of ``str``, ``bytes``, ``int``, ``list`` and ``dict``: likewise, by name;
- anything else: its arguments are weighed before the call and its result after.
"""

from __future__ import annotations

import itertools
import math
import re
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from jinja2 import Environment
from jinja2.filters import make_attrgetter
from markupsafe import Markup

from llamahost.chat.jinja_limits import (
    ITEM_WEIGHT,
    LINE_BREAKS,
    WHITESPACE,
    RenderState,
    case_size,
    count_any,
    escaped_size,
    item_count,
    materialize,
    pieces_bound,
    repr_size,
    text_size,
)
from llamahost.errors import TemplateLimitError

__all__ = [
    "FilterPolicy",
    "check_arguments",
    "filter_policy",
    "method_label",
    "method_policy",
    "printf_size",
    "str_format_size",
    "test_policy",
]

#: A call's positional and keyword arguments.
Args = tuple[Any, ...]
Kwargs = dict[str, Any]

#: How many ``|sum`` list copies (items copied, in total) count as one character of work.
_SUM_COPIES_PER_CHAR: Final = 16

#: Characters ``textwrap`` breaks chunks at (its whitespace, and hyphens).
_WRAP_BREAKS: Final = "\t\n\x0b\x0c\r -"
#: Characters the ``title`` filter starts a new word after.
_TITLE_BREAKS: Final = WHITESPACE + "-({[<"

_PRINTF_FIELD: Final = re.compile(
    r"%(?:%|(?:\(([^)]*)\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%]?))"
)

_MISSING: Final = object()


# --------------------------------------------------------------------------- formatting


def _names(text: str) -> tuple[str, ...]:
    """The space-separated names in ``text``."""
    return tuple(text.split())


def _arg(args: Args, kwargs: Mapping[str, Any], index: int, name: str, default: Any = None) -> Any:
    """Argument ``index`` if given by position, else ``name`` if given by name, else ``default``."""
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


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


def str_format_size(state: RenderState, fmt: str, args: Args, kwargs: Mapping[str, Any]) -> int:
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


def _replace_size(text: Any, old: Any, new: Any, count: object, escape: int = 1) -> int:
    """Length of ``text.replace(old, new, count)`` (strings or bytes), over-estimated,
    without building it; ``escape`` is how many characters each inserted one may become."""
    occurrences = len(text) + 1 if not old else text.count(old)
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * len(new) * escape


# --------------------------------------------------------------------------- filter policies

#: ``policy(state, environment, what, args, kwargs)`` checks a call before it runs and may
#: return replacement ``(args, kwargs)`` (e.g. an iterator already consumed into a list).
Policy = Callable[[RenderState, Environment, str, Args, Kwargs], tuple[Args, Kwargs] | None]


@dataclass(frozen=True)
class FilterPolicy:
    """How a filter (or test) is checked: ``pre`` before the call, then its result:
    ``"iter"`` wraps a lazy result in a GuardedIterator, ``"check"`` weighs the result,
    ``"keep"`` records it in the memory ledger, ``"none"`` returns it as it is."""

    pre: Policy | None
    post: Literal["none", "keep", "check", "iter"]


def _pre_iterate(
    state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs
) -> None:
    """A filter that makes a container of its input's items (a string gives one per char)."""
    count = item_count(args[0]) if args else None
    if count is not None:
        state.check_weight(count * ITEM_WEIGHT, what)


def _pre_reverse(
    state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs
) -> None:
    """``reverse`` reverses a string as a string, anything else into a list."""
    if args and not isinstance(args[0], str):
        _pre_iterate(state, env, what, args, kwargs)


def _pre_pairs(state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs) -> None:
    """A filter that makes a tuple (or group) per item of its input."""
    count = item_count(args[0]) if args else None
    if count is not None:
        state.check_weight(2 * count * ITEM_WEIGHT, what)


def _pre_text(state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs) -> None:
    """A filter that builds ``str(value)`` and returns no more than that."""
    if args:
        state.text_len(args[0], what)


def _pre_case(state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs) -> None:
    """``upper``, ``lower``, ``capitalize``: a character may become up to three."""
    if not args:
        return
    value = args[0]
    size = case_size(value, state) if isinstance(value, str) else 3 * state.text_len(value, what)
    state.check_chars(size, what)


def _pre_title(state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs) -> None:
    """``title`` splits its input into words first."""
    if not args:
        return
    _pre_case(state, env, what, args, kwargs)
    text = state.to_text(args[0], what)
    state.check_weight(2 * pieces_bound(text, _TITLE_BREAKS, state, 2) * ITEM_WEIGHT, what)


def _pre_round(state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs) -> None:
    """``round`` computes ``10 ** precision`` (a huge integer for a huge precision)."""
    precision = _arg(args, kwargs, 1, "precision", 0)
    if isinstance(precision, int):
        state.check_bits(int(abs(precision) * math.log2(10)) + 1, what)


def _pre_center(
    state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs
) -> None:
    size = state.text_len(args[0], what) if args else 0
    width = _arg(args, kwargs, 1, "width", 80)
    if isinstance(width, int):
        state.check_chars(max(size, width), what)


def _pre_escape(
    state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs
) -> None:
    """``escape`` returns what is already markup as it is and escapes the rest."""
    if args and not hasattr(args[0], "__html__"):
        _pre_forceescape(state, env, what, args, kwargs)


def _pre_forceescape(
    state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs
) -> None:
    """``forceescape`` escapes ``str(value)``: a character becomes up to five."""
    if not args:
        return
    if isinstance(args[0], str):
        state.check_chars(escaped_size(args[0]), what)
    else:
        state.check_chars(5 * state.text_len(args[0], what), what)


def _pre_format(
    state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs
) -> None:
    if not args:
        return
    fmt = state.to_text(args[0], what)
    printf_size(state, fmt, kwargs or tuple(args[1:]), what)


def _pre_indent(
    state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs
) -> None:
    if not args or not isinstance(args[0], str):
        return
    text = args[0]
    width = _arg(args, kwargs, 1, "width", 4)
    pad = len(width) if isinstance(width, str) else max(width, 0) if isinstance(width, int) else 0
    lines = count_any(text, LINE_BREAKS) + 2
    state.check_weight(len(text) + lines * ITEM_WEIGHT, what)
    state.check_chars(len(text) + 1 + lines * pad, what)


def _pre_join(
    state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs
) -> tuple[Args, Kwargs] | None:
    if not args:
        return None
    items = materialize(state, args[0], what)
    separator = state.text_len(_arg(args, kwargs, 1, "d", ""), what)
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
    state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs
) -> tuple[Args, Kwargs] | None:
    if not args:
        return None
    items = materialize(state, args[0], what)
    attribute = _arg(args, kwargs, 1, "attribute")
    start = _arg(args, kwargs, 2, "start", 0)
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


def _pre_batch(state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs) -> None:
    _pre_iterate(state, env, what, args, kwargs)
    size = _arg(args, kwargs, 1, "linecount")
    fill = _arg(args, kwargs, 2, "fill_with")
    if isinstance(size, int) and fill is not None:
        state.check_weight(max(size, 0) * ITEM_WEIGHT, what)


def _pre_slice(state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs) -> None:
    _pre_iterate(state, env, what, args, kwargs)
    slices = _arg(args, kwargs, 1, "slices")
    if isinstance(slices, int):
        state.check_weight(2 * max(slices, 0) * ITEM_WEIGHT, what)


def _pre_replace(
    state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs
) -> None:
    old, new = _arg(args, kwargs, 1, "old", _MISSING), _arg(args, kwargs, 2, "new", _MISSING)
    if not args or old is _MISSING or new is _MISSING:
        return  # the filter itself reports the missing argument
    text = state.to_text(args[0], what)
    old, new = state.to_text(old, what), state.to_text(new, what)
    state.check_chars(_replace_size(text, old, new, _arg(args, kwargs, 3, "count")), what)


def _pre_striptags(
    state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs
) -> None:
    if args:
        # Words are split apart, and each character reference is unescaped in Python.
        text = state.to_text(args[0], what)
        pieces = pieces_bound(text, WHITESPACE, state) + text.count("&")
        state.check_weight(pieces * ITEM_WEIGHT, what)


def _pre_urlencode(
    state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs
) -> None:
    if args:
        # Each UTF-8 byte is quoted as up to three characters (%XX); a character takes
        # one byte if ASCII, up to four otherwise.
        value = args[0]
        per_char = 3 if isinstance(value, str) and value.isascii() else 12
        state.check_chars(per_char * state.text_len(value, what), what)


def _pre_urlize(
    state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs
) -> None:
    if not args:
        return
    text = state.to_text(args[0], what)
    words = pieces_bound(text, WHITESPACE, state, 2)
    state.check_weight(2 * words * ITEM_WEIGHT, what)
    extra = sum(
        state.text_len(_arg(args, kwargs, index, name) or "", what)
        for index, name in ((3, "target"), (4, "rel"))
    )
    state.check_chars(2 * escaped_size(text) + words * (extra + 64), what)


def _pre_wordwrap(
    state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs
) -> None:
    if not args or not isinstance(args[0], str):
        return
    text = args[0]
    width = _arg(args, kwargs, 1, "width", 79)
    if not isinstance(width, int) or width <= 0:
        return
    wrapstring = _arg(args, kwargs, 3, "wrapstring")
    joint = len(wrapstring) if isinstance(wrapstring, str) else len(env.newline_sequence)
    chunks = 2 * pieces_bound(text, _WRAP_BREAKS, state, 4)
    lines = len(text) // width + chunks + count_any(text, LINE_BREAKS) + 1
    state.check_weight((chunks + lines) * ITEM_WEIGHT, what)
    state.check_chars(len(text) + lines * joint, what)


def _pre_xmlattr(
    state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs
) -> None:
    if args and isinstance(args[0], Mapping):
        count = len(args[0])
        state.check_weight(count * ITEM_WEIGHT, what)
        state.check_chars(5 * state.text_len(args[0], what) + 4 * count + 1, what)


def check_arguments(state: RenderState, what: str, args: Args, kwargs: Kwargs) -> None:
    """An unlisted filter or callable, whose result is ``what``: its inputs together must
    be within the limit."""
    label = f"the arguments of {what.removeprefix('the result of ')}"
    total = 0
    for value in itertools.chain(args, kwargs.values()):
        total += state.weight(value)
        state.check_weight(total, label)


def _pre_generic(
    state: RenderState, env: Environment, what: str, args: Args, kwargs: Kwargs
) -> None:
    check_arguments(state, what, args, kwargs)


_NONE: Final = FilterPolicy(None, "none")
_GENERIC: Final = FilterPolicy(_pre_generic, "check")

_FILTER_POLICIES: Final[dict[str, FilterPolicy]] = {
    # Filters that return a number, a bool, part of their input, or one of their arguments;
    # and those jinja_filters implements with their own checks (pprint, tojson, wordcount).
    **dict.fromkeys(
        _names(
            "abs attr count d default filesizeformat first float last length random truncate "
            "pprint tojson wordcount"
        ),
        _NONE,
    ),
    "int": FilterPolicy(None, "check"),  # int('f' * 10**6, 16) is a 4-million-bit integer
    "round": FilterPolicy(_pre_round, "none"),
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
    _names(
        "!= < <= == > >= boolean callable defined divisibleby eq equalto escaped even false "
        "filter float ge greaterthan gt in integer iterable le lessthan lt mapping ne none "
        "number odd sameas sequence string test true undefined"
    )
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
MethodCheck = Callable[[RenderState, Any, str, Args, Kwargs], tuple[Args, Kwargs] | None]


def _method_what(owner: object, name: str) -> str:
    return f"the result of {type(owner).__name__}.{name}()"


def _check_padded(state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs) -> None:
    width = _arg(args, kwargs, 0, "width")
    if isinstance(width, int):
        state.check_chars(max(len(owner), width), what)


def _check_case(state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs) -> None:
    if isinstance(owner, str):
        state.check_chars(case_size(owner, state), what)


def _check_expandtabs(
    state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs
) -> None:
    size = _arg(args, kwargs, 0, "tabsize", 8)
    if isinstance(size, int):
        tab = b"\t" if isinstance(owner, bytes) else "\t"
        state.check_chars(len(owner) + owner.count(tab) * max(size, 0), what)


def _check_replace(state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs) -> None:
    old, new = _arg(args, kwargs, 0, "old"), _arg(args, kwargs, 1, "new")
    if type(old) is not type(new) or not isinstance(old, (str, bytes)):
        return
    count = _arg(args, kwargs, 2, "count")
    escape = 5 if isinstance(owner, Markup) else 1
    state.check_chars(_replace_size(owner, old, new, count, escape), what)


def _check_join(
    state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs
) -> tuple[Args, Kwargs] | None:
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


def _check_split(state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs) -> None:
    separator = _arg(args, kwargs, 0, "sep")
    maxsplit = _arg(args, kwargs, 1, "maxsplit", -1)
    if isinstance(owner, bytes):
        pieces = len(owner) + 1
    elif separator is None:
        pieces = pieces_bound(owner, WHITESPACE, state)
    elif isinstance(separator, str) and separator:
        pieces = owner.count(separator) + 1
    else:
        return
    if isinstance(maxsplit, int) and maxsplit >= 0:
        pieces = min(pieces, maxsplit + 1)
    state.check_weight(len(owner) + pieces * ITEM_WEIGHT, what)


def _check_splitlines(
    state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs
) -> None:
    pieces = len(owner) + 1 if isinstance(owner, bytes) else count_any(owner, LINE_BREAKS) + 1
    state.check_weight(len(owner) + pieces * ITEM_WEIGHT, what)


def _check_partition(state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs) -> None:
    state.check_weight(len(owner) + 3 * ITEM_WEIGHT, what)


def _check_encode(state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs) -> None:
    # Some codecs (unicode_escape) write up to ten bytes a character.
    state.check_chars(10 * len(owner) + 16, what)


def _check_decode(state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs) -> None:
    state.check_chars(4 * len(owner) + 16, what)


def _check_hex(state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs) -> None:
    separator = _arg(args, kwargs, 0, "sep")
    joint = len(separator) if isinstance(separator, (str, bytes)) else 0
    state.check_chars(len(owner) * (2 + joint), what)


def _check_translate(state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs) -> None:
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


def _check_copy(state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs) -> None:
    state.check_weight(len(owner) * ITEM_WEIGHT, what)


def _check_fromkeys(
    state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs
) -> tuple[Args, Kwargs] | None:
    if not args:
        return None
    keys = materialize(state, args[0], what)
    value = args[1] if len(args) > 1 else None
    state.check_weight(len(keys) * (ITEM_WEIGHT + max(state.weight(value), ITEM_WEIGHT)), what)
    return (keys, *args[1:]), kwargs


def _check_to_bytes(state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs) -> None:
    length = _arg(args, kwargs, 0, "length", 1)
    if isinstance(length, int):
        state.check_chars(4 * length + 3, what)


def _check_from_bytes(
    state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs
) -> None:
    data = _arg(args, kwargs, 0, "bytes")
    count = item_count(data)
    if count is not None:
        state.check_bits(8 * count, what)


def _no_check(state: RenderState, owner: Any, what: str, args: Args, kwargs: Kwargs) -> None:
    """A method whose result is no larger than its owner (or a number or a bool)."""


_TEXT_METHODS: Final[dict[str, MethodCheck]] = {
    **dict.fromkeys(
        _names(
            "count endswith find index isalnum isalpha isascii isdecimal isdigit isidentifier "
            "islower isnumeric isprintable isspace istitle isupper lstrip removeprefix "
            "removesuffix rfind rindex rstrip startswith strip unescape striptags"
        ),
        _no_check,
    ),
    **dict.fromkeys(_names("capitalize casefold lower upper swapcase title"), _check_case),
    **dict.fromkeys(_names("center ljust rjust zfill"), _check_padded),
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
    **dict.fromkeys(_names("count index get items keys values"), _no_check),
    "copy": _check_copy,
    "fromkeys": _check_fromkeys,
}
_INT_METHODS: Final[dict[str, MethodCheck]] = {
    **dict.fromkeys(
        _names("as_integer_ratio bit_count bit_length conjugate is_integer hex"), _no_check
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
