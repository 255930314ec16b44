"""Every server limit, exceeded: header size (431), body size (413), header
timeout (slowloris), keep-alive idle timeout, body and write timeouts, and
max concurrent connections (503).

Timing logic runs on the in-memory SimNetwork in virtual time (exact and
fast); the slowloris defence is also shown on real sockets.
"""

from __future__ import annotations

import base64
import os
from contextlib import asynccontextmanager

import pytest

import yieldio
from yieldio.http import Client, Limits, Request, Response, WebSocketClosed, serve
from yieldio.http._connection import LINGER_TIME
from yieldio.testing import SimNetwork, VirtualClock


async def hello(request: Request) -> Response:
    return Response.text("hello")


def run_simulated(main, **net_options) -> None:
    """Run ``main`` in virtual time on a SimNetwork (options: ``SimNetwork``'s) with 10.0.0.1."""
    net = SimNetwork(**net_options)
    net.add_host("server", "10.0.0.1")
    yieldio.run(main, network=net, clock=VirtualClock(autojump=True))


async def read_until_closed(stream: yieldio.Stream) -> bytes:
    out = bytearray()
    try:
        while chunk := await stream.read():
            out += chunk
    except ConnectionResetError:
        pass
    return bytes(out)


# -- sizes ----------------------------------------------------------------------------------
def test_limits_validation() -> None:
    assert Limits().max_body_size == 10 * 1024 * 1024
    with pytest.raises(ValueError):
        Limits(max_body_size=0)
    with pytest.raises(ValueError):
        Limits(max_header_size=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Limits(header_timeout="5")  # type: ignore[arg-type]
    assert Limits(max_body_size=None).max_body_size is None


def test_a_nan_limit_is_refused() -> None:
    # Regression: NaN passed the "> 0" check (every comparison with NaN is
    # false), and a NaN deadline never passes: the timeout was silently off.
    for name in ("header_timeout", "keep_alive_timeout", "body_timeout", "max_body_size"):
        with pytest.raises(ValueError):
            Limits(**{name: float("nan")})


@pytest.mark.parametrize("trickle", [False, True])
def test_oversized_headers_get_431(exchange, trickle: bool) -> None:
    limits = Limits(max_header_size=4096)
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n"

    async def main() -> None:
        async with serve(hello, "127.0.0.1", 0, limits=limits) as server:
            if trickle:  # in pieces: h11 stops buffering past the limit
                stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
                async with stream:
                    for i in range(0, len(head), 1000):
                        try:
                            await stream.write(head[i:i + 1000])
                        except OSError:
                            break
                        await yieldio.sleep(0.01)
                    out = await read_until_closed(stream)
            else:
                out = await exchange(server.port, head)
            assert out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
            assert server.bad_requests == 1
            # A request within the limit is fine.
            ok = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close"
                                             b"\r\nX-Ok: " + b"a" * 3000 + b"\r\n\r\n")
            assert ok.startswith(b"HTTP/1.1 200 OK")

    yieldio.run(main)


def test_declared_oversized_body_gets_413_before_the_app_runs(exchange) -> None:
    called = []

    async def app(request: Request) -> Response:
        called.append(request)
        return Response.text("should not run")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0, limits=Limits(max_body_size=1000)) as server:
            out = await exchange(server.port, b"POST / HTTP/1.1\r\nHost: x\r\n"
                                              b"Content-Length: 1001\r\n\r\n" + b"x" * 1001)
            assert out.startswith(b"HTTP/1.1 413 ")
            assert b"connection: close" in out.lower()
            out = await exchange(server.port, b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close"
                                              b"\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000)
            assert out.startswith(b"HTTP/1.1 200 OK")
        assert len(called) == 1

    yieldio.run(main)


def test_chunked_body_past_the_limit_gets_413(exchange) -> None:
    async def app(request: Request) -> Response:
        return Response.text(str(len(await request.body())))

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0, limits=Limits(max_body_size=1000)) as server:
            chunk = b"258\r\n" + b"x" * 0x258 + b"\r\n"  # 600 bytes a chunk
            out = await exchange(server.port, b"POST / HTTP/1.1\r\nHost: x\r\n"
                                              b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 2)
            assert out.startswith(b"HTTP/1.1 413 ")
            out = await exchange(server.port, b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close"
                                              b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk
                                 + b"0\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 200 OK") and out.endswith(b"600")

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
                await read_until_closed(stream)  # the server's FIN: it lingers now
                t0 = yieldio.current_time()
                # The client keeps its end open and sends nothing.
                with yieldio.fail_after(60):  # virtual seconds
                    while server.connections:
                        await yieldio.sleep(0.1)
                assert yieldio.current_time() - t0 <= LINGER_TIME + 1

    run_simulated(main)


