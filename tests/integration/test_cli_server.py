"""The command line through a live ``llamahost serve``, compared with the same commands
in-process.

Each test starts a server on a free loopback port (``server_fixtures``) and runs the CLI as
a subprocess twice over the same store: with ``LLAMAHOST_HOST`` at a port where nothing
listens (in-process) and at the server. Both ways must print the same stdout and stderr
(durations and intermediate progress lines normalized) and exit alike. Models: the
generated tiny model (random weights, deterministic with temperature 0).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from registry_fixtures import RegistryServer
from server_fixtures import LiveServer, free_port, start_server, stop_server
from server_inference_fixtures import alive, children
from test_cli import TINY_MODELFILE, cli, failed, loaded_heavy_modules
from test_cli_repl import PROMPT, Terminal, write_endless_tiny_model

from llamahost.cli.client import ServerAddress
from llamahost.cli.server_commands import processor_text, until_text
from llamahost.errors import OptionError
from llamahost.store.blobs import BlobStore
from llamahost.store.model_store import ModelStore

Result = subprocess.CompletedProcess[str]
_AGO = re.compile(r"(Less than a second|1 second|\d+ seconds|About a minute|\d+ minutes) ago")
_PLAIN_PROGRESS = re.compile(r"^(.+): (\d+)% \(([^,)]*)[^)]*\)$")
_DURATION = re.compile(r"\d+(\.\d+)?(ns|µs|ms|s|m|h)\b")


def normalized(text: str) -> str:
    """`text` without what timing decides: ages, rates and the progress lines between a
    transfer's first and last."""
    lines = []
    for line in text.splitlines():
        line = _AGO.sub("<age> ago", line)
        match = _PLAIN_PROGRESS.match(line)
        if match:
            if match.group(2) not in ("0", "100"):
                continue
            line = f"{match.group(1)}: {match.group(2)}% ({match.group(3)})"
        lines.append(line)
    return "\n".join(lines)


def same_output(here: Result, there: Result, where: re.Pattern[str] | None = None) -> None:
    """In-process and through the server: the same exit code, stdout and stderr (but for
    what `where` matches)."""

    def text(output: str) -> str:
        return normalized(where.sub("<where>", output) if where else output)

    assert there.returncode == here.returncode, (here, there)
    assert text(there.stdout) == text(here.stdout), (here.stdout, there.stdout)
    assert text(there.stderr) == text(here.stderr), (here.stderr, there.stderr)


def rows(output: str) -> list[list[str]]:
    """A table's lines split into cells (columns are separated by runs of 2+ blanks)."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.splitlines()]


@dataclass
class Setup:
    """A store, a server over it, and the two CLI environments."""

    server: LiveServer
    work: Path  # tiny.gguf and its Modelfile
    local: dict[str, str]  # LLAMAHOST_HOST where nothing listens: in-process
    remote: dict[str, str]  # LLAMAHOST_HOST at the server

    def both(self, *args: str, between: Sequence[Sequence[str]] = ()) -> Result:
        """Run `args` in-process, then the `between` commands (in-process, to get the
        store back to the same state), then `args` through the server; the outputs must be
        the same. The server's result."""
        here = cli(self.local, *args, cwd=self.work)
        for step in between:
            assert cli(self.local, *step, cwd=self.work).returncode == 0, step
        there = cli(self.remote, *args, cwd=self.work)
        same_output(here, there)
        return there

    def runner_pids(self) -> list[int]:
        return sorted(pid for pid in children(self.server.process.pid) if alive(pid))


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMAHOST_")}
    env.pop("COLUMNS", None)
    env["HOME"] = str(home)
    return env


def make_setup(tmp_path: Path, model: Path, *, server_store: Path | None = None) -> Setup:
    """A server over ``tmp_path/models`` (or `server_store`); the CLI's store is
    ``tmp_path/models``."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copyfile(model, work / "tiny.gguf")
    (work / "Modelfile").write_text(TINY_MODELFILE)
    store = tmp_path / "models"
    (store / "blobs").mkdir(parents=True)
    server = start_server(server_store or store, tmp_path)
    env = base_env(tmp_path / "home")
    env["LLAMAHOST_MODELS"] = str(store)
    local = {**env, "LLAMAHOST_HOST": f"127.0.0.1:{free_port()}"}
    remote = {**env, "LLAMAHOST_HOST": server.host}
    return Setup(server, work, local, remote)


@pytest.fixture
def shared(tmp_path: Path, tiny_model_path: Path) -> Iterator[Setup]:
    """A server that shares the CLI's store."""
    setup = make_setup(tmp_path, tiny_model_path)
    try:
        yield setup
    finally:
        stop_server(setup.server)


