"""GBNF fragments for the value constraints of JSON Schema, used by ``json_schema``.

Pure functions from one constraint to GBNF text: literals and repetition, integers and
decimals within bounds (exact, digit by digit), and the characters of a JSON string whose
decoded value a regular expression finds a match in. :mod:`llamahost.engine.json_schema`
walks the schema and names the rules; this module knows nothing of schemas.

Character classes in GBNF are written with hex escapes for everything that is not an ASCII
letter or digit, because llama.cpp's grammar parser knows only a few escapes (``\\x``,
``\\u``, ``\\U``, ``\\t``, ``\\n``, ``\\r``, ``\\\\``, ``\\"``, ``\\[``, ``\\]``).
"""

from __future__ import annotations

import re
import warnings

from llamahost.errors import GrammarError

__all__ = [
    "JSON_SPECIALS",
    "MAX_DIGITS",
    "Bound",
    "class_char",
    "decimal_range",
    "gbnf_literal",
    "group",
    "integer_range",
    "join",
    "pattern_content",
    "repeat",
]

MAX_DIGITS = 16  # integer and fraction digits a number may have

# Code points a JSON string cannot hold unescaped: controls, quote, backslash.
JSON_SPECIALS = frozenset((*range(0x20), 0x22, 0x5C))
_SHORT_JSON_ESCAPES = {
    0x22: '\\"',
    0x5C: "\\\\",
    8: "\\b",
    9: "\\t",
    10: "\\n",
    12: "\\f",
    13: "\\r",
}


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF double-quoted literal."""
    out = []
    for ch in text:
        cp = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif cp < 0x20 or cp == 0x7F:
            out.append(f"\\x{cp:02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def repeat(atom: str, low: int, high: int | None) -> str:
    """``atom`` repeated between ``low`` and ``high`` (None: unbounded) times, in GBNF."""
    if high is None:
        return atom + ("*" if low == 0 else "+" if low == 1 else f"{{{low},}}")
    if high == 0:
        return ""
    if low == high:
        return atom if low == 1 else f"{atom}{{{low}}}"
    return f"{atom}?" if (low, high) == (0, 1) else f"{atom}{{{low},{high}}}"


def group(alternatives: list[str]) -> str:
    """Alternatives as one GBNF atom."""
    return alternatives[0] if len(alternatives) == 1 else "( " + " | ".join(alternatives) + " )"


def join(*parts: str) -> str:
    """GBNF parts as a sequence, skipping empty ones."""
    return " ".join(part for part in parts if part)


# -- integer and decimal ranges ----------------------------------------------------------


def _digit_class(low: str, high: str) -> str:
    """One digit between ``low`` and ``high``."""
    return gbnf_literal(low) if low == high else f"[{low}-{high}]"


def _any_digits(count: int) -> str:
    """Exactly ``count`` digits."""
    return repeat("[0-9]", count, count)


def _digit_strings(low: str, high: str) -> str:
    """Digit strings as long as ``low`` and ``high`` (leading zeros kept) within [low, high]."""
    common = 0
    while common < len(low) and low[common] == high[common]:
        common += 1
    prefix = gbnf_literal(low[:common]) if common else ""
    if common == len(low):
        return prefix
    first_low, first_high = low[common], high[common]
    rest_low, rest_high = low[common + 1 :], high[common + 1 :]
    width = len(rest_low)
    low_is_full = rest_low == "0" * width
    high_is_full = rest_high == "9" * width
    middle_low = first_low if low_is_full else chr(ord(first_low) + 1)
    middle_high = first_high if high_is_full else chr(ord(first_high) - 1)
    alternatives = []
    if not low_is_full:
        alternatives.append(join(f'"{first_low}"', _digit_strings(rest_low, "9" * width)))
    if middle_low <= middle_high:
        alternatives.append(join(_digit_class(middle_low, middle_high), _any_digits(width)))
    if not high_is_full:
        alternatives.append(join(f'"{first_high}"', _digit_strings("0" * width, rest_high)))
    return join(prefix, group(alternatives))


def _natural_range(low: int, high: int | None) -> str:
    """Non-negative integers in [low, high] written without leading zeros.

    With ``high`` None the numbers are bounded only by having at most 16 digits.
    """
    low_width = len(str(low))
    if high is not None and len(str(high)) == low_width:
        return _digit_strings(str(low), str(high))
    alternatives = [_digit_strings(str(low), "9" * low_width)]
    high_width = len(str(high)) if high is not None else max(low_width, MAX_DIGITS) + 1
    if low_width + 1 <= high_width - 1:  # lengths where every digit string is allowed
        alternatives.append(join("[1-9]", repeat("[0-9]", low_width, high_width - 2)))
    if high is not None:
        alternatives.append(_digit_strings("1" + "0" * (high_width - 1), str(high)))
    return group(alternatives)


def integer_range(low: int | None, high: int | None) -> str:
    """Integers in [low, high] (None: unbounded, up to 16 digits) as a GBNF atom."""
    if high is not None and high >= 10**MAX_DIGITS:
        high = None
    if low is not None and low <= -(10**MAX_DIGITS):
        low = None
    alternatives = []
    if low is None or low < 0:
        magnitude_low = 1 if high is None or high >= 0 else -high
        magnitude_high = None if low is None else -low
        alternatives.append(join('"-"', _natural_range(magnitude_low, magnitude_high)))
    if high is None or high >= 0:
        alternatives.append(_natural_range(max(low or 0, 0), high))
    return group(alternatives)


Bound = tuple[int, bool]  # (value, exclusive)


def _magnitude_range(low: Bound, high: Bound | None) -> list[str]:
    """Alternatives for decimals ``I("." F)?`` with I >= 0 between two whole-number bounds."""
    low_value, low_exclusive = low
    whole_low = low_value + 1 if low_exclusive else low_value
    alternatives = []
    if high is None or whole_low <= high[0] - 1:  # I strictly inside: any fraction
        top = None if high is None else high[0] - 1
        alternatives.append(join(_natural_range(whole_low, top), "fraction"))
    if low_exclusive and (high is None or low_value < high[0]):  # just above the low bound
        alternatives.append(join(f'"{low_value}"', "fraction-nonzero"))
    if high is not None and not high[1] and high[0] >= whole_low:  # exactly the high bound
        alternatives.append(join(f'"{high[0]}"', "fraction-zero"))
    return alternatives


def decimal_range(low: Bound | None, high: Bound | None) -> str:
    """Decimals without exponent between whole-number bounds, as a GBNF atom."""
    alternatives = []
    if low is None or low[0] < 0:  # negative values: magnitude bounds are mirrored
        magnitude_low = (0, True) if high is None or high[0] >= 0 else (-high[0], high[1])
        magnitude_high = None if low is None else (-low[0], low[1])
        for alternative in _magnitude_range(magnitude_low, magnitude_high):
            alternatives.append(join('"-"', alternative))
    if high is None or high[0] > 0 or (high[0] == 0 and not high[1]):
        positive_low = (0, False) if low is None or low[0] < 0 else low
        alternatives.extend(_magnitude_range(positive_low, high))
    return group(alternatives)


# -- regular expressions -----------------------------------------------------------------

_NON_ASCII = (0x80, 0x10FFFF)
_SHORTHAND_CLASSES = {
    "d": [(0x30, 0x39)],
    "w": [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
    "s": [(0x09, 0x0D), (0x20, 0x20)],
}
_CHARACTER_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "a": "\a"}
_QUANTIFIER = re.compile(r"\{(\d+)\}|\{(\d*),(\d*)\}")


def class_char(cp: int) -> str:
    """A code point as it may appear inside a GBNF character class."""
    if chr(cp).isascii() and chr(cp).isalnum():
        return chr(cp)
    if cp <= 0xFF:
        return f"\\x{cp:02X}"
    return f"\\u{cp:04X}" if cp <= 0xFFFF else f"\\U{cp:08X}"


def _in_ranges(cp: int, ranges: list[tuple[int, int]]) -> bool:
    """Whether ``cp`` lies in one of ``ranges``."""
    return any(low <= cp <= high for low, high in ranges)


def _json_char_text(ch: str) -> str:
    """How the character ``ch`` is written inside a JSON string."""
    cp = ord(ch)
    if cp in JSON_SPECIALS:
        return _SHORT_JSON_ESCAPES.get(cp, f"\\u{cp:04x}")
    return ch


def _json_char_class(ranges: list[tuple[int, int]], negated: bool, where: str) -> str:
    """GBNF for one JSON-string character whose decoded value is in (or outside) ``ranges``."""
    specials = "".join(class_char(cp) for cp in (0x22, 0x5C)) + r"\x00-\x1F"
    if negated:
        raw = "[^" + specials + "".join(_class_char_range(lo, hi) for lo, hi in ranges) + "]"
        # Of the specials, only the common escapes are offered: a subset stays valid.
        escaped = [cp for cp in (0x22, 0x5C, 0x09, 0x0A, 0x0D) if not _in_ranges(cp, ranges)]
        alternatives = [raw]
    else:
        plain: list[tuple[int, int]] = []
        for low, high in ranges:
            start = low
            for cp in range(low, min(high, 0x5C) + 1):
                if cp in JSON_SPECIALS:
                    if start < cp:
                        plain.append((start, cp - 1))
                    start = cp + 1
            if start <= high:
                plain.append((start, high))
        escaped = sorted({cp for cp in JSON_SPECIALS if _in_ranges(cp, ranges)})
        alternatives = []
        if plain:
            alternatives.append("[" + "".join(_class_char_range(lo, hi) for lo, hi in plain) + "]")
    alternatives += [gbnf_literal(_json_char_text(chr(cp))) for cp in escaped]
    if not alternatives:
        raise GrammarError(f"{where}: a character class matches no character")
    return group(alternatives)


def _class_char_range(low: int, high: int) -> str:
    """A range inside a GBNF character class."""
    return class_char(low) if low == high else f"{class_char(low)}-{class_char(high)}"


def pattern_content(pattern: str, where: str) -> str:
    """GBNF for the text between a JSON string's quotes whose decoded value contains a match.

    ``re.search`` semantics: without ``^``/``$`` any text may come before/after the match.
    Supported: literals, escapes, classes (``\\d \\w \\s`` and negations), ``.``, groups
    (plain, ``(?:``, ``(?P<name>``), ``|``, ``? * + {m} {m,} {m,n}`` (lazy too), and ``^``/``$``
    at the ends of the pattern or of its top-level alternatives. Anything else raises
    GrammarError starting with ``where``. The GBNF may use the rule ``char``.
    """
    return _PatternTranslator(pattern, where).translate()


class _PatternTranslator:
    """Reads a regular expression left to right, writing GBNF as it goes."""

    def __init__(self, pattern: str, where: str) -> None:
        self._pattern = pattern
        self._where = where
        self._pos = 0

    def translate(self) -> str:
        """The GBNF sequence for the string content."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FutureWarning for nested sets, etc.
            try:
                re.compile(self._pattern)
            except re.error as exc:
                raise GrammarError(
                    f"{self._where} is not a valid regular expression: {exc}"
                ) from None
        alternatives = [self._sequence(top=True)]
        while self._peek() == "|":
            self._pos += 1
            alternatives.append(self._sequence(top=True))
        return group(alternatives)

    def _peek(self, offset: int = 0) -> str:
        index = self._pos + offset
        return self._pattern[index] if index < len(self._pattern) else ""

    def _unsupported(self, what: str) -> GrammarError:
        return GrammarError(
            f"{self._where}: {what} at position {self._pos} is not supported; use literals, "
            "escapes, classes, '.', groups, '|', quantifiers and ^/$ at the ends"
        )

    def _sequence(self, top: bool) -> str:
        """Items up to the next '|' or ')' (or the end); anchors handled when ``top``."""
        anchored_start = anchored_end = False
        if top and self._peek() == "^":
            self._pos += 1
            anchored_start = True
        parts: list[tuple[str, str | None]] = []  # (gbnf atom, JSON text if a plain literal)
        while self._peek() not in ("", "|", ")"):
            if self._peek() == "$" and top and self._peek(1) in ("", "|"):
                self._pos += 1
                anchored_end = True
                break
            parts.append(self._quantified())
        text = self._merge_literals(parts)
        if top:
            text = join("" if anchored_start else "char*", text, "" if anchored_end else "char*")
        return text or '""'

    @staticmethod
    def _merge_literals(parts: list[tuple[str, str | None]]) -> str:
        """Join atoms, fusing runs of plain literal characters into one GBNF literal."""
        out: list[str] = []
        run: list[str] = []
        for atom, literal in [*parts, ("", None)]:
            if literal is not None:
                run.append(literal)
                continue
            if run:
                out.append(gbnf_literal("".join(run)))
                run = []
            out.append(atom)
        return join(*out)

    def _quantified(self) -> tuple[str, str | None]:
        atom, literal = self._atom()
        bounds = self._quantifier()
        if bounds is None:
            return atom, literal
        if literal is not None:
            atom = gbnf_literal(literal)
        if self._peek() == "+":
            raise self._unsupported("a possessive quantifier")
        if self._peek() == "?":  # lazy: the same language
            self._pos += 1
        return repeat(atom, *bounds) or '""', None

    def _quantifier(self) -> tuple[int, int | None] | None:
        ch = self._peek()
        if ch in ("*", "+", "?"):
            self._pos += 1
            return {"*": (0, None), "+": (1, None), "?": (0, 1)}[ch]
        match = _QUANTIFIER.match(self._pattern, self._pos)
        if ch != "{" or match is None:
            return None
        self._pos = match.end()
        if match.group(1) is not None:
            return int(match.group(1)), int(match.group(1))
        low = int(match.group(2) or 0)
        return low, int(match.group(3)) if match.group(3) else None

    def _atom(self) -> tuple[str, str | None]:
        ch = self._peek()
        if ch == "(":
            self._pos += 1
            if self._peek() == "?":
                if self._peek(1) == ":":
                    self._pos += 2
                elif self._peek(1) == "P" and self._peek(2) == "<":
                    self._pos = self._pattern.index(">", self._pos) + 1
                else:
                    raise self._unsupported("a lookaround, flag or special group")
            alternatives = [self._sequence(top=False)]
            while self._peek() == "|":
                self._pos += 1
                alternatives.append(self._sequence(top=False))
            self._pos += 1  # ')' (re.compile checked the balance)
            return "( " + " | ".join(alternatives) + " )", None
        if ch == "[":
            return self._class(), None
        if ch in ("^", "$"):
            raise self._unsupported(f"the anchor '{ch}' away from the pattern's ends")
        self._pos += 1
        if ch == ".":
            return _json_char_class([(0x0A, 0x0A)], True, self._where), None
        if ch == "\\":
            escaped = self._escape(in_class=False)
            if isinstance(escaped, str):
                return "", _json_char_text(escaped)
            ranges, negated = escaped
            return _json_char_class(ranges, negated, self._where), None
        return "", _json_char_text(ch)

    def _escape(self, in_class: bool) -> str | tuple[list[tuple[int, int]], bool]:
        """After a backslash: a character, or (ranges, negated) for \\d \\w \\s \\D \\W \\S."""
        ch = self._peek()
        self._pos += 1
        if ch.lower() in _SHORTHAND_CLASSES:
            if ch.isupper() and in_class:
                raise self._unsupported(f"'\\{ch}' inside a character class")
            if ch.isupper():  # Python's \d \w \s also match non-ASCII: exclude all of it
                return [*_SHORTHAND_CLASSES[ch.lower()], _NON_ASCII], True
            return _SHORTHAND_CLASSES[ch.lower()], False
        if ch in _CHARACTER_ESCAPES:
            return _CHARACTER_ESCAPES[ch]
        if ch == "b" and in_class:
            return "\b"
        if ch in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[ch]
            digits = self._pattern[self._pos : self._pos + width]
            self._pos += width
            return chr(int(digits, 16))
        if ch == "0" and not self._peek().isdigit():
            return "\0"
        if ch.isdigit():
            raise self._unsupported("a backreference or octal escape")
        if ch.isascii() and ch.isalpha():
            raise self._unsupported(f"the escape '\\{ch}'")
        return ch

    def _class(self) -> str:
        """A bracketed character class, from its '['."""
        self._pos += 1
        negated = self._peek() == "^"
        self._pos += negated
        ranges: list[tuple[int, int]] = []
        first = True
        while first or self._peek() != "]":
            first = False
            low = self._class_member()
            if isinstance(low, list):
                ranges.extend(low)
                if negated:  # Python's \d \w \s also match non-ASCII: exclude all of it
                    ranges.append(_NON_ASCII)
                continue
            if self._peek() == "-" and self._peek(1) not in ("]", ""):
                self._pos += 1
                high = self._class_member()
                if isinstance(high, list):
                    raise self._unsupported("a range ending in a class shorthand")
                ranges.append((low, high))
            else:
                ranges.append((low, low))
        self._pos += 1
        return _json_char_class(ranges, negated, self._where)

    def _class_member(self) -> int | list[tuple[int, int]]:
        ch = self._peek()
        self._pos += 1
        if ch != "\\":
            return ord(ch)
        escaped = self._escape(in_class=True)
        return ord(escaped) if isinstance(escaped, str) else escaped[0]
