"""One pull or push as the registry sees it: URLs, credentials, retries, redirects, errors.

:class:`RegistrySession` is what :mod:`llamahost.store.registry` (which decides what to
fetch or send) and :mod:`llamahost.store.transfer` (which moves blobs) use to talk to the
registry: requests through :func:`~llamahost.store.http_client.send` with the client's
deadlines, one answered ``401`` challenge per request, allowed redirects, backoff between
retries, and errors that carry the registry's own message.

Credentials go to the registry's origin only (scheme, host and port, default ports filled
in): never to a redirect target on another origin, and never to a token realm on another
origin, which is refused without being contacted. A token is sent only if it is one line of
visible ASCII, so a CR or LF in it can never split the ``Authorization`` header.
"""

from __future__ import annotations

import base64
import http.client
import random
import re
import time
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING

from llamahost.errors import (
    RegistryAuthError,
    RegistryConnectionError,
    RegistryError,
    RegistryNotFoundError,
    RegistryResponseError,
)
from llamahost.store.http_client import (
    RETRYABLE_STATUSES,
    HttpResponse,
    RequestBody,
    is_transient,
    network_reason,
    send,
)
from llamahost.store.limits import loads_bounded
from llamahost.store.names import ModelName

if TYPE_CHECKING:
    from llamahost.store.registry import RegistryClient