@pytest.fixture
def separate(tmp_path: Path, tiny_model_path: Path) -> Iterator[Setup]:
    """A server with a store of its own (the CLI's store is another folder)."""
    setup = make_setup(tmp_path, tiny_model_path, server_store=tmp_path / "server-models")
    try:
        yield setup
    finally:
        stop_server(setup.server)


# ---- the store commands --------------------------------------------------------------------


def test_store_commands_print_the_same_both_ways(shared: Setup) -> None:
    created = shared.both("create", "tiny", between=[["rm", "tiny"]])
    assert created.stderr.splitlines()[-2:] == ["writing manifest", "success"]
    # A server that shares the store: the GGUF is hard-linked into it, not uploaded.
    store = ModelStore(shared.local["LLAMAHOST_MODELS"])
    [model_blob] = store.resolve("tiny").model_paths
    assert model_blob.stat().st_ino == (shared.work / "tiny.gguf").stat().st_ino
    layers = set(store.resolve("tiny").manifest.digests())
    assert set(BlobStore(store.root).iter_digests()) == layers  # no probe blob left behind

    listed = shared.both("list")
    assert rows(listed.stdout)[1][0] == "tiny:latest"
    shared.both("ls", "ti")
    for flags in ([], ["--modelfile"], ["--parameters"], ["--system"], ["--license"]):
        shared.both("show", "tiny", *flags)
    shared.both("show", "tiny", "--template")

    copied = shared.both("cp", "tiny", "me/copy:v1", between=[["rm", "me/copy:v1"]])
    assert copied.stdout == "copied 'tiny' to 'me/copy:v1'\n"
    shared.both("list")
    removed = shared.both("rm", "me/copy:v1", between=[["cp", "tiny", "me/copy:v1"]])
    assert removed.stdout == "deleted 'me/copy:v1'\n"

    (shared.work / "Typo").write_text("FROM ./tiny.gguf\nPARAMETER temprature 0.5\n")
    (shared.work / "Missing").write_text("FROM ./nothing-here.gguf\n")
    for args in (
        ["show", "nosuch"],
        ["show", "bad name"],
        ["show", "tiny", "--system", "--license"],
        ["rm", "nosuch"],
        ["cp", "nosuch", "other"],
        ["push", "nosuch"],
        ["create", "x", "-f", "Typo"],
        ["create", "x", "-f", "Missing"],
        ["create", "x", "-f", "absent"],
    ):
        failed(shared.both(*args))
    assert cli(shared.local, "cp", "tiny", "keep").returncode == 0
    failed(shared.both("rm", "tiny", "nosuch", between=[["cp", "keep", "tiny"]]), "nosuch")
    assert [row[0] for row in rows(cli(shared.remote, "list").stdout)[1:]] == ["keep:latest"]


def test_show_counts_parameters_as_in_process(shared: Setup, smollm2_path: Path) -> None:
    # SmolLM2's GGUF is labelled "135M"; show counts its tensors' elements (134.52M).
    (shared.work / "Smol").write_text(f"FROM {smollm2_path}\n")
    assert cli(shared.local, "create", "smol", "-f", "Smol", cwd=shared.work).returncode == 0
    shown = shared.both("show", "smol")
    assert re.search(r"^ +parameters +134\.52M$", shown.stdout, re.MULTILINE), shown.stdout


def test_create_uploads_to_a_server_with_another_store(separate: Setup) -> None:
    here = cli(separate.local, "create", "tiny", cwd=separate.work)
    there = cli(separate.remote, "create", "tiny", cwd=separate.work)
    same_output(here, there)
    assert any(line.startswith("copying file ") for line in there.stderr.splitlines())
    server_store = ModelStore(separate.server.models)
    [uploaded] = server_store.resolve("tiny").model_paths
    source = separate.work / "tiny.gguf"
    assert uploaded.read_bytes() == source.read_bytes()
    assert uploaded.stat().st_ino != source.stat().st_ino  # a copy: the stores differ

    # Created again: the server has the file, so nothing is uploaded (as in-process)
    again_here = cli(separate.local, "create", "tiny2", cwd=separate.work)
    again_there = cli(separate.remote, "create", "tiny2", cwd=separate.work)
    same_output(again_here, again_there)
    assert "using existing layer sha256:" in again_there.stderr
    assert "copying file" not in again_there.stderr

    # FROM a stored model, and the Modelfile's mistakes, as in-process
    (separate.work / "Derived").write_text("FROM tiny\nPARAMETER temperature 0.5\n")
    (separate.work / "Missing").write_text("FROM ./tiny.gguf\nADAPTER ./nothing.gguf\n")
    (separate.work / "Template").write_text("FROM ./tiny.gguf\nTEMPLATE {{ .Prompt\n")
    for file in ("Derived", "Missing", "Template"):
        same_output(
            cli(separate.local, "create", "x", "-f", file, cwd=separate.work),
            cli(separate.remote, "create", "x", "-f", file, cwd=separate.work),
        )
    shown = cli(separate.remote, "show", "x", "--parameters").stdout
    assert re.search(r"^temperature +0\.5$", shown, re.MULTILINE), shown
    assert re.search(r"^num_ctx +256$", shown, re.MULTILINE), shown


