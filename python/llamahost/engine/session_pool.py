"""SessionPool: the contexts of one model, leased one per running generation.

A generation holds its Session (its own llama context) for its whole life, stream or not,
so generations in several threads run side by side and a stream left open in one thread
never blocks another. The lease is the ownership token: it is released when the stream
ends, is closed, or is garbage-collected, whichever thread that happens on.

Idle sessions are kept for reuse, at most ``max_idle``, most recently used first; a new
request takes the idle session whose cached tokens share the longest prefix with its
prompt (the prompt-prefix cache), and a session is created when none is idle.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from llamahost import _native
from llamahost.engine.options import ContextParams
from llamahost.engine.responses import GenerateChunk
from llamahost.engine.session import GenerationRequest, Session


class Executor(Protocol):
    """Runs token-level generations for a Model: in-process sessions (SessionPool) or the
    runner's batch engine, which puts every running generation into one decode."""

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
        """The completion of `tokens` as chunks; the last one has done=True."""
        ...

    def abort(self) -> None:
        """Abort every running generation (each raises AbortedError)."""
        ...

    def close(self) -> None:
        """Free what is idle; running generations finish first."""
        ...


class SessionPool:
    """Sessions of one model; thread-safe."""

    def __init__(
        self, model: _native.Model, adapters: Sequence[_native.Adapter] = (), *, max_idle: int = 2
    ) -> None:
        self._model = model
        self._adapters = list(adapters)
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[Session] = []  # most recently used first
        self._busy: set[Session] = set()
        self._closed = False

    @property
    def busy_count(self) -> int:
        with self._lock:
            return len(self._busy)

    @property
    def idle_count(self) -> int:
        with self._lock:
            return len(self._idle)

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
        """Generate in a session leased for the whole stream."""
        with self.lease(context, tokens) as session:
            yield from session.generate(
                tokens,
                request,
                started_ns=started_ns,
                load_duration_ns=load_duration_ns,
                native_loop=native_loop,
            )

    @contextmanager
    def lease(self, context: ContextParams, prompt: Sequence[int]) -> Iterator[Session]:
        """A session made with `context`'s settings, held until the block ends."""
        session = self._take(context, prompt)
        try:
            yield session
        finally:
            self._give_back(session)

    def abort(self) -> None:
        """Abort the generation running in every busy session."""
        with self._lock:
            busy = list(self._busy)
        for session in busy:
            session.abort()

    def close(self) -> None:
        """Free the idle sessions; busy ones are freed when their generations end."""
        with self._lock:
            self._closed = True
            self._idle.clear()

    def _take(self, context: ContextParams, prompt: Sequence[int]) -> Session:
        with self._lock:
            self._closed = False
            # Idle contexts made for other settings only hold memory: free them first.
            self._idle = [s for s in self._idle if s.matches(context)]
            if self._idle:
                best = max(self._idle, key=lambda s: s.reusable_prefix(prompt))
                self._idle.remove(best)
                self._busy.add(best)
                return best
        session = Session(self._model, context, self._adapters)  # slow: outside the lock
        with self._lock:
            self._busy.add(session)
        return session

    def _give_back(self, session: Session) -> None:
        with self._lock:
            self._busy.discard(session)
            if not self._closed:
                self._idle.insert(0, session)
                del self._idle[self._max_idle :]
