"""Session: one llama context, its prefix cache, and token-level generation.

A Session owns a native Context holding one sequence. It remembers which tokens that
sequence's KV cache holds, so a request whose prompt starts with the same tokens as the
previous one only decodes the new suffix (the prompt-prefix cache).

Thread safety: a Session must be used from one thread at a time, and one generation at a
time (a stream must be finished or closed before the next call). ``abort()`` is the only
method that may be called from another thread. ``llamahost.Model`` serialises access to
its own sessions with a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llamahost import _native
from llamahost.engine.logprobs import token_logprob
from llamahost.engine.options import ContextParams, RequestOptions
from llamahost.engine.responses import GenerateChunk, Metrics, TokenLogprob
from llamahost.engine.sampling import build_sampler, resolve_seed
from llamahost.engine.text_stream import TextStream
from llamahost.errors import AbortedError, ContextOverflowError, LlamahostError
from llamahost.memory import effective_num_ctx


def native_context_params(
    model: _native.Model,
    options: ContextParams,
    *,
    embeddings: bool = False,
    pooling_type: int = -1,
    n_seq_max: int = 1,
) -> dict[str, Any]:
    """Native context parameters for `options` (llama.cpp's defaults for the rest)."""
    params: dict[str, Any] = dict(_native.context_default_params())
    n_ctx = effective_num_ctx(options.num_ctx, model.n_ctx_train)
    threads = options.resolved_threads()
    kv_type = _native.ggml_types()[options.kv_cache_type]
    params.update(
        n_ctx=n_ctx,
        n_batch=n_ctx if embeddings else options.num_batch,
        n_ubatch=n_ctx if embeddings else min(options.num_batch, 512),
        n_seq_max=n_seq_max,
        n_threads=threads,
        n_threads_batch=threads,
        flash_attn={None: -1, True: 1, False: 0}[options.flash_attn],
        type_k=kv_type,
        type_v=kv_type,
        embeddings=embeddings,
        pooling_type=pooling_type,
        kv_unified=n_seq_max > 1,
        swa_full=True,  # keep whole-prompt KV for sliding-window models so prefixes can be reused
        no_perf=True,
    )
    return params


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def fit_prompt(
    tokens: Sequence[int], n_ctx: int, options: RequestOptions, truncate: bool
) -> list[int]:
    """The prompt, shortened to leave room for an answer if it does not fit in `n_ctx`.

    Keeps the first ``num_keep`` tokens and the most recent ones, dropping the middle,
    as Ollama does; without `truncate` an overlong prompt raises ContextOverflowError.
    """
    if len(tokens) < n_ctx:
        return list(tokens)
    if not truncate:
        raise ContextOverflowError(
            f"the prompt has {len(tokens)} tokens but the context holds {n_ctx}; "
            "raise num_ctx, shorten the prompt, or allow truncation",
            n_prompt=len(tokens),
            n_ctx=n_ctx,
        )
    reserve = n_ctx // 4
    if options.num_predict > 0:
        reserve = min(reserve, options.num_predict)
    budget = n_ctx - max(1, reserve)
    keep = min(len(tokens), options.num_keep if options.num_keep >= 0 else budget // 2)
    keep = min(keep, budget // 2)
    return list(tokens[:keep]) + list(tokens[len(tokens) - (budget - keep) :])


@dataclass(frozen=True)
class Prediction:
    """How far one generation may go: its token limit, whether the context may shift, and
    how many prompt tokens a shift keeps."""

    n_predict: int  # -1: until an end token
    shift: bool
    n_keep: int

    @classmethod
    def plan(
        cls, options: RequestOptions, prompt_length: int, n_ctx: int, shift: bool
    ) -> Prediction:
        n_predict = options.num_predict
        if n_predict == -2:  # fill the context
            n_predict, shift = max(0, n_ctx - prompt_length), False
        keep = prompt_length if options.num_keep < 0 else options.num_keep
        return cls(n_predict, shift, keep)


def request_sampler(
    model: _native.Model, request: GenerationRequest, prompt: Sequence[int], n_ctx: int
) -> _native.Sampler:
    """The sampler chain (with grammar, biases and the prompt as penalty history)."""
    return build_sampler(
        model,
        request.options,
        n_ctx=n_ctx,
        seed=resolve_seed(request.options.seed),
        grammar=request.grammar,
        lazy_grammar_triggers=request.lazy_grammar_triggers,
        logit_bias=request.logit_bias,
        history=prompt,
    )


@dataclass
class GenerationRequest:
    """Everything a token-level generation needs beyond the prompt."""

    options: RequestOptions
    grammar: str | None = None
    lazy_grammar_triggers: Sequence[str] = ()
    logit_bias: Mapping[int, float] | None = None
    render_special: bool = False  # emit special tokens' text (for tool-call markers)
    truncate: bool = True  # shorten an overlong prompt (keeping num_keep) instead of raising
    shift: bool = True  # drop old context when it fills up during generation
    cache_prompt: bool = True  # reuse cached prompt prefixes
    top_logprobs: int | None = None  # None: no logprobs; n: each token's, with n alternatives
    cancel: threading.Event | None = None  # set from any thread: the generation ends "aborted"


class Session:
    """A context with a prefix cache. Use from one thread at a time."""

    def __init__(
        self,
        model: _native.Model,
        options: ContextParams,
        adapters: Sequence[_native.Adapter] = (),
    ) -> None:
        self._model = model
        self._context_params = ContextParams.of(options)
        self._ctx = _native.Context(model, **native_context_params(model, options))
        if adapters:
            self._ctx.set_adapters(list(adapters))
        self._kv: list[int] = []  # tokens the KV cache holds for sequence 0, from position 0
        self._busy = False

    @property
    def context(self) -> _native.Context:
        return self._ctx

    @property
    def n_ctx(self) -> int:
        return int(self._ctx.n_ctx_seq)

    @property
    def cached_tokens(self) -> list[int]:
        """The tokens whose KV entries the context holds (the reusable prefix)."""
        return list(self._kv)

    def matches(self, options: ContextParams) -> bool:
        """Whether this session's context was created with `options`' context settings."""
        return self._context_params == ContextParams.of(options)

    def reusable_prefix(self, tokens: Sequence[int]) -> int:
        """How many leading `tokens` the cache already holds."""
        return common_prefix_length(self._kv, tokens)

    def reset(self) -> None:
        """Forget the cached prefix."""
        self._ctx.seq_rm(0, -1, -1)
        self._kv = []

    def abort(self) -> None:
        """Stop the running decode or generation (thread-safe); it raises AbortedError."""
        self._ctx.abort()

    def _logprob(self, token: int, top: int) -> TokenLogprob:
        # The generator decodes a token only when asked for the next one, so the last
        # logits are still those this token was sampled from.
        return token_logprob(self._model.vocab, self._ctx.logits(-1), token, top)

    # ---- prompt ---------------------------------------------------------------------
    def fit_prompt(
        self, tokens: Sequence[int], options: RequestOptions, truncate: bool
    ) -> list[int]:
        """The prompt, shortened to fit this session's context (see :func:`fit_prompt`)."""
        return fit_prompt(tokens, self.n_ctx, options, truncate)

    def prefill(self, tokens: Sequence[int], *, reuse_cache: bool = True) -> int:
        """Make the context hold `tokens` with logits for the last one.

        Returns how many leading tokens were reused from the cache (not decoded again).
        """
        if not tokens:
            raise LlamahostError("cannot generate from an empty prompt")
        reuse = common_prefix_length(self._kv, tokens) if reuse_cache else 0
        if reuse == len(tokens):
            reuse -= 1  # the last token must be decoded again to get its logits
        if reuse < len(self._kv) and not self._ctx.seq_rm(0, reuse, -1):
            self._ctx.seq_rm(0, -1, -1)  # this memory cannot drop a tail: start over
            reuse = 0
        self._kv = self._kv[:reuse]
        try:
            self._ctx.decode_tokens(list(tokens[reuse:]), reuse)
        except BaseException:
            self._ctx.seq_rm(0, reuse, -1)
            raise
        self._kv = list(tokens)
        return reuse

    # ---- generation -----------------------------------------------------------------
    def generate(
        self,
        prompt_tokens: Sequence[int],
        request: GenerationRequest,
        *,
        started_ns: int | None = None,
        load_duration_ns: int = 0,
        native_loop: bool = False,
    ) -> Iterator[GenerateChunk]:
        """The completion of `prompt_tokens` as text chunks (the last one has done=True).

        Tokens come from the native Generator one `next()` at a time, so the stream can be
        closed at any point; with `native_loop` the whole completion is generated by the
        C++ loop (one callback per token) before the chunks are yielded. Both give the same
        text, tokens and done_reason.
        """
        if self._busy:
            raise LlamahostError(
                "this session is already generating: finish or close() the previous stream "
                "before starting another"
            )
        self._busy = True
        try:
            yield from self._run(prompt_tokens, request, started_ns, load_duration_ns, native_loop)
        finally:
            self._busy = False

    def _run(
        self,
        prompt_tokens: Sequence[int],
        request: GenerationRequest,
        started_ns: int | None,
        load_duration_ns: int,
        native_loop: bool,
    ) -> Iterator[GenerateChunk]:
        options = request.options
        t0 = started_ns if started_ns is not None else time.perf_counter_ns()
        self._ctx.clear_abort()
        prompt = self.fit_prompt(prompt_tokens, options, request.truncate)
        t_prefill = time.perf_counter_ns()
        reused = self.prefill(prompt, reuse_cache=request.cache_prompt)
        t_prefilled = time.perf_counter_ns()

        plan = Prediction.plan(options, len(prompt), self.n_ctx, request.shift)
        gen = _native.Generator(
            self._ctx,
            request_sampler(self._model, request, prompt, self.n_ctx),
            prompt,
            n_predict=plan.n_predict,
            special=request.render_special,
            n_keep=plan.n_keep,
            shift=plan.shift,
        )
        text = TextStream(options.stop)

        def cancelled() -> bool:
            return request.cancel is not None and request.cancel.is_set()

        generated: list[int] = []
        unsent: list[int] = []
        logprobs: list[TokenLogprob] = []
        try:
            if native_loop:
                pieces: list[str] = []

                def on_token(token: int, piece: bytes) -> bool:
                    generated.append(token)
                    if request.top_logprobs is not None:
                        logprobs.append(self._logprob(token, request.top_logprobs))
                    pieces.append(text.push(piece))
                    return not text.stopped and not cancelled()

                gen.run(on_token)
                if cancelled():
                    raise AbortedError("aborted")
                body = "".join(pieces)
                if body:
                    yield GenerateChunk(body, tokens=list(generated), logprobs=logprobs)
                    logprobs = []
                unsent = [] if body else list(generated)
            else:
                for token, piece in gen:
                    if cancelled():
                        raise AbortedError("aborted")
                    generated.append(token)
                    unsent.append(token)
                    if request.top_logprobs is not None:
                        logprobs.append(self._logprob(token, request.top_logprobs))
                    emitted = text.push(piece)
                    if emitted:
                        yield GenerateChunk(emitted, tokens=unsent, logprobs=logprobs)
                        unsent, logprobs = [], []
                    if text.stopped:
                        gen.stop()
                        break
            tail = text.finish()
            t_done = time.perf_counter_ns()
            done_reason = "stop" if text.stopped or gen.done_reason == "stop" else "length"
            metrics = Metrics(
                total_duration=t_done - t0 + load_duration_ns,
                load_duration=load_duration_ns,
                prompt_eval_count=len(prompt),
                prompt_eval_duration=t_prefilled - t_prefill,
                prompt_cached_count=reused,
                eval_count=len(generated),
                eval_duration=t_done - t_prefilled,
            )
            yield GenerateChunk(
                tail,
                tokens=unsent,
                logprobs=logprobs,
                done=True,
                done_reason=done_reason,
                metrics=metrics,
                context=prompt + generated,
            )
        finally:
            # Whatever happened (done, stop string, closed stream, abort, error), the cache
            # now describes exactly what the context holds.
            self._kv = list(gen.kv_tokens)
            self._ctx.seq_rm(0, len(self._kv), -1)
