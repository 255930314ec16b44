"""Regression tests from two bug hunts in sockets, network streams and TLS (tenth session)."""

from __future__ import annotations

import errno
import os
import socket as stdsocket
import ssl

import pytest

import yieldio
from yieldio import socket as ysocket
from yieldio.net import BrokenStreamError, SocketStream, TLSStream, current_network
from yieldio.testing import memory_stream_pair, wait_all_tasks_blocked


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
def test_a_handshake_cancelled_before_its_hello_went_out_can_be_retried(server_context,
                                                                       client_context):
    # The ClientHello was taken out of the engine, then its transport write
    # was cancelled (the peer is not reading): it used to be lost, so that a
    # second do_handshake() waited forever for an answer to a hello the peer
    # never got. Nothing went out, so now the hello waits to be sent, and a
    # retry completes once the peer reads.
    async def main():
        a, b = tcp_pair()
        raw = a.socket._sock
        raw.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_SNDBUF, 4096)
        filler = 0
        try:  # fill the send path, so the ClientHello write has to wait
            while True:
                filler += raw.send(b"\0" * 65536)
        except BlockingIOError:
            pass
        tls = await TLSStream.wrap(a, client_context, server_hostname="localhost",
                                   handshake=False)
        async with tls:
            with yieldio.CancelScope() as scope:
                async with yieldio.TaskGroup() as tg:
                    tg.spawn(tls.do_handshake)
                    await wait_all_tasks_blocked()  # blocked writing the ClientHello
                    scope.cancel()
            assert scope.cancelled_caught

            async def server():
                await b.read_exactly(filler)  # the filler, then TLS
                return await TLSStream.wrap(b, server_context, server_side=True)

            with yieldio.fail_after(5):  # (the bug: forever)
                async with yieldio.TaskGroup() as tg:
                    peer = tg.spawn(server)
                    await tls.do_handshake()
                async with peer.result() as srv:
                    await tls.write(b"after the retry")
                    assert await srv.read() == b"after the retry"

    yieldio.run(main)


def test_a_handshake_that_lost_part_of_a_message_is_broken_not_hung(client_context):
    # Part of the ClientHello went out before the cancel: that one is lost
    # for good, and a retry (or a read) must fail, not wait for an answer.
    async def main():
        ours, theirs = memory_stream_pair(max_buffer=64)  # the hello is bigger
        tls = await TLSStream.wrap(ours, client_context, server_hostname="localhost",
                                   handshake=False)
        async with theirs, tls:
            with yieldio.CancelScope() as scope:
                async with yieldio.TaskGroup() as tg:
                    tg.spawn(tls.do_handshake)
                    await wait_all_tasks_blocked()  # 64 bytes of the hello sent
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


async def tls_pair(server_context, client_context):
    a, b = tcp_pair()
    async with yieldio.TaskGroup() as tg:
        server = tg.spawn(TLSStream.wrap(b, server_context, server_side=True))
        client = await TLSStream.wrap(a, client_context, server_hostname="localhost")
    return client, server.result()


async def unwrap_both(client: TLSStream, server: TLSStream):
    async with yieldio.TaskGroup() as tg:
        srv = tg.spawn(server.unwrap)
        cli = await client.unwrap()
    return cli, srv.result()


# -- TLSStream.unwrap ----------------------------------------------------------------
def test_aclose_after_unwrap_leaves_the_returned_transport_open(server_context, client_context):
    # unwrap() gives the transport to the caller (as in trio); closing the
    # TLS stream afterwards closed it under the caller's feet.
    async def main():
        before = open_fds()
        client, server = await tls_pair(server_context, client_context)
        (plain_a, _), (plain_b, _) = await unwrap_both(client, server)
        async with client, server:
            pass
        assert client.closed and not plain_a.closed and not plain_b.closed
        await plain_a.write(b"still mine")
        assert await plain_b.read() == b"still mine"
        await plain_a.aclose()
        await plain_b.aclose()
        assert open_fds() == before

    yieldio.run(main)


