"""The blob-moving half of the registry client: downloads and uploads of blobs.

:mod:`llamahost.store.registry` decides *what* to fetch or send (manifests, which blobs,
credentials) and :mod:`llamahost.store.http_client` makes single requests with deadlines;
this module moves blobs:

- :func:`download_blob` streams a blob into :meth:`BlobStore.resume`'s partial file. A cut
  connection, or one that stalls (see ``Deadlines``), is resumed with
  ``Range: bytes=<offset>-``; a ``200`` answer to a range request restarts from byte 0;
  failures back off exponentially, a bounded number of times in a row, and the last one
  leaves the partial file for the next pull to resume. BlobStore checks size and SHA-256
  before the blob gets its final name, so a corrupted download publishes nothing and
  removes its partial file.
- :func:`upload_blob` checks whether the registry has a blob (``HEAD``), tries a
  cross-repository mount, else uploads it in one ``PUT`` (OCI "monolithic" upload).

Two threads of one process pulling the same blob into the same store download it once:
the second waits on a per-digest lock, then finds the blob stored. Across processes,
BlobStore's file lock on the partial file lets one write while the other waits for it.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO

from llamahost.errors import (
    BlobError,
    DigestMismatchError,
    RegistryConnectionError,
    RegistryDigestMismatchError,
    RegistryError,
    RegistryResponseError,
)
from llamahost.store.blobs import BlobStore, BlobWriter
from llamahost.store.http_client import (
    RETRYABLE_STATUSES,
    HttpResponse,
    TransferStalled,
    is_transient,
)
from llamahost.store.manifests import Layer

if TYPE_CHECKING:
    from llamahost.store.registry_session import RegistrySession

PROGRESS_STEP = 1 << 20
"""Download and upload progress is reported at most once per this many bytes."""

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_OTHER_WRITER_POLL_S = 0.2


def content_range_start(response: HttpResponse) -> int | None:
    """Where the body of a ``200``/``206`` response starts in the blob; None if unknown."""
    if response.status == 200:
        return 0
    match = _CONTENT_RANGE.fullmatch((response.header("Content-Range") or "").strip())
    return int(match.group(1)) if match else None


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` appended to its query, the existing query kept byte for byte."""
    parts = urllib.parse.urlsplit(url)
    extra = "&".join(
        f"{key}={urllib.parse.quote(value, safe=':/')}" for key, value in params.items()
    )
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urllib.parse.urlunsplit(parts._replace(query=query))


