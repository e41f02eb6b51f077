"""GGUF headers in pure Python: metadata and tensor infos, without llama.cpp.

The HTTP server and the CLI's ``show``/``list`` read model headers through this module and
never import the native extension, so a hostile file can at worst raise GGUFError here.
:func:`read_gguf` returns what llama.cpp's gguf reader (``_native.read_gguf``) gives for the
same file and refuses what it refuses, saying what was being read and at which offset.

Layout (little-endian, versions 2 and 3; ``str`` is a u64 length then that many bytes)::

    "GGUF"  u32 version  i64 n_tensors  i64 n_kv
    n_kv      x  str key, i32 type, value    (array: i32 item type, u64 count, the items)
    n_tensors x  str name, u32 n_dims, i64 ne[n_dims], i32 ggml type, u64 offset
    padding to general.alignment (default 32), then the tensors' data

Bounded: every length and count is checked against the bytes left in the file before
anything is read, allocated or looped over, so time and memory grow at most linearly with
the file's size; arrays longer than ``max_array_length`` are skipped, not parsed. Strings
come out as llama.cpp's C API hands them over: up to the first NUL, with invalid UTF-8
replaced by U+FFFD.
"""

from __future__ import annotations

import functools
import os
import re
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO, NoReturn

from llamahost.errors import GGUFError

PathLike = str | os.PathLike[str]

MAGIC = b"GGUF"
MAX_VERSION = 3  # gguf.h's GGUF_VERSION
DEFAULT_ALIGNMENT = 32  # GGUF_DEFAULT_ALIGNMENT
MAX_STRING_LENGTH = 1 << 30  # gguf.cpp's GGUF_MAX_STRING_LENGTH
MAX_ARRAY_ELEMENTS = 1 << 30  # GGUF_MAX_ARRAY_ELEMENTS
MAX_NAME = 64  # GGML_MAX_NAME, counting the C string's NUL
MAX_DIMS = 4  # GGML_MAX_DIMS
INT64_MAX = (1 << 63) - 1
SIZE_MAX = (1 << 64) - 1

# gguf_type_name() of gguf_type 0..12
GGUF_TYPE_NAMES: tuple[str, ...] = ("u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str")
GGUF_TYPE_NAMES += ("arr", "u64", "i64", "f64")
STRING, ARRAY = 8, 9
_SCALAR_CODES = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?"}
_SCALAR_CODES |= {10: "Q", 11: "q", 12: "d"}
_SCALARS = {t: struct.Struct("<" + code) for t, code in _SCALAR_CODES.items()}

# ggml_type -> (ggml_type_name, block size in elements, bytes per block), as the llama.cpp
# that llama-cpp-python 0.3.36 builds has them (ggml.c's type_traits). The removed types
# 4, 5, 31-33 and 36-38 (block size 0 there) are refused, as gguf.cpp refuses them.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("f32", 1, 4),
    1: ("f16", 1, 2),
    2: ("q4_0", 32, 18),
    3: ("q4_1", 32, 20),
    6: ("q5_0", 32, 22),
    7: ("q5_1", 32, 24),
    8: ("q8_0", 32, 34),
    9: ("q8_1", 32, 36),
    10: ("q2_K", 256, 84),
    11: ("q3_K", 256, 110),
    12: ("q4_K", 256, 144),
    13: ("q5_K", 256, 176),
    14: ("q6_K", 256, 210),
    15: ("q8_K", 256, 292),
    16: ("iq2_xxs", 256, 66),
    17: ("iq2_xs", 256, 74),
    18: ("iq3_xxs", 256, 98),
    19: ("iq1_s", 256, 50),
    20: ("iq4_nl", 32, 18),
    21: ("iq3_s", 256, 110),
    22: ("iq2_s", 256, 82),
    23: ("iq4_xs", 256, 136),
    24: ("i8", 1, 1),
    25: ("i16", 1, 2),
    26: ("i32", 1, 4),
    27: ("i64", 1, 8),
    28: ("f64", 1, 8),
    29: ("iq1_m", 256, 56),
    30: ("bf16", 1, 2),
    34: ("tq1_0", 256, 54),
    35: ("tq2_0", 256, 66),
    39: ("mxfp4", 32, 17),
    40: ("nvfp4", 64, 36),
    41: ("q1_0", 128, 18),
    42: ("q2_0", 64, 18),
}
GGML_TYPE_COUNT = 43

