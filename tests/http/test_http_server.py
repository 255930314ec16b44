"""The HTTP server: requests, responses, keep-alive, pipelining, 100-continue, HEAD,
chunked bodies, errors and shutdown -- over real loopback sockets."""

from __future__ import annotations

import logging
import socket

import pytest

import yieldio
from yieldio.http import (
    Client,
    HTTPException,
    ProtocolError,
    Request,
    Response,
    Router,
    serve,
)


def test_request_attributes_and_json_response() -> None:
    seen: list[Request] = []

    async def app(request: Request) -> Response:
        seen.append(request)
        return Response.json({
            "method": request.method, "path": request.path, "raw_path": request.raw_path,
            "tags": request.query.get_all("tag"), "q": request.query.get("q"),
            "x": request.headers.get_all("x-multi"), "version": request.http_version,
            "url": request.url, "scheme": request.scheme,
        })

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            async with Client() as client:
                r = await client.get(f"http://127.0.0.1:{server.port}/a%20b/c?tag=1&tag=2&q=%C3%A9",
                                     headers=[("X-Multi", "one"), ("x-multi", "two")])
                assert r.status == 200
                assert r.headers["content-type"] == "application/json"
                assert "date" in r.headers and "server" not in r.headers
                body = await r.json()
        assert body == {"method": "GET", "path": "/a b/c", "raw_path": "/a%20b/c",
                        "tags": ["1", "2"], "q": "é", "x": ["one", "two"], "version": "1.1",
                        "url": f"http://127.0.0.1:{server.port}/a%20b/c?tag=1&tag=2&q=%C3%A9",
                        "scheme": "http"}
        host, port = seen[0].client
        assert host == "127.0.0.1" and isinstance(port, int)

    yieldio.run(main)


def test_request_url_without_a_host_header_names_the_server_address(exchange) -> None:
    # HTTP/1.0 needs no Host, and an HTTP/1.1 Host may be empty: the URL is
    # then built from the address the request came in on, as Starlette
    # does with the ASGI "server", never "http:///path" (a URL with no host).
    async def app(request: Request) -> Response:
        return Response.text(request.url)

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            expected = f"http://127.0.0.1:{server.port}/a?b=1".encode()
            for raw in (b"GET /a?b=1 HTTP/1.0\r\n\r\n",
                        b"GET /a?b=1 HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n"):
                out = await exchange(server.port, raw)
                assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"\r\n\r\n" + expected)

    yieldio.run(main)


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


