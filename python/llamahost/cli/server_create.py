"""``llamahost create`` through a server: share its store, or upload the files.

A Modelfile names local files (``FROM ./model.gguf``, ``ADAPTER ./lora.gguf``) that the
server must store. Two cases:

- **The server uses this store** (same machine, same ``LLAMAHOST_MODELS``): the model is
  created in this process, exactly as without a server, so a local GGUF is hard-linked into
  the store and never copied or uploaded; the server reads the new manifest from disk on
  its next request. :func:`shares_store` finds this out without knowing where the server's
  store is (it never says: its answers carry no store path): it writes a small random blob
  into this process's store and asks the server whether it has that blob
  (``HEAD /api/blobs/<digest>``), then deletes it. Only a server reading the same folder
  can answer yes. When this store's ``blobs`` folder does not exist yet, the stores are
  taken to differ (nothing is written).
- **Any other server** (another machine, another store, another user's): as Ollama's CLI
  does, each file is hashed, uploaded with ``POST /api/blobs/<digest>`` unless the server
  already has it (``HEAD``), then ``POST /api/create`` names the blobs (``files``,
  ``adapters``) with the Modelfile's ``from``, ``template``, ``system``, ``parameters``,
  ``messages``, ``license`` and ``requires``.

Both ways print the same progress lines: the files are checked here first (the same
checks and errors as in-process, with the Modelfile's line numbers), the upload is shown as
``copying file sha256:...`` (what an import prints in-process), and the server's own
``parsing modelfile``/``gathering model components`` and ``using existing layer`` lines for
the uploaded files, repeats of what was already shown, are left out.
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamahost.cli.client import Client, Progress, ProgressCallback
from llamahost.cli.progress import ProgressPrinter
from llamahost.errors import LlamahostError, ModelfileError

# The Modelfile checks (and file hashing) of an in-process create, reused so both ways agree.
from llamahost.modelfile.create import (
    _check_template,
    _checked_adapter,
    _commands,
    _files_base,
    _hash_file,
    _local_path,
    _looks_like_path,
)
from llamahost.modelfile.parser import Modelfile
from llamahost.store.model_store import ModelStore
from llamahost.store.names import ModelName, is_pypi_spec

_ANNOUNCED_BY_CLIENT = ("parsing modelfile", "gathering model components")


def shares_store(client: Client, store: ModelStore) -> bool:
    """Whether the server keeps its models in `store` (see the module docstring)."""
    if not store.blobs.blobs_dir.is_dir():
        return False
    probe = b"llamahost store probe " + secrets.token_hex(16).encode()
    try:
        digest = store.blobs.write(probe)
    except (OSError, LlamahostError):
        return False  # not writable here: not a store this process could share
    try:
        return client.has_blob(str(digest))
    finally:
        store.blobs.delete(digest)


@dataclass(frozen=True)
class _File:
    """A local file to send: its digest (``sha256:<hex>``), size and path."""

    digest: str
    size: int
    path: Path


@dataclass
class _Upload:
    """The files a create sends, by the names the request gives them."""

    files: dict[str, _File] = field(default_factory=dict)
    adapters: dict[str, _File] = field(default_factory=dict)

    def add(self, kind: str, path: Path) -> None:
        """Hash `path` and list it under its file name (two files of one name: an error)."""
        named = self.files if kind == "FROM" else self.adapters
        if path.name in named:
            raise ModelfileError(
                f"{kind}: two files are named {path.name!r}; through a server, files are "
                "sent by name: rename one"
            )
        digest, size = _hash_file(path)
        named[path.name] = _File(str(digest), size, path)

    def request_fields(self) -> dict[str, dict[str, str]]:
        fields = {"files": self.files, "adapters": self.adapters}
        return {
            key: {label: file.digest for label, file in named.items()}
            for key, named in fields.items()
            if named
        }


def create_through(
    client: Client, name: ModelName, modelfile: Modelfile, *, base_dir: Path
) -> None:
    """Create `name` on the server from `modelfile`, uploading its local files first."""
    with ProgressPrinter(sys.stderr) as printer:
        printer(Progress("parsing modelfile"))
        printer(Progress("gathering model components"))
        request = _settings(modelfile)
        upload = _Upload()
        base_from = _base_from(modelfile, base_dir)
        architecture = None
        if base_from is not None:
            request["from"] = base_from
        else:
            sources = [(c, _local_path(c.args, base_dir)) for c in _commands(modelfile, "from")]
            base = _files_base(sources)
            architecture = base.architecture
            for gguf_file in [*base.model_files, *base.projector_files]:
                upload.add("FROM", gguf_file.path)
        for command in _commands(modelfile, "adapter"):
            upload.add("ADAPTER", _checked_adapter(command, base_dir, architecture))
        _check_template(modelfile)

        sent = set()
        for file in [*upload.files.values(), *upload.adapters.values()]:
            if file.digest not in sent:
                _send_blob(client, file, printer)
                sent.add(file.digest)
        request.update(upload.request_fields())
        request["model"] = name.display_shortest()
        for event in client.create(request):
            repeated = event.status.removeprefix("using existing layer ") in sent
            if event.status not in _ANNOUNCED_BY_CLIENT and not repeated:
                printer(event)


def _base_from(modelfile: Modelfile, base_dir: Path) -> str | None:
    """The ``from`` of the request when the Modelfile builds on a stored model or a PyPI
    package (not on local files), decided as an in-process create decides it."""
    froms = _commands(modelfile, "from")
    pypi = [command for command in froms if is_pypi_spec(command.args)]
    if pypi:
        if len(froms) > 1:
            raise ModelfileError(
                f"FROM {pypi[0].args} must be the only FROM: a PyPI package brings the whole model",
                pypi[0].line or None,
            )
        return pypi[0].args
    if len(froms) == 1:
        value = froms[0].args
        if not _local_path(value, base_dir).exists() and not _looks_like_path(value):
            return value
    return None


def _settings(modelfile: Modelfile) -> dict[str, Any]:
    """The request fields a Modelfile's settings give."""
    request: dict[str, Any] = {}
    if modelfile.template:
        request["template"] = modelfile.template
    if modelfile.system:
        request["system"] = modelfile.system
    parameters = modelfile.parameters
    if parameters:
        request["parameters"] = {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in parameters.items()
        }
    if modelfile.messages:
        request["messages"] = [{"role": r, "content": c} for r, c in modelfile.messages]
    if modelfile.license:
        request["license"] = modelfile.license
    if modelfile.requires:
        request["requires"] = modelfile.requires
    return request


def _send_blob(client: Client, file: _File, progress: ProgressCallback) -> None:
    """Upload one file unless the server has it, reporting as an in-process import does."""
    if client.has_blob(file.digest):
        progress(Progress(f"using existing layer {file.digest}"))
        return
    status = f"copying file {file.digest}"
    progress(Progress(status, file.digest, file.size, 0))

    def sent(count: int) -> None:
        progress(Progress(status, file.digest, file.size, count))

    client.upload_blob(file.digest, file.path, file.size, sent)
