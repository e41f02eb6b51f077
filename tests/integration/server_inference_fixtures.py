"""Helpers of the inference tests: a live server over a given store, its runners, odd models.

``serving(store_root, **env)`` starts ``llamahost serve`` (through ``server_fixtures``) on
the store at ``store_root`` with extra ``LLAMAHOST_*`` variables, and stops it after the
block. :class:`InferenceServer` adds what the inference tests look at: the runner
processes (the server's children), ``/api/ps`` by name, and waiting for a condition.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from server_fixtures import LiveServer, start_server, stop_server


@dataclass
class InferenceServer:
    """A live server (``live``) and the store it serves."""

    live: LiveServer
    store_root: Path
    clients: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.live.url

    @property
    def proc(self) -> Any:
        return self.live.process

    def client(self) -> Any:
        """The official ``ollama.Client`` (timeout 120 s: model loads on 2 cores)."""
        import ollama

        client = ollama.Client(host=self.url, timeout=120)
        self.clients.append(client)
        return client

    def close_clients(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()

    def loaded(self) -> dict[str, dict[str, Any]]:
        """``/api/ps`` rows by model name."""
        rows = httpx.get(f"{self.url}/api/ps", timeout=10).json()["models"]
        return {row["name"]: row for row in rows}

    def runner_pids(self) -> list[int]:
        """The server's live child processes (its runners), sorted."""
        return sorted(pid for pid in children(self.proc.pid) if alive(pid))

    def runner_pid(self, model: str) -> int | None:
        """The pid of the runner that serves the stored model `model`, if any."""
        from llamahost.store.model_store import ModelStore

        blob = str(ModelStore(self.store_root).resolve(model).model_paths[0])
        for pid in self.runner_pids():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if blob.encode() in argv:
                return pid
        return None

    def wait_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.02)
        return condition()

    def log(self) -> str:
        return self.live.log()


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting to be reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@contextlib.contextmanager
def serving(store_root: Path, workdir: Path, **env: str) -> Iterator[InferenceServer]:
    """``llamahost serve`` over `store_root` with `env` added; stopped after the block."""
    server = InferenceServer(start_server(store_root, workdir, env), store_root)
    try:
        yield server
    finally:
        server.close_clients()
        stop_server(server.live)
