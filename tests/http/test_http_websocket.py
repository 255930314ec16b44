"""WebSocket server and client, against the ``websockets`` library and each other."""

from __future__ import annotations

import threading

import pytest
import websockets.exceptions
import websockets.sync.client
import websockets.sync.server

import yieldio
from yieldio.http import (
    ConnectError,
    HTTPException,
    Limits,
    Request,
    Response,
    Router,
    WebSocketClosed,
    WebSocketRejected,
    connect_websocket,
    serve,
)


def ws_connect(url: str, **kwargs):
    """The websockets library's sync client (run it in a worker thread)."""
    return websockets.sync.client.connect(url, proxy=None, open_timeout=5, close_timeout=5,
                                          **kwargs)


def make_router(log: list, gate: yieldio.UniversalQueue | None = None) -> Router:
    router = Router()

    @router.websocket("/echo")
    async def echo(request: Request) -> Response | None:
        ws = await request.accept_websocket()
        async for message in ws:
            await ws.send(message)
        log.append(("closed", ws.close_code, ws.close_reason))
        return None

    @router.websocket("/bye")
    async def bye(request: Request) -> None:
        ws = await request.accept_websocket()
        await ws.send("going")
        await ws.close(4000, "bye now")
        log.append(("server closed", ws.close_code))

    @router.websocket("/busy")
    async def busy(request: Request) -> None:
        ws = await request.accept_websocket()
        assert gate is not None
        await gate.get()  # busy, not reading: pings must still be answered
        await ws.send("done")
        log.append("busy done")
        await ws.receive()

    @router.websocket("/crash")
    async def crash(request: Request) -> None:
        ws = await request.accept_websocket()
        await ws.receive()
        raise RuntimeError("handler bug")

    @router.websocket("/private")
    async def private(request: Request) -> Response:
        if request.headers.get("authorization") != "Bearer ok":
            return Response(403, body="forbidden")
        ws = await request.accept_websocket(subprotocol="chat.v2")
        await ws.send(f"hello, you speak {ws.subprotocol}")
        await ws.receive()
        return Response(200)  # ignored after the handshake

    @router.get("/plain")
    async def plain(request: Request) -> None:
        await request.accept_websocket()  # not a WebSocket request: a 400 for the client

    return router


# -- the websockets library's client against the yieldio server ------------------------------------
def test_websockets_client_echo_and_close() -> None:
    log: list = []

    def client(port: int) -> list:
        with ws_connect(f"ws://127.0.0.1:{port}/echo") as ws:
            ws.send("hello")
            a = ws.recv(timeout=5)
            ws.send(b"\x00\x01binary")
            b = ws.recv(timeout=5)
            big = "x" * 300_000  # fragmented by nobody, but several TCP reads
            ws.send(big)
            c = ws.recv(timeout=5)
            ws.close(1000, "done")
        return [a, b, c == big]

    async def main() -> None:
        async with serve(make_router(log), "127.0.0.1", 0) as server:
            got = await yieldio.to_thread(client, server.port)
            assert got == ["hello", b"\x00\x01binary", True]
            with yieldio.fail_after(5):
                while not log:
                    await yieldio.sleep(0.01)
        assert log == [("closed", 1000, "done")]

    yieldio.run(main)


def test_server_initiated_close_with_code_and_reason() -> None:
    log: list = []

    def client(port: int) -> tuple:
        with ws_connect(f"ws://127.0.0.1:{port}/bye") as ws:
            first = ws.recv(timeout=5)
            with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
                ws.recv(timeout=5)
            return first, info.value.rcvd.code, info.value.rcvd.reason

    async def main() -> None:
        async with serve(make_router(log), "127.0.0.1", 0) as server:
            assert await yieldio.to_thread(client, server.port) == ("going", 4000, "bye now")
        assert log == [("server closed", 4000)]

    yieldio.run(main)


def test_pings_are_answered_while_the_handler_is_busy() -> None:
    log: list = []

    gate = yieldio.UniversalQueue()

    def client(port: int) -> str:
        with ws_connect(f"ws://127.0.0.1:{port}/busy") as ws:
            pong = ws.ping(b"are you there")
            assert pong.wait(timeout=10), "no pong while the handler was busy"
            assert "busy done" not in log  # answered before the handler did anything
            gate.put("go on")
            return ws.recv(timeout=10)

    async def main() -> None:
        async with serve(make_router(log, gate), "127.0.0.1", 0) as server:
            assert await yieldio.to_thread(client, server.port) == "done"

    yieldio.run(main)


