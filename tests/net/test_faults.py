"""Faults on real sockets: resets, half-closes, refusals, misuse, slow peers, load, leaks."""

from __future__ import annotations

import logging
import os
import resource
import socket as stdsocket
import struct
import subprocess
import sys
import textwrap
import tracemalloc

import pytest

import yieldio
from yieldio.net import BrokenStreamError, SocketStream, TLSStream


async def echo(stream):
    async for data in stream:
        await stream.write(data)


def reset(sock: stdsocket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets a TCP RST instead of a FIN."""
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def tcp_pair_raw() -> tuple[stdsocket.socket, SocketStream]:
    """(a stdlib socket, the yieldio stream on the other end)."""
    with stdsocket.create_server(("127.0.0.1", 0)) as listener:
        peer = stdsocket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
    return peer, SocketStream(conn)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- resets and half-closes ---------------------------------------------------------------


def test_peer_reset_while_we_are_blocked_reading():
    async def main():
        peer, stream = tcp_pair_raw()
        async with stream:
            async def reader():
                with pytest.raises(ConnectionResetError):
                    await stream.read()

            async with yieldio.TaskGroup() as tg:
                tg.spawn(reader)
                await yieldio.sleep(0.05)
                reset(peer)

    yieldio.run(main)


def test_peer_reset_with_unread_data_mid_stream():
    async def main():
        peer, stream = tcp_pair_raw()
        async with stream:
            peer.sendall(b"first part")
            assert await stream.read_exactly(10) == b"first part"
            reset(peer)
            with pytest.raises(ConnectionResetError):
                while await stream.read():
                    pass

    yieldio.run(main)


def test_peer_reset_while_we_write_breaks_the_stream_for_writing():
    async def main():
        peer, stream = tcp_pair_raw()
        async with stream:
            async def writer():
                with pytest.raises((ConnectionResetError, BrokenPipeError)):
                    while True:
                        await stream.write(b"\0" * 65536)  # peer never reads: blocks

            async with yieldio.TaskGroup() as tg:
                tg.spawn(writer)
                await yieldio.sleep(0.1)
                reset(peer)
            with pytest.raises(BrokenStreamError):
                await stream.write(b"more")

    yieldio.run(main)


def test_half_close_client_to_server():
    """The client says "that's all" with send_eof; the server still answers."""

    async def handler(stream):
        request = b""
        async for data in stream:  # until the client's EOF
            request += data
        await stream.write(b"got %d bytes" % len(request))

    async def main():
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as s:
                await s.write(b"x" * 100_000)
                await s.send_eof()
                reply = b""
                async for data in s:
                    reply += data
                assert reply == b"got 100000 bytes"

    yieldio.run(main)


def test_half_close_server_to_client():
    """The server sends everything and half-closes; the client still talks."""

    async def handler(stream):
        await stream.write(b"banner")
        await stream.send_eof()
        assert await stream.read_exactly(5) == b"hello"

    async def main():
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as s:
                assert await s.read_exactly(6) == b"banner"
                assert await s.read() == b""  # the server's EOF
                await s.write(b"hello")  # our direction is still open
                assert await s.read() == b""
            while server.connections:
                await yieldio.sleep(0.01)
            assert server.handler_errors == 0

    yieldio.run(main)


def test_half_close_against_a_stdlib_peer_thread():
    listener = stdsocket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def stdlib_peer():
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            data = b""
            while chunk := conn.recv(65536):  # until yieldio's send_eof
                data += chunk
            conn.sendall(data[::-1])
            conn.shutdown(stdsocket.SHUT_WR)

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.to_thread, stdlib_peer)
            s = await yieldio.open_tcp_stream("127.0.0.1", listener.getsockname()[1])
            async with s:
                await s.write(b"stressed")
                await s.send_eof()
                assert await s.read_exactly(8) == b"desserts"
                assert await s.read() == b""

    try:
        yieldio.run(main)
    finally:
        listener.close()


# -- refusals and names ----------------------------------------------------------------------


def test_connect_to_a_closed_port():
    with stdsocket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main():
        with pytest.raises(ConnectionRefusedError):
            await yieldio.open_tcp_stream("127.0.0.1", port)

    yieldio.run(main)


def test_unresolvable_host():
    async def main():
        with yieldio.fail_after(20):  # no DNS here: the resolver fails fast, but bound it
            with pytest.raises(stdsocket.gaierror):
                await yieldio.open_tcp_stream("nonexistent.invalid", 443)

    yieldio.run(main)


# -- misuse ---------------------------------------------------------------------------------------


def test_reading_and_writing_a_closed_stream():
    async def main():
        peer, stream = tcp_pair_raw()
        peer.close()
        await stream.aclose()
        with pytest.raises(yieldio.ClosedResourceError):
            await stream.read()
        with pytest.raises(yieldio.ClosedResourceError):
            await stream.readline()
        with pytest.raises(yieldio.ClosedResourceError):
            await stream.write(b"x")

    yieldio.run(main)


def test_two_tasks_reading_one_stream():
    async def main():
        peer, stream = tcp_pair_raw()
        async with stream:
            async with yieldio.TaskGroup() as tg:
                first = tg.spawn(stream.read)
                await yieldio.sleep(0.05)
                with pytest.raises(yieldio.BusyResourceError):
                    await stream.read()
                peer.sendall(b"for the first")
            assert first.result() == b"for the first"
        peer.close()

    yieldio.run(main)


def test_cancelled_write_marks_the_stream_broken_for_writing():
    async def main():
        peer, stream = tcp_pair_raw()
        async with stream:
            with yieldio.move_on_after(0.2) as scope:
                await stream.write(b"\0" * (64 << 20))  # the peer never reads
            assert scope.cancelled_caught
            with pytest.raises(BrokenStreamError, match="interrupted"):
                await stream.write(b"after")
            peer.sendall(b"reads still work")
            assert await stream.read() == b"reads still work"
        peer.close()

    yieldio.run(main)


# -- slow peers and load ----------------------------------------------------------------------------


def test_a_slow_reader_makes_the_writer_wait_and_memory_stays_bounded():
    chunk = b"\0" * (1 << 20)
    written = [0]

    async def handler(stream):
        while True:
            await stream.write(chunk)
            written[0] += len(chunk)

    async def main():
        tracemalloc.start()
        try:
            async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
                client = await yieldio.open_tcp_stream("127.0.0.1", server.port)
                async with client:  # ... and never reads
                    # The writer stops once the kernel's buffers are full (their
                    # autotuning may take a moment): wait for a quiet 0.3 s.
                    first = -1
                    with yieldio.fail_after(10):
                        while written[0] != first:
                            first = written[0]
                            await yieldio.sleep(0.3)
                    assert written[0] < 256 << 20  # only what the kernel buffers took
                    _, peak = tracemalloc.get_traced_memory()
                    assert peak < 32 << 20  # no Python-side buffering
                    # Reading frees room: the writer resumes.
                    for _ in range(20):
                        await client.read()
                    await yieldio.sleep(0.1)
                    assert written[0] > first
        finally:
            tracemalloc.stop()

    yieldio.run(main)


_CLIENT = textwrap.dedent("""
    # Open N connections at once, report, wait for "go", then echo a line on each.
    import resource, selectors, socket, sys
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port, n = int(sys.argv[1]), int(sys.argv[2])
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE, i)
    pending = n
    while pending:
        for key, _ in sel.select(30):
            err = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                sys.exit(f"connect failed: {err}")
            sel.unregister(key.fileobj)
            pending -= 1
    print("connected", flush=True)
    sys.stdin.readline()
    replies = [b""] * n
    for i, s in enumerate(socks):
        s.send(b"ping %d\\n" % i)
        sel.register(s, selectors.EVENT_READ, i)
    done = 0
    while done < n:
        for key, _ in sel.select(30):
            i = key.data
            data = key.fileobj.recv(100)
            replies[i] += data
            if not data or replies[i].endswith(b"\\n"):
                sel.unregister(key.fileobj)
                done += 1
    bad = [i for i in range(n) if replies[i] != b"ping %d\\n" % i]
    for s in socks:
        s.close()
    print("ok" if not bad else f"bad replies: {bad[:5]}", flush=True)
