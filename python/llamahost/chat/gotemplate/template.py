"""``GoTemplate``: parse a template once, render it many times within limits."""

from __future__ import annotations

import bisect
import datetime
import time
from collections.abc import Callable, Iterable
from typing import Any

from llamahost.chat.gotemplate.execute import ExecError, Executor
from llamahost.chat.gotemplate.gofmt import go_quote
from llamahost.chat.gotemplate.lexer import ParseError
from llamahost.chat.gotemplate.limits import (
    DEFAULT_MAX_MEMORY_BYTES,
    DEFAULT_MAX_OUTPUT_CHARS,
    DEFAULT_TIMEOUT_S,
    Budget,
)
from llamahost.chat.gotemplate.nodes import node_str
from llamahost.chat.gotemplate.ollama import (
    Values,
    cut_after_response,
    execute_plan,
    message_from,
    tool_list,
    tree_identifiers,
    with_default_system,
    with_response,
)
from llamahost.chat.gotemplate.ollama_types import Message
from llamahost.chat.gotemplate.parser import Parser
from llamahost.errors import OptionError, TemplateError, TemplateLimitError


class GoTemplate:
    """A parsed Go text/template; ``render`` executes it against a data value.

    Errors are TemplateError with Go's wording, ``template: NAME:LINE:COL: ...``; the column
    counts the characters before the spot on its line, as Go's execution errors do. A render
    that passes ``timeout_s``, ``max_output_chars`` (the output, and any one value a function
    builds) or ``max_memory_bytes`` (everything the render builds, counted cumulatively)
    raises TemplateLimitError naming the limit. ``clock`` (seconds) and ``today`` (the local
    date, for ``currentDate``/``yesterdayDate``) are injectable.

    Valid:   ``{{ range .Messages }}{{ .Role }}: {{ .Content }}{{ end }}``
    Invalid: ``{{ if .System }}`` (unexpected EOF), ``{{ .A | nosuch }}`` (function not defined).
    """

    def __init__(
        self,
        source: str,
        *,
        name: str = "",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], datetime.date] = datetime.date.today,
    ) -> None:
        if not timeout_s > 0:
            raise OptionError(f"`timeout_s` must be > 0, got {timeout_s}", option="timeout_s")
        if max_output_chars < 1:
            raise OptionError(
                f"`max_output_chars` must be >= 1, got {max_output_chars}",
                option="max_output_chars",
            )
        if max_memory_bytes < 1:
            raise OptionError(
                f"`max_memory_bytes` must be >= 1, got {max_memory_bytes}",
                option="max_memory_bytes",
            )
        self.source, self.name = source, name
        self.timeout_s, self.max_output_chars = timeout_s, max_output_chars
        self.max_memory_bytes = max_memory_bytes
        self._clock, self._today = clock, today
        self._newlines = [i for i, ch in enumerate(source) if ch == "\n"]
        try:
            parser = Parser(source)
            self._root = parser.parse()
        except ParseError as exc:
            line, col = self._position(exc.pos)
            raise TemplateError(f"template: {name}:{line}:{col}: {exc}") from None
        self._defs = parser.defs
        names = tree_identifiers(self._root + [n for body in self._defs.values() for n in body])
        self.identifiers: frozenset[str] = frozenset(n.lower() for n in names)
        """Lower-cased field and variable names, like Ollama's ``Template.Vars``."""
        self._ollama_root = with_response(self._root, self.identifiers, len(source))
        self._ollama_cut_root = cut_after_response(self._ollama_root)  # legacy templates' last run

    @property
    def supports_insert(self) -> bool:
        """Whether the template uses ``.Suffix``: Ollama's ``insert`` capability (FIM)."""
        return "suffix" in self.identifiers

    @property
    def supports_tools(self) -> bool:
        """Whether the template uses ``.Tools``: Ollama's ``tools`` capability."""
        return "tools" in self.identifiers

    def _position(self, pos: int) -> tuple[int, int]:
        """Line (from 1) and column (characters before it on its line, as Go counts) of ``pos``."""
        line = bisect.bisect_left(self._newlines, pos)
        return line + 1, pos - (self._newlines[line - 1] + 1 if line else 0)

    def render(self, data: Any) -> str:
        """Execute the template on ``data``: a mapping keyed by Go field names, or an object."""
        return self._execute([(self._root, data)])

    def render_ollama(
        self,
        messages: Iterable[Any],
        tools: Iterable[Any] | None = None,
        *,
        system: str | None = None,
        think: bool | str | None = None,
    ) -> str:
        """Render a chat the way Ollama's ``/api/chat`` does (``template.Execute``).

        ``system`` (a Modelfile SYSTEM) goes first unless the chat starts with a system
        message. A template that mentions ``.Messages`` runs once with ``System``,
        ``Messages``, ``Tools``; any other (legacy) template runs once per exchange with
        ``System``/``Prompt``/``Response``. ``think`` is the request's ``think``: a bool, a
        level ("low", "medium", "high") or None (unset), giving ``.Think``, ``.ThinkLevel``
        and ``.IsThinkSet``.
        """
        values = Values(
            messages=with_default_system(messages, system), tools=tool_list(tools), think=think
        )
        return self._execute(self._plan(values))

    def render_ollama_generate(
        self,
        prompt: str,
        *,
        suffix: str | None = None,
        system: str | None = None,
        history: Iterable[Any] = (),
        think: bool | str | None = None,
    ) -> str:
        """Render an ``/api/generate`` request (not raw) the way Ollama does.

        Without ``suffix``: the messages are ``system`` (the request's, else the Modelfile's
        SYSTEM; always first), then ``history`` (the Modelfile's MESSAGEs), then
        ``{"role": "user", "content": prompt}``, rendered with an empty tool list like a chat.
        With a non-empty ``suffix`` (fill-in-the-middle) the template runs once on
        ``.Prompt`` and ``.Suffix`` only (no ``.System``, no messages); the template must use
        ``.Suffix`` (``supports_insert``), otherwise OptionError: Ollama refuses such a
        request with "MODEL does not support insert".
        """
        if suffix:
            if not self.supports_insert:
                raise OptionError(
                    "this template does not support insert (it never uses .Suffix)",
                    option="suffix",
                )
            values = Values(prompt=prompt, suffix=suffix, think=think)
        else:
            msgs: list[Message] = []
            if system:
                msgs.append(Message(Role="system", Content=system))
            msgs.extend(message_from(m, i) for i, m in enumerate(history))
            msgs.append(Message(Role="user", Content=prompt))
            values = Values(messages=msgs, tools=tool_list(()), think=think)
        return self._execute(self._plan(values))

    def _plan(self, values: Values) -> list[tuple[list[Any], Any]]:
        return execute_plan(self._ollama_root, self._ollama_cut_root, self.identifiers, values)

    def _execute(self, runs: list[tuple[list[Any], Any]]) -> str:
        budget = Budget(
            clock=self._clock,
            timeout_s=self.timeout_s,
            max_output_chars=self.max_output_chars,
            max_memory_bytes=self.max_memory_bytes,
            today=self._today,
        )
        out = budget.output_sink()
        for root, data in runs:
            state = Executor(self._defs, budget, out, data)
            try:
                state.walk(data, root)
            except ExecError as exc:
                line, col = self._position(exc.node.pos)
                where, context = f"{self.name}:{line}:{col}", node_str(exc.node)
                raise TemplateError(
                    f"template: {where}: executing {go_quote(self.name)} at <{context}>: {exc}"
                ) from None
            except RecursionError:
                raise TemplateLimitError(
                    "template data is nested too deeply (or is cyclic)"
                ) from None
        return out.getvalue()
