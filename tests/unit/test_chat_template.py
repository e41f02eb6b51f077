"""Jinja chat templates: exact rendering of real-world templates, HF globals, sandbox and limits.

Test data in tests/unit/data/:
- smollm2-135m-instruct.jinja: ``tokenizer.chat_template`` read out of
  SmolLM2-135M-Instruct.Q4_1.gguf with the ``gguf`` package, byte for byte.
- gemma3-style.jinja, qwen2.5-tools-style.jinja, llama3.1-style.jinja: written for these
  tests in the style of the published Gemma 3, Qwen 2.5 and Llama 3.1 templates (system
  folding and content parts; tools, tool calls and tool responses; dated system turn,
  ipython role, ``tojson(indent=4)``). The gemma-3-270m GGUF in the test-model cache
  carries no ``tokenizer.chat_template``, so there is none to read out of it.
"""

from __future__ import annotations

import copy
import datetime
import time
from pathlib import Path

import pytest

from llamahost.chat.jinja_template import ChatTemplate
from llamahost.errors import OptionError, TemplateError, TemplateSecurityError

DATA = Path(__file__).parent / "data"


def load(name: str, **kwargs) -> ChatTemplate:
    return ChatTemplate((DATA / name).read_text(encoding="utf-8"), **kwargs)


def render(source: str, messages=None, **kwargs) -> str:
    limits = {
        key: kwargs.pop(key) for key in ("max_render_seconds", "max_output_chars") if key in kwargs
    }
    template = ChatTemplate(source, **limits)
    return template.render(messages or [{"role": "user", "content": "hi"}], **kwargs)


CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi!"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "2+2?"},
]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}

TOOL_CHAT = [
    {"role": "user", "content": "Weather in Zürich?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Zürich"}},
            }
        ],
    },
    {"role": "tool", "content": '{"temp": 21}'},
]


# --------------------------------------------------------------------------- real templates


def test_smollm2_template_from_gguf_multi_turn():
    template = load("smollm2-135m-instruct.jinja")
    assert template.render(CHAT) == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_smollm2_template_default_system_and_no_generation_prompt():
    template = load("smollm2-135m-instruct.jinja")
    text = template.render([{"role": "user", "content": "Hi"}], add_generation_prompt=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    )


def test_string_only_template_gets_text_parts_joined_with_newlines():
    template = load("smollm2-135m-instruct.jinja")
    parts = [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]
    text = template.render([{"role": "system", "content": "S"}, {"role": "user", "content": parts}])
    assert "<|im_start|>user\nfirst\nsecond<|im_end|>\n" in text


def test_string_only_template_refuses_non_text_parts():
    template = load("smollm2-135m-instruct.jinja")
    parts = [{"type": "text", "text": "look"}, {"type": "image", "image": "..."}]
    with pytest.raises(OptionError, match=r"messages\[0\]\.content\[1\].*'image'"):
        template.render([{"role": "user", "content": parts}])


def test_gemma3_style_folds_system_into_first_user_turn():
    template = load("gemma3-style.jinja", bos_token="<bos>")
    assert template.render(CHAT) == (
        "<bos><start_of_turn>user\nYou are terse.\n\nHi!<end_of_turn>\n"
        "<start_of_turn>model\nHello.<end_of_turn>\n"
        "<start_of_turn>user\n2+2?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_gemma3_style_gets_content_parts_as_a_list():
    template = load("gemma3-style.jinja", bos_token="<bos>")
    parts = [{"type": "image"}, {"type": "text", "text": " Describe this. "}]
    text = template.render([{"role": "user", "content": parts}], add_generation_prompt=False)
    assert text == "<bos><start_of_turn>user\n<start_of_image>Describe this.<end_of_turn>\n"


def test_raise_exception_carries_the_template_message():
    template = load("gemma3-style.jinja")
    wrong_order = [{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "x"}]
    with pytest.raises(TemplateError, match="Conversation roles must alternate") as caught:
        template.render(wrong_order)
    assert not isinstance(caught.value, TemplateSecurityError)


def test_qwen25_style_multi_turn_without_tools():
    template = load("qwen2.5-tools-style.jinja")
    assert template.render(CHAT) == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_qwen25_style_tools_tool_calls_and_tool_response():
    template = load("qwen2.5-tools-style.jinja")
    text = template.render(TOOL_CHAT, tools=[WEATHER_TOOL])
    assert text == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
        "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        '{"type": "function", "function": {"name": "get_weather", "description": "Get the '
        'weather for a city", "parameters": {"type": "object", "properties": {"city": {"type": '
        '"string"}}, "required": ["city"]}}}\n</tools>\n\n'
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nWeather in Zürich?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": '
        '{"city": "Zürich"}}\n</tool_call><|im_end|>\n'
        '<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n"
    )


