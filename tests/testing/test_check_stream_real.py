"""check_stream() on real transports, and on streams broken on purpose (it must catch them)."""

from __future__ import annotations

import functools
import socket

import pytest

import yieldio
from yieldio.testing import MemoryStream, VirtualClock, check_stream, memory_stream_pair


def _net():
    try:
        import yieldio.net as net
    except ImportError as exc:  # pragma: no cover - while yieldio.net is being written
        pytest.skip(f"yieldio.net is not importable yet: {exc}")
    return net


def test_real_tcp_streams():
    net = _net()

    async def pair():
        (listener,) = await net.current_network().listen_tcp("127.0.0.1", 0)
        async with listener:
            client = await yieldio.open_tcp_stream("127.0.0.1", listener.port)
            server = await listener.accept()
        return client, server

    assert len(yieldio.run(check_stream, pair)) == 14


def test_real_unix_streams(tmp_path):
    net = _net()
    path = str(tmp_path / "s.sock")

    async def pair():
        listener = await net.current_network().listen_unix(path)
        async with listener:
            client = await yieldio.open_unix_stream(path)
            server = await listener.accept()
        return client, server

    yieldio.run(check_stream, pair)


def test_socketpair_streams():
    net = _net()

    async def pair():
        a, b = socket.socketpair()
        return net.SocketStream(a), net.SocketStream(b)

    yieldio.run(check_stream, pair)


# -- the suite catches broken streams ----------------------------------------------------------
class DropsAByte(MemoryStream):
    async def send_all(self, data):
        await super().send_all(bytes(data)[1:] if len(data) > 100 else data)


class ReadsTooMuch(MemoryStream):
    async def receive_some(self, max_bytes=65536):
        return await super().receive_some(max_bytes + 1)


class CloseDoesNotWake(MemoryStream):
    async def aclose(self):
        self._closed = True  # forgets to wake blocked tasks and the peer


def broken_pair(cls):
    async def factory():
        a, b = memory_stream_pair()
        return cls(a._in, a._out), cls(b._in, b._out)

    return factory


@pytest.mark.parametrize("cls, failing", [
    (DropsAByte, "ordered_delivery"),
    (ReadsTooMuch, "receive_some_sizes"),
    (CloseDoesNotWake, "close_wakes_blocked_tasks"),
])
def test_check_stream_catches_broken_streams(cls, failing):
    with pytest.raises(AssertionError, match=f"{failing}: ") as info:
        yieldio.run(functools.partial(check_stream, broken_pair(cls), timeout=5.0),
                    clock=VirtualClock(autojump=True))
    assert "stream checks failed" in str(info.value)


def test_skip_and_unknown_checks():
    async def pair():
        return memory_stream_pair()

    ran = yieldio.run(functools.partial(
        check_stream, pair, skip=("busy_send", "large_transfer_both_ways")))
    assert "busy_send" not in ran and len(ran) == 12

    async def main():
        with pytest.raises(ValueError, match="unknown checks"):
            await check_stream(pair, skip=["nonsense"])

    yieldio.run(main)


def test_a_sync_factory_is_refused_with_a_hint():
    # Regression: a factory returning the pair itself (memory_stream_pair, not
    # an async function) failed with "object tuple can't be used in 'await'
    # expression", which named neither the factory nor the fix.
    with pytest.raises(TypeError, match=r"the factory must be an async function .* "
                                        r"returned tuple .*async def pair\(\): return"):
        yieldio.run(check_stream, memory_stream_pair)
    with pytest.raises(TypeError, match=r"check_stream\(\) needs a factory"):
        yieldio.run(check_stream, memory_stream_pair())


@pytest.mark.parametrize("latency, max_buffer", [(0.01, 4), (0.01, 1), (0.5, 2)])
def test_check_stream_on_a_slow_link_with_a_tiny_buffer(latency, max_buffer):
    # The checker itself failed there: it read while its reader task was
    # still parked on bytes in flight (BusyResourceError), and a sender of
    # three bytes into a one-byte buffer waited for a reader that came later.
    from yieldio.testing import SimNetwork, VirtualClock

    net = SimNetwork(latency=latency, max_buffer=max_buffer)
    ports = iter(range(1000, 2000))

    async def pair():
        port = next(ports)
        (listener,) = await net.listen_tcp("127.0.0.1", port)
        client = await net.connect_tcp("127.0.0.1", port)
        server = await listener.accept()
        await listener.aclose()
        return client, server

    async def main():
        return await check_stream(pair, timeout=1e6, skip=[
            "ordered_delivery", "busy_send", "large_transfer_both_ways"])  # (slow here)

    assert len(yieldio.run(main, network=net, clock=VirtualClock(autojump=True))) == 11
