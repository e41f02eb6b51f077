"""`llamahost runner` as a process: flags, health, auth, Ollama and llama-server endpoints,
cancellation by disconnect, a bad model file, and dying with its parent's pipe."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import ollama
import pytest

LOAD_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Runner:
    process: subprocess.Popen[bytes]
    client: httpx.Client
    url: str
    address: str | tuple[str, int]

    def listening(self) -> bool:
        """Whether the runner accepts connections (checked with a plain socket: a refused
        httpx connection leaks a socket warning)."""
        family = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET
        with socket.socket(family) as probe:
            try:
                probe.connect(self.address)
            except OSError:
                return False
        return True

    def wait_listening(self) -> None:
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while not self.listening():
            assert self.process.poll() is None, "the runner exited"
            assert time.monotonic() < deadline, "the runner never listened"
            time.sleep(0.02)

    def wait_ready(self) -> None:
        self.wait_listening()
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while self.client.get("/health").status_code != 200:
            assert self.process.poll() is None, "the runner exited"
            assert time.monotonic() < deadline, "the runner did not load in time"
            time.sleep(0.05)


def start_runner(
    model: Path, *extra: str, secret: str | None = None, sock: Path | None = None
) -> Runner:
    env = {**os.environ}
    env.pop("LLAMAHOST_RUNNER_SECRET", None)
    if secret:
        env["LLAMAHOST_RUNNER_SECRET"] = secret
    address: str | tuple[str, int]
    if sock is not None:
        where = ["--socket", str(sock)]
        transport = httpx.HTTPTransport(uds=str(sock))
        url, address = "http://runner", str(sock)
    else:
        port = free_port()
        where = ["-port", str(port)]  # one dash works too
        transport = httpx.HTTPTransport()
        url, address = f"http://127.0.0.1:{port}", ("127.0.0.1", port)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llamahost.runner",
            "--model",
            str(model),
            *where,
            "--watch-stdin",
            *extra,
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    client = httpx.Client(base_url=url, transport=transport, headers=headers, timeout=60)
    return Runner(process, client, url, address)


def stop(runner: Runner) -> None:
    runner.client.close()
    if runner.process.poll() is None:
        runner.process.kill()
    runner.process.wait(10)
    for pipe in (runner.process.stdin, runner.process.stderr):
        if pipe is not None:
            pipe.close()


@pytest.fixture(scope="module")
def runner(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    folder = tmp_path_factory.mktemp("runner")
    folder.chmod(0o700)
    secret = secrets.token_urlsafe(16)
    started = start_runner(
        smollm2_path, "--parallel", "2", "-c", "1024", secret=secret, sock=folder / "r.sock"
    )
    started.wait_ready()
    yield started
    stop(started)


def test_help_lists_every_flag_with_its_default() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llamahost", "runner", "-h"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for flag in (
        "--model",
        "--ctx-size",
        "--batch-size",
        "--n-gpu-layers",
        "--parallel",
        "--threads",
        "--flash-attn",
        "--kv-cache-type",
        "--lora",
        "--mlock",
        "--no-mmap",
        "--main-gpu",
        "--tensor-split",
        "--port",
        "--socket",
        "--verbose",
    ):
        assert flag in result.stdout
    assert "(default: 4096)" in result.stdout


def test_socket_is_private_and_requests_need_the_secret(runner: Runner, tmp_path: Path) -> None:
    assert isinstance(runner.address, str)
    sock = Path(runner.address)
    assert (sock.stat().st_mode & 0o777) == 0o600
    anonymous = httpx.Client(base_url=runner.url, transport=httpx.HTTPTransport(uds=str(sock)))
    assert anonymous.get("/health").status_code == 401
    wrong = anonymous.get("/health", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    anonymous.close()
    assert runner.client.get("/health").json() == {"status": "ok"}


def test_info_reports_memory_and_slots(runner: Runner) -> None:
    info = runner.client.get("/info").json()
    assert info["n_ctx"] == 1024 and info["parallel"] == 2
    memory = info["memory"]
    assert memory["weights"] > 50 << 20 and memory["kv"] > 0 and memory["compute"] > 0
    assert info["capabilities"] == ["completion"]
    slots = runner.client.get("/slots").json()
    assert [s["id"] for s in slots] == [0, 1] and all(s["n_ctx"] == 1024 for s in slots)


def test_ollama_chat_and_generate_stream_and_not(runner: Runner) -> None:
    body = {
        "messages": [{"role": "user", "content": "Hi"}],
        "options": {"temperature": 0, "num_predict": 12},
    }
    whole = runner.client.post("/api/chat", json={**body, "stream": False}).json()
    assert whole["done"] and whole["done_reason"] in ("stop", "length")
    assert whole["eval_count"] > 0 and whole["message"]["role"] == "assistant"
    with runner.client.stream("POST", "/api/chat", json=body) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert "".join(x["message"]["content"] for x in lines) == whole["message"]["content"]
    assert lines[-1]["done"] and not any(x["done"] for x in lines[:-1])
    gen = runner.client.post(
        "/api/generate",
        json={
            "prompt": "1, 2, 3,",
            "raw": True,
            "stream": False,
            "options": {"temperature": 0, "num_predict": 6},
        },
    ).json()
    assert gen["response"] and gen["context"][: len(gen["context"]) - gen["eval_count"]]
    loaded = runner.client.post("/api/generate", json={"prompt": "", "stream": False}).json()
    assert loaded["done_reason"] == "load"


def test_bad_requests_are_400_and_the_next_one_works(runner: Runner) -> None:
    bad = [
        b"{not json",
        b"[1, 2]",
        json.dumps({"messages": "hi"}).encode(),
        json.dumps({"messages": [], "options": {"top_p": 1.5}}).encode(),
        json.dumps({"messages": [], "options": {"num_ctx": 64}}).encode(),
        json.dumps({"messages": [{"role": "wizard", "content": "x"}]}).encode(),
        json.dumps({"messages": [{"role": "user", "content": "x", "images": ["aGk="]}]}).encode(),
        json.dumps({"messages": [], "options": {"num_gpu": 0}}).encode(),
    ]
    for body in bad:
        response = runner.client.post("/api/chat", content=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]
    ok = runner.client.post(
        "/api/chat",
        json={
            "messages": [{"role": "user", "content": "ok"}],
            "stream": False,
            "options": {"num_predict": 2},
        },
    )
    assert ok.status_code == 200 and ok.json()["done"]


def test_llama_server_completion_sse_and_tokens(runner: Runner) -> None:
    body = {"prompt": "Once upon a time", "n_predict": 8, "temperature": 0}
    whole = runner.client.post("/completion", json=body).json()
    assert whole["stop"] and whole["tokens_predicted"] == 8 and whole["stop_type"] == "limit"
    assert set(whole["timings"]) >= {
        "prompt_n",
        "prompt_ms",
        "predicted_n",
        "predicted_ms",
        "predicted_per_second",
    }
    with runner.client.stream("POST", "/completion", json={**body, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")
        ]
    assert "".join(e["content"] for e in events) == whole["content"]
    assert events[-1]["stop"] and events[-1]["timings"]["predicted_n"] == 8
    probs = runner.client.post("/completion", json={**body, "n_probs": 3}).json()
    assert len(probs["completion_probabilities"]) == 8
    assert len(probs["completion_probabilities"][0]["probs"]) == 3
    tokens = runner.client.post("/tokenize", json={"content": "hello world"}).json()["tokens"]
    text = runner.client.post("/detokenize", json={"tokens": tokens}).json()["content"]
    assert text == "hello world"
    by_ids = runner.client.post(
        "/completion", json={"prompt": tokens, "n_predict": 4, "temperature": 0}
    ).json()
    assert by_ids["tokens_evaluated"] == len(tokens)
    embedded = runner.client.post("/embedding", json={"content": ["a", "b"]}).json()
    assert [e["index"] for e in embedded] == [0, 1] and len(embedded[0]["embedding"][0]) == 576


def test_a_disconnect_mid_stream_frees_the_slot(runner: Runner) -> None:
    body = {
        "messages": [{"role": "user", "content": "Count to a thousand."}],
        "options": {"num_predict": 100000, "temperature": 0},
    }
    with runner.client.stream("POST", "/api/chat", json=body) as response:
        lines = response.iter_lines()
        next(lines)
        next(lines)
        assert any(s["is_processing"] for s in runner.client.get("/slots").json())
    # The connection is closed: the slot must be free within a decode step or so.
    deadline = time.monotonic() + 5
    while any(s["is_processing"] for s in runner.client.get("/slots").json()):
        assert time.monotonic() < deadline, "the slot stayed busy after the client left"
        time.sleep(0.02)


def test_health_answers_while_a_long_prompt_decodes(runner: Runner) -> None:
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 90  # ~900 tokens
    done = threading.Event()

    def decode() -> None:
        runner.client.post(
            "/api/generate",
            json={
                "prompt": long_prompt,
                "raw": True,
                "stream": False,
                "options": {"num_predict": 1},
            },
        )
        done.set()

    thread = threading.Thread(target=decode)
    thread.start()
    latencies = []
    while not done.is_set():
        t0 = time.perf_counter()
        assert runner.client.get("/health").status_code == 200
        latencies.append(time.perf_counter() - t0)
        time.sleep(0.05)
    thread.join()
    # Measured, not a benchmark: a blocked event loop would take the whole prefill (seconds).
    assert latencies and max(latencies) < 1.0, latencies


def test_official_ollama_client_talks_to_a_runner_on_a_port(smollm2_path: Path) -> None:
    started = start_runner(smollm2_path, "--ctx-size", "512")
    try:
        started.wait_ready()
        with ollama.Client(host=started.url) as client:
            answer = client.chat(
                model="any",
                messages=[{"role": "user", "content": "Hi"}],
                options={"num_predict": 4},
            )
            assert answer.done and answer.eval_count
            assert len(client.embed(model="any", input="x").embeddings[0]) == 576
    finally:
        stop(started)


def test_a_truncated_model_fails_health_with_llamas_reason(
    smollm2_path: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.gguf"
    with smollm2_path.open("rb") as src:
        broken.write_bytes(src.read(smollm2_path.stat().st_size // 2))
    started = start_runner(broken)
    try:
        started.wait_listening()
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while (health := started.client.get("/health")).status_code != 500:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert health.json()["status"] == "error"
        assert "data is not within the file bounds" in health.json()["error"]
        assert started.process.wait(30) == 1
    finally:
        stop(started)


def test_the_runner_exits_when_its_stdin_closes(runner: Runner, smollm2_path: Path) -> None:
    started = start_runner(smollm2_path, "--ctx-size", "256")
    try:
        started.wait_ready()
        assert started.process.stdin is not None
        started.process.stdin.close()
        assert started.process.wait(10) == 0
    finally:
        stop(started)
