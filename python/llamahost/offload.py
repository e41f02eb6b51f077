"""How many layers go to the GPUs, chosen before a model loads when ``num_gpu`` is not given.

As Ollama does it: the model's layer sizes come from its GGUF headers
(:mod:`llamahost.memory`), each layer brings its KV cache, and each GPU that takes layers
also holds a compute buffer and keeps a headroom free. llama.cpp offloads the *last*
``num_gpu`` of the ``n_layer + 1`` layers (the extra one is the output layer, the last: it
is the first to go), so the plan is the largest count whose layers, with the compute buffer,
fit in the GPUs' free memory; with several GPUs the layers are split in proportion to what
each has free (``tensor_split``). What stays on the CPU (the token embedding, the other
layers, their KV cache, a compute buffer) must fit in the memory the machine has available,
or loading fails before it starts, with the numbers. An output projection that a GPU cannot
run (llama.cpp asks each device, as it does before placing the weight) stays on the CPU, and
so do the logits.

Headroom per GPU: 256 MiB (drivers and fragmentation; Ollama keeps 457 MiB on CUDA) plus
``LLAMAHOST_GPU_OVERHEAD`` bytes, Ollama's ``OLLAMA_GPU_OVERHEAD``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llamahost.errors import InsufficientMemoryError
from llamahost.memory import (
    MAX_UBATCH,
    MemoryEstimate,
    ModelShape,
    activations,
    available_memory,
    estimate_memory,
    human_bytes,
    kv_per_layer,
)

log = logging.getLogger("llamahost.offload")

GPU_HEADROOM = 256 << 20
GPU_OVERHEAD_VARIABLE = "LLAMAHOST_GPU_OVERHEAD"


@dataclass(frozen=True)
class GpuDevice:
    """A GPU as llama.cpp's device list reports it."""

    name: str  # "Vulkan0", "CUDA0"
    free: int  # bytes
    takes_output: bool = True  # runs the output projection (llama.cpp asks the device)

    @classmethod
    def from_info(cls, device: dict[str, Any]) -> GpuDevice:
        return cls(
            name=str(device["name"]),
            free=int(device.get("memory_free", 0)),
        )


def gpu_devices(shape: ModelShape | None = None) -> list[GpuDevice]:
    """The GPUs llama.cpp sees now, with their free memory; with `shape`, whether each runs
    that model's output projection (as llama.cpp tests it before placing the weight: a
    Vulkan device refuses a tensor larger than its maxStorageBufferRange, for one)."""
    from llamahost import _native

    devices = [
        GpuDevice.from_info(d)
        for d in _native.system_info()["devices"]
        if d.get("type") in ("gpu", "igpu")
    ]
    type_id = _native.ggml_types().get(shape.output_type) if shape is not None else None
    if shape is None or type_id is None:
        return devices
    return [
        dataclasses.replace(
            d,
            takes_output=_native.device_supports_matmul(
                d.name, type_id, shape.n_vocab, shape.n_embd
            ),
        )
        for d in devices
    ]


def gpu_overhead() -> int:
    """Bytes to leave free on each GPU beyond the headroom (``LLAMAHOST_GPU_OVERHEAD``)."""
    text = os.environ.get(GPU_OVERHEAD_VARIABLE, "").strip()
    if not text:
        return 0
    if not text.isdigit():
        from llamahost.errors import OptionError

        raise OptionError(
            f"{GPU_OVERHEAD_VARIABLE} must be a number of bytes, got {text!r}",
            option=GPU_OVERHEAD_VARIABLE,
        )
    return int(text)


@dataclass(frozen=True)
class OffloadPlan:
    """Where a model's layers go, and what each device needs for them."""

    num_gpu: int  # layers offloaded (llama.cpp's n_gpu_layers)
    total_layers: int  # n_layer + 1 (the output layer)
    tensor_split: tuple[float, ...]  # each GPU's share, in device order ((): one GPU or none)
    cpu: MemoryEstimate  # what stays on the CPU
    gpus: dict[str, MemoryEstimate] = field(default_factory=dict)  # per GPU that takes layers
    free: dict[str, int] = field(default_factory=dict)  # each GPU's free bytes, before loading

    def describe(self) -> str:
        """``offloading 25/31 layers to Vulkan0 (1.1 GiB of 2.0 GiB free: ...); CPU: ...``"""
        if not self.free:
            where = "no GPU: every layer on the CPU"
        elif not self.gpus:
            free = ", ".join(f"{n} {human_bytes(b)}" for n, b in self.free.items())
            where = f"no layer fits on a GPU ({free} free)"
        else:
            parts = [
                f"{name} {estimate.describe()} of {human_bytes(self.free.get(name, 0))} free"
                for name, estimate in self.gpus.items()
            ]
            where = (
                f"offloading {self.num_gpu}/{self.total_layers} layers to {', '.join(self.gpus)}"
                f" ({'; '.join(parts)})"
            )
        return f"{where}; CPU {self.cpu.describe()}"


