"""Inference routes: ``/api/generate``, ``/api/chat``, ``/api/embed``, ``/api/embeddings``, ps.

Each request goes through the same steps, and nothing reaches a runner before every check
has passed::

    parse the body (schemas)  ->  400 naming the field
    resolve the model         ->  400 bad name, 404 'model "x" not found, try pulling it first'
    merge options             ->  Modelfile PARAMETERs, then the request's, validated by
                                  engine.options.Options: 400 "`top_p` must be in [0, 1], ..."
    plan the runner           ->  RunnerSpec (num_ctx resolved) + memory estimate
    scheduler.acquire         ->  503 + Retry-After (queue full or shutting down),
                                  500 (the model cannot load or fit, with the reason)
    runner request            ->  its 400/500 before anything streams, else NDJSON lines
                                  with ``model`` and ``created_at`` added, ``load_duration``
                                  and ``total_duration`` on the last one

The runner receives Ollama's request body plus what the store knows: ``template`` (the
request's, else the Modelfile TEMPLATE, else null for the GGUF's own), ``system`` (the
request's, else the Modelfile SYSTEM), ``history`` (the Modelfile MESSAGEs) and
``options`` (merged; only the request-time ones: the load-time ones are the runner's flags).

While a request runs, the answer watches its client: a disconnect (while queued, loading or
streaming) closes the runner request, which frees the slot; the server's shutdown ends a
stream with an error line. An empty ``prompt`` (``messages``, ``input``) only loads the
model (``done_reason`` "load"), or with ``keep_alive: 0`` unloads it ("unload").
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llamahost.engine.options import OPTION_KINDS, Options
from llamahost.errors import (
    GGUFError,
    InsufficientMemoryError,
    ModelNotFoundError,
    OptionError,
)
from llamahost.memory import estimate_memory, model_shape
from llamahost.server.errors import (
    APIError,
    exception_message,
    model_name,
    not_found_message,
    parse_body,
    store_of,
)
from llamahost.server.runner_process import RunnerError, RunnerExitedError, RunnerSpec
from llamahost.server.scheduler import (
    LoadRequest,
    QueueFullError,
    Scheduler,
    ServerClosingError,
)
from llamahost.server.schemas import (
    ChatRequest,
    EmbeddingRequest,
    EmbedRequest,
    GenerateRequest,
    WireModel,
)
from llamahost.server.security import note_model
from llamahost.server.streaming import EventResponse
from llamahost.store.model_store import ResolvedModel

log = logging.getLogger("llamahost.server")

DEFAULT_NUM_CTX = 4096  # when a request asks for 0 and the file has no training context
#: Options fixed when a runner starts (its flags); requests send the runner the others.
LOAD_OPTION_NAMES = frozenset(n for n, kind in OPTION_KINDS.items() if kind != "request")


def now_rfc3339() -> str:
    """``created_at``: UTC, RFC 3339 with microseconds, as Go prints a time."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


# ---- the model and its runner -----------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A request's model: the stored model, merged options and the runner to use."""

    text: str  # the model as the request named it (echoed in responses)
    resolved: ResolvedModel
    options: Options
    load: LoadRequest

    def runner_options(self) -> dict[str, Any]:
        """The merged request-time options for the runner (those that differ from the
        defaults); the load-time ones are its command line."""
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in self.options.changed().items()
            if k not in LOAD_OPTION_NAMES
        }


def _scheduler(request: Request) -> Scheduler:
    scheduler: Scheduler = request.app.state.scheduler
    return scheduler


