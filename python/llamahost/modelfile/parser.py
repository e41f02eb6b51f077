'''Modelfiles, Ollama's recipe for a model: parsed by an explicit state machine, written back.

    FROM llama3.2                         # a model name, a GGUF file or a folder
    PARAMETER temperature 0.7
    PARAMETER stop "<|eot_id|>"           # stop may repeat: the values accumulate
    TEMPLATE """{{ if .System }}{{ .System }} {{ end }}{{ .Prompt }}"""
    SYSTEM You are Mario from Super Mario Bros.
    MESSAGE user Is Toronto in Canada?
    MESSAGE assistant yes

    modelfile = parse(text)               # ModelfileError naming the line on any mistake
    modelfile.from_, modelfile.parameters, modelfile.template, modelfile.messages, ...
    text = format_modelfile(modelfile)    # parse(text) == modelfile, commands in their order
    text = modelfile.to_text("m:latest")  # what `show --modelfile` prints

Syntax, as Ollama's ``parser/parser.go`` reads it:

- An instruction is a keyword and its arguments: ``FROM``, ``TEMPLATE``, ``SYSTEM``,
  ``ADAPTER``, ``LICENSE``, ``REQUIRES`` take a value; ``PARAMETER <name> <value>`` and
  ``MESSAGE <role> <content>`` take a name first. Keywords, parameter names and roles are
  case-insensitive. Instructions may come in any order; FROM is required and may repeat
  (a split GGUF's shards), ADAPTER, PARAMETER ``stop``, LICENSE and MESSAGE accumulate, and
  a repeated TEMPLATE, SYSTEM, REQUIRES or single-valued parameter keeps the last value.
- Blank lines are skipped, and so is a line whose first non-blank character is ``#``.
  There are no comments after an instruction: ``FROM llama3 # x`` names ``llama3 # x``.
- A value starts at its first non-blank character and drops blanks (spaces, tabs) at its end.
  Unquoted, it is the rest of the line. A value starting with ``"""`` ends at the first line
  end (or the end of the text) that ``"""`` precedes, blanks aside, and is everything between
  the quotes, line breaks and inner quotes included; one starting with a single ``"`` ends
  the same way at a ``"`` (so it may also span lines). ``""`` and ``""""""`` are empty.
  Line breaks are ``\\n``, ``\\r\\n`` or ``\\r``; a quoted value keeps the ones it contains.

Writing (:func:`format_modelfile`) leaves a value bare unless it spans lines, starts or
ends with a blank, or holds a ``"``; those it writes as ``"""value"""`` (an empty value as
``""``). A ``"""`` inside a value needs nothing special: ``SYSTEM """a """b""" c"""``
reads back as ``a """b""" c``. What no Modelfile can hold is a value with a line that ends
in ``"""`` (blanks aside) followed by more lines, such as a system prompt quoting a Python
docstring: that ``"""`` would end the value. :func:`parse` never returns such a value (the
line would have ended it), so ``parse(format_modelfile(parse(text))) == parse(text)``
always holds. For such a value in a Modelfile built in code, formatting raises
ModelfileError naming the instruction, where Ollama writes text that reads back differently.

Where this parser differs from Ollama's, on purpose:

- PARAMETER values, MESSAGE roles and the REQUIRES version are checked while parsing, so
  each error names its line (Ollama checks parameters later, when it creates the model).
  Values are typed by :func:`llamahost.engine.options.parse_option_text`.
- Parameter names and roles are case-insensitive (Ollama's must be lower case), an unquoted
  empty value is an error (Ollama stores ""; write ``""`` for an empty value), ``\\r\\n``
  counts as one line, and characters Ollama's reader silently drops (control characters
  other than tab, non-ASCII spaces, zero-width joiners) are kept.
- Ollama's ``DRAFT``, ``RENDERER`` and ``PARSER`` instructions are rejected with a message
  saying llamahost does not support them. The text is a ``str``: decoding a file (UTF-16 with
  a BOM, say) is the caller's job; a leading byte-order mark is skipped.
'''

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llamahost.engine.options import OPTION_SPECS, Options, describe_options, parse_option_text
from llamahost.errors import ModelfileError, OptionError

INSTRUCTIONS: tuple[str, ...] = (
    "from",
    "parameter",
    "template",
    "system",
    "adapter",
    "license",
    "message",
    "requires",
)
MESSAGE_ROLES: tuple[str, ...] = ("system", "user", "assistant")

