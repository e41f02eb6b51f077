"""Manifests: Ollama's JSON byte for byte, atomic writes, listing with problems, pruning."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import llamahost.store.manifests as manifests_module
from llamahost.errors import ManifestError, ManifestNotFoundError
from llamahost.store.blobs import BlobStore, FsHooks
from llamahost.store.digests import Digest
from llamahost.store.manifests import (
    CONFIG_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    MEDIA_TYPE_LICENSE,
    MEDIA_TYPE_MODEL,
    MEDIA_TYPE_PARAMS,
    MEDIA_TYPE_TEMPLATE,
    Layer,
    Manifest,
    ManifestStore,
)
from llamahost.store.names import ModelName

# The manifest `ollama pull gemma:2b` wrote to
# ~/.ollama/models/manifests/registry.ollama.ai/library/gemma/2b (Ollama 0.1.48).
GEMMA_2B = (
    b'{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
    b'"config":{"mediaType":"application/vnd.docker.container.image.v1+json",'
    b'"digest":"sha256:887433b89a901c156f7e6944442f3c9e57f3c55d6ed52042cbb7303aea994290",'
    b'"size":483},"layers":[{"mediaType":"application/vnd.ollama.image.model",'
    b'"digest":"sha256:c1864a5eb19305c40519da12cc543519e48a0697ecd30e15d5ac228644957d12",'
    b'"size":1678447520},{"mediaType":"application/vnd.ollama.image.license",'
    b'"digest":"sha256:097a36493f718248845233af1d3fefe7a303f864fae13bc31a3a9704229378ca",'
    b'"size":8433},{"mediaType":"application/vnd.ollama.image.template",'
    b'"digest":"sha256:109037bec39c0becc8221222ae23557559bc594290945a2c4221ab4f303b8871",'
    b'"size":136},{"mediaType":"application/vnd.ollama.image.params",'
    b'"digest":"sha256:22a838ceb7fb22755a3b0ae9b4eadde629d19be1f651f73efb8c6b4e2cd0eea0",'
    b'"size":84}]}'
)


def layer_for(store: BlobStore, data: bytes, media_type: str) -> Layer:
    return Layer(media_type, store.write(data), len(data))


def manifest_for(store: BlobStore, *parts: bytes) -> Manifest:
    config = layer_for(store, b'{"model_format":"gguf"}' + parts[0], CONFIG_MEDIA_TYPE)
    return Manifest(config, [layer_for(store, p, MEDIA_TYPE_MODEL) for p in parts])


class FailingWrite(FsHooks):
    """Writes the first ``limit`` bytes of a file, then fails like a full disk."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def write(self, fd, data):
        super().write(fd, bytes(data[: self.limit]))
        if len(data) > self.limit:
            raise OSError(errno.ENOSPC, "No space left on device (injected)")


def manifest_files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root / "manifests"))
        for p in (root / "manifests").rglob("*")
        if p.is_file()
    )


# -- the JSON format ---------------------------------------------------------------------


def test_ollama_manifest_round_trips_byte_for_byte():
    manifest = Manifest.from_json(GEMMA_2B)
    assert manifest.schema_version == 2
    assert manifest.media_type == MANIFEST_MEDIA_TYPE
    assert manifest.config == Layer(
        CONFIG_MEDIA_TYPE,
        Digest.parse("sha256:887433b89a901c156f7e6944442f3c9e57f3c55d6ed52042cbb7303aea994290"),
        483,
    )
    assert [layer.media_type for layer in manifest.layers] == [
        MEDIA_TYPE_MODEL,
        MEDIA_TYPE_LICENSE,
        MEDIA_TYPE_TEMPLATE,
        MEDIA_TYPE_PARAMS,
    ]
    assert manifest.layers[0].size == 1678447520
    assert manifest.to_json() == GEMMA_2B + b"\n"  # Ollama's json.Encoder adds the newline
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert manifest.total_size() == 483 + 1678447520 + 8433 + 136 + 84
    assert manifest.digests()[0] == manifest.config.digest
    assert len(manifest.digests()) == 5
    assert manifest.layers_of(MEDIA_TYPE_PARAMS) == (manifest.layers[3],)


