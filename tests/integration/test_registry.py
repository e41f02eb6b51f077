"""The registry client against a real OCI registry (Debian's docker-registry) on loopback.

Each test builds a small model (a few MB of random "weights", a params blob and a config
blob) in its own store, under its own repository name, and pushes or pulls it directly
or through a FaultProxy that cuts, corrupts, redirects or demands credentials.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from fault_proxy import FaultProxy
from registry_fixtures import RegistryServer

from llamahost.errors import (
    BlobError,
    BlobNotFoundError,
    DigestMismatchError,
    RegistryAuthError,
    RegistryConnectionError,
    RegistryDigestMismatchError,
    RegistryNotFoundError,
    RegistryResponseError,
)
from llamahost.store.blobs import BlobStore
from llamahost.store.digests import Digest
from llamahost.store.manifests import (
    CONFIG_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    MEDIA_TYPE_MODEL,
    MEDIA_TYPE_PARAMS,
    Layer,
    Manifest,
    ManifestStore,
)
from llamahost.store.names import ModelName
from llamahost.store.registry import ProgressEvent, RegistryClient, parse_challenge

MODEL_BYTES = 3 << 20


def client(**options: object) -> RegistryClient:
    """A client for loopback registries: plain http, short backoff."""
    defaults: dict[str, object] = {"insecure": True, "timeout": 10.0, "retry_backoff_s": 0.01}
    return RegistryClient(**{**defaults, **options})  # type: ignore[arg-type]


def unique_name(host: str, tag: str = "latest") -> ModelName:
    return ModelName(host, "test", f"m{uuid.uuid4().hex[:12]}", tag)


def build_model(
    root: Path, name: ModelName, *, model_from: str | None = None, seed: int = 1
) -> Manifest:
    """Store a model blob of random bytes, a params blob and a config blob, and a manifest."""
    blobs = BlobStore(root)
    weights = random.Random(seed).randbytes(MODEL_BYTES)
    params = json.dumps({"temperature": 0.7, "stop": ["<|end|>"]}).encode()
    model_digest = blobs.write(weights)
    config = json.dumps(
        {
            "model_format": "gguf",
            "model_family": "llama",
            "file_type": "Q4_0",
            "rootfs": {"type": "layers", "diff_ids": [str(model_digest)]},
        }
    ).encode()
    manifest = Manifest(
        config=Layer(CONFIG_MEDIA_TYPE, blobs.write(config), len(config)),
        layers=(
            Layer(MEDIA_TYPE_MODEL, model_digest, len(weights), model_from),
            Layer(MEDIA_TYPE_PARAMS, blobs.write(params), len(params)),
        ),
    )
    ManifestStore(root).write(name, manifest)
    return manifest


def at_host(name: ModelName, host: str) -> ModelName:
    """The same repository and tag, reached through another host (a proxy)."""
    return ModelName(host, name.namespace, name.model, name.tag)


def model_digest(manifest: Manifest) -> str:
    return str(manifest.layers_of(MEDIA_TYPE_MODEL)[0].digest)


def assert_nothing_published(root: Path, name: ModelName, digest: str) -> None:
    blobs = BlobStore(root)
    assert not blobs.has(Digest.parse(digest))
    assert list(blobs.iter_partials()) == []
    assert not ManifestStore(root).has(name)


@pytest.fixture
def pushed(registry_server: RegistryServer, tmp_path: Path) -> tuple[ModelName, Manifest, bytes]:
    """A model pushed straight to the registry: its name there, manifest and manifest bytes."""
    name = unique_name(registry_server.host)
    source = tmp_path / "source"
    manifest = build_model(source, name)
    client().push(name, source)
    return name, manifest, ManifestStore(source).path(name).read_bytes()


def test_push_then_pull_round_trips_blobs_and_manifest_bytes(
    registry_server: RegistryServer, tmp_path: Path
) -> None:
    name = unique_name(registry_server.host)
    root = tmp_path / "store"
    manifest = build_model(root, name)
    manifests, blobs = ManifestStore(root), BlobStore(root)
    original = manifests.path(name).read_bytes()
    contents = {d: blobs.path(d).read_bytes() for d in manifest.digests()}
    pushed_events: list[ProgressEvent] = []

    pushed_digest = client().push(name, root, pushed_events.append)

    assert pushed_digest == Digest.of_bytes(original)
    assert [e.status for e in pushed_events if e.digest is None] == [
        "retrieving manifest",
        "pushing manifest",
        "success",
    ]
    manifests.delete(name)
    for digest in manifest.digests():
        assert blobs.delete(digest)
    events: list[ProgressEvent] = []

    pulled_digest = client().pull(name, root, events.append)

    assert pulled_digest == pushed_digest
    assert manifests.path(name).read_bytes() == original
    assert {d: blobs.path(d).read_bytes() for d in manifest.digests()} == contents
    statuses = list(dict.fromkeys(e.status for e in events))
    order = [*manifest.layers, manifest.config]
    assert statuses == [
        "pulling manifest",
        *(f"pulling {layer.digest.short}" for layer in order),
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    for layer in order:
        last = [e for e in events if e.digest == str(layer.digest)][-1]
        assert (last.total, last.completed) == (layer.size, layer.size)
    assert events[0].to_dict() == {"status": "pulling manifest"}


def test_pull_skips_blobs_already_stored_and_push_skips_blobs_the_registry_has(
    fault_proxy: FaultProxy, pushed: tuple[ModelName, Manifest, bytes], tmp_path: Path
) -> None:
    name, manifest, _ = at_host(pushed[0], fault_proxy.host), pushed[1], pushed[2]
    root = tmp_path / "store"
    client().pull(name, root)
    assert len(fault_proxy.blob_gets(model_digest(manifest))) == 1

    client().pull(name, root)
    client().push(name, root)

    gets = [r for r in fault_proxy.requests if r.method == "GET" and r.blob_digest]
    assert len(gets) == 3  # model, params, config: all from the first pull
    heads = [r for r in fault_proxy.requests if r.method == "HEAD"]
    assert sorted(r.blob_digest for r in heads) == sorted(map(str, manifest.digests()))
    writes = [r for r in fault_proxy.requests if r.method in ("POST", "PUT", "PATCH")]
    assert [(r.method, r.path.rpartition("/")[0]) for r in writes] == [
        ("PUT", f"/v2/{name.namespace}/{name.model}/manifests")
    ]


def test_pull_resumes_with_range_after_a_cut_connection(
    fault_proxy: FaultProxy, pushed: tuple[ModelName, Manifest, bytes], tmp_path: Path
) -> None:
    name, manifest, original = at_host(pushed[0], fault_proxy.host), pushed[1], pushed[2]
    digest = model_digest(manifest)
    fault_proxy.cut_next_blob(digest, 0.5)
    root = tmp_path / "store"

    client().pull(name, root)

    first, second = fault_proxy.blob_gets(digest)
    assert first.fault == "cut" and first.cut_at == MODEL_BYTES // 2
    assert "range" not in first.headers
    assert second.headers["range"] == f"bytes={MODEL_BYTES // 2}-"
    assert second.status == 206 and second.body_bytes == MODEL_BYTES - MODEL_BYTES // 2
    blobs = BlobStore(root)
    assert Digest.of_bytes(blobs.path(Digest.parse(digest)).read_bytes()) == Digest.parse(digest)
    assert ManifestStore(root).path(name).read_bytes() == original
    assert list(blobs.iter_partials()) == []


def test_a_200_answer_to_a_range_request_restarts_the_blob_from_byte_0(
    fault_proxy: FaultProxy, pushed: tuple[ModelName, Manifest, bytes], tmp_path: Path
) -> None:
    name, manifest, original = at_host(pushed[0], fault_proxy.host), pushed[1], pushed[2]
    digest = model_digest(manifest)
    fault_proxy.cut_next_blob(digest, 0.5)
    fault_proxy.ignore_next_range(digest)
    events: list[ProgressEvent] = []

    client().pull(name, tmp_path, events.append)

    first, second = fault_proxy.blob_gets(digest)
    assert first.fault == "cut"
    assert second.fault == "range ignored" and second.headers["range"] == f"bytes={first.cut_at}-"
    assert (second.status, second.body_bytes) == (200, MODEL_BYTES)
    blob = BlobStore(tmp_path).path(Digest.parse(digest))
    assert Digest.of_bytes(blob.read_bytes()) == Digest.parse(digest)
    assert ManifestStore(tmp_path).path(name).read_bytes() == original
    completed = [e.completed for e in events if e.digest == digest]
    assert 0 in completed[1:] and completed[-1] == MODEL_BYTES  # progress went back to 0


def test_a_later_pull_resumes_the_partial_file_of_a_failed_one(
    fault_proxy: FaultProxy, pushed: tuple[ModelName, Manifest, bytes], tmp_path: Path
) -> None:
    name, manifest = at_host(pushed[0], fault_proxy.host), pushed[1]
    digest = model_digest(manifest)
    fault_proxy.cut_next_blob(digest, 0.5)
    root = tmp_path / "store"

    with pytest.raises(RegistryConnectionError, match=r"failed 1 times in a row"):
        client(max_retries=0).pull(name, root)

    blobs = BlobStore(root)
    partial = blobs.partial_path(Digest.parse(digest))
    assert partial.stat().st_size == MODEL_BYTES // 2
    assert not blobs.has(Digest.parse(digest))
    assert not ManifestStore(root).has(name)
    client().pull(name, root)
    assert fault_proxy.blob_gets(digest)[-1].headers["range"] == f"bytes={MODEL_BYTES // 2}-"
    assert blobs.has(Digest.parse(digest)) and not partial.exists()


def test_a_flipped_byte_fails_verification_and_publishes_nothing(
    fault_proxy: FaultProxy, pushed: tuple[ModelName, Manifest, bytes], tmp_path: Path
) -> None:
    name, manifest, original = at_host(pushed[0], fault_proxy.host), pushed[1], pushed[2]
    digest = model_digest(manifest)
    fault_proxy.flip_next_blob(digest)
    root = tmp_path / "store"

    with pytest.raises(RegistryDigestMismatchError, match=r"failed verification") as caught:
        client().pull(name, root)

    assert isinstance(caught.value, DigestMismatchError)
    assert str(caught.value).startswith(f"pull {name.display_long()}: blob {digest}")
    assert caught.value.expected == digest
    assert fault_proxy.blob_gets(digest)[0].fault == "flip"
    assert_nothing_published(root, name, digest)
    client().pull(name, root)  # the fault was one-shot: a normal pull succeeds
    assert ManifestStore(root).path(name).read_bytes() == original


def test_concurrent_pulls_of_one_model_download_each_blob_once(
    fault_proxy: FaultProxy, pushed: tuple[ModelName, Manifest, bytes], tmp_path: Path
) -> None:
    name, manifest, original = at_host(pushed[0], fault_proxy.host), pushed[1], pushed[2]
    root = tmp_path / "store"
    start = threading.Barrier(2)
    results: list[Digest | BaseException] = []

    def pull() -> None:
        start.wait()
        try:
            results.append(client().pull(name, root))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert results == [Digest.of_bytes(original)] * 2
    for digest in manifest.digests():
        assert len(fault_proxy.blob_gets(str(digest))) == 1
    assert list(BlobStore(root).iter_partials()) == []


def test_an_unknown_manifest_is_a_clear_not_found_error(
    registry_server: RegistryServer, pushed: tuple[ModelName, Manifest, bytes], tmp_path: Path
) -> None:
    name = pushed[0]
    missing_tag = ModelName(name.host, name.namespace, name.model, "nope")
    with pytest.raises(RegistryNotFoundError) as caught:
        client().pull(missing_tag, tmp_path)
    assert str(caught.value) == f"pull {missing_tag.display_long()}: manifest unknown (404)"
    assert (caught.value.status, caught.value.code) == (404, "MANIFEST_UNKNOWN")

    missing_repo = unique_name(registry_server.host)
    with pytest.raises(RegistryNotFoundError, match=r"\(404\)$") as caught:
        client().pull(missing_repo, tmp_path)
    assert str(caught.value).startswith(f"pull {missing_repo.display_long()}: ")
    assert not ManifestStore(tmp_path).has(missing_repo)
    client().pull(name, tmp_path)  # the next normal pull still works


def test_a_manifest_over_the_size_cap_is_refused(
    pushed: tuple[ModelName, Manifest, bytes], tmp_path: Path
) -> None:
    name, _, original = pushed
    with pytest.raises(RegistryResponseError, match=r"larger than the \d+-byte limit"):
        client(max_body_bytes=len(original) - 1).pull(name, tmp_path)
    assert not ManifestStore(tmp_path).has(name)
    assert list(BlobStore(tmp_path).iter_digests()) == []

    client(max_body_bytes=len(original)).pull(name, tmp_path)
    assert ManifestStore(tmp_path).path(name).read_bytes() == original


@pytest.mark.parametrize("realm_host", ["localhost", "127.0.0.1"])
def test_a_token_realm_on_another_origin_is_refused_without_contacting_it(
    fault_proxy_factory: Callable[..., FaultProxy],
    pushed: tuple[ModelName, Manifest, bytes],
    tmp_path: Path,
    realm_host: str,
) -> None:
    """Another host, or the registry's own host on another port: never sent credentials."""
    elsewhere = fault_proxy_factory(upstream=None)  # logs whatever reaches it
    proxy = fault_proxy_factory()
    realm = f"http://{realm_host}:{elsewhere.port}/token"
    proxy.require_bearer("secret-token", realm)
    name = at_host(pushed[0], proxy.host)

    with pytest.raises(RegistryAuthError) as caught:
        client(username="alice", password="s3cret").pull(name, tmp_path)

    message = str(caught.value)
    assert realm in message and "scheme, host and port must all match" in message
    assert f"its origin http://{realm_host}:{elsewhere.port} differs" in message
    assert f"the registry's http://127.0.0.1:{proxy.port}" in message
    assert elsewhere.requests == []
    assert not [r for r in proxy.requests if "authorization" in r.headers]
    assert not ManifestStore(tmp_path).has(name)


