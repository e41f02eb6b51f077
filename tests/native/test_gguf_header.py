"""The pure-Python GGUF header reader (llamahost.gguf_header) against llama.cpp's own.

Differential: on generated and real models, and on hand-built and randomly mutated files,
gguf_header.read_gguf gives exactly what _native.read_gguf gives, or both refuse the file
with GGUFError. The native reads run in a fresh interpreter, so that a native abort fails a
test instead of killing pytest. Hostile lengths and counts are refused before anything big
is allocated (traced with tracemalloc), and every read runs under an alarm, so a loop that
does not end fails the test instead of hanging it.
"""

from __future__ import annotations

import ctypes
import pickle
import random
import signal
import struct
import textwrap
import tracemalloc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import llamahost
from llamahost import gguf_header
from llamahost.errors import GGUFError
from llamahost.gguf_header import GGML_TYPES, GGUFInfo, TensorInfo
from support.isolated import run_python

Outcome = tuple[str, Any]  # ("ok", GGUFInfo) or (exception class name, message)


def _from_native(raw: dict[str, Any]) -> GGUFInfo:
    return GGUFInfo(
        path=raw["path"],
        version=raw["version"],
        alignment=raw["alignment"],
        data_offset=raw["data_offset"],
        metadata=dict(raw["metadata"]),
        tensors=tuple(
            TensorInfo(t["name"], t["type"], tuple(t["shape"]), t["offset"], t["size"])
            for t in raw["tensors"]
        ),
        omitted_arrays={k: tuple(v) for k, v in raw["omitted_arrays"].items()},
    )


