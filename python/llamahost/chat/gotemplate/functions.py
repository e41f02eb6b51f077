"""The template functions: Go's builtins and Ollama's ``json``.

``FUNCS`` maps each name to (implementation, minimum args, maximum args or None); the
implementations take the evaluated arguments and raise FuncError, which the executor reports
as Go's "error calling NAME: ...". ``and``/``or`` have no implementation: they short-circuit,
so the executor evaluates them itself.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from llamahost.chat.gotemplate.gofmt import (
    JSONError,
    format_value,
    go_json,
    go_type_name,
    sprint,
    sprintf,
)


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


def _fn_eq(args: list[Any]) -> bool:
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
            raise FuncError(f"non-comparable type {format_value(first)}: {go_type_name(first)}")
        if first == other:
            return True
    return False


def _fn_lt(args: list[Any]) -> bool:
    a, b = args
    k1, k2 = _basic_kind(a), _basic_kind(b)
    if k1 is None or k2 is None or k1 == "bool" == k2:
        raise FuncError("invalid type for comparison")
    if k1 != k2:
        raise FuncError(
            f"incompatible types for comparison: {go_type_name(a)} and {go_type_name(b)}"
        )
    return bool(a < b)


def _index_arg(index: Any, cap: int) -> int:
    if index is None:
        raise FuncError("cannot index slice/array with nil")
    if isinstance(index, bool) or not isinstance(index, int):
        raise FuncError(f"cannot index slice/array with type {go_type_name(index)}")
    if not 0 <= index <= cap:
        raise FuncError(f"index out of range: {index}")
    return index


def _fn_index(args: list[Any]) -> Any:
    item = args[0]
    if item is None:
        raise FuncError("index of untyped nil")
    for index in args[1:]:
        if item is None:
            raise FuncError("index of nil pointer")
        if isinstance(item, str | bytes | list | tuple):
            seq = item.encode() if isinstance(item, str) else item
            i = _index_arg(index, len(seq))
            if i == len(seq):
                raise FuncError(
                    f"reflect: {'string' if isinstance(item, str) else 'slice'} index out of range"
                )
            item = seq[i]
        elif isinstance(item, Mapping):
            if not isinstance(index, str | int | float):
                raise FuncError(f"value has type {go_type_name(index)}; should be string")
            item = item.get(index)
        else:
            raise FuncError(f"can't index item of type {go_type_name(item)}")
    return item


def _fn_slice(args: list[Any]) -> Any:
    item, indexes = args[0], args[1:]
    if item is None:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str) and len(indexes) == 3:
        raise FuncError("cannot 3-index slice a string")
    if not isinstance(item, str | list | tuple):
        raise FuncError(f"can't slice item of type {go_type_name(item)}")
    seq = item.encode() if isinstance(item, str) else item
    bounds = [0, len(seq), len(seq)]
    for i, index in enumerate(indexes):
        bounds[i] = _index_arg(index, len(seq))
    for lo, hi in ((bounds[0], bounds[1]), (bounds[1], bounds[2])):
        if lo > hi:
            raise FuncError(f"invalid slice index: {lo} > {hi}")
    part = seq[bounds[0] : bounds[1]]
    return part.decode("utf-8", "replace") if isinstance(part, bytes) else part


def _eval_args(args: list[Any]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(["<no value>" if a is None else a for a in args])


_HTML_ESCAPES = {'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\0": "\ufffd"}
_JS_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026"}
_JS_ESCAPES["="] = "\\u003D"


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


def _fn_json(args: list[Any]) -> str:
    try:
        return go_json(args[0])
    except (JSONError, RecursionError):
        return ""  # Ollama's json func ignores json.Marshal's error


def _fn_len(args: list[Any]) -> int:
    item = args[0]
    if item is None:
        raise FuncError("len of nil pointer")
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, bytes | list | tuple | Mapping):
        return len(item)
    raise FuncError(f"len of type {go_type_name(item)}")


# name -> (implementation, minimum args, maximum args or None); and/or short-circuit in Executor.
FUNCS: dict[str, tuple[Callable[[list[Any]], Any] | None, int, int | None]] = {
    "and": (None, 1, None),
    "or": (None, 1, None),
    "not": (lambda a: not is_true(a[0]), 1, 1),
    "eq": (_fn_eq, 1, None),
    "ne": (lambda a: not _fn_eq(a), 2, 2),
    "lt": (_fn_lt, 2, 2),
    "le": (lambda a: _fn_lt(a) or _fn_eq(a), 2, 2),
    "gt": (lambda a: not (_fn_lt(a) or _fn_eq(a)), 2, 2),
    "ge": (lambda a: not _fn_lt(a), 2, 2),
    "len": (_fn_len, 1, 1),
    "index": (_fn_index, 1, None),
    "slice": (_fn_slice, 1, None),
    "print": (sprint, 0, None),
    "printf": (lambda a: sprintf(a[0], a[1:]), 1, None),
    "println": (lambda a: " ".join(format_value(x) for x in a) + "\n", 0, None),
    "html": (
        lambda a: re.sub("[\"'&<>\0]", lambda m: _HTML_ESCAPES[m.group()], _eval_args(a)),
        0,
        None,
    ),
    "js": (lambda a: _js_escape(_eval_args(a)), 0, None),
    "urlquery": (lambda a: urllib.parse.quote_plus(_eval_args(a), safe=""), 0, None),
    "json": (_fn_json, 1, 1),
}