class _KeyedLocks:
    """One lock per key, created on first use and dropped when nobody holds or waits."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold the lock for ``key`` for the duration of the ``with`` block."""
        with self._guard:
            lock, users = self._locks.setdefault(key, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if users[0] == 0:
                    del self._locks[key]


_DOWNLOAD_LOCKS = _KeyedLocks()


def _is_stored(store: BlobStore, layer: Layer) -> bool:
    """Whether ``store`` holds ``layer``'s blob with the size the manifest gives."""
    return store.stored_size(layer.digest) == layer.size


class _Throttle:
    """Calls ``report(done)`` first, at the end, after a step forward, and on any step back."""

    def __init__(self, report: Callable[[int], None], total: int) -> None:
        self._report = report
        self._total = total
        self._last = -1

    def __call__(self, done: int) -> None:
        first, went_back = self._last < 0, done < self._last
        if first or went_back or done - self._last >= PROGRESS_STEP or done == self._total:
            self._last = done
            self._report(done)


def download_blob(
    session: RegistrySession, store: BlobStore, layer: Layer, progress: Callable[[int], None]
) -> bool:
    """Make ``store`` hold ``layer``'s blob, downloading what is missing; True if it did.

    ``progress(completed_bytes)`` is called as bytes arrive. Raises
    RegistryDigestMismatchError if the bytes do not match the layer's digest and size
    (nothing is stored, the partial file is removed), RegistryConnectionError when
    ``session.max_retries`` attempts in a row fail, and the session's error for any
    other refusal (a non-empty partial file is kept for a later pull to resume).
    """
    key = f"{os.path.abspath(store.blobs_dir)}/{layer.digest.filename}"
    report = _Throttle(progress, layer.size)
    with _DOWNLOAD_LOCKS.hold(key):
        if _is_stored(store, layer):
            report(layer.size)
            return False
        writer = _open_partial(session, store, layer)
        if writer is None:  # another process finished it while we waited
            report(layer.size)
            return False
        download = _Download(session, store, layer, writer, report)
        try:
            download.run()
        except DigestMismatchError as exc:
            raise RegistryDigestMismatchError(
                f"{session.label}: blob {layer.digest} failed verification, nothing was "
                f"stored: {exc}",
                exc.expected,
                exc.actual,
            ) from exc
        finally:
            if download.writer.offset:
                download.writer.close()  # kept for the next pull to resume
            else:
                download.writer.discard()  # nothing worth resuming
        report(layer.size)
        return True


def _open_partial(session: RegistrySession, store: BlobStore, layer: Layer) -> BlobWriter | None:
    """Open the digest's partial file; wait while another process holds it.

    Returns None if that process stored the blob meanwhile. Gives up when the partial
    file has not grown for ``session.timeout`` seconds.
    """
    partial = store.partial_path(layer.digest)
    last_size, last_change = -2, time.monotonic()
    while True:
        try:
            writer = store.resume(layer.digest, layer.size)
        except BlobError as exc:
            busy = exc
        else:
            if not _is_stored(store, layer):
                return writer
            writer.discard()  # another process stored it between our check and the lock
            return None
        if _is_stored(store, layer):
            return None
        try:
            size = os.stat(partial).st_size
        except FileNotFoundError:
            size = -1
        now = time.monotonic()
        if size != last_size:
            last_size, last_change = size, now
        elif now - last_change > session.timeout:
            raise RegistryError(
                f"{session.label}: blob {layer.digest}: {busy}, and it made no progress in "
                f"{session.timeout:g} s"
            ) from busy
        time.sleep(_OTHER_WRITER_POLL_S)


class _Download:
    """One blob's download into a partial file: requests, resumes, restarts and retries."""

    def __init__(
        self,
        session: RegistrySession,
        store: BlobStore,
        layer: Layer,
        writer: BlobWriter,
        report: Callable[[int], None],
    ) -> None:
        self.session = session
        self.store = store
        self.layer = layer
        self.writer = writer
        self.report = report
        self.url = session.url(f"blobs/{layer.digest}")
        self.failures = 0

    def run(self) -> None:
        """Fetch until the partial file holds ``layer.size`` bytes, then commit it."""
        if self.writer.offset:
            self.report(self.writer.offset)
        while self.writer.offset < self.layer.size:
            start = self.writer.offset
            reason = self._attempt(start)
            if self.writer.offset > start:
                self.failures = 0  # progress was made: only failures in a row count
            if reason is not None and self.writer.offset < self.layer.size:
                self._failed(reason)
        self.writer.commit()

    def _attempt(self, start: int) -> str | None:
        """One request from ``start``; returns why it fell short, or None."""
        headers = {"Range": f"bytes={start}-"} if start else {}
        try:
            response = self.session.request(
                "GET", self.url, headers=headers, retry=False, follow_redirects=True
            )
        except Exception as exc:
            if not is_transient(exc):
                raise
            return f"{type(exc).__name__}: {exc}"
        with response:
            if response.status in RETRYABLE_STATUSES:
                return f"HTTP {response.status}"
            if response.status == 416:  # the partial file is not a prefix the server knows
                self._restart()
                return "HTTP 416 (range not satisfiable): restarting from byte 0"
            if response.status not in (200, 206):
                raise self.session.error(response, f"blob {self.layer.digest}")
            body_start = content_range_start(response)
            if body_start != start:
                self._restart()  # a 200 to a range request: the body starts at byte 0
                if body_start != 0:
                    return f"the body starts at byte {body_start}, not {start}"
            return self._stream(response)

    def _stream(self, response: HttpResponse) -> str | None:
        """Append the body to the partial file; returns why it ended early, or None."""
        expected = response.content_length()
        received = 0
        while True:
            try:
                chunk = response.read_chunk()
            except TransferStalled as exc:
                return f"{exc}, after {received} bytes of this response"
            except Exception as exc:
                if not is_transient(exc):
                    raise
                return f"connection lost after {received} bytes: {type(exc).__name__}: {exc}"
            if not chunk:
                break
            self.writer.write(chunk)  # DigestMismatchError past the declared size
            received += len(chunk)
            self.report(self.writer.offset)
        if expected is not None and received < expected:
            return f"connection closed after {received} of {expected} bytes"
        if self.writer.offset < self.layer.size:
            return f"the body ended at byte {self.writer.offset} of {self.layer.size}"
        return None

    def _restart(self) -> None:
        """Drop the partial file and start the blob over from byte 0."""
        self.writer.discard()
        self.writer = self.store.resume(self.layer.digest, self.layer.size)
        self.report(0)

    def _failed(self, reason: str) -> None:
        self.failures += 1
        if self.failures > self.session.max_retries:
            raise RegistryConnectionError(
                f"{self.session.label}: downloading blob {self.layer.digest} failed "
                f"{self.failures} times in a row ({reason}); the {self.writer.offset} bytes "
                "received so far are kept in a .partial file, and pulling again resumes "
                "from there"
            )
        self.session.pause(self.failures)


class _CountingReader:
    """A read-only file wrapper that reports how many bytes were read so far."""

    def __init__(self, stream: BinaryIO, report: Callable[[int], None]) -> None:
        self._stream = stream
        self._report = report
        self._done = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._done += len(data)
        self._report(self._done)
        return data

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> _CountingReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def upload_blob(
    session: RegistrySession,
    store: BlobStore,
    layer: Layer,
    *,
    mount_from: str | None,
    progress: Callable[[int], None],
) -> str:
    """Make the registry hold ``layer``'s blob in the session's repository.

    Returns ``"exists"`` (the registry had it), ``"mounted"`` (linked from the repository
    ``mount_from`` without sending bytes) or ``"uploaded"``. An upload cut by a network
    failure or a retryable status starts over with a new upload session, at most
    ``session.max_retries`` times in a row.
    """
    report = _Throttle(progress, layer.size)
    what = f"blob {layer.digest}"
    with session.request("HEAD", session.url(f"blobs/{layer.digest}")) as head:
        if head.status == 200:
            report(layer.size)
            return "exists"
        if head.status != 404:
            raise session.error(head, what)
    failures = 0
    while True:
        try:
            location = _start_upload(session, layer, mount_from)
            if location is None:
                report(layer.size)
                return "mounted"
            mount_from = None  # a mount is tried once
            reason = _put_blob(session, store, layer, location, report)
        except Exception as exc:
            if not is_transient(exc):
                raise
            reason = f"{type(exc).__name__}: {exc}"
        if reason is None:
            report(layer.size)
            return "uploaded"
        failures += 1
        if failures > session.max_retries:
            raise RegistryConnectionError(
                f"{session.label}: uploading {what} failed {failures} times in a row ({reason})"
            )
        session.pause(failures)


def _start_upload(session: RegistrySession, layer: Layer, mount_from: str | None) -> str | None:
    """POST an upload session (or a mount); its URL, or None if the mount succeeded."""
    url = session.url("blobs/uploads/")
    if mount_from:
        url = with_query(url, mount=str(layer.digest), **{"from": mount_from})
    with session.request("POST", url, body=b"") as response:
        if mount_from and response.status == 201:
            return None
        if response.status != 202:
            raise session.error(response, f"starting the upload of blob {layer.digest}")
        location = response.header("Location")
        if not location:
            raise RegistryResponseError(
                f"{session.label}: the registry started an upload of blob {layer.digest} "
                "without a Location header",
                status=response.status,
            )
        return urllib.parse.urljoin(response.url, location)


def _put_blob(
    session: RegistrySession,
    store: BlobStore,
    layer: Layer,
    location: str,
    report: Callable[[int], None],
) -> str | None:
    """PUT the whole blob to the upload ``location``; returns why to retry, or None."""
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(layer.size)}

    def open_body() -> BinaryIO:
        return _CountingReader(store.open(layer.digest), report)  # type: ignore[return-value]

    url = with_query(location, digest=str(layer.digest))
    with session.request("PUT", url, headers=headers, body=open_body, retry=False) as response:
        if response.status in RETRYABLE_STATUSES:
            return f"HTTP {response.status}"
        if response.status != 201:
            raise session.error(response, f"uploading blob {layer.digest}")
        stored = response.header("Docker-Content-Digest")
        if stored and stored.strip().lower() != str(layer.digest):
            raise RegistryResponseError(
                f"{session.label}: the registry stored blob {layer.digest} as {stored.strip()}",
                status=response.status,
            )
    return None
