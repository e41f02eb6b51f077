"""ModelStore: the model store as users see it (list, show, copy, remove, run).

It ties together the manifests (one per model name) and the content-addressed blobs, in
Ollama's layout, so an existing Ollama models folder works as it is::

    <root>/                                   LLAMAHOST_MODELS, default ~/.llamahost/models
      manifests/<host>/<namespace>/<model>/<tag>
      blobs/sha256-<64 hex>

A stored model is a manifest whose layers are typed blobs: the GGUF weights (one layer per
shard of a split model, in order), LoRA adapters, a Go TEMPLATE, a SYSTEM prompt, a JSON
object of parameters, a JSON list of MESSAGEs, LICENSE texts; and a JSON config blob with
the model's family, size and quantization. :meth:`ModelStore.resolve` turns a name into
all of that, ready for :meth:`ModelStore.load`.

Concurrent processes: create and pull hold the blobs they use in a lease until their
manifest is published, copy holds the store lock shared, and ``delete``/``prune`` collect
garbage under the exclusive store lock, sparing leased blobs (see locking.py). A model that
``list`` shows therefore has all its blobs, whatever runs at the same time.

Error messages name models and digests but not the store's folder, so they can be passed
to a client as they are; the caller adds ``store.root`` where it helps.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llamahost.errors import ManifestError, ModelNotFoundError
from llamahost.store.blobs import BlobStore
from llamahost.store.digests import Digest
from llamahost.store.limits import loads_bounded
from llamahost.store.locking import Lease, StoreLock
from llamahost.store.manifests import (
    DEFAULT_PARTIAL_MAX_AGE_S,
    MEDIA_TYPE_ADAPTER,
    MEDIA_TYPE_LICENSE,
    MEDIA_TYPE_MESSAGES,
    MEDIA_TYPE_MODEL,
    MEDIA_TYPE_PARAMS,
    MEDIA_TYPE_PROJECTOR,
    MEDIA_TYPE_SYSTEM,
    MEDIA_TYPE_TEMPLATE,
    Manifest,
    ManifestProblem,
    ManifestStore,
    PruneReport,
)
from llamahost.store.names import ModelName

if TYPE_CHECKING:
    from llamahost.engine.model import Model

MAX_TEXT_LAYER_BYTES = 16 << 20  # templates, system prompts, params: never this large


def default_root() -> Path:
    """``$LLAMAHOST_MODELS``, else ``~/.llamahost/models``."""
    configured = os.environ.get("LLAMAHOST_MODELS")
    return Path(configured).expanduser() if configured else Path.home() / ".llamahost" / "models"


@dataclass(frozen=True)
class ModelDetails:
    """Ollama's ``details`` of a model, read from its config blob."""

    format: str = ""
    family: str = ""
    families: tuple[str, ...] = ()
    parameter_size: str = ""
    quantization_level: str = ""
    parent_model: str = ""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelDetails:
        families = config.get("model_families") or (
            [config["model_family"]] if config.get("model_family") else []
        )
        return cls(
            format=str(config.get("model_format", "")),
            family=str(config.get("model_family", "")),
            families=tuple(str(f) for f in families),
            parameter_size=str(config.get("model_type", "")),
            quantization_level=str(config.get("file_type", "")),
            parent_model=str(config.get("parent_model", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "parent_model": self.parent_model,
            "format": self.format,
            "family": self.family,
            "families": list(self.families) or None,
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }


@dataclass(frozen=True)
class LocalModel:
    """One line of ``list``: a stored model's name, manifest digest, size and age."""

    name: ModelName
    digest: Digest
    size: int
    modified_at: datetime
    details: ModelDetails


@dataclass
class ResolvedModel:
    """Everything needed to run a stored model, read from its manifest's layers."""

    name: ModelName
    manifest: Manifest
    digest: Digest
    modified_at: datetime
    model_paths: list[Path]
    adapter_paths: list[Path] = field(default_factory=list)
    projector_paths: list[Path] = field(default_factory=list)
    template: str | None = None
    system: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def details(self) -> ModelDetails:
        return ModelDetails.from_config(self.config)

    @property
    def size(self) -> int:
        return self.manifest.total_size()


class ModelStore:
    """The store at `root` (see the module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.blobs = BlobStore(self.root)
        self.manifests = ManifestStore(self.root)
        self.lock = StoreLock(self.root)

    def lease(self) -> Lease:
        """A lease on blobs for a create or pull: ``with store.lease() as lease: ...``."""
        return Lease(self.root)

    def root_problem(self, *, writable: bool) -> str | None:
        """What keeps the store folder from being used, in words without its path; or None.

        With ``writable`` the folder (and ``blobs/``, ``manifests/``) is created if missing
        and a file is written and removed in it; else it only has to be a folder, or absent.
        """
        if self.root.exists() and not self.root.is_dir():
            return "it is not a folder"
        if not writable:
            return None
        try:
            for folder in (self.blobs.blobs_dir, self.manifests.manifests_dir):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"the folder could not be created: {exc.strerror or exc}"
        probe = self.blobs.blobs_dir / f".write-test-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(fd)
        except OSError as exc:
            return f"the folder is not writable: {exc.strerror or exc}"
        finally:
            with contextlib.suppress(OSError):
                os.unlink(probe)
        return None

    # ---- reading ----------------------------------------------------------------------
    def list(self) -> tuple[list[LocalModel], list[ManifestProblem]]:
        """Every readable model (newest first) and the manifest files that were skipped."""
        listing = self.manifests.list()
        models = [
            LocalModel(
                name=entry.name,
                digest=entry.digest,
                size=entry.size,
                modified_at=datetime.fromtimestamp(entry.modified, tz=timezone.utc),
                details=ModelDetails.from_config(self._config(entry.manifest)),
            )
            for entry in listing.entries
        ]
        models.sort(key=lambda m: m.modified_at, reverse=True)
        return models, list(listing.problems)

    def has(self, name: str | ModelName) -> bool:
        return self.manifests.has(_name(name))

    def resolve(self, name: str | ModelName) -> ResolvedModel:
        """The stored model `name`; ModelNotFoundError if there is none."""
        model_name = _name(name)
        shown = model_name.display_shortest()
        if not self.manifests.has(model_name):
            raise ModelNotFoundError(f"model '{shown}' not found; pull or create it first")
        entry = self.manifests.entry(model_name)
        manifest = entry.manifest
        for digest in manifest.digests():
            if not self.blobs.has(digest):
                raise ManifestError(
                    f"model '{shown}' is incomplete: its blob {digest} is missing from the "
                    f"store; pull or create '{shown}' again"
                )
        resolved = ResolvedModel(
            name=model_name,
            manifest=manifest,
            digest=entry.digest,
            modified_at=datetime.fromtimestamp(entry.modified, tz=timezone.utc),
            model_paths=[self.blobs.path(x.digest) for x in manifest.layers_of(MEDIA_TYPE_MODEL)],
            adapter_paths=[
                self.blobs.path(x.digest) for x in manifest.layers_of(MEDIA_TYPE_ADAPTER)
            ],
            projector_paths=[
                self.blobs.path(x.digest) for x in manifest.layers_of(MEDIA_TYPE_PROJECTOR)
            ],
            config=self._config(manifest),
        )
        if not resolved.model_paths:
            raise ManifestError(f"model '{shown}' has no model layer")
        for layer in manifest.layers:
            if layer.media_type == MEDIA_TYPE_TEMPLATE:
                resolved.template = self._text(layer.digest)
            elif layer.media_type == MEDIA_TYPE_SYSTEM:
                resolved.system = self._text(layer.digest)
            elif layer.media_type == MEDIA_TYPE_LICENSE:
                resolved.licenses.append(self._text(layer.digest))
            elif layer.media_type == MEDIA_TYPE_PARAMS:
                params = self._json(layer.digest)
                if not isinstance(params, dict):
                    raise ManifestError(f"model '{shown}': parameters are not an object")
                resolved.parameters = params
            elif layer.media_type == MEDIA_TYPE_MESSAGES:
                messages = self._json(layer.digest)
                if not isinstance(messages, list):
                    raise ManifestError(f"model '{shown}': messages are not a list")
                resolved.messages = messages
        return resolved

    # ---- changing ---------------------------------------------------------------------
    def copy(self, source: str | ModelName, destination: str | ModelName) -> ModelName:
        """Give a stored model a second name (no blob is copied).

        Read and write happen under the shared store lock, so a concurrent ``rm`` of the
        source cannot collect its blobs in between.
        """
        src, dst = _name(source), _name(destination)
        with self.lock.shared():
            if not self.manifests.has(src):
                raise ModelNotFoundError(f"model '{src.display_shortest()}' not found")
            self.manifests.write_bytes(dst, self.manifests.read_bytes(src))
        return dst

    def delete(self, name: str | ModelName) -> PruneReport:
        """Remove a model's name, then every blob no other model uses (as Ollama's rm).

        Partial downloads are kept for a day (DEFAULT_PARTIAL_MAX_AGE_S), so removing one
        model does not throw away another's interrupted pull.
        """
        model_name = _name(name)
        if not self.manifests.has(model_name):
            raise ModelNotFoundError(f"model '{model_name.display_shortest()}' not found")
        self.manifests.delete(model_name)
        return self.prune(partial_max_age_s=DEFAULT_PARTIAL_MAX_AGE_S)

    def prune(self, *, partial_max_age_s: float = 0.0) -> PruneReport:
        """Remove blobs no manifest references, and leftovers of killed processes.

        Leftovers: partial downloads and writes at least ``partial_max_age_s`` old (by
        default all) that no live process is writing, and ``.pypi-*`` scratch folders of
        ``pypi:`` pulls that are no longer running. Blobs that a create or pull in progress
        holds are kept (see locking.py).
        """
        return self.manifests.prune(self.blobs, partial_max_age_s=partial_max_age_s)

    # ---- running ----------------------------------------------------------------------
    def load(self, name: str | ModelName | ResolvedModel, **option_kwargs: Any) -> Model:
        """Load a stored model into a :class:`llamahost.Model` with its Modelfile settings.

        `name` may also be a model already resolved with :meth:`resolve`. The model's
        PARAMETERs are the defaults; `option_kwargs` override them.
        """
        from llamahost.engine.model import Model  # the engine sits above the store

        resolved = name if isinstance(name, ResolvedModel) else self.resolve(name)
        return Model.load(
            [str(p) for p in resolved.model_paths],
            options=resolved.parameters,
            template=resolved.template,
            system=resolved.system,
            messages=resolved.messages,
            adapters=[str(p) for p in resolved.adapter_paths],
            **option_kwargs,
        )

    # ---- helpers ----------------------------------------------------------------------
    def _text(self, digest: Digest) -> str:
        try:
            with self.blobs.open(digest) as stream:
                data = stream.read(MAX_TEXT_LAYER_BYTES + 1)
        except FileNotFoundError:
            raise ManifestError(f"blob {digest} is missing from the store") from None
        if len(data) > MAX_TEXT_LAYER_BYTES:
            raise ManifestError(f"blob {digest} is too large for a text layer")
        return data.decode("utf-8", errors="replace")

    def _json(self, digest: Digest) -> Any:
        try:
            return loads_bounded(self._text(digest))
        except ValueError as e:  # a syntax error, or nested too deep
            raise ManifestError(f"blob {digest} is not valid JSON: {e}") from None

    def _config(self, manifest: Manifest) -> dict[str, Any]:
        try:
            config = self._json(manifest.config.digest)
        except ManifestError:
            return {}
        return config if isinstance(config, dict) else {}


def _name(name: str | ModelName) -> ModelName:
    return name if isinstance(name, ModelName) else ModelName.parse(name)
