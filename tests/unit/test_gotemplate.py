"""The Go text/template interpreter for Ollama Modelfile TEMPLATEs.

Expected strings are Go's own output: the RENDER table was checked against Go's text/template
(with Ollama's ``json`` func and ``missingkey=zero``), except the rows marked "Go >= 1.22/1.23",
which follow pkg.go.dev/text/template for those releases. The fixture renders were derived by
hand from the templates (whitespace trimming included) and checked the same way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from llamahost.chat.gotemplate import (
    GoTemplate,
    Message,
    OrderedMap,
    ToolCall,
    ToolCallFunction,
    go_json,
    ollama_template_data,
)
from llamahost.errors import OptionError, TemplateError, TemplateLimitError, TemplateSecurityError

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "go-templates"

RENDER = [
    # --- text, trimming, comments
    ("hello", None, "hello"),
    ("a  {{- .A -}}  b", {"A": 1}, "a1b"),
    ("a \n\t{{- .A }} \n b", {"A": 1}, "a1 \n b"),
    ("a {{- /* c */ -}} \n b", {}, "ab"),
    ("a {{/* c */}} b", {}, "a  b"),
    ("{{- range .L }}\n  {{ . }}\n{{- end }}\n", {"L": [1, 2]}, "\n  1\n  2\n"),
    # --- fields, variables, missing keys (missingkey=zero)
    ("{{ .A }}", {"A": "x"}, "x"),
    ("{{ .Missing }}|{{ print .Missing }}", {}, "<no value>|<nil>"),
    ("{{ .A.B.C }}", {"A": {"B": {"C": "deep"}}}, "deep"),
    ("{{ $.A }}{{ with .B }}{{ $.A }}{{ . }}{{ end }}", {"A": "a", "B": "b"}, "aab"),
    ('{{ $x := .A }}{{ $x }}{{ $x = "y" }}{{ $x }}', {"A": "x"}, "xy"),
    ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ $y := 3 }}{{ end }}{{ $x }}", {}, "2"),
    (
        "{{ (index .L 0).Name }} {{ (.M).k }}",
        {"L": [{"Name": "first"}], "M": {"k": "v"}},
        "first v",
    ),
    ("{{ $ }}", {"A": 1}, "map[A:1]"),
    ("{{ . }}", [1, 2], "[1 2]"),
    ("{{ .A }} {{ .B }}", {"A": True, "B": 3}, "true 3"),
    # --- if / else if / else and Go truth
    ("{{ if .A }}yes{{ else if .B }}b{{ else }}no{{ end }}", {"A": 0, "B": ""}, "no"),
    ("{{ if .A }}yes{{ else if .B }}b{{ else }}no{{ end }}", {"A": 0, "B": "z"}, "b"),
    ("{{ if .A }}yes{{ else }}no{{ end }}", {"A": []}, "no"),
    ("{{ if .A }}yes{{ else }}no{{ end }}", {"A": {}}, "no"),
    ("{{ if .A }}yes{{ else }}no{{ end }}", {"A": 0.0}, "no"),
    ("{{ if .A }}yes{{ else }}no{{ end }}", {"A": False}, "no"),
    ("{{ if .A }}yes{{ else }}no{{ end }}", {"A": None}, "no"),
    ("{{ if .A }}yes{{ else }}no{{ end }}", {"A": {"k": 1}}, "yes"),
    ("{{ if and .A (not .B) }}ok{{ end }}", {"A": 1, "B": 0}, "ok"),
    # --- range
    ("{{ range .L }}[{{ . }}]{{ end }}", {"L": [1, 2, 3]}, "[1][2][3]"),
    ("{{ range $i, $v := .L }}{{ $i }}={{ $v }} {{ end }}", {"L": ["a", "b"]}, "0=a 1=b "),
    ("{{ range $v := .L }}{{ $v }}{{ end }}", {"L": ["a", "b"]}, "ab"),
    (
        "{{ range $k, $v := .M }}{{ $k }}={{ $v }};{{ end }}",
        {"M": {"b": 2, "a": 1, "c": 3}},
        "a=1;b=2;c=3;",
    ),
    ("{{ range .L }}x{{ else }}empty{{ end }}", {"L": []}, "empty"),
    ("{{ range .Missing }}x{{ else }}empty{{ end }}", {}, "empty"),
    (
        "{{ range .L }}{{ if eq . 3 }}{{ break }}{{ end }}"
        "{{ if eq . 1 }}{{ continue }}{{ end }}{{ . }}{{ end }}",
        {"L": [0, 1, 2, 3, 4]},
        "02",
    ),
    ("{{ range $i, $e := .L }}{{ $x := $e }}{{ $x }}{{ end }}", {"L": ["a", "b"]}, "ab"),
    ("{{ range .L }}{{ .Name }},{{ end }}", {"L": [{"Name": "a"}, {"Name": "b"}]}, "a,b,"),
    (
        "{{ range $i, $_ := .L }}{{ if $i }}, {{ end }}{{ $_ }}{{ end }}",
        {"L": ["x", "y", "z"]},
        "x, y, z",
    ),
    ("{{ range $i := 3 }}{{ $i }}{{ end }}", {}, "012"),  # Go >= 1.22: range over an int
    # --- with, define / template / block
    ("{{ with .A }}{{ . }}{{ else }}none{{ end }}", {"A": ""}, "none"),
    ("{{ with $x := .A }}{{ $x }}{{ end }}", {"A": "v"}, "v"),
    (
        "{{ with .A }}a{{ else with .B }}b={{ . }}{{ end }}",
        {"A": "", "B": "x"},
        "b=x",
    ),  # Go >= 1.23
    (
        '{{ define "t" }}[{{ . }}]{{ end }}{{ template "t" .A }}{{ template "t" }}',
        {"A": 5},
        "[5][<no value>]",
    ),
    ('{{ block "b" .A }}<{{ . }}>{{ end }}', {"A": "x"}, "<x>"),
    # --- pipelines, parentheses, literals
    ("{{ (len .L) }} {{ len (slice .L 1) }}", {"L": [1, 2, 3]}, "3 2"),
    ('{{ .A | printf "%s!" }} {{ "x" | printf "%s-%s" "y" }}', {"A": "a"}, "a! y-x"),
    ('{{ .A | len | printf "%d items" }}', {"A": [1, 2, 3]}, "3 items"),
    (
        "{{ \"a\\tb\\n\\x41\\u00e9\\101\" }}|{{ `raw\\n` }}|{{ 'a' }}"
        "|{{ 0x1F }} {{ 0o17 }} {{ 017 }} {{ 0b101 }} {{ 1_000 }} {{ -5 }} {{ +3 }}"
        "|{{ 1.5 }} {{ 1e3 }} {{ .5 }}|{{ true }} {{ false }}",
        {},
        "a\tb\nAéA|raw\\n|97|31 15 15 5 1000 -5 3|1.5 1000 0.5|true false",
    ),
    ('{{ "\\u263a" }}{{ printf "%q" "\\u263a\\x00\\u00a0" }}', {}, '☺"☺\\x00\\u00a0"'),
    # --- comparisons and logic (and/or return the deciding operand, short-circuit)
    ("{{ print nil }} {{ eq .A nil }} {{ eq nil nil }}", {"A": None}, "<nil> true true"),
    (
        '{{ eq .A "x" "y" "z" }} {{ eq .A "q" }} {{ ne 1 2 }} {{ lt 1 2 }} {{ le 2 2 }}'
        ' {{ gt "b" "a" }} {{ ge 1.5 2.5 }}',
        {"A": "z"},
        "true false true true true true false",
    ),
    ('{{ eq .Missing "x" }}', {}, "false"),
    (
        '{{ and 1 0 2 }}|{{ and 1 2 }}|{{ or 0 "" }}|{{ or 0 "x" 3 }}|{{ not 0 }}|{{ not "a" }}',
        {},
        "0|2||x|true|false",
    ),
    ("{{ and .A .A.B }}", {"A": None}, "<no value>"),  # .A.B would fail: never evaluated
    ("{{ or .A .B.C }}", {"A": "set"}, "set"),
    # --- len, index, slice (strings count UTF-8 bytes, like Go)
    ('{{ len "héllo" }} {{ len .L }} {{ len .M }}', {"L": [1], "M": {"a": 1, "b": 2}}, "6 1 2"),
    (
        '{{ index .L 1 }} {{ index .M "k" }} {{ index .N 0 1 }} {{ index "abc" 1 }}'
        ' {{ index .M "zz" }}',
        {"L": [1, 2], "M": {"k": "v"}, "N": [[1, 2]]},
        "2 v 2 98 <no value>",
    ),
    (
        '{{ slice .L 1 3 }} {{ slice .L }} {{ slice .L 2 }} {{ slice "hello" 1 3 }}',
        {"L": [1, 2, 3, 4]},
        "[2 3] [1 2 3 4] [3 4] el",
    ),
    # --- print, println, printf
    ('{{ print 1 2 "a" "b" 3 }}|{{ println 1 "a" }}|{{ print }}', {}, "1 2ab3|1 a\n|"),
    (
        '{{ printf "%d|%5d|%-5d|%05d|%x|%X|%o|%b|%c|%q|%U" 42 42 42 -42 255 255 8 5 65 66 65 }}',
        {},
        "42|   42|42   |-0042|ff|FF|10|101|A|'B'|U+0041",
    ),
    (
        '{{ printf "%s|%10s|%-10s|%.2s|%q|%x|%v" "abc" "abc" "abc" "abc" "a\\"b\\n" "hi" "v" }}',
        {},
        'abc|       abc|abc       |ab|"a\\"b\\n"|6869|v',
    ),
    (
        '{{ printf "%f|%.2f|%8.3f|%e|%g|%v|%G|%.3g" 3.14159 3.14159 3.14159 1234.5678 0.000012'
        " 100000000.0 1e-7 12345.678 }}",
        {},
        "3.141590|3.14|   3.142|1.234568e+03|1.2e-05|1e+08|1E-07|1.23e+04",
    ),
    (
        '{{ printf "%t|%v|%T|%T|%T|%T" true false 1 1.5 "s" .L }}',
        {"L": [1]},
        "true|false|int|float64|string|[]interface {}",
    ),
    (
        '{{ printf "%d %s" 1 }}|{{ printf "%d" 1 2 }}|{{ printf "%d" "x" }}|{{ printf "%s" 1 }}'
        '|{{ printf "%z" 1 }}|{{ printf "100%%" }}',
        {},
        "1 %!s(MISSING)|1%!(EXTRA int=2)|%!d(string=x)|%!s(int=1)|%!z(int=1)|100%",
    ),
    (
        '{{ printf "%v|%s|%d" .L .S .I }}',
        {"L": [1, "a", None], "S": ["x", "y"], "I": [1, 2]},
        "[1 a <nil>]|[x y]|[1 2]",
    ),
    # --- printing values like fmt's %v
    (
        '{{ printf "%v" .M }}|{{ .M }}|{{ .L }}|{{ .N }}',
        {"M": {"b": [1, 2], "a": {"z": 1}}, "L": [[1], {"k": "v"}], "N": [None, True, 1.0, 2.5]},
        "map[a:map[z:1] b:[1 2]]|map[a:map[z:1] b:[1 2]]|[[1] map[k:v]]|[<nil> true 1 2.5]",
    ),
    (
        "{{ 1.0 }} {{ 2.5 }} {{ 1e6 }} {{ 123456.0 }} {{ 1234567.0 }} {{ 0.0001 }} {{ 0.00001 }}"
        " {{ 1e21 }} {{ -0.5 }}",
        {},
        "1 2.5 1e+06 123456 1.234567e+06 0.0001 1e-05 1e+21 -0.5",
    ),
    # --- json (Ollama's func): compact, HTML-safe, keys sorted, Go's float format
    (
        "{{ json .V }}",
        {
            "V": {
                "z": 1,
                "a": [1, 2.5, "x<y>&z"],
                "m": {"b": None, "a": True},
                "f": 1e21,
                "g": 1.5e-07,
                "h": 1e20,
                "i": 1e-06,
                "q": 'quote"back\\slash\u2028',
                "n": -0.0,
            }
        },
        '{"a":[1,2.5,"x\\u003cy\\u003e\\u0026z"],"f":1e+21,"g":1.5e-7,"h":100000000000000000000,'
        '"i":0.000001,"m":{"a":true,"b":null},"n":-0,"q":"quote\\"back\\\\slash\\u2028","z":1}',
    ),
    (
        '{{ json .S }}|{{ json 3 }}|{{ json "é\\u0001" }}|{{ json .L }}|{{ json nil }}',
        {"S": "tab\there", "L": []},
        '"tab\\there"|3|"é\\u0001"|[]|null',
    ),
    ('{{ json "\\b\\f" }}', {}, '"\\b\\f"'),  # Go >= 1.22 writes \b and \f
    ("{{ json .X }}", {"X": float("nan")}, ""),  # json.Marshal fails; Ollama's json gives ""
    # --- html, js, urlquery
    (
        '{{ html "<a href=\'x\'>&\\"" }}|{{ js "it\'s \\"q\\" <b>\\n" }}'
        '|{{ urlquery "a b&c=d/é" }}',
        {},
        '&lt;a href=&#39;x&#39;&gt;&amp;&#34;|it\\\'s \\"q\\" \\u003Cb\\u003E\\u000A'
        "|a+b%26c%3Dd%2F%C3%A9",
    ),
    ('{{ html 1 "a" 2 }}|{{ html .Missing }}', {}, "1a2|&lt;no value&gt;"),
]


@pytest.mark.parametrize(("source", "data", "expected"), RENDER)
def test_render_matches_go(source: str, data: Any, expected: str) -> None:
    assert GoTemplate(source).render(data) == expected


# --- the Ollama fixtures -------------------------------------------------------------------

CHAT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi! How can I help?"},
    {"role": "user", "content": "Tell me a joke."},
]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city (temperature & conditions)",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    }
]

TOOL_CHAT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What's the weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}
        ],
    },
    {"role": "tool", "content": '{"temperature": 22, "unit": "celsius"}'},
    {"role": "user", "content": "Thanks! And in Tokyo?"},
]

FIXTURE_CHAT = {
    # chatml prints .System and then every message, the system one included: Ollama does too.
    "chatml": (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello!<|im_end|>\n"
        "<|im_start|>assistant\nHi! How can I help?<|im_end|>\n"
        "<|im_start|>user\nTell me a joke.<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "mistral-instruct": (
        "[INST] Hello![/INST] Hi! How can I help?</s>"
        "[INST] You are a helpful assistant.\nTell me a joke.[/INST]"
    ),
    # the file's final newline comes after {{- end }}, so it is printed
    "gemma3-instruct": (
        "<start_of_turn>user\nYou are a helpful assistant.\nHello!<end_of_turn>\n"
        "<start_of_turn>model\nHi! How can I help?<end_of_turn>\n"
        "<start_of_turn>user\nTell me a joke.<end_of_turn>\n"
        "<start_of_turn>model\n\n"
    ),
    # legacy template: one run per exchange, the last one cut after {{ .Response }}
    "phi-3": (
        "<|system|>\nYou are a helpful assistant.<|end|>\n"
        "<|user|>\nHello!<|end|>\n"
        "<|assistant|>\nHi! How can I help?<|end|>"
        "<|user|>\nTell me a joke.<|end|>\n"
        "<|assistant|>\n"
    ),
    "qwen2.5": (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello!<|im_end|>\n"
        "<|im_start|>assistant\nHi! How can I help?<|im_end|>\n"
        "<|im_start|>user\nTell me a joke.<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
}

QWEN_TOOL_CHAT = (
    "<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    '{"type": "function", "function": {"name":"get_weather",'
    '"description":"Current weather for a city (temperature \\u0026 conditions)",'
    '"parameters":{"type":"object","required":["city"],"properties":{'
    '"city":{"type":"string","description":"City name"},'
    '"unit":{"type":"string","enum":["celsius","fahrenheit"]}}}}}\n</tools>\n\n'
    "For each function call, return a json object with function name and arguments within"
    " <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
    "<|im_start|>user\nWhat's the weather in Paris?<|im_end|>\n"
    "<|im_start|>assistant\n<tool_call>\n"
    '{"name": "get_weather", "arguments": {"city":"Paris","unit":"celsius"}}\n'
    "</tool_call><|im_end|>\n"
    '<|im_start|>user\n<tool_response>\n{"temperature": 22, "unit": "celsius"}\n'
    "</tool_response><|im_end|>\n"
    "<|im_start|>user\nThanks! And in Tokyo?<|im_end|>\n"
    "<|im_start|>assistant\n"
)


def fixture(name: str) -> GoTemplate:
    path = FIXTURES / f"{name}.gotmpl"
    if not path.exists():
        pytest.skip(f"fixture {path} is not checked out beside the repository")
    return GoTemplate(path.read_text())


@pytest.mark.parametrize("name", sorted(FIXTURE_CHAT))
def test_fixture_renders_multi_turn_chat(name: str) -> None:
    assert fixture(name).render_ollama(CHAT) == FIXTURE_CHAT[name]


def test_qwen_renders_tool_conversation() -> None:
    qwen = fixture("qwen2.5")
    assert qwen.render_ollama(TOOL_CHAT, TOOLS) == QWEN_TOOL_CHAT
    # the same values built with the helper and rendered directly give the same prompt
    assert qwen.render(ollama_template_data(TOOL_CHAT, TOOLS)) == QWEN_TOOL_CHAT


def test_qwen_accepts_openai_style_arguments_string() -> None:
    chat = [dict(m) for m in TOOL_CHAT]
    chat[2] = {
        "role": "ASSISTANT",  # Ollama lower-cases roles when it decodes them
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"city": "Paris", "unit": "celsius"}',
                },
            }
        ],
    }
    assert fixture("qwen2.5").render_ollama(chat, TOOLS) == QWEN_TOOL_CHAT


FIXTURE_GENERATE = {
    "chatml": (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    ),
    "gemma3-instruct": "<start_of_turn>user\nBe brief.\nHi<end_of_turn>\n<start_of_turn>model\n\n",
    "mistral-instruct": "[INST] Be brief.\nHi[/INST]",
    "phi-3": "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n",
    "qwen2.5": (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
}

# The one-turn values without .Messages: each template's legacy .System/.Prompt/.Response path.
FIXTURE_LEGACY = {
    "chatml": (
        "\n<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>"
    ),
    "gemma3-instruct": "\n",  # gemma3 only ranges over .Messages
    "mistral-instruct": "[INST] Be brief. Hi[/INST] Hello.</s>",
    "phi-3": "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello.<|end|>",
    "qwen2.5": (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>"
    ),
}


@pytest.mark.parametrize("name", sorted(FIXTURE_GENERATE))
def test_fixture_renders_one_turn_generate(name: str) -> None:
    """One user prompt with the Modelfile's system prompt, as /api/generate renders it."""
    prompt = fixture(name).render_ollama([{"role": "user", "content": "Hi"}], system="Be brief.")
    assert prompt == FIXTURE_GENERATE[name]