def test_pull_and_push_through_the_server(shared: Setup, registry_server: RegistryServer) -> None:
    assert cli(shared.local, "create", "tiny", cwd=shared.work).returncode == 0
    # Two fresh repositories, so that each push uploads everything.
    first, second = (f"{registry_server.host}/test/{uuid.uuid4().hex[:12]}:v1" for _ in "ab")
    for name in (first, second):
        assert cli(shared.local, "cp", "tiny", name).returncode == 0
    here = cli(shared.local, "push", first, "--insecure")
    there = cli(shared.remote, "push", second, "--insecure")
    there.stdout, there.stderr = (t.replace(second, first) for t in (there.stdout, there.stderr))
    same_output(here, there)
    assert there.stderr.splitlines()[-1] == "success"

    assert cli(shared.local, "rm", first, second, "tiny").returncode == 0  # blobs pruned
    pulled = shared.both("pull", first, "--insecure", between=[["rm", first]])
    lines = pulled.stderr.splitlines()
    assert lines[0] == "pulling manifest" and lines[-1] == "success"
    assert any(re.fullmatch(r"pulling [0-9a-f]{12}: 100% \(.+\)", line) for line in lines)
    assert [row[0] for row in rows(cli(shared.remote, "list").stdout)[1:]] == [first]
    missing = f"{registry_server.host}/test/missing{uuid.uuid4().hex[:8]}"
    failed(shared.both("pull", missing, "--insecure"), "pull ")
    # Where the store is: its folder in-process, the server's address through it (a
    # server never tells its folder).
    here = cli(shared.local, "run", missing, "--insecure", "Hi")
    there = cli(shared.remote, "run", missing, "--insecure", "Hi")
    failed(there, "is not in the store (of llamahost at ", "pulling it failed: ")
    assert f"is not in the store ({shared.local['LLAMAHOST_MODELS']})" in here.stderr
    same_output(here, there, where=re.compile(r"in the store \([^)]*\)"))


# ---- pieces, in this process ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "url", "shown"),
    [
        ("", "http://127.0.0.1:11434", "127.0.0.1:11434"),
        ("example.com", "http://example.com:11434", "example.com:11434"),
        (":8080", "http://127.0.0.1:8080", "127.0.0.1:8080"),
        ("0.0.0.0:9000", "http://127.0.0.1:9000", "0.0.0.0:9000"),
        ("http://10.1.2.3", "http://10.1.2.3:11434", "10.1.2.3:11434"),
        ("HTTPS://ollama.example/api-base/", "https://ollama.example:443/api-base", None),
        ("[::1]:7000", "http://[::1]:7000", "[::1]:7000"),
        ("[::]", "http://[::1]:11434", "[::]:11434"),
    ],
)
def test_llamahost_host_is_read_as_ollama_reads_ollama_host(
    text: str, url: str, shown: str | None
) -> None:
    address = ServerAddress.parse(text)
    assert address.url == url
    if shown is not None:
        assert address.shown == shown


@pytest.mark.parametrize("text", ["host:0", "host:http", "ftp://host", "[::1", "[::1]x"])
def test_a_malformed_llamahost_host_is_an_error_naming_it(text: str) -> None:
    with pytest.raises(OptionError, match="LLAMAHOST_HOST"):
        ServerAddress.parse(text)


def test_ps_columns_as_ollama_writes_them() -> None:
    assert processor_text(1000, 0) == "100% CPU"
    assert processor_text(1000, 1000) == "100% GPU"
    assert processor_text(1000, 250) == "75%/25% CPU/GPU"
    assert processor_text(1000, 2000) == "Unknown"
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert until_text(now + timedelta(minutes=4, seconds=59), now) == "4 minutes from now"
    assert until_text(now + timedelta(days=365 * 292), now) == "Forever"
    assert until_text(now - timedelta(seconds=1), now) == "Stopping..."


