"""The sandbox that renders Jinja chat templates: a guarded environment and the compile
step that puts a size check around everything a template builds.

``GuardedEnvironment`` (Jinja's immutable sandbox, plus the limits of
``jinja_limits``/``jinja_checks`` on every call, operator, filter and output piece) and
``GuardInserter`` (rewrites the template's AST so loops, literals, ``~`` and ``{% set %}``
values go through the guards) are used by :class:`llamahost.chat.jinja_template.ChatTemplate`;
see that module's docstring for the limits themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from types import CodeType
from typing import Any, Final, NoReturn, TypeVar, cast

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from llamahost.chat.jinja_checks import (
    FilterPolicy,
    check_arguments,
    filter_policy,
    method_label,
    method_policy,
    printf_size,
    str_format_size,
    test_policy,
)
from llamahost.chat.jinja_filters import bounded_json, bounded_pprint, bounded_wordcount
from llamahost.chat.jinja_limits import (
    SHORT_STRING,
    GuardedIterator,
    Limits,
    OutputBuffer,
    RenderState,
    check_deadline,
    current_render,
    escaped_size,
)
from llamahost.errors import (
    TemplateError,
    TemplateLimitError,
)

#: Names of the hidden filters the compiled template calls: around every ``for`` loop's
#: iterable, every ``~``, every list, tuple or dict literal that is not a constant, and
#: every value assigned with ``{% set %}`` or ``{% with %}``.
_LOOP_GUARD_FILTER = "llamahost_loop_guard"
_CONCAT_FILTER = "llamahost_concat"
_LITERAL_FILTER = "llamahost_literal"
_HOLD_FILTER = "llamahost_hold"

#: Longest Python a template may compile to: Python's compiler takes about 100 bytes of
#: memory per character it compiles. Real chat templates compile to 3 to 8 times their
#: length (see ``jinja_template.MAX_SOURCE_CHARS``).
MAX_COMPILED_CHARS: Final = 512 * 1024

_F = TypeVar("_F", bound=Callable[..., Any])


def _checked(function: _F) -> _F:
    """Mark a callable that checks its own arguments and result (``call`` trusts it)."""
    function.llamahost_checked = True  # type: ignore[attr-defined]
    return function


@_checked
class _GuardedRange:
    """``range`` for templates: at most MAX_RANGE items; iterating checks the deadline."""

    def __init__(self, *args: int) -> None:
        self._range = range(*args)
        if len(self._range) > MAX_RANGE:
            raise TemplateLimitError(
                f"chat template asked for range() of {len(self._range)} items; "
                f"the limit is {MAX_RANGE}"
            )

    def __iter__(self) -> Iterator[int]:
        for number in self._range:
            check_deadline()
            yield number

    def __reversed__(self) -> Iterator[int]:
        return iter(_GuardedRange._wrap(self._range[::-1]))

    def __len__(self) -> int:
        return len(self._range)

    def __contains__(self, value: object) -> bool:
        return value in self._range

    def __getitem__(self, index: int | slice) -> int | _GuardedRange:
        item = self._range[index]
        return _GuardedRange._wrap(item) if isinstance(item, range) else item

    def __repr__(self) -> str:
        return repr(self._range)

    @staticmethod
    def _wrap(numbers: range) -> _GuardedRange:
        return _GuardedRange(numbers.start, numbers.stop, numbers.step)


class _GuardedLoop:
    """A ``for`` loop's iterable: every iteration checks the deadline.

    It keeps the iterable's length, so that ``loop.length`` does not make Jinja copy
    the items into a list (a string of a million characters into a million strings).
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Any]) -> None:
        self._items = items

    def __iter__(self) -> Iterator[Any]:
        for item in self._items:
            check_deadline()
            yield item

    def __len__(self) -> int:
        return len(self._items)  # type: ignore[arg-type]  # TypeError if unsized, as Jinja expects


@jinja2.pass_context
def _loop_guard(_context: jinja2.runtime.Context, iterable: Iterable[Any]) -> _GuardedLoop:
    """Wraps each ``for`` loop's iterable so every iteration checks the deadline."""
    return _GuardedLoop(iterable)


class _GenerationTagExtension(Extension):
    """Accepts HF's ``{% generation %}...{% endgeneration %}`` and renders the body as is.

    ``transformers`` uses the marker to build assistant-token masks for training;
    for inference it only has to parse.
    """

    tags = {"generation"}  # noqa: RUF012 - the Extension API defines it as a class attribute

    def parse(self, parser: Parser) -> list[nodes.Node]:
        """Parse the body up to ``{% endgeneration %}`` and return it unchanged."""
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


