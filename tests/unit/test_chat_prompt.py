"""Template language detection and message normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamahost.engine.chat_prompt import normalize_messages, template_language
from llamahost.engine.responses import Message
from llamahost.errors import OptionError

DATA = Path(__file__).parent / "data"
GO_FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "go-templates"


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.jinja")))
def test_jinja_templates_are_jinja(name: str) -> None:
    assert template_language((DATA / name).read_text()) == "jinja"


@pytest.mark.skipif(not GO_FIXTURES.exists(), reason="../shared fixtures not beside the checkout")
@pytest.mark.parametrize(
    "name", ["chatml", "gemma3-instruct", "mistral-instruct", "phi-3", "qwen2.5"]
)
def test_ollama_templates_are_go(name: str) -> None:
    assert template_language((GO_FIXTURES / f"{name}.gotmpl").read_text()) == "go"


@pytest.mark.parametrize(
    ("source", "language"),
    [
        ("{{ .Prompt }}", "go"),
        ("{{- if .System }}{{ .System }}{{ end }}", "go"),
        ("{{ $x := 1 }}{{ $x }}", "go"),
        ("{{ messages[0]['content'] }}", "jinja"),
        ("{% for m in messages %}{{ m.content }}{% endfor %}", "jinja"),
        ("plain text", "jinja"),
    ],
)
def test_template_language(source: str, language: str) -> None:
    assert template_language(source) == language


def test_normalize_messages() -> None:
    msgs = normalize_messages(
        [{"role": "USER", "content": None}, Message("assistant", "hi")], default_system="be nice"
    )
    assert msgs == [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": ""},
        {"role": "assistant", "content": "hi"},
    ]
    assert normalize_messages([{"role": "system", "content": "mine"}], default_system="x") == [
        {"role": "system", "content": "mine"}
    ]


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ("hello", "must be a list"),
        ([42], r"`messages\[0\]` must be an object"),
        ([{"content": "no role"}], r"`messages\[0\].role` must be one of"),
        ([{"role": "user", "content": 5}], r"`messages\[0\].content` must be a string"),
    ],
)
def test_normalize_messages_errors(messages: object, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        normalize_messages(messages)  # type: ignore[arg-type]
