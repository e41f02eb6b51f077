"""Model: a loaded GGUF model and the in-process inference API.

    model = llamahost.load("SmolLM2-135M-Instruct.Q4_1.gguf", num_ctx=2048)
    model.generate("The capital of France is", num_predict=16, temperature=0)   # -> str
    for chunk in model.generate("Once", stream=True):                           # -> chunks
        print(chunk.text, end="")
    model.chat([{"role": "user", "content": "hi"}]).message.content
    model.embed(["a", "b"])                                                      # -> vectors

Thread safety: a Model may be shared between threads. Each generation (a stream, for its
whole life) takes a Session of its own from the model's pool, so streams in several threads
run side by side and never wait for one another; the pool keeps the most recently used
contexts, with their prompt-prefix caches, for the next requests. Embeddings run one call at
a time. To batch many requests into one decode, use the server's runner.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import closing
from typing import Any, Literal, overload

from llamahost import _native
from llamahost.chat.output_parser import ChatOutputParser
from llamahost.engine.chat_prompt import ChatFormatter, normalize_messages
from llamahost.engine.embedding import Embedder
from llamahost.engine.logprobs import MAX_TOP_LOGPROBS
from llamahost.engine.options import ContextParams, ModelParams, Options
from llamahost.engine.responses import (
    ChatChunk,
    ChatResponse,
    GenerateChunk,
    GenerateResponse,
    Message,
    Metrics,
    TokenLogprob,
)
from llamahost.engine.session import GenerationRequest, Session
from llamahost.engine.session_pool import Executor, SessionPool
from llamahost.engine.structured import Format, grammar_for
from llamahost.errors import GGUFError, LlamahostError, ModelLoadError, OptionError
from llamahost.gguf import PathLike, model_paths
from llamahost.memory import effective_num_ctx, model_shape
from llamahost.offload import OffloadPlan, Workload, auto_offload
from llamahost.system import cpu_has_amx

ProgressCallback = Callable[[float], bool | None]


class Model:
    """A loaded model. Create with :func:`llamahost.load` or :meth:`Model.load`."""

    def __init__(
        self,
        native: _native.Model,
        options: Options,
        *,
        load_duration_ns: int = 0,
        template: str | None = None,
        system: str | None = None,
        messages: Sequence[Mapping[str, Any]] = (),
        adapters: Sequence[_native.Adapter] = (),
        executor: Executor | None = None,
    ) -> None:
        """Wrap a loaded native model. `executor` runs the token-level generations: by
        default a pool of sessions in this process (the runner passes its batch engine)."""
        self._native = native
        self.options = options
        self.load_duration_ns = load_duration_ns
        self.system = system
        self.messages = [dict(m) for m in messages]  # put before every chat (Modelfile MESSAGE)
        self.adapters = list(adapters)
        self._formatter = ChatFormatter(native, template)
        self._executor: Executor = executor or SessionPool(native, self.adapters)
        self._embed_lock = threading.Lock()
        self._embedder: Embedder | None = None
        self._load_pending = True  # the first request reports the load duration

    # ---- loading ----------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        source: PathLike | Sequence[PathLike],
        *,
        options: Mapping[str, Any] | Options | None = None,
        progress: ProgressCallback | None = None,
        template: str | None = None,
        system: str | None = None,
        messages: Sequence[Mapping[str, Any]] = (),
        adapters: Sequence[PathLike] = (),
        **option_kwargs: Any,
    ) -> Model:
        """Load a GGUF file, the first shard of a split model, or a list of shards.

        Options use Ollama's names (``num_ctx=8192``, ``num_gpu=0``, ``temperature=0.2``);
        they become this model's defaults. `progress(fraction)` is called while loading
        and may return False to cancel. `template` overrides the GGUF's chat template
        (Jinja, or an Ollama Go template); `system` is the default system prompt;
        `messages` start every chat; `adapters` are LoRA GGUF files applied at scale 1.
        """
        base = options if isinstance(options, Options) else Options.from_mapping(options)
        opts = base.merged(option_kwargs)
        try:
            paths = model_paths(source)
        except GGUFError as e:
            raise ModelLoadError(f"cannot load model: {e}") from e
        t0 = time.perf_counter_ns()
        native = load_native(
            paths,
            opts.model_params,
            progress,
            context=opts.context_params,
            adapter_bytes=sum(os.path.getsize(a) for a in adapters),
        )
        loaded_adapters = [_native.Adapter.load(native, os.fspath(a)) for a in adapters]
        return cls(
            native,
            opts,
            load_duration_ns=time.perf_counter_ns() - t0,
            template=template,
            system=system,
            messages=messages,
            adapters=loaded_adapters,
        )

    def close(self) -> None:
        """Free the idle contexts now, and each busy one when its stream ends (the weights
        go when the last reference does)."""
        self._executor.close()
        with self._embed_lock:
            self._embedder = None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- facts ------------------------------------------------------------------------
    @property
    def native(self) -> _native.Model:
        return self._native

    @property
    def paths(self) -> list[str]:
        return list(self._native.paths)

    @property
    def description(self) -> str:
        return str(self._native.description)

    @property
    def metadata(self) -> dict[str, str]:
        """Every GGUF key/value, formatted by llama.cpp."""
        return dict(self._native.metadata())

    @property
    def chat_template(self) -> str | None:
        return self._formatter.source

    @property
    def n_ctx_train(self) -> int:
        return int(self._native.n_ctx_train)

    @property
    def n_embd(self) -> int:
        return int(self._native.n_embd)

    @property
    def n_params(self) -> int:
        return int(self._native.n_params)

    @property
    def size(self) -> int:
        return int(self._native.size)

    # ---- tokens -----------------------------------------------------------------------
    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = False
    ) -> list[int]:
        return list(self._native.vocab.tokenize(text, add_special, parse_special))

    def detokenize(self, tokens: Sequence[int], *, render_special: bool = False) -> str:
        return str(self._native.vocab.detokenize(list(tokens), False, render_special))

    # ---- sessions ---------------------------------------------------------------------
    def session(self, **option_kwargs: Any) -> Session:
        """A new, independent Session (its own context and prefix cache)."""
        options = self._request_options(None, option_kwargs)
        return Session(self._native, options.context_params, self.adapters)

    def _request_options(
        self, options: Mapping[str, Any] | Options | None, kwargs: Mapping[str, Any]
    ) -> Options:
        """This model's options with a request's applied. Context options (num_ctx, ...)
        take effect through a context made for them; a model option (num_gpu, ...) that
        differs from the loaded model's is refused, never silently ignored."""
        if isinstance(options, Options):
            merged = options.merged(kwargs)
        else:
            merged = self.options.merged(options, **kwargs)
        loaded = self.options.model_params
        if merged.model_params != loaded:
            for f in dataclasses.fields(ModelParams):
                asked, have = getattr(merged, f.name), getattr(loaded, f.name)
                if asked != have:
                    raise OptionError(
                        f"`{f.name}` is fixed when the model loads (loaded with {have!r}, "
                        f"this request asks for {asked!r}); pass it to llamahost.load()",
                        option=f.name,
                    )
        return merged

    def _prepare(
        self,
        options: Mapping[str, Any] | Options | None,
        option_kwargs: Mapping[str, Any],
        *,
        think: bool | None,
        format: Format,
        grammar: str | None,
        logprobs: bool,
        top_logprobs: int,
        **fields: Any,
    ) -> tuple[Options, GenerationRequest]:
        """A request's options and its GenerationRequest (the checks generate and chat share;
        `fields` are GenerationRequest's own)."""
        opts = self._request_options(options, option_kwargs)
        if think and not self._formatter.supports_thinking:
            raise OptionError(_NO_THINKING, option="think")
        request = GenerationRequest(
            options=opts,
            grammar=grammar_for(format, grammar),
            top_logprobs=_top_logprobs(logprobs, top_logprobs),
            **fields,
        )
        return opts, request

    def _take_load_duration(self) -> int:
        if self._load_pending:
            self._load_pending = False
            return self.load_duration_ns
        return 0

    # ---- generate ---------------------------------------------------------------------
    @overload
    def generate(self, prompt: str, *, stream: Literal[False] = ..., **kwargs: Any) -> str: ...
    @overload
    def generate(
        self, prompt: str, *, stream: Literal[True], **kwargs: Any
    ) -> Iterator[GenerateChunk]: ...

    def generate(
        self, prompt: str, *, stream: bool = False, **kwargs: Any
    ) -> str | Iterator[GenerateChunk]:
        """Complete `prompt`: the text (``stream=False``) or an iterator of chunks.

        Keyword arguments: Ollama options (``num_predict=32, temperature=0, stop=[...]``)
        or ``options={...}``; ``format`` ("json" or a JSON schema) or ``grammar`` (GBNF);
        ``apply_template=True`` to wrap the prompt in the chat template as a user message
        (after ``system`` and the Modelfile's messages), as Ollama's /api/generate does unless
        ``raw``; ``suffix`` to fill in the middle between the prompt and it (through the
        template's ``.Suffix`` or the model's FIM tokens; OptionError when the model has
        neither); ``special=True`` to read special-token text in a raw prompt as tokens;
        ``think`` (True: the template's thinking on, ``<think>`` blocks reported in
        ``thinking``; False: off); ``context`` (the token list from a previous answer) to
        continue it; ``logit_bias``; ``truncate``/``shift``/``cache_prompt`` (see
        GenerationRequest); ``cancel``, an event that ends the
        generation with AbortedError when set from any thread; ``logprobs=True`` (and
        ``top_logprobs=n``, up to 20 alternatives) for each token's log-probability.
        """
        if stream:
            return self._generate_chunks(prompt, native_loop=False, **kwargs)
        return "".join(c.text for c in self._generate_chunks(prompt, native_loop=True, **kwargs))

    def generate_response(self, prompt: str, **kwargs: Any) -> GenerateResponse:
        """Like generate() but with tokens, done_reason and metrics; uses the native loop."""
        return self._collect(self._generate_chunks(prompt, native_loop=True, **kwargs))

    def _generate_chunks(
        self,
        prompt: str,
        *,
        native_loop: bool,
        options: Mapping[str, Any] | Options | None = None,
        format: Format = None,
        grammar: str | None = None,
        apply_template: bool = False,
        system: str | None = None,
        suffix: str | None = None,
        special: bool = False,
        context: Sequence[int] | None = None,
        logit_bias: Mapping[int, float] | None = None,
        truncate: bool = True,
        shift: bool = True,
        cancel: threading.Event | None = None,
        logprobs: bool = False,
        top_logprobs: int = 0,
        cache_prompt: bool = True,
        think: bool | None = None,
        **option_kwargs: Any,
    ) -> Generator[GenerateChunk, None, None]:
        t0 = time.perf_counter_ns()
        opts, request = self._prepare(
            options,
            option_kwargs,
            think=think,
            format=format,
            grammar=grammar,
            logprobs=logprobs,
            top_logprobs=top_logprobs,
            logit_bias=logit_bias,
            truncate=truncate,
            shift=shift,
            cancel=cancel,
            cache_prompt=cache_prompt,
        )
        thinking_started = False
        if apply_template or suffix:
            rendered = self._formatter.generate_prompt(
                prompt,
                system=system or self.system,
                history=() if context else self.messages,
                suffix=suffix,
                think=think,
            )
            tokens = rendered.tokens
            thinking_started = rendered.opens_thinking
        else:
            tokens = self.tokenize(prompt, add_special=not context, parse_special=special)
        if context:
            tokens = list(context) + tokens
        chunks = self._session_stream(tokens, opts, request, t0, native_loop)
        if think:
            parser = ChatOutputParser(True, None, thinking_started=thinking_started)
            return _split_thinking(chunks, parser)
        return chunks

    def _session_stream(
        self,
        tokens: list[int],
        options: Options,
        request: GenerationRequest,
        t0: int,
        native_loop: bool,
    ) -> Generator[GenerateChunk, None, None]:
        yield from self._executor.stream(
            tokens,
            options.context_params,
            request,
            started_ns=t0,
            load_duration_ns=self._take_load_duration(),
            native_loop=native_loop,
        )

    @staticmethod
    def _collect(chunks: Generator[GenerateChunk, None, None]) -> GenerateResponse:
        text: list[str] = []
        thinking: list[str] = []
        tokens: list[int] = []
        logprobs: list[TokenLogprob] = []
        with closing(chunks):
            for chunk in chunks:
                text.append(chunk.text)
                thinking.append(chunk.thinking)
                tokens.extend(chunk.tokens)
                logprobs.extend(chunk.logprobs)
                if chunk.done:
                    return GenerateResponse(
                        text="".join(text),
                        tokens=tokens,
                        done_reason=chunk.done_reason or "stop",
                        metrics=chunk.metrics or Metrics(),
                        context=chunk.context or [],
                        logprobs=logprobs,
                        thinking="".join(thinking),
                    )
        raise LlamahostError("generation ended without a final chunk")

    # ---- chat -------------------------------------------------------------------------
    @overload
    def chat(
        self,
        messages: Sequence[Mapping[str, Any] | Message],
        *,
        stream: Literal[False] = ...,
        **kwargs: Any,
    ) -> ChatResponse: ...
    @overload
    def chat(
        self,
        messages: Sequence[Mapping[str, Any] | Message],
        *,
        stream: Literal[True],
        **kwargs: Any,
    ) -> Iterator[ChatChunk]: ...

    def chat(
        self,
        messages: Sequence[Mapping[str, Any] | Message],
        *,
        stream: bool = False,
        **kwargs: Any,
    ) -> ChatResponse | Iterator[ChatChunk]:
        """Answer a conversation with the model's chat template.

        Keyword arguments as for generate(), plus ``tools`` (OpenAI/Ollama function
        schemas; calls come back in ``message.tool_calls``) and ``think`` (True/False to
        turn a reasoning model's thinking on/off; thinking comes back in
        ``message.thinking``). Returns a ChatResponse, or chunks with ``stream=True``.
        """
        chunks = self._chat_chunks(messages, native_loop=not stream, **kwargs)
        if stream:
            return chunks
        content: list[str] = []
        thinking: list[str] = []
        calls = []
        logprobs: list[TokenLogprob] = []
        with closing(chunks):
            for chunk in chunks:
                content.append(chunk.message.content)
                thinking.append(chunk.message.thinking)
                calls.extend(chunk.message.tool_calls)
                logprobs.extend(chunk.logprobs)
                if chunk.done:
                    message = Message("assistant", "".join(content), "".join(thinking), calls)
                    return ChatResponse(
                        message=message,
                        done_reason=chunk.done_reason or "stop",
                        metrics=chunk.metrics or Metrics(),
                        logprobs=logprobs,
                    )
        raise LlamahostError("chat ended without a final chunk")

    def _chat_chunks(
        self,
        messages: Sequence[Mapping[str, Any] | Message],
        *,
        native_loop: bool,
        tools: Sequence[Mapping[str, Any]] | None = None,
        think: bool | None = None,
        options: Mapping[str, Any] | Options | None = None,
        format: Format = None,
        grammar: str | None = None,
        logit_bias: Mapping[int, float] | None = None,
        truncate: bool = True,
        shift: bool = True,
        cancel: threading.Event | None = None,
        logprobs: bool = False,
        top_logprobs: int = 0,
        **option_kwargs: Any,
    ) -> Generator[ChatChunk, None, None]:
        t0 = time.perf_counter_ns()
        opts, request = self._prepare(
            options,
            option_kwargs,
            think=think,
            format=format,
            grammar=grammar,
            logprobs=logprobs,
            top_logprobs=top_logprobs,
            logit_bias=logit_bias,
            render_special=bool(tools),
            truncate=truncate,
            shift=shift,
            cancel=cancel,
        )
        msgs = normalize_messages([*self.messages, *messages], default_system=self.system)
        rendered = self._formatter.prompt(msgs, tools=tools, think=think)
        tokens = rendered.tokens
        parser = ChatOutputParser(
            think=self._formatter.parses_thinking(think),
            tool_format=self._formatter.tool_format if tools else None,
            # a template that opens the thinking block itself leaves the model inside it
            thinking_started=rendered.opens_thinking,
        )
        return self._chat_stream(tokens, opts, request, parser, t0, native_loop)

    def _chat_stream(
        self,
        tokens: list[int],
        options: Options,
        request: GenerationRequest,
        parser: ChatOutputParser,
        t0: int,
        native_loop: bool,
    ) -> Generator[ChatChunk, None, None]:
        for chunk in self._session_stream(tokens, options, request, t0, native_loop):
            deltas = parser.feed(chunk.text) if chunk.text else []
            if chunk.done:
                deltas = deltas + parser.finish()
            message = Message(
                "assistant",
                "".join(d.content for d in deltas),
                "".join(d.thinking for d in deltas),
                [c for d in deltas for c in d.tool_calls],
            )
            if chunk.done:
                yield ChatChunk(
                    message,
                    done=True,
                    done_reason=chunk.done_reason,
                    metrics=chunk.metrics,
                    logprobs=chunk.logprobs,
                )
            elif message.content or message.thinking or message.tool_calls or chunk.logprobs:
                yield ChatChunk(message, logprobs=chunk.logprobs)

    # ---- embeddings -------------------------------------------------------------------
    def embed(self, texts: str | Sequence[str], **kwargs: Any) -> list[list[float]]:
        """One L2-normalised vector per text (pooled as the model declares, else mean).

        Keyword arguments as for :meth:`embed_with_count`.
        """
        return self.embed_with_count(texts, **kwargs)[0]

    def embed_with_count(
        self,
        texts: str | Sequence[str],
        *,
        normalize: bool = True,
        truncate: bool = True,
        pooling: str | None = None,
        options: Mapping[str, Any] | Options | None = None,
        **option_kwargs: Any,
    ) -> tuple[list[list[float]], int]:
        """Vectors for `texts` and how many tokens were processed.

        `normalize` scales each vector to length 1; `truncate` shortens an input longer than
        the context (else ContextOverflowError); `pooling` is mean, cls or last (default:
        the model's own, else mean); options as for generate() (num_ctx, num_thread, ...).
        """
        batch = [texts] if isinstance(texts, str) else list(texts)
        opts = self._request_options(options, option_kwargs)
        if not batch:
            return [], 0
        context = opts.context_params
        with self._embed_lock:
            if self._embedder is None or not self._embedder.matches(context, pooling):
                self._embedder = None
                self._embedder = Embedder(self._native, context, pooling, self.adapters)
            return self._embedder.embed(batch, normalize=normalize, truncate=truncate)

    def abort(self) -> None:
        """Stop every generation running in other threads (each raises AbortedError)."""
        self._executor.abort()


