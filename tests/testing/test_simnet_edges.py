"""Edge cases of the deterministic testing tools: SimNetwork's rarer paths, check_stream's
own failure reporting, explore()'s replay text. All in virtual time."""

from __future__ import annotations

import errno
import functools

import pytest

import yieldio
from yieldio.testing import (
    ExploreFailure,
    MemoryStream,
    SimNetwork,
    VirtualClock,
    check_stream,
    explore,
    memory_stream_pair,
    wait_all_tasks_blocked,
)


def vrun(fn, *args, net=None, seed=None):
    return yieldio.run(fn, *args, clock=VirtualClock(autojump=True), network=net, seed=seed)


async def tcp_pair(net, client_host="10.0.0.2", server_host="10.0.0.1"):
    with net.host(server_host):
        (listener,) = await net.listen_tcp(None, 0)
    with net.host(client_host):
        client = await net.connect_tcp(server_host, listener.port)
    server = await listener.accept()
    await listener.aclose()
    return client, server


async def unix_pair(net, path="/run/app.sock"):
    listener = await net.listen_unix(path)
    client = await net.connect_unix(path)
    server = await listener.accept()
    await listener.aclose()
    return client, server


# -- SimNetwork: faults -------------------------------------------------------------------
def test_partition_takes_lists_of_hosts():
    net = SimNetwork(connect_timeout=5)

    async def main():
        with net.host("10.0.0.1"):
            (listener,) = await net.listen_tcp(None, 80)
        net.partition(["10.0.0.2", "10.0.0.3"], "10.0.0.1")
        for src in ("10.0.0.2", "10.0.0.3"):
            with net.host(src), pytest.raises(TimeoutError):
                await net.connect_tcp("10.0.0.1", 80)
        with net.host("10.0.0.4"):  # not in the partition
            client = await net.connect_tcp("10.0.0.1", 80)
        await client.aclose()
        await listener.aclose()

    vrun(main, net=net)


def test_heal_delivers_data_held_by_a_stall_at_once():
    net = SimNetwork(latency=0.1)

    async def main():
        client, server = await tcp_pair(net)
        net.stall("10.0.0.1", 10)
        t = yieldio.current_time()
        await client.write(b"held")
        async with yieldio.TaskGroup() as tg:
            tg.spawn(server.read_exactly, 4)
            await yieldio.sleep(1)
            net.heal()  # ends the stall: the data is due, it must not wait 9 more seconds
        assert yieldio.current_time() - t == 1
        await client.aclose()
        await server.aclose()

    vrun(main, net=net)


def test_stall_of_a_unix_socket_path_holds_its_data():
    net = SimNetwork()

    async def main():
        client, server = await unix_pair(net)
        net.stall("/run/app.sock", 5)
        t = yieldio.current_time()
        await client.write(b"late")
        assert await server.read_exactly(4) == b"late"
        assert yieldio.current_time() - t == 5  # held, nothing lost
        await client.aclose()
        await server.aclose()

    vrun(main, net=net)


def test_reset_by_unix_path_and_link_resets_leave_other_connections_alone():
    net = SimNetwork()

    async def main():
        uc, us = await unix_pair(net)
        tc, ts = await tcp_pair(net)
        assert net.reset("10.0.0.2", "10.0.0.1") == 1  # the TCP link only
        with pytest.raises(ConnectionResetError):
            await tc.read()
        await uc.write(b"ok")
        assert await us.read_exactly(2) == b"ok"
        assert net.reset("/run/app.sock") == 1
        with pytest.raises(ConnectionResetError):
            await us.read()
        with pytest.raises(ConnectionResetError):
            await uc.write(b"x")
        assert net.connections() == []
        for s in (uc, us, tc, ts):
            await s.aclose()

    vrun(main, net=net)


def test_client_giving_up_during_the_handshake_resets_the_server_end():
    net = SimNetwork(latency=1)

    async def main():
        (listener,) = await net.listen_tcp("10.0.0.1", 80)
        with yieldio.move_on_after(1.5) as scope:  # SYN arrives at 1, SYN-ACK would at 2
            await net.connect_tcp("10.0.0.1", 80)
        assert scope.cancelled_caught
        server = await listener.accept()
        with pytest.raises(ConnectionResetError):
            await server.read()
        assert net.connections() == []
        await server.aclose()
        await listener.aclose()

    vrun(main, net=net)


