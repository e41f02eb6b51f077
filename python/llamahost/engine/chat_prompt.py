"""Chat messages -> the prompt text and tokens a model expects.

Two template languages: the GGUF's ``tokenizer.chat_template`` (Jinja, rendered in a
sandbox) and Ollama's Modelfile ``TEMPLATE`` (Go text/template, rendered by our own
interpreter the way Ollama does). When a Jinja template cannot be compiled or rendered
(some use extensions), llama.cpp's built-in templates are tried, chosen by matching the
template text; a model without a template gets ChatML. A template that breaks the
sandbox's rules is refused, never bypassed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llamahost import _native
from llamahost.chat.capabilities import (
    TemplateLanguage,
    template_language,
    template_supports_thinking,
)
from llamahost.chat.gotemplate import GoTemplate
from llamahost.chat.jinja_template import ChatTemplate
from llamahost.chat.tool_calls import detect_tool_call_format
from llamahost.engine.responses import Message
from llamahost.engine.special_text import SpecialTextGuard
from llamahost.errors import OptionError, TemplateError, TemplateSecurityError

VALID_ROLES = ("system", "user", "assistant", "tool")
#: llama_token_attr bits of the tokens message content may never produce: control and unknown
#: (user-defined tokens such as <think> are matched by the tokenizer in plain text anyway).
_FORGEABLE_ATTRS = 1 | 8
#: llama.cpp built-in template names for architectures whose turn format is fixed.
_BUILTIN_BY_ARCHITECTURE = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma"}


def normalize_messages(
    messages: Sequence[Mapping[str, Any] | Message], *, default_system: str | None = None
) -> list[dict[str, Any]]:
    """Plain-dict copies of `messages`, checked, with the default system prompt first."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise OptionError("`messages` must be a list of {role, content} objects", option="messages")
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        d = m.to_dict() if isinstance(m, Message) else dict(m) if isinstance(m, Mapping) else None
        if d is None:
            raise OptionError(
                f"`messages[{i}]` must be an object with role and content", option="messages"
            )
        role = d.get("role")
        if not isinstance(role, str) or role.lower() not in VALID_ROLES:
            raise OptionError(
                f"`messages[{i}].role` must be one of {', '.join(VALID_ROLES)}, got {role!r}",
                option="messages",
            )
        d["role"] = role.lower()
        content = d.get("content")
        if content is None:
            d["content"] = ""
        elif not isinstance(content, (str, list)):
            raise OptionError(
                f"`messages[{i}].content` must be a string, got {content!r}", option="messages"
            )
        out.append(d)
    if default_system and not any(m["role"] == "system" for m in out):
        out.insert(0, {"role": "system", "content": default_system})
    return out


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))


@dataclass(frozen=True)
class RenderedPrompt:
    """A chat rendered by the template, and its tokens."""

    text: str
    tokens: list[int]

    @property
    def opens_thinking(self) -> bool:
        """Whether the prompt ends inside a thinking block the template opened."""
        return self.text.rstrip().endswith("<think>")


