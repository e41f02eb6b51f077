"""How create writes its JSON layers and names sizes and quantizations (no model needed)."""

from __future__ import annotations

import json
import re
import sysconfig
from pathlib import Path

import pytest

from llamahost.gguf import FILE_TYPE_NAMES, file_type_name, human_parameter_count
from llamahost.modelfile.create import (
    merge_parameters,
    messages_json,
    params_json,
)
from llamahost.modelfile.parser import parse

LLAMA_H = Path(sysconfig.get_paths()["purelib"]) / "include" / "llama.h"  # from llama-cpp-python


@pytest.mark.parametrize(
    ("count", "shown"),
    [  # Ollama's format.HumanNumber test table, plus SmolLM2-135M's real count
        (0, "0"),
        (999, "999"),
        (1000, "1K"),
        (1001, "1K"),
        (115_392, "115K"),
        (1_000_000, "1M"),
        (125_000_000, "125M"),
        (134_515_008, "134.52M"),
        (500_500_000, "500.50M"),
        (500_550_000, "500.55M"),
        (1_000_000_000, "1B"),
        (2_800_000_000, "2.8B"),
        (2_850_000_000, "2.9B"),
        (1_000_000_000_000, "1000B"),
    ],
)
def test_human_parameter_count(count: int, shown: str) -> None:
    assert human_parameter_count(count) == shown


def test_file_type_names() -> None:
    assert [file_type_name(v) for v in (0, 1, 2, 3, 7, 15, 18, 32)] == [
        "F32",
        "F16",
        "Q4_0",
        "Q4_1",
        "Q8_0",
        "Q4_K_M",
        "Q6_K",
        "BF16",
    ]
    assert file_type_name(4) == "unknown"  # removed from llama.cpp
    assert file_type_name(1024) == "unknown"  # LLAMA_FTYPE_GUESSED


@pytest.mark.skipif(not LLAMA_H.is_file(), reason="llama.h of the pinned llama.cpp not installed")
def test_file_type_table_matches_llama_h() -> None:
    enum = re.search(r"enum llama_ftype \{(.*?)\};", LLAMA_H.read_text(), re.S)
    assert enum is not None
    declared = {
        int(value): name
        for name, value in re.findall(
            r"^\s*LLAMA_FTYPE_(?:ALL|MOSTLY)_(\w+)\s*=\s*(\d+)", enum[1], re.M
        )
    }
    assert declared == FILE_TYPE_NAMES


def test_params_json_is_sorted_with_stop_as_a_list() -> None:
    modelfile = parse(
        "FROM x\nPARAMETER temperature 0.7\nPARAMETER stop <|end|>\nPARAMETER stop <b>\n"
        "PARAMETER num_ctx 4096\nPARAMETER top_p 1\n"
    )
    text = params_json(modelfile.parameters)
    assert text == (
        '{"num_ctx":4096,"stop":["\\u003c|end|\\u003e","\\u003cb\\u003e"],'
        '"temperature":0.7,"top_p":1}'
    )
    assert json.loads(text)["stop"] == ["<|end|>", "<b>"]


def test_merged_parameters_new_values_win_and_stop_is_replaced() -> None:
    inherited = {"temperature": 0.2, "stop": ["a", "b"], "num_ctx": 1024}
    merged = merge_parameters(inherited, {"stop": ("c",), "top_k": 5})
    assert merged == {"temperature": 0.2, "stop": ("c",), "num_ctx": 1024, "top_k": 5}
    assert inherited["stop"] == ["a", "b"]  # the parent's values are not changed


def test_messages_json_keeps_ollamas_field_order() -> None:
    text = messages_json([("user", "Is 1 < 2?"), ("assistant", "yes")])
    assert text == (
        '[{"role":"user","content":"Is 1 \\u003c 2?"},{"role":"assistant","content":"yes"}]'
    )
