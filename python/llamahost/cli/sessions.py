"""The model ``llamahost run`` talks to: loaded in this process, or on a server.

    session = open_session(store, args.model, insecure=False, keep_alive=None, load=True)
    source = session.chat(messages, format=None, think=None, options={})  # a ChunkSource
    session.data                      # what /show prints (ShowData)
    session.modelfile(system, options)
    session.exists("other"); session.switch("other")      # /load
    session.save("new", system=..., options=..., messages=...)   # /save
    session.close()

:class:`LocalSession` loads the model here (``ModelStore.load``; a missing model is pulled
first, as ``ollama run`` does). :class:`ServerSession` asks the server at LLAMAHOST_HOST,
which keeps the model loaded in a runner between commands for ``keep_alive``
(``--keepalive``; the server's default otherwise), so a second ``run`` starts at once. The
REPL and a one-shot answer use either through this interface, so they behave alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from llamahost.cli.answer import ChunkSource, ModelChat, ServerChat
from llamahost.cli.client import Client, ServerError
from llamahost.cli.names import model_name_arg, pull_model, pull_through
from llamahost.cli.output import warn
from llamahost.cli.show import ShowData, modelfile_text, show_data, show_data_of
from llamahost.cli.store_check import store_problem
from llamahost.errors import ModelNotFoundError, OptionError, RegistryError
from llamahost.store.model_store import ModelStore
from llamahost.store.names import ModelName

if TYPE_CHECKING:
    from llamahost.engine.model import Model
    from llamahost.engine.structured import Format


class ChatSession(Protocol):
    """A model to chat with, as the REPL uses it."""

    text: str
    """The model as the user named it."""

    @property
    def data(self) -> ShowData:
        """What ``/show`` prints about the model as stored."""

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        format: Format,
        think: bool | None,
        options: Mapping[str, Any],
    ) -> ChunkSource:
        """The answer to `messages`."""

    def modelfile(self, system: str | None, options: Mapping[str, Any]) -> str:
        """``/show modelfile``: the model with the session's system and parameters."""

    def exists(self, text: str) -> bool:
        """Whether the model `text` is stored (for ``/load``)."""

    def switch(self, text: str) -> None:
        """Load the model `text` in place of this one."""

    def save(
        self,
        text: str,
        *,
        system: str | None,
        options: Mapping[str, Any],
        messages: Sequence[Mapping[str, str]],
    ) -> None:
        """``/save``: store a new model built FROM this one with the session's settings."""

    def close(self) -> None:
        """Release the model."""


def _plain(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as JSON carries them (``stop`` as a list)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def _pull_failed(name: ModelName, where: str, exc: Exception) -> RegistryError:
    """A failed pull of a model `run` needs: it says the model is missing, and why the
    pull failed (e.g. which registry could not be reached)."""
    reason = str(exc).removeprefix(f"pull {name.display_long()}: ")
    status = getattr(exc, "status", None)
    return RegistryError(
        f"model '{name.display_shortest()}' is not in the store ({where}), and pulling it "
        f"failed: {reason}",
        status=status,
        code=getattr(exc, "code", None),
    )


# ---- in this process --------------------------------------------------------------------


class LocalSession:
    """A model loaded in this process from the store."""

    def __init__(self, store: ModelStore, text: str, *, insecure: bool = False) -> None:
        self.store = store
        self.text = text
        self.name = ensure_model(store, text, insecure=insecure)
        self.resolved = store.resolve(self.name)
        self.model: Model = store.load(self.resolved)

    @cached_property
    def data(self) -> ShowData:
        return show_data(self.resolved)

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        format: Format,
        think: bool | None,
        options: Mapping[str, Any],
    ) -> ChunkSource:
        return ModelChat(self.model, messages, format=format, think=think, options=options)

    def modelfile(self, system: str | None, options: Mapping[str, Any]) -> str:
        parameters = dict(self.resolved.parameters)
        parameters.update(_plain(options))
        return modelfile_text(self.resolved, system=system, parameters=parameters)

    def exists(self, text: str) -> bool:
        return self.store.has(model_name_arg(text))

    def switch(self, text: str) -> None:
        name = model_name_arg(text)
        resolved = self.store.resolve(name)
        model = self.store.load(resolved)
        self.model.close()
        self.model, self.resolved, self.name, self.text = model, resolved, name, text
        self.__dict__.pop("data", None)

    def save(
        self,
        text: str,
        *,
        system: str | None,
        options: Mapping[str, Any],
        messages: Sequence[Mapping[str, str]],
    ) -> None:
        from llamahost.modelfile.create import create_model
        from llamahost.modelfile.parser import Modelfile

        modelfile = Modelfile.build(
            self.name.display_long(),
            system=system,
            parameters=options,
            messages=[(m["role"], m["content"]) for m in messages],
        )
        create_model(self.store, text, modelfile, base_dir=Path.cwd())

    def close(self) -> None:
        self.model.close()


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
        raise _pull_failed(name, str(store.root), exc) from exc


