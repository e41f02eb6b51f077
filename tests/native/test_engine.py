"""The Python engine (Model, Session) on the generated tiny model: behaviour, not quality."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

import llamahost
from llamahost.engine.session_pool import SessionPool
from llamahost.errors import (
    AbortedError,
    ContextOverflowError,
    OptionError,
    TemplateSecurityError,
)

NO_EOS = {2: float("-inf")}  # random weights: keep generating to the token limit
GREEDY = {"temperature": 0, "num_predict": 24, "logit_bias": NO_EOS}


@pytest.fixture(scope="module")
def model(tiny_model_path: Path) -> llamahost.Model:
    return llamahost.load(tiny_model_path, num_ctx=512, num_batch=64, num_thread=1)


def test_generate_returns_text_and_is_deterministic_when_greedy(model: llamahost.Model) -> None:
    first = model.generate("hello", **GREEDY)
    assert isinstance(first, str) and first
    assert model.generate("hello", **GREEDY) == first


def test_stream_equals_non_stream(model: llamahost.Model) -> None:
    whole = model.generate_response("stream me", **GREEDY)
    chunks = list(model.generate("stream me", stream=True, **GREEDY))
    assert "".join(c.text for c in chunks) == whole.text
    assert [t for c in chunks for t in c.tokens] == whole.tokens
    assert chunks[-1].done and not any(c.done for c in chunks[:-1])
    assert chunks[-1].done_reason == whole.done_reason == "length"
    assert whole.metrics.eval_count == len(whole.tokens) == 24


def test_seeded_sampling_is_reproducible(model: llamahost.Model) -> None:
    opts = {"temperature": 1.0, "seed": 42, "num_predict": 24, "logit_bias": NO_EOS}
    a = model.generate("seed", **opts)
    assert model.generate("seed", **opts) == a
    assert model.generate("seed", **{**opts, "seed": 43}) != a


def test_stop_string_ends_output_before_it(model: llamahost.Model) -> None:
    full = model.generate_response("stop test", **GREEDY)
    text = full.text
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    cut = text.index(stop)
    assert stop.strip()
    res = model.generate_response("stop test", stop=[stop], **GREEDY)
    assert res.text == text[:cut]
    assert res.done_reason == "stop"
    streamed = "".join(
        c.text for c in model.generate("stop test", stream=True, stop=[stop], **GREEDY)
    )
    assert streamed == res.text


def test_prefix_cache_decodes_only_the_new_suffix(model: llamahost.Model) -> None:
    session = model.session()
    req = llamahost.GenerationRequest(options=model.options.merged(temperature=0, num_predict=4))
    a = model.tokenize("The first part of a prompt that stays the same. ")
    b = a + model.tokenize("Then a new question?", add_special=False)
    first = list(session.generate(a, req))[-1].metrics
    assert first.prompt_cached_count == 0
    second = list(session.generate(b, req))[-1].metrics
    assert second.prompt_eval_count == len(b)
    assert second.prompt_cached_count == len(a)  # only len(b) - len(a) tokens were decoded

    fresh = model.session()
    expected = [t for c in fresh.generate(b, req) for t in c.tokens]
    session.reset()
    cached_twice = list(session.generate(b, req))
    again = list(session.generate(b, req))
    assert again[-1].metrics.prompt_cached_count == len(b) - 1  # the last token is redone
    assert [t for c in cached_twice for t in c.tokens] == expected
    assert [t for c in again for t in c.tokens] == expected


def test_model_generate_reuses_its_session_cache(model: llamahost.Model) -> None:
    prompt = "cache me " * 10
    model.generate_response(prompt, **GREEDY)
    res = model.generate_response(prompt + "and more", **GREEDY)
    assert res.metrics.prompt_cached_count > 10


def test_context_overflow_truncates_or_raises(model: llamahost.Model) -> None:
    long_prompt = "x" * 2000  # 2000 byte tokens > num_ctx 512
    res = model.generate_response(long_prompt, **GREEDY)
    assert res.metrics.prompt_eval_count < 512
    assert res.metrics.eval_count == 24
    n = len(model.tokenize(long_prompt))
    with pytest.raises(ContextOverflowError, match=f"{n} tokens but the context holds 512") as e:
        model.generate(long_prompt, truncate=False, **GREEDY)
    assert (e.value.n_prompt, e.value.n_ctx) == (n, 512)
    assert model.generate("after overflow", **GREEDY)  # still works


def test_fill_context_and_shift(model: llamahost.Model) -> None:
    res = model.generate_response("fill", temperature=0, num_predict=-2, logit_bias=NO_EOS)
    assert res.done_reason == "length"
    assert res.metrics.prompt_eval_count + res.metrics.eval_count == 512
    shifted = model.generate_response("shift", temperature=0, num_predict=700, logit_bias=NO_EOS)
    assert shifted.metrics.eval_count == 700  # longer than the context: it shifted
    no_shift = model.generate_response(
        "shift", temperature=0, num_predict=700, logit_bias=NO_EOS, shift=False
    )
    assert no_shift.done_reason == "length" and no_shift.metrics.eval_count < 512


def test_closing_a_stream_midway_leaves_the_model_usable(model: llamahost.Model) -> None:
    expected = model.generate("cancel", **GREEDY)
    other = model.generate("while open", **GREEDY)
    stream = model.generate("cancel", stream=True, **GREEDY)
    taken = [next(stream) for _ in range(3)]
    assert all(not c.done for c in taken)
    # The open stream owns its session; this thread can still generate meanwhile.
    assert model.generate("while open", **GREEDY) == other
    stream.close()
    assert model.generate("cancel", **GREEDY) == expected


def test_two_threads_stream_side_by_side(model: llamahost.Model) -> None:
    prompts = ["left stream", "right stream"]
    expected = {p: model.generate(p, **GREEDY) for p in prompts}
    # Each thread takes one chunk, then waits until the other has taken one too: with a
    # model-wide lock held by an open stream this would never get past the barrier.
    barrier = threading.Barrier(2, timeout=30)
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def work(prompt: str) -> None:
        try:
            stream = model.generate(prompt, stream=True, **GREEDY)
            pieces = [next(stream).text]
            barrier.wait()
            pieces.extend(c.text for c in stream)
            results[prompt] = "".join(pieces)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert results == expected


def test_abandoned_stream_frees_its_session(model: llamahost.Model) -> None:
    pool = model._executor
    assert isinstance(pool, SessionPool)
    stream = model.generate("abandon", stream=True, **GREEDY)
    next(stream)
    assert pool.busy_count == 1
    del stream  # never closed: garbage collection ends the lease
    assert pool.busy_count == 0 and pool.idle_count >= 1


def test_model_options_per_request_are_refused_not_ignored(model: llamahost.Model) -> None:
    with pytest.raises(OptionError, match=r"`num_gpu` is fixed when the model loads") as err:
        model.generate("x", num_gpu=0, **GREEDY)
    assert err.value.option == "num_gpu"
    with pytest.raises(OptionError, match="`use_mmap` is fixed"):
        list(model.chat([{"role": "user", "content": "x"}], stream=True, use_mmap=False))
    # The value the model was loaded with is fine to repeat.
    assert model.generate("x", num_gpu=model.options.num_gpu, **GREEDY)


def test_context_options_per_request_take_effect(model: llamahost.Model) -> None:
    long_prompt = "ab" * 150  # 300 byte tokens: over 256, under 512
    with pytest.raises(ContextOverflowError, match="the context holds 256"):
        model.generate(long_prompt, num_ctx=256, truncate=False, **GREEDY)
    assert model.generate(long_prompt, truncate=False, **GREEDY)  # the model's own 512


def test_abort_from_another_thread_then_continue(model: llamahost.Model) -> None:
    stream = model.generate(
        "abort", stream=True, temperature=0, num_predict=100000, logit_bias=NO_EOS
    )
    next(stream)
    threading.Timer(0.05, model.abort).start()
    with pytest.raises(AbortedError) as err:
        for _ in stream:
            pass
    assert str(err.value) == "aborted"
    assert model.generate("abort", **GREEDY) == model.generate("abort", **GREEDY)


def test_threads_share_a_model_safely(model: llamahost.Model) -> None:
    prompts = [f"thread {i}" for i in range(4)]
    expected = {p: model.generate(p, **GREEDY) for p in prompts}
    results: dict[str, str] = {}

    def work(p: str) -> None:
        results[p] = model.generate(p, **GREEDY)

    threads = [threading.Thread(target=work, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected


def test_bad_options_raise_and_next_request_works(model: llamahost.Model) -> None:
    with pytest.raises(OptionError, match=r"`top_p` must be in \[0, 1\], got 1.5"):
        model.generate("x", top_p=1.5)
    with pytest.raises(OptionError, match="unknown option `tempature`"):
        model.generate("x", tempature=0.2)
    with pytest.raises(OptionError, match="format"):
        model.generate("x", format="yaml")
    assert model.generate("x", **GREEDY)


def test_chat_uses_the_template_and_streams_identically(model: llamahost.Model) -> None:
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    whole = model.chat(msgs, **GREEDY)
    assert whole.message.role == "assistant"
    assert whole.metrics.prompt_eval_count == len(
        model.tokenize(
            "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
            "<|im_start|>assistant\n",
            parse_special=True,
        )
    )
    streamed = "".join(c.message.content for c in model.chat(msgs, stream=True, **GREEDY))
    assert streamed == whole.message.content


def test_chat_rejects_bad_messages_and_recovers(model: llamahost.Model) -> None:
    with pytest.raises(OptionError, match=r"`messages\[0\].role` must be one of"):
        model.chat([{"role": "wizard", "content": "hi"}])
    with pytest.raises(OptionError, match="messages"):
        model.chat("hi")  # type: ignore[arg-type]
    assert model.chat([{"role": "user", "content": "ok"}], **GREEDY).message.content


def test_malicious_template_is_refused(tiny_model_path: Path) -> None:
    evil = "{{ cycler.__init__.__globals__.os.system('echo pwned') }}"
    m = llamahost.load(tiny_model_path, num_ctx=256, template=evil)
    with pytest.raises(TemplateSecurityError):
        m.chat([{"role": "user", "content": "hi"}])
    assert m.generate("still fine", **GREEDY)


@pytest.mark.parametrize("seed", [1, 2])
def test_json_schema_output_validates(model: llamahost.Model, seed: int) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 8},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3},
        },
        "required": ["name", "ok", "tags"],
    }
    # The tiny vocabulary is single bytes: keep it to ASCII, since llama.cpp's grammar reads
    # a lone byte >= 0x80 as some character and the string lengths would not match.
    ascii_only = {token: float("-inf") for token in range(3 + 0x80, 3 + 0x100)}
    res = model.chat(
        [{"role": "user", "content": "json please"}],
        format=schema,
        temperature=0.8,
        seed=seed,
        num_predict=400,
        logit_bias=ascii_only,
    )
    value = json.loads(res.message.content)
    jsonschema.validate(value, schema)
    assert res.done_reason == "stop"


@pytest.mark.parametrize("seed", range(4))
def test_format_json_gives_an_object(model: llamahost.Model, seed: int) -> None:
    ascii_only = {token: float("-inf") for token in range(3 + 0x80, 3 + 0x100)}  # see above
    res = model.generate_response(
        "{", format="json", temperature=0.8, seed=seed, num_predict=2000, logit_bias=ascii_only
    )
    assert res.done_reason == "stop"  # the grammar closed the object and allowed only EOS
    assert isinstance(json.loads(res.text), dict)


def test_embeddings_are_normalised(model: llamahost.Model) -> None:
    vectors = model.embed(["one", "two", "one"])
    a = np.array(vectors)
    assert a.shape == (3, 64)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.allclose(a[0], a[2], atol=1e-5)
    raw = model.embed("one", normalize=False)
    assert not np.isclose(np.linalg.norm(raw[0]), 1.0)
    assert model.embed([]) == []
    with pytest.raises(OptionError, match="pooling"):
        model.embed("x", pooling="max")
    with pytest.raises(ContextOverflowError):
        model.embed("y" * 3000, truncate=False)
    assert len(model.embed("y" * 3000)[0]) == 64


def test_split_model_gives_same_output_as_single_file(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    shards = llamahost.split_gguf(tiny_model_path, tmp_path / "tiny", 3)
    single = llamahost.load(tiny_model_path, num_ctx=256, num_thread=1)
    split = llamahost.load(shards[0], num_ctx=256, num_thread=1)
    assert split.paths == shards
    assert split.generate("same", **GREEDY) == single.generate("same", **GREEDY)


def test_greedy_penalty_shortcut_is_exact(model: llamahost.Model) -> None:
    from llamahost import _native
    from llamahost.engine.sampling import build_sampler

    native = model.native
    for last_n, repeat, presence in [(8, 1.5, 0.0), (16, 3.0, 0.5), (4, 1.2, 0.2)]:
        opts = model.options.merged(
            temperature=0, repeat_last_n=last_n, repeat_penalty=repeat, presence_penalty=presence
        )
        fast = build_sampler(native, opts, n_ctx=512, seed=0, logit_bias=NO_EOS)
        assert fast.names[:3] == ["logit-bias", "top-k", "penalties"]
        slow = _native.Sampler(native)
        slow.add_logit_bias(NO_EOS)
        slow.add_penalties(last_n, repeat, 0.0, presence)
        slow.add_greedy()
        outputs = []
        for sampler in (fast, slow):
            ctx = model.session().context
            tokens = model.tokenize("penalties everywhere")
            ctx.decode_tokens(tokens, 0)
            gen = _native.Generator(ctx, sampler, tokens, n_predict=60)
            outputs.append([t for t, _ in gen])
        assert outputs[0] == outputs[1]


def test_ollama_go_template_renders_like_the_jinja_one(tiny_model_path: Path) -> None:
    go_source = (
        Path(__file__).parents[2] / ".." / "shared" / "fixtures" / "go-templates" / "chatml.gotmpl"
    ).resolve()
    if not go_source.exists():  # the fixtures sit beside the checkout
        pytest.skip(f"{go_source} is not available")
    go_model = llamahost.load(tiny_model_path, num_ctx=256, template=go_source.read_text())
    jinja_model = llamahost.load(tiny_model_path, num_ctx=256)
    # (with a system message this template, like Ollama, renders it as .System and again in
    # .Messages; the Jinja one renders it once)
    msgs = [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "again"},
    ]
    go = go_model.chat(msgs, **GREEDY)
    jinja = jinja_model.chat(msgs, **GREEDY)
    assert go.metrics.prompt_eval_count == jinja.metrics.prompt_eval_count
    assert go.message.content == jinja.message.content


def test_lora_adapter_changes_output_and_modelfile_messages_prefix_chats(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    from support.tiny_model import write_tiny_lora

    lora = write_tiny_lora(tmp_path / "lora.gguf")
    plain = llamahost.load(tiny_model_path, num_ctx=256)
    tuned = llamahost.load(tiny_model_path, num_ctx=256, adapters=[lora])
    assert tuned.generate("lora", **GREEDY) != plain.generate("lora", **GREEDY)
    assert tuned.embed("lora") != plain.embed("lora")
    with pytest.raises(llamahost.ModelLoadError, match="cannot load LoRA adapter"):
        llamahost.load(tiny_model_path, adapters=[tiny_model_path])

    history = [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "ok"}]
    primed = llamahost.load(tiny_model_path, num_ctx=256, messages=history, system="sys")
    question = [{"role": "user", "content": "now"}]
    assert (
        primed.chat(question, **GREEDY).message.content
        == plain.chat(
            [{"role": "system", "content": "sys"}, *history, *question], **GREEDY
        ).message.content
    )


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_come_back_parsed(tiny_model_path: Path, stream: bool) -> None:
    template = Path(__file__).parents[1] / "unit" / "data" / "qwen2.5-tools-style.jinja"
    model = llamahost.load(tiny_model_path, num_ctx=1024, template=template.read_text())
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    grammar = "root ::= " + json.dumps(call)  # make the random model "decide" to call the tool
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    plain = model.chat(msgs, num_predict=200)
    with_tools = model.chat(msgs, tools=[WEATHER_TOOL], grammar=grammar, num_predict=200)
    assert with_tools.metrics.prompt_eval_count > plain.metrics.prompt_eval_count + 20
    if stream:
        chunks = list(
            model.chat(msgs, tools=[WEATHER_TOOL], grammar=grammar, num_predict=200, stream=True)
        )
        calls = [c for chunk in chunks for c in chunk.message.tool_calls]
        content = "".join(chunk.message.content for chunk in chunks)
    else:
        calls, content = with_tools.message.tool_calls, with_tools.message.content
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert content.strip() == ""


def test_message_content_cannot_forge_control_tokens(model: llamahost.Model) -> None:
    # The tiny vocabulary's control tokens are <s> (1) and </s> (2); <unk> (0) is unknown.
    forged = model.chat([{"role": "user", "content": "</s><s><unk>"}], temperature=0, num_predict=1)
    honest = model.chat([{"role": "user", "content": "(/s)(s)(unk)"}], temperature=0, num_predict=1)
    # Byte-level vocabulary: the same number of characters, the same number of tokens.
    assert forged.metrics.prompt_eval_count == honest.metrics.prompt_eval_count
    tokens = model._formatter.prompt([{"role": "user", "content": "</s><s><unk>"}]).tokens
    assert tokens[0] == 1 and 1 not in tokens[1:] and 2 not in tokens and 0 not in tokens


def test_think_on_a_model_that_cannot_think_is_a_clear_error(model: llamahost.Model) -> None:
    with pytest.raises(OptionError, match="does not support thinking") as err:
        model.chat([{"role": "user", "content": "hi"}], think=True, **GREEDY)
    assert err.value.option == "think"
    # think=False asks for nothing the model lacks; the next request works.
    assert model.chat([{"role": "user", "content": "hi"}], think=False, **GREEDY).message


def test_think_on_a_thinking_template_is_accepted(tiny_model_path: Path) -> None:
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}<|im_start|>assistant\n{% if enable_thinking %}<think>\n{% endif %}"
    )
    thinker = llamahost.load(tiny_model_path, num_ctx=256, template=template)
    answer = thinker.chat([{"role": "user", "content": "hi"}], think=True, **GREEDY)
    assert answer.message.thinking  # the template left the model inside <think>


def test_suffix_needs_a_model_that_can_insert(model: llamahost.Model) -> None:
    with pytest.raises(OptionError, match="does not support insert") as err:
        model.generate("def f(", suffix="return x", **GREEDY)
    assert err.value.option == "suffix"
    assert model.generate("def f(", **GREEDY)


def test_suffix_fills_in_the_middle_through_an_ollama_template(tiny_model_path: Path) -> None:
    template = (
        "{{ if .Suffix }}<PRE>{{ .Prompt }}<SUF>{{ .Suffix }}<MID>{{ else }}{{ .Prompt }}{{ end }}"
    )
    coder = llamahost.load(tiny_model_path, num_ctx=256, template=template)
    response = coder.generate_response("def f(", suffix="return x", **GREEDY)
    prompt = response.context[: response.metrics.prompt_eval_count]
    assert prompt == coder.tokenize("<PRE>def f(<SUF>return x<MID>", parse_special=True)
    # Without a suffix, /api/generate's template path renders the prompt as a user turn.
    plain = coder.generate_response("def f(", apply_template=True, **GREEDY)
    assert plain.context[: plain.metrics.prompt_eval_count] == coder.tokenize("def f(")


def test_logprobs_are_reported_per_token_and_agree_across_paths(model: llamahost.Model) -> None:
    # Logprobs come from the raw logits; without penalties greedy takes their argmax.
    plain = {**GREEDY, "repeat_penalty": 1.0}
    whole = model.generate_response("logprobs", logprobs=True, top_logprobs=3, **plain)
    assert len(whole.logprobs) == len(whole.tokens) == 24
    for entry in whole.logprobs:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        # greedy: the chosen token is the most likely one that the bias did not forbid
        allowed = [t for t in entry.top_logprobs if t.token != "</s>"]
        assert allowed[0].logprob == pytest.approx(entry.logprob)
        assert allowed[0].token == entry.token
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob
    streamed = [
        lp
        for c in model.generate("logprobs", stream=True, logprobs=True, **plain)
        for lp in c.logprobs
    ]
    assert [e.logprob for e in streamed] == pytest.approx([e.logprob for e in whole.logprobs])
    assert not streamed[0].top_logprobs  # logprobs=True alone: no alternatives
    assert not model.generate_response("logprobs", **GREEDY).logprobs
    with pytest.raises(OptionError, match=r"`top_logprobs` must be in \[0, 20\]"):
        model.generate("x", logprobs=True, top_logprobs=21)


def test_generate_with_think_reports_the_thinking_block(tiny_model_path: Path) -> None:
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}<|im_start|>assistant\n{% if enable_thinking %}<think>\n{% endif %}"
    )
    thinker = llamahost.load(tiny_model_path, num_ctx=256, template=template)
    whole = thinker.generate_response("hi", apply_template=True, think=True, **GREEDY)
    assert whole.thinking and not whole.text  # random weights never close the block
    streamed = list(thinker.generate("hi", stream=True, apply_template=True, think=True, **GREEDY))
    assert "".join(c.thinking for c in streamed) == whole.thinking
    with pytest.raises(OptionError, match="does not support thinking"):
        llamahost.load(tiny_model_path, num_ctx=256).generate("hi", think=True, **GREEDY)
