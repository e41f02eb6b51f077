'''The interactive REPL of ``llamahost run MODEL``, modelled on Ollama's.

    >>> Why is the sky blue?
    <the answer, streamed>

    >>> """
    ... a message over
    ... several lines
    ... """
    >>> /set parameter temperature 0
    Set parameter 'temperature' to '0'
    >>> /bye

The conversation is kept across turns (``/clear`` forgets it) and sent to the model's
session (``cli/sessions.py``): a model loaded in this process, or a server's ``/api/chat``;
the REPL reads and prints the same either way. Session settings (``/set system``,
``/set parameter``, ``/set format json``, ...) apply to the next answers; ``/save NAME``
stores them, with the conversation, as a new model built FROM the current one. Lines are
read with GNU readline (line editing; history in ``~/.llamahost/history`` unless
``LLAMAHOST_NOHISTORY`` is set).

Ctrl+C during an answer stops that answer and returns to the prompt; at the prompt it
clears the line. Ctrl+D or ``/bye`` leaves.
'''

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from llamahost.cli.answer import stream_answer
from llamahost.cli.display import AnswerWriter, stats_text
from llamahost.cli.sessions import ChatSession
from llamahost.cli.show import (
    ParameterTexts,
    parameter_lines,
    parameter_pairs,
    parameter_texts,
    show_info,
)
from llamahost.engine.options import Options, parse_option_text
from llamahost.engine.structured import Format
from llamahost.errors import LlamahostError, OptionError

PROMPT = ">>> "
CONTINUATION_PROMPT = "... "
TRIPLE_QUOTE = '"""'
HISTORY_LENGTH = 1000
LIST_PARAMETERS = frozenset({"stop", "dry_sequence_breakers"})

USAGE = """Available Commands:
  /set            Set session variables
  /unset          Unset session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use \"\"\" to begin a multi-line message.
"""
USAGE_SET = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set history           Enable history
  /set nohistory         Disable history
  /set wordwrap          Enable wordwrap
  /set nowordwrap        Disable wordwrap
  /set format json       Enable JSON mode
  /set noformat          Disable formatting (also /unset format)
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
  /set think             Enable thinking
  /set nothink           Disable thinking
"""
USAGE_UNSET = """Available Commands:
  /unset format           Disable formatting
  /unset system           Drop the session's system message
  /unset parameter NAME   Drop a session parameter
"""
USAGE_SHOW = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template
"""
USAGE_PARAMETERS = """Available Parameters:
  /set parameter seed <int>             Random number seed
  /set parameter num_predict <int>      Max number of tokens to predict
  /set parameter top_k <int>            Pick from top k num of tokens
  /set parameter top_p <float>          Pick token based on sum of probabilities
  /set parameter min_p <float>          Pick token based on top token probability * min_p
  /set parameter num_ctx <int>          Set the context size
  /set parameter temperature <float>    Set creativity level
  /set parameter repeat_penalty <float> How strongly to penalize repetitions
  /set parameter repeat_last_n <int>    Set how far back to look for repetitions
  /set parameter num_gpu <int>          The number of layers to send to the GPU
  /set parameter stop <string> <string> ...   Set the stop parameters
"""
USAGE_SHORTCUTS = """Available keyboard shortcuts:
  Ctrl + a            Move to the beginning of the line (Home)
  Ctrl + e            Move to the end of the line (End)
   Alt + b            Move back (left) one word
   Alt + f            Move forward (right) one word
  Ctrl + k            Delete the sentence after the cursor
  Ctrl + u            Delete the sentence before the cursor
  Ctrl + w            Delete the word before the cursor

  Ctrl + l            Clear the screen
  Ctrl + c            Stop the model from responding
  Ctrl + d            Exit llamahost (/bye)
"""


@dataclass
class ReplSettings:
    """Session switches that ``run`` flags set and ``/set`` changes."""

    format: Format = None
    think: bool | None = None
    verbose: bool = False
    wordwrap: bool = True
    show_thinking: bool = True
    history: bool = True


def history_path() -> Path:
    """``~/.llamahost/history``: the REPL's readline history."""
    return Path.home() / ".llamahost" / "history"


