"""Model names: Ollama's parsing rules, defaults, case-folding, display forms and paths."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from llamahost.errors import InvalidDigestError, InvalidNameError, LlamahostError
from llamahost.store.digests import Digest
from llamahost.store.names import ModelName, split_digest

HEX = "c1864a5eb19305c40519da12cc543519e48a0697ecd30e15d5ac228644957d12"
R, L = "registry.ollama.ai", "library"

VALID = [
    # text, host, namespace, model, tag
    ("llama3", R, L, "llama3", "latest"),
    ("llama3:8b", R, L, "llama3", "8b"),
    ("Llama3:8B", R, L, "Llama3", "8B"),
    ("qwen2.5-coder:1.5b-instruct-q4_K_M", R, L, "qwen2.5-coder", "1.5b-instruct-q4_K_M"),
    ("jmorgan/mistral", R, "jmorgan", "mistral", "latest"),
    ("jmorgan/mistral:v1", R, "jmorgan", "mistral", "v1"),
    ("my-ns/my_model.v2:tag-1.0_x", R, "my-ns", "my_model.v2", "tag-1.0_x"),
    ("example.com/me/model:tag", "example.com", "me", "model", "tag"),
    ("localhost:5000/me/model", "localhost:5000", "me", "model", "latest"),
    ("localhost:5000/me/model:v1.0", "localhost:5000", "me", "model", "v1.0"),
    ("http://example.com/me/model", "example.com", "me", "model", "latest"),
    ("https://example.com:443/me/model:t", "example.com:443", "me", "model", "t"),
    ("HTTPS://Example.com/Me/M", "Example.com", "Me", "M", "latest"),
    ("_x/_y:_z", R, "_x", "_y", "_z"),
    ("_host/ns/m", "_host", "ns", "m", "latest"),
    ("a", R, L, "a", "latest"),
    ("0:1", R, L, "0", "1"),
    ("a..b:c..d", R, L, "a..b", "c..d"),
    ("ns_1/m:T", R, "ns_1", "m", "T"),
    ("m" * 80, R, L, "m" * 80, "latest"),
    ("m:" + "t" * 80, R, L, "m", "t" * 80),
    ("n" * 80 + "/m", R, "n" * 80, "m", "latest"),
    ("h" * 350 + "/ns/m", "h" * 350, "ns", "m", "latest"),
    ("h:1/ns/m", "h:1", "ns", "m", "latest"),
    ("h:65535/ns/m", "h:65535", "ns", "m", "latest"),
]

INVALID = [
    # text, fragment of the message
    ("", "the model is empty"),
    (":latest", "the model is empty"),
    ("llama3:", "the tag is empty"),
    ("ns/", "the model is empty"),
    ("/model", "the namespace is empty"),
    ("host//model", "the namespace is empty"),
    ("/ns/model", "the host is empty"),
    ("a/b/c/d", "too many '/'-separated parts"),
    ("https://h/a/b/c", "too many '/'-separated parts"),
    ("-x", "the model '-x' must start with a letter, digit or '_'"),
    (".x", "the model '.x'"),
    ("x:.y", "the tag '.y'"),
    ("x:-y", "the tag '-y'"),
    ("my.ns/model", "the namespace 'my.ns'"),
    ("localhost:5000/model", "the namespace 'localhost:5000'"),
    ("host:99999999/ns/m", "the port '99999999' of the host 'host:99999999' must be a number"),
    ("host:abc/ns/m", "the port 'abc' of the host 'host:abc' must be a number from 1 to 65535"),
    ("host:0/ns/m", "the port '0'"),
    ("host:65536/ns/m", "the port '65536'"),
    ("host:/ns/m", "the port ''"),
    ("a:1:2/ns/m", "the host 'a:1:2' has more than one ':'"),
    ("model:a:b", "the model 'model:a'"),
    ("mod el", "the model 'mod el'"),
    ("mod\u00e8l", "(ASCII)"),
    ("model\x00", "the model 'model\\x00'"),
    ("model\n", "the model 'model\\n'"),
    ("a\\b", "the model 'a\\\\b'"),
    ("..", "the model '..'"),
    (".", "the model '.'"),
    ("../etc/passwd", "the host '..'"),
    ("ns/../m", "the namespace '..'"),
    ("model@sha256:" + HEX, "'@' is not allowed"),
    ("@sha256:" + HEX, "'@' is not allowed"),
    ("ftp://host/ns/model", "only an 'http://' or 'https://' scheme"),
    ("https://model", "the namespace is empty"),
    ("m" * 81, "the model is 81 characters long, at most 80"),
    ("m:" + "t" * 81, "the tag is 81 characters long, at most 80"),
    ("n" * 81 + "/m", "the namespace is 81 characters long, at most 80"),
    ("h" * 351 + "/ns/m", "the host is 351 characters long, at most 350"),
]


@pytest.mark.parametrize(("text", "host", "namespace", "model", "tag"), VALID)
def test_valid_names_parse_into_their_parts(text, host, namespace, model, tag):
    name = ModelName.parse(text)
    assert (name.host, name.namespace, name.model, name.tag) == (host, namespace, model, tag)


@pytest.mark.parametrize(("text", "fragment"), INVALID)
def test_invalid_names_are_rejected_naming_the_part(text, fragment):
    with pytest.raises(InvalidNameError) as caught:
        ModelName.parse(text)
    assert fragment in str(caught.value)
    assert caught.value.name == text
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, LlamahostError)
    # The next ordinary name still parses.
    assert ModelName.parse("llama3").model == "llama3"


def test_tables_have_enough_rows():
    assert len(VALID) + len(INVALID) >= 25


@pytest.mark.parametrize("value", [None, b"llama3", 3])
def test_non_strings_are_rejected(value):
    with pytest.raises(InvalidNameError, match="must be a string"):
        ModelName.parse(value)


def test_direct_construction_validates_every_part():
    assert ModelName("h", "ns", "m", "t").display_long() == "h/ns/m:t"
    with pytest.raises(InvalidNameError, match=r"the host '\.\.'"):
        ModelName("..", "ns", "m", "t")
    with pytest.raises(InvalidNameError, match="the tag is empty"):
        ModelName("h", "ns", "m", "")
    with pytest.raises(InvalidNameError, match="tag must be a string"):
        ModelName("h", "ns", "m", None)
    name = ModelName.parse("m")
    with pytest.raises(InvalidNameError, match="the namespace 'a/b'"):
        dataclasses.replace(name, namespace="a/b")


def test_equality_and_hash_ignore_case_but_display_keeps_it():
    upper = ModelName.parse("Example.COM/Me/Llama3:8B")
    lower = ModelName.parse("example.com/me/llama3:8b")
    assert upper == lower
    assert hash(upper) == hash(lower)
    assert len({upper, lower}) == 1
    assert str(upper) == "Example.COM/Me/Llama3:8B"
    assert str(lower) == "example.com/me/llama3:8b"
    assert upper != ModelName.parse("example.com/me/llama3:7b")
    assert upper != "example.com/me/llama3:8b"


def test_defaults_make_short_and_long_forms_equal():
    assert ModelName.parse("llama3") == ModelName.parse("registry.ollama.ai/library/llama3:latest")
    assert ModelName.parse("me/m") == ModelName.parse("https://registry.ollama.ai/me/m:latest")
    assert ModelName.parse("me/m") != ModelName.parse("m")


def test_names_sort_case_insensitively():
    names = [ModelName.parse(t) for t in ("b", "A", "a:1", "C")]
    assert [n.model + ":" + n.tag for n in sorted(names)] == [
        "a:1",
        "A:latest",
        "b:latest",
        "C:latest",
    ]


@pytest.mark.parametrize(
    ("text", "shortest", "long"),
    [
        ("llama3", "llama3:latest", "registry.ollama.ai/library/llama3:latest"),
        ("llama3:8b", "llama3:8b", "registry.ollama.ai/library/llama3:8b"),
        ("REGISTRY.OLLAMA.AI/LIBRARY/M", "M:latest", "REGISTRY.OLLAMA.AI/LIBRARY/M:latest"),
        ("me/m:v1", "me/m:v1", "registry.ollama.ai/me/m:v1"),
        ("example.com/library/m", "example.com/library/m:latest", "example.com/library/m:latest"),
        ("localhost:5000/me/m:t", "localhost:5000/me/m:t", "localhost:5000/me/m:t"),
    ],
)
def test_display_forms(text, shortest, long):
    name = ModelName.parse(text)
    assert name.display_shortest() == shortest
    assert name.display_long() == long
    assert str(name) == long
    assert repr(name) == f"ModelName({long!r})"
    assert ModelName.parse(name.display_shortest()) == name
    assert ModelName.parse(str(name)) == name


def test_manifest_path_layout(tmp_path):
    path = ModelName.parse("llama3").manifest_path(tmp_path)
    assert path == tmp_path / "manifests" / "registry.ollama.ai" / "library" / "llama3" / "latest"
    path = ModelName.parse("localhost:5000/Me/M:V1").manifest_path(tmp_path)
    assert path == tmp_path / "manifests" / "localhost:5000" / "Me" / "M" / "V1"


@pytest.mark.parametrize("row", VALID, ids=lambda row: row[0][:40])
def test_every_valid_name_maps_inside_root(tmp_path, row):
    path = ModelName.parse(row[0]).manifest_path(tmp_path)
    relative = path.resolve().relative_to((tmp_path / "manifests").resolve())
    assert len(relative.parts) == 4
    assert ".." not in relative.parts


def test_manifest_path_accepts_str_root(tmp_path):
    assert ModelName.parse("m").manifest_path(str(tmp_path)).parent.parent.parent.parent == Path(
        tmp_path / "manifests"
    )


def test_split_digest():
    assert split_digest("llama3") == ("llama3", None)
    assert split_digest("llama3:8b@sha256:" + HEX) == ("llama3:8b", Digest(HEX))
    assert split_digest("@sha256-" + HEX) == ("", Digest(HEX))
    with pytest.raises(InvalidDigestError, match="64 hex digits"):
        split_digest("llama3@sha256:abc")
