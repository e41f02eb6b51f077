"""``GoTemplate``: parse a template once, render it many times within limits."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable
from typing import Any

from llamahost.errors import OptionError, TemplateError, TemplateSecurityError
from llamahost.chat.gotemplate.execute import Budget, ExecError, Executor
from llamahost.chat.gotemplate.gofmt import go_quote
from llamahost.chat.gotemplate.lexer import ParseError
from llamahost.chat.gotemplate.nodes import node_str
from llamahost.chat.gotemplate.ollama import ollama_runs, tree_identifiers
from llamahost.chat.gotemplate.parser import Parser

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_MAX_OUTPUT_CHARS = 4 * 1024 * 1024


class GoTemplate:
    """A parsed Go text/template; ``render`` executes it against a data value.

    Errors are TemplateError with Go's wording, ``template: NAME:LINE:COL: ...``; the column
    counts the characters before the spot on its line, as Go's execution errors do.

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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not timeout_s > 0:
            raise OptionError(f"`timeout_s` must be > 0, got {timeout_s}", option="timeout_s")
        if max_output_chars < 1:
            raise OptionError(
                f"`max_output_chars` must be >= 1, got {max_output_chars}",
                option="max_output_chars",
            )
        self.source, self.name = source, name
        self.timeout_s, self.max_output_chars, self._clock = timeout_s, max_output_chars, clock
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
        think: bool | None = None,
    ) -> str:
        """Render a chat the way Ollama's ``template.Execute`` does.

        A template that mentions ``.Messages`` runs once with ``System``, ``Messages``, ``Tools``.
        Any other (legacy) template runs once per exchange with ``System``/``Prompt``/``Response``,
        with ``{{ .Response }}`` appended if it has none, and the last run stops at ``.Response``.
        """
        runs = ollama_runs(
            self._root,
            self.identifiers,
            len(self.source),
            messages,
            tools,
            system=system,
            think=think,
        )
        return self._execute(runs)

    def _execute(self, runs: list[tuple[list[Any], Any]]) -> str:
        clock = self._clock
        budget = Budget(clock, clock() + self.timeout_s, self.timeout_s, self.max_output_chars)
        out: list[str] = []
        for root, data in runs:
            state = Executor(self._defs, budget, data)
            try:
                state.walk(data, root)
            except ExecError as exc:
                line, col = self._position(exc.node.pos)
                where, context = f"{self.name}:{line}:{col}", node_str(exc.node)
                raise TemplateError(
                    f"template: {where}: executing {go_quote(self.name)} at <{context}>: {exc}"
                ) from None
            except RecursionError:
                raise TemplateSecurityError(
                    "template data is nested too deeply (or is cyclic)"
                ) from None
            out.extend(state.out)
        return "".join(out)
