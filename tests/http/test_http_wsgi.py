"""WSGI: a real Flask application served by yieldio through ``wsgi()``."""

from __future__ import annotations

import threading
import time

import flask
import pytest

import yieldio
from yieldio.http import Client, Request, Response, Router, serve, wsgi


def make_flask_app() -> flask.Flask:
    app = flask.Flask("yieldio_test_app")
    threads: set[int] = set()

    @app.get("/")
    def index():
        threads.add(threading.get_ident())
        return "hello from flask"

    @app.get("/info")
    def info():
        return flask.jsonify(
            path=flask.request.path, script_root=flask.request.script_root,
            args=flask.request.args.to_dict(flat=False), method=flask.request.method,
            remote=flask.request.remote_addr, host=flask.request.host,
            scheme=flask.request.scheme, agent=flask.request.headers.get("User-Agent"))

    @app.post("/form")
    def form():
        return flask.jsonify(form=flask.request.form.to_dict(), json=flask.request.get_json(
            silent=True))

    @app.post("/upload")
    def upload():
        total = 0
        while chunk := flask.request.stream.read(8192):
            total += len(chunk)
        return {"bytes": total}

    @app.get("/stream")
    def stream():
        def generate():
            for i in range(5):
                time.sleep(0.01)  # blocking, on a worker thread: fine
                yield f"row {i}\n"
        return flask.Response(generate(), mimetype="text/plain")

    @app.get("/error")
    def error():
        raise ValueError("flask view bug with a secret")

    @app.get("/redirect")
    def redirect():
        return flask.redirect("/info?from=redirect")

    together = threading.Barrier(5, timeout=20)

    @app.get("/together")
    def meet():
        together.wait()  # passes only when five requests are inside views at once
        return "met"

    app.config["threads"] = threads
    return app


def test_flask_app_runs_unchanged() -> None:
    fapp = make_flask_app()

    async def main() -> None:
        async with serve(wsgi(fapp), "127.0.0.1", 0) as server:
            base = f"http://127.0.0.1:{server.port}"
            async with Client() as client:
                r = await client.get(base + "/")
                assert (r.status, r.content) == (200, b"hello from flask")
                assert r.headers["content-type"].startswith("text/html")

                r = await client.get(base + "/info?a=1&a=2&b=x%20y")
                info = await r.json()
                assert info["path"] == "/info" and info["args"] == {"a": ["1", "2"], "b": ["x y"]}
                assert info["remote"] == "127.0.0.1" and info["scheme"] == "http"
                assert info["host"] == f"127.0.0.1:{server.port}"
                assert info["agent"] == "yieldio/0.1.0"

                r = await client.post(base + "/form", data={"name": "Zoë", "n": "1"})
                assert (await r.json())["form"] == {"name": "Zoë", "n": "1"}
                r = await client.post(base + "/form", json={"k": [1, 2]})
                assert (await r.json())["json"] == {"k": [1, 2]}

                r = await client.get(base + "/redirect", follow_redirects=True)
                assert (await r.json())["args"] == {"from": ["redirect"]}

                r = await client.get(base + "/missing")
                assert r.status == 404 and b"Not Found" in r.content

                # The view ran on a worker thread, not the event loop's.
                assert threading.get_ident() not in fapp.config["threads"]

    yieldio.run(main)


def test_streamed_request_and_response_bodies() -> None:
    fapp = make_flask_app()

    async def main() -> None:
        async with serve(wsgi(fapp), "127.0.0.1", 0) as server:
            base = f"http://127.0.0.1:{server.port}"
            async with Client() as client:
                # Big (not pre-read) bodies, with a length and chunked.
                r = await client.post(base + "/upload", content=b"u" * 1_000_000)
                assert await r.json() == {"bytes": 1_000_000}

                async def gen():
                    for _ in range(50):
                        yield b"c" * 10_000
                r = await client.post(base + "/upload", content=gen())
                assert await r.json() == {"bytes": 500_000}

                async with client.stream("GET", base + "/stream") as r:
                    assert r.headers["transfer-encoding"] == "chunked"
                    rows = [chunk async for chunk in r.iter_bytes()]
                assert b"".join(rows) == b"".join(f"row {i}\n".encode() for i in range(5))
                assert len(rows) == 5  # one chunk per yielded row: streamed, not buffered

                # HEAD: Werkzeug sends no body and no length; the headers must
                # be those of the GET (chunked), not a "content-length: 0".
                r = await client.head(base + "/stream")
                assert r.status == 200 and "content-length" not in r.headers
                assert r.headers["transfer-encoding"] == "chunked"

    yieldio.run(main)


