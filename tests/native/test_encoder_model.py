"""Encoder-only models: Context.encode and embeddings on the generated tiny BERT.

llama.cpp runs BERT without a KV cache: `llama_encode` is its forward pass (and
`llama_decode` forwards to it). A decoder-only model has a KV cache and no encoder graph;
`llama_encode` on it crashes inside llama.cpp, so that case runs in a fresh interpreter.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

import llamahost
from llamahost import _native
from llamahost.errors import AbortedError, InvalidBatchError
from support.isolated import run_python
from support.tiny_bert import CLS, N_EMBD, N_LAYER, N_VOCAB, SEP

MEAN, CLS_POOLING, NO_POOLING = 1, 2, 0
VOCAB_TYPE_WPM = 3


@pytest.fixture(scope="module")
def bert(tiny_bert_path: Path) -> _native.Model:
    # A GGUF that llama.cpp mis-reads can crash the process: prove it loads and runs in a
    # fresh interpreter before this one touches it.
    probe = run_python(
        textwrap.dedent(
            f"""
            from llamahost import _native
            m = _native.Model.load([{str(tiny_bert_path)!r}])
            p = dict(_native.context_default_params())
            p.update(n_ctx=64, n_batch=64, n_ubatch=64, n_threads=1, n_threads_batch=1,
                     embeddings=True, pooling_type={MEAN})
            ctx = _native.Context(m, **p)
            b = _native.Batch(8, 1)
            b.add_sequence(m.vocab.tokenize("hello", True, False), 0, 0, True, True)
            ctx.decode(b)
            print("ran", len(ctx.sequence_embeddings(0)))
            """
        )
    )
    if probe.returncode != 0 or f"ran {N_EMBD}" not in probe.stdout:
        pytest.fail(f"the tiny BERT does not run:\n{probe.stdout}\n{probe.stderr}")
    return _native.Model.load([str(tiny_bert_path)])


def make_context(model: _native.Model, **overrides: object) -> _native.Context:
    params = dict(_native.context_default_params())
    params.update(
        n_ctx=256,
        n_batch=128,
        n_ubatch=128,
        n_seq_max=2,
        kv_unified=True,
        n_threads=1,
        n_threads_batch=1,
        embeddings=True,
        pooling_type=MEAN,
    )
    params.update(overrides)
    return _native.Context(model, **params)


def batch_of(*sequences: list[int]) -> _native.Batch:
    batch = _native.Batch(64, 1)
    for seq, tokens in enumerate(sequences):
        batch.add_sequence(tokens, 0, seq, True, True)
    return batch


def pooled(ctx: _native.Context, seq: int = 0) -> np.ndarray:
    return np.array(ctx.sequence_embeddings(seq), dtype=np.float32)


def test_tiny_bert_is_a_memoryless_wordpiece_embedding_model(bert: _native.Model) -> None:
    assert bert.meta_value("general.architecture") == "bert"
    assert (bert.n_embd, bert.n_layer, bert.vocab.n_tokens) == (N_EMBD, N_LAYER, N_VOCAB)
    assert bert.meta_value("bert.pooling_type") == "1"
    assert bert.meta_value("bert.attention.causal") == "false"
    # llama.cpp's has_encoder means "T5-style encoder before a decoder", not BERT.
    assert (bert.has_encoder, bert.has_decoder) == (False, True)
    vocab = bert.vocab
    assert vocab.type == VOCAB_TYPE_WPM
    assert (vocab.bos, vocab.sep) == (CLS, SEP)
    tokens = vocab.tokenize("Hello, abc", True, False)
    assert [vocab.text(t) for t in tokens] == [
        "[CLS]", "\u2581hello", "\u2581,", "\u2581a", "b", "c", "[SEP]"
    ]  # fmt: skip


def test_encode_gives_pooled_embeddings_per_sequence(bert: _native.Model) -> None:
    hello = bert.vocab.tokenize("hello world", True, False)
    other = bert.vocab.tokenize("xyz 123", True, False)
    ctx = make_context(bert)
    assert ctx.pooling_type == MEAN
    ctx.encode(batch_of(hello, other))
    a, b = pooled(ctx, 0), pooled(ctx, 1)
    assert a.shape == b.shape == (N_EMBD,)
    assert np.isfinite(a).all() and np.isfinite(b).all()
    assert not np.allclose(a, b, atol=1e-3)

    # Sequences in one batch do not see each other, and decode (which llama.cpp forwards
    # to encode for a model without memory) agrees.
    ctx.encode(batch_of(hello))
    np.testing.assert_allclose(pooled(ctx), a, atol=1e-5)
    ctx.decode(batch_of(other))
    np.testing.assert_allclose(pooled(ctx), b, atol=1e-5)

    # Mean pooling is the mean of the per-token vectors; CLS pooling is the first token's.
    per_token = make_context(bert, pooling_type=NO_POOLING)
    per_token.encode(batch_of(hello))
    rows = np.stack([np.array(per_token.embeddings(i)) for i in range(len(hello))])
    np.testing.assert_allclose(rows.mean(axis=0), a, atol=1e-5)
    cls_ctx = make_context(bert, pooling_type=CLS_POOLING)
    cls_ctx.encode(batch_of(hello))
    np.testing.assert_allclose(pooled(cls_ctx), rows[0], atol=1e-5)


def test_encode_rejects_an_invalid_token_id_then_works(bert: _native.Model) -> None:
    tokens = bert.vocab.tokenize("hello", True, False)
    ctx = make_context(bert)
    ctx.encode(batch_of(tokens))
    before = pooled(ctx).copy()
    with pytest.raises(InvalidBatchError, match=r"^llama_encode rejected the batch"):
        ctx.encode(batch_of([CLS, N_VOCAB + 7, SEP]))
    with pytest.raises(InvalidBatchError, match="empty batch"):
        ctx.encode(_native.Batch(4, 1))
    ctx.encode(batch_of(tokens))
    np.testing.assert_allclose(pooled(ctx), before, atol=1e-6)


def test_abort_before_encode_raises_aborted_and_clears(bert: _native.Model) -> None:
    tokens = bert.vocab.tokenize("hello world", True, False)
    ctx = make_context(bert)
    ctx.encode(batch_of(tokens))
    before = pooled(ctx).copy()
    ctx.abort()
    assert ctx.abort_requested
    with pytest.raises(AbortedError) as caught:
        ctx.encode(batch_of(tokens))
    assert str(caught.value) == "aborted"
    assert not ctx.abort_requested
    ctx.encode(batch_of(tokens))
    np.testing.assert_allclose(pooled(ctx), before, atol=1e-6)


def test_encode_on_a_decoder_only_model_raises_instead_of_crashing(tiny_model_path: Path) -> None:
    done = run_python(
        textwrap.dedent(
            f"""
            from llamahost import _native
            from llamahost.errors import DecodeError
            m = _native.Model.load([{str(tiny_model_path)!r}])
            assert not m.has_encoder
            p = dict(_native.context_default_params())
            p.update(n_ctx=64, n_batch=64, n_ubatch=64, n_threads=1, n_threads_batch=1)
            ctx = _native.Context(m, **p)
            b = _native.Batch(8, 1)
            b.add_sequence([1, 72, 105], 0, 0, True, False)
            try:
                ctx.encode(b)
            except DecodeError as e:
                print("encode:", e)
            else:
                raise SystemExit("encode on a decoder-only model did not raise")
            ctx.decode(b)
            print("decode after: ok", len(ctx.logits(-1)))
            """
        )
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "has no encoder" in done.stdout
    assert "decode after: ok" in done.stdout


def test_embed_from_an_encoder_only_model(tiny_bert_path: Path) -> None:
    model = llamahost.load(tiny_bert_path, num_ctx=256, num_thread=1)
    a, b = model.embed(["a", "b"])
    assert len(a) == len(b) == N_EMBD
    for vec in (a, b):
        assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(a, b, atol=1e-3)
    same = model.embed(["hello world", "hello world"])
    np.testing.assert_allclose(same[0], same[1], atol=1e-6)
    texts = ["a", "hello world", "xyz 123", "b"]
    batched = model.embed(texts)
    one_by_one = [model.embed(t)[0] for t in texts]
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_allclose(batched[0], a, atol=1e-5)


def test_seq_state_get_raises_when_llama_cpp_copies_nothing(tiny_model_path: Path) -> None:
    # A sequence id past LLAMA_MAX_SEQ (256) or below -1 makes llama.cpp's sequence-state
    # writer throw on a non-empty cache, which it catches and reports as 0 bytes.
    done = run_python(
        textwrap.dedent(
            f"""
            from llamahost import _native
            from llamahost.errors import StateError
            m = _native.Model.load([{str(tiny_model_path)!r}])
            p = dict(_native.context_default_params())
            p.update(n_ctx=64, n_batch=64, n_ubatch=64, n_threads=1, n_threads_batch=1)
            ctx = _native.Context(m, **p)
            ctx.decode_tokens([1, 72, 105], 0, 0, True)
            for seq in (256, 1000, -2):
                try:
                    ctx.seq_state_get(seq)
                except StateError as e:
                    print("state:", e)
                else:
                    raise SystemExit(f"seq_state_get({{seq}}) returned data")
            saved = ctx.seq_state_get(0)
            ctx.seq_rm(0)
            ctx.seq_state_set(saved, 0)
            print("after:", len(saved), ctx.seq_pos_max(0))
            """
        )
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("copied nothing for sequence") == 3
    assert "after:" in done.stdout
    assert done.stdout.strip().endswith(" 2")