def test_aclose_closes_the_transport_when_unwrap_failed(server_context, client_context):
    # The transport was never handed over: aclose still owns (and closes) it.
    async def main():
        before = open_fds()
        client, server = await tls_pair(server_context, client_context)
        await server.write(b"not read")
        assert await client.read(1) == b"n"  # the rest waits in the engine
        with pytest.raises(RuntimeError):
            await client.unwrap()
        await client.aclose()
        await server.aclose()
        assert client.transport.closed
        assert open_fds() == before

    yieldio.run(main)


@pytest.mark.parametrize("how", ["readline", "short read", "send_eof"])
def test_unwrap_refuses_to_drop_plaintext_not_read_yet(how, server_context, client_context):
    # Decrypted data still buffered (the base class's readline buffer, the
    # engine's pending plaintext, or what send_eof moved out of the engine)
    # vanished in unwrap(); it is TLS data, not trailing_bytes, so unwrap()
    # refuses, leaving the stream intact, until it is read.
    async def main():
        before = open_fds()
        client, server = await tls_pair(server_context, client_context)
        await server.write(b"line\nrest of it")
        if how == "readline":
            assert await client.readline() == b"line\n"
        else:
            assert await client.read(5) == b"line\n"
            if how == "send_eof":
                await client.send_eof()
        with yieldio.fail_after(2), \
                pytest.raises(RuntimeError, match="10 bytes of decrypted data"):
            await client.unwrap()  # (it used to wait for the server's close_notify)
        assert await client.read() == b"rest of it"  # nothing lost, nothing broken
        (plain_a, trailing_a), (plain_b, trailing_b) = await unwrap_both(client, server)
        assert trailing_a == trailing_b == b""
        await plain_b.write(b"plain again")
        assert await plain_a.read() == b"plain again"
        await plain_a.aclose()
        await plain_b.aclose()
        assert open_fds() == before

    yieldio.run(main)


# -- listening -----------------------------------------------------------------------
def test_listen_tcp_takes_empty_bytes_as_all_interfaces():
    async def main():
        listeners = await current_network().listen_tcp(b"", 0)
        try:
            assert listeners
            port = listeners[0].port
            with stdsocket.create_connection(("127.0.0.1", port), timeout=2):
                stream = await listeners[0].accept()
                await stream.aclose()
        finally:
            for listener in listeners:
                await listener.aclose()

    yieldio.run(main)


def test_listen_unix_on_a_live_datagram_socket_says_address_in_use(tmp_path):
    # The stale-file probe got EPROTOTYPE from a live SOCK_DGRAM socket and
    # let it out raw; the file must stay (its owner is alive).
    path = str(tmp_path / "dgram.sock")

    async def main():
        before = open_fds()
        with stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_DGRAM) as owner:
            owner.bind(path)
            with pytest.raises(OSError) as info:
                await current_network().listen_unix(path)
            assert info.value.errno == errno.EADDRINUSE
            assert path in str(info.value)
            assert os.path.exists(path)
            with stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_DGRAM) as sender:
                sender.sendto(b"alive", path)
            assert owner.recv(10) == b"alive"
            assert open_fds() == before + 1
        # Its owner gone, the same file is a leftover: replaced.
        listener = await current_network().listen_unix(path)
        await listener.aclose()
        assert not os.path.exists(path)
        assert open_fds() == before

    yieldio.run(main)


# -- yieldio.socket ------------------------------------------------------------------
class _RecordingNetwork:
    """Only a resolver: records the names asked, answers from a fixed table."""

    def __init__(self) -> None:
        self.asked: list[object] = []

    async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        self.asked.append(host)
        return [(stdsocket.AF_INET, stdsocket.SOCK_DGRAM, 17, "", ("127.0.0.1", port))]


