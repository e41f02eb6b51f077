"""A model's capabilities (Ollama's ``/api/show`` list) from its template text and GGUF
metadata alone: no llama.cpp, so the server can answer without loading the model.

    model_capabilities(template, metadata, has_projector=False)
    -> ["completion", "tools", "insert"]

- ``completion``, or ``embedding`` when ``<arch>.pooling_type`` is set and not 0 (none):
  an embedding model (BERT and kin) cannot generate.
- ``tools``: a Go template that uses ``.Tools``, or a Jinja template that mentions
  ``tools``.
- ``thinking``: a template with a thinking block or switch (``<think>``, ``.Think``,
  ``enable_thinking``, ``reasoning_content``, ...), as the engine decides it.
- ``insert`` (fill in the middle): a Go template that uses ``.Suffix``, or FIM tokens in the
  GGUF: ``tokenizer.ggml.fim_{pre,suf,mid}_token_id`` (older files:
  ``tokenizer.ggml.{prefix,suffix,middle}_token_id``), or, when ``tokens`` (the
  vocabulary) is given, the token texts llama.cpp recognises (``<|fim_prefix|>``,
  ``<fim_prefix>``, ``<PRE>``, ...).
- ``vision``: the model has a projector layer.

``template`` is the Modelfile TEMPLATE (Go) or, without one, the GGUF's
``tokenizer.chat_template`` (Jinja); :func:`template_language` tells them apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from llamahost.errors import TemplateError

if TYPE_CHECKING:
    from llamahost.chat.gotemplate import GoTemplate

TemplateLanguage = Literal["jinja", "go"]

# llamahost.engine.chat_prompt decides a template's language and thinking by these rules too.
_GO_ACTION = re.compile(r"\{\{-?\s*(?:\.|\$|(?:range|if|with|template|block)\s+[.$(])")
_GO_THINK_FIELD = re.compile(r"\.(?:Think|IsThinkSet|Thinking)\b")
_JINJA_THINK_WORDS = ("<think>", "enable_thinking", "reasoning_content", "thinking")
_FIM_KEYS = (
    ("fim_pre_token_id", "fim_suf_token_id", "fim_mid_token_id"),
    ("prefix_token_id", "suffix_token_id", "middle_token_id"),
)
# Token texts llama.cpp's vocabulary loader takes as FIM prefix / suffix / middle.
FIM_TOKEN_TEXTS = (
    (
        "<|fim_prefix|>",
        "<fim-prefix>",
        "<fim_prefix>",
        "<\uff5cfim\u2581begin\uff5c>",
        "<PRE>",
        "\u2581<PRE>",
    ),
    (
        "<|fim_suffix|>",
        "<fim-suffix>",
        "<fim_suffix>",
        "<\uff5cfim\u2581hole\uff5c>",
        "<SUF>",
        "\u2581<SUF>",
    ),
    (
        "<|fim_middle|>",
        "<fim-middle>",
        "<fim_middle>",
        "<\uff5cfim\u2581end\uff5c>",
        "<MID>",
        "\u2581<MID>",
    ),
)


def template_language(source: str) -> TemplateLanguage:
    """Go for Ollama-style templates (``{{ .System }}``, ``{{ range .Messages }}``), else
    Jinja (whose statements use ``{% %}`` and never start an expression with a dot)."""
    if "{%" not in source and _GO_ACTION.search(source):
        return "go"
    return "jinja"


def template_supports_thinking(source: str | None, language: TemplateLanguage) -> bool:
    """Whether a chat template can make its model think (a thinking block or switch)."""
    if not source:
        return False
    if language == "go":
        return "<think>" in source or _GO_THINK_FIELD.search(source) is not None
    return any(word in source for word in _JINJA_THINK_WORDS)


def _go_template(source: str) -> GoTemplate | None:
    """The parsed Go template (None if it does not parse)."""
    from llamahost.chat.gotemplate import GoTemplate

    try:
        return GoTemplate(source)
    except TemplateError:
        return None


def _is_token_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def has_fim_tokens(metadata: Mapping[str, Any], tokens: Sequence[str] | None = None) -> bool:
    """Whether the GGUF declares fill-in-the-middle tokens (ids, or known token texts)."""
    for keys in _FIM_KEYS:
        if all(_is_token_id(metadata.get(f"tokenizer.ggml.{key}")) for key in keys):
            return True
    if not tokens:
        return False
    vocabulary = set(tokens)
    return all(any(text in vocabulary for text in texts) for texts in FIM_TOKEN_TEXTS)


def is_embedding_model(metadata: Mapping[str, Any]) -> bool:
    """Whether ``<arch>.pooling_type`` is set and not 0 (LLAMA_POOLING_TYPE_NONE)."""
    architecture = metadata.get("general.architecture")
    pooling = metadata.get(f"{architecture}.pooling_type") if architecture else None
    return _is_token_id(pooling) and pooling != 0


def model_capabilities(
    template: str | None,
    metadata: Mapping[str, Any],
    *,
    has_projector: bool = False,
    tokens: Iterable[str] | None = None,
) -> list[str]:
    """Ollama's capability names for a model, in Ollama's order (see the module docstring)."""
    capabilities = ["embedding" if is_embedding_model(metadata) else "completion"]
    source = template or ""
    language = template_language(source) if source else "jinja"
    go = _go_template(source) if language == "go" else None
    if has_projector:
        capabilities.append("vision")
    if (go is not None and go.supports_tools) or (language == "jinja" and "tools" in source):
        capabilities.append("tools")
    token_list = list(tokens) if tokens is not None else None
    if (go is not None and go.supports_insert) or has_fim_tokens(metadata, token_list):
        capabilities.append("insert")
    if template_supports_thinking(source, language):
        capabilities.append("thinking")
    return capabilities


__all__ = [
    "FIM_TOKEN_TEXTS",
    "has_fim_tokens",
    "is_embedding_model",
    "model_capabilities",
    "template_language",
    "template_supports_thinking",
]
