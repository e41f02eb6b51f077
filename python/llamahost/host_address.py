"""``LLAMAHOST_HOST``: where the server listens and where clients find it.

Read the way Ollama reads ``OLLAMA_HOST``: ``host``, ``host:port``, ``:port``,
``[::1]:port``, or ``http(s)://host[:port][/path]``; the missing parts are 127.0.0.1 and
11434 (443 for https). ``0.0.0.0`` and ``::`` (listen everywhere) are reached on loopback.
One parser serves the server (which refuses a path) and the command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from llamahost.errors import OptionError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11434
HTTPS_PORT = 443
_UNSPECIFIED = {"0.0.0.0": "127.0.0.1", "::": "::1", "": DEFAULT_HOST}


@dataclass(frozen=True)
class ServerAddress:
    """The server's base URL parts, from ``LLAMAHOST_HOST``."""

    scheme: str
    host: str
    port: int
    path: str = ""

    @property
    def shown(self) -> str:
        """``host:port`` as the user gave it, defaults filled in (``127.0.0.1:11434``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def connect_host(self) -> str:
        """The host to connect to: loopback for a server listening on every address."""
        return _UNSPECIFIED.get(self.host, self.host)

    @property
    def url(self) -> str:
        host = self.connect_host
        host = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @classmethod
    def parse(cls, text: str) -> ServerAddress:
        """``LLAMAHOST_HOST``'s value (see the module docstring); OptionError if malformed."""
        value = text.strip()
        scheme, separator, rest = value.partition("://")
        if not separator:
            scheme, rest = "http", value
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise OptionError(
                f"LLAMAHOST_HOST: the scheme must be http or https, got {text!r}",
                "LLAMAHOST_HOST",
            )
        hostport, slash, path = rest.partition("/")
        path = f"/{path}".rstrip("/") if slash else ""
        host, port_text = hostport, ""
        if hostport.startswith("["):
            end = hostport.find("]")
            tail = hostport[end + 1 :] if end >= 0 else ""
            if end < 0 or (tail and not tail.startswith(":")):
                raise OptionError(
                    f"LLAMAHOST_HOST: malformed IPv6 address in {text!r}", "LLAMAHOST_HOST"
                )
            host, port_text = hostport[1:end], tail[1:]
        elif hostport.count(":") == 1:
            host, _, port_text = hostport.partition(":")
        default_port = HTTPS_PORT if scheme == "https" else DEFAULT_PORT
        port = default_port
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise OptionError(
                    f"LLAMAHOST_HOST: the port must be a number from 1 to 65535, got {port_text!r}",
                    "LLAMAHOST_HOST",
                )
            port = int(port_text)
        return cls(scheme, host or DEFAULT_HOST, port, path)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerAddress:
        env = os.environ if environ is None else environ
        return cls.parse(env.get("LLAMAHOST_HOST", ""))
