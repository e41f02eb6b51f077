"""Separate processes creating, pulling, removing and pruning in one store at once.

The invariant: a model that ``list`` shows resolves, with every blob its manifest names.
``rm`` and ``prune`` (garbage collection) must never delete a blob that a create or pull
in another process has stored but not yet published in a manifest.

The races are made reproducible by pausing the create or pull at "writing manifest" (its
blobs stored, its manifest not yet written) through its progress callback, running the
collection in another process meanwhile, then letting it finish.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from registry_fixtures import RegistryServer

from llamahost.modelfile.create import create_model
from llamahost.store.blobs import BlobStore
from llamahost.store.model_store import ModelStore
from llamahost.store.names import ModelName
from llamahost.store.registry import RegistryClient

WORKER = Path(__file__).with_name("store_worker.py")
TIMEOUT_S = 120


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> dict[str, object]:
    stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0, (stdout, stderr)
    return json.loads(stdout.strip().splitlines()[-1])


def wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the worker exited early: {process.communicate()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def run_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMAHOST_")}
    env["LLAMAHOST_MODELS"] = str(root)
    result = subprocess.run(
        [sys.executable, "-m", "llamahost.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr
    return result


def assert_every_listed_model_is_complete(store: ModelStore) -> int:
    """Resolve every model ``list`` shows; every blob must be stored. Returns the count."""
    models, problems = store.list()
    assert problems == []
    broken = []
    for model in models:
        try:
            resolved = store.resolve(model.name)
        except Exception as exc:  # collected so the message lists every broken model
            broken.append(f"{model.name}: {exc}")
            continue
        for digest in resolved.manifest.digests():
            if not store.blobs.has(digest):
                broken.append(f"{model.name}: blob {digest} missing")
    assert broken == [], f"{len(broken)} of {len(models)} listed models are broken: {broken[:3]}"
    return len(models)


@pytest.fixture
def workdir(tmp_path: Path, tiny_model_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    shutil.copyfile(tiny_model_path, folder / "tiny.gguf")
    return folder


@pytest.mark.parametrize("collector", [("rm", "other"), ("prune",)])
def test_a_collection_while_a_create_is_paused_before_its_manifest(
    tmp_path: Path, workdir: Path, collector: tuple[str, ...]
) -> None:
    root = tmp_path / "models"
    store = ModelStore(root)
    create_model(store, "other", "FROM ./tiny.gguf\n", base_dir=workdir)  # shares the GGUF
    signal, go = tmp_path / "paused", tmp_path / "go"
    creator = start("create-paused", str(root), str(workdir), "fresh", str(signal), str(go))
    wait_for(signal, creator)

    collected = run_cli(root, *collector)  # another process; must not wait for the create

    go.touch()
    assert finish(creator) == {"created": "fresh"}
    resolved = store.resolve("fresh")
    assert resolved.system == "fresh was paused"
    assert all(store.blobs.has(digest) for digest in resolved.manifest.digests())
    assert_every_listed_model_is_complete(store)
    if collector[0] == "rm":
        assert collected.stdout == "deleted 'other'\n"
        assert [m.name.model for m in store.list()[0]] == ["fresh"]
    # Once published, the model's blobs are protected by its manifest alone.
    assert store.prune().blobs == ()
    assert list((root / ".leases").iterdir()) == []  # the lease went with the create


def test_a_collection_while_a_pull_is_paused_before_its_manifest(
    tmp_path: Path, workdir: Path, registry_server: RegistryServer
) -> None:
    source = ModelStore(tmp_path / "source")
    remote = ModelName.parse(f"{registry_server.host}/test/m{uuid.uuid4().hex[:12]}:v1")
    create_model(source, remote, "FROM ./tiny.gguf\nSYSTEM pulled\n", base_dir=workdir)
    RegistryClient(insecure=True).push(remote, source.root)
    root = tmp_path / "models"
    signal, go = tmp_path / "paused", tmp_path / "go"
    puller = start("pull-paused", str(root), str(remote), str(signal), str(go))
    wait_for(signal, puller)

    run_cli(root, "prune")

    go.touch()
    assert finish(puller) == {"pulled": str(remote)}
    store = ModelStore(root)
    assert store.resolve(remote).system == "pulled"
    assert_every_listed_model_is_complete(store)


def test_a_killed_creates_lease_never_blocks_a_collection(tmp_path: Path, workdir: Path) -> None:
    root = tmp_path / "models"
    killed = start("create-killed", str(root), str(workdir), "doomed")
    killed.communicate(timeout=TIMEOUT_S)
    assert killed.returncode == 9
    [lease] = (root / ".leases").iterdir()  # left behind, its flock gone with the process
    stored = list(BlobStore(root).iter_digests())
    assert len(stored) == 2  # the GGUF and the config blob

    pruned = run_cli(root, "prune")

    assert pruned.stdout.startswith("removed 2 unused blob(s)")
    assert not lease.exists()
    assert list(BlobStore(root).iter_digests()) == []


@pytest.mark.slow
def test_creates_and_collections_in_a_loop_never_publish_a_broken_model(
    tmp_path: Path, workdir: Path
) -> None:
    """Two processes create models (never removed), one creates victims, one removes the
    victims and prunes, all at once; then every model listed must be complete."""
    root = tmp_path / "models"
    seconds = "6"
    workers = [
        start("create", str(root), str(workdir), "keep-a", seconds),
        start("create", str(root), str(workdir), "keep-b", seconds),
        start("create", str(root), str(workdir), "victim", seconds),
        start("gc", str(root), "victim", seconds),
    ]
    results = [finish(worker) for worker in workers]

    created = sum(int(r["created"]) for r in results[:2])  # type: ignore[call-overload]
    assert created > 10 and int(results[3]["removed"]) > 0  # type: ignore[call-overload]
    store = ModelStore(root)
    keepers = [m for m in store.list()[0] if m.name.model.startswith("keep-")]
    assert len(keepers) == created
    assert_every_listed_model_is_complete(store)
