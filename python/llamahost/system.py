"""What this installation runs on: llama.cpp build, backends, devices, CPU features."""

from __future__ import annotations

import functools
import platform
import sys
from importlib import metadata
from typing import Any

from llamahost import _native


def system_info() -> dict[str, Any]:
    """llama.cpp's build commit and version, the backends compiled in, the devices it sees
    (name, type, free/total memory), CPU features, and the Python/package versions."""
    info: dict[str, Any] = dict(_native.system_info())
    info["llamahost_version"] = _version("llamahost")
    info["llama_cpp_python_version"] = _version("llama-cpp-python")
    info["python"] = sys.version.split()[0]
    info["platform"] = platform.platform()
    return info


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def cpu_has_amx() -> bool:
    """Whether llama.cpp's CPU backend was built with AMX kernels and this CPU runs them."""
    features = _native.system_info().get("features", {}).get("CPU", {})
    return str(features.get("AMX_INT8", "0")) == "1"
