"""The server's memory estimate (weights, KV cache, compute) from GGUF headers, and the
memory the machine has; checked on synthetic headers, against numbers llama.cpp reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llamahost import memory
from llamahost.gguf_header import GGUFInfo, TensorInfo
from llamahost.memory import MemoryEstimate, ModelShape, estimate_memory, human_bytes

MiB = 1 << 20


def header(arch: str, values: dict[str, Any], *, vocab: int = 1000, weights: int = 0) -> GGUFInfo:
    metadata = {"general.architecture": arch, **{f"{arch}.{k}": v for k, v in values.items()}}
    return GGUFInfo(
        path="model.gguf",
        version=3,
        alignment=32,
        data_offset=0,
        metadata=metadata,
        tensors=(TensorInfo("token_embd.weight", "f32", (1,), 0, weights),),
        omitted_arrays={"tokenizer.ggml.tokens": ("str", vocab)},
    )


SMOLLM2 = {  # SmolLM2-135M's architecture keys
    "context_length": 8192,
    "block_count": 30,
    "embedding_length": 576,
    "attention.head_count": 9,
    "attention.head_count_kv": 3,
}


def test_llama_kv_and_compute_match_what_llama_cpp_allocates() -> None:
    shape = ModelShape.of([header("llama", SMOLLM2, vocab=49152, weights=96_576_768)])
    assert (shape.n_layer, shape.key_length, shape.n_vocab) == (30, 64, 49152)
    estimate = estimate_memory(shape, num_ctx=4096, parallel=1, num_batch=512)
    assert estimate.kv == 90 * MiB  # the runner reported 90 MiB
    assert estimate.weights == 96_576_768
    assert abs(estimate.compute - 98.4 * MiB) < 2 * MiB  # reported: 98.4 MiB
    batched = estimate_memory(shape, num_ctx=8192, parallel=4, num_batch=512, flash_attn=False)
    assert batched.kv == 720 * MiB  # KV grows with num_ctx x parallel
    assert abs(batched.compute - 167 * MiB) < 5 * MiB  # attention over one slot's cells
    assert estimate.total == estimate.weights + estimate.kv + estimate.compute


def test_kv_cache_type_sizes_and_per_layer_head_counts() -> None:
    values = {**SMOLLM2, "block_count": 2, "attention.head_count_kv": [3, 1]}
    shape = ModelShape.of([header("llama", values)])
    f16 = estimate_memory(shape, num_ctx=256, parallel=1, num_batch=512)
    assert f16.kv == 256 * (3 + 1) * 128 * 2  # cells x heads x (k + v dims) x 2 bytes
    q8 = estimate_memory(shape, num_ctx=256, parallel=1, num_batch=512, kv_cache_type="q8_0")
    assert q8.kv == f16.kv // 2 * 34 // 32
    q4 = estimate_memory(shape, num_ctx=256, parallel=1, num_batch=512, kv_cache_type="q4_0")
    assert q4.kv == f16.kv // 2 * 18 // 32


def test_context_is_padded_like_llama_cpp() -> None:
    shape = ModelShape.of([header("llama", {**SMOLLM2, "block_count": 1})])
    assert (
        estimate_memory(shape, num_ctx=300, parallel=1, num_batch=512).kv
        == estimate_memory(shape, num_ctx=512, parallel=1, num_batch=512).kv
    )


GEMMA3 = {  # Gemma 3 270M's architecture keys
    "context_length": 32768,
    "block_count": 18,
    "embedding_length": 640,
    "attention.head_count": 4,
    "attention.head_count_kv": 1,
    "attention.key_length": 256,
    "attention.value_length": 256,
    "attention.sliding_window": 512,
}


def test_sliding_window_layers_follow_llama_cpp_pattern() -> None:
    shape = ModelShape.of([header("gemma3", GEMMA3, vocab=262144)])
    assert shape.swa_layers == tuple(il % 6 < 5 for il in range(18))  # 5 local, 1 global
    full = estimate_memory(shape, num_ctx=4096, parallel=2, num_batch=512)
    assert full.kv == 144 * MiB  # the runner keeps full caches (swa_full): reported 144 MiB
    windowed = estimate_memory(shape, num_ctx=4096, parallel=2, num_batch=512, swa_full=False)
    per_cell = 1 * (256 + 256) * 2
    assert windowed.kv == (3 * 8192 + 15 * 1536) * per_cell  # window x 2 + ubatch, padded
    assert abs(full.compute - 516 * MiB) < 5 * MiB  # its 262k-token logits: reported 516


def test_a_pattern_in_the_file_wins() -> None:
    pattern = [True, False] * 9
    values = {**GEMMA3, "attention.sliding_window_pattern": pattern}
    assert ModelShape.of([header("gemma3", values)]).swa_layers == tuple(pattern)
    values = {**GEMMA3, "attention.sliding_window_pattern": 3}
    assert ModelShape.of([header("gemma3", values)]).swa_layers[:3] == (True, True, False)


def test_shards_add_their_weights_and_adapters_count() -> None:
    first = header("llama", SMOLLM2, weights=1000)
    second = GGUFInfo("s2", 3, 32, 0, {}, (TensorInfo("x", "f32", (1,), 0, 500),), {})
    shape = ModelShape.of([first, second])
    assert shape.weights == 1500
    estimate = estimate_memory(shape, num_ctx=256, parallel=1, num_batch=64, adapter_bytes=7)
    assert estimate.weights == 1507


def test_a_model_without_attention_keys_needs_no_kv() -> None:
    shape = ModelShape.of([header("mamba", {"block_count": 4, "embedding_length": 8})])
    assert estimate_memory(shape, num_ctx=1024, parallel=1, num_batch=64).kv == 0


def test_describe_and_human_bytes() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(468 * 1024) == "468 KiB"
    assert human_bytes(2.5 * (1 << 30)) == "2.5 GiB"
    assert human_bytes(3 * (1 << 40)) == "3 TiB"
    text = MemoryEstimate(weights=MiB, kv=2 * MiB, compute=3 * MiB).describe()
    assert text == "6 MiB (weights 1 MiB, KV cache 2 MiB, compute 3 MiB)"


def test_available_memory_is_the_smaller_of_meminfo_and_the_cgroup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 100 kB\nMemAvailable:    2048 kB\n")
    assert memory._mem_available(meminfo) == 2048 * 1024
    group = tmp_path / "cg" / "user.slice"
    group.mkdir(parents=True)
    (group / "memory.max").write_text("1000000\n")
    (group / "memory.current").write_text("400000\n")
    membership = tmp_path / "cgroup"
    membership.write_text("0::/user.slice\n")
    assert memory._cgroup_room(tmp_path / "cg", membership) == 600000
    (group / "memory.max").write_text("max\n")
    assert memory._cgroup_room(tmp_path / "cg", membership) is None
    available = memory.available_memory()
    assert available is None or available > 0
    for meminfo_bytes, cgroup_bytes, expected in [
        (2000, 600, 600),
        (500, 600, 500),
        (2000, None, 2000),
        (None, 600, 600),
        (None, None, None),
    ]:
        monkeypatch.setattr(memory, "_mem_available", lambda v=meminfo_bytes: v)
        monkeypatch.setattr(memory, "_cgroup_room", lambda v=cgroup_bytes: v)
        assert memory.available_memory() == expected


def test_the_server_side_never_imports_llama_cpp() -> None:
    code = (
        "import sys, llamahost.server.app as app, llamahost.server.routes_inference, "
        "llamahost.server.scheduler, llamahost.memory\n"
        "app.create_app(app.ServerConfig())\n"
        "print('llamahost._native' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
