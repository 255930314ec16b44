"""echo: TCP echo server throughput and CPU cost per request.

What is measured
    The server under test runs in the worker process (pinned to one core). A
    separate load client (``bench/echo_client.c``, the Python fallback
    ``bench/_echo_client.py`` when no compiler is present), pinned to the other
    core, opens ``conns`` connections; each one sends ``size`` bytes, waits for
    the complete echo and repeats, for ``duration`` seconds after a short
    warm-up run. The client is the same program for every runtime and costs a
    small fraction of the server's CPU per request, so the server is the
    bottleneck (the ``client_cpu_pct`` diagnostic shows how busy it was).

Metrics
    ``req_per_s``       completed round trips per second (client's count).
    ``cpu_us_per_req``  server process CPU time (user+sys, from ``time.process_time``)
                        during the measured client run, per round trip. This
                        is the runtime's cost independent of how idle the
                        core was.
    ``user_us_per_req`` / ``sys_us_per_req``
                        the same split into user and system time
                        (``getrusage``). System time is the kernel's
                        work for the runtime's syscalls: one ``recv`` and
                        one ``send`` per request at best (the floor), more
                        for a runtime that makes extra calls or maps large
                        read buffers. User time is what the runtime's own
                        Python costs. The floor's system time bounds every
                        ratio: no server uses less CPU per request than
                        the syscalls it cannot avoid.

Why
    Echo is the smallest workload that exercises the whole I/O path: readiness
    notification, wake-up of the reading task, buffer handling and writes.
    ``floor`` is a hand-written ``select.epoll`` callback loop with no
    framework: what pure Python can do at best.

Every server reads with a 64 KiB buffer and writes back what it got, using
each runtime the way its documentation shows (asyncio and uvloop both with
streams and with a Protocol).
"""

from __future__ import annotations

import asyncio
import select
import socket
from typing import Any

from bench._common import (
    POLL_INTERVAL,
    LoadDriver,
    Skip,
    echo_client_cmd,
    hard_exit,
    request_metrics,
    require,
    require_yieldio,
    tls_files,
)

READ_SIZE = 65536
HOST = "127.0.0.1"
BACKLOG = 1024

#: (name, label, which direction is better)
METRICS = [
    ("req_per_s", "req/s", "higher"),
    ("cpu_us_per_req", "server CPU µs/req", "lower"),
    ("user_us_per_req", "of which user", "lower"),
    ("sys_us_per_req", "of which system", "lower"),
]
BASELINE = "asyncio"


def cases(quick: bool) -> list[dict[str, Any]]:
    """Connection counts × message sizes; quick: 10 conns × 1 KiB, 10 KiB."""
    if quick:
        grid = [(10, 1024), (10, 10 * 1024)]
        duration, warmup = 0.2, 0.05
    else:
        grid = [(c, s) for c in (10, 100) for s in (1024, 10 * 1024, 100 * 1024)]
        duration, warmup = 2.0, 0.5
    return [{"conns": c, "size": s, "duration": duration, "warmup": warmup} for c, s in grid]


def case_label(case: dict[str, Any]) -> str:
    return f"{case['conns']} conns × {case['size'] // 1024} KiB"


# --------------------------------------------------------------------------
# shared pieces
# --------------------------------------------------------------------------


def start_driver(port: int, case: dict[str, Any]) -> LoadDriver:
    """Start warm-up + measured load client runs against *port* in a thread."""
    tls = bool(case.get("tls"))
    c, s = case["conns"], case["size"]
    return LoadDriver(
        echo_client_cmd(port, c, s, case["duration"], tls),
        request_metrics,
        warmup=echo_client_cmd(port, c, s, case["warmup"], tls),
    ).start()


def server_ssl_context(case: dict[str, Any]):
    """A stdlib server-side SSLContext for TLS cases, else None."""
    if not case.get("tls"):
        return None
    import ssl

    cert, key = tls_files()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


# --------------------------------------------------------------------------
# asyncio / uvloop
# --------------------------------------------------------------------------


async def _asyncio_stream_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
    try:
        while data := await reader.read(READ_SIZE):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _asyncio_streams_main(case: dict[str, Any]) -> dict[str, Any]:
    server = await asyncio.start_server(
        _asyncio_stream_handler, HOST, 0, ssl=server_ssl_context(case), backlog=BACKLOG
    )
    drv = start_driver(server.sockets[0].getsockname()[1], case)
    async with server:
        while not drv.finished():
            await asyncio.sleep(POLL_INTERVAL)
    return drv.metrics()


