"""The scheduler: which runners are loaded, who may use them, and when they go away.

One runner serves every request whose :class:`~llamahost.server.runner_process.RunnerSpec`
is equal: the same weight files and adapters, model options (``num_gpu``, ``use_mmap``, ...)
and context options (``num_ctx``, ``kv_cache_type``, ...), so two names for the same
weights share a runner. A request takes a :class:`Lease` with :meth:`Scheduler.acquire`
and gives it back with :meth:`Lease.release`::

    lease = await scheduler.acquire(LoadRequest(spec, ...), keep_alive=300)
    try:
        ... lease.runner.stream("/api/generate", body) ...
    finally:
        lease.release()

Rules (Ollama's, with the differences noted):

- **Loading**: the first request for a spec starts its runner; requests arriving while it
  loads wait for it, and all get the load's error if it fails. Loads happen one at a time.
- **Slots**: a runner has ``parallel`` slots; up to ``max_queue`` more requests wait for
  one (and the load). Past that, :class:`QueueFullError` (the server's 503 with
  ``Retry-After``). Ollama counts its queue across models; here it is per runner.
- **Room**: before loading, the model's memory is estimated (:mod:`.memory`). When it
  does not fit, or ``max_loaded_models`` runners are loaded, idle runners are stopped,
  least recently used first; when none is idle, the load waits until one is. A model that
  cannot fit even with every other model unloaded fails at once with the numbers
  (:class:`~llamahost.errors.InsufficientMemoryError`).
- **Reload**: a request for the same weights with other load-time options replaces the
  loaded runner once that one is idle.
- **keep_alive**: each request sets how long its runner stays loaded once idle (0: stop it
  right after the request; ``math.inf``: never); the timer runs only while no request uses
  the runner.
- **Death**: a runner that exits is removed at once (``/api/ps`` no longer shows it); the
  requests it was serving get RunnerExitedError; requests still waiting for a slot move
  to a new runner.
- :meth:`Scheduler.shutdown` stops every runner: streams in flight end with an error
  ("the server is shutting down") and new requests get :class:`ServerClosingError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from llamahost.errors import InsufficientMemoryError, LlamahostError
from llamahost.memory import (
    MemoryEstimate,
    available_memory,
    gpu_may_be_present,
    human_bytes,
)
from llamahost.server.runner_process import RunnerLoadError, RunnerProcess, RunnerSpec

log = logging.getLogger("llamahost.server")

DEFAULT_KEEP_ALIVE_S = 300.0
DEFAULT_NUM_PARALLEL = 1  # Ollama's default since it stopped choosing 4 when memory allowed
DEFAULT_MAX_LOADED_MODELS = 3  # Ollama: 3 per GPU, and 3 on a CPU-only machine
DEFAULT_MAX_QUEUE = 512
RETRY_AFTER_S = 1
SHUTDOWN_MESSAGE = "the server is shutting down"
FOREVER = timedelta(microseconds=(2**63 - 1) // 1000)  # Go's longest duration, as Ollama shows


class SchedulerError(LlamahostError):
    """A request could not be given a runner."""


class QueueFullError(SchedulerError):
    """Too many requests wait for this model: answer 503 with ``Retry-After``."""

    retry_after_s = RETRY_AFTER_S


class ServerClosingError(SchedulerError):
    """The server is shutting down and takes no new requests."""


@dataclass(frozen=True)
class SchedulerConfig:
    """The scheduler's settings (``llamahost serve`` reads them from ``LLAMAHOST_*``)."""

    keep_alive: float = DEFAULT_KEEP_ALIVE_S
    """Seconds an idle model stays loaded (``LLAMAHOST_KEEP_ALIVE``; inf = forever)."""
    num_parallel: int = DEFAULT_NUM_PARALLEL
    """Slots per runner: requests decoded together (``LLAMAHOST_NUM_PARALLEL``)."""
    max_loaded_models: int = DEFAULT_MAX_LOADED_MODELS
    """Runners loaded at once (``LLAMAHOST_MAX_LOADED_MODELS``; 0 = the default)."""
    max_queue: int = DEFAULT_MAX_QUEUE
    """Requests that may wait per runner beyond its slots (``LLAMAHOST_MAX_QUEUE``)."""

    @classmethod
    def of(cls, config: Any) -> SchedulerConfig:
        """The scheduler's part of the server's ``ServerConfig`` (``keep_alive_s``,
        ``num_parallel``, ``max_loaded_models``, ``max_queue``), read from the environment
        there."""
        return cls(
            keep_alive=float(config.keep_alive_s),
            num_parallel=int(config.num_parallel),
            max_loaded_models=int(config.max_loaded_models) or DEFAULT_MAX_LOADED_MODELS,
            max_queue=int(config.max_queue),
        )


