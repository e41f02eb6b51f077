"""Checking the models folder before a command uses it, so a bad ``LLAMAHOST_MODELS`` is
one clear line (``Error: LLAMAHOST_MODELS=/proc/x: the folder could not be created: No such
file or directory``) before any progress output, not a traceback halfway through."""

from __future__ import annotations

import os

from llamahost.store.model_store import ModelStore


def store_problem(store: ModelStore, *, writable: bool) -> str | None:
    """What keeps ``store`` from being used, naming the variable that chose it; or None.

    ``writable``: the command stores something (create, pull, cp, rm, prune).
    """
    problem = store.root_problem(writable=writable)
    if problem is None:
        return None
    configured = os.environ.get("LLAMAHOST_MODELS")
    if configured:
        return f"LLAMAHOST_MODELS={configured}: {problem}"
    return f"the models folder {store.root}: {problem}"