@pytest.mark.timeout(30)
def test_unix_connect_waits_out_a_stall_of_its_path_like_a_tcp_connect():
    net = SimNetwork()

    async def main():
        listener = await net.listen_unix("/run/app.sock")
        (tcp_listener,) = await net.listen_tcp("10.0.0.1", 80)
        net.stall("/run/app.sock", 5)
        net.stall(("10.0.0.1", 80), 5)
        t = yieldio.current_time()
        client = await net.connect_unix("/run/app.sock")
        assert yieldio.current_time() - t == 5  # not before the stall ends
        tcp_client = await net.connect_tcp("10.0.0.1", 80)
        assert yieldio.current_time() - t == 5  # the same stall held the TCP connect
        server = await listener.accept()
        await client.write(b"hi")
        assert await server.read_exactly(2) == b"hi"
        for s in (client, server, listener, tcp_client, tcp_listener):
            await s.aclose()

    vrun(main, net=net)


@pytest.mark.timeout(30)
def test_connect_to_a_stalled_listener_times_out_under_fail_after_and_leaves_nothing():
    net = SimNetwork()

    async def main():
        listener = await net.listen_unix("/run/app.sock")
        (tcp_listener,) = await net.listen_tcp("10.0.0.1", 80)
        net.stall("/run/app.sock", 100)
        net.stall("10.0.0.1", 100)
        for connect in (functools.partial(net.connect_unix, "/run/app.sock"),
                        functools.partial(net.connect_tcp, "10.0.0.1", 80)):
            t = yieldio.current_time()
            with pytest.raises(TimeoutError):
                with yieldio.fail_after(3):
                    await connect()
            assert yieldio.current_time() - t == 3
        assert net.connections() == []  # neither listener got a half-made connection
        assert not listener._queue and not tcp_listener._queue
        await listener.aclose()
        await tcp_listener.aclose()

    vrun(main, net=net)


@pytest.mark.timeout(30)
def test_heal_releases_a_unix_connect_waiting_for_a_stall():
    net = SimNetwork()

    async def main():
        listener = await net.listen_unix("/run/app.sock")
        net.stall("/run/app.sock", 100)

        async def heal_later():
            await yieldio.sleep(3)
            net.heal()

        async with yieldio.TaskGroup() as tg:
            tg.spawn(heal_later)
            client = await net.connect_unix("/run/app.sock")
            assert yieldio.current_time() == 3  # not 100
        await client.aclose()
        await listener.aclose()

    vrun(main, net=net)


@pytest.mark.timeout(30)
def test_unix_connect_held_by_a_stall_is_refused_if_the_listener_closes_meanwhile():
    net = SimNetwork()

    async def main():
        listener = await net.listen_unix("/run/app.sock")
        net.stall("/run/app.sock", 10)

        async def close_later():
            await yieldio.sleep(2)
            await listener.aclose()

        async with yieldio.TaskGroup() as tg:
            tg.spawn(close_later)
            with pytest.raises(ConnectionRefusedError):
                await net.connect_unix("/run/app.sock")
        assert yieldio.current_time() == 10
        # a path nobody listens on answers at once, stalled or not
        net.stall("/run/other.sock", 10)
        with pytest.raises(FileNotFoundError):
            await net.connect_unix("/run/other.sock")
        assert yieldio.current_time() == 10

    vrun(main, net=net)


@pytest.mark.timeout(30)
def test_a_stall_that_starts_during_the_tcp_handshake_holds_the_connect():
    net = SimNetwork(latency=1)

    async def main():
        (listener,) = await net.listen_tcp("10.0.0.1", 80)

        async def stall_soon():
            await yieldio.sleep(0.5)      # the SYN is on its way
            net.stall("10.0.0.1", 10)     # ... and is held until t = 10.5

        async with yieldio.TaskGroup() as tg:
            tg.spawn(stall_soon)
            with net.host("10.0.0.2"):
                client = await net.connect_tcp("10.0.0.1", 80)
        assert yieldio.current_time() == 11.5  # then the SYN-ACK travels back
        server = await listener.accept()
        for s in (client, server, listener):
            await s.aclose()

    vrun(main, net=net)


