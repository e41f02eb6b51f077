"""``llamahost --version``, without loading llama.cpp.

    llamahost version is 0.1.0
    llama.cpp commit 0c1e570 (version 0.5.0-dev, backends: CPU)

The llama.cpp line describes the library the extension runs with. A wheel carries its own
llama.cpp and a ``llamahost/lib/llama_build.json`` written when it was built, naming the
backend libraries it ships. Otherwise it is the one the pinned
``llama-cpp-python`` distribution installed in this environment. Its CMake package files
(``<site-packages>/lib/cmake/{llama,ggml}/*-config.cmake``, which our build also reads) name
the commit, the version and the backends compiled in, so printing them needs no import of
``llamahost._native`` (which would take a fifth of a second). If those files are missing,
the extension is asked (``llamahost.system_info``).
"""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

LLAMA_CPP_DISTRIBUTION = "llama-cpp-python"
_SET = re.compile(r'^\s*set\(\s*(\w+)\s+"?([^")]*)"?\s*\)', re.MULTILINE)
# ggml's backend libraries -> the names its backend registry gives them
_BACKEND_NAMES = {
    "cpu": "CPU",
    "cuda": "CUDA",
    "metal": "Metal",
    "vulkan": "Vulkan",
    "hip": "ROCm",
    "sycl": "SYCL",
    "opencl": "OpenCL",
    "blas": "BLAS",
    "rpc": "RPC",
    "cann": "CANN",
    "musa": "MUSA",
}


def _cmake_values(path: Path) -> dict[str, str]:
    """The ``set(NAME value)`` lines of a CMake package file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    return {name: value.strip() for name, value in _SET.findall(text)}


def _backend_names(libraries: list[str]) -> list[str]:
    """ggml library names ("ggml-cuda", "cpu-haswell", ...) -> backend names, each once."""
    names: list[str] = []
    for library in libraries:
        kind = library.removeprefix("ggml-").split("-")[0]
        name = _BACKEND_NAMES.get(kind, kind.upper())
        if name not in names:
            names.append(name)
    return names


def bundled_llama_cpp_build() -> dict[str, object] | None:
    """What a wheel's own llama.cpp was built as; None outside a wheel."""
    path = Path(__file__).resolve().parents[1] / "lib" / "llama_build.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    libraries = [item for item in str(info.get("backend_libraries", "")).split(";") if item]
    return {
        "llama_cpp_commit": info.get("llama_cpp_commit", "unknown"),
        "llama_cpp_version": info.get("llama_cpp_version", "unknown"),
        "backends": _backend_names(libraries),
    }


def llama_cpp_build() -> dict[str, object] | None:
    """The installed llama.cpp's commit, version and backends, from a wheel's build record or
    llama-cpp-python's CMake files; None when neither can be found."""
    bundled = bundled_llama_cpp_build()
    if bundled is not None:
        return bundled
    try:
        distribution = metadata.distribution(LLAMA_CPP_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    llama = _cmake_values(Path(str(distribution.locate_file("lib/cmake/llama/llama-config.cmake"))))
    ggml = _cmake_values(Path(str(distribution.locate_file("lib/cmake/ggml/ggml-config.cmake"))))
    if "LLAMA_BUILD_COMMIT" not in llama:
        return None
    libraries = [item for item in ggml.get("GGML_AVAILABLE_BACKENDS", "").split(";") if item]
    return {
        "llama_cpp_commit": llama["LLAMA_BUILD_COMMIT"],
        "llama_cpp_version": llama.get("LLAMA_VERSION", "unknown"),
        "backends": _backend_names(libraries),
    }


def version_text() -> str:
    """The two lines ``llamahost --version`` prints."""
    import llamahost

    info = llama_cpp_build()
    if info is None:  # not a regular installation: ask the extension itself
        from llamahost.system import system_info

        info = system_info()
    backends = info.get("backends") or []
    listed = ", ".join(str(b) for b in backends) if isinstance(backends, list) else ""
    return (
        f"llamahost version is {llamahost.__version__}\n"
        f"llama.cpp commit {info.get('llama_cpp_commit', 'unknown')} "
        f"(version {info.get('llama_cpp_version', 'unknown')}, "
        f"backends: {listed or 'none'})\n"
    )