async def resolve_target(request: Request, text: str, options: dict[str, Any] | None) -> Target:
    """The stored model `text` with `options` merged and checked, and its runner's plan.

    APIError: 400 for a bad name or option, 404 for an unknown model, 500 for a model file
    whose header cannot be read.
    """
    note_model(request.scope, text)  # for the access-log line, whatever happens next
    name = model_name(text)
    store = store_of(request)
    try:
        resolved = await anyio.to_thread.run_sync(store.resolve, name)
    except ModelNotFoundError:
        raise APIError(404, not_found_message(text)) from None
    try:
        merged = Options.from_mapping(resolved.parameters)
    except OptionError as exc:
        raise APIError(500, f"model '{text}' has an invalid PARAMETER: {exc}") from None
    try:
        merged = merged.merged(options or {})
    except OptionError as exc:
        raise APIError(400, str(exc)) from None
    paths = tuple(str(p) for p in resolved.model_paths)
    adapters = tuple(str(p) for p in resolved.adapter_paths)
    try:
        shape = await anyio.to_thread.run_sync(model_shape, paths)
    except (GGUFError, OSError) as exc:
        raise APIError(500, f"model '{text}' cannot be read: {exception_message(exc)}") from None
    num_ctx = merged.num_ctx or shape.n_ctx_train or DEFAULT_NUM_CTX
    if shape.n_ctx_train and num_ctx > shape.n_ctx_train:
        # As Ollama: never more than the training context (llama.cpp would only warn).
        asked = "num_ctx" in (options or {}) or "num_ctx" in resolved.parameters
        (log.warning if asked else log.debug)(
            "%s: num_ctx %d is more than the model was trained for; using %d",
            text,
            num_ctx,
            shape.n_ctx_train,
        )
        num_ctx = shape.n_ctx_train
    context = dataclasses.replace(merged.context_params, num_ctx=num_ctx)
    scheduler = _scheduler(request)
    model = merged.model_params
    if model.use_mmap:  # mapping is the runner's default: one runner for True and unset
        model = dataclasses.replace(model, use_mmap=None)
    spec = RunnerSpec(
        model_paths=paths,
        adapter_paths=adapters,
        model=model,
        context=context,
        parallel=scheduler.config.num_parallel,
    )
    estimate = estimate_memory(
        shape,
        num_ctx=num_ctx,
        parallel=spec.parallel,
        num_batch=context.num_batch,
        kv_cache_type=context.kv_cache_type,
        flash_attn=context.flash_attn,
        adapter_bytes=sum(_size(p) for p in adapters),
    )
    load = LoadRequest(
        spec=spec,
        estimate=estimate,
        name=resolved.name.display_shortest(),
        digest=resolved.digest.hex,
        details=resolved.details.to_dict(),
    )
    return Target(text=text, resolved=resolved, options=merged, load=load)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _check_images(target: Target, images: list[str] | None) -> None:
    if images and not target.resolved.projector_paths:
        raise APIError(
            400, f"model '{target.text}' does not support images: it has no vision projector"
        )


def _runner_body(target: Target, body: WireModel, **store_fields: Any) -> dict[str, Any]:
    data = body.to_wire()
    for key in ("model", "keep_alive"):
        data.pop(key, None)
    data["options"] = target.runner_options()
    data.update(store_fields)
    return data


# ---- running a request ------------------------------------------------------------------


def _scheduling_error(exc: BaseException) -> BaseException:
    """The API error for a failure to get a runner."""
    if isinstance(exc, QueueFullError):
        return APIError(503, str(exc), {"Retry-After": str(exc.retry_after_s)})
    if isinstance(exc, ServerClosingError):
        return APIError(503, str(exc), {"Retry-After": "5"})
    if isinstance(exc, InsufficientMemoryError):
        return APIError(500, str(exc))
    return exc


Decorate = Callable[[dict[str, Any], int, int], dict[str, Any]]


async def run_on_runner(
    request: Request,
    target: Target,
    path: str,
    body: dict[str, Any],
    keep_alive: float | None,
    decorate: Decorate,
) -> AsyncIterator[dict[str, Any]]:
    """Acquire the runner, send it `body`, and yield its answer's objects, decorated.

    `decorate(obj, load_duration_ns, total_duration_ns)` adds the server's fields.
    Raises APIError (or a library error) before the first object; a failure after it is
    raised too, and the response turns it into an error line.
    """
    started = time.monotonic()
    scheduler = _scheduler(request)
    try:
        lease = await scheduler.acquire(target.load, keep_alive)
    except Exception as exc:
        raise _scheduling_error(exc) from None
    try:
        async with lease.runner.stream(path, body) as answer:
            if answer.status != 200 or body.get("stream") is False:
                data = await answer.json()
                if answer.status != 200:
                    raise APIError(answer.status, str(data.get("error") or data))
                total = int((time.monotonic() - started) * 1e9)
                yield decorate(data, lease.load_duration_ns, total)
                return
            async for line in answer.lines():
                data = json.loads(line)
                if "error" in data:
                    raise RunnerError(str(data["error"]))
                total = int((time.monotonic() - started) * 1e9)
                yield decorate(data, lease.load_duration_ns, total)
    finally:
        lease.release()