# -- time ---------------------------------------------------------------------------------------
def test_slowloris_is_cut_off_and_others_are_unaffected_virtual_time() -> None:
    limits = Limits(header_timeout=10, keep_alive_timeout=5)

    async def main() -> None:
        async with serve(hello, "10.0.0.1", 80, limits=limits):
            slow = await yieldio.open_tcp_stream("10.0.0.1", 80)
            t0 = yieldio.current_time()
            closed_at: list[float] = []
            good_answers: list[float] = []

            async def drip() -> None:
                await slow.write(b"GET / HTTP/1.1\r\n")
                try:
                    while True:  # one header line a second, never the end
                        await yieldio.sleep(1)
                        await slow.write(b"X-Drip: 1\r\n")
                except OSError:
                    pass

            async def watch() -> None:
                assert await read_until_closed(slow) == b""
                closed_at.append(yieldio.current_time() - t0)
                tg.cancel()

            async def good_client() -> None:
                async with Client(timeout=3) as client:
                    while True:
                        r = await client.get("http://10.0.0.1/")
                        assert r.status == 200
                        good_answers.append(yieldio.current_time() - t0)
                        await yieldio.sleep(2)

            async with yieldio.TaskGroup() as tg:
                tg.spawn(drip)
                tg.spawn(watch)
                tg.spawn(good_client)
            await slow.aclose()
        # Closed once the 10 s header timeout passed (the reaper ticks every 1 s) ...
        assert 10 <= closed_at[0] <= 11.5
        # ... while a well-behaved client was served all along.
        assert len(good_answers) >= 5 and good_answers[0] < 1

    run_simulated(main)


def test_slowloris_on_real_sockets(exchange) -> None:
    limits = Limits(header_timeout=0.3)

    async def main() -> None:
        async with serve(hello, "127.0.0.1", 0, limits=limits) as server:
            t0 = yieldio.current_time()  # before the server accepts: its clock starts later
            slow = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            silent = await yieldio.open_tcp_stream("127.0.0.1", server.port)  # never sends
            await slow.write(b"GET / HTTP/1.1\r\n")
            results = []
            with yieldio.fail_after(20):
                async with yieldio.TaskGroup() as tg:
                    async def drip() -> None:
                        try:
                            while True:
                                await yieldio.sleep(0.05)
                                await slow.write(b"X: y\r\n")
                        except OSError:
                            pass

                    async def others() -> None:
                        while yieldio.current_time() - t0 < 0.25:
                            out = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n"
                                                              b"Connection: close\r\n\r\n")
                            results.append(out.endswith(b"hello"))
                            await yieldio.sleep(0.02)

                    tg.spawn(drip)
                    tg.spawn(others)
                    assert await read_until_closed(slow) == b""
                    assert await read_until_closed(silent) == b""
                    elapsed = yieldio.current_time() - t0
            await slow.aclose()
            await silent.aclose()
            assert elapsed >= 0.3
            assert results and all(results)

    yieldio.run(main)


def test_keep_alive_idle_timeout_virtual_time() -> None:
    limits = Limits(keep_alive_timeout=5, header_timeout=10)

    async def main() -> None:
        async with serve(hello, "10.0.0.1", 80, limits=limits):
            stream = await yieldio.open_tcp_stream("10.0.0.1", 80)
            async with stream:
                await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await stream.read_until(b"hello")
                t0 = yieldio.current_time()
                await yieldio.sleep(4)  # idle, but within the timeout: still served
                await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await stream.read_until(b"hello")
                t1 = yieldio.current_time()
                assert await read_until_closed(stream) == b""
                idle = yieldio.current_time() - t1
        assert t1 - t0 >= 4
        assert 5 <= idle <= 6.5

    run_simulated(main)


def test_body_timeout_virtual_time() -> None:
    limits = Limits(body_timeout=3)
    outcome = []

    async def app(request: Request) -> Response:
        try:
            await request.body()
        except yieldio.Cancelled:
            outcome.append("cancelled")
            raise
        return Response.text("complete")

    async def main() -> None:
        async with serve(app, "10.0.0.1", 80, limits=limits):
            stream = await yieldio.open_tcp_stream("10.0.0.1", 80)
            async with stream:
                await stream.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
                t0 = yieldio.current_time()
                assert await read_until_closed(stream) == b""
                waited = yieldio.current_time() - t0
        assert 3 <= waited <= 4.5
        assert outcome == ["cancelled"]

    run_simulated(main)


def test_write_timeout_for_a_client_that_never_reads() -> None:
    limits = Limits(write_timeout=0.3)
    sent = []

    async def app(request: Request) -> Response:
        async def endless():
            chunk = b"x" * 65536
            while True:
                sent.append(len(chunk))
                yield chunk
        return Response(body=endless())

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0, limits=limits) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                with yieldio.fail_after(10):
                    while server.connections:  # the server gives up on us
                        await yieldio.sleep(0.05)
        assert sum(sent) > 65536  # it did write until the buffers were full

    yieldio.run(main)


