"""Networking: streams, TCP and Unix clients and servers, TLS.

::

    import yieldio

    async def echo(stream):
        async for data in stream:
            await stream.write(data)

    async def main():
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0) as server:
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as s:
                await s.write(b"hi")
                assert await s.read() == b"hi"

    yieldio.run(main)

Everything here talks to :func:`current_network`: the OS, or a network the
run installed (``yieldio.run(main, network=...)``). The socket-level API is
:mod:`yieldio.socket`.
"""

from __future__ import annotations as _annotations

from .._stream import BrokenStreamError, Stream
from ._network import Listener, OSNetwork, SocketListener, UnixSocketListener, current_network
from ._socket_stream import SocketStream
from ._start_tls import start_tls
from ._tcp import Server, happy_eyeballs, open_tcp_stream, serve_tcp
from ._tls import TLSStream
from ._unix import open_unix_stream, serve_unix

__all__ = [
    "BrokenStreamError",
    "Listener",
    "OSNetwork",
    "Server",
    "SocketListener",
    "SocketStream",
    "Stream",
    "TLSStream",
    "UnixSocketListener",
    "current_network",
    "happy_eyeballs",
    "open_tcp_stream",
    "open_unix_stream",
    "serve_tcp",
    "serve_unix",
    "start_tls",
]
