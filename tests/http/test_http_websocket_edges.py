"""WebSocket edges against raw peers on real sockets: bad frames, peers that vanish
or stall, rejected and malformed handshakes."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
import wsproto
import wsproto.events as wse

import yieldio
from yieldio.http import (
    Limits,
    ProtocolError,
    Request,
    WebSocketClosed,
    WebSocketRejected,
    connect_websocket,
    serve,
)

HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
             + base64.b64encode(os.urandom(16)) + b"\r\n\r\n")


async def read_until_closed(stream: yieldio.Stream) -> bytes:
    out = bytearray()
    while chunk := await stream.read():
        out += chunk
    return bytes(out)


@pytest.mark.parametrize("frame, code", [
    (b"\x81\x02hi", 1002),                               # a client frame must be masked
    (b"\x81\x82\0\0\0\0\xff\xfe", 1007),                 # text that is not UTF-8
])
def test_a_bad_frame_fails_the_connection_without_waiting_for_the_peer(frame: bytes,
                                                                       code: int) -> None:
    seen: list[tuple] = []

    async def app(request: Request) -> None:
        ws = await request.accept_websocket()
        async for _ in ws:
            pass
        seen.append((ws.close_code, ws.closed))

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                await stream.write(HANDSHAKE + frame)
                with yieldio.fail_after(2):  # the close timeout is 5 s
                    out = await read_until_closed(stream)
        close_frame = out.split(b"\r\n\r\n", 1)[1]
        assert close_frame[0] == 0x88 and int.from_bytes(close_frame[2:4], "big") == code
        assert seen == [(code, True)]

    yieldio.run(main)


async def ws_peer(stream: yieldio.Stream) -> wsproto.WSConnection:
    """Do the server side of a handshake on ``stream`` by hand."""
    conn = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    while True:
        conn.receive_data(await stream.read())
        if any(isinstance(e, wse.Request) for e in conn.events()):
            await stream.write(conn.send(wse.AcceptConnection()))
            return conn


def test_a_server_that_drops_the_connection_without_a_close_frame() -> None:
    async def handler(stream: yieldio.Stream) -> None:
        conn = await ws_peer(stream)
        await stream.write(conn.send(wse.TextMessage(data="last words")))

    async def main() -> None:
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            async with connect_websocket(f"ws://127.0.0.1:{server.port}/") as ws:
                assert await ws.receive() == "last words"
                with pytest.raises(WebSocketClosed) as info:
                    await ws.receive()
                assert (ws.close_code, ws.close_reason) == (1006, "connection lost")
                assert info.value.code == 1006

    yieldio.run(main)


def test_a_server_that_vanishes_during_a_keepalive_ping() -> None:
    async def handler(stream: yieldio.Stream) -> None:
        await ws_peer(stream)
        await stream.read()  # the ping: never answered, the connection closed

    async def main() -> None:
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            async with connect_websocket(url, ping_interval=0.05, ping_timeout=5) as ws:
                with yieldio.fail_after(2):
                    with pytest.raises(WebSocketClosed):
                        await ws.receive()
                    with pytest.raises(WebSocketClosed):
                        await ws.ping(b"x")
                assert ws.close_code == 1006

    yieldio.run(main)


def test_sending_to_a_peer_that_resets_mid_message_is_websocket_closed() -> None:
    async def handler(stream: yieldio.Stream) -> None:
        await ws_peer(stream)
        await yieldio.sleep(0.1)  # not reading: the big message fills the buffers
        import socket
        import struct
        stream.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                   struct.pack("ii", 1, 0))

    async def main() -> None:
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            async with connect_websocket(url, ping_interval=None) as ws:
                with yieldio.fail_after(5), pytest.raises(WebSocketClosed) as info:
                    await ws.send(b"m" * (64 << 20))
                assert info.value.code == 1006 and ws.closed

    yieldio.run(main)


def test_closing_with_unread_messages_does_not_wait_for_the_reader() -> None:
    async def app(request: Request) -> None:
        ws = await request.accept_websocket()
        for i in range(40):  # more than the client's queue holds
            await ws.send(str(i))
        await ws.receive()

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            async with connect_websocket(f"ws://127.0.0.1:{server.port}/") as ws:
                await yieldio.sleep(0.1)  # the reader is blocked on the full queue
                with yieldio.fail_after(2):  # the close timeout is 5 s
                    await ws.close(1000, "enough")
                assert repr(ws) == "<WebSocket client / closed 1000>"

    yieldio.run(main)


def test_websocket_client_argument_and_body_errors() -> None:
    async def app(request: Request) -> None:
        ws = await request.accept_websocket()
        await ws.receive()

    async def main() -> None:
        with pytest.raises(ValueError, match="no host"):
            async with connect_websocket("ws:///path"):
                pass
        async with serve(app, "127.0.0.1", 0) as server:
            with pytest.raises(KeyError):  # the block's own error, not an ExceptionGroup
                async with connect_websocket(f"ws://127.0.0.1:{server.port}/") as ws:
                    assert repr(ws) == "<WebSocket client / open>"
                    with pytest.raises(TypeError, match="str or bytes"):
                        await ws.send(42)  # type: ignore[arg-type]
                    raise KeyError("mine")

    yieldio.run(main)


@pytest.mark.parametrize("answer, error, match", [
    (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", WebSocketRejected, "403"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Accept: wrong\r\n\r\n", ProtocolError, "bad WebSocket handshake"),
    (b"HTTP/1.1 101 Swi", ProtocolError, "bad WebSocket handshake"),
    (b"", ProtocolError, "bad WebSocket handshake"),  # closed without an answer
])
def test_bad_handshake_answers(answer: bytes, error: type, match: str) -> None:
    async def handler(stream: yieldio.Stream) -> None:
        await stream.read_until(b"\r\n\r\n")
        await stream.write(answer)

    async def main() -> None:
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            with pytest.raises(error, match=match):
                async with connect_websocket(f"ws://127.0.0.1:{server.port}/"):
                    pass

    yieldio.run(main)


def test_a_ping_payload_that_cannot_be_sent_is_refused_and_remembers_nothing() -> None:
    async def app(request: Request) -> None:
        ws = await request.accept_websocket()
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            async with connect_websocket(f"ws://127.0.0.1:{server.port}/") as ws:
                with pytest.raises(ValueError, match="125 bytes"):
                    await ws.ping(b"x" * 126)
                with pytest.raises(TypeError, match="bytes"):
                    await ws.ping("text")  # type: ignore[arg-type]
                assert ws._pongs == {}  # no waiter left behind for a pong that never comes
                with yieldio.fail_after(2):
                    await ws.ping(b"y" * 125)  # the largest allowed works
                    await ws.send("still open")
                    assert await ws.receive() == "still open"

    yieldio.run(main)


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
                await stream.write(HANDSHAKE)
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


# -- a send stuck on a peer that reads nothing ---------------------------------------------
def test_keepalive_giving_up_ends_a_client_send_stuck_on_a_peer_that_reads_nothing() -> None:
    # Regression: keepalive closed the WebSocket (1011) but the stuck send()
    # went on waiting for ever: nothing ended its write.
    done = yieldio.Event()

    async def handler(stream: yieldio.Stream) -> None:
        await ws_peer(stream)
        await done.wait()  # reads nothing more: neither the message nor the pings

    async def main() -> None:
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            async with connect_websocket(url, ping_interval=0.1, ping_timeout=0.1,
                                         close_timeout=0.5) as ws:
                with yieldio.fail_after(3), pytest.raises(WebSocketClosed) as info:
                    await ws.send(b"m" * (16 << 20))  # more than the socket buffers hold
                assert (info.value.code, info.value.reason) == (1011, "keepalive ping timeout")
                with pytest.raises(WebSocketClosed):
                    await ws.send("after")
            done.set()

    yieldio.run(main)


def test_keepalive_giving_up_ends_a_server_send_at_once_with_1011() -> None:
    # Regression: the server's stuck send waited close_timeout (5 s) more,
    # and then reported 1006 instead of the keepalive's 1011.
    seen: list = []
    ended = yieldio.Event()

    async def app(request: Request) -> None:
        ws = await request.accept_websocket()
        try:
            await ws.send(b"m" * (16 << 20))
        except WebSocketClosed as exc:
            seen.append((exc.code, exc.reason))
        finally:
            ended.set()

    async def main() -> None:
        limits = Limits(write_timeout=60, websocket_ping_interval=0.1,
                        websocket_ping_timeout=0.1)
        async with serve(app, "127.0.0.1", 0, limits=limits) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                await stream.write(HANDSHAKE)  # and then reads nothing
                with yieldio.fail_after(3):  # the close timeout is 5 s
                    await ended.wait()
        assert seen == [(1011, "keepalive ping timeout")]

    yieldio.run(main)


def test_client_write_timeout() -> None:
    done = yieldio.Event()

    async def handler(stream: yieldio.Stream) -> None:
        await ws_peer(stream)
        await done.wait()

    async def main() -> None:
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            async with connect_websocket(url, ping_interval=None, write_timeout=0.2,
                                         close_timeout=0.5) as ws:
                with yieldio.fail_after(3), pytest.raises(WebSocketClosed) as info:
                    await ws.send(b"m" * (16 << 20))
                assert (info.value.code, info.value.reason) == (1011, "write timeout")
                assert ws.closed
            done.set()
        with pytest.raises(ValueError, match="write_timeout"):
            async with connect_websocket(url, write_timeout=0):
                pass

    yieldio.run(main)


def test_accepting_a_subprotocol_the_client_did_not_offer_is_a_clear_error() -> None:
    # Regression: wsproto's "unexpected subprotocol" LocalProtocolError escaped instead.
    errors: list[str] = []

    async def app(request: Request) -> None:
        try:
            await request.accept_websocket(subprotocol="v9")
        except ValueError as exc:
            errors.append(str(exc))
            raise

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            for offered in (["v1", "v2"], None):
                with pytest.raises(WebSocketRejected) as info:
                    async with connect_websocket(url, subprotocols=offered):
                        pass
                assert info.value.status == 500
        assert errors == [
            "subprotocol 'v9' was not offered by the client (it offered ['v1', 'v2']): "
            "pick one of those, or None",
            "subprotocol 'v9' was not offered by the client (it offered none): "
            "pick one of those, or None"]

    yieldio.run(main)


# -- big messages go out in fragments ------------------------------------------------------
def _ws_over_memory(client: bool):
    from wsproto.connection import Connection, ConnectionType

    from yieldio.http import WebSocket
    from yieldio.testing import memory_stream_pair

    ours, theirs = memory_stream_pair()
    kind = ConnectionType.CLIENT if client else ConnectionType.SERVER
    return WebSocket(ours, Connection(kind), client=client), theirs


@pytest.mark.parametrize("client", [True, False])
def test_a_big_send_takes_little_memory_beyond_the_message(client: bool) -> None:
    # One wsproto event built the whole frame (and a client's masked copy):
    # a 50 MiB send needed three to four times its size.
    import tracemalloc

    message = b"m" * (32 << 20)

    async def main() -> None:
        ws, theirs = _ws_over_memory(client)
        frames = wsproto.connection.Connection(
            wsproto.ConnectionType.SERVER if client else wsproto.ConnectionType.CLIENT)
        received = 0
        finished = False

        async def peer() -> None:
            nonlocal received, finished
            while not finished:
                frames.receive_data(await theirs.receive_some(1 << 20))
                for event in frames.events():
                    received += len(event.data)
                    finished = event.message_finished

        async with yieldio.TaskGroup() as tg:
            tg.spawn(peer)
            tracemalloc.start()
            try:
                await ws.send(message)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        assert received == len(message) and finished
        assert peak < 8 << 20, f"{peak / (1 << 20):.1f} MiB to send 32 MiB"

    yieldio.run(main)


def test_a_big_message_arrives_whole_and_a_text_one_is_cut_between_characters() -> None:
    text = "\u00e9\u2713" * (400 * 1024)  # 2.8 MiB of UTF-8 in 3 fragments

    async def app(request: Request):
        ws = await request.accept_websocket()
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        limits = Limits(max_websocket_message=8 << 20)
        async with serve(app, "127.0.0.1", 0, limits=limits) as server:
            async with connect_websocket(f"ws://127.0.0.1:{server.port}/",
                                         max_message_size=8 << 20) as ws:
                with yieldio.fail_after(10):
                    await ws.send(text)
                    assert await ws.receive() == text
                    await ws.send(text.encode())
                    assert await ws.receive() == text.encode()

    yieldio.run(main)


def test_cancelled_between_fragments_ends_the_connection() -> None:
    # Whole fragments went out, the message did not finish: nothing else can
    # follow on this connection, so it ends (1006) rather than look open.
    async def main() -> None:
        ws, theirs = _ws_over_memory(client=True)
        with yieldio.move_on_after(0.05):
            # The peer reads nothing: the send stops at the memory pipe's buffer.
            await ws.send(b"x" * (4 << 20))
        assert ws.closed and ws.close_code == 1006
        with pytest.raises(WebSocketClosed):
            await ws.send("more")

    yieldio.run(main, clock=yieldio.testing.VirtualClock(autojump=True))


def test_a_server_that_resets_during_the_handshake_is_a_protocol_error() -> None:
    # A FIN there was a ProtocolError, a reset a bare ConnectionResetError
    # that "except HTTPError" missed.
    import socket
    import struct

    async def handler(stream: yieldio.Stream) -> None:
        await stream.read(65536)  # the handshake request
        sock = stream.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()

    async def main() -> None:
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            with pytest.raises(ProtocolError, match="failed during the WebSocket handshake"):
                async with connect_websocket(f"ws://127.0.0.1:{server.port}/"):
                    pass

    yieldio.run(main)


def test_a_close_code_from_a_protocol_error_is_a_plain_int() -> None:
    # wsproto's CloseReason enum leaked into close_code for a bad frame.
    async def handler(stream: yieldio.Stream) -> None:
        await ws_peer(stream)
        await stream.write(b"\x82\x82\x00\x00\x00\x00ab")  # a masked frame from a server
        await read_until_closed(stream)

    async def main() -> None:
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            async with connect_websocket(f"ws://127.0.0.1:{server.port}/") as ws:
                with yieldio.fail_after(5), pytest.raises(WebSocketClosed):
                    await ws.receive()
                assert type(ws.close_code) is int and ws.close_code == 1002

    yieldio.run(main)


# -- big messages, pings and closes at once (found by seeded stress tests) -------------------
@pytest.mark.parametrize("seed", [None, 0, 1, 3])
def test_two_peers_sending_big_messages_under_keepalive_do_not_deadlock(seed) -> None:
    # A reader answered a ping by waiting for its side's send lock, held for
    # a whole big message by a send blocked on a peer whose reader waited the
    # same way: both stalled until keepalive (1011) or write_timeout.
    size, count = 4_000_000, 10
    got = {}

    async def exchange(ws: Any, name: str) -> None:
        async def send() -> None:
            for _ in range(count):
                await ws.send(b"x" * size)

        async def receive() -> None:
            n = 0
            while n < count:
                assert len(await ws.receive()) == size
                n += 1
            got[name] = n

        async with yieldio.TaskGroup() as tg:
            tg.spawn(send)
            tg.spawn(receive)

    async def app(request: Request) -> None:
        await exchange(await request.accept_websocket(), "server")

    async def main() -> None:
        limits = Limits(max_websocket_message=size, websocket_ping_interval=0.05,
                        websocket_ping_timeout=3)
        with yieldio.fail_after(20):
            async with serve(app, "127.0.0.1", 0, limits=limits) as server:
                async with connect_websocket(f"ws://127.0.0.1:{server.port}/",
                                             max_message_size=size, ping_interval=0.05,
                                             ping_timeout=3) as ws:
                    await exchange(ws, "client")
        assert got == {"client": count, "server": count}

    yieldio.run(main, seed=seed)


@pytest.mark.parametrize("closer", ["client", "server"])
def test_close_during_a_big_send_sends_its_close_frame(closer: str) -> None:
    # close() set the close code before its turn to send: the send under way
    # took that for a lost connection between two fragments and aborted it,
    # so the peer saw 1006 instead of the code, and no Close frame went out.
    seen = {}
    peer_ready = yieldio.Event()

    async def closing_side(ws: Any) -> None:
        await peer_ready.wait()
        for _ in range(20):  # more than the peer queues unreceived: its reader pauses
            await ws.send(b"small")
        async with yieldio.TaskGroup() as tg:
            async def big_send() -> None:
                with pytest.raises(WebSocketClosed):
                    await ws.send(b"m" * (20 << 20))  # the peer does not read: it waits

            tg.spawn(big_send)
            await yieldio.testing.wait_all_tasks_blocked(0.05)
            await ws.close(1000, "bye")
        seen["closer"] = (ws.close_code, ws.close_reason)

    async def passive_side(ws: Any) -> None:
        peer_ready.set()
        await yieldio.sleep(0.3)  # not receiving for a while: the big send blocks
        with pytest.raises(WebSocketClosed):
            while True:
                await ws.receive()
        seen["peer"] = (ws.close_code, ws.close_reason)

    async def app(request: Request) -> None:
        ws = await request.accept_websocket()
        await (closing_side if closer == "server" else passive_side)(ws)

    async def main() -> None:
        with yieldio.fail_after(15):
            limits = Limits(max_websocket_message=64 << 20)
            async with serve(app, "127.0.0.1", 0, limits=limits) as server:
                async with connect_websocket(f"ws://127.0.0.1:{server.port}/",
                                             max_message_size=64 << 20) as ws:
                    await (closing_side if closer == "client" else passive_side)(ws)
                    with yieldio.move_on_after(5):
                        while len(seen) < 2:
                            await yieldio.sleep(0.01)
        assert seen == {"closer": (1000, "bye"), "peer": (1000, "bye")}

    yieldio.run(main)


@pytest.mark.parametrize("seed", [1, 3, 4, 8])
@pytest.mark.parametrize("next_message", [b"next", "next"])
def test_a_big_send_cancelled_before_its_first_byte_leaves_the_connection_usable(
        seed, next_message) -> None:
    # wsproto had begun the message (its first fragment made, not a byte
    # sent) when the cancel came: the next binary message went out as a
    # continuation (the peer closed with 1002), a text one raised TypeError.
    got = []

    async def app(request: Request) -> None:
        ws = await request.accept_websocket()
        async for message in ws:
            got.append(message)

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            async with connect_websocket(f"ws://127.0.0.1:{server.port}/",
                                         ping_interval=None) as ws:
                scope = yieldio.CancelScope()

                async def big_send() -> None:
                    with scope:
                        await ws.send(b"B" * 300_000)

                async def cancel() -> None:
                    scope.cancel()

                async with yieldio.TaskGroup() as tg:
                    tg.spawn(big_send)
                    tg.spawn(cancel)
                if ws.closed:  # cut off part way: 1006, as documented
                    assert ws.close_code == 1006
                    return
                await ws.send(next_message)
                with yieldio.fail_after(5):
                    while next_message not in got:
                        await yieldio.sleep(0.005)
                assert got[-1] == next_message and all(len(m) == 300_000 for m in got[:-1])

    yieldio.run(main, seed=seed)