# What each instruction's argument is, for "FROM needs ..." messages.
_ARGUMENT: dict[str, str] = {
    "from": "a model name or a path",
    "parameter": "a parameter name and a value, e.g. `PARAMETER temperature 0.7`",
    "template": "a prompt template",
    "system": "a system message",
    "adapter": "the path of a LoRA adapter",
    "license": "the license text",
    "message": "a role and the message text, e.g. `MESSAGE user Hello`",
    "requires": "a version, e.g. `REQUIRES 0.14.0`",
}
_KEYED = ("parameter", "message")  # instructions whose first argument is a name
# Ollama instructions llamahost does not implement, with what they do.
_UNSUPPORTED: dict[str, str] = {
    "draft": "a draft model for speculative decoding",
    "renderer": "one of Ollama's built-in Go prompt renderers",
    "parser": "one of Ollama's built-in Go output parsers",
}
_BLANKS = " \t"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_TRIPLE = '"""'
# Options that hold a list of strings (``stop``): each PARAMETER line adds one.
_LIST_OPTIONS = frozenset(
    name for name, _, default, _ in describe_options() if isinstance(default, tuple)
)
_DEFAULT_OPTIONS = Options()
# Go's golang.org/x/mod/semver, which Ollama checks REQUIRES with (after adding the "v").
_NUMBER = r"(?:0|[1-9][0-9]*)"
_PRERELEASE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
_SEMVER = re.compile(
    rf"v{_NUMBER}(?:\.{_NUMBER}(?:\.{_NUMBER}"
    rf"(?:-{_PRERELEASE_ID}(?:\.{_PRERELEASE_ID})*)?(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?)?)?"
)


@dataclass(frozen=True)
class Command:
    """One instruction of a Modelfile.

    ``name`` is the instruction keyword in lower case (``"from"``, ``"parameter"``, ...) and
    ``args`` its value with the quotes removed: for PARAMETER the value text, for MESSAGE the
    content. ``key`` is the parameter name for PARAMETER and the role for MESSAGE (lower
    case), "" otherwise. ``line`` is the line the instruction starts on (0 for one built in
    code); comparisons leave it out, so a reformatted, reparsed Modelfile equals the original.
    """

    name: str
    args: str
    line: int = field(default=0, compare=False)
    key: str = field(default="", kw_only=True)


