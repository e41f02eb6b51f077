"""The template functions: Go's builtins and Ollama's ``json``, ``currentDate``,
``yesterdayDate`` and ``toTypeScriptType``.

``FUNCS`` maps each name to a ``Func``: the implementation, which takes the render's
``Budget`` and the evaluated arguments, and the argument counts; implementations raise
FuncError, which the executor reports as Go's "error calling NAME: ...". ``and``/``or``
have no implementation: they short-circuit, so the executor evaluates them itself.
Every value a function builds goes through a bounded ``Sink`` or is charged to the budget.

Ollama's functions (template/template.go, matched at the version described in
``ollama_types``)::

    "json":             func(v any) string { b, _ := json.Marshal(v); return string(b) }
    "currentDate":      func(args ...string) string { return time.Now().Format("2006-01-02") }
    "yesterdayDate":    func(args ...string) string {
                            return time.Now().AddDate(0, 0, -1).Format("2006-01-02") }
    "toTypeScriptType": func(v any) string  // api.ToolProperty.ToTypeScriptType(), else "any"

The dates are the local date (Go's ``time.Now()`` is local time); the arguments are ignored
but must be strings.
"""

from __future__ import annotations

import datetime
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from llamahost.chat.gotemplate.gofmt import (
    go_type_name,
    short_value,
    sprint_into,
    sprintf_into,
    sprintln_into,
    write_chunked,
)
from llamahost.chat.gotemplate.gojson import JSONError, write_json
from llamahost.chat.gotemplate.limits import Budget
from llamahost.chat.gotemplate.ollama_types import ToolProperty


def is_true(v: Any) -> bool:
    """Go's truth: false, 0, nil and empty strings, slices and maps are false; structs are true."""
    if v is None or isinstance(v, bool):
        return bool(v)
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str | bytes | list | tuple | Mapping):
        return len(v) > 0
    return True


class FuncError(Exception):
    """A template function's error; the executor prefixes "error calling NAME: "."""


_KINDS = {bool: "bool", int: "int", float: "float", str: "string"}


def _basic_kind(v: Any) -> str | None:
    """Go's basic kind of a value (bool, int, float, string) or None for anything else."""
    return next((kind for t, kind in _KINDS.items() if isinstance(v, t)), None)


def _fn_eq(_: Budget, args: list[Any]) -> bool:
    first = args[0]
    if len(args) < 2:
        raise FuncError("missing argument for comparison")
    for other in args[1:]:
        if first is None or other is None:
            if first is other:
                return True
            continue
        kind = _basic_kind(first)
        if kind != _basic_kind(other):
            types = f"{go_type_name(first)} and {go_type_name(other)}"
            raise FuncError(f"incompatible types for comparison: {types}")
        if kind is None and isinstance(first, list | Mapping):
            raise FuncError(f"non-comparable type {short_value(first)}: {go_type_name(first)}")
        if first == other:
            return True
    return False


def _fn_lt(_: Budget, args: list[Any]) -> bool:
    a, b = args
    k1, k2 = _basic_kind(a), _basic_kind(b)
    if k1 is None or k2 is None or k1 == "bool" == k2:
        raise FuncError("invalid type for comparison")
    if k1 != k2:
        raise FuncError(
            f"incompatible types for comparison: {go_type_name(a)} and {go_type_name(b)}"
        )
    return bool(a < b)


def _utf8(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def _index_arg(index: Any, cap: int) -> int:
    if index is None:
        raise FuncError("cannot index slice/array with nil")
    if isinstance(index, bool) or not isinstance(index, int):
        raise FuncError(f"cannot index slice/array with type {go_type_name(index)}")
    if not 0 <= index <= cap:
        raise FuncError(f"index out of range: {index}")
    return index


def _fn_index(_: Budget, args: list[Any]) -> Any:
    item = args[0]
    if item is None:
        raise FuncError("index of untyped nil")
    for index in args[1:]:
        if item is None:
            raise FuncError("index of nil pointer")
        if isinstance(item, str | bytes | list | tuple):
            seq: Any = _utf8(item) if isinstance(item, str) and not item.isascii() else item
            i = _index_arg(index, len(seq))
            if i == len(seq):
                raise FuncError(
                    f"reflect: {'string' if isinstance(item, str) else 'slice'} index out of range"
                )
            item = ord(seq[i]) if isinstance(seq, str) else seq[i]
        elif isinstance(item, Mapping):
            if not isinstance(index, str | int | float):
                raise FuncError(f"value has type {go_type_name(index)}; should be string")
            item = item.get(index)
        else:
            raise FuncError(f"can't index item of type {go_type_name(item)}")
    return item


def _fn_slice(budget: Budget, args: list[Any]) -> Any:
    item, indexes = args[0], args[1:]
    if item is None:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str) and len(indexes) == 3:
        raise FuncError("cannot 3-index slice a string")
    if not isinstance(item, str | list | tuple):
        raise FuncError(f"can't slice item of type {go_type_name(item)}")
    ascii_str = isinstance(item, str) and item.isascii()
    seq: Any = item if not isinstance(item, str) or ascii_str else _utf8(item)
    bounds = [0, len(seq), len(seq)]
    for i, index in enumerate(indexes):
        bounds[i] = _index_arg(index, len(seq))
    for lo, hi in ((bounds[0], bounds[1]), (bounds[1], bounds[2])):
        if lo > hi:
            raise FuncError(f"invalid slice index: {lo} > {hi}")
    if isinstance(item, str):  # a new string; a list slice only refers to data's items
        budget.charge(bounds[1] - bounds[0])
    part = seq[bounds[0] : bounds[1]]
    return part.decode("utf-8", "replace") if isinstance(part, bytes) else part


