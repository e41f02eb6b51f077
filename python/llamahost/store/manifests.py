"""Manifests: the JSON file per model name that lists the model's blobs.

A manifest lives at ``<root>/manifests/<host>/<namespace>/<model>/<tag>`` and has the
Docker image manifest v2 shape Ollama uses; Ollama writes it compact, in this key order,
with a trailing newline::

    {"schemaVersion":2,
     "mediaType":"application/vnd.docker.distribution.manifest.v2+json",
     "config":{"mediaType":"application/vnd.docker.container.image.v1+json",
               "digest":"sha256:<hex>","size":483},
     "layers":[{"mediaType":"application/vnd.ollama.image.model",
                "digest":"sha256:<hex>","size":1678447520},
               {"mediaType":"application/vnd.ollama.image.template",
                "digest":"sha256:<hex>","size":136,"from":"<optional source>"}]}

The manifest's own digest (the ID ``ollama list`` prints) is the SHA-256 of the file's
bytes. Manifests are replaced atomically (temp file, fsync, rename, fsync directory), so a
write cut in the middle leaves the previous manifest intact.

Reading is bounded: a manifest over :data:`~llamahost.store.limits.MAX_MANIFEST_BYTES` or
nested deeper than :data:`~llamahost.store.limits.MAX_JSON_DEPTH` is a ManifestError like
any other damage, so ``list`` skips it with a warning and ``rm``/``prune`` keep working.

Not supported: Ollama's manifest lists (``application/vnd.ollama.manifest.list.v2+json``)
and its newer ``manifests-v2`` directory; ``prune`` refuses to remove blobs while such a
directory exists, since it cannot see which blobs those manifests need.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from llamahost.errors import (
    BlobNotFoundError,
    InvalidDigestError,
    InvalidNameError,
    ManifestError,
    ManifestNotFoundError,
)
from llamahost.store.blobs import BlobStore, FsHooks
from llamahost.store.digests import Digest
from llamahost.store.limits import MAX_MANIFEST_BYTES, loads_bounded, read_bounded
from llamahost.store.locking import (
    LOCKS_AVAILABLE,
    StoreLock,
    claim_if_abandoned,
    leased_digests,
    lock_fd_exclusive,
    remove_abandoned_scratch,
)
from llamahost.store.names import ModelName

logger = logging.getLogger("llamahost.store")

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
MANIFEST_LIST_MEDIA_TYPE = "application/vnd.ollama.manifest.list.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"

MEDIA_TYPE_MODEL = "application/vnd.ollama.image.model"
MEDIA_TYPE_TEMPLATE = "application/vnd.ollama.image.template"
MEDIA_TYPE_SYSTEM = "application/vnd.ollama.image.system"
MEDIA_TYPE_PARAMS = "application/vnd.ollama.image.params"
MEDIA_TYPE_LICENSE = "application/vnd.ollama.image.license"
MEDIA_TYPE_ADAPTER = "application/vnd.ollama.image.adapter"
MEDIA_TYPE_MESSAGES = "application/vnd.ollama.image.messages"
MEDIA_TYPE_PROJECTOR = "application/vnd.ollama.image.projector"

DEFAULT_PARTIAL_MAX_AGE_S = 24 * 3600.0
"""How old a ``.partial`` or manifest temp file must be before ``prune`` removes it."""

_TEMP_SUFFIX = ".tmp"
# Aliases for annotations inside ManifestStore, whose `list` method shadows the builtin.
_DirEntries = list[os.DirEntry[str]]
_PathSizes = list[tuple[Path, int]]
_MENTIONED_DIGEST = re.compile(rb"sha256[:-]([0-9a-fA-F]{64})")
_MAX_SCANNED_BYTES = 16 << 20
# Go's encoding/json escapes these inside strings; doing the same keeps bytes identical.
_GO_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
_GO_JSON_ESCAPES.update({"\u2028": "\\u2028", "\u2029": "\\u2029"})
_GO_JSON_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def _go_json(value: object) -> str:
    """Compact JSON as Go's ``json.Marshal`` writes it (UTF-8, HTML characters escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return _GO_JSON_ESCAPE_RE.sub(lambda m: _GO_JSON_ESCAPES[m.group()], text)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Layer:
    """One blob of a model: its media type, digest and size, and optionally where it came from.

    ``digest`` may be given as a string; it is parsed into a :class:`Digest`.
    """

    media_type: str
    digest: Digest
    size: int
    from_: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.media_type, str) or not self.media_type:
            raise ManifestError(f"`mediaType` must be a non-empty string, got {self.media_type!r}")
        if isinstance(self.digest, str):
            try:
                object.__setattr__(self, "digest", Digest.parse(self.digest))
            except InvalidDigestError as exc:
                raise ManifestError(f"`digest`: {exc}") from exc
        elif not isinstance(self.digest, Digest):
            raise ManifestError(f"`digest` must be a digest string, got {self.digest!r}")
        if not _is_int(self.size) or self.size < 0:
            raise ManifestError(f"`size` must be a non-negative integer, got {self.size!r}")
        if self.from_ is not None and not isinstance(self.from_, str):
            raise ManifestError(f"`from` must be a string, got {self.from_!r}")

    def to_dict(self) -> dict[str, object]:
        """The JSON object Ollama writes: ``mediaType``, ``digest``, ``size``[, ``from``]."""
        data: dict[str, object] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.from_:
            data["from"] = self.from_
        return data

    @classmethod
    def from_dict(cls, data: object, where: str = "layer") -> Layer:
        """Read a layer object; ManifestError names the field (``where`` prefixes it)."""
        if not isinstance(data, dict):
            raise ManifestError(f"{where} must be a JSON object, got {type(data).__name__}")
        try:
            return cls(
                media_type=data.get("mediaType"),  # type: ignore[arg-type]
                digest=data.get("digest"),  # type: ignore[arg-type]
                size=data.get("size"),  # type: ignore[arg-type]
                from_=data.get("from") or None,
            )
        except ManifestError as exc:
            raise ManifestError(f"{where}: {exc}") from exc