@pytest.mark.parametrize("kind", ["bytes", "fragmented", "text"])
def test_message_size_limit_closes_with_1009(kind: str) -> None:
    log: list = []

    def client(port: int) -> int:
        with ws_connect(f"ws://127.0.0.1:{port}/echo") as ws:
            ws.send("small")
            assert ws.recv(timeout=5) == "small"
            # The server may close while we are still sending: either call can raise.
            with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
                if kind == "fragmented":  # 3 frames of 400 bytes: the total is what counts
                    ws.send(iter([b"a" * 400, b"b" * 400, b"c" * 400]))
                elif kind == "text":  # 400 characters, 1,200 bytes of UTF-8: bytes count
                    ws.send("\u20ac" * 400)
                else:
                    ws.send(b"z" * 1200)
                ws.recv(timeout=5)
            return info.value.rcvd.code

    async def main() -> None:
        limits = Limits(max_websocket_message=1000)
        async with serve(make_router(log), "127.0.0.1", 0, limits=limits) as server:
            assert await yieldio.to_thread(client, server.port) == 1009
            with yieldio.fail_after(5):
                while not log:
                    await yieldio.sleep(0.01)
        assert log[0][:2] == ("closed", 1009)

    yieldio.run(main)


def test_handler_exception_closes_with_1011(http_errors) -> None:
    def client(port: int) -> int:
        with ws_connect(f"ws://127.0.0.1:{port}/crash") as ws:
            ws.send("trigger")
            with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
                ws.recv(timeout=5)
            return info.value.rcvd.code

    async def main() -> None:
        async with serve(make_router([]), "127.0.0.1", 0) as server:
            assert await yieldio.to_thread(client, server.port) == 1011
            assert server.app_errors == 1

    yieldio.run(main)
    assert any(r.exc_info and "handler bug" in str(r.exc_info[1]) for r in http_errors.records)


def test_rejected_handshake_and_subprotocol() -> None:
    def client(port: int) -> tuple:
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            ws_connect(f"ws://127.0.0.1:{port}/private")
        status = info.value.response.status_code
        with ws_connect(f"ws://127.0.0.1:{port}/private", subprotocols=["chat.v1", "chat.v2"],
                        additional_headers={"Authorization": "Bearer ok"}) as ws:
            return status, ws.subprotocol, ws.recv(timeout=5)

    async def main() -> None:
        async with serve(make_router([]), "127.0.0.1", 0) as server:
            got = await yieldio.to_thread(client, server.port)
        assert got == (403, "chat.v2", "hello, you speak chat.v2")

    yieldio.run(main)


# -- the yieldio client ---------------------------------------------------------------------------
def test_yieldio_client_against_websockets_server() -> None:
    def handler(conn) -> None:
        for message in conn:
            conn.send(message if isinstance(message, bytes) else message.upper())

    server = websockets.sync.server.serve(handler, "127.0.0.1", 0, subprotocols=["v1"])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.socket.getsockname()[1]

    async def main() -> None:
        url = f"ws://127.0.0.1:{port}/any?x=1"
        async with connect_websocket(url, subprotocols=["v1"]) as ws:
            assert ws.subprotocol == "v1"
            await ws.send("hello")
            assert await ws.receive() == "HELLO"
            await ws.send(b"\xff\x00")
            assert await ws.receive() == b"\xff\x00"
            with yieldio.fail_after(5):
                await ws.ping()  # the server's pong comes back
            big = "y" * 200_000
            await ws.send(big)
            assert await ws.receive() == big.upper()
            await ws.close(1000, "thanks")
            assert ws.closed and ws.close_code == 1000
            with pytest.raises(WebSocketClosed):
                await ws.send("too late")

    try:
        yieldio.run(main)
    finally:
        server.shutdown()
        thread.join(5)