_U32, _I32 = struct.Struct("<I"), struct.Struct("<i")
_U64, _I64 = struct.Struct("<Q"), struct.Struct("<q")
_ARRAY_HEAD = struct.Struct("<iQ")  # item type, length
_DIMS = tuple(struct.Struct(f"<{n}q") for n in range(MAX_DIMS + 1))
_CHUNK = 1 << 20  # bytes read at a time
_RUN = 256  # strings that one regular-expression match skips
MIN_KV_BYTES = 8 + 1 + 4 + 1  # key length, a non-empty key, type, the smallest value
MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8  # name length, n_dims, type, offset


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type: str
    shape: tuple[int, ...]
    offset: int  # absolute position of the data in the file
    size: int  # bytes


@dataclass(frozen=True)
class GGUFInfo:
    """The header of a GGUF file: metadata and tensor infos (no weights)."""

    path: str
    version: int
    alignment: int
    data_offset: int
    metadata: dict[str, Any]
    tensors: tuple[TensorInfo, ...]
    omitted_arrays: dict[str, tuple[str, int]]  # arrays left out: key -> (item type, length)

    @property
    def architecture(self) -> str | None:
        arch = self.metadata.get("general.architecture")
        return arch if isinstance(arch, str) else None

    @property
    def split_no(self) -> int:
        return int(self.metadata.get("split.no", 0))

    @property
    def split_count(self) -> int:
        return int(self.metadata.get("split.count", 0))

    def arch_value(self, key: str) -> Any:
        """An architecture-scoped key, e.g. arch_value("context_length")."""
        return self.metadata.get(f"{self.architecture}.{key}")


def read_gguf(path: PathLike, *, max_array_length: int = -1) -> GGUFInfo:
    """Read a GGUF file's metadata and tensor infos without loading weights.

    Arrays longer than `max_array_length` (when >= 0; e.g. the tokenizer's vocabulary) are
    left out of `metadata` and listed in `omitted_arrays`. Raises GGUFError for a file
    that is not a readable GGUF.
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise GGUFError(f"no such GGUF file: '{name}'")
    try:
        with open(name, "rb") as file:
            reader = _Reader(file, os.fstat(file.fileno()).st_size, name)
            return _read(reader, max_array_length)
    except OSError as e:
        raise GGUFError(f"cannot read '{name}': {e.strerror or e}") from e


def _text(raw: bytes) -> str:
    """A GGUF string as llama.cpp's C API gives it: up to the first NUL, UTF-8 or U+FFFD."""
    nul = raw.find(b"\0")
    return (raw if nul < 0 else raw[:nul]).decode("utf-8", "replace")


@functools.cache
def _short_strings() -> re.Pattern[bytes]:
    """_RUN strings in a row, each shorter than 128 bytes (most vocabulary entries)."""
    one = b"|".join(re.escape(bytes([n])) + b"\0{7}" + b".{%d}" % n for n in range(128))
    return re.compile(b"(?:%s){%d}" % (one, _RUN), re.DOTALL)


class _Reader:
    """Bounds-checked reads through a window of the file held in memory."""

    def __init__(self, file: BinaryIO, size: int, path: str) -> None:
        self._file = file
        self.size = size
        self.path = path
        self._buf = b""
        self._base = 0  # the file offset of _buf[0]; the file's position is _base + len(_buf)
        self._pos = 0  # the read position in _buf

    @property
    def offset(self) -> int:
        return self._base + self._pos

    @property
    def left(self) -> int:
        return self.size - self.offset

    def fail(self, message: str) -> NoReturn:
        raise GGUFError(f"'{self.path}' is not a readable GGUF file: {message}")

    def _take(self, n: int, what: str) -> int:
        """Consume `n` bytes, after checking that the file holds them; their index in _buf."""
        if n > self.left:
            self.fail(f"{what} at offset {self.offset} needs {n} bytes, {self.left} are left")
        pos = self._pos
        if len(self._buf) - pos < n:
            rest = self._buf[pos:]
            self._base += pos
            in_file = self.size - self._base - len(rest)  # never ask for more than that
            self._buf = rest + self._file.read(min(max(n - len(rest), _CHUNK), in_file))
            pos = 0
            if len(self._buf) < n:
                self.fail(f"the file ended at offset {self._base + len(self._buf)}, in {what}")
        self._pos = pos + n
        return pos

    def unpack(self, fmt: struct.Struct, what: str) -> tuple[Any, ...]:
        start = self._take(fmt.size, what)  # may replace _buf
        return fmt.unpack_from(self._buf, start)

    def read(self, n: int, what: str) -> bytes:
        start = self._take(n, what)
        return self._buf[start : start + n]

    def skip(self, n: int, what: str) -> None:
        if n > self.left:
            self.fail(f"{what} at offset {self.offset} needs {n} bytes, {self.left} are left")
        if self._pos + n <= len(self._buf):
            self._pos += n
            return
        self._base = self.offset + n
        self._file.seek(self._base)
        self._buf, self._pos = b"", 0

    def string(self, what: str) -> bytes:
        at = self.offset
        (n,) = self.unpack(_U64, f"the length of {what}")
        if n > MAX_STRING_LENGTH:
            self.fail(f"{what} at offset {at} is {n} bytes long, over gguf's {MAX_STRING_LENGTH}")
        return self.read(n, what)

    def strings(self, n: int, what: str, *, keep: bool) -> list[bytes]:
        """`n` strings in a row: returned, or (keep=False) checked and skipped."""
        out: list[bytes] = []
        i = 0
        while i < n:
            if not keep and n - i >= _RUN:
                match = _short_strings().match(self._buf, self._pos)
                if match is not None:
                    self._pos = match.end()
                    i += _RUN
                    continue
            last = n if keep else min(n, i + _RUN)
            buf, pos, end = self._buf, self._pos, len(self._buf)
            while i < last:
                if pos + 8 <= end:  # fast path: the whole string is in the window
                    (length,) = _U64.unpack_from(buf, pos)
                    stop = pos + 8 + length
                    if stop <= end and length <= MAX_STRING_LENGTH:
                        if keep:
                            out.append(buf[pos + 8 : stop])
                        pos = stop
                        i += 1
                        continue
                self._pos = pos
                item = self.string(f"item {i} of {what}")
                if keep:
                    out.append(item)
                buf, pos, end = self._buf, self._pos, len(self._buf)
                i += 1
            self._pos = pos
        return out


