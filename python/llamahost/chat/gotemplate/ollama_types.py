"""Ollama's API values as its templates see them: Go field names, Go printing, Go JSON.

``Message``, ``ToolCall``, ``Tool`` and their parts are frozen dataclasses named and laid out
like Ollama's ``api`` structs, so ``{{ .Function.Arguments }}`` or ``{{ json .Tools }}`` give
the text Ollama gives, in Ollama's field order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from llamahost.chat.gotemplate.gofmt import format_value, go_json, json_string


class GoStruct:
    """Base of the frozen dataclasses that stand for Ollama's Go structs in templates.

    Fields keep Go's names (``Role``, ``ToolCalls``); ``json_tags`` holds each field's Go JSON
    tag, in declaration order, which ``json`` follows (``omitempty`` drops empty values).
    """

    go_type: ClassVar[str] = "struct"
    json_tags: ClassVar[str] = ""

    def go_json(self) -> str:
        """Encode like ``json.Marshal`` with the struct's tags."""
        parts = []
        for f, tag in zip(dataclasses.fields(self), self.json_tags.split(), strict=True):  # type: ignore[arg-type]
            key, _, option = tag.partition(",")
            value = getattr(self, f.name)
            if option == "omitempty" and (value is None or value is False or value in (0, "", ())):
                continue
            parts.append(json_string(key) + ":" + go_json(value))
        return "{" + ",".join(parts) + "}"


class _JSONStringer(GoStruct):
    """A struct with a ``String()`` method that returns its JSON, as several Ollama types have."""

    def go_string(self) -> str:
        return self.go_json()


class OrderedMap(Mapping[str, Any]):
    """A JSON object that keeps insertion order (Ollama's tool-call arguments and tool properties).

    It prints as, and ``json`` encodes it to, its JSON in that order; ``range`` keeps that order.
    """

    go_type = "api.ToolCallFunctionArguments"

    def __init__(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"OrderedMap({self._items!r})"

    def go_map_items(self) -> list[tuple[str, Any]]:
        """The entries in insertion order, the order ``range`` and printing follow."""
        return list(self._items.items())

    def go_json(self) -> str:
        items = self._items.items()
        return "{" + ",".join(json_string(str(k)) + ":" + go_json(v) for k, v in items) + "}"

    def go_string(self) -> str:
        return self.go_json()


class PropertyType(tuple[str, ...]):
    """Ollama's ``PropertyType``: a JSON-schema ``type``, one name or several."""

    go_type = "api.PropertyType"

    def go_json(self) -> str:
        return json_string(self[0]) if len(self) == 1 else go_json(list(self))

    def go_string(self) -> str:
        return self[0] if len(self) == 1 else format_value(list(self)) if self else ""


class ToolList(list[Any]):
    """Ollama's ``api.Tools``: prints as its JSON; ``is_nil`` marks a request without tools."""

    go_type = "api.Tools"

    def __init__(self, tools: Iterable[Any] = (), *, is_nil: bool = False) -> None:
        super().__init__(tools)
        self.is_nil = is_nil and not self

    def go_json(self) -> str:
        return "null" if self.is_nil else "[" + ",".join(go_json(t) for t in self) + "]"

    def go_string(self) -> str:
        return self.go_json()


_NO_TYPE = PropertyType()


@dataclass(frozen=True)
class ToolCallFunction(GoStruct):
    """``api.ToolCallFunction``: which tool to call, with what arguments."""

    go_type = "api.ToolCallFunction"
    json_tags = "index name arguments"
    Index: int = 0
    Name: str = ""
    Arguments: OrderedMap = field(default_factory=OrderedMap)


@dataclass(frozen=True)
class ToolCall(GoStruct):
    """``api.ToolCall``: one tool call an assistant message made."""

    go_type = "api.ToolCall"
    json_tags = "id,omitempty function"
    ID: str = ""
    Function: ToolCallFunction = field(default_factory=ToolCallFunction)


@dataclass(frozen=True)
class Message(GoStruct):
    """``api.Message``: one chat message as Ollama's templates see it."""

    go_type = "*api.Message"
    json_tags = "role content thinking,omitempty images,omitempty tool_calls,omitempty"
    json_tags += " tool_name,omitempty tool_call_id,omitempty"
    Role: str = ""
    Content: str = ""
    Thinking: str = ""
    Images: tuple[Any, ...] = ()
    ToolCalls: tuple[ToolCall, ...] = ()
    ToolName: str = ""
    ToolCallID: str = ""


@dataclass(frozen=True)
class ToolProperty(GoStruct):
    """``api.ToolProperty``: the JSON schema of one tool parameter (the keys Ollama keeps)."""

    go_type = "api.ToolProperty"
    json_tags = "anyOf,omitempty type,omitempty items,omitempty description,omitempty"
    json_tags += " enum,omitempty properties,omitempty"
    AnyOf: tuple[ToolProperty, ...] = ()
    Type: PropertyType = _NO_TYPE
    Items: Any = None
    Description: str = ""
    Enum: tuple[Any, ...] = ()
    Properties: OrderedMap | None = None


@dataclass(frozen=True)
class ToolFunctionParameters(_JSONStringer):
    """``api.ToolFunctionParameters``: a tool's parameter schema."""

    go_type = "api.ToolFunctionParameters"
    json_tags = "type $defs,omitempty items,omitempty required,omitempty properties"
    Type: str = ""
    Defs: Any = None
    Items: Any = None
    Required: tuple[str, ...] = ()
    Properties: OrderedMap | None = None


@dataclass(frozen=True)
class ToolFunction(_JSONStringer):
    """``api.ToolFunction``: a tool's name, description and parameters."""

    go_type = "api.ToolFunction"
    json_tags = "name description,omitempty parameters"
    Name: str = ""
    Description: str = ""
    Parameters: ToolFunctionParameters = field(default_factory=ToolFunctionParameters)


@dataclass(frozen=True)
class Tool(_JSONStringer):
    """``api.Tool``: one tool offered to the model."""

    go_type = "api.Tool"
    json_tags = "type items,omitempty function"
    Type: str = ""
    Items: Any = None
    Function: ToolFunction = field(default_factory=ToolFunction)
