"""The _native primitives on the generated tiny model: model, vocab, context, samplers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import llamahost
from llamahost import _native
from llamahost.engine.json_schema import json_schema_to_gbnf
from llamahost.errors import (
    AbortedError,
    ContextError,
    ContextFullError,
    GrammarError,
    InvalidBatchError,
    ModelLoadError,
    StateError,
    TokenizeError,
)
from support.tiny_model import N_CTX_TRAIN, N_VOCAB


@pytest.fixture(scope="module")
def model(tiny_model_path: Path) -> _native.Model:
    return _native.Model.load([str(tiny_model_path)])


def make_context(model: _native.Model, **overrides: object) -> _native.Context:
    params = dict(_native.context_default_params())
    params.update(n_ctx=256, n_batch=64, n_ubatch=64, n_threads=1, n_threads_batch=1)
    params.update(overrides)
    return _native.Context(model, **params)


EOS = 2


def no_eos_sampler(model: _native.Model) -> _native.Sampler:
    """A sampler that never picks end-of-sequence, so random weights generate to the limit."""
    s = _native.Sampler(model)
    s.add_logit_bias({EOS: float("-inf")})
    return s


def greedy(model: _native.Model) -> _native.Sampler:
    s = no_eos_sampler(model)
    s.add_greedy()
    return s


# ---- model and vocab ---------------------------------------------------------------
def test_model_facts(model: _native.Model) -> None:
    assert model.n_ctx_train == N_CTX_TRAIN
    assert model.n_embd == 64
    assert model.n_layer == 2
    assert model.n_head == 4
    assert model.n_params > 100_000
    assert model.size > 400_000
    assert model.file_type == "all F32"
    assert model.meta_value("general.architecture") == "llama"
    assert model.meta_value("no.such.key") is None
    assert model.metadata()["llama.block_count"] == "2"
    assert "im_start" in (model.chat_template() or "")
    assert model.vocab.n_tokens == N_VOCAB


def test_load_progress_is_reported_and_can_cancel(tiny_model_path: Path) -> None:
    seen: list[float] = []
    _native.Model.load([str(tiny_model_path)], progress_callback=seen.append)
    assert seen and seen[-1] == pytest.approx(1.0)
    with pytest.raises(ModelLoadError, match="cancelled by the progress callback"):
        _native.Model.load([str(tiny_model_path)], progress_callback=lambda p: False)

    def boom(p: float) -> bool:
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        _native.Model.load([str(tiny_model_path)], progress_callback=boom)


def test_vocab_only_model_tokenizes(tiny_model_path: Path) -> None:
    vocab_model = _native.Model.load([str(tiny_model_path)], vocab_only=True)
    ids = vocab_model.vocab.tokenize("hello", True, False)
    assert ids[0] == 1 and len(ids) > 5
    assert vocab_model.vocab.detokenize(ids, True) == "\u2581hello"


@pytest.mark.parametrize("text", ["hello", "héllo wörld", "日本語 ✓ 🎉", "", "a\nb\tc"])
def test_tokenize_round_trip(model: _native.Model, text: str) -> None:
    # The tiny vocabulary has only byte tokens, so SentencePiece's space marker U+2581
    # (also the prefix it adds) comes back as that character; real vocabularies map it to
    # a space (tested on real models in tests/integration).
    v = model.vocab
    ids = v.tokenize(text, False, False)
    assert all(3 <= t < N_VOCAB for t in ids)
    expected = ("\u2581" + text.replace(" ", "\u2581")) if text else ""
    assert v.detokenize(ids) == expected
    assert b"".join(v.token_to_piece(t) for t in ids) == expected.encode()


def test_special_tokens(model: _native.Model) -> None:
    v = model.vocab
    assert (v.bos, v.eos) == (1, 2)
    assert v.is_eog(2) and not v.is_eog(100)
    assert v.tokenize("x", True, False)[0] == 1
    assert v.tokenize("x", False, False)[0] != 1
    assert v.text(1) == "<s>"
    assert v.eog_tokens() == [2]
    assert v.tokenize("<s>", False, True) == [1]  # parse_special turns the text into the token
    assert 1 not in v.tokenize("<s>", False, False)


def test_bad_token_ids_raise(model: _native.Model) -> None:
    with pytest.raises(TokenizeError, match=r"token id 259 is out of range \[0, 259\)"):
        model.vocab.detokenize([3, 259])
    with pytest.raises(TokenizeError, match="-1"):
        model.vocab.token_to_piece(-1)


# ---- context: decode, outputs, memory, state ----------------------------------------
def test_decode_exposes_logits_without_copy(model: _native.Model) -> None:
    ctx = make_context(model)
    ctx.decode_tokens(model.vocab.tokenize("hello", True, False), 0)
    logits = ctx.logits()
    assert logits.shape == (N_VOCAB,)
    assert logits.dtype == np.float32
    assert not logits.flags.owndata  # a view into llama.cpp's buffer
    assert np.isfinite(logits).all()
    again = ctx.logits(-1)
    assert again.__array_interface__["data"][0] == logits.__array_interface__["data"][0]


def test_batch_decode_multiple_sequences(model: _native.Model) -> None:
    ctx = make_context(model, n_seq_max=2, kv_unified=True)
    a = model.vocab.tokenize("one", True, False)
    batch = _native.Batch(32, 1)
    batch.add_sequence(a, 0, 0, True)
    batch.add_sequence(a, 0, 1, True)
    ctx.decode(batch)
    assert np.array_equal(ctx.logits(len(a) - 1), ctx.logits(2 * len(a) - 1))
    assert ctx.seq_pos_max(0) == len(a) - 1
    assert ctx.seq_pos_max(1) == len(a) - 1
    ctx.seq_keep(0)
    assert ctx.seq_pos_max(1) == -1
    ctx.seq_cp(0, 1)
    assert ctx.seq_pos_max(1) == len(a) - 1
    assert ctx.seq_rm(0, 1, -1)
    assert ctx.seq_pos_max(0) == 0


def test_decode_errors_are_typed(model: _native.Model) -> None:
    ctx = make_context(model, n_ctx=64, n_batch=64)
    batch = _native.Batch(4, 1)
    batch.add(999, 0, [0], True)
    with pytest.raises(InvalidBatchError):
        ctx.decode(batch)
    with pytest.raises(InvalidBatchError, match="empty"):
        ctx.decode(_native.Batch(4, 1))
    n_ctx = ctx.n_ctx  # llama.cpp rounds the size up (to 256 here)
    for start in range(0, n_ctx, 64):
        full = _native.Batch(64, 1)
        full.add_sequence([5] * 64, start, 0, True)
        ctx.decode(full)
    more = _native.Batch(4, 1)
    more.add(5, n_ctx, [0], True)
    with pytest.raises(ContextFullError, match="num_ctx"):
        ctx.decode(more)
    # the context is still usable
    ctx.memory_clear()
    ctx.decode_tokens([1, 5, 6], 0)
    assert ctx.logits().shape == (N_VOCAB,)
    small = _native.Batch(1, 1)
    small.add(5, 0, [0])
    with pytest.raises(InvalidBatchError, match="full"):
        small.add(6, 1, [0])


def test_context_creation_error_names_parameters(model: _native.Model) -> None:
    with pytest.raises(llamahost.OptionError, match="n_threads"):
        make_context(model, n_threads=0)
    with pytest.raises(ContextError, match="quantized V cache requires flash_attn"):
        make_context(model, n_ctx=256, type_v=_native.ggml_types()["q4_0"], flash_attn=0)


def test_abort_from_another_thread(model: _native.Model) -> None:
    ctx = make_context(model, n_ctx=2048, n_batch=2048, n_ubatch=8)
    tokens = [5 + (i % 200) for i in range(2000)]
    timer = threading.Timer(0.01, ctx.abort)
    timer.start()
    t0 = time.perf_counter()
    with pytest.raises(AbortedError):
        ctx.decode_tokens(tokens, 0)
    timer.join()
    assert time.perf_counter() - t0 < 5
    assert not ctx.abort_requested
    ctx.memory_clear()
    ctx.decode_tokens([1, 5, 6], 0)  # usable afterwards


def test_state_round_trip_bytes_and_file(model: _native.Model, tmp_path: Path) -> None:
    # llama.cpp's state carries the KV cache (this version no longer restores logits), so a
    # restored context must continue exactly like the original.
    tokens = model.vocab.tokenize("the state of things", True, False)
    reference = make_context(model)
    reference.decode_tokens([*tokens, 50], 0)
    expected = np.array(reference.logits())

    ctx = make_context(model)
    ctx.decode_tokens(tokens, 0)
    blob = ctx.state_get()
    ctx.state_save_file(str(tmp_path / "s.bin"), tokens)
    ctx.memory_clear()
    ctx.decode_tokens([1, 7, 8, 9], 0)

    ctx.state_set(blob)
    assert ctx.seq_pos_max(0) == len(tokens) - 1
    ctx.decode_tokens([50], len(tokens))
    assert np.allclose(np.array(ctx.logits()), expected, atol=1e-4)

    other = make_context(model)
    assert other.state_load_file(str(tmp_path / "s.bin")) == tokens
    other.decode_tokens([50], len(tokens))
    assert np.allclose(np.array(other.logits()), expected, atol=1e-4)
    with pytest.raises(StateError):
        other.state_set(b"not a state")
    with pytest.raises(StateError):
        other.state_load_file(str(tmp_path / "missing.bin"))


def test_sequence_state_round_trip(model: _native.Model) -> None:
    ctx = make_context(model)
    tokens = model.vocab.tokenize("sequence", True, False)
    ctx.decode_tokens(tokens, 0)
    saved = ctx.seq_state_get(0)
    ctx.memory_clear()
    ctx.seq_state_set(saved, 0)
    assert ctx.seq_pos_max(0) == len(tokens) - 1


# ---- samplers and the generation loop -------------------------------------------------
def _generate(model: _native.Model, sampler: _native.Sampler, n: int = 16, prompt: str = "hi"):
    ctx = make_context(model)
    tokens = model.vocab.tokenize(prompt, True, False)
    ctx.decode_tokens(tokens, 0)
    return [t for t, _ in _native.Generator(ctx, sampler, tokens, n_predict=n)]


SAMPLER_BUILDERS = {
    "greedy": lambda s: s.add_greedy(),
    "dist": lambda s: s.add_dist(7),
    "top_k": lambda s: (s.add_top_k(5), s.add_dist(7)),
    "top_p": lambda s: (s.add_top_p(0.5, 1), s.add_dist(7)),
    "min_p": lambda s: (s.add_min_p(0.2, 1), s.add_dist(7)),
    "typical": lambda s: (s.add_typical(0.5, 1), s.add_dist(7)),
    "temp": lambda s: (s.add_temp(0.7), s.add_dist(7)),
    "temp_ext": lambda s: (s.add_temp_ext(0.7, 0.3, 1.0), s.add_dist(7)),
    "xtc": lambda s: (s.add_xtc(0.5, 0.1, 1, 7), s.add_dist(7)),
    "top_n_sigma": lambda s: (s.add_top_n_sigma(1.0), s.add_dist(7)),
    "mirostat": lambda s: s.add_mirostat(7, 5.0, 0.1, 100),
    "mirostat_v2": lambda s: s.add_mirostat_v2(7, 5.0, 0.1),
    "penalties": lambda s: (s.add_penalties(64, 1.3, 0.1, 0.1), s.add_greedy()),
    "dry": lambda s: (s.add_dry(0.8, 1.75, 2, 64, ["\n"]), s.add_greedy()),
    "logit_bias": lambda s: (s.add_logit_bias({65: 100.0}), s.add_greedy()),
}


@pytest.mark.parametrize("name", sorted(SAMPLER_BUILDERS))
def test_every_sampler_generates_and_is_reproducible(model: _native.Model, name: str) -> None:
    def run() -> list[int]:
        s = no_eos_sampler(model)
        SAMPLER_BUILDERS[name](s)
        return _generate(model, s)

    first = run()
    assert len(first) == 16
    assert all(0 <= t < N_VOCAB for t in first)
    assert run() == first  # same seed, same tokens
    if name == "logit_bias":
        assert set(first) == {65}


def test_penalties_change_greedy_output(model: _native.Model) -> None:
    plain = _generate(model, greedy(model), n=32)
    s = no_eos_sampler(model)
    s.add_penalties(64, 5.0, 0.0, 0.0)
    s.add_greedy()
    penalised = _generate(model, s, n=32)
    assert penalised != plain
    assert len(set(penalised)) >= len(set(plain))


def test_sampler_without_selection_raises(model: _native.Model) -> None:
    s = _native.Sampler(model)
    s.add_top_k(5)
    with pytest.raises(llamahost.SamplerError, match="selected no token"):
        _generate(model, s)


def test_grammar_constrained_output_parses(model: _native.Model) -> None:
    schema = {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "color": {"enum": ["red", "green", "blue"]},
            "n": {"type": "integer", "minimum": 0, "maximum": 99},
        },
        "required": ["ok", "color", "n"],
        "additionalProperties": False,
    }
    for seed in range(3):
        s = _native.Sampler(model)
        s.add_dist(seed)
        s.set_grammar(json_schema_to_gbnf(schema))
        ctx = make_context(model)
        tokens = model.vocab.tokenize("json:", True, False)
        ctx.decode_tokens(tokens, 0)
        gen = _native.Generator(ctx, s, tokens, n_predict=200)
        text = b"".join(p for _, p in gen).decode()
        assert gen.done_reason == "stop", text  # the grammar ended it with end-of-generation
        value = json.loads(text)
        assert set(value) == {"ok", "color", "n"}
        assert value["color"] in ("red", "green", "blue")
        assert isinstance(value["ok"], bool) and 0 <= value["n"] <= 99


def test_invalid_grammar_raises_with_reason(model: _native.Model) -> None:
    s = _native.Sampler(model)
    with pytest.raises(GrammarError, match="invalid GBNF grammar"):
        s.set_grammar('root ::= "a" undefined-rule')
    with pytest.raises(GrammarError):
        s.set_grammar("root ::= (")


def test_lazy_grammar_applies_after_trigger(model: _native.Model) -> None:
    s = _native.Sampler(model)
    s.add_logit_bias({ord("<") + 3: 50.0})  # push the model to start with "<"
    s.add_greedy()
    s.set_lazy_grammar('root ::= "<" [0-9] [0-9] ">"', "root", [], [ord("<") + 3])
    tokens = _generate(model, s, n=8)
    text = bytes(t - 3 for t in tokens)
    assert text[:1] == b"<"
    assert text[1:3].isdigit() and text[3:4] == b">", text


def test_generator_run_callback_and_stop(model: _native.Model) -> None:
    ctx = make_context(model)
    tokens = model.vocab.tokenize("hi", True, False)
    ctx.decode_tokens(tokens, 0)
    seen: list[int] = []

    def on_token(token: int, piece: bytes) -> bool:
        seen.append(token)
        return len(seen) < 5

    gen = _native.Generator(ctx, greedy(model), tokens, n_predict=100)
    gen.run(on_token)
    assert len(seen) == 5
    assert gen.done_reason == "callback"
    # the tokens decoded into the KV cache: the prompt plus all but the last sampled token
    assert gen.kv_tokens == tokens + seen[:-1]
    assert ctx.seq_pos_max(0) == len(gen.kv_tokens) - 1

    def raises(token: int, piece: bytes) -> bool:
        raise ValueError("stop here")

    ctx.seq_rm(0, -1, -1)
    ctx.decode_tokens(tokens, 0)
    with pytest.raises(ValueError, match="stop here"):
        _native.Generator(ctx, greedy(model), tokens, n_predict=10).run(raises)


def test_generator_stream_equals_callback_loop(model: _native.Model) -> None:
    def via(loop: str) -> list[int]:
        ctx = make_context(model)
        tokens = model.vocab.tokenize("same", True, False)
        ctx.decode_tokens(tokens, 0)
        gen = _native.Generator(ctx, greedy(model), tokens, n_predict=40)
        if loop == "iter":
            return [t for t, _ in gen]
        out: list[int] = []
        gen.run(lambda t, p: out.append(t) is None)
        return out

    assert via("iter") == via("run")


def test_context_shift_keeps_generating(model: _native.Model) -> None:
    ctx = make_context(model, n_ctx=64, n_batch=64)
    n_ctx = ctx.n_ctx
    tokens = model.vocab.tokenize("shift", True, False)
    ctx.decode_tokens(tokens, 0)
    gen = _native.Generator(ctx, greedy(model), tokens, n_predict=n_ctx + 50, n_keep=2)
    out = [t for t, _ in gen]
    assert len(out) == n_ctx + 50
    assert gen.n_shifted > 0
    assert gen.kv_tokens[:2] == tokens[:2]
    assert len(gen.kv_tokens) <= n_ctx
    assert ctx.seq_pos_max(0) == len(gen.kv_tokens) - 1

    ctx.memory_clear()
    ctx.decode_tokens(tokens, 0)
    no_shift = _native.Generator(ctx, greedy(model), tokens, n_predict=n_ctx + 50, shift=False)
    out = [t for t, _ in no_shift]
    assert no_shift.done_reason == "length"
    assert len(tokens) + len(out) == n_ctx + 1  # the last sampled token needs no slot


def test_system_info_and_logging(caplog: pytest.LogCaptureFixture) -> None:
    info = llamahost.system_info()
    assert info["llama_cpp_commit"]
    assert "CPU" in info["backends"]
    assert info["devices"] and info["devices"][0]["memory_total"] > 0
    cpu_library = Path(info["backend_libraries"]["CPU"])
    assert cpu_library.is_file()
    if _native.bundled_backend_dir():  # a wheel: its own llama.cpp, best CPU variant loaded
        assert cpu_library.parent == Path(_native.bundled_backend_dir())
        assert info["cpu_variant"] and cpu_library.name == f"libggml-cpu-{info['cpu_variant']}.so"
        assert info["llama_cpp_python_version"] is None
    else:  # linked against the pinned llama-cpp-python, CPU backend compiled in
        assert info["cpu_variant"] is None
        assert info["llama_cpp_python_version"] == "0.3.36"
    for failure in info["backend_load_failures"]:  # a GPU wheel without its device
        assert failure["library"].startswith("libggml-") and failure["reason"]
        assert not failure["library"].startswith("libggml-cpu")
    if any(d["type"] in ("gpu", "igpu") for d in info["devices"]):
        assert info["backend_load_failures"] == []
    with caplog.at_level("WARNING", logger="llamahost.llama_cpp"):
        _native._log_test_message(3, "first half ")
        _native._log_test_message(5, "second half\n")
        _native._log_test_message(2, "info is below the threshold\n")
    messages = [r.getMessage() for r in caplog.records if r.name == "llamahost.llama_cpp"]
    assert messages == ["first half second half"]
