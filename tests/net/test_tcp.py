"""open_tcp_stream, Happy Eyeballs and serve_tcp, on real loopback sockets."""

from __future__ import annotations

import errno
import logging
import os
import socket as stdsocket

import pytest

import yieldio
from yieldio.net import OSNetwork, Server, happy_eyeballs
from yieldio.net._tcp import interleave_families
from yieldio.testing import VirtualClock

from .conftest import needs_ipv6


async def echo(stream):
    async for data in stream:
        await stream.write(data)


def closed_port() -> int:
    with stdsocket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- client and server together -------------------------------------------------------


def test_echo_through_serve_tcp_and_open_tcp_stream():
    async def main():
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0) as server:
            assert isinstance(server, Server)
            assert server.addresses == [("127.0.0.1", server.port)]
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as stream:
                await stream.write(b"hello\n")
                assert await stream.readline() == b"hello\n"
                assert stream.get_extra_info("peername") == ("127.0.0.1", server.port)
            assert server.accepted == 1

    yieldio.run(main)


def test_open_tcp_stream_resolves_names():
    async def main():
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0) as server:
            async with await yieldio.open_tcp_stream("localhost", server.port) as stream:
                await stream.write(b"x")
                assert await stream.read() == b"x"

    yieldio.run(main)


@needs_ipv6
def test_ipv6_loopback():
    async def main():
        async with yieldio.serve_tcp(echo, "::1", 0) as server:
            assert server.addresses[0][0] == "::1"
            async with await yieldio.open_tcp_stream("::1", server.port) as stream:
                assert stream.get_extra_info("family") == stdsocket.AF_INET6
                await stream.write(b"six")
                assert await stream.read() == b"six"

    yieldio.run(main)


@needs_ipv6
def test_serving_several_addresses_with_port_zero_uses_one_port():
    class TwoLoopbacks(OSNetwork):
        async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
            if host == "both-loopbacks":
                v4 = await super().getaddrinfo("127.0.0.1", port, family, type, proto, flags)
                v6 = await super().getaddrinfo("::1", port, family, type, proto, flags)
                return v4 + v6
            return await super().getaddrinfo(host, port, family, type, proto, flags)

    async def main():
        async with yieldio.serve_tcp(echo, "both-loopbacks", 0) as server:
            hosts = sorted(addr[0] for addr in server.addresses)
            assert hosts == ["127.0.0.1", "::1"]
            assert len({addr[1] for addr in server.addresses}) == 1
            for host in ("127.0.0.1", "::1"):
                async with await yieldio.open_tcp_stream(host, server.port) as s:
                    await s.write(host.encode())
                    assert await s.read() == host.encode()

    yieldio.run(main, network=TwoLoopbacks())


def test_local_address_binds_the_client_side():
    async def main():
        peers = []

        async def handler(stream):
            peers.append(stream.get_extra_info("peername"))

        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port,
                                                   local_address="127.0.0.1")
            async with stream:
                assert await stream.read() == b""  # the handler returned: closed
        assert peers[0][0] == "127.0.0.1"
        with pytest.raises(ValueError, match="IP address"):
            await yieldio.open_tcp_stream("127.0.0.1", server.port, local_address="nope")

    yieldio.run(main)


def test_connecting_to_a_closed_port_raises_connection_refused():
    async def main():
        port = closed_port()
        with pytest.raises(ConnectionRefusedError) as info:
            await yieldio.open_tcp_stream("127.0.0.1", port)
        assert len(info.value.errors) == 1
        assert info.value.errno == errno.ECONNREFUSED
        # The address and the cause are each said once (an IP literal is its one address).
        message = str(info.value)
        assert message == f"[Errno {errno.ECONNREFUSED}] cannot connect to 127.0.0.1:{port}: " \
                          f"{os.strerror(errno.ECONNREFUSED)}"
        assert isinstance(info.value.__cause__, ExceptionGroup)
        assert info.value.__cause__.exceptions[0] is info.value.errors[0]

    yieldio.run(main)


def test_unknown_host_raises_gaierror():
    async def main():
        with yieldio.fail_after(20):
            with pytest.raises(stdsocket.gaierror):
                await yieldio.open_tcp_stream("nonexistent.invalid", 80)

    yieldio.run(main)