def test_flask_errors_become_500(http_errors) -> None:
    fapp = make_flask_app()

    async def main() -> None:
        async with serve(wsgi(fapp), "127.0.0.1", 0) as server, Client() as client:
            r = await client.get(f"http://127.0.0.1:{server.port}/error")
            assert r.status == 500 and b"secret" not in r.content
            assert (await client.get(f"http://127.0.0.1:{server.port}/")).status == 200

    yieldio.run(main)


def test_blocking_views_do_not_block_the_loop() -> None:
    fapp = make_flask_app()

    async def main() -> None:
        async with serve(wsgi(fapp), "127.0.0.1", 0) as server, Client(timeout=30) as client:
            bodies = []

            async def get() -> None:
                bodies.append((await client.get(f"http://127.0.0.1:{server.port}/together"))
                              .content)

            async with yieldio.TaskGroup() as tg:
                for _ in range(5):
                    tg.spawn(get)
            # Five views blocked in one Barrier at the same time: they ran side
            # by side on worker threads while the loop kept serving.
            assert bodies == [b"met"] * 5

    yieldio.run(main)


def test_mounted_under_a_prefix_with_native_routes() -> None:
    fapp = make_flask_app()
    router = Router()

    @router.get("/native")
    async def native(request: Request) -> Response:
        return Response.text("native")

    router.mount("/legacy", wsgi(fapp))

    async def main() -> None:
        async with serve(router, "127.0.0.1", 0) as server, Client() as client:
            base = f"http://127.0.0.1:{server.port}"
            assert (await client.get(base + "/native")).content == b"native"
            info = await (await client.get(base + "/legacy/info")).json()
            assert (info["path"], info["script_root"]) == ("/info", "/legacy")

    yieldio.run(main)


def test_plain_wsgi_callable_with_write_and_close() -> None:
    closed = []

    class Body:
        def __iter__(self):
            yield b"iterated"

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        write = start_response("201 Created", [("X-Env", environ["SERVER_PROTOCOL"]),
                                               ("Connection", "keep-alive")])
        write(b"written;")
        return Body()

    async def main() -> None:
        async with serve(wsgi(app), "127.0.0.1", 0) as server, Client() as client:
            r = await client.get(f"http://127.0.0.1:{server.port}/")
            assert (r.status, r.content, r.headers["x-env"]) == (201, b"written;iterated",
                                                                  "HTTP/1.1")
            with yieldio.fail_after(5):
                while not closed:
                    await yieldio.sleep(0.01)

    yieldio.run(main)


@pytest.mark.parametrize("case", ["HEAD", "204", "client gone", "bad header"])
def test_iterable_is_closed_even_when_its_body_is_never_sent(case: str, http_errors) -> None:
    # PEP 3333: the server must call close() on the iterable however the
    # request ends -- also when none of the rest of the body is ever pulled
    # (a HEAD, a 204, a client that left before the first chunk was written,
    # a head the server refuses to send and answers with a 500 instead).
    closed = threading.Event()

    class Body:
        def __iter__(self):
            yield b"first"
            yield b"second"

        def close(self):
            closed.set()

    def app(environ, start_response):
        start_response("204 No Content" if case == "204" else "200 OK",
                       [("x-price", "10 \u20ac")] if case == "bad header" else [])
        return Body()

    async def main() -> None:
        async with serve(wsgi(app), "127.0.0.1", 0) as server:
            if case == "client gone":
                stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
                await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await stream.aclose()
            else:
                async with Client() as client:
                    r = await client.request("HEAD" if case == "HEAD" else "GET",
                                             f"http://127.0.0.1:{server.port}/")
                    if case == "bad header":
                        assert r.status == 500
                    else:
                        assert r.content == b""
            with yieldio.fail_after(5):
                while not closed.is_set():
                    await yieldio.sleep(0.01)

    yieldio.run(main)


def test_wsgi_rejects_non_callables() -> None:
    with pytest.raises(TypeError):
        wsgi("not an app")  # type: ignore[arg-type]


def test_header_names_with_underscores_are_dropped_from_the_environ() -> None:
    # "X_Forwarded_For" and "X-Forwarded-For" both map to HTTP_X_FORWARDED_FOR:
    # a client must not be able to pose as the proxy that sets the real one.
    seen = {}

    def app(environ, start_response):
        seen.update((k, v) for k, v in environ.items() if k.startswith("HTTP_X_"))
        start_response("200 OK", [])
        return [b"ok"]

    async def main() -> None:
        async with serve(wsgi(app), "127.0.0.1", 0) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                   b"X_Forwarded_For: 6.6.6.6\r\n"
                                   b"X-Forwarded-For: 10.0.0.7\r\nX-Real: yes\r\n\r\n")
                with yieldio.fail_after(5):
                    reply = b""
                    while chunk := await stream.read():
                        reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 ")

    yieldio.run(main)
    assert seen == {"HTTP_X_FORWARDED_FOR": "10.0.0.7", "HTTP_X_REAL": "yes"}
