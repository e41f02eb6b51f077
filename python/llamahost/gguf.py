"""GGUF files: metadata without loading weights, split models, and shard discovery.

A split ("sharded") model is a set of files ``<prefix>-00001-of-0000N.gguf`` …
``<prefix>-0000N-of-0000N.gguf``; each carries ``split.no`` and ``split.count``, and the
first carries all other metadata. :func:`model_paths` turns what a user passes (a file, a
first shard, or a list of shards) into the complete, ordered list of files, and refuses
anything that would load only part of a model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llamahost import _native
from llamahost.errors import ModelLoadError, ShardError

PathLike = str | os.PathLike[str]
SHARD_NAME = re.compile(r"^(?P<prefix>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


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
    raw = _native.read_gguf(os.fspath(path), max_array_length)
    tensors = tuple(
        TensorInfo(t["name"], t["type"], tuple(t["shape"]), t["offset"], t["size"])
        for t in raw["tensors"]
    )
    return GGUFInfo(
        path=raw["path"],
        version=raw["version"],
        alignment=raw["alignment"],
        data_offset=raw["data_offset"],
        metadata=dict(raw["metadata"]),
        tensors=tensors,
        omitted_arrays={k: tuple(v) for k, v in raw["omitted_arrays"].items()},
    )


def split_gguf(path: PathLike, out_prefix: PathLike, n_splits: int) -> list[str]:
    """Split a GGUF model into `n_splits` shards ``<out_prefix>-0000k-of-0000n.gguf``.

    Tensors are divided into contiguous groups of about equal size; llama.cpp loads the
    shards as one model from the first. Returns the shard paths in order.
    """
    return list(_native.split_gguf(os.fspath(path), os.fspath(out_prefix), int(n_splits)))


def merge_gguf(first_shard: PathLike, out_path: PathLike) -> str:
    """Merge every shard of a split model (found from its first shard) into one file."""
    return str(_native.merge_gguf(os.fspath(first_shard), os.fspath(out_path)))


def shard_paths_for(first_shard: PathLike, count: int) -> list[str]:
    """The file names of all `count` shards whose first is `first_shard`."""
    m = SHARD_NAME.match(os.fspath(first_shard))
    if m is None or int(m["no"]) != 1:
        raise ShardError(f"'{first_shard}' is not named like a first shard (*-00001-of-NNNNN.gguf)")
    return [f"{m['prefix']}-{k:05d}-of-{count:05d}.gguf" for k in range(1, count + 1)]


def model_paths(source: PathLike | Sequence[PathLike]) -> list[str]:
    """The complete, ordered list of files of the model at `source`.

    `source` is a single GGUF file, the first shard of a split model (its siblings are
    found by name), or an explicit list of all shards in any order. Raises ShardError
    when a shard is missing, duplicated, from another model, or when a later shard is
    given where the first is needed; ModelLoadError-family errors name the files.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        m = SHARD_NAME.match(path)
        if not Path(path).is_file():
            raise (ShardError if m else ModelLoadError)(f"no such model file: '{path}'")
        info = read_gguf(path, max_array_length=0)
        count = info.split_count
        if m is None and count <= 1:
            return [path]
        if m is None:
            raise ShardError(
                f"'{path}' is shard {info.split_no + 1} of {count} of a split model but is not "
                "named <prefix>-0000k-of-0000n.gguf; pass all shard paths as a list"
            )
        if int(m["no"]) != 1:
            raise ShardError(
                f"'{path}' is shard {int(m['no'])} of {int(m['count'])}; load the first shard "
                f"'{m['prefix']}-00001-of-{m['count']}.gguf' (it finds the others)"
            )
        count = count or int(m["count"])
        paths = shard_paths_for(path, count)
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            raise ShardError(
                f"split model '{path}' has {count} shards but {len(missing)} are missing: "
                + ", ".join(f"'{p}'" for p in missing)
            )
        return _checked_shards(paths)
    paths = [os.fspath(p) for p in source]
    if not paths:
        raise ShardError("an empty list of model files was given")
    if len(paths) == 1:
        return model_paths(paths[0])
    for p in paths:
        if not Path(p).is_file():
            raise ShardError(f"no such model file: '{p}'")
    return _checked_shards(paths)


def _checked_shards(paths: Sequence[str]) -> list[str]:
    """Order shards by split.no and check they are exactly 1..N of one model."""
    infos = [read_gguf(p, max_array_length=0) for p in paths]
    counts = {i.split_count for i in infos}
    if len(counts) != 1 or 0 in counts:
        described = ", ".join(f"'{i.path}' ({i.split_no + 1} of {i.split_count})" for i in infos)
        raise ShardError(f"these files are not shards of one split model: {described}")
    count = counts.pop()
    by_no: dict[int, GGUFInfo] = {}
    for info in infos:
        if info.split_no in by_no:
            raise ShardError(
                f"shard {info.split_no + 1} of {count} given twice: '{by_no[info.split_no].path}' "
                f"and '{info.path}'"
            )
        by_no[info.split_no] = info
    missing = [str(n + 1) for n in range(count) if n not in by_no]
    if missing:
        raise ShardError(
            f"the split model has {count} shards; missing shard number(s) {', '.join(missing)}"
        )
    return [by_no[n].path for n in range(count)]
