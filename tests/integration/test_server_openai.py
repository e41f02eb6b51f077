"""OpenAI's ``/v1`` API end to end: a live server on loopback, real runners, the official
``openai`` client (pinned), no mocks.

Models: SmolLM2 where answers matter (greedy determinism, JSON schemas, logprobs,
embeddings), ``smollm2-tools`` (SmolLM2 with an Ollama TEMPLATE, adapted from Ollama's
Qwen 2.5 one, that renders ``tools`` and reads a call as a bare
``{"name": ..., "parameters": ...}`` answer), ``smollm2-cold`` (SmolLM2 with
``PARAMETER temperature 0``), and the generated tiny model (cheap requests after each bad
one). SmolLM2 is too small to call tools reliably, so the tool tests force the answer into
the template's call syntax with a ``json_schema`` response format: they test the request
and response plumbing (tools rendered, the call parsed, ids, JSON-string arguments,
``finish_reason``, the tool result sent back), not the model's skill.
"""

from __future__ import annotations

import base64
import json
import math
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import jsonschema
import openai
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema
from server_fixtures import LiveServer
from server_inference_fixtures import InferenceServer, serving

from llamahost.modelfile.create import create_model
from llamahost.store.model_store import ModelStore
from support.tiny_model import write_tiny_model

pytestmark = pytest.mark.slow

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]

TOOLS_TEMPLATE = """\
{{- if .Messages }}
{{- if or .System .Tools }}<|im_start|>system
{{ .System }}
{{- if .Tools }}

You can call these functions:
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}

To call one, answer with only {"name": <function name>, "parameters": <arguments object>}.
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}{{ range .ToolCalls }}\
{"name": "{{ .Function.Name }}", "parameters": {{ .Function.Arguments }}}{{ end }}
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>ipython
{{ .Content }}<|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}
"""
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "strict": True,
    },
}
#: Forces the answer to be a call of get_weather in the tools template's syntax.
CALL_FORMAT: ResponseFormatJSONSchema = {
    "type": "json_schema",
    "json_schema": {
        "name": "call",
        "schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": ["get_weather"]},
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "enum": ["Paris"]}},
                    "required": ["city"],
                    "additionalProperties": False,
                },
            },
            "required": ["name", "parameters"],
            "additionalProperties": False,
        },
    },
}
WEATHER_QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the weather in Paris?"}
]


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Path:
    work = tmp_path_factory.mktemp("openai-store")
    store = ModelStore(work / "models")
    write_tiny_model(work / "tiny.gguf")
    create_model(store, "tiny", "FROM ./tiny.gguf\nPARAMETER num_ctx 512\n", base_dir=work)
    create_model(store, "smollm2", f"FROM {smollm2_path}\n", base_dir=work)
    tools = f'FROM {smollm2_path}\nTEMPLATE """{TOOLS_TEMPLATE}"""\n'
    create_model(store, "smollm2-tools", tools, base_dir=work)
    create_model(
        store, "smollm2-cold", f"FROM {smollm2_path}\nPARAMETER temperature 0\n", base_dir=work
    )
    root: Path = store.root
    return root


@pytest.fixture(scope="module")
def server(store_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InferenceServer]:
    workdir = tmp_path_factory.mktemp("openai-server")
    with serving(store_root, workdir, LLAMAHOST_NUM_PARALLEL="2") as live:
        yield live


def openai_client(url: str, api_key: str = "x") -> openai.OpenAI:
    """The official client for a server (no retries: a status is what the test sees)."""
    return openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, timeout=180, max_retries=0)


@pytest.fixture
def client(server: InferenceServer) -> Iterator[openai.OpenAI]:
    with openai_client(server.url) as c:
        yield c


def tiny_answers(client: openai.OpenAI) -> None:
    """A normal request after a bad one still succeeds."""
    answer = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert answer.choices[0].finish_reason in ("stop", "length")


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    assert error["message"] and "Traceback" not in error["message"]
    expected = "not_found_error" if status == 404 else "invalid_request_error"
    assert error["type"] == (expected if status < 500 else "api_error")
    return error


# ---- chat completions --------------------------------------------------------------------