def test_a_bearer_token_from_a_same_host_realm_is_fetched_and_sent(
    fault_proxy: FaultProxy, registry_server: RegistryServer, tmp_path: Path
) -> None:
    fault_proxy.require_bearer("tok-123", f"http://127.0.0.1:{fault_proxy.port}/token", "svc")
    name = unique_name(fault_proxy.host)
    build_model(tmp_path / "source", name)

    client().push(name, tmp_path / "source")
    client().pull(name, tmp_path / "copy")

    tokens = [r for r in fault_proxy.requests if r.fault == "token"]
    repo = f"repository%3A{name.namespace}%2F{name.model}"
    # push: a pull token for the first HEAD, then a push token when the POST is refused
    assert [r.path.partition("?")[2] for r in tokens] == [
        f"service=svc&scope={repo}%3Apull",
        f"service=svc&scope={repo}%3Apull%2Cpush",
        f"service=svc&scope={repo}%3Apull",
    ]
    served = [r for r in fault_proxy.requests if r.fault is None]
    assert served and all(r.headers["authorization"].startswith("Bearer tok-123/") for r in served)
    assert ManifestStore(tmp_path / "copy").path(name).read_bytes() == (
        ManifestStore(tmp_path / "source").path(name).read_bytes()
    )


def test_basic_auth_needs_the_credentials(
    fault_proxy: FaultProxy, pushed: tuple[ModelName, Manifest, bytes], tmp_path: Path
) -> None:
    fault_proxy.require_basic("alice", "s3cret")
    name = at_host(pushed[0], fault_proxy.host)

    with pytest.raises(RegistryAuthError, match=r"requires a username and password \(401\)"):
        client().pull(name, tmp_path)
    with pytest.raises(RegistryAuthError, match=r"authentication required \(401\)$"):
        client(username="alice", password="wrong").pull(name, tmp_path)
    client(username="alice", password="s3cret").pull(name, tmp_path)

    assert ManifestStore(tmp_path).path(name).read_bytes() == pushed[2]


