"""``ps`` and ``stop``: commands about loaded models, so they need a running server.

    $ llamahost ps
    NAME           ID              SIZE      PROCESSOR    CONTEXT    UNTIL
    tiny:latest    0b5d1e0c8f0a    3.1 MB    100% CPU     256        4 minutes from now
    $ llamahost stop tiny

The columns are Ollama's: SIZE is the memory the loaded model uses (weights, KV cache and
compute buffers), PROCESSOR how much of it is on the CPU or a GPU, CONTEXT the context
length it was loaded with, UNTIL when it will be unloaded (``Forever`` when kept loaded,
``Stopping...`` once that time has passed). ``stop`` unloads a model at once, as a request
with ``keep_alive: 0`` does. Without a server both fail with ``could not connect to
llamahost at ...``.
"""

from __future__ import annotations

import argparse
import math
import sys
from datetime import datetime, timezone
from typing import Any

from llamahost.cli.client import ServerError, require_server
from llamahost.cli.names import model_name_arg
from llamahost.cli.tables import human_bytes, human_time, render_table
from llamahost.errors import ModelNotFoundError
from llamahost.store.model_store import ModelStore

PS_HEADER = ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]


def processor_text(size: int, size_vram: int) -> str:
    """Where a loaded model's memory is, as ``ollama ps`` words it."""
    if size_vram == 0:
        return "100% CPU"
    if size_vram == size:
        return "100% GPU"
    if size_vram > size or size == 0:
        return "Unknown"
    cpu = math.floor((size - size_vram) / size * 100 + 0.5)  # Go's math.Round
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


def until_text(expires_at: datetime, now: datetime) -> str:
    """``4 minutes from now``, ``Forever``, or ``Stopping...`` once the time has passed."""
    return "Stopping..." if expires_at < now else human_time(expires_at, now)


def ps_row(model: dict[str, Any], now: datetime) -> list[str]:
    """One ``/api/ps`` entry as a row of :data:`PS_HEADER`."""
    size, size_vram = int(model.get("size") or 0), int(model.get("size_vram") or 0)
    expires = model.get("expires_at")
    until = until_text(datetime.fromisoformat(str(expires)), now) if expires else "Never"
    return [
        str(model.get("name", "")),
        str(model.get("digest", ""))[:12],
        human_bytes(size),
        processor_text(size, size_vram),
        str(model.get("context_length") or 0),
        until,
    ]


def ps_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``ps``: the models the server has loaded, most recently used first."""
    models = require_server().running()
    now = datetime.now(timezone.utc)
    sys.stdout.write(render_table(PS_HEADER, [ps_row(model, now) for model in models]))
    return 0


def stop_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``stop MODEL``: unload the model now (nothing to do if it is not loaded)."""
    model_name_arg(args.model)  # a bad name: the same error as every other command
    client = require_server()
    try:
        client.generate({"model": args.model, "keep_alive": 0})
    except ServerError as exc:
        if exc.status == 404:
            raise ModelNotFoundError(f'couldn\'t find model "{args.model}" to stop') from None
        raise
    return 0