def test_chat_streamed_equals_whole(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(
        model="smollm2", messages=QUESTION, temperature=0, seed=1, max_tokens=24
    )
    assert whole.id.startswith("chatcmpl-") and whole.object == "chat.completion"
    assert whole.model == "smollm2" and whole.system_fingerprint == "fp_ollama"
    assert whole.created > 0 and len(whole.choices) == 1
    choice = whole.choices[0]
    assert choice.index == 0 and choice.message.role == "assistant"
    assert choice.message.content and choice.finish_reason in ("stop", "length")
    assert choice.message.tool_calls is None and choice.logprobs is None
    usage = whole.usage
    assert usage is not None and usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 24
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    chunks = list(
        client.chat.completions.create(
            model="smollm2", messages=QUESTION, stream=True, temperature=0, seed=1, max_tokens=24
        )
    )
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].id.startswith("chatcmpl-") and chunks[0].id != whole.id
    assert all(c.usage is None and len(c.choices) == 1 for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == choice.message.content
    roles = [c.choices[0].delta.role for c in chunks]
    assert roles[0] == "assistant" and not any(roles[1:])  # once: a summing client adds it once
    finishes = [c.choices[0].finish_reason for c in chunks]
    assert finishes[-1] == choice.finish_reason and not any(finishes[:-1])


def test_sse_wire_format_ends_with_done(server: InferenceServer) -> None:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    with httpx.stream(
        "POST", f"{server.url}/v1/chat/completions", json={**body, "stream": True}, timeout=60
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    events = text.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    for event in events[:-2]:
        assert event.startswith("data: ")
        chunk = json.loads(event.removeprefix("data: "))
        assert chunk["system_fingerprint"] == "fp_ollama" and "usage" not in chunk
        assert chunk["choices"][0]["finish_reason"] in (None, "stop", "length")
    whole = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60)
    assert whole.headers["content-type"].startswith("application/json")
    assert whole.json()["choices"][0]["logprobs"] is None  # null, as OpenAI writes it


def test_stream_options_include_usage(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(
        model="smollm2", messages=QUESTION, temperature=0, seed=1, max_tokens=24
    )
    chunks = list(
        client.chat.completions.create(
            model="smollm2",
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
            temperature=0,
            seed=1,
            max_tokens=24,
        )
    )
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert whole.usage is not None
    assert last.usage.completion_tokens == whole.usage.completion_tokens
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == whole.choices[0].finish_reason


def test_sampling_fields_reach_the_model(client: openai.OpenAI) -> None:
    """max_completion_tokens -> num_predict, stop (a string or a list) -> stop."""
    short = client.chat.completions.create(
        model="smollm2", messages=QUESTION, temperature=0, max_completion_tokens=5
    )
    assert short.choices[0].finish_reason == "length"
    assert short.usage is not None and short.usage.completion_tokens == 5
    whole = client.chat.completions.create(
        model="smollm2", messages=QUESTION, temperature=0, seed=1, max_tokens=24
    )
    text = whole.choices[0].message.content or ""
    words = text.split()
    assert len(words) >= 3, text
    stop = f" {words[2]}"
    for form in (stop, [stop, "\u2603 never"]):
        stopped = client.chat.completions.create(
            model="smollm2", messages=QUESTION, stop=form, temperature=0, seed=1, max_tokens=24
        )
        assert stopped.choices[0].message.content == text[: text.index(stop)]
        assert stopped.choices[0].finish_reason == "stop"


def test_modelfile_temperature_is_kept_when_the_request_sets_none(
    client: openai.OpenAI,
) -> None:
    """OpenAI's default temperature (1) applies only where the Modelfile sets none."""
    for prompt in ("Name a colour.", "Write one word about the sea."):
        messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": prompt}]
        cold = client.chat.completions.create(
            model="smollm2-cold", messages=messages, max_tokens=16
        )
        greedy = client.chat.completions.create(
            model="smollm2", messages=messages, max_tokens=16, temperature=0
        )
        assert cold.choices[0].message.content == greedy.choices[0].message.content


def test_response_format_json_schema_and_json_object(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "country": {"type": "string"},
            "population": {"type": "integer"},
        },
        "required": ["city", "country", "population"],
        "additionalProperties": False,
    }
    answer = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": schema, "strict": True},
        },
        temperature=0,
        max_tokens=80,
    )
    assert answer.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(answer.choices[0].message.content or ""), schema)
    loose = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=60,
    )
    if loose.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(loose.choices[0].message.content or ""), dict)
    else:  # cut by max_tokens: still the start of an object
        assert (loose.choices[0].message.content or "").lstrip().startswith("{")