def test_layer_from_is_written_after_size_and_only_when_set():
    digest = Digest.of_bytes(b"x")
    assert json.loads(Manifest(Layer(CONFIG_MEDIA_TYPE, digest, 1)).to_json())["layers"] == []
    with_from = Layer(MEDIA_TYPE_MODEL, digest, 1, from_="/models/a<b>&c.gguf")
    text = Manifest(Layer(CONFIG_MEDIA_TYPE, digest, 1), [with_from]).to_json().decode()
    assert (
        f'{{"mediaType":"{MEDIA_TYPE_MODEL}","digest":"{digest}","size":1,'
        '"from":"/models/a\\u003cb\\u003e\\u0026c.gguf"}' in text
    )  # Go's encoder escapes <, > and &
    assert Manifest.from_json(text).layers[0].from_ == "/models/a<b>&c.gguf"
    assert '"from"' not in Layer(MEDIA_TYPE_MODEL, digest, 1).to_dict()


def test_non_ascii_is_written_as_utf8_like_go():
    digest = Digest.of_bytes(b"x")
    layer = Layer(MEDIA_TYPE_MODEL, digest, 1, from_="modèle")
    data = Manifest(layer, [layer]).to_json()
    assert "modèle".encode() in data
    assert Manifest.from_json(data).layers[0].from_ == "modèle"


def test_newer_fields_are_ignored_and_null_layers_read_as_none():
    raw = json.loads(GEMMA_2B)
    raw["runner"] = "llamacpp"
    raw["layers"][0]["name"] = "tensor"
    assert Manifest.from_json(json.dumps(raw)) == Manifest.from_json(GEMMA_2B)
    raw["layers"] = None
    assert Manifest.from_json(json.dumps(raw)).layers == ()


def gemma_with(change) -> bytes:
    raw = json.loads(GEMMA_2B)
    change(raw)
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "not valid JSON"),
        (GEMMA_2B[:-10], "not valid JSON"),
        (b"\xff\xfe{", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (gemma_with(lambda m: m.pop("config")), "no `config`"),
        (gemma_with(lambda m: m.update(config=[])), "`config` must be a JSON object"),
        (gemma_with(lambda m: m.update(layers={})), "`layers` must be a list"),
        (gemma_with(lambda m: m["layers"].append(7)), "`layers[4]` must be a JSON object"),
        (gemma_with(lambda m: m["layers"][1].update(digest="sha256:../../x")), "`layers[1]`"),
        (gemma_with(lambda m: m["layers"][1].pop("digest")), "`layers[1]`: `digest`"),
        (gemma_with(lambda m: m["layers"][2].update(size=-1)), "`size` must be a non-negative"),
        (gemma_with(lambda m: m["layers"][2].update(size="1")), "`size` must be a non-negative"),
        (gemma_with(lambda m: m["layers"][2].update(size=1.5)), "`size` must be a non-negative"),
        (gemma_with(lambda m: m["layers"][2].update(size=True)), "`size` must be a non-negative"),
        (
            gemma_with(lambda m: m["layers"][0].update(mediaType="")),
            "`mediaType` must be a non-empty",
        ),
        (gemma_with(lambda m: m["config"].update(**{"from": 5})), "`from` must be a string"),
        (gemma_with(lambda m: m.update(schemaVersion=1)), "`schemaVersion` must be 2"),
        (gemma_with(lambda m: m.pop("schemaVersion")), "`schemaVersion` must be 2"),
        (gemma_with(lambda m: m.update(mediaType="text/plain")), "`mediaType` must be"),
        (
            gemma_with(
                lambda m: m.update(mediaType="application/vnd.ollama.manifest.list.v2+json")
            ),
            "manifest lists",
        ),
    ],
)
def test_malformed_manifests_name_the_bad_field(data, fragment):
    with pytest.raises(ManifestError) as caught:
        Manifest.from_json(data)
    assert fragment in str(caught.value)
    assert Manifest.from_json(GEMMA_2B).config.size == 483  # the next good one still reads


def test_layer_digest_strings_are_parsed():
    layer = Layer(MEDIA_TYPE_MODEL, "sha256-" + "A" * 64, 3)
    assert layer.digest == Digest("a" * 64)


