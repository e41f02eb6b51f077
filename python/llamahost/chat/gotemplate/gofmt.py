"""Go's ``fmt`` and ``encoding/json`` for template values: ``%v`` printing, printf, json.

Python values stand for Go values as the package docstring describes; ``go_type_name`` names
the Go type a value stands for, as Go's messages print it. A class with ``go_string()``
prints through it, one with ``go_json()`` encodes through it, and a mapping class with
``go_map_items()`` is ranged and printed in that order instead of sorted by key.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from llamahost.errors import TemplateError, TemplateSecurityError


def go_type_name(v: Any) -> str:
    """The Go type name a value stands for, as Go's error messages print it."""
    if v is None:
        return "<nil>"
    simple = {bool: "bool", int: "int", float: "float64", str: "string", bytes: "[]uint8"}
    if type(v) in simple:
        return simple[type(v)]
    if hasattr(type(v), "go_type"):
        return type(v).go_type
    if isinstance(v, Mapping):
        return "map[string]interface {}"
    if isinstance(v, list | tuple):
        return "[]interface {}"
    return type(v).__name__


def _sort_key(key: Any) -> tuple[int, Any]:
    if isinstance(key, bool):
        return 1, key
    if isinstance(key, int | float):
        return 2, key
    return (3, key) if isinstance(key, str) else (4, str(key))