# --------------------------------------------------------------------------- sandbox


class _GuardedCodeGenerator(CodeGenerator):
    """Compiles output buffers (macros, call and set blocks) as size-limited buffers."""

    def buffer(self, frame: Frame) -> None:
        """Start buffering ``frame``'s output in an OutputBuffer instead of a list."""
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.llamahost_buffer()")


class GuardedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus time, size and memory checks in every hook it offers."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _GuardedCodeGenerator

    def __init__(self, limits: Limits) -> None:
        super().__init__(
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=["jinja2.ext.loopcontrols", _GenerationTagExtension],
            finalize=self._finalize,
        )
        self.limits = limits
        self.idle_state = RenderState(limits, timed=False)
        self.globals.pop("lipsum", None)
        self.globals.update(
            range=_GuardedRange,
            raise_exception=self._raise_exception,
            strftime_now=self._strftime_now,
        )
        self.filters.update(tojson=self._to_json, pprint=self._pprint, wordcount=self._wordcount)
        self.filters = {
            name: self._guard(name, function, filter_policy(name), f"|{name}'s result")
            for name, function in self.filters.items()
        }
        self.tests = {
            name: self._guard(
                name,
                cast("Callable[..., Any]", function),
                test_policy(name),
                f"the `is {name}` test",
            )
            for name, function in self.tests.items()
        }
        self.filters[_LOOP_GUARD_FILTER] = _loop_guard
        self.filters[_CONCAT_FILTER] = self._concat
        self.filters[_LITERAL_FILTER] = self._literal
        self.filters[_HOLD_FILTER] = self._hold

    def state(self) -> RenderState:
        """The running render's state (an untimed one while the template compiles)."""
        return current_render.get() or self.idle_state

    def _compile(self, source: str, filename: str) -> CodeType:
        """Compile the Python a template was translated to, unless it is too long."""
        if len(source) > MAX_COMPILED_CHARS:
            raise TemplateLimitError(
                f"chat template compiles to {len(source)} characters of Python; "
                f"the limit is {MAX_COMPILED_CHARS}"
            )
        return super()._compile(source, filename)

    # output -----------------------------------------------------------------

    @jinja2.pass_eval_context
    def _finalize(self, eval_ctx: nodes.EvalContext, value: Any) -> Any:
        """Every ``{{ value }}``: its text is measured before ``str()`` builds it."""
        if type(value) is str and not eval_ctx.autoescape:
            return value
        if isinstance(value, str):
            text = value
        elif value is None or isinstance(value, (int, float)):
            return value
        else:
            text = self.state().to_text(value, "the text of an output value")
        if eval_ctx.autoescape and not hasattr(text, "__html__"):
            self.state().check_chars(escaped_size(text), "escaped output")
        return text

    def llamahost_buffer(self) -> OutputBuffer:
        """A new output buffer (the compiled template calls this, see the code generator)."""
        return OutputBuffer(self.state())

    def concat(self, pieces: Iterable[str]) -> str:
        """Join an output buffer (the compiled template calls this instead of ``"".join``)."""
        if isinstance(pieces, OutputBuffer):
            return pieces.text()
        buffer = OutputBuffer(self.state())
        buffer.extend(pieces)
        return buffer.text()

    # sandbox hooks ----------------------------------------------------------

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        """Fail at once (instead of returning an Undefined that fails only when used)."""
        raise jinja2.exceptions.SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def getitem(self, obj: Any, argument: Any) -> Any:
        """``obj[argument]`` from the template; a slice is a new value."""
        result = super().getitem(obj, argument)
        if isinstance(argument, slice):
            self.state().remember_new(result, obj)
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``'...'.format`` from the template: the result's size is checked first."""
        sandboxed = super().wrap_str_format(value)
        if sandboxed is None:
            return None
        format_string = sandboxed
        fmt: str = value.__self__
        is_format_map = value.__name__ == "format_map"

        @_checked
        def checked(*args: Any, **kwargs: Any) -> str:
            state = self.state()
            state.check_time()
            if is_format_map:
                str_format_size(state, fmt, (), args[0] if len(args) == 1 else {})
            else:
                str_format_size(state, fmt, args, kwargs)
            result = format_string(*args, **kwargs)
            state.remember(result)
            return result

        return checked

    def call(self, context: jinja2.runtime.Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """A call from the template (functions, methods, macros)."""
        state = self.state()
        state.check_time()
        method = method_policy(obj)
        if method is not None:
            check, owner = method
            replaced = check(state, owner, method_label(obj), args, kwargs)
            if replaced is not None:
                args, kwargs = replaced
            result = super().call(context, obj, *args, **kwargs)
            state.remember_new(result, owner, *args)
            return result
        if isinstance(obj, Macro):
            # A macro keeps its arguments while it runs, and returns its output buffer.
            for argument in (*args, *kwargs.values()):
                state.hold(argument)
            return super().call(context, obj, *args, **kwargs)
        if isinstance(obj, LoopContext) or getattr(obj, "llamahost_checked", False):
            return super().call(context, obj, *args, **kwargs)
        what = method_label(obj)
        check_arguments(state, what, args, kwargs)
        result = super().call(context, obj, *args, **kwargs)
        self._check_result(state, result, what)
        state.remember_new(result, obj, *args, *kwargs.values())
        return result

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        """``*``, ``**``, ``%`` and ``+`` from the template, checked before they run."""
        state = current_render.get() or self.idle_state
        state.check_time()
        if operator == "+" and type(left) is str and type(right) is str:
            # The common case, kept short: prompts are mostly strings added up.
            if len(left) + len(right) > state.max_chars:
                state.check_chars(len(left) + len(right), "a concatenation")
            text = left + right
            if len(text) >= SHORT_STRING and text is not left and text is not right:
                state.remember(text)
            return text
        if operator == "*":
            self._check_multiply(state, left, right)
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
                state.check_bits(int(right * math.log2(abs(left))) + 1, "a power")
        elif operator == "%" and isinstance(left, str):
            printf_size(state, left, right, "a %-formatted string")
        elif operator == "+":
            self._check_add(state, left, right)
        result = super().call_binop(context, operator, left, right)
        state.remember_new(result, left, right)
        return result

    @staticmethod
    def _check_multiply(state: RenderState, left: Any, right: Any) -> None:
        for sequence, count in ((left, right), (right, left)):
            if isinstance(count, int) and isinstance(sequence, (str, bytes, list, tuple)):
                if count <= 0:
                    return
                if isinstance(sequence, (str, bytes)):
                    state.check_chars(len(sequence) * count, "a repeated sequence")
                else:
                    state.check_weight(state.weight(sequence) * count, "a repeated sequence")
                return
        if isinstance(left, int) and isinstance(right, int):
            state.check_bits(left.bit_length() + right.bit_length(), "a product")

    @staticmethod
    def _check_add(state: RenderState, left: Any, right: Any) -> None:
        if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
            escape = 5 if isinstance(left, Markup) or isinstance(right, Markup) else 1
            state.check_chars((len(left) + len(right)) * escape, "a concatenation")
        elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            state.check_weight(state.weight(left) + state.weight(right), "a concatenation")

    @staticmethod
    def _check_result(state: RenderState, result: Any, what: str) -> None:
        if isinstance(result, int):
            state.check_bits(result.bit_length(), what)
        else:
            state.check_weight(state.weight(result), what)

    # filters, tests and globals ---------------------------------------------

    def _guard(
        self, name: str, function: Callable[..., Any], policy: FilterPolicy, what: str
    ) -> Callable[..., Any]:
        """Wrap a filter or test with the deadline check and its policy's size checks."""
        pass_arg = _PassArg.from_obj(function)
        pre, post = policy.pre, policy.post
        idle = self.idle_state

        @jinja2.pass_context
        def guarded(context: jinja2.runtime.Context, *args: Any, **kwargs: Any) -> Any:
            state = current_render.get() or idle
            state.check_time()
            if pre is not None:
                replaced = pre(state, self, what, args, kwargs)
                if replaced is not None:
                    args, kwargs = replaced
            if pass_arg is None:
                result = function(*args, **kwargs)
            elif pass_arg is _PassArg.context:
                result = function(context, *args, **kwargs)
            elif pass_arg is _PassArg.eval_context:
                result = function(context.eval_ctx, *args, **kwargs)
            else:
                result = function(context.environment, *args, **kwargs)
            if post == "iter" and isinstance(result, Iterator):
                return GuardedIterator(result, state, what)
            if post == "check":
                self._check_result(state, result, what)
            if post != "none":
                state.remember_new(result, *args)
            return result

        guarded.__name__ = f"guarded_{name}"
        return guarded

    @jinja2.pass_context
    def _concat(self, _context: jinja2.runtime.Context, operands: list[Any]) -> str:
        """``a ~ b ~ ...`` as Jinja does it (``str()`` of each, joined), size-checked."""
        state = self.state()
        state.check_time()
        what = "a ~ concatenation"
        texts: list[str] = []
        total = 0
        for operand in operands:
            text = operand if type(operand) is str else state.to_text(operand, what)
            total += len(text)
            state.check_chars(total, what)
            texts.append(text)
        result = "".join(texts)
        state.remember(result)
        return result

    @jinja2.pass_context
    def _literal(self, _context: jinja2.runtime.Context, value: Any) -> Any:
        """A list, tuple or dict literal: what it holds may repeat a large value."""
        state = self.state()
        state.check_weight(state.weight(value), "a list or dict literal")
        return value

    @jinja2.pass_context
    def _hold(self, _context: jinja2.runtime.Context, value: Any) -> Any:
        """A value assigned to a name: the template keeps it, so it counts however small."""
        (current_render.get() or self.idle_state).hold(value)
        return value

    @jinja2.pass_context
    def _to_json(
        self, _context: jinja2.runtime.Context, value: Any, *args: Any, **kwargs: Any
    ) -> str:
        """``tojson`` as ``transformers`` defines it: plain ``json.dumps``, no HTML escaping."""
        return bounded_json(self.state(), value, *args, **kwargs)

    @jinja2.pass_context
    def _pprint(self, _context: jinja2.runtime.Context, value: Any) -> str:
        """``pprint`` (``pprint.pformat``), with its input and output sizes checked."""
        return bounded_pprint(self.state(), value)

    @jinja2.pass_context
    def _wordcount(self, _context: jinja2.runtime.Context, value: Any) -> int:
        """``wordcount``, counted without building a list of the words."""
        return bounded_wordcount(self.state(), value)

    @_checked
    def _raise_exception(self, message: Any) -> NoReturn:
        """``raise_exception(msg)`` as Hugging Face templates call it."""
        text = self.state().to_text(message, "an error message")
        raise TemplateError(f"chat template raised an error: {text}")

    @_checked
    def _strftime_now(self, fmt: Any) -> str:
        """``strftime_now(fmt)``: the local time now, formatted (used for dates in prompts)."""
        state = self.state()
        # A directive (two characters) expands to at most a few dozen characters.
        state.check_chars(16 * state.text_len(fmt, "a date format") + 64, "a formatted date")
        return datetime.now().strftime(fmt)


def _is_constant(node: nodes.Node) -> bool:
    """Whether a literal holds only constants (its size is then bounded by the source)."""
    if isinstance(node, nodes.Const):
        return True
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return all(_is_constant(item) for item in node.items)
    if isinstance(node, nodes.Dict):
        return all(_is_constant(pair.key) and _is_constant(pair.value) for pair in node.items)
    return False


def _hold(node: nodes.Node) -> nodes.Expr:
    """``node``'s value, recorded as kept by the template (see ``RenderState.hold``)."""
    return nodes.Filter(node, _HOLD_FILTER, [], [], None, None, lineno=node.lineno)


class GuardInserter(NodeTransformer):
    """Routes what no sandbox hook sees through the guards: ``for`` iterables, ``~``,
    and list, tuple and dict literals."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        """``{% for x in seq %}``: every iteration checks the deadline."""
        self.generic_visit(node)
        node.iter = nodes.Filter(
            node.iter, _LOOP_GUARD_FILTER, [], [], None, None, lineno=node.iter.lineno
        )
        return node

    def visit_Assign(self, node: nodes.Assign) -> nodes.Node:
        """``{% set x = value %}``: the value is kept, so it counts toward memory."""
        self.generic_visit(node)
        node.node = _hold(node.node)
        return node

    def visit_With(self, node: nodes.With) -> nodes.Node:
        """``{% with x = value %}``: as for ``{% set %}``."""
        self.generic_visit(node)
        node.values = [_hold(value) for value in node.values]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        """``a ~ b``: the joined length is checked before the string is built."""
        self.generic_visit(node)
        operands = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(operands, _CONCAT_FILTER, [], [], None, None, lineno=node.lineno)

    def _literal(self, node: nodes.List | nodes.Tuple | nodes.Dict) -> nodes.Node:
        self.generic_visit(node)
        if _is_constant(node) or getattr(node, "ctx", "load") != "load":
            return node
        return nodes.Filter(node, _LITERAL_FILTER, [], [], None, None, lineno=node.lineno)

    def visit_List(self, node: nodes.List) -> nodes.Node:
        """``[a, b]``: the list's deep size is checked."""
        return self._literal(node)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        """``(a, b)``: the tuple's deep size is checked."""
        return self._literal(node)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        """``{k: v}``: the dict's deep size is checked."""
        return self._literal(node)
