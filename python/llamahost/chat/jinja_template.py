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
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any, Final

import jinja2

from llamahost.chat.jinja_limits import (
    Limits,
    RenderState,
    rendering,
)
from llamahost.chat.jinja_sandbox import (
    MAX_COMPILED_CHARS,
    GuardedEnvironment,
    GuardInserter,
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

#: Text that marks a message's content while probing what content types a template takes.
_PROBE_TEXT = "llamahost-content-probe"

#: Longest template source, and longest Python it may compile to: Python's compiler takes
#: about 100 bytes of memory per character it compiles. Real chat templates are a few
#: KB and compile to 3 to 8 times their length.
MAX_SOURCE_CHARS: Final = 128 * 1024

#: Output pieces are joined into one string every this many pieces.
_OUTPUT_BLOCK_PIECES: Final = 1024

#: Longest error detail quoted from an exception the template caused.
_MAX_ERROR_DETAIL: Final = 1000

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
        self._environment = GuardedEnvironment(
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
            GuardInserter().visit(tree)
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
                message["content"] = _plain_copy(_join_text_parts(index, content), inputs)
            elif kind == "parts" and isinstance(content, str):
                message["content"] = _plain_copy([{"type": "text", "text": content}], inputs)
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
            "messages": _plain_copy(messages, inputs),
            "tools": None if tools is None else _plain_copy(tools, inputs),
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
            variables[name] = _plain_copy(value, inputs)
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
                    f"chat template broke a sandbox rule{_at_line(error)}: {_error_detail(error)}"
                ) from error
            except RecursionError as error:
                raise TemplateError(
                    f"chat template recursed too deeply{_at_line(error)}: {error}"
                ) from error
            except Exception as error:
                raise TemplateError(
                    f"chat template failed{_at_line(error)}: "
                    f"{type(error).__name__}: {_error_detail(error)}"
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


def _plain_copy(value: Any, ids: set[int]) -> Any:
    """A deep copy of JSON-like data with every mapping a dict and every sequence a list;
    the id of every object in it is added to ``ids``."""
    copy: Any
    if isinstance(value, Mapping):
        copy = {key: _plain_copy(item, ids) for key, item in value.items()}
    elif isinstance(value, (list, tuple)):
        copy = [_plain_copy(item, ids) for item in value]
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


def _error_detail(error: BaseException) -> str:
    """An exception's message, cut short (it may quote a huge value)."""
    text = str(error)
    if len(text) > _MAX_ERROR_DETAIL:
        return f"{text[:_MAX_ERROR_DETAIL]}... ({len(text)} characters)"
    return text
