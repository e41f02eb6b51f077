"""Keeping garbage collection away from what a create, pull or copy is still using.

Files in the store root, besides Ollama's ``blobs/`` and ``manifests/``::

    <root>/
    ├── .store.lock                 the store lock (flock): shared by writers for an instant,
    │                               exclusive for a garbage collection (rm, prune)
    ├── .leases/
    │   └── <pid>-<random>.lease    one per create or pull in progress: the digests it uses,
    │                               one ``sha256:<hex>`` a line; flock'ed by its owner
    └── .pypi-<random>/             a ``pypi:`` download's scratch folder, flock'ed by its owner

The design: leases, with the store lock ordering them against collections.

- A writer (create, pull) opens a :class:`Lease` before it touches a blob and adds each
  digest to it *before* it checks whether that blob is stored, imports it, downloads it or
  reuses it; it removes the lease only after the manifest naming those digests is published.
- A garbage collection (``rm``'s blob cleanup, ``prune``) takes the store lock exclusively,
  reads the live leases and then the manifests, and deletes only blobs that neither names.
- Writers take the store lock *shared*, and only for the instants that must not interleave
  with a collection: creating and flock'ing a lease, adding digests to it, creating and
  flock'ing a partial file or a scratch folder, and copy's read-then-write of a manifest.
  So ``rm`` never waits for a download to finish, and a download waits for at most one
  collection's few milliseconds.

Why a published model can never miss a blob: a digest enters a lease under the shared
lock, so a collection either ran entirely before (and the writer's existence check, which
comes after, sees the blob gone and stores it again) or sees the digest in the lease. A
lease goes away only after the manifest is written, and a collection reads leases before
manifests, so no blob of a model being published is ever named by neither.

Liveness without timeouts: leases, partial files and scratch folders are flock'ed by their
owner for as long as it works on them, and the kernel drops those locks when a process
dies (however it dies). A collection that can take such a lock itself knows the owner is
gone: the lease is removed, the scratch folder deleted, the partial file is stale. Process
ids are only in lease names for people reading the folder; they are never trusted (they
get reused).

The store lock is reentrant within a thread (a collection calling helpers that lock again
is fine) and never upgraded: asking for the exclusive lock while holding the shared one is
a programming error (RuntimeError), since two such threads would deadlock. Waiting for the
lock gives up after ``timeout_s`` (BlobError). Without ``fcntl`` (Windows) nothing is
locked, leases and scratch folders of dead processes are recognised by age only
(:data:`UNLOCKED_STALE_AGE_S`), and a collection may race a writer.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from llamahost.errors import BlobError, InvalidDigestError
from llamahost.store.digests import Digest

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCKS_AVAILABLE = fcntl is not None
"""Whether flock exists here; without it nothing is locked (see the module docstring)."""

LOCK_FILE = ".store.lock"
LEASES_DIR = ".leases"
LEASE_SUFFIX = ".lease"
SCRATCH_PREFIX = ".pypi-"
DEFAULT_LOCK_TIMEOUT_S = 60.0
UNLOCKED_STALE_AGE_S = 24 * 3600.0
"""Without flock: how old a lease or scratch folder must be to count as abandoned."""

_POLL_START_S = 0.001
_POLL_MAX_S = 0.05
_SHARED, _EXCLUSIVE = "shared", "exclusive"


@dataclass
class _Holding:
    """One store lock this thread holds: its mode and how many blocks hold it."""

    mode: str
    depth: int = 1


class _Held(threading.local):
    """The store locks this thread holds, by the lock file's (st_dev, st_ino)."""

    def __init__(self) -> None:
        self.locks: dict[tuple[int, int], _Holding] = {}


_held = _Held()


