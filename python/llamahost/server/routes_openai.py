"""OpenAI's API under ``/v1``: chat completions, completions, embeddings, models.

Each inference route converts its request to Ollama's (``openai_adapter``), resolves the
model and runs it exactly as the Ollama routes do (``routes_inference``: the same
``resolve_target`` and ``chat_events``/``generate_events``/``embed_events``, so the same
checks, scheduler, queue and runner), and converts the answer objects back::

    POST /v1/chat/completions   -> /api/chat's path      (SSE when "stream": true)
    POST /v1/completions        -> /api/generate's path  (SSE when "stream": true)
    POST /v1/embeddings         -> /api/embed's path
    GET  /v1/models             the stored models
    GET  /v1/models/{model}     one stored model (404 when unknown)

A stream is ``data: {chunk}\\n\\n`` events ending with ``data: [DONE]\\n\\n``; an error
after it started is a last ``data: {"error": {...}}`` event (the official client raises
it). Every ``/v1`` error, wherever it comes from (a field, the model, the queue's 503
with ``Retry-After``, the API key's 401, the body cap's 413, the router's 404/405), is in
OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``:
``openai_errors.OpenAIErrorShape`` rewrites what the security middleware and the app's handlers
write in Ollama's shape.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llamahost.errors import ModelNotFoundError
from llamahost.server import openai_adapter as adapter
from llamahost.server.errors import (
    APIError,
    exception_message,
    json_bytes,
    model_name,
    redact,
    status_for,
    store_of,
    store_root_of,
)
from llamahost.server.openai_errors import (
    V1_PREFIX,
    OpenAIError,
    error_payload,
    validation_error,
)
from llamahost.server.openai_schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    ModelCard,
    ModelList,
)
from llamahost.server.routes_inference import (
    InferenceResponse,
    chat_events,
    embed_events,
    generate_events,
    resolve_target,
)
from llamahost.server.security import BodyTooLarge, note_model

log = logging.getLogger("llamahost.server")

RequestT = TypeVar("RequestT", bound=BaseModel)
Endpoint = Callable[[Request], Awaitable[Response]]


# ---- errors -------------------------------------------------------------------------------


def _error_response(request: Request, exc: BaseException) -> Response:
    """``exc`` as OpenAI's error answer (redacted; a 5xx is logged)."""
    status = status_for(exc)
    message = redact(exception_message(exc), store_root_of(request))
    param = exc.param if isinstance(exc, OpenAIError) else None
    code = exc.code if isinstance(exc, OpenAIError) else None
    if status == 404 and code is None:
        code, param = "model_not_found", param or "model"
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, message, exc_info=exc)
    headers = exc.headers if isinstance(exc, APIError) else None
    return JSONResponse(error_payload(status, message, param, code), status, headers=headers)


def openai_endpoint(handler: Endpoint) -> Endpoint:
    """A route whose every error, expected or not, is an answer in OpenAI's shape."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except BodyTooLarge:
            raise  # the body cap's middleware answers 413 (OpenAIErrorShape reshapes it)
        except Exception as exc:
            return _error_response(request, exc)

    return endpoint


async def _parse(request: Request, schema: type[RequestT]) -> RequestT:
    """The JSON body as `schema`; OpenAIError(400) naming the field otherwise."""
    try:
        body = await request.body()
    except ClientDisconnect:
        raise OpenAIError(400, "the client disconnected before sending the body") from None
    if not body.strip():
        raise OpenAIError(400, "missing request body: send a JSON object")
    try:
        return schema.model_validate_json(body)
    except ValidationError as exc:
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        raise validation_error(exc, document) from None


# ---- inference ------------------------------------------------------------------------------


class SSEResponse(InferenceResponse):
    """An inference answer as OpenAI writes it: server-sent events ending with
    ``data: [DONE]`` (or one JSON object), errors in OpenAI's shape."""

    stream_media_type = "text/event-stream"

    def encode_event(self, item: Mapping[str, Any]) -> bytes:
        return b"data: " + json_bytes(item) + b"\n\n"

    def encode_error_event(self, message: str) -> bytes:
        return b"data: " + json_bytes(error_payload(500, message)) + b"\n\n"

    def encode_error(self, status: int, message: str) -> bytes:
        return json_bytes(error_payload(status, message))

    def encode_end(self) -> bytes:
        return b"data: [DONE]\n\n"