@pytest.mark.parametrize("name", sorted(FIXTURE_LEGACY))
def test_fixture_renders_legacy_prompt_values(name: str) -> None:
    data = ollama_template_data(system="Be brief.", prompt="Hi", response="Hello.")
    assert data["Messages"] == []
    assert fixture(name).render(data) == FIXTURE_LEGACY[name]


def test_legacy_render_appends_response_and_cuts_prefill() -> None:
    tmpl = GoTemplate("[{{ .Prompt }}]")  # no .Response: Ollama appends {{ .Response }}
    chat = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    assert tmpl.render_ollama([*chat, {"role": "user", "content": "c"}]) == "[a]b[c]"
    cut = GoTemplate("<{{ .Prompt }}>{{ .Response }}</end>{{ if .Prompt }}tail{{ end }}")
    # the last exchange (an assistant prefill here) stops right after its .Response
    assert cut.render_ollama(chat) == "<a>b"


def test_collate_merges_consecutive_roles_but_not_tools() -> None:
    tmpl = GoTemplate("{{ .System }}|{{ range .Messages }}{{ .Role }}={{ .Content }};{{ end }}")
    chat = [
        {"role": "system", "content": "s1"},
        {"role": "system", "content": "s2"},
        {"role": "user", "content": "u1"},
        {"role": "user", "content": "u2"},
        {"role": "tool", "content": "t1"},
        {"role": "tool", "content": "t2"},
    ]
    assert tmpl.render_ollama(chat) == "s1\n\ns2|system=s1\n\ns2;user=u1\n\nu2;tool=t1;tool=t2;"
    # a Modelfile SYSTEM goes first only when the chat does not start with a system message
    assert tmpl.render_ollama(chat[2:3], system="S") == "S|system=S;user=u1;"
    assert tmpl.render_ollama(chat[:1], system="S") == "s1|system=s1;"


