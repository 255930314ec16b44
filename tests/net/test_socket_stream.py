"""SocketStream: the Stream over a connected socket (TCP and Unix), on real sockets."""

from __future__ import annotations

import hashlib
import os
import socket as stdsocket

import pytest

import yieldio
from yieldio import socket as ysocket
from yieldio.net import BrokenStreamError, SocketStream
from yieldio.testing import check_stream


def tcp_pair() -> tuple[SocketStream, SocketStream]:
    with stdsocket.create_server(("127.0.0.1", 0)) as listener:
        client = stdsocket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return SocketStream(client), SocketStream(server)


def unix_pair() -> tuple[SocketStream, SocketStream]:
    a, b = stdsocket.socketpair()
    return SocketStream(a), SocketStream(b)


@pytest.mark.parametrize("make", [tcp_pair, unix_pair], ids=["tcp", "unix"])
def test_socket_stream_passes_the_stream_conformance_suite(make):
    async def pair():
        return make()

    async def main():
        ran = await check_stream(pair)
        assert len(ran) >= 10

    yieldio.run(main)


def test_construction_checks_and_tcp_nodelay():
    a, b = tcp_pair()
    try:
        assert a.getsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_NODELAY)
        assert isinstance(a.get_extra_info("socket"), ysocket.SocketType)
        assert a.get_extra_info("peername") == b.get_extra_info("sockname")
        assert a.get_extra_info("family") == stdsocket.AF_INET
        assert a.get_extra_info("nonsense", "dflt") == "dflt"
    finally:
        a.socket.close()
        b.socket.close()
    with pytest.raises(TypeError):
        SocketStream("not a socket")  # type: ignore[arg-type]
    with stdsocket.socket(stdsocket.AF_INET, stdsocket.SOCK_DGRAM) as udp:
        with pytest.raises(ValueError, match="SOCK_STREAM"):
            SocketStream(udp)


def test_read_write_and_the_buffered_readers():
    async def main():
        a, b = tcp_pair()
        async with a, b:
            await a.write(b"line one\nline two\nrest")
            assert await b.readline() == b"line one\n"
            assert await b.read_exactly(4) == b"line"  # served from the buffer
            assert await b.read_until(b"\n") == b" two\n"
            await a.send_eof()
            assert await b.read() == b"rest"
            assert await b.read() == b""
            assert await b.read() == b""  # EOF is sticky

    yieldio.run(main)


def test_lines_iterates_lines_where_plain_iteration_gives_chunks():
    async def main():
        a, b = tcp_pair()
        async with a, b:
            await a.write(b"one\ntwo\n")
            got = []
            async for line in b.lines():
                got.append(line)
                if line == b"two\n":
                    break  # leaving early leaves the rest in the buffer
            await a.write(b"three\nlast, unterminated")
            await a.send_eof()
            async for line in b.lines():
                got.append(line)
            assert got == [b"one\n", b"two\n", b"three\n", b"last, unterminated"]

            c, d = tcp_pair()
            async with c, d:
                await c.write(b"x" * 100 + b"\n")
                with pytest.raises(ValueError):
                    async for _line in d.lines(max_bytes=10):
                        pass
                assert await d.read_exactly(101) == b"x" * 100 + b"\n"  # nothing lost
        with pytest.raises(yieldio.ClosedResourceError):
            async for _line in b.lines():
                pass

    yieldio.run(main)


def test_read_asks_for_at_most_64_kib():
    async def main():
        a, b = unix_pair()
        async with a, b:
            payload = os.urandom(200_000)
            async with yieldio.TaskGroup() as tg:
                tg.spawn(a.write, payload)
                got = bytearray()
                while len(got) < len(payload):
                    chunk = await b.read(1 << 20)
                    assert 0 < len(chunk) <= 65536
                    got += chunk
            assert bytes(got) == payload

    yieldio.run(main)


