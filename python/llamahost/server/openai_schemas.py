"""OpenAI's wire schemas: the requests ``/v1`` accepts and the responses it writes.

Field names and shapes are OpenAI's (the API reference and the official ``openai`` client's
types), each documented where it is declared with what llamahost does with it. The
conversion to and from Ollama's schemas (``server/schemas.py``) is ``openai_adapter.py``.

Requests are validated strictly: a wrong type, a value out of OpenAI's range or a field
OpenAI does not define is a 400 in OpenAI's error shape naming the field (``param``).
Every field the official client can send is declared, so whatever it sends validates;
those llamahost cannot honour are refused by the adapter (400 naming the field) when
they would change the answer, and accepted without effect when they would not (``user``,
``metadata``, ``store``, ``service_tier``, prompt-cache hints, ...).

Responses are written with :meth:`OpenAIModel.to_wire`: a field in a model's
``omit_when_none`` is left out when it is None (as Ollama's ``omitempty``), any other None
is written as ``null`` (``finish_reason``, ``logprobs``, an error's ``param`` and ``code``).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)

Temperature = Annotated[float, Field(ge=0, le=2)]
Penalty = Annotated[float, Field(ge=-2, le=2)]
Probability = Annotated[float, Field(ge=0, le=1)]
PositiveInt = Annotated[int, Field(ge=1)]
Stop = str | list[str]
"""One stop sequence or several."""
Opaque = dict[str, Any]
"""An object llamahost accepts and does not look into."""


class OpenAIModel(BaseModel):
    """Base of every schema: strict types, unknown fields refused, no NaN or infinity."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    omit_when_none: ClassVar[frozenset[str]] = frozenset()
    """Fields left out of :meth:`to_wire` when None (others are written as null)."""

    @model_serializer(mode="wrap")
    def _omit_empty(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in self.omit_when_none:
            if name in data and data[name] is None:
                del data[name]
        return data

    def to_wire(self) -> dict[str, Any]:
        """The JSON object OpenAI sends."""
        return self.model_dump(mode="json")


# ---- chat requests: messages ------------------------------------------------------------


class TextPart(OpenAIModel):
    """A text content part: ``{"type": "text", "text": "..."}``."""

    type: Literal["text"]
    """Always ``text``."""
    text: str
    """The text. A message's text parts are joined with newlines."""
    prompt_cache_breakpoint: Opaque | None = None
    """OpenAI's prompt-cache hint: accepted, no effect (llamahost caches every prefix)."""


class ImageURL(OpenAIModel):
    """Where an image part's image is."""

    url: str
    """A ``data:image/{png,jpeg,jpg,webp};base64,...`` (or ``data:;base64,...``) URL.
    An ``http(s)://`` URL is refused: the server never fetches anything."""
    detail: Literal["auto", "low", "high", "original"] | None = None
    """OpenAI's resolution hint: accepted, no effect."""


class ImagePart(OpenAIModel):
    """An image content part; needs a model with a vision projector (else a 400)."""

    type: Literal["image_url"]
    """Always ``image_url``."""
    image_url: ImageURL | str
    """The image: an object with ``url``, or (as Ollama accepts it) the URL string itself."""
    prompt_cache_breakpoint: Opaque | None = None
    """OpenAI's prompt-cache hint: accepted, no effect."""


class AudioPart(OpenAIModel):
    """An audio content part: refused (400), no model here takes audio."""

    type: Literal["input_audio"]
    """Always ``input_audio``."""
    input_audio: Opaque
    """The audio (``data``, ``format``)."""


class FilePart(OpenAIModel):
    """A file content part: refused (400), files are not supported."""

    type: Literal["file"]
    """Always ``file``."""
    file: Opaque
    """The file (``file_data``, ``file_id``, ``filename``)."""
    prompt_cache_breakpoint: Opaque | None = None
    """OpenAI's prompt-cache hint."""


class RefusalPart(OpenAIModel):
    """A refusal content part of an assistant message (kept as its text)."""

    type: Literal["refusal"]
    """Always ``refusal``."""
    refusal: str
    """The refusal's text."""


ContentPart = Annotated[
    TextPart | ImagePart | AudioPart | FilePart | RefusalPart, Field(discriminator="type")
]


class ToolCallFunction(OpenAIModel):
    """The function a tool call calls."""

    name: str
    """The function's name."""
    arguments: str
    """Its arguments: a JSON object, as a string."""


class ToolCall(OpenAIModel):
    """A tool call in an assistant message of the history (or of a response)."""

    id: str | None = None
    """The call's id; a ``tool`` message answering it names it in ``tool_call_id``."""
    type: Literal["function"] = "function"
    """Always ``function`` (OpenAI's ``custom`` tools are not supported)."""
    function: ToolCallFunction
    """What was called, with which arguments."""
    index: int | None = None
    """The call's position (streamed responses carry it; accepted when echoed back)."""


class FunctionCall(OpenAIModel):
    """OpenAI's deprecated single ``function_call``: refused (400), use ``tool_calls``."""

    name: str
    """The function's name."""
    arguments: str
    """Its arguments as a JSON string."""


class ChatMessage(OpenAIModel):
    """One message of ``messages`` (any role; the adapter checks what each role needs)."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    """``system``, ``developer`` (sent as ``system``), ``user``, ``assistant``, ``tool``;
    ``function`` (deprecated by OpenAI) is refused."""
    content: str | list[ContentPart] | None = None
    """The text, or content parts (text; images for user messages). Required except on an
    assistant message with ``tool_calls``."""
    name: str | None = None
    """A participant name: accepted, no effect; on a ``tool`` message, the tool's name."""
    tool_calls: list[ToolCall] | None = None
    """An assistant message's tool calls (``arguments`` must be a JSON object string)."""
    tool_call_id: str | None = None
    """A ``tool`` message's answer to the call with this id (its function's name is
    looked up in the earlier assistant messages)."""
    refusal: str | None = None
    """An assistant message's refusal: accepted, no effect."""
    reasoning: str | None = None
    """An assistant message's reasoning (Ollama's name for its thinking), sent back to the
    template as ``thinking``."""
    annotations: list[Opaque] | None = None
    """An assistant message's annotations, as a response carries them: accepted, no effect."""
    audio: Opaque | None = None
    """A previous audio answer: refused (400) unless null."""
    function_call: FunctionCall | None = None
    """Deprecated by OpenAI: refused (400) unless null; use ``tool_calls``."""


# ---- chat requests: tools, formats, options ---------------------------------------------


class FunctionDefinition(OpenAIModel):
    """A function the model may call."""

    name: str
    """The function's name."""
    description: str | None = None
    """What it does, shown to the model."""
    parameters: Opaque | None = None
    """Its arguments as a JSON schema object."""
    strict: bool | None = None
    """OpenAI's strict schema adherence: accepted, no effect on tool calls."""


class FunctionTool(OpenAIModel):
    """A tool: ``{"type": "function", "function": {...}}``."""

    type: Literal["function"]
    """Always ``function``."""
    function: FunctionDefinition
    """The function."""


class CustomTool(OpenAIModel):
    """OpenAI's free-form ``custom`` tool: refused (400)."""

    type: Literal["custom"]
    """Always ``custom``."""
    custom: Opaque
    """The tool's definition."""


Tool = Annotated[FunctionTool | CustomTool, Field(discriminator="type")]


class NamedFunction(OpenAIModel):
    """The function a named tool choice picks."""

    name: str
    """The function's name (one of ``tools``)."""


class NamedToolChoice(OpenAIModel):
    """``{"type": "function", "function": {"name": ...}}``: only this tool is offered."""

    type: Literal["function"]
    """Always ``function``."""
    function: NamedFunction
    """The function."""


class AllowedTools(OpenAIModel):
    """The tools an ``allowed_tools`` choice keeps."""

    mode: Literal["auto", "required"]
    """``auto`` or ``required`` (as with a plain ``tool_choice``: a call is not forced)."""
    tools: list[Opaque]
    """``{"type": "function", "function": {"name": ...}}`` for each tool kept."""


class AllowedToolsChoice(OpenAIModel):
    """``{"type": "allowed_tools", ...}``: only the listed tools are offered."""

    type: Literal["allowed_tools"]
    """Always ``allowed_tools``."""
    allowed_tools: AllowedTools
    """The tools kept and the mode."""


class CustomToolChoice(OpenAIModel):
    """A named ``custom`` tool choice: refused (400)."""

    type: Literal["custom"]
    """Always ``custom``."""
    custom: Opaque
    """The tool (``name``)."""


ToolChoice = (
    Literal["none", "auto", "required"]
    | Annotated[
        NamedToolChoice | AllowedToolsChoice | CustomToolChoice, Field(discriminator="type")
    ]
)


class JSONSchemaFormat(OpenAIModel):
    """The schema of a ``json_schema`` response format."""

    name: str | None = None
    """The schema's name (OpenAI requires one; not used)."""
    description: str | None = None
    """What the format is for (not used)."""
    schema_: Opaque | None = Field(default=None, alias="schema")
    """The JSON schema the answer must follow (Ollama's ``format``); without it, any JSON."""
    strict: bool | None = None
    """Accepted; the answer always follows the schema (a grammar constrains sampling)."""

    model_config = ConfigDict(
        strict=True, extra="forbid", allow_inf_nan=False, populate_by_name=True
    )


class TextFormat(OpenAIModel):
    """``{"type": "text"}``: free text (the default)."""

    type: Literal["text"]
    """Always ``text``."""


class JSONObjectFormat(OpenAIModel):
    """``{"type": "json_object"}``: any JSON object (Ollama's ``format: "json"``)."""

    type: Literal["json_object"]
    """Always ``json_object``."""


class JSONSchemaResponseFormat(OpenAIModel):
    """``{"type": "json_schema", "json_schema": {...}}``: JSON following the schema."""

    type: Literal["json_schema"]
    """Always ``json_schema``."""
    json_schema: JSONSchemaFormat
    """The schema."""


ResponseFormat = Annotated[
    TextFormat | JSONObjectFormat | JSONSchemaResponseFormat, Field(discriminator="type")
]


class StreamOptions(OpenAIModel):
    """``stream_options``."""

    include_usage: bool | None = None
    """Send a last chunk with ``usage`` and empty ``choices`` before ``[DONE]``."""
    include_obfuscation: bool | None = None
    """OpenAI's padding of streamed deltas: accepted, no effect (never padded)."""


class Reasoning(OpenAIModel):
    """Ollama's ``reasoning`` object (its alternative to ``reasoning_effort``)."""

    effort: str | None = None
    """As ``reasoning_effort``."""


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


class ChatCompletionRequest(OpenAIModel):
    """``POST /v1/chat/completions``."""

    model: str
    """The model's name (as ``/api/chat`` takes it)."""
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    """The conversation so far (at least one message)."""
    stream: bool | None = None
    """Server-sent events (``data: {chunk}`` ... ``data: [DONE]``) when true."""
    stream_options: StreamOptions | None = None
    """Streaming options (``include_usage``)."""
    max_tokens: PositiveInt | None = None
    """The most tokens to generate (Ollama's ``num_predict``)."""
    max_completion_tokens: PositiveInt | None = None
    """OpenAI's newer name for ``max_tokens`` (wins when both are set)."""
    temperature: Temperature | None = None
    """Sampling temperature, 0-2; unset: the Modelfile's, else OpenAI's default 1."""
    top_p: Probability | None = None
    """Nucleus sampling mass, 0-1; unset: the Modelfile's, else OpenAI's default 1."""
    seed: int | None = None
    """Random seed (0 to 2**32-2) for reproducible sampling."""
    stop: Stop | None = None
    """Stop sequences (not included in the answer)."""
    frequency_penalty: Penalty | None = None
    """Penalty by how often a token appeared, -2 to 2."""
    presence_penalty: Penalty | None = None
    """Penalty for tokens that appeared at all, -2 to 2."""
    n: PositiveInt | None = None
    """Choices to generate: only 1 (else a 400)."""
    logprobs: bool | None = None
    """Return each generated token's log probability in ``choices[].logprobs.content``."""
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    """With ``logprobs``: this many most likely alternatives per position, 0-20."""
    logit_bias: dict[str, float] | None = None
    """Token biases: only an empty object (else a 400: not supported)."""
    response_format: ResponseFormat | None = None
    """``text``, ``json_object`` or ``json_schema`` (Ollama's ``format``)."""
    tools: list[Tool] | None = None
    """Functions the model may call (``type: function``)."""
    tool_choice: ToolChoice | None = None
    """``none`` (tools not offered), ``auto``, ``required`` (offered, a call not forced),
    or a named function / ``allowed_tools`` (only those offered)."""
    parallel_tool_calls: bool | None = None
    """Accepted; the model may make several calls either way."""
    reasoning_effort: ReasoningEffort | None = None
    """Thinking for models that think: ``none`` turns it off, ``minimal``/``low`` ->
    ``low``, ``medium``, ``high``/``xhigh`` -> ``high`` (Ollama's ``think``)."""
    reasoning: Reasoning | None = None
    """Ollama's extension: ``{"effort": ...}``, as ``reasoning_effort``."""
    user: str | None = None
    """An end-user id: accepted, no effect."""
    safety_identifier: str | None = None
    """An end-user id: accepted, no effect."""
    metadata: dict[str, str] | None = None
    """Tags for stored completions: accepted, no effect."""
    store: bool | None = None
    """Store the completion: accepted, nothing is stored."""
    service_tier: str | None = None
    """OpenAI's processing tier: accepted, no effect."""
    prompt_cache_key: str | None = None
    """Prompt-cache routing hint: accepted, no effect."""
    prompt_cache_options: Opaque | None = None
    """Prompt-cache options: accepted, no effect."""
    prompt_cache_retention: str | None = None
    """Prompt-cache retention: accepted, no effect."""
    verbosity: Literal["low", "medium", "high"] | None = None
    """Answer length hint for OpenAI's models: accepted, no effect."""
    prediction: Opaque | None = None
    """Predicted output (a speed-up only): accepted, no effect."""
    moderation: Opaque | None = None
    """OpenAI's moderation: accepted, no effect."""
    modalities: list[str] | None = None
    """Output modalities: only ``["text"]`` (else a 400)."""
    audio: Opaque | None = None
    """Audio output: refused (400) unless null."""
    web_search_options: Opaque | None = None
    """Web search: refused (400) unless null."""
    functions: list[Opaque] | None = None
    """Deprecated by OpenAI: refused (400); use ``tools``."""
    function_call: str | Opaque | None = None
    """Deprecated by OpenAI: refused (400); use ``tool_choice``."""


# ---- legacy completions and embeddings requests -----------------------------------------


class CompletionRequest(OpenAIModel):
    """``POST /v1/completions``: a completion of ``prompt`` (through the model's template,
    as Ollama's ``/v1/completions`` does)."""

    model: str
    """The model's name."""
    prompt: str | list[str] | list[int] | list[list[int]]
    """The prompt: a string, or a list of exactly one string; token ids are refused."""
    suffix: str | None = None
    """Text after the insertion point (fill in the middle; needs the ``insert`` capability)."""
    max_tokens: Annotated[int, Field(ge=0)] | None = None
    """The most tokens to generate (unset: until the model stops, as Ollama)."""
    temperature: Temperature | None = None
    """Sampling temperature, 0-2; unset: the Modelfile's, else 1."""
    top_p: Probability | None = None
    """Nucleus sampling mass, 0-1; unset: the Modelfile's, else 1."""
    seed: int | None = None
    """Random seed."""
    stop: Stop | None = None
    """Stop sequences."""
    frequency_penalty: Penalty | None = None
    """Penalty by how often a token appeared, -2 to 2."""
    presence_penalty: Penalty | None = None
    """Penalty for tokens that appeared at all, -2 to 2."""
    stream: bool | None = None
    """Server-sent events when true."""
    stream_options: StreamOptions | None = None
    """Streaming options (``include_usage``)."""
    echo: bool | None = None
    """Put the prompt before the completion in ``text`` (not with ``logprobs``)."""
    logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    """Return each token's log probability and this many alternatives (0-20)."""
    n: PositiveInt | None = None
    """Completions to generate: only 1."""
    best_of: PositiveInt | None = None
    """Candidates to pick from: only 1."""
    logit_bias: dict[str, float] | None = None
    """Token biases: only an empty object."""
    user: str | None = None
    """An end-user id: accepted, no effect."""


class EmbeddingRequest(OpenAIModel):
    """``POST /v1/embeddings``."""

    model: str
    """The model's name."""
    input: str | list[str] | list[int] | list[list[int]]
    """A string or a list of non-empty strings; token ids are refused."""
    encoding_format: Literal["float", "base64"] | None = None
    """``float`` (default): lists of numbers; ``base64``: little-endian float32 bytes."""
    dimensions: PositiveInt | None = None
    """Keep the first N dimensions of each vector (re-normalised)."""
    user: str | None = None
    """An end-user id: accepted, no effect."""


# ---- responses ---------------------------------------------------------------------------


class TopLogprob(OpenAIModel):
    """An alternative token at a position, with its log probability."""

    token: str
    """The token's text."""
    logprob: float
    """Its natural-log probability."""
    bytes: list[int] | None
    """Its UTF-8 bytes."""


class TokenLogprob(TopLogprob):
    """A generated token's log probability and the most likely alternatives."""

    top_logprobs: list[TopLogprob]
    """``top_logprobs`` alternatives (empty when none were asked for)."""


class ChoiceLogprobs(OpenAIModel):
    """``choices[].logprobs`` of a chat completion."""

    content: list[TokenLogprob] | None
    """One entry per generated token."""
    refusal: list[TokenLogprob] | None = None
    """Never set (no refusals)."""


class ResponseToolCall(OpenAIModel):
    """A tool call the model made; ``arguments`` is a JSON object as a string."""

    omit_when_none: ClassVar[frozenset[str]] = frozenset({"index"})
    index: int | None = None
    """Its position among the message's calls (in streamed deltas)."""
    id: str
    """``call_<random>`` (or the model's own id)."""
    type: Literal["function"] = "function"
    """Always ``function``."""
    function: ToolCallFunction
    """What to call."""


class ResponseMessage(OpenAIModel):
    """The assistant message of a chat completion."""

    omit_when_none: ClassVar[frozenset[str]] = frozenset({"reasoning", "tool_calls"})
    role: Literal["assistant"] = "assistant"
    """Always ``assistant``."""
    content: str
    """The answer's text (empty when the model only called tools)."""
    reasoning: str | None = None
    """The model's thinking, when it thought (Ollama's field)."""
    tool_calls: list[ResponseToolCall] | None = None
    """The tool calls it made."""


class Delta(OpenAIModel):
    """A streamed piece of the assistant message."""

    omit_when_none: ClassVar[frozenset[str]] = frozenset(
        {"role", "content", "reasoning", "tool_calls"}
    )
    role: Literal["assistant"] | None = None
    """``assistant``, on the first chunk only (a client that adds up deltas adds it once)."""
    content: str | None = None
    """The next piece of text."""
    reasoning: str | None = None
    """The next piece of thinking."""
    tool_calls: list[ResponseToolCall] | None = None
    """Tool calls, each whole, with its ``index``."""


FinishReason = Literal["stop", "length", "tool_calls"]


class Choice(OpenAIModel):
    """The one choice of a chat completion."""

    index: int = 0
    """Always 0 (``n`` is 1)."""
    message: ResponseMessage
    """The answer."""
    finish_reason: FinishReason | None
    """``stop``, ``length`` (``max_tokens`` or the context ran out) or ``tool_calls``."""
    logprobs: ChoiceLogprobs | None = None
    """Log probabilities, when ``logprobs`` was asked for."""


class ChunkChoice(OpenAIModel):
    """The one choice of a streamed chunk."""

    index: int = 0
    """Always 0."""
    delta: Delta
    """The next piece."""
    finish_reason: FinishReason | None = None
    """Set on the last chunk with choices."""
    logprobs: ChoiceLogprobs | None = None
    """Log probabilities of this chunk's tokens, when asked for."""


class Usage(OpenAIModel):
    """Token counts of a request."""

    prompt_tokens: int
    """Prompt tokens evaluated (Ollama's ``prompt_eval_count``: a prefix the runner had
    cached is not counted, as in Ollama)."""
    completion_tokens: int
    """Tokens generated (``eval_count``)."""
    total_tokens: int
    """Their sum."""


class ChatCompletion(OpenAIModel):
    """A chat completion (``stream`` false)."""

    id: str
    """``chatcmpl-<random>``."""
    object: Literal["chat.completion"] = "chat.completion"
    """Always ``chat.completion``."""
    created: int
    """Unix time (seconds) of the request."""
    model: str
    """The model, as the request named it."""
    system_fingerprint: str = "fp_ollama"
    """``fp_ollama``, as Ollama sends."""
    choices: list[Choice]
    """One choice."""
    usage: Usage
    """Token counts."""


class ChatCompletionChunk(OpenAIModel):
    """One server-sent event of a streamed chat completion."""

    omit_when_none: ClassVar[frozenset[str]] = frozenset({"usage"})
    id: str
    """The same ``chatcmpl-<random>`` on every chunk."""
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    """Always ``chat.completion.chunk``."""
    created: int
    """Unix time of the request (the same on every chunk)."""
    model: str
    """The model, as the request named it."""
    system_fingerprint: str = "fp_ollama"
    """``fp_ollama``."""
    choices: list[ChunkChoice]
    """One choice; empty on the usage chunk."""
    usage: Usage | None = None
    """Only on the last chunk, with ``stream_options.include_usage``."""


class CompletionLogprobs(OpenAIModel):
    """``choices[].logprobs`` of a legacy completion."""

    tokens: list[str]
    """The generated tokens' texts."""
    token_logprobs: list[float]
    """Their log probabilities."""
    top_logprobs: list[dict[str, float]]
    """Per position, the ``logprobs`` most likely alternatives: text -> log probability."""
    text_offset: list[int]
    """Per token, where it starts in ``text``."""


class CompletionChoice(OpenAIModel):
    """The one choice of a legacy completion (or of one streamed chunk)."""

    text: str
    """The completion (a piece of it when streaming; with ``echo``, the prompt first)."""
    index: int = 0
    """Always 0."""
    finish_reason: Literal["stop", "length"] | None = None
    """``stop`` or ``length``; null until the last chunk."""
    logprobs: CompletionLogprobs | None = None
    """Log probabilities, when ``logprobs`` was asked for."""


class Completion(OpenAIModel):
    """A legacy completion, or one streamed chunk of it (same shape)."""

    omit_when_none: ClassVar[frozenset[str]] = frozenset({"usage"})
    id: str
    """``cmpl-<random>``."""
    object: Literal["text_completion"] = "text_completion"
    """Always ``text_completion`` (chunks too)."""
    created: int
    """Unix time of the request."""
    model: str
    """The model, as the request named it."""
    system_fingerprint: str = "fp_ollama"
    """``fp_ollama``."""
    choices: list[CompletionChoice]
    """One choice; empty on the usage chunk."""
    usage: Usage | None = None
    """Token counts (on a stream: only the last chunk, with ``include_usage``)."""


class Embedding(OpenAIModel):
    """One vector of an embeddings answer."""

    object: Literal["embedding"] = "embedding"
    """Always ``embedding``."""
    embedding: list[float] | str
    """The L2-normalised vector, or its little-endian float32 bytes in base64."""
    index: int
    """The position of its input."""


class EmbeddingUsage(OpenAIModel):
    """Token counts of an embeddings request."""

    prompt_tokens: int
    """Tokens embedded over all inputs."""
    total_tokens: int
    """The same number."""


class EmbeddingList(OpenAIModel):
    """``/v1/embeddings``' answer."""

    object: Literal["list"] = "list"
    """Always ``list``."""
    data: list[Embedding]
    """One vector per input, in order."""
    model: str
    """The model, as the request named it."""
    usage: EmbeddingUsage
    """Token counts."""


class ModelCard(OpenAIModel):
    """A stored model, as ``/v1/models`` lists it."""

    id: str
    """Its name (``smollm2:latest``; ``/v1/models/{id}`` echoes the name it was given)."""
    object: Literal["model"] = "model"
    """Always ``model``."""
    created: int
    """Unix time its manifest was written."""
    owned_by: str
    """Its name's namespace (``library`` for a plain name), as Ollama sets it."""


class ModelList(OpenAIModel):
    """``GET /v1/models``: the stored models, newest first."""

    object: Literal["list"] = "list"
    """Always ``list``."""
    data: list[ModelCard]
    """The models."""


class ErrorBody(OpenAIModel):
    """What went wrong."""

    message: str
    """A sentence for a person."""
    type: str
    """``invalid_request_error`` (4xx), ``not_found_error`` (404, as Ollama) or
    ``api_error`` (5xx)."""
    param: str | None = None
    """The request field at fault (``messages[0].content``), when one is."""
    code: str | None = None
    """``model_not_found``, ``invalid_api_key``, ``unsupported_parameter``,
    ``unsupported_value``, ``unknown_parameter``, or null."""


class ErrorResponse(OpenAIModel):
    """Every ``/v1`` error: ``{"error": {"message", "type", "param", "code"}}``."""

    error: ErrorBody
    """The error."""


__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessage",
    "Choice",
    "ChoiceLogprobs",
    "ChunkChoice",
    "Completion",
    "CompletionChoice",
    "CompletionLogprobs",
    "CompletionRequest",
    "Delta",
    "Embedding",
    "EmbeddingList",
    "EmbeddingRequest",
    "EmbeddingUsage",
    "ErrorBody",
    "ErrorResponse",
    "ModelCard",
    "ModelList",
    "OpenAIModel",
    "ResponseMessage",
    "ResponseToolCall",
    "TokenLogprob",
    "TopLogprob",
    "Usage",
]