@pytest.mark.timeout(30)
def test_a_stall_longer_than_connect_timeout_times_the_tcp_connect_out():
    net = SimNetwork(connect_timeout=20)

    async def main():
        (listener,) = await net.listen_tcp("10.0.0.1", 80)
        net.stall(("10.0.0.1", 80), 50)
        with pytest.raises(TimeoutError):
            await net.connect_tcp("10.0.0.1", 80)
        assert yieldio.current_time() == 20
        await listener.aclose()

    vrun(main, net=net)


def test_a_failed_connect_names_the_host_and_port_it_was_connecting_to():
    net = SimNetwork()
    net.add_host("db.example", "10.0.0.5")
    net.add_host("db.example", "fd00::5")

    async def main():
        with pytest.raises(ConnectionRefusedError) as info:
            await yieldio.open_tcp_stream("db.example", 5432)
        assert str(info.value) == (
            "[Errno 111] cannot connect to db.example:5432 (2 addresses tried): "
            "10.0.0.5:5432: Connection refused; [fd00::5]:5432: Connection refused")
        with pytest.raises(ConnectionRefusedError) as info:
            await net.connect_tcp("fd00::5", 80)
        assert str(info.value) == "[Errno 111] cannot connect to [fd00::5]:80: Connection refused"

    vrun(main, net=net)


# -- SimNetwork: listeners and ports ------------------------------------------------------
def test_listen_on_a_name_with_two_addresses_is_all_or_nothing():
    net = SimNetwork()
    net.add_host("multi.example", "10.0.0.1")
    net.add_host("multi.example", "10.0.0.2")

    async def main():
        (taken,) = await net.listen_tcp("10.0.0.2", 80)
        with pytest.raises(OSError) as info:
            await net.listen_tcp("multi.example", 80)
        assert info.value.errno == errno.EADDRINUSE
        assert net.listeners() == [taken]  # 10.0.0.1:80 was not left listening
        with pytest.raises(ConnectionRefusedError):
            await net.connect_tcp("10.0.0.1", 80)
        await taken.aclose()
        both = await net.listen_tcp("multi.example", 80)
        assert sorted(lst.address for lst in both) == [("10.0.0.1", 80), ("10.0.0.2", 80)]

    vrun(main, net=net)


def test_ephemeral_ports_run_out_then_freed_ports_are_reused():
    net = SimNetwork()

    async def main():
        listeners = [(await net.listen_tcp("10.0.0.1", 0))[0] for _ in range(65536 - 49152)]
        assert {lst.port for lst in listeners} == set(range(49152, 65536))
        with pytest.raises(OSError) as info:
            await net.listen_tcp("10.0.0.1", 0)
        assert info.value.errno == errno.EADDRNOTAVAIL
        freed = listeners.pop(100)
        await freed.aclose()
        (again,) = await net.listen_tcp("10.0.0.1", 0)
        assert again.port == freed.port

    vrun(main, net=net)


def test_connect_from_a_chosen_local_address_and_port():
    net = SimNetwork()

    async def main():
        (listener,) = await net.listen_tcp("10.0.0.1", 80)
        client = await net.connect_tcp("10.0.0.1", 80, local_address=("10.0.0.2", 5555))
        server = await listener.accept()
        assert client.get_extra_info("sockname") == ("10.0.0.2", 5555)
        assert server.get_extra_info("peername") == ("10.0.0.2", 5555)
        for s in (client, server, listener):
            await s.aclose()

    vrun(main, net=net)