@dataclass(frozen=True)
class Modelfile:
    """A parsed Modelfile: its instructions in order, checked, with typed accessors.

    Building one checks every command (a ModelfileError names the bad one's line) and that
    there is a FROM, so the accessors below never fail.
    """

    commands: tuple[Command, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "commands", tuple(self.commands))
        for command in self.commands:
            _check_command(command)
        if not any(command.name == "from" for command in self.commands):
            raise ModelfileError(
                "no FROM instruction: a Modelfile needs `FROM <model name or path>`"
            )

    @classmethod
    def build(
        cls,
        from_: str | Iterable[str],
        *,
        adapters: Iterable[str] = (),
        template: str | None = None,
        system: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        license: str | Iterable[str] = (),
        messages: Iterable[tuple[str, str]] = (),
        requires: str | None = None,
    ) -> Modelfile:
        """A Modelfile with these settings, in the order `show --modelfile` lists them.

        ``parameters`` takes typed values (``Options.changed()``); a list or tuple value
        (``stop``) becomes one PARAMETER line per item, and None values are left out.
        """
        commands = [Command("from", value) for value in _strings(from_)]
        commands += [Command("adapter", path) for path in adapters]
        if template is not None:
            commands.append(Command("template", template))
        if system is not None:
            commands.append(Command("system", system))
        for name, value in (parameters or {}).items():
            items = value if isinstance(value, (list, tuple)) else (value,)
            commands += [
                Command("parameter", _option_text(item), key=name)
                for item in items
                if item is not None
            ]
        commands += [Command("license", text) for text in _strings(license)]
        commands += [Command("message", content, key=role) for role, content in messages]
        if requires is not None:
            commands.append(Command("requires", requires))
        return cls(tuple(commands))

    @property
    def from_(self) -> str:
        """The first FROM value: a model name, or a path to a GGUF file or a folder."""
        return self.froms[0]

    @property
    def froms(self) -> tuple[str, ...]:
        """Every FROM value in order (a split GGUF may list its shards one FROM each)."""
        return self._values("from")

    @property
    def parameters(self) -> dict[str, Any]:
        """PARAMETER values by name, typed as Options takes them; ``stop`` is a tuple."""
        values: dict[str, Any] = {}
        for command in self.commands:
            if command.name == "parameter":
                value = _parameter_value(command)
                if command.key in _LIST_OPTIONS:
                    value = (*values.get(command.key, ()), value)
                values[command.key] = value
        return values

    @property
    def template(self) -> str | None:
        """The last TEMPLATE (Go template text), or None."""
        return self._last("template")

    @property
    def system(self) -> str | None:
        """The last SYSTEM message, or None."""
        return self._last("system")

    @property
    def adapters(self) -> list[str]:
        """Every ADAPTER path, in order."""
        return list(self._values("adapter"))

    @property
    def license(self) -> list[str]:
        """Every LICENSE text, in order."""
        return list(self._values("license"))

    @property
    def messages(self) -> list[tuple[str, str]]:
        """The MESSAGE history as (role, content) pairs, in order."""
        return [(c.key, c.args) for c in self.commands if c.name == "message"]

    @property
    def requires(self) -> str | None:
        """The last REQUIRES version without a leading ``v`` (``0.14.0``), or None."""
        command = next((c for c in reversed(self.commands) if c.name == "requires"), None)
        return None if command is None else _version(command)

    def to_text(self, name: str | None = None) -> str:
        '''This Modelfile as ``ollama show --modelfile`` prints one.

        The settings come in a fixed order (FROM, ADAPTER, TEMPLATE, SYSTEM, PARAMETER,
        LICENSE, MESSAGE, REQUIRES) with only the value that counts for each single-valued
        one; TEMPLATE, SYSTEM and LICENSE are written as ``"""..."""`` blocks and string
        parameters in ``"..."``. With ``name``, a header says how to build on this model.
        The text parses back to a Modelfile with the same settings.
        '''
        canonical = Modelfile.build(
            self.froms,
            adapters=self.adapters,
            template=self.template,
            system=self.system,
            parameters=self.parameters,
            license=self.license,
            messages=self.messages,
            requires=self.requires,
        )
        header = ""
        if name is not None:
            if _LINE_BREAK.search(name):
                raise ModelfileError(f"a model name cannot hold a line break, got {name!r}")
            header = (
                '# Modelfile generated by "llamahost show"\n'
                "# To build a new Modelfile based on this, replace FROM with:\n"
                f"# FROM {name}\n\n"
            )
        return header + "".join(
            _format_command(c, _show_style_quote) + "\n" for c in canonical.commands
        )

    def _values(self, name: str) -> tuple[str, ...]:
        return tuple(c.args for c in self.commands if c.name == name)

    def _last(self, name: str) -> str | None:
        values = self._values(name)
        return values[-1] if values else None


def parse(text: str) -> Modelfile:
    """Parse Modelfile text; ModelfileError names the line of the first problem."""
    return Modelfile(tuple(_Parser(text.removeprefix("\ufeff")).run()))


def format_modelfile(modelfile: Modelfile) -> str:
    '''Modelfile text for these commands, in their order, quoting only where needed.

    ``parse(format_modelfile(m)) == m`` for every Modelfile ``parse`` returns; comments and
    blank lines are not kept. Raises ModelfileError for a value no Modelfile can hold (a
    line ending in ``"""`` followed by more lines; see the module docstring).
    '''
    return "".join(_format_command(c, _quote) + "\n" for c in modelfile.commands)


# ---- the state machine ----------------------------------------------------------------


class _State(enum.Enum):
    IDLE = enum.auto()  # between instructions: blanks and blank lines
    COMMENT = enum.auto()  # a line whose first non-blank character is '#'
    KEYWORD = enum.auto()  # the instruction keyword
    KEY = enum.auto()  # PARAMETER's name or MESSAGE's role
    VALUE = enum.auto()  # blanks before a value; its first character picks bare or quoted
    BARE = enum.auto()  # an unquoted value: the rest of the line
    QUOTED = enum.auto()  # a "..." or """...""" value, possibly over several lines
    END = enum.auto()


