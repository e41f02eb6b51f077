"""Execution of a parsed tree against data, within limits (Go's ``exec.go``).

``Executor`` runs one tree against one data value, writing into the output ``Sink`` of the
render's ``Budget`` (see ``limits``): the deadline is checked at every node and every loop
iteration, and every value a function builds is bounded while it is built. Errors are
ExecError naming the node they happened at; limits raise TemplateLimitError.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from llamahost.chat.gotemplate.functions import FUNCS, FuncError, is_true
from llamahost.chat.gotemplate.gofmt import (
    go_quote,
    go_type_name,
    map_items,
    short_value,
    write_value,
)
from llamahost.chat.gotemplate.limits import Budget, Sink
from llamahost.chat.gotemplate.nodes import (
    MAX_NESTING,
    Action,
    Branch,
    Chain,
    Command,
    Dot,
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
from llamahost.errors import TemplateLimitError


class ExecError(Exception):
    """An execution error at ``node``; GoTemplate adds the line, column and node text."""

    def __init__(self, message: str, node: Any) -> None:
        super().__init__(message)
        self.node = node


class _Break(Exception):
    """``{{break}}``: leaves the innermost range."""


class _Continue(Exception):
    """``{{continue}}``: ends the innermost range's current iteration."""


_MISSING = object()  # "no value piped in from a previous command"


