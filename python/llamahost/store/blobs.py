"""The content-addressed blob store: immutable files named by the SHA-256 of their bytes.

On disk (the same layout as Ollama's models directory)::

    <root>/
    ├── blobs/
    │   ├── sha256-<64 hex>                   a complete blob; its bytes hash to its name
    │   ├── sha256-<64 hex>.partial           a resumable download (BlobStore.resume)
    │   ├── sha256-<64 hex>-<random>.partial  a one-shot write in progress (BlobStore.write)
    │   └── import-<random>.partial           a write whose digest is not known yet
    └── manifests/
        └── <host>/<namespace>/<model>/<tag>  JSON naming a model's blobs (manifests.py)

A blob becomes visible under its final name only once it is complete and verified: bytes
go to a ``.partial`` file in ``blobs/`` (the same filesystem, so the rename is atomic) and
are hashed as they are written; then the size and digest are checked, the file is
fsynced, renamed to ``sha256-<hex>``, and the directory is fsynced. A mismatch removes the
temporary file and raises DigestMismatchError. A crash at any point leaves at most a
``.partial`` file, never a wrong ``sha256-<hex>``; ``iter_digests`` ignores partial files
and ManifestStore.prune removes stale ones.

Every partial file is flock'ed by its writer from the moment it is created (creation and
lock happen under the shared store lock, see locking.py) until it is renamed or dropped, so
a collection can tell a live write from one a killed process left behind, and never
removes a partial file that is still being written.

Every file operation goes through an :class:`FsHooks` object, so tests can cut a write in
the middle (raise from ``write`` after N bytes) and check the store stays consistent.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from llamahost.errors import BlobError, BlobNotFoundError, DigestMismatchError, OptionError
from llamahost.store.digests import Digest
from llamahost.store.locking import StoreLock, claim_if_abandoned

try:
    import fcntl
except ImportError:  # Windows: partial files are not locked
    fcntl = None  # type: ignore[assignment]

BytesLike = bytes | bytearray | memoryview
BlobSource = BytesLike | BinaryIO | Iterable[BytesLike]
"""What a blob can be written from: bytes, a binary file object, or an iterable of chunks."""

PARTIAL_SUFFIX = ".partial"
_CHUNK_SIZE = 1 << 20
_BLOB_NAME = re.compile(r"sha256-([0-9a-f]{64})")
_O_BINARY = getattr(os, "O_BINARY", 0)
# link() errors meaning "no hard link here, copy instead": another filesystem, a filesystem
# without hard links (or protected_hardlinks refusing a file we do not own), too many links.
_LINK_FALLBACK_ERRNOS = frozenset(
    {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}
)


class FsHooks:
    """The file-system calls the stores make, one method each.

    The defaults call ``os``; a test subclass can override one method to fail (raise) at
    a chosen moment, e.g. in ``write`` after N bytes, to simulate a crash or a full disk.
    """

    def open(self, path: Path, flags: int, mode: int = 0o644) -> int:
        """Open ``path`` and return a file descriptor."""
        return os.open(path, flags | _O_BINARY, mode)

    def write(self, fd: int, data: BytesLike) -> None:
        """Write all of ``data`` to ``fd``."""
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def fsync(self, fd: int) -> None:
        """Flush ``fd``'s data to stable storage."""
        os.fsync(fd)

    def close(self, fd: int) -> None:
        """Close ``fd``."""
        os.close(fd)

    def rename(self, src: Path, dst: Path) -> None:
        """Atomically rename ``src`` to ``dst``, replacing ``dst``."""
        os.replace(src, dst)

    def link(self, src: Path, dst: Path) -> None:
        """Create ``dst`` as a hard link to ``src``."""
        os.link(src, dst)

    def fsync_dir(self, path: Path) -> None:
        """Make a rename or link inside directory ``path`` durable (a no-op on Windows)."""
        if os.name == "nt":
            return
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        except OSError as exc:  # some filesystems cannot fsync a directory
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
        finally:
            os.close(fd)


