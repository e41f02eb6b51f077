"""How much memory a model needs before it loads, and how much the machine has for it.

The scheduler asks this module, before it starts a runner, whether the model fits; if it
does not, it evicts idle models (least recently used first) or refuses with the numbers.
Everything here reads GGUF headers in pure Python (:func:`llamahost.gguf_header.read_gguf`): the
server process never imports the native extension.

The estimate has three parts (:class:`MemoryEstimate`), as llama.cpp allocates them:

- **weights**: the bytes of every tensor of every shard, plus the LoRA adapters' files;
- **KV cache**: per layer, ``cells x (n_head_kv x key_length + n_head_kv x value_length)``
  elements of ``kv_cache_type`` (f16: 2 bytes, q8_0: 34 bytes per 32, ...), where ``cells``
  is ``num_ctx x parallel`` rounded up to llama.cpp's padding of 256. Per-layer head counts
  (an array ``head_count_kv``) are honoured. On a sliding-window model (Gemma 2/3, Cohere 2)
  the window layers need only ``window x parallel + ubatch`` cells *unless* the runner keeps
  full-size caches for them (``swa_full``, which the engine does so that prompt prefixes can
  be reused); the pattern of window layers comes from ``attention.sliding_window_pattern``
  when the file has it, else from llama.cpp's per-architecture value;
- **compute buffers**: a heuristic, Ollama's for llama-like graphs: ``4 bytes x ubatch x
  max(n_embd + n_vocab, 1 + 4 n_embd + max(3 n_ff, slot_cells x (1 + n_head)))``, the
  largest live tensors of one ubatch (its logits, or its feed-forward rows or attention
  scores over one slot's cells: the runner gives each slot a KV stream of its own). With
  flash attention on, the scores are never materialised and the ``n_head`` factor goes.
  ``auto`` (None) counts as on: llama.cpp turns it on wherever the backend runs it (CPU,
  CUDA, Metal, Vulkan; measured here: SmolLM2 at 8192 tokens allocates 98 MiB with auto, 167
  MiB with it off). Measured against the runner's report (CPU, ubatch 512): SmolLM2 at 4096
  x 1 estimates 97 MiB for 98 MiB used, at 8192 x 4 with flash attention off 164 MiB for 167
  MiB; Gemma 3 270M (262k-token vocabulary) 515 MiB for 516 MiB.

The runner reports what it really allocated (``/info``'s ``memory``) once loaded; ``/api/ps``
shows that.

Available memory (:func:`available_memory`) is ``MemAvailable`` from ``/proc/meminfo``, or
what the process's cgroup (v2 ``memory.max``/``memory.current``, v1 ``limit_in_bytes``/
``usage_in_bytes``) still allows when that is less. MemAvailable counts file pages as
reclaimable, and a runner's memory-mapped weights are such pages, so the scheduler
subtracts the weights of the runners already loaded with mmap. Where neither exists (not
Linux) the memory check is skipped. A GPU's free memory cannot be known in the server
without the native library: when a model may be offloaded to a GPU, the check is not
made and llama.cpp's own allocation failure (a runner that exits with its reason) is the
answer.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llamahost.gguf_header import GGUFInfo, TensorInfo, read_gguf

#: KV cache element types: (elements per block, bytes per block), as ggml lays them out.
KV_TYPE_SIZES: dict[str, tuple[int, int]] = {
    "f32": (1, 4),
    "f16": (1, 2),
    "bf16": (1, 2),
    "q8_0": (32, 34),
    "q4_0": (32, 18),
    "q4_1": (32, 20),
    "iq4_nl": (32, 18),
    "q5_0": (32, 22),
    "q5_1": (32, 24),
}

#: llama.cpp's sliding-window layer pattern per architecture (``set_swa_pattern(n)``: layer
#: ``il`` uses the window when ``il % n < n - 1``), for files that do not carry it.
SWA_PATTERNS: dict[str, int] = {"gemma2": 2, "gemma3": 6, "gemma3n": 5, "cohere2": 4}

KV_PADDING = 256  # llama.cpp pads the number of KV cells to this
MAX_UBATCH = 512  # the runner's micro-batch: min(num_batch, 512)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a loaded model needs: weights, KV cache and compute buffers."""

    weights: int
    kv: int
    compute: int

    @property
    def total(self) -> int:
        return self.weights + self.kv + self.compute

    def describe(self) -> str:
        """``1.2 GiB (weights 0.9 GiB, KV cache 256 MiB, compute 40 MiB)``."""
        return (
            f"{human_bytes(self.total)} (weights {human_bytes(self.weights)}, KV cache "
            f"{human_bytes(self.kv)}, compute {human_bytes(self.compute)})"
        )

    def to_dict(self) -> dict[str, int]:
        return {"weights": self.weights, "kv": self.kv, "compute": self.compute}


