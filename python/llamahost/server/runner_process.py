"""One runner subprocess, seen from the server: start it, talk to it, notice its death, kill it.

A runner (``python -m llamahost.runner``, see :mod:`llamahost.runner` for its contract) holds
one model. The server starts it with the flags of a :class:`RunnerSpec`, reaches it over a
Unix socket in a private directory, and authenticates with a per-launch secret::

    $TMPDIR/llamahost-runner-XXXXXXXX/     mode 0700, created by the server
        runner.sock                        mode 0600, created by the runner

    LLAMAHOST_RUNNER_SECRET=<random>       in the runner's environment, never its argv;
                                           every request carries "Authorization: Bearer ..."

Lifecycle, and why no runner outlives the server:

- the runner starts in a session (and process group) of its own, so a Ctrl-C in the
  server's terminal reaches only the server, which then stops its runners itself;
- its stdin is a pipe whose write end only the server holds, and it runs with
  ``--watch-stdin``: when the server exits, however it exits (``kill -9`` included), the
  runner reads EOF and exits;
- :meth:`RunnerProcess.kill` sends SIGKILL to the runner's whole process group;
- a task awaits the process's exit the whole time: a runner that dies (a native crash, the
  OOM killer, ``kill -9``) is noticed at once; every call in flight raises
  :class:`RunnerExitedError` with how it ended and the last lines it wrote, never hangs.

While the model loads, ``GET /health`` is polled; if the runner exits instead,
:class:`RunnerLoadError` carries llama.cpp's reason (the health endpoint's ``error``, else
the runner's last stderr lines). Each line the runner writes goes to the server's log
(logger ``llamahost.runner``) prefixed with the model's name.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from llamahost.engine.options import ContextParams, ModelParams
from llamahost.errors import LlamahostError
from llamahost.server import runner_http

log = logging.getLogger("llamahost.runner")

_T = TypeVar("_T")

SECRET_ENV = "LLAMAHOST_RUNNER_SECRET"
#: Environment variables the runner must not inherit (it has no use for them).
WITHHELD_ENV = ("LLAMAHOST_API_KEY",)
STDERR_TAIL_LINES = 40
LOAD_STALL_TIMEOUT_S = 300.0  # a load whose progress does not move for this long fails
HEALTH_POLL_S = (0.02, 0.25)  # first and longest interval between /health polls
MAX_LINE = 1 << 20  # longest runner log line kept whole


class RunnerError(LlamahostError):
    """A runner could not be started or reached, or failed a request."""


class RunnerLoadError(RunnerError):
    """The runner could not load the model; the message carries llama.cpp's reason."""


class RunnerExitedError(RunnerError):
    """The runner exited (or was stopped) while a request was in flight."""


@dataclass(frozen=True)
class RunnerSpec:
    """What a runner is started with. Requests whose specs are equal share one runner.

    ``context.num_ctx`` is the context of each of the ``parallel`` slots, already resolved
    (never 0). Paths are the store's blob files of the model's shards and adapters. The
    runner takes its model and context options from these flags only: requests send it
    request-time options alone.
    """

    model_paths: tuple[str, ...]
    adapter_paths: tuple[str, ...] = ()
    model: ModelParams = field(default_factory=ModelParams)
    context: ContextParams = field(default_factory=ContextParams)
    parallel: int = 1

    def argv(self, socket_path: str) -> list[str]:
        """The runner's command line (after ``python -m llamahost.runner``)."""
        args: list[str] = []
        for path in self.model_paths:
            args += ["--model", path]
        ctx, model = self.context, self.model
        args += ["--ctx-size", str(ctx.num_ctx), "--batch-size", str(ctx.num_batch)]
        args += ["--parallel", str(self.parallel)]
        if ctx.num_thread:
            args += ["--threads", str(ctx.num_thread)]
        args += ["--n-gpu-layers", str(model.num_gpu), "--main-gpu", str(model.main_gpu)]
        flash = {None: "auto", True: "on", False: "off"}[ctx.flash_attn]
        args += ["--flash-attn", flash, "--kv-cache-type", ctx.kv_cache_type]
        for path in self.adapter_paths:
            args += ["--lora", path]
        if model.use_mlock:
            args.append("--mlock")
        if model.use_mmap is False:
            args.append("--no-mmap")
        args += ["--socket", socket_path, "--watch-stdin"]
        return args

    @property
    def uses_mmap(self) -> bool:
        return self.model.use_mmap is not False


