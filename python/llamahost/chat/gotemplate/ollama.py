"""Ollama's data binding and its ``template.Execute`` procedure.

``ollama_template_data`` turns Ollama/OpenAI-style JSON messages and tools into the typed values
of ``ollama_types``; ``Values`` is Ollama's ``template.Values`` and ``execute_plan`` ports
``Template.Execute``: it returns the (tree, data) runs to execute, fill-in-the-middle and
legacy per-exchange templates included (template/template.go, version in ``ollama_types``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llamahost.chat.gotemplate.nodes import (
    Action,
    Branch,
    Command,
    Field,
    Pipe,
    TemplateCall,
    Variable,
)
from llamahost.chat.gotemplate.ollama_types import (
    Message,
    OrderedMap,
    PropertyType,
    Tool,
    ToolCall,
    ToolCallArguments,
    ToolCallFunction,
    ToolFunction,
    ToolFunctionParameters,
    ToolList,
    ToolProperties,
    ToolProperty,
)
from llamahost.errors import OptionError


def _mapping(value: Any, what: str, *, optional: bool = True) -> Mapping[str, Any]:
    """``value`` as a JSON object; None reads as ``{}`` where the field is optional."""
    if value is None and optional:
        return {}
    if not isinstance(value, Mapping):
        raise OptionError(f"`{what}` must be an object, got {type(value).__name__}", option=what)
    return value


def _property_from(raw: Any, what: str) -> ToolProperty:
    raw = _mapping(raw, what)
    kind = raw.get("type")
    props = raw.get("properties")
    required = raw.get("required")
    return ToolProperty(
        AnyOf=tuple(
            _property_from(p, f"{what}.anyOf[{i}]") for i, p in enumerate(raw.get("anyOf") or ())
        ),
        Type=PropertyType([kind] if isinstance(kind, str) else kind or ()),
        Items=raw.get("items"),
        Description=str(raw.get("description") or ""),
        Enum=tuple(raw.get("enum") or ()),
        Properties=None if props is None else _properties_from(props, f"{what}.properties"),
        Required=tuple(required) if isinstance(required, list | tuple) else (),
    )


def _properties_from(raw: Any, what: str) -> OrderedMap:
    return OrderedMap(
        (name, _property_from(p, f"{what}.{name}")) for name, p in _mapping(raw, what).items()
    )


def _tool_from(raw: Any, index: int) -> Tool:
    if isinstance(raw, Tool):
        return raw
    what = f"tools[{index}]"
    raw = _mapping(raw, what, optional=False)
    fn = _mapping(raw.get("function"), f"{what}.function")
    params = _mapping(fn.get("parameters"), f"{what}.function.parameters")
    props = params.get("properties")
    required = params.get("required")
    parameters = ToolFunctionParameters(
        Type=str(params.get("type") or ""),
        Defs=params.get("$defs"),
        Items=params.get("items"),
        Required=tuple(required) if isinstance(required, list | tuple) else (),
        Properties=ToolProperties(
            _properties_from(props, f"{what}.function.parameters.properties")
            if props is not None
            else (),
            is_nil=props is None,
        ),
    )
    function = ToolFunction(
        Name=str(fn.get("name") or ""),
        Description=str(fn.get("description") or ""),
        Parameters=parameters,
    )
    return Tool(Type=str(raw.get("type") or ""), Items=raw.get("items"), Function=function)


def _tool_call_from(raw: Any, what: str) -> ToolCall:
    if isinstance(raw, ToolCall):
        return raw
    raw = _mapping(raw, what)
    fn = _mapping(raw.get("function"), f"{what}.function")
    args = fn.get("arguments")
    if isinstance(args, str):  # OpenAI sends the arguments as a JSON string
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            raise OptionError(
                f"`{what}.function.arguments` is not valid JSON: {args[:80]!r}", option=what
            ) from None
    arguments = ToolCallArguments(_mapping(args, f"{what}.function.arguments"), is_nil=args is None)
    function = ToolCallFunction(
        Index=int(fn.get("index") or 0), Name=str(fn.get("name") or ""), Arguments=arguments
    )
    return ToolCall(ID=str(raw.get("id") or ""), Function=function)


def message_from(raw: Any, index: int) -> Message:
    """One chat message (an Ollama/OpenAI-style JSON object, or a Message) as a Message."""
    if isinstance(raw, Message):
        return raw
    what = f"messages[{index}]"
    raw = _mapping(raw, what, optional=False)
    content = raw.get("content")
    if content is not None and not isinstance(content, str):
        raise OptionError(
            f"`{what}.content` must be a string, got {type(content).__name__}", option=what
        )
    calls = raw.get("tool_calls") or ()
    return Message(
        Role=str(raw.get("role") or "").lower(),
        Content=content or "",
        Thinking=str(raw.get("thinking") or ""),
        Images=tuple(raw.get("images") or ()),
        ToolCalls=tuple(_tool_call_from(c, f"{what}.tool_calls[{i}]") for i, c in enumerate(calls)),
        ToolName=str(raw.get("tool_name") or raw.get("name") or ""),
        ToolCallID=str(raw.get("tool_call_id") or ""),
    )


def with_default_system(messages: Iterable[Any], system: str | None) -> list[Message]:
    """The chat handler's messages: ``system`` (a Modelfile SYSTEM) goes first when the
    conversation does not start with a system message."""
    msgs = [message_from(m, i) for i, m in enumerate(messages)]
    if system and (not msgs or msgs[0].Role != "system"):
        msgs.insert(0, Message(Role="system", Content=system))
    return msgs


def collate(msgs: Sequence[Message]) -> tuple[str, list[Message]]:
    """Ollama's ``collate``: consecutive messages of one role (except ``tool``) merge with a
    blank line between; every system message also joins the returned system text."""
    systems: list[str] = []
    collated: list[Message] = []
    for msg in msgs:
        if msg.Role == "system":
            systems.append(msg.Content)
        if collated and collated[-1].Role == msg.Role and msg.Role != "tool":
            collated[-1] = dataclasses.replace(
                collated[-1], Content=collated[-1].Content + "\n\n" + msg.Content
            )
        else:
            collated.append(msg)
    return "\n\n".join(systems), collated


def tool_list(tools: Iterable[Any] | None) -> ToolList:
    return ToolList((_tool_from(t, i) for i, t in enumerate(tools or ())), is_nil=tools is None)


def think_values(think: bool | str | None) -> dict[str, Any]:
    """``Think``, ``ThinkLevel`` and ``IsThinkSet`` from a request's ``think`` (Ollama's
    ``ThinkValue``: ``Bool()`` is true for true or a level; ``String()`` is the level, or
    "medium" for true)."""
    level = "medium" if think is True else "" if think is None or think is False else str(think)
    return {"Think": bool(think), "ThinkLevel": level, "IsThinkSet": think is not None}


def ollama_template_data(
    messages: Iterable[Any] = (),
    tools: Iterable[Any] | None = None,
    system: str | None = None,
    prompt: str | None = None,
    response: str | None = None,
) -> dict[str, Any]:
    """The values an Ollama template sees, keyed by Go field name, from Ollama/OpenAI-style JSON.

    ``messages`` are ``{"role", "content", "tool_calls": [{"function": {"name", "arguments"}}]}``
    dicts (or Message objects); ``tools`` are ``{"type": "function", "function": {...}}``. Both
    become the typed values Ollama converts them into, so ``{{ .Function.Arguments }}`` and
    ``{{ json .Tools }}`` print what Ollama prints. ``.System`` joins every system message;
    ``system`` is the Modelfile default (see ``with_default_system``); without messages
    ``.System`` is ``system`` and ``.Messages`` is empty, so ``prompt``/``response`` fill a
    one-turn legacy template. ``GoTemplate.render_ollama`` runs Ollama's whole procedure.
    """
    msgs = list(messages)
    if msgs:
        system_text, collated = collate(with_default_system(msgs, system))
    else:
        system_text, collated = system or "", []
    return {
        "System": system_text,
        "Prompt": prompt or "",
        "Response": response or "",
        "Messages": collated,
        "Tools": tool_list(tools),
        **think_values(None),
    }


@dataclass(frozen=True)
class Values:
    """Ollama's ``template.Values``: what ``Template.Execute`` is given."""

    messages: Sequence[Message] = ()
    tools: ToolList | None = None
    prompt: str = ""
    suffix: str = ""
    think: bool | str | None = None