def test_sendmsg_resolves_a_host_name_like_sendto():
    # sendmsg passed the name to the stdlib, which resolves it itself,
    # blocking the loop (and ignoring the run's network, which answers
    # here: "localhost" resolved by the stdlib would not be recorded).
    network = _RecordingNetwork()

    async def main():
        with ysocket.socket(ysocket.AF_INET, ysocket.SOCK_DGRAM) as a, \
                ysocket.socket(ysocket.AF_INET, ysocket.SOCK_DGRAM) as b:
            b.bind(("127.0.0.1", 0))
            port = b.getsockname()[1]
            assert await a.sendmsg([b"na", b"med"], (), 0, ("localhost", port)) == 5
            assert (await b.recvfrom(100))[0] == b"named"
            assert network.asked == ["localhost"]
            # No address, or an IP literal: no lookup.
            assert await a.sendmsg([b"ip"], (), 0, ("127.0.0.1", port)) == 2
            assert (await b.recvfrom(100))[0] == b"ip"
            await a.connect(("127.0.0.1", port))
            assert await a.sendmsg([b"plain"]) == 5
            assert (await b.recvfrom(100))[0] == b"plain"
            assert network.asked == ["localhost"]

    yieldio.run(main, network=network)


# -- SocketStream over a socket closed behind its back ------------------------------
@pytest.mark.parametrize("op", ["read", "write", "receive_some", "send_all", "readline"])
def test_stream_ops_after_its_socket_was_closed_raise_closed_resource_error(op):
    async def main():
        before = open_fds()
        a, b = tcp_pair()
        a.socket.close()  # not a.aclose()
        with pytest.raises(yieldio.ClosedResourceError):
            if op == "read":
                await a.read()
            elif op == "write":
                await a.write(b"x")
            elif op == "receive_some":
                await a.receive_some()
            elif op == "send_all":
                await a.send_all(b"x")
            else:
                await a.readline()
        if op in ("write", "send_all"):
            # Closed, not broken: it says so again next time.
            with pytest.raises(yieldio.ClosedResourceError):
                await a.write(b"y")
        await a.aclose()
        await b.aclose()
        assert open_fds() == before

    yieldio.run(main)


# -- a reader and a writer on one TLS stream -----------------------------------------------
def _socketpair_tls_streams(server_context, client_context):
    import socket as _socket

    from yieldio.net import SocketStream

    a, b = _socket.socketpair()

    async def wrap():
        async with yieldio.TaskGroup() as tg:
            server = tg.spawn(TLSStream.wrap(SocketStream(b), server_context, server_side=True))
            client = await TLSStream.wrap(SocketStream(a), client_context,
                                          server_hostname="localhost")
        return client, server.result()

    return wrap()


