"""Render a GGUF's Hugging Face-style Jinja chat template inside a sandbox with limits.

A GGUF file carries its chat template as Jinja source in ``tokenizer.chat_template``.
The template comes with the model file, so it is untrusted code: it runs here in
Jinja's ``ImmutableSandboxedEnvironment`` (no private attributes, no mutation of the
caller's lists and dicts) with the names Hugging Face ``transformers`` provides
(``raise_exception``, ``strftime_now``, an HF-style ``tojson`` filter, ``loopcontrols``,
the ``{% generation %}`` marker), and with limits a sandbox alone does not give:

- render time: ``max_render_seconds`` is checked in every call, attribute and item
  lookup, operator, filter, ``range`` iteration and ``for``-loop iteration, and while
  the output is collected;
- output size: the rendered text may hold at most ``max_output_chars`` characters;
- memory: no single string or sequence the template builds may be longer than
  ``max_output_chars``. ``*``, ``**``, ``%`` and ``+`` are intercepted and checked
  before they run, as are padding/width arguments of filters and ``str`` methods
  (``center``, ``indent``, ``replace``, ``join``, ``ljust``, format widths ...);
  every other filter and call result is checked after it runs. ``range`` is capped
  at 100000 items, as in Jinja's own sandbox and in ``transformers``.

Breaking any limit, or touching what the sandbox forbids, raises
:class:`~llamahost.errors.TemplateSecurityError` naming what happened; every other
failure (syntax, ``raise_exception``, undefined values, type errors, runaway
recursion) raises :class:`~llamahost.errors.TemplateError` with the template line
where one is known.

Example::

    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    prompt = template.render([{"role": "user", "content": "Hi"}])
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
import string
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from llamahost.errors import OptionError, TemplateError, TemplateSecurityError

__all__ = ["ChatTemplate"]

#: Names every render defines; ``extra_context`` may not redefine them.
_STANDARD_VARIABLES = ("messages", "tools", "add_generation_prompt", "bos_token", "eos_token")

#: Integers above this many bits are refused (``10 ** 10 ** 9`` would take minutes).
_MAX_INTEGER_BITS = 1 << 16

#: Names of the hidden filters that wrap every ``for`` loop's iterable and every ``~``.
_LOOP_GUARD_FILTER = "llamahost_loop_guard"
_CONCAT_FILTER = "llamahost_concat"

#: Text that marks a message's content while probing what content types a template takes.
_PROBE_TEXT = "llamahost-content-probe"

_PRINTF_FIELD = re.compile(r"%(?:%|(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?)")


@dataclass
class _RenderBudget:
    """The deadline of the render now running on this thread or task."""

    deadline: float
    max_seconds: float

    def check_time(self) -> None:
        """Raise TemplateSecurityError once the render has run past its deadline."""
        if time.monotonic() > self.deadline:
            raise TemplateSecurityError(
                f"chat template ran longer than max_render_seconds={self.max_seconds:g}"
            )


_current_budget: ContextVar[_RenderBudget | None] = ContextVar(
    "llamahost_template_budget", default=None
)


def _check_deadline() -> None:
    """Check the running render's deadline (nothing to check at compile time)."""
    budget = _current_budget.get()
    if budget is not None:
        budget.check_time()


# --------------------------------------------------------------------------- sizes


def _printf_growth(fmt: str) -> int:
    """Characters the width and precision fields of a ``%``-format string can add."""
    total = 0
    for match in _PRINTF_FIELD.finditer(fmt):
        for number in match.groups():
            if number == "*":
                raise TemplateSecurityError(
                    "chat template used a `*` width in a %-format string; only literal "
                    "widths are allowed"
                )
            if number is not None:
                total += int(number)
    return total


def _str_format_growth(fmt: str) -> int | None:
    """Characters the format specs of a ``str.format`` string can add (None: unparsable)."""
    total = 0
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return None
    for _literal, _field, spec, _conversion in fields:
        if not spec:
            continue
        if "{" in spec:
            raise TemplateSecurityError(
                "chat template used a nested field in a str.format spec; only literal "
                "widths are allowed"
            )
        total += sum(int(number) for number in re.findall(r"\d+", spec))
    return total


def _replace_size(text: str, old: str, new: str, count: Any) -> int:
    """Length of ``text.replace(old, new, count)``, over-estimated, without building it."""
    occurrences = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * len(new)


def _join_size(separator: Any, items: Any) -> int | None:
    """Length of ``separator.join(items)`` for a list or tuple of strings (None: unknown)."""
    if not isinstance(items, (list, tuple)):
        return None
    text_length = sum(len(item) for item in items if isinstance(item, str))
    return text_length + len(str(separator)) * max(len(items) - 1, 0)


