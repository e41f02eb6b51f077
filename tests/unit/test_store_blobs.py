"""The blob store: verified atomic writes, dedupe, crashes cut mid-write, imports, resume."""

from __future__ import annotations

import array
import errno
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import llamahost.store.blobs as blobs_module
from llamahost.errors import (
    BlobError,
    BlobNotFoundError,
    DigestMismatchError,
    LlamahostError,
    OptionError,
)
from llamahost.store.blobs import BlobStore, FsHooks
from llamahost.store.digests import Digest

DATA = bytes(range(256)) * 1000  # 256 000 bytes
DATA_DIGEST = Digest.of_bytes(DATA)


class FailingWrite(FsHooks):
    """Writes the first ``limit`` bytes of a file, then fails like a full disk."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.written = 0

    def write(self, fd, data):
        room = self.limit - self.written
        if len(data) > room:
            super().write(fd, bytes(data[:room]))
            self.written = self.limit
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        super().write(fd, data)
        self.written += len(data)


class FailingRename(FsHooks):
    def rename(self, src, dst):
        raise OSError(errno.EIO, "rename failed (injected)")


class NoHardLinks(FsHooks):
    def __init__(self, code: int) -> None:
        self.code = code

    def link(self, src, dst):
        raise OSError(self.code, os.strerror(self.code))


def files_in(store: BlobStore) -> list[str]:
    return sorted(os.listdir(store.blobs_dir)) if store.blobs_dir.exists() else []


def assert_store_still_works(store: BlobStore) -> None:
    digest = store.write(b"next write")
    assert store.has(digest)
    with store.open(digest) as stream:
        assert stream.read() == b"next write"


# -- writing ---------------------------------------------------------------------------


def test_write_bytes_publishes_one_verified_file(tmp_path):
    store = BlobStore(tmp_path)
    digest = store.write(DATA, digest=DATA_DIGEST, size=len(DATA))
    assert digest == DATA_DIGEST
    assert store.has(digest)
    assert store.size(digest) == len(DATA)
    assert store.path(digest) == tmp_path / "blobs" / DATA_DIGEST.filename
    assert files_in(store) == [DATA_DIGEST.filename]
    with store.open(digest) as stream:
        assert stream.read() == DATA


def test_write_without_a_digest_computes_it(tmp_path):
    store = BlobStore(tmp_path)
    assert store.write(io.BytesIO(DATA)) == DATA_DIGEST
    assert store.write(iter([DATA[:10], b"", DATA[10:]])) == DATA_DIGEST
    assert store.write(b"") == Digest.of_bytes(b"")
    assert files_in(store) == sorted([DATA_DIGEST.filename, Digest.of_bytes(b"").filename])


def test_digest_mismatch_removes_the_temp_file_and_publishes_nothing(tmp_path):
    store = BlobStore(tmp_path)
    wrong = Digest.of_bytes(b"something else")
    with pytest.raises(DigestMismatchError) as caught:
        store.write(io.BytesIO(DATA), digest=wrong)
    message = str(caught.value)
    assert f"expected {wrong}" in message
    assert f"got {DATA_DIGEST}" in message
    assert (caught.value.expected, caught.value.actual) == (str(wrong), str(DATA_DIGEST))
    assert isinstance(caught.value, BlobError)
    assert isinstance(caught.value, LlamahostError)
    assert files_in(store) == []
    assert not store.has(wrong)
    assert not store.has(DATA_DIGEST)
    assert_store_still_works(store)


@pytest.mark.parametrize(
    ("declared", "fragment"), [(len(DATA) + 1, "got 256000"), (10, "got at least")]
)
def test_size_mismatch_removes_the_temp_file(tmp_path, declared, fragment):
    store = BlobStore(tmp_path)
    with pytest.raises(DigestMismatchError) as caught:
        store.write(iter([DATA[:1000], DATA[1000:]]), digest=DATA_DIGEST, size=declared)
    assert f"expected {declared} bytes" in str(caught.value)
    assert fragment in str(caught.value)
    assert caught.value.expected == declared
    assert files_in(store) == []
    assert_store_still_works(store)


def test_a_write_cut_in_the_middle_leaves_no_blob_and_no_temp(tmp_path):
    hooks = FailingWrite(limit=100_000)
    store = BlobStore(tmp_path, fs_hooks=hooks)
    with pytest.raises(OSError, match="injected"):
        store.write(io.BytesIO(DATA), digest=DATA_DIGEST, size=len(DATA))
    assert hooks.written == 100_000  # the cut really happened mid-file
    assert files_in(store) == []
    assert not store.has(DATA_DIGEST)
    assert list(store.iter_digests()) == []
    hooks.limit = 10**9
    assert store.write(DATA) == DATA_DIGEST


def test_a_failed_rename_publishes_nothing(tmp_path):
    store = BlobStore(tmp_path, fs_hooks=FailingRename())
    with pytest.raises(OSError, match="injected"):
        store.write(DATA)
    assert files_in(store) == []
    assert BlobStore(tmp_path).write(DATA) == DATA_DIGEST


CRASHING_WRITER = textwrap.dedent(
    """
    import os, sys
    from llamahost.store.blobs import BlobStore, FsHooks

    class DieAfter(FsHooks):
        written = 0
        def write(self, fd, data):
            room = int(sys.argv[2]) - self.written
            if len(data) > room:
                super().write(fd, bytes(data[:room]))
                os._exit(3)  # the process dies: no cleanup code runs
            super().write(fd, data)
            self.written += len(data)

    BlobStore(sys.argv[1], fs_hooks=DieAfter()).write(bytes(range(256)) * 1000)
    """
)


def test_a_process_killed_mid_write_leaves_only_a_partial_file(tmp_path):
    package_parent = Path(blobs_module.__file__).parents[2]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_parent), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(tmp_path), "70000"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr.decode()
    store = BlobStore(tmp_path)
    leftovers = files_in(store)
    assert len(leftovers) == 1 and leftovers[0].endswith(".partial")
    assert os.path.getsize(store.blobs_dir / leftovers[0]) == 70_000
    assert not store.has(DATA_DIGEST)
    assert list(store.iter_digests()) == []
    assert [p.name for p in store.iter_partials()] == leftovers
    assert store.prune_partials(3600) == []  # too fresh to be called stale
    assert store.prune_partials(0) == [store.blobs_dir / leftovers[0]]
    assert files_in(store) == []
    assert store.write(DATA) == DATA_DIGEST


def test_identical_blobs_are_stored_once(tmp_path):
    store = BlobStore(tmp_path)
    first = store.write(DATA)
    inode = os.stat(store.path(first)).st_ino
    assert store.write(io.BytesIO(DATA)) == first
    assert os.stat(store.path(first)).st_ino == inode
    assert files_in(store) == [first.filename]


def test_writing_a_stored_digest_does_not_read_the_source(tmp_path):
    store = BlobStore(tmp_path)
    store.write(DATA)

    def must_not_be_read():
        raise AssertionError("the source was read")
        yield b""

    assert store.write(must_not_be_read(), digest=DATA_DIGEST, size=len(DATA)) == DATA_DIGEST
    assert store.write(must_not_be_read(), digest=DATA_DIGEST) == DATA_DIGEST


def test_a_stored_blob_of_the_wrong_size_is_replaced(tmp_path):
    store = BlobStore(tmp_path)
    store.blobs_dir.mkdir(parents=True)
    store.path(DATA_DIGEST).write_bytes(DATA[:10])  # damaged by something outside the store
    assert store.write(DATA, digest=DATA_DIGEST, size=len(DATA)) == DATA_DIGEST
    assert store.path(DATA_DIGEST).read_bytes() == DATA


@pytest.mark.parametrize("source", ["text", 12, [b"ok", "text"], io.StringIO("text")])
def test_sources_that_are_not_bytes_are_rejected(tmp_path, source):
    store = BlobStore(tmp_path)
    with pytest.raises(OptionError, match="`source` must"):
        store.write(source)
    assert files_in(store) == []


@pytest.mark.parametrize("size", [-1, 1.5, True, "10"])
def test_bad_sizes_are_rejected(tmp_path, size):
    with pytest.raises(OptionError, match="`size` must be a non-negative integer"):
        BlobStore(tmp_path).write(DATA, size=size)


# -- reading, listing, deleting ----------------------------------------------------------


def test_missing_blobs_raise_blob_not_found(tmp_path):
    store = BlobStore(tmp_path)
    assert not store.has(DATA_DIGEST)
    with pytest.raises(BlobNotFoundError, match=str(DATA_DIGEST)):
        store.open(DATA_DIGEST)
    with pytest.raises(FileNotFoundError):
        store.size(DATA_DIGEST)
    assert store.delete(DATA_DIGEST) is False
    assert list(store.iter_digests()) == []


def test_iter_digests_lists_only_complete_blobs_in_order(tmp_path):
    store = BlobStore(tmp_path)
    digests = sorted((store.write(bytes([i]) * 10) for i in range(3)), key=lambda d: d.hex)
    (store.blobs_dir / (DATA_DIGEST.filename + ".partial")).write_bytes(b"half")
    (store.blobs_dir / "notes.txt").write_bytes(b"x")
    (store.blobs_dir / ("sha256-" + "A" * 64)).write_bytes(b"x")
    (store.blobs_dir / ("sha256-" + "0" * 64)).mkdir()
    assert list(store.iter_digests()) == digests
    assert [p.name for p in store.iter_partials()] == [DATA_DIGEST.filename + ".partial"]


def test_delete_removes_the_blob(tmp_path):
    store = BlobStore(tmp_path)
    digest = store.write(DATA)
    assert store.delete(digest) is True
    assert not store.has(digest)
    assert store.delete(digest) is False


# -- importing local files ---------------------------------------------------------------


def test_import_hard_links_the_file_on_the_same_filesystem(tmp_path):
    source = tmp_path / "model.gguf"
    source.write_bytes(DATA)
    store = BlobStore(tmp_path / "models")
    assert store.import_file(source) == DATA_DIGEST
    assert os.stat(store.path(DATA_DIGEST)).st_ino == os.stat(source).st_ino
    assert os.stat(source).st_nlink == 2
    assert store.import_file(source) == DATA_DIGEST  # already stored: nothing new
    assert files_in(store) == [DATA_DIGEST.filename]


@pytest.mark.parametrize("code", [errno.EXDEV, errno.EPERM])
def test_import_copies_when_a_hard_link_is_impossible(tmp_path, code):
    source = tmp_path / "model.gguf"
    source.write_bytes(DATA)
    store = BlobStore(tmp_path / "models", fs_hooks=NoHardLinks(code))
    assert store.import_file(source) == DATA_DIGEST
    assert os.stat(store.path(DATA_DIGEST)).st_ino != os.stat(source).st_ino
    assert store.path(DATA_DIGEST).read_bytes() == DATA
    assert files_in(store) == [DATA_DIGEST.filename]


def test_import_without_link_copies(tmp_path):
    source = tmp_path / "model.gguf"
    source.write_bytes(DATA)
    store = BlobStore(tmp_path / "models")
    assert store.import_file(source, link=False) == DATA_DIGEST
    assert os.stat(store.path(DATA_DIGEST)).st_ino != os.stat(source).st_ino
    assert os.stat(source).st_nlink == 1


def test_import_surfaces_other_link_errors(tmp_path):
    source = tmp_path / "model.gguf"
    source.write_bytes(DATA)
    store = BlobStore(tmp_path / "models", fs_hooks=NoHardLinks(errno.EIO))
    with pytest.raises(OSError) as caught:
        store.import_file(source)
    assert caught.value.errno == errno.EIO
    assert not store.has(DATA_DIGEST)


def test_import_rejects_a_file_replaced_while_it_was_hashed(tmp_path):
    source = tmp_path / "model.gguf"
    source.write_bytes(DATA)

    class SwapBeforeLink(FsHooks):
        def link(self, src, dst):
            replacement = tmp_path / "replacement"
            replacement.write_bytes(b"different bytes")
            os.replace(replacement, src)
            super().link(src, dst)

    store = BlobStore(tmp_path / "models", fs_hooks=SwapBeforeLink())
    with pytest.raises(BlobError, match="changed while it was being imported"):
        store.import_file(source)
    assert not store.has(DATA_DIGEST)
    assert files_in(store) == []


# -- resumable writes --------------------------------------------------------------------


def test_resume_continues_a_partial_file_and_verifies_the_whole_blob(tmp_path):
    store = BlobStore(tmp_path)
    with store.resume(DATA_DIGEST, len(DATA)) as writer:
        assert writer.offset == 0
        writer.write(DATA[:100_000])
        # leaving without commit (e.g. the connection dropped) keeps the partial file
    partial = store.partial_path(DATA_DIGEST)
    assert partial.stat().st_size == 100_000
    assert not store.has(DATA_DIGEST)

    with store.resume(DATA_DIGEST, len(DATA)) as writer:
        assert writer.offset == 100_000  # the Range request starts here
        writer.write(DATA[100_000:])
        assert writer.commit() == DATA_DIGEST
    assert store.path(DATA_DIGEST).read_bytes() == DATA
    assert not partial.exists()
    assert files_in(store) == [DATA_DIGEST.filename]


def test_resume_with_a_corrupt_prefix_fails_at_commit_and_removes_the_partial(tmp_path):
    store = BlobStore(tmp_path)
    store.blobs_dir.mkdir(parents=True)
    store.partial_path(DATA_DIGEST).write_bytes(b"\xff" * 1000)  # not DATA's first bytes
    with store.resume(DATA_DIGEST, len(DATA)) as writer:
        assert writer.offset == 1000
        writer.write(DATA[1000:])
        with pytest.raises(DigestMismatchError, match=f"expected {DATA_DIGEST}"):
            writer.commit()
    assert files_in(store) == []
    with store.resume(DATA_DIGEST, len(DATA)) as writer:
        assert writer.offset == 0
        writer.write(DATA)
        writer.commit()
    assert store.has(DATA_DIGEST)


def test_resume_restarts_a_partial_longer_than_the_blob(tmp_path):
    store = BlobStore(tmp_path)
    store.blobs_dir.mkdir(parents=True)
    store.partial_path(DATA_DIGEST).write_bytes(b"x" * (len(DATA) + 5))
    with store.resume(DATA_DIGEST, len(DATA)) as writer:
        assert writer.offset == 0
        writer.write(DATA)
        assert writer.commit() == DATA_DIGEST


def test_resume_rejects_more_bytes_than_declared(tmp_path):
    store = BlobStore(tmp_path)
    with store.resume(DATA_DIGEST, 10) as writer:
        with pytest.raises(DigestMismatchError, match="expected 10 bytes, got at least 11"):
            writer.write(b"x" * 11)
        with pytest.raises(BlobError, match="closed"):
            writer.write(b"x")
    assert files_in(store) == []


def test_a_cut_resume_keeps_its_prefix_for_the_next_attempt(tmp_path):
    store = BlobStore(tmp_path, fs_hooks=FailingWrite(limit=50_000))
    with pytest.raises(OSError, match="injected"), store.resume(DATA_DIGEST, len(DATA)) as writer:
        writer.write(DATA[:40_000])
        writer.write(DATA[40_000:])
    assert store.partial_path(DATA_DIGEST).stat().st_size == 50_000
    assert not store.has(DATA_DIGEST)
    retry = BlobStore(tmp_path)
    with retry.resume(DATA_DIGEST, len(DATA)) as writer:
        assert writer.offset == 50_000
        writer.write(DATA[50_000:])
        writer.commit()
    assert retry.path(DATA_DIGEST).read_bytes() == DATA


@pytest.mark.skipif(blobs_module.fcntl is None, reason="needs flock")
def test_only_one_writer_may_resume_a_digest_at_a_time(tmp_path):
    store = BlobStore(tmp_path)
    with store.resume(DATA_DIGEST, len(DATA)) as first:
        with pytest.raises(BlobError, match="another writer"):
            store.resume(DATA_DIGEST, len(DATA))
        first.write(DATA)
        first.commit()
    with store.resume(Digest.of_bytes(b"ab"), 2) as second:
        second.write(b"ab")
        second.commit()


def test_resume_requires_a_size(tmp_path):
    with pytest.raises(OptionError, match="`size` is required"):
        BlobStore(tmp_path).resume(DATA_DIGEST, None)


def test_a_failed_write_closes_the_resume_writer(tmp_path):
    store = BlobStore(tmp_path, fs_hooks=FailingWrite(limit=5))
    with store.resume(DATA_DIGEST, len(DATA)) as writer:
        with pytest.raises(OSError, match="injected"):
            writer.write(DATA[:10])
        with pytest.raises(BlobError, match="closed"):
            writer.write(DATA[10:20])
    assert store.partial_path(DATA_DIGEST).read_bytes() == DATA[:5]


def test_sizes_count_bytes_for_any_buffer(tmp_path):
    numbers = array.array("i", range(100))  # 400 bytes, 100 items
    store = BlobStore(tmp_path)
    digest = store.write([memoryview(numbers)], size=len(numbers) * numbers.itemsize)
    assert store.size(digest) == len(numbers) * numbers.itemsize
    assert digest == Digest.of_bytes(numbers.tobytes())


def test_import_rejects_what_is_not_a_regular_file(tmp_path):
    with pytest.raises(BlobError, match="is not a regular file"):
        BlobStore(tmp_path / "models").import_file(tmp_path)


def test_import_file_through_a_symlink_links_the_real_file(tmp_path) -> None:
    from llamahost.store.blobs import BlobStore

    real = tmp_path / "real.gguf"
    real.write_bytes(b"weights" * 100)
    alias = tmp_path / "alias.gguf"
    alias.symlink_to(real.name)  # relative, as ~/.cache links are
    store = BlobStore(tmp_path / "store")
    digest = store.import_file(alias)
    blob = store.path(digest)
    assert not blob.is_symlink()
    assert blob.stat().st_ino == real.stat().st_ino
    assert blob.read_bytes() == real.read_bytes()


@pytest.mark.skipif(blobs_module.fcntl is None, reason="needs flock")
def test_a_partial_file_being_written_is_never_pruned(tmp_path):
    store = BlobStore(tmp_path)
    with store.resume(DATA_DIGEST, len(DATA)) as live:
        live.write(DATA[:1000])
        os.utime(live.path, (1.0, 1.0))  # ancient, but its writer is alive
        assert store.prune_partials(0) == []
        assert live.path.exists()
    # closed (as a killed writer's would be): now it is abandoned
    assert store.remove_stale_partials(0) == [(store.partial_path(DATA_DIGEST), 1000)]
