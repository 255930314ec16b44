"""SimNetwork: in-memory TCP/Unix in virtual time, with latency, bandwidth and faults."""

from __future__ import annotations

import socket

import pytest

import yieldio
from yieldio.testing import (
    SimNetwork,
    SimStream,
    VirtualClock,
    check_stream,
    installed_network,
    wait_all_tasks_blocked,
)


def vrun(fn, *args, net=None, seed=None):
    return yieldio.run(fn, *args, clock=VirtualClock(autojump=True), network=net, seed=seed)


async def tcp_pair(net, client_host="127.0.0.1", server_host="127.0.0.1", port=0):
    with net.host(server_host):
        (listener,) = await net.listen_tcp(None, port)
    with net.host(client_host):
        client = await net.connect_tcp(server_host, listener.port)
    server = await listener.accept()
    await listener.aclose()
    return client, server


# -- conformance ----------------------------------------------------------------------
@pytest.mark.parametrize("options", [{}, {"latency": 0.05}, {"latency": 0.01, "bandwidth": 1e6},
                                     {"chunking": False}])
@pytest.mark.parametrize("seed", [None, 7])
def test_tcp_streams_pass_check_stream(options, seed):
    net = SimNetwork(**options)

    async def pair():
        return await tcp_pair(net, "10.0.0.2", "10.0.0.1")

    vrun(check_stream, pair, net=net, seed=seed)


def test_unix_streams_pass_check_stream():
    net = SimNetwork()

    async def pair():
        listener = await net.listen_unix("/sim/sock")
        client = await net.connect_unix("/sim/sock")
        server = await listener.accept()
        await listener.aclose()
        return client, server

    vrun(check_stream, pair, net=net, seed=3)


# -- latency, bandwidth, chunking ------------------------------------------------------------
def test_latency_round_trips_in_virtual_time():
    net = SimNetwork(latency=0.1)

    async def main():
        t0 = yieldio.current_time()
        client, server = await tcp_pair(net, "10.0.0.2", "10.0.0.1")
        connect_time = yieldio.current_time() - t0
        t1 = yieldio.current_time()
        await client.write(b"ping")
        assert await server.read_exactly(4) == b"ping"
        one_way = yieldio.current_time() - t1
        await server.write(b"pong")
        assert await client.read_exactly(4) == b"pong"
        rtt = yieldio.current_time() - t1
        return round(connect_time, 9), round(one_way, 9), round(rtt, 9)

    assert vrun(main, net=net) == (0.2, 0.1, 0.2)


def test_per_link_settings_override_defaults():
    net = SimNetwork(latency=0.01)
    net.add_host("far.example", "10.9.9.9")
    net.set_link("10.0.0.1", "far.example", latency=1.0)

    async def main():
        client, server = await tcp_pair(net, "10.0.0.1", "10.9.9.9")
        t = yieldio.current_time()
        await client.write(b"x")
        await server.read_exactly(1)
        far = yieldio.current_time() - t
        client, server = await tcp_pair(net, "10.0.0.1", "10.0.0.2")
        t = yieldio.current_time()
        await client.write(b"x")
        await server.read_exactly(1)
        return far, round(yieldio.current_time() - t, 9)

    assert vrun(main, net=net) == (1.0, 0.01)


def test_set_link_keeps_the_settings_it_is_not_given():
    net = SimNetwork(latency=0.01)
    net.set_link("10.0.0.1", "10.0.0.2", latency=1.0)
    net.set_link("10.0.0.1", "10.0.0.2", bandwidth=1000)  # latency stays 1.0

    async def main():
        client, server = await tcp_pair(net, "10.0.0.1", "10.0.0.2")
        t = yieldio.current_time()
        await client.write(b"x" * 1000)
        await server.read_exactly(1000)
        return round(yieldio.current_time() - t, 6)

    # one second of latency plus one second to send 1,000 bytes at 1,000 B/s
    assert vrun(main, net=net) == 2.0


def test_bandwidth_limits_throughput():
    net = SimNetwork(latency=0.5, bandwidth=10_000)

    async def main():
        client, server = await tcp_pair(net)
        t = yieldio.current_time()
        async with yieldio.TaskGroup() as tg:
            tg.spawn(client.send_all, b"z" * 100_000)
            assert await server.read_exactly(100_000) == b"z" * 100_000
        return yieldio.current_time() - t

    elapsed = vrun(main, net=net)
    assert 10.0 <= elapsed <= 10.6  # 100 kB at 10 kB/s, plus the latency


