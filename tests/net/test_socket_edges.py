"""yieldio.socket and SocketStream at the edges: misuse, full buffers, rivals sharing an fd.

Everything runs on real sockets (socketpairs and loopback TCP). A "rival" is
a stdlib socket on a dup of the same fd -- what another process sharing a
listener or a pipe looks like: it can take the connection, the data or the
buffer space between the loop's readiness report and our retry.
"""

from __future__ import annotations

import array
import socket as stdsocket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import yieldio
from yieldio import socket as ysocket
from yieldio.net import BrokenStreamError, SocketStream
from yieldio.testing import wait_all_tasks_blocked

from .conftest import needs_ipv6


def rival_of(sock: Any) -> stdsocket.socket:
    """A stdlib socket on a dup of ``sock``'s fd (non-blocking, as the flag is shared)."""
    return stdsocket.fromfd(sock.fileno(), sock.family, sock.type)


def fill(sock: stdsocket.socket) -> int:
    """Send until the socket buffers are full; return how much was sent."""
    total = 0
    while True:
        try:
            total += sock.send(b"f" * 65536)
        except BlockingIOError:
            return total


def drain(sock: stdsocket.socket) -> int:
    """Receive everything buffered (non-blocking); return how much."""
    total = 0
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return total
        if not data:
            return total
        total += len(data)


async def rival_gets_there_first(op: Callable[[], Awaitable[Any]], make_ready: Callable[[], Any],
                                 steal: Callable[[], Any], finish: Callable[[], Any]) -> Any:
    """Run ``op`` in a task through a wake-up that finds nothing left; return its result.

    ``op`` parks; ``make_ready`` makes its fd ready; the poll wakes it (queued
    after us); ``steal`` takes the readiness away before it runs, so its retry
    fails with EAGAIN -- it must wait again, not fail; ``finish`` lets it complete.
    """
    async with yieldio.TaskGroup() as tg:
        task = tg.spawn(op)
        await wait_all_tasks_blocked()
        make_ready()
        await yieldio.sleep(0)  # the loop polls: the task is woken, to run after us
        steal()
        await yieldio.sleep(0)  # the task runs, finds nothing, waits again
        assert not task.done()
        finish()
    return task.result()


# -- yieldio.socket ----------------------------------------------------------------------


def test_proto_and_the_buffer_length_forms_of_the_socket_options():
    with ysocket.socket() as sock, stdsocket.socket() as std:
        assert sock.proto == std.proto == 0
        linger = struct.pack("ii", 1, 5)
        sock.setsockopt(ysocket.SOL_SOCKET, ysocket.SO_LINGER, linger)
        assert struct.unpack("ii", sock.getsockopt(ysocket.SOL_SOCKET, ysocket.SO_LINGER, 8)) \
            == (1, 5)
        # The four-argument form (no value, just a length) reaches the OS as the
        # stdlib's does: same outcome for both.
        outcomes = []
        for s in (sock, std):
            try:
                s.setsockopt(ysocket.SOL_SOCKET, ysocket.SO_LINGER, None, 0)
                outcomes.append(None)
            except OSError as exc:
                outcomes.append(exc.errno)
        assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("op", ["connect", "accept", "send", "sendall", "recv_into", "sendto"])
def test_every_async_operation_outside_a_run_is_a_clear_error(op):
    a, b = ysocket.socketpair()
    with a, b:
        call = {
            "connect": lambda: a.connect(("127.0.0.1", 1)),
            "accept": lambda: a.accept(),
            "send": lambda: a.send(b"x"),
            "sendall": lambda: a.sendall(b"x"),
            "recv_into": lambda: a.recv_into(bytearray(1)),
            "sendto": lambda: a.sendto(b"x", None),
        }[op]
        coro = call()
        try:
            with pytest.raises(RuntimeError, match=r"yieldio\.run"):
                coro.send(None)
        finally:
            coro.close()
        with pytest.raises(BlockingIOError):  # nothing was sent
            b._sock.recv(1)


