"""llama-server's own endpoints on a runner: ``/completion``, ``/embedding``, ``/tokenize``,
``/detokenize``, with llama-server's field names, response fields and SSE streaming.

Requests go through the same Model path as Ollama's endpoints; only the names differ
(``n_predict`` is ``num_predict``, ``repeat_last_n`` and the sampling fields keep their
names, ``json_schema`` is a ``format``, ``n_probs`` asks for log-probabilities).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llamahost.engine.responses import GenerateChunk, TokenLogprob
from llamahost.runner.app import BadRequest, error_response, field, read_json, respond
from llamahost.runner.state import RunnerState

#: llama-server sampling fields -> llamahost option names.
_OPTION_NAMES = {
    "n_predict": "num_predict",
    "n_keep": "num_keep",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "mirostat": "mirostat",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
    "seed": "seed",
    "stop": "stop",
    "dynatemp_range": "dynatemp_range",
    "dynatemp_exponent": "dynatemp_exponent",
    "top_n_sigma": "top_n_sigma",
    "xtc_probability": "xtc_probability",
    "xtc_threshold": "xtc_threshold",
    "dry_multiplier": "dry_multiplier",
    "dry_base": "dry_base",
    "dry_allowed_length": "dry_allowed_length",
    "dry_penalty_last_n": "dry_penalty_last_n",
    "dry_sequence_breakers": "dry_sequence_breakers",
}


def _options(body: Mapping[str, Any]) -> dict[str, Any]:
    options = {ours: body[theirs] for theirs, ours in _OPTION_NAMES.items() if theirs in body}
    if "seed" in options and options["seed"] == 0xFFFFFFFF:  # llama-server's "random"
        options["seed"] = -1
    return options


def _logit_bias(body: Mapping[str, Any], vocab_size: int, ignore_eos: bool, eog: list[int]) -> Any:
    raw = body.get("logit_bias")
    bias: dict[int, float] = {}
    pairs: list[Any]
    if raw is None:
        pairs = []
    elif isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        pairs = raw
    else:
        raise BadRequest("`logit_bias` must be [[token, bias], ...] or {token: bias}")
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise BadRequest("`logit_bias` entries must be [token, bias] pairs")
        token, value = pair
        try:
            token = int(token)
        except (TypeError, ValueError):
            raise BadRequest(f"`logit_bias` token {token!r} is not a token id") from None
        if not 0 <= token < vocab_size:
            raise BadRequest(f"`logit_bias` token {token} is outside [0, {vocab_size - 1}]")
        bias[token] = -math.inf if value is False else float(value)
    if ignore_eos:
        bias.update({t: -math.inf for t in eog})
    return bias or None


def _prompt_tokens(model: Any, prompt: Any) -> tuple[str | None, list[int] | None]:
    """llama-server's ``prompt``: text, token ids, or a mix of both in one list."""
    if isinstance(prompt, str):
        return prompt, None
    if isinstance(prompt, list):
        tokens: list[int] = []
        for item in prompt:
            if isinstance(item, int) and not isinstance(item, bool):
                tokens.append(item)
            elif isinstance(item, str):
                tokens.extend(model.tokenize(item, add_special=False, parse_special=True))
            else:
                raise BadRequest("`prompt` list items must be token ids or strings")
        return None, tokens
    raise BadRequest("`prompt` must be a string or a list of token ids")


def _probabilities(entries: list[TokenLogprob]) -> list[dict[str, Any]]:
    return [
        {
            "content": e.token,
            "probs": [{"tok_str": t.token, "prob": math.exp(t.logprob)} for t in e.top_logprobs],
        }
        for e in entries
    ]


def _completion_line(chunk: GenerateChunk, n_probs: int) -> dict[str, Any]:
    line: dict[str, Any] = {"content": chunk.text, "stop": chunk.done, "tokens": chunk.tokens}
    if n_probs:
        line["completion_probabilities"] = _probabilities(chunk.logprobs)
    if chunk.done:
        m = chunk.metrics
        assert m is not None
        evaluated = m.prompt_eval_count - m.prompt_cached_count
        prompt_ms = m.prompt_eval_duration / 1e6
        predicted_ms = m.eval_duration / 1e6
        line.update(
            stop_type={"stop": "eos", "length": "limit"}.get(chunk.done_reason or "", "none"),
            tokens_predicted=m.eval_count,
            tokens_evaluated=m.prompt_eval_count,
            tokens_cached=m.prompt_cached_count,
            truncated=False,
            timings={
                "prompt_n": evaluated,
                "prompt_ms": prompt_ms,
                "prompt_per_token_ms": prompt_ms / evaluated if evaluated else 0.0,
                "prompt_per_second": evaluated / (prompt_ms / 1e3) if prompt_ms else 0.0,
                "predicted_n": m.eval_count,
                "predicted_ms": predicted_ms,
                "predicted_per_token_ms": predicted_ms / m.eval_count if m.eval_count else 0.0,
                "predicted_per_second": m.eval_count / (predicted_ms / 1e3)
                if predicted_ms
                else 0.0,
            },
        )
    return line