def test_short_read_shortcut_waits_first_and_still_sees_data_that_arrived_meanwhile():
    async def main():
        a, b = tcp_pair()
        async with a, b:
            await a.write(b"abc")
            await yieldio.sleep(0.02)
            assert await b.read(100) == b"abc"
            assert b._drained  # short read: the socket is drained
            # Data arriving before the next read is not lost: the wait sees
            # the socket readable at once (epoll is level-triggered).
            await a.write(b"defg")
            await yieldio.sleep(0.02)
            assert await b.read(100) == b"defg"
            # A read that filled its buffer does not mark the socket drained.
            await a.write(b"0123456789")
            await yieldio.sleep(0.02)
            assert await b.read(4) == b"0123"
            assert not b._drained
            assert await b.read(100) == b"456789"
            # Through the base class's buffered readers too.
            await a.write(b"x\n")
            assert await b.readline() == b"x\n"

    yieldio.run(main)


def test_big_transfers_both_ways_keep_every_byte():
    async def main():
        a, b = tcp_pair()
        size = 4 << 20
        data_a, data_b = os.urandom(size), os.urandom(size)
        digests = {}

        async def send(stream, data):
            for i in range(0, size, 100_000):
                await stream.write(data[i:i + 100_000])
            await stream.send_eof()

        async def receive(stream, key):
            h = hashlib.sha256()
            async for chunk in stream:
                h.update(chunk)
            digests[key] = h.digest()

        async with a, b:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(send, a, data_a)
                tg.spawn(send, b, data_b)
                tg.spawn(receive, a, "a")
                tg.spawn(receive, b, "b")
        assert digests["b"] == hashlib.sha256(data_a).digest()
        assert digests["a"] == hashlib.sha256(data_b).digest()

    yieldio.run(main)


def test_closed_stream_raises_closed_resource_error_and_aclose_is_idempotent():
    async def main():
        a, b = unix_pair()
        await a.aclose()
        await a.aclose()
        assert a.closed
        assert a.socket.closed
        with pytest.raises(yieldio.ClosedResourceError):
            await a.read()
        with pytest.raises(yieldio.ClosedResourceError):
            await a.write(b"x")
        with pytest.raises(yieldio.ClosedResourceError):
            await a.send_eof()
        await b.aclose()

    yieldio.run(main)


def test_a_reader_blocked_when_another_task_closes_gets_closed_resource_error():
    async def main():
        a, b = tcp_pair()
        errors = []

        async def reader():
            try:
                await b.read()
            except yieldio.ClosedResourceError as exc:
                errors.append(exc)

        async with a:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(reader)
                await yieldio.sleep(0.05)
                await b.aclose()
        assert len(errors) == 1

    yieldio.run(main)


def test_a_reader_blocked_after_a_short_read_also_wakes_on_close():
    async def main():
        a, b = tcp_pair()
        async with a:
            await a.write(b"x")
            await yieldio.sleep(0.02)
            assert await b.read() == b"x"  # short read: next read waits first

            async def reader():
                with pytest.raises(yieldio.ClosedResourceError):
                    await b.read()

            async with yieldio.TaskGroup() as tg:
                tg.spawn(reader)
                await yieldio.sleep(0.05)
                await b.aclose()

    yieldio.run(main)


def test_two_readers_get_busy_resource_error_and_the_first_keeps_its_data():
    async def main():
        a, b = tcp_pair()
        async with a, b:
            async with yieldio.TaskGroup() as tg:
                first = tg.spawn(b.read)
                await yieldio.sleep(0.05)
                with pytest.raises(yieldio.BusyResourceError):
                    await b.read()
                with pytest.raises(yieldio.BusyResourceError):
                    await b.readline()
                await a.write(b"mine")
            assert first.result() == b"mine"

    yieldio.run(main)


