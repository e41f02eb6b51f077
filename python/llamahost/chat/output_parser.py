"""Parse a chat answer while it streams: thinking, content and tool calls.

Text arrives a few characters at a time. :class:`ChatOutputParser` routes it as it
comes: text inside the thinking tags goes to ``Delta.thinking`` (the tags never
show), tool-call blocks become ``Delta.tool_calls`` once complete and parsed, and
the rest goes to ``Delta.content``. Text that might still turn out to be a tag or
a tool-call marker (``<thi``, ``<tool_ca``) is held back until it is decided, as is
whitespace that would be dropped if a tag or call followed it.

The result does not depend on how the text was split: joining every delta gives
what :func:`~llamahost.chat.thinking.split_thinking` and
:func:`~llamahost.chat.tool_calls.parse_tool_calls` give for the whole text.

How long text is held:

- a ``<tool_call>`` block until ``</tool_call>``; ``[TOOL_CALLS]`` and
  ``<|python_tag|>`` calls, and (llama3) an answer starting with ``{``, until
  :meth:`ChatOutputParser.finish`: they run to the end of the output. A block that
  never completes or does not parse comes out as content.
- with ``think=True``, an output that does not start with the open tag until a
  close tag or the end decides whether the template had opened the thinking; pass
  ``thinking_started=True`` when the prompt ends inside the open tag so thinking
  streams at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from llamahost.chat.thinking import check_tags
from llamahost.chat.tool_calls import (
    HERMES_CLOSE,
    HERMES_OPEN,
    ToolCall,
    check_tool_format,
    openers_for,
    parse_hermes_block,
    parse_llama3_calls,
    parse_tail,
    scan_tool_calls,
)

__all__ = ["ChatOutputParser", "Delta"]


@dataclass
class Delta:
    """A piece of a streamed answer: new content, new thinking, or finished tool calls."""

    content: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


#: A routed piece of text: ("thinking" | "content", text) or ("calls", [ToolCall, ...]).
_Event = tuple[str, "str | list[ToolCall]"]


def _partial_suffix(text: str, tags: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that is the start of one of ``tags``."""
    longest = 0
    for tag in tags:
        for size in range(min(len(tag) - 1, len(text)), longest, -1):
            if text.endswith(tag[:size]):
                longest = size
                break
    return longest


class _ThinkingStream:
    """split_thinking, incrementally: turns text into thinking and content events."""

    def __init__(self, enabled: bool, open_tag: str, close_tag: str, started: bool) -> None:
        self._open = open_tag
        self._close = close_tag
        if not enabled:
            self._mode = "content"
        else:
            self._mode = "thinking" if started else "start"
        self._buffer = ""
        self._scan_from = 0  # "undecided": neither tag occurs before this offset
        self._thinking_seen = False  # some non-space thinking went out
        self._held_space = ""  # trailing thinking whitespace, dropped if the thinking ends

    def feed(self, text: str, *, final: bool = False) -> list[_Event]:
        """Route ``text``; with ``final`` also flush what was held."""
        self._buffer += text
        events: list[_Event] = []
        while self._step(events, final):
            pass
        return events

    def _step(self, events: list[_Event], final: bool) -> bool:
        """Advance by one decision; return True while another one may follow."""
        mode = self._mode
        if mode == "start":  # leading whitespace and, maybe, the start of the open tag
            stripped = self._buffer.lstrip()
            if stripped.startswith(self._open):
                self._buffer = stripped[len(self._open) :]
                self._mode = "thinking"
                return True
            if not final and self._open.startswith(stripped):
                return False
            self._mode = "undecided"
            return True
        if mode == "undecided":  # thinking opened by the template, or plain content?
            return self._step_undecided(events, final)
        if mode == "thinking":
            close = self._buffer.find(self._close)
            if close >= 0:
                self._emit_thinking(events, self._buffer[:close])
                self._buffer = self._buffer[close + len(self._close) :]
                self._mode = "after"
                return True
            keep = 0 if final else _partial_suffix(self._buffer, (self._close,))
            self._emit_thinking(events, self._buffer[: len(self._buffer) - keep])
            self._buffer = self._buffer[len(self._buffer) - keep :]
            return False
        if mode == "after":  # whitespace after the close tag is dropped
            stripped = self._buffer.lstrip()
            self._buffer = stripped
            if stripped:
                self._mode = "content"
            return bool(stripped)
        if self._buffer:
            events.append(("content", self._buffer))
            self._buffer = ""
        return False

    def _step_undecided(self, events: list[_Event], final: bool) -> bool:
        close = self._buffer.find(self._close, self._scan_from)
        opened = self._buffer.find(self._open, self._scan_from)
        if (opened >= 0 and (close < 0 or opened < close)) or (close < 0 and final):
            self._mode = "content"  # an open tag came first, or no tag at all
            return True
        if close >= 0:
            self._emit_thinking(events, self._buffer[:close])
            self._buffer = self._buffer[close + len(self._close) :]
            self._mode = "after"
            return True
        longest_tag = max(len(self._open), len(self._close))
        self._scan_from = max(0, len(self._buffer) - longest_tag + 1)
        return False

    def _emit_thinking(self, events: list[_Event], text: str) -> None:
        """Send thinking text, with the whitespace around the whole thinking dropped."""
        if not self._thinking_seen:
            text = text.lstrip()
        core = text.rstrip()
        if core:
            events.append(("thinking", self._held_space + core))
            self._held_space = text[len(core) :]
            self._thinking_seen = True
        else:
            self._held_space += text


