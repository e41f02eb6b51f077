"""GPU offload tests: they need a GPU device that llama.cpp sees (a Vulkan wheel on Mesa's
lavapipe counts: scripts/check_wheel.py --gpu). Without one they are skipped, unless
LLAMAHOST_REQUIRE_GPU=1 (set by check_wheel.py --gpu) makes that a failure."""

from __future__ import annotations

import os
from typing import Any

import pytest


def _gpu_devices() -> list[dict[str, Any]]:
    import llamahost

    return [d for d in llamahost.system_info()["devices"] if d["type"] in ("gpu", "igpu")]


@pytest.fixture(scope="session")
def gpu_device() -> dict[str, Any]:
    """The first GPU device llama.cpp sees."""
    devices = _gpu_devices()
    if not devices:
        if os.environ.get("LLAMAHOST_REQUIRE_GPU") == "1":
            pytest.fail("LLAMAHOST_REQUIRE_GPU=1 but llama.cpp sees no GPU device")
        pytest.skip("no GPU device (build a GPU wheel: scripts/build_wheel.py --backend vulkan)")
    return devices[0]