def _flock(fd: int, operation: int, *, timeout_s: float, what: str) -> None:
    """flock ``fd`` with ``operation`` (LOCK_SH/LOCK_EX), polling until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay = _POLL_START_S
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise BlobError(
                    f"gave up after {timeout_s:g} s waiting for {what}; another llamahost "
                    "process holds it"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, _POLL_MAX_S)


class StoreLock:
    """The store-wide lock file ``<root>/.store.lock`` (see the module docstring).

    ``with lock.shared():`` for a writer's short critical sections, ``with
    lock.exclusive():`` for a garbage collection. The root folder is created if needed.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    ) -> None:
        self.root = Path(root)
        self.path = self.root / LOCK_FILE
        self.timeout_s = timeout_s

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the lock shared: no collection runs meanwhile; other writers may."""
        with self._hold(_SHARED):
            yield

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock exclusively: no writer is inside a critical section meanwhile."""
        with self._hold(_EXCLUSIVE):
            yield

    @contextlib.contextmanager
    def _hold(self, mode: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        key = _file_key(self.path)
        held = _held.locks.get(key) if key is not None else None
        if held is not None:  # reentrant: this thread holds it already (no second fd)
            if held.mode == _SHARED and mode == _EXCLUSIVE:
                raise RuntimeError(
                    f"{self.path}: cannot take the exclusive store lock while this thread "
                    "holds it shared"
                )
            held.depth += 1
            try:
                yield
            finally:
                held.depth -= 1
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            stat = os.fstat(fd)
            key = (stat.st_dev, stat.st_ino)
            if fcntl is not None:
                operation = fcntl.LOCK_EX if mode == _EXCLUSIVE else fcntl.LOCK_SH
                _flock(fd, operation, timeout_s=self.timeout_s, what=f"the store lock {self.path}")
            _held.locks[key] = _Holding(mode)
            try:
                yield
            finally:
                del _held.locks[key]
        finally:
            os.close(fd)  # drops the flock


def _file_key(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


@contextlib.contextmanager
def claim_if_abandoned(path: Path, *, min_age_s: float = UNLOCKED_STALE_AGE_S) -> Iterator[bool]:
    """Inside the block, True if nobody holds ``path``'s flock (this process holds it now).

    ``path`` may be a file or a folder. False if a live process holds it, or it vanished.
    Without flock (nothing to ask), True once ``path`` is ``min_age_s`` seconds old.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        yield False
        return
    try:
        if fcntl is None:
            yield time.time() - os.fstat(fd).st_mtime >= min_age_s
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def lock_fd_exclusive(fd: int) -> None:
    """flock a file descriptor that was just created (never blocks: nobody else has it)."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


class Lease:
    """The digests one create or pull uses until its manifest is published.

    ``with Lease(root) as lease: lease.hold([digest, ...])`` before checking, importing or
    downloading those blobs; the lease file goes away when the block ends (or, if the
    process dies, at the next collection, once its flock is gone).
    """

    def __init__(
        self, root: str | os.PathLike[str], *, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    ) -> None:
        self.root = Path(root)
        self._lock = StoreLock(root, timeout_s=timeout_s)
        self._fd: int | None = None
        self.path: Path | None = None
        self.digests: set[Digest] = set()

    def open(self) -> Lease:
        """Create and flock the lease file (under the shared store lock)."""
        if self._fd is not None:
            return self
        with self._lock.shared():
            folder = self.root / LEASES_DIR
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{os.getpid()}-{secrets.token_hex(8)}{LEASE_SUFFIX}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            try:
                lock_fd_exclusive(fd)
            except BaseException:
                os.close(fd)
                os.unlink(path)
                raise
        self._fd, self.path = fd, path
        return self

    def hold(self, digests: Iterable[Digest]) -> None:
        """Protect ``digests`` from collections until :meth:`close`. Call before using them."""
        new = [digest for digest in dict.fromkeys(digests) if digest not in self.digests]
        if not new:
            return
        if self._fd is None:
            raise BlobError("the lease is not open")
        data = "".join(f"{digest}\n" for digest in new).encode("ascii")
        with self._lock.shared():
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        self.digests.update(new)

    def close(self) -> None:
        """Remove the lease: its digests are protected by the published manifest now."""
        fd, path, self._fd, self.path = self._fd, self.path, None, None
        if fd is None or path is None:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        finally:
            os.close(fd)

    def __enter__(self) -> Lease:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def leased_digests(root: str | os.PathLike[str]) -> set[Digest]:
    """Every digest a live lease holds; leases of dead processes are removed.

    Call with the store lock held exclusively, so no lease is being created or extended.
    """
    folder = Path(root) / LEASES_DIR
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return set()
    digests: set[Digest] = set()
    for name in names:
        if not name.endswith(LEASE_SUFFIX):
            continue
        path = folder / name
        with claim_if_abandoned(path) as abandoned:
            if abandoned:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                continue
            digests.update(_read_lease(path))
    return digests


def _read_lease(path: Path) -> set[Digest]:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return set()
    digests = set()
    for line in text.splitlines():
        with contextlib.suppress(InvalidDigestError):
            digests.add(Digest.parse(line.strip()))
    return digests


class ScratchDir:
    """A scratch folder ``<root>/.pypi-<random>`` flock'ed while in use, removed at the end.

    ``with ScratchDir(root) as folder: ...``. A killed owner leaves the folder; the next
    collection removes it (:func:`remove_abandoned_scratch`).
    """

    def __init__(self, root: str | os.PathLike[str], prefix: str = SCRATCH_PREFIX) -> None:
        self.root = Path(root)
        self.prefix = prefix
        self.path: Path | None = None
        self._fd: int | None = None

    def __enter__(self) -> Path:
        with StoreLock(self.root).shared():
            path = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.root))
            fd = os.open(path, os.O_RDONLY)
            lock_fd_exclusive(fd)
        self.path, self._fd = path, fd
        return path

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        path, fd, self.path, self._fd = self.path, self._fd, None, None
        try:
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)
        finally:
            if fd is not None:
                os.close(fd)


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (links not followed)."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total


def remove_abandoned_scratch(
    root: str | os.PathLike[str], prefix: str = SCRATCH_PREFIX
) -> list[tuple[Path, int]]:
    """Delete the scratch folders ``<root>/<prefix>*`` whose owner is gone; (path, bytes
    freed) of each.

    Call with the store lock held exclusively, so no scratch folder is being created.
    """
    removed = []
    try:
        names = sorted(os.listdir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for name in names:
        path = Path(root) / name
        if not name.startswith(prefix) or not path.is_dir() or path.is_symlink():
            continue
        with claim_if_abandoned(path) as abandoned:
            if not abandoned:
                continue
            size = tree_size(path)
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append((path, size))
    return removed
