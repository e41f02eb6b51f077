"""TextStream: UTF-8 and stop-string holdback while streaming."""

from __future__ import annotations

import pytest

from llamahost.engine.text_stream import TextStream


def feed(pieces: list[bytes], stop: tuple[str, ...] = ()) -> tuple[list[str], str, str | None]:
    s = TextStream(stop)
    emitted = [s.push(p) for p in pieces]
    tail = s.finish()
    return emitted, "".join(emitted) + tail, s.stopped_by


def byte_pieces(text: str) -> list[bytes]:
    return [bytes([b]) for b in text.encode()]


@pytest.mark.parametrize("text", ["héllo", "日本語", "🎉 party 🎉", "mixed ✓ and ascii"])
def test_utf8_split_across_tokens_is_never_emitted_half(text: str) -> None:
    emitted, whole, stopped = feed(byte_pieces(text))
    assert whole == text
    assert stopped is None
    for piece in emitted:
        assert "\ufffd" not in piece  # never a replacement char for a character cut in two
    # a 4-byte emoji arrives as one piece, after its last byte
    if "🎉" in text:
        assert "🎉" in emitted


def test_invalid_utf8_becomes_replacement_characters() -> None:
    _, whole, _ = feed([b"ok ", b"\xff", b" \xe2\x82", b"x"])
    assert whole == "ok \ufffd \ufffdx"


def test_incomplete_character_at_the_end_is_flushed_as_replacement() -> None:
    _, whole, _ = feed([b"end \xe2\x82"])
    assert whole == "end \ufffd"


def test_stop_string_within_one_piece() -> None:
    _, whole, stopped = feed([b"Hello. END and more"], stop=("END",))
    assert whole == "Hello. "
    assert stopped == "END"


def test_stop_string_across_pieces_is_held_back_until_decided() -> None:
    emitted, whole, stopped = feed([b"Hello <", b"|e", b"nd", b"|> tail"], stop=("<|end|>",))
    assert emitted == ["Hello ", "", "", ""]
    assert whole == "Hello "
    assert stopped == "<|end|>"


def test_partial_match_that_fails_is_released() -> None:
    emitted, whole, stopped = feed([b"a <", b"|e", b"x", b" b"], stop=("<|end|>",))
    assert emitted == ["a ", "", "<|ex", " b"]
    assert whole == "a <|ex b"
    assert stopped is None


def test_partial_stop_at_the_end_of_generation_is_emitted() -> None:
    _, whole, stopped = feed([b"answer <|", b"en"], stop=("<|end|>",))
    assert whole == "answer <|en"
    assert stopped is None


def test_earliest_of_several_stop_strings_wins() -> None:
    _, whole, stopped = feed([b"one two three"], stop=("three", "two"))
    assert (whole, stopped) == ("one ", "two")


def test_stop_string_with_multibyte_characters_split_in_bytes() -> None:
    text = "résumé — fin ✓ après"
    _, whole, stopped = feed(byte_pieces(text), stop=("✓",))
    assert (whole, stopped) == ("résumé — fin ", "✓")


def test_nothing_after_a_stop() -> None:
    s = TextStream(("X",))
    assert s.push(b"aXb") == "a"
    assert s.push(b"more") == ""
    assert s.finish() == ""


@pytest.mark.parametrize("cut", range(1, 12))
def test_streaming_equals_one_shot_at_every_split(cut: int) -> None:
    text = "la réponse <stop> rest".encode()
    stop = ("<stop>",)
    _, streamed, _ = feed([text[:cut], text[cut:]], stop)
    _, whole, _ = feed([text], stop)
    assert streamed == whole == "la réponse "
