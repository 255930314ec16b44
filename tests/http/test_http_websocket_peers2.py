"""The WebSocket server and client against real peers, second round: fragments and
sizes, bad frames, close codes both ways, peers that vanish, backpressure, keepalive
against a peer that never pongs, rejected handshakes and compression offers.

The peers (``websockets`` and aiohttp) run in this process, in a thread with its
own asyncio loop, on 127.0.0.1; the ``websockets`` sync client runs in a worker
thread. (test_http_peer_servers.py runs them as subprocesses instead.)
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

import yieldio
from yieldio.http import (
    Limits,
    Request,
    WebSocketClosed,
    WebSocketRejected,
    connect_websocket,
    serve,
)

websockets = pytest.importorskip("websockets")
aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402
from websockets.asyncio.server import ServerConnection  # noqa: E402
from websockets.asyncio.server import serve as ws_serve  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.frames import Frame, Opcode  # noqa: E402
from websockets.sync.client import connect as ws_connect  # noqa: E402

MiB = 1 << 20


class PeerLoop:
    """An asyncio loop in a daemon thread, for peer servers and clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 20) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# -- the peer servers ----------------------------------------------------------------------
peer_state: dict[str, Any] = {}


async def ws_handler(ws: ServerConnection) -> None:
    """The ``websockets`` server: each command names a test's peer behaviour."""
    try:
        async for command in ws:
            await ws_command(ws, command)
    except ConnectionClosed:
        pass
    finally:
        peer_state.setdefault("closes", []).append((ws.close_code, ws.close_reason))


async def ws_command(ws: ServerConnection, command: str | bytes) -> None:
    if command == "sizes":
        async def fragments() -> Any:  # a ping between two fragments of one message
            yield "frag-"
            await ws.ping(b"in the middle")
            yield "\u00e9"
            yield ""
            yield "-end"
        await ws.send(fragments())
        await ws.send("")
        await ws.send(b"")
        await ws.send(b"\x01" * MiB)  # the limit exactly: allowed
        await ws.send(b"\x02" * (MiB + 1))  # one more: 1009
    elif command in ("bad-utf8", "text-then-binary"):
        # Frames no well-behaved library sends, through websockets' sans-I/O layer.
        if command == "bad-utf8":
            ws.protocol.send_frame(Frame(Opcode.TEXT, b"ok \xff\xfe"))
        else:
            ws.protocol.send_frame(Frame(Opcode.TEXT, b"abc", fin=False))
            ws.protocol.send_frame(Frame(Opcode.BINARY, b"def"))
        ws.send_data()
    elif isinstance(command, str) and command.startswith("close "):
        _, code, reason = command.split(" ", 2)
        await ws.close(int(code), reason)
    elif command in ("reset", "eof"):
        if command == "reset":
            sock = ws.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.transport.abort()
    elif command == "stop-reading":  # neither messages nor pings: a stalled peer
        resume = peer_state["resume"] = asyncio.Event()
        ws.transport.pause_reading()
        # Until the test says (resume_reading()), at most 3 s.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(resume.wait(), 3)
        ws.transport.resume_reading()
    elif command == "flood":
        for i in range(1000):
            await ws.send(bytes([i % 256]) * 65536)
            peer_state["flooded"] = i + 1
    else:
        await ws.send(command)


async def ws_process_request(conn: ServerConnection, request: Any) -> Any:
    if request.path == "/deny":
        return conn.respond(http.HTTPStatus.FORBIDDEN, "not you\n")
    return None


