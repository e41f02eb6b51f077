"""Blob digests: the two accepted spellings, everything rejected, and blob paths."""

from __future__ import annotations

import hashlib

import pytest

from llamahost.errors import InvalidDigestError, LlamahostError
from llamahost.store.digests import Digest

HEX = "c1864a5eb19305c40519da12cc543519e48a0697ecd30e15d5ac228644957d12"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

VALID = [
    ("sha256:" + HEX, HEX),
    ("sha256-" + HEX, HEX),
    ("sha256:" + HEX.upper(), HEX),  # Ollama's pattern takes A-F; normalized to lower case
    ("sha256-" + HEX[:32].upper() + HEX[32:], HEX),
    ("sha256:" + "0" * 64, "0" * 64),
]

INVALID = [
    "",
    "sha256:",
    "sha256-",
    HEX,  # no algorithm
    "sha256:" + HEX[:63],  # 63 hex digits
    "sha256:" + HEX + "0",  # 65 hex digits
    "sha256-" + HEX[:63],
    "sha256:../../x",
    "sha256-../../x",
    "sha256:../../" + HEX[:58],
    "sha256:" + HEX[:32] + "/" + HEX[33:],
    "sha256:" + HEX[:63] + "\x00",
    "sha256:" + HEX + "\x00",
    "sha256:\x00" + HEX,
    "sha256:" + HEX + "\n",
    " sha256:" + HEX,
    "sha256: " + HEX[:63],
    "SHA256:" + HEX,
    "sha256_" + HEX,
    "sha256::" + HEX,
    "sha256:" + "g" * 64,
    "sha512:" + HEX + HEX,
    "md5:" + HEX[:32],
    "sha256:" + HEX[:62] + "\u0661\u0662",  # Arabic-Indic digits are not hex
]


@pytest.mark.parametrize(("text", "hex_digits"), VALID)
def test_valid_digests_parse_to_lower_case_hex(text, hex_digits):
    digest = Digest.parse(text)
    assert digest.hex == hex_digits
    assert str(digest) == "sha256:" + hex_digits
    assert digest.filename == "sha256-" + hex_digits


@pytest.mark.parametrize("text", INVALID)
def test_invalid_digests_are_rejected_naming_the_value(text):
    with pytest.raises(InvalidDigestError) as caught:
        Digest.parse(text)
    assert caught.value.value == text
    assert repr(text)[:40] in str(caught.value)
    assert "64 hex digits" in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, LlamahostError)
    assert Digest.parse("sha256:" + HEX).hex == HEX  # the next good one still parses


@pytest.mark.parametrize("value", [None, 42, b"sha256:" + HEX.encode()])
def test_non_strings_are_rejected(value):
    with pytest.raises(InvalidDigestError, match="64 hex digits"):
        Digest.parse(value)


def test_a_huge_bad_value_is_shortened_in_the_message():
    with pytest.raises(InvalidDigestError) as caught:
        Digest.parse("x" * 10_000)
    assert len(str(caught.value)) < 200
    assert caught.value.value == "x" * 10_000


def test_direct_construction_takes_only_canonical_hex():
    assert Digest(HEX).hex == HEX
    for bad in (HEX.upper(), HEX[:63], "sha256:" + HEX, 5):
        with pytest.raises(InvalidDigestError, match="64 lower-case hex digits"):
            Digest(bad)


def test_both_spellings_are_the_same_value():
    colon, dash = Digest.parse("sha256:" + HEX), Digest.parse("sha256-" + HEX.upper())
    assert colon == dash
    assert hash(colon) == hash(dash)
    assert colon != Digest("0" * 64)
    assert repr(colon) == f"Digest('sha256:{HEX}')"
    assert Digest.parse(str(colon)) == colon
    assert Digest.parse(colon.filename) == colon


def test_of_bytes_and_short():
    assert Digest.of_bytes(b"").hex == EMPTY_SHA256
    assert Digest.of_bytes(b"abc").hex == hashlib.sha256(b"abc").hexdigest()
    assert Digest.of_bytes(b"abc") != Digest.of_bytes(b"abd")
    assert Digest(HEX).short == HEX[:12]


def test_blob_path_is_directly_inside_root_blobs(tmp_path):
    path = Digest(HEX).blob_path(tmp_path)
    assert path == tmp_path / "blobs" / ("sha256-" + HEX)
    assert path.resolve().parent == (tmp_path / "blobs").resolve()
    assert Digest(HEX).blob_path(str(tmp_path)) == path


def test_blob_path_works_through_a_symlinked_blobs_directory(tmp_path):
    elsewhere = tmp_path / "big-disk"
    elsewhere.mkdir()
    root = tmp_path / "models"
    root.mkdir()
    (root / "blobs").symlink_to(elsewhere, target_is_directory=True)
    assert Digest(HEX).blob_path(root) == root / "blobs" / ("sha256-" + HEX)
