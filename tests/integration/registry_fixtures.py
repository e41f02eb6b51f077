"""Fixtures that run a real OCI registry on loopback, and fault proxies in front of it.

The registry is the CNCF distribution registry from Debian's ``docker-registry`` package
(``scripts/install-test-deps.sh`` installs it). One registry serves the whole test
session, on a free port of 127.0.0.1, storing into a temporary directory; tests keep
apart by using their own repository names.

Fixtures:

- ``registry_binary`` (session): the registry executable. Missing, the tests skip, unless
  the ``CI`` environment variable is set: then a missing binary is a failure.
- ``registry_server`` (session): a started :class:`RegistryServer`; stopped at the end.
- ``fault_proxy_factory``: ``make(upstream=registry, bind_host="127.0.0.1")`` returns a
  new :class:`FaultProxy`; all are stopped after the test.
- ``fault_proxy``: one FaultProxy in front of the registry.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fault_proxy import FaultProxy

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
STARTUP_TIMEOUT_S = 15.0

__all__ = [
    "RegistryServer",
    "fault_proxy",
    "fault_proxy_factory",
    "find_registry_binary",
    "registry_binary",
    "registry_server",
]


@dataclass
class RegistryServer:
    """A running registry: ``host`` is ``127.0.0.1:<port>``, as in model names."""

    host: str
    storage: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}"

    def log_tail(self, limit: int = 4000) -> str:
        """The end of the registry's log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""


def find_registry_binary() -> Path | None:
    """Debian's registry executable, or one named ``docker-registry`` on PATH."""
    if REGISTRY_BINARY.is_file() and os.access(REGISTRY_BINARY, os.X_OK):
        return REGISTRY_BINARY
    found = shutil.which("docker-registry")
    return Path(found) if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_config(path: Path, storage: Path, port: int) -> None:
    path.write_text(
        "version: 0.1\n"
        "log:\n"
        "  level: warn\n"
        "  accesslog:\n"
        "    disabled: true\n"
        "storage:\n"
        "  filesystem:\n"
        f"    rootdirectory: {storage}\n"
        "  delete:\n"
        "    enabled: true\n"
        "  maintenance:\n"
        "    uploadpurging:\n"
        "      enabled: false\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
        "  secret: llamahost-tests\n"
    )


def _answers_v2(host: str) -> bool:
    connection = http.client.HTTPConnection(host, timeout=1)
    try:
        connection.request("GET", "/v2/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def start_registry(binary: Path, workdir: Path) -> RegistryServer:
    """Start the registry on a free loopback port and wait until ``/v2/`` answers 200."""
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    failures = []
    for attempt in range(3):  # the free port may be taken before the registry binds it
        port = _free_port()
        config = workdir / f"config-{attempt}.yml"
        _write_config(config, storage, port)
        log_path = workdir / f"registry-{attempt}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [str(binary), "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        server = RegistryServer(f"127.0.0.1:{port}", storage, log_path, process)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            if _answers_v2(server.host):
                return server
            time.sleep(0.05)
        stop_registry(server)
        failures.append(f"port {port}: exit {process.returncode}\n{server.log_tail()}")
    raise RuntimeError(f"{binary} did not start:\n" + "\n".join(failures))


def stop_registry(server: RegistryServer) -> None:
    """Terminate the registry process (kill it if it does not exit in 5 s)."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=5)


@pytest.fixture(scope="session")
def registry_binary() -> Path:
    """The registry executable; skips (fails under CI) when it is not installed."""
    binary = find_registry_binary()
    if binary is None:
        reason = (
            f"the OCI registry binary {REGISTRY_BINARY} is not installed; "
            "run scripts/install-test-deps.sh as root (Debian package docker-registry)"
        )
        if "CI" in os.environ:
            pytest.fail(f"{reason} (CI is set, so this is a failure)")
        pytest.skip(reason)
    return binary


@pytest.fixture(scope="session")
def registry_server(
    registry_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServer]:
    """A real registry on 127.0.0.1 for the whole session, stopped at its end."""
    server = start_registry(registry_binary, tmp_path_factory.mktemp("registry"))
    try:
        yield server
    finally:
        stop_registry(server)


@pytest.fixture
def fault_proxy_factory(registry_server: RegistryServer) -> Iterator[Callable[..., FaultProxy]]:
    """``make(upstream=<registry host>, bind_host="127.0.0.1")``: new proxies, stopped after."""
    proxies: list[FaultProxy] = []

    def make(
        upstream: str | None = registry_server.host, bind_host: str = "127.0.0.1"
    ) -> FaultProxy:
        proxy = FaultProxy(upstream, bind_host=bind_host)
        proxies.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.stop()


@pytest.fixture
def fault_proxy(fault_proxy_factory: Callable[..., FaultProxy]) -> FaultProxy:
    """A FaultProxy in front of the session's registry, with no fault set."""
    return fault_proxy_factory()
