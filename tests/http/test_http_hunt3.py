"""Regression tests for bugs found in the HTTP server and WebSocket code (third hunt).

Real sockets on 127.0.0.1 with raw-byte peers, and the in-memory SimNetwork in
virtual time where the bug is about timing (a peer that reads nothing).
"""

from __future__ import annotations

import base64
import os
import socket

import pytest

import yieldio
from yieldio.http import Limits, Request, Response, WebSocketClosed, connect_websocket, serve
from yieldio.testing import SimNetwork, VirtualClock

# Every timeout off but the one under test; no keepalive pings.
_ONLY_WRITE_TIMEOUT = Limits(header_timeout=None, keep_alive_timeout=None, body_timeout=None,
                             write_timeout=2.0, websocket_ping_interval=None)


def _handshake() -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")


def _sim_net(max_buffer: int = 256) -> SimNetwork:
    # Small buffers: a peer that reads nothing blocks the server's writes soon.
    net = SimNetwork(max_buffer=max_buffer)
    net.add_host("web", "10.0.0.1")
    return net


async def _read_until_closed(stream: yieldio.Stream) -> bytes:
    out = bytearray()
    while chunk := await stream.read():
        out += chunk
    return bytes(out)


def _read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length body, read off a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed early: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return head + b"\r\n\r\n" + body


