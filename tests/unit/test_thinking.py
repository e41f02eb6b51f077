"""Splitting a reasoning model's thinking from its answer."""

from __future__ import annotations

import pytest

from llamahost.chat.thinking import split_thinking
from llamahost.errors import OptionError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>\nThe user greets me.\n</think>\n\nHello!", ("The user greets me.", "Hello!")),
        ("  \n<think>a b</think>c", ("a b", "c")),
        ("<think>\n\n</think>\n\nHello!", ("", "Hello!")),
        ("<think>first\n\nsecond</think> answer\n", ("first\n\nsecond", "answer\n")),
        # the template opened the tag: only the close tag shows
        ("The user greets me.\n</think>\n\nHello!", ("The user greets me.", "Hello!")),
        ("</think>Hello", ("", "Hello")),
        # cut short while thinking
        ("<think>\nstill going  ", ("still going", "")),
        # no thinking at all
        ("Hello!", ("", "Hello!")),
        ("  Hello!\n", ("", "  Hello!\n")),
        # tags that are not at the start are just text
        (
            "Answer: use <think>tags</think> like this",
            ("", "Answer: use <think>tags</think> like this"),
        ),
        ("x <think>y", ("", "x <think>y")),
        # only the first close tag ends the thinking
        ("<think>a</think>b</think>c", ("a", "b</think>c")),
    ],
)
def test_split_thinking(text, expected):
    assert split_thinking(text) == expected


def test_started_means_the_text_begins_inside_thinking():
    assert split_thinking("still thinking", started=True) == ("still thinking", "")
    assert split_thinking("a</think>b", started=True) == ("a", "b")
    assert split_thinking("still thinking") == ("", "still thinking")


def test_custom_tags():
    text = "<|channel|>analysis stuff<|end|> final words"
    assert split_thinking(text, "<|channel|>", "<|end|>") == ("analysis stuff", "final words")
    assert split_thinking("<think>a</think>b", "[THINK]", "[/THINK]") == ("", "<think>a</think>b")


@pytest.mark.parametrize(("open_tag", "close_tag"), [("", "</think>"), ("<t>", ""), ("<t>", "<t>")])
def test_bad_tags_are_option_errors(open_tag, close_tag):
    with pytest.raises(OptionError, match="tag"):
        split_thinking("x", open_tag, close_tag)
