"""Ollama's values as its templates see them: Go field names, Go printing, Go JSON.

Matched against Ollama's main branch as of 2026 (the v0.14+ line): ``template/template.go``
converts ``api.Message``/``api.Tool`` into template-only types before executing a template
(``templateMessage``, ``templateToolCall``, ``templateTool``, ...), and ``api/types.go``
defines ``api.ToolProperty`` (``anyOf type items description enum properties required``, all
``omitempty``). What that gives a template, and what the classes here reproduce:

- tool-call ``Arguments`` (``templateArgs``) and top-level tool ``Properties``
  (``templateProperties``) are plain Go maps: ``range``, printing and ``json`` go in sorted
  key order, whatever order the request used; printing gives their JSON (a nil map prints
  ``{}``, its ``json`` is ``null``);
- ``templateToolFunction`` has ``json:"description"`` without ``omitempty``, so a tool
  without a description encodes ``"description":""``;
- nested object parameters are ``api.ToolProperty`` values whose own ``properties`` keep
  the request's order (``*api.ToolPropertiesMap``) and whose ``required`` is kept;
- ``templateMessage``, ``templateToolCall`` and ``templateToolCallFunction`` have no JSON
  tags: ``{{ json . }}`` on them uses the Go field names (``{"Role":...}``).

One deliberate difference: since v0.14 Ollama prints ``{{ .Function }}`` of a tool (and
``{{ . }}`` of a tool, ``{{ .Function.Parameters }}``) as a raw Go struct, because the
template types lost the ``String()`` methods ``api.Tool``/``api.ToolFunction`` had. That is
an acknowledged Ollama bug; templates written for Ollama (Qwen 2.5's among them) expect
JSON there, so these print as their JSON, as Ollama did before v0.14.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from llamahost.chat.gotemplate.gojson import JSONFields, write_json
from llamahost.chat.gotemplate.limits import Sink


def _is_empty(value: Any) -> bool:
    """Go's ``omitempty`` test for the field types used here."""
    if value is None or value is False:
        return True
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value == 0
    if getattr(value, "is_nil", False):
        return True
    return isinstance(value, str | tuple | list) and len(value) == 0


class GoStruct:
    """Base of the frozen dataclasses that stand for Ollama's Go structs in templates.

    Fields keep Go's names (``Role``, ``ToolCalls``). ``json_tags`` holds each field's Go
    JSON tag in declaration order (``omitempty`` drops empty values); an empty ``json_tags``
    means the struct has no tags and encodes its fields under their Go names. Fields named
    in ``nil_when_empty`` are Go slices that are nil when empty (``json`` gives ``null``);
    ``interface_fields`` are ``any`` fields, empty only when nil.
    """

    go_type: ClassVar[str] = "struct"
    json_tags: ClassVar[str] = ""
    nil_when_empty: ClassVar[frozenset[str]] = frozenset()
    interface_fields: ClassVar[frozenset[str]] = frozenset()

    def go_json_value(self) -> JSONFields:
        """The fields ``json.Marshal`` writes, in order (Go's struct encoding)."""
        fields = dataclasses.fields(self)  # type: ignore[arg-type]
        tags = self.json_tags.split() or [f.name for f in fields]
        pairs = JSONFields()
        for f, tag in zip(fields, tags, strict=True):
            key, _, option = tag.partition(",")
            value = getattr(self, f.name)
            if option == "omitempty" and (
                value is None if f.name in self.interface_fields else _is_empty(value)
            ):
                continue
            if f.name in self.nil_when_empty and not value:
                value = None
            pairs.append((key, value))
        return pairs


class _JSONStringer(GoStruct):
    """A struct that prints as its JSON (see the module doc for why)."""

    def go_print(self, out: Sink) -> None:
        write_json(out, self)


class _DictMap(Mapping[str, Any]):
    """A read-only mapping over its own copy of ``items``: the base of the maps below."""

    def __init__(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class OrderedMap(_DictMap):
    """A JSON object that keeps insertion order (``api.ToolPropertiesMap``, and any object
    whose key order matters, such as the config blobs ``create`` writes).

    It ranges, prints and encodes in insertion order; printing gives its JSON.
    """

    go_type = "*api.ToolPropertiesMap"

    def __repr__(self) -> str:
        return f"OrderedMap({self._items!r})"

    def go_map_items(self) -> list[tuple[str, Any]]:
        """The entries in insertion order, the order ``range``, printing and JSON follow."""
        return list(self._items.items())

    def go_print(self, out: Sink) -> None:
        write_json(out, self)


class _StringerMap(_DictMap):
    """A Go ``map[string]T`` with a ``String()`` method that returns its JSON.

    Sorted by key for ``range``, printing and ``json``, like any Go map. ``is_nil`` marks a
    nil map: it prints ``{}`` (the ``String()`` methods check for nil) but encodes ``null``.
    """

    go_type: ClassVar[str] = "map[string]interface {}"

    def __init__(
        self, items: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), *, is_nil: bool = False
    ) -> None:
        super().__init__(items)
        self.is_nil = is_nil and not self._items

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r}{', is_nil=True' if self.is_nil else ''})"

    def go_print(self, out: Sink) -> None:
        if self.is_nil:
            out.write("{}")
        else:
            write_json(out, self._items)

    def go_json_value(self) -> dict[str, Any] | None:
        return None if self.is_nil else self._items


class ToolCallArguments(_StringerMap):
    """Ollama's ``templateArgs``: a tool call's arguments, in sorted key order."""

    go_type = "template.templateArgs"


