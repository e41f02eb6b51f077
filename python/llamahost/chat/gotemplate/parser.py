"""Go's recursive-descent template parser: tokens to the trees of ``nodes``.

``Parser.parse`` returns the main tree and fills ``Parser.defs`` with the ``{{define}}``d and
``{{block}}`` templates. Unknown functions and undefined variables are parse errors, as in Go,
and nesting past MAX_NESTING is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llamahost.chat.gotemplate.functions import FUNCS
from llamahost.chat.gotemplate.gofmt import go_quote
from llamahost.chat.gotemplate.lexer import ParseError, Token, lex, number_value, unquote
from llamahost.chat.gotemplate.nodes import (
    MAX_NESTING,
    Action,
    Branch,
    Chain,
    Command,
    Dot,
    Else,
    End,
    Field,
    Identifier,
    Literal,
    LoopControl,
    Nil,
    Pipe,
    TemplateCall,
    Text,
    Variable,
    node_str,
)

_OPERAND_KINDS = {"bool", "charconst", "dot", "field", "ident", "nil", "number", "lparen"}
_OPERAND_KINDS |= {"string", "raw", "var"}


def _token_str(tok: Token) -> str:
    if tok.kind == "eof":
        return "EOF"
    if tok.kind in ("kw", "dot", "nil"):
        return f"<{tok.value}>"
    return go_quote(tok.value[:10]) + "..." if len(tok.value) > 10 else go_quote(tok.value)


class Parser:
    """Go's recursive-descent template parser, producing the trees of ``nodes``."""

    def __init__(self, src: str) -> None:
        self.toks = lex(src)
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0
        self.depth = 0
        self.defs: dict[str, list[Any]] = {}

    def error(self, message: str, pos: int | None = None) -> ParseError:
        return ParseError(message, self.toks[max(self.i - 1, 0)].pos if pos is None else pos)

    def next(self) -> Token:
        self.i += 1
        return self.toks[self.i - 1]

    def next_non_space(self) -> Token:
        while self.toks[self.i].kind == "space":
            self.i += 1
        return self.next()

    def peek_non_space(self) -> Token:
        while self.toks[self.i].kind == "space":
            self.i += 1
        return self.toks[self.i]

    def unexpected(self, tok: Token, context: str) -> ParseError:
        return self.error(f"unexpected {_token_str(tok)} in {context}", tok.pos)

    def expect(self, kind: str, context: str) -> Token:
        tok = self.next_non_space()
        if tok.kind != kind:
            raise self.unexpected(tok, context)
        return tok

    def parse(self) -> list[Any]:
        root: list[Any] = []
        while self.toks[self.i].kind != "eof":
            tok = self.toks[self.i]
            if tok.kind == "left":
                start, self.i = self.i, self.i + 1
                keyword = self.next_non_space()
                if keyword.kind == "kw" and keyword.value == "define":
                    self.parse_definition()
                    continue
                self.i = start
            node = self.text_or_action()
            if isinstance(node, End | Else):
                raise self.error(
                    f"unexpected {{{{{'end' if isinstance(node, End) else 'else'}}}}}", node.pos
                )
            root.append(node)
        return root

    def nested(self, context: str, parse: Callable[[], Any]) -> Any:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"{context} nested deeper than {MAX_NESTING} levels")
        try:
            return parse()
        finally:
            self.depth -= 1

    def item_list(self) -> tuple[list[Any], End | Else]:
        nodes: list[Any] = []
        while True:
            if self.peek_non_space().kind == "eof":
                raise self.error("unexpected EOF", self.toks[self.i].pos)
            node = self.text_or_action()
            if isinstance(node, End | Else):
                return nodes, node
            nodes.append(node)

    def text_or_action(self) -> Any:
        tok = self.next_non_space()
        if tok.kind == "text":
            return Text(tok.pos, tok.value)
        if tok.kind != "left":
            raise self.unexpected(tok, "input")
        tok = self.next_non_space()
        if tok.kind == "kw":
            if tok.value in ("if", "range", "with"):
                return self.nested(tok.value, lambda: self.branch(tok.value))
            if tok.value in ("break", "continue"):
                self.expect("right", "{{" + tok.value + "}}")
                if not self.range_depth:
                    raise self.error(f"{{{{{tok.value}}}}} outside {{{{range}}}}", tok.pos)
                return LoopControl(tok.pos, tok.value)
            if tok.value == "end":
                self.expect("right", "end")
                return End(tok.pos)
            if tok.value == "else":
                peek = self.peek_non_space()
                if peek.kind == "kw" and peek.value in ("if", "with"):
                    return Else(tok.pos, peek.value)
                self.expect("right", "else")
                return Else(tok.pos, None)
            if tok.value in ("template", "block"):
                return self.template_call(tok)
        self.i -= 1
        return Action(tok.pos, self.pipeline("command", "right"))

    def branch(self, context: str) -> Branch:
        mark = len(self.vars)
        pipe = self.pipeline(context, "right")
        self.range_depth += context == "range"
        body, end = self.item_list()
        self.range_depth -= context == "range"
        else_body = None
        if isinstance(end, Else):
            if end.chained == context and context != "range":
                self.next_non_space()
                else_body = [self.nested(context, lambda: self.branch(context))]
            else:
                else_body, end = self.item_list()
                if not isinstance(end, End):
                    raise self.error("expected end; found {{else}}", end.pos)
        del self.vars[mark:]
        return Branch(pipe.pos, context, pipe, body, else_body)

    def template_name(self, context: str) -> str:
        tok = self.next_non_space()
        if tok.kind not in ("string", "raw"):
            raise self.unexpected(tok, context)
        try:
            return unquote(tok.value)
        except ValueError as exc:
            raise self.error(str(exc), tok.pos) from None

    def template_call(self, tok: Token) -> TemplateCall:
        context = tok.value + " clause"
        pos = self.peek_non_space().pos
        name = self.template_name(context)
        if tok.value == "template":
            if self.next_non_space().kind == "right":
                return TemplateCall(pos, name, None)
            self.i -= 1
            return TemplateCall(pos, name, self.pipeline(context, "right"))
        pipe = self.pipeline(context, "right")
        self.definition_body(name, context)
        return TemplateCall(pos, name, pipe)

    def parse_definition(self) -> None:
        name = self.template_name("define clause")
        self.expect("right", "define clause")
        self.definition_body(name, "define clause")

    def definition_body(self, name: str, context: str) -> None:
        saved = self.vars, self.range_depth
        self.vars, self.range_depth = ["$"], 0
        body, end = self.item_list()
        if not isinstance(end, End):
            raise self.error(f"unexpected {{{{else}}}} in {context}", end.pos)
        self.vars, self.range_depth = saved
        old = self.defs.get(name)
        if old is not None and not _is_empty_tree(old) and not _is_empty_tree(body):
            raise self.error(f"template: multiple definition of template {go_quote(name)}")
        if old is None or _is_empty_tree(old):
            self.defs[name] = body

    def pipeline(self, context: str, end: str) -> Pipe:
        pipe = Pipe(self.peek_non_space().pos, [], False, [])
        while (var := self.peek_non_space()).kind == "var":
            start = self.i
            self.next()
            after = self.peek_non_space()
            if after.kind in ("assign", "declare"):
                self.next()
                pipe.is_assign = after.kind == "assign"
                pipe.decl.append(var.value)
                self.vars.append(var.value)
                break
            if after.kind == "punct" and after.value == ",":
                self.next()
                pipe.decl.append(var.value)
                self.vars.append(var.value)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().kind in ("var", "right", "rparen"):
                        continue
                    raise self.error("range can only initialize variables")
                raise self.error(f"too many declarations in {context}")
            self.i = start
            break
        while True:
            tok = self.next_non_space()
            if tok.kind == end:
                break
            if tok.kind not in _OPERAND_KINDS:
                raise self.unexpected(tok, context)
            self.i -= 1
            pipe.cmds.append(self.command())
        if not pipe.cmds:
            raise self.error(f"missing value for {context}")
        for stage, cmd in enumerate(pipe.cmds[1:], start=2):
            if isinstance(cmd.args[0], Literal | Dot | Nil):
                raise self.error(f"non executable command in pipeline stage {stage}", cmd.pos)
        return pipe

    def command(self) -> Command:
        cmd = Command(self.peek_non_space().pos, [])
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.kind == "space":
                continue
            if tok.kind in ("right", "rparen"):
                self.i -= 1
            elif tok.kind != "pipe":
                raise self.unexpected(tok, "operand")
            break
        if not cmd.args:
            raise self.error("empty command")
        return cmd

    def operand(self) -> Any:
        node = self.term()
        if node is None or self.toks[self.i].kind != "field":
            return node
        fields: list[str] = []
        pos = self.toks[self.i].pos  # Go positions a chain at its first trailing field
        while self.toks[self.i].kind == "field":
            fields.append(self.next().value[1:])
        if isinstance(node, Field | Variable):
            return type(node)(pos, node.idents + tuple(fields))
        if isinstance(node, Literal | Dot | Nil):
            raise self.error(f"unexpected . after term {go_quote(node_str(node))}")
        return Chain(node.pos, node, tuple(fields))

    def term(self) -> Any:
        tok = self.next_non_space()
        kind, pos = tok.kind, tok.pos
        if kind == "ident":
            if tok.value not in FUNCS:
                raise self.error(f"function {go_quote(tok.value)} not defined", pos)
            return Identifier(pos, tok.value)
        if kind in ("dot", "nil"):
            return Dot(pos) if kind == "dot" else Nil(pos)
        if kind == "var":
            if tok.value not in self.vars:
                raise self.error(f"undefined variable {go_quote(tok.value)}", pos)
            return Variable(pos, (tok.value,))
        if kind == "field":
            return Field(pos, (tok.value[1:],))
        if kind == "lparen":
            return self.nested(
                "parenthesized pipeline", lambda: self.pipeline("parenthesized pipeline", "rparen")
            )
        try:
            if kind == "bool":
                return Literal(pos, tok.value == "true", tok.value)
            if kind in ("number", "charconst"):
                return Literal(pos, number_value(tok.value), tok.value)
            if kind in ("string", "raw"):
                return Literal(pos, unquote(tok.value), tok.value)
        except ValueError as exc:
            raise self.error(f"{exc}: {tok.value}", pos) from None
        self.i -= 1
        return None


def _is_empty_tree(nodes: list[Any]) -> bool:
    return all(isinstance(n, Text) and not n.text.strip() for n in nodes)
