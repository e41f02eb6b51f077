"""Go's ``fmt`` for template values: ``%v`` printing, ``Sprint``/``Sprintln``/``Sprintf``.

Python values stand for Go values as the package docstring describes; ``go_type_name`` names
the Go type a value stands for, as Go's messages print it. Everything is written into a
``Sink`` (see ``limits``), so printing a value, a width or a whole ``printf`` is bounded while
it is built. ``sprintf_into`` is a port of Go's ``doPrintf``: flags ``#0+- ``, widths and
precisions (``*`` and ``[n]`` argument indexes included) parsed as Go parses them, where a
number past Go's ``tooLarge`` (10^6) makes the rest of the format ``%!(NOVERB)``.

Hooks a class may define: ``go_print(out)`` writes what Go's ``String()`` returns (a
Stringer); ``go_map_items()`` gives a mapping's entries in the order ``range`` and printing
follow (otherwise sorted by key); ``go_type`` is the Go type name.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from llamahost.chat.gotemplate.limits import CHUNK, Sink
from llamahost.errors import TemplateLimitError


def go_type_name(v: Any) -> str:
    """The Go type name a value stands for, as Go's error messages print it."""
    if v is None:
        return "<nil>"
    simple = {bool: "bool", int: "int", float: "float64", str: "string", bytes: "[]uint8"}
    if type(v) in simple:
        return simple[type(v)]
    if hasattr(type(v), "go_type"):
        return str(type(v).go_type)
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
        return list(m.go_map_items())  # type: ignore[attr-defined]
    return sorted(m.items(), key=lambda kv: _sort_key(kv[0]))


def struct_fields(v: Any) -> list[tuple[str, Any]]:
    if dataclasses.is_dataclass(v):
        return [(f.name, getattr(v, f.name)) for f in dataclasses.fields(v)]
    return [(k, x) for k, x in vars(v).items() if k[:1].isupper()] if hasattr(v, "__dict__") else []


# --- floats -----------------------------------------------------------------------------------


def shortest_digits(f: float) -> tuple[str, int]:
    """Shortest round-trip digits of |f| and the decimal point position: |f| = 0.DIGITS x 10^dp."""
    if f == 0:
        return "0", 1
    _, digits, exponent = Decimal(repr(abs(f))).as_tuple()
    text = "".join(map(str, digits))
    return text.rstrip("0"), len(text) + int(exponent)


def place_f(digits: str, dp: int) -> str:
    if dp <= 0:
        return "0." + "0" * -dp + digits
    return (
        digits + "0" * (dp - len(digits)) if dp >= len(digits) else digits[:dp] + "." + digits[dp:]
    )


def place_e(digits: str, dp: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}e{'-' if dp - 1 < 0 else '+'}{abs(dp - 1):02d}"


def format_float(f: float, verb: str = "v", prec: int | None = None) -> str:
    """Go's fmt for a float64 without sign flags: %v/%g shortest, %e/%f with precision 6."""
    if math.isinf(f) or math.isnan(f):
        return "NaN" if math.isnan(f) else ("+Inf" if f > 0 else "-Inf")
    neg = "-" if math.copysign(1.0, f) < 0 else ""
    if verb in "vgG" and prec is None:
        digits, dp = shortest_digits(f)
        body = place_e(digits, dp) if not -4 <= dp - 1 < 6 else place_f(digits, dp)
    else:
        py = "g" if verb in "vgG" else verb.lower()
        body = format(abs(f), f".{6 if prec is None else prec}{py}")
    return neg + (body.upper() if verb in "EFG" else body)


# --- quoting ----------------------------------------------------------------------------------

_QUOTE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_QUOTE_ESCAPES |= {"\v": "\\v", "\\": "\\\\", '"': '\\"'}


def _quote_body(s: str) -> str:
    out = []
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
    return "".join(out)


def go_quote(s: str) -> str:
    """Go's ``strconv.Quote``."""
    return '"' + _quote_body(s) + '"'


def write_chunked(out: Sink, s: str, transform: Any) -> None:
    """Write ``transform(piece)`` for each ``CHUNK`` of ``s``: bounded even if it grows."""
    for start in range(0, len(s), CHUNK):
        out.write(transform(s[start : start + CHUNK]))


# --- printing: Go's printArg / printValue -----------------------------------------------------