def test_llama31_style_multi_turn():
    template = load("llama3.1-style.jinja", bos_token="<|begin_of_text|>")
    text = template.render(CHAT, extra_context={"date_string": "26 Jul 2024"})
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
        "You are terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_llama31_style_tools_with_indented_json_and_ipython_role():
    template = load("llama3.1-style.jinja", bos_token="<|begin_of_text|>")
    text = template.render(
        TOOL_CHAT, tools=[WEATHER_TOOL], extra_context={"date_string": "26 Jul 2024"}
    )
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Environment: ipython\nCutting Knowledge Date: December 2023\n"
        "Today Date: 26 Jul 2024\n\n<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n"
        "Given the following functions, please respond with a JSON for a function call with its "
        "proper arguments that best answers the given prompt.\n\n"
        'Respond in the format {"name": function name, "parameters": dictionary of argument name '
        "and its value}.Do not use variables.\n\n"
        '{\n    "type": "function",\n    "function": {\n        "name": "get_weather",\n'
        '        "description": "Get the weather for a city",\n        "parameters": {\n'
        '            "type": "object",\n            "properties": {\n                "city": {\n'
        '                    "type": "string"\n                }\n            },\n'
        '            "required": [\n                "city"\n            ]\n        }\n    }\n}'
        "\n\nWeather in Zürich?<|eot_id|>"
        '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", '
        '"parameters": {"city": "Zürich"}}<|eot_id|>'
        '<|start_header_id|>ipython<|end_header_id|>\n\n{"temp": 21}<|eot_id|>'
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_llama31_style_dates_itself_with_strftime_now():
    template = load("llama3.1-style.jinja")
    before = datetime.datetime.now().strftime("%d %b %Y")
    text = template.render([{"role": "user", "content": "hi"}])
    after = datetime.datetime.now().strftime("%d %b %Y")
    assert f"Today Date: {before}\n" in text or f"Today Date: {after}\n" in text


def test_rendering_does_not_change_the_callers_data():
    template = load("llama3.1-style.jinja")
    messages = copy.deepcopy(TOOL_CHAT)
    tools = [copy.deepcopy(WEATHER_TOOL)]
    template.render(messages, tools=tools, extra_context={"date_string": "1 Jan 2025"})
    assert messages == TOOL_CHAT
    assert tools == [WEATHER_TOOL]
    parts = [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]
    original = copy.deepcopy(parts)
    assert "a\nb" in load("smollm2-135m-instruct.jinja").render(parts)
    assert parts == original


# --------------------------------------------------------------------------- HF environment


def test_variables_and_extra_context_reach_the_template():
    source = (
        "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools is none }}|"
        "{{ enable_thinking }}|{{ messages | length }}"
    )
    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    text = template.render(
        [{"role": "user", "content": "a"}],
        add_generation_prompt=False,
        extra_context={"enable_thinking": False},
    )
    assert text == "<s>|</s>|False|True|False|1"


def test_extra_context_may_not_replace_standard_names():
    template = ChatTemplate("{{ messages }}")
    for name in ("messages", "bos_token", "raise_exception", "range"):
        with pytest.raises(OptionError, match=f"`extra_context` may not set '{name}'"):
            template.render([], extra_context={name: 1})


def test_tojson_has_hf_semantics():
    source = (
        "{{ data | tojson }}#{{ data | tojson(indent=2) }}#"
        "{{ data | tojson(separators=(',', ':'), sort_keys=true) }}#"
        "{{ data | tojson(ensure_ascii=true) }}"
    )
    text = render(source, extra_context={"data": {"b": "é<&>", "a": [1, None]}})
    assert text.split("#") == [
        '{"b": "é<&>", "a": [1, null]}',
        '{\n  "b": "é<&>",\n  "a": [\n    1,\n    null\n  ]\n}',
        '{"a":[1,null],"b":"é<&>"}',
        '{"b": "\\u00e9<&>", "a": [1, null]}',
    ]