def test_write_timeout_does_not_cut_a_slowly_produced_stream_virtual_time() -> None:
    # Server-sent events: a chunk every 10 s, write timeout 5 s. The client
    # reads everything at once, so no write is ever late; the time the
    # application takes to produce the next chunk is not a write.
    limits = Limits(write_timeout=5)

    async def app(request: Request) -> Response:
        async def events():
            for i in range(3):
                yield f"data: {i}\n\n".encode()
                await yieldio.sleep(10)
        return Response(headers={"content-type": "text/event-stream"}, body=events())

    async def main() -> None:
        async with serve(app, "10.0.0.1", 80, limits=limits), Client(timeout=60) as client:
            async with client.stream("GET", "http://10.0.0.1/") as r:
                body = b"".join([chunk async for chunk in r.iter_bytes()])
        assert body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"

    run_simulated(main)


# Every timeout off but the one under test; no keepalive pings.
ONLY_WRITE_TIMEOUT = Limits(header_timeout=None, keep_alive_timeout=None, body_timeout=None,
                            write_timeout=2.0, websocket_ping_interval=None)
# Small buffers: a peer that reads nothing blocks the server's writes soon.
SMALL_BUFFER = 8192


async def wait_closed_by_write_timeout(server) -> None:
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
        async with serve(app, "10.0.0.1", 80, limits=ONLY_WRITE_TIMEOUT) as server:
            stream = await yieldio.open_tcp_stream("10.0.0.1", 80)
            async with stream:
                await stream.write(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read
                while not server.connections:
                    await yieldio.sleep(0.01)
                await wait_closed_by_write_timeout(server)

    run_simulated(main, max_buffer=SMALL_BUFFER)


def test_a_100_continue_to_a_client_that_reads_nothing_times_out() -> None:
    # A first (pipelined) response, never read, fills the client's receive
    # buffer all but a few bytes; the 100 Continue for the second request,
    # which the application reads the body of, then cannot be written.
    async def app(request: Request) -> Response:
        if request.path == "/fill":
            return Response.text("x" * int(request.query["n"]))
        return Response.text(str(len(await request.body())))

    async def main() -> None:
        async with serve(app, "10.0.0.1", 80, limits=ONLY_WRITE_TIMEOUT) as server:
            # The size of a response, head included, with a 4000-byte body.
            probe = await yieldio.open_tcp_stream("10.0.0.1", 80)
            async with probe:
                await probe.write(b"GET /fill?n=4000 HTTP/1.1\r\nHost: x\r\n"
                                  b"Connection: close\r\n\r\n")
                size = len(await read_until_closed(probe)) - len(b"connection: close\r\n")
            n = 4000 + SMALL_BUFFER - size - 10  # 10 bytes of room left; 100 Continue is 25
            stream = await yieldio.open_tcp_stream("10.0.0.1", 80)
            async with stream:
                await stream.write(
                    b"GET /fill?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % n
                    + b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                      b"Content-Length: 5\r\n\r\n")
                await yieldio.sleep(0.5)
                assert server.connections == 1  # the first response went out whole
                await wait_closed_by_write_timeout(server)

    run_simulated(main, max_buffer=SMALL_BUFFER)


def ws_handshake() -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")


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
        async with serve(app, "10.0.0.1", 80, limits=ONLY_WRITE_TIMEOUT) as server:
            stream = await yieldio.open_tcp_stream("10.0.0.1", 80)
            async with stream:
                await stream.write(ws_handshake())
                await stream.read_until(b"\r\n\r\n")  # the 101; then read nothing
                with yieldio.fail_after(60):  # virtual seconds
                    while server.connections:
                        await yieldio.sleep(0.1)

    run_simulated(main, max_buffer=256)
    assert len(seen) == 1
    elapsed, code, close_code, reason = seen[0]
    assert 2.0 <= elapsed <= 3.0
    assert (code, close_code, reason) == (1011, 1011, "write timeout")


# -- connections ----------------------------------------------------------------------------
def test_max_connections_gets_503_then_recovers(exchange) -> None:
    limits = Limits(max_connections=2)

    async def main() -> None:
        async with serve(hello, "127.0.0.1", 0, limits=limits) as server:
            held = [await yieldio.open_tcp_stream("127.0.0.1", server.port) for _ in range(2)]
            for s in held:  # both are served (and kept alive)
                await s.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await s.read_until(b"hello")
            out = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 503 Service Unavailable")
            assert b"retry-after: 1" in out.lower()
            assert server.rejected == 1
            await held[0].aclose()
            with yieldio.fail_after(5):
                while server.connections > 1:
                    await yieldio.sleep(0.01)
            out = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n"
                                              b"Connection: close\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 200 OK")
            await held[1].aclose()

    yieldio.run(main)


