"""Real peer servers: the yieldio HTTP and WebSocket clients against uvicorn (h11 and
httptools), hypercorn, aiohttp and ``websockets``, run as subprocesses; and the
yieldio WebSocket server against the ``websockets`` client.

Every server starts once per module (all at once, in parallel) on a free port of
127.0.0.1 and is killed by pid when the module is done. A peer that is not
installed skips the tests that need it.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import yieldio
from yieldio.http import (
    Client,
    Limits,
    Request,
    Router,
    WebSocketClosed,
    connect_websocket,
    serve,
)

CHUNK = 64 * 1024
N_CHUNKS = 16  # 1 MiB streamed in all
GZ_BODY = b"hello gzip " * 20_000

# The body of /stream: chunk i is 64 KiB of byte i (so a lost or reordered chunk shows).
STREAM_BODY = b"".join(bytes([i]) * CHUNK for i in range(N_CHUNKS))

ASGI_APP = f"""
import json

CHUNK, N_CHUNKS = {CHUNK}, {N_CHUNKS}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({{"type": "lifespan.startup.complete"}})
            else:
                await send({{"type": "lifespan.shutdown.complete"}})
                return
    while (await receive()).get("more_body"):
        pass
    port = str(scope["client"][1]).encode()
    if scope["path"] == "/stream":  # no Content-Length: sent chunked
        await send({{"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"x-client-port", port)]}})
        for i in range(N_CHUNKS):
            await send({{"type": "http.response.body", "body": bytes([i]) * CHUNK,
                        "more_body": True}})
        await send({{"type": "http.response.body", "body": b""}})
        return
    body = json.dumps({{"path": scope["path"], "port": scope["client"][1]}}).encode()
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"x-client-port", port)]}})
    await send({{"type": "http.response.body", "body": body}})
"""

AIOHTTP_APP = f"""
import sys

from aiohttp import WSMsgType, web

CHUNK, N_CHUNKS = {CHUNK}, {N_CHUNKS}
GZ_BODY = {GZ_BODY[:11]!r} * {len(GZ_BODY) // 11}
last_close = ["none"]


def port(request):
    return str(request.transport.get_extra_info("peername")[1])


async def info(request):
    return web.json_response({{"path": request.path, "port": int(port(request))}},
                             headers={{"x-client-port": port(request)}})


async def stream(request):
    response = web.StreamResponse(headers={{"x-client-port": port(request)}})
    await response.prepare(request)  # no Content-Length: sent chunked
    for i in range(N_CHUNKS):
        await response.write(bytes([i]) * CHUNK)
    await response.write_eof()
    return response


async def gz(request):
    response = web.Response(body=GZ_BODY, headers={{"x-client-port": port(request)}})
    response.enable_compression(web.ContentCoding.gzip)
    return response


async def gz_stream(request):
    response = web.StreamResponse()
    response.enable_compression(web.ContentCoding.gzip)
    await response.prepare(request)
    for i in range(0, len(GZ_BODY), 10_000):
        await response.write(GZ_BODY[i:i + 10_000])
    await response.write_eof()
    return response


async def ws(request):
    socket = web.WebSocketResponse(autoclose=False)
    await socket.prepare(request)
    while True:
        message = await socket.receive()
        if message.type == WSMsgType.TEXT:
            if message.data == "close-me":
                await socket.close(code=4001, message=b"bye from aiohttp")
                break
            await socket.send_str(last_close[0] if message.data == "last-close"
                                  else message.data)
        elif message.type == WSMsgType.BINARY:
            await socket.send_bytes(message.data)
        elif message.type == WSMsgType.CLOSE:
            last_close[0] = f"{{message.data}} {{message.extra}}"
            await socket.close()
            break
        else:
            break
    return socket


app = web.Application()
app.router.add_get("/info", info)
app.router.add_get("/stream", stream)
app.router.add_get("/gz", gz)
app.router.add_get("/gzstream", gz_stream)
app.router.add_get("/ws", ws)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), keepalive_timeout=1,
            print=None, access_log=None)
"""

WEBSOCKETS_SERVER = """
import asyncio
import sys

from websockets.asyncio.server import serve

last_close = ["none"]


async def handler(ws):
    try:
        async for message in ws:
            if message == "close-me":
                await ws.close(4001, "bye from websockets")
                return
            await ws.send(last_close[0] if message == "last-close" else message)
    finally:  # a code other than 1000/1001 ends the loop with ConnectionClosedError
        if ws.close_code != 4001:
            last_close[0] = f"{ws.close_code} {ws.close_reason}"


async def main():
    async with serve(handler, "127.0.0.1", int(sys.argv[1])):
        await asyncio.get_running_loop().create_future()