class _ToolCallStream:
    """parse_tool_calls, incrementally: turns content into content and call events."""

    def __init__(self, tool_format: str | None) -> None:
        self._formats = () if tool_format is None else check_tool_format(tool_format)
        self._openers = openers_for(self._formats)
        self._mode = "start" if "llama3" in self._formats else "scan"
        self._pending = ""
        self._opener = ""
        # Whitespace next to calls (see tool_calls.join_around_calls):
        self._emitted = False  # some non-space content went out
        self._held_space = ""  # trailing content whitespace not yet sent
        self._held_is_separator = False  # a call followed the held whitespace
        self._after_call = False  # drop whitespace until the next text

    def feed(self, text: str, *, final: bool = False) -> list[_Event]:
        """Route ``text``; with ``final`` also flush what was held."""
        if not self._formats:
            return [("content", text)] if text else []
        self._pending += text
        events: list[_Event] = []
        while self._step(events, final):
            pass
        if final and self._held_space and not self._held_is_separator:
            events.append(("content", self._held_space))
            self._held_space = ""
        return events

    def _step(self, events: list[_Event], final: bool) -> bool:
        """Advance by one decision; return True while another one may follow."""
        pending = self._pending
        if self._mode == "start":  # llama3: is the answer a bare JSON call?
            stripped = pending.lstrip()
            if stripped.startswith("{"):
                self._mode = "bare_json"
                return True
            if stripped or final:
                self._mode = "scan"
                return True
            return False
        if self._mode == "bare_json":
            if final:
                self._pending = ""
                calls = parse_llama3_calls(pending)
                if calls is None:
                    content, calls = scan_tool_calls(pending, self._formats)
                    if content:
                        events.append(("content", content))
                if calls:
                    events.append(("calls", calls))
            return False
        if self._mode == "scan":
            return self._step_scan(events, final)
        if self._mode == "hermes":
            close = pending.find(HERMES_CLOSE, len(HERMES_OPEN))
            if close < 0:
                if final:
                    self._send_text(events, pending)
                    self._pending = ""
                return False
            end = close + len(HERMES_CLOSE)
            call = parse_hermes_block(pending[len(HERMES_OPEN) : close])
            if call is None:
                self._send_text(events, pending[:end])
            else:
                self._send_calls(events, [call])
            self._pending = pending[end:]
            self._mode = "scan"
            return True
        # "tail": the calls run to the end of the output
        if final:
            calls = parse_tail(self._opener, pending[len(self._opener) :])
            if calls is None:
                self._send_text(events, pending)
            else:
                self._send_calls(events, calls)
            self._pending = ""
        return False

    def _step_scan(self, events: list[_Event], final: bool) -> bool:
        pending = self._pending
        found, opener = -1, ""
        for candidate in self._openers:
            position = pending.find(candidate)
            if position >= 0 and (found < 0 or position < found):
                found, opener = position, candidate
        if found < 0:
            keep = 0 if final else _partial_suffix(pending, self._openers)
            self._send_text(events, pending[: len(pending) - keep])
            self._pending = pending[len(pending) - keep :]
            return False
        self._send_text(events, pending[:found])
        self._pending = pending[found:]
        self._opener = opener
        self._mode = "hermes" if opener == HERMES_OPEN else "tail"
        return True

    def _send_text(self, events: list[_Event], text: str) -> None:
        if self._after_call:
            text = text.lstrip()
            if not text:
                return
            self._after_call = False
        core = text.rstrip()
        if core:
            events.append(("content", self._held_space + core))
            self._held_space = text[len(core) :]
            self._held_is_separator = False
            self._emitted = True
        else:
            self._held_space += text

    def _send_calls(self, events: list[_Event], calls: list[ToolCall]) -> None:
        if self._emitted:
            self._held_is_separator = True
        else:
            self._held_space = ""
        self._after_call = True
        events.append(("calls", calls))