@dataclasses.dataclass(slots=True)
class Spec:
    """One verb's flags, width and precision (Go's ``fmtFlags``, ``wid``, ``prec``)."""

    minus: bool = False
    plus: bool = False
    sharp: bool = False
    space: bool = False
    zero: bool = False
    wid: int | None = None
    prec: int | None = None


_PLAIN = Spec()


def _pad(out: Sink, s: str, spec: Spec, *, zero_ok: bool = True) -> None:
    """Go's ``padString``: pad ``s`` to the width, left unless ``-``, zeros if ``0``."""
    wid = spec.wid
    if not wid or wid <= len(s):
        out.write(s)
        return
    out.reserve(wid)
    fill = ("0" if spec.zero and zero_ok and not spec.minus else " ") * (wid - len(s))
    out.write(s + fill if spec.minus else fill + s)


def _bad_verb(out: Sink, arg: Any, verb: str, spec: Spec) -> None:
    out.write(f"%!{verb}(")
    if arg is None:
        out.write("<nil>")
    else:
        out.write(go_type_name(arg) + "=")
        print_arg(out, arg, "v", spec)
    out.write(")")


def _fmt_integer(out: Sink, n: int, verb: str, spec: Spec) -> None:
    if verb in "cqU":
        if not 0 <= n <= 0x10FFFF:
            n = 0xFFFD
        quoted = _quote_body(chr(n)).replace('\\"', '"').replace("'", "\\'")
        text = {"c": chr(n), "q": f"'{quoted}'", "U": f"U+{n:04X}"}[verb]
        _pad(out, text, spec)
        return
    base = {"b": "b", "o": "o", "O": "o", "x": "x", "X": "X"}.get(verb, "d")
    digits = format(abs(n), base) if base != "d" else str(abs(n))
    sign = "-" if n < 0 else ("+" if spec.plus else (" " if spec.space else ""))
    prefix = {"x": "0x", "X": "0X", "b": "0b", "o": "0"}.get(verb, "") if spec.sharp else ""
    prefix = "0o" if verb == "O" else prefix
    if spec.prec is not None:
        if spec.prec == 0 and n == 0:
            _pad(out, "", Spec(minus=spec.minus, wid=spec.wid))
            return
        digits = digits.zfill(spec.prec)
    elif spec.zero and not spec.minus and spec.wid:
        digits = digits.zfill(spec.wid - len(sign) - len(prefix))
    if prefix == "0" and digits.startswith("0"):
        prefix = ""
    _pad(out, sign + prefix + digits, spec, zero_ok=False)


def _fmt_float(out: Sink, f: float, verb: str, spec: Spec) -> None:
    if spec.prec and verb in "eEfF":
        out.reserve(spec.prec)  # that many digits, at least, before they are built
    body = format_float(abs(f), verb, spec.prec)
    if math.isinf(f) or math.isnan(f):
        text = body if math.isnan(f) else ("-Inf" if f < 0 else "+Inf")
        if math.isnan(f) and (spec.plus or spec.space):
            text = ("+" if spec.plus else " ") + text
        _pad(out, text, spec, zero_ok=False)
        return
    sign = "-" if math.copysign(1.0, f) < 0 else ("+" if spec.plus else (" " if spec.space else ""))
    if spec.zero and not spec.minus and spec.wid and spec.wid > len(sign) + len(body):
        out.reserve(spec.wid)
        out.write(sign + body.zfill(spec.wid - len(sign)))
        return
    _pad(out, sign + body, spec, zero_ok=False)


def _fmt_string(out: Sink, s: str, verb: str, spec: Spec) -> None:
    if spec.prec is not None and verb != "x" and verb != "X":
        s = s[: spec.prec]
    if verb in "vs":
        _pad(out, s, spec)
    elif verb == "q":
        if spec.wid is None and len(s) > CHUNK:
            out.write('"')
            write_chunked(out, s, _quote_body)
            out.write('"')
        else:
            out.reserve(len(s) + 2)
            _pad(out, go_quote(s), spec)
    else:  # x, X
        data = s.encode("utf-8", "surrogatepass")
        if spec.prec is not None:
            data = data[: spec.prec]
        out.reserve(2 * len(data))
        text = data.hex()
        _pad(out, text.upper() if verb == "X" else text, spec)