async def _converted(
    events: AsyncIterator[dict[str, Any]],
    convert_whole: Callable[[dict[str, Any]], dict[str, Any]],
    convert_chunk: Callable[[dict[str, Any]], list[dict[str, Any]]] | None,
) -> AsyncIterator[dict[str, Any]]:
    """Ollama's answer objects as OpenAI's: each chunk's (streaming), or the whole one."""
    try:
        async for data in events:
            if convert_chunk is None:
                yield convert_whole(data)
                continue
            for chunk in convert_chunk(data):
                yield chunk
    finally:
        await events.aclose()  # type: ignore[attr-defined]


def _images_error(exc: APIError) -> OpenAIError:
    return OpenAIError(exc.status, exc.message, param="messages", headers=exc.headers)


@openai_endpoint
async def chat_completions(request: Request) -> Response:
    """``POST /v1/chat/completions``."""
    body = await _parse(request, ChatCompletionRequest)
    note_model(request.scope, body.model)
    converted = adapter.chat_request(body)
    chat = converted.request
    target = await resolve_target(request, chat.model, chat.options)
    target = adapter.with_openai_defaults(target, converted)
    try:
        events = chat_events(request, target, chat)
    except APIError as exc:  # images on a model without a vision projector
        raise _images_error(exc) from None
    converter = adapter.ChatConverter(body.model, converted)
    chunks = converter.chunks if converted.stream else None
    answer = _converted(events, converter.completion, chunks)
    return SSEResponse(request, answer, stream=converted.stream)


@openai_endpoint
async def completions(request: Request) -> Response:
    """``POST /v1/completions``."""
    body = await _parse(request, CompletionRequest)
    note_model(request.scope, body.model)
    converted = adapter.completion_request(body)
    generate = converted.request
    target = await resolve_target(request, generate.model, generate.options)
    target = adapter.with_openai_defaults(target, converted)
    events = generate_events(request, target, generate)
    converter = adapter.CompletionConverter(body.model, converted)
    chunks = converter.chunks if converted.stream else None
    answer = _converted(events, converter.completion, chunks)
    return SSEResponse(request, answer, stream=converted.stream)


@openai_endpoint
async def embeddings(request: Request) -> Response:
    """``POST /v1/embeddings``."""
    body = await _parse(request, EmbeddingRequest)
    note_model(request.scope, body.model)
    embed = adapter.embed_request(body).request
    target = await resolve_target(request, embed.model, embed.options)
    events = embed_events(request, target, embed)

    def convert(data: dict[str, Any]) -> dict[str, Any]:
        return adapter.embedding_list(body.model, data, body.encoding_format)

    return SSEResponse(request, _converted(events, convert, None), stream=False)


# ---- models -------------------------------------------------------------------------------


def _card(name: str, created: float, namespace: str) -> ModelCard:
    return ModelCard(id=name, created=int(created), owned_by=namespace)


@openai_endpoint
async def list_models(request: Request) -> Response:
    """``GET /v1/models``: the stored models, newest first."""
    models, _problems = await anyio.to_thread.run_sync(store_of(request).list)
    cards = [
        _card(m.name.display_shortest(), m.modified_at.timestamp(), m.name.namespace)
        for m in models
    ]
    return JSONResponse(ModelList(data=cards).to_wire())


@openai_endpoint
async def retrieve_model(request: Request) -> Response:
    """``GET /v1/models/{model}``: one stored model (404 in OpenAI's shape if unknown)."""
    text = request.path_params["model"]
    note_model(request.scope, text)
    name = model_name(text)
    try:
        resolved = await anyio.to_thread.run_sync(store_of(request).resolve, name)
    except ModelNotFoundError:
        message = f'model "{text}" not found'
        raise OpenAIError(404, message, param="model", code="model_not_found") from None
    card = _card(text, resolved.modified_at.timestamp(), resolved.name.namespace)
    return JSONResponse(card.to_wire())


def routes() -> list[Route]:
    """The ``/v1`` routes, mounted by ``server.app.create_app``."""
    return [
        Route(f"{V1_PREFIX}/chat/completions", chat_completions, methods=["POST"]),
        Route(f"{V1_PREFIX}/completions", completions, methods=["POST"]),
        Route(f"{V1_PREFIX}/embeddings", embeddings, methods=["POST"]),
        Route(f"{V1_PREFIX}/models", list_models, methods=["GET"]),
        Route(f"{V1_PREFIX}/models/{{model:path}}", retrieve_model, methods=["GET"]),
    ]


__all__ = ["SSEResponse", "openai_endpoint", "routes"]