def _native_reads(
    jobs: Sequence[tuple[Path, int]], tmp_path: Path
) -> dict[tuple[str, int], Outcome]:
    """_native.read_gguf on every (file, max_array_length), in one fresh interpreter."""
    jobs_file, results_file = tmp_path / "jobs.pickle", tmp_path / "results.pickle"
    jobs_file.write_bytes(pickle.dumps([(str(p), k) for p, k in jobs]))
    code = textwrap.dedent(
        f"""
        import pickle
        from llamahost import _native
        out = {{}}
        for path, k in pickle.loads(open({str(jobs_file)!r}, "rb").read()):
            try:
                out[path, k] = ("ok", _native.read_gguf(path, k))
            except Exception as e:
                out[path, k] = (type(e).__name__, str(e))
        open({str(results_file)!r}, "wb").write(pickle.dumps(out))
        """
    )
    done = run_python(code, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    raw: dict[tuple[str, int], Outcome] = pickle.loads(results_file.read_bytes())
    return {key: (o[0], _from_native(o[1]) if o[0] == "ok" else o[1]) for key, o in raw.items()}


class _Hung(Exception):
    """Raised by the alarm (not a TimeoutError: that is an OSError, which the reader wraps)."""


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise _Hung(f"a header read took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _python_read(path: Path, k: int) -> Outcome:
    """gguf_header.read_gguf under a deadline; any exception but GGUFError propagates."""
    with _deadline(10):
        try:
            return "ok", gguf_header.read_gguf(path, max_array_length=k)
        except GGUFError as e:
            return "GGUFError", str(e)


def _agree(python: Outcome, native: Outcome, what: str) -> None:
    if native[0] == "UnicodeDecodeError":  # native's strict decoding of some names; ours replaces
        return
    assert python[0] == native[0], f"{what}: python {python}, native {native}"
    if python[0] == "ok":  # repr: NaNs compare equal, and -0.0 differs from 0.0
        assert repr(python[1]) == repr(native[1]), what


# ---- hand-built GGUF bytes ----------------------------------------------------------------
def _s(raw: bytes) -> bytes:
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: bytes, gguf_type: int, payload: bytes) -> bytes:
    return _s(key) + struct.pack("<i", gguf_type) + payload


def _arr(key: bytes, item_type: int, n: int, items: bytes) -> bytes:
    return _kv(key, 9, struct.pack("<iQ", item_type, n) + items)


def _ti(name: bytes, ne: Sequence[int], ggml_type: int, offset: int) -> bytes:
    dims = b"".join(struct.pack("<q", d) for d in ne)
    return _s(name) + struct.pack("<I", len(ne)) + dims + struct.pack("<iQ", ggml_type, offset)


def _gguf(
    kvs: Sequence[bytes] = (),
    tensors: Sequence[bytes] = (),
    *,
    version: int = 3,
    counts: tuple[int, int] | None = None,
    pad_to: int = 32,
) -> bytes:
    n_tensors, n_kv = counts or (len(tensors), len(kvs))
    data = b"GGUF" + struct.pack("<Iqq", version, n_tensors, n_kv) + b"".join([*kvs, *tensors])
    return data + b"\0" * (-len(data) % pad_to if tensors else 0)


def _all_types_file() -> bytes:
    """Every metadata type, arrays kept and skipped, every ggml type, odd shapes."""
    scalars = [
        _kv(b"u8", 0, b"\xc8"),
        _kv(b"i8", 1, b"\xfb"),
        _kv(b"u16", 2, struct.pack("<H", 65535)),
        _kv(b"i16", 3, struct.pack("<h", -32768)),
        _kv(b"u32", 4, struct.pack("<I", 2**32 - 1)),
        _kv(b"i32", 5, struct.pack("<i", -(2**31))),
        _kv(b"f32", 6, struct.pack("<f", 1.1)),
        _kv(b"bool", 7, b"\x02"),
        _kv(b"str", 8, _s("héllo ✓".encode())),
        _kv(b"u64", 10, struct.pack("<Q", 2**64 - 1)),
        _kv(b"i64", 11, struct.pack("<q", -(2**63))),
        _kv(b"f64", 12, struct.pack("<d", 0.1)),
        _kv(b"nul", 8, _s(b"before\0after")),
        _kv(b"bad \xff utf-8", 8, _s(b"\xc3(\xff")),
        _kv(b"general.alignment", 4, struct.pack("<I", 64)),
    ]
    codes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "B", 10: "Q", 11: "q"}
    codes[12] = "d"
    arrays = [
        _arr(f"a{t}".encode(), t, 3, struct.pack(f"<3{c}", 0, 1, 2)) for t, c in codes.items()
    ]
    words = [b"a", b"b\0c", b"\xff", b""] + [b"w%d" % i for i in range(600)]
    words[300] = b"x" * 200  # longer than the fast skip's strings: it falls back there
    arrays += [
        _arr(b"empty", 6, 0, b""),
        _arr(b"words", 8, len(words), b"".join(map(_s, words))),
        _arr(b"few", 8, 2, _s(b"one") + _s(b"two")),
    ]
    shapes: list[tuple[bytes, list[int], int]] = [
        (f"t{t}".encode(), [block * 2, 3], t) for t, (_, block, _) in GGML_TYPES.items()
    ]
    shapes += [
        (b"zero", [32, 0], 2),
        (b"scalar", [], 0),
        (b"ones", [4, 1, 1, 1], 0),
        (b"middle-one", [4, 1, 2], 0),
        (b"nul\0in name", [8], 0),
        (b"x" * 63, [8], 24),
    ]
    tensors, offset = [], 0
    for name, ne, t in shapes:
        tensors.append(_ti(name, ne, t, offset))
        _, block, size = GGML_TYPES[t]
        n = 1
        for d in ne:
            n *= d
        offset += -(-(n // block * size) // 64) * 64
    return _gguf(scalars + arrays, tensors, pad_to=64)


VALID = {
    "all_types": _all_types_file(),
    "same_c_name": _gguf([], [_ti(b"t\0a", [8], 0, 0), _ti(b"t\0b", [8], 0, 32)]),
    "version_2": _gguf([_kv(b"k", 4, b"\x01\0\0\0")], version=2),
    "no_tensors_trailing_bytes": _gguf([_kv(b"k", 4, b"\x01\0\0\0")]) + b"junk",
    "nothing": _gguf(),
    "int64_max_elements": _gguf([], [_ti(b"t", [7, (2**63 - 1) // 7], 24, 0)]),
    "just_under_int64": _gguf([], [_ti(b"t", [2**62 - 1, 2], 24, 0)]),
}
_F32 = [_ti(b"t", [8], 0, 0)]
INVALID = {
    "empty": b"",
    "short": b"GGU",
    "bad_magic": b"GGUX" + _gguf()[4:],
    "version_0": _gguf(version=0),
    "version_1": _gguf(version=1),
    "version_4": _gguf(version=4),
    "big_endian": b"GGUF\0\0\0\x03" + _gguf()[8:],
    "negative_tensor_count": _gguf(counts=(-1, 0)),
    "huge_kv_count": _gguf(counts=(0, 2**62)),
    "truncated_kv": _gguf([_kv(b"key", 4, b"\x01\0\0\0")])[:-2],
    "empty_key": _gguf([_kv(b"", 4, b"\0\0\0\0")]),
    "duplicate_key": _gguf([_kv(b"k", 0, b"\0"), _kv(b"k", 0, b"\0")]),
    "type_13": _gguf([_kv(b"k", 13, b"\0" * 8)]),
    "type_negative": _gguf([_kv(b"k", -1, b"\0" * 8)]),
    "nested_array": _gguf([_arr(b"k", 9, 1, struct.pack("<iQ", 0, 1) + b"\0")]),
    "empty_nested_array": _gguf([_arr(b"k", 9, 0, b"")]),
    "nested_array_2e60": _gguf([_arr(b"k", 9, 2**60, struct.pack("<iQ", 8, 2**60) * 4)]),
    "array_item_type_13": _gguf([_arr(b"k", 13, 0, b"")]),
    "string_2e63": _gguf([_kv(b"k", 8, struct.pack("<Q", 2**63) + b"abc")]),
    "key_2e63": _gguf([struct.pack("<Q", 2**63) + b"k" * 20]),
    "u8_array_2e60": _gguf([_arr(b"k", 0, 2**60, b"\0" * 16)]),
    "str_array_2e60": _gguf([_arr(b"k", 8, 2**60, _s(b"a") * 4)]),
    "str_array_short": _gguf([_arr(b"k", 8, 3, _s(b"a") * 2)]),
    "alignment_u8": _gguf([_kv(b"general.alignment", 0, b"\x20")]),
    "alignment_array": _gguf([_arr(b"general.alignment", 4, 1, b"\x20\0\0\0")]),
    "alignment_0": _gguf([_kv(b"general.alignment", 4, b"\0\0\0\0")]),
    "alignment_48": _gguf([_kv(b"general.alignment", 4, b"\x30\0\0\0")]),
    "tensor_name_64": _gguf([], [_ti(b"x" * 64, [8], 0, 0)]),
    "tensor_name_2e63": _gguf([], [struct.pack("<Q", 2**63) + b"\0" * 40]),
    "duplicate_tensor": _gguf([], [_ti(b"t", [8], 0, 0), _ti(b"t", [8], 0, 32)]),
    "five_dims": _gguf([], [_ti(b"t", [1, 1, 1, 1, 1], 0, 0)]),
    "negative_dim": _gguf([], [_ti(b"t", [8, -1], 0, 0)]),
    "int64_overflow": _gguf([], [_ti(b"t", [2**62, 2], 24, 0)]),
    "data_size_overflow": _gguf(
        [], [_ti(b"a", [2**62 - 1, 2], 24, 0), _ti(b"b", [2**62 - 1, 2], 24, 2**63)]
    ),
    "int64_overflow_3d": _gguf([], [_ti(b"t", [2**21, 2**21, 2**21], 24, 0)]),
    "size_overflow": _gguf([], [_ti(b"t", [2**62], 0, 0)]),
    "ggml_type_43": _gguf([], [_ti(b"t", [8], 43, 0)]),
    "ggml_type_negative": _gguf([], [_ti(b"t", [8], -1, 0)]),
    "ggml_type_removed_4": _gguf([], [_ti(b"t", [32], 4, 0)]),
    "ggml_type_removed_31": _gguf([], [_ti(b"t", [32], 31, 0)]),
    "row_not_whole_blocks": _gguf([], [_ti(b"t", [16], 2, 0)]),
    "wrong_offset": _gguf([], [_ti(b"t", [8], 0, 32)]),
    "gap_between_tensors": _gguf([], [_ti(b"a", [8], 0, 0), _ti(b"b", [8], 0, 64)]),
    "data_section_past_end": _gguf([], _F32, pad_to=1),
    "huge_tensor_count": _gguf([], _F32, counts=(2**62, 0)),
}


def _write(files: dict[str, bytes], folder: Path) -> dict[str, Path]:
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.gguf"
        paths[name].write_bytes(data)
    return paths


# ---- tests ---------------------------------------------------------------------------------
def test_ggml_type_table_is_ggmls() -> None:
    from llamahost import _native  # noqa: F401  (loads the very libggml-base the binding uses)

    ggml = ctypes.CDLL("libggml-base.so.0")
    ggml.ggml_type_name.restype = ctypes.c_char_p
    ggml.ggml_blck_size.restype = ctypes.c_int64
    ggml.ggml_type_size.restype = ctypes.c_size_t
    ggml.gguf_type_name.restype = ctypes.c_char_p
    ours = {
        t: (ggml.ggml_type_name(t).decode(), ggml.ggml_blck_size(t), ggml.ggml_type_size(t))
        for t in range(gguf_header.GGML_TYPE_COUNT)
        if ggml.ggml_blck_size(t) > 0
    }
    assert ours == GGML_TYPES
    names = tuple(ggml.gguf_type_name(t).decode() for t in range(len(gguf_header.GGUF_TYPE_NAMES)))
    assert names == gguf_header.GGUF_TYPE_NAMES


@pytest.mark.parametrize("model", ["tiny", "bert"])
def test_matches_native_on_generated_models(
    model: str,
    tiny_model_path: Path,
    tiny_bert_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tiny_model_path if model == "tiny" else tiny_bert_path
    native = _native_reads([(path, k) for k in (-1, 0, 16)], tmp_path)
    for chunk in (1 << 20, 7, 61):  # tiny windows: a refill at every turn
        monkeypatch.setattr(gguf_header, "_CHUNK", chunk)
        for k in (-1, 0, 16):
            assert native[str(path), k][0] == "ok"
            assert gguf_header.read_gguf(path, max_array_length=k) == native[str(path), k][1]
    assert native[str(path), 16][1].omitted_arrays["tokenizer.ggml.tokens"][0] == "str"


@pytest.mark.parametrize("model", ["smollm2", "gemma"])
def test_matches_native_on_real_models(model: str, request: pytest.FixtureRequest) -> None:
    from llamahost import _native

    path: Path = request.getfixturevalue(f"{model}_path")
    for k in (-1, 0, 16):
        expected = _from_native(_native.read_gguf(str(path), k))
        assert gguf_header.read_gguf(str(path), max_array_length=k) == expected, k
    assert "tokenizer.ggml.tokens" in expected.omitted_arrays


def test_llamahost_read_gguf_is_the_python_reader(tiny_model_path: Path) -> None:
    assert llamahost.read_gguf is gguf_header.read_gguf
    assert llamahost.gguf.TensorInfo is TensorInfo


def test_hand_built_files_match_native(tmp_path: Path) -> None:
    valid, invalid = _write(VALID, tmp_path), _write(INVALID, tmp_path)
    ks = (-1, 0, 2)
    native = _native_reads(
        [(p, k) for p in [*valid.values(), *invalid.values()] for k in ks], tmp_path
    )
    for name, path in valid.items():
        for k in ks:
            assert native[str(path), k][0] == "ok", (name, native[str(path), k])
            assert gguf_header.read_gguf(path, max_array_length=k) == native[str(path), k][1]
    for name, path in invalid.items():
        for k in ks:
            assert native[str(path), k][0] == "GGUFError", (name, native[str(path), k])
            with pytest.raises(GGUFError, match="is not a readable GGUF file"):
                gguf_header.read_gguf(path, max_array_length=k)
    words = gguf_header.read_gguf(valid["all_types"]).metadata["words"]
    assert words[:4] == ["a", "b", "\ufffd", ""] and words[300] == "x" * 200


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("bad_magic", r"invalid magic b'GGUX'"),
        ("big_endian", r"big-endian"),
        ("version_1", r"version 1"),
        ("string_2e63", r"value of 'k' at offset 37 is 9223372036854775808 bytes long"),
        ("u8_array_2e60", r"'k' at offset 37: 1152921504606846976 items cannot fit in 16 bytes"),
        ("nested_array", r"'k' at offset 37 is an array of arrays"),
        ("truncated_kv", r"the value of 'key' at offset 39 needs 4 bytes, 2 are left"),
        ("ggml_type_removed_31", r"tensor 't' at offset \d+ has ggml type 31, removed from ggml"),
        ("wrong_offset", r"tensor 't' has offset 32, expected 0"),
        ("data_section_past_end", r"data section would start at 64, past the end \(57\)"),
    ],
)
def test_errors_say_what_was_read_and_where(case: str, message: str, tmp_path: Path) -> None:
    path = _write({case: INVALID[case]}, tmp_path)[case]
    with pytest.raises(GGUFError, match=message) as err:
        gguf_header.read_gguf(path)
    assert str(path) in str(err.value)


def test_missing_file_or_folder_is_a_gguf_error(tmp_path: Path) -> None:
    for path in (tmp_path / "nope.gguf", tmp_path):
        with pytest.raises(GGUFError, match="no such GGUF file"):
            gguf_header.read_gguf(path)


HOSTILE = [
    "string_2e63",
    "key_2e63",
    "tensor_name_2e63",
    "u8_array_2e60",
    "str_array_2e60",
    "nested_array_2e60",
    "huge_kv_count",
    "huge_tensor_count",
    "size_overflow",
]


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_lengths_are_refused_before_allocating(case: str, tmp_path: Path) -> None:
    path = _write({case: INVALID[case]}, tmp_path)[case]
    tracemalloc.start()
    try:
        for k in (-1, 0):
            with _deadline(5), pytest.raises(GGUFError):
                gguf_header.read_gguf(path, max_array_length=k)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes allocated to refuse a {len(INVALID[case])}-byte file"


def _mutants(header: bytes, count: int, seed: int) -> Iterator[bytes]:
    interesting = [0, 1, 0xFF, 2**31, 2**32, 2**60, 2**63, 2**63 - 1, 2**64 - 1]
    rng = random.Random(seed)
    for _ in range(count):
        data = bytearray(header)
        kind, at = rng.randrange(3), rng.randrange(len(data) - 8)
        if kind == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data[at] = rng.randrange(256)
        else:
            data[at : at + 8] = struct.pack("<Q", rng.choice(interesting))
        yield bytes(data)


def test_mutated_and_truncated_headers_agree_with_native(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    data_offset = gguf_header.read_gguf(tiny_model_path).data_offset
    header = tiny_model_path.read_bytes()[:data_offset]  # a valid file: its data at the end
    files = {f"mutant{i}": m for i, m in enumerate(_mutants(header, 1000, seed=1234))}
    cuts = sorted({*range(64), *range(64, data_offset, 11), data_offset - 1})
    files |= {f"cut{n}": header[:n] for n in cuts}
    paths = _write(files, tmp_path)
    native = _native_reads([(p, k) for p in paths.values() for k in (-1, 0)], tmp_path)
    outcomes = set()
    for name, path in paths.items():
        for k in (-1, 0):
            python = _python_read(path, k)
            _agree(python, native[str(path), k], f"{name} (max_array_length={k})")
            if name.startswith("cut"):
                assert python[0] == "GGUFError", name
            outcomes.add(python[0])
    assert outcomes == {"ok", "GGUFError"}


def test_import_does_not_load_the_native_extension(tiny_model_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import llamahost.gguf as gguf
        path = {str(tiny_model_path)!r}
        info = gguf.read_gguf(path, max_array_length=0)
        assert gguf.model_paths(path) == [path]
        assert info.architecture == "llama", info.architecture
        loaded = sorted(m for m in sys.modules if m == "llamahost._native" or m == "numpy")
        assert not loaded, loaded
        """
    )
    done = run_python(code)
    assert done.returncode == 0, done.stdout + done.stderr