@pytest.mark.parametrize("op", ["send", "sendall", "recv_into", "accept"])
def test_every_send_and_receive_in_a_cancelled_scope_does_nothing(op):
    async def main():
        a, b = ysocket.socketpair()
        with a, b:
            await a.sendall(b"ready")  # b has data: the operation would not wait
            with yieldio.CancelScope() as scope:
                scope.cancel()
                if op == "send":
                    await a.send(b"never")
                elif op == "sendall":
                    await a.sendall(b"never")
                elif op == "recv_into":
                    await b.recv_into(bytearray(10))
                else:
                    with ysocket.socket() as listener:
                        listener.bind(("127.0.0.1", 0))
                        listener.listen()
                        await listener.accept()
            assert scope.cancelled_caught
            assert await b.recv(100) == b"ready"  # nothing sent, nothing consumed

    yieldio.run(main)


@pytest.mark.parametrize("op", ["send", "sendall", "recv_into"])
def test_a_socket_that_never_waits_still_lets_the_other_tasks_run(op):
    async def main():
        a, b = ysocket.socketpair()
        ticks = 0
        buf = bytearray(1)

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await yieldio.sleep(0)

        with a, b:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(ticker)
                for _ in range(2000):  # every call succeeds at once
                    if op == "send":
                        await a.send(b"x")
                        assert b._sock.recv(1) == b"x"
                    elif op == "sendall":
                        await a.sendall(b"x")
                        assert b._sock.recv(1) == b"x"
                    else:
                        a._sock.send(b"x")
                        assert await b.recv_into(buf) == 1
                tg.cancel()
        assert ticks > 20

    yieldio.run(main)


def test_send_and_sendall_on_a_full_buffer_wait_for_the_reader():
    async def main():
        a, b = ysocket.socketpair()
        with a, b:
            stuffed = fill(a._sock)
            got = 0

            async def reader():
                nonlocal got
                await yieldio.sleep(0.01)
                while got < stuffed + 1 + 100_000:
                    got += len(await b.recv(1 << 20))

            async with yieldio.TaskGroup() as tg:
                tg.spawn(reader)
                assert await a.send(b"s") == 1  # full at first: waits, then sends
                fill(a._sock)
                await a.sendall(b"y" * 100_000)  # nothing fits at first
            assert got >= stuffed + 1 + 100_000

    yieldio.run(main)


def test_a_network_that_resolves_a_name_to_nothing_is_a_gaierror():
    class EmptyNetwork:
        async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
            return []

    async def main():
        async with ysocket.socket() as sock:
            with pytest.raises(ysocket.gaierror, match="no .* address found for 'db.internal'"):
                await sock.connect(("db.internal", 5432))

    yieldio.run(main, network=EmptyNetwork())


@needs_ipv6
def test_an_ipv6_name_address_keeps_its_flowinfo_and_scope_id():
    class Network:
        async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
            assert host == "db6.internal"
            return [(stdsocket.AF_INET6, stdsocket.SOCK_STREAM, 6, "", ("::1", port, 0, 0))]

    async def main():
        with ysocket.socket(ysocket.AF_INET6) as listener:
            listener.bind(("::1", 0))
            listener.listen()
            port = listener.getsockname()[1]
            async with ysocket.socket(ysocket.AF_INET6) as client:
                await client.connect(("db6.internal", port, 0, 0))
                assert client.getpeername()[:2] == ("::1", port)
                conn, _ = await listener.accept()
                conn.close()

    yieldio.run(main, network=Network())


def test_accept_keeps_waiting_when_a_rival_takes_the_connection_first():
    async def main():
        with ysocket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            addr = listener.getsockname()
            clients: list[stdsocket.socket] = []
            with rival_of(listener) as rival:
                try:
                    def steal():
                        conn, _ = rival.accept()
                        conn.close()

                    conn, peer = await rival_gets_there_first(
                        listener.accept,
                        lambda: clients.append(stdsocket.create_connection(addr)),
                        steal,
                        lambda: clients.append(stdsocket.create_connection(addr)))
                    with conn:
                        assert peer == clients[1].getsockname()
                finally:
                    for c in clients:
                        c.close()

    yieldio.run(main)


