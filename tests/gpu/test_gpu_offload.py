"""GPU offload end to end, on whatever GPU llama.cpp sees (Mesa's lavapipe through a Vulkan
wheel in CI: a real Vulkan device that runs on the CPU).

- the device is listed with its memory;
- all layers, some layers and none give the same greedy output;
- the load log says how many layers went to the GPU and what each device holds, and
  ``/api/ps`` reports it per device;
- with ``num_gpu`` not given, the layers are chosen from the device's free memory, the
  decision is logged, and the estimate is within 10% of what llama.cpp allocates.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

import llamahost
from llamahost.memory import model_shape
from llamahost.offload import (
    GPU_HEADROOM,
    GpuDevice,
    OffloadPlan,
    Workload,
    gpu_devices,
    plan_offload,
)
from llamahost.runner.state import MemoryLog
from support.load_log import device_bytes
from support.tiny_model import write_huge_context_model

# A prompt whose greedy answer is clear: on open text GPU and CPU kernels (different float
# summation orders) part after 5-20 tokens, on both models, as llama.cpp's own do.
PROMPT = "1, 2, 3, 4, 5, 6,"
GREEDY = {"temperature": 0, "num_predict": 16, "seed": 1}
NUM_CTX = 1024
WORK = Workload(num_ctx=NUM_CTX)


def _greedy(path: Path, num_gpu: int) -> str:
    with llamahost.load(path, num_ctx=NUM_CTX, num_gpu=num_gpu) as model:
        return str(model.generate(PROMPT, **GREEDY))


def test_the_device_is_listed_with_its_memory(gpu_device: dict[str, Any]) -> None:
    assert gpu_device["name"] and gpu_device["description"]
    assert gpu_device["backend"] in ("Vulkan", "CUDA", "ROCm", "Metal", "SYCL")
    assert 0 < gpu_device["memory_free"] <= gpu_device["memory_total"]
    info = llamahost.system_info()
    assert info["supports_gpu_offload"]
    assert info["backend_load_failures"] == []
    print(f"device: {gpu_device}")


@pytest.mark.parametrize("model", ["smollm2", "gemma"])
def test_all_some_and_no_layers_give_the_same_greedy_output(
    gpu_device: dict[str, Any], model: str, request: pytest.FixtureRequest
) -> None:
    path = request.getfixturevalue(f"{model}_path")
    n_layer = model_shape([str(path)]).n_layer
    outputs = {n: _greedy(path, n) for n in (n_layer + 1, n_layer // 2, 0)}
    print(f"{model}: {outputs}")
    assert len(set(outputs.values())) == 1, outputs
    assert outputs[0].strip()


def test_the_load_log_reports_layers_and_buffers_per_device(
    gpu_device: dict[str, Any], smollm2_path: Path, load_log: MemoryLog
) -> None:
    n_layer = model_shape([str(smollm2_path)]).n_layer
    with llamahost.load(smollm2_path, num_ctx=NUM_CTX, num_gpu=n_layer // 2) as model:
        model.generate("Hi", num_predict=1)
    assert load_log.offloaded == (n_layer // 2, n_layer + 1)
    name = gpu_device["name"]
    assert load_log.bytes[name]["weights"] > 0 and load_log.bytes[name]["kv"] > 0
    assert load_log.bytes[name]["compute"] > 0
    assert load_log.bytes["CPU"]["weights"] > 0 and load_log.bytes["CPU"]["kv"] > 0
    print(f"offloaded {load_log.offloaded}; per device: {load_log.bytes}")


def _device(path: Path, info: dict[str, Any]) -> GpuDevice:
    """The device as the planner sees it for this model (its free memory, and whether it
    runs the output projection)."""
    (device,) = [d for d in gpu_devices(model_shape([str(path)])) if d.name == info["name"]]
    return device


def _plan_for(path: Path, device: GpuDevice, overhead: int = 0) -> OffloadPlan:
    return plan_offload(model_shape([str(path)]), [device], WORK, overhead=overhead)


@pytest.mark.parametrize("model", ["smollm2", "gemma"])
def test_auto_offload_estimate_is_within_ten_percent(
    gpu_device: dict[str, Any], model: str, request: pytest.FixtureRequest, load_log: MemoryLog
) -> None:
    path = request.getfixturevalue(f"{model}_path")
    device = _device(path, gpu_device)
    plan = _plan_for(path, device)
    assert plan.num_gpu == plan.total_layers  # small models: everything fits
    with llamahost.load(path, num_ctx=NUM_CTX) as loaded:
        loaded.generate("Hi", num_predict=1)
    assert load_log.offloaded == (plan.num_gpu, plan.total_layers)
    estimated = plan.gpus[device.name].total
    measured = device_bytes(load_log, device.name)
    cpu_measured = sum(
        device_bytes(load_log, name) for name in load_log.bytes if name != device.name
    )
    print(
        f"{model} {device.name}: estimated {estimated} measured {measured} "
        f"ratio {estimated / measured:.3f}; CPU estimated {plan.cpu.total} measured {cpu_measured}"
    )
    assert abs(estimated - measured) <= 0.10 * measured


def test_auto_offload_fits_the_free_memory_it_is_given(
    gpu_device: dict[str, Any],
    smollm2_path: Path,
    load_log: MemoryLog,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An overhead that leaves room for only part of the model: the plan offloads what fits,
    says so, and llama.cpp offloads exactly that many layers."""
    device = _device(smollm2_path, gpu_device)
    full = _plan_for(smollm2_path, device)
    # room for the compute buffer and about half of the layers
    on_gpu = full.gpus[device.name]
    overhead = device.free - GPU_HEADROOM - on_gpu.compute - (on_gpu.weights + on_gpu.kv) // 2
    partial = _plan_for(smollm2_path, device, overhead=overhead)
    assert 0 < partial.num_gpu < partial.total_layers
    monkeypatch.setenv("LLAMAHOST_GPU_OVERHEAD", str(overhead))
    with (
        caplog.at_level(logging.INFO, logger="llamahost.offload"),
        llamahost.load(smollm2_path, num_ctx=NUM_CTX) as model,
    ):
        model.generate("Hi", num_predict=1)
    decision = [r.getMessage() for r in caplog.records if r.name == "llamahost.offload"]
    assert decision == [partial.describe()]
    assert f"offloading {partial.num_gpu}/{partial.total_layers} layers" in decision[0]
    assert load_log.offloaded == (partial.num_gpu, partial.total_layers)
    assert device_bytes(load_log, device.name) <= device.free - overhead
    print(decision[0])


