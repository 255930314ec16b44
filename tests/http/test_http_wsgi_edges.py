"""WSGI applications that misbehave or use the rarer parts of PEP 3333 (exc_info,
the write() callable, close()), served by ``wsgi()`` on a real socket."""

from __future__ import annotations

import http.client
import json
import socket
import sys

import pytest

import yieldio
from yieldio.http import Client, ProtocolError, Router, serve, wsgi


def run_app(app, path: str = "/") -> tuple[int, str]:
    """Serve the WSGI ``app`` and GET ``path`` with the yieldio client: (status, body)."""
    async def main() -> tuple[int, str]:
        async with serve(wsgi(app), "127.0.0.1", 0) as server, Client() as client:
            r = await client.get(f"http://127.0.0.1:{server.port}{path}")
            return r.status, await r.text()

    return yieldio.run(main)


def error_page_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise LookupError("no such thing")
    except LookupError:
        # Replacing the status before any body byte is allowed (PEP 3333).
        start_response("404 Not Found", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"not found"]


def test_start_response_with_exc_info_before_the_body_replaces_the_status() -> None:
    assert run_app(error_page_app) == (404, "not found")


def test_start_response_with_exc_info_after_the_body_cuts_the_response(http_errors) -> None:
    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"first part"
        try:
            raise LookupError("failed half-way")
        except LookupError:
            start_response("500 Internal Server Error", [], sys.exc_info())  # re-raises
        yield b"never"

    async def main() -> None:
        async with serve(wsgi(app), "127.0.0.1", 0) as server, Client() as client:
            with pytest.raises(ProtocolError):
                await client.get(f"http://127.0.0.1:{server.port}/")
            assert server.app_errors == 1

    yieldio.run(main)
    assert any(r.exc_info and "failed half-way" in str(r.exc_info[1])
               for r in http_errors.records)


def twice(environ, start_response):
    start_response("200 OK", [])
    start_response("200 OK", [])
    return [b"x"]


def no_start(environ, start_response):
    return []


def yields_str(environ, start_response):
    start_response("200 OK", [])
    return ["text"]


def data_before_start(environ, start_response):
    yield b"too early"
    start_response("200 OK", [])


def bad_status(environ, start_response):
    start_response("OK", [])
    return [b"x"]


@pytest.mark.parametrize("app, message", [
    (twice, "called twice"),
    (no_start, "did not call start_response"),
    (yields_str, "must yield bytes, not str"),
    (data_before_start, "yielded data before start_response"),
    (bad_status, "bad WSGI status line"),
])
def test_a_pep3333_violation_is_a_logged_500(http_errors, app, message: str) -> None:
    assert run_app(app) == (500, "Internal Server Error\n")
    assert any(r.exc_info and message in str(r.exc_info[1]) for r in http_errors.records)


class Tracked:
    """A response iterable that notes its close() (and may fail in it or before)."""

    def __init__(self, chunks, *, fail_iter: bool = False, fail_close: bool = False) -> None:
        self.chunks, self.fail_iter, self.fail_close = chunks, fail_iter, fail_close
        self.closed = False

    def __iter__(self):
        if self.fail_iter:
            raise OSError("the database went away")
        return iter(self.chunks)

    def close(self) -> None:
        self.closed = True
        if self.fail_close:
            raise RuntimeError("close failed")


def test_an_iterable_that_fails_at_once_is_closed_and_a_500(http_errors) -> None:
    body = Tracked([b"x"], fail_iter=True)

    def app(environ, start_response):
        start_response("200 OK", [])
        return body

    assert run_app(app) == (500, "Internal Server Error\n")
    assert body.closed


def test_a_close_that_fails_is_logged_after_a_complete_response(http_errors) -> None:
    body = Tracked([b"one ", b"two"], fail_close=True)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    assert run_app(app) == (200, "one two")
    for _ in range(100):  # closed on a worker thread, not awaited
        if any("closing the WSGI response iterable failed" in r.getMessage()
               for r in http_errors.records):
            break
        yieldio.run(yieldio.sleep, 0.01)
    else:
        pytest.fail("the failed close() was not logged")
    assert body.closed


def test_write_callable_data_keeps_its_place_among_the_yielded_chunks() -> None:
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        yield b"yielded "
        write(b"written last")  # then the iterable ends

    assert run_app(app) == (200, "written yielded written last")


def test_a_content_length_that_is_not_a_number_is_a_logged_500(http_errors) -> None:
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "lots")])
        return [b"a", b"b"]

    assert run_app(app) == (500, "Internal Server Error\n")
    assert any("invalid response" in r.getMessage() for r in http_errors.records)


def _read_lines_app(environ, start_response):
    inp = environ["wsgi.input"]
    parts = [inp.readline(), inp.readline(4), inp.readline(), inp.read(3)]
    parts += list(inp)  # iteration: line by line
    parts.append(inp.read())  # at the end of the body: b""
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps([p.decode() for p in parts]).encode()]