@pytest.mark.parametrize("op", ["recv", "recv_into"])
def test_a_receive_keeps_waiting_when_a_rival_takes_the_data_first(op):
    async def main():
        a, b = ysocket.socketpair()
        with a, b, rival_of(b) as rival:
            buf = bytearray(100)

            async def receive():
                if op == "recv":
                    return await b.recv(100)
                return bytes(buf[:await b.recv_into(buf)])

            got = await rival_gets_there_first(
                receive,
                lambda: a._sock.send(b"stolen"),
                lambda: rival.recv(100),
                lambda: a._sock.send(b"kept"))
            assert got == b"kept"

    yieldio.run(main)


@pytest.mark.parametrize("op", ["send", "sendall", "stream.write"])
def test_a_send_keeps_waiting_when_a_rival_fills_the_buffer_first(op):
    async def main():
        a, b = ysocket.socketpair()
        with a, b, rival_of(a) as rival:
            fill(a._sock)
            payload = b"p" * 300_000
            stream = SocketStream(a) if op == "stream.write" else None
            done = False

            async def send():
                if op == "send":
                    return await a.send(b"p")
                if op == "sendall":
                    return await a.sendall(payload)
                assert stream is not None
                return await stream.write(payload)

            async def keep_draining():
                while not done:
                    drain(b._sock)
                    await yieldio.sleep(0.001)

            async with yieldio.TaskGroup() as outer:
                result = await rival_gets_there_first(
                    send, lambda: drain(b._sock), lambda: fill(rival),
                    lambda: outer.spawn(keep_draining))
                done = True
            assert result == (1 if op == "send" else None)
            assert stream is None or not stream._write_broken

    yieldio.run(main)


# -- SocketStream --------------------------------------------------------------------------


def unix_pair() -> tuple[SocketStream, SocketStream]:
    a, b = stdsocket.socketpair()
    return SocketStream(a), SocketStream(b)


def tcp_pair_raw() -> tuple[stdsocket.socket, SocketStream]:
    with stdsocket.create_server(("127.0.0.1", 0)) as listener:
        peer = stdsocket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
    return peer, SocketStream(conn)


def reset(sock: stdsocket.socket) -> None:
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("op", ["read", "receive_some", "write", "send_all", "send_eof"])
def test_stream_operations_outside_a_run_are_a_clear_error(op):
    a, b = unix_pair()
    try:
        coro = getattr(a, op)(*([b"x"] if op in ("write", "send_all") else []))
        try:
            with pytest.raises(RuntimeError, match=r"yieldio\.run"):
                coro.send(None)
        finally:
            coro.close()
    finally:
        a.socket.close()
        b.socket.close()


@pytest.mark.parametrize("op", ["read", "receive_some", "send_all", "send_eof"])
def test_stream_operations_in_a_cancelled_scope_do_nothing(op):
    async def main():
        a, b = unix_pair()
        async with a, b:
            await b.write(b"ready")
            with yieldio.CancelScope() as scope:
                scope.cancel()
                if op in ("read", "receive_some"):
                    await getattr(a, op)()
                elif op == "send_all":
                    await a.send_all(b"never")
                else:
                    await a.send_eof()
            assert scope.cancelled_caught
            assert await a.read() == b"ready"  # nothing consumed
            await a.write(b"still open")  # no EOF was sent, nothing else was
            assert await b.read() == b"still open"

    yieldio.run(main)


def test_buffers_of_any_type_and_receive_some_asks_for_at_most_64_kib():
    async def main():
        a, b = unix_pair()
        async with a, b:
            await a.write(array.array("i", [1, 2, 3]))
            await a.send_all(memoryview(b"abcd"))
            await a.send_all(b"")
            want = 3 * array.array("i").itemsize + 4
            got = b""
            while len(got) < want:
                got += await b.receive_some(1 << 20)
            assert got[-4:] == b"abcd"
            big = b"q" * (200 * 1024)
            async with yieldio.TaskGroup() as tg:
                tg.spawn(a.write, big)
                await wait_all_tasks_blocked()
                chunk = await b.receive_some(1 << 20)
                assert len(chunk) <= 65536
                rest = await b.read_exactly(len(big) - len(chunk))
            assert chunk + rest == big

    yieldio.run(main)


