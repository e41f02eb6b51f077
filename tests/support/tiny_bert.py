"""A tiny BERT-architecture (encoder-only) GGUF with random weights, written with `gguf`.

llama.cpp loads it as an embedding model with no KV cache (a context over it has no
memory), runs it with `llama_encode` (`llama_decode` forwards there), mean-pooled
(`bert.pooling_type` 1) and non-causal (`bert.attention.causal` false). Note that llama.cpp
reports `llama_model_has_encoder` false and `llama_model_has_decoder` true for BERT: only
T5 and T5-encoder models have an "encoder" in that API's sense.

Vocabulary: tokenizer model "bert" (llama.cpp's WPM tokenizer), as llama.cpp's converter
writes it: a word-initial piece carries the phantom-space prefix U+2581 ("▁a"), a
continuation piece is bare ("a", HF's "##a"). Ids 0-4 are [PAD] [UNK] [CLS] [SEP] [MASK]
(CLS is the BOS token; tokenizing with special tokens gives [CLS] ... [SEP]), then 23
whole words, then "▁c" and "c" for every lowercase letter, digit and a few punctuation
marks. So any lowercase ASCII text tokenizes without [UNK]. 112 tokens in all.

Tensors (numpy shapes, all f32; ggml's ne is the reverse):
    token_embd (n_vocab, n_embd), token_types (2, n_embd), position_embd (n_ctx_train, n_embd),
    token_embd_norm.{weight,bias} (n_embd,)
    blk.N.attn_{q,k,v,output}.{weight (n_embd, n_embd), bias (n_embd,)}
    blk.N.attn_output_norm.{weight,bias} (n_embd,)
    blk.N.ffn_up.{weight (n_ff, n_embd), bias (n_ff,)}
    blk.N.ffn_down.{weight (n_embd, n_ff), bias (n_embd,)}
    blk.N.layer_output_norm.{weight,bias} (n_embd,)
`tokenizer.ggml.token_type_count` must be set (llama.cpp refuses a BERT model without it).
n_embd 64, 2 blocks, 4 heads, n_ff 128, 256 positions: about 370 KB.
"""

from __future__ import annotations

import string
from pathlib import Path

import gguf
import numpy as np

N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_FF = 128
N_CTX_TRAIN = 256
N_TOKEN_TYPES = 2

PAD, UNK, CLS, SEP, MASK = range(5)
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Enough words that llama.cpp's built-in WPM defaults (ids 100-103) are in range: it warns
# about out-of-range defaults before the GGUF's own special token ids replace them.
WORDS = [
    "hello", "world", "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "red", "green", "blue",
]  # fmt: skip
CHARACTERS = string.ascii_lowercase + string.digits + ".,!?'-"
PHANTOM_SPACE = "\u2581"

TOKEN_TYPE_NORMAL = 1
TOKEN_TYPE_UNKNOWN = 2
TOKEN_TYPE_CONTROL = 3


def vocabulary() -> tuple[list[str], list[int]]:
    """Tokens and their llama.cpp token types."""
    tokens = list(SPECIAL_TOKENS)
    tokens += [PHANTOM_SPACE + w for w in WORDS]
    for c in CHARACTERS:
        tokens += [PHANTOM_SPACE + c, c]
    types = [TOKEN_TYPE_CONTROL] * len(SPECIAL_TOKENS)
    types[UNK] = TOKEN_TYPE_UNKNOWN
    types += [TOKEN_TYPE_NORMAL] * (len(tokens) - len(SPECIAL_TOKENS))
    return tokens, types


N_VOCAB = len(vocabulary()[0])


def write_tiny_bert(path: Path, *, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    arch = "bert"
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("tiny-random-bert")
    writer.add_context_length(N_CTX_TRAIN)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_layer_norm_eps(1e-12)
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(0)  # all f32
    tokens, types = vocabulary()
    writer.add_tokenizer_model("bert")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(N_TOKEN_TYPES)
    writer.add_bos_token_id(CLS)
    writer.add_sep_token_id(SEP)
    writer.add_unk_token_id(UNK)
    writer.add_pad_token_id(PAD)
    writer.add_mask_token_id(MASK)
    writer.add_add_bos_token(True)
    writer.add_add_sep_token(True)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    def norm(prefix: str) -> None:
        writer.add_tensor(f"{prefix}.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{prefix}.bias", np.zeros(N_EMBD, dtype=np.float32))

    def linear(prefix: str, n_out: int, n_in: int) -> None:
        writer.add_tensor(f"{prefix}.weight", weight(n_out, n_in))
        writer.add_tensor(f"{prefix}.bias", weight(n_out))

    writer.add_tensor("token_embd.weight", weight(N_VOCAB, N_EMBD))
    writer.add_tensor("token_types.weight", weight(N_TOKEN_TYPES, N_EMBD))
    writer.add_tensor("position_embd.weight", weight(N_CTX_TRAIN, N_EMBD))
    norm("token_embd_norm")
    for i in range(N_LAYER):
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            linear(f"blk.{i}.{name}", N_EMBD, N_EMBD)
        norm(f"blk.{i}.attn_output_norm")
        linear(f"blk.{i}.ffn_up", N_FF, N_EMBD)
        linear(f"blk.{i}.ffn_down", N_EMBD, N_FF)
        norm(f"blk.{i}.layer_output_norm")

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