def test_bad_arguments_are_clear_errors():
    async def handler(stream):
        pass

    async def main():
        with pytest.raises(TypeError, match="port"):
            await yieldio.open_tcp_stream("127.0.0.1", "80")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="host"):
            await yieldio.open_tcp_stream(None, 80)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="ssl"):
            await yieldio.open_tcp_stream("127.0.0.1", 80, ssl="yes")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="server_hostname"):
            await yieldio.open_tcp_stream("127.0.0.1", 80, server_hostname="x")
        with pytest.raises(TypeError, match="SSLContext"):
            yieldio.serve_tcp(handler, "127.0.0.1", 0, ssl=True)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="handler"):
            yieldio.serve_tcp("not callable", "127.0.0.1", 0)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="backlog"):
            yieldio.serve_tcp(handler, "127.0.0.1", 0, backlog=0)

    yieldio.run(main)


def test_a_port_out_of_range_is_refused_not_wrapped_around():
    # getaddrinfo() takes the port modulo 65536: port 70000 used to connect
    # to (and serve on) port 4464 without a word; -1 gave a cryptic gaierror.
    async def handler(stream):
        pass

    async def main():
        for port in (70000, 65536, -1):
            with pytest.raises(ValueError, match="port"):
                await yieldio.open_tcp_stream("127.0.0.1", port)
            with pytest.raises(ValueError, match="port"):
                yieldio.serve_tcp(handler, "127.0.0.1", port)

    yieldio.run(main)


def test_serve_tcp_refuses_a_host_of_the_wrong_type_when_called():
    # It came only at 'async with', as the resolver's "getaddrinfo() argument
    # 1 must be string or None", which names neither serve_tcp nor host.
    async def handler(stream):
        pass

    async def main():
        for host in (123, ["127.0.0.1"], ("127.0.0.1", 0)):
            with pytest.raises(TypeError, match="host must be a str, bytes or None"):
                yieldio.serve_tcp(handler, host, 0)  # type: ignore[arg-type]

    yieldio.run(main)


def test_a_tls_host_that_cannot_be_a_server_name_fails_before_connecting():
    # server_hostname was derived from a bytes host only after the connection
    # was made, outside the try that closes it: a non-ASCII name leaked it.
    connects = []

    class LoopbackNetwork(OSNetwork):
        async def connect_tcp(self, host, port, **kw):  # every name is 127.0.0.1
            connects.append(host)
            return await super().connect_tcp("127.0.0.1", port, **kw)

    async def main():
        with stdsocket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            before = len(os.listdir("/proc/self/fd"))
            with pytest.raises(UnicodeDecodeError):
                await yieldio.open_tcp_stream(b"caf\xc3\xa9.example", port, ssl=True)
            assert connects == []
            assert len(os.listdir("/proc/self/fd")) == before

    yieldio.run(main, network=LoopbackNetwork())


# -- Happy Eyeballs -------------------------------------------------------------------------


def test_interleave_families_alternates_keeping_the_first_family_first():
    targets = [(6, "a"), (6, "b"), (6, "c"), (4, "d")]
    assert interleave_families(targets, lambda t: t[0]) == [(6, "a"), (4, "d"), (6, "b"),
                                                           (6, "c")]
    assert interleave_families([], lambda t: t) == []


class FakeConn:
    def __init__(self, name):
        self.name = name
        self.closed = False

    async def aclose(self):
        self.closed = True


def run_eyeballs(plan, delay=0.25):
    """plan: name -> (seconds until the outcome, "ok" or an OSError). Virtual time."""
    log = []
    made = {}

    async def connect(name):
        seconds, outcome = plan[name]
        log.append((yieldio.current_time(), "start", name))
        try:
            await yieldio.sleep(seconds)
        except yieldio.Cancelled:
            log.append((yieldio.current_time(), "cancelled", name))
            raise
        if outcome != "ok":
            log.append((yieldio.current_time(), "failed", name))
            raise outcome
        made[name] = FakeConn(name)
        return made[name]

    async def main():
        return await happy_eyeballs(list(plan), connect, delay)

    clock = VirtualClock(autojump=True)
    try:
        result = yieldio.run(main, clock=clock)
    except OSError as exc:
        return exc, log, made
    return result, log, made


def test_happy_eyeballs_staggers_attempts_and_the_first_success_wins():
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    winner, log, made = run_eyeballs({"a": (10, "ok"), "b": (1, "ok"), "c": (0.1, refused)})
    assert winner.name == "b"
    assert log[:2] == [(0.0, "start", "a"), (0.25, "start", "b")]
    assert (0.5, "start", "c") in log  # b still running at 0.5: c starts on schedule
    assert (1.25, "cancelled", "a") in log  # the losers are cancelled when b wins
    assert not made["b"].closed


