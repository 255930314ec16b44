"""``Expect: 100-continue``: the client waits for the server's word before sending the
body (as curl does), and the server says ``100 Continue`` when the handler reads it.

Raw servers here are plain blocking stdlib sockets in a thread, so what the
client sent is seen byte for byte, independent of yieldio's own server.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import yieldio
from yieldio.http import Client, Request, Response, serve

EXPECT = {"expect": "100-continue"}
BODY = b"x" * 100_000


class RawConnection:
    """One accepted connection of a raw server, with what it has read so far."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def read_head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, f"closed before the end of the head: {self.buffer!r}"
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head

    def read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            assert chunk, "closed before the end of the body"
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_until_closed(self, limit: float) -> tuple[bytes, bool]:
        """Everything sent until the client closes (True) or ``limit`` seconds pass."""
        self.sock.settimeout(limit)
        data, self.buffer = self.buffer, b""
        try:
            while chunk := self.sock.recv(65536):
                data += chunk
        except TimeoutError:
            return data, False
        except ConnectionResetError:
            pass
        return data, True


@contextmanager
def raw_server(script: Callable[[RawConnection], Any]) -> Iterator[tuple[int, dict[str, Any]]]:
    """A one-connection stdlib server on 127.0.0.1 running ``script`` in a thread.

    Yields ``(port, result)``: ``result["value"]`` is what the script returned;
    an assertion failing in it fails the test when the block ends.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            sock, _ = listener.accept()
            with sock:
                sock.settimeout(5)
                result["value"] = script(RawConnection(sock))
        except BaseException as exc:  # reported in the test's own thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], result
    finally:
        thread.join(10)
        listener.close()
    if "error" in result:
        raise result["error"]


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise AssertionError(f"no Content-Length in {head!r}")


# -- against raw servers -----------------------------------------------------------------------
@pytest.mark.timeout(15)
@pytest.mark.parametrize("status", [b"417 Expectation Failed", b"401 Unauthorized"])
@pytest.mark.parametrize("streamed", [False, True])
def test_a_final_response_instead_of_100_is_returned_and_the_body_never_sent(
        status: bytes, streamed: bool) -> None:
    touched: list[bool] = []

    async def upload() -> AsyncIterator[bytes]:
        touched.append(True)
        yield BODY

    def script(conn: RawConnection) -> tuple[bytes, bytes, bool]:
        head = conn.read_head()
        conn.sock.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 4\r\n\r\nnope")
        # Whatever comes now would be the body: nothing must, and the client,
        # which cannot reuse the connection, closes it.
        rest, closed = conn.read_until_closed(3)
        return head, rest, closed

    async def main() -> None:
        with raw_server(script) as (port, result):
            async with Client(expect_continue_timeout=5) as client:
                t0 = yieldio.current_time()
                r = await client.put(f"http://127.0.0.1:{port}/up", headers=EXPECT,
                                     content=upload() if streamed else BODY)
                assert yieldio.current_time() - t0 < 2  # the answer, not the timeout
                assert (r.status, r.content) == (int(status[:3]), b"nope")
        head, rest, closed = result["value"]
        assert b"\r\nexpect: 100-continue" in head.lower()
        assert rest == b"" and closed
        assert touched == []

    yieldio.run(main)


@pytest.mark.timeout(15)
@pytest.mark.parametrize("wait", [0.2, 0])
def test_a_server_that_never_says_100_gets_the_body_after_the_timeout(wait: float) -> None:
    def script(conn: RawConnection) -> float:
        head = conn.read_head()
        t0 = time.monotonic()
        assert conn.read_exactly(content_length(head)) == BODY
        waited = time.monotonic() - t0
        conn.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conn.read_until_closed(3)
        return waited

    async def main() -> None:
        with raw_server(script) as (port, result):
            async with Client(expect_continue_timeout=wait) as client:
                r = await client.post(f"http://127.0.0.1:{port}/", headers=EXPECT, content=BODY)
                assert (r.status, r.content) == (200, b"ok")
        waited = result["value"]
        if wait:
            assert 0.15 < waited < 2
        else:
            assert waited < 0.5  # 0: sent at once, as before (not the default 1 s)

    yieldio.run(main)


@pytest.mark.timeout(15)
def test_the_body_goes_as_soon_as_100_continue_comes() -> None:
    def script(conn: RawConnection) -> float:
        head = conn.read_head()
        # Nothing of the body before the 100 Continue ...
        conn.sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            conn.sock.recv(65536)
        conn.sock.settimeout(5)
        t0 = time.monotonic()
        conn.sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                          b"HTTP/1.1 100 Continue\r\n\r\n")
        body = conn.read_exactly(content_length(head))
        waited = time.monotonic() - t0
        conn.sock.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%d"
                          % (len(str(len(body))), len(body)))
        conn.read_until_closed(3)
        return waited

    async def main() -> None:
        with raw_server(script) as (port, result):
            async with Client(expect_continue_timeout=5) as client:
                r = await client.post(f"http://127.0.0.1:{port}/", headers=EXPECT, content=BODY)
                assert (r.status, r.content) == (201, str(len(BODY)).encode())
        assert result["value"] < 2  # ... and then at once, not after the 5 s

    yieldio.run(main)


def test_expect_continue_timeout_is_checked() -> None:
    for bad in (-1, "1", None, True, float("nan")):
        with pytest.raises(ValueError):
            Client(expect_continue_timeout=bad)  # type: ignore[arg-type]


# -- against yieldio's own server -----------------------------------------------------------------
async def upload_app(request: Request) -> Response:
    if request.path == "/refuse":
        return Response(403, body="no uploads")  # the body is never read
    body = await request.body()
    return Response.json({"size": len(body), "port": request.client[1]})


@pytest.mark.timeout(15)
def test_yieldio_client_and_server_agree_on_100_continue() -> None:
    async def main() -> None:
        async with serve(upload_app, "127.0.0.1", 0) as server, \
                Client(expect_continue_timeout=5) as client:
            url = f"http://127.0.0.1:{server.port}"
            t0 = yieldio.current_time()
            first = await (await client.put(url + "/up", headers=EXPECT, content=BODY)).json()
            assert first["size"] == len(BODY)
            # The handler's read sent 100 Continue: the body did not wait 5 s.
            assert yieldio.current_time() - t0 < 2
            # Refused without reading: the 403 at once, and that connection
            # (whose body was never sent) is not reused.
            r = await client.put(url + "/refuse", headers=EXPECT, content=BODY)
            assert (r.status, r.content) == (403, b"no uploads")
            assert yieldio.current_time() - t0 < 2
            again = await (await client.put(url + "/up", content=b"abc")).json()
            assert again["size"] == 3 and again["port"] != first["port"]

    yieldio.run(main)


@pytest.mark.timeout(20)
@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_curl_gets_100_continue_from_the_server(tmp_path: Path) -> None:
    upload = tmp_path / "upload.bin"
    upload.write_bytes(BODY)

    def curl(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["curl", "-sS", "-v", "--expect100-timeout", "5", "-H", "Expect: 100-continue",
             "--data-binary", f"@{upload}", url],
            capture_output=True, text=True, timeout=15)

    async def main() -> None:
        async with serve(upload_app, "127.0.0.1", 0) as server:
            url = f"http://127.0.0.1:{server.port}"
            t0 = yieldio.current_time()
            done = await yieldio.to_thread(curl, url + "/up")
            assert yieldio.current_time() - t0 < 4  # not curl's 5 s wait
            assert done.returncode == 0, done.stderr
            assert "< HTTP/1.1 100 Continue" in done.stderr
            assert f'"size":{len(BODY)}' in done.stdout
            refused = await yieldio.to_thread(curl, url + "/refuse")
            assert "100 Continue" not in refused.stderr
            assert "< HTTP/1.1 403" in refused.stderr and refused.stdout.strip() == "no uploads"

    yieldio.run(main)
