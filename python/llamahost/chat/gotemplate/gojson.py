"""Go's ``encoding/json`` ``Marshal`` for template values: what Ollama's ``json`` func returns.

Compact output, ``<>&`` and U+2028/U+2029 escaped, map keys sorted, floats formatted as Go
formats them, written into a ``Sink`` so a hostile value cannot grow without bound. A class
may define ``go_json_value()`` to be encoded as another value (Go's ``MarshalJSON``); a
``JSONFields`` encodes as an object with its keys in the given order (a Go struct), and a
mapping with ``go_map_items()`` keeps that order (an ordered map).
"""

from __future__ import annotations

import base64
import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from llamahost.chat.gotemplate.gofmt import (
    format_float,
    go_type_name,
    place_e,
    place_f,
    shortest_digits,
    struct_fields,
    write_chunked,
)
from llamahost.chat.gotemplate.limits import CHUNK, Sink, unbounded_sink
from llamahost.errors import TemplateError


class JSONError(TemplateError):
    """A value ``json.Marshal`` cannot encode; the message is Go's."""


class JSONFields(list[tuple[str, Any]]):
    """A JSON object with its keys in this order: how a Go struct encodes."""


_JSON_ESCAPE_RE = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\ud800-\udfff]')
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b"}
_JSON_ESCAPES |= {"\f": "\\f", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _json_escape_char(m: re.Match[str]) -> str:
    ch = m.group()
    if ch in _JSON_ESCAPES:
        return _JSON_ESCAPES[ch]
    return "\\ufffd" if "\ud800" <= ch <= "\udfff" else f"\\u{ord(ch):04x}"


def _escape(s: str) -> str:
    return _JSON_ESCAPE_RE.sub(_json_escape_char, s)


def json_string(s: str) -> str:
    return '"' + _escape(s) + '"'


def _json_float(f: float) -> str:
    if not math.isfinite(f):
        raise JSONError(f"json: unsupported value: {format_float(f)}")
    digits, dp = shortest_digits(f)
    neg = "-" if math.copysign(1.0, f) < 0 else ""
    if f == 0 or 1e-6 <= abs(f) < 1e21:
        return neg + place_f(digits, dp)
    return neg + re.sub(r"e-0(\d)$", r"e-\1", place_e(digits, dp))


def _write_object(out: Sink, pairs: Iterable[tuple[str, Any]]) -> None:
    out.write("{")
    for i, (key, item) in enumerate(pairs):
        out.write(("," if i else "") + json_string(key) + ":")
        write_json(out, item)
    out.write("}")


def write_json(out: Sink, value: Any) -> None:
    """Encode ``value`` into ``out`` like Go's ``json.Marshal``."""
    if value is None:
        out.write("null")
    elif isinstance(value, bool):
        out.write("true" if value else "false")
    elif isinstance(value, int):
        out.write(str(value))
    elif isinstance(value, float):
        out.write(_json_float(value))
    elif isinstance(value, str):
        if len(value) <= CHUNK:
            out.write(json_string(value))
        else:
            out.write('"')
            write_chunked(out, value, _escape)
            out.write('"')
    elif hasattr(type(value), "go_json_value"):
        write_json(out, value.go_json_value())
    elif isinstance(value, JSONFields):
        _write_object(out, value)
    elif isinstance(value, bytes):
        out.reserve(len(value) * 4 // 3 + 4)
        out.write('"' + base64.b64encode(value).decode() + '"')
    elif isinstance(value, Mapping):
        pairs = []
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, str | int):
                raise JSONError(f"json: unsupported map key type {go_type_name(key)}")
            pairs.append((str(key), item))
        if not hasattr(type(value), "go_map_items"):
            pairs.sort(key=lambda kv: kv[0])
        _write_object(out, pairs)
    elif isinstance(value, list | tuple):
        out.write("[")
        for i, item in enumerate(value):
            if i:
                out.write(",")
            else:
                out.tick()
            write_json(out, item)
        out.write("]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        _write_object(out, [(k, x) for k, x in struct_fields(value) if k[:1].isupper()])
    else:
        raise JSONError(f"json: unsupported type: {go_type_name(value)}")


def go_json(value: Any) -> str:
    """Encode a value like Go's ``json.Marshal`` (compact, HTML-safe, map keys sorted)."""
    out = unbounded_sink()
    write_json(out, value)
    return out.getvalue()