@dataclass(frozen=True)
class RunnerInfo:
    """What ``GET /info`` reported after the load."""

    raw: dict[str, Any]

    @property
    def n_ctx(self) -> int:
        return int(self.raw.get("n_ctx", 0))

    @property
    def memory(self) -> dict[str, int]:
        memory = self.raw.get("memory")
        if not isinstance(memory, dict):
            return {}
        return {k: int(v) for k, v in memory.items() if isinstance(v, (int, float))}

    @property
    def gpu_layers(self) -> tuple[int, int] | None:
        """(layers offloaded to GPUs, layers), from llama.cpp's "offloaded 24/25 layers to
        GPU" line; None where it logged none (a build without GPU support)."""
        offload = self.raw.get("offload")
        if not isinstance(offload, dict):
            return None
        return int(offload.get("gpu_layers", 0)), int(offload.get("layers", 0))

    @property
    def memory_devices(self) -> dict[str, dict[str, int]]:
        """Bytes of weights / KV cache / compute buffers per device (``CPU``, ``Vulkan0``,
        ``CUDA_Host``, ...), as llama.cpp's load log reported them."""
        memory = self.raw.get("memory")
        devices = memory.get("devices") if isinstance(memory, dict) else None
        if not isinstance(devices, dict):
            return {}
        return {
            str(name): {k: int(v) for k, v in kinds.items() if isinstance(v, (int, float))}
            for name, kinds in devices.items()
            if isinstance(kinds, dict)
        }

    @property
    def size_vram(self) -> int:
        """Bytes on GPUs: the runner's per-device buffers (``memory.devices``) whose device
        is a GPU (``CUDA0``, ``ROCm1``, ``Vulkan0``, ``Metal``; not ``CPU`` or a GPU
        backend's pinned host memory, which llama.cpp names without a number)."""
        total = 0
        for name, kinds in self.memory_devices.items():
            if name == "Metal" or (name != "CPU" and name[-1:].isdigit()):
                total += sum(kinds.values())
        return total


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit status {returncode}"


def _private_socket_dir() -> str:
    """A fresh 0700 directory for the socket; under /tmp when $TMPDIR's path is too long
    for a Unix socket address (108 bytes)."""
    folder = tempfile.mkdtemp(prefix="llamahost-runner-")
    if len(os.path.join(folder, "runner.sock")) > 100:
        os.rmdir(folder)
        folder = tempfile.mkdtemp(prefix="llamahost-runner-", dir="/tmp")
    os.chmod(folder, 0o700)
    return folder