""")


def test_ten_thousand_concurrent_connections(tmp_path):
    n = 10_000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < n + 500:  # the clients run in another process: we need n + a margin
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low for {n} connections")
    script = tmp_path / "many_clients.py"
    script.write_text(_CLIENT)
    peak = [0]

    async def handler(stream):
        peak[0] = max(peak[0], server_box[0].connections)
        line = await stream.readline()
        await stream.write(line)

    server_box = []

    async def main():
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0, backlog=4096) as server:
            server_box.append(server)
            proc = subprocess.Popen([sys.executable, str(script), str(server.port), str(n)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                line = await yieldio.to_thread(proc.stdout.readline)
                assert line.strip() == "connected"
                with yieldio.fail_after(20):
                    while server.connections < n:
                        await yieldio.sleep(0.05)
                proc.stdin.write("go\n")
                proc.stdin.flush()
                result = await yieldio.to_thread(proc.stdout.readline)
                assert result.strip() == "ok"
                assert await yieldio.to_thread(proc.wait) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdin.close()
                proc.stdout.close()
            assert server.accepted == n
            assert server.handler_errors == 0

    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yieldio.run(main)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert peak[0] == n


def test_no_fd_leaks_after_thousands_of_connections():
    async def client(port, i):
        async with await yieldio.open_tcp_stream("127.0.0.1", port) as s:
            await s.write(b"%d\n" % i)
            assert await s.readline() == b"%d\n" % i

    async def main():
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0) as server:
            for batch in range(30):
                async with yieldio.TaskGroup() as tg:
                    for i in range(100):
                        tg.spawn(client, server.port, batch * 100 + i)
                if batch == 0:
                    baseline = open_fds()
            while server.connections:
                await yieldio.sleep(0.01)
            assert open_fds() <= baseline
            assert server.accepted == 3000

    before = open_fds()
    yieldio.run(main)
    assert open_fds() == before


def test_accept_survives_running_out_of_file_descriptors(caplog):
    async def main():
        (listener,) = await yieldio.net.current_network().listen_tcp("127.0.0.1", 0)
        clients = [stdsocket.create_connection(listener.address) for _ in range(3)]
        fillers = []
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 8, hard))

        async def accept_when_out_of_fds():
            try:
                while True:
                    fillers.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                pass
            async with yieldio.TaskGroup() as tg:
                accepted = tg.spawn(listener.accept)
                await yieldio.sleep(0.35)  # a few EMFILE retries
                assert not accepted.done()
                for fd in fillers:
                    os.close(fd)
                fillers.clear()
            return accepted.result()

        try:
            stream = await accept_when_out_of_fds()
            second = await listener.accept()  # no new warning: once per episode
            await stream.aclose()
            await second.aclose()
            third = await accept_when_out_of_fds()  # a second episode: warned again
            await third.aclose()
        finally:
            for fd in fillers:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            for c in clients:
                c.close()
            await listener.aclose()

    with caplog.at_level(logging.INFO, logger="yieldio.server"):
        yieldio.run(main)
    warnings = [r for r in caplog.records if "EMFILE" in r.getMessage()]
    recovered = [r for r in caplog.records if "works again" in r.getMessage()]
    assert len(warnings) == 2 and len(recovered) == 2


# -- TLS faults --------------------------------------------------------------------------------------


def test_tls_peer_reset_mid_stream(server_context, client_context):
    async def main():
        with stdsocket.create_server(("127.0.0.1", 0)) as listener:
            raw_client = stdsocket.create_connection(listener.getsockname())
            conn, _ = listener.accept()
        server_stream = SocketStream(conn)
        client = SocketStream(raw_client)
        async with yieldio.TaskGroup() as tg:
            s = tg.spawn(TLSStream.wrap(server_stream, server_context, server_side=True))
            tls = await TLSStream.wrap(client, client_context, server_hostname="localhost")
        server = s.result()
        reset(raw_client.dup())  # RST from the client's side, under TLS
        await client.aclose()
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            await server.read()
        await server.aclose()
        await tls.aclose()

    yieldio.run(main)


def test_tls_server_survives_clients_that_hang_up_during_the_handshake(server_context,
                                                                        client_context):
    async def main():
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0, ssl=server_context) as server:
            for _ in range(5):
                with stdsocket.create_connection(("127.0.0.1", server.port)) as raw:
                    raw.sendall(b"\x16\x03\x01\x00")  # the start of a ClientHello, then gone
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port,
                                                     ssl=client_context) as s:
                await s.write(b"fine")
                assert await s.read() == b"fine"
            while server.tls_errors < 5:
                await yieldio.sleep(0.01)

    yieldio.run(main)
