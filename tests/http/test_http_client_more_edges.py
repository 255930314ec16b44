"""More HTTP client edges against scripted raw servers on 127.0.0.1.

Each scripted server is a real TCP server (``yieldio.serve_tcp``) answering
with raw bytes, so the client sees exactly what an odd server would send.
"""

from __future__ import annotations

import pytest

import yieldio
from yieldio.http import Client, ProtocolError

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def read_request(stream: yieldio.Stream) -> bytes:
    """One request head and its Content-Length body: the request line."""
    head = await stream.read_until(b"\r\n\r\n", max_bytes=65536)
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await stream.read_exactly(int(line.split(b":")[1]))
    return head.split(b"\r\n", 1)[0]


@pytest.mark.timeout(10)
def test_a_body_ended_by_the_close_does_not_pool_the_closed_connection() -> None:
    # Regression: h11 stays in DONE after an EOF-delimited body until asked
    # again, so the closed connection went back to the pool (and counted
    # against max_connections) as if it could be reused.
    async def handler(stream: yieldio.Stream) -> None:
        await read_request(stream)
        await stream.write(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
        await stream.aclose()

    async def main() -> None:
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server, Client() as client:
            url = f"http://127.0.0.1:{server.port}/"
            with yieldio.fail_after(2):
                r = await client.get(url)
            assert (r.status, r.content) == (200, b"until the end")
            assert client._pool.open == 0
            assert not client._pool._idle.get(("http", "127.0.0.1", server.port))
            with yieldio.fail_after(2):
                async with client.stream("GET", url) as r:
                    assert [c async for c in r.iter_bytes()] == [b"until the end"]
            assert client._pool.open == 0

    yieldio.run(main)


@pytest.mark.timeout(10)
def test_a_close_after_an_informational_response_does_not_send_the_request_again() -> None:
    # Regression: on a reused connection, a close after a 1xx (the server
    # had the request: 103 Early Hints) was taken for a stale keep-alive
    # connection, and the POST was sent a second time on a new connection.
    seen: list[bytes] = []

    async def handler(stream: yieldio.Stream) -> None:
        seen.append(await read_request(stream))
        await stream.write(OK)
        seen.append(await read_request(stream))
        await stream.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
        await stream.aclose()

    async def main() -> None:
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server, Client() as client:
            url = f"http://127.0.0.1:{server.port}"
            with yieldio.fail_after(2):
                assert (await client.get(url + "/first")).status == 200
                with pytest.raises(ProtocolError, match="closed the connection"):
                    await client.post(url + "/pay", content=b"once")
            assert client._pool.open == 0
        assert seen == [b"GET /first HTTP/1.1", b"POST /pay HTTP/1.1"]

    yieldio.run(main)