def _iter_chunks(source: BlobSource) -> Iterator[BytesLike]:
    """Yield the bytes of ``source`` in chunks."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield source
        return
    read = getattr(source, "read", None)
    chunks: Iterable[object]
    if callable(read):
        chunks = iter(lambda: read(_CHUNK_SIZE), b"")
    elif isinstance(source, Iterable) and not isinstance(source, str):
        chunks = source
    else:
        raise OptionError(
            "`source` must be bytes, a binary file object or an iterable of bytes, "
            f"got {type(source).__name__}",
            "source",
        )
    for chunk in chunks:
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise OptionError(
                f"`source` must produce bytes, got a {type(chunk).__name__} chunk", "source"
            )
        if chunk:
            yield chunk


def _remove_quietly(path: Path) -> None:
    """Remove ``path`` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _check_size(size: int | None) -> None:
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise OptionError(f"`size` must be a non-negative integer, got {size!r}", "size")


class BlobWriter:
    """Writes one blob into a ``.partial`` file, hashing as it goes, then publishes it.

    Returned by :meth:`BlobStore.resume`; :meth:`BlobStore.write` uses one internally.
    Call :meth:`write` with successive chunks, then :meth:`commit`. Leaving the ``with``
    block without committing keeps the partial file so a later ``resume`` continues it;
    :meth:`discard` removes it.
    """

    def __init__(
        self,
        store: BlobStore,
        path: Path,
        fd: int,
        digest: Digest | None,
        size: int | None,
    ) -> None:
        self._store = store
        self._fs = store.fs_hooks
        self.path = path
        self.digest = digest
        self.size = size
        self._fd: int | None = fd
        self._hasher = hashlib.sha256()
        # Bytes in the partial file so far: where an HTTP ``Range`` request resumes.
        self.offset = 0

    def _absorb_existing(self) -> None:
        """Hash the bytes a previous attempt left in the file and continue after them."""
        fd = self._require_open()
        end = os.lseek(fd, 0, os.SEEK_END)
        if self.size is not None and end > self.size:
            os.ftruncate(fd, 0)  # longer than the blob can be: start over
            end = 0
        os.lseek(fd, 0, os.SEEK_SET)
        while self.offset < end:
            chunk = os.read(fd, min(_CHUNK_SIZE, end - self.offset))
            if not chunk:
                break
            self._hasher.update(chunk)
            self.offset += len(chunk)
        os.lseek(fd, self.offset, os.SEEK_SET)

    def _require_open(self) -> int:
        if self._fd is None:
            raise BlobError(f"blob writer for {self.path.name} is closed")
        return self._fd

    def write(self, data: BytesLike) -> None:
        """Append ``data``. More bytes than the declared size discard the partial file.

        If the file write fails, the writer closes (the partial file stays, possibly holding
        part of ``data``; a new :meth:`BlobStore.resume` re-reads whatever it holds).
        """
        fd = self._require_open()
        if not isinstance(data, bytes):
            data = memoryview(data).cast("B")  # count bytes, not items
        if self.size is not None and self.offset + len(data) > self.size:
            actual = self.offset + len(data)
            self.discard()
            raise DigestMismatchError(
                f"blob {self.digest or '(unknown digest)'}: expected {self.size} bytes, "
                f"got at least {actual}",
                self.size,
                actual,
            )
        try:
            self._fs.write(fd, data)
        except BaseException:
            self._close_fd()
            raise
        self._hasher.update(data)
        self.offset += len(data)

    def commit(self) -> Digest:
        """Verify size and digest, then fsync, rename into place and fsync the directory.

        On a mismatch the partial file is removed and DigestMismatchError says expected vs
        actual. If the blob is already stored, the partial file is dropped instead.
        """
        fd = self._require_open()
        if self.size is not None and self.offset != self.size:
            self.discard()
            raise DigestMismatchError(
                f"blob {self.digest or '(unknown digest)'}: expected {self.size} bytes, "
                f"got {self.offset}",
                self.size,
                self.offset,
            )
        actual = Digest(self._hasher.hexdigest())
        if self.digest is not None and actual != self.digest:
            self.discard()
            raise DigestMismatchError(
                f"blob content does not match its digest: expected {self.digest}, got {actual}",
                str(self.digest),
                str(actual),
            )
        self._fs.fsync(fd)
        if fcntl is None:
            self._close_fd()  # Windows cannot rename an open file
        final = self._store.path(actual)
        if self._store.stored_size(actual) == self.offset:
            _remove_quietly(self.path)  # already stored: keep one copy
        else:
            # Renamed while still flock'ed, so a collection never sees it unowned.
            self._fs.rename(self.path, final)
            self._fs.fsync_dir(final.parent)
        self._close_fd()
        return actual

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            self._fs.close(fd)

    def close(self) -> None:
        """Stop writing and keep the partial file for a later resume. Idempotent."""
        if self._fd is None:
            return
        try:
            self._fs.fsync(self._fd)
        finally:
            self._close_fd()

    def discard(self) -> None:
        """Stop writing and remove the partial file."""
        try:
            self._close_fd()
        finally:
            _remove_quietly(self.path)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class BlobStore:
    """Blobs under ``root/blobs``, each stored once under its digest.

    ``fs_hooks`` replaces the file-system calls (see :class:`FsHooks`). Directories are
    created on the first write, so a store can be opened on a root that does not exist yet.
    """

    def __init__(self, root: str | os.PathLike[str], *, fs_hooks: FsHooks | None = None) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs"
        self.fs_hooks = fs_hooks if fs_hooks is not None else FsHooks()
        self.lock = StoreLock(self.root)

    def path(self, digest: Digest) -> Path:
        """Where the blob ``digest`` lives (whether or not it is stored)."""
        return digest.blob_path(self.root)

    def partial_path(self, digest: Digest) -> Path:
        """The resumable partial file :meth:`resume` writes for ``digest``."""
        return self.blobs_dir / f"{digest.filename}{PARTIAL_SUFFIX}"

    def has(self, digest: Digest) -> bool:
        """Whether the blob ``digest`` is stored."""
        return self.path(digest).is_file()

    def size(self, digest: Digest) -> int:
        """The stored blob's size in bytes; BlobNotFoundError if it is not stored."""
        try:
            return os.stat(self.path(digest)).st_size
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"blob {digest} is not in the store") from exc

    def open(self, digest: Digest) -> BinaryIO:
        """Open the stored blob for reading; BlobNotFoundError if it is not stored."""
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"blob {digest} is not in the store") from exc

    def delete(self, digest: Digest) -> bool:
        """Remove the blob; False if it was not stored."""
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            return False
        return True

    def iter_digests(self) -> Iterator[Digest]:
        """The stored blobs' digests in sorted order; partial and foreign files are skipped."""
        for name in self._sorted_names():
            match = _BLOB_NAME.fullmatch(name)
            if match and (self.blobs_dir / name).is_file():
                yield Digest(match.group(1))

    def iter_partials(self) -> Iterator[Path]:
        """The ``.partial`` files in ``blobs/``: writes in progress or cut by a crash."""
        for name in self._sorted_names():
            if name.endswith(PARTIAL_SUFFIX):
                yield self.blobs_dir / name

    def prune_partials(self, max_age_s: float, *, now: float | None = None) -> list[Path]:
        """Remove stale partial files (see :meth:`remove_stale_partials`); their paths."""
        return [path for path, _ in self.remove_stale_partials(max_age_s, now=now)]

    def remove_stale_partials(
        self, max_age_s: float, *, now: float | None = None
    ) -> list[tuple[Path, int]]:
        """Remove partial files no live process is writing, last modified at least
        ``max_age_s`` seconds ago; (path, size) of each.

        A partial file whose writer is alive is never removed, whatever its age (its writer
        holds its flock). ``max_age_s=0`` removes every abandoned one, resumable downloads
        included. Takes the store lock exclusively.
        """
        now = time.time() if now is None else now
        removed = []
        with self.lock.exclusive():
            for path in self.iter_partials():
                try:
                    stat_result = os.stat(path)
                except FileNotFoundError:
                    continue  # finished or removed meanwhile
                if now - stat_result.st_mtime < max_age_s:
                    continue
                with claim_if_abandoned(path, min_age_s=max_age_s) as abandoned:
                    if abandoned:
                        _remove_quietly(path)
                        removed.append((path, stat_result.st_size))
        return removed

    def _sorted_names(self) -> list[str]:
        try:
            return sorted(os.listdir(self.blobs_dir))
        except FileNotFoundError:
            return []

    def stored_size(self, digest: Digest) -> int | None:
        """The stored blob's size, or None if it is not stored."""
        try:
            return os.stat(self.path(digest)).st_size
        except FileNotFoundError:
            return None

    def _open_new(self, path: Path, flags: int) -> int:
        """Open ``path`` and flock it, in one step that no collection can come between.

        BlobError if another writer holds the file's lock.
        """
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        with self.lock.shared():
            fd = self.fs_hooks.open(path, flags, 0o644)
            if fcntl is None:
                return fd
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.fs_hooks.close(fd)
                raise BlobError(f"another writer is already writing {path.name}") from None
            except BaseException:
                self.fs_hooks.close(fd)
                raise
            return fd

    def write(
        self, source: BlobSource, *, digest: Digest | None = None, size: int | None = None
    ) -> Digest:
        """Store the bytes of ``source`` and return their digest.

        With ``digest`` and/or ``size`` given, the bytes must match them (DigestMismatchError
        otherwise, and nothing is stored). If ``digest`` is already stored (with ``size``,
        when given), ``source`` is not read at all. Any failure removes the temporary file.
        """
        _check_size(size)
        if digest is not None:
            stored = self.stored_size(digest)
            if stored is not None and (size is None or stored == size):
                return digest
        prefix = digest.filename if digest is not None else "import"
        temp = self.blobs_dir / f"{prefix}-{secrets.token_hex(8)}{PARTIAL_SUFFIX}"
        fd = self._open_new(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        writer = BlobWriter(self, temp, fd, digest, size)
        try:
            for chunk in _iter_chunks(source):
                writer.write(chunk)
            return writer.commit()
        except BaseException:
            writer.discard()
            raise

    def resume(self, digest: Digest, size: int) -> BlobWriter:
        """Open ``partial_path(digest)`` to continue a download from ``writer.offset``.

        The bytes already there are hashed first, so :meth:`BlobWriter.commit` verifies
        the whole blob. A partial file longer than ``size`` is started over. Only one writer
        may hold a digest's partial file at a time (BlobError otherwise, where the platform
        has ``flock``). Check :meth:`has` first: resuming a stored digest rewrites it.
        """
        if size is None:
            raise OptionError("`size` is required to resume a blob", "size")
        _check_size(size)
        path = self.partial_path(digest)
        fd = self._open_locked(path)
        writer = BlobWriter(self, path, fd, digest, size)
        try:
            writer._absorb_existing()
        except BaseException:
            writer.close()
            raise
        return writer

    def _open_locked(self, path: Path) -> int:
        """Open and lock ``path``, making sure the lock is on the file still at that path."""
        for _ in range(5):
            fd = self._open_new(path, os.O_RDWR | os.O_CREAT)
            if fcntl is None:
                return fd
            try:
                same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same_file = False  # committed by the previous holder: open a fresh file
            if same_file:
                return fd
            self.fs_hooks.close(fd)
        raise BlobError(f"could not open {path}: it keeps being replaced")

    def import_file(self, path: str | os.PathLike[str], *, link: bool = True) -> Digest:
        """Store a local file and return its digest.

        With ``link`` the file is hard-linked into the store after hashing (no copy, the
        blob shares the file's inode: edit the original in place and the blob changes
        too); where a hard link is impossible (another filesystem, EPERM, ...) or with
        ``link=False`` it is copied and verified. A file changed while being linked is
        rejected with BlobError.
        """
        source = Path(os.path.realpath(path))  # link the file itself, never a symlink to it
        before = os.stat(source)
        if not stat.S_ISREG(before.st_mode):
            raise BlobError(f"{source} is not a regular file")
        digest = self._hash_file(source)
        if self.has(digest):
            return digest
        if link and self._link_into_store(source, digest, before):
            return digest
        with open(source, "rb") as stream:
            return self.write(stream, digest=digest, size=before.st_size)

    @staticmethod
    def _hash_file(path: Path) -> Digest:
        hasher = hashlib.sha256()
        with open(path, "rb") as stream:
            for chunk in iter(lambda: stream.read(_CHUNK_SIZE), b""):
                hasher.update(chunk)
        return Digest(hasher.hexdigest())

    def _link_into_store(self, source: Path, digest: Digest, before: os.stat_result) -> bool:
        """Hard-link ``source`` as blob ``digest``; False if this filesystem cannot."""
        final = self.path(digest)
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.fs_hooks.link(source, final)
        except FileExistsError:
            return True  # stored by someone else meanwhile
        except OSError as exc:
            if exc.errno in _LINK_FALLBACK_ERRNOS:
                return False
            raise
        after = os.stat(final)
        if (after.st_size, after.st_mtime_ns, after.st_ino) != (
            before.st_size,
            before.st_mtime_ns,
            before.st_ino,
        ):
            _remove_quietly(final)
            raise BlobError(f"{source} changed while it was being imported; try again")
        fd = self.fs_hooks.open(final, os.O_RDONLY)
        try:
            self.fs_hooks.fsync(fd)
        finally:
            self.fs_hooks.close(fd)
        self.fs_hooks.fsync_dir(self.blobs_dir)
        return True