class _Parser:
    """Walks the text line by line and column by column; each state's handler consumes what
    belongs to it and returns the next state. Commands are checked as they are completed, so
    the first error in the text is the one reported."""

    def __init__(self, text: str) -> None:
        # (line text, the line break that ends it: "\n", "\r\n", "\r", or "" for the last)
        self.lines: list[tuple[str, str]] = []
        start = 0
        for match in _LINE_BREAK.finditer(text):
            self.lines.append((text[start : match.start()], match.group()))
            start = match.end()
        self.lines.append((text[start:], ""))
        self.row = 0  # index into self.lines
        self.col = 0  # index into the current line
        self.commands: list[Command] = []
        # the instruction being read
        self.name = ""
        self.key = ""
        self.start_row = 0
        self.quote = ""
        self.parts: list[str] = []

    def run(self) -> list[Command]:
        handlers: dict[_State, Callable[[], _State]] = {
            _State.IDLE: self._idle,
            _State.COMMENT: self._next_line,
            _State.KEYWORD: self._keyword,
            _State.KEY: self._key,
            _State.VALUE: self._value,
            _State.BARE: self._bare,
            _State.QUOTED: self._quoted,
        }
        state = _State.IDLE
        while state is not _State.END:
            state = handlers[state]()
        return self.commands

    # -- handlers

    def _idle(self) -> _State:
        self._skip_blanks()
        rest = self._rest()
        if not rest:
            return self._next_line()
        return _State.COMMENT if rest[0] == "#" else _State.KEYWORD

    def _keyword(self) -> _State:
        self.start_row = self.row
        word = self._take_word()
        name = word.lower()
        if name not in INSTRUCTIONS:
            raise _unknown_instruction(word, self.row + 1)
        self.name, self.key = name, ""
        return _State.KEY if name in _KEYED else _State.VALUE

    def _key(self) -> _State:
        self._skip_blanks()
        if not self._rest():
            raise self._error(f"{self.name.upper()} needs {_ARGUMENT[self.name]}")
        self.key = self._take_word().lower()
        _check_key(self.name, self.key, self.row + 1)
        return _State.VALUE

    def _value(self) -> _State:
        self._skip_blanks()
        rest = self._rest()
        if not rest:
            if self.name == "parameter":
                raise self._error(f"PARAMETER `{self.key}` needs a value")
            if self.name == "message":
                raise self._error(f"MESSAGE {self.key} needs the message text")
            raise self._error(f"{self.name.upper()} needs {_ARGUMENT[self.name]}")
        if rest[0] != '"':
            return _State.BARE
        self.quote = _TRIPLE if rest.startswith(_TRIPLE) else '"'
        self.parts = []
        return _State.QUOTED

    def _bare(self) -> _State:
        self._emit(self._rest().rstrip(_BLANKS))
        return self._next_line()

    def _quoted(self) -> _State:
        # Ollama's rule: the value closes at the first line end where the text read so far,
        # blanks trimmed, ends with the quote and is longer than the opening quote alone.
        segment = self._rest()
        self.parts.append(segment)
        trimmed = segment.rstrip(_BLANKS)
        quote = self.quote
        long_enough = self.row != self.start_row or len(trimmed) >= 2 * len(quote)
        if trimmed.endswith(quote) and long_enough:
            value = "".join(self.parts)
            value = value[len(quote) : len(value) - (len(segment) - len(trimmed)) - len(quote)]
            self._emit(value)
            return self._next_line()
        line_break = self.lines[self.row][1]
        if not line_break:
            raise ModelfileError(
                f"the {self.name.upper()} value opened with `{quote}` is never closed: "
                f"end it with `{quote}` at the end of a line",
                self.start_row + 1,
            )
        self.parts.append(line_break)
        self.row, self.col = self.row + 1, 0
        return _State.QUOTED

    def _next_line(self) -> _State:
        self.row, self.col = self.row + 1, 0
        return _State.IDLE if self.row < len(self.lines) else _State.END

    # -- helpers

    def _rest(self) -> str:
        return self.lines[self.row][0][self.col :]

    def _skip_blanks(self) -> None:
        line = self.lines[self.row][0]
        while self.col < len(line) and line[self.col] in _BLANKS:
            self.col += 1

    def _take_word(self) -> str:
        line, start = self.lines[self.row][0], self.col
        while self.col < len(line) and line[self.col] not in _BLANKS:
            self.col += 1
        return line[start : self.col]

    def _emit(self, args: str) -> None:
        command = Command(self.name, args, self.start_row + 1, key=self.key)
        _check_command(command)
        self.commands.append(command)

    def _error(self, message: str) -> ModelfileError:
        return ModelfileError(message, self.start_row + 1)


# ---- checking and typing values -------------------------------------------------------


def _check_command(command: Command) -> None:
    """Raise ModelfileError, with the command's line, if the command is not valid."""
    line = command.line or None
    name, key = command.name, command.key
    if name not in INSTRUCTIONS:
        raise _unknown_instruction(name, line)
    if name in _KEYED:
        if not key:
            raise ModelfileError(f"{name.upper()} needs {_ARGUMENT[name]}", line)
        _check_key(name, key, line)
    elif key:
        raise ModelfileError(f"{name.upper()} takes no name, got `{key}`", line)
    if name == "parameter":
        _parameter_value(command)
    elif name == "requires":
        _version(command)
    elif name in ("from", "adapter") and not command.args.strip():
        raise ModelfileError(f"{name.upper()} needs {_ARGUMENT[name]}", line)