def _decorate_completion(model: str) -> Decorate:
    def decorate(data: dict[str, Any], load_ns: int, total_ns: int) -> dict[str, Any]:
        out = {"model": model, "created_at": now_rfc3339(), **data}
        if data.get("done"):
            out["load_duration"] = load_ns
            out["total_duration"] = max(total_ns, int(data.get("total_duration") or 0))
        return out

    return decorate


class InferenceResponse(EventResponse):
    """The answer of one inference request (see ``streaming.EventResponse``): the first
    object (or error) decides the status line; with ``stream`` each object is an NDJSON
    line, else the last one is the body; a disconnect at any point (queued, loading,
    generating) closes the runner request."""

    def logs_failure(self, exc: BaseException) -> bool:
        # A runner's death is logged once, by the scheduler, with the model's name.
        return not isinstance(exc, RunnerExitedError)


async def _load_or_unload(
    request: Request, target: Target, keep_alive: float | None, shape: dict[str, Any]
) -> Response:
    """An empty request: load the model (done_reason "load"), or with keep_alive 0 unload it."""
    scheduler = _scheduler(request)
    if keep_alive is not None and keep_alive <= 0:
        await scheduler.unload(target.load.spec.model_paths)
        reason = "unload"
    else:
        try:
            await scheduler.load_only(target.load, keep_alive)
        except Exception as exc:
            raise _scheduling_error(exc) from None
        reason = "load"
    return JSONResponse(
        {
            "model": target.text,
            "created_at": now_rfc3339(),
            **shape,
            "done": True,
            "done_reason": reason,
        }
    )


# ---- the one inference path (the Ollama routes and the OpenAI adapter both run it) ------


def generate_events(
    request: Request, target: Target, body: GenerateRequest
) -> AsyncIterator[dict[str, Any]]:
    """Run a generate request on `target`'s runner: Ollama's GenerateResponse objects (the
    chunks, or one object when ``stream`` is false). APIError(400) at once for images on a
    model without a vision projector."""
    _check_images(target, body.images)
    runner_body = _runner_body(
        target,
        body,
        template=body.template or target.resolved.template,
        system=body.system or target.resolved.system,
        history=target.resolved.messages,
        stream=body.streaming,
    )
    return run_on_runner(
        request,
        target,
        "/api/generate",
        runner_body,
        body.keep_alive,
        _decorate_completion(body.model),
    )


def chat_events(
    request: Request, target: Target, body: ChatRequest
) -> AsyncIterator[dict[str, Any]]:
    """Run a chat request (with messages) on `target`'s runner: Ollama's ChatResponse
    objects. APIError(400) at once for images on a model without a vision projector."""
    for message in body.messages:
        _check_images(target, message.images)
    runner_body = _runner_body(
        target,
        body,
        template=target.resolved.template,
        system=target.resolved.system,
        history=target.resolved.messages,
        stream=body.streaming,
    )
    return run_on_runner(
        request, target, "/api/chat", runner_body, body.keep_alive, _decorate_completion(body.model)
    )


def embed_events(
    request: Request, target: Target, body: EmbedRequest
) -> AsyncIterator[dict[str, Any]]:
    """Run an embed request (non-empty ``input``) on `target`'s runner: one EmbedResponse."""
    inputs = [body.input] if isinstance(body.input, str) else list(body.input)
    runner_body = _runner_body(target, body, input=inputs, stream=False)
    if not body.dimensions:
        runner_body.pop("dimensions", None)  # 0 means all of them

    def decorate(data: dict[str, Any], load_ns: int, total_ns: int) -> dict[str, Any]:
        out = {"model": body.model, **data}
        out["total_duration"] = total_ns
        out["load_duration"] = load_ns
        return out

    return run_on_runner(request, target, "/api/embed", runner_body, body.keep_alive, decorate)


