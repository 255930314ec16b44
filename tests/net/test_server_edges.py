"""serve_tcp / open_tcp_stream at the edges, on real loopback sockets (no mocks)."""

from __future__ import annotations

import errno
import logging
import socket as stdsocket
import subprocess
import sys
import textwrap

import pytest

import yieldio
from yieldio.net import OSNetwork

from .conftest import needs_ipv6


async def echo(stream):
    async for data in stream:
        await stream.write(data)


def closed_port(host: str = "127.0.0.1") -> int:
    family = stdsocket.AF_INET6 if ":" in host else stdsocket.AF_INET
    with stdsocket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# -- handler errors ------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_a_reset_inside_a_handlers_task_group_is_a_disconnect_not_a_handler_error(caplog):
    # A proxy-style handler runs its pumps in a TaskGroup, so a client that
    # goes away arrives wrapped in an ExceptionGroup. It was logged at ERROR
    # with a traceback and counted in handler_errors, for every disconnect.
    async def handler(stream):
        async def pump():
            await stream.read()
            raise ConnectionResetError(errno.ECONNRESET, "reset by peer")

        async with yieldio.TaskGroup() as tg:
            tg.spawn(pump)

    async def main():
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as s:
                await s.write(b"x")
                assert await s.read() == b""
            with yieldio.fail_after(5):
                while server.connections:
                    await yieldio.sleep(0.005)
            assert (server.disconnects, server.handler_errors) == (1, 0)

    with caplog.at_level(logging.INFO, logger="yieldio.server"):
        yieldio.run(main)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.timeout(10)
def test_a_group_with_a_real_error_beside_a_reset_is_still_a_handler_error(caplog):
    async def handler(stream):
        raise ExceptionGroup("pumps", [BrokenPipeError(errno.EPIPE, "gone"),
                                       ValueError("handler bug")])

    async def main():
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as s:
                assert await s.read() == b""
            with yieldio.fail_after(5):
                while server.connections:
                    await yieldio.sleep(0.005)
            assert (server.disconnects, server.handler_errors) == (0, 1)

    with caplog.at_level(logging.ERROR, logger="yieldio.server"):
        yieldio.run(main)
    (record,) = [r for r in caplog.records if r.name == "yieldio.server"]
    assert record.exc_info is not None and "handler bug" in caplog.text


@pytest.mark.timeout(10)
def test_a_plain_function_handler_is_named_in_a_clear_error(caplog):
    # Each connection logged "object NoneType can't be used in 'await'
    # expression", naming neither the handler nor the fix.
    def handler(stream):  # forgot 'async'
        pass

    @yieldio.coroutine
    def generator_handler(stream):  # a generator coroutine is awaitable: fine
        yield from stream.write(b"ok")

    async def main():
        for fn in (handler, generator_handler):
            async with yieldio.serve_tcp(fn, "127.0.0.1", 0) as server:
                async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as s:
                    assert await s.read() == (b"" if fn is handler else b"ok")
                with yieldio.fail_after(5):
                    while server.connections:
                        await yieldio.sleep(0.005)
                assert server.handler_errors == (fn is handler)

    with caplog.at_level(logging.ERROR, logger="yieldio.server"):
        yieldio.run(main)
    (record,) = [r for r in caplog.records if r.name == "yieldio.server"]
    assert ("the connection handler 'test_a_plain_function_handler_is_named_in_a_clear_error."
            "<locals>.handler' returned None, not an awaitable: define it as 'async def "
            "handler(stream)'") in caplog.text


# -- binding -----------------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_a_port_in_use_error_says_which_address():
    # The stdlib's "[Errno 98] Address already in use" does not name the
    # address; with host=None or "localhost" a server binds several.
    with stdsocket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def main():
            with pytest.raises(OSError) as info:
                async with yieldio.serve_tcp(echo, "127.0.0.1", port):
                    pass
            assert info.value.errno == errno.EADDRINUSE
            assert f"127.0.0.1:{port}" in str(info.value)

        yieldio.run(main)  # the autouse fixture checks that the socket was closed


# -- clients -------------------------------------------------------------------------------------


class V6ThenV4(OSNetwork):
    """'dual.test' resolves as a dual-stack 'localhost' does: ::1 first, then 127.0.0.1."""

    async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        if host == "dual.test":
            v6 = await super().getaddrinfo("::1", port, family, type, proto, flags)
            v4 = await super().getaddrinfo("127.0.0.1", port, family, type, proto, flags)
            return v6 + v4
        return await super().getaddrinfo(host, port, family, type, proto, flags)


@needs_ipv6
@pytest.mark.timeout(10)
def test_happy_eyeballs_falls_back_to_ipv4_at_once_when_ipv6_refuses():
    async def main():
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0) as server:
            start = yieldio.current_time()
            # A long delay: only the refusal can start the IPv4 attempt early.
            stream = await yieldio.open_tcp_stream("dual.test", server.port,
                                                   happy_eyeballs_delay=30)
            async with stream:
                assert stream.get_extra_info("peername") == ("127.0.0.1", server.port)
                await stream.write(b"v4")
                assert await stream.read() == b"v4"
            assert yieldio.current_time() - start < 5

    yieldio.run(main, network=V6ThenV4())


