"""The streaming chat-output parser: same result as the whole-text functions, for every split."""

from __future__ import annotations

import random

import pytest

from llamahost.chat.output_parser import ChatOutputParser, Delta
from llamahost.chat.thinking import split_thinking
from llamahost.chat.tool_calls import ToolCall, parse_tool_calls
from llamahost.errors import OptionError

WEATHER_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'

# (model output, think, tool_format)
SAMPLES = [
    (
        f"<think>\nThe user wants weather.\n</think>\n\nLet me check.\n{WEATHER_CALL}",
        True,
        "hermes",
    ),
    (
        f"<think>\nThe user wants weather.\n</think>\n\nLet me check.\n{WEATHER_CALL}",
        False,
        "hermes",
    ),
    (f"<think>\nThe user wants weather.\n</think>\n\nLet me check.\n{WEATHER_CALL}", True, None),
    ("Okay, the template opened the tag.</think>\n\nAnswer here.", True, None),
    ("<think>cut short while thinking  \n", True, "auto"),
    ("Plain answer  \n with trailing space  \n", True, None),
    ("  Plain answer  \n with trailing space  \n", True, "hermes"),
    (
        '  <tool_call>{bad}</tool_call> <tool_call>{"name": "f"}</tool_call>\n tail '
        '<tool_call>{"name"',
        False,
        "hermes",
    ),
    (
        'A \n<tool_call>{"name": "a"}</tool_call>\n\n<tool_call>{"name": "b"}</tool_call>  B\n',
        False,
        "auto",
    ),
    (
        ' {"name": "f", "parameters": {"a": "x;y"}}; {"name": "g", "parameters": {}}',
        False,
        "llama3",
    ),
    ('{"name": "Bob"} and <tool_call>{"name": "f"}</tool_call>', False, "auto"),
    ('{"name": "Bob", "age": 3}\n', True, "llama3"),
    ('Searching.<|python_tag|>{"name": "search", "parameters": {"q": "x"}}', False, "llama3"),
    (
        'Sure. [TOOL_CALLS][{"name": "f", "arguments": {"a": 1}, "id": "abc123def"}]',
        False,
        "mistral",
    ),
    ('[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]g[ARGS]{}', True, "auto"),
    ('x [TOOL_CALLS][{"name"', False, "auto"),
    ("<think>a <thi b</think>c <tool_ca d", True, "auto"),
    ("<<think>>", True, "hermes"),
    ("<think></think>", True, "hermes"),
    ('<think>ça va 🤔 </think> résumé ✓ <tool_call>{"name": "é"}</tool_call>', True, "hermes"),
    ("\n\n", True, "hermes"),
    ("\n\n", False, "llama3"),
    ("Done.</tool_call><tool_call>", False, "hermes"),
    ("x</think", True, None),
    ("abc <think> d </think> e", True, None),
    ("<think>a</think>b</think>c", True, None),
    ('<think>x</think>\n{"name": "f", "parameters": {}}', True, "auto"),
]


def expected(text: str, think: bool, tool_format: str | None, started: bool = False):
    thinking, content = split_thinking(text, started=started) if think else ("", text)
    if tool_format is None:
        return thinking, content, []
    content, calls = parse_tool_calls(content, format=tool_format)
    return thinking, content, calls


def stream(pieces, think, tool_format, **kwargs) -> tuple[str, str, list[ToolCall], list[Delta]]:
    parser = ChatOutputParser(think=think, tool_format=tool_format, **kwargs)
    deltas = [delta for piece in pieces for delta in parser.feed(piece)]
    deltas += parser.finish()
    return (
        "".join(d.thinking for d in deltas),
        "".join(d.content for d in deltas),
        [call for d in deltas for call in d.tool_calls],
        deltas,
    )


def check_tags_never_leak(deltas: list[Delta], think: bool) -> None:
    if think:
        for delta in deltas:
            assert "<think>" not in delta.thinking and "</think>" not in delta.thinking


@pytest.mark.parametrize(("text", "think", "tool_format"), SAMPLES)
def test_every_two_way_split_matches_the_whole_text_functions(text, think, tool_format):
    want = expected(text, think, tool_format)
    for cut in range(len(text) + 1):
        thinking, content, calls, deltas = stream([text[:cut], text[cut:]], think, tool_format)
        assert (thinking, content, calls) == want, (
            f"split at {cut}: {text[:cut]!r} | {text[cut:]!r}"
        )
        check_tags_never_leak(deltas, think)


