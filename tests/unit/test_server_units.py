"""The server's pure parts, without a server: wire schemas against what the official client
sends, keep_alive and LLAMAHOST_* parsing, error messages, redaction, the Host and Origin
rules, and capabilities from template text and GGUF metadata."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from ollama import _types as ollama_types
from ollama._client import _copy_messages, _copy_tools
from pydantic import ValidationError

from llamahost.chat.capabilities import model_capabilities
from llamahost.errors import OptionError
from llamahost.server import schemas
from llamahost.server.app import ServerConfig, parse_host
from llamahost.server.errors import redact, validation_message
from llamahost.server.security import Cors, HostCheck, split_host


def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
      a: the first
      b: the second
    """
    return a + b


DIGEST = "sha256:" + "0" * 64
CLIENT_REQUESTS: list[tuple[type[schemas.WireModel], Any]] = [
    (
        schemas.GenerateRequest,
        ollama_types.GenerateRequest(
            model="m",
            prompt="hi",
            suffix="end",
            images=[ollama_types.Image(value=b"png")],
            think="high",
            format={"type": "object"},
            keep_alive="5m",
            options={"temperature": 0},
            logprobs=True,
            top_logprobs=3,
            raw=True,
            context=[1, 2],
        ),
    ),
    (
        schemas.ChatRequest,
        ollama_types.ChatRequest(
            model="m",
            messages=list(
                _copy_messages(
                    [
                        {"role": "user", "content": "x", "images": [b"a"]},
                        ollama_types.Message(
                            role="assistant",
                            tool_calls=[
                                ollama_types.Message.ToolCall(
                                    function=ollama_types.Message.ToolCall.Function(
                                        name="add", arguments={"a": 1, "b": 2}
                                    )
                                )
                            ],
                        ),
                        {"role": "tool", "content": "3", "tool_name": "add"},
                    ]
                )
            ),
            tools=list(_copy_tools([add])),
            think=True,
            keep_alive=-1,
            format="json",
        ),
    ),
    (schemas.ChatRequest, ollama_types.ChatRequest(model="m", tools=list(_copy_tools(None)))),
    (
        schemas.EmbedRequest,
        ollama_types.EmbedRequest(model="m", input=["a", "b"], truncate=True, dimensions=4),
    ),
    (schemas.EmbeddingRequest, ollama_types.EmbeddingsRequest(model="m", prompt="x")),
    (schemas.PullRequest, ollama_types.PullRequest(model="m", insecure=True, stream=False)),
    (schemas.PushRequest, ollama_types.PushRequest(model="m", insecure=True, stream=True)),
    (
        schemas.CreateRequest,
        ollama_types.CreateRequest(
            model="m",
            stream=False,
            from_="base",
            files={"a.gguf": DIGEST},
            adapters={"l.gguf": DIGEST},
            template="{{ .Prompt }}",
            license=["MIT", "x"],
            system="s",
            parameters={"temperature": 0.5, "stop": ["a"]},
            messages=[{"role": "user", "content": "x"}],
        ),
    ),
    (schemas.DeleteRequest, ollama_types.DeleteRequest(model="m")),
    (schemas.CopyRequest, ollama_types.CopyRequest(source="a", destination="b")),
    (schemas.ShowRequest, ollama_types.ShowRequest(model="m")),
]


@pytest.mark.parametrize(
    ("schema", "request_"), CLIENT_REQUESTS, ids=[type(r).__name__ for _, r in CLIENT_REQUESTS]
)
def test_every_request_of_the_official_client_validates(
    schema: type[schemas.WireModel], request_: Any
) -> None:
    body = json.dumps(request_.model_dump(exclude_none=True))
    parsed = schema.model_validate_json(body)
    assert parsed.model_dump(exclude_defaults=True)  # something was read