@pytest.mark.timeout(10)
def test_cancelling_open_tcp_stream_mid_connect_closes_every_attempt():
    # A listener with a full backlog is a black hole: connects to it hang.
    hole = stdsocket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    fillers = []

    class TwoHoles(OSNetwork):
        async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
            info = (stdsocket.AF_INET, stdsocket.SOCK_STREAM, 6, "", hole.getsockname())
            return [info, info]

    async def main():
        for _ in range(4):
            f = stdsocket.socket()
            fillers.append(f)
            f.setblocking(False)
            try:
                f.connect(hole.getsockname())
            except BlockingIOError:
                pass
        with yieldio.move_on_after(0.2) as scope:
            await yieldio.open_tcp_stream("holes.test", 1, happy_eyeballs_delay=0.01)
        assert scope.cancelled_caught

    try:
        yieldio.run(main, network=TwoHoles())  # the autouse fixture: no fd leaked
    finally:
        for f in fillers:
            f.close()
        hole.close()


# -- running out of file descriptors ---------------------------------------------------------

_EMFILE_SERVER = textwrap.dedent("""
    import logging, os, resource, socket
    import yieldio

    async def hello(stream):
        await stream.write(b"hi")

    class Signal(logging.Handler):
        def __init__(self, event):
            super().__init__()
            self.event = event
        def emit(self, record):
            if "EMFILE" in record.getMessage():
                self.event.set()

    async def main():
        out_of_fds = yieldio.Event()
        log = logging.getLogger("yieldio.server")
        log.setLevel(logging.WARNING)
        log.propagate = False
        log.addHandler(Signal(out_of_fds))
        with yieldio.fail_after(5):
            async with yieldio.serve_tcp(hello, "127.0.0.1", 0) as server:
                client = yieldio.socket.socket()
                hog = []
                try:
                    while True:
                        hog.append(os.open(os.devnull, os.O_RDONLY))
                except OSError as exc:
                    assert exc.errno == 24, exc
                # The connection completes in the kernel's backlog; accept() cannot take it.
                await client.connect(("127.0.0.1", server.port))
                await out_of_fds.wait()
                assert server.accepted == 0
                for fd in hog:
                    os.close(fd)
                assert await client.recv(10) == b"hi"  # accepted once fds were free
                client.close()
                async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as s:
                    assert await s.read() == b"hi"  # and the server keeps serving
                assert server.accepted == 2
        print("ok")

    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    yieldio.run(main)
""")


@pytest.mark.timeout(20)
def test_serve_tcp_survives_running_out_of_fds_and_accepts_once_they_are_free():
    proc = subprocess.run([sys.executable, "-c", _EMFILE_SERVER], capture_output=True,
                          text=True, timeout=15)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n"


# -- closing, asyncio's and trio's way ---------------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("how", ["close_then_wait_closed", "aclose"])
def test_close_and_wait_closed_or_aclose_end_handlers_and_free_the_port(how):
    log = []

    async def handler(stream):
        try:
            await yieldio.sleep_forever()
        finally:
            log.append("handler ended")

    async def main():
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            port = server.port
            client = await yieldio.open_tcp_stream("127.0.0.1", port)
            while server.connections == 0:
                await yieldio.sleep(0.01)
            if how == "aclose":
                await server.aclose()
            else:
                server.close()
                await server.wait_closed()
            assert log == ["handler ended"] and server.connections == 0
            with pytest.raises(OSError):
                await yieldio.open_tcp_stream("127.0.0.1", port)
            await client.aclose()
        return "ok"

    assert yieldio.run(main) == "ok"


def test_wait_closed_before_entering_is_a_clear_error():
    async def main():
        server = yieldio.serve_tcp(echo, "127.0.0.1", 0)
        with pytest.raises(RuntimeError, match="async with serve_tcp"):
            await server.wait_closed()
        with pytest.raises(RuntimeError, match="async with serve_tcp"):
            await server.aclose()

    yieldio.run(main)


def test_a_client_hanging_up_before_the_tls_handshake_is_logged_quietly(server_context, caplog):
    # Health checks and port scans connect and hang up: counted as failed
    # handshakes, logged at INFO; a client speaking plain text is a WARNING.
    async def main():
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0, ssl=server_context) as server:
            with stdsocket.create_connection(("127.0.0.1", server.port)):
                pass  # connect, say nothing, hang up
            while server.tls_errors < 1:
                await yieldio.sleep(0.01)
            with stdsocket.create_connection(("127.0.0.1", server.port)) as plain:
                plain.sendall(b"GET / HTTP/1.0\r\n\r\n")
                while server.tls_errors < 2:
                    await yieldio.sleep(0.01)

    with caplog.at_level(logging.INFO, logger="yieldio.server"):
        yieldio.run(main)
    levels = [(r.levelname, "hung up" in r.getMessage()) for r in caplog.records
              if "TLS handshake" in r.getMessage()]
    assert levels == [("INFO", True), ("WARNING", False)], caplog.text