def map_items(m: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    """A map's items in Go's order: sorted keys, or the map's own ``go_map_items()`` order."""
    if hasattr(type(m), "go_map_items"):
        return m.go_map_items()
    return sorted(m.items(), key=lambda kv: _sort_key(kv[0]))


def struct_fields(v: Any) -> list[tuple[str, Any]]:
    if dataclasses.is_dataclass(v):
        return [(f.name, getattr(v, f.name)) for f in dataclasses.fields(v)]
    return [(k, x) for k, x in vars(v).items() if k[:1].isupper()] if hasattr(v, "__dict__") else []


def _shortest(f: float) -> tuple[str, int]:
    """Shortest round-trip digits of |f| and the decimal point position: |f| = 0.DIGITS x 10^dp."""
    if f == 0:
        return "0", 1
    _, digits, exponent = Decimal(repr(abs(f))).as_tuple()
    text = "".join(map(str, digits))
    return text.rstrip("0"), len(text) + int(exponent)


def _place_f(digits: str, dp: int) -> str:
    if dp <= 0:
        return "0." + "0" * -dp + digits
    return (
        digits + "0" * (dp - len(digits)) if dp >= len(digits) else digits[:dp] + "." + digits[dp:]
    )


def _place_e(digits: str, dp: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}e{'-' if dp - 1 < 0 else '+'}{abs(dp - 1):02d}"


def _format_float(f: float, verb: str = "v", prec: int | None = None) -> str:
    """Go's fmt for float64 (without sign flags): %v/%g shortest, %e/%f with precision 6."""
    if math.isinf(f) or math.isnan(f):
        return "NaN" if math.isnan(f) else ("+Inf" if f > 0 else "-Inf")
    neg = "-" if math.copysign(1.0, f) < 0 else ""
    if verb in "vgG" and prec is None:
        digits, dp = _shortest(f)
        body = _place_e(digits, dp) if not -4 <= dp - 1 < 6 else _place_f(digits, dp)
    else:
        py = "g" if verb in "vgG" else verb.lower()
        body = format(abs(f), f".{6 if prec is None else prec}{py}")
    return neg + (body.upper() if verb in "EFG" else body)


def format_value(v: Any) -> str:
    """Go's ``fmt`` ``%v`` of a value."""
    if v is None:
        return "<nil>"
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _format_float(v)
    if hasattr(type(v), "go_string"):
        return v.go_string()
    if isinstance(v, bytes):
        return "[" + " ".join(map(str, v)) + "]"
    if isinstance(v, Mapping):
        return (
            "map[" + " ".join(f"{format_value(k)}:{format_value(x)}" for k, x in map_items(v)) + "]"
        )
    if isinstance(v, list | tuple):
        return "[" + " ".join(format_value(x) for x in v) + "]"
    if dataclasses.is_dataclass(v):
        return "{" + " ".join(format_value(x) for _, x in struct_fields(v)) + "}"
    return str(v)


_QUOTE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_QUOTE_ESCAPES |= {"\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(s: str) -> str:
    """Go's ``strconv.Quote``."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        else:
            o = 0xFFFD if 0xD800 <= o <= 0xDFFF else o
            out.append(f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
    return "".join(out) + '"'


def _signed(neg: bool, digits: str, flags: str, width: int | None) -> str:
    sign = "-" if neg else ("+" if "+" in flags else "")
    if width and "0" in flags and "-" not in flags:
        digits = digits.zfill(width - len(sign))
    return sign + digits


def _format_one(arg: Any, verb: str, flags: str, width: int | None, prec: int | None) -> str:
    """One ``printf`` operand under one verb (Go's fmt for v s d q x X c e f g t T)."""
    if hasattr(type(arg), "go_string") and verb in "vsqxX":
        arg = arg.go_string()
    if isinstance(arg, list | tuple) and verb != "T":
        return "[" + " ".join(_format_one(x, verb, flags, width, prec) for x in arg) + "]"
    text = None
    if verb == "T":
        text = go_type_name(arg)
    elif arg is None or isinstance(arg, bool):
        text = format_value(arg) if verb == "v" or (verb == "t" and arg is not None) else None
    elif isinstance(arg, int) and verb in "vdboxX":
        digits = str(abs(arg)) if verb in "vd" else format(abs(arg), verb)
        text = _signed(arg < 0, digits, flags, width)
    elif isinstance(arg, int) and verb in "cqU" and 0 <= arg <= 0x10FFFF:
        quoted = go_quote(chr(arg))[1:-1].replace('\\"', '"').replace("'", "\\'")
        text = {"c": chr(arg), "q": f"'{quoted}'", "U": f"U+{arg:04X}"}[verb]
    elif isinstance(arg, float) and verb in "vgGeEfF":
        body = _format_float(abs(arg), verb, prec)
        neg = math.copysign(1.0, arg) < 0
        text = _signed(neg, body, flags, width if math.isfinite(arg) else None)
    elif isinstance(arg, str) and verb in "vsqxX":
        s = arg if prec is None or verb in "xX" else arg[:prec]
        text = {"q": go_quote(s), "x": s.encode().hex(), "X": s.encode().hex().upper()}.get(verb, s)
    elif not isinstance(arg, int | float | str) and verb in "vs":
        text = format_value(arg)
    if text is None:
        return (
            f"%!{verb}({go_type_name(arg)}={format_value(arg)})"
            if arg is not None
            else f"%!{verb}(<nil>)"
        )
    if width is None or len(text) >= width:
        return text
    return text.ljust(width) if "-" in flags else text.rjust(width)


_FMT_RE = re.compile(r"%([-+ #0]*)(\d+)?(?:\.(\d*))?(.?)", re.S)
_MAX_FMT_WIDTH = 1 << 20


def sprintf(fmt: str, args: list[Any]) -> str:
    """Go's ``fmt.Sprintf`` for flags ``-+0``, width, precision and the verbs of ``_format_one``."""
    out: list[str] = []
    used, pos = 0, 0
    for m in _FMT_RE.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width_text, prec_text, verb = m.groups()
        width = int(width_text) if width_text else None
        prec = None if prec_text is None else int(prec_text or "0")
        if max(width or 0, prec or 0) > _MAX_FMT_WIDTH:
            raise TemplateSecurityError(f"printf width or precision over {_MAX_FMT_WIDTH}")
        if verb == "%":
            out.append("%")
        elif not verb:
            out.append("%!(NOVERB)")
        elif used >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            out.append(_format_one(args[used], verb, flags, width, prec))
            used += 1
    out.append(fmt[pos:])
    if used < len(args):
        extra = (
            f"{go_type_name(a)}={format_value(a)}" if a is not None else "<nil>"
            for a in args[used:]
        )
        out.append(f"%!(EXTRA {', '.join(extra)})")
    return "".join(out)


def sprint(args: list[Any]) -> str:
    """Go's ``fmt.Sprint``: spaces between operands when neither side is a string."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(format_value(arg))
    return "".join(out)


class JSONError(TemplateError):
    """A value ``json.Marshal`` cannot encode; the message is Go's."""


_JSON_ESCAPE_RE = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\ud800-\udfff]')
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b"}
_JSON_ESCAPES |= {"\f": "\\f", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _json_escape_char(m: re.Match[str]) -> str:
    ch = m.group()
    if ch in _JSON_ESCAPES:
        return _JSON_ESCAPES[ch]
    return "\\ufffd" if "\ud800" <= ch <= "\udfff" else f"\\u{ord(ch):04x}"


def json_string(s: str) -> str:
    return '"' + _JSON_ESCAPE_RE.sub(_json_escape_char, s) + '"'


def _json_float(f: float) -> str:
    if not math.isfinite(f):
        raise JSONError(f"json: unsupported value: {_format_float(f)}")
    digits, dp = _shortest(f)
    neg = "-" if math.copysign(1.0, f) < 0 else ""
    if f == 0 or 1e-6 <= abs(f) < 1e21:
        return neg + _place_f(digits, dp)
    return neg + re.sub(r"e-0(\d)$", r"e-\1", _place_e(digits, dp))


def go_json(value: Any) -> str:
    """Encode a value like Go's ``json.Marshal`` (compact, HTML-safe, map keys sorted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, str):
        return json_string(value)
    if hasattr(type(value), "go_json"):
        return value.go_json()
    if isinstance(value, bytes):
        return '"' + base64.b64encode(value).decode() + '"'
    if isinstance(value, Mapping):
        pairs = []
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, str | int):
                raise JSONError(f"json: unsupported map key type {go_type_name(key)}")
            pairs.append((str(key), item))
        pairs.sort(key=lambda kv: kv[0])
        return "{" + ",".join(json_string(k) + ":" + go_json(x) for k, x in pairs) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(x) for x in value) + "]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [(k, x) for k, x in struct_fields(value) if k[:1].isupper()]
        return "{" + ",".join(json_string(k) + ":" + go_json(x) for k, x in fields) + "}"
    raise JSONError(f"json: unsupported type: {go_type_name(value)}")
