"""The interactive ``llamahost run MODEL`` driven through a real pseudo-terminal.

The CLI runs as a subprocess whose stdin, stdout and stderr are the slave side of a pty
that is its controlling terminal, so readline, the prompts and Ctrl+C (``\\x03``, turned
into SIGINT by the terminal) behave as for a person at a keyboard. Every read has a
deadline: a hung REPL fails the test with the output so far.
"""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamahost.gguf import read_gguf
from llamahost.modelfile.parser import parse

STEP_TIMEOUT_S = 20.0
PROMPT = b">>> "
TINY_MODELFILE = """FROM ./tiny.gguf
PARAMETER temperature 0
PARAMETER num_predict 12
PARAMETER num_ctx 256
PARAMETER num_thread 1
"""


def write_endless_tiny_model(source: Path, path: Path) -> Path:
    """The tiny model with zero output rows for <unk>, <s> and </s>.

    Their logits are then 0 while the largest of the 256 random byte logits is positive, so
    greedy decoding never ends an answer by itself: only num_predict or Ctrl+C stop it.
    """
    shutil.copyfile(source, path)
    [output] = [t for t in read_gguf(path, max_array_length=0).tensors if t.name == "output.weight"]
    assert output.type == "f32" and output.shape[0] == 64
    with open(path, "r+b") as stream:
        stream.seek(output.offset)
        stream.write(bytes(3 * 64 * 4))  # rows 0, 1, 2: 64 float32 each
    return path


def _take_terminal() -> None:
    """In the child: make the pty on stdin the controlling terminal of the new session."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A process on a pty: ``send`` keys, ``expect`` output, ``wait`` for the exit code."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llamahost.cli", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_take_terminal,
        )
        os.close(slave)
        self.master = master
        self.output = bytearray()
        self.position = 0  # where the next expect() starts looking

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def line(self, text: str) -> None:
        """Type `text` and press Enter."""
        self.send(text.encode() + b"\r")

    def _read_some(self, deadline: float) -> bool:
        """Read what is there (waiting until `deadline`); False at end of output."""
        ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.output += data
        return bool(data)

    def expect(self, pattern: bytes, timeout: float = STEP_TIMEOUT_S) -> bytes:
        """Wait for `pattern` after the last match; return the output in between."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.output.find(pattern, self.position)
            if found >= 0:
                between = bytes(self.output[self.position : found])
                self.position = found + len(pattern)
                return between
            if time.monotonic() >= deadline or not self._read_some(deadline):
                tail = bytes(self.output[-2000:])
                raise AssertionError(f"no {pattern!r} within {timeout}s; output ends {tail!r}")

    def read_bytes(self, count: int, timeout: float = STEP_TIMEOUT_S) -> None:
        """Wait until at least `count` more bytes came after the last match."""
        deadline = time.monotonic() + timeout
        while len(self.output) - self.position < count:
            if time.monotonic() >= deadline or not self._read_some(deadline):
                raise AssertionError(f"fewer than {count} bytes of output within {timeout}s")

    def wait(self, timeout: float = STEP_TIMEOUT_S) -> int:
        """Drain the output until the process exits; its exit code."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read_some(min(deadline, time.monotonic() + 0.1))
        return self.process.wait(timeout=max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        os.close(self.master)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("LLAMAHOST_")}
    values.update(
        LLAMAHOST_MODELS=str(tmp_path / "models"), HOME=str(tmp_path / "home"), TERM="dumb"
    )
    return values


@pytest.fixture
def workdir(tmp_path: Path, tiny_model_path: Path, env: dict[str, str]) -> Path:
    """A folder with the (endless) tiny model stored as ``tiny``."""
    folder = tmp_path / "work"
    folder.mkdir()
    write_endless_tiny_model(tiny_model_path, folder / "tiny.gguf")
    (folder / "Modelfile").write_text(TINY_MODELFILE)
    created = subprocess.run(
        [sys.executable, "-m", "llamahost.cli", "create", "tiny"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    return folder


@pytest.fixture
def repl(env: dict[str, str], workdir: Path) -> Iterator[Terminal]:
    terminal = Terminal(["run", "tiny"], env, workdir)
    try:
        terminal.expect(PROMPT)
        yield terminal
    finally:
        terminal.close()


def test_conversation_settings_and_save(repl: Terminal, env: dict[str, str], workdir: Path) -> None:
    repl.line("hello there")
    answer = repl.expect(PROMPT)
    assert len(answer.replace(b"hello there", b"").strip()) > 0  # the streamed answer

    repl.line('"""')
    repl.expect(b"... ")
    repl.line("line one")
    repl.expect(b"... ")
    repl.line('line two"""')
    repl.expect(PROMPT)

    repl.line("/set parameter temperature 0.25")
    assert b"Set parameter 'temperature' to '0.25'" in repl.expect(PROMPT)
    repl.line("/set parameter nope 1")
    error = repl.expect(PROMPT)
    assert b"Couldn't set parameter:" in error and b"nope" in error
    repl.line("/show parameters")
    shown = repl.expect(PROMPT).replace(b"\r\n", b"\n")
    assert b"User defined parameters:\n  temperature" in shown
    assert b"temperature                    0.25\n" in shown
    assert b"num_predict" in shown  # the model's own, from its Modelfile

    repl.line("/set system You are terse.")
    assert b"Set system message." in repl.expect(PROMPT)
    repl.line("still there?")  # answered after a bad /set, with the new settings
    repl.expect(PROMPT)
    repl.line("/nonsense")
    assert b"Unknown command '/nonsense'. Type /? for help" in repl.expect(PROMPT)

    repl.line("/save tiny-session")
    assert b"Created new model 'tiny-session'" in repl.expect(PROMPT)
    repl.line("/bye")
    assert repl.wait() == 0

    saved = subprocess.run(
        [sys.executable, "-m", "llamahost.cli", "show", "tiny-session", "--modelfile"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    modelfile = parse(saved.stdout)
    assert modelfile.system == "You are terse."
    assert modelfile.parameters["temperature"] == 0.25
    users = [content for role, content in modelfile.messages if role == "user"]
    assert users[0] == "hello there"
    assert users[1] == "line one\nline two"  # the multi-line message, as one
    assert users[2] == "still there?"
    assert [role for role, _ in modelfile.messages] == ["user", "assistant"] * 3

    history = (Path(env["HOME"]) / ".llamahost" / "history").read_text()
    assert "hello there" in history and "/save tiny-session" in history


def test_ctrl_c_stops_an_answer_and_the_session_goes_on(repl: Terminal) -> None:
    repl.line("/set parameter num_predict 100000")
    repl.expect(PROMPT)
    repl.line("go on forever")
    repl.read_bytes(2000)  # the answer is streaming
    started = time.monotonic()
    repl.send(b"\x03")
    repl.expect(PROMPT, timeout=5)
    assert time.monotonic() - started < 5

    repl.line("/set parameter num_predict 4")
    repl.expect(PROMPT)
    repl.line("and now a short one")
    repl.expect(PROMPT)

    # CPython's readline sees a signal only while it waits for a key: one that lands in
    # the instant between drawing the prompt and starting that wait waits for the next
    # key. A person never types that fast; pause as one would.
    time.sleep(0.3)
    repl.send(b"\x03")  # at the prompt: a hint, not an exit
    assert b"Use Ctrl + d or /bye to exit." in repl.expect(PROMPT)
    repl.send(b"\x04")  # Ctrl+D leaves
    assert repl.wait() == 0