def test_yieldio_client_sees_the_servers_close() -> None:
    def handler(conn) -> None:
        conn.send("last words")
        conn.close(4001, "enough")

    server = websockets.sync.server.serve(handler, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.socket.getsockname()[1]

    async def main() -> None:
        async with connect_websocket(f"ws://127.0.0.1:{port}/") as ws:
            messages = [m async for m in ws]  # ends at the close
            assert messages == ["last words"]
            assert (ws.close_code, ws.close_reason) == (4001, "enough")
            with pytest.raises(WebSocketClosed) as info:
                await ws.receive()
            assert info.value.code == 4001

    try:
        yieldio.run(main)
    finally:
        server.shutdown()
        thread.join(5)


def test_yieldio_client_and_server_together(server_context, client_context) -> None:
    log: list = []

    async def main() -> None:
        async with serve(make_router(log), "127.0.0.1", 0, ssl=server_context) as server:
            base = f"wss://localhost:{server.port}"
            async with connect_websocket(base + "/echo", ssl=client_context) as ws:
                for i in range(20):
                    await ws.send(f"m{i}")
                assert [await ws.receive() for _ in range(20)] == [f"m{i}" for i in range(20)]
            assert ws.close_code == 1000
            with pytest.raises(WebSocketRejected) as info:
                async with connect_websocket(base + "/private", ssl=client_context):
                    pass
            assert info.value.status == 403 and info.value.body == b"forbidden"
            with pytest.raises(WebSocketRejected) as info:
                async with connect_websocket(base + "/nowhere", ssl=client_context):
                    pass
            assert info.value.status == 404
            async with connect_websocket(base + "/private", ssl=client_context,
                                         subprotocols=["chat.v2"],
                                         headers={"authorization": "Bearer ok"}) as ws:
                assert await ws.receive() == "hello, you speak chat.v2"
        with yieldio.fail_after(5):
            while len(log) < 1:
                await yieldio.sleep(0.01)
        assert log[0] == ("closed", 1000, "")

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


def test_server_shutdown_sends_going_away() -> None:
    async def main() -> None:
        seen: list = []
        echoed = yieldio.Event()

        async def client(port: int) -> None:
            async with connect_websocket(f"ws://127.0.0.1:{port}/echo") as ws:
                await ws.send("ping")
                seen.append(await ws.receive())
                echoed.set()
                seen.append([m async for m in ws])  # ends when the server closes
                seen.append(ws.close_code)

        async with yieldio.TaskGroup() as tg:
            async with serve(make_router([]), "127.0.0.1", 0) as server:
                tg.spawn(client, server.port)
                await echoed.wait()
                server.close()
        assert seen == ["ping", [], 1001]

    yieldio.run(main)


def test_connect_errors() -> None:
    async def main() -> None:
        with pytest.raises(ConnectError, match=r"^cannot connect to 127\.0\.0\.1:1: Connection refused$"):
            async with connect_websocket("ws://127.0.0.1:1/"):
                pass
        with pytest.raises(ValueError):
            async with connect_websocket("http://127.0.0.1/"):
                pass

    yieldio.run(main)


def test_accept_websocket_on_a_plain_request_is_a_400() -> None:
    async def main() -> None:
        async with serve(make_router([]), "127.0.0.1", 0) as server:
            from yieldio.http import Client

            async with Client() as client:
                r = await client.get(f"http://127.0.0.1:{server.port}/plain")
        assert r.status == 400
        assert isinstance(HTTPException(400), Exception)

    yieldio.run(main)


def test_handshake_timeout() -> None:
    from yieldio.http import Timeout

    async def mute(stream: yieldio.Stream) -> None:
        await yieldio.sleep(5)  # accepts the connection, never answers

    async def main() -> None:
        async with yieldio.serve_tcp(mute, "127.0.0.1", 0) as server:
            with pytest.raises(Timeout):
                async with connect_websocket(f"ws://127.0.0.1:{server.port}/", timeout=0.2):
                    pass

    yieldio.run(main)


def test_close_refuses_codes_and_reasons_that_cannot_be_sent() -> None:
    # 1005, 1006 and 1015 are reserved for reporting (never sent), codes
    # outside 1000-4999 are invalid, a reason is at most 123 bytes of UTF-8:
    # each is a ValueError before anything is sent (wsproto would otherwise
    # send 1000 instead, or a frame the peer rejects as a protocol error).
    seen: list = []

    async def app(request: Request) -> None:
        ws = await request.accept_websocket()
        async for _ in ws:
            pass
        seen.append((ws.close_code, ws.close_reason))

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            async with connect_websocket(f"ws://127.0.0.1:{server.port}/") as ws:
                for code in (999, 1004, 1005, 1006, 1015, 2000, 5000):
                    with pytest.raises(ValueError, match="close code"):
                        await ws.close(code)
                with pytest.raises(ValueError, match="123 bytes"):
                    await ws.close(1000, "é" * 62)
                assert not ws.closed
                await ws.close(4000, "é" * 61)
            with yieldio.fail_after(5):
                while not seen:
                    await yieldio.sleep(0.01)
        assert seen == [(4000, "é" * 61)]

    yieldio.run(main)


def test_a_receive_loop_ended_by_the_clients_close_is_not_an_application_error(
        http_errors) -> None:
    codes = []
    done = yieldio.Event()

    async def echo_forever(request: Request) -> None:
        ws = await request.accept_websocket()
        try:
            while True:  # the common loop: ends with WebSocketClosed
                await ws.send(await ws.receive())
        finally:
            codes.append(ws.close_code)
            done.set()

    def client(port: int) -> str:
        with ws_connect(f"ws://127.0.0.1:{port}/") as ws:
            ws.send("hi")
            return ws.recv(timeout=5)

    async def main() -> None:
        async with serve(echo_forever, "127.0.0.1", 0) as server:
            assert await yieldio.to_thread(client, server.port) == "hi"
            with yieldio.fail_after(5):
                await done.wait()
            assert server.app_errors == 0

    yieldio.run(main)
    assert codes == [1000] and type(codes[0]) is int
    assert not [r for r in http_errors.records if r.levelname in ("ERROR", "CRITICAL")]
