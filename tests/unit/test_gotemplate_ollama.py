"""Ollama's values, functions and procedures, as Ollama's own Go code gives them to templates.

Expected strings are derived from Ollama's source (main branch, 2026, the v0.14+ line):
- template/template.go: ``convertToolsForTemplate``/``convertMessagesForTemplate`` and the
  ``templateTool*``/``templateArgs``/``templateProperties``/``templateMessage`` types, the
  ``funcs`` map (``json``, ``currentDate``, ``yesterdayDate``, ``toTypeScriptType``) and
  ``Template.Execute`` (the ``Prompt``+``Suffix`` branch, ``ThinkLevel``);
- api/types.go: ``ToolProperty`` (``... properties,omitempty required,omitempty``),
  ``ToolPropertiesMap`` (ordered), ``ToTypeScriptType``/``mapToTypeScriptType``,
  ``ThinkValue.Bool``/``String``;
- server/routes.go ``GenerateHandler`` (messages for /api/generate, suffix -> insert) and
  server/images.go ``Capabilities`` (insert = the template mentions ``suffix``).
Go maps marshal and range in sorted key order (encoding/json, text/template's ``range``).
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from llamahost.chat.gotemplate import GoTemplate
from llamahost.errors import OptionError, TemplateError

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "go-templates"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather",
        "parameters": {
            "type": "object",
            "properties": {  # not in sorted order on purpose
                "location": {"type": "string", "description": "The city, e.g. Paris, France"},
                "format": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location", "format"],
        },
    },
}
WEATHER_CALL = {
    "role": "assistant",
    "content": "",
    "tool_calls": [
        {
            "function": {
                "name": "get_current_weather",
                "arguments": {"location": "Paris, France", "format": "celsius"},
            }
        }
    ],
}
CHAT = [{"role": "user", "content": "Weather in Paris?"}, WEATHER_CALL]
ARGS = '{"format":"celsius","location":"Paris, France"}'  # sorted, as Go marshals a map


def fixture(name: str) -> GoTemplate:
    path = FIXTURES / f"{name}.gotmpl"
    if not path.exists():
        pytest.skip(f"fixture {path} is not checked out beside the repository")
    return GoTemplate(path.read_text())


# --- sorted Go maps: tool-call arguments and tool properties --------------------------------


def test_tool_call_arguments_print_in_sorted_key_order() -> None:
    # templateArgs is a map[string]any whose String() is json.Marshal: keys sorted.
    prompt = fixture("qwen2.5").render_ollama(CHAT, [WEATHER_TOOL])
    assert f'{{"name": "get_current_weather", "arguments": {ARGS}}}' in prompt
    tmpl = GoTemplate(
        "{{ range .Messages }}{{ range .ToolCalls }}{{ json .Function.Arguments }}|"
        "{{ range $k, $v := .Function.Arguments }}{{ $k }}={{ $v }};{{ end }}{{ end }}{{ end }}"
    )
    assert tmpl.render_ollama(CHAT) == (
        '{"format":"celsius","location":"Paris, France"}|format=celsius;location=Paris, France;'
    )


def test_tool_properties_range_in_sorted_key_order() -> None:
    # Cohere's command-r template ranges over .Function.Parameters.Properties, a
    # templateProperties map: Ollama's own testdata prints "def get_weather(location: string,
    # unit: string, )" for properties given as unit, location.
    tmpl = GoTemplate(
        "{{ range .Tools }}def {{ .Function.Name }}("
        "{{ range $name, $property := .Function.Parameters.Properties }}"
        "{{ $name }}: {{ $property.Type }}, {{ end }}){{ end }}{{ range .Messages }}{{ end }}"
    )
    assert tmpl.render_ollama(CHAT, [WEATHER_TOOL]) == (
        "def get_current_weather(format: string, location: string, )"
    )
    json_props = GoTemplate(
        "{{ range .Tools }}{{ .Function.Parameters.Properties }}{{ end }}{{ .Messages }}"
    )
    assert json_props.render_ollama([], [WEATHER_TOOL]).startswith(
        '{"format":{"type":"string","enum":["celsius","fahrenheit"]},'
        '"location":{"type":"string","description":"The city, e.g. Paris, France"}}'
    )


def test_qwen_prompt_matches_ollama_for_a_tool_conversation() -> None:
    prompt = fixture("qwen2.5").render_ollama(CHAT, [WEATHER_TOOL])
    assert prompt == (
        "<|im_start|>system\n\n\n# Tools\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        '{"type": "function", "function": {"name":"get_current_weather",'
        '"description":"Get the current weather","parameters":{"type":"object",'
        '"required":["location","format"],"properties":{'
        '"format":{"type":"string","enum":["celsius","fahrenheit"]},'
        '"location":{"type":"string","description":"The city, e.g. Paris, France"}}}}}\n'
        "</tools>\n\nFor each function call, return a json object with function name and"
        " arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n"
        f'{{"name": "get_current_weather", "arguments": {ARGS}}}\n'
        "</tool_call>"
    )


# --- tool definitions serialise like Ollama's template types --------------------------------


def test_tool_without_description_encodes_an_empty_description() -> None:
    # templateToolFunction: Description string `json:"description"` (no omitempty).
    tool = {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
    tmpl = GoTemplate(
        "{{ json .Tools }}|{{ .Tools }}|{{ range .Tools }}{{ .Function }}{{ end }}"
        "{{ if .Messages }}{{ end }}"  # a template without .Messages gets no .Tools
    )
    expected = (
        '{"type":"function","function":{"name":"now","description":"",'
        '"parameters":{"type":"object","properties":null}}}'
    )
    function = expected[len('{"type":"function","function":') : -1]
    assert tmpl.render_ollama([], [tool]) == f"[{expected}]|[{expected}]|{function}"


def test_nested_object_parameters_keep_required_and_their_order() -> None:
    # api.ToolProperty: Properties *ToolPropertiesMap (ordered) and Required []string, both
    # omitempty; only the top level becomes a sorted templateProperties map.
    tool = {
        "type": "function",
        "function": {
            "name": "ship",
            "description": "Ship a parcel",
            "parameters": {
                "type": "object",
                "properties": {
                    "to": {
                        "type": "object",
                        "description": "Address",
                        "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
                        "required": ["street", "city"],
                    },
                    "express": {"type": ["boolean", "null"]},
                },
                "required": ["to"],
            },
        },
    }
    tmpl = GoTemplate("{{ range .Tools }}{{ json .Function.Parameters }}{{ end }}{{ .Messages }}")
    assert tmpl.render_ollama([], [tool]) == (
        '{"type":"object","required":["to"],"properties":{'
        '"express":{"type":["boolean","null"]},'
        '"to":{"type":"object","description":"Address",'
        '"properties":{"street":{"type":"string"},"city":{"type":"string"}},'
        '"required":["street","city"]}}}[]'
    )


def test_arguments_missing_or_empty() -> None:
    # templateArgs(nil).String() is "{}" but json.Marshal of a nil map is "null".
    tmpl = GoTemplate(
        "{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Arguments }} "
        "{{ json .Function.Arguments }};{{ end }}{{ end }}"
    )
    calls = [{"function": {"name": "a"}}, {"function": {"name": "b", "arguments": {}}}]
    assert tmpl.render_ollama([{"role": "assistant", "tool_calls": calls}]) == "{} null;{} {};"


# --- Ollama's template functions -------------------------------------------------------------


def test_current_and_yesterday_date() -> None:
    source = '{{ currentDate }} {{ yesterdayDate }} {{ currentDate "ignored" "too" }}'
    fixed = GoTemplate(source, today=lambda: datetime.date(2026, 3, 1))
    assert fixed.render({}) == "2026-03-01 2026-02-28 2026-03-01"
    before = datetime.date.today()
    today = GoTemplate("{{ currentDate }}").render({})
    assert today in {before.isoformat(), datetime.date.today().isoformat()}  # local date


def test_date_functions_take_only_strings() -> None:
    # func(args ...string): text/template refuses a non-string argument before the call.
    with pytest.raises(TemplateError) as info:
        GoTemplate("{{ currentDate 1 }}").render({})
    assert str(info.value) == (
        'template: :1:15: executing "" at <1>: wrong type for value; expected string; got int'
    )


TYPESCRIPT = [
    ({"type": "string"}, "string"),
    ({"type": "integer"}, "number"),
    ({"type": "number"}, "number"),
    ({"type": "boolean"}, "boolean"),
    ({"type": "array", "items": {"type": "string"}}, "any[]"),
    ({"type": "object"}, "Record<string, any>"),
    ({"type": "null"}, "null"),
    ({"type": "date"}, "any"),
    ({"description": "no type"}, "any"),
    ({"type": ["string", "null"]}, "string | null"),
    (
        {"anyOf": [{"type": "integer"}, {"type": ["string", "boolean"]}]},
        "number | string | boolean",
    ),
]


@pytest.mark.parametrize(("schema", "expected"), TYPESCRIPT)
def test_to_typescript_type(schema: dict[str, object], expected: str) -> None:
    tool = {
        "function": {"name": "f", "parameters": {"type": "object", "properties": {"p": schema}}}
    }
    tmpl = GoTemplate(
        "{{ range .Tools }}{{ range $k, $v := .Function.Parameters.Properties }}"
        "{{ toTypeScriptType $v }}{{ end }}{{ end }}{{ .Messages }}"
    )
    assert tmpl.render_ollama([], [tool]).startswith(expected + "[")


def test_to_typescript_type_of_anything_else_is_any() -> None:
    assert GoTemplate('{{ toTypeScriptType "string" }} {{ toTypeScriptType . }}').render(1) == (
        "any any"
    )


# --- /api/generate: fill-in-the-middle and plain prompts -------------------------------------

FIM = (
    "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>"
    "{{- else }}{{ .Prompt }}{{- end }}"
)


def test_fill_in_the_middle_renders_prompt_and_suffix() -> None:
    tmpl = GoTemplate(FIM)
    assert tmpl.supports_insert
    assert tmpl.render_ollama_generate("def f():", suffix="    return 1") == (
        "<PRE> def f(): <SUF>    return 1 <MID>"
    )
    # without a suffix the prompt is a one-message chat (legacy template: .Prompt)
    assert tmpl.render_ollama_generate("def f():", system="ignored by FIM") == "def f():"


def test_fill_in_the_middle_sees_only_prompt_suffix_and_think() -> None:
    # Execute's FIM branch passes Prompt, Suffix, Response, Think, ThinkLevel, IsThinkSet:
    # .System is a missing key, which prints "<no value>".
    tmpl = GoTemplate("{{ .System }}|{{ .Prompt }}|{{ .Suffix }}|{{ .Think }}|{{ .Messages }}")
    assert tmpl.render_ollama_generate("p", suffix="s", system="sys") == (
        "<no value>|p|s|false|<no value>"
    )


def test_insert_needs_a_template_that_uses_suffix() -> None:
    chatml = fixture("chatml")
    assert not chatml.supports_insert
    with pytest.raises(OptionError, match=r"does not support insert"):
        chatml.render_ollama_generate("def f():", suffix="return 1")


def test_generate_renders_system_history_and_prompt_like_chat() -> None:
    tmpl = GoTemplate(
        "{{ .System }}|{{ range .Messages }}{{ .Role }}:{{ .Content }};{{ end }}"
        "|{{ json .Tools }}|{{ if .Tools }}tools{{ else }}none{{ end }}"
    )
    history = [{"role": "system", "content": "from MESSAGE"}, {"role": "user", "content": "u"}]
    # GenerateHandler: the system prompt always comes first, then the Modelfile's messages,
    # then the prompt; chatPrompt gets an empty (non-nil) tool list.
    assert tmpl.render_ollama_generate("hi", system="S", history=history) == (
        "S\n\nfrom MESSAGE|system:S\n\nfrom MESSAGE;user:u\n\nhi;|[]|none"
    )
    assert tmpl.render_ollama([{"role": "user", "content": "hi"}]) == "|user:hi;|null|none"


@pytest.mark.parametrize(
    "name", ["chatml", "gemma3-instruct", "mistral-instruct", "phi-3", "qwen2.5"]
)
def test_generate_matches_a_one_message_chat(name: str) -> None:
    tmpl = fixture(name)
    assert tmpl.render_ollama_generate("Hi", system="Be brief.") == tmpl.render_ollama(
        [{"role": "user", "content": "Hi"}], system="Be brief."
    )


@pytest.mark.parametrize(
    ("think", "expected"),
    [
        (None, "false||false"),
        (False, "false||true"),
        (True, "true|medium|true"),
        ("high", "true|high|true"),
    ],
)
def test_think_values(think: bool | str | None, expected: str) -> None:
    tmpl = GoTemplate("{{ .Think }}|{{ .ThinkLevel }}|{{ .IsThinkSet }}{{ .Messages }}")
    assert tmpl.render_ollama([], think=think) == expected + "[]"
    fim = GoTemplate("{{ .Think }}|{{ .ThinkLevel }}|{{ .IsThinkSet }}{{ .Suffix }}")
    assert fim.render_ollama_generate("p", suffix="s", think=think) == expected + "s"