def test_keep_alive_serves_several_requests_on_one_connection(exchange) -> None:
    ports = []

    async def app(request: Request) -> Response:
        ports.append(request.client[1])
        return Response.text(request.path)

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                for path in ("/one", "/two"):
                    await stream.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                    head = await stream.read_until(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
                    assert b"content-length: 4\r\n" in head
                    assert await stream.read_exactly(4) == path.encode()
            assert server.requests == 2
        assert len(ports) == 2 and ports[0] == ports[1]

    yieldio.run(main)


def test_pipelined_requests_are_answered_in_order(exchange) -> None:
    async def app(request: Request) -> Response:
        # The first request is the slowest: answers must still come in order.
        await yieldio.sleep({"/1": 0.06, "/2": 0.03, "/3": 0.0}[request.path])
        return Response.text(request.path)

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            raw = b"".join(f"GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in (1, 2))
            raw += b"GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            out = await exchange(server.port, raw)
        assert out.count(b"HTTP/1.1 200 OK") == 3
        bodies = [part.split(b"\r\n\r\n", 1)[1][:2] for part in out.split(b"HTTP/1.1 ")[1:]]
        assert bodies == [b"/1", b"/2", b"/3"]

    yieldio.run(main)


def test_expect_100_continue_is_sent_when_the_body_is_read() -> None:
    async def app(request: Request) -> Response:
        return Response.text(f"got {len(await request.body())}")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                await stream.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                   b"Expect: 100-continue\r\n\r\n")
                interim = await stream.read_until(b"\r\n\r\n")
                assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
                await stream.write(b"hello")
                head = await stream.read_until(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 OK")
                assert await stream.read_exactly(5) == b"got 5"

    yieldio.run(main)


def test_expect_100_continue_answered_without_reading_closes(exchange) -> None:
    async def app(request: Request) -> Response:
        return Response(403, body="no uploads")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            out = await exchange(server.port, b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 5"
                                              b"\r\nExpect: 100-continue\r\n\r\n")
        # No 100 Continue, the final answer, and the connection closed (the
        # client may or may not send the body now: the connection is unusable;
        # what the test below, with the body already sent, must not change).
        assert out.startswith(b"HTTP/1.1 403 Forbidden\r\n")
        assert b"connection: close" in out.lower()
        assert out.endswith(b"no uploads")

    yieldio.run(main)


def recv_response(sock: socket.socket) -> bytes:
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
            first = recv_response(sock)
            sock.sendall(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
            return [first, recv_response(sock)]

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            first, second = await yieldio.to_thread(client, server.port)
        assert first.startswith(b"HTTP/1.1 200 ") and first.endswith(b"POST /a")
        assert b"connection: close" not in first.lower()
        assert second.startswith(b"HTTP/1.1 200 ") and second.endswith(b"GET /b")

    yieldio.run(main)


def test_head_sends_headers_without_body(exchange) -> None:
    router = Router()

    @router.get("/fixed")
    async def fixed(request: Request) -> Response:
        return Response.text("twelve bytes")

    @router.get("/streamed")
    async def streamed(request: Request) -> Response:
        async def gen():
            yield b"never sent"
        return Response(body=gen())

    async def main() -> None:
        async with serve(router, "127.0.0.1", 0) as server:
            out = await exchange(server.port, b"HEAD /fixed HTTP/1.1\r\nHost: x\r\n\r\n"
                                              b"HEAD /streamed HTTP/1.1\r\nHost: x\r\n"
                                              b"Connection: close\r\n\r\n")
        first, second = out.split(b"\r\n\r\n")[:2]
        assert first.startswith(b"HTTP/1.1 200 OK") and b"content-length: 12" in first
        assert second.startswith(b"HTTP/1.1 200 OK")
        assert b"transfer-encoding: chunked" in second.lower()
        assert b"twelve" not in out and b"never sent" not in out
        assert out.endswith(b"\r\n\r\n")

    yieldio.run(main)


def test_content_length_set_by_the_app_is_sent_once(exchange) -> None:
    # An app that states the length (any case) gets its header, not a second one.
    async def app(request: Request) -> Response:
        return Response(200, {"Content-Length": "5", "X-A": "1"}, b"hello")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            out = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n"
                                              b"Connection: close\r\n\r\n")
        head, body = out.split(b"\r\n\r\n", 1)
        assert head.lower().count(b"content-length") == 1 and b"content-length: 5" in head
        assert b"x-a: 1" in head and body == b"hello"

    yieldio.run(main)


@pytest.mark.parametrize("stated", ["3", "9", "five"])
def test_content_length_that_does_not_match_the_body_is_a_logged_500(
        stated: str, exchange, http_errors) -> None:
    # Caught before the head is sent: the client gets a 500 (and the
    # connection closes, as after any refused head), instead of a cut
    # connection and no response at all.
    async def app(request: Request) -> Response:
        if request.path == "/bad":
            return Response(200, {"Content-Length": stated}, b"hello")
        return Response(200, {"Content-Length": "5"}, b"hello")

    async def main() -> tuple[int, bytes, bytes]:
        async with serve(app, "127.0.0.1", 0) as server:
            bad = await exchange(server.port, b"GET /bad HTTP/1.1\r\nHost: x\r\n\r\n")
            out = await exchange(server.port, b"HEAD /bad HTTP/1.1\r\nHost: x\r\n\r\n"
                                              b"GET /good HTTP/1.1\r\nHost: x\r\n"
                                              b"Connection: close\r\n\r\n")
            return server.app_errors, bad, out

    errors, bad, out = yieldio.run(main)
    assert bad.startswith(b"HTTP/1.1 500 ") and b"hello" not in bad
    if stated == "five":  # not a length at all: refused for HEAD too (by h11)
        assert out.startswith(b"HTTP/1.1 500 ") and errors == 2
        return
    # HEAD may state the length of the GET body it stands for: not an error.
    assert out.count(b"HTTP/1.1 200 OK") == 2 and out.endswith(b"\r\n\r\nhello")
    assert errors == 1
    assert "does not match" in http_errors.text


def test_chunked_request_body_is_streamed(exchange) -> None:
    chunks: list[bytes] = []

    async def app(request: Request) -> Response:
        async for chunk in request.stream():
            chunks.append(chunk)
        return Response.text(str(sum(map(len, chunks))))

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                await stream.write(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                                   b"\r\n\r\n5\r\nhello\r\n")
                with yieldio.fail_after(10):  # the app sees the first chunk before the rest
                    while not chunks:
                        await yieldio.sleep(0.01)
                assert chunks == [b"hello"]
                await stream.write(b"6\r\n world\r\n0\r\n\r\n")
                head = await stream.read_until(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 OK")
                assert await stream.read_exactly(2) == b"11"

    yieldio.run(main)


def test_content_length_with_transfer_encoding_closes_the_connection(exchange) -> None:
    # Both framings at once is how requests are smuggled past a proxy that
    # reads the other one; RFC 9112 section 6.1: the chunked framing is used
    # and the server MUST close the connection after its response -- so the
    # bytes a proxy took for a second request are never served.
    async def app(request: Request) -> Response:
        return Response.text(f"{request.method} {request.path} {await request.body()!r}")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            out = await exchange(server.port, (
                b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"))
        assert out.count(b"HTTP/1.1 ") == 1
        assert b"connection: close\r\n" in out.lower()
        assert out.endswith(b"POST /a b'abc'")

    yieldio.run(main)


def test_streamed_response_uses_chunked_encoding_or_close_for_http10(exchange) -> None:
    async def app(request: Request) -> Response:
        async def gen():
            for i in range(3):
                yield f"part{i};".encode()
                await yieldio.sleep(0)
        return Response(headers={"content-type": "text/plain"}, body=gen())

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            url = f"http://127.0.0.1:{server.port}/"
            async with Client() as client, client.stream("GET", url) as r:
                assert r.headers["transfer-encoding"] == "chunked"
                got = [chunk async for chunk in r.iter_bytes()]
            assert b"".join(got) == b"part0;part1;part2;"
            out = await exchange(server.port, b"GET / HTTP/1.0\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200 OK")
        assert b"transfer-encoding" not in out.lower()
        assert out.endswith(b"\r\n\r\npart0;part1;part2;")

    yieldio.run(main)


def test_handler_exception_gives_500_logs_it_and_leaks_nothing(http_errors) -> None:
    async def app(request: Request) -> Response:
        if request.path == "/boom":
            raise ValueError("secret-database-password")
        return Response.text("fine")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            async with Client() as client:
                r = await client.get(f"http://127.0.0.1:{server.port}/boom")
                assert r.status == 500
                assert b"secret" not in r.content and b"Traceback" not in r.content
                assert b"secret" not in repr(r.headers.items()).encode()
                # The server (and even the same connection) keeps serving.
                r2 = await client.get(f"http://127.0.0.1:{server.port}/ok")
                assert r2.status == 200 and r2.content == b"fine"
            assert server.app_errors == 1

    yieldio.run(main)
    records = [r for r in http_errors.records if r.levelno >= logging.ERROR]
    assert len(records) == 1
    assert records[0].exc_info and "secret-database-password" in str(records[0].exc_info[1])


def test_app_returning_something_else_is_a_logged_500(http_errors) -> None:
    async def app(request: Request) -> Response:
        return "not a response"  # type: ignore[return-value]

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server, Client() as client:
            r = await client.get(f"http://127.0.0.1:{server.port}/")
            assert r.status == 500

    yieldio.run(main)
    assert any("not a Response" in r.getMessage() for r in http_errors.records)


def test_http_exception_becomes_its_status() -> None:
    async def app(request: Request) -> Response:
        raise HTTPException(418, "short and stout", headers={"x-teapot": "yes"})

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server, Client() as client:
            r = await client.get(f"http://127.0.0.1:{server.port}/")
            assert (r.status, r.content, r.headers["x-teapot"]) == (418, b"short and stout\n",
                                                                     "yes")

    yieldio.run(main)


def test_invalid_json_body_is_a_400() -> None:
    async def app(request: Request) -> Response:
        return Response.json(await request.json())

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server, Client() as client:
            url = f"http://127.0.0.1:{server.port}/"
            assert (await client.post(url, content=b"{nope")).status == 400
            r = await client.post(url, json={"a": [1, 2]})
            assert (r.status, await r.json()) == (200, {"a": [1, 2]})

    yieldio.run(main)


@pytest.mark.parametrize("garbage", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",                         # HTTP/1.1 without Host
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
])
def test_malformed_request_gets_400_and_close(exchange, garbage: bytes) -> None:
    async def app(request: Request) -> Response:
        await request.body()
        return Response.text("ok")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            out = await exchange(server.port, garbage)
            assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n")
            assert b"connection: close" in out.lower()
            # ... and the server keeps serving.
            async with Client() as client:
                assert (await client.get(f"http://127.0.0.1:{server.port}/")).status == 200

    yieldio.run(main)


def test_streamed_body_failure_cuts_the_connection(http_errors) -> None:
    async def app(request: Request) -> Response:
        async def gen():
            yield b"first part"
            raise RuntimeError("generator broke")
        return Response(body=gen())

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server, Client() as client:
            with pytest.raises(ProtocolError):
                await client.get(f"http://127.0.0.1:{server.port}/")
            assert server.app_errors == 1

    yieldio.run(main)
    assert any(r.exc_info and "generator broke" in str(r.exc_info[1]) for r in http_errors.records)


def test_an_oserror_raised_by_a_streamed_body_is_an_app_error_not_a_lost_client(
        http_errors: pytest.LogCaptureFixture, exchange) -> None:
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
            out = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert out.endswith(b"3\r\nabc\r\n")  # cut short: no final chunk
            assert server.app_errors == 1

    yieldio.run(main)
    errors = [r for r in http_errors.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "streamed response body failed" in errors[0].getMessage()
    assert isinstance(errors[0].exc_info[1], ConnectionRefusedError)


def test_body_then_stream_and_text() -> None:
    async def app(request: Request) -> Response:
        body = await request.body()
        again = b"".join([c async for c in request.stream()])
        text = await request.text()
        return Response.json({"same": body == again, "text": text})

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server, Client() as client:
            r = await client.post(f"http://127.0.0.1:{server.port}/", content="héllo".encode("latin-1"),
                                  headers={"content-type": "text/plain; charset=latin-1"})
            assert await r.json() == {"same": True, "text": "héllo"}

    yieldio.run(main)


def test_graceful_shutdown_finishes_in_flight_requests() -> None:
    started = yieldio.Event()

    async def app(request: Request) -> Response:
        if request.path == "/slow":
            started.set()
            await yieldio.sleep(0.5)
        return Response.text("done " + request.path)

    async def main() -> None:
        result: dict[str, bytes] = {}
        async with serve(app, "127.0.0.1", 0, grace_period=5) as server:
            port = server.port
            idle = await yieldio.open_tcp_stream("127.0.0.1", port)
            await idle.write(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
            await idle.read_until(b"done /first")  # now idle, kept alive

            async def slow_request() -> None:
                stream = await yieldio.open_tcp_stream("127.0.0.1", port)
                async with stream:
                    await stream.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
                    out = bytearray()
                    while chunk := await stream.read():
                        out += chunk
                    result["slow"] = bytes(out)

            async with yieldio.TaskGroup() as tg:
                tg.spawn(slow_request)
                await started.wait()
                server.close()  # the block exits: graceful shutdown
                # The idle keep-alive connection is closed at once ...
                assert await idle.read() == b""
                assert "slow" not in result  # ... before the request in flight is done
                await idle.aclose()
        # ... the request in flight completed, told to close the connection.
        assert result["slow"].startswith(b"HTTP/1.1 200 OK")
        assert b"connection: close" in result["slow"].lower()
        assert result["slow"].endswith(b"done /slow")
        with pytest.raises(OSError):
            await yieldio.open_tcp_stream("127.0.0.1", port)

    yieldio.run(main)


def test_shutdown_cancels_what_outlives_the_grace_period() -> None:
    cancelled = []

    async def app(request: Request) -> Response:
        try:
            await yieldio.sleep(60)
        except yieldio.Cancelled:
            cancelled.append(request.path)
            raise
        return Response.text("never")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0, grace_period=0.1) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            await stream.write(b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n")
            await yieldio.sleep(0.05)
            t0 = yieldio.current_time()
        assert yieldio.current_time() - t0 < 30  # not the app's 60 s
        assert cancelled == ["/stuck"]
        assert await stream.read() == b""
        await stream.aclose()

    yieldio.run(main)


def test_serve_forever_returns_after_close() -> None:
    async def app(request: Request) -> Response:
        return Response.text("x")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(server.serve_forever)
                await yieldio.sleep(0.01)
                server.close()

    yieldio.run(main)


def test_serve_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError):
        serve("not an app", "127.0.0.1", 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        serve(lambda r: r, "127.0.0.1", 0, limits={"max_body_size": 1})  # type: ignore[arg-type]

    async def main() -> None:
        async with serve(lambda r: r, "127.0.0.1", 0) as server:
            with pytest.raises(OSError):  # the port is taken: a plain OSError, not a group
                async with serve(lambda r: r, "127.0.0.1", server.port):
                    pass

    yieldio.run(main)


def test_https(server_context, client_context) -> None:
    async def app(request: Request) -> Response:
        return Response.json({"scheme": request.scheme, "url": request.url})

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0, ssl=server_context) as server:
            async with Client(ssl=client_context) as client:
                r = await client.get(f"https://localhost:{server.port}/x")
                r2 = await client.get(f"https://localhost:{server.port}/y")
                assert client._pool.open == 1  # kept alive over TLS too
            assert (await r.json())["scheme"] == "https"
            assert (await r2.json())["url"] == f"https://localhost:{server.port}/y"

    yieldio.run(main)


def test_server_runs_on_the_simulated_network() -> None:
    """The server uses only Streams: it runs unchanged on SimNetwork in virtual time."""
    from yieldio.testing import SimNetwork, VirtualClock

    async def app(request: Request) -> Response:
        await yieldio.sleep(30)  # virtual seconds
        return Response.json({"n": int(request.query["n"]) * 2})

    async def main() -> None:
        async with serve(app, "10.0.0.1", 80) as server, Client(timeout=60) as client:
            results = []

            async def one(n: int) -> None:
                r = await client.get(f"http://10.0.0.1:{server.port}/?n={n}")
                results.append((await r.json())["n"])

            async with yieldio.TaskGroup() as tg:
                for n in range(5):
                    tg.spawn(one, n)
            assert sorted(results) == [0, 2, 4, 6, 8]

    net = SimNetwork(latency=0.01)
    net.add_host("server", "10.0.0.1")
    yieldio.run(main, network=net, clock=VirtualClock(autojump=True))


@pytest.mark.parametrize("bad", ["a\r\nset-cookie: evil=1", "nul\x00byte", "5 €"])
def test_invalid_response_is_a_logged_500_never_sent(http_errors, exchange, bad: str) -> None:
    async def app(request: Request) -> Response:
        return Response(200, {"x-bad": bad}, b"header injection")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            out = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
            assert b"evil" not in out and b"injection" not in out
            assert server.app_errors == 1

    yieldio.run(main)
    assert any("invalid response" in r.getMessage() for r in http_errors.records)


def test_invalid_response_head_is_refused_every_time(http_errors, exchange) -> None:
    # Response heads are validated once and then kept (see _response_head):
    # a head h11 refused must never be kept, so the second try fails too.
    async def app(request: Request) -> Response:
        return Response(200, {"x-bad": "a\r\nx-evil: 1"}, b"no")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            for _ in range(2):
                out = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert out.startswith(b"HTTP/1.1 500 ") and b"evil" not in out
            assert server.app_errors == 2

    yieldio.run(main)


def test_a_kept_head_is_framed_for_each_client(exchange) -> None:
    # One head, kept after the first response, sent to a keep-alive HTTP/1.1
    # client and then to an HTTP/1.0 one: h11 adds "connection: close" for
    # the second without changing the kept event.
    async def app(request: Request) -> Response:
        return Response(200, {"content-type": "text/plain"}, b"same")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            two = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                                              b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                                              b"GET / HTTP/1.0\r\n\r\n")
            again = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n"
                                                b"Connection: close\r\n\r\n")
        heads = [part.split(b"\r\n\r\n")[0].lower()
                 for part in two.split(b"HTTP/1.1 200 OK")[1:]]
        assert len(heads) == 3 and two.count(b"same") == 3
        assert [b"connection: close" in h for h in heads] == [False, False, True]
        assert b"connection: close" in again.lower() and again.endswith(b"same")

    yieldio.run(main)


def test_response_head_cache_is_bounded() -> None:
    from yieldio.http import _connection as c

    c._heads.clear()
    for i in range(c._HEADS_MAX + 10):
        head = c._response_head(200, [(b"x-n", b"%d" % i)], 8)
        assert head.headers == [(b"x-n", b"%d" % i)]
    assert 0 < len(c._heads) <= c._HEADS_MAX
    assert c._response_head(200, [(b"x-n", b"1")], 8) is c._response_head(200, [(b"x-n", b"1")], 8)
    big = [(b"x-big", b"a" * 2000)]
    assert c._response_head(200, big, 2005) is not c._response_head(200, big, 2005)


def test_no_body_for_204_and_304(exchange) -> None:
    async def app(request: Request) -> Response:
        return Response(int(request.path[1:]), {"etag": '"x"'}, b"dropped")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            out = await exchange(server.port, b"GET /304 HTTP/1.1\r\nHost: x\r\n\r\n"
                                              b"GET /204 HTTP/1.1\r\nHost: x\r\n"
                                              b"Connection: close\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 304 Not Modified\r\n")
        assert b"HTTP/1.1 204 No Content\r\n" in out  # same connection: framing intact
        assert b"dropped" not in out

    yieldio.run(main)
