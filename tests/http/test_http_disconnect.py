"""The server noticing a client that goes away while its request is handled:
``Request.is_disconnected()``, ``Request.wait_disconnected()`` and
``serve(..., cancel_on_disconnect=True)``, against stdlib sockets on 127.0.0.1.

Every wait is bounded (``fail_after``, socket timeouts); file descriptors are
checked after every test by the ``no_leaks`` fixture of tests/conftest.py.
"""

from __future__ import annotations

import logging
import socket
import struct

import httpx
import pytest

import yieldio
from yieldio.http import Limits, Request, Response, serve

GET = b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n"


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def rst_close(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0) instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _recv_until_closed(sock: socket.socket) -> bytes:
    out = bytearray()
    while chunk := sock.recv(65536):  # (a 5 s socket timeout bounds each recv)
        out += chunk
    return bytes(out)


async def recv_until_closed(sock: socket.socket) -> bytes:
    return await yieldio.to_thread(_recv_until_closed, sock)  # type: ignore[no-any-return]


def _recv_bodies(sock: socket.socket, n: int) -> list[bytes]:
    """The bodies of ``n`` responses (each with a Content-Length), in order."""
    buf = b""
    bodies = []
    while len(bodies) < n:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, f"closed after {len(bodies)} responses"
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(buf) < length:
            chunk = sock.recv(65536)
            assert chunk, "closed in a body"
            buf += chunk
        bodies.append(buf[:length])
        buf = buf[length:]
    return bodies


async def recv_bodies(sock: socket.socket, n: int) -> list[bytes]:
    return await yieldio.to_thread(_recv_bodies, sock, n)  # type: ignore[no-any-return]


async def wait_until(predicate, seconds: float = 5) -> None:
    """Poll a condition on the server's state, bounded."""
    with yieldio.fail_after(seconds):
        while not predicate():
            await yieldio.sleep(0.005)


class LongPoll:
    """An application whose ``/wait`` long-polls until released or the client leaves."""

    def __init__(self) -> None:
        self.started = yieldio.Event()
        self.release = yieldio.Event()
        self.outcome: list[str] = []
        self.done = yieldio.Event()

    async def __call__(self, request: Request) -> Response:
        if request.path != "/wait":
            return Response.text(request.path)
        await request.body()
        async with yieldio.TaskGroup() as tg:
            async def client_left() -> None:
                await request.wait_disconnected()
                self.outcome.append("disconnected")
                tg.cancel()

            async def released() -> None:
                await self.release.wait()
                self.outcome.append("released")
                tg.cancel()

            tg.spawn(client_left)
            tg.spawn(released)
            self.started.set()
        self.done.set()
        return Response.text("released")


# -- wait_disconnected ------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_long_poll_learns_at_once_that_its_client_closed(how: str) -> None:
    app = LongPoll()

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            sock = connect(server.port)
            sock.sendall(GET % b"wait")
            with yieldio.fail_after(5):
                await app.started.wait()
            if how == "reset":
                rst_close(sock)
            else:
                sock.close()
            with yieldio.fail_after(5):
                await app.done.wait()
            assert app.outcome == ["disconnected"]
            await wait_until(lambda: server.connections == 0)
            assert server.app_errors == 0

    yieldio.run(main)


def test_a_post_long_poll_with_a_chunked_body_sees_the_close_after_reading_it() -> None:
    app = LongPoll()

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            sock = connect(server.port)
            sock.sendall(b"POST /wait HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n0\r\n\r\n")
            with yieldio.fail_after(5):
                await app.started.wait()
            sock.close()
            with yieldio.fail_after(5):
                await app.done.wait()
            assert app.outcome == ["disconnected"]

    yieldio.run(main)


