"""Which network failures the registry transfer retries."""

from __future__ import annotations

import socket
import ssl

from llamahost.store.http_client import is_transient


def test_unresolvable_host_and_bad_certificates_are_not_retried() -> None:
    assert not is_transient(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert not is_transient(ssl.SSLCertVerificationError("bad certificate"))


def test_passing_network_failures_are_retried() -> None:
    assert is_transient(socket.gaierror(socket.EAI_AGAIN, "Temporary failure"))
    assert is_transient(ConnectionResetError())
    assert is_transient(TimeoutError())
