"""TLSStream at the edges: details, misuse, ragged and corrupt input, default contexts."""

from __future__ import annotations

import os
import re
import socket as stdsocket
import ssl

import pytest
import trustme

import yieldio
from yieldio.net import SocketStream, TLSStream, start_tls
from yieldio.testing import wait_all_tasks_blocked


def tcp_pair() -> tuple[SocketStream, SocketStream]:
    with stdsocket.create_server(("127.0.0.1", 0)) as listener:
        client = stdsocket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return SocketStream(client), SocketStream(server)


async def tls_pair(server_context, client_context, **client_kw):
    a, b = tcp_pair()
    async with yieldio.TaskGroup() as tg:
        server = tg.spawn(TLSStream.wrap(b, server_context, server_side=True))
        client = await TLSStream.wrap(a, client_context, server_hostname="localhost", **client_kw)
    return client, server.result()


def test_details_alpn_peercert_repeated_handshake_and_empty_writes(ca: trustme.CA):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    server_context.set_alpn_protocols(["h2", "http/1.1"])
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    client_context.set_alpn_protocols(["http/1.1"])

    async def main():
        client, server = await tls_pair(server_context, client_context)
        async with client, server:
            assert repr(client).startswith("<TLSStream client over <SocketStream fd=")
            assert repr(server).startswith("<TLSStream server over")
            assert client.selected_alpn_protocol() == "http/1.1"
            assert server.get_extra_info("alpn_protocol") == "http/1.1"
            assert client.getpeercert()["subjectAltName"] == (("DNS", "localhost"),)
            assert isinstance(client.getpeercert(binary_form=True), bytes)
            # A second handshake is a no-op but still a checkpoint.
            await client.do_handshake()
            with yieldio.CancelScope() as scope:
                scope.cancel()
                await client.do_handshake()
            assert scope.cancelled_caught
            # An empty write of any buffer type sends nothing and breaks nothing.
            await client.send_all(bytearray())
            await client.send_all(b"after")
            assert await server.read() == b"after"

    yieldio.run(main)


def test_send_eof_and_unwrap_before_the_handshake(server_context, client_context):
    async def main():
        a, b = tcp_pair()
        client = TLSStream(a, client_context, server_hostname="localhost")
        with pytest.raises(RuntimeError, match="before the handshake"):
            await client.unwrap()
        async with yieldio.TaskGroup() as tg:
            server = tg.spawn(TLSStream.wrap(b, server_context, server_side=True))
            await client.send_eof()  # does the handshake first, then close_notify
        async with client, server.result() as srv:
            assert await srv.read() == b""
            await srv.write(b"still answering")  # TLS 1.3 half-close
            assert await client.read() == b"still answering"

    yieldio.run(main)


def test_send_eof_and_unwrap_while_the_stream_is_in_use_are_busy(server_context, client_context):
    async def main():
        client, server = await tls_pair(server_context, client_context)
        async with client, server:
            payload = b"z" * 4_000_000  # more than the socket buffers: the write waits
            async with yieldio.TaskGroup() as tg:
                tg.spawn(client.write, payload)
                await wait_all_tasks_blocked()
                with pytest.raises(yieldio.BusyResourceError):
                    await client.send_eof()
                assert await server.read_exactly(len(payload)) == payload
            async with yieldio.TaskGroup() as tg:
                reader = tg.spawn(client.read)
                await wait_all_tasks_blocked()
                with pytest.raises(yieldio.BusyResourceError):
                    await client.unwrap()
                await server.write(b"ok")
            assert reader.result() == b"ok"  # nothing was lost or broken

    yieldio.run(main)


def test_the_stream_is_busy_while_unwrap_waits_for_the_peer(server_context, client_context):
    # unwrap() checked for readers and writers but did not mark itself busy:
    # a read in another task took the records the shutdown was waiting for.
    async def main():
        client, server = await tls_pair(server_context, client_context)
        async with client, server:
            async with yieldio.TaskGroup() as tg:
                unwrapping = tg.spawn(client.unwrap)
                await wait_all_tasks_blocked()  # our close_notify sent; waiting for theirs
                for attempt in (client.read, client.unwrap, lambda: client.write(b"x"),
                                client.send_eof):
                    with pytest.raises(yieldio.BusyResourceError):
                        await attempt()
                transport, trailing = await server.unwrap()
                await transport.write(b"plain")
            client_transport, client_trailing = unwrapping.result()
            assert client_trailing + await client_transport.read_exactly(
                5 - len(client_trailing)) == b"plain"

    yieldio.run(main)


