"""The memory estimate made before loading (llamahost.memory / llamahost.offload) against
what llama.cpp reports after loading ("... buffer size = N MiB"): within 10%, on the CPU.
tests/gpu checks the same on a GPU device."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import llamahost
from llamahost.memory import model_shape
from llamahost.offload import Workload, plan_offload
from llamahost.runner.state import MemoryLog
from support.load_log import load_log as capture_load_log

pytestmark = pytest.mark.slow


@pytest.fixture
def load_log() -> Iterator[MemoryLog]:
    with capture_load_log() as log:
        yield log


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