def test_blob_redirects_are_followed_without_forwarding_authorization(
    fault_proxy_factory: Callable[..., FaultProxy],
    pushed: tuple[ModelName, Manifest, bytes],
    tmp_path: Path,
) -> None:
    storage = fault_proxy_factory()  # another origin, as a registry's blob storage would be
    front = fault_proxy_factory()
    front.require_bearer("tok-xyz", f"http://127.0.0.1:{front.port}/token")
    front.redirect_blobs_to(f"http://localhost:{storage.port}")
    name, manifest = at_host(pushed[0], front.host), pushed[1]

    client().pull(name, tmp_path)

    redirected = [r for r in front.requests if r.fault == "redirect"]
    assert len(redirected) == 3
    assert all(r.headers["authorization"] == "Bearer tok-xyz/pull" for r in redirected)
    served = storage.blob_gets(model_digest(manifest))
    assert len(served) == 1 and "authorization" not in served[0].headers
    assert all("authorization" not in r.headers for r in storage.requests)
    assert BlobStore(tmp_path).has(Digest.parse(model_digest(manifest)))


def test_a_redirect_to_a_non_http_url_is_refused(
    fault_proxy: FaultProxy, pushed: tuple[ModelName, Manifest, bytes], tmp_path: Path
) -> None:
    fault_proxy.redirect_blobs_to("file:///etc")
    name, manifest = at_host(pushed[0], fault_proxy.host), pushed[1]

    with pytest.raises(RegistryResponseError, match=r"refusing to follow a redirect to 'file:"):
        client().pull(name, tmp_path)

    assert_nothing_published(tmp_path, name, model_digest(manifest))


