"""The HTTP server against raw clients on real sockets: bodies left unread, malformed
or cut short, resets, odd WebSocket handshakes, and the server object's own edges."""

from __future__ import annotations

import base64
import os
import socket
import struct

import pytest

import yieldio
from yieldio.http import (
    Client,
    HTTPException,
    Limits,
    Request,
    Response,
    WebSocketClosed,
    connect_websocket,
    serve,
)

HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\n")


def reset(stream: yieldio.Stream) -> None:
    """Make closing ``stream`` send a TCP reset (SO_LINGER 0) instead of a FIN."""
    stream.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))


async def read_response(stream: yieldio.Stream) -> tuple[bytes, bytes]:
    """One response with a Content-Length: (head, body)."""
    head = await stream.read_until(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head, await stream.read_exactly(length)


async def echo_length(request: Request) -> Response:
    """Answers without reading the body (unless the path says so)."""
    if request.path == "/read":
        return Response.text(str(len(await request.body())))
    return Response.text("unread")


# -- bodies the application did not read ----------------------------------------------------
def test_a_body_arriving_after_the_response_is_drained_and_the_connection_kept() -> None:
    async def main() -> None:
        async with serve(echo_length, "127.0.0.1", 0) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                await stream.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01")
                assert (await read_response(stream))[1] == b"unread"
                await stream.write(b"23456789")  # the rest, after the response
                await stream.write(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
                head, body = await read_response(stream)
                assert body == b"3" and b"connection: close" not in head
            assert server.requests == 2

    yieldio.run(main)


@pytest.mark.parametrize("rest", [
    b"f" * 300_000,        # more than the server drains
    b"ZZ\r\nnot chunked",  # a malformed chunk, arriving after the response
])
def test_an_unread_body_too_big_or_malformed_closes_after_the_response(rest: bytes) -> None:
    async def main() -> None:
        async with serve(echo_length, "127.0.0.1", 0) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                await stream.write(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                                   b"\r\n\r\n")
                assert (await read_response(stream))[1] == b"unread"
                chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest) if rest[0] == 102 else rest
                await stream.write(chunked + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                out = bytearray()
                with yieldio.fail_after(5):
                    while chunk := await stream.read():
                        out += chunk
                assert out == b""  # closed: what followed was never taken for a request
            assert server.requests == 1

    yieldio.run(main)


def test_a_malformed_chunk_already_buffered_closes_after_the_response(exchange) -> None:
    async def main() -> None:
        async with serve(echo_length, "127.0.0.1", 0) as server:
            out = await exchange(server.port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:"
                                 b" chunked\r\n\r\nZZ\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"unread")
            assert out.count(b"HTTP/1.1") == 1
            assert server.requests == 1

    yieldio.run(main)


def test_a_client_reset_while_the_app_reads_the_body_is_a_400_for_the_app() -> None:
    raised: list[HTTPException] = []
    got_first = yieldio.Event()

    async def app(request: Request) -> Response:
        try:
            async for _ in request.stream():
                got_first.set()
        except HTTPException as exc:
            raised.append(exc)
            raise
        return Response.text("complete?")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            await stream.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npart")
            await got_first.wait()
            reset(stream)
            await stream.aclose()
            with yieldio.fail_after(5):
                while server.connections:
                    await yieldio.sleep(0.01)
            assert server.app_errors == 0
        assert [(e.status, e.detail) for e in raised] == [(400, "the client disconnected")]

    yieldio.run(main)


def test_a_client_that_resets_after_a_413_is_let_go_at_once() -> None:
    async def main() -> None:
        limits = Limits(max_body_size=1000)
        async with serve(echo_length, "127.0.0.1", 0, limits=limits) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            await stream.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
            head, _ = await read_response(stream)
            assert head.startswith(b"HTTP/1.1 413 ")
            reset(stream)  # the server is lingering, reading what the client sends
            await stream.aclose()
            with yieldio.fail_after(1):  # well before the linger time (2 s) is over
                while server.connections:
                    await yieldio.sleep(0.01)

    yieldio.run(main)


# -- streamed response bodies ---------------------------------------------------------------
def test_a_sync_iterable_body_is_streamed_and_str_chunks_are_utf8() -> None:
    async def app(request: Request) -> Response:
        return Response(body=["héllo", b"", b" world"])

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            async with Client() as client:
                r = await client.get(f"http://127.0.0.1:{server.port}/")
                assert r.headers["transfer-encoding"] == "chunked"
                assert await r.text() == "héllo world"

    yieldio.run(main)


def test_the_unsent_body_of_a_204_is_closed(exchange) -> None:
    closed: list[bool] = []

    async def app(request: Request) -> Response:
        def body():
            try:
                yield b"never sent"
            finally:
                closed.append(True)
        gen = body()
        next(gen)  # started: only close() runs its finally
        return Response(204, body=gen)

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            out = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close"
                                 b"\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 204 ") and out.endswith(b"\r\n\r\n")
        assert closed == [True]

    yieldio.run(main)


# -- WebSocket handshakes -------------------------------------------------------------------
async def ws_app(request: Request) -> Response | None:
    if request.path == "/fail":
        ws = await request.accept_websocket()
        await ws.send("about to fail")
        raise HTTPException(409, "too late for a status")
    ws = await request.accept_websocket()
    async for message in ws:
        await ws.send(message)
    return None


@pytest.mark.parametrize("extra", [b"", b"Upgrade: websocket\r\n"])  # no Connection: Upgrade
def test_accept_websocket_on_a_plain_request_is_a_400(exchange, extra: bytes) -> None:
    async def main() -> None:
        async with serve(ws_app, "127.0.0.1", 0) as server:
            out = await exchange(server.port, b"GET /ws HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n",
                                 half_close=True)
            assert out.startswith(b"HTTP/1.1 400 ") and b"WebSocket handshake" in out

    yieldio.run(main)


def test_a_bad_websocket_version_is_a_426_naming_the_supported_one(exchange) -> None:
    async def main() -> None:
        async with serve(ws_app, "127.0.0.1", 0) as server:
            out = await exchange(server.port, HANDSHAKE + b"Sec-WebSocket-Version: 8\r\n\r\n",
                                 half_close=True)
            head = out.split(b"\r\n\r\n")[0].lower()
            assert head.startswith(b"http/1.1 426 ")
            assert b"\r\nsec-websocket-version: 13" in head

    yieldio.run(main)


@pytest.mark.parametrize("body", [b"", b"Content-Length: 3\r\n\r\nabc"])
def test_a_frame_sent_with_the_handshake_is_not_lost(body: bytes) -> None:
    def frame(text: bytes) -> bytes:  # a masked (client) text frame, with a zero mask
        return bytes([0x81, 0x80 | len(text)]) + b"\0\0\0\0" + text

    async def main() -> None:
        async with serve(ws_app, "127.0.0.1", 0) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                request = HANDSHAKE + b"Sec-WebSocket-Version: 13\r\n" + (body or b"\r\n")
                await stream.write(request + frame(b"early"))  # one write: one segment
                head = await stream.read_until(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101 ")
                assert await stream.read_exactly(7) == b"\x81\x05early"

    yieldio.run(main)


def test_http_exception_after_accepting_a_websocket_closes_it_with_1011(http_errors) -> None:
    async def main() -> None:
        async with serve(ws_app, "127.0.0.1", 0) as server:
            async with connect_websocket(f"ws://127.0.0.1:{server.port}/fail") as ws:
                assert await ws.receive() == "about to fail"
                with pytest.raises(WebSocketClosed):
                    await ws.receive()
                assert ws.close_code == 1011

    yieldio.run(main)


def test_a_websocket_accepted_while_the_server_closes_gets_1001() -> None:
    closing = yieldio.Event()

    async def app(request: Request) -> None:
        await closing.wait()
        ws = await request.accept_websocket()
        await ws.receive()

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            async with yieldio.TaskGroup() as tg:
                async def client() -> None:
                    async with connect_websocket(f"ws://127.0.0.1:{server.port}/") as ws:
                        with pytest.raises(WebSocketClosed):
                            await ws.receive()
                        assert (ws.close_code, ws.close_reason) == (1001, "server shutting down")
                tg.spawn(client)
                while not server.connections:
                    await yieldio.sleep(0.01)
                server.close()
                closing.set()

    yieldio.run(main)


# -- the server object ----------------------------------------------------------------------
def test_server_repr_addresses_and_misuse() -> None:
    async def main() -> None:
        server = serve(echo_length, "127.0.0.1", 0)
        assert server.addresses == [] and server.port is None
        with pytest.raises(RuntimeError, match="async with"):
            await server.serve_forever()
        async with server:
            assert server.addresses[0][:2] == ("127.0.0.1", server.port)
            assert repr(server) == f"<HTTPServer {server.addresses!r} connections=0>"
            with pytest.raises(RuntimeError, match="only once"):
                await server.__aenter__()

    yieldio.run(main)


def test_an_exception_in_the_serve_block_comes_out_bare() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="boom"):
            async with serve(echo_length, "127.0.0.1", 0) as server:
                stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
                await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await read_response(stream)  # a kept-alive connection is open
                raise ValueError("boom")
        await stream.aclose()

    yieldio.run(main)


def test_cancelling_the_graceful_shutdown_cancels_the_requests_in_flight() -> None:
    started = yieldio.Event()
    cancelled: list[bool] = []

    async def app(request: Request) -> Response:
        started.set()
        try:
            await yieldio.sleep(30)
        except BaseException:
            cancelled.append(True)
            raise
        return Response.text("late")

    async def main() -> None:
        with yieldio.move_on_after(0.3) as scope:
            async with serve(app, "127.0.0.1", 0, grace_period=30) as server:
                stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
                await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await started.wait()
        assert scope.cancelled_caught and cancelled == [True]
        await stream.aclose()

    yieldio.run(main)


def test_a_server_without_timeouts_serves_and_keeps_connections() -> None:
    limits = Limits(header_timeout=None, keep_alive_timeout=None, body_timeout=None,
                    write_timeout=None)

    async def main() -> None:
        async with serve(echo_length, "127.0.0.1", 0, limits=limits) as server:
            async with Client() as client:
                url = f"http://127.0.0.1:{server.port}/"
                assert await (await client.get(url)).text() == "unread"
                await yieldio.sleep(0.05)
                assert await (await client.get(url)).text() == "unread"
            assert server.requests == 2

    yieldio.run(main)


def test_a_refused_client_that_resets_does_not_disturb_the_server() -> None:
    async def main() -> None:
        limits = Limits(max_connections=1)
        async with serve(echo_length, "127.0.0.1", 0, limits=limits) as server:
            first = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            while not server.connections:
                await yieldio.sleep(0.01)
            second = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            head = await second.read_until(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 ")
            reset(second)  # while the server reads what it might still send
            await second.aclose()
            await yieldio.sleep(0.1)
            async with first:
                await first.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert (await read_response(first))[1] == b"unread"
            assert server.rejected == 1

    yieldio.run(main)


def test_deeply_nested_json_is_a_400_not_an_application_error(exchange) -> None:
    # Regression: json.loads raises RecursionError, not ValueError, on a few
    # hundred kilobytes of "[": request.json() let it through, and any client
    # could make the server log an application error and answer 500.
    async def app(request: Request) -> Response:
        return Response.json(await request.json())

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            body = b"[" * 200_000
            out = await exchange(server.port, b"POST / HTTP/1.1\r\nHost: x\r\n"
                                 b"Connection: close\r\nContent-Length: %d\r\n\r\n"
                                 % len(body) + body)
            assert out.startswith(b"HTTP/1.1 400 ")
            assert b"invalid JSON body" in out
            assert server.app_errors == 0

    yieldio.run(main)


def test_an_http2_preface_or_unknown_version_gets_505_and_a_close(exchange) -> None:
    async def app(request: Request) -> Response:
        raise AssertionError("not routed")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            preface = await exchange(server.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            assert preface.startswith(b"HTTP/1.1 505 ")
            assert server.app_errors == 0

    yieldio.run(main)


def test_an_http10_streamed_body_that_fails_midway_ends_with_a_reset() -> None:
    import socket

    async def app(request: Request) -> Response:
        async def body():
            yield b"first part "
            raise RuntimeError("the data source broke")

        return Response(200, {"content-type": "text/plain"}, body())

    def client(port: int) -> tuple[bytes, str]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            got = b""
            try:
                while chunk := s.recv(65536):
                    got += chunk
            except ConnectionResetError:
                return got, "reset"
            return got, "eof"  # indistinguishable from a complete body

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            got, end = await yieldio.to_thread(client, server.port)
            assert b"first part" in got and end == "reset"
            assert server.app_errors == 1

    yieldio.run(main)