asyncio.run(main())
"""

# name -> (the modules it needs, the command line; {port} and {py} filled in)
UVICORN = ["{py}", "-m", "uvicorn", "peer_asgi_app:app", "--host", "127.0.0.1",
           "--port", "{port}", "--timeout-keep-alive", "1", "--lifespan", "off",
           "--no-access-log", "--log-level", "warning", "--http"]
PEERS: dict[str, tuple[tuple[str, ...], list[str]]] = {
    "uvicorn-h11": (("uvicorn", "h11"), [*UVICORN, "h11"]),
    "uvicorn-httptools": (("uvicorn", "httptools"), [*UVICORN, "httptools"]),
    "hypercorn": (("hypercorn",), ["{py}", "-m", "hypercorn", "peer_asgi_app:app",
                                   "--bind", "127.0.0.1:{port}", "--keep-alive", "1"]),
    "aiohttp": (("aiohttp",), ["{py}", "peer_aiohttp_app.py", "{port}"]),
    "websockets": (("websockets",), ["{py}", "peer_websockets_server.py", "{port}"]),
}
HTTP_SERVERS = ["uvicorn-h11", "uvicorn-httptools", "hypercorn", "aiohttp"]
WS_SERVERS = ["websockets", "aiohttp"]


def _installed(name: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in PEERS[name][0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class _Peer:
    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.tries = 0

    def start(self) -> None:
        self.tries += 1
        self.port = _free_port()
        argv = [arg.format(py=sys.executable, port=self.port) for arg in PEERS[self.name][1]]
        with open(self.log, "ab") as log:
            # A session of its own, killed whole: a server may run its app in
            # a child process (uvicorn's spawn worker, multiprocessing's
            # resource tracker) that killing the parent alone would orphan,
            # still listening after the test run.
            self.proc = subprocess.Popen(argv, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                         start_new_session=True)

    def kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the whole group is gone already
        self.proc.wait(5)


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """Start every installed peer server; ``{name: port}`` once all accept connections."""
    workdir = tmp_path_factory.mktemp("peers")
    (workdir / "peer_asgi_app.py").write_text(ASGI_APP)
    (workdir / "peer_aiohttp_app.py").write_text(AIOHTTP_APP)
    (workdir / "peer_websockets_server.py").write_text(WEBSOCKETS_SERVER)
    started = [_Peer(name, workdir) for name in PEERS if _installed(name)]
    try:
        for peer in started:
            peer.start()
        waiting = list(started)
        deadline = time.monotonic() + 10
        while waiting:
            for peer in list(waiting):
                assert peer.proc is not None
                if peer.proc.poll() is not None and peer.tries < 3:
                    peer.start()  # the port was taken meanwhile, say: try another
                elif peer.proc.poll() is None and _accepts(peer.port):
                    waiting.remove(peer)
            if waiting and time.monotonic() > deadline:
                logs = {p.name: p.log.read_text(errors="replace")[-2000:] for p in waiting}
                raise RuntimeError(f"peer servers did not start within 10 s: {logs}")
            time.sleep(0.05)
        yield {peer.name: peer.port for peer in started}
    finally:
        for peer in started:
            peer.kill()


def _peer_port(peers: dict[str, int], name: str) -> int:
    for module in PEERS[name][0]:
        pytest.importorskip(module)
    return peers[name]


@pytest.fixture(params=HTTP_SERVERS)
def http_base(request: pytest.FixtureRequest, peers: dict[str, int]) -> str:
    return f"http://127.0.0.1:{_peer_port(peers, request.param)}"


@pytest.fixture(params=WS_SERVERS)
def ws_url(request: pytest.FixtureRequest, peers: dict[str, int]) -> str:
    path = "/ws" if request.param == "aiohttp" else "/"
    return f"ws://127.0.0.1:{_peer_port(peers, request.param)}{path}"


# -- the HTTP client ---------------------------------------------------------------------------
@pytest.mark.timeout(15)
def test_keep_alive_requests_share_one_connection(http_base: str) -> None:
    async def main() -> None:
        async with Client() as client:
            ports = set()
            for i in range(20):
                r = await client.get(f"{http_base}/info?i={i}")
                assert r.status == 200 and r.http_version == "1.1"
                body = await r.json()
                assert body["path"] == "/info"
                ports.add(body["port"])
            assert len(ports) == 1, ports  # the server saw a single connection

    yieldio.run(main)


@pytest.mark.timeout(15)
def test_streamed_chunked_megabyte(http_base: str) -> None:
    async def main() -> None:
        async with Client() as client:
            async with client.stream("GET", f"{http_base}/stream") as r:
                assert r.status == 200
                assert r.headers.get("transfer-encoding", "").lower() == "chunked"
                assert "content-length" not in r.headers
                received = bytearray()
                async for chunk in r.iter_bytes():
                    received += chunk
            assert received == STREAM_BODY
            # the connection went back to the pool once the last chunk was read
            again = await client.get(f"{http_base}/info")
            assert again.headers["x-client-port"] == r.headers["x-client-port"]

    yieldio.run(main)


@pytest.mark.timeout(15)
def test_gzip_from_aiohttp_is_decoded(peers: dict[str, int]) -> None:
    base = f"http://127.0.0.1:{_peer_port(peers, 'aiohttp')}"

    async def main() -> None:
        async with Client() as client:
            r = await client.get(f"{base}/gz")
            assert r.headers["content-encoding"] == "gzip"
            assert int(r.headers["content-length"]) < len(GZ_BODY) // 10
            assert await r.read() == GZ_BODY
            async with client.stream("GET", f"{base}/gzstream") as r:
                assert r.headers["content-encoding"] == "gzip"
                assert r.headers["transfer-encoding"].lower() == "chunked"
                raw = b"".join([chunk async for chunk in r.iter_raw()])
            assert len(raw) < len(GZ_BODY) // 10
            r = await client.get(f"{base}/gzstream")
            assert await r.read() == GZ_BODY

    yieldio.run(main)


@pytest.mark.timeout(15)
def test_request_after_the_server_closed_the_idle_connection(http_base: str) -> None:
    async def main() -> None:
        # The client would keep the connection for 30 s; the server drops it after 1 s.
        async with Client(limits=Limits(keep_alive_timeout=30)) as client:
            first = await (await client.get(f"{http_base}/info")).json()
            await yieldio.sleep(1.3)
            r = await client.get(f"{http_base}/info")
            assert r.status == 200
            second = await r.json()
            # a new connection: the kept-alive one was closed by the server
            assert second["port"] != first["port"]
            third = await (await client.get(f"{http_base}/info")).json()
            assert third["port"] == second["port"]

    yieldio.run(main)


# -- the WebSocket client ----------------------------------------------------------------------
@pytest.mark.timeout(15)
def test_websocket_client_against_peer_servers(ws_url: str) -> None:
    async def main() -> None:
        async with connect_websocket(ws_url) as ws:
            await ws.send("héllo")
            assert await ws.receive() == "héllo"
            await ws.send(b"\x00\x01\xff" * 1000)
            assert await ws.receive() == b"\x00\x01\xff" * 1000
            big = "x" * 200_000
            await ws.send(big)
            assert await ws.receive() == big
            # the server closes: its code and reason reach the client
            await ws.send("close-me")
            with pytest.raises(WebSocketClosed):
                await ws.receive()
            assert ws.close_code == 4001
            assert ws.close_reason in ("bye from websockets", "bye from aiohttp")
        # the client closes: its code and reason reach the server
        async with connect_websocket(ws_url) as ws:
            await ws.send("ping")
            assert await ws.receive() == "ping"
            await ws.close(4002, "bye from yieldio")
            assert ws.close_code == 4002
        async with connect_websocket(ws_url) as ws:
            await ws.send("last-close")
            assert await ws.receive() == "4002 bye from yieldio"

    yieldio.run(main)


# -- the WebSocket server ----------------------------------------------------------------------
@pytest.mark.timeout(15)
def test_websocket_server_against_websockets_client() -> None:
    pytest.importorskip("websockets")
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    closes: list[tuple[int | None, str | None]] = []
    router = Router()

    @router.websocket("/echo")
    async def echo(request: Request) -> None:
        ws = await request.accept_websocket()
        try:
            async for message in ws:
                if message == "close-me":
                    await ws.close(4001, "bye from yieldio")
                    break
                await ws.send(message)
        finally:
            closes.append((ws.close_code, ws.close_reason))

    def use_websockets(port: int) -> list[Any]:
        out: list[Any] = []
        url = f"ws://127.0.0.1:{port}/echo"
        with connect(url, open_timeout=5, close_timeout=5) as c:
            c.send("héllo")
            out.append(c.recv(timeout=5))
            c.send(b"\x00\xff" * 500)
            out.append(c.recv(timeout=5))
            c.send(["frag", "ment"])  # a fragmented message
            out.append(c.recv(timeout=5))
            c.close(4002, "bye from websockets")
        with connect(url, open_timeout=5, close_timeout=5) as c:
            c.send("close-me")
            try:
                c.recv(timeout=5)
            except ConnectionClosed as exc:
                assert exc.rcvd is not None
                out.append((exc.rcvd.code, exc.rcvd.reason))
        return out

    async def main() -> None:
        async with serve(router, "127.0.0.1", 0) as server:
            got = await yieldio.to_thread(use_websockets, server.port)
            with yieldio.fail_after(5):
                while len(closes) < 2:
                    await yieldio.sleep(0.01)
            assert server.app_errors == 0
        assert got == ["héllo", b"\x00\xff" * 500, "fragment", (4001, "bye from yieldio")]
        assert closes == [(4002, "bye from websockets"), (4001, "bye from yieldio")]

    yieldio.run(main)
