"""Pull and push models through an OCI distribution v2 registry, in Ollama's layout.

A model name maps to registry URLs like this (``http`` instead of ``https`` with
``RegistryClient(insecure=True)``, which a loopback registry needs)::

    name        registry.ollama.ai/library/llama3.2:1b
    manifest    https://registry.ollama.ai/v2/library/llama3.2/manifests/1b
    blob        https://registry.ollama.ai/v2/library/llama3.2/blobs/sha256:<hex>
    upload      POST https://registry.ollama.ai/v2/library/llama3.2/blobs/uploads/
                -> 202, Location: <upload URL>; then PUT <upload URL>&digest=sha256:<hex>

The repository (``library/llama3.2``) is lower-cased, as OCI repository names must be;
the tag is sent as written.

Pull: GET the manifest (Docker v2 or OCI media type, at most ``max_body_bytes``), check
it (every digest parsed, ``Docker-Content-Digest`` matched when sent), download each layer
and then the config blob unless the store has it, each verified by BlobStore before it is
published, and only then write the manifest's exact bytes with ManifestStore. Progress
events carry Ollama's statuses: ``pulling manifest``, ``pulling <12 hex>`` (with
``digest``, ``total``, ``completed``), ``verifying sha256 digest``, ``writing manifest``,
``success``. Push: ``retrieving manifest``, ``pushing <12 hex>`` per blob (HEAD; a
cross-repository mount when a layer's ``from`` names another model on the same registry;
else POST + PUT), ``pushing manifest`` (PUT with the manifest's media type), ``success``.

Authentication, on a ``401`` answer only:

- ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``: a token is fetched from
  the realm (with the username and password as Basic credentials, when given) and sent as
  ``Authorization: Bearer <token>``. A realm on another origin than the registry's (scheme,
  host and port compared, default ports filled in) is refused without being contacted,
  since it would learn the credentials. A token that is not one line of visible ASCII
  (a CR or LF would split the header) is refused.
- ``WWW-Authenticate: Basic``: the username and password are sent.

Blob GETs follow redirects (registries send clients to their storage) to ``http(s)``
URLs only (``https`` only unless ``insecure``), at most 10; ``Authorization`` goes to the
registry's own origin and never to another host.

Deadlines (``timeout``, ``stall_timeout_s``, ``min_speed_bps``; see http_client.py): a
registry that does not answer, answers its headers too slowly, or sends a body slower than
the minimum speed over a stall window fails the attempt; a blob download then resumes with
``Range`` (up to ``max_retries`` failures in a row), and the last failure keeps the
partial file for the next pull. A host that cannot be resolved is not retried:
RegistryConnectionError says which registry could not be reached.

Before downloading, the layers' declared sizes (less what the store already holds, whole
or partial) are compared with the free space of the store's disk (limits.py). The blobs of
a pull are held in a lease (locking.py) from before the first is checked until the
manifest is written, so a concurrent ``rm`` or ``prune`` cannot collect them.

The conversation with the registry (requests, retries, redirects, authentication, errors)
is in registry_session.py; the bytes of blobs move in transfer.py.

Not supported: Ollama's key-signed token requests (registry.ollama.ai's push
authentication), chunked (``PATCH``) and resumable uploads, manifest lists, and parallel
ranged downloads of one blob.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llamahost.errors import (
    BlobNotFoundError,
    InvalidNameError,
    ManifestError,
    ManifestNotFoundError,
    OptionError,
    RegistryError,
    RegistryResponseError,
)
from llamahost.store.blobs import BlobStore
from llamahost.store.digests import Digest
from llamahost.store.http_client import DEFAULT_MAX_BODY_BYTES, Deadlines
from llamahost.store.limits import check_free_space
from llamahost.store.locking import Lease
from llamahost.store.manifests import (
    MANIFEST_MEDIA_TYPE,
    OCI_MANIFEST_MEDIA_TYPE,
    Layer,
    Manifest,
    ManifestStore,
)
from llamahost.store.names import ModelName
from llamahost.store.registry_session import RegistrySession, parse_challenge, repository
from llamahost.store.transfer import download_blob, upload_blob

DEFAULT_USER_AGENT = "llamahost"
_HEADER_TEXT = re.compile(r"[\x20-\x7e]+")


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a pull or push, shaped like Ollama's ``ProgressResponse``.

    ``status`` is e.g. ``"pulling manifest"`` or ``"pulling 1a2b3c4d5e6f"``; blob events
    also carry the blob's ``digest`` (``sha256:<hex>``), ``total`` and ``completed`` bytes.
    """

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None

    def to_dict(self) -> dict[str, object]:
        """The JSON object Ollama streams: ``status`` plus the fields that are set."""
        data: dict[str, object] = {"status": self.status}
        for key in ("digest", "total", "completed"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


ProgressCallback = Callable[[ProgressEvent], None]


class RegistryClient:
    """Pulls models from and pushes them to OCI distribution v2 registries.

    ``insecure`` talks plain ``http`` (needed for a registry on loopback without TLS).
    ``username``/``password`` answer Basic challenges and go to same-origin token realms.
    ``timeout`` bounds connecting and receiving a response's headers, in seconds; a body
    must average ``min_speed_bps`` over every ``stall_timeout_s`` seconds (silence
    included). ``max_retries`` bounds failed attempts in a row (network errors, stalled or
    cut bodies, 429/5xx), each followed by an exponential, jittered backoff starting at
    ``retry_backoff_s``. ``max_body_bytes`` caps a body that is not a blob (manifest,
    error, token). One client may serve several threads.
    """

    def __init__(
        self,
        *,
        insecure: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        user_agent: str = DEFAULT_USER_AGENT,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        retry_backoff_s: float = 0.5,
        stall_timeout_s: float = 30.0,
        min_speed_bps: int = 1024,
    ) -> None:
        if (username is None) != (password is None):
            raise OptionError(
                "`username` and `password` must be given together, got only one", "username"
            )
        _check_number("timeout", timeout, minimum=0.0, exclusive=True)
        _check_number("stall_timeout_s", stall_timeout_s, minimum=0.0, exclusive=True)
        _check_number("retry_backoff_s", retry_backoff_s, minimum=0.0)
        _check_int("max_retries", max_retries, minimum=0)
        _check_int("max_body_bytes", max_body_bytes, minimum=1)
        _check_int("min_speed_bps", min_speed_bps, minimum=0)
        if not isinstance(user_agent, str) or _HEADER_TEXT.fullmatch(user_agent) is None:
            raise OptionError(
                f"`user_agent` must be one line of printable ASCII, got {user_agent!r}",
                "user_agent",
            )
        self.insecure = insecure
        self.username = username
        self.password = password
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.user_agent = user_agent
        self.max_body_bytes = max_body_bytes
        self.retry_backoff_s = float(retry_backoff_s)
        self.deadlines = Deadlines(float(timeout), float(stall_timeout_s), min_speed_bps)

    def base_url(self, name: ModelName) -> str:
        """``https://<host>`` (``http`` when insecure) of the registry holding ``name``."""
        return f"{'http' if self.insecure else 'https'}://{name.host}"

    def manifest_url(self, name: ModelName) -> str:
        """Where ``name``'s manifest lives: ``<base>/v2/<namespace>/<model>/manifests/<tag>``."""
        return f"{self.base_url(name)}/v2/{repository(name)}/manifests/{name.tag}"

    # -- pull ---------------------------------------------------------------------------

    def pull(
        self,
        name: ModelName,
        store_root: str | Path,
        progress: ProgressCallback | None = None,
    ) -> Digest:
        """Download ``name`` into the store at ``store_root``; return the manifest's digest.

        Blobs the store already holds are not downloaded. The manifest is written, with the
        registry's exact bytes, only after every blob is stored and verified; on any
        failure nothing partial is published (a cut or stalled download's partial file
        stays for the next pull to resume). Raises a RegistryError subclass naming the
        model, or BlobError when the disk has no room for the layers.
        """
        report = progress or _ignore
        session = RegistrySession(self, name, "pull")
        blobs, manifests = BlobStore(store_root), ManifestStore(store_root)
        report(ProgressEvent("pulling manifest"))
        data, manifest = self._fetch_manifest(session)
        layers = _distinct_layers(manifest, session.label)
        with Lease(store_root) as lease:
            lease.hold(layer.digest for layer in layers)  # before any is checked: locking.py
            check_free_space(blobs.blobs_dir, _bytes_missing(blobs, layers), what=session.label)
            for layer in layers:
                status = f"pulling {layer.digest.short}"

                def blob_progress(done: int, status: str = status, layer: Layer = layer) -> None:
                    report(ProgressEvent(status, str(layer.digest), layer.size, done))

                report(ProgressEvent(status, str(layer.digest), layer.size, 0))
                download_blob(session, blobs, layer, blob_progress)
            report(ProgressEvent("verifying sha256 digest"))
            for layer in layers:
                if blobs.stored_size(layer.digest) != layer.size:
                    raise RegistryError(
                        f"{session.label}: blob {layer.digest} was removed from the store "
                        "during the pull; the manifest was not written"
                    )
            report(ProgressEvent("writing manifest"))
            written = manifests.write_bytes(name, data)
        report(ProgressEvent("success"))
        return written

    def _fetch_manifest(self, session: RegistrySession) -> tuple[bytes, Manifest]:
        """GET, size-check and parse the manifest; return its exact bytes and the parse."""
        accept = f"{MANIFEST_MEDIA_TYPE}, {OCI_MANIFEST_MEDIA_TYPE}"
        response, data = session.request_capped(
            "GET", session.url(f"manifests/{session.name.tag}"), headers={"Accept": accept}
        )
        if response.status != 200:
            raise session.error(response, body=data or b"")
        if data is None:
            raise RegistryResponseError(
                f"{session.label}: the manifest is larger than the {self.max_body_bytes}-byte "
                "limit",
                status=response.status,
            )
        declared = response.header("Docker-Content-Digest")
        if declared:
            actual = Digest.of_bytes(data)
            if declared.strip().lower() != str(actual):
                raise RegistryResponseError(
                    f"{session.label}: the manifest's bytes hash to {actual}, but the registry "
                    f"declared {declared.strip()}",
                    status=response.status,
                )
        try:
            manifest = Manifest.from_json(data)
        except ManifestError as exc:
            raise RegistryResponseError(
                f"{session.label}: the registry sent an invalid manifest: {exc}",
                status=response.status,
            ) from exc
        return data, manifest

    # -- push ---------------------------------------------------------------------------

    def push(
        self,
        name: ModelName,
        store_root: str | Path,
        progress: ProgressCallback | None = None,
    ) -> Digest:
        """Upload ``name``'s blobs and manifest from the store at ``store_root``.

        Blobs the registry already has are skipped; the manifest goes last, with its exact
        stored bytes. Returns the manifest's digest. Raises ManifestNotFoundError or
        BlobNotFoundError if the local model is incomplete (before contacting the
        registry), else a RegistryError subclass naming the model.
        """
        report = progress or _ignore
        session = RegistrySession(self, name, "push")
        blobs, manifests = BlobStore(store_root), ManifestStore(store_root)
        report(ProgressEvent("retrieving manifest"))
        try:
            data = manifests.read_bytes(name)
        except ManifestNotFoundError as exc:
            raise ManifestNotFoundError(f"{session.label}: the model is not in the store") from exc
        except ManifestError as exc:
            raise ManifestError(f"{session.label}: {exc}") from exc
        manifest = Manifest.from_json(data)
        layers = _distinct_layers(manifest, session.label)
        for layer in layers:
            stored = blobs.stored_size(layer.digest)
            if stored != layer.size:
                found = "" if stored is None else f" (a {stored}-byte file has its name)"
                raise BlobNotFoundError(
                    f"{session.label}: blob {layer.digest} ({layer.size} bytes) is not in "
                    f"the store{found}"
                )
        for layer in layers:
            status = f"pushing {layer.digest.short}"

            def blob_progress(done: int, status: str = status, layer: Layer = layer) -> None:
                report(ProgressEvent(status, str(layer.digest), layer.size, done))

            report(ProgressEvent(status, str(layer.digest), layer.size, 0))
            upload_blob(
                session,
                blobs,
                layer,
                mount_from=_mount_source(name, layer),
                progress=blob_progress,
            )
        report(ProgressEvent("pushing manifest"))
        digest = Digest.of_bytes(data)
        headers = {"Content-Type": manifest.media_type}
        url = session.url(f"manifests/{name.tag}")
        with session.request("PUT", url, headers=headers, body=data) as response:
            if response.status != 201:
                raise session.error(response, "manifest")
            declared = response.header("Docker-Content-Digest")
        if declared and declared.strip().lower() != str(digest):
            raise RegistryResponseError(
                f"{session.label}: the registry stored the manifest as {declared.strip()}, "
                f"not as its digest {digest}",
                status=201,
            )
        report(ProgressEvent("success"))
        return digest


def _ignore(event: ProgressEvent) -> None:
    """The progress callback used when none is given."""


def _check_number(option: str, value: object, *, minimum: float, exclusive: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and (value > minimum if exclusive else value >= minimum):  # type: ignore[operator]
        return
    bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
    raise OptionError(f"`{option}` must be a number {bound}, got {value!r}", option)


def _check_int(option: str, value: object, *, minimum: int) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return
    raise OptionError(f"`{option}` must be an integer >= {minimum}, got {value!r}", option)


def _bytes_missing(blobs: BlobStore, layers: list[Layer]) -> int:
    """Bytes still to download for ``layers``: not stored, less what partial files hold."""
    missing = 0
    for layer in layers:
        if blobs.has(layer.digest):
            continue
        try:
            partial = os.stat(blobs.partial_path(layer.digest)).st_size
        except FileNotFoundError:
            partial = 0
        missing += max(layer.size - partial, 0)
    return missing


def _distinct_layers(manifest: Manifest, label: str) -> list[Layer]:
    """The layers, then the config, each digest once; its sizes must agree."""
    seen: dict[Digest, Layer] = {}
    for layer in (*manifest.layers, manifest.config):
        first = seen.setdefault(layer.digest, layer)
        if first.size != layer.size:
            raise RegistryResponseError(
                f"{label}: the manifest gives blob {layer.digest} two sizes, "
                f"{first.size} and {layer.size}"
            )
    return list(seen.values())


def _mount_source(name: ModelName, layer: Layer) -> str | None:
    """The repository to mount ``layer`` from: its ``from`` model, if on the same registry."""
    if not layer.from_:
        return None
    try:
        source = ModelName.parse(layer.from_)
    except InvalidNameError:
        return None
    if source.host.lower() != name.host.lower() or repository(source) == repository(name):
        return None
    return repository(source)


__all__ = [
    "DEFAULT_USER_AGENT",
    "ProgressCallback",
    "ProgressEvent",
    "RegistryClient",
    "parse_challenge",
    "repository",
]
