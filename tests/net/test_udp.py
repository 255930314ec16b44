"""UDP through yieldio.socket: datagrams over 127.0.0.1 and ::1."""

from __future__ import annotations

import socket as stdsocket

import pytest

import yieldio
from yieldio import socket as ysocket

from .conftest import needs_ipv6


def _round_trip(family: int, host: str) -> None:
    async def main():
        with ysocket.socket(family, ysocket.SOCK_DGRAM) as server, \
                ysocket.socket(family, ysocket.SOCK_DGRAM) as client:
            server.bind((host, 0))
            addr = server.getsockname()

            async def serve():
                for _ in range(3):
                    data, peer = await server.recvfrom(2048)
                    await server.sendto(data.upper(), peer)

            async with yieldio.TaskGroup() as tg:
                tg.spawn(serve)
                for word in (b"one", b"two", b"three"):
                    assert await client.sendto(word, addr) == len(word)
                    reply, peer = await client.recvfrom(2048)
                    assert reply == word.upper()
                    assert peer[:2] == addr[:2]

    yieldio.run(main)


def test_udp_round_trip_ipv4():
    _round_trip(ysocket.AF_INET, "127.0.0.1")


@needs_ipv6
def test_udp_round_trip_ipv6():
    _round_trip(ysocket.AF_INET6, "::1")


def test_datagram_boundaries_are_kept_and_recvfrom_into_works():
    async def main():
        with ysocket.socket(ysocket.AF_INET, ysocket.SOCK_DGRAM) as a, \
                ysocket.socket(ysocket.AF_INET, ysocket.SOCK_DGRAM) as b:
            a.bind(("127.0.0.1", 0))
            b.bind(("127.0.0.1", 0))
            for size in (1, 100, 1200):
                await a.sendto(b"d" * size, 0, b.getsockname())  # the flags form too
            buf = bytearray(4096)
            for size in (1, 100, 1200):
                n, peer = await b.recvfrom_into(buf)
                assert n == size and peer == a.getsockname()

    yieldio.run(main)


def test_sendto_resolves_a_host_name():
    async def main():
        with ysocket.socket(ysocket.AF_INET, ysocket.SOCK_DGRAM) as a, \
                ysocket.socket(ysocket.AF_INET, ysocket.SOCK_DGRAM) as b:
            b.bind(("127.0.0.1", 0))
            await a.sendto(b"named", ("localhost", b.getsockname()[1]))
            data, _ = await b.recvfrom(100)
            assert data == b"named"

    yieldio.run(main)


def test_connected_udp_socket_uses_send_and_recv():
    async def main():
        with ysocket.socket(ysocket.AF_INET, ysocket.SOCK_DGRAM) as a, \
                ysocket.socket(ysocket.AF_INET, ysocket.SOCK_DGRAM) as b:
            b.bind(("127.0.0.1", 0))
            await a.connect(b.getsockname())
            await a.send(b"connected")
            data, peer = await b.recvfrom(100)
            assert data == b"connected"
            await b.sendto(b"back", peer)
            assert await a.recv(100) == b"back"

    yieldio.run(main)


def test_waiting_for_a_datagram_is_cancellable():
    async def main():
        with ysocket.socket(ysocket.AF_INET, ysocket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            with yieldio.move_on_after(0.05) as scope:
                await s.recvfrom(100)
            assert scope.cancelled_caught

    yieldio.run(main)


def test_udp_with_a_stdlib_peer_thread():
    def stdlib_peer(addr):
        with stdsocket.socket(stdsocket.AF_INET, stdsocket.SOCK_DGRAM) as s:
            s.settimeout(10)
            s.sendto(b"from a thread", addr)
            data, _ = s.recvfrom(100)
            return data

    async def main():
        with ysocket.socket(ysocket.AF_INET, ysocket.SOCK_DGRAM) as server:
            server.bind(("127.0.0.1", 0))
            async with yieldio.TaskGroup() as tg:
                peer = tg.spawn(yieldio.to_thread, stdlib_peer, server.getsockname())
                data, addr = await server.recvfrom(100)
                await server.sendto(data[::-1], addr)
            assert peer.result() == b"daerht a morf"

    yieldio.run(main)


def test_a_datagram_too_big_is_an_os_error():
    async def main():
        with ysocket.socket(ysocket.AF_INET, ysocket.SOCK_DGRAM) as s:
            with pytest.raises(OSError):
                await s.sendto(b"x" * 70000, ("127.0.0.1", 9))

    yieldio.run(main)


def test_a_named_address_with_a_port_out_of_range_fails_as_in_the_stdlib():
    # The stdlib raises OverflowError for port 70000; resolving "localhost"
    # first used to wrap it around to port 4464 and send the datagram there.
    async def main():
        with ysocket.socket(ysocket.AF_INET, ysocket.SOCK_DGRAM) as a, \
                ysocket.socket(ysocket.AF_INET, ysocket.SOCK_STREAM) as b:
            for port in (70000, -1):
                with pytest.raises(OverflowError, match="port"):
                    await a.sendto(b"x", ("localhost", port))
                with pytest.raises(OverflowError, match="port"):
                    await b.connect(("localhost", port))

    yieldio.run(main)