def test_write_after_send_eof_is_refused_and_reading_still_works():
    async def main():
        a, b = tcp_pair()
        async with a, b:
            await a.send_eof()
            await a.send_eof()  # idempotent
            with pytest.raises(yieldio.ClosedResourceError, match="send_eof"):
                await a.write(b"more")
            assert await b.read() == b""
            await b.write(b"the other direction still works")
            assert await a.read() == b"the other direction still works"

    yieldio.run(main)


def test_write_cancelled_part_way_breaks_the_stream_for_writing():
    async def main():
        a, b = unix_pair()
        async with a, b:
            with yieldio.move_on_after(0.1) as scope:
                await a.write(b"\0" * (16 << 20))  # nobody reads: it blocks part way
            assert scope.cancelled_caught
            with pytest.raises(BrokenStreamError):
                await a.write(b"x")
            # Reading is unaffected.
            await b.write(b"still readable")
            assert await a.read() == b"still readable"

    yieldio.run(main)


def test_send_all_cancelled_part_way_refuses_later_send_all_too():
    # After a send_all cut off part way, the byte stream is corrupt. A later
    # send_all used to send its bytes right after the unknown prefix (or wait
    # for room to do so), where write() and send_all on pipes raise
    # BrokenStreamError.
    async def main():
        a, b = unix_pair()
        async with a, b:
            with yieldio.move_on_after(0.1) as scope:
                await a.send_all(b"\0" * (16 << 20))  # nobody reads: it blocks part way
            assert scope.cancelled_caught
            with yieldio.fail_after(5):  # (the bug: it waited for room, to send "x")
                with pytest.raises(BrokenStreamError):
                    await a.send_all(b"x")
                with pytest.raises(BrokenStreamError):
                    await a.write(b"x")

    yieldio.run(main)


def test_write_cancelled_before_sending_anything_leaves_the_stream_usable():
    async def main():
        a, b = unix_pair()
        async with a, b:
            with yieldio.CancelScope() as scope:
                scope.cancel()
                await a.write(b"never sent")
            assert scope.cancelled_caught
            await a.write(b"fine")
            assert await b.read() == b"fine"

    yieldio.run(main)


def test_a_socket_closed_underneath_the_stream_is_reported():
    async def main():
        a, b = unix_pair()
        async with a, b:
            await b.write(b"x")
            await yieldio.sleep(0.01)
            assert await a.read() == b"x"  # drained: the next read waits first
            a.socket.close()
            with pytest.raises(yieldio.ClosedResourceError):
                await a.read()

    yieldio.run(main)


def test_reads_served_from_the_buffer_or_at_eof_are_checkpoints():
    # read() with buffered data and every reader at end of stream used to
    # return without a checkpoint: Cancelled was not raised, and a loop
    # reading a finished stream could not even be timed out (it never yielded).
    async def main():
        left, right = unix_pair()
        async with left, right:
            await right.write(b"one\ntwo\nthree\nfour")
            await right.send_eof()
            assert await left.read_exactly(2) == b"on"   # the rest is buffered now
            readers = [left.read, left.readline, lambda: left.read_exactly(1),
                       lambda: left.read_until(b"o")]
            for read in readers:
                with yieldio.CancelScope() as scope:
                    scope.cancel()
                    await read()
                assert scope.cancelled_caught, read
            assert await left.read() == b"e\ntwo\nthree\nfour"   # nothing was lost
            assert await left.read() == b""
            for read in readers[:3]:
                with yieldio.CancelScope() as scope:
                    scope.cancel()
                    await read()
                assert scope.cancelled_caught, read

            # A task that reads a finished stream in a loop still lets the
            # others run (here: the one that cancels it).
            scope = yieldio.CancelScope()

            async def cancel_soon():
                await yieldio.sleep(0)
                scope.cancel()

            async with yieldio.TaskGroup() as tg:
                tg.spawn(cancel_soon)
                with scope:
                    while True:
                        await left.read()
            assert scope.cancelled_caught

    yieldio.run(main)
