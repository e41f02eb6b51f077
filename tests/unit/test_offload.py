"""The offload plan (num_gpu not given): which layers go to the GPUs, on synthetic headers
and devices. tests/gpu checks the same plan against a real device."""

from __future__ import annotations

import pytest

from llamahost.errors import InsufficientMemoryError
from llamahost.gguf_header import GGUFInfo, TensorInfo
from llamahost.memory import ModelShape, estimate_memory
from llamahost.offload import GPU_HEADROOM, GpuDevice, Workload, gpu_overhead, plan_offload

MiB = 1 << 20
N_LAYER = 30
LAYER = 3 * MiB
EMBEDDING = 28 * MiB


def shape(*, tied: bool = True) -> ModelShape:
    tensors = [TensorInfo("token_embd.weight", "q8_0", (1,), 0, EMBEDDING)]
    tensors += [
        TensorInfo(f"blk.{i}.attn_q.weight", "q8_0", (1,), 0, LAYER) for i in range(N_LAYER)
    ]
    tensors.append(TensorInfo("output_norm.weight", "f32", (1,), 0, 4096))
    if not tied:
        tensors.append(TensorInfo("output.weight", "q8_0", (1,), 0, EMBEDDING))
    arch = "llama"
    values = {
        "context_length": 8192,
        "block_count": N_LAYER,
        "embedding_length": 576,
        "attention.head_count": 9,
        "attention.head_count_kv": 3,
    }
    info = GGUFInfo(
        path="model.gguf",
        version=3,
        alignment=32,
        data_offset=0,
        metadata={"general.architecture": arch, **{f"{arch}.{k}": v for k, v in values.items()}},
        tensors=tuple(tensors),
        omitted_arrays={"tokenizer.ggml.tokens": ("str", 49152)},
    )
    return ModelShape.of([info])


SETTINGS = {"num_ctx": 1024, "parallel": 1, "num_batch": 512}
WORK = Workload(**SETTINGS)


def gpu(free: int, name: str = "Vulkan0") -> GpuDevice:
    return GpuDevice(name=name, free=free)


def room_for(model: ModelShape, blocks: float) -> int:
    """Free bytes that hold the compute buffer, the headroom, the output layer (the first to
    go) and this many blocks' worth."""
    whole = estimate_memory(model, **SETTINGS)
    per_block = LAYER + whole.kv // N_LAYER
    return GPU_HEADROOM + whole.compute + model.output_weights + int(per_block * blocks)


def test_per_layer_sizes_come_from_the_tensor_names() -> None:
    tied, untied = shape(), shape(tied=False)
    assert tied.layer_weights == (LAYER,) * N_LAYER
    assert tied.output_weights == EMBEDDING + 4096 and tied.output_copied == EMBEDDING
    assert untied.output_weights == EMBEDDING + 4096 and untied.output_copied == 0


def test_everything_fits_on_a_big_gpu() -> None:
    model = shape()
    plan = plan_offload(model, [gpu(8 << 30)], WORK)
    whole = estimate_memory(model, **SETTINGS)
    assert (plan.num_gpu, plan.total_layers, plan.tensor_split) == (31, 31, ())
    on_gpu = plan.gpus["Vulkan0"]
    assert on_gpu.weights == N_LAYER * LAYER + EMBEDDING + 4096  # the tied output is a copy
    assert on_gpu.kv == whole.kv and on_gpu.compute == whole.compute
    assert plan.cpu.weights == EMBEDDING and plan.cpu.kv == 0  # the input embedding stays
    assert plan.describe().startswith("offloading 31/31 layers to Vulkan0 (Vulkan0 ")


def test_the_output_layer_goes_first_then_the_last_blocks() -> None:
    model = shape()
    plan = plan_offload(model, [gpu(room_for(model, 10.5))], WORK)
    assert plan.num_gpu == 11  # the output layer and the last 10 blocks
    assert plan.gpus["Vulkan0"].weights == 10 * LAYER + model.output_weights
    assert plan.cpu.weights == model.weights - 10 * LAYER - 4096  # output_norm moved
    assert "offloading 11/31 layers" in plan.describe()
    untied = shape(tied=False)
    moved = plan_offload(untied, [gpu(room_for(untied, 10.5))], WORK)
    assert moved.cpu.weights == untied.weights - 10 * LAYER - untied.output_weights


def test_the_headroom_and_overhead_are_kept_free() -> None:
    model = shape()
    free = room_for(model, 10.5)
    assert plan_offload(model, [gpu(free)], WORK, overhead=5 * LAYER).num_gpu < 11
    assert plan_offload(model, [gpu(GPU_HEADROOM)], WORK).num_gpu == 0


def test_two_gpus_share_the_layers_by_their_free_memory() -> None:
    model = shape()
    whole = estimate_memory(model, **SETTINGS)
    only_blocks = room_for(model, 6) - model.output_weights
    devices = [gpu(only_blocks, "CUDA0"), gpu(room_for(model, 12), "CUDA1")]
    plan = plan_offload(model, devices, WORK)
    assert plan.num_gpu == 19  # the output layer and 18 blocks
    rooms = [d.free - GPU_HEADROOM - whole.compute for d in devices]  # what each can hold
    assert plan.tensor_split == pytest.approx([r / sum(rooms) for r in rooms])
    assert set(plan.gpus) == {"CUDA0", "CUDA1"}
    assert plan.gpus["CUDA0"].compute == plan.gpus["CUDA1"].compute == whole.compute


def test_no_gpu_keeps_every_layer_on_the_cpu() -> None:
    model = shape()
    plan = plan_offload(model, [], WORK)
    assert plan.num_gpu == 0 and not plan.gpus
    assert plan.cpu == estimate_memory(model, **SETTINGS)
    assert plan.describe().startswith("no GPU: every layer on the CPU; CPU ")


def test_a_model_that_fits_nowhere_fails_with_the_numbers() -> None:
    model = shape()
    with pytest.raises(InsufficientMemoryError) as caught:
        plan_offload(model, [gpu(GPU_HEADROOM)], WORK, cpu_available=50 * MiB)
    message = str(caught.value)
    assert message.startswith("the model does not fit: no layer fits on a GPU (Vulkan0 256 MiB")
    assert "only 50 MiB of memory is available" in message
    assert caught.value.available == 50 * MiB and caught.value.needed > 50 * MiB


def test_gpu_overhead_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from llamahost.errors import OptionError

    monkeypatch.delenv("LLAMAHOST_GPU_OVERHEAD", raising=False)
    assert gpu_overhead() == 0
    monkeypatch.setenv("LLAMAHOST_GPU_OVERHEAD", "1048576")
    assert gpu_overhead() == MiB
    monkeypatch.setenv("LLAMAHOST_GPU_OVERHEAD", "1 GiB")
    with pytest.raises(OptionError, match="LLAMAHOST_GPU_OVERHEAD must be a number of bytes"):
        gpu_overhead()


def test_an_output_projection_the_gpu_cannot_run_stays_on_the_cpu_with_the_logits() -> None:
    model = shape()
    refusing = GpuDevice("Vulkan0", free=8 << 30, takes_output=False)
    plan = plan_offload(model, [refusing], WORK)
    whole = estimate_memory(model, **SETTINGS)
    assert plan.num_gpu == 31  # llama.cpp still counts the output layer as offloaded
    assert plan.gpus["Vulkan0"].weights == N_LAYER * LAYER  # but its matrix is not there
    assert plan.gpus["Vulkan0"].compute < whole.compute  # no logits on the GPU
    assert plan.cpu.compute == whole.compute
    assert plan.cpu.weights == model.weights - N_LAYER * LAYER