def test_happy_eyeballs_starts_the_next_attempt_at_once_when_one_fails():
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    winner, log, _ = run_eyeballs({"a": (0.01, refused), "b": (0.01, "ok")})
    assert winner.name == "b"
    assert (0.01, "start", "b") in log


def test_happy_eyeballs_closes_a_late_second_success():
    # With delay 0, both attempts run together and both succeed at the same time.
    winner, _, made = run_eyeballs({"a": (1, "ok"), "b": (1, "ok")}, delay=0)
    losers = [c for c in made.values() if c is not winner]
    assert all(c.closed for c in losers)
    assert not winner.closed


def test_happy_eyeballs_all_refused_is_one_connection_refused_error_with_every_cause():
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    exc, _, _ = run_eyeballs({"a": (0.1, refused), "b": (0.2, refused)})
    assert isinstance(exc, ConnectionRefusedError)
    assert len(exc.errors) == 2
    assert isinstance(exc.__cause__, ExceptionGroup)
    assert "'a': " in str(exc) and "'b': " in str(exc)


def test_happy_eyeballs_mixed_failures_are_a_plain_os_error():
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    unreachable = OSError(errno.ENETUNREACH, "unreachable")
    exc, _, _ = run_eyeballs({"a": (0.1, refused), "b": (0.1, unreachable)})
    assert type(exc) is OSError
    assert exc.errors == [refused, unreachable]


def test_happy_eyeballs_mixed_failures_list_each_address_with_its_own_error():
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    unreachable = OSError(errno.ENETUNREACH, "unreachable")
    exc, _, _ = run_eyeballs({"a": (0.1, refused), "b": (0.2, unreachable)})
    assert exc.errno is None
    assert str(exc) == (f"connection failed (2 addresses tried): "
                        f"'a': {os.strerror(errno.ECONNREFUSED)}; "
                        f"'b': {os.strerror(errno.ENETUNREACH)}")


def test_happy_eyeballs_delay_none_tries_one_at_a_time():
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    winner, log, _ = run_eyeballs({"a": (5, refused), "b": (1, "ok")}, delay=None)
    assert winner.name == "b"
    assert (5, "start", "b") in log


def test_happy_eyeballs_with_no_target_fails():
    async def main():
        async def connect(t):
            raise AssertionError

        with pytest.raises(OSError, match="no address"):
            await happy_eyeballs([], connect)

    yieldio.run(main)


class Resolver(OSNetwork):
    """The OS network, but 'multi.test' resolves to the sockaddrs we choose."""

    def __init__(self, sockaddrs):
        self.sockaddrs = sockaddrs

    async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        if host == "multi.test":
            return [(stdsocket.AF_INET, stdsocket.SOCK_STREAM, 6, "", sa) for sa in self.sockaddrs]
        return await super().getaddrinfo(host, port, family, type, proto, flags)


def test_real_happy_eyeballs_skips_a_refusing_address():
    net = Resolver([])

    async def main():
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0) as server:
            net.sockaddrs = [("127.0.0.1", closed_port()), ("127.0.0.1", server.port)]
            async with await yieldio.open_tcp_stream("multi.test", 1) as stream:
                await stream.write(b"ok")
                assert await stream.read() == b"ok"

    yieldio.run(main, network=net)


def test_real_happy_eyeballs_races_past_a_black_hole_and_closes_it():
    # A listener with a full backlog is a black hole: connects to it hang.
    hole = stdsocket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    fillers = [stdsocket.socket() for _ in range(4)]
    net = Resolver([])

    async def main():
        for f in fillers:
            f.setblocking(False)
            try:
                f.connect(hole.getsockname())
            except BlockingIOError:
                pass
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0) as server:
            net.sockaddrs = [hole.getsockname(), ("127.0.0.1", server.port)]
            start = yieldio.current_time()
            stream = await yieldio.open_tcp_stream("multi.test", 1, happy_eyeballs_delay=0.05)
            async with stream:
                assert stream.get_extra_info("peername") == ("127.0.0.1", server.port)
            assert yieldio.current_time() - start < 5

    try:
        yieldio.run(main, network=net)  # the fd-leak check proves the hung attempt was closed
    finally:
        for f in fillers:
            f.close()
        hole.close()


def test_real_happy_eyeballs_all_refused():
    async def main():
        with pytest.raises(ConnectionRefusedError) as info:
            await yieldio.open_tcp_stream("multi.test", 1)
        assert len(info.value.errors) == 2

    yieldio.run(main, network=Resolver([("127.0.0.1", closed_port()),
                                        ("127.0.0.1", closed_port())]))


