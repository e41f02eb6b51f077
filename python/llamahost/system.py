"""What this installation runs on: llama.cpp build, backends, devices, CPU features."""

from __future__ import annotations

import functools
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from llamahost import _native


def system_info() -> dict[str, Any]:
    """llama.cpp's build commit and version, the backends compiled in, the devices it sees
    (name, type, free/total memory), CPU features, and the Python/package versions.

    In a wheel (which ships llama.cpp's backends as libraries): ``backend_libraries`` maps
    each loaded backend to its file, ``cpu_variant`` names the CPU build chosen for this CPU,
    and ``backend_load_failures`` lists GPU backends that did not load and why."""
    info: dict[str, Any] = dict(_native.system_info())
    libraries = {str(k): str(v) for k, v in _native.backend_libraries().items()}
    info["backend_libraries"] = libraries
    info["cpu_variant"] = cpu_variant(libraries.get("CPU", ""))
    info["backend_load_failures"] = [dict(f) for f in _native.backend_load_failures()]
    info["llamahost_version"] = _version("llamahost")
    info["llama_cpp_python_version"] = _version("llama-cpp-python")
    info["python"] = sys.version.split()[0]
    info["platform"] = platform.platform()
    return info


def cpu_variant(library: str) -> str | None:
    """Which of a wheel's CPU backend builds this process loaded ("haswell", "icelake",
    "sapphirerapids", ...), from its file name; None where the CPU backend is compiled in
    (a build linked against llama-cpp-python)."""
    name = Path(library).name
    if not name.startswith("libggml-cpu-"):
        return None
    return name.removeprefix("libggml-cpu-").split(".so")[0]


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
