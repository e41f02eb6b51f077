"""llama.cpp's log in Python's ``logging``: logger ``llamahost.llama_cpp``.

The extension starts forwarding when it loads. Quiet by default: the ``llamahost`` logger
has a NullHandler, so nothing is printed unless the application configures logging;
llama.cpp messages below WARNING are not even forwarded unless :func:`set_log_level`
lowers the threshold.
"""

from __future__ import annotations

import logging

from llamahost import _native

_LEVELS = {"debug": 1, "info": 2, "warning": 3, "warn": 3, "error": 4, "off": 5}


def set_log_level(level: str | int) -> None:
    """The lowest llama.cpp level forwarded to logging: "debug", "info", "warning",
    "error" or "off" (or a Python logging level number)."""
    if isinstance(level, str):
        if level.lower() not in _LEVELS:
            from llamahost.errors import OptionError

            raise OptionError(
                f"`level` must be one of {', '.join(_LEVELS)}, got {level!r}", option="level"
            )
        native = _LEVELS[level.lower()]
    else:
        native = (
            1
            if level <= logging.DEBUG
            else 2
            if level <= logging.INFO
            else (3 if level <= logging.WARNING else 4 if level <= logging.ERROR else 5)
        )
    _native.set_log_level(native)
