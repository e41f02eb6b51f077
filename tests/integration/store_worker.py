"""A separate process working on a model store, for the concurrency tests.

    python store_worker.py create ROOT WORKDIR PREFIX SECONDS   create PREFIX-1, PREFIX-2, ...
    python store_worker.py gc ROOT VICTIM_PREFIX SECONDS        rm victims, else prune, in a loop
    python store_worker.py create-paused ROOT WORKDIR NAME SIGNAL GO
        create NAME, but stop at "writing manifest": touch SIGNAL, wait for GO to exist
    python store_worker.py pull-paused ROOT NAME SIGNAL GO      the same for an insecure pull
    python store_worker.py create-killed ROOT WORKDIR NAME      create NAME, but die (exit 9)
        at "writing manifest", its blobs stored and its lease left behind

Each prints one JSON line at the end: what it did (and ``"error"`` if it failed).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from llamahost.errors import LlamahostError, ModelNotFoundError
from llamahost.modelfile.create import create_model
from llamahost.store.model_store import ModelStore
from llamahost.store.names import ModelName
from llamahost.store.registry import ProgressEvent, RegistryClient

PAUSE_LIMIT_S = 60.0


def pause_at_manifest(signal: Path, go: Path) -> object:
    """A progress callback that waits for ``go`` when the manifest is about to be written."""

    def progress(event: ProgressEvent) -> None:
        if event.status != "writing manifest":
            return
        signal.touch()
        deadline = time.monotonic() + PAUSE_LIMIT_S
        while not go.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{go} never appeared")
            time.sleep(0.01)

    return progress


def create_loop(root: str, workdir: str, prefix: str, seconds: float) -> dict[str, object]:
    store = ModelStore(root)
    deadline = time.monotonic() + seconds
    created = 0
    while time.monotonic() < deadline:
        created += 1
        text = f"FROM ./tiny.gguf\nSYSTEM {prefix} number {created}\n"
        create_model(store, f"{prefix}-{created}", text, base_dir=workdir)
    return {"created": created}


def gc_loop(root: str, victim_prefix: str, seconds: float) -> dict[str, object]:
    store = ModelStore(root)
    deadline = time.monotonic() + seconds
    removed = pruned = 0
    while time.monotonic() < deadline:
        models, _ = store.list()
        victims = [m.name for m in models if m.name.model.startswith(victim_prefix)]
        if victims:
            try:
                store.delete(victims[0])
                removed += 1
            except ModelNotFoundError:
                pass
        else:
            store.prune()
            pruned += 1
    return {"removed": removed, "pruned": pruned}


def main(argv: list[str]) -> int:
    mode, root = argv[1], argv[2]
    try:
        if mode == "create":
            result = create_loop(root, argv[3], argv[4], float(argv[5]))
        elif mode == "gc":
            result = gc_loop(root, argv[3], float(argv[4]))
        elif mode == "create-paused":
            workdir, name, signal, go = argv[3], argv[4], Path(argv[5]), Path(argv[6])
            progress = pause_at_manifest(signal, go)
            text = f"FROM ./tiny.gguf\nSYSTEM {name} was paused\n"
            create_model(ModelStore(root), name, text, base_dir=workdir, progress=progress)  # type: ignore[arg-type]
            result = {"created": name}
        elif mode == "create-killed":

            def die(event: ProgressEvent) -> None:
                if event.status == "writing manifest":
                    os._exit(9)

            create_model(
                ModelStore(root), argv[4], "FROM ./tiny.gguf\n", base_dir=argv[3], progress=die
            )
            result = {"created": argv[4]}
        elif mode == "pull-paused":
            name, signal, go = ModelName.parse(argv[3]), Path(argv[4]), Path(argv[5])
            client = RegistryClient(insecure=True, timeout=10.0, retry_backoff_s=0.01)
            client.pull(name, root, progress=pause_at_manifest(signal, go))  # type: ignore[arg-type]
            result = {"pulled": str(name)}
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    except LlamahostError as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    except Exception:
        print(json.dumps({"error": traceback.format_exc()}))
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