def test_ollama_values_print_and_encode_like_ollama() -> None:
    data = ollama_template_data(TOOL_CHAT, TOOLS)
    call = (
        "{{ range .Messages }}{{ range .ToolCalls }}"
        "{{ .Function.Arguments }} {{ json .Function }} {{ json . }}{{ end }}{{ end }}"
    )
    # Updated: Ollama (v0.14+, template/template.go) gives templates templateToolCall and
    # templateToolCallFunction, which have no JSON tags, so `json` uses the Go field names.
    assert GoTemplate(call).render(data) == (
        '{"city":"Paris","unit":"celsius"}'
        ' {"Index":0,"Name":"get_weather","Arguments":{"city":"Paris","unit":"celsius"}}'
        ' {"ID":"","Function":{"Index":0,"Name":"get_weather",'
        '"Arguments":{"city":"Paris","unit":"celsius"}}}'
    )
    tools = (
        "{{ range .Tools }}{{ .Type }} {{ .Function.Name }} {{ .Function.Parameters.Required }}"
        " {{ .Function.Parameters }}{{ end }}"
    )
    assert GoTemplate(tools).render(data) == (
        'function get_weather [city] {"type":"object","required":["city"],"properties":'
        '{"city":{"type":"string","description":"City name"},'
        '"unit":{"type":"string","enum":["celsius","fahrenheit"]}}}'
    )
    assert GoTemplate("{{ json (index .Messages 0) }}").render(data) == (  # templateMessage
        '{"Role":"system","Content":"You are a helpful assistant.","Thinking":"","Images":null,'
        '"ToolCalls":null,"ToolName":"","ToolCallID":""}'
    )
    no_tools = ollama_template_data(CHAT)
    assert (
        GoTemplate(
            "{{ if .Tools }}T{{ else }}F{{ end }} {{ json .Tools }} {{ len .Tools }}"
        ).render(no_tools)
        == "F null 0"
    )