@dataclass(frozen=True)
class Workload:
    """What a loaded model will be asked to hold besides its weights: the context and its
    slots, the micro-batch, the KV cache type, flash attention and LoRA adapters."""

    num_ctx: int
    parallel: int = 1
    num_batch: int = 512
    kv_cache_type: str = "f16"
    flash_attn: bool | None = None
    adapter_bytes: int = 0


def plan_offload(
    shape: ModelShape,
    devices: Sequence[GpuDevice],
    workload: Workload,
    *,
    cpu_available: int | None = None,
    overhead: int = 0,
) -> OffloadPlan:
    """The most layers that fit on `devices`, the rest on the CPU (see the module docstring).
    Raises InsufficientMemoryError, with the numbers, when the CPU's part does not fit in
    `cpu_available` bytes (None: not checked)."""
    whole = estimate_memory(shape, **dataclasses.asdict(workload))
    num_ctx, num_batch, flash_attn = workload.num_ctx, workload.num_batch, workload.flash_attn
    kv = kv_per_layer(
        shape,
        num_ctx=num_ctx,
        parallel=workload.parallel,
        num_batch=num_batch,
        kv_cache_type=workload.kv_cache_type,
    )
    n_layer = shape.n_layer
    layers = shape.layer_weights
    # An output projection a device cannot run stays on the CPU, and with it the logits.
    output_fits = all(d.takes_output for d in devices)
    output = shape.output_weights if output_fits else 0
    gpu_compute = whole.compute
    if not output_fits:
        ubatch = max(1, min(num_batch, MAX_UBATCH))
        gpu_compute = 4 * ubatch * activations(shape, num_ctx, flash_attn)
    # Layer i's cost on a GPU; index n_layer is the output layer.
    cost = [layers[i] + kv[i] for i in range(n_layer)] + [output]
    room = {d.name: max(0, d.free - GPU_HEADROOM - overhead - gpu_compute) for d in devices}
    capacity = sum(room.values())
    count = 0
    used = 0
    while count < n_layer + 1 and used + cost[n_layer - count] <= capacity:
        used += cost[n_layer - count]
        count += 1
    offloaded = range(n_layer + 1 - count, n_layer + 1)
    gpu_weights = sum(layers[i] if i < n_layer else output for i in offloaded)
    gpu_kv = sum(kv[i] for i in offloaded if i < n_layer)
    takers = [d for d in devices if room[d.name] > 0] if count else []
    gpus: dict[str, MemoryEstimate] = {}
    for device in takers:
        share = room[device.name] / capacity
        gpus[device.name] = MemoryEstimate(
            weights=round(gpu_weights * share), kv=round(gpu_kv * share), compute=gpu_compute
        )
    # an output layer tied to the token embedding is a copy: the CPU keeps the original
    copied = shape.output_copied if count and output_fits else 0
    if count == 0 or not output_fits:  # the logits are made on the CPU
        host_compute = whole.compute
    else:
        host_compute = cpu_compute(shape, num_batch, workload.parallel)
    cpu = MemoryEstimate(
        weights=whole.weights - gpu_weights + copied, kv=whole.kv - gpu_kv, compute=host_compute
    )
    plan = OffloadPlan(
        num_gpu=count,
        total_layers=n_layer + 1,
        tensor_split=tuple(room[d.name] / capacity for d in devices) if len(takers) > 1 else (),
        gpus=gpus,
        cpu=cpu,
        free={d.name: d.free for d in devices},
    )
    if cpu_available is not None and cpu.total > cpu_available:
        raise InsufficientMemoryError(
            f"the model does not fit: {plan.describe()}, but only {human_bytes(cpu_available)} "
            "of memory is available; use a smaller num_ctx or kv_cache_type, or free memory",
            needed=cpu.total,
            available=cpu_available,
        )
    return plan


def cpu_compute(shape: ModelShape, num_batch: int, parallel: int) -> int:
    """The host's compute buffer when a GPU makes the logits: a ubatch of input embeddings
    (in and out of the embedding lookup) and the logits copied back. Measured with lavapipe:
    SmolLM2 3.4 MiB (this gives 2.5 MiB)."""
    ubatch = max(1, min(num_batch, MAX_UBATCH))
    return 4 * ubatch * 3 * shape.n_embd + 4 * shape.n_vocab * max(1, parallel)


def auto_offload(shape: ModelShape, workload: Workload) -> OffloadPlan:
    """The plan for this machine's GPUs and memory now, logged."""
    plan = plan_offload(
        shape,
        gpu_devices(shape),
        workload,
        cpu_available=available_memory(),
        overhead=gpu_overhead(),
    )
    log.info("%s", plan.describe())
    return plan


__all__ = [
    "GPU_HEADROOM",
    "GpuDevice",
    "OffloadPlan",
    "Workload",
    "auto_offload",
    "gpu_devices",
    "plan_offload",
]