def test_a_half_close_counts_as_gone_and_a_response_returned_anyway_is_still_sent() -> None:
    # As in uvicorn: shutdown(SHUT_WR) after the request is a disconnect. The
    # client can still read, so what the handler returns reaches it; then the
    # server closes instead of waiting for another request.
    async def app(request: Request) -> Response:
        with yieldio.fail_after(5):
            await request.wait_disconnected()
        assert request.is_disconnected()
        return Response.text("you left")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            sock = connect(server.port)
            with sock:
                sock.sendall(GET % b"")
                sock.shutdown(socket.SHUT_WR)
                out = await recv_until_closed(sock)
            assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"you left")
            assert server.app_errors == 0

    yieldio.run(main)


def test_a_pipelined_request_read_by_the_watch_is_not_lost() -> None:
    app = LongPoll()

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            sock = connect(server.port)
            with sock:
                sock.sendall(GET % b"wait")
                with yieldio.fail_after(5):
                    await app.started.wait()
                sock.sendall(GET % b"second")  # while the watch is reading
                conn = next(iter(server._conns))
                await wait_until(lambda: b"/second" in conn.h11.trailing_data[0])
                app.release.set()
                assert await recv_bodies(sock, 2) == [b"released", b"/second"]
                sock.sendall(GET % b"third")  # kept alive: the watch ended with its request
                assert await recv_bodies(sock, 1) == [b"/third"]
            assert app.outcome == ["released"] and server.requests == 3

    yieldio.run(main)


def test_past_the_cap_the_watch_stops_reading_and_nothing_is_lost() -> None:
    app = LongPoll()
    limits = Limits(max_header_size=1024)

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0, limits=limits) as server:
            sock = connect(server.port)
            with sock:
                sock.sendall(GET % b"wait")
                with yieldio.fail_after(5):
                    await app.started.wait()
                sock.sendall(b"".join(GET % b"n%d" % i for i in range(100)))  # ~3 KB
                conn = next(iter(server._conns))
                await wait_until(lambda: conn.watch is not None and conn.watch.capped)
                assert len(conn.h11.trailing_data[0]) <= 1024
                app.release.set()
                bodies = await recv_bodies(sock, 101)
                assert bodies == [b"released"] + [b"/n%d" % i for i in range(100)]

    yieldio.run(main)


def test_the_pipelined_requests_sent_before_a_half_close_are_answered_then_it_closes() -> None:
    async def app(request: Request) -> Response:
        if request.path == "/wait":
            with yieldio.fail_after(5):
                await request.wait_disconnected()
        return Response.text(request.path)

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            sock = connect(server.port)
            with sock:
                sock.sendall(GET % b"wait" + GET % b"after")
                sock.shutdown(socket.SHUT_WR)
                out = await recv_until_closed(sock)
            assert out.count(b"HTTP/1.1 200 ") == 2 and out.endswith(b"/after")

    yieldio.run(main)


# -- is_disconnected --------------------------------------------------------------------------
def test_is_disconnected_is_false_while_the_client_is_there_then_true() -> None:
    answers: list[bool] = []
    asked = yieldio.Event()

    async def app(request: Request) -> Response:
        for _ in range(5):
            answers.append(request.is_disconnected())
            await yieldio.sleep(0)
        asked.set()
        with yieldio.fail_after(5):
            while not request.is_disconnected():
                await yieldio.sleep(0.005)
        answers.append(request.is_disconnected())
        return Response.text("bye")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            sock = connect(server.port)
            sock.sendall(GET % b"")
            with yieldio.fail_after(5):
                await asked.wait()
            sock.close()
            await wait_until(lambda: server.connections == 0)
        assert answers == [False] * 5 + [True]

    yieldio.run(main)


def test_asking_before_the_body_is_read_is_an_error_that_loses_nothing() -> None:
    errors: list[str] = []

    async def app(request: Request) -> Response:
        try:
            request.is_disconnected()
        except RuntimeError as exc:
            errors.append(str(exc))
        try:
            await request.wait_disconnected()
        except RuntimeError as exc:
            errors.append(str(exc))
        body = await request.body()
        assert not request.is_disconnected()
        return Response.text(body.decode())

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            sock = connect(server.port)
            with sock:
                sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
                assert await recv_bodies(sock, 1) == [b"hello"]
        assert len(errors) == 2 and all("read the request body" in e for e in errors)

    yieldio.run(main)


