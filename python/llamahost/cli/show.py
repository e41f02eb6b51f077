"""What ``llamahost show`` (and the REPL's ``/show``) prints about a stored model.

    show_data(resolved)            what show prints, from the store (in this process)
    show_data_of(response)         the same, from a server's ``/api/show`` answer
    show_info(data)                the "Model / Parameters / System / License" block
    modelfile_text(resolved)       a Modelfile that recreates the model (``--modelfile``)
    parameters_text(params)        ``name  value`` lines, as ``ollama show --parameters``
    template_text(resolved)        the TEMPLATE layer, else the GGUF's own chat template

The model facts (architecture, parameter count, context and embedding length,
quantization) come from the model's config blob when it has them, else from the GGUF
header (read without loading weights); through a server, from ``details`` and
``model_info``. :class:`ShowData` holds what both ways give, so the text is the same.

``system`` and ``parameters`` arguments replace the stored ones, so the REPL can show the
model as its session has changed it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llamahost.cli.tables import render_sections
from llamahost.gguf import (
    GGUFInfo,
    human_parameter_count,
    parameter_count,
    quantization,
    read_gguf,
)
from llamahost.modelfile.parser import Modelfile
from llamahost.store.model_store import ResolvedModel

PARAMETER_NAME_WIDTH = 30  # Ollama pads parameter names to 30 columns


@dataclass(frozen=True)
class ModelFacts:
    """The "Model" section of ``show``: each value already formatted, "" when unknown."""

    architecture: str
    parameters: str
    context_length: str
    embedding_length: str
    quantization: str

    def rows(self) -> list[list[str]]:
        rows = [
            ["architecture", self.architecture],
            ["parameters", self.parameters],
            ["context length", self.context_length],
            ["embedding length", self.embedding_length],
            ["quantization", self.quantization],
        ]
        return [row for row in rows if row[1]]


def model_facts(resolved: ResolvedModel, headers: Sequence[GGUFInfo]) -> ModelFacts:
    """Architecture, parameter count, context/embedding length and quantization, from the
    config and the GGUF headers of the model's files (shards in order)."""
    first = headers[0]
    details = resolved.details
    count = parameter_count(headers)
    return ModelFacts(
        architecture=first.architecture or details.family,
        parameters=human_parameter_count(count) if count else details.parameter_size,
        context_length=_text(first.arch_value("context_length")),
        embedding_length=_text(first.arch_value("embedding_length")),
        quantization=details.quantization_level or quantization(headers),
    )


ParameterTexts = dict[str, list[str]]
"""Parameters as shown: name -> its values written as Go's ``%#v`` (``stop`` has several)."""


@dataclass(frozen=True)
class ShowData:
    """What ``show`` prints about a model, however it was found (store or server)."""

    facts: ModelFacts
    parameters: ParameterTexts
    system: str
    license: str
    """The LICENSE texts, joined by newlines."""
    template: str
    messages: list[dict[str, str]] = field(default_factory=list)


def show_data(resolved: ResolvedModel) -> ShowData:
    """The show data of a stored model."""
    headers = [read_gguf(path, max_array_length=0) for path in resolved.model_paths]
    return ShowData(
        facts=model_facts(resolved, headers),
        parameters=parameter_texts(resolved.parameters),
        system=resolved.system or "",
        license="\n".join(resolved.licenses),
        template=template_text(resolved, headers[0]),
        messages=_messages(resolved.messages),
    )


def show_data_of(response: Mapping[str, Any]) -> ShowData:
    """The show data in a server's ``/api/show`` answer (its ``model_info`` has
    ``general.parameter_count``, counted as :func:`model_facts` counts it)."""
    info = response.get("model_info") or {}
    details = response.get("details") or {}
    architecture = str(info.get("general.architecture") or details.get("family") or "")
    count = info.get("general.parameter_count")
    facts = ModelFacts(
        architecture=architecture,
        parameters=human_parameter_count(count)
        if isinstance(count, int) and count > 0
        else str(details.get("parameter_size") or ""),
        context_length=_text(info.get(f"{architecture}.context_length")),
        embedding_length=_text(info.get(f"{architecture}.embedding_length")),
        quantization=str(details.get("quantization_level") or ""),
    )
    return ShowData(
        facts=facts,
        parameters=parse_parameters_text(str(response.get("parameters") or "")),
        system=str(response.get("system") or ""),
        license=str(response.get("license") or ""),
        template=str(response.get("template") or ""),
        messages=_messages(response.get("messages") or []),
    )