@pytest.mark.timeout(30)
def test_a_second_connect_from_the_same_local_address_and_port_is_refused():
    net = SimNetwork()

    async def main():
        (web,) = await net.listen_tcp("10.0.0.1", 80)
        (db,) = await net.listen_tcp("10.0.0.1", 5432)
        client = await net.connect_tcp("10.0.0.1", 80, local_address=("10.0.0.2", 5555))
        server = await web.accept()
        for port in (80, 5432):  # bind() fails whatever the destination
            with pytest.raises(OSError) as info:
                await net.connect_tcp("10.0.0.1", port, local_address=("10.0.0.2", 5555))
            assert info.value.errno == errno.EADDRINUSE
            assert "10.0.0.2:5555" in str(info.value)
            assert "10.0.0.2:5555 -> 10.0.0.1:80" in str(info.value)  # who holds it
        assert yieldio.current_time() == 0  # refused at once, nothing was sent
        # another local IP may use the same port
        other = await net.connect_tcp("10.0.0.1", 80, local_address=("10.0.0.3", 5555))
        await other.aclose()
        await (await web.accept()).aclose()
        # closed: the port is free again (SimNetwork has no TIME_WAIT)
        await client.aclose()
        await server.aclose()
        again = await net.connect_tcp("10.0.0.1", 5432, local_address=("10.0.0.2", 5555))
        assert again.get_extra_info("sockname") == ("10.0.0.2", 5555)
        for s in (again, await db.accept(), web, db):
            await s.aclose()

    vrun(main, net=net)


@pytest.mark.timeout(30)
def test_a_local_port_is_held_while_connecting_and_freed_by_a_failed_connect():
    net = SimNetwork(latency=1)

    async def main():
        (listener,) = await net.listen_tcp("10.0.0.1", 80)
        local = ("10.0.0.2", 5555)
        async with yieldio.TaskGroup() as tg:
            first = tg.spawn(functools.partial(net.connect_tcp, "10.0.0.1", 80,
                                               local_address=local))
            await wait_all_tasks_blocked()
            with pytest.raises(OSError) as info:  # the first is still in its handshake
                await net.connect_tcp("10.0.0.1", 80, local_address=local)
            assert info.value.errno == errno.EADDRINUSE
            assert "connect in progress 10.0.0.2:5555 -> 10.0.0.1:80" in str(info.value)
        assert yieldio.current_time() == 2
        await first.result().aclose()
        await (await listener.accept()).aclose()
        # refused, timed out or cancelled: the port is released each time
        for _ in range(2):
            with pytest.raises(ConnectionRefusedError):
                await net.connect_tcp("10.0.0.1", 81, local_address=local)
        with yieldio.move_on_after(0.5):  # cancelled before the SYN arrives
            await net.connect_tcp("10.0.0.1", 80, local_address=local)
        with yieldio.move_on_after(1.5):  # cancelled after: the server end is reset
            await net.connect_tcp("10.0.0.1", 80, local_address=local)
        with pytest.raises(ConnectionResetError):
            await (await listener.accept()).read()
        net.partition("10.0.0.2", "10.0.0.1")
        with pytest.raises(TimeoutError):
            with yieldio.fail_after(5):
                await net.connect_tcp("10.0.0.1", 80, local_address=local)
        net.heal()
        client = await net.connect_tcp("10.0.0.1", 80, local_address=local)
        assert client.get_extra_info("sockname") == local
        await client.aclose()
        await listener.aclose()

    vrun(main, net=net)


@pytest.mark.timeout(30)
def test_a_reset_connection_keeps_its_local_port_until_it_is_closed():
    net = SimNetwork()

    async def main():
        (listener,) = await net.listen_tcp("10.0.0.1", 80)
        local = ("10.0.0.2", 5555)
        client = await net.connect_tcp("10.0.0.1", 80, local_address=local)
        server = await listener.accept()
        net.reset(client)
        with pytest.raises(OSError) as info:
            await net.connect_tcp("10.0.0.1", 80, local_address=local)
        assert info.value.errno == errno.EADDRINUSE
        await client.aclose()  # the socket is gone: so is its port
        again = await net.connect_tcp("10.0.0.1", 80, local_address=local)
        for s in (again, server, await listener.accept(), listener):
            await s.aclose()

    vrun(main, net=net)