def _padded_size(text: Any, width: Any) -> int | None:
    """Length of ``text`` padded to ``width`` (None when width is not an int)."""
    if not isinstance(width, int):
        return None
    return max(len(str(text)), width)


def _str_method_size(text: str, name: str, args: tuple[Any, ...]) -> int | None:
    """Estimated result length of the ``str`` method ``name`` called with ``args``."""
    if name in ("ljust", "rjust", "center", "zfill") and args:
        return _padded_size(text, args[0])
    if name == "expandtabs":
        tab_size = args[0] if args else 8
        if isinstance(tab_size, int):
            return len(text) + text.count("\t") * max(tab_size, 0)
    if name == "replace" and len(args) >= 2:
        count = args[2] if len(args) > 2 else -1
        return _replace_size(text, str(args[0]), str(args[1]), count)
    if name == "join" and args:
        return _join_size(text, args[0])
    return None


def _indent_size(arguments: Mapping[str, Any]) -> int | None:
    """Estimated length of ``s|indent(width)``."""
    text = str(arguments["s"])
    width = arguments["width"]
    pad = width if isinstance(width, int) else len(str(width))
    return len(text) + (text.count("\n") + 1) * max(pad, 0)


def _wordwrap_size(arguments: Mapping[str, Any]) -> int | None:
    """Estimated length of ``s|wordwrap(width, wrapstring=...)``."""
    text = str(arguments["s"])
    width = arguments["width"]
    if not isinstance(width, int):
        return None
    breaks = len(text) // max(width, 1) + text.count("\n") + 1
    return len(text) + breaks * len(str(arguments["wrapstring"] or "\n"))


def _batch_size(arguments: Mapping[str, Any]) -> int | None:
    """Items a ``batch`` or ``slice`` filter may create out of nothing."""
    count = arguments.get("linecount", arguments.get("slices"))
    return count if isinstance(count, int) else None


#: Filters whose result size can be estimated, by parameter name, before they run.
_FILTER_SIZE_ESTIMATES: dict[str, Callable[[Mapping[str, Any]], int | None]] = {
    "center": lambda a: _padded_size(a["value"], a["width"]),
    "indent": _indent_size,
    "format": lambda a: len(str(a["value"])) + _printf_growth(str(a["value"])),
    "replace": lambda a: _replace_size(str(a["s"]), str(a["old"]), str(a["new"]), a["count"]),
    "join": lambda a: _join_size(a["d"], a["value"]),
    "wordwrap": _wordwrap_size,
    "batch": _batch_size,
    "slice": _batch_size,
}