# -- 1. Expect: 100-continue with the body already here ---------------------------
@pytest.mark.parametrize("body", [b"", b"hello"])
def test_expect_100_continue_with_the_whole_body_already_sent_keeps_the_connection(
        body: bytes) -> None:
    # Content-Length: 0, or a client that did not wait for 100 Continue: h11
    # still said "waiting for 100-continue" (it clears that only on reaching
    # the body, which the app did not read), so the response closed the
    # connection for nothing.
    async def app(request: Request) -> Response:
        return Response.text(f"{request.method} {request.path}")

    def client(port: int) -> list[bytes]:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            sock.sendall(b"POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            first = _read_response(sock)
            sock.sendall(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
            return [first, _read_response(sock)]

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            first, second = await yieldio.to_thread(client, server.port)
        assert first.startswith(b"HTTP/1.1 200 ") and first.endswith(b"POST /a")
        assert b"connection: close" not in first.lower()
        assert second.startswith(b"HTTP/1.1 200 ") and second.endswith(b"GET /b")

    yieldio.run(main)


def test_expect_100_continue_without_the_body_still_closes(exchange) -> None:
    # The client is waiting: it may or may not send the body now, so the
    # connection cannot be reused (what the fix must not change).
    async def app(request: Request) -> Response:
        return Response.text("no")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            out = await exchange(server.port, b"POST / HTTP/1.1\r\nHost: x\r\n"
                                              b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200 ")
        assert b"connection: close" in out.lower()

    yieldio.run(main)


# -- 2. Writes without a deadline ----------------------------------------------------
_BUFFER = 8192


async def _wait_closed_by_write_timeout(server) -> None:
    t0 = yieldio.current_time()
    with yieldio.fail_after(60):  # virtual seconds
        while server.connections:
            await yieldio.sleep(0.1)
    assert yieldio.current_time() - t0 <= 2.0 + 1.5


def test_a_streamed_head_response_to_a_client_that_reads_nothing_times_out() -> None:
    async def app(request: Request) -> Response:
        async def body():
            yield b"never sent"
        return Response(200, {"x-big": "y" * 20_000}, body())

    async def main() -> None:
        async with serve(app, "10.0.0.1", 80, limits=_ONLY_WRITE_TIMEOUT) as server:
            stream = await yieldio.open_tcp_stream("10.0.0.1", 80)
            async with stream:
                await stream.write(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read
                while not server.connections:
                    await yieldio.sleep(0.01)
                await _wait_closed_by_write_timeout(server)

    yieldio.run(main, network=_sim_net(_BUFFER), clock=VirtualClock(autojump=True))


def test_a_100_continue_to_a_client_that_reads_nothing_times_out() -> None:
    # A first (pipelined) response, never read, fills the client's receive
    # buffer all but a few bytes; the 100 Continue for the second request,
    # which the application reads the body of, then cannot be written.
    async def app(request: Request) -> Response:
        if request.path == "/fill":
            return Response.text("x" * int(request.query["n"]))
        return Response.text(str(len(await request.body())))

    async def main() -> None:
        async with serve(app, "10.0.0.1", 80, limits=_ONLY_WRITE_TIMEOUT) as server:
            # The size of a response, head included, with a 4000-byte body.
            probe = await yieldio.open_tcp_stream("10.0.0.1", 80)
            async with probe:
                await probe.write(b"GET /fill?n=4000 HTTP/1.1\r\nHost: x\r\n"
                                  b"Connection: close\r\n\r\n")
                size = len(await _read_until_closed(probe)) - len(b"connection: close\r\n")
            n = 4000 + _BUFFER - size - 10  # 10 bytes of room left; 100 Continue is 25
            stream = await yieldio.open_tcp_stream("10.0.0.1", 80)
            async with stream:
                await stream.write(
                    b"GET /fill?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % n
                    + b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                      b"Content-Length: 5\r\n\r\n")
                await yieldio.sleep(0.5)
                assert server.connections == 1  # the first response went out whole
                await _wait_closed_by_write_timeout(server)

    yieldio.run(main, network=_sim_net(_BUFFER), clock=VirtualClock(autojump=True))


# -- 3. The pong table -------------------------------------------------------------------
def test_a_ping_that_ends_without_its_pong_is_forgotten() -> None:
    # A ping timed out (the peer never answers), one whose send failed (closed
    # connection): each left its entry in ws._pongs for ever.
    results: list[object] = []

    async def app(request: Request) -> None:
        ws = await request.accept_websocket()
        with yieldio.move_on_after(0.2):
            await ws.ping(b"timed out")
        results.append(dict(ws._pongs))
        ws.close_timeout = 0.1  # the peer will not answer the Close either
        await ws.close()
        with pytest.raises(WebSocketClosed):
            await ws.ping(b"after the close")
        results.append(dict(ws._pongs))

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                await stream.write(_handshake())
                with yieldio.fail_after(4):
                    # Read the ping (and the Close), never answer it.
                    while await stream.read():
                        pass
            with yieldio.fail_after(2):
                while len(results) < 2:
                    await yieldio.sleep(0.01)
        assert results == [{}, {}]

    yieldio.run(main)


def test_a_cancelled_ping_does_not_strand_another_with_the_same_payload() -> None:
    async def app(request: Request) -> None:
        ws = await request.accept_websocket()
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            async with connect_websocket(f"ws://127.0.0.1:{server.port}/",
                                         ping_interval=None) as ws:
                async with yieldio.TaskGroup() as tg:
                    tg.spawn(ws.ping, b"same")
                    await yieldio.sleep(0)
                    with yieldio.move_on_after(0):
                        await ws.ping(b"same")
                    with yieldio.fail_after(2):
                        await ws.ping(b"same")
                assert ws._pongs == {}

    yieldio.run(main)


# -- 4. write_timeout for WebSocket sends -------------------------------------------
def test_a_websocket_send_to_a_peer_that_reads_nothing_ends_at_the_write_timeout() -> None:
    # Without it, with keepalive off, ws.send() blocked for ever.
    seen: list[tuple[float, int | None, int | None, str | None]] = []

    async def app(request: Request) -> None:
        ws = await request.accept_websocket()
        t0 = yieldio.current_time()
        try:
            while True:
                await ws.send("x" * 1000)
        except WebSocketClosed as exc:
            seen.append((yieldio.current_time() - t0, exc.code, ws.close_code, ws.close_reason))

    async def main() -> None:
        async with serve(app, "10.0.0.1", 80, limits=_ONLY_WRITE_TIMEOUT) as server:
            stream = await yieldio.open_tcp_stream("10.0.0.1", 80)
            async with stream:
                await stream.write(_handshake())
                await stream.read_until(b"\r\n\r\n")  # the 101; then read nothing
                with yieldio.fail_after(60):  # virtual seconds
                    while server.connections:
                        await yieldio.sleep(0.1)

    yieldio.run(main, network=_sim_net(), clock=VirtualClock(autojump=True))
    assert len(seen) == 1
    elapsed, code, close_code, reason = seen[0]
    assert 2.0 <= elapsed <= 3.0
    assert (code, close_code, reason) == (1011, 1011, "write timeout")