def test_media_type_constants():
    assert manifests_module.MEDIA_TYPE_SYSTEM == "application/vnd.ollama.image.system"
    assert manifests_module.MEDIA_TYPE_ADAPTER == "application/vnd.ollama.image.adapter"
    assert manifests_module.MEDIA_TYPE_MESSAGES == "application/vnd.ollama.image.messages"
    assert manifests_module.MEDIA_TYPE_PROJECTOR == "application/vnd.ollama.image.projector"
    assert CONFIG_MEDIA_TYPE == "application/vnd.docker.container.image.v1+json"


# -- the manifest store ------------------------------------------------------------------


def test_write_and_read_back(tmp_path):
    blobs, store = BlobStore(tmp_path), ManifestStore(tmp_path)
    manifest = manifest_for(blobs, b"weights")
    name = ModelName.parse("llama3")
    digest = store.write(name, manifest)
    path = tmp_path / "manifests" / "registry.ollama.ai" / "library" / "llama3" / "latest"
    assert path.read_bytes() == manifest.to_json()
    assert digest == Digest.of_bytes(manifest.to_json())
    assert store.read(name) == manifest
    entry = store.entry(name)
    assert (entry.name, entry.path, entry.digest) == (name, path, digest)
    assert entry.modified == path.stat().st_mtime
    assert entry.size == manifest.total_size()
    assert manifest_files(tmp_path) == ["registry.ollama.ai/library/llama3/latest"]


def test_registry_bytes_are_kept_verbatim(tmp_path):
    store = ManifestStore(tmp_path)
    name = ModelName.parse("gemma:2b")
    digest = store.write_bytes(name, GEMMA_2B)
    assert digest.hex == hashlib.sha256(GEMMA_2B).hexdigest()
    assert store.entry(name).digest == digest
    assert name.manifest_path(tmp_path).read_bytes() == GEMMA_2B
    with pytest.raises(ManifestError, match="not valid JSON"):
        store.write_bytes(ModelName.parse("broken"), b"{")
    assert not store.has(ModelName.parse("broken"))


def test_names_match_case_insensitively(tmp_path):
    blobs, store = BlobStore(tmp_path), ManifestStore(tmp_path)
    first, second = manifest_for(blobs, b"one"), manifest_for(blobs, b"two")
    store.write(ModelName.parse("Me/Llama3:8B"), first)
    assert store.has(ModelName.parse("me/llama3:8b"))
    assert store.read(ModelName.parse("ME/LLAMA3:8b")) == first
    store.write(ModelName.parse("me/llama3:8b"), second)  # replaces the same file
    assert manifest_files(tmp_path) == ["registry.ollama.ai/Me/Llama3/8B"]
    assert store.read(ModelName.parse("Me/Llama3:8B")) == second


def test_missing_and_corrupt_manifests_raise(tmp_path):
    store = ManifestStore(tmp_path)
    with pytest.raises(ManifestNotFoundError, match="'llama3:latest' not found"):
        store.read(ModelName.parse("llama3"))
    with pytest.raises(FileNotFoundError):
        store.delete(ModelName.parse("llama3"))
    path = ModelName.parse("bad").manifest_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"schemaVersion":2')
    with pytest.raises(ManifestError, match="is invalid: manifest is not valid JSON"):
        store.read(ModelName.parse("bad"))


def test_a_cut_manifest_write_keeps_the_old_manifest(tmp_path):
    blobs = BlobStore(tmp_path)
    old, new = manifest_for(blobs, b"old"), manifest_for(blobs, b"new" * 100)
    name = ModelName.parse("m:v1")
    ManifestStore(tmp_path).write(name, old)
    old_bytes = name.manifest_path(tmp_path).read_bytes()

    cut = ManifestStore(tmp_path, fs_hooks=FailingWrite(limit=40))
    with pytest.raises(OSError, match="injected"):
        cut.write(name, new)
    assert name.manifest_path(tmp_path).read_bytes() == old_bytes
    assert ManifestStore(tmp_path).read(name) == old
    assert manifest_files(tmp_path) == ["registry.ollama.ai/library/m/v1"]  # no temp file left

    ManifestStore(tmp_path).write(name, new)
    assert ManifestStore(tmp_path).read(name) == new