@pytest.mark.timeout(30)
def test_explicit_local_ports_and_ephemeral_ports_never_collide():
    net = SimNetwork()

    async def main():
        (listener,) = await net.listen_tcp("10.0.0.1", 80)
        with net.host("10.0.0.2"):
            # explicit first: later ephemeral ports step around it
            pinned = await net.connect_tcp("10.0.0.1", 80, local_address=("10.0.0.2", 49152))
            auto = await net.connect_tcp("10.0.0.1", 80)
        assert auto.get_extra_info("sockname")[1] != 49152
        # ephemeral first: an explicit bind of the same address is refused
        taken = auto.get_extra_info("sockname")
        with pytest.raises(OSError) as info:
            await net.connect_tcp("10.0.0.1", 80, local_address=taken)
        assert info.value.errno == errno.EADDRINUSE
        (ephemeral_listener,) = await net.listen_tcp("10.0.0.2", 0)
        with pytest.raises(OSError) as info:
            await net.connect_tcp("10.0.0.1", 80, local_address=ephemeral_listener.address)
        assert info.value.errno == errno.EADDRINUSE
        # a port held by a client cannot be listened on either
        for host in ("10.0.0.2", None):  # the address, or every address
            with pytest.raises(OSError) as info:
                await net.listen_tcp(host, taken[1])
            assert info.value.errno == errno.EADDRINUSE
        for s in (pinned, auto, await listener.accept(), await listener.accept()):
            await s.aclose()
        (freed,) = await net.listen_tcp(None, taken[1])  # closed: free again
        for s in (freed, ephemeral_listener, listener):
            await s.aclose()

    vrun(main, net=net)


@pytest.mark.timeout(30)
def test_a_local_address_taken_by_a_listener_is_refused():
    net = SimNetwork()

    async def main():
        (specific,) = await net.listen_tcp("10.0.0.2", 7000)
        (everywhere,) = await net.listen_tcp(None, 8000)  # every address
        (listener,) = await net.listen_tcp("10.0.0.1", 80)
        for local in (("10.0.0.2", 7000), ("10.0.0.2", 8000), ("10.0.0.9", 8000)):
            with pytest.raises(OSError) as info:
                await net.connect_tcp("10.0.0.1", 80, local_address=local)
            assert info.value.errno == errno.EADDRINUSE
            assert "SimListener" in str(info.value)
        ok = await net.connect_tcp("10.0.0.1", 80, local_address=("10.0.0.3", 7000))
        for s in (ok, await listener.accept(), specific, everywhere, listener):
            await s.aclose()

    vrun(main, net=net)


def test_unix_connect_waits_for_backlog_room_and_is_refused_if_the_listener_closes():
    net = SimNetwork()

    async def main():
        listener = await net.listen_unix("/run/app.sock", backlog=1)
        first = await net.connect_unix("/run/app.sock")
        async with yieldio.TaskGroup() as tg:
            waiting = tg.spawn(net.connect_unix, "/run/app.sock")
            await wait_all_tasks_blocked()
            assert waiting.state == "waiting"  # a Unix connect blocks on a full backlog
            await listener.accept()
        assert isinstance(waiting.result(), MemoryStream)

        async def refused():
            with pytest.raises(ConnectionRefusedError):
                await net.connect_unix("/run/app.sock")

        async with yieldio.TaskGroup() as tg:
            tg.spawn(refused)
            await wait_all_tasks_blocked()
            await listener.aclose()
        await first.aclose()

    vrun(main, net=net)


def test_accept_in_a_cancelled_scope_raises_cancelled():
    net = SimNetwork()

    async def main():
        (listener,) = await net.listen_tcp("10.0.0.1", 80)
        with yieldio.CancelScope() as scope:
            scope.cancel()
            await listener.accept()
        assert scope.cancelled_caught
        await listener.aclose()

    vrun(main, net=net)