def test_logprobs_stream_and_whole(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(
        model="smollm2",
        messages=QUESTION,
        logprobs=True,
        top_logprobs=3,
        temperature=0,
        seed=1,
        max_tokens=24,
    )
    choice = whole.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    entries = choice.logprobs.content
    assert whole.usage is not None and len(entries) == whole.usage.completion_tokens
    assert "".join(e.token for e in entries) == choice.message.content
    for entry in entries:
        assert entry.logprob <= 0 and entry.bytes == list(entry.token.encode())
        top = [t.logprob for t in entry.top_logprobs]
        assert len(top) == 3 and top == sorted(top, reverse=True)
        assert entry.logprob <= top[0] + 1e-6
    chunks = list(
        client.chat.completions.create(
            model="smollm2",
            messages=QUESTION,
            logprobs=True,
            top_logprobs=3,
            stream=True,
            temperature=0,
            seed=1,
            max_tokens=24,
        )
    )
    streamed = [
        e for c in chunks if c.choices[0].logprobs for e in c.choices[0].logprobs.content or []
    ]
    assert [e.token for e in streamed] == [e.token for e in entries]
    assert [e.logprob for e in streamed] == pytest.approx([e.logprob for e in entries])
    plain = client.chat.completions.create(
        model="smollm2", messages=QUESTION, temperature=0, seed=1, max_tokens=24
    )
    assert plain.choices[0].message.content == choice.message.content


def test_a_client_leaving_mid_stream_frees_its_slot(
    server: InferenceServer, client: openai.OpenAI
) -> None:
    stream = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Count from one to one thousand."}],
        max_tokens=100_000,
        temperature=0,
        stream=True,
    )
    for i, _chunk in enumerate(stream):
        if i == 3:
            break
    stream.close()
    assert server.wait_until(lambda: server.loaded()["smollm2:latest"]["busy"] == 0, 10)


# ---- tools ---------------------------------------------------------------------------------


def test_tool_call_comes_back_and_its_result_goes_in(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="smollm2-tools",
        messages=WEATHER_QUESTION,
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        response_format=CALL_FORMAT,
        temperature=0,
        max_tokens=48,
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "" and choice.message.tool_calls
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments, str)
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    as_sent = cast(ChatCompletionMessageParam, choice.message.model_dump(exclude_none=True))
    history: list[ChatCompletionMessageParam] = [
        *WEATHER_QUESTION,
        as_sent,  # the assistant message, as it came
        {"role": "tool", "tool_call_id": call.id, "content": "22 degrees and sunny"},
    ]
    follow_up = client.chat.completions.create(
        model="smollm2-tools", messages=history, tools=[WEATHER_TOOL], temperature=0, max_tokens=8
    )
    assert follow_up.choices[0].message.content
    assert follow_up.choices[0].message.tool_calls is None


def test_streamed_tool_call_with_the_clients_accumulator(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="smollm2-tools",
        messages=WEATHER_QUESTION,
        tools=[WEATHER_TOOL],
        response_format=CALL_FORMAT,
        temperature=0,
        max_tokens=48,
    ) as stream:
        chunks = list(stream)
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.role == "assistant" and final.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.id.startswith("call_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    deltas = [
        d
        for event in chunks
        if event.type == "chunk"
        for d in event.chunk.choices[0].delta.tool_calls or []
        if event.chunk.choices
    ]
    assert [d.index for d in deltas] == [0]