class RunnerProcess:
    """A runner subprocess for one :class:`RunnerSpec`.

    ``await start()`` spawns it and returns once the model is loaded (RunnerLoadError
    otherwise); then :meth:`post` and :meth:`stream` send requests; :meth:`kill` stops it.
    `on_exit` is called once, from the event loop, when the process has exited for any
    reason.
    """

    def __init__(
        self,
        spec: RunnerSpec,
        label: str,
        *,
        on_exit: Callable[[RunnerProcess], None] | None = None,
    ) -> None:
        self.spec = spec
        self.label = label
        self.on_exit = on_exit
        self.progress = 0.0
        self.info = RunnerInfo({})
        self.pid: int | None = None
        self.returncode: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._socket_dir: str | None = None
        self._secret = secrets.token_urlsafe(32)
        self._client: httpx.AsyncClient | None = None
        self._socket_path: str | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._health_error: str | None = None
        self._stop_reason: str | None = None
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._tasks: list[asyncio.Task[None]] = []

    # ---- state ------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._proc is not None and not self._exited.done()

    def exit_message(self) -> str:
        """Why the runner is gone, in words for a client."""
        if self._stop_reason is not None:
            return self._stop_reason
        how = _describe_exit(self.returncode) if self.returncode is not None else "exited"
        message = f"the runner of model '{self.label}' stopped unexpectedly ({how})"
        reason = self._health_error or _last_error_line(self._tail, fallback=False)
        return f"{message}: {reason}" if reason else message

    # ---- start ------------------------------------------------------------------------
    async def start(self) -> None:
        """Spawn the runner and wait until its model is loaded (or it fails to load)."""
        self._socket_dir = _private_socket_dir()
        socket_path = os.path.join(self._socket_dir, "runner.sock")
        env = {k: v for k, v in os.environ.items() if k not in WITHHELD_ENV}
        env[SECRET_ENV] = self._secret
        env.setdefault("PYTHONUNBUFFERED", "1")
        argv = [sys.executable, "-m", "llamahost.runner", *self.spec.argv(socket_path)]
        log.debug("%s: starting runner: %s", self.label, " ".join(argv))
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,  # our end stays open: EOF means the server died
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
                limit=MAX_LINE,
            )
        except OSError as exc:
            self._cleanup_dir()
            raise RunnerLoadError(f"could not start a runner for '{self.label}': {exc}") from None
        self.pid = self._proc.pid
        self._socket_path = socket_path
        transport = httpx.AsyncHTTPTransport(uds=socket_path, retries=0)
        self._client = httpx.AsyncClient(
            transport=transport,
            base_url="http://runner",
            headers={"Authorization": f"Bearer {self._secret}"},
            timeout=httpx.Timeout(None, connect=10.0),
        )
        self._tasks = [
            asyncio.create_task(self._forward_output(), name=f"runner-log {self.label}"),
            asyncio.create_task(self._watch(), name=f"runner-watch {self.label}"),
        ]
        try:
            await self._wait_loaded()
            self.info = RunnerInfo(await self._get_json("/info"))
        except BaseException as exc:
            await self.kill(reason=None)
            if isinstance(exc, RunnerLoadError):
                raise
            if isinstance(exc, (RunnerError, httpx.HTTPError)):
                raise RunnerLoadError(self._load_failure(str(exc))) from None
            raise
        self.progress = 1.0

    async def _wait_loaded(self) -> None:
        delay, longest = HEALTH_POLL_S
        last_progress, last_change = -1.0, time.monotonic()
        assert self._client is not None
        while True:
            if self._exited.done():
                await self._drain_output()
                raise RunnerLoadError(self._load_failure(None))
            try:
                response = await self._until_exit(self._client.get("/health", timeout=5.0))
            except RunnerExitedError:
                continue  # the loop's first check reports it
            except httpx.TransportError:
                response = None  # not listening yet
            if response is not None:
                body = _json_or_empty(response)
                status = body.get("status")
                if response.status_code == 200 and status == "ok":
                    return
                if response.status_code == 401:
                    raise RunnerLoadError(f"the runner of '{self.label}' refused its secret")
                if status == "error":
                    self._health_error = str(body.get("error") or response.text)[:2000]
                    continue  # it exits after reporting; the exit check above raises
                progress = body.get("progress")
                if isinstance(progress, (int, float)):
                    self.progress = max(0.0, min(1.0, float(progress)))
            if self.progress != last_progress:
                last_progress, last_change = self.progress, time.monotonic()
            elif time.monotonic() - last_change > LOAD_STALL_TIMEOUT_S:
                raise RunnerLoadError(
                    f"loading model '{self.label}' made no progress for "
                    f"{LOAD_STALL_TIMEOUT_S:.0f} s"
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exited), delay)
            delay = min(longest, delay * 1.5)

    def _load_failure(self, detail: str | None) -> str:
        reason = self._health_error or _last_error_line(self._tail) or detail
        how = f" ({_describe_exit(self.returncode)})" if self.returncode is not None else ""
        if reason:
            return f"model '{self.label}' failed to load: {reason}"
        return f"model '{self.label}' failed to load: the runner exited{how}"

    # ---- output and exit --------------------------------------------------------------
    async def _forward_output(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stream = self._proc.stdout
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than MAX_LINE: take what is buffered
                raw = await stream.read(MAX_LINE)
            if not raw:
                return
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line:
                self._tail.append(line)
                log.info("[%s] %s", self.label, line)

    async def _drain_output(self) -> None:
        """Let the log forwarder read what the exited runner wrote last."""
        if self._tasks:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._tasks[0]), 2.0)

    async def _watch(self) -> None:
        assert self._proc is not None
        returncode = await self._proc.wait()
        self.returncode = returncode
        if not self._exited.done():
            self._exited.set_result(returncode)
        if self._stop_reason is None:
            await self._drain_output()
            log.warning("%s: runner exited (%s)", self.label, _describe_exit(returncode))
        self._close_stdin()
        if self._client is not None:
            await self._client.aclose()
        self._cleanup_dir()
        if self.on_exit is not None:
            try:
                self.on_exit(self)
            except Exception:  # pragma: no cover - a bug in the callback
                log.exception("%s: runner exit callback failed", self.label)

    def _close_stdin(self) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(Exception):
                self._proc.stdin.close()

    def _cleanup_dir(self) -> None:
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    async def kill(self, reason: str | None = "the model was unloaded") -> None:
        """Stop the runner (SIGKILL to its process group) and wait until it has exited.

        Calls in flight raise RunnerExitedError(reason). Safe to call more than once.
        """
        if self._stop_reason is None and reason is not None:
            self._stop_reason = reason
        proc = self._proc
        if proc is None:
            self._cleanup_dir()
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.shield(self._exited)
        for task in self._tasks:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), 5.0)

    # ---- requests ---------------------------------------------------------------------
    async def _until_exit(self, awaitable: Awaitable[_T]) -> _T:
        """Await `awaitable`, or raise RunnerExitedError as soon as the runner is gone."""
        task = asyncio.ensure_future(awaitable)
        try:
            await asyncio.wait((task, self._exited), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        await self._drain_output()  # its last words (a GGML_ASSERT, ...) belong in the error
        raise RunnerExitedError(self.exit_message())

    async def _transport_failure(self, exc: Exception) -> RunnerError:
        """The error for a broken connection: the runner's exit, if that is what it was."""
        if not self._exited.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exited), 1.0)
        if self._exited.done():
            await self._drain_output()
            return RunnerExitedError(self.exit_message())
        return RunnerError(f"lost the connection to the runner of '{self.label}': {exc}")

    async def _get_json(self, path: str) -> dict[str, Any]:
        assert self._client is not None
        try:
            response = await self._until_exit(self._client.get(path, timeout=30.0))
        except httpx.TransportError as exc:
            raise await self._transport_failure(exc) from None
        if response.status_code != 200:
            raise RunnerError(f"runner {path} answered {response.status_code}: {response.text}")
        return _json_or_empty(response)

    @contextlib.asynccontextmanager
    async def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[RunnerStream]:
        """``POST path`` and read the answer as it comes::

            async with runner.stream("/api/generate", body) as answer:
                if answer.status != 200: ... await answer.json() ...
                async for line in answer.lines(): ...

        Leaving the block early closes the connection, which the runner takes as a
        cancellation (its slot is freed within one decode step). This path carries every
        generated token, so it goes through the lean client of ``runner_http``.
        """
        if not self.alive or self._socket_path is None:
            raise RunnerExitedError(self.exit_message())
        try:
            response = await self._until_exit(
                runner_http.post(self._socket_path, self._secret, path, body)
            )
        except runner_http.RunnerHTTPError as exc:
            raise await self._transport_failure(exc) from None
        try:
            yield RunnerStream(self, response)
        finally:
            await asyncio.shield(response.aclose())