_NO_THINKING = (
    "this model does not support thinking (its chat template has no thinking block); "
    "leave `think` unset or false"
)


def _split_thinking(
    chunks: Generator[GenerateChunk, None, None], parser: ChatOutputParser
) -> Generator[GenerateChunk, None, None]:
    """A completion's chunks with ``<think>`` blocks moved from ``text`` to ``thinking``."""
    with closing(chunks):
        for chunk in chunks:
            deltas = parser.feed(chunk.text) if chunk.text else []
            if chunk.done:
                deltas += parser.finish()
            chunk.text = "".join(d.content for d in deltas)
            chunk.thinking = "".join(d.thinking for d in deltas)
            yield chunk


def _top_logprobs(logprobs: bool, top_logprobs: int) -> int | None:
    """GenerationRequest.top_logprobs for a request's ``logprobs``/``top_logprobs``."""
    if isinstance(top_logprobs, bool) or not isinstance(top_logprobs, int):
        raise OptionError(
            f"`top_logprobs` must be an integer, got {top_logprobs!r}", option="top_logprobs"
        )
    if not 0 <= top_logprobs <= MAX_TOP_LOGPROBS:
        raise OptionError(
            f"`top_logprobs` must be in [0, {MAX_TOP_LOGPROBS}], got {top_logprobs}",
            option="top_logprobs",
        )
    return top_logprobs if logprobs or top_logprobs else None