def test_create_reads_from_and_files_under_ollamas_names() -> None:
    body = {"model": "m", "from": "base", "files": {"x.gguf": DIGEST}, "license": "MIT"}
    parsed = schemas.CreateRequest.model_validate_json(json.dumps(body))
    assert (parsed.from_, parsed.files, parsed.license) == ("base", {"x.gguf": DIGEST}, "MIT")
    wire = schemas.ProgressResponse(status="success").to_wire()
    assert wire == {"status": "success"}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("300ms", 0.3),
        ("0", 0.0),
        ("300", 300.0),
        ("5", 5.0),  # digits alone are seconds
        (3600, 3600.0),
        (0.5, 0.5),
        (-1, math.inf),
        ("-1m", math.inf),
        (None, None),
    ],
)
def test_keep_alive_follows_ollamas_rules(value: Any, seconds: float | None) -> None:
    assert schemas.parse_keep_alive(value) == seconds


@pytest.mark.parametrize("value", ["soon", "5x", "m", "", "1e9999h", True, [1], "9999999999h"])
def test_bad_keep_alive_values_are_refused(value: Any) -> None:
    with pytest.raises(ValueError, match=r"keep_alive|duration"):
        schemas.parse_keep_alive(value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"model": 5}', 'invalid "model": input should be a valid string, got 5'),
        (b'{"model": "x", "nope": 1}', 'unknown field "nope"'),
        (
            b'{"model": "x", "messages": [{"role": "user", "x": 1}]}',
            'unknown field "messages[0].x"',
        ),
        (b"[1]", "the request body must be a JSON object"),
        (b'{"model": "x", "think": "deep"}', 'invalid "think": think must be true, false'),
        (b'{"model": "x", "format": 5}', 'invalid "format": format must be "json"'),
        (b'{"model": "x", "stream": 1}', 'invalid "stream": input should be a valid boolean'),
        (b'{"model', "invalid JSON: "),
    ],
)
def test_validation_errors_name_the_field(body: bytes, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        schemas.ChatRequest.model_validate_json(body)
    assert validation_message(caught.value).startswith(message)


def test_server_config_reads_the_environment(tmp_path: Path) -> None:
    config = ServerConfig.from_env(
        {
            "LLAMAHOST_HOST": "http://0.0.0.0:8080",
            "LLAMAHOST_MODELS": str(tmp_path),
            "LLAMAHOST_KEEP_ALIVE": "-1",
            "LLAMAHOST_NUM_PARALLEL": "4",
            "LLAMAHOST_MAX_LOADED_MODELS": "2",
            "LLAMAHOST_MAX_QUEUE": "8",
            "LLAMAHOST_ORIGINS": "https://a.example, ,https://b.example",
            "LLAMAHOST_API_KEY": "k",
            "LLAMAHOST_DEBUG": "true",
        }
    )
    assert (config.host, config.port, config.models) == ("0.0.0.0", 8080, tmp_path)
    assert config.keep_alive_s == math.inf
    assert (config.num_parallel, config.max_loaded_models, config.max_queue) == (4, 2, 8)
    assert config.origins == ("https://a.example", "https://b.example")
    assert (config.api_key, config.debug) == ("k", True)
    defaults = ServerConfig.from_env({})
    assert (defaults.address, defaults.keep_alive_s, defaults.api_key) == (
        "127.0.0.1:11434",
        300.0,
        None,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("127.0.0.1", 11434)),
        ("0.0.0.0", ("0.0.0.0", 11434)),
        (":9000", ("127.0.0.1", 9000)),
        ("[::1]:9000", ("::1", 9000)),
        ("https://localhost:1234/", ("localhost", 1234)),
    ],
)
def test_llamahost_host_forms(text: str, expected: tuple[str, int]) -> None:
    assert parse_host(text) == expected


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LLAMAHOST_HOST", "localhost:99999"),
        ("LLAMAHOST_HOST", "localhost:http"),
        ("LLAMAHOST_HOST", "host/path"),
        ("LLAMAHOST_KEEP_ALIVE", "soon"),
        ("LLAMAHOST_NUM_PARALLEL", "0"),
        ("LLAMAHOST_NUM_PARALLEL", "two"),
        ("LLAMAHOST_MAX_QUEUE", "-1"),
        ("LLAMAHOST_DEBUG", "maybe"),
    ],
)
def test_a_malformed_variable_is_named(variable: str, value: str) -> None:
    with pytest.raises(OptionError, match=variable):
        ServerConfig.from_env({variable: value})