def _cut_suffix(text: str, suffix: str) -> tuple[str, bool]:
    return (text[: -len(suffix)], True) if text.endswith(suffix) else (text, False)


class Repl:
    """One interactive session with a model; :meth:`run` returns the exit code."""

    def __init__(
        self,
        session: ChatSession,
        settings: ReplSettings | None = None,
        *,
        history_file: Path | None = None,
    ) -> None:
        self.session = session
        self.settings = settings or ReplSettings()
        if os.environ.get("LLAMAHOST_NOHISTORY"):
            self.settings.history = False
        self.system: str | None = None  # /set system: replaces the model's
        self.options: dict[str, Any] = {}  # /set parameter: over the model's
        self.messages: list[dict[str, str]] = []  # this session's turns
        self._history_file = history_file or history_path()
        self._readline: ModuleType | None = None
        self._buffer: list[str] = []
        self._multiline: str | None = None  # "prompt" or "system" while inside """

    # ---- the loop -----------------------------------------------------------------------

    def run(self) -> int:
        """Read and answer lines until /bye or end of input; returns 0."""
        self._setup_readline()
        self._replay_model_messages()
        while True:
            try:
                line = input(CONTINUATION_PROMPT if self._multiline else PROMPT)
            except EOFError:
                self._out("\n")
                return 0
            except KeyboardInterrupt:
                self._out("\nUse Ctrl + d or /bye to exit.\n")
                self._multiline = None
                self._buffer.clear()
                continue
            self._remember(line)
            try:
                if not self.handle(line):
                    return 0
            except KeyboardInterrupt:
                self._out("\n")

    def handle(self, line: str) -> bool:
        """Act on one input line; False when the session should end."""
        if self._multiline:
            text, closed = _cut_suffix(line, TRIPLE_QUOTE)
            self._buffer.append(text)
            if not closed:
                self._buffer.append("\n")
                return True
            text, kind = "".join(self._buffer), self._multiline
            self._buffer.clear()
            self._multiline = None
            if kind == "system":
                self._set_system(text)
            else:
                self._send(text)
            return True
        if line.startswith(TRIPLE_QUOTE):
            text, closed = _cut_suffix(line[len(TRIPLE_QUOTE) :], TRIPLE_QUOTE)
            if closed:
                self._send(text)
            else:
                self._buffer = [text, "\n"] if text else []  # a lone """ adds no empty line
                self._multiline = "prompt"
            return True
        if line.lstrip().startswith("/"):
            return self._command(line.strip())
        if line.strip():
            self._send(line)
        return True

    # ---- chatting -----------------------------------------------------------------------

    def _send(self, text: str) -> None:
        if not text.strip():
            return
        user = {"role": "user", "content": text}
        system = [{"role": "system", "content": self.system}] if self.system is not None else []
        writer = AnswerWriter(sys.stdout, wrap=self.settings.wordwrap)
        try:
            source = self.session.chat(
                [*system, *self.messages, user],
                format=self.settings.format,
                think=self.settings.think,
                options=self.options,
            )
            answer = stream_answer(source, writer, show_thinking=self.settings.show_thinking)
        except LlamahostError as exc:
            if not writer.ends_with_newline:
                self._out("\n")
            self._err(f"Error: {exc}\n")
            return
        if answer.content or not answer.interrupted:
            self.messages += [user, {"role": "assistant", "content": answer.content}]
        ending = "" if writer.ends_with_newline else "\n"
        self._out(ending if answer.interrupted else ending + "\n")
        if self.settings.verbose and answer.metrics is not None and not answer.interrupted:
            self._err(stats_text(answer.metrics))

    def _replay_model_messages(self) -> None:
        """Show the model's MESSAGE history, as Ollama does when a session starts."""
        for message in self.session.data.messages:
            role, content = message.get("role"), str(message.get("content", ""))
            if role == "user":
                self._out(f"{PROMPT}{content}\n")
            elif role == "assistant":
                self._out(f"{content}\n\n")

    # ---- commands -----------------------------------------------------------------------

    def _command(self, line: str) -> bool:
        words = line.split()
        head = words[0].lower()
        if head in ("/bye", "/exit"):
            return False
        handlers = {
            "/set": self._cmd_set,
            "/unset": self._cmd_unset,
            "/show": self._cmd_show,
            "/load": self._cmd_load,
            "/save": self._cmd_save,
            "/clear": self._cmd_clear,
            "/help": self._cmd_help,
            "/?": self._cmd_help,
        }
        handler = handlers.get(head)
        if handler is None:
            self._out(f"Unknown command '{words[0]}'. Type /? for help\n")
        else:
            handler(line, words)
        return True

    def _cmd_set(self, line: str, words: list[str]) -> None:
        if len(words) < 2:
            self._err(USAGE_SET + "\n")
            return
        what = words[1].lower()
        switches: dict[str, tuple[str, Any, str]] = {
            "verbose": ("verbose", True, "Set 'verbose' mode."),
            "quiet": ("verbose", False, "Set 'quiet' mode."),
            "wordwrap": ("wordwrap", True, "Set 'wordwrap' mode."),
            "nowordwrap": ("wordwrap", False, "Set 'nowordwrap' mode."),
            "think": ("think", True, "Set 'think' mode."),
            "nothink": ("think", False, "Set 'nothink' mode."),
            "noformat": ("format", None, "Disabled format."),
            "history": ("history", True, "Set 'history' mode."),
            "nohistory": ("history", False, "Set 'nohistory' mode."),
        }
        if what in switches:
            attribute, value, message = switches[what]
            setattr(self.settings, attribute, value)
            if attribute == "history" and self._readline is not None:
                self._readline.set_auto_history(value)
            self._out(message + "\n")
        elif what == "format":
            if len(words) < 3 or words[2] != "json":
                self._out("Invalid or missing format. For 'json' mode use '/set format json'\n")
            else:
                self.settings.format = "json"
                self._out("Set format to 'json' mode.\n")
        elif what == "parameter":
            self._set_parameter(words[2:])
        elif what == "system":
            parts = line.split(None, 2)
            if len(parts) < 3:
                self._err(USAGE_SET + "\n")
                return
            text = parts[2]
            if text.startswith(TRIPLE_QUOTE):
                text, closed = _cut_suffix(text[len(TRIPLE_QUOTE) :], TRIPLE_QUOTE)
                if not closed:
                    self._buffer = [text, "\n"] if text else []
                    self._multiline = "system"
                    return
            self._set_system(text)
        else:
            self._out(f"Unknown command '/set {words[1]}'. Type /? for help\n")

    def _set_parameter(self, args: list[str]) -> None:
        if len(args) < 2:
            self._err(USAGE_PARAMETERS + "\n")
            return
        name, values = args[0], args[1:]
        try:
            if name in LIST_PARAMETERS:
                value: Any = tuple(values)
                Options.from_mapping({name: value})  # validates the items
            else:
                value = parse_option_text(name, " ".join(values))
        except OptionError as exc:
            self._out(f"Couldn't set parameter: {exc}\n")
            return
        self.options[name] = value
        self._out(f"Set parameter '{name}' to '{', '.join(values)}'\n")

    def _set_system(self, text: str) -> None:
        self.system = text
        self._out("Set system message.\n")

    def _cmd_unset(self, line: str, words: list[str]) -> None:
        what = words[1].lower() if len(words) > 1 else ""
        if what == "format":
            self.settings.format = None
            self._out("Disabled format.\n")
        elif what == "system":
            self.system = None
            self._out("Cleared session system message.\n")
        elif what == "parameter" and len(words) > 2:
            if self.options.pop(words[2], None) is None:
                self._out(f"Parameter '{words[2]}' was not set in this session.\n")
            else:
                self._out(f"Unset parameter '{words[2]}'.\n")
        else:
            self._err(USAGE_UNSET + "\n")

    def _cmd_show(self, line: str, words: list[str]) -> None:
        if len(words) < 2:
            self._err(USAGE_SHOW + "\n")
            return
        what = words[1].lower()
        try:
            data = self.session.data
            if what == "info":
                params = self._merged_parameters()
                self._out(show_info(data, system=self.system, parameters=params) + "\n")
            elif what == "license":
                self._out((data.license or "No license was specified for this model.") + "\n")
            elif what == "modelfile":
                self._out(self.session.modelfile(self.system, self.options))
            elif what == "parameters":
                self._show_parameters()
            elif what == "system":
                system = self.system if self.system is not None else data.system
                self._out(
                    system + "\n\n"
                    if system
                    else "No system message was specified for this model.\n"
                )
            elif what == "template":
                template = data.template
                self._out(
                    template + "\n"
                    if template
                    else "No prompt template was specified for this model.\n"
                )
            else:
                self._out(f"Unknown command '/show {words[1]}'. Type /? for help\n")
        except LlamahostError as exc:
            self._out(f"error: {exc}\n")

    def _show_parameters(self) -> None:
        stored = parameter_lines(self.session.data.parameters)
        lines = ["Model defined parameters:"]
        if stored:
            lines += ["  " + line for line in stored.splitlines()]
        else:
            lines.append("  No additional parameters were specified for this model.")
        lines.append("")
        if self.options:
            lines.append("User defined parameters:")
            lines += [f"  {name:<30} {value}" for name, value in parameter_pairs(self.options)]
            lines.append("")
        self._out("\n".join(lines) + "\n")

    def _merged_parameters(self) -> ParameterTexts:
        """The model's parameters with the session's over them (as texts, for /show)."""
        merged = dict(self.session.data.parameters)
        merged.update(parameter_texts(self.options))
        return merged

    def _cmd_load(self, line: str, words: list[str]) -> None:
        if len(words) != 2:
            self._out("Usage:\n  /load <modelname>\n")
            return
        try:
            if not self.session.exists(words[1]):
                self._out(f"Couldn't find model '{words[1]}'\n")
                return
            self._out(f"Loading model '{words[1]}'\n")
            self.session.switch(words[1])
        except LlamahostError as exc:
            self._out(f"error: {exc}\n")
            return
        self.messages = []

    def _cmd_save(self, line: str, words: list[str]) -> None:
        if len(words) != 2:
            self._out("Usage:\n  /save <modelname>\n")
            return
        try:
            self.session.save(
                words[1], system=self.system, options=self.options, messages=self.messages
            )
        except LlamahostError as exc:
            self._out(f"error: {exc}\n")
            return
        self._out(f"Created new model '{words[1]}'\n")

    def _cmd_clear(self, line: str, words: list[str]) -> None:
        self.messages = []
        self._out("Cleared session context\n")

    def _cmd_help(self, line: str, words: list[str]) -> None:
        topic = words[1].lower().lstrip("/") if len(words) > 1 else ""
        usage = {
            "set": USAGE_SET,
            "unset": USAGE_UNSET,
            "show": USAGE_SHOW,
            "shortcut": USAGE_SHORTCUTS,
            "shortcuts": USAGE_SHORTCUTS,
            "parameter": USAGE_PARAMETERS,
            "parameters": USAGE_PARAMETERS,
        }
        self._err(usage.get(topic, USAGE) + "\n")

    # ---- terminal -----------------------------------------------------------------------

    def _setup_readline(self) -> None:
        """Line editing and history, when stdin is a terminal and readline is there."""
        if not sys.stdin.isatty():
            return
        try:
            import readline
        except ImportError:  # pragma: no cover - Python built without readline
            return
        self._readline = readline
        readline.set_history_length(HISTORY_LENGTH)  # the file is cut to this as it grows
        readline.set_auto_history(self.settings.history)
        if not self.settings.history:
            return
        try:
            self._history_file.parent.mkdir(parents=True, exist_ok=True)
            self._history_file.touch(exist_ok=True)
            readline.read_history_file(self._history_file)
        except OSError:
            self.settings.history = False

    def _remember(self, line: str) -> None:
        """Append the line just read to the history file."""
        if not line or not self.settings.history or self._readline is None:
            return
        try:
            self._readline.append_history_file(1, self._history_file)
        except OSError:
            self.settings.history = False

    @staticmethod
    def _out(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    @staticmethod
    def _err(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()