def test_unwrap_against_a_peer_that_closes_without_close_notify(server_context, client_context):
    async def main():
        client, server = await tls_pair(server_context, client_context)
        async with client, server:
            await server.transport.send_eof()  # a TCP FIN, no TLS close_notify
            transport, trailing = await client.unwrap()
            assert transport is client.transport and trailing == b""
            with pytest.raises(yieldio.ClosedResourceError, match="unwrap"):
                await client.read()
            # unwrap() handed the transport over: closing client leaves it
            # open, so it is ours to close.
            await transport.aclose()

    yieldio.run(main)


@pytest.mark.parametrize("suppress", [True, False])
def test_a_ragged_eof_reads_the_same_every_time(suppress, server_context, client_context):
    async def main():
        client, server = await tls_pair(server_context, client_context,
                                        suppress_ragged_eofs=suppress)
        async with client, server:
            await server.transport.send_eof()  # a TCP FIN, no TLS close_notify
            for _ in range(2):  # the second time from what the engine already has
                if suppress:
                    assert await client.receive_some() == b""
                else:
                    with pytest.raises(ssl.SSLEOFError):
                        await client.receive_some()

    yieldio.run(main)


def test_a_corrupt_record_behind_good_data_breaks_the_stream(server_context, client_context):
    async def main():
        client, server = await tls_pair(server_context, client_context)
        async with client, server:
            await server.write(b"good")
            # An application-data record whose authentication cannot check out.
            server.transport.socket._sock.sendall(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
            await yieldio.sleep(0.01)  # both are buffered before the client reads
            assert await client.receive_some() == b"good"
            with pytest.raises(ssl.SSLError):
                await client.receive_some()  # from the ciphertext already fed
            with pytest.raises(yieldio.BrokenStreamError):
                await client.receive_some()

    yieldio.run(main)


def test_start_tls_without_a_context_verifies_against_the_system_store(server_context):
    async def main():
        a, b = tcp_pair()
        async with a, b:
            async with yieldio.TaskGroup() as tg:
                async def server():
                    with pytest.raises(ssl.SSLError):
                        await TLSStream.wrap(b, server_context, server_side=True)

                tg.spawn(server)
                # The test CA is not in the system store: a default context refuses.
                with pytest.raises(ssl.SSLCertVerificationError):
                    await start_tls(a, server_hostname="localhost")

    yieldio.run(main)


def test_send_eof_after_a_ragged_eof_fails_cleanly_and_close_still_works(server_context,
                                                                          client_context):
    # The peer cut TLS off (a TCP FIN without close_notify): the engine is dead,
    # so no close_notify can go out. send_eof says so with an SSLError, the
    # stream counts as broken, and closing it still works.
    async def main():
        client, server = await tls_pair(server_context, client_context)
        async with server:
            await server.transport.send_eof()
            assert await client.read() == b""  # read as a plain EOF
            with pytest.raises(ssl.SSLEOFError, match="ragged EOF"):
                await client.send_eof()
            with pytest.raises(yieldio.BrokenStreamError):
                await client.write(b"x")
            await client.aclose()
            assert client.transport.closed

    yieldio.run(main)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_openssl_holds_no_unread_record_outside_the_bio(version, ca, server_context):
    # TLSStream.receive_some skips its first SSLObject.read when the incoming
    # BIO and the engine are both empty (the try could only fail, and a
    # failure is an expensive exception). That is only safe while OpenSSL
    # does not read ahead: a whole record held inside the engine, where
    # neither MemoryBIO.pending nor SSLObject.pending() shows it, would make
    # the stream wait for ciphertext it already has.
    import random

    rng = random.Random(version)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    client_context.maximum_version = ssl.TLSVersion[version]
    checked = 0
    for _ in range(40):
        s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
        server = server_context.wrap_bio(s_in, s_out, server_side=True)
        client = client_context.wrap_bio(c_in, c_out, server_hostname="localhost")
        for _ in range(10):  # handshake
            for side, out, peer_in in ((client, c_out, s_in), (server, s_out, c_in)):
                try:
                    side.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                if data := out.read():
                    peer_in.write(data)
        assert client.version() == version.replace("_", ".")
        for _ in range(rng.randint(1, 5)):
            server.write(rng.randbytes(rng.randint(1, 40_000)))  # records up to 16 KiB
        wire, pos = s_out.read(), 0
        while True:
            if pos < len(wire) and rng.random() < 0.5:
                n = rng.randint(1, 5_000)
                c_in.write(wire[pos:pos + n])
                pos += n
            max_bytes = rng.choice([1, 7, 100, 16_384, 65_536])
            if c_in.pending == 0 and client.pending() == 0:
                checked += 1
                with pytest.raises(ssl.SSLWantReadError):
                    client.read(max_bytes)
                if pos >= len(wire):
                    break
            else:
                try:
                    client.read(max_bytes)
                except ssl.SSLWantReadError:
                    pass  # a partial record: needs more ciphertext
    assert checked > 100


def test_a_huge_max_bytes_reads_what_came_instead_of_allocating_it(server_context,
                                                                  client_context):
    # SSLObject.read(n) allocates n bytes before decrypting one record of at
    # most 16 KiB: read(2**40) raised MemoryError, and read_exactly(n) asked
    # the engine for n bytes per record. A SocketStream clamps such sizes;
    # a TLSStream must behave the same, so code runs on either.
    async def main():
        client, server = await tls_pair(server_context, client_context)
        async with client, server:
            with yieldio.fail_after(10):
                await server.write(b"x" * 100)
                assert await client.read(2**40) == b"x" * 100
                await server.write(b"y" * 50)
                assert await client.receive_some(2**40) == b"y" * 50
                payload = bytes(range(256)) * 1000
                await server.write(payload)
                assert await client.read_exactly(len(payload)) == payload

    yieldio.run(main)


def test_send_all_after_a_cancelled_write_lost_a_record_is_refused(server_context,
                                                                    client_context):
    # A write cancelled while its TLS record waited for room on the transport:
    # the record left the engine but never the socket (the SocketStream under
    # it is intact). The next record would reach the peer out of sequence (a
    # bad_record_mac for it), so send_all must refuse, as write does -- it
    # used to wait for room and send it.
    async def main():
        client, server = await tls_pair(server_context, client_context)
        async with client, server:
            raw = client.transport.socket._sock
            try:
                while True:  # fill the transport: the peer is not reading
                    raw.send(b"\0" * 65536)
            except BlockingIOError:
                pass
            with yieldio.move_on_after(0.05) as scope:
                await client.write(b"lost record")
            assert scope.cancelled_caught
            assert not client.transport._write_broken  # nothing went out there
            with yieldio.fail_after(5):
                with pytest.raises(yieldio.BrokenStreamError):
                    await client.send_all(b"x")
                with pytest.raises(yieldio.BrokenStreamError):
                    await client.write(b"x")
                # close_notify is a record too: the peer would fail on it
                # (aclose already skips it on a broken stream).
                with pytest.raises(yieldio.BrokenStreamError):
                    await client.send_eof()

    yieldio.run(main)


# -- start_tls() retires the stream it upgraded ------------------------------------
UPGRADED = "this stream was upgraded with start_tls(): use the stream it returned"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def starttls_pair(server_context, client_context):
    """A TCP pair upgraded with start_tls() on both ends: ``(a, b, client, server)``."""
    a, b = tcp_pair()
    async with yieldio.TaskGroup() as tg:
        server = tg.spawn(b.start_tls(server_context, server_side=True))
        client = await a.start_tls(client_context, server_hostname="localhost")
    return a, b, client, server.result()


def test_the_stream_start_tls_upgraded_refuses_io_and_tls_goes_on(server_context,
                                                                 client_context):
    # Raw bytes written on the old stream went into the TLS session (the peer
    # failed with WRONG_VERSION_NUMBER). As asyncio retires the old transport,
    # a successful start_tls() retires the old stream object.
    async def main():
        before = open_fds()
        with yieldio.fail_after(5):
            a, b, client, server = await starttls_pair(server_context, client_context)
            peer = a.get_extra_info("peername")
            ops = [lambda: a.write(b"raw"), lambda: a.send_all(b"raw"), lambda: a.read(),
                   lambda: a.receive_some(), lambda: a.readline(), lambda: a.read_exactly(3),
                   lambda: a.read_until(b"!"), lambda: a.send_eof(), lambda: b.read(),
                   lambda: b.write(b"raw"), lambda: a.lines().__anext__(),
                   lambda: a.start_tls(client_context, server_hostname="localhost")]
            for op in ops:
                with pytest.raises(yieldio.ClosedResourceError, match=re.escape(UPGRADED)):
                    await op()
            assert a.closed and b.closed
            assert repr(a) == "<SocketStream upgraded with start_tls()>"
            assert peer == client.get_extra_info("peername") == ("127.0.0.1", b.get_extra_info(
                "sockname")[1])
            assert client.transport is not a and not client.transport.closed
            # Nothing raw reached the session: TLS goes on both ways.
            await client.write(b"still encrypted")
            assert await server.read() == b"still encrypted"
            await server.write(b"and back")
            assert await client.read() == b"and back"
            await client.aclose()
            await server.aclose()
            await a.aclose()  # (already closed through TLS: nothing more to do)
            await b.aclose()
        assert open_fds() == before

    yieldio.run(main)


def test_a_server_closing_the_upgraded_stream_closes_the_connection(server_context,
                                                                     client_context):
    # serve_tcp closes the stream it handed the handler. After start_tls()
    # that object is retired, and closing it must still close the connection:
    # a handler that leaves its TLS stream unclosed would leak the fd. The
    # peer is the stdlib's ssl module, which is also who saw the corruption.
    errors: list[str] = []

    async def handler(stream):
        assert await stream.readline() == b"STARTTLS\n"
        await stream.write(b"go ahead\n")
        tls = await stream.start_tls(server_context, server_side=True)
        try:
            await stream.write(b"raw bytes into the TLS session")
        except yieldio.ClosedResourceError as exc:
            errors.append(str(exc))
        await tls.write(b"hi " + await tls.readline())
        # ...and returns without closing tls.

    def stdlib_client(port):
        with stdsocket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"STARTTLS\n")
            line = b""
            while not line.endswith(b"\n"):
                line += raw.recv(1)
            assert line == b"go ahead\n"
            with client_context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"stdlib\n")
                reply = b""
                while not reply.endswith(b"\n"):
                    reply += tls.recv(100)
                # The server hangs up (no close_notify: a suppressed ragged
                # EOF); a leaked connection would time out here instead.
                return reply, tls.recv(100)

    async def main():
        await yieldio.to_thread(lambda: None)  # (whatever threads need, opened before counting)
        before = open_fds()
        with yieldio.fail_after(10):
            async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
                reply, rest = await yieldio.to_thread(stdlib_client, server.port)
                while server.connections:
                    await yieldio.sleep(0.01)
        assert (reply, rest) == (b"hi stdlib\n", b"")
        assert errors == [UPGRADED]
        assert open_fds() == before

    yieldio.run(main)


