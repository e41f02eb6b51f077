"""`pip install` time: the self-contained CPU wheel vs the source install, side by side.

    python benchmarks/bench_install.py dist/llamahost-0.1.0-cp311-cp311-manylinux_2_34_x86_64.whl

Each install goes into a fresh virtual environment with ``--no-cache-dir``, so both download
what they need (the same runtime dependencies; the source install also its build
requirements and the llama-cpp-python sdist, which it compiles). The source install is the
README's ``pip install .`` of this checkout. Prints one line per install and their ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed_install(target: str) -> tuple[float, float]:
    """Seconds to ``pip install`` `target` into a fresh venv, and the venv's size in MB."""
    with tempfile.TemporaryDirectory(prefix="llamahost-install-") as scratch:
        env_dir = Path(scratch) / "venv"
        venv.create(env_dir, with_pip=True)
        started = time.monotonic()
        subprocess.run(
            [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-cache-dir",
             "--disable-pip-version-check", target],
            check=True,
        )  # fmt: skip
        seconds = time.monotonic() - started
        size = sum(p.stat().st_size for p in env_dir.rglob("*") if p.is_file()) / 1e6
        return seconds, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="the CPU wheel (scripts/build_wheel.py)")
    args = parser.parse_args()
    wheel_s, wheel_mb = timed_install(str(args.wheel.resolve()))
    print(f"install=wheel seconds={wheel_s:.1f} venv_mb={wheel_mb:.0f}", flush=True)
    source_s, source_mb = timed_install(str(REPO))
    print(f"install=source seconds={source_s:.1f} venv_mb={source_mb:.0f}", flush=True)
    print(f"ratio source/wheel seconds={source_s / wheel_s:.1f}")


if __name__ == "__main__":
    sys.exit(main())
