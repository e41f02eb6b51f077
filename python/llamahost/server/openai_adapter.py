"""OpenAI <-> Ollama: requests in, answers out, errors in OpenAI's shape.

``/v1`` has no inference of its own. Each request becomes the Ollama request
(``server/schemas.py``) that ``/api/chat``, ``/api/generate`` or ``/api/embed`` would
receive; it runs on the same path as those routes (``routes_inference``); its Ollama
answer objects are converted back::

    ChatCompletionRequest --chat_request()-->  ChatRequest    --chat_events()-->
    Ollama ChatResponse objects --ChatConverter--> ChatCompletion / chunks

    CompletionRequest --completion_request()--> GenerateRequest --generate_events()-->
    GenerateResponse objects --CompletionConverter--> Completion / chunks

    EmbeddingRequest --embed_request()--> EmbedRequest --embed_events()-->
    EmbedResponse --embedding_list()--> EmbeddingList

What is converted follows Ollama's ``openai/openai.go``: ``max_tokens`` ->
``num_predict``, ``stop`` as a list, ``response_format`` -> ``format``,
``reasoning_effort`` -> ``think``, tool calls with their arguments as a JSON string,
``finish_reason`` ``tool_calls`` when the model called a tool, ids ``chatcmpl-``/``cmpl-``,
``system_fingerprint`` ``fp_ollama``, usage from ``prompt_eval_count``/``eval_count``.
Where Ollama is weak this does better (the README's table says where): the
``temperature``/``top_p`` defaults of 1 apply only when the Modelfile sets none, a
message's content parts stay one message, the streamed ``role`` comes once, ids are
random enough not to collide, and a field that cannot be honoured is a 400 naming it
rather than silently dropped.

A request field that cannot be honoured is an ``openai_errors.OpenAIError`` (400) naming
it in ``param``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import secrets
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from llamahost.engine.options import Options
from llamahost.errors import OptionError
from llamahost.server.openai_errors import OpenAIError, unsupported
from llamahost.server.openai_schemas import (
    AllowedToolsChoice,
    AudioPart,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CustomTool,
    CustomToolChoice,
    Delta,
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    FilePart,
    FinishReason,
    FunctionTool,
    ImagePart,
    JSONObjectFormat,
    JSONSchemaResponseFormat,
    NamedToolChoice,
    RefusalPart,
    ResponseMessage,
    ResponseToolCall,
    TextPart,
    TokenLogprob,
    ToolCallFunction,
    TopLogprob,
    Usage,
)
from llamahost.server.schemas import ChatRequest, EmbedRequest, GenerateRequest

if TYPE_CHECKING:
    from llamahost.server.routes_inference import Target

#: OpenAI's defaults, used when neither the request nor the Modelfile sets them.
OPENAI_DEFAULTS = {"temperature": 1.0, "top_p": 1.0}
_IMAGE_PREFIXES = (
    *(f"data:image/{kind};base64," for kind in ("jpeg", "jpg", "png", "webp")),
    "data:;base64,",
)
_EFFORT_TO_THINK: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
}


# ---- requests -----------------------------------------------------------------------------


OllamaRequestT = TypeVar("OllamaRequestT", ChatRequest, GenerateRequest, EmbedRequest)


@dataclass(frozen=True)
class Converted(Generic[OllamaRequestT]):
    """An OpenAI request as the Ollama request that runs it, and what the answer needs."""

    request: OllamaRequestT
    """The Ollama request (ChatRequest, GenerateRequest or EmbedRequest)."""
    set_options: frozenset[str]
    """Ollama option names the OpenAI request set (OpenAI's defaults fill the others)."""
    stream: bool = False
    """Server-sent events."""
    include_usage: bool = False
    """A usage chunk before ``[DONE]``."""
    logprobs: bool = False
    """Log probabilities were asked for."""
    echo: str = ""
    """Text to put before a completion (``echo``)."""


def _sampling_options(
    body: ChatCompletionRequest | CompletionRequest,
    max_tokens: int | None,
    max_tokens_param: str = "max_tokens",
) -> dict[str, Any]:
    """Ollama options from OpenAI's sampling fields, checked as the engine checks them
    (a 400 naming the OpenAI field: `max_tokens_param` for ``num_predict``)."""
    options: dict[str, Any] = {}
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    for name in ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty"):
        value = getattr(body, name)
        if value is not None:
            options[name] = value
    if body.stop is not None:
        options["stop"] = [body.stop] if isinstance(body.stop, str) else list(body.stop)
    try:
        Options.from_mapping(options)
    except OptionError as exc:
        param = max_tokens_param if exc.option == "num_predict" else exc.option
        raise OpenAIError(400, str(exc), param=param) from None
    return options


def _only_one(param: str, value: int | None) -> None:
    if value is not None and value != 1:
        raise OpenAIError(
            400,
            f"`{param}` must be 1: one choice per request is supported, got {value}",
            param=param,
            code="unsupported_value",
        )


def _no_logit_bias(bias: Mapping[str, float] | None) -> None:
    if bias:
        raise unsupported("logit_bias", "`logit_bias` is not supported")


def with_openai_defaults(target: Target, converted: Converted[Any]) -> Target:
    """`target` with OpenAI's ``temperature``/``top_p`` of 1 where neither the request
    nor the model's Modelfile set them (Ollama sets them always, over the Modelfile)."""
    defaults = {
        name: value
        for name, value in OPENAI_DEFAULTS.items()
        if name not in converted.set_options and name not in target.resolved.parameters
    }
    if not defaults:
        return target
    return dataclasses.replace(target, options=target.options.merged(defaults))


def _text_of(
    content: str | Sequence[Any] | None, where: str, *, images: list[str] | None = None
) -> str:
    """A message's text (its text parts joined by newlines); image parts go to
    `images` (a 400 where they are not allowed), audio and file parts are a 400."""
    if content is None or isinstance(content, str):
        return content or ""
    texts: list[str] = []
    for j, part in enumerate(content):
        param = f"{where}.content[{j}]"
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, RefusalPart):
            texts.append(part.refusal)
        elif isinstance(part, ImagePart):
            if images is None:
                raise OpenAIError(400, "images are only supported in user messages", param=param)
            url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
            images.append(_image_data(url, param))
        elif isinstance(part, AudioPart):
            raise unsupported(param, "audio input is not supported")
        elif isinstance(part, FilePart):
            raise unsupported(param, "file input is not supported")
    return "\n".join(texts)


