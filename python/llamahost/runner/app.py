"""The runner's HTTP app: health and facts, Ollama's inference endpoints, llama-server's.

See :mod:`llamahost.runner` for the contract. Every generation runs through the same
``Model.generate``/``Model.chat`` path as in-process use (templates, stop strings, tool and
thinking parsing), with the runner's batch engine as the executor.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from llamahost.engine.responses import ChatChunk, GenerateChunk, Metrics, TokenLogprob
from llamahost.errors import (
    AbortedError,
    ContextOverflowError,
    GrammarError,
    LlamahostError,
    OptionError,
    TemplateError,
    TokenizeError,
)
from llamahost.runner.bridge import Bridge, until_disconnected
from llamahost.runner.state import RunnerState

#: Request bodies beyond this are refused (the server caps what it accepts well below it).
MAX_BODY_BYTES = 256 << 20
#: Errors that are the request's fault: 400; anything else from llamahost is a 500.
CLIENT_ERRORS = (OptionError, TemplateError, GrammarError, ContextOverflowError, TokenizeError)


class BadRequest(Exception):
    """A request the runner refuses (400), with a message naming the field."""


# ---- plumbing -------------------------------------------------------------------------------


class SecretAuth:
    """Requires ``Authorization: Bearer <secret>`` on every request (when a secret is set)."""

    def __init__(self, app: ASGIApp, secret: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {secret}".encode() if secret else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.expected is not None:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await JSONResponse({"error": "unauthorized"}, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def read_json(request: Request) -> dict[str, Any]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(f"request body over {MAX_BODY_BYTES >> 20} MiB")
    try:
        value = json.loads(body or b"{}")
    except ValueError as e:
        raise BadRequest(f"invalid JSON: {e}") from None
    if not isinstance(value, dict):
        raise BadRequest("the request body must be a JSON object")
    return value


def error_response(exc: BaseException) -> JSONResponse:
    if isinstance(exc, (BadRequest, *CLIENT_ERRORS)):
        return JSONResponse({"error": str(exc)}, status_code=400)
    if isinstance(exc, AbortedError):
        return JSONResponse({"error": str(exc)}, status_code=499)
    return JSONResponse({"error": str(exc) or type(exc).__name__}, status_code=500)


def field(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...], default: Any) -> Any:
    """``body[name]`` checked against `kind` (None and absent give `default`)."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        names = " or ".join(k.__name__ for k in _kinds(kind))
        raise BadRequest(f"`{name}` must be {names}, got {type(value).__name__}")
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def metrics_fields(metrics: Metrics | None) -> dict[str, int]:
    m = metrics or Metrics()
    return {
        "total_duration": m.total_duration,
        "load_duration": m.load_duration,
        "prompt_eval_count": m.prompt_eval_count,
        "prompt_eval_duration": m.prompt_eval_duration,
        "eval_count": m.eval_count,
        "eval_duration": m.eval_duration,
    }


def _logprobs(entries: list[TokenLogprob]) -> list[dict[str, Any]]:
    return [e.to_dict() for e in entries]


async def respond(
    request: Request,
    make: Callable[[threading.Event], Iterator[dict[str, Any]]],
    *,
    stream: bool,
    merge: Callable[[list[dict[str, Any]]], dict[str, Any]],
    encode: Callable[[Mapping[str, Any]], bytes] | None = None,
    error_event: Callable[[str], Mapping[str, Any]] = lambda message: {"error": message},
    media_type: str = "application/x-ndjson",
) -> Response:
    """Run a generation: one encoded event per item while it streams (NDJSON lines unless
    `encode` says otherwise), or one merged object at the end.

    Errors before the first item are a 400/500 response; after it, a last event made by
    `error_event` (Ollama's ``{"error": "..."}`` unless the API says otherwise). A client
    that goes away cancels the generation.
    """
    encode_event = encode or _line
    bridge: Bridge[dict[str, Any]] = Bridge(make)
    watcher = asyncio.ensure_future(until_disconnected(request, bridge))
    try:
        first = await bridge.next()
    except BaseException as exc:
        watcher.cancel()
        bridge.close()
        if isinstance(exc, Exception):
            return error_response(exc)
        raise
    if not stream:
        items = [first] if first is not None else []
        try:
            while (item := await bridge.next()) is not None:
                items.append(item)
        except Exception as exc:
            return error_response(exc)
        finally:
            watcher.cancel()
            bridge.close()
        return JSONResponse(merge(items))
    watcher.cancel()  # the streaming response watches the connection itself

    async def events() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield encode_event(first)
            async for item in bridge.items():
                yield encode_event(item)
        except Exception as exc:
            yield encode_event(error_event(str(exc)))
        finally:
            bridge.close()

    return StreamingResponse(events(), media_type=media_type)


# one encoder, built once: json.dumps with options builds a new one per call (per token here)
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _line(item: Mapping[str, Any]) -> bytes:
    return _COMPACT.encode(item).encode() + b"\n"


