"""``llamahost serve``'s model-management API and security defaults, live on loopback.

The official ``ollama`` client drives list, show, create (from an uploaded blob), copy,
delete and version, and pull/push against a real registry; httpx and raw sockets send
the bad input an official client never would. Every refused request is followed by a
normal one that must succeed, and no error body may name the store's folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
from registry_fixtures import RegistryServer
from server_fixtures import LiveServer

GO_TOOLS_TEMPLATE = (
    "{{- if .Tools }}tools: {{ .Tools }}{{ end }}"
    "{{ if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>{{ else }}{{ .Prompt }}{{ end }}"
)
GO_THINK_TEMPLATE = "{{ if .Think }}<think>{{ end }}{{ .Prompt }}"


def unique(prefix: str = "m") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def upload(client: ollama.Client, path: Path) -> str:
    """The tiny model uploaded as a blob; its digest."""
    return str(client.create_blob(path))


def create_tiny(client: ollama.Client, digest: str, name: str, **settings: Any) -> None:
    result = client.create(model=name, files={"tiny.gguf": digest}, stream=False, **settings)
    assert result.status == "success"


def assert_healthy(server: LiveServer) -> None:
    """The next normal request after a refused one still succeeds."""
    with server.http() as http:
        response = http.get("/api/tags")
    assert response.status_code == 200, response.text
    assert "models" in response.json()


def assert_error(response: httpx.Response, status: int, *words: str, server: LiveServer) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    for word in words:
        assert word in body["error"], body
    assert str(server.models) not in response.text
    assert os.path.realpath(server.models) not in response.text


@pytest.fixture
def client(llamahost_server: LiveServer) -> Iterator[ollama.Client]:
    """The official client for the module's server."""
    with contextlib.closing(llamahost_server.client()) as official:
        yield official


@pytest.fixture(scope="module")
def tiny_digest(llamahost_server: LiveServer, tiny_model_path: Path) -> str:
    with contextlib.closing(llamahost_server.client()) as official:
        return upload(official, tiny_model_path)


# ---- the official client ------------------------------------------------------------------


def test_root_head_and_version_answer_as_ollama_does(llamahost_server: LiveServer) -> None:
    with llamahost_server.http() as http:
        root = http.get("/")
        head = http.head("/")
        version = http.get("/api/version")
    assert (root.status_code, root.text) == (200, "Ollama is running")
    assert head.status_code == 200
    assert version.status_code == 200
    assert version.json() == {"version": __import__("llamahost").__version__}


def test_create_from_an_uploaded_blob_then_list_show_copy_and_delete(
    client: ollama.Client, llamahost_server: LiveServer, tiny_digest: str
) -> None:
    name, copy = unique(), unique("copy")
    create_tiny(
        client,
        tiny_digest,
        name,
        system="Be brief.",
        parameters={"temperature": 0.25, "stop": ["<|a|>", "<|b|>"], "num_ctx": 512},
        license=["MIT", "Apache-2.0"],
        messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
    )
    listed = {m.model: m for m in client.list().models}
    assert f"{name}:latest" in listed
    entry = listed[f"{name}:latest"]
    assert entry.details is not None and entry.details.family == "llama"
    assert entry.details.format == "gguf" and entry.details.quantization_level == "F32"
    assert (
        entry.size is not None and entry.size > 400_000 and entry.digest and len(entry.digest) == 64
    )

    shown = client.show(name)
    assert shown.capabilities == ["completion"]
    assert shown.modelinfo is not None
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["llama.embedding_length"] == 64
    assert shown.modelinfo["tokenizer.ggml.tokens"] == []  # long arrays: only when verbose
    assert "tokenizer.chat_template" not in shown.modelinfo
    assert shown.license == "MIT\nApache-2.0"
    assert (
        shown.parameters is not None
        and 'stop                           "<|a|>"' in shown.parameters
    )
    assert shown.modelfile is not None and 'SYSTEM """Be brief."""' in shown.modelfile
    assert shown.template is not None and "im_start" in shown.template  # the GGUF's own
    raw = httpx.post(f"{llamahost_server.url}/api/show", json={"model": name}).json()
    assert raw["system"] == "Be brief."
    assert raw["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
    ]

    assert client.copy(name, copy).status == "success"
    assert client.show(copy).modelinfo == shown.modelinfo
    assert client.delete(copy).status == "success"
    assert f"{copy}:latest" not in {m.model for m in client.list().models}
    with pytest.raises(ollama.ResponseError) as missing:
        client.show(copy)
    assert missing.value.status_code == 404 and "not found" in missing.value.error
    assert client.show(name).capabilities == ["completion"]  # the original is untouched


