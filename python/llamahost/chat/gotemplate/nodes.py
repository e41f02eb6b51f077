"""The parse tree: Go's text/template node types, and each node's source text for errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llamahost.chat.gotemplate.gofmt import go_quote

MAX_NESTING = 50  # nested control structures / parentheses, and {{template}} call depth

# Nodes of Go's parse tree; ``pos`` is the node's offset in the source, for error messages.


@dataclass(slots=True)
class Field:
    pos: int
    idents: tuple[str, ...]


@dataclass(slots=True)
class Variable:
    pos: int
    idents: tuple[str, ...]  # idents[0] is the variable's name, "$" or "$x"


@dataclass(slots=True)
class Dot:
    pos: int


@dataclass(slots=True)
class Nil:
    pos: int


@dataclass(slots=True)
class Literal:
    pos: int
    value: Any
    text: str


@dataclass(slots=True)
class Identifier:
    pos: int
    name: str


@dataclass(slots=True)
class Chain:
    pos: int
    node: Any
    fields: tuple[str, ...]


@dataclass(slots=True)
class Command:
    pos: int
    args: list[Any]


@dataclass(slots=True)
class Pipe:
    pos: int
    decl: list[str]
    is_assign: bool
    cmds: list[Command]


@dataclass(slots=True)
class Text:
    pos: int
    text: str


@dataclass(slots=True)
class Action:
    pos: int
    pipe: Pipe


@dataclass(slots=True)
class Branch:
    pos: int
    kind: str  # "if", "with" or "range"
    pipe: Pipe
    body: list[Any]
    else_body: list[Any] | None


@dataclass(slots=True)
class TemplateCall:
    pos: int
    name: str
    pipe: Pipe | None


@dataclass(slots=True)
class LoopControl:
    pos: int
    kind: str  # "break" or "continue"


@dataclass(slots=True)
class End:
    pos: int


@dataclass(slots=True)
class Else:
    pos: int
    chained: str | None  # "if"/"with" for {{else if}}/{{else with}}


def node_str(node: Any) -> str:
    """Go's ``Node.String()``: the canonical source text of a node, used in error context."""
    if isinstance(node, Field):
        return "." + ".".join(node.idents)
    if isinstance(node, Variable):
        return ".".join(node.idents)
    if isinstance(node, Dot | Nil):
        return "." if isinstance(node, Dot) else "nil"
    if isinstance(node, Literal):
        return node.text
    if isinstance(node, Identifier):
        return node.name
    if isinstance(node, Chain):
        inner = node_str(node.node)
        return (
            (f"({inner})" if isinstance(node.node, Pipe) else inner) + "." + ".".join(node.fields)
        )
    if isinstance(node, Command):
        return " ".join(
            f"({node_str(a)})" if isinstance(a, Pipe) else node_str(a) for a in node.args
        )
    if isinstance(node, Pipe):
        decl = ", ".join(node.decl) + (" = " if node.is_assign else " := ") if node.decl else ""
        return decl + " | ".join(node_str(c) for c in node.cmds)
    if isinstance(node, Action):
        return "{{" + node_str(node.pipe) + "}}"
    if isinstance(node, TemplateCall):
        pipe = "" if node.pipe is None else " " + node_str(node.pipe)
        return "{{template " + go_quote(node.name) + pipe + "}}"
    return type(node).__name__.strip("_").lower()
