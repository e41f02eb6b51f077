"""Bounds on what the store reads and writes: JSON nesting and size, free disk space.

A manifest or config is read from disk or a registry; damaged or hostile, it must cost an
error message, never the process. ``json.loads`` recurses in C and raises RecursionError
on input nested a few thousand deep (``[[[[...``), so :func:`loads_bounded` first counts
the nesting of brackets outside strings (a regular-expression scan, linear and without
recursion) and refuses anything deeper than ``max_depth`` (a manifest needs 3 levels).

Before a download or an extraction writes gigabytes, :func:`check_free_space` compares
the bytes it will write with the free space of the disk holding the store, keeping
:data:`DISK_HEADROOM_BYTES` spare, so a full disk is reported up front with both numbers
instead of halfway through.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from llamahost.errors import BlobError

MAX_MANIFEST_BYTES = 4 << 20
"""A manifest larger than this is refused (Ollama's are about 1 KB)."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a manifest, config or params blob."""

DISK_HEADROOM_BYTES = 64 << 20
"""Free space a download or extraction leaves untouched."""

# A whole JSON string (escapes included; an unterminated one runs to the end), or a bracket.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]')


class JSONLimitError(ValueError):
    """JSON over a nesting or size limit (a ValueError, like a syntax error)."""


def json_depth_exceeds(text: str, max_depth: int) -> bool:
    """Whether arrays/objects in ``text`` nest deeper than ``max_depth`` (strings skipped)."""
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > max_depth:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


def loads_bounded(
    data: bytes | bytearray | str,
    *,
    max_bytes: int | None = None,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """``json.loads`` that refuses input over ``max_bytes`` or nested over ``max_depth``.

    Bytes must be UTF-8. Raises ValueError for anything it will not return: JSONLimitError
    for the limits, ``json.JSONDecodeError`` or UnicodeDecodeError for bad input.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise JSONLimitError(f"{len(data)} bytes is more than the {max_bytes}-byte limit")
    # UTF-8 only, as Go's encoding/json reads it (json.loads would also guess UTF-16/32).
    text = data if isinstance(data, str) else bytes(data).decode("utf-8")
    if json_depth_exceeds(text, max_depth):
        raise JSONLimitError(f"arrays and objects nest deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except RecursionError:  # not reachable after the scan; kept as a last line of defence
        raise JSONLimitError("arrays and objects nest too deeply") from None


def read_bounded(path: str | os.PathLike[str], limit: int) -> tuple[bytes, float]:
    """(bytes, mtime) of the file at ``path``; JSONLimitError if it is longer than ``limit``."""
    with open(path, "rb") as stream:
        modified = os.fstat(stream.fileno()).st_mtime
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise JSONLimitError(f"the file is larger than the {limit}-byte limit")
    return data, modified


def human_size(count: float) -> str:
    """Bytes in decimal units as ``ollama list`` writes them: ``4.7 GB``, ``98 MB``."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(count) < 1000 or unit == "PB":
            break
        count /= 1000
    if unit == "B":
        return f"{int(count)} B"
    return f"{count:.1f} {unit}" if abs(count) < 10 else f"{count:.0f} {unit}"


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Free bytes for an unprivileged user on the disk that holds (or will hold) ``path``."""
    probe = Path(os.path.abspath(path))
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_free_space(
    path: str | os.PathLike[str],
    needed: int,
    *,
    what: str,
    headroom: int = DISK_HEADROOM_BYTES,
) -> None:
    """BlobError unless the disk holding ``path`` has ``needed`` bytes free plus headroom.

    ``what`` starts the message, e.g. ``pull x.com/a/b:latest``.
    """
    if needed <= 0:
        return
    free = free_bytes(path)
    if needed + headroom > free:
        raise BlobError(
            f"{what}: not enough disk space: {human_size(needed)} are needed, "
            f"{human_size(free)} are free (and {human_size(headroom)} are kept spare); "
            "free some space (llamahost prune removes unused blobs) and try again"
        )