def load_native(
    paths: Sequence[str],
    params: ModelParams,
    progress: ProgressCallback | None = None,
    *,
    tensor_split: Sequence[float] = (),
    context: ContextParams | None = None,
    parallel: int = 1,
    adapter_bytes: int = 0,
) -> _native.Model:
    """Load weights with `params` (`tensor_split`: each GPU's share). Repacked CPU layouts
    are on unless asked otherwise, except on CPUs with AMX: ggml's AMX matmul crashes there
    (llama.cpp issue 20824).

    With ``num_gpu`` not given (-1), the layers to offload are chosen from the GPUs' free
    memory and the estimate for `context` x `parallel` (:mod:`llamahost.offload`); a model
    that fits nowhere raises InsufficientMemoryError before anything loads."""
    repack = params.repack if params.repack is not None else not cpu_has_amx()
    n_gpu_layers = params.num_gpu
    if n_gpu_layers < 0 and not params.vocab_only:
        plan = _auto_offload(paths, context or ContextParams(), parallel, adapter_bytes)
        n_gpu_layers = plan.num_gpu
        tensor_split = tensor_split or plan.tensor_split
    return _native.Model.load(
        list(paths),
        n_gpu_layers=n_gpu_layers,
        main_gpu=params.main_gpu,
        use_mmap=params.use_mmap,
        use_mlock=params.use_mlock,
        vocab_only=params.vocab_only,
        tensor_split=list(tensor_split),
        use_extra_bufts=repack,
        progress_callback=progress,
    )


def _auto_offload(
    paths: Sequence[str], context: ContextParams, parallel: int, adapter_bytes: int
) -> OffloadPlan:
    try:
        shape = model_shape(paths)
    except GGUFError as e:
        raise ModelLoadError(f"cannot load model: {e}") from e
    workload = Workload(
        num_ctx=effective_num_ctx(context.num_ctx, shape.n_ctx_train),
        parallel=parallel,
        num_batch=context.num_batch,
        kv_cache_type=context.kv_cache_type,
        flash_attn=context.flash_attn,
        adapter_bytes=adapter_bytes,
    )
    return auto_offload(shape, workload)