async def aiohttp_handler(request: web.Request) -> web.WebSocketResponse:
    """The aiohttp server: echoes, and closes on "close CODE REASON"."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    while True:
        msg = await ws.receive()
        if msg.type == aiohttp.WSMsgType.TEXT and msg.data.startswith("close "):
            _, code, reason = msg.data.split(" ", 2)
            await ws.close(code=int(code), message=reason.encode())
            close = (int(code), reason)
            break
        if msg.type == aiohttp.WSMsgType.TEXT:
            await ws.send_str(msg.data)
        else:  # the client's Close (answered by aiohttp), or the end
            close = (msg.data, msg.extra)
            break
    peer_state.setdefault("closes", []).append(close)
    return ws


@pytest.fixture(scope="module")
def peer() -> Iterator[dict[str, Any]]:
    """Both peer servers on one loop: ``{"loop", "websockets", "aiohttp"}`` (the ports)."""
    loop = PeerLoop()

    async def start() -> tuple[Any, web.AppRunner]:
        server = await ws_serve(ws_handler, "127.0.0.1", 0, max_size=None,
                                process_request=ws_process_request)
        app = web.Application()
        app.router.add_get("/", aiohttp_handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return server, runner

    async def stop(server: Any, runner: web.AppRunner) -> None:
        server.close()
        await server.wait_closed()
        await runner.cleanup()

    server, runner = loop.run(start())
    try:
        yield {"loop": loop, "websockets": server.sockets[0].getsockname()[1],
               "aiohttp": runner.addresses[0][1]}
    finally:
        loop.run(stop(server, runner))
        loop.stop()


@pytest.fixture(autouse=True)
def _fresh_peer_state() -> Iterator[None]:
    """Clear the peers' notes; afterwards, give the peer thread time to close its sockets.

    (The peers' end of a connection closes in their own thread, a moment after
    yieldio's: without the wait, the leak check after each test may count it.)
    """
    peer_state.clear()
    before = open_fds()
    yield
    deadline = time.monotonic() + 3
    while open_fds() > before and time.monotonic() < deadline:
        time.sleep(0.01)


def url(peer: dict[str, Any], name: str = "websockets", path: str = "/") -> str:
    return f"ws://127.0.0.1:{peer[name]}{path}"


async def wait_for(predicate: Callable[[], bool], seconds: float = 3) -> None:
    with yieldio.fail_after(seconds):
        while not predicate():
            await yieldio.sleep(0.01)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def resume_reading(peer: dict[str, Any]) -> None:
    """End the peer's "stop-reading" stall now (its loop is another thread's)."""
    peer["loop"].loop.call_soon_threadsafe(peer_state["resume"].set)


# -- 1, 2: fragments, sizes, bad frames (the yieldio client) ---------------------------------
@pytest.mark.timeout(15)
def test_fragments_with_a_ping_inside_empty_messages_and_the_size_limit(peer) -> None:
    async def main() -> None:
        async with connect_websocket(url(peer)) as ws:
            await ws.send("sizes")
            with yieldio.fail_after(5):
                assert await ws.receive() == "frag-\u00e9-end"  # one message, pong sent
                assert await ws.receive() == ""
                assert await ws.receive() == b""
                assert await ws.receive() == b"\x01" * MiB
                with pytest.raises(WebSocketClosed) as info:
                    await ws.receive()
            assert info.value.code == ws.close_code == 1009
        await wait_for(lambda: bool(peer_state.get("closes")))
        assert peer_state["closes"][0][0] == 1009  # the peer got the code too

    yieldio.run(main)


@pytest.mark.timeout(15)
@pytest.mark.parametrize("command, code", [("bad-utf8", 1007), ("text-then-binary", 1002)])
def test_bad_frames_from_a_peer_server_fail_the_connection(peer, command: str,
                                                           code: int) -> None:
    async def main() -> None:
        async with connect_websocket(url(peer)) as ws:
            await ws.send(command)
            with yieldio.fail_after(3), pytest.raises(WebSocketClosed) as info:
                await ws.receive()
            assert info.value.code == code
        await wait_for(lambda: bool(peer_state.get("closes")))
        assert peer_state["closes"][0][0] == code

    yieldio.run(main)


# -- 4: close codes and reasons, both ways, both peers ---------------------------------------
CLOSES = [(1000, ""), (1001, "going away"), (4000, "f\u00fcr immer \u2713")]


@pytest.mark.timeout(15)
@pytest.mark.parametrize("name", ["websockets", "aiohttp"])
def test_close_codes_and_utf8_reasons_both_ways(peer, name: str) -> None:
    async def main() -> None:
        for code, reason in CLOSES:
            async with connect_websocket(url(peer, name)) as ws:  # the peer closes
                await ws.send(f"close {code} {reason}")
                with yieldio.fail_after(3), pytest.raises(WebSocketClosed):
                    await ws.receive()
                assert (ws.close_code, ws.close_reason) == (code, reason)
            started = time.monotonic()
            async with connect_websocket(url(peer, name)) as ws:  # yieldio closes
                await ws.close(code, reason)
            assert time.monotonic() - started < 2  # no wait for a close timeout
        await wait_for(lambda: len(peer_state.get("closes", [])) == 2 * len(CLOSES))
        assert [(int(c), r) for c, r in peer_state["closes"]] == [
            close for close in CLOSES for _ in range(2)]

    yieldio.run(main)


# -- 4: a peer that vanishes without a Close frame -------------------------------------------
@pytest.mark.timeout(15)
def test_a_peer_server_that_resets_or_drops_the_connection(peer) -> None:
    async def main() -> None:
        before = open_fds()
        for how in ("reset", "eof", "reset", "eof"):
            async with connect_websocket(url(peer)) as ws:
                await ws.send(how)
                with yieldio.fail_after(3), pytest.raises(WebSocketClosed) as info:
                    await ws.receive()
                assert info.value.code == ws.close_code == 1006
                with pytest.raises(WebSocketClosed):
                    await ws.send("after")
        await wait_for(lambda: open_fds() <= before)  # the peer's sockets close too

    yieldio.run(main)


@pytest.mark.timeout(15)
def test_a_websockets_client_that_resets_or_drops_the_connection() -> None:
    seen: list[tuple[int | None, str | None]] = []

    async def app(request: Request) -> None:
        ws = await request.accept_websocket()
        async for message in ws:
            await ws.send(message)
        seen.append((ws.close_code, ws.close_reason))

    def vanish(port: int, how: str) -> None:
        with ws_connect(f"ws://127.0.0.1:{port}/", proxy=None, open_timeout=5) as c:
            c.send("hi")
            assert c.recv(timeout=5) == "hi"
            if how == "reset":
                c.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                c.socket.close()
            else:
                c.socket.shutdown(socket.SHUT_RDWR)

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            await yieldio.sleep(0)
            before = open_fds()
            for how in ("reset", "eof", "reset", "eof"):
                await yieldio.to_thread(vanish, server.port, how)
            await wait_for(lambda: len(seen) == 4)
            await wait_for(lambda: open_fds() <= before)
            assert server.app_errors == 0
        assert seen == [(1006, "connection lost")] * 4

    yieldio.run(main)


# -- 5: backpressure --------------------------------------------------------------------------
@pytest.mark.timeout(20)
def test_a_send_to_a_peer_that_stops_reading_blocks_and_a_cancelled_one_ends_it(peer) -> None:
    # Regression: a send() cancelled part way left the WebSocket looking open
    # (closed False, receive() waiting) while the peer waited for the rest of
    # a frame that could never come.
    async def main() -> None:
        before = open_fds()
        async with connect_websocket(url(peer), ping_interval=None) as ws:
            await ws.send("stop-reading")
            await yieldio.sleep(0.1)
            with yieldio.move_on_after(0.5) as scope:
                await ws.send(b"m" * (50 * MiB))  # far more than the socket buffers
            assert scope.cancelled_caught  # it waited for the peer: nothing buffered
            assert ws.closed and ws.close_code == 1006
            with yieldio.fail_after(1), pytest.raises(WebSocketClosed):
                await ws.receive()
            with pytest.raises(WebSocketClosed):
                await ws.send("more")
            # Closed now, while the block still runs: our socket is gone
            # before the `async with` would have closed it (the peer, in
            # this process, holds its own end until it reads again).
            await wait_for(lambda: open_fds() <= before + 1, 2)
        # The peer reads again, and finds the connection gone.
        resume_reading(peer)
        await wait_for(lambda: bool(peer_state.get("closes")), 5)
        assert peer_state["closes"] == [(1006, "")]
        await wait_for(lambda: open_fds() <= before)

    yieldio.run(main)


@pytest.mark.timeout(20)
def test_a_server_send_cancelled_part_way_ends_the_connection(peer) -> None:
    seen: list[Any] = []

    async def app(request: Request) -> None:
        ws = await request.accept_websocket()
        with yieldio.move_on_after(0.5) as scope:
            await ws.send(b"m" * (50 * MiB))
        seen.append((scope.cancelled_caught, ws.closed, ws.close_code))

    async def stalled_client(port: int) -> Any:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{port}/",
                                          max_msg_size=0) as ws:
                ws._response.connection.transport.pause_reading()
                for _ in range(500):  # until the server's send has given up (at most 5 s)
                    if seen:
                        break
                    await asyncio.sleep(0.01)
                ws._response.connection.transport.resume_reading()
                return (await ws.receive(timeout=5)).type

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            loop: PeerLoop = peer["loop"]
            kind = await yieldio.to_thread(loop.run, stalled_client(server.port))
        assert seen == [(True, True, 1006)]
        assert kind in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)

    yieldio.run(main)


@pytest.mark.timeout(20)
def test_a_receiver_that_does_not_read_slows_a_flooding_peer(peer) -> None:
    async def main() -> None:
        async with connect_websocket(url(peer), ping_interval=None) as ws:
            await ws.send("flood")
            await yieldio.sleep(1)
            stalled_at = peer_state.get("flooded", 0)
            assert 16 <= stalled_at < 400  # 64 KiB each: the queue plus socket buffers
            await yieldio.sleep(0.3)
            assert peer_state.get("flooded", 0) == stalled_at  # the peer waits for us
            for i in range(1000):  # everything arrives, in order, once we read
                with yieldio.fail_after(5):
                    assert await ws.receive() == bytes([i % 256]) * 65536

    yieldio.run(main)


# -- 3: keepalive against peers that never pong -----------------------------------------------
@pytest.mark.timeout(15)
def test_client_keepalive_against_a_peer_server_that_stops_reading(peer) -> None:
    async def main() -> None:
        async with connect_websocket(url(peer), ping_interval=0.2, ping_timeout=0.3,
                                     close_timeout=0.5) as ws:
            await ws.send("stop-reading")
            with yieldio.fail_after(3), pytest.raises(WebSocketClosed) as info:
                await ws.receive()
            assert (info.value.code, info.value.reason) == (1011, "keepalive ping timeout")
        # The peer reads again and finds the connection gone (and its
        # socket closed: the fd check after each test counts it too).
        resume_reading(peer)
        await wait_for(lambda: bool(peer_state.get("closes")), 5)

    yieldio.run(main)


@pytest.mark.timeout(15)
def test_server_keepalive_against_an_aiohttp_client_that_never_pongs(peer) -> None:
    seen: list[Any] = []

    async def app(request: Request) -> None:
        ws = await request.accept_websocket()
        async for message in ws:
            await ws.send(message)
        seen.append((ws.close_code, ws.close_reason))

    async def no_pongs(port: int) -> list[Any]:
        got = []
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{port}/",
                                          autoping=False) as ws:
                await ws.send_str("hi")
                while True:
                    msg = await ws.receive(timeout=5)
                    got.append(msg.type)
                    if msg.type == aiohttp.WSMsgType.CLOSE:
                        return got + [msg.data]

    async def main() -> None:
        limits = Limits(websocket_ping_interval=0.2, websocket_ping_timeout=0.3)
        async with serve(app, "127.0.0.1", 0, limits=limits) as server:
            loop: PeerLoop = peer["loop"]
            got = await yieldio.to_thread(loop.run, no_pongs(server.port))
            await wait_for(lambda: bool(seen))
        assert got[:2] == [aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PING]
        assert got[-1] == 1011
        assert seen == [(1011, "keepalive ping timeout")]

    yieldio.run(main)


# -- 6, 7: handshakes ------------------------------------------------------------------------
@pytest.mark.timeout(15)
def test_a_handshake_refused_by_a_websockets_server(peer) -> None:
    async def main() -> None:
        with pytest.raises(WebSocketRejected) as info:
            async with connect_websocket(url(peer, path="/deny")):
                pass
        assert info.value.status == 403
        assert info.value.body == b"not you\n"
        assert info.value.headers["content-type"].startswith("text/plain")

    yieldio.run(main)


@pytest.mark.timeout(15)
def test_compression_offers_are_declined_and_extra_headers_pass(peer) -> None:
    seen: list[Any] = []

    async def app(request: Request) -> None:
        ws = await request.accept_websocket(subprotocol="v2", headers={"x-served-by": "yieldio"})
        seen.append((request.headers.get("x-token"),
                     request.headers.get("sec-websocket-extensions")))
        async for message in ws:
            await ws.send(message)

    def websockets_client(port: int) -> Any:
        # websockets offers permessage-deflate by default.
        with ws_connect(f"ws://127.0.0.1:{port}/", proxy=None, open_timeout=5,
                        subprotocols=["v1", "v2"],
                        additional_headers={"X-Token": "t1"}) as c:
            c.send("a" * 10_000)
            return (c.subprotocol, c.response.headers.get("x-served-by"),
                    c.response.headers.get("sec-websocket-extensions"),
                    c.recv(timeout=5) == "a" * 10_000)

    async def aiohttp_client(port: int) -> Any:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{port}/", compress=15,
                                          protocols=["v2"],
                                          headers={"X-Token": "t2"}) as ws:
                await ws.send_str("b" * 10_000)
                return ws.protocol, ws.compress, (await ws.receive(timeout=5)).data

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            got = await yieldio.to_thread(websockets_client, server.port)
            assert got == ("v2", "yieldio", None, True)
            loop: PeerLoop = peer["loop"]
            got = await yieldio.to_thread(loop.run, aiohttp_client(server.port))
            assert got == ("v2", 0, "b" * 10_000)  # compress 0: declined
        assert seen[0][0] == "t1" and "permessage-deflate" in seen[0][1]
        assert seen[1][0] == "t2" and "permessage-deflate" in seen[1][1]

    yieldio.run(main)