# ---- on a server ------------------------------------------------------------------------


class ServerSession:
    """A model on a server: chats go to ``/api/chat``, which reuses the loaded runner."""

    def __init__(
        self,
        client: Client,
        text: str,
        *,
        insecure: bool = False,
        keep_alive: str | None = None,
        load: bool = False,
    ) -> None:
        self.client = client
        self.keep_alive = keep_alive
        self.text = text
        self._response = ensure_on_server(client, text, insecure=insecure)
        if load:
            self._load()

    def _load(self) -> None:
        request: dict[str, Any] = {"model": self.text}
        if self.keep_alive is not None:
            request["keep_alive"] = self.keep_alive
        self.client.generate(request)

    @cached_property
    def data(self) -> ShowData:
        return show_data_of(self._response)

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        format: Format,
        think: bool | None,
        options: Mapping[str, Any],
    ) -> ChunkSource:
        request: dict[str, Any] = {"model": self.text, "messages": list(messages)}
        if format is not None:
            request["format"] = format
        if think is not None:
            request["think"] = think
        if options:
            request["options"] = _plain(options)
        if self.keep_alive is not None:
            request["keep_alive"] = self.keep_alive
        return ServerChat(self.client, request)

    def modelfile(self, system: str | None, options: Mapping[str, Any]) -> str:
        response = self.client.show(self.text, system=system, options=_plain(options))
        return str(response.get("modelfile") or "")

    def exists(self, text: str) -> bool:
        model_name_arg(text)
        try:
            self.client.show(text)
        except ServerError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def switch(self, text: str) -> None:
        response = self.client.show(text)
        self.text, self._response = text, response
        self.__dict__.pop("data", None)
        self._load()

    def save(
        self,
        text: str,
        *,
        system: str | None,
        options: Mapping[str, Any],
        messages: Sequence[Mapping[str, str]],
    ) -> None:
        ModelName.parse(text)  # a bad name: the same error as in-process
        request: dict[str, Any] = {"model": text, "from": self.text}
        if system:
            request["system"] = system
        if options:
            request["parameters"] = _plain(options)
        if messages:
            request["messages"] = [dict(m) for m in messages]
        for _ in self.client.create(request):
            pass

    def close(self) -> None:
        pass  # the server keeps the model loaded for keep_alive


def ensure_on_server(client: Client, text: str, *, insecure: bool = False) -> dict[str, Any]:
    """The server's ``/api/show`` answer for `text`, after pulling it (through the server,
    with progress) when the server does not have it."""
    name = model_name_arg(text)
    try:
        return client.show(text)
    except ServerError as exc:
        if exc.status != 404:
            raise
    try:
        pull_through(client, text, insecure=insecure)
    except ServerError as exc:
        raise _pull_failed(name, f"of llamahost at {client.address.shown}", exc) from None
    try:
        return client.show(text)
    except ServerError as exc:
        if exc.status == 404:
            raise ModelNotFoundError(f"model '{name.display_shortest()}' not found") from None
        raise


def open_session(
    store: ModelStore,
    client: Client | None,
    text: str,
    *,
    insecure: bool = False,
    keep_alive: str | None = None,
    load: bool = True,
) -> ChatSession:
    """The model `text` through `client` if there is one, else loaded in this process.

    ``load`` asks a server to load the model now (the REPL, or an empty prompt); otherwise
    the first chat loads it. Without a server ``keep_alive`` has no effect (the model
    lives as long as this process): a warning says so.
    """
    if client is not None:
        return ServerSession(client, text, insecure=insecure, keep_alive=keep_alive, load=load)
    if keep_alive is not None:
        warn(
            "--keepalive applies only through a server (llamahost serve); "
            "this model is unloaded when the command ends"
        )
    return LocalSession(store, text, insecure=insecure)