def tree_identifiers(nodes: list[Any]) -> Iterator[str]:
    """Field and variable names a tree mentions (Ollama's ``template.Identifiers``)."""
    for node in nodes:
        if isinstance(node, Field | Variable):
            yield from node.idents
        elif isinstance(node, Pipe):
            for cmd in node.cmds:
                yield from tree_identifiers(cmd.args)
        elif isinstance(node, Action | TemplateCall) and node.pipe is not None:
            yield from tree_identifiers([node.pipe])
        elif isinstance(node, Branch):
            yield from tree_identifiers([node.pipe, *node.body, *(node.else_body or ())])


def with_response(root: list[Any], identifiers: frozenset[str], end: int) -> list[Any]:
    """Ollama's ``Parse``: a template mentioning neither ``.Messages`` nor ``.Response`` gets
    ``{{ .Response }}`` appended (at offset ``end``)."""
    if "messages" in identifiers or "response" in identifiers:
        return root
    response = Pipe(end, [], False, [Command(end, [Field(end, ("Response",))])])
    return [*root, Action(end, response)]


def cut_after_response(nodes: list[Any]) -> list[Any]:
    """Ollama's ``deleteNode``: keep the tree up to its first ``.Response`` field, drop the rest."""
    cut = False

    def walk(node: Any) -> Any:
        nonlocal cut
        if isinstance(node, Field) and "Response" in node.idents:
            cut = True
            return node
        if cut:
            return None
        if isinstance(node, Branch):
            else_body = None if node.else_body is None else walk_list(node.else_body)
            return dataclasses.replace(node, body=walk_list(node.body), else_body=else_body)
        if isinstance(node, Action):
            pipe = walk(node.pipe)
            return None if pipe is None else Action(node.pos, pipe)
        if isinstance(node, Pipe):
            cmds = []
            for cmd in node.cmds:
                args = walk_list(cmd.args)
                if not args:
                    return None
                cmds.append(Command(cmd.pos, args))
            return dataclasses.replace(node, cmds=cmds)
        return node

    def walk_list(items: list[Any]) -> list[Any]:
        return [kept for item in items if (kept := walk(item)) is not None]

    return walk_list(nodes)


