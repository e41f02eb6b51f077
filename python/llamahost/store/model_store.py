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
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llamahost.errors import ManifestError, ModelNotFoundError
from llamahost.store.blobs import BlobStore
from llamahost.store.digests import Digest
from llamahost.store.manifests import (
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
        if not self.manifests.has(model_name):
            raise ModelNotFoundError(
                f"model '{model_name.display_shortest()}' not found; pull or create it first"
            )
        entry = self.manifests.entry(model_name)
        manifest = entry.manifest
        resolved = ResolvedModel(
            name=model_name,
            manifest=manifest,
            digest=entry.digest,
            modified_at=datetime.fromtimestamp(entry.modified, tz=timezone.utc),
            model_paths=[
                self._blob_path(layer.digest) for layer in manifest.layers_of(MEDIA_TYPE_MODEL)
            ],
            adapter_paths=[
                self._blob_path(layer.digest) for layer in manifest.layers_of(MEDIA_TYPE_ADAPTER)
            ],
            projector_paths=[
                self._blob_path(layer.digest) for layer in manifest.layers_of(MEDIA_TYPE_PROJECTOR)
            ],
            config=self._config(manifest),
        )
        if not resolved.model_paths:
            raise ManifestError(f"model '{model_name}' has no model layer")
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
                    raise ManifestError(f"model '{model_name}': parameters are not an object")
                resolved.parameters = params
            elif layer.media_type == MEDIA_TYPE_MESSAGES:
                messages = self._json(layer.digest)
                if not isinstance(messages, list):
                    raise ManifestError(f"model '{model_name}': messages are not a list")
                resolved.messages = messages
        return resolved

    # ---- changing ---------------------------------------------------------------------
    def copy(self, source: str | ModelName, destination: str | ModelName) -> ModelName:
        """Give a stored model a second name (no blob is copied)."""
        src, dst = _name(source), _name(destination)
        if not self.manifests.has(src):
            raise ModelNotFoundError(f"model '{src.display_shortest()}' not found")
        self.manifests.write_bytes(dst, self.manifests.path(src).read_bytes())
        return dst

    def delete(self, name: str | ModelName) -> PruneReport:
        """Remove a model's name, then every blob no other model uses (as Ollama's rm)."""
        model_name = _name(name)
        if not self.manifests.has(model_name):
            raise ModelNotFoundError(f"model '{model_name.display_shortest()}' not found")
        self.manifests.delete(model_name)
        return self.prune()

    def prune(self) -> PruneReport:
        """Remove blobs that no manifest references (and stale partial downloads)."""
        return self.manifests.prune(self.blobs)

    # ---- running ----------------------------------------------------------------------
    def load(self, name: str | ModelName | ResolvedModel, **option_kwargs: Any) -> Any:
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
    def _blob_path(self, digest: Digest) -> Path:
        path = self.blobs.path(digest)
        if not path.is_file():
            raise ManifestError(f"blob {digest} is missing from {self.root / 'blobs'}")
        return path

    def _text(self, digest: Digest) -> str:
        path = self._blob_path(digest)
        if path.stat().st_size > MAX_TEXT_LAYER_BYTES:
            raise ManifestError(f"blob {digest} is too large for a text layer")
        return path.read_text(encoding="utf-8", errors="replace")

    def _json(self, digest: Digest) -> Any:
        try:
            return json.loads(self._text(digest))
        except ValueError as e:
            raise ManifestError(f"blob {digest} is not valid JSON: {e}") from None

    def _config(self, manifest: Manifest) -> dict[str, Any]:
        try:
            config = self._json(manifest.config.digest)
        except ManifestError:
            return {}
        return config if isinstance(config, dict) else {}


def _name(name: str | ModelName) -> ModelName:
    return name if isinstance(name, ModelName) else ModelName.parse(name)