def test_tls_handshake_is_bounded_by_the_header_timeout(server_context, client_context) -> None:
    """A client that connects to an HTTPS server and never says hello is cut off too."""
    async def main() -> None:
        limits = Limits(header_timeout=0.3)
        async with serve(hello, "127.0.0.1", 0, ssl=server_context, limits=limits) as server:
            t0 = yieldio.current_time()
            mute = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            with yieldio.fail_after(5):
                assert await read_until_closed(mute) == b""
            assert yieldio.current_time() - t0 >= 0.3
            await mute.aclose()
            assert server.tls_errors == 1
            async with Client(ssl=client_context) as client:  # others are fine
                assert (await client.get(f"https://localhost:{server.port}/")).content == b"hello"

    yieldio.run(main)


# -- WebSocket keepalive ----------------------------------------------------------------------
def _ws_echo_router(log: list) -> yieldio.http.Router:
    router = yieldio.http.Router()

    @router.websocket("/echo")
    async def echo(request: Request) -> None:
        ws = await request.accept_websocket()
        async for message in ws:
            await ws.send(message)
        log.append((ws.close_code, ws.close_reason, round(yieldio.current_time())))

    return router


@asynccontextmanager
async def _ws_echo_session(net: SimNetwork, log: list, limits: Limits, **client_options):
    """An echo WebSocket server on 10.0.0.1 and a client on 10.0.0.2 that said "hi"."""
    with net.host("10.0.0.1"):
        async with serve(_ws_echo_router(log), None, 80, limits=limits):
            with net.host("10.0.0.2"):
                async with yieldio.http.connect_websocket("ws://10.0.0.1/echo",
                                                          **client_options) as ws:
                    await ws.send("hi")
                    assert await ws.receive() == "hi"
                    yield ws


def test_websocket_server_drops_a_client_that_vanished() -> None:
    # The client's host drops off the network without a FIN: only a ping
    # that gets no pong can tell. Ping every 5 s, 3 s to answer.
    log: list = []
    limits = Limits(websocket_ping_interval=5, websocket_ping_timeout=3)
    net = SimNetwork()

    async def main() -> None:
        async with _ws_echo_session(net, log, limits, ping_interval=None):
            net.partition("10.0.0.2")
            with yieldio.fail_after(60):
                while not log:
                    await yieldio.sleep(1)

    yieldio.run(main, network=net, clock=VirtualClock(autojump=True))
    # The first ping at t=5 gets no pong by t=8: closed as lost.
    assert log == [(1011, "keepalive ping timeout", 8)]


def test_websocket_client_notices_a_server_that_vanished() -> None:
    log: list = []
    limits = Limits(websocket_ping_interval=None)
    net = SimNetwork()

    async def main() -> None:
        async with _ws_echo_session(net, log, limits, ping_interval=4, ping_timeout=2) as ws:
            net.partition("10.0.0.1")
            with pytest.raises(yieldio.http.WebSocketClosed) as info:
                await ws.receive()
            assert round(yieldio.current_time()) == 6
            assert (info.value.code, ws.close_code) == (1011, 1011)
            net.heal()

    yieldio.run(main, network=net, clock=VirtualClock(autojump=True))


def test_websocket_keepalive_keeps_a_healthy_idle_connection() -> None:
    # An hour of silence with pings both ways answered: still open, still works.
    log: list = []
    limits = Limits(websocket_ping_interval=20, websocket_ping_timeout=20)
    net = SimNetwork(latency=0.05)

    async def main() -> None:
        with net.host("10.0.0.1"):
            async with serve(_ws_echo_router(log), None, 80, limits=limits):
                with net.host("10.0.0.2"):
                    async with yieldio.http.connect_websocket(
                            "ws://10.0.0.1/echo", ping_interval=15, ping_timeout=5) as ws:
                        await yieldio.sleep(3600)
                        assert not ws.closed
                        await ws.send("still here")
                        assert await ws.receive() == "still here"
                with yieldio.fail_after(30):
                    while not log:
                        await yieldio.sleep(1)

    yieldio.run(main, network=net, clock=VirtualClock(autojump=True))
    assert [entry[:2] for entry in log] == [(1000, "")]


@pytest.mark.parametrize("options", [{"ping_interval": 0}, {"ping_interval": -1},
                                     {"ping_timeout": 0}, {"ping_interval": "5"}])
def test_websocket_client_refuses_a_keepalive_that_would_spin(options: dict) -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="> 0 or None"):
            async with yieldio.http.connect_websocket("ws://127.0.0.1:9/", **options):
                pass

    yieldio.run(main)
