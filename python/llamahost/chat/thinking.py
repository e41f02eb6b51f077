"""Separate a reasoning model's thinking from its answer.

Reasoning models (Qwen3, QwQ, DeepSeek-R1, gpt-oss via its template ...) write their
chain of thought between tags before the answer::

    <think>
    The user greets me.
    </think>

    Hello!

Some chat templates write the open tag themselves at the end of the prompt; the
output then starts inside the thinking and only shows the close tag. Both forms
give ``("The user greets me.", "Hello!")``.

Rules (the streaming parser in :mod:`llamahost.chat.output_parser` follows the same):

- Thinking is recognised only at the start of the output: the open tag after
  optional whitespace, or, when the output does not start with it, a close tag
  with no open tag before it (the template opened the tag).
- The thinking is returned with surrounding whitespace stripped; the answer with
  the whitespace after the close tag stripped.
- Thinking that never closes (generation stopped early) is all thinking.
- Anything else is all answer, tags and all.
"""

from __future__ import annotations

from llamahost.errors import OptionError

__all__ = ["check_tags", "split_thinking"]


def check_tags(open_tag: str, close_tag: str) -> None:
    """Raise OptionError unless both tags are non-empty strings and differ."""
    for option, tag in (("open_tag", open_tag), ("close_tag", close_tag)):
        if not isinstance(tag, str) or not tag:
            raise OptionError(f"`{option}` must be a non-empty string, got {tag!r}", option)
    if open_tag == close_tag:
        raise OptionError(
            f"`open_tag` and `close_tag` must differ, both are {open_tag!r}", "close_tag"
        )


def split_thinking(
    text: str,
    open_tag: str = "<think>",
    close_tag: str = "</think>",
    *,
    started: bool = False,
) -> tuple[str, str]:
    """Split model output into (thinking, content).

    Args:
        text: the model's whole output.
        open_tag, close_tag: the tags around the thinking.
        started: the prompt already opened the thinking, so ``text`` starts inside
            it. Without this, that case is still recognised when ``text`` holds a
            close tag and no open tag before it.

    Examples::

        split_thinking("<think>a</think>\\n\\nb")   == ("a", "b")
        split_thinking("a</think> b")              == ("a", "b")   # template opened it
        split_thinking("<think>a")                 == ("a", "")    # cut short
        split_thinking("b")                        == ("", "b")

    Raises:
        OptionError: a tag is empty, or both are the same.
    """
    check_tags(open_tag, close_tag)
    if started:
        body_start = 0
    else:
        stripped = text.lstrip()
        if stripped.startswith(open_tag):
            body_start = len(text) - len(stripped) + len(open_tag)
        else:
            close = text.find(close_tag)
            opened = text.find(open_tag)
            if close < 0 or 0 <= opened < close:
                return "", text
            body_start = 0
    close = text.find(close_tag, body_start)
    if close < 0:
        return text[body_start:].strip(), ""
    return text[body_start:close].strip(), text[close + len(close_tag) :].lstrip()