def test_after_the_response_a_request_only_reports_what_was_seen() -> None:
    kept: list[Request] = []

    async def app(request: Request) -> Response:
        kept.append(request)
        return Response.text("ok")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            sock = connect(server.port)
            with sock:
                sock.sendall(GET % b"")
                assert await recv_bodies(sock, 1) == [b"ok"]
                assert not kept[0].is_disconnected()
                with pytest.raises(RuntimeError, match="already sent"):
                    await kept[0].wait_disconnected()
                sock.sendall(GET % b"")  # the connection was not read by anyone else
                assert await recv_bodies(sock, 1) == [b"ok"]

    yieldio.run(main)


# -- a handler that never asks ----------------------------------------------------------------
def test_a_handler_that_never_asks_pays_nothing() -> None:
    tasks_seen: list[list[str]] = []
    server_ref: list = []

    async def app(request: Request) -> Response:
        conn = server_ref[0]._conns
        assert all(c.watch is None for c in conn)
        tasks_seen.append([t.name for t in server_ref[0]._tg.tasks])
        return Response.text(request.path)

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            server_ref.append(server)
            sock = connect(server.port)
            with sock:
                sock.sendall(GET % b"a" + GET % b"b" + GET % b"c")  # pipelined
                assert await recv_bodies(sock, 3) == [b"/a", b"/b", b"/c"]
                sock.sendall(GET % b"d")  # kept alive
                assert await recv_bodies(sock, 1) == [b"/d"]
        assert not any("disconnect" in name for names in tasks_seen for name in names)

    yieldio.run(main)


def test_without_asking_a_handler_outlives_its_client_as_before() -> None:
    app = LongPoll()
    finished = yieldio.Event()

    async def plain(request: Request) -> Response:
        app.started.set()
        await app.release.wait()
        finished.set()
        return Response.text("late")

    async def main() -> None:
        async with serve(plain, "127.0.0.1", 0) as server:
            sock = connect(server.port)
            sock.sendall(GET % b"")
            with yieldio.fail_after(5):
                await app.started.wait()
            sock.close()
            app.release.set()
            with yieldio.fail_after(5):
                await finished.wait()
            await wait_until(lambda: server.connections == 0)
            assert server.app_errors == 0

    yieldio.run(main)


# -- cancel_on_disconnect ---------------------------------------------------------------------
@pytest.mark.parametrize("how", ["close", "reset", "half-close"])
def test_cancel_on_disconnect_cancels_the_handler_and_keeps_serving(how: str, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="yieldio.http")
    started = yieldio.Event()
    finally_ran = yieldio.Event()
    reached_the_end: list[bool] = []

    async def app(request: Request) -> Response:
        if request.path != "/wait":
            return Response.text("still serving")
        if request.method == "POST":
            await request.body()
        started.set()
        try:
            await yieldio.Event().wait()  # for ever, unless cancelled
            reached_the_end.append(True)
        finally:
            finally_ran.set()
        return Response.text("never")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0, cancel_on_disconnect=True) as server:
            sock = connect(server.port)
            sock.sendall(b"POST /wait HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            with yieldio.fail_after(5):
                await started.wait()
            if how == "reset":
                rst_close(sock)
            elif how == "close":
                sock.close()
            else:
                sock.shutdown(socket.SHUT_WR)
            with yieldio.fail_after(5):
                await finally_ran.wait()
            if how == "half-close":
                with sock:
                    assert await recv_until_closed(sock) == b""  # no response written
            await wait_until(lambda: server.connections == 0)
            other = connect(server.port)
            with other:
                other.sendall(GET % b"other")
                assert await recv_bodies(other, 1) == [b"still serving"]
            assert server.app_errors == 0
        assert reached_the_end == []
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    yieldio.run(main)


def test_cancel_on_disconnect_leaves_connected_clients_alone() -> None:
    async def app(request: Request) -> Response:
        await request.body()
        await yieldio.sleep(0.05)
        assert not request.is_disconnected()
        return Response.text(request.path)

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0, cancel_on_disconnect=True) as server:
            sock = connect(server.port)
            with sock:
                sock.sendall(GET % b"a" + GET % b"b")
                assert await recv_bodies(sock, 2) == [b"/a", b"/b"]
                sock.sendall(b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
                assert await recv_bodies(sock, 1) == [b"/c"]
            assert server.requests == 3

    yieldio.run(main)


def test_cancel_on_disconnect_with_many_clients_leaks_nothing() -> None:
    finished = []

    async def app(request: Request) -> Response:
        try:
            await yieldio.sleep(60)
        finally:
            finished.append(request.path)
        return Response.text("never")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0, cancel_on_disconnect=True) as server:
            socks = [connect(server.port) for _ in range(20)]
            for i, sock in enumerate(socks):
                sock.sendall(GET % b"%d" % i)
            await wait_until(lambda: server.requests == 20)
            for i, sock in enumerate(socks):
                rst_close(sock) if i % 2 else sock.close()
            await wait_until(lambda: len(finished) == 20)
            await wait_until(lambda: server.connections == 0)
            assert not [t for t in server._tg.tasks if "disconnect" in t.name]

    yieldio.run(main)


