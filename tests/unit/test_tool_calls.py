"""Tool calls in model output: Hermes/Qwen, Llama 3.x and Mistral syntaxes, and format detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamahost.chat.tool_calls import ToolCall, detect_tool_call_format, parse_tool_calls
from llamahost.errors import OptionError

DATA = Path(__file__).parent / "data"


# --------------------------------------------------------------------------- hermes


def test_hermes_single_call_after_text():
    text = (
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
        "\n</tool_call>"
    )
    assert parse_tool_calls(text) == (
        "Let me check.",
        [ToolCall("get_weather", {"city": "Paris"})],
    )


def test_hermes_several_calls_and_arguments_as_a_json_string():
    text = (
        '<tool_call>\n{"name": "a", "arguments": "{\\"x\\": 1}"}\n</tool_call>\n'
        '<tool_call>\n{"name": "b", "arguments": {"y": [1, 2]}}\n</tool_call>\n'
    )
    assert parse_tool_calls(text, format="hermes") == (
        "",
        [ToolCall("a", {"x": 1}), ToolCall("b", {"y": [1, 2]})],
    )


def test_hermes_call_without_arguments_has_empty_arguments():
    assert parse_tool_calls('<tool_call>{"name": "now"}</tool_call>') == ("", [ToolCall("now", {})])


def test_text_between_calls_keeps_one_separator():
    text = 'A \n<tool_call>{"name": "a"}</tool_call>\n\n<tool_call>{"name": "b"}</tool_call>  B\n'
    content, calls = parse_tool_calls(text)
    assert content == "A \nB\n"
    assert [call.name for call in calls] == ["a", "b"]


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>{not json}</tool_call> and more",
        '<tool_call>{"arguments": {}}</tool_call>',  # no name
        '<tool_call>{"name": "f", "arguments": [1]}</tool_call>',  # arguments not an object
        '<tool_call>{"name": "f", "arguments": "not json"}</tool_call>',
        '<tool_call>["f"]</tool_call>',
        '<tool_call>{"name": "f", "arguments": {}}',  # never closed
        "plain answer with no calls\n",
        "  leading and trailing whitespace  ",
    ],
)
def test_malformed_or_absent_calls_leave_the_text_as_it_was(text):
    assert parse_tool_calls(text) == (text, [])


def test_a_malformed_block_stays_while_a_good_one_is_parsed():
    bad = "<tool_call>{oops}</tool_call>"
    text = f'{bad}\n<tool_call>{{"name": "f", "arguments": {{"a": 1}}}}</tool_call>'
    assert parse_tool_calls(text) == (bad, [ToolCall("f", {"a": 1})])


# --------------------------------------------------------------------------- llama 3


def test_llama3_json_as_the_whole_output():
    text = ' {"name": "get_weather", "parameters": {"city": "Paris"}} \n'
    assert parse_tool_calls(text, format="llama3") == (
        "",
        [ToolCall("get_weather", {"city": "Paris"})],
    )


def test_llama3_several_calls_separated_by_semicolons():
    text = (
        '{"name": "f", "parameters": {"a": 1}}; '
        '{"type": "function", "name": "g", "parameters": {}};'
    )
    assert parse_tool_calls(text) == ("", [ToolCall("f", {"a": 1}), ToolCall("g", {})])


def test_llama3_after_python_tag():
    text = 'Searching.<|python_tag|>{"name": "search", "parameters": {"q": "llamas"}}'
    assert parse_tool_calls(text, format="llama3") == (
        "Searching.",
        [ToolCall("search", {"q": "llamas"})],
    )


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "Bob", "age": 3}',  # an ordinary JSON answer, not a call
        '{"name": "f", "parameters": {}} and then some words',
        '{"name": "f", "parameters": {}} {"name": "g", "parameters": {}}',  # no ';'
        '<|python_tag|>brave_search.call(query="x")',
        '{"name": "f", "parameters": {',
    ],
)
def test_llama3_text_that_is_not_only_calls_stays_content(text):
    assert parse_tool_calls(text, format="llama3") == (text, [])


# --------------------------------------------------------------------------- mistral


def test_mistral_json_list():
    text = (
        '[TOOL_CALLS][{"name": "f", "arguments": {"a": 1}, "id": "abc123def"}, '
        '{"name": "g", "arguments": "{\\"b\\": 2}"}]'
    )
    assert parse_tool_calls(text, format="mistral") == (
        "",
        [ToolCall("f", {"a": 1}, "abc123def"), ToolCall("g", {"b": 2})],
    )


def test_mistral_name_args_form():
    text = 'Sure. [TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]g[CALL_ID]x1[ARGS]{}'
    assert parse_tool_calls(text) == (
        "Sure.",
        [ToolCall("get_weather", {"city": "Paris"}), ToolCall("g", {}, "x1")],
    )


@pytest.mark.parametrize(
    "text",
    [
        "[TOOL_CALLS][{broken",
        '[TOOL_CALLS][{"name": "f", "arguments": {}}] trailing words',
        "[TOOL_CALLS]f[ARGS][1, 2]",
        "[TOOL_CALLS]f{}",
        "[TOOL_CALLS]",
    ],
)
def test_mistral_malformed_stays_content(text):
    assert parse_tool_calls(text) == (text, [])


# --------------------------------------------------------------------------- formats


def test_format_restricts_what_is_parsed():
    hermes = '<tool_call>{"name": "f", "arguments": {}}</tool_call>'
    mistral = '[TOOL_CALLS][{"name": "f", "arguments": {}}]'
    llama = '{"name": "f", "parameters": {}}'
    for text, fmt in ((hermes, "hermes"), (mistral, "mistral"), (llama, "llama3")):
        for other in ("hermes", "mistral", "llama3"):
            expected = ("", [ToolCall("f", {})]) if other == fmt else (text, [])
            assert parse_tool_calls(text, format=other) == expected
        assert parse_tool_calls(text, format="auto") == ("", [ToolCall("f", {})])


def test_unknown_format_is_an_option_error():
    with pytest.raises(OptionError, match="`format` must be one of 'hermes', 'llama3', 'mistral'"):
        parse_tool_calls("x", format="openai")


def test_detect_format_from_templates():
    assert detect_tool_call_format((DATA / "qwen2.5-tools-style.jinja").read_text()) == "hermes"
    assert detect_tool_call_format((DATA / "llama3.1-style.jinja").read_text()) == "llama3"
    assert detect_tool_call_format((DATA / "smollm2-135m-instruct.jinja").read_text()) is None
    assert detect_tool_call_format((DATA / "gemma3-style.jinja").read_text()) is None
    mistral = "{%- if message.tool_calls %}{{ '[TOOL_CALLS][' }}{%- endif %}"
    assert detect_tool_call_format(mistral) == "mistral"
    assert detect_tool_call_format("{{ '<|python_tag|>' + code }}") == "llama3"
