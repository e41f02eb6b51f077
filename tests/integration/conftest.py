"""Fixtures of the integration tests: a real registry on loopback and fault proxies, and a
live ``llamahost serve``."""

from registry_fixtures import (  # noqa: F401  (pytest finds fixtures by name here)
    fault_proxy,
    fault_proxy_factory,
    registry_binary,
    registry_server,
)
from server_fixtures import (  # noqa: F401  (pytest finds fixtures by name here)
    llamahost_server,
    llamahost_server_factory,
)
