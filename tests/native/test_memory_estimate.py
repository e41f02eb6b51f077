"""The memory estimate made before loading (llamahost.memory / llamahost.offload) against
what llama.cpp reports after loading ("... buffer size = N MiB"): within 10%, on the CPU.
tests/gpu checks the same on a GPU device."""

from __future__ import annotations

from pathlib import Path

import pytest

import llamahost
from llamahost.memory import model_shape
from llamahost.offload import Workload, plan_offload
from llamahost.runner.state import MemoryLog
from support.tiny_model import write_huge_context_model

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("num_ctx", [2048, 8192])
@pytest.mark.parametrize("model", ["smollm2", "gemma"])
def test_cpu_estimate_is_within_ten_percent_of_what_llama_cpp_allocates(
    model: str, num_ctx: int, request: pytest.FixtureRequest, load_log: MemoryLog
) -> None:
    path: Path = request.getfixturevalue(f"{model}_path")
    plan = plan_offload(model_shape([str(path)]), [], Workload(num_ctx=num_ctx))
    with llamahost.load(path, num_ctx=num_ctx, num_gpu=0) as loaded:
        loaded.generate("Hi", num_predict=1)
    measured = load_log.totals()
    estimated = plan.cpu.to_dict()
    line = " ".join(
        f"{kind}={estimated[kind] / 2**20:.1f}/{measured[kind] / 2**20:.1f}MiB"
        for kind in ("weights", "kv", "compute")
    )
    total = sum(measured[k] for k in ("weights", "kv", "compute"))
    print(
        f"{model} num_ctx={num_ctx} CPU estimate/actual {line} ratio={plan.cpu.total / total:.3f}"
    )
    assert abs(plan.cpu.total - total) <= 0.10 * total
    for kind in ("weights", "kv", "compute"):
        assert abs(estimated[kind] - measured[kind]) <= 0.10 * measured[kind], kind


def test_a_model_that_fits_nowhere_fails_before_loading(tmp_path: Path) -> None:
    """A header whose KV cache needs terabytes: refused with the numbers before llama.cpp
    reads it (it would fail otherwise: its tensors are not that model's)."""
    huge = write_huge_context_model(tmp_path / "huge.gguf")
    with pytest.raises(llamahost.InsufficientMemoryError) as caught:
        llamahost.load(huge, num_ctx=1 << 24, num_gpu=-1)
    message = str(caught.value)
    assert message.startswith("the model does not fit: ")
    assert "TiB" in message and "of memory is available" in message