class Executor:
    """One execution of a parsed tree against one data value (Go's exec.go ``state``)."""

    def __init__(self, defs: dict[str, list[Any]], budget: Budget, out: Sink, data: Any) -> None:
        self.defs = defs
        self.budget = budget
        self.out = out
        self.vars: list[list[Any]] = [["$", data]]
        self.depth = 0

    def walk(self, dot: Any, nodes: list[Any]) -> None:
        for node in nodes:
            self.budget.check_time()
            kind = type(node)
            if kind is Text:
                self.out.write(node.text)
            elif kind is Action:
                value = self.eval_pipeline(dot, node.pipe)
                if not node.pipe.decl:
                    write_value(self.out, "<no value>" if value is None else value)
            elif kind is Branch:
                mark = len(self.vars)  # variables declared from here on end with the branch
                try:
                    self.walk_branch(dot, node)
                finally:
                    del self.vars[mark:]
            elif kind is TemplateCall:
                self.walk_template(dot, node)
            elif kind is LoopControl:
                raise _Break() if node.kind == "break" else _Continue()

    def walk_branch(self, dot: Any, node: Branch) -> None:
        if node.kind == "range":
            self.walk_range(dot, node)
            return
        value = self.eval_pipeline(dot, node.pipe)
        if is_true(value):
            self.walk(value if node.kind == "with" else dot, node.body)
        elif node.else_body is not None:
            self.walk(dot, node.else_body)

    def walk_range(self, dot: Any, node: Branch) -> None:
        value = self.eval_pipeline(dot, node.pipe)
        mark = len(self.vars)
        decl = node.pipe.decl
        if value is None:
            items: Iterable[tuple[Any, Any]] = ()
        elif isinstance(value, list | tuple):
            items = enumerate(value)
        elif isinstance(value, Mapping):
            items = map_items(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            if len(decl) > 1:
                raise ExecError(
                    f"can't use {value} to iterate over more than one variable", node.pipe
                )
            items = ((i, i) for i in range(value))
        else:
            raise ExecError(f"range can't iterate over {short_value(value)}", node.pipe)
        ran = False
        for key, elem in items:
            ran = True
            self.budget.check_time()
            values = (key, elem)[2 - len(decl) :]  # "$e :=" takes the element, "$i, $e :=" both
            for offset, (name, item) in enumerate(zip(decl, values, strict=True)):
                if node.pipe.is_assign:
                    self.set_var(name, item, node)
                else:
                    self.vars[mark - len(decl) + offset][1] = item
            try:
                self.walk(elem, node.body)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                del self.vars[mark:]
        if not ran and node.else_body is not None:
            self.walk(dot, node.else_body)

    def walk_template(self, dot: Any, node: TemplateCall) -> None:
        body = self.defs.get(node.name)
        if body is None:
            raise ExecError(f"template {go_quote(node.name)} not defined", node)
        if self.depth >= MAX_NESTING:
            raise TemplateLimitError(f"template calls nested deeper than {MAX_NESTING} levels")
        new_dot = None if node.pipe is None else self.eval_pipeline(dot, node.pipe)
        saved, self.vars = self.vars, [["$", new_dot]]
        self.depth += 1
        try:
            self.walk(new_dot, body)
        finally:
            self.vars = saved
            self.depth -= 1

    def var_value(self, name: str, node: Any) -> Any:
        for var in reversed(self.vars):
            if var[0] == name:
                return var[1]
        raise ExecError(f"undefined variable: {name}", node)

    def set_var(self, name: str, value: Any, node: Any) -> None:
        for var in reversed(self.vars):
            if var[0] == name:
                var[1] = value
                return
        raise ExecError(f"undefined variable: {name}", node)

    def eval_pipeline(self, dot: Any, pipe: Pipe) -> Any:
        value = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value, pipe)
            else:
                self.vars.append([name, value])
        return value

    def eval_command(self, dot: Any, cmd: Command, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, Field | Chain | Variable):
            return self.eval_arg(dot, first, cmd, final)
        if isinstance(first, Identifier):
            return self.eval_function(dot, first, cmd, final)
        if len(cmd.args) > 1 or final is not _MISSING:
            raise ExecError(f"can't give argument to non-function {node_str(first)}", first)
        if isinstance(first, Nil):
            raise ExecError("nil is not a command", first)
        return self.eval_arg(dot, first)

    def eval_arg(
        self, dot: Any, node: Any, cmd: Command | None = None, final: Any = _MISSING
    ) -> Any:
        """The value of an operand; ``cmd``/``final`` are the arguments when it heads a command."""
        kind = type(node)
        if kind is Literal:
            return node.value
        if kind is Dot:
            return dot
        if kind is Field:
            return self.eval_fields(dot, node.idents, cmd, final, node)
        if kind is Variable:
            value = self.var_value(node.idents[0], node)
            if len(node.idents) == 1:
                if cmd is not None and (len(cmd.args) > 1 or final is not _MISSING):
                    raise ExecError(f"can't give argument to non-function {node_str(node)}", node)
                return value
            return self.eval_fields(value, node.idents[1:], cmd, final, node)
        if kind is Pipe:
            return self.eval_pipeline(dot, node)
        if kind is Identifier:
            return self.eval_function(dot, node, None, _MISSING)
        if kind is Chain:
            if isinstance(node.node, Nil):
                raise ExecError(f"indirection through explicit nil in {node_str(node)}", node)
            return self.eval_fields(self.eval_arg(dot, node.node), node.fields, cmd, final, node)
        return None  # Nil

    def eval_fields(
        self,
        receiver: Any,
        idents: tuple[str, ...],
        cmd: Command | None,
        final: Any,
        node: Any = None,
    ) -> Any:
        """Walk ``.A.B.C`` from ``receiver``: nil at the start gives nil, nil midway is an error."""
        has_args = (cmd is not None and len(cmd.args) > 1) or final is not _MISSING
        if receiver is None:
            return None
        for i, name in enumerate(idents):
            if receiver is None:
                raise ExecError(f"nil pointer evaluating interface {{}}.{name}", node)
            receiver = self.eval_field(name, receiver, has_args and i == len(idents) - 1, node)
        return receiver

    def eval_field(self, name: str, receiver: Any, has_args: bool, node: Any) -> Any:
        if isinstance(receiver, Mapping):
            if has_args:
                raise ExecError(f"{name} is not a method but has arguments", node)
            return receiver.get(name)
        if (
            not isinstance(receiver, str | int | float | bytes | list | tuple)
            and name[:1].isupper()
        ):
            try:
                value = getattr(receiver, name)
            except AttributeError:
                pass
            else:
                if callable(value):  # methods are never called from a template
                    raise ExecError(
                        f"can't evaluate method {name} of type {go_type_name(receiver)}", node
                    )
                if has_args:
                    raise ExecError(f"{name} has arguments but cannot be invoked as function", node)
                return value
        raise ExecError(f"can't evaluate field {name} in type {go_type_name(receiver)}", node)

    def eval_function(self, dot: Any, ident: Identifier, cmd: Command | None, final: Any) -> Any:
        name = ident.name
        arg_nodes = cmd.args[1:] if cmd is not None else []
        func = FUNCS[name]
        count = len(arg_nodes) + (final is not _MISSING)
        if count < func.min_args:
            raise ExecError(
                f"wrong number of args for {name}: want at least {func.min_args}"
                f" got {len(arg_nodes)}",
                ident,
            )
        if func.max_args is not None and count != func.max_args:
            raise ExecError(
                f"wrong number of args for {name}: want {func.max_args} got {count}", ident
            )
        if func.impl is None:  # and/or: evaluate left to right, stop at the deciding operand
            value = None
            for arg in arg_nodes:
                value = self.eval_arg(dot, arg)
                if is_true(value) == (name == "or"):
                    return value
            return value if final is _MISSING else final
        args = [self.eval_arg(dot, arg) for arg in arg_nodes]
        if final is not _MISSING:
            args.append(final)
        positions = range(len(args)) if func.all_strings else func.string_params
        for i in positions:
            if not isinstance(args[i], str):  # Go checks arguments against string parameters
                got = "interface {}" if args[i] is None else go_type_name(args[i])
                node = arg_nodes[i] if i < len(arg_nodes) else ident
                raise ExecError(f"wrong type for value; expected string; got {got}", node)
        try:
            return func.impl(self.budget, args)
        except FuncError as exc:
            raise ExecError(f"error calling {name}: {exc}", cmd or ident) from None