def _check_key(name: str, key: str, line: int | None) -> None:
    """A PARAMETER name must be an option; a MESSAGE role one of Ollama's three."""
    if name == "message":
        if key not in MESSAGE_ROLES:
            roles = ", ".join(f'"{role}"' for role in MESSAGE_ROLES)
            raise ModelfileError(f"MESSAGE role must be one of {roles}, got `{key}`", line)
        return
    if key in OPTION_SPECS:
        return
    close = difflib.get_close_matches(key, list(OPTION_SPECS), n=1)
    if close:
        raise ModelfileError(f"unknown parameter `{key}`; did you mean `{close[0]}`?", line)
    valid = ", ".join(sorted(OPTION_SPECS))
    raise ModelfileError(f"unknown parameter `{_shorten(key)}` (valid parameters: {valid})", line)


def _parameter_value(command: Command) -> Any:
    """The typed value of one PARAMETER (one item of a list option such as ``stop``)."""
    line = command.line or None
    _check_key("parameter", command.key, line)
    try:
        if command.key in _LIST_OPTIONS:
            # parse_option_text strips the text; a stop string keeps its blanks, as in Ollama.
            _DEFAULT_OPTIONS.merged({command.key: (command.args,)})
            return command.args
        return parse_option_text(command.key, command.args)
    except OptionError as exc:
        raise ModelfileError(str(exc), line) from exc


def _version(command: Command) -> str:
    """REQUIRES' version as Ollama stores it: semver, with or without a leading ``v``."""
    text = command.args if command.args.startswith("v") else "v" + command.args
    if not _SEMVER.fullmatch(text):
        raise ModelfileError(
            f"REQUIRES needs a semantic version such as `0.14.0`, got `{_shorten(command.args)}`",
            command.line or None,
        )
    return text[1:]


def _unknown_instruction(word: str, line: int | None) -> ModelfileError:
    valid = ", ".join(name.upper() for name in INSTRUCTIONS)
    lowered = word.lower()
    if lowered in _UNSUPPORTED:
        return ModelfileError(
            f"`{word}` ({_UNSUPPORTED[lowered]}) is an Ollama instruction llamahost does not "
            f"support; the instructions are {valid}",
            line,
        )
    close = difflib.get_close_matches(lowered, INSTRUCTIONS, n=1)
    hint = f"; did you mean `{close[0].upper()}`?" if close else ""
    return ModelfileError(
        f"unknown instruction `{_shorten(word)}`{hint} (the instructions are {valid})", line
    )


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _strings(values: str | Iterable[str]) -> list[str]:
    return [values] if isinstance(values, str) else list(values)


def _option_text(value: Any) -> str:
    """An option's typed value as PARAMETER text that parse_option_text reads back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


# ---- writing ----------------------------------------------------------------------------


def _format_command(command: Command, quote: Callable[[Command], str]) -> str:
    head = command.name.upper()
    if command.key:
        head = f"{head} {command.key}"
    return f"{head} {quote(command)}"


def _quote(command: Command) -> str:
    """The value as written by format_modelfile: bare unless it has to be quoted."""
    value = command.args
    if not value:
        return '""'
    needs_quotes = (
        value[0] in _BLANKS
        or value[-1] in _BLANKS
        or '"' in value
        or _LINE_BREAK.search(value) is not None
    )
    return _triple_quoted(command) if needs_quotes else value


def _show_style_quote(command: Command) -> str:
    """The value as `ollama show` writes it: text blocks in triple quotes, strings quoted."""
    if command.name in ("template", "system", "license"):
        return _triple_quoted(command)
    is_string = command.name == "parameter" and isinstance(_parameter_value(command), str)
    if is_string and '"' not in command.args:
        return f'"{command.args}"'
    return _quote(command)


def _triple_quoted(command: Command) -> str:
    '''``"""value"""``, or ModelfileError if a line of the value would close it early.'''
    lines = _LINE_BREAK.split(command.args)
    for number, text in enumerate(lines[:-1], start=1):
        if text.rstrip(_BLANKS).endswith(_TRIPLE):
            where = command.name.upper() + (f" {command.key}" if command.key else "")
            raise ModelfileError(
                f"the {where} value cannot be written in a Modelfile: its line {number} ends "
                f'with `"""`, which would end the value there',
                command.line or None,
            )
    return f"{_TRIPLE}{command.args}{_TRIPLE}"
