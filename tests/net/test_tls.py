"""TLS: TLSStream over TCP, Unix and memory streams; stdlib ssl peers; failures."""

from __future__ import annotations

import logging
import socket as stdsocket
import ssl

import pytest

import yieldio
from yieldio.net import SocketStream, TLSStream, start_tls
from yieldio.testing import check_stream, memory_stream_pair


async def echo(stream):
    async for data in stream:
        await stream.write(data)


async def tls_pair(a, b, server_context, client_context):
    """Handshake both ends of a connected pair concurrently."""
    async with yieldio.TaskGroup() as tg:
        server = tg.spawn(TLSStream.wrap(b, server_context, server_side=True))
        client = await TLSStream.wrap(a, client_context, server_hostname="localhost")
    return client, server.result()


def tcp_pair():
    with stdsocket.create_server(("127.0.0.1", 0)) as listener:
        client = stdsocket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return SocketStream(client), SocketStream(server)


def unix_pair():
    a, b = stdsocket.socketpair()
    return SocketStream(a), SocketStream(b)


@pytest.mark.parametrize("transport", ["tcp", "unix", "memory"])
def test_tls_stream_passes_the_conformance_suite(transport, server_context, client_context):
    async def pair():
        if transport == "tcp":
            a, b = tcp_pair()
        elif transport == "unix":
            a, b = unix_pair()
        else:
            a, b = memory_stream_pair()
        return await tls_pair(a, b, server_context, client_context)

    async def main():
        await check_stream(pair)

    yieldio.run(main)


def test_serve_tcp_with_tls_and_open_tcp_stream_with_tls(server_context, client_context):
    async def main():
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0, ssl=server_context) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port, ssl=client_context,
                                                   server_hostname="localhost")
            async with stream:
                assert isinstance(stream, TLSStream)
                await stream.write(b"secret\n")
                assert await stream.readline() == b"secret\n"
                assert stream.version() in ("TLSv1.2", "TLSv1.3")
                assert stream.get_extra_info("version") == stream.version()
                assert stream.get_extra_info("peercert")["subjectAltName"]
                assert stream.get_extra_info("cipher") == stream.cipher()
                assert stream.get_extra_info("server_hostname") == "localhost"
                assert stream.get_extra_info("ssl_object") is stream.ssl_object
                # Unknown names go to the transport.
                assert stream.get_extra_info("peername") == ("127.0.0.1", server.port)
            # server_hostname defaults to the host we connected to: the cert has 127.0.0.1.
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port, ssl=client_context)
            async with stream:
                await stream.write(b"by ip")
                assert await stream.read() == b"by ip"

    yieldio.run(main)


def test_verification_is_on_by_default(server_context, caplog):
    async def main():
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0, ssl=server_context) as server:
            with pytest.raises(ssl.SSLCertVerificationError) as info:
                await yieldio.open_tcp_stream("127.0.0.1", server.port, ssl=True)
            assert "certificate verify failed" in str(info.value)
            while server.tls_errors < 1:
                await yieldio.sleep(0.01)

    with caplog.at_level(logging.WARNING, logger="yieldio.server"):
        yieldio.run(main)
    assert "TLS handshake" in caplog.text


def test_a_wrong_host_name_fails_and_the_server_keeps_serving(server_context, client_context):
    async def main():
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0, ssl=server_context) as server:
            with pytest.raises(ssl.SSLCertVerificationError, match="[Hh]ostname mismatch"):
                await yieldio.open_tcp_stream("127.0.0.1", server.port, ssl=client_context,
                                              server_hostname="wrong.example")
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port,
                                                     ssl=client_context) as stream:
                await stream.write(b"still serving")
                assert await stream.read() == b"still serving"
            while server.tls_errors < 1:
                await yieldio.sleep(0.01)
            assert server.handler_errors == 0

    yieldio.run(main)


def test_a_plaintext_client_on_a_tls_server_is_a_logged_tls_error(server_context):
    async def main():
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0, ssl=server_context) as server:
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as plain:
                await plain.write(b"GET / HTTP/1.0\r\n\r\n")
                await plain.read()  # the server hangs up (maybe after an alert)
            while server.tls_errors < 1:
                await yieldio.sleep(0.01)

    yieldio.run(main)


def test_yieldio_client_against_a_stdlib_ssl_server_thread(server_context, client_context):
    listener = stdsocket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def stdlib_server():
        conn, _ = listener.accept()
        with server_context.wrap_socket(conn, server_side=True) as tls:
            tls.settimeout(10)
            data = tls.recv(100)
            tls.sendall(data.upper())
            tls.unwrap().close()  # a clean close_notify, then close

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.to_thread, stdlib_server)
            stream = await yieldio.open_tcp_stream("127.0.0.1", listener.getsockname()[1],
                                                   ssl=client_context,
                                                   server_hostname="localhost")
            async with stream:
                await stream.write(b"hello stdlib")
                assert await stream.read_exactly(12) == b"HELLO STDLIB"
                assert await stream.read() == b""  # close_notify: a clean EOF

    try:
        yieldio.run(main)
    finally:
        listener.close()


