"""HTTPServer.close(), wait_closed() and aclose(): the graceful drain waited for from
anywhere, over real loopback sockets."""

from __future__ import annotations

import pytest

import yieldio
from yieldio.http import HTTPServer, Request, Response, serve


async def _read_all(stream: yieldio.Stream) -> bytes:
    out = bytearray()
    while chunk := await stream.read():
        out += chunk
    return bytes(out)


@pytest.mark.timeout(10)
def test_wait_closed_returns_after_the_request_in_flight_and_refuses_new_connections() -> None:
    started, release = yieldio.Event(), yieldio.Event()
    order: list[str] = []

    async def app(request: Request) -> Response:
        started.set()
        await release.wait()
        order.append("answered")
        return Response.text("done")

    async def main() -> None:
        result: dict[str, bytes] = {}
        async with serve(app, "127.0.0.1", 0, grace_period=5) as server:
            port = server.port

            async def in_flight() -> None:
                async with await yieldio.open_tcp_stream("127.0.0.1", port) as stream:
                    await stream.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                    result["response"] = await _read_all(stream)

            async def waiter(name: str) -> None:
                await server.wait_closed()
                order.append(name)

            async with yieldio.TaskGroup() as tg:
                tg.spawn(in_flight)
                await started.wait()
                server.close()
                tg.spawn(waiter, "waiter 1")
                tg.spawn(waiter, "waiter 2")
                await yieldio.sleep(0.1)
                # Not accepting any more, while the request is still in flight...
                with pytest.raises(OSError):
                    await yieldio.open_tcp_stream("127.0.0.1", port)
                assert order == [] and server.connections == 1
                release.set()
            # ... which finished before both waiters returned.
            assert order[0] == "answered" and sorted(order[1:]) == ["waiter 1", "waiter 2"]
            assert server.connections == 0
            # Closed already: at once, however often.
            with yieldio.fail_after(0.5):
                await server.wait_closed()
                await server.aclose()
        response = result["response"]
        assert response.startswith(b"HTTP/1.1 200 OK\r\n") and response.endswith(b"done")
        assert b"connection: close" in response.lower()

    yieldio.run(main)


@pytest.mark.timeout(10)
def test_wait_closed_is_cancellable_and_a_timeout_leaves_the_drain_alone() -> None:
    started, release = yieldio.Event(), yieldio.Event()

    async def app(request: Request) -> Response:
        started.set()
        await release.wait()
        return Response.text("late but whole")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0, grace_period=5) as server:
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as stream:
                await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await started.wait()
                server.close()
                with pytest.raises(TimeoutError):
                    with yieldio.fail_after(0.1):
                        await server.wait_closed()
                # The timed-out wait did not cut the request short.
                assert server.connections == 1
                release.set()
                assert (await _read_all(stream)).endswith(b"late but whole")
            with yieldio.fail_after(2):
                await server.wait_closed()

    yieldio.run(main)


@pytest.mark.timeout(10)
def test_close_from_a_handler_and_wait_closed_in_the_block() -> None:
    # The use case: a handler (an admin endpoint, say) closes the server, the
    # main task waits for the drain without leaving the block.
    servers: list[HTTPServer] = []

    async def app(request: Request) -> Response:
        servers[0].close()
        return Response.text("bye")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            servers.append(server)
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as stream:
                await stream.write(b"GET /shutdown HTTP/1.1\r\nHost: x\r\n\r\n")
                with yieldio.fail_after(2):
                    await server.wait_closed()
                assert server.connections == 0
                assert (await _read_all(stream)).endswith(b"bye")

    yieldio.run(main)


@pytest.mark.timeout(10)
def test_the_grace_period_runs_from_close_so_wait_closed_ends_for_a_stuck_request() -> None:
    cancelled: list[str] = []
    started = yieldio.Event()

    async def app(request: Request) -> Response:
        started.set()
        try:
            await yieldio.sleep(60)
        except yieldio.Cancelled:
            cancelled.append(request.path)
            raise
        return Response.text("never")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0, grace_period=0.2) as server:
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as stream:
                await stream.write(b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n")
                await started.wait()
                t0 = yieldio.current_time()
                with yieldio.fail_after(5):
                    await server.aclose()
                assert 0.15 < yieldio.current_time() - t0 < 5
                assert cancelled == ["/stuck"] and server.connections == 0
                assert await stream.read() == b""

    yieldio.run(main)


def test_wait_closed_before_entering_is_an_error() -> None:
    server = serve(lambda r: r, "127.0.0.1", 0)

    async def main() -> None:
        with pytest.raises(RuntimeError):
            await server.wait_closed()

    yieldio.run(main)


@pytest.mark.timeout(10)
def test_wait_closed_after_close_with_no_connections_returns_at_once() -> None:
    async def app(request: Request) -> Response:
        return Response(body=b"x")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server:
            server.close()
            with yieldio.fail_after(2):
                await server.wait_closed()

    yieldio.run(main)


@pytest.mark.timeout(10)
def test_a_waiter_returns_when_the_block_is_cancelled() -> None:
    # The block's exit, cancelled from outside, still ends every connection:
    # a task waiting in wait_closed() elsewhere must not wait for ever.
    async def app(request: Request) -> Response:
        return Response(body=b"x")

    async def main() -> bool:
        returned = []

        async def waiter(server: HTTPServer) -> None:
            await server.wait_closed()
            returned.append(True)

        async with yieldio.TaskGroup() as tg:
            with yieldio.move_on_after(0.1):
                async with serve(app, "127.0.0.1", 0) as server:
                    tg.spawn(waiter, server)
                    await yieldio.sleep_forever()
            with yieldio.fail_after(2):
                while not returned:
                    await yieldio.sleep(0.01)
        return bool(returned)

    assert yieldio.run(main)