def test_create_streams_ollama_progress_and_reuses_the_uploaded_layer(
    client: ollama.Client, llamahost_server: LiveServer, tiny_digest: str
) -> None:
    statuses = [
        p.status
        for p in client.create(
            model=unique(), files={"tiny.gguf": tiny_digest}, template="{{ .Prompt }}", stream=True
        )
    ]
    assert statuses[0] == "parsing modelfile"
    assert f"using existing layer {tiny_digest}" in statuses
    assert any(s and s.startswith("creating new layer sha256:") for s in statuses)
    assert statuses[-2:] == ["writing manifest", "success"]


def test_create_from_a_stored_model_inherits_and_overrides(
    client: ollama.Client, llamahost_server: LiveServer, tiny_digest: str
) -> None:
    parent, child = unique("parent"), unique("child")
    create_tiny(client, tiny_digest, parent, system="parent system", parameters={"top_k": 7})
    statuses = [
        p.status for p in client.create(model=child, from_=parent, system="child", stream=True)
    ]
    assert f"using existing layer {tiny_digest}" in statuses
    shown = client.show(child)
    assert shown.details is not None and shown.details.parent_model == f"{parent}:latest"
    assert shown.parameters is not None and "top_k" in shown.parameters
    raw = httpx.post(f"{llamahost_server.url}/api/show", json={"model": child}).json()
    assert raw["system"] == "child"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (GO_TOOLS_TEMPLATE, ["completion", "tools", "insert"]),
        (GO_THINK_TEMPLATE, ["completion", "thinking"]),
        ("{{ .Prompt }}", ["completion"]),
    ],
)
def test_show_derives_capabilities_from_the_template(
    client: ollama.Client,
    llamahost_server: LiveServer,
    tiny_digest: str,
    template: str,
    expected: list[str],
) -> None:
    name = unique()
    create_tiny(client, tiny_digest, name, template=template)
    assert client.show(name).capabilities == expected


def test_show_verbose_has_the_vocabulary_and_tensors(
    client: ollama.Client, llamahost_server: LiveServer, tiny_digest: str
) -> None:
    name = unique()
    create_tiny(client, tiny_digest, name)
    with llamahost_server.http() as http:
        shown = http.post("/api/show", json={"model": name, "verbose": True}).json()
    assert len(shown["model_info"]["tokenizer.ggml.tokens"]) == 259
    tensors = {t["name"]: t for t in shown["tensors"]}
    assert tensors["token_embd.weight"]["type"] == "f32"
    assert sorted(tensors["token_embd.weight"]["shape"]) == [64, 259]


def test_an_embedding_model_shows_the_embedding_capability(
    client: ollama.Client, tiny_bert_path: Path
) -> None:
    bert = unique("bert")
    create_tiny(client, upload(client, tiny_bert_path), bert)
    assert client.show(bert).capabilities == ["embedding"]


# ---- registry ----------------------------------------------------------------------------


def test_push_then_pull_through_the_server(
    client: ollama.Client,
    llamahost_server: LiveServer,
    registry_server: RegistryServer,
    tiny_digest: str,
) -> None:
    name = f"{registry_server.host}/test/{unique()}:v1"
    create_tiny(client, tiny_digest, name, system="pushed")
    pushed = [p.status for p in client.push(name, insecure=True, stream=True)]
    assert pushed[0] == "retrieving manifest"
    assert f"pushing {tiny_digest.removeprefix('sha256:')[:12]}" in pushed
    assert pushed[-2:] == ["pushing manifest", "success"]

    assert client.delete(name).status == "success"
    assert name not in {m.model for m in client.list().models}
    pulled = list(client.pull(name, insecure=True, stream=True))
    statuses = [p.status for p in pulled]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    assert any(p.digest == tiny_digest and p.total for p in pulled)
    assert name in {m.model for m in client.list().models}
    raw = httpx.post(f"{llamahost_server.url}/api/show", json={"model": name}).json()
    assert raw["system"] == "pushed"
    again = client.pull(name, insecure=True, stream=False)  # everything already stored
    assert again.status == "success"


