"""The WebSocket client: :func:`connect_websocket` and its opening handshake.

::

    async with yieldio.http.connect_websocket("ws://127.0.0.1:8000/chat") as ws:
        await ws.send("hello")
        print(await ws.receive())

The handshake is an HTTP/1.1 Upgrade request that wsproto writes and reads;
once the server answers 101, the connection is a :class:`WebSocket` like
the server's, with its reader (and keepalive) running in a task group that
the ``async with`` block owns.
"""

from __future__ import annotations

import math
import ssl as _ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import wsproto
import wsproto.events as wse
from wsproto.connection import Connection

from .._taskgroup import TaskGroup
from .._timeouts import fail_after
from ..net._stream import Stream
from ._errors import ProtocolError, Timeout, WebSocketRejected, connect_error
from ._headers import Headers
from ._websocket import WebSocket

__all__ = ["connect_websocket"]


@asynccontextmanager
async def connect_websocket(url: str, *, subprotocols: list[str] | None = None,
                            headers: dict[str, str] | None = None,
                            ssl: _ssl.SSLContext | None = None, timeout: float | None = 10.0,
                            max_message_size: int = 1 << 20,
                            close_timeout: float = 5.0,
                            ping_interval: float | None = 20.0,
                            ping_timeout: float | None = 20.0,
                            write_timeout: float | None = None) -> AsyncIterator[WebSocket]:
    """Open a WebSocket to ``url`` (``ws://`` or ``wss://``) for the ``async with`` block.

    ::

        async with connect_websocket("wss://example.org/feed") as ws:
            await ws.send("subscribe")
            async for message in ws:
                print(message)

    ``timeout`` bounds the connection and the handshake (:class:`Timeout`);
    a refused connection raises :class:`ConnectError`, a non-101 answer
    :class:`WebSocketRejected`. ``wss://`` verifies the certificate with
    ``ssl.create_default_context()`` unless you pass ``ssl``. Leaving the
    block closes the connection (code 1000) if it is still open. A ping goes
    out every ``ping_interval`` seconds; without a pong in ``ping_timeout``
    the server counts as gone: close code 1011, and ``receive()`` raises
    :class:`WebSocketClosed` (``None`` turns either off). ``write_timeout``
    bounds each write as ``Limits.write_timeout`` does on the server (close
    code 1011); without it a stuck ``send()`` ends with the keepalive.
    """
    for name, value in (("ping_interval", ping_interval), ("ping_timeout", ping_timeout),
                        ("write_timeout", write_timeout)):
        # Checked here, as Limits checks the server's: a zero or negative
        # interval would ping without pause.
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not value > 0):
            raise ValueError(f"{name} must be a number > 0 or None, not {value!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"a WebSocket URL starts with ws:// or wss://, not {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    host = parts.hostname
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.netloc.rsplit("@", 1)[-1]
    stream, connection, response_headers, agreed = await _handshake(
        host, port, secure, ssl, timeout, host_header, target, subprotocols, headers)
    ws = WebSocket(stream, connection, client=True, max_message_size=max_message_size,
                   close_timeout=close_timeout, subprotocol=agreed, path=parts.path or "/",
                   headers=response_headers, ping_interval=ping_interval,
                   ping_timeout=ping_timeout, write_timeout=write_timeout)
    try:
        async with TaskGroup() as tg:
            tg.spawn(ws._reader, name=f"websocket reader {url}")
            if ping_interval is not None:
                tg.spawn(ws._keepalive, name=f"websocket keepalive {url}")
            try:
                yield ws
            finally:
                await ws._finish()
    except BaseExceptionGroup as group:
        # Only the body can fail (the reader never raises): give it back bare.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        await stream.aclose()


async def _handshake(host: str, port: int, secure: bool, ssl: _ssl.SSLContext | None,
                     timeout: float | None, host_header: str, target: str,
                     subprotocols: list[str] | None,
                     headers: dict[str, str] | None) -> tuple[Stream, Connection, Headers,
                                                              str | None]:
    try:
        with fail_after(timeout if timeout is not None else math.inf):
            result = await _handshake_in_time(host, port, secure, ssl, host_header, target,
                                              subprotocols, headers)
    except TimeoutError as exc:
        if isinstance(exc, Timeout):
            raise
        raise Timeout(f"WebSocket handshake with {host}:{port} timed out") from exc
    return result


async def _handshake_in_time(host: str, port: int, secure: bool, ssl: _ssl.SSLContext | None,
                             host_header: str, target: str, subprotocols: list[str] | None,
                             headers: dict[str, str] | None) -> tuple[Stream, Connection, Headers,
                                                                      str | None]:
    from ..net._tcp import open_tcp_stream

    try:
        stream = await open_tcp_stream(
            host, port, ssl=(ssl or _ssl.create_default_context()) if secure else None)
    except (OSError, _ssl.SSLError) as exc:
        raise connect_error(host, port, exc) from exc
    try:
        wsconn = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        await stream.write(wsconn.send(wse.Request(host=host_header, target=target,
                                                   subprotocols=list(subprotocols or []),
                                                   extra_headers=extra)))
        reject: wse.RejectConnection | None = None
        body = bytearray()
        while True:
            data = await stream.read(65536)
            try:
                wsconn.receive_data(data or None)
                for event in wsconn.events():
                    if isinstance(event, wse.AcceptConnection):
                        assert wsconn.connection is not None
                        resp = Headers.from_raw(event.extra_headers)
                        return stream, wsconn.connection, resp, event.subprotocol
                    if isinstance(event, wse.RejectConnection):
                        reject = event
                        if not event.has_body:
                            raise WebSocketRejected(event.status_code,
                                                    Headers.from_raw(event.headers))
                    elif isinstance(event, wse.RejectData):
                        body += event.data
                        if event.body_finished and reject is not None:
                            raise WebSocketRejected(reject.status_code,
                                                    Headers.from_raw(reject.headers), bytes(body))
            except wsproto.utilities.RemoteProtocolError as exc:
                raise ProtocolError(f"bad WebSocket handshake response: {exc}") from exc
            if not data:
                raise ProtocolError("the server closed the connection during the WebSocket "
                                    "handshake")
    except OSError as exc:
        # A reset (or a broken pipe) in the handshake: as a FIN is, an
        # HTTPError, not a bare OSError that "except HTTPError" would miss.
        await stream.aclose()
        raise ProtocolError(f"the connection to {host}:{port} failed during the WebSocket "
                            f"handshake: {exc!r}") from exc
    except BaseException:
        await stream.aclose()
        raise