def test_stdlib_ssl_client_thread_against_a_yieldio_server(server_context, client_context):
    def stdlib_client(port):
        with stdsocket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with client_context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"line from stdlib\n")
                reply = tls.recv(100)
                return reply, tls.version()

    async def main():
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0, ssl=server_context) as server:
            reply, version = await yieldio.to_thread(stdlib_client, server.port)
            assert reply == b"line from stdlib\n"
            assert version.startswith("TLS")

    yieldio.run(main)


def test_aclose_sends_close_notify_to_a_stdlib_peer(server_context, client_context):
    listener = stdsocket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def stdlib_server():
        conn, _ = listener.accept()
        tls = server_context.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
        with tls:
            tls.settimeout(10)
            assert tls.recv(100) == b"bye"
            # A ragged EOF would raise SSLEOFError here; close_notify reads as b"".
            return tls.recv(100)

    async def main():
        async with yieldio.TaskGroup() as tg:
            peer = tg.spawn(yieldio.to_thread, stdlib_server)
            stream = await yieldio.open_tcp_stream("127.0.0.1", listener.getsockname()[1],
                                                   ssl=client_context,
                                                   server_hostname="localhost")
            await stream.write(b"bye")
            await stream.aclose()
            await stream.aclose()  # idempotent
        assert peer.result() == b""

    try:
        yieldio.run(main)
    finally:
        listener.close()


def test_ragged_eof_reads_as_eof_unless_asked_otherwise(server_context, client_context):
    async def main():
        for suppress in (True, False):
            a, b = tcp_pair()
            async with yieldio.TaskGroup() as tg:
                server = tg.spawn(TLSStream.wrap(b, server_context, server_side=True))
                client = await TLSStream.wrap(a, client_context, server_hostname="localhost",
                                              suppress_ragged_eofs=suppress)
            server = server.result()
            await server.write(b"partial")
            await server.transport.aclose()  # TCP close without close_notify
            assert await client.read_exactly(7) == b"partial"
            if suppress:
                assert await client.read() == b""
            else:
                with pytest.raises(ssl.SSLEOFError):
                    await client.read()
            await client.aclose()

    yieldio.run(main)


def test_tls_over_a_unix_socket(tmp_path, server_context, client_context):
    path = str(tmp_path / "tls.sock")

    async def handler(stream):
        tls = await start_tls(stream, server_context, server_side=True)
        async with tls:
            await tls.write((await tls.readline()).upper())

    async def main():
        async with yieldio.serve_unix(handler, path):
            raw = await yieldio.open_unix_stream(path)
            tls = await start_tls(raw, client_context, server_hostname="localhost")
            async with tls:
                await tls.write(b"over unix\n")
                assert await tls.readline() == b"OVER UNIX\n"

    yieldio.run(main)


def test_starttls_with_the_client_hello_already_buffered(server_context, client_context):
    """The server's readline may buffer the start of the ClientHello: TLS must get it."""

    async def main():
        a, b = tcp_pair()
        async with yieldio.TaskGroup() as tg:
            async def server():
                assert await b.readline() == b"STARTTLS\n"
                return await start_tls(b, server_context, server_side=True)

            srv = tg.spawn(server)
            await a.write(b"STARTTLS\n")  # no reply awaited: the ClientHello follows at once
            client = await start_tls(a, client_context, server_hostname="localhost")
        server = srv.result()
        async with client, server:
            await client.write(b"encrypted now")
            assert await server.read() == b"encrypted now"

    yieldio.run(main)


def test_unwrap_returns_to_plaintext(server_context, client_context):
    async def main():
        a, b = tcp_pair()
        client, server = await tls_pair(a, b, server_context, client_context)
        await client.write(b"secret")
        assert await server.read() == b"secret"
        async with yieldio.TaskGroup() as tg:
            s = tg.spawn(server.unwrap)
            plain_a, trailing = await client.unwrap()
        plain_b, trailing_b = s.result()
        assert plain_a is a and plain_b is b
        assert trailing == b"" and trailing_b == b""
        with pytest.raises(yieldio.ClosedResourceError):
            await client.write(b"no more TLS")
        await a.write(b"plain again")
        assert await b.read() == b"plain again"
        await a.aclose()
        await b.aclose()

    yieldio.run(main)


def test_lazy_handshake_on_first_use(server_context, client_context):
    async def main():
        a, b = memory_stream_pair()
        client = await TLSStream.wrap(a, client_context, server_hostname="localhost",
                                      handshake=False)
        server = await TLSStream.wrap(b, server_context, server_side=True, handshake=False)
        assert client.get_extra_info("version") is None  # no handshake yet
        async with yieldio.TaskGroup() as tg:
            tg.spawn(client.write, b"first bytes")
            assert await server.read() == b"first bytes"
        assert client.version() is not None
        await client.aclose()
        await server.aclose()

    yieldio.run(main)


