"""Listeners, OSNetwork and open_tcp_stream at the edges, on real sockets."""

from __future__ import annotations

import errno
import os
import socket as stdsocket

import pytest

import yieldio
from yieldio import socket as ysocket
from yieldio.net import SocketListener, current_network

from .conftest import needs_ipv6


def test_a_unix_listener_has_no_port_and_the_network_a_repr(tmp_path):
    async def main():
        net = current_network()
        assert repr(net) == "<OSNetwork>"
        async with await net.listen_unix(tmp_path / "s") as listener:
            assert listener.port is None
            with ysocket.socket(ysocket.AF_UNIX) as raw:
                raw.bind(str(tmp_path / "t"))
                raw.listen()
                assert SocketListener(raw).port is None  # a plain listener on a path too

    yieldio.run(main)


def test_listen_unix_in_a_missing_directory_fails_without_leaking_the_socket(tmp_path):
    async def main():
        with pytest.raises(FileNotFoundError):
            await current_network().listen_unix(tmp_path / "no" / "such" / "dir" / "s")

    yieldio.run(main)  # the autouse fixture checks that no fd leaked


def test_listen_unix_refuses_a_live_server_whose_backlog_is_full(tmp_path):
    path = str(tmp_path / "busy")
    live = stdsocket.socket(stdsocket.AF_UNIX)
    live.bind(path)
    live.listen(0)
    waiting = []
    try:
        while True:  # fill the backlog: further connects say EAGAIN
            c = stdsocket.socket(stdsocket.AF_UNIX)
            c.setblocking(False)
            waiting.append(c)
            try:
                c.connect(path)
            except BlockingIOError:
                break

        async def main():
            with pytest.raises(OSError) as info:
                await current_network().listen_unix(path)
            assert info.value.errno == errno.EADDRINUSE
            assert os.path.exists(path)  # never removed

        yieldio.run(main)
    finally:
        for c in waiting:
            c.close()
        live.close()


def test_accept_on_a_socket_that_is_not_listening_or_is_closed():
    async def main():
        sock = ysocket.socket()
        sock.bind(("127.0.0.1", 0))
        listener = SocketListener(sock)  # bound, but listen() was never called
        with pytest.raises(OSError) as info:
            await listener.accept()
        assert info.value.errno == errno.EINVAL
        sock.close()  # closed under the listener, not through it
        with pytest.raises(yieldio.ClosedResourceError):
            await listener.accept()
        await listener.aclose()

    yieldio.run(main)


@needs_ipv6
def test_a_port_taken_on_the_second_address_closes_the_first_listener():
    with stdsocket.socket(stdsocket.AF_INET6) as squatter:
        squatter.setsockopt(stdsocket.IPPROTO_IPV6, stdsocket.IPV6_V6ONLY, 1)
        squatter.bind(("::1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]

        class TwoAddresses:
            async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
                return [(stdsocket.AF_INET, stdsocket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
                        (stdsocket.AF_INET6, stdsocket.SOCK_STREAM, 6, "", ("::1", port, 0, 0))]

        async def main():
            with pytest.raises(OSError) as info:
                await yieldio.net.OSNetwork.listen_tcp(TwoAddresses(), "both", port)  # type: ignore[arg-type]
            assert info.value.errno == errno.EADDRINUSE
            # The IPv4 listener made first was closed: the port is free there.
            with stdsocket.socket() as probe:
                probe.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEADDR, 1)
                probe.bind(("127.0.0.1", port))

        yieldio.run(main)


def test_an_empty_host_listens_on_every_interface_and_a_name_to_nothing_is_an_error():
    async def main():
        listeners = await current_network().listen_tcp("", 0)
        try:
            assert {listener.address[0] for listener in listeners} <= {"0.0.0.0", "::"}
        finally:
            for listener in listeners:
                await listener.aclose()

        class Nothing(yieldio.net.OSNetwork):
            async def getaddrinfo(self, *args, **kwargs):
                return []

        with pytest.raises(OSError, match="resolved to no address"):
            await Nothing().listen_tcp("nowhere.internal", "http")

    yieldio.run(main)


def test_local_address_of_the_wrong_family_is_a_clear_error():
    async def main():
        with pytest.raises(OSError, match="no address of the family of local_address"):
            await yieldio.open_tcp_stream("127.0.0.1", 80, local_address="::1")

    yieldio.run(main)


def test_closing_a_unix_listener_whose_file_was_already_removed(tmp_path):
    async def main():
        listener = await current_network().listen_unix(tmp_path / "s")
        os.unlink(tmp_path / "s")  # someone cleaned up first
        await listener.aclose()  # no error, and the socket is closed
        assert listener.socket.closed

    yieldio.run(main)