class ChatOutputParser:
    """Splits a streamed chat answer into thinking, content and tool calls.

    Args:
        think: separate thinking (``<think>...</think>`` by default) from the answer;
            if False, tags are ordinary content.
        tool_format: "hermes", "llama3", "mistral" or "auto" (all three) to parse
            tool calls in that syntax; None when no tools were offered (nothing is
            parsed as a call).
        thinking_started: the prompt ended inside an open thinking tag.
        open_tag, close_tag: the thinking tags.

    Feed each new piece of text to :meth:`feed`, then call :meth:`finish` once.

    Raises:
        OptionError: unknown ``tool_format``, or bad tags.
    """

    def __init__(
        self,
        think: bool,
        tool_format: str | None,
        *,
        thinking_started: bool = False,
        open_tag: str = "<think>",
        close_tag: str = "</think>",
    ) -> None:
        check_tags(open_tag, close_tag)
        self._thinking = _ThinkingStream(bool(think), open_tag, close_tag, thinking_started)
        self._tool_calls = _ToolCallStream(tool_format)
        self._finished = False

    def feed(self, delta: str) -> list[Delta]:
        """Take the next piece of text; return what can be told about it already."""
        if self._finished:
            raise RuntimeError("ChatOutputParser.feed() was called after finish()")
        return self._route(self._thinking.feed(delta), final=False)

    def finish(self) -> list[Delta]:
        """End the stream: flush everything held back. Call once, after the last feed."""
        if self._finished:
            return []
        self._finished = True
        return self._route(self._thinking.feed("", final=True), final=True)

    def _route(self, events: list[_Event], final: bool) -> list[Delta]:
        routed: list[_Event] = []
        for kind, value in events:
            if kind == "content":
                assert isinstance(value, str)
                routed.extend(self._tool_calls.feed(value))
            else:
                routed.append((kind, value))
        if final:
            routed.extend(self._tool_calls.feed("", final=True))
        return _merge(routed)


def _merge(events: list[_Event]) -> list[Delta]:
    """One Delta per run of events of the same kind."""
    deltas: list[Delta] = []
    last_kind = ""
    for kind, value in events:
        if kind != last_kind or not deltas:
            deltas.append(Delta())
            last_kind = kind
        delta = deltas[-1]
        if kind == "content":
            delta.content += value  # type: ignore[operator]
        elif kind == "thinking":
            delta.thinking += value  # type: ignore[operator]
        else:
            delta.tool_calls.extend(value)  # type: ignore[arg-type]
    return deltas
