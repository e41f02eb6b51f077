"""Options: Ollama names and defaults, validation messages, Modelfile value parsing."""

from __future__ import annotations

import dataclasses

import pytest

from llamahost.engine.options import (
    OPTION_KINDS,
    OPTION_SPECS,
    ContextParams,
    ModelParams,
    Options,
    RequestOptions,
    describe_options,
    parse_option_text,
)
from llamahost.errors import OptionError


def test_defaults_are_ollamas() -> None:
    o = Options()
    assert (o.temperature, o.top_k, o.top_p, o.min_p, o.typical_p) == (0.8, 40, 0.9, 0.0, 1.0)
    assert (o.repeat_last_n, o.repeat_penalty, o.presence_penalty) == (64, 1.1, 0.0)
    assert (o.seed, o.num_predict, o.num_keep, o.mirostat) == (-1, -1, 4, 0)
    assert (o.mirostat_tau, o.mirostat_eta) == (5.0, 0.1)
    assert (o.num_batch, o.num_gpu, o.num_thread, o.stop) == (512, -1, 0, ())
    assert o.changed() == {}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"top_p": 1.5}, r"`top_p` must be in \[0, 1\], got 1.5"),
        ({"top_p": -0.1}, r"`top_p` must be in \[0, 1\], got -0.1"),
        ({"temperature": -1}, r"`temperature` must be in \[0, 100\], got -1.0"),
        ({"repeat_penalty": 0}, r"`repeat_penalty` must be in \(0, 100\], got 0.0"),
        ({"num_ctx": -5}, r"`num_ctx` must be in \[0, "),
        ({"top_k": 2.5}, r"`top_k` must be an integer, got 2.5"),
        ({"top_k": "40"}, r"`top_k` must be an integer, got '40'"),
        ({"seed": True}, r"`seed` must be an integer, got True"),
        ({"temperature": float("nan")}, r"`temperature` must be a finite number"),
        ({"mirostat": 3}, r"`mirostat` must be one of 0, 1, 2, got 3"),
        ({"stop": [1, 2]}, r"`stop` must be a list of strings"),
        ({"stop": ["ok", ""]}, r"`stop` must not contain an empty string"),
        ({"use_mlock": "yes"}, r"`use_mlock` must be true or false, got 'yes'"),
        ({"kv_cache_type": "q3"}, r"`kv_cache_type` must be one of 'f32', 'f16'"),
        ({"temprature": 0.5}, r"unknown option `temprature`; did you mean `temperature`\?"),
        ({"max_tokens": 5}, r"^unknown option `max_tokens`; did you mean `num_predict`\?$"),
        ({"n_gpu_layers": 5}, r"^unknown option `n_gpu_layers`; did you mean `num_gpu`\?$"),
        ({"nonsense": 1}, r"^unknown option `nonsense` \(llamahost.describe_options\(\) lists"),
    ],
)
def test_bad_values_name_the_option_and_range(values: dict, message: str) -> None:
    with pytest.raises(OptionError, match=message) as err:
        Options.from_mapping(values)
    assert err.value.option == next(iter(values))


def test_json_numbers_and_single_strings_are_accepted() -> None:
    o = Options.from_mapping({"top_k": 3.0, "num_predict": 10, "temperature": 1, "stop": "END"})
    assert (o.top_k, o.num_predict, o.temperature, o.stop) == (3, 10, 1.0, ("END",))
    assert isinstance(o.temperature, float)
    assert o.changed() == {"top_k": 3, "num_predict": 10, "temperature": 1.0, "stop": ("END",)}


def test_merge_keeps_earlier_values_and_ignores_none() -> None:
    base = Options.from_mapping({"temperature": 0.1, "num_ctx": 1024})
    merged = base.merged({"top_p": 0.5}, temperature=None)
    assert (merged.temperature, merged.num_ctx, merged.top_p) == (0.1, 1024, 0.5)
    assert base.top_p == 0.9  # frozen: merged() returns a copy
    assert base.merged() is base


def test_direct_construction_validates() -> None:
    with pytest.raises(OptionError, match="top_p"):
        Options(top_p=2.0)


def test_options_split_into_model_context_and_request_groups() -> None:
    groups = [ModelParams, ContextParams, RequestOptions]
    names = [{f.name for f in dataclasses.fields(g)} for g in groups]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    assert set().union(*names) == set(OPTION_SPECS)  # a partition of every option
    assert {"num_gpu", "main_gpu", "use_mmap", "use_mlock", "vocab_only"} <= names[0]
    assert {"num_ctx", "num_batch", "num_thread", "kv_cache_type", "flash_attn"} <= names[1]
    assert {"temperature", "num_predict", "stop", "seed", "top_k"} <= names[2]
    assert {OPTION_KINDS[n] for n in names[0]} == {"model"}
    a = Options(num_ctx=1024, temperature=0.1)
    b = Options(num_ctx=1024, temperature=0.9)
    assert a.context_params == b.context_params and a.model_params == b.model_params
    assert a.context_params != Options(num_ctx=2048).context_params
    assert a.request != b.request
    assert type(a.context_params) is ContextParams


def test_each_group_validates_on_its_own() -> None:
    with pytest.raises(OptionError, match=r"`num_ctx` must be in \[0, "):
        ContextParams(num_ctx=-1)
    with pytest.raises(OptionError, match=r"`num_gpu` must be in \[-1, "):
        ModelParams(num_gpu=-7)
    with pytest.raises(OptionError, match=r"`top_k` must be an integer"):
        RequestOptions(top_k=1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("temperature", "0.7", 0.7),
        ("num_ctx", " 8192 ", 8192),
        ("use_mmap", "false", False),
        ("use_mlock", "TRUE", True),
        ("stop", "<|im_end|>", ("<|im_end|>",)),
        ("kv_cache_type", "Q8_0", "q8_0"),
    ],
)
def test_parse_option_text(name: str, text: str, value: object) -> None:
    assert parse_option_text(name, text) == value


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("temperature", "hot", r"`temperature` must be a number, got 'hot'"),
        ("num_ctx", "1.5", r"`num_ctx` must be an integer, got '1.5'"),
        ("top_p", "3", r"`top_p` must be in \[0, 1\], got 3.0"),
        ("use_mmap", "maybe", r"`use_mmap` must be true or false, got 'maybe'"),
        ("nope", "1", r"unknown option `nope`"),
    ],
)
def test_parse_option_text_errors(name: str, text: str, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        parse_option_text(name, text)


def test_every_option_is_described() -> None:
    described = {name: doc for name, _, _, doc in describe_options()}
    assert set(described) == set(OPTION_SPECS)
    assert all(doc for doc in described.values())