def test_trim_blocks_lstrip_blocks_and_loopcontrols():
    source = (
        "{% for m in messages %}\n"
        "    {% if m.role == 'stop' %}{% break %}{% endif %}\n"
        "    {% if m.role == 'skip' %}{% continue %}{% endif %}\n"
        "[{{ m.content }}]\n"
        "{% endfor %}\n"
    )
    messages = [
        {"role": "user", "content": "a"},
        {"role": "skip", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "stop", "content": "d"},
        {"role": "user", "content": "e"},
    ]
    assert render(source, messages) == "[a]\n[c]\n"


def test_generation_marker_renders_its_body():
    source = (
        "{% for m in messages %}{% generation %}<{{ m.content }}>{% endgeneration %}{% endfor %}"
    )
    assert render(source, [{"role": "assistant", "content": "x"}]) == "<x>"


def test_parts_only_template_gets_strings_wrapped_as_text_parts():
    source = (
        "{% for m in messages %}{% for p in m.content %}{{ p.type }}:{{ p.text }};"
        "{% endfor %}{% endfor %}"
    )
    assert render(source, [{"role": "user", "content": "hi"}]) == "text:hi;"


def test_tool_calls_pass_through_unchanged():
    source = "{% for m in messages %}{{ m.tool_calls | tojson }}{% endfor %}"
    calls = [{"id": "c1", "function": {"name": "f", "arguments": '{"x": 1}'}}]
    text = render(source, [{"role": "assistant", "content": "", "tool_calls": calls}])
    assert text == '[{"id": "c1", "function": {"name": "f", "arguments": "{\\"x\\": 1}"}}]'


def test_range_behaves_like_a_sequence():
    source = (
        "{{ range(5) | list }}{{ range(5) | length }}"
        "{{ range(5) | reverse | list }}{{ range(9)[2:4] | list }}"
    )
    assert render(source) == "[0, 1, 2, 3, 4]5[4, 3, 2, 1, 0][2, 3]"


def test_recursive_loops_and_loop_variables_work():
    source = (
        "{% for node in tree recursive %}{{ loop.index }}/{{ loop.length }}:{{ node.name }}"
        "{% if node.children %}({{ loop(node.children) }}){% endif %}{% endfor %}"
    )
    tree = [{"name": "a", "children": [{"name": "b"}, {"name": "c"}]}, {"name": "d"}]
    assert render(source, extra_context={"tree": tree}) == "1/2:a(1/2:b2/2:c)2/2:d"


# --------------------------------------------------------------------------- errors


def test_compile_error_names_the_line():
    with pytest.raises(TemplateError, match="does not compile: line 3: "):
        ChatTemplate("line one\n{{ messages }}\n{% if %}\n")
    with pytest.raises(TemplateError, match=r"line 2: .*No filter named 'nosuchfilter'"):
        ChatTemplate("ok\n{{ messages | nosuchfilter }}")


def test_runtime_errors_become_template_errors_with_the_line():
    with pytest.raises(TemplateError, match=r"at line 2: UndefinedError") as caught:
        render("fine\n{{ missing.attribute }}")
    assert not isinstance(caught.value, TemplateSecurityError)
    with pytest.raises(TemplateError, match="TypeError"):
        render("{{ messages[0].content + 1 }}")


def test_runaway_recursion_is_a_template_error():
    with pytest.raises(TemplateError, match="recursed too deeply"):
        render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")


def test_bad_constructor_arguments():
    with pytest.raises(OptionError, match="`max_render_seconds` must be a positive number"):
        ChatTemplate("", max_render_seconds=0)
    with pytest.raises(OptionError, match="`max_output_chars` must be an integer >= 1"):
        ChatTemplate("", max_output_chars=0)
    with pytest.raises(OptionError, match="`source` must be a string"):
        ChatTemplate(None)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match=r"`messages\[1\]` must be a mapping"):
        ChatTemplate("").render([{"role": "user"}, "hello"])  # type: ignore[list-item]


def test_a_template_renders_again_after_an_error():
    template = ChatTemplate(
        "{% if messages[0].content == 'boom' %}{{ raise_exception('boom') }}{% endif %}ok"
    )
    with pytest.raises(TemplateError, match="boom"):
        template.render([{"role": "user", "content": "boom"}])
    assert template.render([{"role": "user", "content": "fine"}]) == "ok"