def human_bytes(n: float) -> str:
    """Bytes in binary units with three significant digits: ``468 KiB``, ``2.15 GiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


# ---- reading model files ------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _header(path: str, size: int, mtime_ns: int) -> GGUFInfo:
    del size, mtime_ns  # part of the cache key: a changed file is read again
    return read_gguf(path, max_array_length=0)


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a model's architecture that its memory depends on."""

    architecture: str
    n_ctx_train: int
    n_layer: int
    n_embd: int
    n_vocab: int
    n_head: tuple[int, ...]  # per layer
    n_head_kv: tuple[int, ...]  # per layer
    key_length: int
    value_length: int
    sliding_window: int  # 0: none
    swa_layers: tuple[bool, ...]  # per layer: uses the sliding window
    weights: int  # bytes of all tensors
    layer_weights: tuple[int, ...] = ()  # bytes of each repeating layer's tensors (blk.N.*)
    output_weights: int = 0  # bytes the output layer puts on a GPU (see _output_weights)
    output_copied: int = 0  # of those, bytes copied from token_embd (which stays on the CPU)
    output_type: str = ""  # the output projection's ggml type ("q8_0", ...)
    n_ff: int = 0  # feed-forward width (the largest per layer)

    @classmethod
    def of(cls, infos: Sequence[GGUFInfo]) -> ModelShape:
        """The shape of the model whose shards (in order; one for a plain file) are `infos`."""
        first = infos[0]
        arch = first.architecture or ""
        tensors = [tensor for info in infos for tensor in info.tensors]

        def value(key: str, default: Any = None) -> Any:
            return first.metadata.get(f"{arch}.{key}", default)

        n_layer = _int(value("block_count"), 0)
        n_embd = _int(value("embedding_length"), 0)
        n_head = _per_layer(value("attention.head_count"), n_layer, 0)
        n_head_kv_raw = value("attention.head_count_kv")
        n_head_kv = n_head if n_head_kv_raw is None else _per_layer(n_head_kv_raw, n_layer, 0)
        heads = max(n_head, default=0)
        default_dim = n_embd // heads if heads else 0
        key_length = _int(value("attention.key_length"), default_dim)
        value_length = _int(value("attention.value_length"), default_dim)
        window = _int(value("attention.sliding_window"), 0)
        swa_layers: tuple[bool, ...] = (False,) * n_layer
        if window > 0:
            pattern = value("attention.sliding_window_pattern")
            if isinstance(pattern, (list, tuple)) and len(pattern) == n_layer:
                swa_layers = tuple(bool(p) for p in pattern)
            else:
                period = _int(pattern, SWA_PATTERNS.get(arch, 0))
                if period > 1:
                    swa_layers = tuple(il % period < period - 1 for il in range(n_layer))
        return cls(
            architecture=arch,
            n_ctx_train=_int(value("context_length"), 0),
            n_layer=n_layer,
            n_embd=n_embd,
            n_vocab=_vocab_size(first, arch),
            n_head=n_head,
            n_head_kv=n_head_kv,
            key_length=key_length,
            value_length=value_length,
            sliding_window=window,
            swa_layers=swa_layers,
            weights=sum(t.size for t in tensors),
            layer_weights=_layer_weights(tensors, n_layer),
            **_output_layer(tensors),
            n_ff=max(_per_layer(value("feed_forward_length"), n_layer, 0), default=0),
        )


