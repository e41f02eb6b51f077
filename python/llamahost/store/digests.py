"""Blob digests: the SHA-256 of a blob's bytes, the key of the content-addressed store.

A digest is written two ways, and both parse to the same value:

    sha256:<64 hex>     in manifests and the HTTP API (``str(digest)``)
    sha256-<64 hex>     as the blob's file name (``digest.filename``), since ':' is not
                        portable in file names

Like Ollama (``^sha256[:-][0-9a-fA-F]{64}$`` in its manifest code, lower-cased before
use), upper-case hex is accepted and normalized to lower case, so a digest always maps to
one file name. Everything else is rejected with InvalidDigestError naming the value: other
algorithms (``sha512:...``), 63 or 65 hex digits, non-hex characters (``sha256:../../x``),
surrounding whitespace, NUL bytes, and non-strings.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from llamahost.errors import InvalidDigestError

_DIGEST_TEXT = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")
_CANONICAL_HEX = re.compile(r"[0-9a-f]{64}")
_MAX_SHOWN = 100


def _shown(value: object) -> str:
    """``repr`` of a rejected value, shortened so an error message stays readable."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


@dataclass(frozen=True)
class Digest:
    """A SHA-256 digest; ``hex`` is its 64 lower-case hex digits.

    Build one with :meth:`parse` from either written form, or with :meth:`of_bytes`.
    """

    hex: str

    def __post_init__(self) -> None:
        if not isinstance(self.hex, str) or _CANONICAL_HEX.fullmatch(self.hex) is None:
            raise InvalidDigestError(
                f"digest hex must be 64 lower-case hex digits, got {_shown(self.hex)}", self.hex
            )

    @classmethod
    def parse(cls, value: str) -> Digest:
        """Parse ``sha256:<64 hex>`` or ``sha256-<64 hex>``; raise InvalidDigestError otherwise."""
        match = _DIGEST_TEXT.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise InvalidDigestError(
                "digest must be 'sha256:' or 'sha256-' followed by 64 hex digits, "
                f"got {_shown(value)}",
                value,
            )
        return cls(match.group(1).lower())

    @classmethod
    def of_bytes(cls, data: bytes | bytearray | memoryview) -> Digest:
        """The digest of ``data``."""
        return cls(hashlib.sha256(data).hexdigest())

    def __str__(self) -> str:
        return f"sha256:{self.hex}"

    def __repr__(self) -> str:
        return f"Digest('sha256:{self.hex}')"

    @property
    def filename(self) -> str:
        """The blob's file name in the store: ``sha256-<hex>``."""
        return f"sha256-{self.hex}"

    @property
    def short(self) -> str:
        """The first 12 hex digits, the ID ``ollama list`` prints."""
        return self.hex[:12]

    def blob_path(self, root: str | os.PathLike[str]) -> Path:
        """``root/blobs/sha256-<hex>``, checked to lie directly inside ``root/blobs``.

        The check resolves the path lexically (``..`` collapsed, symlinks not followed), so
        a ``blobs`` directory that is itself a symlink to another disk keeps working.
        """
        blobs = Path(root) / "blobs"
        path = blobs / self.filename
        base = os.path.normpath(os.path.abspath(blobs))
        if os.path.dirname(os.path.normpath(os.path.abspath(path))) != base:
            raise InvalidDigestError(f"digest {self} does not map to a file inside {base}", self)
        return path