def test_api_ps_reports_memory_per_device(
    gpu_device: dict[str, Any], smollm2_path: Path, tmp_path: Path
) -> None:
    from integration.server_fixtures import start_server, stop_server
    from llamahost.modelfile.create import create_model
    from llamahost.store.model_store import ModelStore

    create_model(
        ModelStore(tmp_path / "models"), "smollm2", f"FROM {smollm2_path}\n", base_dir=tmp_path
    )
    server = start_server(tmp_path / "models", tmp_path, env={"LLAMAHOST_NUM_PARALLEL": "1"})
    try:
        answer = httpx.post(
            f"{server.url}/api/generate",
            json={
                "model": "smollm2",
                "prompt": "Hi",
                "stream": False,
                "options": {"num_predict": 2},
            },
            timeout=300,
        )
        assert answer.status_code == 200, answer.text
        (row,) = httpx.get(f"{server.url}/api/ps", timeout=10).json()["models"]
    finally:
        stop_server(server)
    print(f"/api/ps: {row}")
    devices = row["memory_devices"]
    assert set(devices[gpu_device["name"]]) == {"weights", "kv", "compute"}
    assert row["gpu_layers"] == row["layers"] == model_shape([str(smollm2_path)]).n_layer + 1
    assert row["size_vram"] == sum(devices[gpu_device["name"]].values())
    assert 0 < row["size_vram"] <= row["size"]


def test_a_model_that_fits_nowhere_fails_before_loading(
    gpu_device: dict[str, Any], tmp_path: Path
) -> None:
    """A header whose KV cache needs terabytes: refused with the numbers, GPU included,
    before llama.cpp reads it (it would fail otherwise: its tensors are not that model's)."""
    huge = write_huge_context_model(tmp_path / "huge.gguf")
    with pytest.raises(llamahost.InsufficientMemoryError) as caught:
        llamahost.load(huge, num_ctx=1 << 24)
    message = str(caught.value)
    assert message.startswith(
        f"the model does not fit: no layer fits on a GPU ({gpu_device['name']} "
    )
    assert "TiB" in message and "of memory is available" in message
