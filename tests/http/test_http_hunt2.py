"""Regression tests for bugs found in the HTTP server and WebSocket code (second hunt).

Real sockets on 127.0.0.1 with raw-byte peers, and the in-memory SimNetwork in
virtual time where the bug is about timing.
"""

from __future__ import annotations

import logging

import pytest

import yieldio
from yieldio.http import Limits, Request, Response, connect_websocket, serve
from yieldio.http._connection import LINGER_TIME
from yieldio.testing import SimNetwork, VirtualClock


async def _read_until_closed(stream: yieldio.Stream) -> bytes:
    out = bytearray()
    while chunk := await stream.read():
        out += chunk
    return bytes(out)


def test_an_oserror_raised_by_a_streamed_body_is_an_app_error_not_a_lost_client(
        http_errors: pytest.LogCaptureFixture) -> None:
    # A body generator whose backend fails with an OSError (ConnectionRefusedError,
    # FileNotFoundError...) used to be taken for the client going away: logged
    # at DEBUG as "connection lost", never counted in app_errors.
    async def app(request: Request) -> Response:
        async def body():
            yield b"abc"
            raise ConnectionRefusedError("the backend is down")
        return Response(body=body())

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                with yieldio.fail_after(5):
                    out = await _read_until_closed(stream)
            assert out.endswith(b"3\r\nabc\r\n")  # cut short: no final chunk
            assert server.app_errors == 1

    yieldio.run(main)
    errors = [r for r in http_errors.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "streamed response body failed" in errors[0].getMessage()
    assert isinstance(errors[0].exc_info[1], ConnectionRefusedError)


def test_an_absolute_form_target_with_a_slash_in_its_query_is_not_routed_by_the_query(
        exchange) -> None:
    # "GET http://host?next=/admin" asks for "/", not for "/admin".
    async def app(request: Request) -> Response:
        return Response.json({"path": request.path, "raw": request.raw_path,
                              "next": request.query.get("next")})

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            out = await exchange(server.port, b"GET http://x?next=/admin HTTP/1.1\r\nHost: x\r\n"
                                              b"Connection: close\r\n\r\n")
        assert out.endswith(b'{"path":"/","raw":"/","next":"/admin"}')

    yieldio.run(main)


def test_a_websocket_block_left_by_cancellation_still_sends_a_close_frame() -> None:
    # A timeout around "async with connect_websocket(...)" left the server
    # with 1006 (connection lost): the Close frame was never sent.
    seen: list[tuple[int | None, str | None]] = []
    handler_done = yieldio.Event()

    async def app(request: Request) -> None:
        ws = await request.accept_websocket()
        async for _ in ws:
            pass
        seen.append((ws.close_code, ws.close_reason))
        handler_done.set()

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            with yieldio.move_on_after(0.1):
                async with connect_websocket(f"ws://127.0.0.1:{server.port}/") as ws:
                    await ws.receive()  # nothing comes: cancelled here
            with yieldio.fail_after(2):
                await handler_done.wait()
        assert seen == [(1000, "")]

    yieldio.run(main)


def test_lingering_after_a_413_is_bounded_even_with_every_timeout_off() -> None:
    # With every timeout set to None the reaper task did not run at all, so
    # the lingering close after a 413 (at most LINGER_TIME) waited for ever
    # on a client that keeps its connection open.
    limits = Limits(header_timeout=None, keep_alive_timeout=None, body_timeout=None,
                    write_timeout=None, max_body_size=10)

    async def app(request: Request) -> Response:
        return Response.text(str(len(await request.body())))

    async def main() -> None:
        async with serve(app, "10.0.0.1", 80, limits=limits) as server:
            stream = await yieldio.open_tcp_stream("10.0.0.1", 80)
            async with stream:
                await stream.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
                head = await stream.read_until(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 413 ")
                await _read_until_closed(stream)  # the server's FIN: it lingers now
                t0 = yieldio.current_time()
                # The client keeps its end open and sends nothing.
                with yieldio.fail_after(60):  # virtual seconds
                    while server.connections:
                        await yieldio.sleep(0.1)
                assert yieldio.current_time() - t0 <= LINGER_TIME + 1

    net = SimNetwork()
    net.add_host("web", "10.0.0.1")
    yieldio.run(main, network=net, clock=VirtualClock(autojump=True))
