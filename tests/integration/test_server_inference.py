"""The inference API end to end: a live server on loopback, real runners, the official client.

Models: the generated tiny model (random weights: shapes and plumbing), SmolLM2 (real
answers: greedy determinism alone and batched, chat, embeddings), a copy of the tiny model
whose blob is truncated (llama.cpp's load error), and a header-only model whose KV cache
would not fit in any machine (the memory estimate).
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
from server_inference_fixtures import InferenceServer, alive, serving

from llamahost.modelfile.create import create_model
from llamahost.store.model_store import ModelStore
from support.tiny_model import write_huge_context_model, write_tiny_model

pytestmark = pytest.mark.slow

GREEDY: dict[str, Any] = {"temperature": 0, "seed": 1, "num_predict": 24}
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"  # raw, SmolLM2 counts on for thousands of tokens
PROMPTS = [
    "The capital of France is",
    "List three colours:",
    "Water boils at",
    "One, two, three,",
    "The opposite of hot is",
    "A haiku about the sea:",
    "def fibonacci(n):",
    "The largest planet is",
]


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Path:
    """A store with `tiny`, `smollm2`, `broken` (a truncated blob) and `huge` (a KV cache
    no machine has room for)."""
    work = tmp_path_factory.mktemp("inference-store")
    store = ModelStore(work / "models")
    write_tiny_model(work / "tiny.gguf")
    create_model(store, "tiny", "FROM ./tiny.gguf\nPARAMETER num_ctx 512\n", base_dir=work)
    create_model(store, "smollm2", f"FROM {smollm2_path}\n", base_dir=work)
    write_tiny_model(work / "broken.gguf", seed=7)  # its own blob: truncating it spares tiny
    create_model(store, "broken", "FROM ./broken.gguf\n", base_dir=work)
    blob = store.resolve("broken").model_paths[0]
    os.truncate(blob, blob.stat().st_size - 4096)
    write_huge_context_model(work / "huge.gguf")
    create_model(store, "huge", "FROM ./huge.gguf\n", base_dir=work)
    return store.root


@pytest.fixture(scope="module")
def server(store_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InferenceServer]:
    """A server with 4 slots per runner."""
    workdir = tmp_path_factory.mktemp("inference-server")
    with serving(store_root, workdir, LLAMAHOST_NUM_PARALLEL="4") as live:
        yield live


@pytest.fixture
def client(server: InferenceServer) -> Iterator[ollama.Client]:
    yield server.client()
    server.close_clients()


# ---- generate, chat, embed -------------------------------------------------------------


def test_generate_streamed_equals_whole(client: ollama.Client) -> None:
    whole = client.generate(model="smollm2", prompt=PROMPTS[0], options=GREEDY, stream=False)
    chunks = list(client.generate(model="smollm2", prompt=PROMPTS[0], options=GREEDY, stream=True))
    assert whole.done and whole.done_reason in ("stop", "length")
    assert whole.model == "smollm2" and whole.created_at
    assert whole.eval_count and whole.total_duration and whole.load_duration is not None
    assert whole.response.strip()
    assert "".join(c.response or "" for c in chunks) == whole.response
    assert all(c.model == "smollm2" and c.created_at for c in chunks)
    assert chunks[-1].done and not any(c.done for c in chunks[:-1])
    assert chunks[-1].load_duration is not None and chunks[-1].eval_count == whole.eval_count
    assert whole.context  # generate's context, to pass back


def test_chat_streamed_equals_whole(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    whole = client.chat(model="smollm2", messages=messages, options=GREEDY)
    chunks = list(client.chat(model="smollm2", messages=messages, options=GREEDY, stream=True))
    assert whole.message.role == "assistant" and whole.message.content
    assert "".join(c.message.content or "" for c in chunks) == whole.message.content
    assert chunks[-1].done and chunks[-1].done_reason == whole.done_reason
    assert "paris" in whole.message.content.lower()


def test_embed_and_legacy_embeddings(client: ollama.Client) -> None:
    result = client.embed(model="smollm2", input=["a cat", "a dog", "a car"])
    assert result.model == "smollm2" and len(result.embeddings) == 3
    for vector in result.embeddings:
        assert len(vector) == 576
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-3)
    single = client.embed(model="smollm2", input="a cat")
    assert single.embeddings[0] == pytest.approx(result.embeddings[0], abs=1e-4)
    legacy = client.embeddings(model="smollm2", prompt="a cat")
    assert len(legacy.embedding) == 576
    assert client.embeddings(model="smollm2", prompt="").embedding == []
    assert client.embed(model="smollm2", input=[]).embeddings == []


def test_ps_shows_size_memory_context_and_expiry(server: InferenceServer) -> None:
    client = server.client()
    client.generate(model="tiny", prompt="hi", options={"num_predict": 2}, keep_alive="10m")
    rows = {m["name"]: m for m in httpx.get(f"{server.url}/api/ps").json()["models"]}
    row = rows["tiny:latest"]
    memory = row["memory"]
    assert set(memory) == {"weights", "kv", "compute"}
    assert row["size"] == sum(memory.values()) and memory["weights"] > 400_000
    assert row["context_length"] == 512 and row["parallel"] == 4
    assert row["state"] == "loaded" and row["size_vram"] >= 0
    expires = datetime.fromisoformat(row["expires_at"].replace("Z", "+00:00"))
    left = expires - datetime.now(timezone.utc)
    assert timedelta(minutes=9) < left <= timedelta(minutes=10)
    assert len(row["digest"]) == 64 and row["details"]["family"] == "llama"
    typed = {m.name: m for m in client.ps().models}  # the official client parses it
    assert typed["tiny:latest"].context_length == 512


def test_load_only_and_keep_alive_zero_unloads(server: InferenceServer) -> None:
    client = server.client()
    loaded = client.generate(model="tiny", prompt="", keep_alive=-1)
    assert loaded.done and loaded.done_reason == "load"
    row = next(m for m in client.ps().models if m.name == "tiny:latest")
    assert row.expires_at is not None and row.expires_at.year > 2200  # kept forever
    unloaded = client.generate(model="tiny", prompt="", keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert "tiny:latest" not in server.loaded()
    chat = client.chat(model="tiny", messages=[], keep_alive="1m")
    assert chat.done_reason == "load" and chat.message.content == ""
    # keep_alive 0 on a real request: the runner goes away once the answer is complete
    client.generate(model="tiny", prompt="x", options={"num_predict": 2}, keep_alive=0)
    assert server.wait_until(lambda: "tiny:latest" not in server.loaded(), 5)


def test_load_time_option_change_reloads(server: InferenceServer) -> None:
    client = server.client()
    client.generate(model="tiny", prompt="x", options={"num_predict": 2, "num_ctx": 256})
    first = server.runner_pids()
    assert server.loaded()["tiny:latest"]["context_length"] == 256
    client.generate(model="tiny", prompt="x", options={"num_predict": 2, "num_ctx": 384})
    rows = [
        m for m in httpx.get(f"{server.url}/api/ps").json()["models"] if m["name"] == "tiny:latest"
    ]
    assert len(rows) == 1 and rows[0]["context_length"] == 384
    assert set(server.runner_pids()) != set(first)
    # sampling options never reload
    pids = server.runner_pids()
    client.generate(
        model="tiny", prompt="x", options={"num_predict": 2, "num_ctx": 384, "top_k": 3}
    )
    assert server.runner_pids() == pids


def test_max_loaded_models_evicts_the_idle_one_and_waits_for_a_busy_one(
    store_root: Path, tmp_path: Path
) -> None:
    with serving(store_root, tmp_path, LLAMAHOST_MAX_LOADED_MODELS="1") as live:
        client = live.client()
        client.generate(model="tiny", prompt="x", options={"num_predict": 2})
        assert set(live.loaded()) == {"tiny:latest"}
        client.generate(model="smollm2", prompt="Hi", options={"num_predict": 2})
        assert set(live.loaded()) == {"smollm2:latest"}  # the idle tiny made room
        count = {"num_predict": 200, "temperature": 0}
        stream = client.generate(
            model="smollm2", prompt=COUNTING, raw=True, options=count, stream=True
        )
        next(stream)
        answers: list[Any] = []

        def ask_tiny() -> None:
            answers.append(
                live.client().generate(model="tiny", prompt="x", options={"num_predict": 2})
            )

        waiting = threading.Thread(target=ask_tiny)
        waiting.start()
        time.sleep(0.3)
        assert not answers and set(live.loaded()) == {"smollm2:latest"}  # busy: not evicted
        assert list(stream)[-1].done  # the stream ends normally
        waiting.join(120)
        assert answers and answers[0].done
        assert set(live.loaded()) == {"tiny:latest"}


# ---- concurrency, queue, disconnects, crashes ------------------------------------------


def test_sixteen_clients_with_four_slots_get_complete_identical_answers(
    server: InferenceServer,
) -> None:
    client = server.client()
    alone = {
        p: client.generate(model="smollm2", prompt=p, options=GREEDY).response for p in PROMPTS[:2]
    }

    def ask(i: int) -> tuple[str, ollama.GenerateResponse]:
        prompt = PROMPTS[i % len(PROMPTS)]
        return prompt, server.client().generate(model="smollm2", prompt=prompt, options=GREEDY)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(16)))
    for prompt, answer in answers:
        assert answer.done and answer.done_reason in ("stop", "length")
        assert answer.eval_count and answer.response
        if answer.done_reason == "length":
            assert answer.eval_count == GREEDY["num_predict"]
        if prompt in alone:
            assert answer.response == alone[prompt]  # batched with 3 others: the same text
    by_prompt: dict[str, set[str]] = {}
    for prompt, answer in answers:
        by_prompt.setdefault(prompt, set()).add(answer.response)
    assert all(len(texts) == 1 for texts in by_prompt.values())


def test_full_queue_answers_503_with_retry_after(store_root: Path, tmp_path: Path) -> None:
    env = {"LLAMAHOST_NUM_PARALLEL": "1", "LLAMAHOST_MAX_QUEUE": "2"}
    with serving(store_root, tmp_path, **env) as live:
        live.client().generate(model="smollm2", prompt="", keep_alive="5m")  # loaded first

        def post(i: int) -> tuple[int, str | None, dict[str, Any]]:
            body = {
                "model": "smollm2",
                "prompt": PROMPTS[i % len(PROMPTS)],
                "stream": False,
                "options": {"num_predict": 48, "temperature": 0},
            }
            r = httpx.post(f"{live.url}/api/generate", json=body, timeout=600)
            return r.status_code, r.headers.get("retry-after"), r.json()

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(post, range(8)))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200] * 3 + [503] * 5
    for status, retry_after, body in results:
        if status == 503:
            assert retry_after and int(retry_after) >= 1
            assert "busy" in body["error"]
        else:
            assert body["done"] and body["eval_count"]


def test_disconnect_mid_stream_frees_the_slot(store_root: Path, tmp_path: Path) -> None:
    with serving(store_root, tmp_path, LLAMAHOST_NUM_PARALLEL="1") as live:
        body = {
            "model": "smollm2",
            "prompt": COUNTING,
            "raw": True,
            "options": {"num_predict": 100_000, "temperature": 0},
        }
        with httpx.stream("POST", f"{live.url}/api/generate", json=body, timeout=60) as r:
            assert r.status_code == 200
            for i, _ in enumerate(r.iter_lines()):
                if i == 3:
                    break
        # The only slot is free again: a short request completes at once.
        started = time.monotonic()
        answer = live.client().generate(model="smollm2", prompt="Hi", options={"num_predict": 4})
        assert answer.done and time.monotonic() - started < 20
        assert live.wait_until(lambda: live.loaded()["smollm2:latest"]["busy"] == 0, 5)

        # A non-streamed request, and one waiting in the queue behind it, whose clients
        # give up: both leave (busy drops to 0), so the slot serves the next one.
        def give_up(timeout_s: float) -> None:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(
                    f"{live.url}/api/generate", json={**body, "stream": False}, timeout=timeout_s
                )

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            first = pool.submit(give_up, 3.0)
            time.sleep(0.5)
            queued = pool.submit(give_up, 1.0)
            assert live.wait_until(lambda: live.loaded()["smollm2:latest"]["busy"] == 2, 1)
            queued.result()
            assert live.wait_until(lambda: live.loaded()["smollm2:latest"]["busy"] == 1, 2)
            first.result()
        assert live.wait_until(lambda: live.loaded()["smollm2:latest"]["busy"] == 0, 2)
        answer = live.client().generate(model="smollm2", prompt="Hi", options={"num_predict": 4})
        assert answer.done


def test_runner_killed_mid_stream_errors_fast_and_next_request_reloads(
    server: InferenceServer,
) -> None:
    client = server.client()
    client.generate(model="tiny", prompt="", keep_alive="5m")
    stream = client.generate(
        model="smollm2", prompt=COUNTING, raw=True, options={"num_predict": 100_000}, stream=True
    )
    next(stream)
    victim = server.runner_pid("smollm2")
    assert victim is not None and server.runner_pid("tiny") not in (None, victim)
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(ollama.ResponseError) as failure:
        for _ in stream:
            pass
    assert time.monotonic() - killed_at < 2.0
    assert "stopped unexpectedly" in str(failure.value) and "SIGKILL" in str(failure.value)
    assert server.wait_until(lambda: "smollm2:latest" not in server.loaded(), 2)
    assert "tiny:latest" in server.loaded()  # the other runner is untouched
    again = client.generate(model="smollm2", prompt=PROMPTS[0], options=GREEDY)
    assert again.done and again.response


def busy_loaded(server: InferenceServer, name: str) -> bool:
    """Whether `name` is loaded and serving a request."""
    row = server.loaded().get(name, {})
    return row.get("state") == "loaded" and bool(row["busy"])


def test_runner_killed_under_a_whole_answer_is_a_500_logged_once(
    server: InferenceServer,
) -> None:
    def deaths() -> int:
        return server.log().count("stopped unexpectedly")

    before = deaths()
    body = {
        "model": "smollm2",
        "prompt": COUNTING,
        "raw": True,
        "stream": False,
        "options": {"num_predict": 100_000, "temperature": 0},
    }
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(httpx.post, f"{server.url}/api/generate", json=body, timeout=60)
        assert server.wait_until(lambda: busy_loaded(server, "smollm2:latest"), 60)
        time.sleep(0.5)  # generating
        victim = server.runner_pid("smollm2")
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        failed = answer.result()
    assert failed.status_code == 500, failed.text
    assert "stopped unexpectedly" in failed.json()["error"]
    assert server.wait_until(lambda: deaths() > before, 5)
    time.sleep(0.5)
    assert deaths() == before + 1  # the scheduler's line; the request does not repeat it


def test_truncated_gguf_is_a_500_with_llama_cpp_reason(server: InferenceServer) -> None:
    r = httpx.post(
        f"{server.url}/api/generate", json={"model": "broken", "prompt": "x"}, timeout=60
    )
    assert r.status_code == 500
    error = r.json()["error"]
    assert "not within the file bounds" in error
    assert str(server.store_root) not in error
    assert "broken:latest" not in server.loaded()
    answer = server.client().generate(model="tiny", prompt="x", options={"num_predict": 2})
    assert answer.done


def test_model_too_large_for_memory_names_the_numbers(server: InferenceServer) -> None:
    r = httpx.post(
        f"{server.url}/api/generate",
        json={"model": "huge", "prompt": "x", "options": {"num_ctx": 1 << 24}},
        timeout=60,
    )
    assert r.status_code == 500
    error = r.json()["error"]
    assert "needs" in error and "KV cache" in error and "available" in error and "TiB" in error
    assert server.client().generate(model="tiny", prompt="x", options={"num_predict": 2}).done


def test_ps_answers_while_loading_and_while_a_long_prompt_decodes(
    store_root: Path, tmp_path: Path
) -> None:
    with serving(store_root, tmp_path, LLAMAHOST_NUM_PARALLEL="1") as live:
        long_prompt = " ".join(["The quick brown fox jumps over the lazy dog."] * 300)
        body = {
            "model": "smollm2",
            "prompt": long_prompt,
            "stream": False,
            "options": {"num_predict": 1, "num_ctx": 8192},
        }
        done = threading.Event()

        def generate() -> None:
            httpx.post(f"{live.url}/api/generate", json=body, timeout=300)
            done.set()

        worker = threading.Thread(target=generate)
        worker.start()
        worst, seen_states = 0.0, set()
        while not done.is_set():
            started = time.monotonic()
            rows = httpx.get(f"{live.url}/api/ps", timeout=5).json()["models"]
            worst = max(worst, time.monotonic() - started)
            seen_states.update(row["state"] for row in rows)
            time.sleep(0.02)
        worker.join()
        assert worst < 0.5
        assert "loaded" in seen_states


# ---- bad input -------------------------------------------------------------------------

G = "/api/generate"


def gen(**fields: Any) -> dict[str, Any]:
    """A generate body for the tiny model with `fields` (``options`` if given)."""
    return {"model": "tiny", "prompt": "x", **fields}


BAD_REQUESTS: list[tuple[str, Any, int, str]] = [
    ("/api/generate", {"model": "tiny", "prompt": 5}, 400, "prompt"),
    (G, gen(options={"top_p": 1.5}), 400, "`top_p` must be in [0, 1], got 1.5"),
    (G, gen(options={"num_predict": -5}), 400, "num_predict"),
    (G, gen(options={"num_predict": 1 << 40}), 400, "num_predict"),
    (G, gen(options={"top_k": -1}), 400, "top_k"),
    (G, gen(options={"top_k": 1e30}), 400, "top_k"),
    (G, gen(options={"num_ctx": -1}), 400, "num_ctx"),
    (G, gen(options={"num_ctx": 1 << 40}), 400, "num_ctx"),
    (G, gen(options={"seed": -2}), 400, "seed"),
    (G, gen(options={"seed": 1 << 40}), 400, "seed"),
    (G, gen(options={"temperature": "hot"}), 400, "temperature"),
    (
        "/api/generate",
        b'{"model": "tiny", "prompt": "x", "options": {"temperature": NaN}}',
        400,
        "temperature",
    ),
    (G, gen(options={"num_gpu_layers": 1}), 400, "num_gpu_layers"),
    (G, gen(options="fast"), 400, "options"),
    (G, gen(bogus=1), 400, "bogus"),
    (G, gen(keep_alive="soon"), 400, "keep_alive"),
    (G, gen(format="xml"), 400, "format"),
    (G, gen(images=["aGk="]), 400, "images"),
    ("/api/generate", {"model": "", "prompt": "x"}, 400, "model is required"),
    ("/api/generate", {"model": "../../etc/passwd", "prompt": "x"}, 400, "model name"),
    (
        "/api/generate",
        {"model": "nope", "prompt": "x"},
        404,
        'model "nope" not found, try pulling it first',
    ),
    ("/api/generate", b'{"model": "tiny", "prompt": ', 400, "invalid JSON"),
    ("/api/generate", b"", 400, "missing request body"),
    ("/api/chat", {"model": "tiny", "messages": "hi"}, 400, "messages"),
    ("/api/chat", {"model": "tiny", "messages": [{"content": "hi"}]}, 400, "role"),
    (
        "/api/chat",
        {"model": "tiny", "messages": [{"role": "user", "images": ["aGk="]}]},
        400,
        "images",
    ),
    ("/api/embed", {"model": "tiny", "input": 5}, 400, "input"),
    ("/api/embed", {"model": "tiny", "input": "x", "options": {"num_batch": 0}}, 400, "num_batch"),
    ("/api/embeddings", {"model": "tiny", "prompt": ["x"]}, 400, "prompt"),
    (G, gen(_debug_render_only=True), 400, "_debug_render_only"),
    (G, gen(width=512), 400, "image generation is not supported"),
    (
        "/api/chat",
        {"model": "tiny", "messages": [], "_debug_render_only": True},
        400,
        "_debug_render_only",
    ),
]


@pytest.mark.parametrize(("path", "body", "status", "needle"), BAD_REQUESTS)
def test_bad_input_is_a_clear_4xx_then_service_goes_on(
    server: InferenceServer, path: str, body: Any, status: int, needle: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = httpx.post(
        f"{server.url}{path}", content=content, headers={"content-type": "application/json"}
    )
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert needle in error
    assert str(server.store_root) not in error
    answer = server.client().generate(model="tiny", prompt="x", options={"num_predict": 2})
    assert answer.done


# ---- the server process ----------------------------------------------------------------


def test_server_process_never_loads_llama_cpp(server: InferenceServer) -> None:
    client = server.client()
    client.generate(model="tiny", prompt="x", options={"num_predict": 2})
    client.embed(model="tiny", input="x")
    client.ps()
    maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
    assert "_native" not in maps and "libllama" not in maps and "libggml" not in maps
    runner = server.runner_pids()[0]
    assert "libllama" in Path(f"/proc/{runner}/maps").read_text()  # the runners do


def test_sigterm_ends_streams_with_an_error_and_leaves_no_runner(
    store_root: Path, tmp_path: Path
) -> None:
    with serving(store_root, tmp_path, LLAMAHOST_NUM_PARALLEL="2") as live:
        client = live.client()
        stream = client.generate(
            model="smollm2",
            prompt=COUNTING,
            raw=True,
            options={"num_predict": 100_000},
            stream=True,
        )
        next(stream)
        runners = live.runner_pids()
        assert runners
        live.proc.send_signal(signal.SIGTERM)
        with pytest.raises(ollama.ResponseError, match="shutting down"):
            for _ in stream:
                pass
        assert live.proc.wait(timeout=15) is not None
    assert not any(alive(pid) for pid in runners)


def test_runners_exit_when_the_server_is_killed(store_root: Path, tmp_path: Path) -> None:
    with serving(store_root, tmp_path) as live:
        live.client().generate(model="tiny", prompt="x", options={"num_predict": 2})
        runners = live.runner_pids()
        assert runners
        live.proc.kill()  # no cleanup possible: the runners must notice by themselves
        live.proc.wait()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in runners):
            assert time.monotonic() < deadline, "a runner outlived its server"
            time.sleep(0.05)