# ---- Ollama's endpoints -------------------------------------------------------------------


def common_kwargs(body: Mapping[str, Any]) -> dict[str, Any]:
    """Request fields shared by generate and chat, as Model keyword arguments."""
    options = field(body, "options", dict, {})
    kwargs: dict[str, Any] = {
        "options": options,
        "format": body.get("format") or None,
        "truncate": field(body, "truncate", bool, True),
        "shift": field(body, "shift", bool, True),
        "logprobs": field(body, "logprobs", bool, False),
        "top_logprobs": field(body, "top_logprobs", int, 0),
    }
    return kwargs


def _check_images(body: Mapping[str, Any], messages: list[Any] | None = None) -> None:
    has = bool(body.get("images")) or any(
        isinstance(m, Mapping) and m.get("images") for m in messages or []
    )
    if has:
        raise BadRequest("this model does not support images (it has no vision projector)")


def chat_endpoint(state: RunnerState) -> Callable[[Request], Any]:
    async def chat(request: Request) -> Response:
        try:
            body = await read_json(request)
            model = _model(state, body)
            messages = field(body, "messages", list, [])
            _check_images(body, messages)
            kwargs = common_kwargs(body)
            tools = field(body, "tools", list, None)
            think = body.get("think")
            if think is not None and not isinstance(think, (bool, str)):
                raise BadRequest("`think` must be true, false, or high/medium/low")
            think_flag = think if isinstance(think, bool) or think is None else True
        except Exception as exc:
            return error_response(exc)

        def make(cancel: threading.Event) -> Iterator[dict[str, Any]]:
            chunks = model.chat(
                messages, stream=True, tools=tools, think=think_flag, cancel=cancel, **kwargs
            )
            return (_chat_line(chunk, kwargs["logprobs"]) for chunk in chunks)

        return await respond(
            request, make, stream=field(body, "stream", bool, True), merge=_merge_chat
        )

    return chat