def execute_plan(
    root: list[Any], cut_root: list[Any], identifiers: frozenset[str], values: Values
) -> list[tuple[list[Any], Any]]:
    """The (tree, data) runs of Ollama's ``Template.Execute`` for ``values``.

    ``root`` is the parsed tree with ``with_response`` applied, ``cut_root`` the same tree
    through ``cut_after_response``. With a prompt and a suffix the template runs once on
    ``Prompt``/``Suffix`` (fill-in-the-middle; no ``.System``); a template that mentions
    ``.Messages`` runs once on the collated messages and the tools; any other (legacy)
    template runs once per exchange on ``System``/``Prompt``/``Response``, the last run on
    ``cut_root``.
    """
    system_text, collated = collate(values.messages)
    common = think_values(values.think)
    if values.prompt and values.suffix:
        fim = {"Prompt": values.prompt, "Suffix": values.suffix, "Response": ""}
        return [(root, fim | common)]
    if "messages" in identifiers or "document" in identifiers:
        data = {
            "System": system_text,
            "Messages": collated,
            "Tools": values.tools if values.tools is not None else ToolList(is_nil=True),
            "Response": "",
        }
        data |= {"Query": "", "Document": "", "Instruction": ""}
        return [(root, data | common)]
    runs: list[tuple[list[Any], Any]] = []
    turn = {"System": "", "Prompt": "", "Response": ""}
    for msg in collated:
        if (msg.Role == "system" and (turn["Prompt"] or turn["Response"])) or (
            msg.Role == "user" and turn["Response"]
        ):
            runs.append((root, turn | common))
            turn = {"System": "", "Prompt": "", "Response": ""}
        key = {"system": "System", "user": "Prompt", "assistant": "Response"}.get(msg.Role)
        if key:
            turn[key] = msg.Content
    runs.append((cut_root, turn | common))
    return runs