def test_deadlock_report_names_a_stuck_accept_and_reprs_are_readable():
    net = SimNetwork()

    async def main():
        (listener,) = await net.listen_tcp("10.0.0.1", 80)
        assert repr(listener) == "<SimListener 10.0.0.1:80>"
        client = await net.connect_tcp("10.0.0.1", 80, local_address=("10.0.0.2", 4000))
        assert repr(client.connection) == "<SimConnection tcp 10.0.0.2:4000 -> 10.0.0.1:80>"
        (other,) = await net.listen_tcp("10.0.0.1", 81)
        await other.aclose()
        assert repr(other) == "<SimListener 10.0.0.1:81 closed>"
        await listener.accept()
        await listener.accept()  # nobody else will connect

    with pytest.raises(yieldio.Deadlock, match=r"accept on simulated 10\.0\.0\.1:80"):
        vrun(main, net=net)


# -- check_stream reports broken streams, and is cancellable -----------------------------------
class SendAfterCloseSucceeds(MemoryStream):
    async def send_all(self, data):
        if not self._closed:
            await super().send_all(data)


class CloseFails(MemoryStream):
    async def aclose(self):
        await super().aclose()
        raise OSError("close failed")


class ExitsOnRead(MemoryStream):
    async def receive_some(self, max_bytes=65536):
        raise SystemExit(3)


def pair_of(cls):
    async def factory():
        a, b = memory_stream_pair()
        return cls(a._in, a._out), cls(b._in, b._out)

    return factory


def test_check_stream_says_what_should_have_raised():
    with pytest.raises(AssertionError) as info:
        vrun(functools.partial(check_stream, pair_of(SendAfterCloseSucceeds), timeout=5.0))
    assert ("closed_resource_errors: AssertionError: send_all on a closed stream: "
            "expected ClosedResourceError, got the result None") in str(info.value)


def test_check_stream_reports_a_failing_aclose():
    with pytest.raises(AssertionError) as info:
        vrun(functools.partial(check_stream, pair_of(CloseFails), timeout=5.0))
    assert "ordered_delivery (aclose): OSError: close failed" in str(info.value)


def test_check_stream_lets_system_exit_through():
    with pytest.raises(SystemExit):
        vrun(functools.partial(check_stream, pair_of(ExitsOnRead), timeout=5.0))


def test_check_stream_cancelled_from_outside_stops_and_closes_its_streams():
    net = SimNetwork(latency=1)
    made = []

    async def factory():
        pair = await tcp_pair(net)
        made.extend(pair)
        return pair

    async def main():
        with yieldio.move_on_after(3) as scope:
            await check_stream(factory)
        assert scope.cancelled_caught
        assert len(made) == 2 and all(s._closed for s in made)

    vrun(main, net=net)


# -- explore()'s replay text ------------------------------------------------------------------
async def _fails():
    raise ValueError("boom")


def _as_if(module, fn=_fails):
    @functools.wraps(fn)
    async def wrapper():
        await fn()

    wrapper.__module__ = module
    wrapper.__qualname__ = "scenario"
    return wrapper


def test_replay_of_a_script_function_is_its_bare_name():
    with pytest.raises(ExploreFailure) as info:
        explore(_as_if("__main__"), seeds=[4])
    assert info.value.replay == (
        "yieldio.run(scenario, seed=4, clock=yieldio.testing.VirtualClock(autojump=True))")


def test_replay_keeps_a_private_module_its_parent_does_not_export():
    with pytest.raises(ExploreFailure) as info:
        explore(_as_if("yieldio._scenarios"), seeds=[4])
    assert info.value.replay.startswith("yieldio.run(yieldio._scenarios.scenario, seed=4,")


def test_ctrl_c_during_the_verifying_replay_is_not_swallowed():
    calls = []

    async def main():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first run fails")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        explore(main, seeds=[0])
    assert len(calls) == 2


def test_stall_refuses_a_nan_or_negative_duration():
    net = SimNetwork()

    async def main():
        for bad in (float("nan"), -1.0):
            with pytest.raises(ValueError, match="seconds must be >= 0"):
                net.stall("10.0.0.1", bad)

    vrun(main, net=net)


