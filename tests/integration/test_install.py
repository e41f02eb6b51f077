"""Installed wheel and editable install both load the runtime environment's libllama.

pip builds llamahost in an isolated build environment that has its own llama-cpp-python;
the extension must not keep a path into that (deleted) environment, and must load the
libllama of the environment it runs in. Each install goes into a fresh virtual
environment; the process's memory map shows which libllama.so was loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

CHECK = r"""
import pathlib, site, sys, llamahost
llamahost.load(sys.argv[1], num_ctx=64, num_thread=1).generate("hi", num_predict=2)
maps = pathlib.Path("/proc/self/maps").read_text()
libs = {line.split()[-1] for line in maps.splitlines() if "libllama.so" in line}
site_dirs = [str(pathlib.Path(p).resolve()) for p in site.getsitepackages()]
assert len(libs) == 1, libs
lib = str(pathlib.Path(libs.pop()).resolve())
assert any(lib.startswith(d) for d in site_dirs), (lib, site_dirs)
print("libllama:", lib)
print("extension:", llamahost._native.__file__)
"""


def _pip(python: Path, *args: str) -> None:
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    return env_dir / "bin" / "python"


def _check(python: Path, model: Path) -> str:
    done = subprocess.run(
        [str(python), "-c", CHECK, str(model)], capture_output=True, text=True, check=False, cwd="/"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_editable_install_loads_the_environments_libllama(
    fresh_python: Path, tiny_model_path: Path
) -> None:
    _pip(fresh_python, "-e", str(REPO))
    out = _check(fresh_python, tiny_model_path)
    assert str(fresh_python.parent.parent) in out.split("libllama:")[1].split()[0]


def test_wheel_install_loads_the_environments_libllama(
    fresh_python: Path, tiny_model_path: Path, tmp_path: Path
) -> None:
    wheel_dir = tmp_path / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(REPO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = wheel_dir.glob("llamahost-*.whl")
    _pip(fresh_python, "--force-reinstall", "--no-deps", str(wheel))
    out = _check(fresh_python, tiny_model_path)
    ext = out.split("extension:")[1].strip()
    assert "site-packages/llamahost/" in ext and str(REPO) not in ext
