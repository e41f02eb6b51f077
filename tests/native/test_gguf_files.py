"""GGUF metadata reading, split/merge, shard discovery, and malformed files.

Every malformed-file case runs in a fresh interpreter: a native abort would fail the test
(non-zero exit with a traceback) rather than kill pytest. Each one also checks that the
same process loads a good model and generates afterwards.
"""

from __future__ import annotations

import struct
import textwrap
from pathlib import Path

import pytest

import llamahost
from llamahost.errors import GGUFError, ModelLoadError, ShardError
from support.isolated import run_python
from support.tiny_model import N_LAYER, N_VOCAB, write_tiny_model


def test_read_gguf_metadata_and_tensors(tiny_model_path: Path) -> None:
    info = llamahost.read_gguf(tiny_model_path)
    assert info.version == 3
    assert info.architecture == "llama"
    assert info.metadata["llama.block_count"] == N_LAYER
    assert info.metadata["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-5)
    assert info.metadata["tokenizer.ggml.tokens"][:3] == ["<unk>", "<s>", "</s>"]
    assert len(info.metadata["tokenizer.ggml.token_type"]) == N_VOCAB
    embd = next(t for t in info.tensors if t.name == "token_embd.weight")
    assert embd.shape == (64, N_VOCAB)
    assert embd.type == "f32"
    assert embd.size == 64 * N_VOCAB * 4
    assert embd.offset >= info.data_offset
    assert info.arch_value("embedding_length") == 64


def test_read_gguf_can_leave_out_long_arrays(tiny_model_path: Path) -> None:
    info = llamahost.read_gguf(tiny_model_path, max_array_length=10)
    assert "tokenizer.ggml.tokens" not in info.metadata
    assert info.omitted_arrays["tokenizer.ggml.tokens"] == ("str", N_VOCAB)


def test_split_then_load_from_first_shard_and_merge(tiny_model_path: Path, tmp_path: Path) -> None:
    shards = llamahost.split_gguf(tiny_model_path, tmp_path / "tiny", 3)
    assert [Path(s).name for s in shards] == [f"tiny-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    infos = [llamahost.read_gguf(s) for s in shards]
    assert [i.split_no for i in infos] == [0, 1, 2]
    assert {i.split_count for i in infos} == {3}
    assert sum(len(i.tensors) for i in infos) == len(llamahost.read_gguf(tiny_model_path).tensors)
    assert "tokenizer.ggml.tokens" in infos[0].metadata
    assert "tokenizer.ggml.tokens" not in infos[1].metadata

    assert llamahost.model_paths(shards[0]) == shards
    assert llamahost.model_paths(list(reversed(shards))) == shards

    opts = {"num_ctx": 128, "temperature": 0, "num_predict": 12, "num_thread": 1}
    single = llamahost.load(tiny_model_path, **opts).generate("hello")
    assert llamahost.load(shards[0], **opts).generate("hello") == single
    assert llamahost.load(shards, **opts).generate("hello") == single

    merged = llamahost.merge_gguf(shards[0], tmp_path / "merged.gguf")
    assert Path(merged).read_bytes() == Path(tiny_model_path).read_bytes()


def test_shard_errors_name_what_is_wrong(tiny_model_path: Path, tmp_path: Path) -> None:
    shards = llamahost.split_gguf(tiny_model_path, tmp_path / "m", 3)
    with pytest.raises(ShardError, match=r"shard 2 of 3.*first shard"):
        llamahost.model_paths(shards[1])
    with pytest.raises(ShardError, match=r"missing shard number.*2"):
        llamahost.model_paths([shards[0], shards[2]])
    with pytest.raises(ShardError, match="given twice"):
        llamahost.model_paths([shards[0], shards[1], shards[1]])
    Path(shards[2]).unlink()
    with pytest.raises(ShardError, match=r"1 are missing.*m-00003-of-00003\.gguf"):
        llamahost.load(shards[0])
    with pytest.raises(ShardError, match=r"not a readable GGUF|no such"):
        llamahost.merge_gguf(shards[0], tmp_path / "x.gguf")
    renamed = tmp_path / "renamed.gguf"
    Path(shards[1]).rename(renamed)
    with pytest.raises(ShardError, match=r"shard 2 of 3.*not named"):
        llamahost.model_paths(renamed)


def test_split_rejects_bad_counts(tiny_model_path: Path, tmp_path: Path) -> None:
    n_tensors = len(llamahost.read_gguf(tiny_model_path).tensors)
    for bad in (0, n_tensors + 1):
        with pytest.raises(llamahost.OptionError, match="n_splits"):
            llamahost.split_gguf(tiny_model_path, tmp_path / "x", bad)
    assert list(tmp_path.iterdir()) == []


# ---- malformed files -------------------------------------------------------------------
def _variants(good: bytes, tmp_path: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}

    def write(name: str, data: bytes) -> None:
        out[name] = tmp_path / f"{name}.gguf"
        out[name].write_bytes(data)

    write("bad_magic", b"GGUX" + good[4:])
    write("truncated_header", good[:200])
    write("huge_tensor_count", good[:8] + struct.pack("<Q", 1 << 62) + good[16:])
    write("huge_kv_count", good[:16] + struct.pack("<Q", 1 << 62) + good[24:])
    write("data_past_eof", good[:-1000])
    write("empty", b"")
    return out


MALFORMED_EXPECTATIONS = {
    "bad_magic": "magic",
    "truncated_header": "",
    "huge_tensor_count": "",
    "huge_kv_count": "",
    "data_past_eof": "file bounds|data|size",
    "empty": "",
}


@pytest.mark.parametrize("case", sorted(MALFORMED_EXPECTATIONS))
def test_malformed_gguf_raises_and_process_survives(
    case: str, tiny_model_path: Path, tmp_path: Path
) -> None:
    bad = _variants(tiny_model_path.read_bytes(), tmp_path)[case]
    pattern = MALFORMED_EXPECTATIONS[case]
    code = textwrap.dedent(
        f"""
        import re, llamahost
        from llamahost.errors import GGUFError, ModelLoadError
        bad, good = {str(bad)!r}, {str(tiny_model_path)!r}
        if {case!r} != "data_past_eof":
            try:
                llamahost.read_gguf(bad)
            except GGUFError as e:
                print("read_gguf:", e)
            else:
                raise SystemExit("read_gguf accepted a malformed file")
        try:
            llamahost.load(bad)
        except ModelLoadError as e:
            msg = str(e)
            print("load:", msg)
            assert bad in msg, "the error must name the file"
            assert "failed to load" != msg.lower().strip()
            assert re.search({pattern!r}, msg, re.I), msg
        else:
            raise SystemExit("load accepted a malformed file")
        out = llamahost.load(good, num_ctx=64, num_thread=1).generate("ok", num_predict=3)
        print("after:", repr(out))
        """
    )
    done = run_python(code)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "after:" in done.stdout


def test_load_error_gives_llama_cpp_reason(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "arch.gguf")
    data = path.read_bytes().replace(
        b"general.architecture\x08\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00llama",
        b"general.architecture\x08\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00lllma",
    )
    assert b"lllma" in data
    path.write_bytes(data)
    with pytest.raises(ModelLoadError, match=r"unknown model architecture: 'lllma'") as err:
        llamahost.load(path)
    assert str(path) in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such model file"):
        llamahost.load(tmp_path / "nope.gguf")
    with pytest.raises(GGUFError, match="no such GGUF file"):
        llamahost.read_gguf(tmp_path / "nope.gguf")