def test_a_refused_host_name_names_the_host_the_count_and_each_address_once():
    port = closed_port()

    async def main():
        with pytest.raises(ConnectionRefusedError) as info:
            await yieldio.open_tcp_stream("multi.test", port)
        assert info.value.errno == errno.ECONNREFUSED
        message = str(info.value)
        refused = os.strerror(errno.ECONNREFUSED)
        assert message == (f"[Errno {errno.ECONNREFUSED}] cannot connect to multi.test:{port} "
                           f"(2 addresses tried): 127.0.0.1:{port}: {refused}; "
                           f"127.0.0.2:{port}: {refused}")
        # each attempt's own exception (with its own wording) is kept in .errors
        assert [type(e) for e in info.value.errors] == [ConnectionRefusedError] * 2

    yieldio.run(main, network=Resolver([("127.0.0.1", port), ("127.0.0.2", port)]))


# -- the server ----------------------------------------------------------------------------------


def test_handler_errors_are_logged_counted_and_do_not_stop_the_server(caplog):
    async def handler(stream):
        line = await stream.readline()
        if line == b"boom\n":
            raise ValueError("handler bug")
        await stream.write(b"ok\n")

    async def main():
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as s:
                await s.write(b"boom\n")
                assert await s.read() == b""  # the connection was closed
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as s:
                await s.write(b"hi\n")
                assert await s.readline() == b"ok\n"
            assert server.handler_errors == 1
            assert server.accepted == 2

    with caplog.at_level(logging.ERROR, logger="yieldio.server"):
        yieldio.run(main)
    records = [r for r in caplog.records if r.name == "yieldio.server"]
    assert len(records) == 1
    assert records[0].exc_info is not None
    assert "handler bug" in caplog.text


def test_a_peer_that_disconnects_is_counted_quietly(caplog):
    async def handler(stream):
        await stream.readline()
        raise ConnectionResetError(errno.ECONNRESET, "reset by peer")

    async def main():
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as s:
                await s.write(b"x\n")
                assert await s.read() == b""
            assert server.disconnects == 1
            assert server.handler_errors == 0

    with caplog.at_level(logging.INFO, logger="yieldio.server"):
        yieldio.run(main)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_streams_are_closed_after_the_handler_returns():
    async def handler(stream):
        await stream.write(b"bye")  # and return without closing

    async def main():
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as s:
                assert await s.read_exactly(3) == b"bye"
                assert await s.read() == b""
            while server.connections:
                await yieldio.sleep(0.01)

    yieldio.run(main)


def test_leaving_the_block_cancels_handlers_and_closes_everything():
    cancelled = []

    async def handler(stream):
        try:
            await stream.read()  # the client never writes
        except yieldio.Cancelled:
            cancelled.append(True)
            raise

    async def main():
        clients = []
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            for _ in range(3):
                clients.append(await yieldio.open_tcp_stream("127.0.0.1", server.port))
            while server.connections < 3:
                await yieldio.sleep(0.01)
            port = server.port
        assert server.connections == 0
        for c in clients:
            assert await c.read() == b""  # the server side was closed
            await c.aclose()
        with pytest.raises(ConnectionRefusedError):  # not listening any more
            await yieldio.open_tcp_stream("127.0.0.1", port)

    yieldio.run(main)
    assert cancelled == [True, True, True]


def test_close_makes_serve_forever_return():
    async def handler(stream):
        await stream.readline()
        server_box[0].close()

    server_box = []

    async def main():
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            server_box.append(server)

            async def client():
                async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as s:
                    await s.write(b"stop\n")
                    await s.read()

            async with yieldio.TaskGroup() as tg:
                tg.spawn(client)
                with yieldio.fail_after(10):
                    await server.serve_forever()
            after = "code after serve_forever runs"
        assert after

    yieldio.run(main)


def test_an_exception_in_the_block_propagates_bare():
    async def main():
        with pytest.raises(KeyError):
            async with yieldio.serve_tcp(echo, "127.0.0.1", 0):
                raise KeyError("from the body")

    yieldio.run(main)


def test_cancelling_the_block_from_outside():
    async def main():
        with yieldio.move_on_after(0.1) as scope:
            async with yieldio.serve_tcp(echo, "127.0.0.1", 0) as server:
                await server.serve_forever()
        assert scope.cancelled_caught

    yieldio.run(main)