class ToolProperties(_StringerMap):
    """Ollama's ``templateProperties``: a tool's top-level parameters, in sorted key order."""

    go_type = "template.templateProperties"


class PropertyType(tuple[str, ...]):
    """Ollama's ``PropertyType``: a JSON-schema ``type``, one name or several."""

    go_type = "api.PropertyType"

    def go_json_value(self) -> Any:
        return self[0] if len(self) == 1 else list(self)

    def go_print(self, out: Sink) -> None:
        if len(self) == 1:
            out.write(self[0])
        elif self:
            out.write("[" + " ".join(self) + "]")


class ToolList(list[Any]):
    """Ollama's ``templateTools``: prints as its JSON; ``is_nil`` marks a request without tools."""

    go_type = "template.templateTools"

    def __init__(self, tools: Iterable[Any] = (), *, is_nil: bool = False) -> None:
        super().__init__(tools)
        self.is_nil = is_nil and not self

    def go_json_value(self) -> list[Any] | None:
        return None if self.is_nil else list(self)

    def go_print(self, out: Sink) -> None:
        write_json(out, self)


def _coerce_map(struct: GoStruct, name: str, kind: type[_StringerMap]) -> None:
    """Make the frozen dataclass field ``name`` a ``kind`` map (None: a nil one)."""
    value = getattr(struct, name)
    if not isinstance(value, kind):
        object.__setattr__(struct, name, kind(value or (), is_nil=value is None))


_NO_TYPE = PropertyType()

_TS_TYPES = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean"}
_TS_TYPES |= {"array": "any[]", "object": "Record<string, any>", "null": "null"}


@dataclass(frozen=True)
class ToolProperty(GoStruct):
    """``api.ToolProperty``: the JSON schema of one tool parameter (the keys Ollama keeps).

    Not a Stringer: ``{{ $prop }}`` prints the Go struct, ``{{ $prop.Type }}`` the type.
    """

    go_type = "api.ToolProperty"
    json_tags = "anyOf,omitempty type,omitempty items,omitempty description,omitempty"
    json_tags += " enum,omitempty properties,omitempty required,omitempty"
    interface_fields = frozenset({"Items"})
    AnyOf: tuple[ToolProperty, ...] = ()
    Type: PropertyType = _NO_TYPE
    Items: Any = None
    Description: str = ""
    Enum: tuple[Any, ...] = ()
    Properties: OrderedMap | None = None
    Required: tuple[str, ...] = ()

    def to_typescript_type(self) -> str:
        """``ToolProperty.ToTypeScriptType`` (Ollama's ``toTypeScriptType`` template func)."""
        if self.AnyOf:
            return " | ".join(p.to_typescript_type() for p in self.AnyOf)
        return " | ".join(_TS_TYPES.get(t, "any") for t in self.Type) or "any"


@dataclass(frozen=True)
class ToolFunctionParameters(_JSONStringer):
    """``templateToolFunctionParameters``: a tool's parameter schema."""

    go_type = "template.templateToolFunctionParameters"
    json_tags = "type $defs,omitempty items,omitempty required,omitempty properties"
    interface_fields = frozenset({"Defs", "Items"})
    Type: str = ""
    Defs: Any = None
    Items: Any = None
    Required: tuple[str, ...] = ()
    Properties: ToolProperties = field(default_factory=lambda: ToolProperties(is_nil=True))

    def __post_init__(self) -> None:
        _coerce_map(self, "Properties", ToolProperties)


@dataclass(frozen=True)
class ToolFunction(_JSONStringer):
    """``templateToolFunction``: a tool's name, description and parameters."""

    go_type = "template.templateToolFunction"
    json_tags = "name description parameters"
    Name: str = ""
    Description: str = ""
    Parameters: ToolFunctionParameters = field(default_factory=ToolFunctionParameters)


@dataclass(frozen=True)
class Tool(_JSONStringer):
    """``templateTool``: one tool offered to the model."""

    go_type = "template.templateTool"
    json_tags = "type items,omitempty function"
    interface_fields = frozenset({"Items"})
    Type: str = ""
    Items: Any = None
    Function: ToolFunction = field(default_factory=ToolFunction)


@dataclass(frozen=True)
class ToolCallFunction(GoStruct):
    """``templateToolCallFunction``: which tool to call, with what arguments (no JSON tags)."""

    go_type = "template.templateToolCallFunction"
    Index: int = 0
    Name: str = ""
    Arguments: ToolCallArguments = field(default_factory=lambda: ToolCallArguments(is_nil=True))

    def __post_init__(self) -> None:
        _coerce_map(self, "Arguments", ToolCallArguments)


@dataclass(frozen=True)
class ToolCall(GoStruct):
    """``templateToolCall``: one tool call an assistant message made (no JSON tags)."""

    go_type = "template.templateToolCall"
    ID: str = ""
    Function: ToolCallFunction = field(default_factory=ToolCallFunction)


@dataclass(frozen=True)
class Message(GoStruct):
    """``templateMessage``: one chat message as Ollama's templates see it (no JSON tags)."""

    go_type = "*template.templateMessage"
    nil_when_empty = frozenset({"Images", "ToolCalls"})
    Role: str = ""
    Content: str = ""
    Thinking: str = ""
    Images: tuple[Any, ...] = ()
    ToolCalls: tuple[ToolCall, ...] = ()
    ToolName: str = ""
    ToolCallID: str = ""
