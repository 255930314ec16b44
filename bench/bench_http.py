"""http: HTTP/1.1 keep-alive throughput of small and medium responses.

What is measured
    ``hello``  ``GET /`` → 200, ``text/plain``, 13 bytes ("Hello, world!").
    ``json``   ``GET /json`` → 200, ``application/json``, a 10 KiB document
               (serialised once at start-up: JSON encoding is the same cost
               everywhere and not the runtime's).

    The server runs in the worker process (pinned to one core); ``wrk``
    (``-t1``, pinned to the other core; ``--latency``) drives ``conns``
    keep-alive connections for ``duration`` whole seconds after a 0.2 s
    warm-up by the Python client. Without wrk, ``bench/_http_client.py`` is
    the load generator (slower: it can be the bottleneck, see
    ``client_cpu_pct``).

Servers
    ``asyncio-h11``        asyncio streams + h11, written out by hand: the
                           same protocol library yieldio.http builds on, so
                           the ratio column isolates the runtime (baseline).
    ``uvicorn-h11``        uvicorn, ``http="h11"``, ``loop="uvloop"``.
    ``uvicorn-httptools``  uvicorn, ``http="httptools"`` (C parser), uvloop.
    ``hypercorn-trio``     hypercorn's trio worker.
    ``aiohttp``            aiohttp.web on the default asyncio loop.
    ``yieldio``            yieldio.http (h11 + yieldio streams); skipped
                           while yieldio.http is not importable.

    uvicorn and hypercorn serve the same ASGI app; all run with access logs
    off and otherwise default settings.

Metrics
    ``req_per_s``       requests per second reported by the load generator.
    ``cpu_us_per_req``  server process CPU (user+sys) per request during the
                        measured run. ``latency_p99_ms`` is in ``info``.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import threading
from typing import Any

from bench._common import (
    BENCH_DIR,
    POLL_INTERVAL,
    LoadDriver,
    c_client,
    python_exe,
    request_metrics,
    require,
    require_yieldio,
)

HOST = "127.0.0.1"
BACKLOG = 1024
METRICS = [
    ("req_per_s", "req/s", "higher"),
    ("cpu_us_per_req", "server CPU µs/req", "lower"),
]
BASELINE = "asyncio-h11"

HELLO = b"Hello, world!"


def _json_document(size: int = 10 * 1024) -> bytes:
    """A deterministic JSON document of about *size* bytes (a list of records)."""
    items: list[dict[str, Any]] = []
    while True:
        body = json.dumps({"items": items}, separators=(",", ":")).encode()
        if len(body) >= size:
            return body
        i = len(items)
        items.append({"id": i, "name": f"item-{i:04d}", "price": i * 1.25, "tags": ["a", "b"]})


JSON_BODY = _json_document()
ROUTES = {"/": (HELLO, b"text/plain"), "/json": (JSON_BODY, b"application/json")}


def cases(quick: bool) -> list[dict[str, Any]]:
    """hello and json, 50 keep-alive connections; quick: hello only, C client."""
    if quick:
        return [{"path": "/", "conns": 50, "duration": 0.2, "warmup": 0.05, "tool": "c"}]
    return [
        {"path": p, "conns": 50, "duration": 3, "warmup": 0.3, "tool": "wrk"}
        for p in ("/", "/json")
    ]


def case_label(case: dict[str, Any]) -> str:
    body = ROUTES[case["path"]][0]
    name = "hello" if case["path"] == "/" else "json"
    return f"{name} ({len(body):,} B), {case['conns']} conns"


# --------------------------------------------------------------------------
# load generation
# --------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def parse_wrk(out: str) -> dict[str, Any]:
    """Requests, rate, p99 latency and error counts from ``wrk --latency``."""
    m = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if not m or not rate:
        raise RuntimeError(f"cannot parse wrk output: {out[-500:]!r}")
    requests = int(m.group(1))
    raw: dict[str, Any] = {
        "requests": requests,
        "seconds": requests / max(float(rate.group(1)), 1e-9),
    }
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    if p99:
        raw["latency_p99_ms"] = round(float(p99.group(1)) * _UNITS[p99.group(2)], 3)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if non2xx:
        raw["non_2xx"] = int(non2xx.group(1))
    sock_err = re.search(r"Socket errors: (.*)", out)
    if sock_err:
        raw["socket_errors"] = sock_err.group(1).strip()
    return raw


def start_driver(port: int, case: dict[str, Any]) -> LoadDriver:
    """Warm-up, then the measured run with the case's load tool.

    ``tool`` is "wrk" (full runs; whole seconds, with latency percentiles)
    or "c" (bench/http_client.c; sub-second windows for --quick). A missing
    wrk falls back to the C client, a missing C client to the Python one.
    """
    path, conns, duration = case["path"], case["conns"], case["duration"]
    args = [HOST, str(port), path]
    c_exe = c_client("http_client")
    loader = [c_exe, *args] if c_exe else [python_exe(), str(BENCH_DIR / "_http_client.py"), *args]
    warmup = [*loader, "4", f"{case.get('warmup', 0.2):g}"]
    wrk = shutil.which("wrk")
    if case.get("tool") == "wrk" and wrk:
        measured = [
            wrk,
            "-t1",
            f"-c{conns}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            f"http://{HOST}:{port}{path}",
        ]
        return LoadDriver(measured, _checked, warmup=warmup, parse=parse_wrk).start()
    return LoadDriver([*loader, str(conns), f"{duration:g}"], _checked, warmup=warmup).start()


def _checked(raw: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    metrics, info = request_metrics(raw)
    if raw.get("non_2xx"):
        raise RuntimeError(f"{raw['non_2xx']} non-2xx responses")
    return metrics, info


def listen_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(BACKLOG)
    return sock


async def asgi_app(scope, receive, send) -> None:
    """The ASGI app served by uvicorn and hypercorn (and lifespan-aware)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body, ctype = ROUTES.get(scope["path"], (b"not found", b"text/plain"))
    await send(
        {
            "type": "http.response.start",
            "status": 200 if scope["path"] in ROUTES else 404,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------
# asyncio + h11 (baseline)
# --------------------------------------------------------------------------


def run_asyncio_h11(case: dict[str, Any]) -> dict[str, Any]:
    """A minimal keep-alive HTTP/1.1 server: asyncio streams + h11."""
    h11 = require("h11")

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Request):
                    body, ctype = ROUTES.get(event.target.decode(), (b"", b"text/plain"))
                    out = conn.send(
                        h11.Response(
                            status_code=200,
                            headers=[
                                (b"content-type", ctype),
                                (b"content-length", str(len(body)).encode()),
                            ],
                        )
                    )
                    out += conn.send(h11.Data(data=body))
                    out += conn.send(h11.EndOfMessage())
                    writer.write(out)
                    await writer.drain()
                elif isinstance(event, h11.EndOfMessage):
                    conn.start_next_cycle()
                else:  # ConnectionClosed (or anything unexpected)
                    break
        except (ConnectionError, h11.RemoteProtocolError):
            pass
        finally:
            writer.close()

    async def main() -> LoadDriver:
        sock = listen_socket()
        server = await asyncio.start_server(handler, sock=sock)
        drv = start_driver(sock.getsockname()[1], case)
        async with server:
            while not drv.finished():
                await asyncio.sleep(POLL_INTERVAL)
        return drv

    return asyncio.run(main()).metrics()


# --------------------------------------------------------------------------
# uvicorn (on uvloop)
# --------------------------------------------------------------------------


def _run_uvicorn(case: dict[str, Any], http: str) -> dict[str, Any]:
    uvicorn = require("uvicorn")
    require("uvloop")
    require("httptools" if http == "httptools" else "h11")
    config = uvicorn.Config(
        asgi_app,
        loop="uvloop",
        http=http,
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    sock = listen_socket()
    drv = start_driver(sock.getsockname()[1], case)

    def stop_when_done() -> None:
        drv.done.wait()
        server.should_exit = True  # uvicorn polls this flag every 0.1 s

    threading.Thread(target=stop_when_done, daemon=True).start()
    server.run(sockets=[sock])
    return drv.metrics()


def run_uvicorn_h11(case: dict[str, Any]) -> dict[str, Any]:
    return _run_uvicorn(case, "h11")


def run_uvicorn_httptools(case: dict[str, Any]) -> dict[str, Any]:
    return _run_uvicorn(case, "httptools")


# --------------------------------------------------------------------------
# hypercorn (trio worker)
# --------------------------------------------------------------------------


def run_hypercorn_trio(case: dict[str, Any]) -> dict[str, Any]:
    trio = require("trio")
    require("hypercorn")
    from hypercorn.config import Config
    from hypercorn.trio import serve

    sock = listen_socket()
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.loglevel = "WARNING"

    async def main() -> LoadDriver:
        drv = start_driver(sock.getsockname()[1], case)

        async def shutdown_trigger() -> None:
            while not drv.finished():
                await trio.sleep(POLL_INTERVAL)

        await serve(asgi_app, config, shutdown_trigger=shutdown_trigger)
        return drv

    return trio.run(main).metrics()


# --------------------------------------------------------------------------
# aiohttp
# --------------------------------------------------------------------------


def run_aiohttp(case: dict[str, Any]) -> dict[str, Any]:
    web = require("aiohttp.web")

    async def hello(request) -> Any:
        return web.Response(body=HELLO, content_type="text/plain")

    async def json_doc(request) -> Any:
        return web.Response(body=JSON_BODY, content_type="application/json")

    async def main() -> LoadDriver:
        app = web.Application()
        app.router.add_get("/", hello)
        app.router.add_get("/json", json_doc)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = listen_socket()
        site = web.SockSite(runner, sock)
        await site.start()
        drv = start_driver(sock.getsockname()[1], case)
        try:
            while not drv.finished():
                await asyncio.sleep(POLL_INTERVAL)
        finally:
            await runner.cleanup()
        return drv

    return asyncio.run(main()).metrics()


# --------------------------------------------------------------------------
# yieldio.http
# --------------------------------------------------------------------------


def run_yieldio(case: dict[str, Any]) -> dict[str, Any]:
    """yieldio.http: ``serve(app, host, port)`` with ``app(request) -> Response``.

    Written against the yieldio.http API as it is being built
    (``src/yieldio/http/_server.py``: ``async with serve(...) as server``,
    ``server.port``, ``serve_forever()``, ``close()``); skipped while
    ``yieldio.http`` is not importable. It binds its own port, so the load
    client is started once ``server.port`` is known.
    """
    yio = require_yieldio("run", "TaskGroup", "sleep")
    yhttp = require_yieldio("serve", "Response", module="yieldio.http")
    Response = yhttp.Response

    async def app(request) -> Any:
        # One Response per request, like the other servers build theirs.
        body, ctype = ROUTES.get(request.path, (b"not found", b"text/plain"))
        status = 200 if request.path in ROUTES else 404
        return Response(status, {"content-type": ctype.decode()}, body)

    async def main() -> LoadDriver:
        async with yhttp.serve(app, HOST, 0, backlog=BACKLOG) as server:
            drv = start_driver(server.port, case)

            async def stop_when_done() -> None:
                while not drv.finished():
                    await yio.sleep(POLL_INTERVAL)
                server.close()

            async with yio.TaskGroup() as tg:
                tg.spawn(stop_when_done)
                await server.serve_forever()
        return drv

    return yio.run(main).metrics()


RUNTIMES = {
    "asyncio-h11": run_asyncio_h11,
    "uvicorn-h11": run_uvicorn_h11,
    "uvicorn-httptools": run_uvicorn_httptools,
    "hypercorn-trio": run_hypercorn_trio,
    "aiohttp": run_aiohttp,
    "yieldio": run_yieldio,
}