def _post_chunked(port: int, chunks: list[bytes]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/", body=iter(chunks), encode_chunked=True)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@pytest.mark.timeout(10)
def test_a_streamed_body_reads_by_line_as_pep_3333_allows() -> None:
    # A chunked body is not pre-read: the app reads it from the event loop
    # as it comes, with lines split across chunks.
    chunks = [b"first li", b"ne\nsecond line\nthi", b"rd\n", b"tail, no newline"]

    async def main() -> tuple[int, bytes]:
        async with serve(wsgi(_read_lines_app), "127.0.0.1", 0) as server:
            return await yieldio.to_thread(_post_chunked, server.port, chunks)

    status, body = yieldio.run(main)
    assert status == 200
    assert json.loads(body) == ["first line\n", "seco", "nd line\n", "thi", "rd\n",
                                "tail, no newline", ""]


def _echo_lines_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (b"got " + line for line in environ["wsgi.input"])


def _converse(port: int) -> bytes:
    """Send one line of a chunked body, wait for its echo, then finish the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"6\r\nhello\n\r\n")
        got = b""
        while b"got hello" not in got:  # socket.timeout if the app waits for more
            data = s.recv(4096)
            assert data, got
            got += data
        s.sendall(b"4\r\nbye\n\r\n0\r\n\r\n")
        while not got.endswith(b"0\r\n\r\n"):
            data = s.recv(4096)
            assert data, got
            got += data
        return got


@pytest.mark.timeout(10)
def test_a_line_of_a_streamed_body_reaches_the_app_before_the_rest_is_sent() -> None:
    # readline() used to wait for 8 KiB or the end of the body (the raw
    # input filled the BufferedReader's whole buffer before returning).
    async def main() -> bytes:
        async with serve(wsgi(_echo_lines_app), "127.0.0.1", 0) as server:
            return await yieldio.to_thread(_converse, server.port)

    reply = yieldio.run(main)
    assert b"got hello\n" in reply and b"got bye\n" in reply



def test_a_bad_status_line_still_closes_a_streamed_iterable(http_errors) -> None:
    # Regression: the status line was parsed on the event loop after the app
    # had started; when it was bad, the 500 went out but the iterable of a
    # response that was not complete yet was never closed (PEP 3333).
    closed: list[bool] = []

    class Body:
        def __iter__(self):
            yield b"first"
            yield b"second"

        def close(self) -> None:
            closed.append(True)

    def app(environ, start_response):
        start_response("OK", [])  # no status code
        return Body()

    async def main() -> None:
        async with serve(wsgi(app), "127.0.0.1", 0) as server, Client(timeout=5) as client:
            r = await client.get(f"http://127.0.0.1:{server.port}/")
            assert r.status == 500
            assert server.app_errors == 1

    yieldio.run(main)
    assert closed == [True]
    assert any(r.exc_info and "bad WSGI status line" in str(r.exc_info[1])
               for r in http_errors.records)


def test_a_non_ascii_mount_prefix_is_split_off_path_info() -> None:
    # Regression: the router matched "/café" against the decoded path, but
    # the environ's path is ISO-8859-1-decoded bytes: the prefix was not
    # found there, so PATH_INFO kept it, and SCRIPT_NAME was not in the
    # PEP 3333 form either.
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}".encode("latin-1")]

    router = Router()
    router.mount("/café", wsgi(app))

    async def main() -> None:
        async with serve(router, "127.0.0.1", 0) as server, Client(timeout=5) as client:
            r = await client.get(f"http://127.0.0.1:{server.port}/café/é x")
            assert r.status == 200
            assert await r.text() == "/café|/é x"

    yieldio.run(main)


def test_server_name_and_port_without_a_host_header_are_the_servers_own(exchange) -> None:
    # Regression: an HTTP/1.0 request without Host got SERVER_NAME
    # "localhost" and SERVER_PORT "80" whatever the server listened on, so a
    # URL the framework built (url_for(_external=True)) pointed elsewhere.
    # PEP 3333 wants the server's address then; an empty port ("Host: x:")
    # means the default one.
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{environ['SERVER_NAME']}|{environ['SERVER_PORT']}".encode()]

    async def main() -> None:
        async with serve(wsgi(app), "127.0.0.1", 0) as server:
            out = await exchange(server.port, b"GET / HTTP/1.0\r\n\r\n")
            assert out.endswith(f"\r\n\r\n127.0.0.1|{server.port}".encode())
            out = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: example.com:\r\n"
                                 b"Connection: close\r\n\r\n")
            assert b"\r\nexample.com|80\r\n" in out  # (chunked: no Content-Length)

    yieldio.run(main)
