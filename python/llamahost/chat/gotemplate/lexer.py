"""Lexing of Go templates: source text to tokens, and the values of Go literals.

``lex`` splits text from ``{{ }}`` actions, applies ``{{-``/``-}}`` trimming and drops
``{{/* */}}`` comments; ``unquote`` and ``number_value`` decode string, raw-string, char and
number literals as Go's ``strconv`` and ``idealConstant`` do. Errors are ParseError with the
source offset.
"""

from __future__ import annotations

from dataclasses import dataclass

from llamahost.chat.gotemplate.gofmt import go_quote

_SPACE = " \t\r\n"
_KEYWORDS = {"block", "break", "continue", "define", "else", "end", "if", "range", "template"}
_KEYWORDS.add("with")


class ParseError(Exception):
    """A syntax error at source offset ``pos``; GoTemplate adds the line and column."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.pos = pos


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # text left right space ident kw field var dot string raw charconst number ...
    value: str
    pos: int


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or ch.isdecimal()


def _rune(ch: str) -> str:
    return f"U+{ord(ch):04X} '{ch}'" if ch.isprintable() else f"U+{ord(ch):04X}"


def _right_delim(src: str, p: int) -> tuple[bool, bool]:
    """Whether ``src[p:]`` starts a right delimiter, and whether it carries a trim marker."""
    if p + 1 < len(src) and src[p] in _SPACE and src[p + 1] == "-" and src.startswith("}}", p + 2):
        return True, True
    return src.startswith("}}", p), False


def _skip_space(src: str, p: int) -> int:
    while p < len(src) and src[p] in _SPACE:
        p += 1
    return p


def lex(src: str) -> list[Token]:
    """Split a template into tokens, applying ``{{-``/``-}}`` trimming and dropping comments."""
    toks: list[Token] = []
    pos = 0
    while True:
        start = src.find("{{", pos)
        if start < 0:
            if pos < len(src):
                toks.append(Token("text", src[pos:], pos))
            toks.append(Token("eof", "", len(src)))
            return toks
        trim = src.startswith("-", start + 2) and start + 3 < len(src) and src[start + 3] in _SPACE
        text = src[pos:start].rstrip(_SPACE) if trim else src[pos:start]
        if text:
            toks.append(Token("text", text, pos))
        inner = start + (4 if trim else 2)
        if src.startswith("/*", inner):
            close = src.find("*/", inner + 2)
            if close < 0:
                raise ParseError("unclosed comment", start)
            is_delim, trim_right = _right_delim(src, close + 2)
            if not is_delim:
                raise ParseError("comment ends before closing delimiter", close)
            pos = close + (6 if trim_right else 4)
            pos = _skip_space(src, pos) if trim_right else pos
            continue
        toks.append(Token("left", "{{", start))
        pos = _lex_action(src, inner, toks)


def _lex_action(src: str, p: int, toks: list[Token]) -> int:
    """Tokenize the inside of one action; returns the position after its right delimiter."""
    depth = 0
    n = len(src)
    while True:
        is_delim, trim = _right_delim(src, p)
        if is_delim:
            if depth:
                raise ParseError("unclosed left paren", p)
            p += 2 if trim else 0
            toks.append(Token("right", "}}", p))
            return _skip_space(src, p + 2) if trim else p + 2
        if p >= n:
            raise ParseError("unclosed action", toks[-1].pos)
        ch, start = src[p], p
        if ch in _SPACE:
            p = _skip_space(src, p)
            if src.startswith("-}}", p):
                p -= 1  # the last space belongs to the " -}}" trim marker
            if p > start:
                toks.append(Token("space", src[start:p], start))
            continue
        if ch == ":":
            if not src.startswith(":=", p):
                raise ParseError("expected :=", p)
            toks.append(Token("declare", ":=", p))
            p += 2
            continue
        simple = {"=": "assign", "|": "pipe", "(": "lparen", ")": "rparen"}.get(ch)
        if simple:
            depth = max(depth + {"(": 1, ")": -1}.get(ch, 0), 0)  # a stray ")" fails in the parser
            toks.append(Token(simple, ch, p))
            p += 1
            continue
        if ch in "\"'":
            p += 1
            while p < n and src[p] != ch:
                if src[p] == "\n":
                    break
                p += 2 if src[p] == "\\" else 1
            if p >= n or src[p] != ch:
                kind = "quoted string" if ch == '"' else "character constant"
                raise ParseError(f"unterminated {kind}", start)
            p += 1
            toks.append(Token("string" if ch == '"' else "charconst", src[start:p], start))
            continue
        if ch == "`":
            p = src.find("`", p + 1)
            if p < 0:
                raise ParseError("unterminated raw quoted string", start)
            p += 1
            toks.append(Token("raw", src[start:p], start))
            continue
        if ch in "$." and not (ch == "." and p + 1 < n and src[p + 1].isdecimal()):
            p += 1
            while p < n and _is_alnum(src[p]):
                p += 1
            word = src[start:p]
            kind = "var" if ch == "$" else ("dot" if word == "." else "field")
        elif ch in "+-." or ch.isdecimal():
            p = _scan_number(src, p)
            if p < 0:
                raise ParseError(f"bad number syntax: {go_quote(src[start:-p])}", start)
            word, kind = src[start:p], "number"
        elif _is_alnum(ch):
            while p < n and _is_alnum(src[p]):
                p += 1
            word = src[start:p]
            kind = "kw" if word in _KEYWORDS else "ident"
            kind = {"true": "bool", "false": "bool", "nil": "nil"}.get(word, kind)
        elif ch.isascii() and ch.isprintable():
            toks.append(Token("punct", ch, p))
            p += 1
            continue
        else:
            raise ParseError(f"unrecognized character in action: {_rune(ch)}", p)
        if (
            kind != "number"
            and p < n
            and not (src[p] in _SPACE or src[p] in ".,|:)(" or src.startswith("}}", p))
        ):
            raise ParseError(f"bad character {_rune(src[p])}", p)
        toks.append(Token(kind, word, start))


def _scan_number(src: str, p: int) -> int:
    """End of the Go number literal at ``p``, or minus the end of a malformed one."""

    def run(q: int, chars: str) -> int:
        while q < len(src) and src[q] in chars:
            q += 1
        return q

    p += src[p] in "+-"
    digits = "0123456789_"
    if src.startswith("0", p) and src[p + 1 : p + 2] in ("x", "X", "o", "O", "b", "B"):
        digits = {"x": "0123456789abcdefABCDEF_", "o": "01234567_", "b": "01_"}[src[p + 1].lower()]
        p += 2
    p = run(p, digits)
    if src.startswith(".", p):
        p = run(p + 1, digits)
    exp = "eE" if len(digits) == 11 else ("pP" if len(digits) == 23 else "")
    if exp and p < len(src) and src[p] in exp:
        p += 1 + (src[p + 1 : p + 2] in ("+", "-"))
        p = run(p, "0123456789_")
    p = p + 1 if src.startswith("i", p) else p
    return -(p + 1) if p < len(src) and _is_alnum(src[p]) else p


def number_value(text: str) -> int | float:
    """The value of a Go number or char-constant literal, as ``idealConstant`` would type it."""
    if text.startswith("'"):
        try:
            char = unquote(text)
        except ValueError:
            char = ""
        if len(char) != 1:
            raise ValueError("malformed character constant")
        return ord(char)
    if text.endswith("i"):
        raise ValueError("complex numbers are not supported")
    body = text.replace("_", "")
    sign = -1 if body.startswith("-") else 1
    body, prefix = body.lstrip("+-"), body.lstrip("+-")[:2].lower()
    try:
        if prefix == "0x" and "p" in body.lower():
            return sign * float.fromhex(body)
        if prefix in ("0x", "0b", "0o"):
            value = sign * int(body, 0)
        elif any(c in body for c in ".eE"):
            return sign * float(body)
        else:
            value = sign * int(body, 8 if len(body) > 1 and body[0] == "0" else 10)
    except ValueError:
        raise ValueError("illegal number syntax") from None
    if not -(2**63) <= value < 2**63:
        raise ValueError("integer overflow")
    return value


_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, "'": 39, '"': 34}


def unquote(text: str) -> str:
    """The value of a Go string, raw string or char literal (escapes as in Go's strconv)."""
    if text.startswith("`"):
        return text[1:-1].replace("\r", "")
    quote, body, out, i = text[0], text[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            if ch == quote:
                raise ValueError("invalid syntax")
            out += ch.encode("utf-8", "surrogatepass")
            i += 1
            continue
        esc = body[i + 1 : i + 2]
        if esc in _ESCAPES and esc != ("'" if quote == '"' else '"'):
            out.append(_ESCAPES[esc])
            i += 2
        elif esc in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError("invalid syntax")
            code = int(digits, 16)
            if esc == "x":
                out.append(code)
            elif code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise ValueError("invalid syntax")
            else:
                out += chr(code).encode()
            i += 2 + width
        elif len(octal := body[i + 1 : i + 4]) == 3 and all(c in "01234567" for c in octal):
            code = int(octal, 8)
            if code > 255:
                raise ValueError("invalid syntax")
            out.append(code)
            i += 4
        else:
            raise ValueError("invalid syntax")
    return out.decode("utf-8", "replace")