def test_pull_and_push_errors_are_clear(
    client: ollama.Client, llamahost_server: LiveServer, registry_server: RegistryServer
) -> None:
    missing = f"{registry_server.host}/test/{unique()}:latest"
    with pytest.raises(ollama.ResponseError) as pull_error:
        client.pull(missing, insecure=True, stream=False)
    assert pull_error.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as streamed:
        list(client.pull(missing, insecure=True, stream=True))
    assert "not found" in streamed.value.error or "unknown" in streamed.value.error
    with pytest.raises(ollama.ResponseError) as push_error:
        client.push(f"{registry_server.host}/test/{unique()}", insecure=True, stream=False)
    assert push_error.value.status_code == 404
    assert_healthy(llamahost_server)


# ---- bad input ---------------------------------------------------------------------------

VALID_DIGEST = "sha256:" + "0" * 64
BAD_REQUESTS: list[tuple[str, str, str, Any, int, tuple[str, ...]]] = [
    # (id, method, path, JSON body or raw bytes, status, words in the error)
    ("wrong type", "POST", "/api/show", {"model": 5}, 400, ('"model"', "string")),
    (
        "unknown field",
        "POST",
        "/api/show",
        {"model": "x", "modle": "y"},
        400,
        ('unknown field "modle"',),
    ),
    (
        "nested unknown field",
        "POST",
        "/api/create",
        {"model": "x", "files": {}, "messages": [{"role": "user", "content": "x", "extra": 1}]},
        400,
        ('unknown field "messages[0].extra"',),
    ),
    ("invalid JSON", "POST", "/api/show", b'{"model": "x",', 400, ("invalid JSON",)),
    ("empty body", "POST", "/api/show", b"", 400, ("missing request body",)),
    ("not an object", "POST", "/api/show", [1, 2], 400, ("JSON object",)),
    ("no model", "POST", "/api/show", {}, 400, ("model is required",)),
    (
        "invalid name",
        "POST",
        "/api/show",
        {"model": "../../etc/passwd"},
        400,
        ("invalid model name",),
    ),
    (
        "name with a space",
        "DELETE",
        "/api/delete",
        {"model": "mod el"},
        400,
        ("invalid model name",),
    ),
    (
        "unknown model",
        "POST",
        "/api/show",
        {"model": "nosuchmodel"},
        404,
        ("model 'nosuchmodel' not found",),
    ),
    ("delete unknown", "DELETE", "/api/delete", {"model": "nosuchmodel"}, 404, ("not found",)),
    (
        "copy unknown",
        "POST",
        "/api/copy",
        {"source": "nosuchmodel", "destination": "x"},
        404,
        ('model "nosuchmodel" not found',),
    ),
    (
        "copy no destination",
        "POST",
        "/api/copy",
        {"source": "x"},
        400,
        ("destination is required",),
    ),
    (
        "stream not a bool",
        "POST",
        "/api/pull",
        {"model": "x", "stream": "yes"},
        400,
        ('"stream"', "boolean"),
    ),
    ("pull bad name", "POST", "/api/pull", {"model": "a/b/c/d"}, 400, ("invalid model name",)),
    ("push unknown", "POST", "/api/push", {"model": "nosuchmodel"}, 404, ("not found",)),
    (
        "keep_alive garbage",
        "POST",
        "/api/generate",
        {"model": "x", "keep_alive": "soon"},
        400,
        ("keep_alive", "duration"),
    ),
    ("think garbage", "POST", "/api/chat", {"model": "x", "think": "maybe"}, 400, ("think",)),
    ("format garbage", "POST", "/api/generate", {"model": "x", "format": "xml"}, 400, ("format",)),
    (
        "top_logprobs too big",
        "POST",
        "/api/chat",
        {"model": "x", "top_logprobs": 21},
        400,
        ("top_logprobs",),
    ),
    ("short digest", "POST", "/api/blobs/sha256:abc", b"data", 400, ("64 hex digits",)),
    ("other algorithm", "POST", "/api/blobs/sha512:" + "0" * 64, b"data", 400, ("64 hex digits",)),
    (
        "path-like digest",
        "POST",
        "/api/blobs/..%2F..%2Fetc%2Fpasswd",
        b"data",
        404,
        ("404 page not found",),
    ),
    ("wrong method", "GET", "/api/show", None, 405, ("405 method not allowed",)),
    ("unknown path", "GET", "/api/nothing", None, 404, ("404 page not found",)),
    (
        "quantize",
        "POST",
        "/api/create",
        {"model": "x", "files": {"a.gguf": VALID_DIGEST}, "quantize": "q4_K_M"},
        400,
        ("quantize is not supported",),
    ),
    (
        "neither from nor files",
        "POST",
        "/api/create",
        {"model": "x"},
        400,
        ("neither 'from' or 'files'",),
    ),
    (
        "from and files",
        "POST",
        "/api/create",
        {"model": "x", "from": "y", "files": {"a.gguf": VALID_DIGEST}},
        400,
        ("not both",),
    ),
    (
        "from a path",
        "POST",
        "/api/create",
        {"model": "x", "from": "/etc/passwd"},
        400,
        ("invalid model name",),
    ),
    (
        "from a relative path",
        "POST",
        "/api/create",
        {"model": "x", "from": "../models/x.gguf"},
        400,
        ("invalid model name",),
    ),
    (
        "file name escapes",
        "POST",
        "/api/create",
        {"model": "x", "files": {"../../etc/passwd": VALID_DIGEST}},
        400,
        ("file path must be relative",),
    ),
    (
        "absolute file name",
        "POST",
        "/api/create",
        {"model": "x", "files": {"/etc/passwd": VALID_DIGEST}},
        400,
        ("file path must be relative",),
    ),
    (
        "file digest is a path",
        "POST",
        "/api/create",
        {"model": "x", "files": {"a.gguf": "/etc/passwd"}},
        400,
        ("64 hex digits",),
    ),
    (
        "blob not uploaded",
        "POST",
        "/api/create",
        {"model": "x", "files": {"a.gguf": VALID_DIGEST}},
        400,
        ("upload it first",),
    ),
    (
        "safetensors",
        "POST",
        "/api/create",
        {"model": "x", "files": {"model.safetensors": VALID_DIGEST}},
        400,
        ("safetensors",),
    ),
    (
        "license of numbers",
        "POST",
        "/api/create",
        {"model": "x", "from": "y", "license": [1]},
        400,
        ("license",),
    ),
    (
        "remote host",
        "POST",
        "/api/create",
        {"model": "x", "from": "y", "remote_host": "http://x"},
        400,
        ("remote_host",),
    ),
    (
        "bad create name",
        "POST",
        "/api/create",
        {"model": "-x", "from": "y"},
        400,
        ("invalid model name",),
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_input_is_a_clear_4xx_and_the_next_request_succeeds(
    llamahost_server: LiveServer,
    method: str,
    path: str,
    body: Any,
    status: int,
    words: tuple[str, ...],
) -> None:
    content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    with llamahost_server.http() as http:
        response = http.request(method, path, content=content)
    assert_error(response, status, *words, server=llamahost_server)
    assert_healthy(llamahost_server)


def test_create_refusals_that_need_a_stored_blob(
    client: ollama.Client, llamahost_server: LiveServer, tiny_digest: str
) -> None:
    text = b"this is not a GGUF file"
    text_digest = upload_bytes(llamahost_server, text)
    cases: list[tuple[dict[str, Any], tuple[str, ...]]] = [
        ({"files": {"notes.gguf": text_digest}}, ("GGUF",)),
        ({"files": {"tiny.gguf": tiny_digest}, "parameters": {"temprature": 1}}, ("temperature",)),
        ({"files": {"tiny.gguf": tiny_digest}, "parameters": {"top_k": "many"}}, ("top_k",)),
        ({"files": {"tiny.gguf": tiny_digest}, "template": "{{ .Prompt"}, ("template",)),
        (
            {"files": {"tiny.gguf": tiny_digest}, "messages": [{"role": "tool", "content": "x"}]},
            ("role",),
        ),
        (
            {"files": {"tiny.gguf": tiny_digest}, "adapters": {"lora.gguf": tiny_digest}},
            ("adapter",),
        ),
    ]
    for extra, words in cases:
        name = unique()
        with llamahost_server.http() as http:
            response = http.post("/api/create", json={"model": name, "stream": False, **extra})
        assert_error(response, 400, *words, server=llamahost_server)
        assert f"{name}:latest" not in {m.model for m in client.list().models}
        assert_healthy(llamahost_server)


def upload_bytes(server: LiveServer, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with server.http() as http:
        assert http.post(f"/api/blobs/{digest}", content=data).status_code == 201
        assert http.head(f"/api/blobs/{digest}").status_code == 200
        assert http.post(f"/api/blobs/{digest}", content=data).status_code == 200  # stored
    return digest


def test_a_mismatched_blob_upload_keeps_nothing(llamahost_server: LiveServer) -> None:
    claimed = "sha256:" + hashlib.sha256(b"what the client claims").hexdigest()
    with llamahost_server.http() as http:
        response = http.post(f"/api/blobs/{claimed}", content=b"something else entirely")
        assert_error(response, 400, "does not match", server=llamahost_server)
        missing = http.head(f"/api/blobs/{claimed}")
    assert missing.status_code == 404
    blobs = llamahost_server.models / "blobs"
    assert not (blobs / claimed.replace(":", "-")).exists()
    assert [p.name for p in blobs.iterdir() if p.name.endswith(".partial")] == []
    assert_healthy(llamahost_server)


def test_an_upload_cut_short_keeps_nothing(llamahost_server: LiveServer) -> None:
    data = os.urandom(1 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    head = (
        f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: localhost\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    with socket.create_connection(split(llamahost_server.host), timeout=10) as sock:
        sock.sendall(head + data[: len(data) // 2])
        time.sleep(0.3)
    deadline = time.monotonic() + 5
    blobs = llamahost_server.models / "blobs"
    while time.monotonic() < deadline and any(p.name.endswith(".partial") for p in blobs.iterdir()):
        time.sleep(0.05)
    assert [p.name for p in blobs.iterdir() if p.name.endswith(".partial")] == []
    with llamahost_server.http() as http:
        assert http.head(f"/api/blobs/{digest}").status_code == 404
    assert_healthy(llamahost_server)


def split(host: str) -> tuple[str, int]:
    address, _, port = host.rpartition(":")
    return address, int(port)


def raw_exchange(server: LiveServer, head: bytes, chunks: Iterable[bytes] = ()) -> bytes:
    """Send ``head`` then ``chunks`` on a socket while reading the answer in a thread."""
    received: list[bytes] = []
    with socket.create_connection(split(server.host), timeout=20) as sock:

        def read() -> None:
            try:
                while data := sock.recv(1 << 16):
                    received.append(data)
            except OSError:
                pass

        reader = threading.Thread(target=read)
        reader.start()
        try:
            sock.sendall(head)
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server stopped reading: its answer is what counts
        reader.join(timeout=20)
    return b"".join(received)


def test_oversized_bodies_are_refused_with_413(llamahost_server: LiveServer) -> None:
    declared = raw_exchange(
        llamahost_server,
        b"POST /api/show HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000\r\n\r\n",
    )
    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
    assert b"64 MiB limit" in declared

    megabyte = b"x" * (1 << 20)

    def chunked() -> Iterator[bytes]:
        for _ in range(70):
            yield b"%x\r\n%s\r\n" % (len(megabyte), megabyte)
        yield b"0\r\n\r\n"

    streamed = raw_exchange(
        llamahost_server,
        b"POST /api/create HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
        chunked(),
    )
    assert streamed.startswith(b"HTTP/1.1 413"), streamed[:200]
    assert_healthy(llamahost_server)


# ---- Host, CORS, API key -----------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:11434", "127.0.0.1.nip.io", "8.8.8.8"]
)
def test_a_dns_rebinding_host_header_is_refused(llamahost_server: LiveServer, host: str) -> None:
    with llamahost_server.http() as http:
        response = http.get("/api/tags", headers={"Host": host})
    assert_error(response, 403, "Host", server=llamahost_server)
    assert_healthy(llamahost_server)


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:8080", "127.0.0.1", "[::1]:11434", "app.localhost", "10.1.2.3"]
)
def test_local_host_headers_are_served(llamahost_server: LiveServer, host: str) -> None:
    with llamahost_server.http() as http:
        assert http.get("/api/tags", headers={"Host": host}).status_code == 200


def test_cors_allows_local_origins_and_refuses_foreign_ones(llamahost_server: LiveServer) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    with llamahost_server.http() as http:
        foreign = http.get("/api/tags", headers={"Origin": "https://evil.example"})
        assert_error(foreign, 403, "origin", server=llamahost_server)
        assert "access-control-allow-origin" not in foreign.headers
        foreign_preflight = http.options(
            "/api/chat", headers={"Origin": "https://evil.example", **preflight}
        )
        assert foreign_preflight.status_code == 403
        assert "access-control-allow-origin" not in foreign_preflight.headers
        assert_healthy(llamahost_server)

        local = http.options("/api/chat", headers={"Origin": "http://localhost:3000", **preflight})
        assert local.status_code == 204
        assert local.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert "POST" in local.headers["access-control-allow-methods"]
        listed = http.get("/api/tags", headers={"Origin": "tauri://localhost"})
        assert listed.status_code == 200
        assert listed.headers["access-control-allow-origin"] == "tauri://localhost"


def test_llamahost_origins_adds_allowed_origins(
    llamahost_server_factory: Callable[..., LiveServer],
) -> None:
    server = llamahost_server_factory(
        env={"LLAMAHOST_ORIGINS": "https://app.example, https://*.corp.example"}
    )
    with server.http() as http:
        for origin in ("https://app.example", "https://chat.corp.example", "http://127.0.0.1:5173"):
            response = http.get("/api/tags", headers={"Origin": origin})
            assert response.headers.get("access-control-allow-origin") == origin, origin
        assert http.get("/api/tags", headers={"Origin": "https://other.example"}).status_code == 403


def test_the_api_key_is_required_everywhere_but_the_root(
    llamahost_server_factory: Callable[..., LiveServer],
) -> None:
    server = llamahost_server_factory(env={"LLAMAHOST_API_KEY": "s3cret"})
    with server.http() as http:
        assert http.get("/").status_code == 200
        assert http.head("/").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = http.get("/api/tags", headers=headers)
            assert response.status_code == 401
            assert response.json() == {"error": "unauthorized"}
            refused = http.post("/api/show", json={"model": "x"}, headers=headers)
            assert refused.status_code == 401
    with (
        contextlib.closing(server.client()) as anonymous,
        pytest.raises(ollama.ResponseError) as denied,
    ):
        anonymous.list()
    assert denied.value.status_code == 401
    with contextlib.closing(
        server.client(headers={"Authorization": "Bearer s3cret"})
    ) as authorized:
        assert authorized.list().models == []


# ---- shutdown ----------------------------------------------------------------------------


def test_sigterm_ends_open_streams_with_an_error_line_and_stops_the_server(
    llamahost_server_factory: Callable[..., LiveServer],
) -> None:
    server = llamahost_server_factory()
    with socket.socket() as silent:  # a "registry" that accepts and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        pull = {"model": f"127.0.0.1:{silent.getsockname()[1]}/ns/m", "insecure": True}
        waiting: list[httpx.Response] = []
        whole = threading.Thread(
            target=lambda: waiting.append(
                httpx.post(f"{server.url}/api/pull", json={**pull, "stream": False}, timeout=30)
            )
        )
        whole.start()
        with httpx.stream("POST", f"{server.url}/api/pull", json=pull, timeout=30) as response:
            lines = response.iter_lines()
            assert json.loads(next(lines)) == {"status": "pulling manifest"}
            silent.settimeout(10)
            held = [silent.accept()[0] for _ in range(2)]  # both pulls wait for the registry
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            last = json.loads(next(lines))
        assert last == {"error": "the server is shutting down"}
        whole.join(timeout=15)
        assert waiting and waiting[0].status_code == 503
        assert waiting[0].json() == {"error": "the server is shutting down"}
        assert time.monotonic() - started < 5
        assert server.process.wait(timeout=15) == 0
        for connection in held:
            connection.close()
    assert "stopped" in server.log()