def test_serve_forever_needs_the_async_with():
    async def main():
        server = yieldio.serve_tcp(echo, "127.0.0.1", 0)
        with pytest.raises(RuntimeError, match="async with"):
            await server.serve_forever()

    yieldio.run(main)


def test_handler_nursery_keeps_handlers_running_after_the_block():
    finished = []

    async def handler(stream):
        data = await stream.read_exactly(5)
        await stream.write(data.upper())
        finished.append(data)

    async def main():
        async with yieldio.TaskGroup() as nursery:
            async with yieldio.serve_tcp(handler, "127.0.0.1", 0,
                                         handler_nursery=nursery) as server:
                client = await yieldio.open_tcp_stream("127.0.0.1", server.port)
                while server.connections < 1:
                    await yieldio.sleep(0.01)
            # The server stopped accepting, but the handler lives on in our nursery.
            async with client:
                await client.write(b"hello")
                assert await client.read_exactly(5) == b"HELLO"
        assert finished == [b"hello"]

    yieldio.run(main)


def test_reuse_port_lets_two_servers_share_a_port():
    async def main():
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0, reuse_port=True) as one:
            async with yieldio.serve_tcp(echo, "127.0.0.1", one.port, reuse_port=True) as two:
                assert one.port == two.port

    yieldio.run(main)


def test_a_port_in_use_is_an_error():
    async def main():
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0) as server:
            with pytest.raises(OSError) as info:
                async with yieldio.serve_tcp(echo, "127.0.0.1", server.port):
                    pass
            assert info.value.errno == errno.EADDRINUSE

    yieldio.run(main)


def test_listeners_accept_directly():
    async def main():
        net = yieldio.net.current_network()
        assert isinstance(net, OSNetwork)
        (listener,) = await net.listen_tcp("127.0.0.1", 0)
        async with listener:
            assert listener.port == listener.address[1]
            async with yieldio.TaskGroup() as tg:
                accepted = tg.spawn(listener.accept)
                client = await net.connect_tcp("127.0.0.1", listener.port)
            async with client, accepted.result() as conn:
                await client.write(b"direct")
                assert await conn.read() == b"direct"
        with pytest.raises(yieldio.ClosedResourceError):
            await listener.accept()

    yieldio.run(main)


def test_current_network_outside_run_is_a_clear_error():
    with pytest.raises(RuntimeError, match="yieldio.run"):
        yieldio.net.current_network()


async def _echo_once(stream):
    async for data in stream:
        await stream.write(data)


def test_trio_idioms_start_and_await_a_server():
    # server = await nursery.start(serve_tcp, ...) returns once it listens and
    # serves in the group; await serve_tcp(...) serves until cancelled.
    async def main():
        async with yieldio.TaskGroup() as tg:
            server = await tg.start(yieldio.serve_tcp, _echo_once, "127.0.0.1", 0)
            assert isinstance(server, Server) and server.port
            async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as c:
                await c.write(b"ping")
                assert await c.read_exactly(4) == b"ping"
            tg.cancel()  # the serving task ends, and the server with it
        with pytest.raises(ConnectionRefusedError):
            await yieldio.open_tcp_stream("127.0.0.1", server.port)

        plain = yieldio.serve_tcp(_echo_once, "127.0.0.1", 0)
        with yieldio.move_on_after(0.05) as scope:
            await plain
        assert scope.cancelled_caught and plain.port
        with pytest.raises(ConnectionRefusedError):
            await yieldio.open_tcp_stream("127.0.0.1", plain.port)
        with pytest.raises(RuntimeError, match="already open"):
            await plain  # a server opens once

        # A bind that fails is start()'s error, before anything serves.
        with stdsocket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            async with yieldio.TaskGroup() as tg:
                with pytest.raises(OSError) as info:
                    await tg.start(yieldio.serve_tcp, _echo_once, "127.0.0.1",
                                   taken.getsockname()[1])
                assert info.value.errno == errno.EADDRINUSE

    yieldio.run(main)


def test_trio_idioms_for_unix_servers(tmp_path):
    async def main():
        path = str(tmp_path / "s.sock")
        async with yieldio.TaskGroup() as tg:
            server = await tg.start(yieldio.serve_unix, _echo_once, path)
            assert server.addresses == [path]
            async with await yieldio.open_unix_stream(path) as c:
                await c.write(b"x")
                assert await c.read_exactly(1) == b"x"
            tg.cancel()
        assert not os.path.exists(path)

    yieldio.run(main)