def test_data_may_be_objects_with_attributes() -> None:
    @dataclasses.dataclass
    class Turn:
        Role: str
        Content: str
        secret: str = "hidden"

        def Shout(self) -> str:  # a Go-style exported name on purpose
            return self.Content.upper()

    class Chat:
        def __init__(self) -> None:
            self.Messages = [Turn("user", "hi")]

    assert (
        GoTemplate("{{ range .Messages }}{{ .Role }}:{{ .Content }} {{ . }}{{ end }}").render(
            Chat()
        )
        == "user:hi {user hi hidden}"
    )
    with pytest.raises(TemplateError, match=r"can't evaluate field secret in type Turn"):
        GoTemplate("{{ range .Messages }}{{ .secret }}{{ end }}").render(Chat())
    with pytest.raises(TemplateError, match=r"can't evaluate method Shout"):
        GoTemplate("{{ range .Messages }}{{ .Shout }}{{ end }}").render(Chat())


def test_message_objects_pass_through_the_helper() -> None:
    call = ToolCall(
        Function=ToolCallFunction(Name="f", Arguments=OrderedMap({"b": 1, "a": [1, 2.5]}))
    )
    data = ollama_template_data([Message(Role="assistant", ToolCalls=(call,))])
    # Updated: arguments are a Go map in Ollama's templates (templateArgs), so they print in
    # sorted key order, whatever order they were given in.
    assert (
        GoTemplate(
            "{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Arguments }}{{ end }}{{ end }}"
        ).render(data)
        == '{"a":[1,2.5],"b":1}'
    )


