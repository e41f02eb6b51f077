"""Fixtures of the integration tests: a real registry on loopback and fault proxies."""

from registry_fixtures import (  # noqa: F401  (pytest finds fixtures by name here)
    fault_proxy,
    fault_proxy_factory,
    registry_binary,
    registry_server,
)