def _sse_event(item: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(item).encode() + b"\n\n"


def _merge_completion(items: list[dict[str, Any]], n_probs: int) -> dict[str, Any]:
    merged = dict(items[-1]) if items else {}
    merged["content"] = "".join(i["content"] for i in items)
    merged["tokens"] = [t for i in items for t in i["tokens"]]
    if n_probs:
        merged["completion_probabilities"] = [
            p for i in items for p in i["completion_probabilities"]
        ]
    return merged


def completion_endpoint(state: RunnerState) -> Callable[[Request], Any]:
    async def completion(request: Request) -> Response:
        try:
            body = await read_json(request)
            if not state.loaded.is_set():
                raise BadRequest(state.error or "the model is still loading")
            model = state.model
            text, tokens = _prompt_tokens(model, body.get("prompt", ""))
            n_probs = field(body, "n_probs", int, 0)
            schema = body.get("json_schema")
            grammar = field(body, "grammar", str, None) or None
            if schema is not None and grammar is not None:
                raise BadRequest("give either `grammar` or `json_schema`, not both")
            vocab = model.native.vocab
            kwargs: dict[str, Any] = {
                "options": _options(body),
                "format": schema,
                "grammar": grammar,
                "logit_bias": _logit_bias(
                    body, vocab.n_tokens, field(body, "ignore_eos", bool, False), vocab.eog_tokens()
                ),
                "logprobs": n_probs > 0,
                "top_logprobs": min(n_probs, 20),
            }
            cache_prompt = field(body, "cache_prompt", bool, True)
            stream = field(body, "stream", bool, False)
        except Exception as exc:
            return error_response(exc)

        def make(cancel: threading.Event) -> Iterator[dict[str, Any]]:
            if tokens is not None:
                prompt, context = "", tokens
            else:
                prompt, context = text or "", None
            chunks = model.generate(
                prompt,
                stream=True,
                special=True,
                context=context,
                cache_prompt=cache_prompt,
                cancel=cancel,
                **kwargs,
            )
            return (_completion_line(c, n_probs) for c in chunks)

        return await respond(
            request,
            make,
            stream=stream,
            merge=lambda items: _merge_completion(items, n_probs),
            encode=_sse_event,
            error_event=lambda message: {"error": {"message": message}},  # llama-server's
            media_type="text/event-stream",
        )

    return completion


def embedding_endpoint(state: RunnerState) -> Callable[[Request], Any]:
    async def embedding(request: Request) -> Response:
        try:
            body = await read_json(request)
            if not state.loaded.is_set():
                raise BadRequest(state.error or "the model is still loading")
            content = body.get("content", body.get("input"))
            texts = [content] if isinstance(content, str) else content
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise BadRequest("`content` must be a string or a list of strings")
            vectors = await asyncio.to_thread(state.model.embed, texts)
        except Exception as exc:
            return error_response(exc)
        return JSONResponse([{"index": i, "embedding": [v]} for i, v in enumerate(vectors)])

    return embedding


def tokenize_endpoint(state: RunnerState) -> Callable[[Request], Any]:
    async def tokenize(request: Request) -> Response:
        try:
            body = await read_json(request)
            if not state.loaded.is_set():
                raise BadRequest(state.error or "the model is still loading")
            content = field(body, "content", str, "")
            add_special = field(body, "add_special", bool, False)
            parse_special = field(body, "parse_special", bool, True)
            with_pieces = field(body, "with_pieces", bool, False)
            model = state.model
            tokens = model.tokenize(content, add_special=add_special, parse_special=parse_special)
        except Exception as exc:
            return error_response(exc)
        if not with_pieces:
            return JSONResponse({"tokens": tokens})
        vocab = model.native.vocab
        pieces = []
        for token in tokens:
            raw = vocab.token_to_piece(token, True)
            try:
                piece: Any = raw.decode("utf-8")
            except UnicodeDecodeError:
                piece = list(raw)
            pieces.append({"id": token, "piece": piece})
        return JSONResponse({"tokens": pieces})

    return tokenize


def detokenize_endpoint(state: RunnerState) -> Callable[[Request], Any]:
    async def detokenize(request: Request) -> Response:
        try:
            body = await read_json(request)
            if not state.loaded.is_set():
                raise BadRequest(state.error or "the model is still loading")
            tokens = field(body, "tokens", list, [])
            if not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
                raise BadRequest("`tokens` must be a list of token ids")
            content = state.model.detokenize(tokens, render_special=True)
        except Exception as exc:
            return error_response(exc)
        return JSONResponse({"content": content})

    return detokenize


def routes(state: RunnerState) -> list[Route]:
    return [
        Route("/completion", completion_endpoint(state), methods=["POST"]),
        Route("/completions", completion_endpoint(state), methods=["POST"]),
        Route("/embedding", embedding_endpoint(state), methods=["POST"]),
        Route("/tokenize", tokenize_endpoint(state), methods=["POST"]),
        Route("/detokenize", detokenize_endpoint(state), methods=["POST"]),
    ]