# ---- the routes -------------------------------------------------------------------------


def _refuse_render_only(asked: bool) -> None:
    """Ollama's ``_debug_render_only`` is accepted in the schema but not served: refuse it
    rather than generate as if it had not been asked for."""
    if asked:
        raise APIError(400, '"_debug_render_only" is not supported')


async def generate(request: Request) -> Response:
    """``POST /api/generate``."""
    body = await parse_body(request, GenerateRequest)
    for name in ("width", "height", "steps"):
        if getattr(body, name) is not None:
            raise APIError(400, f'"{name}": image generation is not supported')
    _refuse_render_only(body.debug_render_only)
    target = await resolve_target(request, body.model, body.options)
    if not body.prompt and not body.images and not body.suffix:
        return await _load_or_unload(request, target, body.keep_alive, {"response": ""})
    events = generate_events(request, target, body)
    return InferenceResponse(request, events, stream=body.streaming)


async def chat(request: Request) -> Response:
    """``POST /api/chat``."""
    body = await parse_body(request, ChatRequest)
    _refuse_render_only(body.debug_render_only)
    target = await resolve_target(request, body.model, body.options)
    if not body.messages:
        return await _load_or_unload(
            request, target, body.keep_alive, {"message": {"role": "assistant", "content": ""}}
        )
    events = chat_events(request, target, body)
    return InferenceResponse(request, events, stream=body.streaming)


async def embed(request: Request) -> Response:
    """``POST /api/embed``."""
    body = await parse_body(request, EmbedRequest)
    target = await resolve_target(request, body.model, body.options)
    if not body.input:  # "" or []: as Ollama, load (or with keep_alive 0 unload), no vectors
        await _load_or_unload(request, target, body.keep_alive, {})
        return JSONResponse({"model": body.model, "embeddings": []})
    return InferenceResponse(request, embed_events(request, target, body), stream=False)


async def embeddings(request: Request) -> Response:
    """``POST /api/embeddings`` (legacy): ``prompt`` -> ``{"embedding": [...]}``."""
    body = await parse_body(request, EmbeddingRequest)
    target = await resolve_target(request, body.model, body.options)
    if not body.prompt:
        try:
            await _scheduler(request).load_only(target.load, body.keep_alive)
        except Exception as exc:
            raise _scheduling_error(exc) from None
        return JSONResponse({"embedding": []})
    # Ollama's legacy endpoint gives the model's vector as it is, not normalised.
    runner_body = {
        "input": [body.prompt],
        "options": target.runner_options(),
        "stream": False,
        "normalize": False,
    }

    def decorate(data: dict[str, Any], load_ns: int, total_ns: int) -> dict[str, Any]:
        vectors = data.get("embeddings") or [[]]
        return {"embedding": vectors[0]}

    events = run_on_runner(request, target, "/api/embed", runner_body, body.keep_alive, decorate)
    return InferenceResponse(request, events, stream=False)


async def ps(request: Request) -> Response:
    """``GET /api/ps``: the loaded models (and those loading), most recently used first.

    Ollama's fields, plus ``memory`` (``weights``/``kv``/``compute`` bytes: the runner's
    actual allocation once loaded, the estimate while loading), ``parallel`` (slots),
    ``state`` (``loading``/``loaded``), ``progress`` (0..1) and ``busy`` (requests using
    or waiting for it).
    """
    rows = _scheduler(request).ps()
    for row in rows:
        row["expires_at"] = row["expires_at"].isoformat().replace("+00:00", "Z")
    return JSONResponse({"models": rows})


def routes() -> list[Route]:
    """The inference routes, mounted by ``server.app.create_app``."""
    return [
        Route("/api/generate", generate, methods=["POST"]),
        Route("/api/chat", chat, methods=["POST"]),
        Route("/api/embed", embed, methods=["POST"]),
        Route("/api/embeddings", embeddings, methods=["POST"]),
        Route("/api/ps", ps, methods=["GET"]),
    ]


__all__ = [
    "InferenceResponse",
    "Target",
    "chat_events",
    "embed_events",
    "generate_events",
    "resolve_target",
    "routes",
    "run_on_runner",
]
