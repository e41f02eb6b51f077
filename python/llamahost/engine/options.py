"""Generation and load options, with Ollama's names, defaults and validation.

``Options`` holds every option a request or a Modelfile ``PARAMETER`` can set. Load-time
options (``num_ctx``, ``num_gpu``, ...) decide how the model and its context are created;
the rest apply per request. Every value is checked when an ``Options`` is built, and a bad
one raises :class:`~llamahost.errors.OptionError` naming the option and its allowed range:

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
from typing import Any

from llamahost.errors import OptionError


@dataclass(frozen=True)
class OptionSpec:
    """How one option is typed, bounded and used."""

    doc: str
    kind: str = "runtime"  # "runtime" (per request) or "load" (model/context creation)
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low is exclusive
    choices: tuple[Any, ...] | None = None
    deprecated: bool = False  # accepted for compatibility, has no effect


def _option(default: Any, doc: str, **spec: Any) -> Any:
    return field(default=default, metadata={"spec": OptionSpec(doc=doc, **spec)})


DEFAULT_DRY_SEQUENCE_BREAKERS: tuple[str, ...] = ("\n", ":", '"', "*")


@dataclass(frozen=True)
class Options:
    """Every option a request can carry, with Ollama's names and defaults.

    Build with ``Options.from_mapping({...})`` or ``Options().merged(...)``: both validate.
    Constructing ``Options(...)`` directly also validates (in ``__post_init__``).
    """

    # ---- load time: how the model and its context are created -------------------------
    num_ctx: int = _option(
        4096,
        "context window in tokens (0 = the model's training context)",
        kind="load",
        low=0,
        high=1 << 24,
    )
    num_batch: int = _option(
        512, "prompt tokens decoded per llama_decode call", kind="load", low=1, high=1 << 20
    )
    num_gpu: int = _option(
        -1,
        "layers to offload to the GPU (-1 = as many as fit/all)",
        kind="load",
        low=-1,
        high=1 << 16,
    )
    main_gpu: int = _option(
        0, "GPU used for small tensors and scratch", kind="load", low=0, high=255
    )
    num_thread: int = _option(
        0, "CPU threads (0 = one per available core)", kind="load", low=0, high=512
    )
    use_mmap: bool | None = _option(
        None, "map the model file instead of reading it (None = llama.cpp decides)", kind="load"
    )
    use_mlock: bool = _option(False, "lock the model in RAM", kind="load")
    vocab_only: bool = _option(False, "load only the vocabulary", kind="load")
    flash_attn: bool | None = _option(None, "flash attention (None = auto)", kind="load")
    kv_cache_type: str = _option(
        "f16",
        "KV cache element type",
        kind="load",
        choices=("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"),
    )
    # ---- per request: prediction -------------------------------------------------------
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
    # ---- per request: sampling -----------------------------------------------------------
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
    # ---- per request: llama.cpp samplers beyond Ollama's set -----------------------------
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
    numa: bool = _option(False, "no effect", kind="load", deprecated=True)
    low_vram: bool = _option(False, "no effect", kind="load", deprecated=True)
    f16_kv: bool = _option(True, "no effect (see kv_cache_type)", kind="load", deprecated=True)
    logits_all: bool = _option(False, "no effect", kind="load", deprecated=True)
    tfs_z: float = _option(1.0, "no effect (removed from llama.cpp)", deprecated=True)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _validate(f, getattr(self, f.name)))

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
                    raise OptionError(_unknown_option_message(name), option=name)
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

    def load_options(self) -> dict[str, Any]:
        """The load-time options as a dict (equal dicts mean the same model/context setup)."""
        return {name: getattr(self, name) for name in LOAD_OPTIONS}

    def resolved_threads(self) -> int:
        return self.num_thread or available_cpus()


def available_cpus() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(Options)}
OPTION_SPECS: dict[str, OptionSpec] = {n: f.metadata["spec"] for n, f in _FIELDS.items()}
LOAD_OPTIONS: tuple[str, ...] = tuple(n for n, s in OPTION_SPECS.items() if s.kind == "load")
RUNTIME_OPTIONS: tuple[str, ...] = tuple(n for n, s in OPTION_SPECS.items() if s.kind != "load")


def _unknown_option_message(name: str) -> str:
    close = difflib.get_close_matches(name, list(_FIELDS), n=1)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    return f"unknown option `{name}`{hint} (valid options: {', '.join(sorted(_FIELDS))})"


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
        raise OptionError(_unknown_option_message(name), option=name)
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


def describe_options() -> list[tuple[str, str, Any, str]]:
    """(name, kind, default, doc) for every option, for `show` and documentation."""
    return [(n, s.kind, _FIELDS[n].default, s.doc) for n, s in OPTION_SPECS.items()]