@pytest.mark.parametrize(("text", "think", "tool_format"), SAMPLES)
def test_one_character_at_a_time_and_random_splits(text, think, tool_format):
    want = expected(text, think, tool_format)
    assert stream(list(text), think, tool_format)[:3] == want
    rng = random.Random(len(text))
    for _ in range(20):
        cuts = sorted(rng.sample(range(len(text) + 1), min(4, len(text) + 1)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert stream(pieces, think, tool_format)[:3] == want, pieces


@pytest.mark.parametrize(
    "text", ["still thinking", "a \n</think>\n b", 'a</think>b<tool_call>{"name": "f"}</tool_call>']
)
def test_thinking_started_matches_split_thinking_started(text):
    want = expected(text, True, "hermes", started=True)
    for cut in range(len(text) + 1):
        pieces = [text[:cut], text[cut:]]
        assert stream(pieces, True, "hermes", thinking_started=True)[:3] == want


def test_thinking_streams_and_partial_tags_are_held_back():
    parser = ChatOutputParser(think=True, tool_format=None)
    assert parser.feed("  <thi") == []
    assert parser.feed("nk>\nHel") == [Delta(thinking="Hel")]
    assert parser.feed("lo </th") == [Delta(thinking="lo")]
    assert parser.feed("ink>\n\nAns") == [Delta(content="Ans")]
    assert parser.feed("wer") == [Delta(content="wer")]
    assert parser.finish() == []


def test_a_tag_prefix_that_turns_out_to_be_text_is_released():
    parser = ChatOutputParser(think=True, tool_format=None, thinking_started=True)
    assert parser.feed("a </thin") == [Delta(thinking="a")]
    assert parser.feed("g>") == [Delta(thinking=" </thing>")]


def test_content_streams_before_the_end_and_calls_come_when_a_block_closes():
    parser = ChatOutputParser(think=False, tool_format="hermes")
    assert parser.feed("Let me look") == [Delta(content="Let me look")]
    assert parser.feed(" that up. <tool") == [Delta(content=" that up.")]
    assert parser.feed('_call>{"name": "lookup", "arguments": {"q": 1}}') == []
    assert parser.feed("</tool_call>") == [Delta(tool_calls=[ToolCall("lookup", {"q": 1})])]
    assert parser.feed("\n") == []
    assert parser.finish() == []


def test_an_unfinished_block_comes_out_as_content_at_finish():
    parser = ChatOutputParser(think=False, tool_format="hermes")
    assert parser.feed('<tool_call>{"name": "f", "argu') == []
    assert parser.finish() == [Delta(content='<tool_call>{"name": "f", "argu')]


def test_a_block_that_does_not_parse_is_released_when_it_closes():
    parser = ChatOutputParser(think=False, tool_format="hermes")
    assert parser.feed("<tool_call>{nope}") == []
    assert parser.feed("</tool_call> ok") == [Delta(content="<tool_call>{nope}</tool_call> ok")]


def test_one_feed_can_yield_thinking_content_and_calls_in_order():
    parser = ChatOutputParser(think=True, tool_format="hermes")
    deltas = parser.feed('<think>hm</think>Calling.<tool_call>{"name": "f"}</tool_call>')
    assert deltas == [
        Delta(thinking="hm"),
        Delta(content="Calling."),
        Delta(tool_calls=[ToolCall("f", {})]),
    ]


def test_without_think_tags_are_content_and_without_a_tool_format_blocks_are_content():
    text = '<think>x</think><tool_call>{"name": "f"}</tool_call>'
    assert stream([text], False, None)[:3] == ("", text, [])


def test_feed_after_finish_is_an_error_and_bad_options_are_refused():
    parser = ChatOutputParser(think=False, tool_format=None)
    parser.finish()
    assert parser.finish() == []
    with pytest.raises(RuntimeError, match="after finish"):
        parser.feed("x")
    with pytest.raises(OptionError, match="`format` must be one of"):
        ChatOutputParser(think=False, tool_format="xml")
    with pytest.raises(OptionError, match="`open_tag`"):
        ChatOutputParser(think=True, tool_format=None, open_tag="")
