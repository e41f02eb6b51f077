"""llamahost: run GGUF language models locally from Python."""

from llamahost import errors
from llamahost import _native

__all__ = ["errors", "_native"]
