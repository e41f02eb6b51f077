"""Errors in Ollama's shape (``{"error": "..."}``), request parsing, and model names.

Every route (model management here, inference in ``routes_inference``) uses these:

    request = await parse_body(http_request, ChatRequest)   # APIError(400) on bad input
    name = model_name(request.model)                         # APIError(400) on a bad name
    raise APIError(404, not_found_message(request.model))   # 'model "x" not found, ...'

Statuses are Ollama's: 400 for a missing or malformed body, an unknown field (named), a
wrong type or a bad name; 404 for an unknown model or blob; 405 for a wrong method; 413
for an oversized body; 500 otherwise. :func:`status_for` maps the library's exceptions.

No message ever carries the store's absolute path: :func:`redact` turns a blob path into
its digest and the store folder into ``$LLAMAHOST_MODELS``, and the app's exception
handlers apply it to every error they send.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from llamahost.errors import (
    BlobNotFoundError,
    DigestMismatchError,
    InvalidDigestError,
    InvalidNameError,
    LlamahostError,
    ManifestNotFoundError,
    ModelfileError,
    OptionError,
    RegistryError,
    RegistryNotFoundError,
    TemplateError,
)
from llamahost.store.model_store import ModelStore
from llamahost.store.names import ModelName, is_pypi_spec

logger = logging.getLogger("llamahost.server")

WireT = TypeVar("WireT")
STORE_PLACEHOLDER = "$LLAMAHOST_MODELS"
_MAX_SHOWN = 120
#: json.dumps with options builds an encoder on every call; this one is built once.
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class APIError(Exception):
    """An error answer: HTTP ``status`` and the ``{"error": message}`` body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """``{"error": message}`` with ``status``."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def json_bytes(data: Any) -> bytes:
    """Compact UTF-8 JSON, as the server writes its answers (one line per token)."""
    return _COMPACT_JSON.encode(data).encode()


def error_line(message: str) -> bytes:
    """The NDJSON line that ends a stream with an error."""
    return json.dumps({"error": message}).encode() + b"\n"


# ---- request bodies ---------------------------------------------------------------------


async def parse_body(request: Request, schema: type[WireT]) -> WireT:
    """The request's JSON body validated as ``schema`` (a WireModel subclass).

    APIError(400) for an empty body ("missing request body", Ollama's words), invalid
    JSON, an unknown field or a wrong type, naming the field.
    """
    try:
        body = await request.body()
    except ClientDisconnect:
        raise APIError(400, "the client disconnected before sending the request body") from None
    if not body.strip():
        raise APIError(400, "missing request body")
    try:
        return schema.model_validate_json(body)  # type: ignore[attr-defined, no-any-return]
    except ValidationError as exc:
        raise APIError(400, validation_message(exc)) from None


def validation_message(exc: ValidationError) -> str:
    """One line naming the first problem: ``unknown field "x"``, ``invalid JSON: ...``,
    ``"options": must be an object, got a string``."""
    error = exc.errors(include_url=False)[0]
    kind, loc, message = error["type"], error["loc"], error["msg"]
    where = _field_path(loc)
    if kind == "json_invalid":
        return f"invalid JSON: {message.removeprefix('Invalid JSON: ')}"
    if kind == "extra_forbidden":
        return f'unknown field "{where}"'
    if kind == "model_type" and not loc:
        return "the request body must be a JSON object"
    if kind == "missing":
        return f'"{where}" is required'
    message = message.removeprefix("Value error, ")
    value = error.get("input")
    shown = f", got {_shown(value)}" if kind != "value_error" and value is not None else ""
    return f'invalid "{where}": {message[:1].lower()}{message[1:]}{shown}'


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not re.fullmatch(r"[A-Za-z_$][\w$]*", part):
            continue  # a union member's name, not a field
        else:
            path += f".{part}" if path else part
    return path


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool)) else type(value).__name__
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


# ---- model names ------------------------------------------------------------------------


def model_name(text: str, *, field: str = "model") -> ModelName:
    """The store name for a request's model text; ``pypi:<package>`` is
    ``pypi/<package>:latest``. APIError(400) when empty ("model is required") or invalid."""
    if not text:
        raise APIError(400, f"{field} is required")
    try:
        if is_pypi_spec(text):
            from llamahost.store.pypi_source import pypi_model_name

            return pypi_model_name(text)
        return ModelName.parse(text)
    except InvalidNameError as exc:
        raise APIError(400, str(exc)) from None


def not_found_message(text: str) -> str:
    """Ollama's answer for an unknown model in an inference request."""
    return f'model "{text}" not found, try pulling it first'


# ---- exceptions -> statuses -------------------------------------------------------------


def status_for(exc: BaseException) -> int:
    """The HTTP status for an exception the library raised on purpose (else 500)."""
    if isinstance(exc, APIError):
        return exc.status
    if isinstance(exc, (RegistryNotFoundError, ManifestNotFoundError, BlobNotFoundError)):
        return 404
    if isinstance(exc, RegistryError):
        return 502  # the registry's failure, not ours and not the client's
    if isinstance(
        exc,
        (
            InvalidNameError,
            InvalidDigestError,
            DigestMismatchError,
            OptionError,
            ModelfileError,
            TemplateError,
        ),
    ):
        return 400
    return 500


def redact(message: str, store_root: Path | None) -> str:
    """``message`` without the store's absolute path: a blob path becomes its digest
    (``sha256:<hex>``), any other path inside the store starts with ``$LLAMAHOST_MODELS``."""
    if store_root is None:
        return message
    roots = {str(store_root), os.path.abspath(store_root), os.path.realpath(store_root)}
    for root in sorted(roots, key=len, reverse=True):
        if not root or root == os.sep:
            continue
        blob = re.escape(os.path.join(root, "blobs", "sha256-"))
        message = re.sub(blob + r"([0-9a-f]{64})", r"sha256:\1", message)
        message = message.replace(root, STORE_PLACEHOLDER)
    return message


def exception_message(exc: BaseException) -> str:
    """The text of an error for a client (an unexpected one names its type)."""
    if isinstance(exc, APIError):
        return exc.message
    if isinstance(exc, LlamahostError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}"
    return f"internal error: {type(exc).__name__}: {exc}"


def store_of(request: Request) -> ModelStore:
    """The app's model store (``app.state.store``)."""
    store: ModelStore = request.app.state.store
    return store


def store_root_of(request: Request) -> Path | None:
    store = getattr(request.app.state, "store", None)
    root = getattr(store, "root", None)
    return root if isinstance(root, Path) else None


def error_for(request: Request, exc: BaseException) -> Response:
    """The error answer for ``exc``, redacted."""
    message = redact(exception_message(exc), store_root_of(request))
    headers = exc.headers if isinstance(exc, APIError) else None
    return error_response(status_for(exc), message, headers)


async def handle_api_error(request: Request, exc: Exception) -> Response:
    """Exception handler: APIError and LlamahostError in Ollama's shape."""
    response = error_for(request, exc)
    if response.status_code >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    return response


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Exception handler: the router's 404/405 as gin words them, in Ollama's shape."""
    assert isinstance(exc, HTTPException)
    words = {404: "404 page not found", 405: "405 method not allowed"}
    message = words.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, message, dict(exc.headers or {}))


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Exception handler of last resort: 500 with the error's type and message."""
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, redact(exception_message(exc), store_root_of(request)))


__all__ = [
    "APIError",
    "error_for",
    "error_line",
    "error_response",
    "exception_message",
    "handle_api_error",
    "handle_http_exception",
    "handle_unexpected",
    "json_bytes",
    "model_name",
    "not_found_message",
    "parse_body",
    "redact",
    "status_for",
    "store_of",
    "store_root_of",
    "validation_message",
]