def _estimate(
    signature: inspect.Signature,
    estimate: Callable[[Mapping[str, Any]], int | None],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> int | None:
    """A filter's estimated result size; None when its arguments do not fit the estimate
    (the filter itself then reports bad arguments, and its result is still checked)."""
    try:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return estimate(bound.arguments)
    except (TypeError, ValueError, KeyError):
        return None


# --------------------------------------------------------------------------- helpers


def _raise_exception(message: str) -> None:
    """``raise_exception(msg)`` as Hugging Face templates call it."""
    raise TemplateError(f"chat template raised an error: {message}")


def _strftime_now(fmt: str) -> str:
    """``strftime_now(fmt)``: the local time now, formatted (used for dates in prompts)."""
    return datetime.now().strftime(fmt)


class _GuardedRange:
    """``range`` for templates: at most MAX_RANGE items; iterating checks the deadline."""

    def __init__(self, *args: int) -> None:
        self._range = range(*args)
        if len(self._range) > MAX_RANGE:
            raise TemplateSecurityError(
                f"chat template asked for range() of {len(self._range)} items; "
                f"the limit is {MAX_RANGE}"
            )

    def __iter__(self) -> Iterator[int]:
        for number in self._range:
            _check_deadline()
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


@jinja2.pass_context
def _loop_guard(_context: jinja2.runtime.Context, iterable: Any) -> Iterator[Any]:
    """Wraps each ``for`` loop's iterable so every iteration checks the deadline."""
    for item in iterable:
        _check_deadline()
        yield item


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


def _plain(value: Any) -> Any:
    """A deep copy of JSON-like data with every mapping a dict and every sequence a list."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


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


# --------------------------------------------------------------------------- sandbox


class _GuardedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus deadline and size checks in every hook it offers."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, max_size: int) -> None:
        super().__init__(
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=["jinja2.ext.loopcontrols", _GenerationTagExtension],
        )
        self.max_size = max_size
        self.globals.pop("lipsum", None)
        self.globals.update(
            range=_GuardedRange,
            raise_exception=_raise_exception,
            strftime_now=_strftime_now,
        )
        self.filters["tojson"] = self._to_json
        self.filters = {name: self._guard_filter(name, f) for name, f in self.filters.items()}
        self.filters[_LOOP_GUARD_FILTER] = _loop_guard
        self.filters[_CONCAT_FILTER] = self._concat

    # sizes ------------------------------------------------------------------

    def check_size(self, size: int | None, what: str) -> None:
        """Refuse to build a string or sequence longer than the limit."""
        if size is not None and size > self.max_size:
            raise TemplateSecurityError(
                f"chat template tried to build {what} of {size} items or characters; "
                f"the limit is max_output_chars={self.max_size}"
            )

    def check_value(self, value: Any, what: str) -> Any:
        """Return ``value`` after checking that it is not a too-long string or sequence."""
        if isinstance(value, (str, bytes, list, tuple, dict)):
            self.check_size(len(value), what)
        return value

    # sandbox hooks ----------------------------------------------------------

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        """Fail at once (instead of returning an Undefined that fails only when used)."""
        raise jinja2.exceptions.SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``obj.attribute`` from the template."""
        _check_deadline()
        return self.check_value(super().getattr(obj, attribute), f"attribute {attribute!r}")

    def getitem(self, obj: Any, argument: Any) -> Any:
        """``obj[argument]`` from the template."""
        _check_deadline()
        return self.check_value(super().getitem(obj, argument), "an item")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``'...'.format`` from the template: check the format's widths first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            growth = _str_format_growth(value.__self__)
            self.check_size(None if growth is None else len(value.__self__) + growth, "a format")
        return wrapped

    def call(self, context: jinja2.runtime.Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """A call from the template (functions, methods, macros)."""
        _check_deadline()
        owner = getattr(obj, "__self__", None)
        name = getattr(obj, "__name__", "a function")
        if isinstance(owner, str):
            self.check_size(_str_method_size(owner, name, args), f"the result of str.{name}()")
        for argument in (*args, *kwargs.values()):
            self.check_value(argument, f"an argument of {name}()")
        result = super().call(context, obj, *args, **kwargs)
        return self.check_value(result, f"the result of {name}()")

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        """``*``, ``**``, ``%`` and ``+`` from the template, checked before they run."""
        _check_deadline()
        if operator == "*":
            self._check_multiply(left, right)
        elif operator == "**":
            self._check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            self.check_size(len(left) + _printf_growth(left), "a %-formatted string")
        elif operator == "+" and isinstance(left, (str, list, tuple)) and type(left) is type(right):
            self.check_size(len(left) + len(right), "a concatenation")
        result = super().call_binop(context, operator, left, right)
        return self.check_value(result, f"the result of {operator!r}")

    def _check_multiply(self, left: Any, right: Any) -> None:
        sequence_types = (str, bytes, list, tuple)
        if isinstance(left, sequence_types) and isinstance(right, int):
            self.check_size(len(left) * max(right, 0), "a repeated sequence")
        elif isinstance(right, sequence_types) and isinstance(left, int):
            self.check_size(len(right) * max(left, 0), "a repeated sequence")
        elif isinstance(left, int) and isinstance(right, int):
            self._check_integer_bits(left.bit_length() + right.bit_length())

    def _check_power(self, base: Any, exponent: Any) -> None:
        if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1:
            self._check_integer_bits(base.bit_length() * max(exponent, 0))

    @staticmethod
    def _check_integer_bits(bits: int) -> None:
        if bits > _MAX_INTEGER_BITS:
            raise TemplateSecurityError(
                f"chat template tried to build an integer of about {bits} bits; "
                f"the limit is {_MAX_INTEGER_BITS}"
            )

    # filters ----------------------------------------------------------------

    @jinja2.pass_context
    def _concat(self, _context: jinja2.runtime.Context, operands: list[Any]) -> str:
        """``a ~ b ~ ...`` as Jinja does it (``str()`` of each, joined), size-checked."""
        _check_deadline()
        texts = [str(operand) for operand in operands]
        self.check_size(sum(len(text) for text in texts), "a ~ concatenation")
        return "".join(texts)

    def _guard_filter(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a filter with the deadline check, a size estimate and a result check."""
        estimate = _FILTER_SIZE_ESTIMATES.get(name)
        signature = inspect.signature(function) if estimate is not None else None

        @functools.wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            _check_deadline()
            if estimate is not None and signature is not None:
                self.check_size(_estimate(signature, estimate, args, kwargs), f"|{name}'s result")
            return self.check_value(function(*args, **kwargs), f"|{name}'s result")

        return guarded

    def _to_json(
        self,
        value: Any,
        ensure_ascii: bool = False,
        indent: int | str | None = None,
        separators: tuple[str, str] | None = None,
        sort_keys: bool = False,
    ) -> str:
        """``tojson`` as ``transformers`` defines it: plain ``json.dumps``, no HTML escaping."""
        encoder = json.JSONEncoder(
            ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )
        if indent is None and separators is None:
            return encoder.encode(value)
        # Indentation and separators repeat per item: build piece by piece, within limits.
        self.check_size(len(indent) if isinstance(indent, str) else indent, "a JSON indent")
        pieces: list[str] = []
        length = 0
        for piece in encoder.iterencode(value):
            length += len(piece)
            self.check_size(length, "JSON text")
            pieces.append(piece)
        return "".join(pieces)


class _GuardInserter(NodeTransformer):
    """Routes what no sandbox hook sees through the guards: ``for`` iterables and ``~``."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        """``{% for x in seq %}``: every iteration checks the deadline."""
        self.generic_visit(node)
        node.iter = nodes.Filter(
            node.iter, _LOOP_GUARD_FILTER, [], [], None, None, lineno=node.iter.lineno
        )
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        """``a ~ b``: the joined length is checked before the string is built."""
        self.generic_visit(node)
        operands = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(operands, _CONCAT_FILTER, [], [], None, None, lineno=node.lineno)


# --------------------------------------------------------------------------- public


class ChatTemplate:
    """A Hugging Face-style Jinja chat template, compiled once and rendered in a sandbox.

    Args:
        source: the Jinja source, e.g. a GGUF's ``tokenizer.chat_template``.
        bos_token, eos_token: the model's BOS/EOS text, as templates expect them.
        max_render_seconds: wall time one render may take.
        max_output_chars: characters one render may produce; also the longest string
            or sequence a template may build while rendering.

    Raises:
        OptionError: a limit is not a positive number.
        TemplateError: the source does not compile (the message names the line).
    """

    def __init__(
        self,
        source: str,
        *,
        bos_token: str = "",
        eos_token: str = "",
        max_render_seconds: float = 2.0,
        max_output_chars: int = 1_000_000,
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
        if not isinstance(max_output_chars, int) or max_output_chars < 1:
            raise OptionError(
                f"`max_output_chars` must be an integer >= 1, got {max_output_chars!r}",
                "max_output_chars",
            )
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.max_render_seconds = float(max_render_seconds)
        self.max_output_chars = max_output_chars
        self._environment = _GuardedEnvironment(max_output_chars)
        self._template = self._compile(source)
        self._content_kind: str | None = None  # decided on first render, see _content_support

    def _compile(self, source: str) -> jinja2.Template:
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
            TemplateSecurityError: the template broke a sandbox rule or a limit.
            TemplateError: the template failed for any other reason.
        """
        variables = self._variables(messages, add_generation_prompt, tools, extra_context)
        kind = self._content_support()
        for index, message in enumerate(variables["messages"]):
            content = message.get("content")
            if kind == "string" and isinstance(content, list):
                message["content"] = _join_text_parts(index, content)
            elif kind == "parts" and isinstance(content, str):
                message["content"] = [{"type": "text", "text": content}]
        return self._render_variables(variables)

    def _variables(
        self,
        messages: Sequence[Mapping[str, Any]],
        add_generation_prompt: bool,
        tools: Sequence[Mapping[str, Any]] | None,
        extra_context: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
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
        variables: dict[str, Any] = {
            "messages": _plain(messages),
            "tools": None if tools is None else _plain(tools),
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
            variables[name] = _plain(value)
        return variables

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
        variables = self._variables([message], True, None, None)
        try:
            text = self._render_variables(variables)
        except TemplateSecurityError:
            raise
        except TemplateError:
            return False
        return _PROBE_TEXT in text and "'type'" not in text and '"type"' not in text

    def _render_variables(self, variables: dict[str, Any]) -> str:
        budget = _RenderBudget(time.monotonic() + self.max_render_seconds, self.max_render_seconds)
        token = _current_budget.set(budget)
        chunks = self._template.generate(variables)
        try:
            pieces: list[str] = []
            length = 0
            for chunk in chunks:
                length += len(chunk)
                if length > self.max_output_chars:
                    raise TemplateSecurityError(
                        f"chat template output exceeds max_output_chars={self.max_output_chars}"
                    )
                budget.check_time()
                pieces.append(chunk)
            return "".join(pieces)
        except TemplateError:
            raise
        except jinja2.exceptions.SecurityError as error:
            raise TemplateSecurityError(
                f"chat template broke a sandbox rule{_at_line(error)}: {error}"
            ) from error
        except RecursionError as error:
            raise TemplateError(
                f"chat template recursed too deeply{_at_line(error)}: {error}"
            ) from error
        except Exception as error:
            raise TemplateError(
                f"chat template failed{_at_line(error)}: {type(error).__name__}: {error}"
            ) from error
        finally:
            chunks.close()
            _current_budget.reset(token)


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