def test_tool_choice_none_and_named(client: openai.OpenAI) -> None:
    """``none`` offers no tools (the forced call text stays text); a named choice keeps
    only that tool; a name not in ``tools`` is a 400 naming ``tool_choice``."""
    plain = client.chat.completions.create(
        model="smollm2-tools",
        messages=WEATHER_QUESTION,
        tools=[WEATHER_TOOL],
        tool_choice="none",
        response_format=CALL_FORMAT,
        temperature=0,
        max_tokens=48,
    )
    assert plain.choices[0].finish_reason == "stop" and plain.choices[0].message.tool_calls is None
    assert json.loads(plain.choices[0].message.content or "")["name"] == "get_weather"
    other: ChatCompletionFunctionToolParam = {
        "type": "function",
        "function": {"name": "get_time", "parameters": {}},
    }
    named = client.chat.completions.create(
        model="smollm2-tools",
        messages=WEATHER_QUESTION,
        tools=[other, WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        response_format=CALL_FORMAT,
        temperature=0,
        max_tokens=48,
    )
    assert named.choices[0].finish_reason == "tool_calls"
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="smollm2-tools",
            messages=WEATHER_QUESTION,
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == "tool_choice"


def test_every_field_the_client_sends_validates(client: openai.OpenAI) -> None:
    """Fields llamahost accepts without effect still validate (the client sends them)."""
    answer = client.chat.completions.create(
        model="tiny",
        messages=[
            {"role": "developer", "content": "Be brief.", "name": "dev"},
            {"role": "system", "content": [{"type": "text", "text": "Really brief."}]},
            {"role": "user", "content": [{"type": "text", "text": "hi"}], "name": "ann"},
            {"role": "assistant", "content": None, "tool_calls": [], "refusal": None},
            {"role": "user", "content": "again"},
        ],
        max_tokens=2,
        n=1,
        user="u-1",
        safety_identifier="s-1",
        metadata={"k": "v"},
        store=False,
        service_tier="auto",
        prompt_cache_key="key",
        parallel_tool_calls=True,
        logit_bias={},
        modalities=["text"],
        prediction={"type": "content", "content": "hello"},
        verbosity="low",
        reasoning_effort="none",
        frequency_penalty=0.5,
        presence_penalty=0.5,
        top_p=0.9,
        seed=7,
        stream_options=None,
    )
    assert answer.choices[0].finish_reason in ("stop", "length")
    text = client.completions.create(
        model="tiny", prompt="hi", max_tokens=2, n=1, best_of=1, logit_bias={}, user="u"
    )
    assert text.choices[0].finish_reason in ("stop", "length")
    vectors = client.embeddings.create(model="tiny", input="hi", user="u")
    assert len(vectors.data) == 1


# ---- completions and embeddings ------------------------------------------------------------


def test_completions_streamed_equals_whole(client: openai.OpenAI) -> None:
    prompt = "The capital of France is"
    whole = client.completions.create(model="smollm2", prompt=prompt, temperature=0, max_tokens=16)
    assert whole.id.startswith("cmpl-") and whole.object == "text_completion"
    assert whole.system_fingerprint == "fp_ollama" and whole.model == "smollm2"
    choice = whole.choices[0]
    assert choice.text and choice.finish_reason in ("stop", "length") and choice.logprobs is None
    assert whole.usage is not None and whole.usage.completion_tokens <= 16
    chunks = list(
        client.completions.create(
            model="smollm2",
            prompt=[prompt],  # a list of one prompt is that prompt
            temperature=0,
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == choice.text
    assert all(c.id == chunks[0].id and c.object == "text_completion" for c in chunks)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-2].choices[0].finish_reason == choice.finish_reason

    echoed = client.completions.create(
        model="smollm2", prompt=prompt, temperature=0, max_tokens=16, echo=True
    )
    assert echoed.choices[0].text == prompt + choice.text
    scored = client.completions.create(
        model="smollm2", prompt=prompt, temperature=0, max_tokens=16, logprobs=2
    )
    logprobs = scored.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.text_offset
    assert "".join(logprobs.tokens) == scored.choices[0].text == choice.text
    assert logprobs.text_offset[0] == 0 and logprobs.text_offset == sorted(logprobs.text_offset)
    assert all(len(top) <= 2 for top in logprobs.top_logprobs or [])
    assert all(lp is not None and lp <= 0 for lp in logprobs.token_logprobs or [])


def test_embeddings_float_and_base64_are_the_same_vectors(client: openai.OpenAI) -> None:
    texts = ["a cat", "a dog"]
    floats = client.embeddings.create(model="smollm2", input=texts, encoding_format="float")
    assert floats.object == "list" and floats.model == "smollm2"
    assert [d.index for d in floats.data] == [0, 1]
    assert floats.usage.prompt_tokens > 0
    assert floats.usage.total_tokens == floats.usage.prompt_tokens
    for item in floats.data:
        assert item.object == "embedding" and len(item.embedding) == 576
        assert math.isclose(math.sqrt(sum(x * x for x in item.embedding)), 1.0, rel_tol=1e-3)
    raw = client.embeddings.create(model="smollm2", input=texts, encoding_format="base64")
    for item, reference in zip(raw.data, floats.data, strict=True):
        assert isinstance(item.embedding, str)
        data = base64.b64decode(item.embedding)
        decoded = struct.unpack(f"<{len(data) // 4}f", data)
        assert list(decoded) == pytest.approx(reference.embedding, abs=1e-6)
    default = client.embeddings.create(model="smollm2", input=texts)  # the client asks base64
    for item, reference in zip(default.data, floats.data, strict=True):
        assert item.embedding == pytest.approx(reference.embedding, abs=1e-6)
    short = client.embeddings.create(model="smollm2", input="a cat", dimensions=64)
    assert len(short.data[0].embedding) == 64
    assert math.isclose(math.sqrt(sum(x * x for x in short.data[0].embedding)), 1.0, rel_tol=1e-3)


# ---- models ---------------------------------------------------------------------------------


def test_models_list_and_retrieve(client: openai.OpenAI, store_root: Path) -> None:
    cards = {m.id: m for m in client.models.list().data}
    assert {"tiny:latest", "smollm2:latest", "smollm2-tools:latest"} <= set(cards)
    manifest = store_root / "manifests/registry.ollama.ai/library/smollm2/latest"
    card = cards["smollm2:latest"]
    assert card.object == "model" and card.owned_by == "library"
    assert card.created == int(manifest.stat().st_mtime)
    one = client.models.retrieve("smollm2")
    assert one.id == "smollm2" and one.created == card.created and one.owned_by == "library"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("nope")
    body = missing.value.body
    assert isinstance(body, dict) and body["code"] == "model_not_found"
    assert body["type"] == "not_found_error" and "nope" in body["message"]


# ---- errors --------------------------------------------------------------------------------

CHAT = "/v1/chat/completions"
TINY_MESSAGES = [{"role": "user", "content": "hi"}]
PNG_URL = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n0000").decode()


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": TINY_MESSAGES, **fields}


BAD_REQUESTS: list[tuple[str, Any, int, str | None]] = [
    (CHAT, chat(messages="hi"), 400, "messages"),
    (CHAT, chat(messages=[]), 400, "messages"),
    (CHAT, chat(messages=[{"role": "robot", "content": "x"}]), 400, "messages[0].role"),
    (CHAT, chat(messages=[{"role": "user", "content": 5}]), 400, "messages[0].content"),
    (CHAT, chat(messages=[{"role": "user"}]), 400, "messages[0].content"),
    (CHAT, chat(temperature="hot"), 400, "temperature"),
    (CHAT, chat(temperature=3), 400, "temperature"),
    (
        CHAT,
        b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
        400,
        "temperature",
    ),
    (CHAT, chat(max_tokens=-1), 400, "max_tokens"),
    (CHAT, chat(stream="yes"), 400, "stream"),
    (CHAT, chat(seed=2**40), 400, "seed"),
    (CHAT, chat(n=2), 400, "n"),
    (CHAT, chat(bogus=1), 400, "bogus"),
    (CHAT, chat(response_format={"type": "xml"}), 400, "response_format"),
    (CHAT, chat(response_format={"type": "json_schema"}), 400, "response_format.json_schema"),
    (
        CHAT,
        chat(response_format={"type": "json_schema", "json_schema": {"schema": "x"}}),
        400,
        "response_format.json_schema.schema",
    ),
    (CHAT, chat(top_logprobs=2), 400, "top_logprobs"),
    (CHAT, chat(logit_bias={"50256": -100}), 400, "logit_bias"),
    (CHAT, chat(functions=[{"name": "f"}]), 400, "functions"),
    (CHAT, chat(tools=[{"type": "custom", "custom": {"name": "x"}}]), 400, "tools[0].type"),
    (CHAT, chat(tool_choice="required"), 400, "tool_choice"),
    (CHAT, chat(reasoning_effort="extreme"), 400, "reasoning_effort"),
    (
        CHAT,
        chat(
            messages=[
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{"},
                        }
                    ],
                }
            ]
        ),
        400,
        "messages[0].tool_calls[0].function.arguments",
    ),
    (
        CHAT,
        chat(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": PNG_URL}},
                    ],
                }
            ]
        ),
        400,
        "messages",
    ),
    (
        CHAT,
        chat(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ]
        ),
        400,
        "messages[0].content[0]",
    ),
    (CHAT, chat(model="nope"), 404, "model"),
    (CHAT, chat(model="../../etc/passwd"), 400, None),
    (CHAT, b'{"model": "tiny", "messages": ', 400, None),
    (CHAT, b"", 400, None),
    (CHAT, b"[1, 2]", 400, None),
    ("/v1/completions", {"model": "tiny", "prompt": ["a", "b"]}, 400, "prompt"),
    ("/v1/completions", {"model": "tiny", "prompt": [1, 2]}, 400, "prompt"),
    ("/v1/completions", {"model": "tiny", "prompt": "x", "best_of": 2}, 400, "best_of"),
    ("/v1/completions", {"model": "tiny", "prompt": "x", "echo": True, "logprobs": 1}, 400, "echo"),
    ("/v1/embeddings", {"model": "tiny", "input": [[1, 2]]}, 400, "input"),
    ("/v1/embeddings", {"model": "tiny", "input": ["a", ""]}, 400, "input[1]"),
    ("/v1/embeddings", {"model": "tiny", "input": "a", "encoding_format": "hex"}, 400, None),
    ("/v1/embeddings", {"model": "tiny", "input": "a", "dimensions": 100000}, 400, None),
]


