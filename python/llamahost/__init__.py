"""llamahost: run GGUF language models locally from Python.

import llamahost
model = llamahost.load("model.gguf")   # a file, a first shard, or a list of shards
print(model.generate("Hello", num_predict=32, temperature=0))
for chunk in model.chat([{"role": "user", "content": "hi"}], stream=True):
    print(chunk.message.content, end="")
"""

from __future__ import annotations

from llamahost import _native, errors  # noqa: F401  (_native: the extension, loaded first)
from llamahost._logging import install as _install_logging
from llamahost._logging import set_log_level
from llamahost.engine.model import Model
from llamahost.engine.options import Options
from llamahost.engine.responses import (
    ChatChunk,
    ChatResponse,
    GenerateChunk,
    GenerateResponse,
    Message,
    Metrics,
)
from llamahost.engine.session import GenerationRequest, Session
from llamahost.errors import *  # noqa: F403  (the exception classes are part of the API)
from llamahost.gguf import GGUFInfo, merge_gguf, model_paths, read_gguf, split_gguf
from llamahost.system import system_info

_install_logging()

load = Model.load

__version__ = "0.1.0"

__all__ = [
    "load",
    "Model",
    "Session",
    "Options",
    "GenerationRequest",
    "GenerateChunk",
    "GenerateResponse",
    "ChatChunk",
    "ChatResponse",
    "Message",
    "Metrics",
    "read_gguf",
    "split_gguf",
    "merge_gguf",
    "model_paths",
    "GGUFInfo",
    "system_info",
    "set_log_level",
    "errors",
    *errors.__all__,
]
