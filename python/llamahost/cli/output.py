"""How the command line reports problems: ``Error: <message>`` (exit code 1) and warnings."""

from __future__ import annotations

import sys


def fail(message: str) -> int:
    """Write ``Error: <message>`` to stderr; return exit code 1."""
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()
    return 1


def warn(message: str) -> None:
    sys.stderr.write(f"Warning: {message}\n")
    sys.stderr.flush()
