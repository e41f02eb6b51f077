"""GGUF files: metadata without loading weights, split models, and shard discovery.

Headers are read in pure Python (:mod:`llamahost.gguf_header`), so importing this module
and reading metadata never loads the native extension; only split and merge do.

A split ("sharded") model is a set of files ``<prefix>-00001-of-0000N.gguf`` …
``<prefix>-0000N-of-0000N.gguf``; each carries ``split.no`` and ``split.count``, and the
first carries all other metadata. :func:`model_paths` turns what a user passes (a file, a
first shard, or a list of shards) into the complete, ordered list of files, and refuses
anything that would load only part of a model.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from llamahost.errors import ModelLoadError, ShardError
from llamahost.gguf_header import GGUFInfo as GGUFInfo
from llamahost.gguf_header import TensorInfo as TensorInfo
from llamahost.gguf_header import read_gguf as read_gguf

PathLike = str | os.PathLike[str]
SHARD_NAME = re.compile(r"^(?P<prefix>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


def split_gguf(path: PathLike, out_prefix: PathLike, n_splits: int) -> list[str]:
    """Split a GGUF model into `n_splits` shards ``<out_prefix>-0000k-of-0000n.gguf``.

    Tensors are divided into contiguous groups of about equal size; llama.cpp loads the
    shards as one model from the first. Returns the shard paths in order.
    """
    from llamahost import _native

    return list(_native.split_gguf(os.fspath(path), os.fspath(out_prefix), int(n_splits)))


def merge_gguf(first_shard: PathLike, out_path: PathLike) -> str:
    """Merge every shard of a split model (found from its first shard) into one file."""
    from llamahost import _native

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


# ---- facts Ollama shows about a model (show, list, the config blob) -------------------
# llama.h's enum llama_ftype (llama-cpp-python 0.3.36) -> the name Ollama shows.
FILE_TYPE_NAMES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
    39: "NVFP4",
    40: "Q1_0",
    41: "Q2_0",
}
UNKNOWN_FILE_TYPE = "unknown"


def file_type_name(file_type: int) -> str:
    """Ollama's name of a llama_ftype value (``15`` -> ``Q4_K_M``), or ``unknown``."""
    return FILE_TYPE_NAMES.get(file_type, UNKNOWN_FILE_TYPE)


def human_parameter_count(count: int) -> str:
    """A parameter count as Ollama shows it: ``134515008`` -> ``134.52M``, ``2.8e9`` -> ``2.8B``."""
    if count >= 1_000_000_000:
        number = count / 1_000_000_000
        return f"{number:.0f}B" if number.is_integer() else f"{number:.1f}B"
    if count >= 1_000_000:
        number = count / 1_000_000
        return f"{number:.0f}M" if number.is_integer() else f"{number:.2f}M"
    if count >= 1_000:
        return f"{count / 1_000:.0f}K"
    return str(count)


def parameter_count(infos: Sequence[GGUFInfo]) -> int:
    """Weights in a model (all shards): general.parameter_count, else the tensors' elements."""
    declared = infos[0].metadata.get("general.parameter_count")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared > 0:
        return declared
    return sum(math.prod(t.shape) for info in infos for t in info.tensors)


def parameter_size(infos: Sequence[GGUFInfo]) -> str:
    """The size Ollama labels a model with: general.size_label (``135M``), else the count."""
    label = infos[0].metadata.get("general.size_label")
    if isinstance(label, str) and label.strip():
        return label.strip()
    return human_parameter_count(parameter_count(infos))


def quantization(infos: Sequence[GGUFInfo]) -> str:
    """The quantization name (``Q4_K_M``): general.file_type, else the tensor type holding
    most of the weight matrices' elements, else ``unknown``."""
    value = infos[0].metadata.get("general.file_type")
    if isinstance(value, int) and not isinstance(value, bool):
        return file_type_name(value)
    elements: Counter[str] = Counter()
    for info in infos:
        for tensor in info.tensors:
            if len(tensor.shape) >= 2:
                elements[tensor.type.upper()] += math.prod(tensor.shape)
    if not elements:
        return UNKNOWN_FILE_TYPE
    guess = elements.most_common(1)[0][0]
    return guess if guess in FILE_TYPE_NAMES.values() else UNKNOWN_FILE_TYPE