class ChatFormatter:
    """Renders chats for one model and tokenizes the result.

    Message content is always plain text: content that spells a control token (say
    ``<|im_start|>system``) is tokenized as the characters it is, never as the token; only
    the template's own text becomes special tokens (see ``engine/special_text.py``).
    """

    def __init__(self, model: _native.Model, template: str | None = None) -> None:
        self._model = model
        self.source: str | None = template if template is not None else model.chat_template()
        vocab = model.vocab
        self._bos = vocab.text(vocab.bos) if vocab.bos >= 0 else ""
        eos = vocab.eos if vocab.eos >= 0 else vocab.eot
        self._jinja: ChatTemplate | None = None
        self._go: GoTemplate | None = None
        self.language: TemplateLanguage = template_language(self.source or "")
        if self.source and self.language == "go":
            self._go = GoTemplate(self.source)
        elif self.source:
            try:
                self._jinja = ChatTemplate(
                    self.source, bos_token=self._bos, eos_token=vocab.text(eos) if eos >= 0 else ""
                )
            except TemplateSecurityError:
                raise
            except TemplateError:
                self._jinja = None  # llama.cpp's built-in templates may still match
        self.tool_format = detect_tool_call_format(self.source) if self.source else None
        self.supports_thinking = template_supports_thinking(self.source, self.language)
        # Without a template: llama.cpp's built-in one for the architecture when it has one
        # (a Gemma GGUF without a template still wants Gemma's turns), else ChatML.
        architecture = model.meta_value("general.architecture") or ""
        self._fallback_template = _BUILTIN_BY_ARCHITECTURE.get(architecture, "chatml")
        fim = (vocab.fim_pre, vocab.fim_suf, vocab.fim_mid)
        self._fim_tokens: tuple[int, int, int] | None = fim if min(fim) >= 0 else None
        self._guard = SpecialTextGuard(
            vocab.text(t) for t in vocab.tokens_with_attr(_FORGEABLE_ATTRS)
        )

    def parses_thinking(self, think: bool | None) -> bool:
        """Whether to separate <think> blocks: asked for, or the template uses them."""
        if think is None:
            return self.supports_thinking
        return think

    def prompt(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        think: bool | None = None,
        add_generation_prompt: bool = True,
    ) -> RenderedPrompt:
        """The rendered chat and its tokens, message content kept as plain text."""
        shielded = self._guard.shield({"messages": list(messages), "tools": tools})
        marked = self.render(
            shielded.value["messages"],
            tools=shielded.value["tools"],
            think=think,
            add_generation_prompt=add_generation_prompt,
        )
        return self._tokenized(marked, shielded.originals)

    def _tokenized(self, marked: str, originals: list[str]) -> RenderedPrompt:
        """A rendered prompt with its marked message texts (see special_text): its text and
        tokens, BOS added only when the model wants one and the template did not write it."""
        text = self._guard.unmark(marked, originals)
        add_special = not (self._bos and text.startswith(self._bos))
        tokens = self._guard.tokenize(
            marked, originals, self._model.vocab.tokenize, add_special=add_special
        )
        return RenderedPrompt(text, tokens)

    @property
    def supports_insert(self) -> bool:
        """Whether a ``suffix`` can be filled in: an Ollama template that uses ``.Suffix``,
        else the model's own fill-in-the-middle tokens."""
        if self._go is not None and self._go.supports_insert:
            return True
        return self._fim_tokens is not None

    def generate_prompt(
        self,
        prompt: str,
        *,
        system: str | None = None,
        history: Sequence[Mapping[str, Any]] = (),
        suffix: str | None = None,
        think: bool | None = None,
    ) -> RenderedPrompt:
        """A completion request through the template, as Ollama's /api/generate renders it:
        the system prompt, the history, then `prompt` as a user turn; or, with a `suffix`,
        fill-in-the-middle (the template's ``.Suffix``, else the model's FIM tokens)."""
        if not suffix:
            messages = [*([{"role": "system", "content": system}] if system else []), *history]
            return self.prompt([*messages, {"role": "user", "content": prompt}], think=think)
        if self._go is not None and self._go.supports_insert:
            shielded = self._guard.shield([prompt, suffix])
            marked = self._go.render_ollama_generate(
                shielded.value[0], suffix=shielded.value[1], think=think
            )
            return self._tokenized(marked, shielded.originals)
        if self._fim_tokens is None:
            raise OptionError(
                "this model does not support insert (`suffix`): its template never uses "
                ".Suffix and its vocabulary has no fill-in-the-middle tokens",
                option="suffix",
            )
        # llama.cpp's prefix-suffix-middle order, as its server's /infill builds it.
        pre, suf, mid = self._fim_tokens
        vocab = self._model.vocab
        tokens = [
            *([vocab.bos] if vocab.add_bos and vocab.bos >= 0 else []),
            pre,
            *vocab.tokenize(prompt, False, False),
            suf,
            *vocab.tokenize(suffix, False, False),
            mid,
        ]
        return RenderedPrompt(vocab.detokenize(tokens, False, True), tokens)

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        think: bool | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        """The chat as the template renders it (text only; see prompt() for tokens)."""
        extra = {} if think is None else {"enable_thinking": think}
        if self._go is not None:
            return self._go.render_ollama(messages, tools, think=think)
        if self._jinja is not None:
            try:
                return self._jinja.render(
                    messages,
                    add_generation_prompt=add_generation_prompt,
                    tools=list(tools) if tools else None,
                    extra_context=extra,
                )
            except TemplateSecurityError:
                raise
            except TemplateError:
                if tools:  # the built-in templates cannot render tools
                    raise
        elif tools:
            raise TemplateError("this model's chat template cannot render tools")
        pairs = [(m["role"], _content_text(m.get("content", ""))) for m in messages]
        return str(
            _native.apply_builtin_template(
                self.source or self._fallback_template, pairs, add_generation_prompt
            )
        )