CRASHING_MANIFEST_WRITER = textwrap.dedent(
    """
    import os, sys
    from llamahost.store.blobs import FsHooks
    from llamahost.store.manifests import Manifest, ManifestStore
    from llamahost.store.names import ModelName

    class DieMidWrite(FsHooks):
        def write(self, fd, data):
            super().write(fd, bytes(data[:20]))
            os._exit(3)

    store = ManifestStore(sys.argv[1], fs_hooks=DieMidWrite())
    name = ModelName.parse("m:v1")
    store.write(name, Manifest.from_json(store.path(name).read_bytes().replace(b"483", b"999")))
    """
)


def test_a_process_killed_mid_manifest_write_keeps_the_old_manifest(tmp_path):
    name = ModelName.parse("m:v1")
    store = ManifestStore(tmp_path)
    store.write_bytes(name, GEMMA_2B)
    package_parent = Path(manifests_module.__file__).parents[2]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_parent), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_MANIFEST_WRITER, str(tmp_path)],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr.decode()
    assert name.manifest_path(tmp_path).read_bytes() == GEMMA_2B
    temps = [f for f in manifest_files(tmp_path) if f.endswith(".tmp")]
    assert len(temps) == 1
    listing = store.list()
    assert [e.name for e in listing] == [name]
    assert listing.problems == ()  # a temp file is not a manifest
    report = store.prune(BlobStore(tmp_path), partial_max_age_s=0)
    assert [p.name for p in report.partials] == [Path(temps[0]).name]
    assert manifest_files(tmp_path) == ["registry.ollama.ai/library/m/v1"]


def test_delete_removes_the_file_and_empty_directories(tmp_path):
    blobs, store = BlobStore(tmp_path), ManifestStore(tmp_path)
    manifest = manifest_for(blobs, b"w")
    store.write(ModelName.parse("me/a:1"), manifest)
    store.write(ModelName.parse("me/a:2"), manifest)
    store.write(ModelName.parse("me/b"), manifest)
    store.delete(ModelName.parse("ME/A:1"))
    assert manifest_files(tmp_path) == [
        "registry.ollama.ai/me/a/2",
        "registry.ollama.ai/me/b/latest",
    ]
    store.delete(ModelName.parse("me/a:2"))
    store.delete(ModelName.parse("me/b"))
    assert list((tmp_path / "manifests").iterdir()) == []  # manifests/ itself stays
    with pytest.raises(ManifestNotFoundError):
        store.delete(ModelName.parse("me/b"))


def test_listing_skips_and_names_a_corrupt_manifest(tmp_path, caplog):
    blobs, store = BlobStore(tmp_path), ManifestStore(tmp_path)
    good = {t: manifest_for(blobs, t.encode()) for t in ("b:1", "a:2", "x.com/me/c")}
    for text, manifest in good.items():
        store.write(ModelName.parse(text), manifest)
    corrupt = ModelName.parse("broken").manifest_path(tmp_path)
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"\x00\x01 not json")
    bad_name = tmp_path / "manifests" / "registry.ollama.ai" / "library" / "-bad" / "latest"
    bad_name.parent.mkdir(parents=True)
    bad_name.write_bytes(GEMMA_2B)
    (tmp_path / "manifests" / "stray-file").write_bytes(b"x")  # not at manifest depth: ignored

    with caplog.at_level(logging.WARNING, logger="llamahost.store"):
        listing = store.list()

    assert [str(e.name) for e in listing] == [
        "registry.ollama.ai/library/a:2",
        "registry.ollama.ai/library/b:1",
        "x.com/me/c:latest",
    ]
    assert [e.manifest for e in listing] == [good["a:2"], good["b:1"], good["x.com/me/c"]]
    assert len(listing) == 3
    problems = {p.path: p.reason for p in listing.problems}
    assert set(problems) == {corrupt, bad_name}
    assert "not valid JSON" in problems[corrupt]
    assert "the model '-bad'" in problems[bad_name]
    assert str(corrupt) in caplog.text
    assert str(bad_name) in caplog.text
    expected = {d for m in good.values() for d in m.digests()}
    assert store.referenced_digests() == expected


def test_listing_an_empty_store(tmp_path):
    listing = ManifestStore(tmp_path / "nothing-here").list()
    assert (listing.entries, listing.problems) == ((), ())