def test_identifiers_are_ollama_vars() -> None:
    assert fixture("qwen2.5").identifiers >= {
        "messages",
        "system",
        "tools",
        "role",
        "content",
        "$",
        "$last",
    }
    assert "messages" not in fixture("phi-3").identifiers


def test_go_json_encodes_like_go() -> None:
    assert (
        go_json({"b": [1, 2.0, None], "a": {"y": "<&>", "x": 1e-7}})
        == '{"a":{"x":1e-7,"y":"\\u003c\\u0026\\u003e"},"b":[1,2,null]}'
    )
    assert go_json(OrderedMap({"z": 1, "a": 2})) == '{"z":1,"a":2}'
    assert go_json("\x00\u2029\ud800") == '"\\u0000\\u2029\\ufffd"'


# --- errors ----------------------------------------------------------------------------------

PARSE_ERRORS = [
    ("{{ .A }}\n{{ end }}", "template: :2:3: unexpected {{end}}"),
    ("{{ if .A }}\nx", "template: :2:1: unexpected EOF"),
    ("a\n{{ nosuch 1 }}", 'template: :2:3: function "nosuch" not defined'),
    ("{{ $x }}", 'template: :1:3: undefined variable "$x"'),
    ("{{ .A ", "template: :1:5: unclosed action"),
    ("{{/* x }}", "template: :1:0: unclosed comment"),
    ("{{ else }}", "template: :1:3: unexpected {{else}}"),
    ("{{ range .L }}{{ end }}\n\n{{ break }}", "template: :3:3: {{break}} outside {{range}}"),
    ('{{ "abc }}', "template: :1:3: unterminated quoted string"),
    ("{{ }}", "template: :1:3: missing value for command"),
    ("{{ .A | 1 }}", "template: :1:8: non executable command in pipeline stage 2"),
    ("{{ if }}{{ end }}", "template: :1:6: missing value for if"),
    ("{{ (.A }}", "template: :1:7: unclosed left paren"),
    ("{{ .A) }}", 'template: :1:5: unexpected ")" in command'),
    ("{{ 3x }}", 'template: :1:3: bad number syntax: "3x"'),
    ("{{ 'ab' }}", "template: :1:3: malformed character constant: 'ab'"),
    ("{{ range $a, $b, $c := .L }}{{ end }}", "template: :1:15: too many declarations in range"),
    ("{{ with .A }}{{ else if .B }}{{ end }}", "template: :1:21: unexpected <if> in input"),
    (
        '{{ define "a" }}x{{ end }}{{ define "a" }}y{{ end }}',
        'template: :1:50: template: multiple definition of template "a"',
    ),
    ("{{ .A.b-c }}", "template: :1:7: bad character U+002D '-'"),
    (
        "{{" + "(" * 60 + ".A" + ")" * 60 + "}}",
        "template: :1:52: parenthesized pipeline nested deeper than 50 levels",
    ),
]


