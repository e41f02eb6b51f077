"""Find the tool calls in a model's output text.

Models write tool calls in one of a few syntaxes, set by how they were trained
(and visible in their chat template):

=========  ======================================================================
format     what the model writes
=========  ======================================================================
hermes     ``<tool_call>{"name": "f", "arguments": {...}}</tool_call>``, one block per
           call, anywhere in the text (Hermes, Qwen 2.5/3, SmolLM3 ...)
llama3     ``{"name": "f", "parameters": {...}}`` as the whole output, several joined
           by ``;``, or the same after ``<|python_tag|>`` (Llama 3.1-3.3)
mistral    ``[TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]`` or the newer
           ``[TOOL_CALLS]f[ARGS]{...}`` (Mistral, Mixtral, Magistral, Devstral)
=========  ======================================================================

:func:`parse_tool_calls` returns the text without the calls and the calls. A block
that does not parse stays in the text as it was: parsing never raises and never
drops text. Whitespace that only separated calls from the text is dropped (see
:func:`join_around_calls`).

The scanning rules here are shared with the streaming parser
(:mod:`llamahost.chat.output_parser`), which must reach the same result while the
text arrives in pieces.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llamahost.errors import OptionError

__all__ = ["TOOL_CALL_FORMATS", "ToolCall", "detect_tool_call_format", "parse_tool_calls"]

#: The tool-call syntaxes :func:`parse_tool_calls` knows.
TOOL_CALL_FORMATS = ("hermes", "llama3", "mistral")

HERMES_OPEN = "<tool_call>"
HERMES_CLOSE = "</tool_call>"
MISTRAL_OPEN = "[TOOL_CALLS]"
LLAMA3_OPEN = "<|python_tag|>"

_MISTRAL_ARGS = "[ARGS]"
_MISTRAL_CALL_ID = "[CALL_ID]"
_MISTRAL_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_LLAMA3_KEYS = frozenset({"name", "parameters", "arguments", "type", "id"})
_JSON = json.JSONDecoder()


@dataclass
class ToolCall:
    """One call of a tool (function) the model asked for."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None


def check_tool_format(format: str | None) -> tuple[str, ...]:
    """The formats to parse for ``format``: one name, or all of them for None/"auto"."""
    if format is None or format == "auto":
        return TOOL_CALL_FORMATS
    if format not in TOOL_CALL_FORMATS:
        allowed = ", ".join(repr(name) for name in (*TOOL_CALL_FORMATS, "auto"))
        raise OptionError(f"`format` must be one of {allowed} or None, got {format!r}", "format")
    return (format,)


def openers_for(formats: Sequence[str]) -> tuple[str, ...]:
    """The markers that start a tool call in the given formats."""
    table = {"hermes": HERMES_OPEN, "mistral": MISTRAL_OPEN, "llama3": LLAMA3_OPEN}
    return tuple(table[name] for name in formats)


def detect_tool_call_format(template_source: str) -> str | None:
    """Guess the tool-call format a model uses from its chat template source.

    ``"<tool_call>"`` in the template means "hermes", ``"[TOOL_CALLS]"`` means
    "mistral", ``"<|python_tag|>"`` or an ``ipython`` role means "llama3"; None when
    the template shows no tool-call syntax.
    """
    if HERMES_OPEN in template_source:
        return "hermes"
    if MISTRAL_OPEN in template_source:
        return "mistral"
    if LLAMA3_OPEN in template_source or "ipython" in template_source:
        return "llama3"
    return None


# --------------------------------------------------------------------------- one call