def _layer_weights(tensors: Sequence[TensorInfo], n_layer: int) -> tuple[int, ...]:
    sizes = [0] * n_layer
    for tensor in tensors:
        if tensor.name.startswith("blk."):
            index = tensor.name.split(".", 2)[1]
            if index.isdigit() and int(index) < n_layer:
                sizes[int(index)] += tensor.size
    return tuple(sizes)


def _output_layer(tensors: Sequence[TensorInfo]) -> dict[str, Any]:
    """The output layer's tensors (``output_norm``, ``output``). A model whose output shares
    the token embedding (no ``output.weight``) gets a copy of ``token_embd`` on the GPU that
    holds the output layer: the input copy stays on the CPU (llama.cpp's TENSOR_DUPLICATED)."""
    by_name = {t.name: t for t in tensors}
    matrix = by_name.get("output.weight") or by_name.get("token_embd.weight")
    norms = sum(
        t.size for t in tensors if t.name.startswith("output") and t.name != "output.weight"
    )
    return {
        "output_weights": (matrix.size if matrix else 0) + norms,
        "output_copied": matrix.size if matrix and matrix.name == "token_embd.weight" else 0,
        "output_type": matrix.type if matrix else "",
    }


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return int(value)


def _per_layer(value: Any, n_layer: int, default: int) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        items = [_int(v, default) for v in value]
        return tuple(items[:n_layer] + [default] * (n_layer - len(items)))
    return (_int(value, default),) * n_layer


def _vocab_size(info: GGUFInfo, arch: str) -> int:
    size = info.metadata.get(f"{arch}.vocab_size")
    if isinstance(size, int) and size > 0:
        return size
    omitted = info.omitted_arrays.get("tokenizer.ggml.tokens")
    if omitted is not None:
        return int(omitted[1])
    tokens = info.metadata.get("tokenizer.ggml.tokens")
    return len(tokens) if isinstance(tokens, (list, tuple)) else 0


def model_shape(model_paths: Sequence[str | os.PathLike[str]]) -> ModelShape:
    """Read the shards' headers and return the model's shape (GGUFError if unreadable),
    cached per file version (the server asks on every request)."""
    versions = []
    for path in model_paths:
        st = os.stat(os.fspath(path))
        versions.append((os.fspath(path), st.st_size, st.st_mtime_ns))
    return _shape(tuple(versions))


@functools.lru_cache(maxsize=64)
def _shape(versions: tuple[tuple[str, int, int], ...]) -> ModelShape:
    return ModelShape.of([_header(*version) for version in versions])


# ---- the estimate -------------------------------------------------------------------------


def effective_num_ctx(num_ctx: int, n_ctx_train: int) -> int:
    """The context a model gets for `num_ctx` (0: its training context): never more than it
    was trained for, as Ollama does (llama.cpp would only warn)."""
    n_ctx = num_ctx or n_ctx_train
    return min(n_ctx, n_ctx_train) if n_ctx_train > 0 else n_ctx


