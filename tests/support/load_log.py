"""llama.cpp's load log read as the runner reads it: the "... buffer size = N MiB" lines and
"offloaded N/M layers to GPU" (llamahost.runner.state.MemoryLog)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from llamahost import _native
from llamahost.runner.state import MemoryLog


@contextlib.contextmanager
def load_log() -> Iterator[MemoryLog]:
    """A MemoryLog fed with llama.cpp's info lines while the block runs."""
    handler = MemoryLog()
    logger = logging.getLogger("llamahost.llama_cpp")
    previous = (_native.get_log_level(), logger.level)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    _native.set_log_level(2)  # info
    try:
        yield handler
    finally:
        _native.set_log_level(previous[0])
        logger.setLevel(previous[1])
        logger.removeHandler(handler)


def device_bytes(log: MemoryLog, device: str) -> int:
    """All bytes llama.cpp put on `device` ("CPU", "Vulkan0", ...)."""
    return sum(log.bytes.get(device, {}).values())