def test_accept_woken_by_a_connection_the_closing_listener_dropped_raises_closed():
    # At t=1 the SYN arrives: the connect hands its server end to the parked
    # acceptor (waking it); in the same batch, before the acceptor runs, the
    # listener is closed, which resets and drops that connection. The acceptor
    # must get ClosedResourceError, not park for ever on the closed listener.
    net = SimNetwork(latency=1.0)

    async def main():
        (listener,) = await net.listen_tcp("127.0.0.1", 80)
        outcome = []

        async def acceptor():
            try:
                await listener.accept()
                outcome.append("accepted")
            except yieldio.ClosedResourceError:
                outcome.append("closed")

        async def connector():
            client = await net.connect_tcp("127.0.0.1", 80)
            with pytest.raises(ConnectionResetError):
                await client.receive_some(1)
            await client.aclose()

        async with yieldio.TaskGroup() as tg:
            tg.spawn(acceptor)
            tg.spawn(connector)
            await wait_all_tasks_blocked()   # the SYN is on its way, due at t=1
            await yieldio.sleep_until(1.0)   # wakes at t=1, after the connector
            await listener.aclose()
        return outcome

    assert vrun(main, net=net) == ["closed"]


def test_a_wildcard_listener_and_one_on_a_single_address_of_the_same_port_conflict():
    # As bind() on Linux: *:80 covers 127.0.0.1:80, so either one, second, is EADDRINUSE
    # (unless both ask for reuse_port), and closing the first frees the port.
    net = SimNetwork()

    async def main():
        (everywhere,) = await net.listen_tcp(None, 80)
        with pytest.raises(OSError) as info:
            await net.listen_tcp("127.0.0.1", 80)
        assert info.value.errno == errno.EADDRINUSE
        (single,) = await net.listen_tcp("127.0.0.1", 81)
        with pytest.raises(OSError) as info:
            await net.listen_tcp(None, 81)
        assert info.value.errno == errno.EADDRINUSE
        (other_ip,) = await net.listen_tcp("10.0.0.1", 81)  # another address: fine
        shared = [*await net.listen_tcp("127.0.0.1", 82, reuse_port=True),
                  *await net.listen_tcp(None, 82, reuse_port=True)]
        await everywhere.aclose()
        (again,) = await net.listen_tcp("127.0.0.1", 80)
        for lst in (single, other_ip, *shared, again):
            await lst.aclose()
        assert net.listeners() == []
        (wild,) = await net.listen_tcp(None, 81)  # every listener on 81 is gone
        await wild.aclose()

    vrun(main, net=net)


def test_stall_and_reset_by_a_name_cover_every_address_of_it():
    net = SimNetwork(chunking=False)
    net.add_host("multi.example", "10.0.0.1")
    net.add_host("multi.example", "10.0.0.2")

    async def main():
        first, second = await net.listen_tcp("multi.example", 80)
        pairs = []
        for listener in (first, second):
            with net.host("10.0.0.9"):
                client = await net.connect_tcp(listener.address[0], 80)
            pairs.append((client, await listener.accept()))
        net.stall("multi.example", 5)  # both of its addresses, not only the first
        for client, _ in pairs:
            await client.write(b"x")
        t = yieldio.current_time()
        for _, server in reversed(pairs):
            assert await server.receive_some(1) == b"x"
            assert yieldio.current_time() - t == 5
        assert net.reset(("multi.example", 80)) == 2
        for client, server in pairs:
            with pytest.raises(ConnectionResetError):
                await client.receive_some(1)
            await client.aclose()
            await server.aclose()
        await first.aclose()
        await second.aclose()

    vrun(main, net=net)


def test_accept_cancelled_after_a_connection_woke_it_leaves_the_connection_queued():
    # At t=1 the SYN arrives and wakes the parked acceptor; in the same batch,
    # before it runs, its scope is cancelled. The connection must stay in the
    # backlog for the next accept(), not vanish with its client still connected.
    net = SimNetwork(latency=1.0, chunking=False)

    async def main():
        (listener,) = await net.listen_tcp("127.0.0.1", 80)
        scope = yieldio.CancelScope()
        clients = []

        async def acceptor():
            with scope:
                await listener.accept()

        async def connector():
            clients.append(await net.connect_tcp("127.0.0.1", 80))

        async with yieldio.TaskGroup() as tg:
            tg.spawn(acceptor)
            tg.spawn(connector)
            await wait_all_tasks_blocked()   # the SYN is on its way, due at t=1
            await yieldio.sleep_until(1.0)   # wakes at t=1, after the connector
            scope.cancel()
        assert scope.cancelled_caught
        (client,) = clients
        with yieldio.fail_after(10):
            server = await listener.accept()
        await client.write(b"hi")
        assert await server.read_exactly(2) == b"hi"
        for resource in (client, server, listener):
            await resource.aclose()

    vrun(main, net=net)