@pytest.mark.parametrize(("source", "message"), PARSE_ERRORS)
def test_parse_errors_name_line_and_column(source: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        GoTemplate(source)
    assert str(info.value) == message
    assert GoTemplate("{{ .A }}").render({"A": "still fine"}) == "still fine"


# (source, data, "line:column", Go's context, cause): the message is
# template: :LINE:COL: executing "" at <CONTEXT>: CAUSE
EXEC_ERRORS = [
    (
        "{{ .A }}\n{{ index .L 5 }}",
        {"L": [1]},
        "2:3",
        "index .L 5",
        "error calling index: index out of range: 5",
    ),
    (
        "{{ index .L 1 }}",
        {"L": [1]},
        "1:3",
        "index .L 1",
        "error calling index: reflect: slice index out of range",
    ),
    ("{{ .A.B }}", {}, "1:5", ".A.B", "nil pointer evaluating interface {}.B"),
    ("{{ .A.B.C }}", {"A": {}}, "1:5", ".A.B.C", "nil pointer evaluating interface {}.C"),
    ("{{ len 3 }}", {}, "1:3", "len 3", "error calling len: len of type int"),
    (
        '{{ eq 1 "a" }}',
        {},
        "1:3",
        'eq 1 "a"',
        "error calling eq: incompatible types for comparison: int and string",
    ),
    (
        "{{ lt true false }}",
        {},
        "1:3",
        "lt true false",
        "error calling lt: invalid type for comparison",
    ),
    ("{{ eq 1 }}", {}, "1:3", "eq 1", "error calling eq: missing argument for comparison"),
    ("{{ not 1 2 }}", {}, "1:3", "not", "wrong number of args for not: want 1 got 2"),
    ('{{ template "nope" }}', {}, "1:12", '{{template "nope"}}', 'template "nope" not defined'),
    (
        "{{ slice .L 3 1 }}",
        {"L": [1, 2, 3]},
        "1:3",
        "slice .L 3 1",
        "error calling slice: invalid slice index: 3 > 1",
    ),
    ("{{ range .S }}{{ end }}", {"S": "abc"}, "1:9", ".S", "range can't iterate over abc"),
    ("{{ nil }}", {}, "1:3", "nil", "nil is not a command"),
    ("{{ .A 1 }}", {"A": 1}, "1:3", ".A", "A is not a method but has arguments"),
    ("{{ $x := 1 }}{{ $x 2 }}", {}, "1:16", "$x", "can't give argument to non-function $x"),
    ("{{ index nil 1 }}", {}, "1:3", "index nil 1", "error calling index: index of untyped nil"),
    (
        '{{ index .L "a" }}',
        {"L": [1]},
        "1:3",
        'index .L "a"',
        "error calling index: cannot index slice/array with type string",
    ),
    (
        "{{ index .SomeLongFieldName 10 }}",
        {"SomeLongFieldName": [1]},
        "1:3",
        "index .SomeLongFieldName 10",
        "error calling index: index out of range: 10",
    ),
    ("{{ printf .A }}", {"A": 1}, "1:10", ".A", "wrong type for value; expected string; got int"),
]


@pytest.mark.parametrize(("source", "data", "where", "context", "cause"), EXEC_ERRORS)
def test_execution_errors_name_the_spot(
    source: str, data: Any, where: str, context: str, cause: str
) -> None:
    tmpl = GoTemplate(source)
    with pytest.raises(TemplateError) as info:
        tmpl.render(data)
    assert str(info.value) == f'template: :{where}: executing "" at <{context}>: {cause}'
    assert not isinstance(info.value, TemplateSecurityError)
    assert GoTemplate("{{ .A }}").render({"A": "still fine"}) == "still fine"


# --- limits ----------------------------------------------------------------------------------


class SteppingClock:
    """A clock that moves on by ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_deadline_stops_a_long_render() -> None:
    tmpl = GoTemplate("{{ range .L }}{{ . }}{{ end }}", timeout_s=1.0, clock=SteppingClock(0.01))
    with pytest.raises(TemplateSecurityError, match=r"longer than 1.0 s"):
        tmpl.render({"L": list(range(1000))})
    assert tmpl.render({"L": [1, 2, 3]}) == "123"


def test_deadline_stops_range_over_a_huge_int() -> None:
    tmpl = GoTemplate(
        "{{ range 1000000000000 }}{{ end }}", timeout_s=0.5, clock=SteppingClock(0.001)
    )
    with pytest.raises(TemplateSecurityError):
        tmpl.render({})


def test_output_limit() -> None:
    tmpl = GoTemplate("{{ range .L }}0123456789{{ end }}", max_output_chars=100)
    with pytest.raises(TemplateSecurityError, match=r"output exceeds 100 characters"):
        tmpl.render({"L": list(range(11))})
    assert len(tmpl.render({"L": list(range(10))})) == 100


def test_string_doubling_is_stopped_before_it_is_printed() -> None:
    source = '{{ $s := "ab" }}{{ range .L }}{{ $s = print $s $s }}{{ end }}{{ len $s }}'
    tmpl = GoTemplate(source, max_output_chars=1000)
    with pytest.raises(TemplateSecurityError, match=r"`print` result exceeds 1000"):
        tmpl.render({"L": list(range(64))})
    assert tmpl.render({"L": [1, 2]}) == "8"


def test_printf_width_is_bounded() -> None:
    # Updated: Go's fmt refuses a width past 10^6 while parsing it (fmt/print.go parsenum,
    # tooLarge) and prints the rest of the format as %!(NOVERB); a width Go accepts but that
    # passes the output limit is a TemplateLimitError (see test_gotemplate_limits.py).
    tmpl = GoTemplate('{{ printf "%999999999d" 1 }}')
    assert tmpl.render({}) == "%!(NOVERB)%!(EXTRA int=1)"
    with pytest.raises(TemplateLimitError, match=r"`printf` result exceeds 4194304 characters"):
        GoTemplate('{{ printf "%10000000d" 1 }}').render({})


def test_recursive_template_is_stopped() -> None:
    tmpl = GoTemplate('{{ define "r" }}x{{ template "r" . }}{{ end }}{{ template "r" . }}')
    with pytest.raises(TemplateSecurityError, match=r"nested deeper than"):
        tmpl.render({})


def test_limits_are_validated() -> None:
    with pytest.raises(OptionError, match=r"`timeout_s` must be > 0, got 0"):
        GoTemplate("x", timeout_s=0)
    with pytest.raises(OptionError, match=r"`max_output_chars` must be >= 1"):
        GoTemplate("x", max_output_chars=0)


def test_bad_messages_are_rejected_with_their_index() -> None:
    with pytest.raises(OptionError, match=r"`messages\[1\]` must be an object, got str"):
        ollama_template_data([{"role": "user", "content": "x"}, "oops"])
    with pytest.raises(
        OptionError, match=r"`messages\[0\].tool_calls\[0\].function.arguments` is not valid JSON"
    ):
        ollama_template_data(
            [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}]
        )
