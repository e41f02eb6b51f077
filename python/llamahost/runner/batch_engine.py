"""BatchEngine: continuous batching of every running generation into one decode per step.

The runner's context holds ``parallel`` sequences (slots), each up to ``num_ctx`` tokens,
in one unified KV cache. A thread runs the steps; each step builds one batch with

1. the next token of every slot that is generating (one logits row each), then
2. prompt tokens of slots that are still reading their prompt, oldest request first,
   in chunks, within ``num_batch`` tokens in all (a slot's last prompt token gets a row),

decodes it, and samples each row with that slot's own sampler chain (grammar included).
So a long prompt never stalls the others for more than one chunk, and N streams cost one
decode per token instead of N.

A new request takes the free slot whose cached tokens share the longest prefix with its
prompt; when another slot holds a longer prefix, those positions are copied into the new
slot (``seq_cp``: cells are shared in the unified cache, nothing is recomputed). Requests
beyond the free slots wait in order. A request that is cancelled (its stream closed, its
``cancel`` event set, its client gone) leaves at the next step, queued or running.

The engine is an :class:`~llamahost.engine.session_pool.Executor`: a ``Model`` built with
it runs its usual generate/chat/template/parsing path on top, unchanged, with the same
chunks, stop strings, done reasons and metrics as an in-process Session.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from llamahost import _native
from llamahost.engine.logprobs import token_logprob
from llamahost.engine.options import ContextParams
from llamahost.engine.responses import GenerateChunk, Metrics, TokenLogprob
from llamahost.engine.session import (
    GenerationRequest,
    Prediction,
    common_prefix_length,
    fit_prompt,
    native_context_params,
    request_sampler,
)
from llamahost.engine.text_stream import TextStream
from llamahost.errors import AbortedError, LlamahostError, OptionError

log = logging.getLogger("llamahost.runner")

#: A prefix shorter than this is not worth copying from another slot (a copy moves the
#: donor's whole KV stream).
MIN_SHARED_PREFIX = 128


@dataclass(eq=False)
class _Job:
    """One generation: its prompt, its plan, and where its chunks go."""

    prompt: list[int]
    request: GenerationRequest
    plan: Prediction
    started_ns: int
    load_duration_ns: int
    out: queue.SimpleQueue[GenerateChunk | BaseException] = field(default_factory=queue.SimpleQueue)
    closed: threading.Event = field(default_factory=threading.Event)
    # progress, kept by the engine thread
    sampler: _native.Sampler | None = None
    text: TextStream | None = None
    read: int = 0  # prompt tokens in the KV cache
    reused: int = 0  # of which taken from a cache
    pending: int | None = None  # sampled, not yet decoded
    generated: list[int] = field(default_factory=list)
    unsent: list[int] = field(default_factory=list)
    unsent_logprobs: list[TokenLogprob] = field(default_factory=list)
    prefill_started_ns: int = 0
    prefilled_ns: int = 0

    @property
    def cancelled(self) -> bool:
        cancel = self.request.cancel
        return self.closed.is_set() or (cancel is not None and cancel.is_set())


@dataclass(eq=False)
class _Slot:
    seq: int
    cache: list[int] = field(default_factory=list)  # tokens in the KV cache, positions 0..n-1
    job: _Job | None = None
    last_used: float = 0.0


class BatchEngine:
    """Runs generations for one model in ``parallel`` slots of one shared context."""

    def __init__(
        self,
        model: _native.Model,
        context: ContextParams,
        *,
        parallel: int = 1,
        adapters: Sequence[_native.Adapter] = (),
    ) -> None:
        if parallel < 1:
            raise OptionError(f"`parallel` must be >= 1, got {parallel}", option="parallel")
        self._model = model
        self._vocab = model.vocab
        self._context_params = ContextParams.of(context)
        params = native_context_params(model, context, n_seq_max=parallel)
        self.n_slot_ctx = int(params["n_ctx"])
        params["n_ctx"] = self.n_slot_ctx * parallel
        params["n_batch"] = max(int(params["n_batch"]), parallel)
        params["kv_unified"] = False
        self._ctx = _native.Context(model, **params)
        if adapters:
            self._ctx.set_adapters(list(adapters))
        self.n_batch = int(params["n_batch"])
        self._batch = _native.Batch(self.n_batch, 1)
        self._slots = [_Slot(i) for i in range(parallel)]
        self._waiting: deque[_Job] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="llamahost-batch", daemon=True)
        self._thread.start()

    # ---- facts --------------------------------------------------------------------------
    @property
    def parallel(self) -> int:
        return len(self._slots)

    @property
    def context(self) -> _native.Context:
        return self._ctx

    def slots(self) -> list[dict[str, object]]:
        """What each slot holds (for ``GET /slots``)."""
        with self._wake:
            return [
                {
                    "id": slot.seq,
                    "is_processing": slot.job is not None,
                    "n_ctx": self.n_slot_ctx,
                    "n_cached": len(slot.cache),
                    "n_prompt_read": slot.job.read if slot.job else 0,
                    "n_decoded": len(slot.job.generated) if slot.job else 0,
                }
                for slot in self._slots
            ]

    @property
    def waiting(self) -> int:
        with self._wake:
            return len(self._waiting)

    # ---- Executor -----------------------------------------------------------------------
    def stream(
        self,
        tokens: list[int],
        context: ContextParams,
        request: GenerationRequest,
        *,
        started_ns: int,
        load_duration_ns: int,
        native_loop: bool,
    ) -> Iterator[GenerateChunk]:
        """Queue a generation and yield its chunks as the engine produces them."""
        if ContextParams.of(context) != self._context_params:
            raise OptionError(
                "this runner's context was made with other options "
                f"({self._context_params}); load the model again to change them",
                option="num_ctx",
            )
        if not tokens:
            raise LlamahostError("cannot generate from an empty prompt")
        prompt = fit_prompt(tokens, self.n_slot_ctx, request.options, request.truncate)
        plan = Prediction.plan(request.options, len(prompt), self.n_slot_ctx, request.shift)
        job = _Job(prompt, request, plan, started_ns, load_duration_ns)
        with self._wake:
            if self._stopping:
                raise LlamahostError("the runner is shutting down")
            self._waiting.append(job)
            self._wake.notify()
        try:
            while True:
                item = job.out.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.done:
                    return
        finally:
            job.closed.set()  # a stream closed early frees its slot at the next step
            with self._wake:
                self._wake.notify()

    def abort(self) -> None:
        """Cancel every queued and running generation."""
        with self._wake:
            jobs = [*self._waiting, *(s.job for s in self._slots if s.job is not None)]
        for job in jobs:
            job.closed.set()
        self._ctx.abort()

    def close(self) -> None:
        """Stop the engine thread; running generations end with AbortedError."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._ctx.abort()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)

    # ---- the engine thread --------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and not self._has_work():
                    self._wake.wait()
                if self._stopping:
                    break
                self._admit()
            try:
                self._step()
            except Exception as exc:  # a failed decode fails the requests in it, not the runner
                log.exception("decode step failed")
                self._ctx.clear_abort()
                for slot in self._slots:
                    if slot.job is not None:
                        self._fail(slot, exc)
        for slot in self._slots:
            if slot.job is not None:
                self._fail(slot, AbortedError("aborted: the runner is shutting down"))
        for job in self._waiting:
            job.out.put(AbortedError("aborted: the runner is shutting down"))

    def _has_work(self) -> bool:
        return bool(self._waiting) or any(slot.job is not None for slot in self._slots)

    def _admit(self) -> None:
        """Give waiting requests free slots (called with the lock held)."""
        while self._waiting:
            job = self._waiting[0]
            if job.cancelled:
                self._waiting.popleft()
                job.out.put(AbortedError("aborted"))
                continue
            free = [slot for slot in self._slots if slot.job is None]
            if not free:
                return
            self._waiting.popleft()
            slot = max(
                free, key=lambda s: (common_prefix_length(s.cache, job.prompt), -s.last_used)
            )
            self._start(slot, job)

    def _start(self, slot: _Slot, job: _Job) -> None:
        prompt = job.prompt
        reuse = common_prefix_length(slot.cache, prompt) if job.request.cache_prompt else 0
        donor = max(
            (s for s in self._slots if s is not slot),
            key=lambda s: common_prefix_length(s.cache, prompt),
            default=None,
        )
        shared = common_prefix_length(donor.cache, prompt) if donor is not None else 0
        if (
            job.request.cache_prompt
            and donor is not None
            and shared >= max(reuse + 1, MIN_SHARED_PREFIX)
        ):
            # Each slot has its own KV stream (so a slot computes exactly as it would alone):
            # copy the donor's whole sequence, then drop what is not shared.
            self._ctx.seq_rm(slot.seq, -1, -1)
            self._ctx.seq_cp(donor.seq, slot.seq, -1, -1)
            slot.cache = list(donor.cache)
            reuse = shared
        reuse = min(reuse, len(prompt) - 1)  # the last prompt token is decoded for its logits
        if reuse < len(slot.cache) and not self._ctx.seq_rm(slot.seq, reuse, -1):
            self._ctx.seq_rm(slot.seq, -1, -1)  # this memory cannot drop a tail: start over
            reuse = 0
        slot.cache = slot.cache[:reuse]
        job.read = job.reused = reuse
        job.sampler = request_sampler(self._model, job.request, prompt, self.n_slot_ctx)
        job.text = TextStream(job.request.options.stop)
        slot.job = job

    def _step(self) -> None:
        batch = self._batch
        batch.clear()
        rows: list[tuple[int, _Slot]] = []  # (batch index, slot) of each logits row
        decoding: list[_Slot] = []
        for slot in self._slots:
            job = slot.job
            if job is None or job.pending is None:
                continue
            if job.cancelled:
                self._cancel(slot)
            elif self._make_room(slot, job):
                rows.append((len(batch), slot))
                batch.add(job.pending, len(slot.cache), [slot.seq], True)
                decoding.append(slot)
        reading: list[tuple[_Slot, int]] = []
        budget = self.n_batch - len(batch)
        for slot in sorted(
            (s for s in self._slots if s.job is not None and s.job.pending is None),
            key=lambda s: s.job.started_ns if s.job else 0,
        ):
            job = slot.job
            assert job is not None
            if job.cancelled:
                self._cancel(slot)
                continue
            if budget <= 0:
                continue
            take = min(budget, len(job.prompt) - job.read)
            if job.read == job.reused and not job.prefill_started_ns:
                job.prefill_started_ns = time.perf_counter_ns()
            for i in range(job.read, job.read + take):
                last = i == len(job.prompt) - 1
                if last:
                    rows.append((len(batch), slot))
                batch.add(job.prompt[i], i, [slot.seq], last)
            reading.append((slot, take))
            budget -= take
        if len(batch) == 0:
            return
        try:
            self._ctx.decode(batch)
        except AbortedError:
            # abort() or close(): the jobs' states decide what follows. Drop whatever part
            # of this batch reached the cache, so each slot holds exactly its tokens.
            self._ctx.clear_abort()
            for slot in [*decoding, *(slot for slot, _ in reading)]:
                self._ctx.seq_rm(slot.seq, len(slot.cache), -1)
            return
        now = time.perf_counter_ns()
        for slot in decoding:
            job = slot.job
            assert job is not None and job.pending is not None
            slot.cache.append(job.pending)
            job.pending = None
        for slot, take in reading:
            job = slot.job
            assert job is not None
            slot.cache.extend(job.prompt[job.read : job.read + take])
            job.read += take
            if job.read == len(job.prompt):
                job.prefilled_ns = now
        for index, slot in rows:
            self._sample(slot, index)

    def _make_room(self, slot: _Slot, job: _Job) -> bool:
        """Room for one more token in the slot: shift its context if allowed, else finish."""
        n_past = len(slot.cache)
        if n_past < self.n_slot_ctx:
            return True
        n_keep = min(job.plan.n_keep, n_past - 1)
        n_discard = (n_past - n_keep) // 2
        if (
            not job.plan.shift
            or not self._ctx.can_shift
            or n_discard <= 0
            or not self._ctx.seq_rm(slot.seq, n_keep, n_keep + n_discard)
        ):
            self._finish(slot, "length")
            return False
        self._ctx.seq_add(slot.seq, n_keep + n_discard, n_past, -n_discard)
        del slot.cache[n_keep : n_keep + n_discard]
        return True

    def _sample(self, slot: _Slot, index: int) -> None:
        job = slot.job
        assert job is not None and job.sampler is not None and job.text is not None
        try:
            token = job.sampler.sample(self._ctx, index)
        except LlamahostError as exc:  # a grammar that allows nothing here, say
            self._fail(slot, exc)
            return
        if self._vocab.is_eog(token):
            self._finish(slot, "stop")
            return
        job.generated.append(token)
        job.unsent.append(token)
        if job.request.top_logprobs is not None:
            job.unsent_logprobs.append(
                token_logprob(self._vocab, self._ctx.logits(index), token, job.request.top_logprobs)
            )
        emitted = job.text.push(self._vocab.token_to_piece(token, job.request.render_special))
        if emitted:
            job.out.put(GenerateChunk(emitted, tokens=job.unsent, logprobs=job.unsent_logprobs))
            job.unsent, job.unsent_logprobs = [], []
        if job.text.stopped:
            self._finish(slot, "stop")
        elif 0 <= job.plan.n_predict <= len(job.generated):
            self._finish(slot, "length")
        else:
            job.pending = token

    def _finish(self, slot: _Slot, reason: str) -> None:
        job = slot.job
        assert job is not None and job.text is not None
        tail = job.text.finish()
        done_ns = time.perf_counter_ns()
        prefilled = job.prefilled_ns or done_ns
        metrics = Metrics(
            total_duration=done_ns - job.started_ns + job.load_duration_ns,
            load_duration=job.load_duration_ns,
            prompt_eval_count=len(job.prompt),
            prompt_eval_duration=prefilled - (job.prefill_started_ns or prefilled),
            prompt_cached_count=job.reused,
            eval_count=len(job.generated),
            eval_duration=done_ns - prefilled,
        )
        job.out.put(
            GenerateChunk(
                tail,
                tokens=job.unsent,
                logprobs=job.unsent_logprobs,
                done=True,
                done_reason=reason,
                metrics=metrics,
                context=job.prompt + job.generated,
            )
        )
        self._release(slot)

    def _cancel(self, slot: _Slot) -> None:
        assert slot.job is not None
        slot.job.out.put(AbortedError("aborted"))
        self._release(slot)

    def _fail(self, slot: _Slot, exc: BaseException) -> None:
        assert slot.job is not None
        slot.job.out.put(exc)
        self._ctx.seq_rm(slot.seq, -1, -1)
        slot.cache = []
        self._release(slot)

    def _release(self, slot: _Slot) -> None:
        """Free the slot, keeping its cached tokens for the next request's prefix."""
        slot.job = None
        slot.last_used = time.monotonic()
        self._ctx.seq_rm(slot.seq, len(slot.cache), -1)
