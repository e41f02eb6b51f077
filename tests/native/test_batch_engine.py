"""The runner's BatchEngine on the tiny model: same answers as alone, slots, prefixes, cancel."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from llamahost.engine.model import Model, load_native
from llamahost.engine.options import Options
from llamahost.errors import AbortedError, OptionError
from llamahost.runner.batch_engine import MIN_SHARED_PREFIX, BatchEngine

NO_EOS = {2: float("-inf")}
GREEDY = {"temperature": 0, "num_predict": 24, "logit_bias": NO_EOS}


@pytest.fixture(scope="module")
def options() -> Options:
    return Options.from_mapping({"num_ctx": 512, "num_batch": 64, "num_thread": 1})


@pytest.fixture(scope="module")
def pair(tiny_model_path: Path, options: Options):
    native = load_native([str(tiny_model_path)], options.model_params)
    engine = BatchEngine(native, options.context_params, parallel=3)
    yield Model(native, options), Model(native, options, executor=engine), engine
    engine.close()


def test_batched_answers_equal_answers_alone(pair) -> None:
    alone, batched, _ = pair
    prompts = [f"prompt number {i} " * (i + 1) for i in range(7)]  # more than the 3 slots
    expected = {p: alone.generate(p, **GREEDY) for p in prompts}
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def work(prompt: str) -> None:
        try:
            results[prompt] = batched.generate(prompt, **GREEDY)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and results == expected


def test_stream_chunks_and_metrics_match_the_session_path(pair) -> None:
    alone, batched, _ = pair
    a = alone.generate_response("metrics", stop=["zz"], **GREEDY)
    b = batched.generate_response("metrics", stop=["zz"], **GREEDY)
    assert (a.text, a.tokens, a.done_reason, a.context) == (
        b.text,
        b.tokens,
        b.done_reason,
        b.context,
    )
    assert b.metrics.eval_count == len(b.tokens) and b.metrics.prompt_eval_count > 0
    streamed = list(batched.generate("metrics", stream=True, stop=["zz"], **GREEDY))
    assert "".join(c.text for c in streamed) == b.text and streamed[-1].done


def test_a_repeated_prompt_reuses_the_slot_cache(pair) -> None:
    _, batched, _ = pair
    prompt = "the same long prompt " * 10
    batched.generate(prompt, **GREEDY)
    again = batched.generate_response(prompt, **GREEDY)
    assert again.metrics.prompt_cached_count == again.metrics.prompt_eval_count - 1


def test_a_prefix_held_by_another_slot_is_copied_not_recomputed(pair) -> None:
    alone, batched, engine = pair
    shared = "x" * (MIN_SHARED_PREFIX + 40)
    hold = batched.generate(
        shared + " first", stream=True, temperature=0, num_predict=200, logit_bias=NO_EOS
    )
    next(hold)  # slot A holds the shared prefix and keeps generating
    busy = [s for s in engine.slots() if s["is_processing"]]
    assert len(busy) == 1
    # Fill the other free slots with unrelated prompts first, so the prefix is not local.
    for i in range(2):
        batched.generate(f"unrelated {i}", **GREEDY)
    second = batched.generate_response(shared + " second", **GREEDY)
    assert second.metrics.prompt_cached_count >= MIN_SHARED_PREFIX
    assert second.text == alone.generate(shared + " second", **GREEDY)
    hold.close()


def test_closing_a_stream_frees_its_slot_at_the_next_step(pair) -> None:
    _, batched, engine = pair
    streams = [
        batched.generate(
            f"long {i}", stream=True, temperature=0, num_predict=10_000, logit_bias=NO_EOS
        )
        for i in range(3)
    ]
    for s in streams:
        next(s)
    assert all(s["is_processing"] for s in engine.slots())
    for s in streams:
        s.close()
    assert batched.generate("after", **GREEDY)  # would wait forever if a slot stayed taken
    assert not any(s["is_processing"] for s in engine.slots())


def test_cancel_event_ends_a_request_aborted(pair) -> None:
    _, batched, _ = pair
    cancel = threading.Event()
    stream = batched.generate(
        "cancel me",
        stream=True,
        temperature=0,
        num_predict=10_000,
        logit_bias=NO_EOS,
        cancel=cancel,
    )
    next(stream)
    cancel.set()
    with pytest.raises(AbortedError, match="aborted"):
        for _ in stream:
            pass
    assert batched.generate("still serving", **GREEDY)


def test_context_options_must_match_the_engine(pair) -> None:
    _, batched, _ = pair
    with pytest.raises(OptionError, match="context was made with other options"):
        batched.generate("x", num_ctx=256, **GREEDY)
    assert batched.generate("x", **GREEDY)


def test_each_slot_shifts_its_own_context(tiny_model_path: Path) -> None:
    options = Options.from_mapping({"num_ctx": 128, "num_batch": 32, "num_thread": 1})
    native = load_native([str(tiny_model_path)], options.model_params)
    engine = BatchEngine(native, options.context_params, parallel=2)
    try:
        model = Model(native, options, executor=engine)
        long = model.generate_response("shift", temperature=0, num_predict=300, logit_bias=NO_EOS)
        assert long.metrics.eval_count == 300 and long.done_reason == "length"
        limited = model.generate_response(
            "shift", temperature=0, num_predict=300, logit_bias=NO_EOS, shift=False
        )
        assert limited.done_reason == "length" and limited.metrics.eval_count < 128
    finally:
        engine.close()


def test_logprobs_from_the_batch_engine_equal_the_sessions(pair) -> None:
    alone, batched, _ = pair
    a = alone.generate_response("lp", logprobs=True, top_logprobs=2, **GREEDY)
    b = batched.generate_response("lp", logprobs=True, top_logprobs=2, **GREEDY)
    assert [e.logprob for e in a.logprobs] == pytest.approx([e.logprob for e in b.logprobs])
    assert [e.token for e in a.logprobs] == [e.token for e in b.logprobs]
