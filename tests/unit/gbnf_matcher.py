"""A small interpreter of GBNF grammars, for tests only.

It reads the GBNF subset llamahost emits (rules one per line, literals, character classes
with ranges and negation, groups, ``|``, ``?``, ``*``, ``+``, ``{m}``, ``{m,}``, ``{m,n}``,
comments), tells whether a text matches a rule exactly, and draws random texts from a
grammar. Tests use it to check what a generated grammar accepts, not how it is spelled.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

# Node shapes: ("lit", text) ("cls", ranges, negated) ("ref", name) ("alt", [seq, ...])
#              ("seq", [node, ...]) ("rep", node, low, high-or-None)
Node = tuple
_NAME = re.compile(r"[a-zA-Z0-9-]+")
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "[": "[", "]": "]"}
# Characters the sampler tries for negated classes.
_POOL = [chr(c) for c in range(0x20, 0x7F)] + ["\t", "\n", "é", "ß", "中", "😀", "\u00a0"]


class GrammarSyntaxError(ValueError):
    """The grammar text is not GBNF this interpreter understands."""


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> GrammarSyntaxError:
        line = self.text.count("\n", 0, self.pos) + 1
        return GrammarSyntaxError(
            f"line {line}: {message} at {self.text[self.pos : self.pos + 30]!r}"
        )

    def skip_space(self, newlines: bool) -> None:
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "#":
                while self.pos < len(self.text) and self.text[self.pos] != "\n":
                    self.pos += 1
            elif ch in " \t" or (newlines and ch in "\r\n"):
                self.pos += 1
            else:
                break

    def rules(self) -> dict[str, Node]:
        rules: dict[str, Node] = {}
        self.skip_space(newlines=True)
        while self.pos < len(self.text):
            match = _NAME.match(self.text, self.pos)
            if match is None:
                raise self.error("expected a rule name")
            self.pos = match.end()
            self.skip_space(newlines=False)
            if not self.text.startswith("::=", self.pos):
                raise self.error("expected '::='")
            self.pos += 3
            if match.group() in rules:
                raise self.error(f"rule {match.group()!r} defined twice")
            rules[match.group()] = self.alternatives(nested=False)
            self.skip_space(newlines=True)
        return rules

    def alternatives(self, nested: bool) -> Node:
        sequences = [self.sequence(nested)]
        while self.pos < len(self.text) and self.text[self.pos] == "|":
            self.pos += 1
            sequences.append(self.sequence(nested))
        return ("alt", sequences)

    def sequence(self, nested: bool) -> Node:
        items = []
        while True:
            self.skip_space(newlines=nested)
            if self.pos >= len(self.text) or self.text[self.pos] in "|)\n":
                return ("seq", items)
            items.append(self.quantified(self.atom()))

    def atom(self) -> Node:
        ch = self.text[self.pos]
        if ch == '"':
            self.pos += 1
            out = []
            while self.text[self.pos] != '"':
                out.append(self.char())
            self.pos += 1
            return ("lit", "".join(out))
        if ch == "[":
            self.pos += 1
            negated = self.text[self.pos] == "^"
            self.pos += negated
            ranges = []
            while self.text[self.pos] != "]":
                low = self.char()
                high = low
                if self.text[self.pos] == "-" and self.text[self.pos + 1] != "]":
                    self.pos += 1
                    high = self.char()
                if ord(high) < ord(low):
                    raise self.error("empty character range")
                ranges.append((ord(low), ord(high)))
            self.pos += 1
            return ("cls", ranges, negated)
        if ch == "(":
            self.pos += 1
            inner = self.alternatives(nested=True)
            self.skip_space(newlines=True)
            if self.text[self.pos] != ")":
                raise self.error("expected ')'")
            self.pos += 1
            return inner
        match = _NAME.match(self.text, self.pos)
        if match is None:
            raise self.error("unexpected character")
        self.pos = match.end()
        return ("ref", match.group())

    def char(self) -> str:
        ch = self.text[self.pos]
        if ch in "\r\n":
            raise self.error("unterminated literal or class")
        if ch != "\\":
            self.pos += 1
            return ch
        kind = self.text[self.pos + 1]
        if kind in _SIMPLE_ESCAPES:
            self.pos += 2
            return _SIMPLE_ESCAPES[kind]
        width = {"x": 2, "u": 4, "U": 8}.get(kind)
        if width is None:
            raise self.error("unknown escape")
        digits = self.text[self.pos + 2 : self.pos + 2 + width]
        if not re.fullmatch(rf"[0-9a-fA-F]{{{width}}}", digits):
            raise self.error("bad hex escape")
        self.pos += 2 + width
        return chr(int(digits, 16))

    def quantified(self, node: Node) -> Node:
        if self.pos >= len(self.text):
            return node
        ch = self.text[self.pos]
        if ch in "*+?":
            self.pos += 1
            return ("rep", node, 0 if ch != "+" else 1, 1 if ch == "?" else None)
        match = re.compile(r"\{(\d+)(?:(,)(\d*))?\}").match(self.text, self.pos)
        if match is None:
            return node
        self.pos = match.end()
        low = int(match.group(1))
        if match.group(2) is None:
            return ("rep", node, low, low)
        return ("rep", node, low, int(match.group(3)) if match.group(3) else None)


def _references(node: Node) -> set[str]:
    if node[0] == "ref":
        return {node[1]}
    if node[0] in ("alt", "seq"):
        return set().union(*(_references(child) for child in node[1]))
    if node[0] == "rep":
        return _references(node[1])
    return set()


@dataclass
class Grammar:
    """A parsed grammar: ``matches`` checks texts, ``sample`` draws random ones."""

    rules: dict[str, Node]
    _heights: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Grammar:
        """Parse GBNF text; every referenced rule must be defined."""
        rules = _Parser(text).rules()
        for name, node in rules.items():
            missing = _references(node) - rules.keys()
            if missing:
                raise GrammarSyntaxError(f"rule {name!r} refers to undefined {sorted(missing)}")
        grammar = cls(rules)
        grammar._compute_heights()
        return grammar

    # matching

    def matches(self, text: str, rule: str = "root") -> bool:
        """Whether ``text`` as a whole matches ``rule``."""
        memo: dict[tuple[str, int], frozenset[int]] = {}
        return len(text) in self._ends(("ref", rule), text, 0, memo)

    def _ends(self, node: Node, text: str, pos: int, memo: dict) -> frozenset[int]:
        """Every position where a match of ``node`` starting at ``pos`` can end."""
        kind = node[0]
        if kind == "lit":
            return frozenset([pos + len(node[1])]) if text.startswith(node[1], pos) else frozenset()
        if kind == "cls":
            if pos < len(text) and _in_class(text[pos], node[1], node[2]):
                return frozenset([pos + 1])
            return frozenset()
        if kind == "ref":
            key = (node[1], pos)
            if key not in memo:
                memo[key] = frozenset()  # guards against left recursion
                memo[key] = self._ends(self.rules[node[1]], text, pos, memo)
            return memo[key]
        if kind == "alt":
            return frozenset().union(*(self._ends(seq, text, pos, memo) for seq in node[1]))
        if kind == "seq":
            positions = frozenset([pos])
            for item in node[1]:
                positions = frozenset().union(*(self._ends(item, text, p, memo) for p in positions))
                if not positions:
                    break
            return positions
        _, child, low, high = node
        result: set[int] = set()
        frontier = {pos}
        seen: set[int] = set()
        count = 0
        while frontier:
            if count >= low:
                result |= frontier
            if high is not None and count == high:
                break
            following: set[int] = set()
            for p in frontier:
                following |= self._ends(child, text, p, memo)
            count += 1
            if count > low:  # beyond the minimum only new positions matter
                seen |= frontier
                following -= seen
            frontier = following
        return frozenset(result)

    # sampling

    def _height(self, node: Node) -> float:
        kind = node[0]
        if kind in ("lit", "cls"):
            return 0
        if kind == "ref":
            return 1 + self._heights.get(node[1], float("inf"))
        if kind == "alt":
            return min(self._height(seq) for seq in node[1])
        if kind == "seq":
            return max((self._height(item) for item in node[1]), default=0)
        return self._height(node[1]) if node[2] > 0 else 0

    def _compute_heights(self) -> None:
        changed = True
        while changed:
            changed = False
            for name, node in self.rules.items():
                height = self._height(node)
                if height < self._heights.get(name, float("inf")):
                    self._heights[name] = height
                    changed = True

    def sample(self, rng: random.Random, rule: str = "root", depth: int = 8) -> str:
        """A random text matching ``rule``; past ``depth`` rules it takes the shortest ways."""
        out: list[str] = []
        self._generate(("ref", rule), rng, depth, out)
        return "".join(out)

    def _generate(self, node: Node, rng: random.Random, depth: int, out: list[str]) -> None:
        kind = node[0]
        if kind == "lit":
            out.append(node[1])
        elif kind == "cls":
            out.append(_pick_char(node[1], node[2], rng))
        elif kind == "ref":
            self._generate(self.rules[node[1]], rng, depth - 1, out)
        elif kind == "alt":
            options = node[1]
            if depth <= 0:
                best = min(self._height(seq) for seq in options)
                options = [seq for seq in options if self._height(seq) == best]
            self._generate(rng.choice(options), rng, depth, out)
        elif kind == "seq":
            for item in node[1]:
                self._generate(item, rng, depth, out)
        else:
            _, child, low, high = node
            top = low + 3 if high is None else min(high, low + 3)
            count = low if depth <= 0 else rng.randint(low, top)
            for _ in range(count):
                self._generate(child, rng, depth, out)


def _in_class(ch: str, ranges: list[tuple[int, int]], negated: bool) -> bool:
    inside = any(low <= ord(ch) <= high for low, high in ranges)
    return inside != negated


def _pick_char(ranges: list[tuple[int, int]], negated: bool, rng: random.Random) -> str:
    if negated:
        choices = [ch for ch in _POOL if _in_class(ch, ranges, negated)]
        return rng.choice(choices)
    low, high = rng.choice(ranges)
    return chr(rng.randint(low, high))
