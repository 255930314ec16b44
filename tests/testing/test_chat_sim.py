"""The chat example, tested entirely on SimNetwork: an hour of traffic with faults, in seconds."""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest

import yieldio
from yieldio.testing import SimNetwork, VirtualClock

from .test_explore import EXAMPLES, load_example

chat_sim = load_example("chat_sim")


def _has_yieldio_servers() -> bool:
    try:
        return callable(yieldio.serve_tcp) and callable(yieldio.open_tcp_stream)
    except (AttributeError, ImportError):
        return False


needs_servers = pytest.mark.skipif(
    not _has_yieldio_servers(),
    reason="yieldio.serve_tcp / yieldio.open_tcp_stream are not available yet")


def run_chat(seed=None, use_yieldio_api=True, duration=3600.0):
    net = SimNetwork(latency=0.05, bandwidth=1_000_000)
    main = functools.partial(chat_sim.simulate, net, duration, use_yieldio_api=use_yieldio_api)
    return yieldio.run(main, network=net, seed=seed, clock=VirtualClock(autojump=True))


def check(result, duration=3600.0):
    server, clients = result["server"], result["clients"]
    assert result["time"] >= duration  # the whole simulated hour went by
    assert [what for _, what in result["faults"]] == [
        "partition carol", "heal", "reset every connection to the server",
        "stall the server for 20 s"]
    # Every message made it into the log exactly once, in each sender's order.
    for nick, client in clients.items():
        ids = [msg_id for n, msg_id, _ in server.log if n == nick]
        assert ids == list(range(1, client.next_id)), nick
        assert client.next_id > 50  # an hour of chatting: plenty of messages
        assert not client.outbox
        # ... and every client ends up with exactly the server's log.
        assert client.received == server.log, nick
    # The faults were felt and survived.
    carol = clients["carol"]
    assert carol.failures["TimeoutError"] >= 1        # connects across the partition
    assert all(c.failures["ConnectionResetError"] >= 1 for c in clients.values())
    assert all(c.connects >= 3 for c in clients.values())


@needs_servers
def test_an_hour_of_chat_with_serve_tcp_and_open_tcp_stream():
    check(run_chat())


def test_an_hour_of_chat_on_simnetwork_listeners():
    check(run_chat(use_yieldio_api=False))


@needs_servers
@pytest.mark.parametrize("seed", [1, 2])
def test_seeded_schedules_and_splits(seed):
    check(run_chat(seed=seed))


@needs_servers
def test_a_seed_replays_the_same_hour():
    def summary(result):
        clients = result["clients"]
        return (result["server"].log, result["server"].duplicates,
                {n: (c.connects, dict(c.failures)) for n, c in clients.items()})

    assert summary(run_chat(seed=3, duration=900)) == summary(run_chat(seed=3, duration=900))


@needs_servers
def test_example_script_runs():
    out = subprocess.run([sys.executable, str(EXAMPLES / "chat_sim.py")], capture_output=True,
                         text=True, timeout=300, check=True).stdout
    assert "an hour of chat in" in out and "every log identical" in out