# ---- run, ps, stop ---------------------------------------------------------------------------


def ps_rows(setup: Setup) -> list[list[str]]:
    result = cli(setup.remote, "ps")
    assert result.returncode == 0, result.stderr
    table = rows(result.stdout)
    assert table[0] == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    return table[1:]


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_run_goes_through_the_server_and_keepalive_works(shared: Setup) -> None:
    assert cli(shared.local, "create", "tiny", cwd=shared.work).returncode == 0
    here = cli(shared.local, "run", "tiny", "Hello", "there")
    there = cli(shared.remote, "run", "tiny", "Hello", "there")
    same_output(here, there)  # greedy: the same answer from the runner as in-process
    assert there.stdout.strip()

    [row] = ps_rows(shared)
    digest = ModelStore(shared.local["LLAMAHOST_MODELS"]).resolve("tiny").digest.hex
    assert row[:2] == ["tiny:latest", digest[:12]]
    assert re.fullmatch(r"[\d.]+ (KB|MB)", row[2]) and row[3] == "100% CPU"
    assert row[4] == "256"  # the Modelfile's num_ctx
    assert row[5] == "4 minutes from now"  # the server's default keep_alive, 5m
    [runner] = shared.runner_pids()
    verbose = cli(shared.remote, "run", "tiny", "Hello there", "--verbose", "--keepalive", "1h")
    assert verbose.stdout == there.stdout
    assert re.search(r"^eval count:\s+\d+ token\(s\)$", verbose.stderr, re.MULTILINE)
    assert shared.runner_pids() == [runner]  # the loaded runner answered again
    assert ps_rows(shared)[0][5] == "59 minutes from now"

    stopped = cli(shared.remote, "stop", "tiny")
    assert (stopped.returncode, stopped.stdout, stopped.stderr) == (0, "", "")
    assert ps_rows(shared) == []
    failed(cli(shared.remote, "stop", "nosuch"), 'couldn\'t find model "nosuch" to stop')

    forever = cli(shared.remote, "run", "tiny", "Hi", "--keepalive", "-1")
    assert forever.returncode == 0, forever.stderr
    assert ps_rows(shared)[0][5] == "Forever"
    once = cli(shared.remote, "run", "tiny", "Hi", "--keepalive", "0")
    assert once.returncode == 0 and once.stdout == forever.stdout
    assert wait_for(lambda: ps_rows(shared) == [])  # unloaded after answering
    loaded_only = cli(shared.remote, "run", "tiny", "--keepalive", "10m", stdin="")
    assert (loaded_only.returncode, loaded_only.stdout) == (0, "")
    assert ps_rows(shared)[0][5] == "9 minutes from now"  # an empty prompt only loads

    failed(cli(shared.remote, "run", "tiny", "--keepalive", "soon", "Hi"), "`--keepalive`")
    warned = cli(shared.local, "run", "tiny", "--keepalive", "5m", "Hi")
    assert warned.returncode == 0 and warned.stdout == forever.stdout
    assert "--keepalive applies only through a server" in warned.stderr
    failed(cli(shared.local, "ps"), "could not connect to llamahost at 127.0.0.1:")


