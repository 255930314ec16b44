"""Fixtures for the yieldio.http tests: certificates, and small helpers as fixtures.

The test modules here are named ``test_http_*`` (plus ``test_examples`` and
``test_docs_http``): this directory must not be a package -- a package named
``http`` would shadow the standard library's ``http``.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Any

import pytest
import trustme

import yieldio


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway certificate authority (never trusted by the system)."""
    return trustme.CA()


@pytest.fixture(scope="session")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1", "::1").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="session")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


async def _exchange(port: int, data: bytes, *, half_close: bool = False) -> bytes:
    """Send raw bytes to 127.0.0.1:port and read until the server closes."""
    stream = await yieldio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.write(data)
        if half_close:
            await stream.send_eof()
        out = bytearray()
        with yieldio.fail_after(10):
            while True:
                try:
                    chunk = await stream.read()
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                out += chunk
        return bytes(out)


@pytest.fixture
def exchange() -> Callable[..., Any]:
    """``await exchange(port, raw_request_bytes)`` -> everything the server sent until it closed."""
    return _exchange


@pytest.fixture
def http_errors(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture the ``yieldio.http`` logger at DEBUG level."""
    caplog.set_level(logging.DEBUG, logger="yieldio.http")
    return caplog