class RunnerStream:
    """The answer to one streamed request (see :meth:`RunnerProcess.stream`)."""

    def __init__(self, runner: RunnerProcess, response: runner_http.RunnerResponse) -> None:
        self.runner = runner
        self.response = response

    @property
    def status(self) -> int:
        return self.response.status

    async def json(self) -> dict[str, Any]:
        """The whole body as a JSON object (for an error status, or a non-streamed answer)."""
        try:
            return await self.runner._until_exit(self.response.json())
        except runner_http.RunnerHTTPError as exc:
            raise await self.runner._transport_failure(exc) from None

    async def lines(self) -> AsyncIterator[bytes]:
        """The body's lines (NDJSON) as they arrive; RunnerExitedError if the runner dies.

        This runs once per generated token, so it does not race every read against the
        process's exit: a dying runner's socket closes, which ends the read with an error
        that is then explained.
        """
        try:
            async for line in self.response.lines():
                yield line
        except runner_http.RunnerHTTPError as exc:
            raise await self.runner._transport_failure(exc) from None


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        value = json.loads(response.content)
    except (ValueError, httpx.ResponseNotRead):
        return {"error": response.text[:2000]} if response.status_code != 200 else {}
    return value if isinstance(value, dict) else {"value": value}


def _last_error_line(lines: collections.deque[str], *, fallback: bool = True) -> str | None:
    """The most telling of a failed runner's last lines: llama.cpp's error or a traceback's
    last line; else (with `fallback`) the last line."""
    for line in reversed(lines):
        lowered = line.lower()
        if "error" in lowered or "failed" in lowered or "exception" in lowered:
            return line.strip()
    return lines[-1].strip() if lines and fallback else None