def _handle_methods(out: Sink, arg: Any, verb: str, spec: Spec) -> bool:
    """Go's ``handleMethods``: a Stringer prints its ``String()`` for verbs v s x X q."""
    if verb not in "vsxXq" or not hasattr(type(arg), "go_print"):
        return False
    if verb in "vs" and spec.wid is None and spec.prec is None:
        arg.go_print(out)
        return True
    sub = Sink(out.budget, out.remaining, out.what)
    arg.go_print(sub)
    _fmt_string(out, sub.getvalue(), verb, spec)
    return True


def print_arg(out: Sink, arg: Any, verb: str, spec: Spec = _PLAIN) -> None:
    """Go's ``printArg``: one operand under one verb."""
    if arg is None:
        if verb in "Tv":
            _pad(out, "<nil>", spec)
        else:
            _bad_verb(out, arg, verb, spec)
        return
    if verb == "T":
        _pad(out, go_type_name(arg), spec)
    elif isinstance(arg, bool):
        if verb in "tv":
            _pad(out, "true" if arg else "false", spec)
        else:
            _bad_verb(out, arg, verb, spec)
    elif isinstance(arg, int):
        if verb in "vdboOxXcqU":
            _fmt_integer(out, arg, "d" if verb == "v" else verb, spec)
        else:
            _bad_verb(out, arg, verb, spec)
    elif isinstance(arg, float):
        if verb in "vgGeEfF":
            _fmt_float(out, arg, verb, spec)
        else:
            _bad_verb(out, arg, verb, spec)
    elif isinstance(arg, str):
        if verb in "vsqxX":
            _fmt_string(out, arg, verb, spec)
        else:
            _bad_verb(out, arg, verb, spec)
    elif not _handle_methods(out, arg, verb, spec):
        print_value(out, arg, verb, spec, 0)


def print_value(out: Sink, v: Any, verb: str, spec: Spec, depth: int) -> None:
    """Go's ``printValue``: maps, slices and structs, element by element."""
    if depth > 0:
        if v is None:
            if verb == "v":
                out.write("<nil>")
            else:
                _bad_verb(out, v, verb, spec)
            return
        if isinstance(v, bool | int | float | str):
            print_arg(out, v, verb, spec)
            return
        if _handle_methods(out, v, verb, spec):
            return
    if isinstance(v, bytes):
        if verb in "sqxX":
            _fmt_string(out, v.decode("utf-8", "replace"), verb, spec)
        else:
            items: Any = list(v)
            _print_items(out, items, verb, spec, depth)
    elif isinstance(v, Mapping):
        out.write("map[")
        for i, (key, item) in enumerate(map_items(v)):
            if i:
                out.write(" ")
            print_value(out, key, verb, spec, depth + 1)
            out.write(":")
            print_value(out, item, verb, spec, depth + 1)
        out.write("]")
    elif isinstance(v, list | tuple):
        _print_items(out, v, verb, spec, depth)
    elif dataclasses.is_dataclass(v) or hasattr(v, "__dict__"):
        out.write("{")
        for i, (_, item) in enumerate(struct_fields(v)):
            if i:
                out.write(" ")
            print_value(out, item, verb, spec, depth + 1)
        out.write("}")
    else:
        _pad(out, str(v), spec)


def _print_items(out: Sink, items: Any, verb: str, spec: Spec, depth: int) -> None:
    out.write("[")
    for i, item in enumerate(items):
        if i:
            out.write(" ")
        else:
            out.tick()
        print_value(out, item, verb, spec, depth + 1)
    out.write("]")


def write_value(out: Sink, v: Any) -> None:
    """Go's ``fmt.Fprint`` of one value: what ``{{ . }}`` prints (strings as they are)."""
    if isinstance(v, str):
        out.write(v)
    else:
        print_arg(out, v, "v")


def short_value(v: Any, limit: int = 200) -> str:
    """``%v`` of a value for an error message: Go prints it whole, this stops at ``limit``."""
    out = Sink(None, limit, "value")
    try:
        write_value(out, v)
    except TemplateLimitError:
        return out.getvalue() + "..."
    return out.getvalue()


# --- Sprint, Sprintln, Sprintf ----------------------------------------------------------------


def sprint_into(out: Sink, args: list[Any]) -> None:
    """Go's ``fmt.Sprint``: spaces between operands when neither side is a string."""
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.write(" ")
        print_arg(out, arg, "v")


def sprintln_into(out: Sink, args: list[Any]) -> None:
    """Go's ``fmt.Sprintln``: operands separated by spaces, then a newline."""
    for i, arg in enumerate(args):
        if i:
            out.write(" ")
        print_arg(out, arg, "v")
    out.write("\n")