@dataclass(frozen=True)
class LoadRequest:
    """A request's runner: its spec, the memory estimate, and what ``/api/ps`` shows."""

    spec: RunnerSpec
    estimate: MemoryEstimate
    name: str  # the model's name as /api/ps shows it (``smollm2:latest``)
    digest: str = ""  # the manifest's sha256 hex
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Runner:
    """The scheduler's record of one runner (loading, loaded or stopping)."""

    load: LoadRequest
    keep_alive: float
    ready: asyncio.Future[None]
    slots: asyncio.Semaphore
    process: RunnerProcess | None = None
    claims: int = 0  # requests holding or waiting for a slot (and waiting for the load)
    last_used: float = field(default_factory=time.monotonic)
    expires_at: float | None = None  # wall clock (time.time) of the planned unload
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    loaded_at: float = 0.0  # monotonic time the load finished

    @property
    def spec(self) -> RunnerSpec:
        return self.load.spec

    @property
    def idle(self) -> bool:
        return self.claims == 0 and self.ready.done() and not self.stopping

    @property
    def memory(self) -> dict[str, int]:
        """Actual bytes after the load (from the runner), else the estimate."""
        actual = self.process.info.memory if self.process is not None else {}
        if all(k in actual for k in ("weights", "kv", "compute")):
            return {k: actual[k] for k in ("weights", "kv", "compute")}
        return self.load.estimate.to_dict()

    @property
    def total_memory(self) -> int:
        return sum(self.memory.values())


@dataclass
class Lease:
    """A slot on a loaded runner, held by one request; give it back with :meth:`release`."""

    runner: RunnerProcess
    load_duration_ns: int
    _record: _Runner
    _scheduler: Scheduler
    _released: bool = False

    def release(self) -> None:
        """Free the slot (idempotent); starts the keep-alive timer when the runner is idle."""
        if self._released:
            return
        self._released = True
        self._record.slots.release()
        self._scheduler._unclaim(self._record)