def test_push_mounts_a_layer_from_the_model_it_came_from(
    fault_proxy: FaultProxy, pushed: tuple[ModelName, Manifest, bytes], tmp_path: Path
) -> None:
    source = at_host(pushed[0], fault_proxy.host)
    derived = unique_name(fault_proxy.host)
    manifest = build_model(tmp_path, derived, model_from=str(source))
    assert model_digest(manifest) == model_digest(pushed[1])  # same seed: same weights

    client().push(derived, tmp_path)

    digest = model_digest(manifest)
    mounts = [r for r in fault_proxy.requests if r.method == "POST" and "mount=" in r.path]
    assert len(mounts) == 1 and mounts[0].status == 201
    assert f"mount={digest}" in mounts[0].path
    assert f"from={source.namespace}/{source.model}" in mounts[0].path
    assert not [r for r in fault_proxy.requests if r.method == "PUT" and digest in r.path]
    copy = tmp_path / "copy"
    client().pull(derived, copy)
    assert BlobStore(copy).path(Digest.parse(digest)).read_bytes() == (
        BlobStore(tmp_path).path(Digest.parse(digest)).read_bytes()
    )


def test_https_is_the_default_so_a_plain_http_registry_needs_insecure(
    pushed: tuple[ModelName, Manifest, bytes], tmp_path: Path
) -> None:
    name = pushed[0]
    secure = RegistryClient(timeout=5.0, max_retries=0)
    assert secure.manifest_url(name).startswith(f"https://{name.host}/v2/test/")
    with pytest.raises(RegistryConnectionError, match=r"https://127\.0\.0\.1"):
        secure.pull(name, tmp_path)
    assert client().manifest_url(name) == (
        f"http://{name.host}/v2/{name.namespace}/{name.model}/manifests/{name.tag}"
    )
    client().pull(name, tmp_path)