def _chat_line(chunk: ChatChunk, logprobs: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": chunk.message.content}
    if chunk.message.thinking:
        message["thinking"] = chunk.message.thinking
    if chunk.message.tool_calls:
        message["tool_calls"] = [
            {"function": {"index": i, "name": c.name, "arguments": c.arguments}}
            for i, c in enumerate(chunk.message.tool_calls)
        ]
    line: dict[str, Any] = {"message": message, "done": chunk.done}
    if chunk.done:
        line["done_reason"] = chunk.done_reason or "stop"
        line.update(metrics_fields(chunk.metrics))
    if logprobs or chunk.logprobs:
        line["logprobs"] = _logprobs(chunk.logprobs)
    return line


def _merge_chat(items: list[dict[str, Any]]) -> dict[str, Any]:
    if not items:
        return {}
    last = dict(items[-1])
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    thinking, calls, logprobs = "", [], []
    for item in items:
        message["content"] += item["message"].get("content", "")
        thinking += item["message"].get("thinking", "")
        calls += item["message"].get("tool_calls", [])
        logprobs += item.get("logprobs", [])
    if thinking:
        message["thinking"] = thinking
    if calls:
        for i, call in enumerate(calls):
            call["function"]["index"] = i
        message["tool_calls"] = calls
    last["message"] = message
    if "logprobs" in last:
        last["logprobs"] = logprobs
    return last


def generate_endpoint(state: RunnerState) -> Callable[[Request], Any]:
    async def generate(request: Request) -> Response:
        try:
            body = await read_json(request)
            model = _model(state, body)
            _check_images(body)
            prompt = field(body, "prompt", str, "")
            kwargs = common_kwargs(body)
            raw = field(body, "raw", bool, False)
            suffix = field(body, "suffix", str, None)
            context = field(body, "context", list, None)
            if context is not None and not all(
                isinstance(t, int) and not isinstance(t, bool) for t in context
            ):
                raise BadRequest("`context` must be a list of token ids")
            think = body.get("think")
            if think is not None and not isinstance(think, (bool, str)):
                raise BadRequest("`think` must be true, false, or high/medium/low")
            think_flag = think if isinstance(think, bool) or think is None else True
            stream = field(body, "stream", bool, True)
        except Exception as exc:
            return error_response(exc)
        if not prompt and not suffix:  # Ollama: an empty prompt only loads the model
            return _load_only(stream)

        def make(cancel: threading.Event) -> Iterator[dict[str, Any]]:
            chunks = model.generate(
                prompt,
                stream=True,
                apply_template=not raw,
                special=raw,
                suffix=suffix,
                system=None,  # the model wrapper carries the effective system prompt
                context=context,
                cancel=cancel,
                think=think_flag,
                **kwargs,
            )
            return (_generate_line(chunk, kwargs["logprobs"]) for chunk in chunks)

        return await respond(request, make, stream=stream, merge=_merge_generate)

    return generate


def _load_only(stream: bool) -> Response:
    line = {"response": "", "done": True, "done_reason": "load"}
    if stream:
        return Response(_line(line), media_type="application/x-ndjson")
    return JSONResponse(line)


def _generate_line(chunk: GenerateChunk, logprobs: bool) -> dict[str, Any]:
    line: dict[str, Any] = {"response": chunk.text, "done": chunk.done}
    if chunk.thinking:
        line["thinking"] = chunk.thinking
    if chunk.done:
        line["done_reason"] = chunk.done_reason or "stop"
        line["context"] = chunk.context or []
        line.update(metrics_fields(chunk.metrics))
    if logprobs or chunk.logprobs:
        line["logprobs"] = _logprobs(chunk.logprobs)
    return line


def _merge_generate(items: list[dict[str, Any]]) -> dict[str, Any]:
    if not items:
        return {}
    last = dict(items[-1])
    last["response"] = "".join(item["response"] for item in items)
    thinking = "".join(item.get("thinking", "") for item in items)
    if thinking:
        last["thinking"] = thinking
    if "logprobs" in last:
        last["logprobs"] = [lp for item in items for lp in item.get("logprobs", [])]
    return last


def embed_endpoint(state: RunnerState) -> Callable[[Request], Any]:
    async def embed(request: Request) -> Response:
        try:
            body = await read_json(request)
            model = _model(state, body)
            texts = body.get("input", body.get("prompt"))
            if isinstance(texts, str):
                texts = [texts]
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise BadRequest("`input` must be a string or a list of strings")
            truncate = field(body, "truncate", bool, True)
            normalize = field(body, "normalize", bool, True)  # False: the legacy endpoint
            dimensions = field(body, "dimensions", int, None)
            options = field(body, "options", dict, {})
            if dimensions is not None and not 1 <= dimensions <= model.n_embd:
                raise BadRequest(f"`dimensions` must be in [1, {model.n_embd}], got {dimensions}")
            vectors, count = await asyncio.to_thread(
                model.embed_with_count,
                texts,
                truncate=truncate,
                normalize=normalize,
                options=options,
            )
        except Exception as exc:
            return error_response(exc)
        if dimensions is not None:
            vectors = [v[:dimensions] for v in vectors]
            if normalize:
                vectors = [_renormalized(v) for v in vectors]
        return JSONResponse({"embeddings": vectors, "prompt_eval_count": count})

    return embed


def _renormalized(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else vector


def _model(state: RunnerState, body: Mapping[str, Any]) -> Any:
    if not state.loaded.is_set():
        raise LlamahostError(state.error or "the model is still loading")
    template = field(body, "template", str, None) or None
    system = field(body, "system", str, None)
    history = field(body, "history", list, [])
    return state.model_for(template, system, history)


# ---- health and facts -----------------------------------------------------------------------


def health_endpoint(state: RunnerState) -> Callable[[Request], Any]:
    async def health(request: Request) -> Response:
        status = state.status
        if status == "ok":
            return JSONResponse({"status": "ok"})
        if status == "error":
            return JSONResponse({"status": "error", "error": state.error}, status_code=500)
        return JSONResponse({"status": "loading", "progress": state.progress}, status_code=503)

    return health


def info_endpoint(state: RunnerState) -> Callable[[Request], Any]:
    async def info(request: Request) -> Response:
        if not state.loaded.is_set():
            return error_response(LlamahostError(state.error or "the model is still loading"))
        from llamahost.chat.capabilities import model_capabilities

        model = state.model
        return JSONResponse(
            {
                "n_ctx": state.engine.n_slot_ctx,
                "n_ctx_train": model.n_ctx_train,
                "parallel": state.engine.parallel,
                "n_params": model.n_params,
                "size": model.size,
                "load_duration": state.load_duration_ns,
                "memory": state.memory,
                "offload": (
                    {"gpu_layers": state.offloaded[0], "layers": state.offloaded[1]}
                    if state.offloaded
                    else None
                ),
                "capabilities": model_capabilities(model.chat_template, state.metadata),
                "metadata": state.metadata,
            }
        )

    return info


def slots_endpoint(state: RunnerState) -> Callable[[Request], Any]:
    async def slots(request: Request) -> Response:
        if not state.loaded.is_set():
            return error_response(LlamahostError(state.error or "the model is still loading"))
        return JSONResponse(state.engine.slots())

    return slots


def create_app(state: RunnerState, *, secret: str | None = None) -> ASGIApp:
    """The runner's ASGI app over `state` (which may still be loading)."""
    from llamahost.runner.llama_server_api import routes as llama_server_routes

    routes = [
        Route("/health", health_endpoint(state), methods=["GET"]),
        Route("/info", info_endpoint(state), methods=["GET"]),
        Route("/slots", slots_endpoint(state), methods=["GET"]),
        Route("/api/generate", generate_endpoint(state), methods=["POST"]),
        Route("/api/chat", chat_endpoint(state), methods=["POST"]),
        Route("/api/embed", embed_endpoint(state), methods=["POST"]),
        *llama_server_routes(state),
    ]
    return SecretAuth(Starlette(routes=routes), secret)
