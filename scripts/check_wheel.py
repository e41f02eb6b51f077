#!/usr/bin/env python3
"""Install a built wheel the way a user would, and test it.

    python scripts/check_wheel.py dist/llamahost-0.1.0-*.whl
    python scripts/check_wheel.py dist/llamahost_vulkan-*.whl --gpu   # the offload tests too

Into a fresh virtual environment, with no compiler on PATH: ``pip install`` the wheel
(timed), check that llama-cpp-python did not come with it and that the extension loads the
wheel's own llama.cpp, run the quick start (``examples/quickstart.py``) and the engine tests
(``tests/unit`` and ``tests/native``; with ``--gpu`` also ``tests/gpu``, which then must
find a GPU device).
Prints one ``key=value`` line per fact, for the README and the CI log.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "clang++", "nvcc")
CHECK_EXTENSION = r"""
import json, pathlib, sys, llamahost
from importlib import metadata
info = llamahost.system_info()
maps = pathlib.Path("/proc/self/maps").read_text()
libllama = sorted({line.split()[-1] for line in maps.splitlines() if "libllama" in line})
ggml_base = sorted({line.split()[-1] for line in maps.splitlines() if "libggml-base" in line})
try:
    metadata.distribution("llama-cpp-python")
    llama_cpp_python = True
except metadata.PackageNotFoundError:
    llama_cpp_python = False
print(json.dumps({
    "package": llamahost.__file__,
    "libllama": libllama,
    "libggml_base": ggml_base,
    "llama_cpp_python_installed": llama_cpp_python,
    "cpu_variant": info["cpu_variant"],
    "backends": info["backend_libraries"],
    "backend_load_failures": info["backend_load_failures"],
    "devices": [(d["name"], d["type"], d["memory_total"]) for d in info["devices"]],
    "gpu_devices": [d["name"] for d in info["devices"] if d["type"] in ("gpu", "igpu")],
}))
"""


FALLBACK_LINE = "import logging; logging.basicConfig(); import llamahost._native"


def say(key: str, value: object) -> None:
    print(f"{key}={value}", flush=True)


def requirements(extra: str | None = None) -> list[str]:
    """The project's dependencies (or one extra's), without llama-cpp-python: the wheel must
    not need it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [r for r in listed if "llama-cpp-python" not in r]


def compiler_free_path(env_dir: Path, tools: Path) -> str:
    """PATH of the venv's bin and a folder with only the tools the tests call (none of them
    a compiler)."""
    tools.mkdir(parents=True, exist_ok=True)
    for tool in ("sh", "bash", "env", "uname", "ldd"):
        found = shutil.which(tool)
        if found and not (tools / tool).exists():
            (tools / tool).symlink_to(found)
    return f"{env_dir / 'bin'}{os.pathsep}{tools}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--gpu", action="store_true", help="also run tests/gpu, requiring a GPU")
    args, pytest_args = parser.parse_known_args(argv)  # the rest goes to pytest (-x, -k ...)
    wheel: Path = args.wheel.resolve()
    say("wheel", wheel.name)
    say("wheel_size_mb", f"{wheel.stat().st_size / 1e6:.1f}")

    with tempfile.TemporaryDirectory(prefix="llamahost-wheel-") as scratch:
        env_dir = Path(scratch) / "venv"
        venv.create(env_dir, with_pip=True)
        python = env_dir / "bin" / "python"
        env = {
            **os.environ,
            "PATH": compiler_free_path(env_dir, Path(scratch) / "tools"),
            "PIP_NO_INPUT": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "VIRTUAL_ENV": str(env_dir),
        }
        env.pop("PYTHONPATH", None)
        reachable = [c for c in COMPILERS if shutil.which(c, path=env["PATH"])]
        if reachable:
            raise SystemExit(f"compilers still on PATH: {reachable}")
        say("compilers_on_path", "none")

        def pip(*pip_args: str) -> float:
            started = time.monotonic()
            command = [str(python), "-m", "pip", "install", "-q", *pip_args]
            subprocess.run(command, env=env, check=True)
            return time.monotonic() - started

        # the dependencies first (numpy, starlette, ...: the same for any install), so the
        # timed step is the wheel itself
        say("deps_install_s", f"{pip(*requirements()):.1f}")
        say("wheel_install_s", f"{pip(str(wheel)):.1f}")

        checked = subprocess.run(
            [str(python), "-c", CHECK_EXTENSION], env=env, cwd=scratch, check=True,
            capture_output=True, text=True,
        )  # fmt: skip
        facts = json.loads(checked.stdout)
        for key, value in facts.items():
            say(key, value)
        if facts["llama_cpp_python_installed"]:
            raise SystemExit("llama-cpp-python was installed with the wheel")
        if not facts["package"].startswith(str(env_dir)):
            raise SystemExit(f"llamahost came from {facts['package']}, not the fresh venv")
        for library in ("libllama", "libggml_base"):  # one copy each, the wheel's
            if len(facts[library]) != 1 or not facts[library][0].startswith(str(env_dir)):
                raise SystemExit(f"{library}: {facts[library]}, not one copy from the wheel")

        started = time.monotonic()
        subprocess.run(
            [str(python), str(REPO / "examples" / "quickstart.py"), "Say hi in five words."],
            env=env, cwd=scratch, check=True,
        )  # fmt: skip
        say("quickstart_s", f"{time.monotonic() - started:.1f}")

        if facts["backend_load_failures"]:
            # a GPU wheel whose GPU is not usable (no driver, no device): on the CPU, said once
            fallback = subprocess.run(
                [str(python), "-c", FALLBACK_LINE], env=env, cwd=scratch, check=True,
                capture_output=True, text=True,
            )  # fmt: skip
            lines = [line for line in fallback.stderr.splitlines() if "running on the CPU" in line]
            if len(lines) != 1:
                raise SystemExit(f"expected one fallback line, got: {fallback.stderr!r}")
            say("fallback_log", lines[0])

        pip(*requirements("test"))
        # The engine tests on the CPU, every GPU hidden (a GPU's numerics differ between
        # batch shapes, which those tests compare); then, with --gpu, the offload tests on
        # the device. Mesa's lavapipe is a Vulkan device of type CPU, which ggml-vulkan uses
        # only when named (GGML_VK_VISIBLE_DEVICES); a real GPU is picked without it.
        no_gpu = {"GGML_VK_VISIBLE_DEVICES": "", "CUDA_VISIBLE_DEVICES": ""}
        runs = [(["tests/unit", "tests/native"], no_gpu)]
        if args.gpu:
            gpu_env = {"LLAMAHOST_REQUIRE_GPU": "1", "GGML_VK_VISIBLE_DEVICES": "0"}
            runs.append((["tests/gpu"], gpu_env))
        failed = 0
        for suites, extra_env in runs:
            started = time.monotonic()
            tests = subprocess.run(
                [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *suites,
                 *pytest_args],
                env={**env, **extra_env}, cwd=REPO, check=False,
            )  # fmt: skip
            say("tests", f"{' '.join(suites)} rc={tests.returncode}")
            say("tests_s", f"{time.monotonic() - started:.1f}")
            failed = failed or tests.returncode
        return failed


if __name__ == "__main__":
    sys.exit(main())