@dataclass(frozen=True)
class Manifest:
    """A model's manifest: a config blob and the layers (model, template, params, ...)."""

    config: Layer
    layers: tuple[Layer, ...] = ()
    schema_version: int = 2
    media_type: str = MANIFEST_MEDIA_TYPE

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not isinstance(self.config, Layer):
            raise ManifestError(f"`config` must be a Layer, got {type(self.config).__name__}")
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ManifestError(f"`layers[{index}]` must be a Layer, got {layer!r}")
        if self.schema_version != 2 or not _is_int(self.schema_version):
            raise ManifestError(f"`schemaVersion` must be 2, got {self.schema_version!r}")
        if self.media_type == MANIFEST_LIST_MEDIA_TYPE:
            raise ManifestError(f"manifest lists ({MANIFEST_LIST_MEDIA_TYPE}) are not supported")
        if self.media_type not in (MANIFEST_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE):
            raise ManifestError(
                f"`mediaType` must be {MANIFEST_MEDIA_TYPE!r} or {OCI_MANIFEST_MEDIA_TYPE!r}, "
                f"got {self.media_type!r}"
            )

    def to_json(self) -> bytes:
        """The manifest as Ollama writes it: compact JSON in Ollama's key order, then ``\\n``."""
        data = {
            "schemaVersion": self.schema_version,
            "mediaType": self.media_type,
            "config": self.config.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
        }
        return (_go_json(data) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str) -> Manifest:
        """Parse manifest JSON; ManifestError names the first bad field.

        Fields Ollama has added since (``runner``, ``format``, a layer's ``name``) are
        ignored; ``"layers": null`` (Go's empty slice) reads as no layers. Input over
        MAX_MANIFEST_BYTES or nested deeper than MAX_JSON_DEPTH is refused unparsed.
        """
        try:
            raw = loads_bounded(data, max_bytes=MAX_MANIFEST_BYTES)
        except ValueError as exc:  # JSONLimitError, JSONDecodeError, UnicodeDecodeError
            raise ManifestError(f"manifest is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ManifestError(f"manifest must be a JSON object, got {type(raw).__name__}")
        layers = raw.get("layers")
        if layers is None:
            layers = []
        if not isinstance(layers, list):
            raise ManifestError(f"`layers` must be a list, got {type(layers).__name__}")
        if raw.get("mediaType") == MANIFEST_LIST_MEDIA_TYPE:
            raise ManifestError(f"manifest lists ({MANIFEST_LIST_MEDIA_TYPE}) are not supported")
        if "config" not in raw:
            raise ManifestError("manifest has no `config`")
        return cls(
            config=Layer.from_dict(raw["config"], "`config`"),
            layers=tuple(
                Layer.from_dict(layer, f"`layers[{index}]`") for index, layer in enumerate(layers)
            ),
            schema_version=raw.get("schemaVersion"),  # type: ignore[arg-type]
            media_type=raw.get("mediaType"),  # type: ignore[arg-type]
        )

    def digests(self) -> list[Digest]:
        """The config's and layers' digests, each once, config first."""
        return list(dict.fromkeys([self.config.digest, *(layer.digest for layer in self.layers)]))

    def total_size(self) -> int:
        """Config plus layer sizes, the size ``ollama list`` shows."""
        return self.config.size + sum(layer.size for layer in self.layers)

    def layers_of(self, media_type: str) -> tuple[Layer, ...]:
        """The layers with ``media_type``, in order."""
        return tuple(layer for layer in self.layers if layer.media_type == media_type)


@dataclass(frozen=True)
class ManifestEntry:
    """A stored manifest with what a listing needs: its name, file, mtime and digest."""

    name: ModelName
    manifest: Manifest
    path: Path
    modified: float
    """The file's modification time, seconds since the epoch."""
    digest: Digest
    """SHA-256 of the manifest file's bytes."""

    @property
    def size(self) -> int:
        """The model's total size in bytes (see :meth:`Manifest.total_size`)."""
        return self.manifest.total_size()


@dataclass(frozen=True)
class ManifestProblem:
    """A file under ``manifests/`` that was skipped, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class ManifestListing:
    """The readable manifests (iterate over it) and the files that were skipped."""

    entries: tuple[ManifestEntry, ...]
    problems: tuple[ManifestProblem, ...]

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class PruneReport:
    """What :meth:`ManifestStore.prune` removed, and the manifests it could not read.

    ``freed_bytes`` counts everything removed: blobs, partial and temp files, scratch
    folders; ``blob_bytes`` the blobs alone.
    """

    blobs: tuple[Digest, ...]
    partials: tuple[Path, ...]
    freed_bytes: int
    problems: tuple[ManifestProblem, ...] = ()
    scratch_dirs: tuple[Path, ...] = ()
    """``.pypi-*`` download folders that a killed ``pypi:`` pull left in the store root."""
    blob_bytes: int = 0


class ManifestStore:
    """Manifests under ``root/manifests``, one file per model name.

    Names are matched case-insensitively: if ``Llama3`` is stored, ``llama3`` reads,
    overwrites and deletes that same file, as in Ollama. ``fs_hooks`` replaces the
    file-system calls of writes (see FsHooks); ``clock`` gives "now" to :meth:`prune`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        fs_hooks: FsHooks | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root)
        self.manifests_dir = self.root / "manifests"
        self.fs_hooks = fs_hooks if fs_hooks is not None else FsHooks()
        self._clock = clock

    # -- finding files ------------------------------------------------------------------

    def path(self, name: ModelName) -> Path:
        """The manifest file of ``name``: the stored one (any case), else the canonical one."""
        return self._existing_path(name) or name.manifest_path(self.root)

    def has(self, name: ModelName) -> bool:
        """Whether a manifest for ``name`` is stored."""
        return self._existing_path(name) is not None

    def _existing_path(self, name: ModelName) -> Path | None:
        exact = name.manifest_path(self.root)
        if exact.is_file():
            return exact
        directory = self.manifests_dir
        for part in (name.host, name.namespace, name.model, name.tag):
            match = self._child_folded(directory, part)
            if match is None:
                return None
            directory = match
        return directory if directory.is_file() else None

    @staticmethod
    def _child_folded(directory: Path, part: str) -> Path | None:
        """The entry of ``directory`` named ``part`` ignoring case (first in sort order)."""
        if (directory / part).exists():
            return directory / part
        try:
            names = sorted(os.listdir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return None
        folded = part.lower()
        return next((directory / n for n in names if n.lower() == folded), None)

    # -- reading ------------------------------------------------------------------------

    def read(self, name: ModelName) -> Manifest:
        """The manifest of ``name``; ManifestNotFoundError or ManifestError (corrupt)."""
        return self.entry(name).manifest

    def entry(self, name: ModelName) -> ManifestEntry:
        """The manifest of ``name`` with its path, mtime and digest."""
        path = self._existing_path(name)
        if path is None:
            raise ManifestNotFoundError(f"model {name.display_shortest()!r} not found")
        return self._load(name, path)[1]

    @staticmethod
    def _load(name: ModelName, path: Path) -> tuple[bytes, ManifestEntry]:
        """One manifest file's bytes and their parse. Messages name the model, not the path
        (the caller knows it), so they can be shown to a client without revealing the store."""
        shown = name.display_shortest()
        try:
            data, modified = read_bounded(path, MAX_MANIFEST_BYTES)
        except FileNotFoundError as exc:
            raise ManifestNotFoundError(f"model {shown!r} not found") from exc
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ManifestError(f"the manifest of {shown!r} could not be read: {reason}") from exc
        except ValueError as exc:  # over the size limit
            raise ManifestError(f"the manifest of {shown!r} is invalid: {exc}") from exc
        try:
            manifest = Manifest.from_json(data)
        except ManifestError as exc:
            raise ManifestError(f"the manifest of {shown!r} is invalid: {exc}") from exc
        return data, ManifestEntry(name, manifest, path, modified, Digest.of_bytes(data))

    def read_bytes(self, name: ModelName) -> bytes:
        """The exact bytes of ``name``'s manifest (checked to parse, at most
        MAX_MANIFEST_BYTES); ManifestNotFoundError or ManifestError."""
        path = self._existing_path(name)
        if path is None:
            raise ManifestNotFoundError(f"model {name.display_shortest()!r} not found")
        return self._load(name, path)[0]

    def list(self) -> ManifestListing:
        """Every readable manifest, sorted by path; unreadable ones are skipped and reported.

        Each skipped file is logged as a warning on the ``llamahost.store`` logger and
        returned in ``problems`` with the reason.
        """
        entries: list[ManifestEntry] = []
        problems: list[ManifestProblem] = []
        for parts, path in self._manifest_files():
            try:
                name = ModelName(*parts)
                entries.append(self._load(name, path)[1])
            except ManifestNotFoundError:
                continue  # deleted while we were listing
            except (InvalidNameError, ManifestError) as exc:
                problems.append(ManifestProblem(path, str(exc)))
                logger.warning("skipping manifest %s: %s", path, exc)
        return ManifestListing(tuple(entries), tuple(problems))

    def _manifest_files(self) -> Iterator[tuple[tuple[str, str, str, str], Path]]:
        """(host, namespace, model, tag) and path of each file four levels down."""

        def subdirs(directory: Path) -> Iterator[tuple[str, Path]]:
            for entry in self._scan(directory):
                if entry.is_dir():
                    yield entry.name, Path(entry.path)

        for host, host_dir in subdirs(self.manifests_dir):
            for namespace, ns_dir in subdirs(host_dir):
                for model, model_dir in subdirs(ns_dir):
                    for entry in self._scan(model_dir):
                        if entry.is_file() and not entry.name.startswith("."):
                            yield (host, namespace, model, entry.name), Path(entry.path)

    @staticmethod
    def _scan(directory: Path) -> _DirEntries:
        try:
            with os.scandir(directory) as entries:
                return sorted(entries, key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def referenced_digests(self) -> set[Digest]:
        """Every config and layer digest named by a readable manifest."""
        return {digest for entry in self.list() for digest in entry.manifest.digests()}

    # -- writing ------------------------------------------------------------------------

    def write(self, name: ModelName, manifest: Manifest) -> Digest:
        """Store ``manifest`` for ``name`` atomically; return the digest of its bytes."""
        return self._write_atomically(self.path(name), manifest.to_json())

    def write_bytes(self, name: ModelName, data: bytes) -> Digest:
        """Store manifest bytes as they are (e.g. from a registry, keeping its digest).

        The bytes must parse as a manifest (ManifestError otherwise).
        """
        Manifest.from_json(data)
        return self._write_atomically(self.path(name), bytes(data))

    def _write_atomically(self, path: Path, data: bytes) -> Digest:
        fs = self.fs_hooks
        temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}{_TEMP_SUFFIX}")
        fd = self._create_temp(temp)
        try:
            try:
                fs.write(fd, data)
                fs.fsync(fd)
                if not LOCKS_AVAILABLE:  # Windows cannot rename an open file
                    fs.close(fd)
                    fd = -1
                fs.rename(temp, path)  # still flock'ed: a collection leaves it alone
            finally:
                if fd >= 0:
                    fs.close(fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        fs.fsync_dir(path.parent)
        return Digest.of_bytes(data)

    def _create_temp(self, temp: Path) -> int:
        """Create and flock ``temp`` (under the shared store lock, see locking.py).

        An ``rm`` in another process may remove the folder just made for it (it removes
        folders it empties): then the folder is made again, a few times.
        """
        for attempt in range(3):
            temp.parent.mkdir(parents=True, exist_ok=True)
            try:
                with StoreLock(self.root).shared():
                    fd = self.fs_hooks.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                    try:
                        lock_fd_exclusive(fd)
                    except BaseException:
                        self.fs_hooks.close(fd)
                        os.unlink(temp)
                        raise
                    return fd
            except FileNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def delete(self, name: ModelName) -> None:
        """Remove the manifest of ``name`` and the directories it leaves empty."""
        path = self._existing_path(name)
        if path is None:
            raise ManifestNotFoundError(f"model {name.display_shortest()!r} not found")
        try:
            os.unlink(path)
        except FileNotFoundError as exc:
            raise ManifestNotFoundError(f"model {name.display_shortest()!r} not found") from exc
        self._remove_empty_dirs(path.parent)

    def _remove_empty_dirs(self, directory: Path) -> None:
        base = self.manifests_dir
        while directory != base and base in directory.parents:
            try:
                directory.rmdir()
            except OSError:  # not empty (or gone): stop climbing
                return
            directory = directory.parent

    # -- pruning ------------------------------------------------------------------------

    def prune(
        self,
        blob_store: BlobStore,
        *,
        partial_max_age_s: float = DEFAULT_PARTIAL_MAX_AGE_S,
        now: float | None = None,
    ) -> PruneReport:
        """Remove blobs no manifest references, and stale partial, temp and scratch files.

        Runs under the exclusive store lock (see locking.py). Blobs that a create or pull
        in progress holds in a lease are kept, and so is every ``sha256`` digest that a
        manifest which cannot be parsed mentions, so a damaged manifest never costs its
        blobs. Partial files that no live process writes, and manifest temp files, are
        removed once ``partial_max_age_s`` old (by ``now``, default the store's clock);
        ``.pypi-*`` scratch folders as soon as their owner is gone. With a ``manifests-v2``
        directory present, no blob is removed.
        """
        with StoreLock(self.root).exclusive():
            return self._prune_locked(blob_store, partial_max_age_s, now)

    def _prune_locked(
        self, blob_store: BlobStore, partial_max_age_s: float, now: float | None
    ) -> PruneReport:
        now = self._clock() if now is None else now
        keep = leased_digests(self.root)  # leases first, then manifests: see locking.py
        listing = self.list()
        problems = list(listing.problems)
        keep.update(digest for entry in listing for digest in entry.manifest.digests())
        for problem in listing.problems:
            keep.update(_digests_mentioned(problem.path))

        removed: list[Digest] = []
        freed = 0
        newer_layout = self.root / "manifests-v2"
        if newer_layout.exists():
            reason = "a newer Ollama's manifests-v2 directory exists; no blob was removed"
            problems.append(ManifestProblem(newer_layout, reason))
            logger.warning("not pruning blobs in %s: %s", blob_store.blobs_dir, reason)
        else:
            for digest in list(blob_store.iter_digests()):
                if digest in keep:
                    continue
                try:
                    size = blob_store.size(digest)
                except BlobNotFoundError:
                    continue
                if blob_store.delete(digest):
                    removed.append(digest)
                    freed += size

        partials = blob_store.remove_stale_partials(partial_max_age_s, now=now)
        partials.extend(self._prune_temp_files(partial_max_age_s, now))
        scratch = remove_abandoned_scratch(self.root)
        return PruneReport(
            blobs=tuple(removed),
            partials=tuple(path for path, _ in partials),
            freed_bytes=freed + sum(size for _, size in (*partials, *scratch)),
            problems=tuple(problems),
            scratch_dirs=tuple(path for path, _ in scratch),
            blob_bytes=freed,
        )

    def _prune_temp_files(self, max_age_s: float, now: float) -> _PathSizes:
        """Remove manifest temp files that a cut write left behind; (path, size) of each."""
        removed: _PathSizes = []
        for directory, _, files in os.walk(self.manifests_dir):
            for file_name in files:
                if not (file_name.startswith(".") and file_name.endswith(_TEMP_SUFFIX)):
                    continue
                path = Path(directory) / file_name
                try:
                    stat_result = os.stat(path)
                except FileNotFoundError:
                    continue
                if now - stat_result.st_mtime < max_age_s:
                    continue
                with claim_if_abandoned(path, min_age_s=max_age_s) as abandoned:
                    if abandoned:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(path)
                            removed.append((path, stat_result.st_size))
        return removed


def _digests_mentioned(path: Path) -> set[Digest]:
    """Every ``sha256:<hex>`` / ``sha256-<hex>`` written anywhere in the file at ``path``."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(_MAX_SCANNED_BYTES)
    except OSError:
        return set()
    return {
        Digest(match.group(1).decode("ascii").lower()) for match in _MENTIONED_DIGEST.finditer(data)
    }