def _pad(n: int, to: int) -> int:
    return -(-n // to) * to


def kv_bytes(elements: int, kv_cache_type: str) -> int:
    per_block, block_bytes = KV_TYPE_SIZES.get(kv_cache_type, KV_TYPE_SIZES["f16"])
    return -(-elements // per_block) * block_bytes


def kv_per_layer(
    shape: ModelShape,
    *,
    num_ctx: int,
    parallel: int,
    num_batch: int,
    kv_cache_type: str = "f16",
    swa_full: bool = True,
) -> list[int]:
    """Bytes of KV cache of each layer (it lives on the device of its layer)."""
    cells = _pad(max(1, num_ctx) * max(1, parallel), KV_PADDING)
    ubatch = max(1, min(num_batch, MAX_UBATCH))
    swa_cells = cells
    if shape.sliding_window > 0 and not swa_full:
        swa_cells = min(cells, _pad(shape.sliding_window * max(1, parallel) + ubatch, KV_PADDING))
    sizes = []
    for il in range(shape.n_layer):
        layer_cells = swa_cells if shape.swa_layers[il] else cells
        per_cell = shape.n_head_kv[il] * (shape.key_length + shape.value_length)
        sizes.append(kv_bytes(layer_cells * per_cell, kv_cache_type))
    return sizes


def estimate_memory(
    shape: ModelShape,
    *,
    num_ctx: int,
    parallel: int,
    num_batch: int,
    kv_cache_type: str = "f16",
    flash_attn: bool | None = None,
    adapter_bytes: int = 0,
    swa_full: bool = True,
) -> MemoryEstimate:
    """What a runner with these settings allocates (see the module docstring)."""
    ubatch = max(1, min(num_batch, MAX_UBATCH))
    kv = sum(
        kv_per_layer(
            shape,
            num_ctx=num_ctx,
            parallel=parallel,
            num_batch=num_batch,
            kv_cache_type=kv_cache_type,
            swa_full=swa_full,
        )
    )
    compute = (
        4 * ubatch * max(shape.n_embd + shape.n_vocab, activations(shape, num_ctx, flash_attn))
    )
    compute += 4 * shape.n_vocab * max(1, parallel)  # the logits of each sequence's last token
    return MemoryEstimate(weights=shape.weights + adapter_bytes, kv=kv, compute=compute)


def activations(shape: ModelShape, num_ctx: int, flash_attn: bool | None) -> int:
    """Floats per token of one ubatch's largest live tensors in a layer: the residual
    stream and its normed copies, plus the feed-forward's three ``n_ff`` rows or the
    attention scores over one slot's cells, whichever is larger (they are not live at once).
    """
    n_head = max(shape.n_head, default=0)
    slot_cells = _pad(max(1, num_ctx), KV_PADDING)  # each slot attends over its own stream
    flash = flash_attn is not False  # auto: on
    scores = slot_cells * (1 if flash else 1 + n_head)
    return 1 + 4 * shape.n_embd + max(3 * shape.n_ff, scores)


# ---- what the machine has -----------------------------------------------------------------


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_room(
    root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")
) -> int | None:
    """Bytes this process's cgroup may still use, or None without a limit."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = [*line.split(":", 2), "", ""][:3]
        folder = root / path.lstrip("/")
        if hierarchy == "0" and controllers == "":  # cgroup v2
            limit = _read_int(folder / "memory.max")  # "max" (no limit) is not digits
            used = _read_int(folder / "memory.current")
        elif "memory" in controllers.split(","):  # cgroup v1
            folder = root / "memory" / path.lstrip("/")
            limit = _read_int(folder / "memory.limit_in_bytes")
            used = _read_int(folder / "memory.usage_in_bytes")
            if limit is not None and limit >= 1 << 60:  # v1's "no limit"
                limit = None
        else:
            continue
        if limit is not None and used is not None:
            return max(0, limit - used)
    return None


def _mem_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return None


def available_memory() -> int | None:
    """Bytes of memory available for a new model now, or None where it cannot be known."""
    candidates = [v for v in (_mem_available(), _cgroup_room()) if v is not None]
    return min(candidates) if candidates else None


def gpu_may_be_present() -> bool:
    """Whether a GPU driver is visible (NVIDIA, AMD ROCm, or macOS's Metal): a model may then
    be offloaded, and system memory alone cannot say whether it fits."""
    if os.uname().sysname == "Darwin":
        return True
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg"))