def test_chunking_gives_arbitrary_splits_driven_by_the_seed():
    def transcript(seed, chunking=True):
        net = SimNetwork(chunking=chunking)

        async def main():
            client, server = await tcp_pair(net)
            await client.send_all(bytes(5000))
            await client.send_eof()
            sizes = []
            while data := await server.receive_some(4096):
                sizes.append(len(data))
            return sizes

        return vrun(main, net=net, seed=seed)

    assert transcript(1) == transcript(1)
    assert len({tuple(transcript(s)) for s in range(6)}) > 1
    assert any(min(transcript(s)) < 100 for s in range(6))
    assert transcript(1, chunking=False) == [4096, 904]
    # Unseeded runs split too, the same way every time (Random(0) per run).
    assert transcript(None) == transcript(None) != [4096, 904]


# -- resolution, refusal, listening ------------------------------------------------------------
def test_getaddrinfo():
    net = SimNetwork()
    net.add_host("api.example", "10.0.0.7")
    net.add_host("api.example", "fd00::7")

    async def main():
        infos = await net.getaddrinfo("api.example", "443")
        assert [i[4] for i in infos] == [("10.0.0.7", 443), ("fd00::7", 443, 0, 0)]
        assert infos[0][:3] == (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        v6 = await net.getaddrinfo("API.example", 1, family=socket.AF_INET6)
        assert [i[4][0] for i in v6] == ["fd00::7"]
        assert (await net.getaddrinfo("10.1.2.3", None))[0][4] == ("10.1.2.3", 0)
        assert (await net.getaddrinfo("localhost", 80))[0][4] == ("127.0.0.1", 80)
        with pytest.raises(socket.gaierror) as info:
            await net.getaddrinfo("nowhere.example", 80)
        assert info.value.errno == socket.EAI_NONAME
        with pytest.raises(socket.gaierror):
            await net.getaddrinfo("api.example", "https")  # no service database
        with pytest.raises(socket.gaierror):
            await net.getaddrinfo("api.example", 80, flags=socket.AI_NUMERICHOST)
        with pytest.raises(socket.gaierror, match="Name or service not known"):
            await net.connect_tcp("nowhere.example", 80)

    vrun(main, net=net)


def test_add_host_rejects_bad_addresses():
    with pytest.raises(ValueError):
        SimNetwork().add_host("x", "not-an-ip")


def test_connection_refused_after_a_round_trip():
    net = SimNetwork(latency=0.25)

    async def main():
        t = yieldio.current_time()
        with pytest.raises(ConnectionRefusedError):
            await net.connect_tcp("10.0.0.1", 80)
        assert yieldio.current_time() - t == 0.5

    vrun(main, net=net)


def test_listen_ports_and_address_in_use():
    net = SimNetwork()

    async def main():
        (a,) = await net.listen_tcp("10.0.0.1", 0)
        assert a.port >= 49152 and a.address == ("10.0.0.1", a.port)
        with pytest.raises(OSError) as info:
            await net.listen_tcp("10.0.0.1", a.port)
        assert info.value.errno == 98  # EADDRINUSE
        (b,) = await net.listen_tcp("10.0.0.1", 8080, reuse_port=True)
        (c,) = await net.listen_tcp("10.0.0.1", 8080, reuse_port=True)
        streams = [await net.connect_tcp("10.0.0.1", 8080) for _ in range(4)]
        # reuse_port spreads connections over the listeners
        accepted = [await b.accept(), await c.accept(), await b.accept(), await c.accept()]
        assert len(net.listeners()) == 3
        for s in streams + accepted:
            await s.aclose()
        for listener in (a, b, c):
            await listener.aclose()
        assert net.listeners() == [] and net.connections() == []

    vrun(main, net=net)


def test_wildcard_listener_accepts_any_address_and_reports_it():
    net = SimNetwork()
    net.add_host("svc.example", "10.0.0.5")

    async def main():
        (listener,) = await net.listen_tcp(None, 9000)
        assert listener.address == ("0.0.0.0", 9000)
        with net.host("10.0.0.9"):
            client = await net.connect_tcp("svc.example", 9000)
        server = await listener.accept()
        assert client.get_extra_info("peername") == ("10.0.0.5", 9000)
        assert server.get_extra_info("sockname") == ("10.0.0.5", 9000)
        assert server.get_extra_info("peername") == client.get_extra_info("sockname")
        assert client.get_extra_info("sockname")[0] == "10.0.0.9"
        assert server.get_extra_info("connection") is client.get_extra_info("connection")
        assert client.get_extra_info("nonsense", 42) == 42

    vrun(main, net=net)


def test_closing_a_listener_resets_queued_connections_and_wakes_accept():
    net = SimNetwork()

    async def main():
        (listener,) = await net.listen_tcp("10.0.0.1", 80)
        client = await net.connect_tcp("10.0.0.1", 80)
        await listener.aclose()
        await listener.aclose()  # idempotent
        with pytest.raises(ConnectionResetError):
            await client.read()
        with pytest.raises(ConnectionRefusedError):
            await net.connect_tcp("10.0.0.1", 80)
        (listener,) = await net.listen_tcp("10.0.0.1", 80)
        woken = []

        async def acceptor():
            try:
                await listener.accept()
            except yieldio.ClosedResourceError as exc:
                woken.append(exc)

        async with yieldio.TaskGroup() as tg:
            tg.spawn(acceptor)
            await wait_all_tasks_blocked()
            with pytest.raises(yieldio.BusyResourceError):
                await listener.accept()
            await listener.aclose()
        assert len(woken) == 1
        with pytest.raises(yieldio.ClosedResourceError):
            await listener.accept()

    vrun(main, net=net)


def test_backlog_full_makes_connect_wait():
    net = SimNetwork(connect_timeout=5)

    async def main():
        (listener,) = await net.listen_tcp("10.0.0.1", 80, backlog=1)
        first = await net.connect_tcp("10.0.0.1", 80)
        with pytest.raises(TimeoutError):
            await net.connect_tcp("10.0.0.1", 80)  # the queue is full: SYN dropped
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(net.connect_tcp, "10.0.0.1", 80)
            await wait_all_tasks_blocked()
            await listener.accept()  # room now
        assert isinstance(t.result(), SimStream)
        await first.aclose()

    vrun(main, net=net)


def test_unix_errors():
    net = SimNetwork()

    async def main():
        with pytest.raises(FileNotFoundError):
            await net.connect_unix("/nope")
        listener = await net.listen_unix("/run/app.sock")
        with pytest.raises(OSError):
            await net.listen_unix("/run/app.sock")
        await listener.aclose()
        with pytest.raises(ConnectionRefusedError):
            await net.connect_unix("/run/app.sock")
        assert listener.port is None and listener.address == "/run/app.sock"

    vrun(main, net=net)


# -- TCP's unhappy paths --------------------------------------------------------------------------
def test_reset_a_connection_wakes_both_ends():
    net = SimNetwork(latency=0.01)

    async def main():
        client, server = await tcp_pair(net, "10.0.0.2", "10.0.0.1")
        errors = []

        async def reader(stream):
            try:
                await stream.read()
            except ConnectionResetError as exc:
                errors.append(exc)

        async with yieldio.TaskGroup() as tg:
            tg.spawn(reader, client)
            tg.spawn(reader, server)
            await wait_all_tasks_blocked()
            assert net.reset(client) == 1
        assert len(errors) == 2
        with pytest.raises(ConnectionResetError):
            await client.write(b"x")
        assert net.connections() == []
        await client.aclose()
        await server.aclose()

    vrun(main, net=net)


def test_reset_by_address_host_and_link():
    net = SimNetwork()

    async def main():
        pairs = [await tcp_pair(net, "10.0.0.2", "10.0.0.1", 80),
                 await tcp_pair(net, "10.0.0.3", "10.0.0.1", 81),
                 await tcp_pair(net, "10.0.0.3", "10.0.0.4", 82)]
        assert net.reset(("10.0.0.1", 81)) == 1
        assert net.reset("10.0.0.2", "10.0.0.1") == 1
        assert net.reset("10.0.0.4") == 1
        for c, s in pairs:
            with pytest.raises(ConnectionResetError):
                await c.read()
            with pytest.raises(ConnectionResetError):
                await s.read()

    vrun(main, net=net)


def test_closing_with_unread_data_resets_the_peer():
    net = SimNetwork(latency=0.01)

    async def main():
        client, server = await tcp_pair(net)
        await client.write(b"request the server never reads")
        await yieldio.sleep(1)          # it has arrived at the server
        await server.write(b"response")
        await server.aclose()           # unread data: RST instead of FIN
        await yieldio.sleep(1)
        with pytest.raises(ConnectionResetError):
            await client.read()         # the response is lost, as with real TCP

    vrun(main, net=net)


def test_writing_to_a_closed_peer_is_reset_after_a_round_trip():
    net = SimNetwork(latency=0.01)

    async def main():
        client, server = await tcp_pair(net)
        await server.aclose()             # clean close: FIN
        assert await client.read() == b""
        await client.write(b"hello?")     # accepted: the client does not know yet
        await yieldio.sleep(1)            # ... the data reached a closed socket: RST
        with pytest.raises(ConnectionResetError):
            await client.write(b"again")

    vrun(main, net=net)


def test_stall_delays_data_and_loses_nothing():
    net = SimNetwork(latency=0.01)

    async def main():
        client, server = await tcp_pair(net, "10.0.0.2", "10.0.0.1")
        net.stall("10.0.0.1", 30)
        t = yieldio.current_time()
        await client.write(b"patience")
        assert await server.read_exactly(8) == b"patience"
        assert yieldio.current_time() - t == pytest.approx(30, abs=0.02)
        net.stall(("10.0.0.1", client.get_extra_info("peername")[1]), 5)
        t = yieldio.current_time()
        await server.write(b"ok")
        assert await client.read_exactly(2) == b"ok"
        assert yieldio.current_time() - t == pytest.approx(5, abs=0.02)
        # a connect to a stalled host waits for the stall to end
        (listener,) = await net.listen_tcp("10.0.0.1", 99)
        net.stall("10.0.0.1", 7)
        t = yieldio.current_time()
        await net.connect_tcp("10.0.0.1", 99)
        assert yieldio.current_time() - t == pytest.approx(7, abs=0.05)
        await listener.aclose()

    vrun(main, net=net)


def test_partition_stalls_data_until_heal():
    net = SimNetwork(latency=0.01)
    net.add_host("server", "10.0.0.1")

    async def main():
        client, server = await tcp_pair(net, "10.0.0.2", "10.0.0.1")
        net.partition("10.0.0.2", "server")
        await client.write(b"across the gap")
        with yieldio.move_on_after(100) as scope:
            await server.read()
        assert scope.cancelled_caught       # nothing arrives while partitioned
        net.heal()
        assert await server.read_exactly(14) == b"across the gap"
        # other links are unaffected by a partition between two hosts
        net.partition("10.0.0.2", "10.0.0.1")
        c2, s2 = await tcp_pair(net, "10.0.0.3", "10.0.0.1")
        await c2.write(b"fine")
        assert await s2.read_exactly(4) == b"fine"
        net.heal("10.0.0.2", "10.0.0.1")
        await client.write(b"!")
        assert await server.read_exactly(1) == b"!"

    vrun(main, net=net)


def test_connect_across_a_partition_times_out_or_succeeds_after_heal():
    net = SimNetwork(connect_timeout=60)

    async def main():
        (listener,) = await net.listen_tcp("10.0.0.1", 80)
        net.partition("10.0.0.1")            # isolate the server from everyone
        t = yieldio.current_time()
        with net.host("10.0.0.2"):
            with pytest.raises(TimeoutError):
                await net.connect_tcp("10.0.0.1", 80)
        assert yieldio.current_time() - t == pytest.approx(60)

        async def heal_later():
            await yieldio.sleep(10)
            net.heal("10.0.0.1")

        async with yieldio.TaskGroup() as tg:
            tg.spawn(heal_later)
            with net.host("10.0.0.2"):
                stream = await net.connect_tcp("10.0.0.1", 80)
        assert yieldio.current_time() - t == pytest.approx(70)
        await stream.aclose()
        await listener.aclose()

    vrun(main, net=net)


def test_heal_ends_a_stall_for_a_waiting_connect_too():
    # heal() ends stalls: data flows at once, and so must a connect that was
    # waiting for the stall to end (it used to sleep until the stall's end).
    net = SimNetwork(latency=0.01)

    async def main():
        (listener,) = await net.listen_tcp("10.0.0.1", 80)
        net.stall("10.0.0.1", 100)

        async def heal_later():
            await yieldio.sleep(3)
            net.heal()

        t = yieldio.current_time()
        async with yieldio.TaskGroup() as tg:
            tg.spawn(heal_later)
            with net.host("10.0.0.2"):
                stream = await net.connect_tcp("10.0.0.1", 80)
        assert yieldio.current_time() - t == pytest.approx(3.02)
        await stream.aclose()
        await listener.aclose()

    vrun(main, net=net)


def test_faults_need_a_run_and_validate():
    net = SimNetwork()
    with pytest.raises(RuntimeError):
        net.partition("10.0.0.1", "10.0.0.2")
    with pytest.raises(ValueError):
        SimNetwork(latency=-1)
    with pytest.raises(ValueError):
        SimNetwork(bandwidth=0)

    async def main():
        with pytest.raises(ValueError, match="unknown host"):
            net.partition("nowhere", "10.0.0.1")
        with pytest.raises(ValueError):
            net.stall("10.0.0.1", -1)

    vrun(main, net=net)


# -- runs, install, determinism ----------------------------------------------------------------------
def test_each_run_starts_clean():
    net = SimNetwork()
    net.add_host("kept.example", "10.0.0.1")

    async def first():
        await net.listen_tcp("10.0.0.1", 80)
        net.partition("10.0.0.1")

    async def second():
        assert net.listeners() == [] and net.connections() == []
        (listener,) = await net.listen_tcp("kept.example", 80)  # hosts persist
        await net.connect_tcp("kept.example", 80)               # faults do not
        await listener.aclose()

    vrun(first, net=net)
    vrun(second, net=net)


def test_install_sets_the_default_network():
    net = SimNetwork()
    assert installed_network() is None
    with net.install() as installed:
        assert installed is net and installed_network() is net
        inner = SimNetwork()
        with inner.install():
            assert installed_network() is inner
        assert installed_network() is net
    assert installed_network() is None


def test_install_is_used_by_run_without_network_argument():
    net = SimNetwork()

    async def main():
        async with yieldio.serve_tcp(_echo, "10.0.0.1", 80):
            stream = await yieldio.open_tcp_stream("10.0.0.1", 80)
            await stream.write(b"x")
            return await stream.read_exactly(1)

    with net.install():
        assert yieldio.run(main, clock=VirtualClock(autojump=True)) == b"x"


async def _echo(stream):
    async for data in stream:
        await stream.write(data)


def test_serve_tcp_and_open_tcp_stream_run_unchanged_on_the_simulation():
    net = SimNetwork(latency=0.02)
    net.add_host("echo.example", "10.0.0.1")

    async def main():
        with net.host("10.0.0.1"):
            server = await _enter(yieldio.serve_tcp(_echo, None, 7))
        try:
            with net.host("10.0.0.2"):
                stream = await yieldio.open_tcp_stream("echo.example", 7)
            async with stream:
                await stream.write(b"hello")
                assert await stream.read_exactly(5) == b"hello"
                assert stream.get_extra_info("peername") == ("10.0.0.1", 7)
            with pytest.raises(ConnectionRefusedError):
                await yieldio.open_tcp_stream("echo.example", 8)
            with pytest.raises(socket.gaierror):
                await yieldio.open_tcp_stream("nowhere.example", 7)
        finally:
            await server.__aexit__(None, None, None)

    vrun(main, net=net)


async def _enter(server):
    await server.__aenter__()
    return server


def test_same_seed_same_network_behaviour():
    def once(seed):
        net = SimNetwork(latency=0.003, bandwidth=200_000)
        log = []

        async def talker(stream, name):
            for i in range(20):
                await stream.write(f"{name}{i};".encode() * (i + 1))
                data = await stream.read(300)
                log.append((name, len(data), round(yieldio.current_time(), 9)))

        async def main():
            client, server = await tcp_pair(net)
            async with yieldio.TaskGroup() as tg:
                tg.spawn(talker, client, "c")
                tg.spawn(talker, server, "s")
            return log

        return vrun(main, net=net, seed=seed)

    assert once(5) == once(5)
    assert once(5) != once(6)


def test_both_ends_waiting_is_a_deadlock():
    net = SimNetwork()

    async def main():
        client, server = await tcp_pair(net)
        async with yieldio.TaskGroup() as tg:
            tg.spawn(client.read)
            tg.spawn(server.read)

    with pytest.raises(yieldio.Deadlock, match="receive on tcp"):
        vrun(main, net=net)


def test_tls_http_websocket_and_unix_run_unchanged_on_the_simulation():
    ssl = pytest.importorskip("ssl")
    trustme = pytest.importorskip("trustme")
    http = pytest.importorskip("yieldio.http")
    net = SimNetwork(latency=0.02)
    net.add_host("api.example", "10.0.0.1")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("api.example").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    router = http.Router()

    @router.get("/hello/{name}")
    async def hello(request):
        return http.Response.json({"hello": request.path_params["name"]})

    @router.websocket("/echo")
    async def ws_echo(request):
        ws = await request.accept_websocket()
        async for message in ws:
            await ws.send(message)

    async def upper(stream):
        await stream.write((await stream.readline()).upper())

    async def main():
        with net.host("10.0.0.1"):
            async with http.serve(router, None, 80), yieldio.serve_unix(upper, "/run/up.sock"):
                async with yieldio.serve_tcp(_echo, None, 443, ssl=server_ctx):
                    async with http.Client() as client:
                        response = await client.get("http://api.example/hello/sim")
                        assert response.status == 200
                        assert await response.json() == {"hello": "sim"}
                    async with http.connect_websocket("ws://api.example/echo") as ws:
                        await ws.send("hi")
                        assert await ws.receive() == "hi"
                    tls = await yieldio.open_tcp_stream("api.example", 443, ssl=client_ctx)
                    async with tls:
                        await tls.write(b"secret")
                        assert await tls.read_exactly(6) == b"secret"
                    unix = await yieldio.open_unix_stream("/run/up.sock")
                    async with unix:
                        await unix.write(b"shout\n")
                        assert await unix.readline() == b"SHOUT\n"

    vrun(main, net=net, seed=4)


def test_settings_are_validated_and_shown():
    with pytest.raises(ValueError, match="max_buffer must be >= 1"):
        SimNetwork(max_buffer=0)
    assert repr(SimNetwork(latency=0.5)) == "<SimNetwork latency=0.5 bandwidth=None 0 connections>"


def test_getaddrinfo_of_no_host_and_of_a_family_the_name_lacks():
    net = SimNetwork()
    net.add_host("v4only.example", "10.0.0.8")

    async def main():
        assert [i[4] for i in await net.getaddrinfo(None, 80)] == [("127.0.0.1", 80)]
        with pytest.raises(socket.gaierror) as info:
            await net.getaddrinfo("v4only.example", 80, family=socket.AF_INET6)
        assert info.value.errno == socket.EAI_ADDRFAMILY
        with pytest.raises(socket.gaierror, match="Address family"):
            await net.getaddrinfo("10.0.0.8", 80, family=socket.AF_INET6)

    vrun(main, net=net)


def test_getaddrinfo_takes_bytes_hosts_like_socket_getaddrinfo():
    # Regression: a bytes host was iterated as a list of names ("'int' object
    # is not iterable") instead of being decoded, as socket.getaddrinfo does.
    net = SimNetwork()
    net.add_host("api.example", "10.0.0.7")

    async def main():
        from yieldio.socket import getaddrinfo

        return [info[4] for info in await getaddrinfo(b"api.example", 80)]

    assert yieldio.run(main, network=net) == [("10.0.0.7", 80)]


def test_getaddrinfo_ports_and_protocols_match_the_os():
    import socket

    net = SimNetwork()

    async def main():
        from yieldio.socket import getaddrinfo

        udp = await getaddrinfo("127.0.0.1", 53, type=socket.SOCK_DGRAM)
        tcp = await getaddrinfo("127.0.0.1", 80)
        wrapped = await getaddrinfo("127.0.0.1", 70000)
        with pytest.raises(socket.gaierror):
            await getaddrinfo("127.0.0.1", -1)
        return udp[0][2], tcp[0][2], wrapped[0][4]

    real_udp = socket.getaddrinfo("127.0.0.1", 53, type=socket.SOCK_DGRAM)[0][2]
    real_wrapped = socket.getaddrinfo("127.0.0.1", 70000, type=socket.SOCK_STREAM)[0][4]
    assert yieldio.run(main, network=net) == (real_udp, socket.IPPROTO_TCP, real_wrapped)


def test_a_connect_to_ipv6_loopback_comes_from_ipv6_loopback():
    # Regression: outside net.host() the source was always 127.0.0.1, so a
    # connection to ::1 ran 127.0.0.1 -> ::1 (mixed families, and a partition
    # of 127.0.0.1 cut it). The OS picks a source of the target's family.
    net = SimNetwork()

    async def main():
        (listener,) = await net.listen_tcp("::1", 80)
        client = await yieldio.open_tcp_stream("::1", 80)
        server = await listener.accept()
        net.partition("127.0.0.1")
        await client.write(b"v6")
        return (client.get_extra_info("sockname")[0], server.get_extra_info("peername")[0],
                await server.read_exactly(2))

    assert vrun(main, net=net) == ("::1", "::1", b"v6")