MAX_REDIRECTS = 10
MAX_BACKOFF_S = 30.0
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHALLENGE_PARAM = re.compile(r'([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
# What a bearer token may hold: one line of visible ASCII (RFC 6750's b64token, loosely).
_TOKEN_TEXT = re.compile(r"[\x21-\x7e]+")


def repository(name: ModelName) -> str:
    """The registry repository of ``name``: ``<namespace>/<model>``, lower-cased."""
    return f"{name.namespace.lower()}/{name.model.lower()}"


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in: who may see credentials.

    A port that does not parse gives -1, which matches no real origin.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    default = {"http": 80, "https": 443}.get(scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port


def _origin_text(origin: tuple[str, str, int | None]) -> str:
    scheme, host, port = origin
    return f"{scheme}://{host}:{port}"


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split a ``WWW-Authenticate`` value into its lower-cased scheme and its parameters.

    ``Bearer realm="https://r/token",service="r",scope="repository:a/b:pull"`` gives
    ``("bearer", {"realm": "https://r/token", "service": "r", "scope": "repository:..."})``.
    """
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for match in _CHALLENGE_PARAM.finditer(rest):
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        params[match.group(1).lower()] = value
    return scheme.lower(), params


def _oci_error_message(body: bytes | None) -> tuple[str | None, str | None]:
    """(message, code) from an OCI error body ``{"errors": [{"code", "message"}]}``."""
    try:
        errors = loads_bounded(body or b"").get("errors")
    except (ValueError, AttributeError):
        return None, None
    if not isinstance(errors, list):
        return None, None
    messages, codes = [], []
    for entry in errors:
        if isinstance(entry, dict):
            message, code = entry.get("message"), entry.get("code")
            if isinstance(code, str) and code:
                codes.append(code)
            if isinstance(message, str) and message:
                messages.append(message)
            elif isinstance(code, str) and code:
                messages.append(code.lower().replace("_", " "))
    return ("; ".join(messages) or None), (codes[0] if codes else None)


class RegistrySession:
    """One pull or push: the registry's URLs, credentials obtained so far, and requests."""

    def __init__(self, client: RegistryClient, name: ModelName, action: str) -> None:
        self.client = client
        self.name = name
        self.label = f"{action} {name.display_long()}"
        self.max_retries = client.max_retries
        self.deadlines = client.deadlines
        self.timeout = client.deadlines.stall_s  # how long another process may not progress
        self.base = client.base_url(name)
        self.registry_host = (urllib.parse.urlsplit(self.base).hostname or "").lower()
        self._authorization: str | None = None

    def url(self, path: str) -> str:
        """``<base>/v2/<repository>/<path>``."""
        return f"{self.base}/v2/{repository(self.name)}/{path}"

    def pause(self, failures: int) -> None:
        """Sleep ``retry_backoff_s * 2**(failures-1)`` (capped, jittered by +-50%)."""
        delay = min(self.client.retry_backoff_s * 2 ** (failures - 1), MAX_BACKOFF_S)
        time.sleep(delay * random.uniform(0.5, 1.5))

    def _headers(self, url: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"User-Agent": self.client.user_agent}
        if self._authorization and _origin(url) == _origin(self.base):
            headers["Authorization"] = self._authorization
        headers.update(extra or {})
        return headers

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: RequestBody = None,
        retry: bool = True,
        follow_redirects: bool = False,
    ) -> HttpResponse:
        """Send a request, answering one ``401`` challenge and following allowed redirects.

        With ``retry``, network errors and retryable statuses are retried with backoff up
        to ``max_retries`` times (RegistryConnectionError after). The returned response
        may have any status; the caller checks it.
        """
        failures = 0
        authenticated = False
        redirects = 0
        while True:
            try:
                response = send(
                    method,
                    url,
                    headers=self._headers(url, headers),
                    body=body,
                    deadlines=self.deadlines,
                )
            except Exception as exc:
                if not is_transient(exc):
                    raise self._unreachable(url, exc) from exc
                if not retry:
                    raise
                failures = self._retry_or_raise(failures, network_reason(exc), exc)
                continue
            if response.status == 401 and not authenticated and _origin(url) == _origin(self.base):
                authenticated = True
                self._authenticate(response)
                continue
            if follow_redirects and response.status in _REDIRECT_STATUSES:
                redirects += 1
                url = self._redirect_target(response, redirects)
                continue
            if retry and response.status in RETRYABLE_STATUSES and failures < self.max_retries:
                response.close()
                failures = self._retry_or_raise(failures, f"HTTP {response.status}", None)
                continue
            return response

    def request_capped(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None
    ) -> tuple[HttpResponse, bytes | None]:
        """:meth:`request`, then the body read with the size cap (None if over it).

        A body cut short is retried like a failed request. The response comes back closed.
        """
        failures = 0
        while True:
            with self.request(method, url, headers=headers) as response:
                try:
                    return response, response.read_capped(self.client.max_body_bytes)
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    reason = network_reason(exc)
            failures = self._retry_or_raise(failures, reason, None)

    def _unreachable(self, url: str, exc: BaseException) -> BaseException:
        """The error for a network failure no retry will fix (an unknown host, a bad
        certificate): RegistryConnectionError naming the host. Other errors pass as they are.
        """
        if not isinstance(exc, (OSError, http.client.HTTPException)):
            return exc
        host = urllib.parse.urlsplit(url).netloc or self.registry_host
        return RegistryConnectionError(
            f"{self.label}: {host} could not be reached: {network_reason(exc)}"
        )

    def _retry_or_raise(self, failures: int, reason: str, cause: BaseException | None) -> int:
        failures += 1
        if failures > self.max_retries:
            raise RegistryConnectionError(
                f"{self.label}: {self.base} failed {failures} times in a row: {reason}"
            ) from cause
        self.pause(failures)
        return failures

    def _redirect_target(self, response: HttpResponse, redirects: int) -> str:
        """The checked URL a redirect points to (closes ``response``)."""
        with response:
            location = response.header("Location")
        if redirects > MAX_REDIRECTS:
            raise RegistryResponseError(
                f"{self.label}: more than {MAX_REDIRECTS} redirects from {self.base}",
                status=response.status,
            )
        if not location:
            raise RegistryResponseError(
                f"{self.label}: a redirect ({response.status}) without a Location header",
                status=response.status,
            )
        target = urllib.parse.urljoin(response.url, location.strip())
        scheme = urllib.parse.urlsplit(target).scheme.lower()
        allowed = ("http", "https") if self.client.insecure else ("https",)
        if scheme not in allowed:
            raise RegistryResponseError(
                f"{self.label}: refusing to follow a redirect to {target!r}: only "
                f"{' or '.join(allowed)} URLs are followed",
                status=response.status,
            )
        return target

    def error(
        self, response: HttpResponse, what: str = "", *, body: bytes | None = None
    ) -> RegistryError:
        """The RegistryError subclass for ``response``, with the registry's own message.

        Reads the (capped) body unless ``body`` is given, e.g.
        ``pull 127.0.0.1:5000/library/x:latest: manifest unknown (404)``.
        """
        if body is None:
            try:
                body = response.read_capped(self.client.max_body_bytes)
            except Exception as exc:
                if not is_transient(exc):
                    raise
        message, code = _oci_error_message(body)
        status = response.status
        detail = message or response.reason or "unexpected response"
        if what:
            detail = f"{what}: {detail}"
        text = f"{self.label}: {detail} ({status})"
        if status in (401, 403):
            return RegistryAuthError(text, status=status, code=code)
        if status == 404:
            return RegistryNotFoundError(text, status=status, code=code)
        return RegistryResponseError(text, status=status, code=code)

    # -- authentication -----------------------------------------------------------------

    def _basic_credentials(self) -> str | None:
        if self.client.username is None or self.client.password is None:
            return None
        pair = f"{self.client.username}:{self.client.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def _authenticate(self, response: HttpResponse) -> None:
        """Answer the ``401`` in ``response``: set the Authorization for the next requests."""
        with response:
            challenge = response.header("WWW-Authenticate") or ""
            scheme, params = parse_challenge(challenge)
            if scheme == "bearer":
                self._authorization = f"Bearer {self._fetch_token(params)}"
                return
            if scheme == "basic":
                credentials = self._basic_credentials()
                if credentials is None:
                    raise RegistryAuthError(
                        f"{self.label}: {self.registry_host} requires a username and password "
                        "(401); pass them to RegistryClient",
                        status=401,
                    )
                self._authorization = credentials
                return
            raise self.error(response, f"unsupported authentication challenge {challenge!r}")

    def _fetch_token(self, params: dict[str, str]) -> str:
        """Get a bearer token from the challenge's realm, which must be on the registry host."""
        realm = params.get("realm", "")
        parts = urllib.parse.urlsplit(realm)
        realm_origin, registry_origin = _origin(realm), _origin(self.base)
        allowed = ("http", "https") if self.client.insecure else ("https",)
        if realm_origin[0] not in allowed or not realm_origin[1] or realm_origin[2] == -1:
            raise RegistryAuthError(
                f"{self.label}: the token realm {realm!r} is not an {' or '.join(allowed)} URL",
                status=401,
            )
        if realm_origin != registry_origin:
            raise RegistryAuthError(
                f"{self.label}: refusing the token realm {realm!r}: its origin "
                f"{_origin_text(realm_origin)} differs from the registry's "
                f"{_origin_text(registry_origin)} (scheme, host and port must all match, "
                "since the realm would receive the credentials)",
                status=401,
            )
        query = [(key, value) for key, value in urllib.parse.parse_qsl(parts.query)]
        if params.get("service"):
            query.append(("service", params["service"]))
        query.extend(("scope", scope) for scope in params.get("scope", "").split() if scope)
        url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
        headers = {"User-Agent": self.client.user_agent}
        credentials = self._basic_credentials()
        if credentials:
            headers["Authorization"] = credentials
        failures = 0
        while True:
            try:
                with send("GET", url, headers=headers, deadlines=self.deadlines) as response:
                    body = response.read_capped(self.client.max_body_bytes)
                    if response.status in RETRYABLE_STATUSES and failures < self.max_retries:
                        failures = self._retry_or_raise(failures, f"HTTP {response.status}", None)
                        continue
                    if response.status != 200:
                        error = self.error(response, f"token request to {realm}", body=body)
                        raise RegistryAuthError(str(error), status=error.status, code=error.code)
                    break
            except Exception as exc:
                if not is_transient(exc):
                    raise self._unreachable(url, exc) from exc
                failures = self._retry_or_raise(failures, network_reason(exc), exc)
        if body is None:
            raise RegistryAuthError(
                f"{self.label}: the token response from {realm} is larger than the "
                f"{self.client.max_body_bytes}-byte limit",
                status=200,
            )
        try:
            data = loads_bounded(body)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryAuthError(
                f"{self.label}: the token response from {realm} has no `token` string",
                status=200,
            )
        if _TOKEN_TEXT.fullmatch(token) is None:
            bad = next(c for c in token if _TOKEN_TEXT.fullmatch(c) is None)
            raise RegistryAuthError(
                f"{self.label}: the token from {realm} holds the character {bad!r}; a token "
                "must be one line of visible ASCII, so it was not sent",
                status=200,
            )
        return token
