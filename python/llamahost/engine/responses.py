"""What generation returns: small dataclasses with Ollama's field names.

Durations are integers in nanoseconds, counts are tokens, as in Ollama's API.
A stream yields chunks whose ``text``/``message`` carry the new text; the last chunk has
``done=True``, its ``done_reason`` and the counts and durations of the whole request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llamahost.chat.tool_calls import ToolCall


@dataclass
class Metrics:
    """Counts and durations of one request (Ollama's names; durations in ns)."""

    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0  # prompt tokens, cached ones included (as Ollama reports)
    prompt_eval_duration: int = 0
    prompt_cached_count: int = 0  # prompt tokens reused from the prefix cache
    eval_count: int = 0  # generated tokens
    eval_duration: int = 0

    @property
    def prompt_tokens_per_second(self) -> float:
        evaluated = self.prompt_eval_count - self.prompt_cached_count
        return evaluated / (self.prompt_eval_duration / 1e9) if self.prompt_eval_duration else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.eval_count / (self.eval_duration / 1e9) if self.eval_duration else 0.0


@dataclass
class TokenLogprob:
    """A generated token's log-probability (natural log, before sampling's transforms), with
    the most likely alternatives at that step when asked for (Ollama's ``logprobs``)."""

    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TokenLogprob] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"token": self.token, "logprob": self.logprob, "bytes": self.bytes}
        if self.top_logprobs:
            out["top_logprobs"] = [t.to_dict() for t in self.top_logprobs]
        return out


@dataclass
class GenerateChunk:
    """One piece of a streamed completion; the last one has ``done=True``."""

    text: str
    tokens: list[int] = field(default_factory=list)
    done: bool = False
    done_reason: str | None = None  # "stop" or "length" (on the last chunk)
    metrics: Metrics | None = None  # on the last chunk
    context: list[int] | None = None  # on the last chunk: prompt + output tokens
    logprobs: list[TokenLogprob] = field(default_factory=list)  # one per token, when asked
    thinking: str = ""  # with think=True: text of the model's <think> block


@dataclass
class GenerateResponse:
    """A whole completion (what a non-streaming call assembles from the chunks)."""

    text: str
    tokens: list[int]
    done_reason: str
    metrics: Metrics
    context: list[int]
    logprobs: list[TokenLogprob] = field(default_factory=list)
    thinking: str = ""


@dataclass
class Message:
    """A chat message; ``thinking`` and ``tool_calls`` are filled when the model uses them."""

    role: str
    content: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.thinking:
            out["thinking"] = self.thinking
        if self.tool_calls:
            out["tool_calls"] = [
                {"function": {"name": c.name, "arguments": c.arguments}} for c in self.tool_calls
            ]
        return out


@dataclass
class ChatChunk:
    """One piece of a streamed chat answer: ``message`` holds only the new part."""

    message: Message
    done: bool = False
    done_reason: str | None = None
    metrics: Metrics | None = None
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class ChatResponse:
    """A whole chat answer."""

    message: Message
    done_reason: str
    metrics: Metrics
    logprobs: list[TokenLogprob] = field(default_factory=list)