def test_redact_hides_the_store_folder(tmp_path: Path) -> None:
    root = tmp_path / "models"
    hexdigits = "ab" * 32
    message = f"FROM {root}/blobs/sha256-{hexdigits}: not a GGUF file; see {root}/manifests/x"
    redacted = redact(message, root)
    assert str(tmp_path) not in redacted
    assert f"sha256:{hexdigits}" in redacted
    assert "$LLAMAHOST_MODELS/manifests/x" in redacted


def test_host_rules() -> None:
    check = HostCheck(app=None, bind_host="127.0.0.1")
    assert split_host("[::1]:11434") == "::1"
    assert split_host("LocalHost:80") == "localhost"
    for host in ("localhost", "127.0.0.1", "::1", "10.0.0.5", "192.168.1.2", "x.localhost", ""):
        assert check.allowed(host, "127.0.0.1"), host
    for host in ("evil.example", "127.0.0.1.nip.io", "8.8.8.8", "localhost.evil.example"):
        assert not check.allowed(host, "127.0.0.1"), host
    assert check.allowed("203.0.113.7", "203.0.113.7")  # the address the request came to


def test_origin_rules() -> None:
    cors = Cors(app=None, origins=["https://*.corp.example"])
    for origin in (
        "http://localhost",
        "http://localhost:3000",
        "https://127.0.0.1:8443",
        "http://[::1]:5173",
        "app://obsidian.md",
        "tauri://localhost",
        "vscode-webview://abc",
        "https://wiki.corp.example",
    ):
        assert cors.allowed(origin, "127.0.0.1:11434"), origin
    for origin in ("https://evil.example", "http://localhost.evil.example", "null"):
        assert not cors.allowed(origin, "127.0.0.1:11434"), origin
    assert cors.allowed("http://127.0.0.1:11434", "127.0.0.1:11434")  # same origin
    assert Cors(app=None, origins=["*"]).allowed("https://any.example", "h")


LLAMA = {"general.architecture": "llama"}
FIM_IDS = {f"tokenizer.ggml.fim_{p}_token_id": i for i, p in enumerate(("pre", "suf", "mid"))}
OLD_FIM_IDS = {f"tokenizer.ggml.{p}_token_id": 5 for p in ("prefix", "suffix", "middle")}


@pytest.mark.parametrize(
    ("template", "metadata", "tokens", "projector", "expected"),
    [
        (None, LLAMA, None, False, ["completion"]),
        ("{{ .Prompt }}", {**LLAMA, **FIM_IDS}, None, False, ["completion", "insert"]),
        (None, {**LLAMA, **OLD_FIM_IDS}, None, False, ["completion", "insert"]),
        (
            None,
            LLAMA,
            ["<fim_prefix>", "<fim_suffix>", "<fim_middle>"],
            False,
            ["completion", "insert"],
        ),
        (None, LLAMA, ["<fim_prefix>", "<fim_suffix>"], False, ["completion"]),
        ("{% for t in tools %}{{ t }}{% endfor %}", LLAMA, None, False, ["completion", "tools"]),
        (
            "{% if enable_thinking %}<think>{% endif %}",
            LLAMA,
            None,
            False,
            ["completion", "thinking"],
        ),
        (
            "{{ range .Tools }}{{ . }}{{ end }}{{ .Prompt }}",
            LLAMA,
            None,
            True,
            ["completion", "vision", "tools"],
        ),
        ("{{ .Prompt }}{{ .Suffix }}", LLAMA, None, False, ["completion", "insert"]),
        ("{{ .Prompt", LLAMA, None, False, ["completion"]),  # unparsable: no capability from it
        (
            None,
            {"general.architecture": "bert", "bert.pooling_type": 1},
            None,
            False,
            ["embedding"],
        ),
        (
            None,
            {"general.architecture": "bert", "bert.pooling_type": 0},
            None,
            False,
            ["completion"],
        ),
    ],
)
def test_capabilities(
    template: str | None,
    metadata: dict[str, Any],
    tokens: list[str] | None,
    projector: bool,
    expected: list[str],
) -> None:
    assert (
        model_capabilities(template, metadata, has_projector=projector, tokens=tokens) == expected
    )