# -- argument checks (regressions from an audit) -----------------------------------
NAN = float("nan")


@pytest.mark.parametrize("kwargs, match", [
    # NaN passed 'latency < 0' and crashed the first connect ("deadline must not be NaN").
    ({"latency": NAN}, r"latency must be >= 0 seconds, not nan"),
    ({"bandwidth": NAN}, r"bandwidth must be > 0 bytes/second \(or None\), not nan"),
    # A NaN connect_timeout made a partitioned connect wait for ever.
    ({"connect_timeout": NAN}, r"connect_timeout must be >= 0 seconds, not nan"),
    ({"connect_timeout": -1}, r"connect_timeout must be >= 0 seconds, not -1"),
])
def test_simnetwork_refuses_nan_and_negative_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimNetwork(**kwargs)


def test_set_link_checks_latency_and_bandwidth():
    net = SimNetwork()
    with pytest.raises(ValueError, match=r"latency must be >= 0 seconds, not -1"):
        net.set_link("10.0.0.1", "10.0.0.2", latency=-1)
    with pytest.raises(ValueError, match=r"latency must be >= 0 seconds, not nan"):
        net.set_link("10.0.0.1", "10.0.0.2", latency=NAN)
    with pytest.raises(ValueError, match=r"bandwidth must be > 0"):
        net.set_link("10.0.0.1", "10.0.0.2", bandwidth=0)
    assert net._links == {}  # nothing half-applied
    net.set_link("10.0.0.1", "10.0.0.2", latency=0.2)  # a good one still works
    assert net._link_settings("10.0.0.2", "10.0.0.1") == (0.2, None)


def test_reset_of_an_unknown_target_raises_even_with_no_connections():
    # Regression: reset("nonsense") and reset(42) returned 0 (nothing matched,
    # because there was nothing to match), while partition("nonsense") raised.
    net = SimNetwork()
    net.add_host("db.example", "10.0.0.5")

    async def main():
        with pytest.raises(ValueError, match="unknown host 'nonsense'"):
            net.reset("nonsense")
        with pytest.raises(ValueError, match="unknown host 'nonsense'"):
            net.reset(("nonsense", 80))
        with pytest.raises(ValueError, match="unknown host 'nowhere'"):
            net.reset("10.0.0.1", "nowhere")
        with pytest.raises(TypeError, match=r"reset\(\) takes a stream .* not 42"):
            net.reset(42)
        with pytest.raises(ValueError, match=r"is \(host, port\), not \('10.0.0.1',\)"):
            net.reset(("10.0.0.1",))
        # Good targets with nothing to reset: 0, no error.
        assert net.reset("db.example") == 0
        assert net.reset(("10.0.0.1", 80)) == 0
        assert net.reset("10.0.0.1", "db.example") == 0
        assert net.reset("/tmp/some.sock") == 0
        assert net.reset(["10.0.0.1", "db.example"]) == 0

    vrun(main, net=net)


def test_partition_of_a_non_host_is_a_type_error():
    net = SimNetwork()

    async def main():
        with pytest.raises(TypeError, match=r"a host is an IP address or a name .*not 42"):
            net.partition(42)

    vrun(main, net=net)


def test_simnetwork_is_listed_by_dir():
    # Regression: the lazily imported names were in __all__ but not in dir()
    # until first used. A fresh interpreter: here SimNetwork is imported already.
    import subprocess
    import sys

    code = ("import yieldio.testing as t, sys; "
            "missing = set(t.__all__) - set(dir(t)); "
            "assert 'yieldio.testing._simnet' not in sys.modules; "
            "print(sorted(missing))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
