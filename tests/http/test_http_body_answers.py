"""How the server answers when the request body and the response meet: a streamed
answer to ``Expect: 100-continue``, a body that fails under the app (too large, the
client gone) and the headers of a response that has no body."""

from __future__ import annotations

import logging
import socket

import flask
import pytest

import yieldio
from yieldio.http import Client, Limits, Response, serve, wsgi

pytestmark = pytest.mark.timeout(30)


async def echo(request):
    return Response(body=request.stream())


def test_a_streamed_echo_gets_its_body_from_a_client_that_expects_100_continue():
    # The 200 head went out before the body iterator first read the request,
    # so no "100 Continue" could follow: the yieldio client took the 200 for
    # an early final answer and kept its body, the server waited for it.
    async def main():
        async with serve(echo, "127.0.0.1", 0) as server, Client(timeout=5) as client:
            url = f"http://127.0.0.1:{server.port}/"
            with yieldio.fail_after(4):
                r = await client.post(url, content=b"hello",
                                      headers={"expect": "100-continue"})
            assert (r.status, r.content) == (200, b"hello")
            assert server.app_errors == 0

    yieldio.run(main)


def test_a_raw_client_that_expects_100_continue_is_asked_before_the_head():
    def exchange(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                      b"Expect: 100-continue\r\n\r\n")
            got = s.recv(65536)  # (the 200 head may come in the same piece)
            assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), got
            s.sendall(b"hello")
            while not got.endswith(b"0\r\n\r\n"):
                got += s.recv(65536)
            return got

    async def main():
        async with serve(echo, "127.0.0.1", 0) as server:
            got = await yieldio.to_thread(exchange, server.port)
        rest = got.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"connection: close" not in rest.lower()  # kept: the body was read
        assert rest.endswith(b"\r\n5\r\nhello\r\n0\r\n\r\n")

    yieldio.run(main)


def test_a_client_leaving_mid_upload_under_a_streamed_echo_is_no_app_error(caplog):
    # It was logged with a traceback and counted in app_errors; a handler
    # that reads the body with request.body() got a quiet 400 for the same.
    def half_upload(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf")
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass

    async def main():
        with caplog.at_level(logging.INFO, logger="yieldio.http"):
            async with serve(echo, "127.0.0.1", 0) as server:
                await yieldio.to_thread(half_upload, server.port)
            assert server.app_errors == 0
        assert not [r for r in caplog.records if r.levelno >= logging.INFO], caplog.text

    yieldio.run(main)


def test_flask_reading_a_chunked_body_over_the_limit_answers_413_not_500():
    # wsgi.input raised the 413 inside Flask, which answered its own 500.
    app = flask.Flask("body_limit")

    @app.post("/")
    def upload():
        return str(len(flask.request.get_data()))

    async def chunks():
        for _ in range(10):
            yield b"x" * 500

    async def main():
        limits = Limits(max_body_size=1000)
        async with serve(wsgi(app), "127.0.0.1", 0, limits=limits) as server, Client() as c:
            url = f"http://127.0.0.1:{server.port}/"
            r = await c.post(url, content=chunks())
            assert r.status == 413, r.content
            r = await c.post(url, content=b"x" * 900)  # under the limit: Flask's answer
            assert (r.status, r.content) == (200, b"900")

    yieldio.run(main)


def test_an_app_that_answers_its_own_status_for_a_failed_body_keeps_it():
    # Only a 5xx (the app's "something broke") is replaced by the body's
    # error; an app that chose what to answer is left alone.
    async def app(request):
        try:
            await request.body()
        except yieldio.http.HTTPException as exc:
            return Response(418 if exc.status == 413 else 500, body=b"mine\n")
        return Response(body=b"read\n")

    async def main():
        limits = Limits(max_body_size=10)
        async with serve(app, "127.0.0.1", 0, limits=limits) as server, Client() as c:
            async def body():
                yield b"x" * 50
            r = await c.post(f"http://127.0.0.1:{server.port}/", content=body())
            assert (r.status, r.content) == (418, b"mine\n")

    yieldio.run(main)


@pytest.mark.parametrize("status, kept", [(204, False), (304, True)])
def test_a_response_without_a_body_sends_no_content_length_unless_304(status, kept):
    # RFC 9110 section 8.6: no Content-Length on a 204 (or a 1xx); a 304 may
    # carry the length the 200 would have had.
    async def app(request):
        return Response(status, {"content-length": "5"}, b"")

    def fetch(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out

    async def main():
        async with serve(app, "127.0.0.1", 0) as server:
            head = await yieldio.to_thread(fetch, server.port)
        assert head.startswith(b"HTTP/1.1 %d " % status)
        assert (b"content-length: 5" in head.lower()) is kept, head

    yieldio.run(main)


def test_a_body_read_the_app_gave_up_on_leaves_no_deadline_behind():
    # The body's deadline stayed set after the app's own timeout cancelled
    # the read: the reaper then cancelled the handler, busy with other work,
    # once body_timeout had passed, and the client got no answer.
    import math

    seen = {}

    async def app(request):
        with yieldio.move_on_after(0.05):
            await request.body()  # the client is slow: give up on the body
        seen["deadline"] = request._conn.deadline
        await yieldio.sleep(0.3)  # longer than body_timeout
        return Response(body=b"answered")

    async def slow_upload():
        yield b"a"
        await yieldio.sleep(1)  # (the client reads the answer once its upload ends)
        yield b"b"

    async def main():
        limits = Limits(body_timeout=0.2)
        async with serve(app, "127.0.0.1", 0, limits=limits) as server, Client(timeout=5) as c:
            with yieldio.fail_after(5):
                r = await c.post(f"http://127.0.0.1:{server.port}/", content=slow_upload())
            assert (r.status, r.content) == (200, b"answered")
        assert seen["deadline"] == math.inf

    yieldio.run(main)