class Scheduler:
    """Runners by spec; see the module docstring for the rules."""

    def __init__(self, config: SchedulerConfig | None = None) -> None:
        self.config = config or SchedulerConfig()
        self._runners: dict[RunnerSpec, _Runner] = {}
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._closing = False
        self._stopping_tasks: set[asyncio.Task[None]] = set()

    # ---- requests -------------------------------------------------------------------------
    async def acquire(self, load: LoadRequest, keep_alive: float | None = None) -> Lease:
        """A slot on the runner for `load.spec`, loading it first if needed.

        Raises QueueFullError when too many requests wait, ServerClosingError during
        shutdown, InsufficientMemoryError or RunnerLoadError when the model cannot load.
        """
        started = time.monotonic()
        while True:
            if self._closing:
                raise ServerClosingError(SHUTDOWN_MESSAGE)
            record = self._runners.get(load.spec)
            if record is None or record.stopping:
                record = self._new_runner(load)
            capacity = record.spec.parallel + self.config.max_queue
            if record.claims >= capacity:
                raise QueueFullError(
                    f"server busy, please try again: model '{load.name}' has {record.claims} "
                    f"requests running or waiting (LLAMAHOST_NUM_PARALLEL="
                    f"{record.spec.parallel}, LLAMAHOST_MAX_QUEUE={self.config.max_queue})"
                )
            self._claim(record, keep_alive)
            try:
                await asyncio.shield(record.ready)
                await record.slots.acquire()
            except BaseException:
                self._unclaim(record)
                raise
            process = record.process
            if process is None or not process.alive or record.stopping:
                # It died (or is being replaced) while this request waited: use a new one.
                record.slots.release()
                self._unclaim(record)
                continue
            load_ns = int((time.monotonic() - started) * 1e9) if record.loaded_at > started else 0
            return Lease(runner=process, load_duration_ns=load_ns, _record=record, _scheduler=self)

    async def load_only(self, load: LoadRequest, keep_alive: float | None = None) -> int:
        """Load the model (a request with an empty prompt); the load time in ns."""
        lease = await self.acquire(load, keep_alive)
        lease.release()
        return lease.load_duration_ns

    async def unload(self, model_paths: tuple[str, ...]) -> None:
        """Stop every runner of these weights: idle ones now, busy ones when they finish."""
        stops = []
        for record in list(self._runners.values()):
            if record.spec.model_paths != model_paths:
                continue
            record.keep_alive = 0.0
            if record.claims == 0:
                stops.append(self._stop(record, "the model was unloaded"))
        if stops:
            await asyncio.gather(*stops)

    def _new_runner(self, load: LoadRequest) -> _Runner:
        loop = asyncio.get_running_loop()
        record = _Runner(
            load=load,
            keep_alive=self.config.keep_alive,
            ready=loop.create_future(),
            slots=asyncio.Semaphore(load.spec.parallel),
        )
        self._runners[load.spec] = record
        record.task = asyncio.create_task(self._load(record), name=f"load {load.name}")
        return record

    def _claim(self, record: _Runner, keep_alive: float | None) -> None:
        record.claims += 1
        record.last_used = time.monotonic()
        if keep_alive is not None:
            record.keep_alive = keep_alive
        if record.timer is not None:
            record.timer.cancel()
            record.timer = None

    def _unclaim(self, record: _Runner) -> None:
        record.claims -= 1
        record.last_used = time.monotonic()
        if record.claims == 0 and record.ready.done() and not record.stopping:
            self._schedule_expiry(record)
        self._notify()

    def _schedule_expiry(self, record: _Runner) -> None:
        if record.timer is not None:
            record.timer.cancel()
            record.timer = None
        if record.process is None or not record.process.alive:
            return
        if math.isinf(record.keep_alive):
            record.expires_at = None
            return
        record.expires_at = time.time() + record.keep_alive
        if record.keep_alive <= 0:
            self._stop_soon(record, "the model was unloaded")
            return
        record.timer = asyncio.get_running_loop().call_later(
            record.keep_alive, self._expire, record
        )

    def _expire(self, record: _Runner) -> None:
        record.timer = None
        if record.idle:
            log.info("%s: keep_alive expired, unloading", record.load.name)
            self._stop_soon(record, "the model was unloaded")

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # ---- loading --------------------------------------------------------------------------
    async def _load(self, record: _Runner) -> None:
        try:
            async with self._load_lock:
                if self._closing:
                    raise ServerClosingError(SHUTDOWN_MESSAGE)
                await self._make_room(record)
                process = RunnerProcess(
                    record.spec, record.load.name, on_exit=lambda p: self._exited(record, p)
                )
                record.process = process
                started = time.monotonic()
                log.info(
                    "%s: loading (estimated %s, num_ctx %d x %d parallel)",
                    record.load.name,
                    record.load.estimate.describe(),
                    record.spec.context.num_ctx,
                    record.spec.parallel,
                )
                await process.start()
                record.loaded_at = time.monotonic()
                log.info(
                    "%s: loaded in %.2f s (pid %s)",
                    record.load.name,
                    record.loaded_at - started,
                    process.pid,
                )
        except BaseException as exc:
            self._forget(record)
            if not record.ready.done():
                record.ready.set_exception(
                    exc if isinstance(exc, Exception) else ServerClosingError(SHUTDOWN_MESSAGE)
                )
                record.ready.exception()  # retrieved here: waiters may all have left
            self._notify()
            if not isinstance(exc, Exception):
                raise
            return
        record.ready.set_result(None)
        if record.claims == 0:
            self._schedule_expiry(record)
        self._notify()

    async def _make_room(self, record: _Runner) -> None:
        """Stop idle runners until `record` may load; wait while busy ones are in the way."""
        estimate = record.load.estimate
        while True:
            changed = self._changed
            others = [r for r in self._runners.values() if r is not record and not r.stopping]
            same = [r for r in others if r.spec.model_paths == record.spec.model_paths]
            if same:  # the same weights with other load-time options: replace that runner
                idle = sorted((r for r in same if r.idle), key=lambda r: r.last_used)
                if idle:
                    log.info("%s: reloading with other options", record.load.name)
                    await self._stop(idle[0], "the model was reloaded with other options")
                    continue
                log.info("%s: waiting for its other runner to become idle", record.load.name)
                await changed.wait()
                continue
            budget = self._memory_budget(record, others)
            fits = budget is None or estimate.total <= budget
            if len(others) < self.config.max_loaded_models and fits:
                return
            if budget is not None and not fits:
                reclaimable = sum(r.total_memory for r in others)
                if estimate.total > budget + reclaimable:
                    raise self._too_big(record, budget + reclaimable)
            idle = sorted((r for r in others if r.idle), key=lambda r: r.last_used)
            if idle:
                log.info("%s: unloading to make room for %s", idle[0].load.name, record.load.name)
                await self._stop(idle[0], "the model was unloaded to make room for another")
                continue
            log.info("%s: waiting for a loaded model to become idle", record.load.name)
            await changed.wait()

    def _memory_budget(self, record: _Runner, others: list[_Runner]) -> int | None:
        """Bytes free for `record`, or None when the check does not apply (see memory.py)."""
        if record.spec.model.num_gpu != 0 and gpu_may_be_present():
            return None
        available = available_memory()
        if available is None:
            return None
        mapped = sum(r.memory["weights"] for r in others if r.spec.uses_mmap)
        return max(0, available - mapped)

    def _too_big(self, record: _Runner, available: int) -> InsufficientMemoryError:
        estimate = record.load.estimate
        spec = record.spec
        return InsufficientMemoryError(
            f"model '{record.load.name}' needs {estimate.describe()} for num_ctx "
            f"{spec.context.num_ctx} x {spec.parallel} parallel, but only "
            f"{human_bytes(available)} of memory is available; use a smaller num_ctx "
            "or kv_cache_type, or free memory",
            needed=estimate.total,
            available=available,
        )

    # ---- stopping -------------------------------------------------------------------------
    def _forget(self, record: _Runner) -> None:
        if self._runners.get(record.spec) is record:
            del self._runners[record.spec]
        if record.timer is not None:
            record.timer.cancel()
            record.timer = None

    def _stop_soon(self, record: _Runner, reason: str) -> None:
        """Take `record` out of service now (no new request gets it) and kill it in a task."""
        record.stopping = True
        self._forget(record)
        task = asyncio.get_running_loop().create_task(self._stop(record, reason))
        self._stopping_tasks.add(task)
        task.add_done_callback(self._stopping_tasks.discard)

    async def _stop(self, record: _Runner, reason: str) -> None:
        record.stopping = True
        self._forget(record)
        if record.process is not None:
            await record.process.kill(reason)
        self._notify()

    def _exited(self, record: _Runner, process: RunnerProcess) -> None:
        if record.process is not process:
            return
        if not record.stopping and record.ready.done():
            log.error("%s: %s", record.load.name, process.exit_message())
        record.stopping = True
        self._forget(record)
        self._notify()

    async def shutdown(self) -> None:
        """Stop every runner and refuse new requests. Streams in flight end with an error
        line; requests waiting for a load or a slot get ServerClosingError."""
        self._closing = True
        records = list(self._runners.values())
        for record in records:
            if not record.ready.done():
                record.ready.set_exception(ServerClosingError(SHUTDOWN_MESSAGE))
                record.ready.exception()
        await asyncio.gather(
            *(self._stop(r, SHUTDOWN_MESSAGE) for r in records), return_exceptions=True
        )
        for record in records:
            if record.task is not None and not record.task.done():
                record.task.cancel()
                with contextlib.suppress(BaseException):
                    await record.task
        if self._stopping_tasks:
            await asyncio.gather(*self._stopping_tasks, return_exceptions=True)
        self._notify()

    # ---- reporting ------------------------------------------------------------------------
    def ps(self) -> list[dict[str, Any]]:
        """The loaded (and loading) models, as ``/api/ps`` lists them, most recent first."""
        now_wall = datetime.now(timezone.utc)
        rows = []
        for record in sorted(self._runners.values(), key=lambda r: -r.last_used):
            if record.process is None or record.stopping:
                continue  # still waiting for room: not started
            memory = record.memory
            if record.claims > 0 or record.expires_at is None:
                if math.isinf(record.keep_alive):
                    expires = now_wall + FOREVER
                else:
                    expires = now_wall + timedelta(seconds=record.keep_alive)
            else:
                expires = datetime.fromtimestamp(record.expires_at, tz=timezone.utc)
            info = record.process.info
            loaded = record.ready.done()
            rows.append(
                {
                    "name": record.load.name,
                    "model": record.load.name,
                    "size": sum(memory.values()),
                    "digest": record.load.digest,
                    "details": record.load.details,
                    "expires_at": expires,
                    "size_vram": info.size_vram,
                    "context_length": info.n_ctx or record.spec.context.num_ctx,
                    "memory": memory,
                    "memory_devices": info.memory_devices or None,
                    "gpu_layers": info.gpu_layers[0] if info.gpu_layers else None,
                    "layers": info.gpu_layers[1] if info.gpu_layers else None,
                    "parallel": record.spec.parallel,
                    "state": "loaded" if loaded else "loading",
                    "progress": 1.0 if loaded else record.process.progress,
                    "busy": record.claims,
                }
            )
        return rows


__all__ = [
    "FOREVER",
    "InsufficientMemoryError",
    "Lease",
    "LoadRequest",
    "QueueFullError",
    "RunnerLoadError",
    "Scheduler",
    "SchedulerConfig",
    "SchedulerError",
    "ServerClosingError",
]