def test_an_httpx_client_that_times_out_is_seen_leaving() -> None:
    app = LongPoll()

    def fetch(url: str) -> str:
        try:
            httpx.get(url, timeout=0.2)
        except httpx.ReadTimeout:
            return "timed out"
        return "answered"

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            outcome = await yieldio.to_thread(fetch, f"http://127.0.0.1:{server.port}/wait")
            assert outcome == "timed out"
            with yieldio.fail_after(5):
                await app.done.wait()
            assert app.outcome == ["disconnected"]

    yieldio.run(main)


# -- streamed responses, TLS, shutdown -------------------------------------------------------
def test_a_streamed_body_waiting_for_events_learns_that_its_client_left() -> None:
    closed = yieldio.Event()

    async def app(request: Request) -> Response:
        async def events():
            try:
                yield b"data: hello\n\n"
                await request.wait_disconnected()  # (an SSE stream with nothing more to say)
            finally:
                closed.set()
        return Response(headers={"content-type": "text/event-stream"}, body=events())

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            sock = connect(server.port)
            sock.sendall(GET % b"")
            first = b""
            with yieldio.fail_after(5):
                # The head and the first chunk are two writes: one recv may
                # return only the head (this test was flaky for that).
                while b"data: hello" not in first:
                    more = await yieldio.to_thread(sock.recv, 65536)
                    assert more, first
                    first += more
            sock.close()
            with yieldio.fail_after(5):
                await closed.wait()
            await wait_until(lambda: server.connections == 0)
            assert server.app_errors == 0

    yieldio.run(main)


def test_a_tls_client_that_closes_is_seen_leaving(server_context, client_context) -> None:
    import ssl

    app = LongPoll()

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0, ssl=server_context) as server:
            raw = connect(server.port)
            tls = await yieldio.to_thread(
                lambda: client_context.wrap_socket(raw, server_hostname="localhost"))
            assert isinstance(tls, ssl.SSLSocket)
            tls.sendall(GET % b"wait")
            with yieldio.fail_after(5):
                await app.started.wait()
            tls.close()
            with yieldio.fail_after(5):
                await app.done.wait()
            assert app.outcome == ["disconnected"]

    yieldio.run(main)


def test_the_server_shuts_down_cleanly_with_watches_running() -> None:
    app = LongPoll()

    async def main() -> None:
        with yieldio.fail_after(5):
            async with serve(app, "127.0.0.1", 0, grace_period=0.1) as server:
                socks = [connect(server.port) for _ in range(3)]
                for sock in socks:
                    sock.sendall(GET % b"wait")
                await wait_until(lambda: server.requests == 3)
                await wait_until(lambda: all(c.watch is not None for c in server._conns))
        for sock in socks:
            sock.close()
        assert app.outcome == [] and server.app_errors == 0

    yieldio.run(main)