def test_push_of_a_model_missing_locally_contacts_no_registry(
    fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    name = unique_name(fault_proxy.host)
    manifest = build_model(tmp_path, name)
    BlobStore(tmp_path).delete(manifest.config.digest)

    with pytest.raises(BlobNotFoundError, match=rf"^push {name.display_long()}: blob sha256:"):
        client().push(name, tmp_path)
    assert fault_proxy.requests == []


def test_parse_challenge_reads_quoted_and_bare_parameters() -> None:
    header = 'Bearer realm="https://r.example/token",service=r.example,scope="a:b:pull,push"'
    assert parse_challenge(header) == (
        "bearer",
        {"realm": "https://r.example/token", "service": "r.example", "scope": "a:b:pull,push"},
    )
    assert parse_challenge('Basic realm="x \\"y\\""') == ("basic", {"realm": 'x "y"'})


def test_a_trickled_blob_stalls_keeps_its_partial_and_the_next_pull_resumes(
    fault_proxy: FaultProxy, pushed: tuple[ModelName, Manifest, bytes], tmp_path: Path
) -> None:
    """One byte every 0.2 s keeps any socket timeout happy; the stall window catches it."""
    name, manifest, original = at_host(pushed[0], fault_proxy.host), pushed[1], pushed[2]
    digest = model_digest(manifest)
    fault_proxy.trickle_next_blob(digest, first=MODEL_BYTES // 4, interval_s=0.2)
    root = tmp_path / "store"
    started = time.monotonic()

    with pytest.raises(RegistryConnectionError) as caught:
        client(max_retries=0, timeout=1.0, stall_timeout_s=1.0).pull(name, root)

    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert message.startswith(f"pull {name.display_long()}: downloading blob {digest} failed")
    assert "the transfer stalled" in message and "at least 1 KiB/s over 1 s" in message
    assert "kept in a .partial file, and pulling again resumes from there" in message
    [trickled] = fault_proxy.blob_gets(digest)
    assert trickled.fault == "trickle"
    partial = BlobStore(root).partial_path(Digest.parse(digest))
    kept = partial.stat().st_size
    assert MODEL_BYTES // 4 <= kept <= trickled.body_bytes < MODEL_BYTES // 4 + 20
    assert not ManifestStore(root).has(name)

    client().pull(name, root)  # the trickle was one-shot: this resumes where it stopped

    resumed = fault_proxy.blob_gets(digest)[-1]
    assert resumed.headers["range"] == f"bytes={kept}-"
    assert resumed.body_bytes == MODEL_BYTES - kept
    assert ManifestStore(root).path(name).read_bytes() == original
    assert not partial.exists()


def put_manifest(host: str, name: ModelName, data: bytes) -> None:
    """PUT manifest bytes straight to the registry (it accepts any declared layer size)."""
    connection = http.client.HTTPConnection(host, timeout=10)
    try:
        path = f"/v2/{name.namespace}/{name.model}/manifests/{name.tag}"
        connection.request("PUT", path, body=data, headers={"Content-Type": MANIFEST_MEDIA_TYPE})
        assert connection.getresponse().status == 201
    finally:
        connection.close()


def test_a_pull_larger_than_the_free_disk_space_fails_before_downloading(
    fault_proxy: FaultProxy,
    registry_server: RegistryServer,
    pushed: tuple[ModelName, Manifest, bytes],
    tmp_path: Path,
) -> None:
    name, manifest = pushed[0], pushed[1]
    weights = manifest.layers_of(MEDIA_TYPE_MODEL)[0]
    petabyte = Layer(weights.media_type, weights.digest, 10**15)
    huge = ModelName(name.host, name.namespace, name.model, "huge")
    put_manifest(registry_server.host, huge, Manifest(manifest.config, (petabyte,)).to_json())
    root = tmp_path / "store"
    through_proxy = at_host(huge, fault_proxy.host)

    with pytest.raises(BlobError, match="not enough disk space") as caught:
        client().pull(through_proxy, root)

    message = str(caught.value)
    assert message.startswith(f"pull {through_proxy.display_long()}: not enough disk space: ")
    assert "1.0 PB are needed" in message and " are free" in message
    assert [r for r in fault_proxy.requests if r.blob_digest] == []  # nothing downloaded
    assert not ManifestStore(root).has(through_proxy)
    client().pull(at_host(name, fault_proxy.host), root)  # a pull that fits still works


def test_response_headers_trickled_without_end_hit_the_response_deadline(
    fault_proxy: FaultProxy, pushed: tuple[ModelName, Manifest, bytes], tmp_path: Path
) -> None:
    """Each header byte arrives well within the socket timeout; the whole never does."""
    name, original = at_host(pushed[0], fault_proxy.host), pushed[2]
    fault_proxy.trickle_next_headers(0.1)
    started = time.monotonic()

    with pytest.raises(RegistryConnectionError) as caught:
        client(max_retries=0, timeout=1.0).pull(name, tmp_path)

    assert time.monotonic() - started < 10
    assert str(caught.value) == (
        f"pull {name.display_long()}: http://{name.host} failed 1 times in a row: "
        "TimeoutError: no complete response headers from 127.0.0.1 within 1 s"
    )
    assert [r.fault for r in fault_proxy.requests] == ["slow headers"]
    client().pull(name, tmp_path)  # one-shot: the next pull works
    assert ManifestStore(tmp_path).path(name).read_bytes() == original
