"""A live ``llamahost serve`` on a free loopback port, with its own model store.

The server runs as a subprocess (``python -m llamahost.cli serve``), configured only
through its environment (``LLAMAHOST_HOST``, ``LLAMAHOST_MODELS``, and whatever a test
adds), and is stopped with SIGTERM (then SIGKILL) at the end.

Fixtures:

- ``llamahost_server`` (module): one server with an empty store in a temporary folder.
- ``llamahost_server_factory``: ``start(env={...})`` starts another (e.g. with
  ``LLAMAHOST_API_KEY``); all are stopped after the test.

``LiveServer.client()`` is the official ``ollama.Client`` pointed at it; ``LiveServer.http()``
an ``httpx.Client`` for raw requests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0

__all__ = [
    "LiveServer",
    "free_port",
    "llamahost_server",
    "llamahost_server_factory",
    "start_server",
    "stop_server",
]


@dataclass
class LiveServer:
    """A running server: ``host`` is ``127.0.0.1:<port>``; ``models`` its store folder."""

    host: str
    models: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}"

    def client(self, **options: Any) -> Any:
        """The official ``ollama.Client`` for this server."""
        import ollama

        return ollama.Client(host=self.url, timeout=60, **options)

    def http(self, **options: Any) -> httpx.Client:
        """An httpx client with this server as its base URL."""
        return httpx.Client(base_url=self.url, timeout=60, **options)

    def log(self) -> str:
        """The server's output so far (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def free_port() -> int:
    """A TCP port nobody listens on right now, on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def start_server(models: Path, workdir: Path, env: Mapping[str, str] | None = None) -> LiveServer:
    """Start ``llamahost serve`` on a free port and wait until ``GET /`` answers 200."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LLAMAHOST_", "OLLAMA_"))}
    failures = []
    for _attempt in range(3):  # the free port may be taken before the server binds it
        port = free_port()
        host = f"127.0.0.1:{port}"
        full_env = {**base, "LLAMAHOST_HOST": host, "LLAMAHOST_MODELS": str(models), **(env or {})}
        log_path = workdir / f"server-{port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "llamahost.cli", "serve"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
            )
        server = LiveServer(host, models, log_path, process)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            if _answers(server.url + "/"):
                return server
            time.sleep(0.05)
        stop_server(server)
        failures.append(f"port {port}: exit {process.returncode}\n{server.log()[-3000:]}")
    raise RuntimeError("llamahost serve did not start:\n" + "\n".join(failures))


def stop_server(server: LiveServer) -> int | None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; the exit status."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=STOP_TIMEOUT_S)
    return server.process.returncode


@pytest.fixture(scope="module")
def llamahost_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with an empty store, shared by a test module."""
    workdir = tmp_path_factory.mktemp("llamahost-server")
    server = start_server(workdir / "models", workdir)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def llamahost_server_factory(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """``start(env=None, models=None)``: another server; all are stopped after the test."""
    servers: list[LiveServer] = []

    def start(env: Mapping[str, str] | None = None, models: Path | None = None) -> LiveServer:
        workdir = tmp_path / f"server-{len(servers)}"
        workdir.mkdir()
        server = start_server(models or workdir / "models", workdir, env)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            stop_server(server)
