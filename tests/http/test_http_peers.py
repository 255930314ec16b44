"""Real peers: curl, httpx and requests against the yieldio server; the yieldio client
against the standard library's ``http.server``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import requests

import yieldio
from yieldio.http import Client, Request, Response, Router, serve

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")


def make_app() -> Router:
    router = Router()

    @router.get("/hello")
    async def hello(request: Request) -> Response:
        return Response.text(f"hello {request.query.get('name', 'world')}\n")

    @router.route("/upload", methods=["POST", "PUT"])
    async def upload(request: Request) -> Response:
        sizes = [len(chunk) async for chunk in request.stream()]
        return Response.json({"bytes": sum(sizes), "method": request.method,
                              "chunked": request.headers.get("transfer-encoding") == "chunked",
                              "version": request.http_version,
                              "type": request.headers.get("content-type")})

    @router.get("/stream")
    async def stream(request: Request) -> Response:
        async def lines():
            for i in range(50):
                yield f"line {i}\n".encode()
        return Response(headers={"content-type": "text/plain"}, body=lines())

    @router.get("/whoami")
    async def whoami(request: Request) -> Response:
        return Response.json({"port": request.client[1]})

    return router


async def curl(*args: str) -> subprocess.CompletedProcess:
    assert CURL is not None
    return await yieldio.to_thread(
        lambda: subprocess.run([CURL, "--silent", "--show-error", "--max-time", "10", *args],
                               capture_output=True, timeout=30,
                               env={**os.environ, "NO_PROXY": "*"}))


# -- curl --------------------------------------------------------------------------------------
@needs_curl
def test_curl_get_post_chunked_keepalive_and_http10(tmp_path) -> None:
    upload = tmp_path / "upload.bin"
    upload.write_bytes(os.urandom(300_000))

    async def main() -> None:
        async with serve(make_app(), "127.0.0.1", 0) as server:
            base = f"http://127.0.0.1:{server.port}"
            # GET
            done = await curl(f"{base}/hello?name=curl")
            assert done.returncode == 0 and done.stdout == b"hello curl\n"
            # POST with a body
            done = await curl("--data-binary", "some form data", f"{base}/upload")
            assert json.loads(done.stdout) == {
                "bytes": 14, "method": "POST", "chunked": False, "version": "1.1",
                "type": "application/x-www-form-urlencoded"}
            # chunked upload (curl also sends Expect: 100-continue for big bodies)
            done = await curl("-H", "Transfer-Encoding: chunked", "-H",
                              "Content-Type: application/octet-stream",
                              "--data-binary", f"@{upload}", f"{base}/upload")
            assert json.loads(done.stdout)["bytes"] == 300_000
            assert json.loads(done.stdout)["chunked"] is True
            # a big PUT with Expect: 100-continue
            done = await curl("-v", "-T", str(upload), f"{base}/upload")
            assert b"HTTP/1.1 100 Continue" in done.stderr
            assert json.loads(done.stdout)["bytes"] == 300_000
            # keep-alive: two URLs in one invocation share the connection
            done = await curl("-v", f"{base}/whoami", f"{base}/whoami")
            assert b"Re-using existing connection" in done.stderr \
                or b"Reusing existing" in done.stderr
            ports = re.findall(rb'"port":(\d+)', done.stdout)
            assert len(ports) == 2 and ports[0] == ports[1]
            # HTTP/1.0: no chunked encoding, the connection closes the body
            done = await curl("-v", "--http1.0", f"{base}/stream")
            assert done.stdout == b"".join(f"line {i}\n".encode() for i in range(50))
            assert b"> GET /stream HTTP/1.0" in done.stderr
            assert b"chunked" not in done.stderr.lower()
            # HEAD
            done = await curl("-I", f"{base}/hello")
            assert done.stdout.startswith(b"HTTP/1.1 200 OK")
            assert b"content-length: 12" in done.stdout.lower()
            assert server.app_errors == 0

    yieldio.run(main)


# -- httpx and requests (sync, on worker threads) ---------------------------------------------------
def test_httpx_against_the_server() -> None:
    def use_httpx(base: str) -> list:
        out = []
        with httpx.Client(base_url=base, trust_env=False, timeout=10) as client:
            r = client.get("/hello", params={"name": "httpx"})
            out.append((r.status_code, r.text, r.http_version))
            r = client.post("/upload", content=b"x" * 100_000)
            out.append(r.json()["bytes"])

            def gen():
                yield b"a" * 5000
                yield b"b" * 5000
            r = client.post("/upload", content=gen())
            out.append((r.json()["bytes"], r.json()["chunked"]))
            with client.stream("GET", "/stream") as r:
                out.append(sum(len(c) for c in r.iter_bytes()))
            ports = {client.get("/whoami").json()["port"] for _ in range(5)}
            out.append(len(ports))  # kept alive: one connection
            out.append(client.get("/nope").status_code)
            out.append(client.delete("/hello").headers["allow"])
        return out

    async def main() -> None:
        async with serve(make_app(), "127.0.0.1", 0) as server:
            got = await yieldio.to_thread(use_httpx, f"http://127.0.0.1:{server.port}")
        assert got == [(200, "hello httpx\n", "HTTP/1.1"), 100_000, (10_000, True),
                       sum(len(f"line {i}\n") for i in range(50)), 1, 404, "GET, HEAD"]

    yieldio.run(main)


def test_requests_against_the_server_concurrently() -> None:
    def use_requests(base: str, n: int) -> list:
        with requests.Session() as s:
            s.trust_env = False
            r = s.get(f"{base}/hello", params={"name": f"r{n}"}, timeout=10)
            r2 = s.put(f"{base}/upload", data=b"y" * (n * 1000), timeout=10)
            return [r.text, r2.json()["bytes"], r2.json()["method"]]

    async def main() -> None:
        async with serve(make_app(), "127.0.0.1", 0) as server:
            base = f"http://127.0.0.1:{server.port}"
            results: dict[int, list] = {}

            async def one(n: int) -> None:
                results[n] = await yieldio.to_thread(use_requests, base, n)

            async with yieldio.TaskGroup() as tg:
                for n in range(8):
                    tg.spawn(one, n)
        assert results == {n: [f"hello r{n}\n", n * 1000, "PUT"] for n in range(8)}

    yieldio.run(main)


# -- the yieldio client against http.server ---------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    # The head and the body go out as two writes: without this, Nagle's
    # algorithm holds the body for the client's delayed ACK (40 ms a request).
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/redirect":
            self._send(302, b"", {"Location": "/json?from=redirect"})
        elif self.path.startswith("/json"):
            self._send(200, json.dumps({"path": self.path,
                                        "port": self.client_address[1]}).encode(),
                       {"Content-Type": "application/json"})
        elif self.path == "/big":
            self._send(200, b"z" * 1_000_000)
        else:
            self._send(404, b"nope")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        self._send(200, json.dumps({"got": body.decode(),
                                    "type": self.headers.get("Content-Type")}).encode())


class _Server(ThreadingHTTPServer):
    # A backlog for the 10 connections the client opens at once (the default
    # of 5 drops SYNs: those connects then wait a second to retry).
    request_queue_size = 32


@pytest.fixture
def stdlib_server():
    server = _Server(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    # (A short poll interval: shutdown() waits for serve_forever to notice.)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_yieldio_client_against_stdlib_server(stdlib_server: str) -> None:
    async def main() -> None:
        async with Client(follow_redirects=True) as client:
            r = await client.get(stdlib_server + "/json", params={"a": "1"})
            first = await r.json()
            assert first["path"] == "/json?a=1"
            r = await client.get(stdlib_server + "/redirect")
            assert r.status == 200 and [h.status for h in r.history] == [302]
            assert (await r.json())["path"] == "/json?from=redirect"
            # every request above went over the same kept-alive connection
            assert (await r.json())["port"] == first["port"]
            r = await client.post(stdlib_server + "/form", data={"k": "v w"})
            assert await r.json() == {"got": "k=v+w", "type": "application/x-www-form-urlencoded"}
            r = await client.head(stdlib_server + "/big")
            assert r.headers["content-length"] == "1000000" and r.content == b""
            async with client.stream("GET", stdlib_server + "/big") as r:
                total = 0
                async for chunk in r.iter_bytes():
                    total += len(chunk)
            assert total == 1_000_000
            r = await client.get(stdlib_server + "/missing")
            assert r.status == 404 and await r.text() == "nope"

            # concurrent requests use several pooled connections, within the limit
            async def fetch(i: int) -> int:
                return (await (await client.get(stdlib_server + f"/json?i={i}")).json())["port"]

            ports: list[int] = []

            async def collect(i: int) -> None:
                ports.append(await fetch(i))

            async with yieldio.TaskGroup() as tg:
                for i in range(30):
                    tg.spawn(collect, i)
            assert 1 < len(set(ports)) <= client.limits.max_connections_per_host

    yieldio.run(main)