def test_a_failed_start_tls_leaves_the_stream_usable_and_the_callers_to_close(server_context,
                                                                               client_context):
    async def main():
        before = open_fds()
        a, b = tcp_pair()
        with yieldio.fail_after(5):
            async def server():
                with pytest.raises(ssl.SSLError):
                    await b.start_tls(server_context, server_side=True)

            async with yieldio.TaskGroup() as tg:
                tg.spawn(server)
                with pytest.raises(ssl.SSLCertVerificationError):
                    await a.start_tls(client_context, server_hostname="elsewhere.example")
            assert not a.closed and not b.closed
            assert repr(a).startswith("<SocketStream fd=")
            # The server's TLS read up to the client's alert; what follows is plaintext.
            await a.write(b"plain again\n")
            assert await b.readline() == b"plain again\n"
            await a.aclose()
            await b.aclose()
        assert open_fds() == before

    yieldio.run(main)


def test_a_start_tls_cancelled_part_way_retires_the_stream(client_context):
    # The ClientHello had gone out when the upgrade was cancelled: the old
    # stream looked healthy, sent plaintext after the hello, and read the
    # server's handshake records as data.
    async def main():
        before = open_fds()
        a, b = tcp_pair()
        with yieldio.move_on_after(5) as scope:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(a.start_tls(client_context, server_hostname="localhost"))
                hello = await b.receive_some()  # the ClientHello arrived; no answer comes
                tg.cancel()
        assert not scope.cancelled_caught and hello[:1] == b"\x16"  # a handshake record
        for attempt in (lambda: a.write(b"plain?"), a.read):
            with pytest.raises(yieldio.ClosedResourceError, match="cancelled part way"):
                await attempt()
        await a.aclose()  # closes the connection
        assert await b.read() == b""
        await b.aclose()
        assert open_fds() == before

    yieldio.run(main)