def test_send_all_to_a_peer_that_reset_breaks_the_stream_for_writing():
    async def main():
        peer, stream = tcp_pair_raw()
        async with stream:
            reset(peer)
            await yieldio.sleep(0.01)  # the RST has arrived
            with pytest.raises(ConnectionResetError):
                await stream.send_all(b"into the void")
            with pytest.raises(BrokenStreamError):
                await stream.write(b"again")
            # Not connected any more: the client side cannot name its peer, and
            # send_eof has nothing to shut down (no error: the peer is gone).
            assert stream.get_extra_info("peername", "gone") == "gone"
            await stream.send_eof()

    yieldio.run(main)


def test_send_eof_while_a_write_waits_is_busy_and_cuts_nothing():
    async def main():
        a, b = unix_pair()
        async with a, b:
            payload = b"w" * 1_000_000
            async with yieldio.TaskGroup() as tg:
                tg.spawn(a.write, payload)
                await wait_all_tasks_blocked()  # the writer waits for room
                with pytest.raises(yieldio.BusyResourceError):
                    await a.send_eof()
                assert await b.read_exactly(len(payload)) == payload
            await a.send_eof()
            assert await b.read() == b""

    yieldio.run(main)


def test_repr_and_socket_options_of_a_stream():
    async def main():
        a, b = unix_pair()
        assert repr(a) == f"<SocketStream fd={a.socket.fileno()}>"
        a.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_SNDBUF, 65536)
        assert a.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_SNDBUF) >= 65536
        assert len(a.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, 8)) == 8
        await a.aclose()
        await b.aclose()
        assert repr(a) == "<SocketStream closed>"

    yieldio.run(main)


@pytest.mark.parametrize("op", ["read", "receive_some"])
def test_a_stream_read_keeps_waiting_when_a_rival_takes_the_data_first(op):
    async def main():
        a, b = unix_pair()
        async with a, b:
            with rival_of(b.socket) as rival:
                got = await rival_gets_there_first(
                    getattr(b, op),
                    lambda: a.socket._sock.send(b"stolen"),
                    lambda: rival.recv(100),
                    lambda: a.socket._sock.send(b"kept"))
            assert got == b"kept"

    yieldio.run(main)


def test_a_fd_number_closed_behind_the_loops_back_is_registered_again_when_reused():
    # The usual port: 'with raw: s = from_stdlib(raw)' closes the fd without
    # telling the loop. Its registration stayed, so a later socket given the
    # same number looked "already armed", was never registered, and its
    # recv never woke.
    import socket as stdsocket

    from yieldio import socket as ysocket

    async def main():
        a_raw, b_raw = stdsocket.socketpair()
        old_fd = a_raw.fileno()
        with a_raw:
            a = ysocket.from_stdlib(a_raw)
            with yieldio.move_on_after(0.01):
                await a.recv(1)  # the loop watches old_fd now
        b_raw.close()
        x, y = ysocket.socketpair()
        with x, y:
            assert old_fd in (x.fileno(), y.fileno())  # (the number came back)
            reader, writer = (x, y) if x.fileno() == old_fd else (y, x)
            with yieldio.fail_after(5):  # (the bug: for ever)
                async with yieldio.TaskGroup() as tg:
                    got = tg.spawn(reader.recv, 5)
                    await yieldio.testing.wait_all_tasks_blocked()
                    await writer.send(b"hi")
            assert got.result() == b"hi"

    yieldio.run(main)


def test_recv_of_zero_bytes_returns_at_once_even_after_a_short_read():
    # A short read set "drained" (wait before the next recv): recv(0) then
    # waited for data, where the stdlib's and asyncio's return b"" at once.
    from yieldio import socket as ysocket

    async def main():
        a, b = ysocket.socketpair()
        with a, b:
            await b.send(b"abc")
            assert await a.recv(10) == b"abc"  # short: drained
            with yieldio.fail_after(1):
                assert await a.recv(0) == b""

    yieldio.run(main)
