"""Real models from PyPI wheels: SmolLM2-135M-Instruct (Q4_1) and Gemma 3 270M (Q4_K_M)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import llamahost

GREEDY = {"temperature": 0, "num_predict": 40}


@pytest.fixture(scope="module")
def smollm2(smollm2_path: Path) -> llamahost.Model:
    return llamahost.load(smollm2_path, num_ctx=2048)


@pytest.fixture(scope="module")
def gemma(gemma_path: Path) -> llamahost.Model:
    return llamahost.load(gemma_path, num_ctx=1024)


@pytest.mark.parametrize("name", ["smollm2", "gemma"])
def test_greedy_is_deterministic_and_stream_equals_non_stream(
    name: str, request: pytest.FixtureRequest
) -> None:
    model: llamahost.Model = request.getfixturevalue(name)
    prompt = "The three primary colors are"
    first = model.generate(prompt, **GREEDY)
    assert first.strip()
    assert model.generate(prompt, **GREEDY) == first
    model.close()  # a fresh context must give the same tokens too
    assert model.generate(prompt, **GREEDY) == first
    chunks = list(model.generate(prompt, stream=True, **GREEDY))
    assert "".join(c.text for c in chunks) == first
    assert chunks[-1].done_reason in ("stop", "length")
    assert chunks[-1].metrics is not None and chunks[-1].metrics.eval_count > 0


@pytest.mark.parametrize("name", ["smollm2", "gemma"])
@pytest.mark.parametrize(
    "text", ["Hello, world!", "naïve café — 日本語 ✓", "  spaces\tand\nlines "]
)
def test_tokenize_round_trip(name: str, text: str, request: pytest.FixtureRequest) -> None:
    model: llamahost.Model = request.getfixturevalue(name)
    assert model.detokenize(model.tokenize(text, add_special=False)) == text


def test_smollm2_chat_template_and_answer(smollm2: llamahost.Model) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    res = smollm2.chat(messages, **GREEDY)
    assert "Paris" in res.message.content
    assert res.message.role == "assistant"
    expected_prompt = (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert res.metrics.prompt_eval_count == len(
        smollm2.tokenize(expected_prompt, parse_special=True)
    )
    streamed = list(smollm2.chat(messages, stream=True, **GREEDY))
    assert "".join(c.message.content for c in streamed) == res.message.content
    assert streamed[-1].done and streamed[-1].done_reason == res.done_reason


def test_smollm2_multi_turn_reuses_the_prefix(smollm2: llamahost.Model) -> None:
    history = [{"role": "user", "content": "Name a fruit."}]
    first = smollm2.chat(history, **GREEDY)
    history += [first.message.to_dict(), {"role": "user", "content": "Another one?"}]
    second = smollm2.chat(history, **GREEDY)
    assert second.metrics.prompt_cached_count > 20
    assert second.message.content


def test_smollm2_json_schema_output_validates(smollm2: llamahost.Model) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "country": {"type": "string"},
            "population_millions": {"type": "number"},
        },
        "required": ["city", "country", "population_millions"],
        "additionalProperties": False,
    }
    res = smollm2.chat(
        [{"role": "user", "content": "Describe Paris as JSON."}],
        format=schema,
        temperature=0,
        num_predict=120,
    )
    value = json.loads(res.message.content)
    jsonschema.validate(value, schema)
    res = smollm2.chat(
        [{"role": "user", "content": "A JSON object about a dog."}],
        format="json",
        temperature=0,
        num_predict=120,
    )
    assert isinstance(json.loads(res.message.content), dict)


@pytest.mark.parametrize("name", ["smollm2", "gemma"])
def test_embeddings_are_normalised_and_similar_texts_closer(
    name: str, request: pytest.FixtureRequest
) -> None:
    model: llamahost.Model = request.getfixturevalue(name)
    texts = [
        "The cat sat on the mat.",
        "A cat was sitting on the mat.",
        "Quarterly revenue grew by twelve percent in the fiscal year.",
    ]
    vectors = np.array(model.embed(texts))
    assert vectors.shape == (3, model.n_embd)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    similar = float(vectors[0] @ vectors[1])
    different = float(vectors[0] @ vectors[2])
    assert similar > different


def test_gemma_split_into_three_shards_loads_from_first(gemma_path: Path, tmp_path: Path) -> None:
    shards = llamahost.split_gguf(gemma_path, tmp_path / "gemma-3-270m", 3)
    assert len(shards) == 3
    sizes = [Path(s).stat().st_size for s in shards]
    assert sum(sizes) > 0.99 * gemma_path.stat().st_size
    prompt = "Write a sentence about the ocean:"
    single = llamahost.load(gemma_path, num_ctx=512).generate(prompt, **GREEDY)
    split_model = llamahost.load(shards[0], num_ctx=512)
    assert split_model.paths == shards
    assert split_model.generate(prompt, **GREEDY) == single
    merged = llamahost.merge_gguf(shards[0], tmp_path / "merged.gguf")
    assert llamahost.load(merged, num_ctx=512).generate(prompt, **GREEDY) == single
