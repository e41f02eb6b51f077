"""Structured output: a request's `format` or `grammar` -> one GBNF grammar (or none).

- ``format="json"``: any JSON object (Ollama's meaning).
- ``format=<JSON schema dict>`` (or a string holding one): output that validates.
- ``grammar=<GBNF text>``: a raw llama.cpp grammar with a ``root`` rule.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from llamahost.engine.json_schema import JSON_OBJECT_GRAMMAR, json_schema_to_gbnf
from llamahost.errors import OptionError

Format = str | Mapping[str, Any] | None


def grammar_for(format: Format = None, grammar: str | None = None) -> str | None:
    """The GBNF grammar that constrains output, or None for free text."""
    if grammar is not None and format not in (None, ""):
        raise OptionError("give either `format` or `grammar`, not both", option="format")
    if grammar is not None:
        if not isinstance(grammar, str) or not grammar.strip():
            raise OptionError("`grammar` must be a non-empty GBNF string", option="grammar")
        return grammar
    if format is None or format == "":
        return None
    if isinstance(format, str):
        if format.strip() == "json":
            return JSON_OBJECT_GRAMMAR
        try:
            parsed = json.loads(format)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise OptionError(
                f'`format` must be "json" or a JSON schema object, got {format[:60]!r}',
                option="format",
            )
        format = parsed
    if not isinstance(format, Mapping):
        raise OptionError(
            f'`format` must be "json" or a JSON schema object, got {type(format).__name__}',
            option="format",
        )
    return json_schema_to_gbnf(format)