def test_a_start_tls_cancelled_before_a_byte_moved_leaves_the_stream_plain(client_context):
    # An upgrade under a deadline already passed was retired as if it were
    # mid-handshake, though not a byte had gone either way.
    async def main():
        a, b = tcp_pair()
        async with a, b:
            with yieldio.CancelScope() as scope:
                scope.cancel()
                await a.start_tls(client_context, server_hostname="localhost")
            assert scope.cancelled_caught
            await a.write(b"QUIT\n")  # still a plain connection
            assert await b.readline() == b"QUIT\n"

    yieldio.run(main)


def test_unwrap_after_start_tls_gives_back_the_upgraded_stream(server_context, client_context):
    async def main():
        before = open_fds()
        with yieldio.fail_after(5):
            a, b, client, server = await starttls_pair(server_context, client_context)
            await client.write(b"secret")
            assert await server.read() == b"secret"
            async with yieldio.TaskGroup() as tg:
                srv = tg.spawn(server.unwrap)
                plain_a, trailing_a = await client.unwrap()
            plain_b, trailing_b = srv.result()
            # The very objects start_tls() was called on, usable again (as after wrap()).
            assert plain_a is a and plain_b is b and trailing_a == trailing_b == b""
            assert client.transport is a and not a.closed
            await a.write(b"plain again")
            assert await b.read() == b"plain again"
            await client.aclose()  # unwrap() handed the connection over: still open
            await server.aclose()
            assert not a.closed and not b.closed
            await b.write(b"still plain")
            assert await a.read() == b"still plain"
            # ...and they can be upgraded again, which retires them again.
            async with yieldio.TaskGroup() as tg:
                srv2 = tg.spawn(b.start_tls(server_context, server_side=True))
                client2 = await a.start_tls(client_context, server_hostname="localhost")
            server2 = srv2.result()
            with pytest.raises(yieldio.ClosedResourceError, match=re.escape(UPGRADED)):
                await a.write(b"raw")
            async with client2, server2:
                await server2.write(b"encrypted again")
                assert await client2.read() == b"encrypted again"
            assert a.closed and b.closed
            await a.aclose()
            await b.aclose()
        assert open_fds() == before

    yieldio.run(main)