@pytest.mark.parametrize(("path", "body", "status", "param"), BAD_REQUESTS)
def test_bad_input_is_a_4xx_in_openai_shape_then_service_goes_on(
    server: InferenceServer,
    client: openai.OpenAI,
    path: str,
    body: Any,
    status: int,
    param: str | None,
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = httpx.post(
        f"{server.url}{path}",
        content=content,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    error = assert_openai_error(r, status)
    if param is not None:
        assert error["param"] == param, error
    assert str(server.store_root) not in error["message"]
    tiny_answers(client)


def test_router_errors_are_in_openai_shape(server: InferenceServer, client: openai.OpenAI) -> None:
    assert_openai_error(httpx.get(f"{server.url}/v1/chat/completions", timeout=10), 405)
    assert_openai_error(httpx.post(f"{server.url}/v1/responses", json={}, timeout=10), 404)
    assert httpx.get(f"{server.url}/api/nothing", timeout=10).json() == {
        "error": "404 page not found"
    }  # Ollama's routes keep Ollama's shape
    tiny_answers(client)


def _raw_exchange(server: InferenceServer, head: bytes) -> bytes:
    host, port = server.live.host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_an_oversized_body_is_a_413_in_openai_shape(
    server: InferenceServer, client: openai.OpenAI
) -> None:
    answer = _raw_exchange(
        server,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    error = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
    assert error["type"] == "invalid_request_error" and "limit" in error["message"]
    tiny_answers(client)


def test_a_full_queue_is_a_503_with_retry_after(store_root: Path, tmp_path: Path) -> None:
    env = {"LLAMAHOST_NUM_PARALLEL": "1", "LLAMAHOST_MAX_QUEUE": "1"}
    with serving(store_root, tmp_path, **env) as live:
        with openai_client(live.url) as c:
            tiny_answers(c)  # loaded first
        body = chat(max_tokens=400, temperature=0)
        results: list[httpx.Response] = []
        lock = threading.Lock()

        def post() -> None:
            r = httpx.post(f"{live.url}{CHAT}", json=body, timeout=120)
            with lock:
                results.append(r)

        threads = [threading.Thread(target=post) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {200, 503} and 503 in statuses and 200 in statuses, statuses
    for r in results:
        if r.status_code == 503:
            error = assert_openai_error(r, 503)
            assert int(r.headers["retry-after"]) >= 1 and "busy" in error["message"]
        else:
            assert r.json()["object"] == "chat.completion"


def test_api_key_with_the_official_client(
    llamahost_server_factory: Any, llamahost_server: LiveServer
) -> None:
    keyed = llamahost_server_factory(env={"LLAMAHOST_API_KEY": "s3cret"})
    with openai_client(keyed.url, api_key="s3cret") as right:
        assert right.models.list().data == []
    with (
        openai_client(keyed.url, api_key="wrong") as wrong,
        pytest.raises(openai.AuthenticationError) as refused,
    ):
        wrong.models.list()
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "invalid_api_key"
    bare = httpx.get(f"{keyed.url}/v1/models", timeout=10)
    assert assert_openai_error(bare, 401)["code"] == "invalid_api_key"
    with openai_client(llamahost_server.url, api_key="anything") as unkeyed:
        assert unkeyed.models.list().data == []  # no key set: the client's is ignored