def show_info(
    data: ShowData, *, system: str | None = None, parameters: ParameterTexts | None = None
) -> str:
    """The block ``ollama show MODEL`` prints: Model, then Parameters, System, License."""
    params = data.parameters if parameters is None else parameters
    system_text = data.system if system is None else system
    pairs = [[name, value] for name, values in params.items() for value in values]
    sections: list[tuple[str, list[list[str]]]] = [("Model", data.facts.rows())]
    sections.append(("Parameters", pairs))
    sections.append(("System", [[line] for line in _first_lines(system_text or "")]))
    sections.append(("License", [[line] for line in _first_lines(data.license)]))
    return render_sections(sections)


def session_modelfile(
    resolved: ResolvedModel,
    *,
    system: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> Modelfile:
    """A Modelfile with the model's settings (FROM its blob files), as stored or overridden."""
    return Modelfile.build(
        [str(path) for path in resolved.model_paths],
        adapters=[str(path) for path in resolved.adapter_paths],
        template=resolved.template,
        system=resolved.system if system is None else system,
        parameters=dict(resolved.parameters if parameters is None else parameters),
        license=resolved.licenses,
        messages=[(str(m.get("role", "")), str(m.get("content", ""))) for m in resolved.messages],
    )


def modelfile_text(
    resolved: ResolvedModel,
    *,
    system: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> str:
    """``show --modelfile``: a header naming the model, then its settings."""
    modelfile = session_modelfile(resolved, system=system, parameters=parameters)
    return modelfile.to_text(resolved.name.display_shortest())


def parameter_pairs(parameters: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, value text) per parameter value; a list (``stop``) gives one pair per item."""
    pairs = []
    for name, value in parameters.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        pairs += [(name, _go_value(item)) for item in items]
    return pairs


def parameters_text(parameters: Mapping[str, Any]) -> str:
    """``show --parameters``: one ``name  value`` line per value, names padded to 30."""
    return parameter_lines(parameter_texts(parameters))


def parameter_lines(texts: ParameterTexts) -> str:
    """:func:`parameters_text` of parameters already written as texts."""
    return "".join(
        f"{name:<{PARAMETER_NAME_WIDTH}} {value}\n"
        for name, values in texts.items()
        for value in values
    )


def parameter_texts(parameters: Mapping[str, Any]) -> ParameterTexts:
    """Parameter values as shown, grouped by name, in the mapping's order."""
    texts: ParameterTexts = {}
    for name, value in parameter_pairs(parameters):
        texts.setdefault(name, []).append(value)
    return texts


def parse_parameters_text(text: str) -> ParameterTexts:
    """The parameters in :func:`parameters_text`'s lines (a server's ``parameters``)."""
    texts: ParameterTexts = {}
    for line in text.splitlines():
        name, _, value = line.strip().partition(" ")
        if name:
            texts.setdefault(name, []).append(value.strip())
    return texts


def template_text(resolved: ResolvedModel, header: GGUFInfo | None = None) -> str:
    """The model's TEMPLATE layer, else the chat template in its GGUF (whose `header` may
    have been read already), else ""."""
    if resolved.template is not None:
        return resolved.template
    if header is None:
        header = read_gguf(resolved.model_paths[0], max_array_length=0)
    template = header.metadata.get("tokenizer.chat_template")
    return template if isinstance(template, str) else ""


def _messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    return [
        {"role": str(m.get("role", "")), "content": str(m.get("content", ""))} for m in messages
    ]


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _first_lines(text: str, count: int = 2) -> list[str]:
    """The first `count` non-blank lines, stripped (``ollama show`` abbreviates this way)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[:count]


def _go_value(value: Any) -> str:
    """A parameter value as Go's ``%#v`` writes it: strings quoted, booleans lower case."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, "g")
    return str(value)