# --------------------------------------------------------------------------- sandbox


@pytest.mark.parametrize(
    "source",
    [
        "{{ cycler.__init__.__globals__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ raise_exception.__globals__ }}",
        "{{ messages.__class__.__base__.__subclasses__() }}",
        "{{ (messages | first).__class__ }}",
        "{% set x = messages.append({'role': 'user'}) %}",
        "{% set x = messages[0].update({'role': 'x'}) %}",
        "{{ messages[0].pop('role') }}",
        "{{ ''.format.__globals__ }}",
        "{{ '{0.__class__}'.format('') }}",
    ],
)
def test_sandbox_violations_raise_template_security_error(source):
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(TemplateSecurityError):
        ChatTemplate(source).render(messages)
    assert messages == [{"role": "user", "content": "hi"}]


def test_nested_range_bomb_fails_fast():
    bomb = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    start = time.monotonic()
    with pytest.raises(TemplateSecurityError, match=r"max_render_seconds=0\.5"):
        ChatTemplate(bomb, max_render_seconds=0.5).render([])
    assert time.monotonic() - start < 3


def test_default_time_limit_is_short_enough_for_bombs_to_fail_within_3_seconds():
    assert ChatTemplate("").max_render_seconds <= 2.0


def test_string_repetition_bomb_fails_fast_with_default_limits():
    start = time.monotonic()
    with pytest.raises(TemplateSecurityError, match="max_output_chars=4194304"):
        ChatTemplate("{{ 'x' * 10**9 }}").render([])
    assert time.monotonic() - start < 3


def test_loops_over_plain_sequences_check_the_deadline():
    bomb = (
        "{% set s = 'x' * 1000 %}{% for a in s %}{% for b in s %}{% for c in s %}"
        "{% endfor %}{% endfor %}{% endfor %}"
    )
    with pytest.raises(TemplateSecurityError, match="max_render_seconds"):
        ChatTemplate(bomb, max_render_seconds=0.3).render([])


DOUBLING = (
    "{% set ns = namespace(s='x') %}"
    "{% for i in range(64) %}{% set ns.s = ns.s OP ns.s %}{% endfor %}"
)


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("{{ [1, 2] * 10**8 }}", "repeated sequence"),
        ("{{ 10**8 * 'ab' }}", "repeated sequence"),
        ("{{ 2 ** (10**8) }}", "integer"),
        (
            DOUBLING.replace("OP", "~"),
            "~ concatenation",
        ),
        (
            DOUBLING.replace("OP", "+"),
            "concatenation",
        ),
        ("{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('x') }}", "~ concatenation"),
        ("{{ 'x' | center(10**9) }}", "\\|center's result"),
        ("{{ 'a\nb' | indent(10**9) }}", "\\|indent's result"),
        ("{{ '%0999999999d' | format(1) }}", "\\|format's result"),
        ("{{ '%.999999999f' % 1.0 }}", "%-formatted"),
        ("{{ '{:>999999999}'.format(1) }}", "format"),
        ("{{ 'x'.ljust(10**9) }}", "str.ljust"),
        ("{{ 'ab' | replace('', 'y' * 10000) | replace('y', 'z' * 1000) }}", "\\|replace's result"),
        ("{{ (['y'] * 1000) | join('z' * 10000) }}", "\\|join's result"),
        ("{{ [1] | batch(10**9, 'x') | list }}", "\\|batch's result"),
        ("{{ [1, 2] | tojson(indent=10**9) }}", "JSON indent"),
        ("{{ range(10**6) | list }}", r"range\(\) of 1000000 items"),
    ],
)
def test_memory_bombs_are_refused_before_they_allocate(source, what):
    start = time.monotonic()
    with pytest.raises(TemplateSecurityError, match=what):
        ChatTemplate(source).render([])
    assert time.monotonic() - start < 1


def test_output_size_limit():
    source = "{% for i in range(1000) %}0123456789{% endfor %}"
    assert len(ChatTemplate(source, max_output_chars=10_000).render([])) == 10_000
    with pytest.raises(TemplateSecurityError, match="output exceeds max_output_chars=9999"):
        ChatTemplate(source, max_output_chars=9_999).render([])
