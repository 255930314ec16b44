"""trio's idioms for the HTTP server: ``await tg.start(serve, app, host, port)`` and
``await serve(app, host, port)`` (serve until cancelled), over real loopback sockets."""

from __future__ import annotations

import functools
from typing import Any

import pytest

import yieldio
from yieldio.http import Client, HTTPException, HTTPServer, Request, Response, serve

pytestmark = pytest.mark.timeout(10)


async def app(request: Request) -> Response:
    return Response.text(f"hello {request.path}")


async def _refused(port: int) -> bool:
    try:
        stream = await yieldio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return True
    await stream.aclose()
    return False


def test_tg_start_returns_the_listening_server_which_serves_in_the_group() -> None:
    async def main() -> None:
        with yieldio.fail_after(5):
            async with yieldio.TaskGroup() as tg:
                server = await tg.start(serve, app, "127.0.0.1", 0)
                assert isinstance(server, HTTPServer) and server.port
                async with Client() as client:
                    r = await client.get(f"http://127.0.0.1:{server.port}/a")
                    assert (r.status, r.content) == (200, b"hello /a")
                tg.cancel()                       # the server ends with its task
            assert await _refused(server.port)
            assert server.connections == 0

    yieldio.run(main)


def test_tg_start_with_keyword_arguments_through_partial() -> None:
    async def app_404(request: Request) -> Response:
        raise HTTPException(404)

    async def as_json(request: Request, exc: Exception) -> Response:
        return Response.json({"status": getattr(exc, "status", 500)}, 404)

    async def main() -> None:
        with yieldio.fail_after(5):
            async with yieldio.TaskGroup() as tg:
                server = await tg.start(functools.partial(serve, error_handler=as_json),
                                        app_404, "127.0.0.1", 0)
                async with Client() as client:
                    r = await client.get(f"http://127.0.0.1:{server.port}/")
                    assert await r.json() == {"status": 404}
                server.close()                    # a graceful close ends the task too

    yieldio.run(main)


def test_await_serve_serves_until_cancelled() -> None:
    servers: list[HTTPServer] = []

    async def main() -> None:
        with yieldio.fail_after(5):
            server = serve(app, "127.0.0.1", 0)
            servers.append(server)
            async with yieldio.TaskGroup() as tg:
                async def run() -> None:
                    await server                  # serves until cancelled
                tg.spawn(run)
                while server.port is None:
                    await yieldio.sleep(0.01)
                async with Client() as client:
                    r = await client.get(f"http://127.0.0.1:{server.port}/b")
                    assert r.content == b"hello /b"
                port = server.port
                tg.cancel()
            assert await _refused(port)

    yieldio.run(main)
    assert servers[0].requests == 1


def test_await_serve_returns_after_a_graceful_close() -> None:
    holder: list[HTTPServer] = []

    async def closing_app(request: Request) -> Response:
        holder[0].close()
        return Response.text("bye")

    async def main() -> str:
        with yieldio.fail_after(5):
            server = serve(closing_app, "127.0.0.1", 0)
            holder.append(server)
            async with yieldio.TaskGroup() as tg:
                async def client() -> None:
                    while server.port is None:
                        await yieldio.sleep(0.01)
                    async with Client() as c:
                        r = await c.get(f"http://127.0.0.1:{server.port}/")
                        assert (r.content, r.headers["connection"]) == (b"bye", "close")
                tg.spawn(client)
                await server                      # returns: closed and drained
        return "returned"

    assert yieldio.run(main) == "returned"


def test_an_open_server_cannot_be_awaited() -> None:
    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            with pytest.raises(RuntimeError, match="already open"):
                await server
            with pytest.raises(RuntimeError, match="only once"):
                await server.serve()

    yieldio.run(main)


def test_a_server_that_cannot_listen_fails_tg_start() -> None:
    async def main() -> Any:
        async with serve(app, "127.0.0.1", 0) as taken:
            assert taken.port is not None
            async with yieldio.TaskGroup() as tg:
                with pytest.raises(OSError):
                    await tg.start(serve, app, "127.0.0.1", taken.port)

    yieldio.run(main)