def test_a_server_that_dies_mid_answer_is_an_error_not_a_traceback(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    setup = make_setup(tmp_path, tiny_model_path)
    try:
        write_endless_tiny_model(tiny_model_path, setup.work / "tiny.gguf")
        modelfile = TINY_MODELFILE.replace("num_predict 16", "num_predict 100000")
        (setup.work / "Modelfile").write_text(modelfile)
        assert cli(setup.local, "create", "tiny", cwd=setup.work).returncode == 0
        process = subprocess.Popen(
            [sys.executable, "-m", "llamahost.cli", "run", "tiny", "go on forever"],
            env={**setup.remote, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        assert process.stdout is not None
        process.stdout.read(1)  # the answer has started
        os.kill(setup.server.process.pid, signal.SIGKILL)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 1, (out, err)
        assert err.startswith("Error: ") and "Traceback" not in err, err
        assert "llamahost at 127.0.0.1:" in err
    finally:
        stop_server(setup.server)


def test_api_key_is_sent(tmp_path: Path, tiny_model_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    server = start_server(tmp_path / "models", tmp_path, {"LLAMAHOST_API_KEY": "s3cret"})
    try:
        env = {**base_env(tmp_path / "home"), "LLAMAHOST_HOST": server.host}
        env["LLAMAHOST_MODELS"] = str(tmp_path / "models")
        assert cli({**env, "LLAMAHOST_API_KEY": "s3cret"}, "list").returncode == 0
        refused = cli(env, "list")
        assert refused.returncode == 1 and refused.stderr.startswith("Error: "), refused
    finally:
        stop_server(server)


def test_list_show_and_ps_through_a_server_load_nothing_heavy(shared: Setup) -> None:
    assert cli(shared.local, "create", "tiny", cwd=shared.work).returncode == 0
    assert cli(shared.remote, "run", "tiny", "Hi").returncode == 0  # loaded, for ps
    for command in (["list"], ["show", "tiny"], ["ps"], ["show", "tiny", "--modelfile"]):
        output = loaded_heavy_modules(shared.remote, command)
        assert "LOADED ['httpx']" in output, (command, output)


# ---- the REPL through the server -------------------------------------------------------------

REPL_SCRIPT = [
    "hello there",
    '"""',
    "line one",
    'line two"""',
    "/set parameter num_predict 6",
    "/set parameter stop xyzzy plugh",
    "/set parameter nope 1",
    "/show parameters",
    "/show info",
    "/show modelfile",
    "/show system",
    "/show license",
    "/set system You are terse.",
    "still there?",
    "/save tiny-session",
    "/load nosuch",
    "/load tiny-session",
    "/show system",
    "/show parameters",
    "again",
]


def repl_transcript(env: dict[str, str], cwd: Path) -> str:
    """The REPL_SCRIPT typed into ``run tiny`` on a pty; what the terminal showed."""
    terminal = Terminal(["run", "tiny"], env, cwd)
    try:
        terminal.expect(PROMPT)
        for line in REPL_SCRIPT:
            terminal.line(line)
            terminal.expect(b"... " if line == '"""' or line == "line one" else PROMPT)
        terminal.line("/bye")
        assert terminal.wait() == 0
        return bytes(terminal.output).decode("utf-8", "replace").replace("\r\n", "\n")
    finally:
        terminal.close()


def test_repl_through_the_server_shows_what_it_shows_in_process(
    shared: Setup, tiny_model_path: Path
) -> None:
    write_endless_tiny_model(tiny_model_path, shared.work / "tiny.gguf")
    assert cli(shared.local, "create", "tiny", cwd=shared.work).returncode == 0
    env = {"TERM": "dumb"}
    here = repl_transcript({**shared.local, **env}, shared.work)
    assert cli(shared.local, "rm", "tiny-session").returncode == 0
    there = repl_transcript({**shared.remote, **env}, shared.work)
    assert there == here
    assert "Created new model 'tiny-session'" in there
    assert "Loading model 'tiny-session'" in there and "Couldn't find model 'nosuch'" in there
    assert "User defined parameters:\n  num_predict" in there
    saved = cli(shared.remote, "show", "tiny-session", "--modelfile").stdout
    assert 'SYSTEM """You are terse."""' in saved or "You are terse." in saved
    assert ps_rows(shared)  # the REPL's model stays loaded after it ends


def test_ctrl_c_through_the_server_stops_the_answer_and_frees_the_slot(shared: Setup) -> None:
    write_endless_tiny_model(shared.work / "tiny.gguf", shared.work / "endless.gguf")
    (shared.work / "Modelfile").write_text(
        TINY_MODELFILE.replace("./tiny.gguf", "./endless.gguf").replace(
            "num_predict 16", "num_predict 100000"
        )
    )
    assert cli(shared.local, "create", "endless", cwd=shared.work).returncode == 0
    terminal = Terminal(["run", "endless"], {**shared.remote, "TERM": "dumb"}, shared.work)
    try:
        terminal.expect(PROMPT)
        terminal.line("go on forever")
        terminal.read_bytes(2000)  # the answer is streaming
        started = time.monotonic()
        terminal.send(b"\x03")
        terminal.expect(PROMPT, timeout=5)
        assert time.monotonic() - started < 5
        # One slot per runner (LLAMAHOST_NUM_PARALLEL=1): had the server not noticed the
        # client leave, this answer would wait for the endless one.
        terminal.line("/set parameter num_predict 4")
        terminal.expect(PROMPT)
        terminal.line("and now a short one")
        terminal.expect(PROMPT, timeout=10)
        terminal.line("/bye")
        assert terminal.wait() == 0
    finally:
        terminal.close()