def _read(r: _Reader, max_array_length: int) -> GGUFInfo:
    if r.left < 4:
        r.fail(f"the file is {r.left} bytes long, too short for the magic")
    magic = r.read(4, "the magic")
    if magic != MAGIC:
        r.fail(f"invalid magic {magic!r}, expected {MAGIC!r}")
    (version,) = r.unpack(_U32, "the version")
    if version == 0:
        r.fail("bad GGUF version 0")
    if version & 0xFFFF == 0:
        r.fail(f"version {version:#x} looks byte-swapped: big-endian GGUF files are not read")
    if version == 1:
        r.fail("GGUF version 1 is no longer supported; convert the model again")
    if version > MAX_VERSION:
        r.fail(f"GGUF version {version}, newer than the supported {MAX_VERSION}")
    (n_tensors,) = r.unpack(_I64, "the tensor count")
    (n_kv,) = r.unpack(_I64, "the key-value count")
    if n_tensors < 0 or n_kv < 0:
        r.fail(f"negative count: {n_tensors} tensors, {n_kv} key-value pairs")
    if n_kv * MIN_KV_BYTES + n_tensors * MIN_TENSOR_INFO_BYTES > r.left:
        r.fail(
            f"{n_kv} key-value pairs and {n_tensors} tensor infos cannot fit in the "
            f"{r.left} bytes left after offset {r.offset}"
        )
    metadata, omitted, alignment = _read_metadata(r, n_kv, max_array_length)
    tensors = _read_tensor_infos(r, n_tensors)

    data_offset = r.offset
    if n_tensors > 0:
        data_offset = -(-data_offset // alignment) * alignment
        if data_offset > r.size:
            r.fail(f"the data section would start at {data_offset}, past the end ({r.size})")
    infos, expected = [], 0
    for name, type_name, shape, offset, size in tensors:
        if offset != expected:
            r.fail(f"tensor '{name}' has offset {offset}, expected {expected}")
        padded = -(-size // alignment) * alignment
        if padded > SIZE_MAX or expected + padded > SIZE_MAX:
            r.fail(f"tensor '{name}': the data section's size ({expected} + {size}) overflows")
        expected += padded
        infos.append(TensorInfo(name, type_name, shape, data_offset + offset, size))
    return GGUFInfo(
        path=r.path,
        version=version,
        alignment=alignment,
        data_offset=data_offset,
        metadata=metadata,
        tensors=tuple(infos),
        omitted_arrays=omitted,
    )


def _read_metadata(
    r: _Reader, n_kv: int, max_array_length: int
) -> tuple[dict[str, Any], dict[str, tuple[str, int]], int]:
    metadata: dict[str, Any] = {}
    omitted: dict[str, tuple[str, int]] = {}
    seen: set[bytes] = set()
    alignment: tuple[int, Any] | None = None  # (type, value) of general.alignment
    for i in range(n_kv):
        at = r.offset
        raw_key = r.string(f"key {i}")
        key = _text(raw_key)
        if not raw_key:
            r.fail(f"key {i} at offset {at} is empty")
        if raw_key in seen:
            r.fail(f"duplicate key '{key}' at offset {at}")
        seen.add(raw_key)
        (value_type,) = r.unpack(_I32, f"the type of key '{key}'")
        if value_type == ARRAY:
            at = r.offset
            item_type, n = r.unpack(_ARRAY_HEAD, f"the item type and length of '{key}'")
            if item_type == ARRAY:
                r.fail(f"key '{key}' at offset {at} is an array of arrays, which gguf refuses")
            if item_type != STRING and item_type not in _SCALARS:
                r.fail(f"key '{key}' at offset {at} has invalid item type {item_type}")
            item_size = 8 if item_type == STRING else _SCALARS[item_type].size
            if n > MAX_ARRAY_ELEMENTS or n * item_size > r.left:
                r.fail(f"key '{key}' at offset {at}: {n} items cannot fit in {r.left} bytes")
            what = f"array '{key}'"
            if raw_key == b"general.alignment":
                alignment = (ARRAY, None)
            if 0 <= max_array_length < n:
                omitted[key] = (GGUF_TYPE_NAMES[item_type], n)
                if item_type == STRING:
                    r.strings(n, what, keep=False)
                else:
                    r.skip(n * item_size, what)
            elif item_type == STRING:
                metadata[key] = [_text(s) for s in r.strings(n, what, keep=True)]
            else:
                code = _SCALAR_CODES[item_type]
                metadata[key] = list(struct.unpack(f"<{n}{code}", r.read(n * item_size, what)))
            continue
        value: Any
        if value_type == STRING:
            value = _text(r.string(f"the value of '{key}'"))
        elif value_type in _SCALARS:
            (value,) = r.unpack(_SCALARS[value_type], f"the value of '{key}'")
        else:
            r.fail(f"key '{key}' at offset {r.offset - 4} has invalid type {value_type}")
        metadata[key] = value
        if raw_key == b"general.alignment":
            alignment = (value_type, value)
    if alignment is None:
        return metadata, omitted, DEFAULT_ALIGNMENT
    align_type, align = alignment
    if align_type != 4:
        r.fail(f"'general.alignment' must be a u32, it is a {GGUF_TYPE_NAMES[align_type]}")
    if align == 0 or align & (align - 1):
        r.fail(f"'general.alignment' is {align}, not a power of 2")
    return metadata, omitted, int(align)


def _read_tensor_infos(
    r: _Reader, n_tensors: int
) -> list[tuple[str, str, tuple[int, ...], int, int]]:
    tensors = []
    seen: dict[bytes, int] = {}
    for i in range(n_tensors):
        at = r.offset
        raw = r.string(f"the name of tensor {i}")
        if len(raw) >= MAX_NAME:
            r.fail(
                f"the name of tensor {i} at offset {at} is {len(raw)} bytes, over {MAX_NAME - 1}"
            )
        name = _text(raw)
        if raw in seen:
            r.fail(f"tensor name '{name}' at offset {at} repeats that of tensor {seen[raw]}")
        seen[raw] = i
        (n_dims,) = r.unpack(_U32, f"the dimension count of tensor '{name}'")
        if n_dims > MAX_DIMS:
            r.fail(f"tensor '{name}' has {n_dims} dimensions, at most {MAX_DIMS} are allowed")
        ne = r.unpack(_DIMS[n_dims], f"the shape of tensor '{name}'") + (1,) * (MAX_DIMS - n_dims)
        if min(ne) < 0:
            r.fail(f"tensor '{name}' has a negative dimension: {ne}")
        n_elements = ne[0] * ne[1] * ne[2] * ne[3]
        if n_elements > INT64_MAX:
            r.fail(f"tensor '{name}' has shape {ne}: {n_elements} elements overflow int64")
        at = r.offset
        (ggml_type,) = r.unpack(_I32, f"the type of tensor '{name}'")
        traits = GGML_TYPES.get(ggml_type)
        if traits is None:
            known = "removed from" if 0 <= ggml_type < GGML_TYPE_COUNT else "unknown to"
            r.fail(f"tensor '{name}' at offset {at} has ggml type {ggml_type}, {known} ggml")
        type_name, block, type_size = traits
        if ne[0] % block:
            r.fail(f"tensor '{name}' ({type_name}) has rows of {ne[0]}, not a multiple of {block}")
        if n_elements // block > SIZE_MAX // type_size:
            r.fail(f"tensor '{name}' with shape {ne} ({type_name}) overflows a size in bytes")
        (offset,) = r.unpack(_U64, f"the data offset of tensor '{name}'")
        n_shape = MAX_DIMS
        while n_shape > 1 and ne[n_shape - 1] == 1:
            n_shape -= 1
        tensors.append((name, type_name, ne[:n_shape], offset, n_elements // block * type_size))
    return tensors