def _image_data(url: str, param: str) -> str:
    """The base64 payload of an image data URL (Ollama's ``images`` entry)."""
    if url.startswith(("http://", "https://")):
        raise unsupported(
            param, "image URLs are not supported: send the image as a base64 data URL"
        )
    for prefix in _IMAGE_PREFIXES:
        if url.startswith(prefix):
            payload = url[len(prefix) :]
            try:
                base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                break
            return payload
    raise OpenAIError(
        400,
        "invalid image: expected a data:image/{png,jpeg,jpg,webp};base64,... URL",
        param=param,
    )


def _arguments(text: str, param: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise OpenAIError(
            400, "tool call arguments must be a JSON object (as a string)", param=param
        )
    return value


def _message(index: int, message: ChatMessage, names: Mapping[str, str]) -> dict[str, Any]:
    """One OpenAI message as Ollama's message."""
    where = f"messages[{index}]"
    role = message.role
    if role == "function":
        raise unsupported(f"{where}.role", "the `function` role is not supported: use `tool`")
    if message.audio is not None:
        raise unsupported(f"{where}.audio", "audio is not supported")
    if message.function_call is not None:
        raise unsupported(
            f"{where}.function_call", "`function_call` is not supported: use `tool_calls`"
        )
    if message.content is None and role != "assistant":
        raise OpenAIError(400, f"a {role} message needs `content`", param=f"{where}.content")
    images: list[str] = []
    out: dict[str, Any] = {
        "role": "system" if role == "developer" else role,
        "content": _text_of(message.content, where, images=images if role == "user" else None),
    }
    if images:
        out["images"] = images
    if role == "assistant":
        if message.reasoning:
            out["thinking"] = message.reasoning
        calls = []
        for j, call in enumerate(message.tool_calls or []):
            param = f"{where}.tool_calls[{j}].function.arguments"
            function = {
                "name": call.function.name,
                "arguments": _arguments(call.function.arguments, param),
            }
            calls.append(
                {"id": call.id, "function": function} if call.id else {"function": function}
            )
        if calls:
            out["tool_calls"] = calls
    if role == "tool":
        if message.tool_call_id:
            out["tool_call_id"] = message.tool_call_id
        name = message.name or names.get(message.tool_call_id or "")
        if name:
            out["tool_name"] = name
    return out


def _tool_names(messages: Iterable[ChatMessage]) -> dict[str, str]:
    """Tool call id -> function name over the history (the last one wins, as Ollama)."""
    names: dict[str, str] = {}
    for message in messages:
        for call in message.tool_calls or []:
            if call.id:
                names[call.id] = call.function.name
    return names


def _tools(body: ChatCompletionRequest) -> list[dict[str, Any]] | None:
    """The tools to offer, after ``tool_choice``."""
    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(body.tools or []):
        if isinstance(tool, CustomTool):
            raise unsupported(f"tools[{i}].type", "custom tools are not supported: use functions")
        assert isinstance(tool, FunctionTool)
        tools.append(tool.model_dump(mode="json", by_alias=True, exclude_none=True))
    choice = body.tool_choice
    if choice == "none":
        return None
    keep: set[str] | None = None
    if isinstance(choice, NamedToolChoice):
        keep = {choice.function.name}
    elif isinstance(choice, AllowedToolsChoice):
        keep = {
            str(t.get("function", {}).get("name"))
            for t in choice.allowed_tools.tools
            if isinstance(t.get("function"), dict)
        }
    elif isinstance(choice, CustomToolChoice):
        raise unsupported("tool_choice", "custom tools are not supported")
    if keep is not None:
        tools = [t for t in tools if t["function"]["name"] in keep]
        if not tools:
            raise OpenAIError(
                400,
                "`tool_choice` names a function that is not in `tools`",
                param="tool_choice",
            )
    elif choice is not None and not tools:
        raise OpenAIError(400, f"`tool_choice` {choice!r} needs `tools`", param="tool_choice")
    return tools or None


def _format(body: ChatCompletionRequest) -> str | dict[str, Any] | None:
    fmt = body.response_format
    if isinstance(fmt, JSONObjectFormat):
        return "json"
    if isinstance(fmt, JSONSchemaResponseFormat):
        return fmt.json_schema.schema_ if fmt.json_schema.schema_ is not None else "json"
    return None


def _think(body: ChatCompletionRequest) -> bool | str | None:
    effort = body.reasoning.effort if body.reasoning is not None else body.reasoning_effort
    if effort is None:
        return None
    if effort not in _EFFORT_TO_THINK:
        allowed = ", ".join(_EFFORT_TO_THINK)
        raise OpenAIError(
            400, f"invalid reasoning effort {effort!r} (one of {allowed})", param="reasoning.effort"
        )
    return _EFFORT_TO_THINK[effort]


def _refuse_unsupported(body: ChatCompletionRequest) -> None:
    _only_one("n", body.n)
    _no_logit_bias(body.logit_bias)
    if body.modalities is not None and any(m != "text" for m in body.modalities):
        raise unsupported("modalities", "only text output is supported")
    for name in ("audio", "web_search_options", "functions", "function_call"):
        if getattr(body, name) is not None:
            hint = {"functions": ": use `tools`", "function_call": ": use `tool_choice`"}
            raise unsupported(name, f"`{name}` is not supported{hint.get(name, '')}")
    if body.top_logprobs and not body.logprobs:
        raise OpenAIError(400, "`top_logprobs` needs `logprobs` set to true", param="top_logprobs")


def chat_request(body: ChatCompletionRequest) -> Converted[ChatRequest]:
    """The ``/api/chat`` request for a chat completion request (OpenAIError on a field
    that cannot be honoured)."""
    _refuse_unsupported(body)
    names = _tool_names(body.messages)
    messages = [_message(i, m, names) for i, m in enumerate(body.messages)]
    if body.max_completion_tokens is not None:
        options = _sampling_options(body, body.max_completion_tokens, "max_completion_tokens")
    else:
        options = _sampling_options(body, body.max_tokens)
    stream = bool(body.stream)
    chat = ChatRequest.model_validate(
        {
            "model": body.model,
            "messages": messages,
            "stream": stream,
            "format": _format(body),
            "tools": _tools(body),
            "options": options,
            "think": _think(body),
            "logprobs": bool(body.logprobs),
            "top_logprobs": body.top_logprobs or 0,
        }
    )
    include_usage = bool(stream and body.stream_options and body.stream_options.include_usage)
    return Converted(
        request=chat,
        set_options=frozenset(options),
        stream=stream,
        include_usage=include_usage,
        logprobs=bool(body.logprobs),
    )


def _one_prompt(prompt: str | list[str] | list[int] | list[list[int]]) -> str:
    """The prompt text: a string, or a list of exactly one string."""
    if isinstance(prompt, str):
        return prompt
    texts = [p for p in prompt if isinstance(p, str)]
    if len(texts) != len(prompt):
        raise unsupported("prompt", "token ids are not supported as a prompt: send text")
    if len(texts) != 1:
        raise OpenAIError(
            400,
            f"one prompt per request is supported, got a list of {len(texts)}",
            param="prompt",
            code="unsupported_value",
        )
    return texts[0]


def completion_request(body: CompletionRequest) -> Converted[GenerateRequest]:
    """The ``/api/generate`` request for a legacy completion request."""
    _only_one("n", body.n)
    _only_one("best_of", body.best_of)
    _no_logit_bias(body.logit_bias)
    prompt = _one_prompt(body.prompt)
    if body.echo and body.logprobs is not None:
        raise unsupported("echo", "`echo` with `logprobs` is not supported (prompt logprobs)")
    options = _sampling_options(body, body.max_tokens)
    stream = bool(body.stream)
    generate = GenerateRequest.model_validate(
        {
            "model": body.model,
            "prompt": prompt,
            "suffix": body.suffix or "",
            "stream": stream,
            "options": options,
            "logprobs": body.logprobs is not None,
            "top_logprobs": body.logprobs or 0,
        }
    )
    include_usage = bool(stream and body.stream_options and body.stream_options.include_usage)
    return Converted(
        request=generate,
        set_options=frozenset(options),
        stream=stream,
        include_usage=include_usage,
        logprobs=body.logprobs is not None,
        echo=prompt if body.echo else "",
    )


def embed_request(body: EmbeddingRequest) -> Converted[EmbedRequest]:
    """The ``/api/embed`` request for an embeddings request."""
    inputs = [body.input] if isinstance(body.input, str) else body.input
    if not inputs:
        raise OpenAIError(400, "`input` must not be empty", param="input")
    texts: list[str] = []
    for i, item in enumerate(inputs):
        if not isinstance(item, str):
            raise unsupported("input", "token ids are not supported as input: send text")
        if not item:
            raise OpenAIError(400, "`input` must not contain empty strings", param=f"input[{i}]")
        texts.append(item)
    embed = EmbedRequest.model_validate(
        {"model": body.model, "input": texts, "dimensions": body.dimensions or 0}
    )
    return Converted(request=embed, set_options=frozenset())


# ---- answers ------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    """``chatcmpl-``/``cmpl-``/``call_`` and 24 random hex digits."""
    return prefix + secrets.token_hex(12)


def _usage(data: Mapping[str, Any]) -> Usage:
    prompt = int(data.get("prompt_eval_count") or 0)
    completion = int(data.get("eval_count") or 0)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _finish_reason(data: Mapping[str, Any]) -> Literal["stop", "length"]:
    """``length`` when the answer ran out of tokens, else ``stop`` (also for Ollama's
    ``load``: an empty prompt only loads the model)."""
    return "length" if data.get("done_reason") == "length" else "stop"


def _token_logprobs(entries: Iterable[Mapping[str, Any]]) -> list[TokenLogprob]:
    return [
        TokenLogprob(
            token=e["token"],
            logprob=e["logprob"],
            bytes=e.get("bytes") or list(e["token"].encode()),
            top_logprobs=[
                TopLogprob(
                    token=t["token"],
                    logprob=t["logprob"],
                    bytes=t.get("bytes") or list(t["token"].encode()),
                )
                for t in e.get("top_logprobs") or []
            ],
        )
        for e in entries
    ]


def _tool_calls(
    calls: Iterable[Mapping[str, Any]], first_index: int | None
) -> list[ResponseToolCall]:
    """Ollama's tool calls as OpenAI's: arguments as a JSON string, an id for each, and
    (in streamed deltas, from `first_index` on) their index."""
    out = []
    for offset, call in enumerate(calls):
        function = call.get("function") or {}
        out.append(
            ResponseToolCall(
                index=None if first_index is None else first_index + offset,
                id=call.get("id") or new_id("call_"),
                function=ToolCallFunction(
                    name=str(function.get("name", "")),
                    arguments=json.dumps(function.get("arguments") or {}, ensure_ascii=False),
                ),
            )
        )
    return out


class ChatConverter:
    """Ollama's chat answer objects -> a ChatCompletion, or chunks (one request's state)."""

    def __init__(self, model: str, converted: Converted[Any]) -> None:
        self.model = model
        self.converted = converted
        self.id = new_id("chatcmpl-")
        self.created = int(time.time())
        self._calls = 0
        self._started = False

    def completion(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The whole answer (``stream`` false) from Ollama's one object."""
        message = data.get("message") or {}
        calls = _tool_calls(message.get("tool_calls") or [], None)
        logprobs = None
        if self.converted.logprobs:
            logprobs = ChoiceLogprobs(content=_token_logprobs(data.get("logprobs") or []))
        choice = Choice(
            message=ResponseMessage(
                content=message.get("content") or "",
                reasoning=message.get("thinking") or None,
                tool_calls=calls or None,
            ),
            finish_reason="tool_calls" if calls else _finish_reason(data),
            logprobs=logprobs,
        )
        return ChatCompletion(
            id=self.id, created=self.created, model=self.model, choices=[choice], usage=_usage(data)
        ).to_wire()

    def chunks(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The chunks for one of Ollama's streamed objects (none for an empty one)."""
        message = data.get("message") or {}
        calls = _tool_calls(message.get("tool_calls") or [], self._calls)
        self._calls += len(calls)
        content = str(message.get("content") or "")
        thinking = str(message.get("thinking") or "")
        entries = data.get("logprobs") or []
        first = not self._started
        done = bool(data.get("done"))
        out: list[dict[str, Any]] = []
        if first or content or thinking or calls or entries or done:
            finish: FinishReason | None = None
            if done:
                finish = "tool_calls" if self._calls else _finish_reason(data)
            delta = Delta(
                role="assistant" if first else None,
                content=content if content or first else None,
                reasoning=thinking or None,
                tool_calls=calls or None,
            )
            logprobs = ChoiceLogprobs(content=_token_logprobs(entries)) if entries else None
            out.append(
                self._chunk([ChunkChoice(delta=delta, finish_reason=finish, logprobs=logprobs)])
            )
            self._started = True
        if done and self.converted.include_usage:
            out.append(self._chunk([], usage=_usage(data)))
        return out

    def _chunk(self, choices: list[ChunkChoice], usage: Usage | None = None) -> dict[str, Any]:
        return ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage
        ).to_wire()


class CompletionConverter:
    """Ollama's generate answer objects -> a Completion, or chunks (one request's state)."""

    def __init__(self, model: str, converted: Converted[Any]) -> None:
        self.model = model
        self.converted = converted
        self.id = new_id("cmpl-")
        self.created = int(time.time())
        self._offset = 0
        self._echoed = False

    def _text(self, data: Mapping[str, Any]) -> str:
        text = str(data.get("response") or "")
        if self.converted.echo and not self._echoed:
            self._echoed = True
            text = self.converted.echo + text
        return text

    def _logprobs(self, data: Mapping[str, Any]) -> CompletionLogprobs | None:
        if not self.converted.logprobs:
            return None
        entries = data.get("logprobs") or []
        offsets = []
        for entry in entries:
            offsets.append(self._offset)
            self._offset += len(entry["token"])
        return CompletionLogprobs(
            tokens=[e["token"] for e in entries],
            token_logprobs=[e["logprob"] for e in entries],
            top_logprobs=[
                {t["token"]: t["logprob"] for t in e.get("top_logprobs") or []} for e in entries
            ],
            text_offset=offsets,
        )

    def completion(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The whole answer (``stream`` false)."""
        choice = CompletionChoice(
            text=self._text(data), finish_reason=_finish_reason(data), logprobs=self._logprobs(data)
        )
        return Completion(
            id=self.id, created=self.created, model=self.model, choices=[choice], usage=_usage(data)
        ).to_wire()

    def chunks(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The chunks for one of Ollama's streamed objects."""
        text = self._text(data)
        done = bool(data.get("done"))
        logprobs = self._logprobs(data)
        out: list[dict[str, Any]] = []
        if text or done or (logprobs is not None and logprobs.tokens):
            finish = _finish_reason(data) if done else None
            choice = CompletionChoice(text=text, finish_reason=finish, logprobs=logprobs)
            out.append(self._chunk([choice]))
        if done and self.converted.include_usage:
            out.append(self._chunk([], usage=_usage(data)))
        return out

    def _chunk(self, choices: list[CompletionChoice], usage: Usage | None = None) -> dict[str, Any]:
        return Completion(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage
        ).to_wire()


def float32_base64(vector: Sequence[float]) -> str:
    """A vector as little-endian float32 bytes in base64 (OpenAI's ``base64`` format)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embedding_list(
    model: str, data: Mapping[str, Any], encoding_format: str | None
) -> dict[str, Any]:
    """``/api/embed``'s answer as OpenAI's embeddings list."""
    vectors = data.get("embeddings") or []
    encode = float32_base64 if encoding_format == "base64" else list
    count = int(data.get("prompt_eval_count") or 0)
    return EmbeddingList(
        data=[Embedding(embedding=encode(v), index=i) for i, v in enumerate(vectors)],
        model=model,
        usage=EmbeddingUsage(prompt_tokens=count, total_tokens=count),
    ).to_wire()


__all__ = [
    "OPENAI_DEFAULTS",
    "ChatConverter",
    "CompletionConverter",
    "Converted",
    "chat_request",
    "completion_request",
    "embed_request",
    "embedding_list",
    "float32_base64",
    "new_id",
    "with_openai_defaults",
]
