"""Fixtures for the network tests: trustme certificates and small helpers."""

from __future__ import annotations

import socket
import ssl

import pytest
import trustme


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway certificate authority (never trusted by the system)."""
    return trustme.CA()


@pytest.fixture(scope="session")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server context with a certificate for localhost, 127.0.0.1 and ::1."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1", "::1").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="session")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts the test CA (verification on, as by default)."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def ipv6_works() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not ipv6_works(), reason="no IPv6 loopback here")