_MAX_NUM = 1_000_000  # Go's tooLarge


def _parsenum(s: str, i: int, end: int) -> tuple[int | None, int]:
    """Go's ``parsenum``: the number at ``i`` (None if absent) and where it ends; a number
    past ``tooLarge`` consumes the rest of the format, as Go does."""
    num, found = 0, False
    while i < end and "0" <= s[i] <= "9":
        if num > _MAX_NUM:
            return None, end
        num = num * 10 + ord(s[i]) - 48
        found = True
        i += 1
    return (num if found else None), i


class _Printf:
    """State of one ``doPrintf`` run: the argument cursor and Go's reordering flags."""

    def __init__(self, args: list[Any]) -> None:
        self.args = args
        self.arg_num = 0
        self.reordered = False
        self.good_arg_num = True

    def arg_number(self, fmt: str, i: int) -> tuple[int, bool]:
        """Go's ``argNumber``: an explicit ``[n]`` index at ``i``; returns (new i, found)."""
        if i >= len(fmt) or fmt[i] != "[":
            return i, False
        self.reordered = True
        close = fmt.find("]", i + 1)
        if close < 0:
            self.good_arg_num = False
            return i + 1, False
        index, after = _parsenum(fmt, i + 1, close)
        if index is None or after != close:
            self.good_arg_num = False
            return close + 1, False
        if 1 <= index <= len(self.args):
            self.arg_num = index - 1
            return close + 1, True
        self.good_arg_num = False
        return close + 1, True

    def int_arg(self) -> int | None:
        """Go's ``intFromArg`` for ``*``: the next operand as a width or precision."""
        if self.arg_num >= len(self.args):
            return None
        value = self.args[self.arg_num]
        self.arg_num += 1
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > _MAX_NUM:
            return None
        return value


def sprintf_into(out: Sink, fmt: str, args: list[Any]) -> None:
    """Go's ``fmt.Sprintf`` (``doPrintf``) for the verbs ``print_arg`` knows."""
    state, end, i = _Printf(args), len(fmt), 0
    while i < end:
        state.good_arg_num = True
        start, i = i, fmt.find("%", i)
        if i < 0:
            out.write(fmt[start:])
            break
        out.write(fmt[start:i])
        i += 1
        spec = Spec()
        while i < end and fmt[i] in "#0+- ":
            c = fmt[i]
            if c == "#":
                spec.sharp = True
            elif c == "0":
                spec.zero = not spec.minus
            elif c == "+":
                spec.plus = True
            elif c == "-":
                spec.minus, spec.zero = True, False
            else:
                spec.space = True
            i += 1
        i, after_index = state.arg_number(fmt, i)
        if i < end and fmt[i] == "*":
            i += 1
            wid = state.int_arg()
            if wid is None:
                out.write("%!(BADWIDTH)")
            elif wid < 0:
                spec.wid, spec.minus, spec.zero = -wid, True, False
            else:
                spec.wid = wid
            after_index = False
        else:
            spec.wid, i = _parsenum(fmt, i, end)
            if after_index and spec.wid is not None:
                state.good_arg_num = False
        if i + 1 < end and fmt[i] == ".":
            i += 1
            if after_index:
                state.good_arg_num = False
            i, after_index = state.arg_number(fmt, i)
            if i < end and fmt[i] == "*":
                i += 1
                prec = state.int_arg()
                if prec is None or prec < 0:
                    if prec is None:
                        out.write("%!(BADPREC)")
                    prec = None
                spec.prec = prec
                after_index = False
            else:
                prec, i = _parsenum(fmt, i, end)
                spec.prec = 0 if prec is None else prec
        if not after_index:
            i, after_index = state.arg_number(fmt, i)
        if i >= end:
            out.write("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.write("%")
        elif not state.good_arg_num:
            out.write(f"%!{verb}(BADINDEX)")
        elif state.arg_num >= len(args):
            out.write(f"%!{verb}(MISSING)")
        else:
            print_arg(out, args[state.arg_num], verb, spec)
            state.arg_num += 1
    if not state.reordered and state.arg_num < len(args):
        out.write("%!(EXTRA ")
        for n, arg in enumerate(args[state.arg_num :]):
            if n:
                out.write(", ")
            if arg is None:
                out.write("<nil>")
            else:
                out.write(go_type_name(arg) + "=")
                print_arg(out, arg, "v")
        out.write(")")