def test_start_tls_keeps_the_stream_another_task_is_reading(ca, client_context, monkeypatch):
    # start_tls() retires the stream it upgraded by moving its state to a new
    # object (SocketStream._hand_over). While another task is inside a read
    # of it, the move is skipped ("busy guard") and TLS runs over the stream
    # itself, as after TLSStream.wrap: a copy would take that read's
    # "reading" flag along for good, so every TLS read would then fail with
    # BusyResourceError. The reader starts right after the handshake, the one
    # moment it can (during the handshake, TLS's own reads would be busy).
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    server_context.num_tickets = 0  # nothing after the handshake for the reader to take
    reader_scope = yieldio.CancelScope()
    real_handshake = TLSStream.do_handshake

    async def main():
        before = open_fds()
        a, b = tcp_pair()

        async def reader():
            with reader_scope:
                await a.read()
                raise AssertionError("the reader got data")

        with yieldio.fail_after(5):
            async with yieldio.TaskGroup() as tg:
                async def do_handshake(self):
                    await real_handshake(self)
                    if self.transport is a:  # (the client's): a task starts reading `a`
                        tg.spawn(reader)
                        await wait_all_tasks_blocked()
                        assert a._reading

                monkeypatch.setattr(TLSStream, "do_handshake", do_handshake)
                server_task = tg.spawn(b.start_tls(server_context, server_side=True))
                client = await a.start_tls(client_context, server_hostname="localhost")
                server = server_task.result()
                # Not retired: TLS goes on over `a` itself.
                assert client.transport is a and not a.closed
                assert repr(a).startswith("<SocketStream fd=")
                reader_scope.cancel()
            assert reader_scope.cancelled_caught and not a._reading
            await client.write(b"encrypted")
            assert await server.read() == b"encrypted"
            await server.write(b"and back")
            assert await client.read() == b"and back"
            await client.aclose()
            await server.aclose()
            assert a.closed and b.closed
        assert open_fds() == before

    yieldio.run(main)