def test_prune_removes_exactly_the_unreferenced_blobs(tmp_path):
    blobs, store = BlobStore(tmp_path), ManifestStore(tmp_path)
    kept = manifest_for(blobs, b"kept weights", b"shared")
    store.write(ModelName.parse("kept"), kept)
    orphans = [blobs.write(b"orphan one"), blobs.write(b"orphan two" * 10)]
    # A damaged manifest still protects the blobs its bytes mention.
    protected = blobs.write(b"named only by a damaged manifest")
    damaged = ModelName.parse("damaged").manifest_path(tmp_path)
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b'{"layers":[{"digest":"' + str(protected).encode() + b'", trunc')
    stale = blobs.blobs_dir / "import-old.partial"
    stale.write_bytes(b"half")
    os.utime(stale, (1000.0, 1000.0))
    fresh = blobs.partial_path(Digest.of_bytes(b"downloading"))
    fresh.write_bytes(b"half")
    os.utime(fresh, (9000.0, 9000.0))

    report = ManifestStore(tmp_path, clock=lambda: 10_000.0).prune(blobs, partial_max_age_s=3600)

    assert sorted(report.blobs, key=str) == sorted(orphans, key=str)
    assert report.blob_bytes == len(b"orphan one") + len(b"orphan two" * 10)
    assert report.freed_bytes == report.blob_bytes + len(b"half")  # the stale partial too
    assert report.partials == (stale,)
    assert [p.path for p in report.problems] == [damaged]
    assert set(blobs.iter_digests()) == set(kept.digests()) | {protected}
    assert fresh.exists()
    assert store.read(ModelName.parse("kept")) == kept
    again = store.prune(blobs, partial_max_age_s=3600, now=10_000.0)
    assert (again.blobs, again.partials, again.freed_bytes) == ((), (), 0)


def test_prune_keeps_every_blob_when_a_newer_layout_exists(tmp_path):
    blobs, store = BlobStore(tmp_path), ManifestStore(tmp_path)
    orphan = blobs.write(b"maybe used by manifests-v2")
    (tmp_path / "manifests-v2").mkdir()
    report = store.prune(blobs)
    assert report.blobs == ()
    assert blobs.has(orphan)
    assert "manifests-v2" in report.problems[0].reason


DEEP = b"[" * 200_000 + b"]" * 200_000


def test_a_deeply_nested_or_oversized_manifest_is_skipped_never_fatal(tmp_path, caplog):
    blobs, store = BlobStore(tmp_path), ManifestStore(tmp_path)
    good = manifest_for(blobs, b"good weights")
    store.write(ModelName.parse("good"), good)
    deep = ModelName.parse("deep").manifest_path(tmp_path)
    deep.parent.mkdir(parents=True)
    deep.write_bytes(DEEP)
    nested_layers = ModelName.parse("nested").manifest_path(tmp_path)
    nested_layers.parent.mkdir(parents=True)
    nested_layers.write_bytes(b'{"schemaVersion":2,"layers":[' + DEEP + b"]}")
    huge = ModelName.parse("huge").manifest_path(tmp_path)
    huge.parent.mkdir(parents=True)
    huge.write_bytes(b'{"pad":"' + b"x" * (5 << 20) + b'"}')

    with caplog.at_level(logging.WARNING, logger="llamahost.store"):
        listing = store.list()

    assert [e.name for e in listing] == [ModelName.parse("good")]
    reasons = {p.path: p.reason for p in listing.problems}
    assert set(reasons) == {deep, nested_layers, huge}
    assert "nest deeper than 64 levels" in reasons[deep]
    assert "nest deeper than 64 levels" in reasons[nested_layers]
    assert "larger than the 4194304-byte limit" in reasons[huge]
    assert str(tmp_path) not in reasons[deep]  # messages name the model, not the folder
    with pytest.raises(ManifestError, match="nest deeper"):
        store.read(ModelName.parse("deep"))
    with pytest.raises(ManifestError, match="nest deeper"):
        Manifest.from_json(DEEP)

    orphan = blobs.write(b"nobody uses this")
    report = store.prune(blobs)
    assert report.blobs == (orphan,)
    assert {p.path for p in report.problems} == {deep, nested_layers, huge}
    store.delete(ModelName.parse("deep"))  # rm of a corrupt manifest works too
    assert store.read(ModelName.parse("good")) == good
