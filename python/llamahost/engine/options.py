"""Generation and load options, with Ollama's names, defaults and validation.

Ollama's API and Modelfiles carry options as one flat set of names; they act at three
different moments, and each moment has its own typed, validated group:

- :class:`ModelParams`: fixed when the weights load (``num_gpu``, ``use_mmap``, ...);
- :class:`ContextParams`: fixed when a context is created (``num_ctx``, ``num_batch``,
  ``kv_cache_type``, ``flash_attn``, ``num_thread``);
- :class:`RequestOptions`: per request (sampling, ``num_predict``, ``stop``, ...).

:class:`Options` is all three together: the flat set a request, a ``PARAMETER`` line or
``llamahost.load(**options)`` speaks, and an instance of each group. ``options.model_params``,
``options.context_params`` and ``options.request`` project it onto one group. Every value is
checked when any of these is built, and a bad one raises
:class:`~llamahost.errors.OptionError` naming the option and its allowed range:

    >>> Options().merged({"top_p": 1.5})
    Traceback (most recent call last):
    ...
    llamahost.errors.OptionError: `top_p` must be in [0, 1], got 1.5
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from llamahost.errors import OptionError

OptionKind = Literal["model", "context", "request"]


@dataclass(frozen=True)
class OptionSpec:
    """How one option is typed, bounded and used."""

    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low is exclusive
    choices: tuple[Any, ...] | None = None
    deprecated: bool = False  # accepted for compatibility, has no effect


def _option(default: Any, doc: str, **spec: Any) -> Any:
    return field(default=default, metadata={"spec": OptionSpec(doc=doc, **spec)})


DEFAULT_DRY_SEQUENCE_BREAKERS: tuple[str, ...] = ("\n", ":", '"', "*")

_Group = TypeVar("_Group", bound="_Validated")


@dataclass(frozen=True)
class _Validated:
    """Validates every field when built (also through ``dataclasses.replace``)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _validate(f, getattr(self, f.name)))

    @classmethod
    def of(cls: type[_Group], options: _Validated) -> _Group:
        """This group's fields of `options` (an Options, or another instance of the group)."""
        return cls(**{f.name: getattr(options, f.name) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class ModelParams(_Validated):
    """Options fixed when the model's weights load; changing one means loading again."""

    num_gpu: int = _option(
        -1, "layers to offload to the GPU (-1 = as many as fit/all)", low=-1, high=1 << 16
    )
    main_gpu: int = _option(0, "GPU used for small tensors and scratch", low=0, high=255)
    use_mmap: bool | None = _option(
        None, "map the model file instead of reading it (None = llama.cpp decides)"
    )
    use_mlock: bool = _option(False, "lock the model in RAM")
    vocab_only: bool = _option(False, "load only the vocabulary")
    repack: bool | None = _option(
        None,
        "put CPU weights in llama.cpp's faster repacked layouts (None = yes, except on CPUs "
        "with AMX, whose ggml kernels crash: llama.cpp issue 20824)",
    )


@dataclass(frozen=True)
class ContextParams(_Validated):
    """Options fixed when a context (KV cache, compute buffers) is created."""

    num_ctx: int = _option(
        4096, "context window in tokens (0 = the model's training context)", low=0, high=1 << 24
    )
    num_batch: int = _option(
        512, "prompt tokens decoded per llama_decode call", low=1, high=1 << 20
    )
    num_thread: int = _option(0, "CPU threads (0 = one per available core)", low=0, high=512)
    flash_attn: bool | None = _option(None, "flash attention (None = auto)")
    kv_cache_type: str = _option(
        "f16",
        "KV cache element type",
        choices=("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"),
    )

    def resolved_threads(self) -> int:
        return self.num_thread or available_cpus()


@dataclass(frozen=True)
class RequestOptions(_Validated):
    """Options of one request: what to predict and how to sample it."""

    # ---- prediction ----------------------------------------------------------------------
    num_predict: int = _option(
        -1, "tokens to generate (-1 = until done, -2 = fill the context)", low=-2, high=1 << 30
    )
    num_keep: int = _option(
        4,
        "prompt tokens kept when the context shifts or is truncated (-1 = all)",
        low=-1,
        high=1 << 24,
    )
    stop: tuple[str, ...] = _option((), "strings that end generation (not included in output)")
    seed: int = _option(-1, "random seed (-1 = random)", low=-1, high=2**32 - 2)
    # ---- sampling ------------------------------------------------------------------------
    temperature: float = _option(0.8, "sampling temperature (0 = greedy)", low=0, high=100)
    top_k: int = _option(40, "keep the k most likely tokens (0 = off)", low=0, high=1 << 24)
    top_p: float = _option(0.9, "nucleus sampling mass (1 = off)", low=0, high=1)
    min_p: float = _option(
        0.0, "drop tokens below min_p x the top probability (0 = off)", low=0, high=1
    )
    typical_p: float = _option(1.0, "locally typical sampling mass (1 = off)", low=0, high=1)
    repeat_last_n: int = _option(
        64, "tokens looked back for penalties (0 = off, -1 = num_ctx)", low=-1, high=1 << 24
    )
    repeat_penalty: float = _option(
        1.1, "penalty for repeated tokens (1 = off)", low=0, low_open=True, high=100
    )
    presence_penalty: float = _option(
        0.0, "penalty for tokens already present (0 = off)", low=-2, high=2
    )
    frequency_penalty: float = _option(0.0, "penalty by token frequency (0 = off)", low=-2, high=2)
    mirostat: int = _option(0, "Mirostat sampling (0 = off, 1 = v1, 2 = v2)", choices=(0, 1, 2))
    mirostat_tau: float = _option(5.0, "Mirostat target surprise", low=0, high=100)
    mirostat_eta: float = _option(0.1, "Mirostat learning rate", low=0, high=1)
    # ---- llama.cpp samplers beyond Ollama's set -----------------------------------------
    dynatemp_range: float = _option(0.0, "dynamic temperature range (0 = off)", low=0, high=100)
    dynatemp_exponent: float = _option(1.0, "dynamic temperature exponent", low=0, high=100)
    top_n_sigma: float = _option(
        -1.0, "keep tokens within n sigma of the top logit (-1 = off)", low=-1, high=100
    )
    xtc_probability: float = _option(
        0.0, "XTC: chance to exclude top choices (0 = off)", low=0, high=1
    )
    xtc_threshold: float = _option(0.1, "XTC: probability threshold", low=0, high=1)
    dry_multiplier: float = _option(
        0.0, "DRY repetition penalty strength (0 = off)", low=0, high=100
    )
    dry_base: float = _option(1.75, "DRY penalty base", low=1, high=100)
    dry_allowed_length: int = _option(
        2, "DRY: repeats up to this length are free", low=0, high=1 << 16
    )
    dry_penalty_last_n: int = _option(
        -1, "DRY look-back (0 = off, -1 = num_ctx)", low=-1, high=1 << 24
    )
    dry_sequence_breakers: tuple[str, ...] = _option(
        DEFAULT_DRY_SEQUENCE_BREAKERS, "DRY: strings that break repeat sequences"
    )
    # ---- accepted for compatibility with older Ollama clients; no effect -----------------
    penalize_newline: bool = _option(True, "no effect (removed from llama.cpp)", deprecated=True)
    tfs_z: float = _option(1.0, "no effect (removed from llama.cpp)", deprecated=True)
    numa: bool = _option(False, "no effect", deprecated=True)
    low_vram: bool = _option(False, "no effect", deprecated=True)
    f16_kv: bool = _option(True, "no effect (see kv_cache_type)", deprecated=True)
    logits_all: bool = _option(False, "no effect", deprecated=True)


@dataclass(frozen=True)
class Options(RequestOptions, ContextParams, ModelParams):
    """Every option, with Ollama's names and defaults: the three groups in one flat set.

    Build with ``Options.from_mapping({...})`` or ``Options().merged(...)``: both validate,
    as does ``Options(...)`` itself.
    """

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None = None, **kwargs: Any) -> Options:
        """Options from Ollama-style key/values (JSON types); unknown names are errors."""
        return cls().merged(values, **kwargs)

    def merged(self, values: Mapping[str, Any] | None = None, **kwargs: Any) -> Options:
        """A copy with `values` and `kwargs` applied; `None` values leave a default alone."""
        updates: dict[str, Any] = {}
        for source in (values or {}, kwargs):
            for name, value in source.items():
                if name not in _FIELDS:
                    raise OptionError(unknown_option_message(name), option=name)
                if value is not None or _FIELDS[name].default is None:
                    updates[name] = value
        return dataclasses.replace(self, **updates) if updates else self

    def changed(self) -> dict[str, Any]:
        """The options whose value differs from the default (what a Modelfile would list)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        }

    @property
    def model_params(self) -> ModelParams:
        return ModelParams.of(self)

    @property
    def context_params(self) -> ContextParams:
        return ContextParams.of(self)

    @property
    def request(self) -> RequestOptions:
        return RequestOptions.of(self)


def available_cpus() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(Options)}
OPTION_SPECS: dict[str, OptionSpec] = {n: f.metadata["spec"] for n, f in _FIELDS.items()}
OPTION_KINDS: dict[str, OptionKind] = {
    **{f.name: "model" for f in dataclasses.fields(ModelParams)},
    **{f.name: "context" for f in dataclasses.fields(ContextParams)},
    **{f.name: "request" for f in dataclasses.fields(RequestOptions)},
}

#: Names other APIs use for an option (OpenAI, llama.cpp, Hugging Face) -> ours.
OPTION_ALIASES: dict[str, str] = {
    "max_tokens": "num_predict",
    "max_new_tokens": "num_predict",
    "max_completion_tokens": "num_predict",
    "n_predict": "num_predict",
    "n_ctx": "num_ctx",
    "ctx_size": "num_ctx",
    "context_length": "num_ctx",
    "context_size": "num_ctx",
    "n_batch": "num_batch",
    "batch_size": "num_batch",
    "n_gpu_layers": "num_gpu",
    "gpu_layers": "num_gpu",
    "n_threads": "num_thread",
    "threads": "num_thread",
    "num_threads": "num_thread",
    "repetition_penalty": "repeat_penalty",
    "stop_sequences": "stop",
    "random_seed": "seed",
    "typical": "typical_p",
    "cache_type_k": "kv_cache_type",
    "type_k": "kv_cache_type",
    "flash_attention": "flash_attn",
    "mlock": "use_mlock",
    "mmap": "use_mmap",
}


def closest_option(name: str) -> str | None:
    """The option a misspelt or foreign `name` most likely means, if any."""
    lowered = name.lower().replace("-", "_")
    if lowered in _FIELDS:
        return lowered
    if lowered in OPTION_ALIASES:
        return OPTION_ALIASES[lowered]
    close = difflib.get_close_matches(lowered, [*_FIELDS, *OPTION_ALIASES], n=1, cutoff=0.7)
    return OPTION_ALIASES.get(close[0], close[0]) if close else None


def unknown_option_message(name: str) -> str:
    close = closest_option(name)
    if close is not None:
        return f"unknown option `{name}`; did you mean `{close}`?"
    return f"unknown option `{name}` (llamahost.describe_options() lists the valid ones)"


_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "bool | None": "true or false",
    "str": "a string",
    "tuple[str, ...]": "a list of strings",
}


def _type_name(f: dataclasses.Field[Any]) -> str:
    return _TYPE_NAMES.get(str(f.type), str(f.type))


def _validate(f: dataclasses.Field[Any], value: Any) -> Any:
    spec: OptionSpec = f.metadata["spec"]
    name = f.name
    kind = str(f.type)
    if value is None:
        if "None" in kind:
            return None
        raise OptionError(f"`{name}` must be {_type_name(f)}, got null", option=name)
    if kind.startswith("tuple[str"):
        if isinstance(value, str):
            value = (value,)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise OptionError(f"`{name}` must be a list of strings, got {value!r}", option=name)
        if any(v == "" for v in value):
            raise OptionError(f"`{name}` must not contain an empty string", option=name)
        return tuple(value)
    if kind.startswith("bool"):
        if not isinstance(value, bool):
            raise OptionError(f"`{name}` must be true or false, got {value!r}", option=name)
        return value
    if kind.startswith("str"):
        if not isinstance(value, str):
            raise OptionError(f"`{name}` must be a string, got {value!r}", option=name)
        value = value.lower()
    elif kind.startswith("int"):
        # JSON numbers arrive as floats: accept 3.0 for 3, refuse 3.5 and booleans.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionError(f"`{name}` must be an integer, got {value!r}", option=name)
        if isinstance(value, float):
            if not value.is_integer():
                raise OptionError(f"`{name}` must be an integer, got {value!r}", option=name)
            value = int(value)
    elif kind.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionError(f"`{name}` must be a number, got {value!r}", option=name)
        value = float(value)
        if not math.isfinite(value):
            raise OptionError(f"`{name}` must be a finite number, got {value!r}", option=name)
    if spec.choices is not None and value not in spec.choices:
        allowed = ", ".join(repr(c) if isinstance(c, str) else str(c) for c in spec.choices)
        raise OptionError(f"`{name}` must be one of {allowed}, got {value!r}", option=name)
    _check_range(name, spec, value)
    return value


def _check_range(name: str, spec: OptionSpec, value: Any) -> None:
    if spec.low is None and spec.high is None:
        return
    low, high = spec.low, spec.high
    too_low = low is not None and (value <= low if spec.low_open else value < low)
    too_high = high is not None and value > high
    if not (too_low or too_high):
        return

    def fmt(v: float | None) -> str:
        return "inf" if v is None else (str(int(v)) if float(v).is_integer() else str(v))

    opening = "(" if spec.low_open else "["
    raise OptionError(
        f"`{name}` must be in {opening}{fmt(low)}, {fmt(high)}], got {value}", option=name
    )


def parse_option_text(name: str, text: str) -> Any:
    """Parse a Modelfile/CLI value (``PARAMETER top_p 0.9``) into the option's type.

    Raises OptionError naming the option for an unknown name or a value of the wrong type.
    """
    if name not in _FIELDS:
        raise OptionError(unknown_option_message(name), option=name)
    kind = str(_FIELDS[name].type)
    raw = text.strip()
    try:
        if kind.startswith("tuple[str"):
            value: Any = (raw,)
        elif kind.startswith("bool"):
            lowered = raw.lower()
            if lowered in ("true", "1", "yes", "on"):
                value = True
            elif lowered in ("false", "0", "no", "off"):
                value = False
            else:
                raise ValueError(raw)
        elif kind.startswith("int"):
            value = int(raw)
        elif kind.startswith("float"):
            value = float(raw)
        else:
            value = raw
    except ValueError:
        raise OptionError(
            f"`{name}` must be {_type_name(_FIELDS[name])}, got {raw!r}", option=name
        ) from None
    return _validate(_FIELDS[name], value)


def describe_options() -> list[tuple[str, OptionKind, Any, str]]:
    """(name, kind, default, doc) for every option: kind is model, context or request."""
    return [(n, OPTION_KINDS[n], _FIELDS[n].default, s.doc) for n, s in OPTION_SPECS.items()]
