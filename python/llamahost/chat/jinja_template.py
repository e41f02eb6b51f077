"""Render a GGUF's Hugging Face-style Jinja chat template inside a sandbox with limits.

A GGUF file carries its chat template as Jinja source in ``tokenizer.chat_template``.
The template comes with the model file, so it is untrusted code: it runs here in
Jinja's ``ImmutableSandboxedEnvironment`` (no private attributes, no mutation of the
caller's lists and dicts) with the names Hugging Face ``transformers`` provides
(``raise_exception``, ``strftime_now``, an HF-style ``tojson`` filter, ``loopcontrols``,
the ``{% generation %}`` marker), and with limits a sandbox alone does not give. Each
is checked inside single operations, not only between template nodes:

- time, ``max_render_seconds`` (default 2): checked in every call, operator, filter
  and test, every ``for`` and ``range`` iteration, every item a lazy filter (``map``,
  ``select`` ...) yields, every output piece, and inside the longer loops of the
  checks themselves. A single C-level call (a sort, a join, a JSON dump, a power of
  ten) cannot be interrupted, so each one is first bounded by the size checks;
- size, ``max_output_chars`` (default 4 MiB characters, as for Go templates): the
  rendered text, and every value the template builds. Sizes are estimated *before*
  a value is built, deeply (``[a] * 2000`` is 2000 times the size of ``a``, whatever
  its ``len``): for ``*``, ``**``, ``%``, ``+``, ``~``, list and dict literals,
  ``str.format``, the growing ``str`` methods and filters (each with its own
  estimate: ``center``, ``indent``, ``replace``, ``join``, ``format``, ``tojson``,
  ``pprint``, ``wordwrap``, ``batch`` ...), and for the text of every value written
  out, before ``str()`` builds it. Filters that make a container of their input's
  items, and lazy filters as they yield, count each item as at least 32 characters,
  the memory a small object takes. Unlisted filters and callables have their
  inputs weighed before the call and their result after. ``range`` is capped at
  100000 items, as in Jinja's own sandbox and in ``transformers``, integers at
  65536 bits;
- memory, ``max_memory_bytes`` (default 32 MiB): the values the template built and
  still holds (in variables, namespaces, recursive macro frames, output buffers)
  are tracked and may not add up to more;
- compiling: the source may be at most :data:`MAX_SOURCE_CHARS` long and compile to
  at most :data:`MAX_COMPILED_CHARS` of Python (Python's compiler needs about 100
  bytes per character); real chat templates are a few KB.

With the defaults a hostile template fails within about 2 s and 64 MB.

Breaking a limit raises :class:`~llamahost.errors.TemplateLimitError` naming the limit;
touching what the sandbox forbids raises :class:`~llamahost.errors.TemplateSecurityError`;
every other failure (syntax, ``raise_exception``, undefined values, type errors,
runaway recursion) raises :class:`~llamahost.errors.TemplateError` with the template
line where one is known. How sizes are measured is described in ``jinja_limits``.

Example::

    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    prompt = template.render([{"role": "user", "content": "Hi"}])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
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
    bounded_json,
    bounded_pprint,
    bounded_wordcount,
    filter_policy,
    method_label,
    method_policy,
    printf_size,
    str_format_size,
    test_policy,
)
from llamahost.chat.jinja_limits import (
    LEDGER_MIN_BYTES,
    GuardedIterator,
    Limits,
    OutputBuffer,
    RenderState,
    check_deadline,
    current_render,
    escaped_size,
    rendering,
)
from llamahost.errors import (
    OptionError,
    TemplateError,
    TemplateLimitError,
    TemplateSecurityError,
)

__all__ = [
    "DEFAULT_MAX_MEMORY_BYTES",
    "DEFAULT_MAX_OUTPUT_CHARS",
    "DEFAULT_MAX_RENDER_SECONDS",
    "MAX_COMPILED_CHARS",
    "MAX_SOURCE_CHARS",
    "ChatTemplate",
]

DEFAULT_MAX_RENDER_SECONDS: Final = 2.0
#: The same default as Go templates (``llamahost.chat.gotemplate``).
DEFAULT_MAX_OUTPUT_CHARS: Final = 4 * 1024 * 1024
DEFAULT_MAX_MEMORY_BYTES: Final = 32 * 1024 * 1024

#: Names of the hidden filters the compiled template calls: around every ``for`` loop's
#: iterable, every ``~``, every list, tuple or dict literal that is not a constant, and
#: every value assigned with ``{% set %}`` or ``{% with %}``.
_LOOP_GUARD_FILTER = "llamahost_loop_guard"
_CONCAT_FILTER = "llamahost_concat"
_LITERAL_FILTER = "llamahost_literal"
_HOLD_FILTER = "llamahost_hold"

#: Text that marks a message's content while probing what content types a template takes.
_PROBE_TEXT = "llamahost-content-probe"

#: Longest template source, and longest Python it may compile to: Python's compiler takes
#: about 100 bytes of memory per character it compiles. Real chat templates are a few
#: KB and compile to 3 to 8 times their length.
MAX_SOURCE_CHARS: Final = 128 * 1024
MAX_COMPILED_CHARS: Final = 512 * 1024

#: Output pieces are joined into one string every this many pieces.
_OUTPUT_BLOCK_PIECES = 1024

#: Strings shorter than this are too small for the memory ledger (see jinja_limits).
_SHORT_STRING = LEDGER_MIN_BYTES // 4

#: Longest error detail quoted from an exception the template caused.
_MAX_ERROR_DETAIL = 1000

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


def _plain(value: Any, ids: set[int]) -> Any:
    """A deep copy of JSON-like data with every mapping a dict and every sequence a list;
    the id of every object in it is added to ``ids``."""
    copy: Any
    if isinstance(value, Mapping):
        copy = {key: _plain(item, ids) for key, item in value.items()}
    elif isinstance(value, (list, tuple)):
        copy = [_plain(item, ids) for item in value]
    else:
        copy = value
    ids.add(id(copy))
    return copy


def _template_line(error: BaseException) -> int | None:
    """The template line Jinja's rewritten traceback points at, if any."""
    line = None
    trace = error.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == "<template>":
            line = trace.tb_lineno
        trace = trace.tb_next
    return line