def test_peer_hanging_up_during_the_handshake(client_context):
    async def main():
        a, b = tcp_pair()
        await b.aclose()
        with pytest.raises(ssl.SSLError):
            await TLSStream.wrap(a, client_context, server_hostname="localhost")
        # wrap() leaves the transport to its owner.
        assert not a.closed
        await a.aclose()

    yieldio.run(main)


def test_a_failed_stream_stays_failed(client_context, server_context):
    async def main():
        a, b = tcp_pair()
        tls = TLSStream(a, client_context, server_hostname="wrong.example")
        async with yieldio.TaskGroup() as tg:
            tg.spawn(_expect_failure, TLSStream.wrap(b, server_context, server_side=True))
            with pytest.raises(ssl.SSLCertVerificationError):
                await tls.do_handshake()
        with pytest.raises(yieldio.BrokenStreamError):
            await tls.write(b"x")
        with pytest.raises(yieldio.BrokenStreamError):
            await tls.read()
        await tls.aclose()
        await b.aclose()

    yieldio.run(main)


async def _expect_failure(awaitable):
    with pytest.raises(ssl.SSLError):
        await awaitable


def test_start_tls_argument_checks(server_context):
    async def main():
        a, b = memory_stream_pair()
        with pytest.raises(ValueError, match="certificate"):
            await start_tls(b, server_side=True)
        with pytest.raises(TypeError, match="SSLContext"):
            TLSStream(a, "not a context")  # type: ignore[arg-type]
        await a.aclose()
        await b.aclose()

    yieldio.run(main)


def test_concurrent_reader_and_writer_on_one_tls_stream(server_context, client_context):
    async def main():
        a, b = tcp_pair()
        client, server = await tls_pair(a, b, server_context, client_context)
        chunk = b"z" * 50_000
        got = bytearray()

        async def reader():
            while len(got) < 40 * len(chunk):
                got.extend(await client.read())

        async with yieldio.TaskGroup() as tg:
            tg.spawn(reader)
            tg.spawn(echo, server)
            for _ in range(40):
                await client.write(chunk)
            await client.send_eof()  # echo() ends when it reads EOF
        assert bytes(got) == chunk * 40
        await client.aclose()
        await server.aclose()

    yieldio.run(main)


def test_silent_tls_client_is_dropped_after_the_handshake_timeout(server_context):
    """A client that connects and never sends its TLS hello does not hold a task forever."""
    import socket as stdsocket

    async def handler(stream):
        raise AssertionError("no handler may run without a handshake")

    async def main():
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0, ssl=server_context) as server:
            server.tls_handshake_timeout = 0.2
            raw = stdsocket.create_connection(("127.0.0.1", server.port))
            try:
                raw.settimeout(10)
                data = await yieldio.to_thread(raw.recv, 1024)  # b"" once the server drops us
            finally:
                raw.close()
            return data, server.tls_errors

    assert yieldio.run(main) == (b"", 1)


def test_a_write_of_a_wrong_type_is_refused_without_breaking_the_stream(server_context,
                                                                         client_context):
    # write("text") raised TypeError (nothing sent) but left the stream
    # "broken for writing", so every later write failed with BrokenStreamError.
    async def main():
        a, b = unix_pair()
        client, server = await tls_pair(a, b, server_context, client_context)
        async with client, server:
            for bad in ("text", 42, None):
                with pytest.raises(TypeError):
                    await client.write(bad)
            await client.write(b"still fine")
            assert await server.read() == b"still fine"

    yieldio.run(main)


def test_send_eof_while_the_peer_is_still_sending_keeps_every_byte(server_context,
                                                                    client_context):
    # send_eof() with received data not yet read (decrypted in the engine, or
    # ciphertext in the incoming BIO) failed with APPLICATION_DATA_AFTER_CLOSE_NOTIFY
    # and broke the stream: SSLObject.unwrap() reads on after queueing close_notify.
    payload = bytes(range(256)) * 240  # 60 KiB: four TLS records

    async def main():
        a, b = unix_pair()
        client, server = await tls_pair(a, b, server_context, client_context)
        sent = yieldio.Event()

        async def serve():
            await server.write(payload)
            sent.set()
            assert await server.read() == b""  # the client's half-close
            await server.write(b"bye")
            await server.aclose()

        async with client, yieldio.TaskGroup() as tg:
            tg.spawn(serve)
            await sent.wait()
            received = bytearray(await client.read(100))  # the rest stays buffered
            await client.send_eof()
            async for chunk in client:
                received += chunk
        assert received == payload + b"bye"

    yieldio.run(main)