class _EchoProtocol(asyncio.Protocol):
    """The classic asyncio echo protocol: write back whatever arrives."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def _asyncio_proto_main(case: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        _EchoProtocol, HOST, 0, ssl=server_ssl_context(case), backlog=BACKLOG
    )
    drv = start_driver(server.sockets[0].getsockname()[1], case)
    async with server:
        while not drv.finished():
            await asyncio.sleep(POLL_INTERVAL)
    return drv.metrics()


def run_asyncio(case: dict[str, Any]) -> dict[str, Any]:
    """asyncio streams (start_server, StreamReader/StreamWriter)."""
    return asyncio.run(_asyncio_streams_main(case))


def run_asyncio_proto(case: dict[str, Any]) -> dict[str, Any]:
    """asyncio Protocol/Transport (loop.create_server)."""
    return asyncio.run(_asyncio_proto_main(case))


def run_uvloop(case: dict[str, Any]) -> dict[str, Any]:
    """asyncio streams on uvloop's event loop."""
    uvloop = require("uvloop")
    return uvloop.run(_asyncio_streams_main(case))


def run_uvloop_proto(case: dict[str, Any]) -> dict[str, Any]:
    """asyncio Protocol on uvloop's event loop."""
    uvloop = require("uvloop")
    return uvloop.run(_asyncio_proto_main(case))


# --------------------------------------------------------------------------
# trio
# --------------------------------------------------------------------------


def run_trio(case: dict[str, Any]) -> dict[str, Any]:
    """trio.serve_tcp (or serve_ssl_over_tcp) with a SocketStream handler."""
    trio = require("trio")
    from functools import partial

    async def handler(stream) -> None:
        try:
            while data := await stream.receive_some(READ_SIZE):
                await stream.send_all(data)
        except trio.BrokenResourceError:
            pass

    async def main() -> dict[str, Any]:
        ctx = server_ssl_context(case)
        async with trio.open_nursery() as nursery:
            if ctx is None:
                listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host=HOST))
                sock = listeners[0].socket
            else:
                listeners = await nursery.start(
                    partial(trio.serve_ssl_over_tcp, handler, 0, ctx, host=HOST)
                )
                sock = listeners[0].transport_listener.socket
            drv = start_driver(sock.getsockname()[1], case)
            while not drv.finished():
                await trio.sleep(POLL_INTERVAL)
            nursery.cancel_scope.cancel()
        return drv.metrics()

    return trio.run(main)


# --------------------------------------------------------------------------
# curio
# --------------------------------------------------------------------------


def run_curio(case: dict[str, Any]) -> dict[str, Any]:
    """curio's TCP server (curio.network, the machinery of curio.tcp_server).

    ``curio.tcp_server`` cannot report the port it bound, so the listening
    socket is made with ``tcp_server_socket`` (port 0) and served with
    ``run_server``, exactly what ``tcp_server`` does internally.
    """
    curio = require("curio")
    network = require("curio.network")

    async def handler(client, addr) -> None:
        try:
            while data := await client.recv(READ_SIZE):
                await client.sendall(data)
        except OSError:
            pass

    async def main() -> dict[str, Any]:
        ctx = None
        if case.get("tls"):
            import curio.ssl as curiossl

            cert, key = tls_files()
            ctx = curiossl.create_default_context(curiossl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(cert), str(key))
        sock = network.tcp_server_socket(HOST, 0, backlog=BACKLOG)
        port = sock.getsockname()[1]
        task = await curio.spawn(network.run_server, sock, handler, ctx)
        drv = start_driver(port, case)
        while not drv.finished():
            await curio.sleep(POLL_INTERVAL)
        await task.cancel()
        return drv.metrics()

    return curio.run(main)


# --------------------------------------------------------------------------
# floor: hand-written epoll loop, no framework
# --------------------------------------------------------------------------


