"""OpenAI's errors: ``{"error": {"message", "type", "param", "code"}}`` on every ``/v1`` answer.

    raise OpenAIError(400, "`n` must be 1 ...", param="n", code="unsupported_value")
    error_payload(404, 'model "x" not found', "model", "model_not_found")
    validation_error(exc, document)        # a pydantic error -> a 400 naming the field

``type`` follows Ollama's compatibility layer (``invalid_request_error`` for a 400,
``not_found_error`` for a 404, ``api_error`` otherwise), with every other 4xx
``invalid_request_error`` too; ``code`` is OpenAI's where one applies
(``model_not_found``, ``invalid_api_key``, ``unknown_parameter``,
``unsupported_parameter``, ``unsupported_value``), else null.

:class:`OpenAIErrorShape` is the ASGI middleware that gives ``/v1`` errors written
elsewhere in Ollama's shape (``{"error": "text"}``: the security middleware's 401, 403 and
413, the router's 404 and 405, the app's exception handlers) OpenAI's shape. It is light
to import: ``server/app.py`` installs it outermost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llamahost.server.errors import APIError, json_bytes, validation_message

#: Where OpenAI's API is served.
V1_PREFIX = "/v1"


class OpenAIError(APIError):
    """An error answer with OpenAI's ``param`` (the field at fault) and ``code``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, headers)
        self.param = param
        self.code = code


def error_type(status: int) -> str:
    """OpenAI's ``type`` for a status: Ollama's choice (``invalid_request_error`` for a
    400, ``not_found_error`` for a 404, else ``api_error``), with every other 4xx the
    client's fault too (``invalid_request_error``)."""
    if status == 404:
        return "not_found_error"
    if 400 <= status < 500:
        return "invalid_request_error"
    return "api_error"


def error_payload(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``."""
    if code is None and status == 401:
        code = "invalid_api_key"
    body = {"message": message, "type": error_type(status), "param": param, "code": code}
    return {"error": body}


def unsupported(param: str, message: str) -> OpenAIError:
    """A 400 for a field llamahost cannot honour."""
    return OpenAIError(400, message, param=param, code="unsupported_parameter")


def validation_error(exc: ValidationError, document: Any = None) -> OpenAIError:
    """A 400 naming the field a request body got wrong: of the errors pydantic reports
    (one per member of a union that did not match), the deepest one. `document` (the
    parsed body) tells field names from the union members' names in an error's place."""
    errors = exc.errors(include_url=False)
    first = max(errors, key=lambda e: len(_field_parts(e["loc"], document)))
    kind, param = first["type"], field_path(first["loc"], document)
    if kind == "json_invalid":
        detail = validation_message(exc).removeprefix("invalid JSON: ")
        return OpenAIError(400, f"the request body is not valid JSON: {detail}")
    if kind == "extra_forbidden":
        return OpenAIError(400, f'unknown field "{param}"', param=param, code="unknown_parameter")
    if kind == "model_type" and not param:
        return OpenAIError(400, "the request body must be a JSON object")
    if kind == "missing":
        return OpenAIError(400, f'"{param}" is required', param=param)
    message = str(first["msg"]).removeprefix("Value error, ")
    value = first.get("input")
    shown = ""
    if isinstance(value, (str, int, float, bool)) and kind != "value_error":
        text = json.dumps(value)
        shown = f", got {text if len(text) <= 80 else text[:77] + '...'}"
    return OpenAIError(
        400, f'invalid "{param}": {message[:1].lower()}{message[1:]}{shown}', param=param or None
    )


#: Names pydantic puts in an error's location for a union member, not a field.
_MEMBER_NAMES = frozenset({"str", "int", "float", "bool", "dict", "list", "none", "literal"})


def _field_parts(loc: Sequence[int | str], document: Any = None) -> list[int | str]:
    """The parts of an error's location that are fields or list positions: a union
    member's name is dropped, and so (when the body is known) is a part that names no key
    of the object it is in, unless it is the last (a missing field): the tag of a
    discriminated union (``response_format`` -> ``json_schema`` -> ``json_schema``)."""
    parts: list[int | str] = []
    here = document
    for position, part in enumerate(loc):
        if isinstance(part, int):
            parts.append(part)
            here = here[part] if isinstance(here, list) and 0 <= part < len(here) else None
            continue
        if not part.isidentifier() or part in _MEMBER_NAMES:
            continue
        if isinstance(here, dict):
            if part not in here and position < len(loc) - 1:
                continue  # a union's tag
            here = here.get(part)
        parts.append(part)
    return parts


def field_path(loc: Sequence[int | str], document: Any = None) -> str:
    """``("messages", 0, "content", "str")`` -> ``messages[0].content`` (see
    :func:`_field_parts`)."""
    path = ""
    for part in _field_parts(loc, document):
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


class OpenAIErrorShape:
    """ASGI middleware: under ``/v1``, an error answer in Ollama's shape
    (``{"error": "text"}``, from the security middleware, the router or an exception
    handler) is rewritten in OpenAI's; answers below 400 pass untouched, streams too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != V1_PREFIX and not path.startswith(V1_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        held: list[Message] = []
        body = bytearray()

        async def rewriting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held.append(message)
                return
            if not held or message["type"] != "http.response.body":
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            start = held[0]
            data = _openai_shaped(start["status"], bytes(body))
            headers = [
                (k, v)
                for k, v in start.get("headers", [])
                if k.lower() not in (b"content-length", b"content-type")
            ]
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": data})

        await self.app(scope, receive, rewriting_send)


def _openai_shaped(status: int, body: bytes) -> bytes:
    """An error body in OpenAI's shape (one already in it is kept as it is)."""
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = {"error": body.decode("utf-8", "replace")}
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return body
    message = data.get("error") if isinstance(data, dict) else None
    return json_bytes(error_payload(status, str(message or f"HTTP {status}")))


__all__ = [
    "V1_PREFIX",
    "OpenAIError",
    "OpenAIErrorShape",
    "error_payload",
    "error_type",
    "field_path",
    "unsupported",
    "validation_error",
]
