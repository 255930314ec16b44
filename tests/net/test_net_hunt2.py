"""Regression tests from a bug hunt in sockets and network streams (second round)."""

from __future__ import annotations

import os
import socket as stdsocket

import pytest

import yieldio
from yieldio import socket as ysocket
from yieldio.net import BrokenStreamError, SocketStream, TLSStream
from yieldio.testing import wait_all_tasks_blocked


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def tcp_pair() -> tuple[SocketStream, SocketStream]:
    with stdsocket.create_server(("127.0.0.1", 0)) as listener:
        client = stdsocket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return SocketStream(client), SocketStream(server)


# -- yieldio.socket against the stdlib -----------------------------------------------
def test_from_stdlib_refuses_an_ssl_socket_instead_of_failing_every_recv(client_context):
    # An SSLSocket is a socket.socket subclass; wrapped, every recv raised
    # SSLWantReadError where it should have waited.
    a, b = stdsocket.socketpair()
    with a, b:
        tls = client_context.wrap_socket(a, server_hostname="localhost",
                                         do_handshake_on_connect=False)
        with tls, pytest.raises(TypeError, match="SSLSocket"):
            ysocket.from_stdlib(tls)
        with pytest.raises(TypeError, match="SSLSocket"):
            SocketStream(tls)


def test_sendto_and_connect_take_the_stdlib_special_hosts():
    # The stdlib maps "" (INADDR_ANY: this host) and "<broadcast>" itself;
    # yieldio sent them to the resolver, which raised gaierror.
    async def main():
        with ysocket.socket(ysocket.AF_INET, ysocket.SOCK_DGRAM) as server, \
                ysocket.socket(ysocket.AF_INET, ysocket.SOCK_DGRAM) as client:
            server.bind(("127.0.0.1", 0))
            port = server.getsockname()[1]
            assert await client.sendto(b"to-any", ("", port)) == 6
            assert (await server.recvfrom(100))[0] == b"to-any"
            # Without SO_BROADCAST the kernel refuses, as with the stdlib (and
            # nothing leaves the machine).
            with pytest.raises(PermissionError):
                await client.sendto(b"x", ("<broadcast>", port))
        with ysocket.socket(ysocket.AF_INET, ysocket.SOCK_DGRAM) as server, \
                ysocket.socket(ysocket.AF_INET, ysocket.SOCK_DGRAM) as client:
            server.bind(("127.0.0.1", 0))
            await client.connect(("", server.getsockname()[1]))
            await client.send(b"connected")
            assert (await server.recvfrom(100))[0] == b"connected"

    yieldio.run(main)


def test_dup_gives_an_independent_yieldio_socket():
    async def main():
        before = open_fds()
        a, b = ysocket.socketpair()
        copy = a.dup()
        assert isinstance(copy, ysocket.SocketType) and copy.fileno() != a.fileno()
        a.close()
        await copy.sendall(b"via the dup")  # the connection lives on in the copy
        assert await b.recv(100) == b"via the dup"
        with pytest.raises(OSError):
            a.dup()  # closed: EBADF, as the stdlib's
        copy.close()
        assert await b.recv(100) == b""  # the last fd closed: EOF
        b.close()
        assert open_fds() == before

    yieldio.run(main)


# -- TLS -------------------------------------------------------------------------------
def test_a_handshake_that_lost_a_message_is_broken_not_hung(client_context):
    # The ClientHello was taken out of the engine, then its transport write
    # was cancelled (the peer is not reading): a second do_handshake() (or a
    # read) waited forever for an answer to a hello the peer never got.
    async def main():
        a, b = tcp_pair()
        raw = a.socket._sock
        raw.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_SNDBUF, 4096)
        try:  # fill the send path, so the ClientHello write has to wait
            while True:
                raw.send(b"\0" * 65536)
        except BlockingIOError:
            pass
        tls = await TLSStream.wrap(a, client_context, server_hostname="localhost",
                                   handshake=False)
        async with b, tls:
            with yieldio.CancelScope() as scope:
                async with yieldio.TaskGroup() as tg:
                    tg.spawn(tls.do_handshake)
                    await wait_all_tasks_blocked()  # blocked writing the ClientHello
                    scope.cancel()
            assert scope.cancelled_caught
            with yieldio.fail_after(5):  # (the bug: forever)
                with pytest.raises(BrokenStreamError):
                    await tls.do_handshake()
                with pytest.raises(BrokenStreamError):
                    await tls.read()

    yieldio.run(main)


async def _tls_pair(server_context, client_context) -> tuple[TLSStream, TLSStream]:
    a, b = tcp_pair()
    async with yieldio.TaskGroup() as tg:
        server = tg.spawn(TLSStream.wrap(b, server_context, server_side=True))
        client = await TLSStream.wrap(a, client_context, server_hostname="localhost")
    return client, server.result()


def test_receive_some_of_zero_bytes_is_refused_not_an_eof(server_context, client_context):
    # receive_some(0) returned b"", the end-of-stream signal, while data was
    # still coming (and TLSStream recorded a TLS EOF). FdStream and read()
    # already raise ValueError.
    async def main():
        a, b = tcp_pair()
        async with a, b:
            await a.write(b"data")
            with pytest.raises(ValueError):
                await b.receive_some(0)
            assert await b.receive_some(100) == b"data"
        client, server = await _tls_pair(server_context, client_context)
        async with client, server:
            await client.write(b"secret")
            with pytest.raises(ValueError):
                await server.receive_some(0)
            assert not server._tls_eof
            assert await server.receive_some(100) == b"secret"

    yieldio.run(main)