def _at_line(error: BaseException) -> str:
    line = _template_line(error)
    return f" at line {line}" if line is not None else ""


def _detail(error: BaseException) -> str:
    """An exception's message, cut short (it may quote a huge value)."""
    text = str(error)
    if len(text) > _MAX_ERROR_DETAIL:
        return f"{text[:_MAX_ERROR_DETAIL]}... ({len(text)} characters)"
    return text


# --------------------------------------------------------------------------- sandbox


class _GuardedCodeGenerator(CodeGenerator):
    """Compiles output buffers (macros, call and set blocks) as size-limited buffers."""

    def buffer(self, frame: Frame) -> None:
        """Start buffering ``frame``'s output in an OutputBuffer instead of a list."""
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.llamahost_buffer()")


class _GuardedEnvironment(ImmutableSandboxedEnvironment):
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
        total = 0
        for argument in (*args, *kwargs.values()):
            total += state.weight(argument)
            state.check_weight(total, f"the arguments of {what.removeprefix('the result of ')}")
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
            if len(text) >= _SHORT_STRING and text is not left and text is not right:
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


class _GuardInserter(NodeTransformer):
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


# --------------------------------------------------------------------------- public


class ChatTemplate:
    """A Hugging Face-style Jinja chat template, compiled once and rendered in a sandbox.

    Args:
        source: the Jinja source, e.g. a GGUF's ``tokenizer.chat_template``.
        bos_token, eos_token: the model's BOS/EOS text, as templates expect them.
        max_render_seconds: wall time one render may take.
        max_output_chars: characters one render may produce; also the largest value
            (measured deeply, see the module docstring) a template may build.
        max_memory_bytes: bytes the values a template built and still holds may take.

    Raises:
        OptionError: a limit is not a positive number.
        TemplateLimitError: the source is too long, or compiles to too much Python.
        TemplateError: the source does not compile (the message names the line).
    """

    def __init__(
        self,
        source: str,
        *,
        bos_token: str = "",
        eos_token: str = "",
        max_render_seconds: float = DEFAULT_MAX_RENDER_SECONDS,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
    ) -> None:
        for option, value in (
            ("source", source),
            ("bos_token", bos_token),
            ("eos_token", eos_token),
        ):
            if not isinstance(value, str):
                raise OptionError(
                    f"`{option}` must be a string, got {type(value).__name__}", option
                )
        if (
            not isinstance(max_render_seconds, (int, float))
            or not math.isfinite(max_render_seconds)
            or max_render_seconds <= 0
        ):
            raise OptionError(
                f"`max_render_seconds` must be a positive number, got {max_render_seconds!r}",
                "max_render_seconds",
            )
        for option, number in (
            ("max_output_chars", max_output_chars),
            ("max_memory_bytes", max_memory_bytes),
        ):
            if not isinstance(number, int) or isinstance(number, bool) or number < 1:
                raise OptionError(f"`{option}` must be an integer >= 1, got {number!r}", option)
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.max_render_seconds = float(max_render_seconds)
        self.max_output_chars = max_output_chars
        self.max_memory_bytes = max_memory_bytes
        self._environment = _GuardedEnvironment(
            Limits(self.max_render_seconds, max_output_chars, max_memory_bytes)
        )
        self._template = self._compile(source)
        self._content_kind: str | None = None  # decided on first render, see _content_support

    def _compile(self, source: str) -> jinja2.Template:
        if len(source) > MAX_SOURCE_CHARS:
            raise TemplateLimitError(
                f"chat template source has {len(source)} characters; "
                f"the limit is {MAX_SOURCE_CHARS}"
            )
        try:
            tree = self._environment.parse(source)
            _GuardInserter().visit(tree)
            tree.set_environment(self._environment)
            return self._environment.from_string(tree)
        except jinja2.TemplateSyntaxError as error:
            raise TemplateError(
                f"chat template does not compile: line {error.lineno}: {error.message}"
            ) from error
        except (RecursionError, MemoryError, SyntaxError) as error:
            raise TemplateError(f"chat template does not compile: {error!r}") from error

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
        extra_context: Mapping[str, Any] | None = None,
    ) -> str:
        """Render the conversation to prompt text.

        Args:
            messages: ``{"role": ..., "content": ...}`` mappings. Content is a string,
                None, or a list of parts such as ``{"type": "text", "text": ...}``; it
                is given to the template in the form the template handles (parts are
                joined with newlines for string-only templates, strings wrapped in a
                text part for parts-only ones). Other keys (``tool_calls``, ``name``,
                ``tool_call_id`` ...) pass through unchanged.
            add_generation_prompt: end with the header of a new assistant turn.
            tools: tool definitions (``{"type": "function", "function": {...}}``), or None.
            extra_context: more template variables, e.g. ``{"enable_thinking": False}``.

        The caller's data is copied, never changed.

        Raises:
            OptionError: ``messages`` or ``extra_context`` is malformed.
            TemplateLimitError: the template ran past a time, size or memory limit.
            TemplateSecurityError: the template broke a sandbox rule.
            TemplateError: the template failed for any other reason.
        """
        variables, inputs = self._variables(messages, add_generation_prompt, tools, extra_context)
        kind = self._content_support()
        for index, message in enumerate(variables["messages"]):
            content = message.get("content")
            if kind == "string" and isinstance(content, list):
                message["content"] = _plain(_join_text_parts(index, content), inputs)
            elif kind == "parts" and isinstance(content, str):
                message["content"] = _plain([{"type": "text", "text": content}], inputs)
        return self._render_variables(variables, inputs)

    def _variables(
        self,
        messages: Sequence[Mapping[str, Any]],
        add_generation_prompt: bool,
        tools: Sequence[Mapping[str, Any]] | None,
        extra_context: Mapping[str, Any] | None,
    ) -> tuple[dict[str, Any], set[int]]:
        """The template's variables (copies of the caller's data), and the ids of
        everything in them (the render's inputs, which the memory limit leaves out)."""
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
            raise OptionError(
                f"`messages` must be a sequence of mappings, got {type(messages).__name__}",
                "messages",
            )
        for index, message in enumerate(messages):
            if not isinstance(message, Mapping):
                raise OptionError(
                    f"`messages[{index}]` must be a mapping, got {type(message).__name__}",
                    "messages",
                )
        inputs: set[int] = set()
        variables: dict[str, Any] = {
            "messages": _plain(messages, inputs),
            "tools": None if tools is None else _plain(tools, inputs),
            "add_generation_prompt": bool(add_generation_prompt),
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        }
        for name, value in (extra_context or {}).items():
            if name in variables or name in self._environment.globals:
                raise OptionError(
                    f"`extra_context` may not set {name!r}: it is a standard template name",
                    "extra_context",
                )
            variables[name] = _plain(value, inputs)
        return variables, inputs

    def _content_support(self) -> str:
        """Which content form the template takes: 'string', 'parts', 'both' or 'unknown'.

        Decided once per instance by rendering a one-message probe each way. A probe
        that breaks a sandbox rule or limit raises at once: such a template would
        break it on the real render too.
        """
        if self._content_kind is None:
            takes_string = self._probe({"role": "user", "content": _PROBE_TEXT})
            takes_parts = self._probe(
                {"role": "user", "content": [{"type": "text", "text": _PROBE_TEXT}]}
            )
            kinds = {(True, True): "both", (True, False): "string", (False, True): "parts"}
            self._content_kind = kinds.get((takes_string, takes_parts), "unknown")
        return self._content_kind

    def _probe(self, message: dict[str, Any]) -> bool:
        variables, inputs = self._variables([message], True, None, None)
        try:
            text = self._render_variables(variables, inputs)
        except TemplateSecurityError:
            raise
        except TemplateError:
            return False
        return _PROBE_TEXT in text and "'type'" not in text and '"type"' not in text

    def _render_variables(self, variables: dict[str, Any], inputs: set[int]) -> str:
        state = RenderState(self._environment.limits, inputs=inputs)
        with rendering(state):
            chunks = self._template.generate(variables)
            try:
                return self._collect(state, chunks)
            except TemplateError:
                raise
            except jinja2.exceptions.SecurityError as error:
                raise TemplateSecurityError(
                    f"chat template broke a sandbox rule{_at_line(error)}: {_detail(error)}"
                ) from error
            except RecursionError as error:
                raise TemplateError(
                    f"chat template recursed too deeply{_at_line(error)}: {error}"
                ) from error
            except Exception as error:
                raise TemplateError(
                    f"chat template failed{_at_line(error)}: "
                    f"{type(error).__name__}: {_detail(error)}"
                ) from error
            finally:
                if isinstance(chunks, Generator):
                    chunks.close()

    def _collect(self, state: RenderState, chunks: Iterator[str]) -> str:
        """The rendered text, counted piece by piece against the output limit."""
        blocks: list[str] = []
        pieces: list[str] = []
        length = 0
        for chunk in chunks:
            length += len(chunk)
            if length > self.max_output_chars:
                raise TemplateLimitError(
                    f"chat template output exceeds max_output_chars={self.max_output_chars}"
                )
            state.check_time()
            if chunk:
                pieces.append(chunk)
                if len(pieces) >= _OUTPUT_BLOCK_PIECES:
                    blocks.append("".join(pieces))
                    pieces.clear()
                    state.remember(blocks[-1])
        return "".join(blocks + pieces) if blocks else "".join(pieces)


def _join_text_parts(index: int, parts: list[Any]) -> str:
    """Join a message's text parts with newlines for a template that takes strings only."""
    texts = []
    for position, part in enumerate(parts):
        where = f"`messages[{index}].content[{position}]`"
        if not isinstance(part, dict) or part.get("type") != "text":
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise OptionError(
                f"{where} has type {kind!r}; this chat template takes text content only",
                "messages",
            )
        text = part.get("text")
        if not isinstance(text, str):
            raise OptionError(f"{where}['text'] must be a string, got {text!r}", "messages")
        texts.append(text)
    return "\n".join(texts)
