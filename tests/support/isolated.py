"""Run code in a fresh interpreter, so that a native crash fails a test instead of pytest."""

from __future__ import annotations

import os
import subprocess
import sys


def run_python(code: str, *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        check=False,
    )
