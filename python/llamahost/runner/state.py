"""What a runner holds: the model once loaded, its batch engine, and how loading went.

The HTTP app is up before the weights are: ``/health`` answers "loading" with the progress
while a thread loads them, then "ok", or "error" with llama.cpp's reason.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llamahost.engine.options import Options

log = logging.getLogger("llamahost.runner")

#: llama.cpp's load/context log lines that say how much memory each buffer takes.
_BUFFER_LINE = re.compile(
    r"(?P<device>[\w.-]+)(?:_\w+)?\s+(?P<kind>model|KV|compute|output|RS)\s+buffer size\s*=\s*"
    r"(?P<mib>[\d.]+)\s*MiB"
)
_OFFLOAD_LINE = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_KIND = {"model": "weights", "KV": "kv", "RS": "kv", "compute": "compute", "output": "compute"}
#: Chat templates kept compiled (one Model wrapper per template, system and history).
MAX_TEMPLATE_VARIANTS = 16


@dataclass
class LaunchConfig:
    """What the runner was started with (its command line, as options)."""

    model_paths: list[str]
    options: Options
    parallel: int = 1
    adapters: list[str] = field(default_factory=list)
    tensor_split: list[float] = field(default_factory=list)


class MemoryLog(logging.Handler):
    """Collects llama.cpp's "... buffer size = N MiB" lines and its "offloaded 24/25 layers
    to GPU" line while the model loads."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.bytes: dict[str, dict[str, int]] = {}  # device -> kind -> bytes
        self.offloaded: tuple[int, int] | None = None  # (layers on GPUs, layers)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if (offload := _OFFLOAD_LINE.search(message)) is not None:
            self.offloaded = (int(offload[1]), int(offload[2]))
            return
        match = _BUFFER_LINE.search(message)
        if match is None:
            return
        device = match["device"].split("_")[0]
        kind = _KIND[match["kind"]]
        per_device = self.bytes.setdefault(device, {"weights": 0, "kv": 0, "compute": 0})
        per_device[kind] += int(float(match["mib"]) * 1024 * 1024)

    def totals(self) -> dict[str, Any]:
        total = {"weights": 0, "kv": 0, "compute": 0}
        for per_device in self.bytes.values():
            for kind, value in per_device.items():
                total[kind] += value
        return {**total, "devices": self.bytes}


class _WarningsUpward(logging.Handler):
    """Passes llama.cpp's warnings and errors on while its info lines are kept local."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger("llamahost").handle(record)


_warnings_upward = _WarningsUpward()


class RunnerState:
    """The runner's model, loaded in a background thread."""

    def __init__(self, config: LaunchConfig) -> None:
        self.config = config
        self.progress = 0.0
        self.error: str | None = None
        self.loaded = threading.Event()
        self.started = time.monotonic()
        self.load_duration_ns = 0
        self.memory: dict[str, Any] = {}
        self.offloaded: tuple[int, int] | None = None  # (layers on GPUs, layers), if logged
        self.metadata: dict[str, Any] = {}  # the GGUF header's key/values (typed)
        self._model: Any = None  # llamahost.Model: the engine's executor, the GGUF template
        self._engine: Any = None
        self._variants: OrderedDict[tuple[str | None, str | None, str], Any] = OrderedDict()
        self._variants_lock = threading.Lock()

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        return "ok" if self.loaded.is_set() else "loading"

    @property
    def model(self) -> Any:
        return self._model

    @property
    def engine(self) -> Any:
        return self._engine

    def load(self) -> None:
        """Load the weights and start the batch engine (call in a thread)."""
        from llamahost import _native
        from llamahost.engine.model import Model, load_native
        from llamahost.gguf import model_paths
        from llamahost.gguf_header import read_gguf
        from llamahost.runner.batch_engine import BatchEngine

        memory_log = MemoryLog()
        llama_log = logging.getLogger("llamahost.llama_cpp")
        llama_log.addHandler(memory_log)
        previous_level = _native.get_log_level()
        _native.set_log_level(min(previous_level, 2))  # info: the buffer-size lines
        quiet = previous_level > 2  # the info lines were asked for only to be read here
        if quiet:
            llama_log.propagate = False
            llama_log.addHandler(_warnings_upward)
        t0 = time.perf_counter_ns()
        try:
            options = self.config.options

            def on_progress(fraction: float) -> bool:
                self.progress = round(float(fraction), 4)
                return True

            paths = model_paths(self.config.model_paths)
            self.metadata = read_gguf(paths[0], max_array_length=0).metadata
            native = load_native(
                paths,
                options.model_params,
                on_progress,
                tensor_split=self.config.tensor_split,
                context=options.context_params,
                parallel=self.config.parallel,
                adapter_bytes=sum(os.path.getsize(a) for a in self.config.adapters),
            )
            adapters = [_native.Adapter.load(native, path) for path in self.config.adapters]
            engine = BatchEngine(
                native, options.context_params, parallel=self.config.parallel, adapters=adapters
            )
            self.load_duration_ns = time.perf_counter_ns() - t0
            self._engine = engine
            # The server reports load durations (it also counts starting this process).
            self._model = Model(native, options, adapters=adapters, executor=engine)
            self.memory = memory_log.totals()
            self.offloaded = memory_log.offloaded
            self.progress = 1.0
            self.loaded.set()
            log.info(
                "loaded %s in %.2f s (%d slot(s) of %d tokens; weights %d MiB, KV %d MiB, "
                "compute %d MiB)",
                paths[0],
                self.load_duration_ns / 1e9,
                self.config.parallel,
                engine.n_slot_ctx,
                self.memory["weights"] >> 20,
                self.memory["kv"] >> 20,
                self.memory["compute"] >> 20,
            )
        except Exception as exc:  # reported by /health, then the process exits
            self.error = str(exc)
            log.error("loading the model failed: %s", exc)
        finally:
            llama_log.removeHandler(memory_log)
            if quiet:
                llama_log.removeHandler(_warnings_upward)
                llama_log.propagate = True
            _native.set_log_level(previous_level)

    def model_for(
        self, template: str | None, system: str | None, history: Sequence[Mapping[str, Any]]
    ) -> Any:
        """A Model that renders with `template` (None: the GGUF's), `system` and the
        Modelfile's `history`, sharing this runner's weights and batch engine."""
        if template is None and system is None and not history:
            return self._model
        import json

        from llamahost.engine.model import Model

        key = (template, system, json.dumps(list(history), sort_keys=True, default=str))
        with self._variants_lock:
            model = self._variants.get(key)
            if model is not None:
                self._variants.move_to_end(key)
                return model
        base = self._model
        model = Model(
            base.native,
            base.options,
            template=template,
            system=system,
            messages=history,
            adapters=base.adapters,
            executor=self._engine,
        )
        with self._variants_lock:
            self._variants[key] = model
            while len(self._variants) > MAX_TEMPLATE_VARIANTS:
                self._variants.popitem(last=False)
        return model