def _arguments(value: Any) -> dict[str, Any] | None:
    """Tool arguments as a dict: a JSON object, or a string holding one; None if neither."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _call_from_object(obj: Any, argument_keys: tuple[str, ...]) -> ToolCall | None:
    """A ToolCall from ``{"name": ..., <argument key>: ...}``, or None if it is not one."""
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        return None
    present = [key for key in argument_keys if key in obj]
    arguments = _arguments(obj[present[0]] if present else None)
    call_id = obj.get("id")
    if arguments is None or (call_id is not None and not isinstance(call_id, str)):
        return None
    return ToolCall(obj["name"], arguments, call_id)


def parse_hermes_block(body: str) -> ToolCall | None:
    """The call inside ``<tool_call>...</tool_call>``, or None if it does not parse."""
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    return _call_from_object(obj, ("arguments", "parameters"))


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def parse_mistral_tail(tail: str) -> list[ToolCall] | None:
    """The calls after ``[TOOL_CALLS]`` up to the end of the text, or None.

    Takes a JSON list of ``{"name", "arguments", "id"?}`` objects, or
    ``name[ARGS]{...}`` (optionally ``name[CALL_ID]id[ARGS]{...}``); either may
    repeat after another ``[TOOL_CALLS]``. Only whitespace may follow.
    """
    calls: list[ToolCall] = []
    position = _skip_space(tail, 0)
    while position < len(tail):
        if tail.startswith(MISTRAL_OPEN, position):
            position = _skip_space(tail, position + len(MISTRAL_OPEN))
            continue
        if tail[position] == "[":
            try:
                items, position = _JSON.raw_decode(tail, position)
            except ValueError:
                return None
            if not isinstance(items, list) or not items:
                return None
            for item in items:
                call = _call_from_object(item, ("arguments",))
                if call is None:
                    return None
                calls.append(call)
        else:
            parsed = _parse_mistral_named_call(tail, position)
            if parsed is None:
                return None
            call, position = parsed
            calls.append(call)
        position = _skip_space(tail, position)
    return calls or None


def _parse_mistral_named_call(text: str, position: int) -> tuple[ToolCall, int] | None:
    """``name[ARGS]{...}`` or ``name[CALL_ID]id[ARGS]{...}`` at ``position``."""
    name_match = _MISTRAL_NAME.match(text, position)
    if name_match is None:
        return None
    position = name_match.end()
    call_id = None
    if text.startswith(_MISTRAL_CALL_ID, position):
        id_end = text.find(_MISTRAL_ARGS, position)
        if id_end < 0:
            return None
        call_id = text[position + len(_MISTRAL_CALL_ID) : id_end].strip() or None
        position = id_end
    if not text.startswith(_MISTRAL_ARGS, position):
        return None
    try:
        arguments, position = _JSON.raw_decode(
            text, _skip_space(text, position + len(_MISTRAL_ARGS))
        )
    except ValueError:
        return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(name_match.group(), arguments, call_id), position


def parse_llama3_calls(text: str) -> list[ToolCall] | None:
    """Calls when ``text`` is nothing but ``{"name", "parameters"}`` objects joined by ``;``.

    Objects may only carry the keys name, parameters (or arguments), type and id,
    so an ordinary JSON answer is not taken for a call. None if ``text`` is not that.
    """
    calls: list[ToolCall] = []
    position = _skip_space(text, 0)
    while position < len(text):
        if calls:
            if text[position] != ";":
                return None
            position = _skip_space(text, position + 1)
            if position == len(text):
                break
        try:
            obj, position = _JSON.raw_decode(text, position)
        except ValueError:
            return None
        if not isinstance(obj, dict) or not obj.keys() <= _LLAMA3_KEYS:
            return None
        call = _call_from_object(obj, ("parameters", "arguments"))
        if call is None:
            return None
        calls.append(call)
        position = _skip_space(text, position)
    return calls or None


def parse_tail(opener: str, tail: str) -> list[ToolCall] | None:
    """Calls that run from ``opener`` (mistral or llama3) to the end of the text, or None."""
    if opener == MISTRAL_OPEN:
        return parse_mistral_tail(tail)
    return parse_llama3_calls(tail)


# --------------------------------------------------------------------------- whole text


def join_around_calls(pieces: Sequence[str]) -> str:
    """Join the text pieces left between parsed tool calls (``len(calls) + 1`` pieces).

    Whitespace right after a call is dropped; whitespace right before a call is kept
    only as a separator between two stretches of text, never at the start or the end.
    With no calls (one piece) the text is returned unchanged.
    """
    parts: list[str] = []
    separator = ""
    last = len(pieces) - 1
    for index, piece in enumerate(pieces):
        if index > 0:
            piece = piece.lstrip()
        if index < last:
            core = piece.rstrip()
            if core:
                if parts:
                    parts.append(separator)
                parts.append(core)
                separator = piece[len(core) :]
        elif piece:
            if parts:
                parts.append(separator)
            parts.append(piece)
    return "".join(parts)


def _find_first(text: str, openers: Sequence[str], start: int) -> tuple[int, str]:
    """The first position at or after ``start`` where an opener begins, and which one."""
    best, best_opener = -1, ""
    for opener in openers:
        position = text.find(opener, start)
        if position >= 0 and (best < 0 or position < best):
            best, best_opener = position, opener
    return best, best_opener


def scan_tool_calls(text: str, formats: Sequence[str]) -> tuple[str, list[ToolCall]]:
    """Find calls that begin with a marker (no bare-JSON rule); see parse_tool_calls."""
    openers = openers_for(formats)
    pieces: list[str] = []
    calls: list[ToolCall] = []
    piece_start = search = 0
    while True:
        position, opener = _find_first(text, openers, search)
        if position < 0:
            break
        body_start = position + len(opener)
        if opener != HERMES_OPEN:
            tail_calls = parse_tail(opener, text[body_start:])
            if tail_calls is not None:
                pieces.append(text[piece_start:position])
                calls.extend(tail_calls)
                piece_start = len(text)
            break  # the tail runs to the end of the text, parsed or not
        close = text.find(HERMES_CLOSE, body_start)
        if close < 0:
            break  # an unclosed block is text
        search = close + len(HERMES_CLOSE)
        call = parse_hermes_block(text[body_start:close])
        if call is not None:
            pieces.append(text[piece_start:position])
            calls.append(call)
            piece_start = search
    pieces.append(text[piece_start:])
    return join_around_calls(pieces), calls


def parse_tool_calls(text: str, *, format: str | None = None) -> tuple[str, list[ToolCall]]:
    """Split model output into (content without the calls, tool calls).

    Args:
        text: what the model wrote (its answer, without thinking).
        format: "hermes", "llama3" or "mistral" to look for that syntax only;
            None or "auto" for all of them.

    The text is scanned for the first call marker. A ``<tool_call>`` block ends at
    ``</tool_call>`` and scanning goes on after it; ``[TOOL_CALLS]`` and
    ``<|python_tag|>`` take the rest of the text. With llama3, text that starts with
    ``{`` is first tried as a whole as ``;``-joined call objects. Anything that does
    not parse stays in the content exactly as written.

    Raises:
        OptionError: ``format`` is not a known format.
    """
    formats = check_tool_format(format)
    if "llama3" in formats and text.lstrip().startswith("{"):
        calls = parse_llama3_calls(text)
        if calls is not None:
            return "", calls
    return scan_tool_calls(text, formats)