def _fn_len(_: Budget, args: list[Any]) -> int:
    item = args[0]
    if item is None:
        raise FuncError("len of nil pointer")
    if isinstance(item, str):
        return len(item) if item.isascii() else len(_utf8(item))
    if isinstance(item, bytes | list | tuple | Mapping):
        return len(item)
    raise FuncError(f"len of type {go_type_name(item)}")


def _fn_print(budget: Budget, args: list[Any]) -> str:
    out = budget.value_sink("`print` result")
    sprint_into(out, args)
    return out.getvalue()


def _fn_printf(budget: Budget, args: list[Any]) -> str:
    out = budget.value_sink("`printf` result")
    sprintf_into(out, args[0], args[1:])
    return out.getvalue()


def _fn_println(budget: Budget, args: list[Any]) -> str:
    out = budget.value_sink("`println` result")
    sprintln_into(out, args)
    return out.getvalue()


def _eval_args(budget: Budget, name: str, args: list[Any]) -> str:
    """text/template's ``evalArgs``: one string as it is, else ``Sprint`` (nil as <no value>)."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    out = budget.value_sink(f"`{name}` argument")
    sprint_into(out, ["<no value>" if a is None else a for a in args])
    return out.getvalue()


_HTML_ESCAPES = {'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\0": "\ufffd"}
_HTML_RE = re.compile("[\"'&<>\0]")
_JS_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026"}
_JS_ESCAPES["="] = "\\u003D"


def _html_escape(s: str) -> str:
    return _HTML_RE.sub(lambda m: _HTML_ESCAPES[m.group()], s)


def _js_escape(s: str) -> str:
    out = []
    for ch in s:
        if ch in _JS_ESCAPES:
            out.append(_JS_ESCAPES[ch])
        elif ord(ch) < 0x20 or (ord(ch) >= 0x80 and not ch.isprintable()):
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _url_escape(s: str) -> str:
    return urllib.parse.quote_plus(_utf8(s), safe="")


def _escaper(name: str, transform: Callable[[str], str]) -> Callable[[Budget, list[Any]], str]:
    def escape(budget: Budget, args: list[Any]) -> str:
        text = _eval_args(budget, name, args)
        out = budget.value_sink(f"`{name}` result")
        write_chunked(out, text, transform)
        return out.getvalue()

    return escape


def _fn_json(budget: Budget, args: list[Any]) -> str:
    out = budget.value_sink("`json` result")
    try:
        write_json(out, args[0])
    except (JSONError, RecursionError):
        return ""  # Ollama's json func ignores json.Marshal's error
    return out.getvalue()


def _date(budget: Budget, days_back: int) -> str:
    day = budget.today() - datetime.timedelta(days=days_back)
    return day.strftime("%Y-%m-%d")  # Go's layout "2006-01-02"


def _fn_to_typescript_type(_: Budget, args: list[Any]) -> str:
    prop = args[0]
    return prop.to_typescript_type() if isinstance(prop, ToolProperty) else "any"


@dataclass(frozen=True)
class Func:
    """A template function: implementation (None for and/or), argument counts, and the
    positions of parameters Go declares as ``string`` (``all_strings``: every argument)."""

    impl: Callable[[Budget, list[Any]], Any] | None
    min_args: int
    max_args: int | None
    string_params: tuple[int, ...] = ()
    all_strings: bool = False


def _not(_: Budget, a: list[Any]) -> bool:
    return not is_true(a[0])


def _ne(b: Budget, a: list[Any]) -> bool:
    return not _fn_eq(b, a)


def _le(b: Budget, a: list[Any]) -> bool:
    return _fn_lt(b, a) or _fn_eq(b, a)


def _gt(b: Budget, a: list[Any]) -> bool:
    return not (_fn_lt(b, a) or _fn_eq(b, a))


def _ge(b: Budget, a: list[Any]) -> bool:
    return not _fn_lt(b, a)


FUNCS: dict[str, Func] = {
    "and": Func(None, 1, None),
    "or": Func(None, 1, None),
    "not": Func(_not, 1, 1),
    "eq": Func(_fn_eq, 1, None),
    "ne": Func(_ne, 2, 2),
    "lt": Func(_fn_lt, 2, 2),
    "le": Func(_le, 2, 2),
    "gt": Func(_gt, 2, 2),
    "ge": Func(_ge, 2, 2),
    "len": Func(_fn_len, 1, 1),
    "index": Func(_fn_index, 1, None),
    "slice": Func(_fn_slice, 1, None),
    "print": Func(_fn_print, 0, None),
    "printf": Func(_fn_printf, 1, None, (0,)),
    "println": Func(_fn_println, 0, None),
    "html": Func(_escaper("html", _html_escape), 0, None),
    "js": Func(_escaper("js", _js_escape), 0, None),
    "urlquery": Func(_escaper("urlquery", _url_escape), 0, None),
    "json": Func(_fn_json, 1, 1),
    "currentDate": Func(lambda b, _: _date(b, 0), 0, None, all_strings=True),
    "yesterdayDate": Func(lambda b, _: _date(b, 1), 0, None, all_strings=True),
    "toTypeScriptType": Func(_fn_to_typescript_type, 1, 1),
}