def run_floor(case: dict[str, Any]) -> dict[str, Any]:
    """Level-triggered ``select.epoll`` loop with non-blocking sockets.

    No tasks, no futures, no callbacks objects: one ``recv`` per readable
    event, one ``send`` of what was read, a pending buffer and EPOLLOUT only
    when the kernel did not take everything. The pure-Python lower bound.
    """
    if case.get("tls"):
        raise Skip("floor has no TLS variant")
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((HOST, 0))
    lsock.listen(BACKLOG)
    lsock.setblocking(False)
    lfd = lsock.fileno()
    ep = select.epoll()
    ep.register(lfd, select.EPOLLIN)
    EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
    EPOLLIN_OUT = EPOLLIN | EPOLLOUT
    socks: dict[int, socket.socket] = {}
    pending: dict[int, bytes] = {}

    def close(fd: int) -> None:
        ep.unregister(fd)
        socks.pop(fd).close()
        pending.pop(fd, None)

    drv = start_driver(lsock.getsockname()[1], case)
    finished = drv.finished
    while not finished():
        for fd, ev in ep.poll(POLL_INTERVAL):
            if fd == lfd:
                while True:
                    try:
                        conn, _ = lsock.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    socks[conn.fileno()] = conn
                    ep.register(conn.fileno(), EPOLLIN)
                continue
            s = socks[fd]
            if ev & EPOLLOUT:
                buf = pending[fd]
                try:
                    n = s.send(buf)
                except BlockingIOError:
                    n = 0
                except OSError:
                    close(fd)
                    continue
                if n == len(buf):
                    del pending[fd]
                    ep.modify(fd, EPOLLIN)
                else:
                    pending[fd] = buf[n:]
            if ev & ~EPOLLOUT:
                try:
                    data = s.recv(READ_SIZE)
                except BlockingIOError:
                    continue
                except OSError:
                    close(fd)
                    continue
                if not data:
                    close(fd)
                    continue
                if fd in pending:
                    pending[fd] += data
                    continue
                try:
                    n = s.send(data)
                except BlockingIOError:
                    n = 0
                except OSError:
                    close(fd)
                    continue
                if n < len(data):
                    pending[fd] = data[n:]
                    ep.modify(fd, EPOLLIN_OUT)
    for fd in list(socks):
        close(fd)
    ep.close()
    lsock.close()
    return drv.metrics()


# --------------------------------------------------------------------------
# yieldio
# --------------------------------------------------------------------------


async def _yieldio_watch(yio, drv: LoadDriver, stop=None) -> None:
    """Wait for the load client, then stop the server via *stop*.

    Without a *stop* callable, report and exit the process right away (see
    hard_exit): the numbers are final and the benchmark does not depend on
    how a yieldio server shuts down. The LoadDriver watchdog does the same if
    a stopped server fails to return.
    """
    while not drv.finished():
        await yio.sleep(POLL_INTERVAL)
    if stop is not None:
        stop()
        return
    result = drv.metrics()
    hard_exit(result["metrics"], result["info"])


def run_yieldio(case: dict[str, Any]) -> dict[str, Any]:
    """yieldio.serve_tcp with a stream handler (read/write)."""
    yio = require_yieldio("run", "TaskGroup", "sleep", "serve_tcp")
    kwargs = {}
    ctx = server_ssl_context(case)
    if ctx is not None:
        import inspect

        try:
            params = inspect.signature(yio.serve_tcp).parameters
        except (TypeError, ValueError):
            params = {}
        if "ssl" not in params:
            raise Skip("yieldio.serve_tcp has no ssl= parameter (not built yet)")
        kwargs["ssl"] = ctx

    async def handler(stream) -> None:
        while data := await stream.read(READ_SIZE):
            await stream.write(data)

    async def main() -> LoadDriver:
        async with yio.serve_tcp(handler, HOST, 0, backlog=BACKLOG, **kwargs) as server:
            drv = start_driver(server.port, case)
            async with yio.TaskGroup() as tg:
                tg.spawn(_yieldio_watch, yio, drv, getattr(server, "close", None))
                await server.serve_forever()
        return drv

    return yio.run(main).metrics()


def run_yieldio_socket(case: dict[str, Any]) -> dict[str, Any]:
    """yieldio.socket: accept loop + one task per connection, recv/sendall."""
    if case.get("tls"):
        raise Skip("yieldio-socket has no TLS variant")
    yio = require_yieldio("run", "TaskGroup", "sleep")
    ysock = require_yieldio("socket", module="yieldio.socket")

    async def handler(conn) -> None:
        try:
            while data := await conn.recv(READ_SIZE):
                await conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()

    async def main() -> None:
        lsock = ysock.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((HOST, 0))
        lsock.listen(BACKLOG)
        drv = start_driver(lsock.getsockname()[1], case)
        async with yio.TaskGroup() as tg:
            tg.spawn(_yieldio_watch, yio, drv)
            while True:
                conn, _ = await lsock.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                tg.spawn(handler, conn)

    yio.run(main)
    raise RuntimeError("yieldio server returned before the measurement finished")


RUNTIMES = {
    "asyncio": run_asyncio,
    "asyncio-proto": run_asyncio_proto,
    "uvloop": run_uvloop,
    "uvloop-proto": run_uvloop_proto,
    "trio": run_trio,
    "curio": run_curio,
    "floor": run_floor,
    "yieldio": run_yieldio,
    "yieldio-socket": run_yieldio_socket,
}