@pytest.mark.parametrize("seed", [0, 3, 4, 9])
def test_full_duplex_tls_does_not_deadlock(seed, server_context, client_context):
    # Each side writes (then send_eof) while its reader reads to the end. A
    # reader that had to flush what its read queued waited for the send lock
    # held by its own writer, blocked on a peer whose reader waited the same
    # way: some schedules (these seeds) hung for ever.
    import random

    data = random.Random(5).randbytes(600_000)

    async def main():
        rng = random.Random(seed)
        client, server = await _socketpair_tls_streams(server_context, client_context)
        got = {}

        async def side(name, tls, n):
            async def write():
                off = 0
                while off < n:
                    end = min(n, off + rng.randint(1, 150_000))
                    await tls.write(data[off:end])
                    off = end
                await tls.send_eof()

            async def read():
                total = 0
                while chunk := await tls.read(rng.choice([1, 1000, 65536])):
                    total += len(chunk)
                got[name] = total

            async with yieldio.TaskGroup() as tg:
                tg.spawn(write)
                tg.spawn(read)

        sizes = {"client": rng.randint(0, len(data)), "server": rng.randint(0, len(data))}
        with yieldio.fail_after(10):
            async with client, server, yieldio.TaskGroup() as tg:
                tg.spawn(side, "server", server, sizes["server"])
                tg.spawn(side, "client", client, sizes["client"])
        assert got == {"client": sizes["server"], "server": sizes["client"]}

    yieldio.run(main, seed=seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_cancelled_tls_read_neither_breaks_nor_corrupts_a_concurrent_write(
        seed, server_context, client_context):
    # A read flushed the writer's records, was cancelled before they went
    # out, and dropped them: the writer (never cancelled) then failed with
    # BrokenStreamError, and the peer saw "bad record mac".
    import random

    total, piece = 3_000_000, 250_000

    async def main():
        rng = random.Random(seed)
        client, server = await _socketpair_tls_streams(server_context, client_context)
        result = {}

        async def side(name, tls):
            async def write():
                for _ in range(total // piece):
                    await tls.write(b"w" * piece)
                await tls.send_eof()

            async def read():
                got = 0
                while True:
                    with yieldio.move_on_after(rng.random() * 0.003):
                        chunk = await tls.read()
                        if not chunk:
                            break
                        got += len(chunk)
                result[name] = got

            async with yieldio.TaskGroup() as tg:
                tg.spawn(write)
                tg.spawn(read)

        with yieldio.fail_after(20):
            async with client, server, yieldio.TaskGroup() as tg:
                tg.spawn(side, "server", server)
                tg.spawn(side, "client", client)
        assert result == {"client": total, "server": total}

    yieldio.run(main, seed=seed)


def test_a_tls_write_broken_by_a_reset_names_it_and_counts_as_a_disconnect(server_context,
                                                                            client_context):
    # The writer got a bare "a previous write on this stream was interrupted"
    # (the reset had met another flush first), and a server counted that as
    # a handler error, with a traceback, instead of a client gone.
    import struct

    from yieldio.net._tcp import _peer_went_away

    async def main():
        client, server = await _tls_pair(server_context, client_context)
        async with client, server:
            raw = server.transport.get_extra_info("socket")
            raw.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0))
            await server.transport.aclose()  # a reset, under the TLS stream
            first = None
            with yieldio.fail_after(5):
                while first is None:
                    try:
                        await client.write(b"x" * 65536)
                    except (ConnectionResetError, BrokenPipeError) as exc:
                        first = exc
            with pytest.raises(BrokenStreamError) as info:
                await client.write(b"more")
            assert info.value.__cause__ is first and repr(first) in str(info.value)
            assert _peer_went_away(info.value)
            assert _peer_went_away(ExceptionGroup("pumps", [info.value, first]))
            assert not _peer_went_away(BrokenStreamError("cut off by a cancel"))

    yieldio.run(main)


@pytest.mark.parametrize("buffer", [2022, 2100, 4096])
def test_a_tls_read_cancelled_while_it_sends_what_it_owes_keeps_its_data(buffer):
    # TLS 1.3 post-handshake auth: decrypting the server's request makes the
    # client owe it records, which the read sends. With the transport full,
    # a timeout there dropped the plaintext the read had already decrypted:
    # the next read returned later data (a gap in the stream).
    import trustme

    from yieldio.testing import memory_stream_pair

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ca.configure_trust(server_ctx)
    server_ctx.post_handshake_auth = True
    server_ctx.verify_mode = ssl.CERT_OPTIONAL
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    ca.issue_cert("client").configure_cert(client_ctx)
    client_ctx.post_handshake_auth = True

    async def main():
        a, b = memory_stream_pair(buffer)
        async with yieldio.TaskGroup() as tg:
            server_task = tg.spawn(TLSStream.wrap(b, server_ctx, server_side=True))
            client = await TLSStream.wrap(a, client_ctx, server_hostname="localhost")
        server = server_task.result()
        await client.write(b"c" * 2000)  # fills the way to the server, which does not read
        server.ssl_object.verify_client_post_handshake()
        await server.write(b"MSG1" * 10)
        await server.write(b"MSG2" * 10)
        got = bytearray()
        with yieldio.move_on_after(0.2):
            got += await client.receive_some()

        async def server_reads():
            n = 0
            while n < 2000:
                n += len(await server.receive_some())

        async with yieldio.TaskGroup() as tg:
            tg.spawn(server_reads)
            with yieldio.fail_after(5):
                while len(got) < 80:
                    got += await client.receive_some()
        assert bytes(got) == b"MSG1" * 10 + b"MSG2" * 10

    yieldio.run(main)
