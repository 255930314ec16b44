"""A chat server and client that survive a bad network, tested on SimNetwork.

The server keeps one log of messages; each client sends ``HELLO <nick> <last
seen>`` when it connects and gets everything it missed, then live traffic.
Clients number their messages and resend the unacknowledged ones after a
reconnect; the server drops duplicates. Both sides send ``PING`` when idle
and give up on a peer that stays silent, so a dead link is noticed even when
TCP itself would wait forever. The code uses only ``yieldio.serve_tcp`` and
``yieldio.open_tcp_stream`` -- it has no idea it runs on a simulation.

``simulate()`` runs an hour of traffic from three clients on a
:class:`yieldio.testing.SimNetwork` with 50 ms of latency, a two-minute
partition, a reset of every connection and a stall, in virtual time: it
takes seconds. At the end every client must hold exactly the server's log::

    $ python examples/chat_sim.py
    an hour of chat in 0.7 s: 519 messages, 7 reconnects, every log identical
      t=   600 s  partition carol
      ...
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import yieldio
from yieldio.testing import SimNetwork, VirtualClock

PING_INTERVAL = 5.0      # send PING after this long without sending anything
IDLE_TIMEOUT = 15.0      # a peer silent this long is gone
CONNECT_TIMEOUT = 10.0
GONE = (OSError, EOFError, yieldio.ClosedResourceError, yieldio.BrokenStreamError)


class PeerGone(EOFError):
    """The other side closed the connection or went silent."""


async def read_line(stream: yieldio.Stream) -> bytes:
    """One line, or PeerGone after IDLE_TIMEOUT of silence or at EOF."""
    with yieldio.move_on_after(IDLE_TIMEOUT) as scope:
        line = await stream.readline(4096)
    if scope.cancelled_caught:
        raise PeerGone(f"silent for {IDLE_TIMEOUT} s")
    if not line.endswith(b"\n"):
        raise PeerGone("connection closed")
    return line


class ChatServer:
    """One log, many sessions; ``handle`` is the connection handler for serve_tcp."""

    def __init__(self) -> None:
        self.log: list[tuple[str, int, str]] = []   # (nick, message id, text)
        self.last_id: Counter[str] = Counter()      # per nick, for deduplication
        self.sessions: dict[str, yieldio.Stream] = {}
        self.changed = yieldio.Event()
        self.duplicates = 0

    async def handle(self, stream: yieldio.Stream) -> None:
        try:
            _, nick, since = (await read_line(stream)).decode().split()
            old = self.sessions.get(nick)
            if old is not None:
                await old.aclose()  # a stale session of a client that reconnected
            self.sessions[nick] = stream
            try:
                async with yieldio.TaskGroup() as tg:
                    tg.spawn(self._send_log, stream, int(since))
                    await self._receive(stream, nick)
                    tg.cancel()
            finally:
                if self.sessions.get(nick) is stream:
                    del self.sessions[nick]
        except* GONE:
            pass  # the client went away; it will come back and catch up

    async def _receive(self, stream: yieldio.Stream, nick: str) -> None:
        while True:
            line = (await read_line(stream)).decode()
            if line == "PING\n":
                continue
            _, msg_id, text = line.rstrip("\n").split(" ", 2)
            if int(msg_id) <= self.last_id[nick]:
                self.duplicates += 1  # a resend of something we already have
                continue
            self.last_id[nick] = int(msg_id)
            self.log.append((nick, int(msg_id), text))
            self.changed.set()
            self.changed = yieldio.Event()

    async def _send_log(self, stream: yieldio.Stream, since: int) -> None:
        position = since
        while True:
            changed = self.changed
            if position < len(self.log):
                batch = self.log[position:position + 100]
                lines = [f"{position + i + 1} {n} {m} {t}\n" for i, (n, m, t) in enumerate(batch)]
                await stream.write("".join(lines).encode())
                position += len(batch)
                continue
            with yieldio.move_on_after(PING_INTERVAL) as scope:
                await changed.wait()
            if scope.cancelled_caught:
                await stream.write(b"PING\n")


Connect = Callable[[str, int], Awaitable[yieldio.Stream]]


class ChatClient:
    """Keeps a connection to the server, reconnecting with backoff; ``say`` never blocks."""

    def __init__(self, nick: str, host: str, port: int, connect: Connect | None = None) -> None:
        self.nick = nick
        self.host = host
        self.port = port
        self._connect = connect or yieldio.open_tcp_stream
        self.outbox: dict[int, str] = {}   # sent but not yet seen in the log
        self.next_id = 1
        self.received: list[tuple[str, int, str]] = []
        self.connects = 0
        self.failures: Counter[str] = Counter()
        self._wake = yieldio.Event()

    def say(self, text: str) -> None:
        self.outbox[self.next_id] = text
        self.next_id += 1
        self._wake.set()
        self._wake = yieldio.Event()

    async def run(self) -> None:
        """Stay connected until cancelled."""
        backoff = 0.5
        while True:
            try:
                with yieldio.fail_after(CONNECT_TIMEOUT):
                    stream = await self._connect(self.host, self.port)
            except OSError as exc:
                self.failures[type(exc).__name__] += 1
            else:
                self.connects += 1
                backoff = 0.5
                try:
                    async with stream:
                        await self._session(stream)
                except* GONE as group:
                    for exc in group.exceptions:
                        self.failures[type(exc).__name__] += 1
            await yieldio.sleep(backoff)
            backoff = min(backoff * 2, 8.0)

    async def _session(self, stream: yieldio.Stream) -> None:
        await stream.write(f"HELLO {self.nick} {len(self.received)}\n".encode())
        async with yieldio.TaskGroup() as tg:
            tg.spawn(self._send, stream)
            await self._receive(stream)

    async def _send(self, stream: yieldio.Stream) -> None:
        sent_upto = 0  # per connection: everything unacknowledged is resent
        while True:
            wake = self._wake
            pending = [(i, t) for i, t in self.outbox.items() if i > sent_upto]
            if pending:
                await stream.write("".join(f"MSG {i} {t}\n" for i, t in pending).encode())
                sent_upto = pending[-1][0]
                continue
            with yieldio.move_on_after(PING_INTERVAL) as scope:
                await wake.wait()
            if scope.cancelled_caught:
                await stream.write(b"PING\n")

    async def _receive(self, stream: yieldio.Stream) -> None:
        while True:
            line = (await read_line(stream)).decode()
            if line == "PING\n":
                continue
            seq, nick, msg_id, text = line.rstrip("\n").split(" ", 3)
            if int(seq) <= len(self.received):
                continue  # already have it (replayed history)
            assert int(seq) == len(self.received) + 1, f"gap in the log at {seq}"
            self.received.append((nick, int(msg_id), text))
            if nick == self.nick:
                self.outbox.pop(int(msg_id), None)  # acknowledged


# -- the simulation ----------------------------------------------------------------
SERVER_IP = "10.0.0.1"
CLIENTS = {"alice": "10.0.1.1", "bob": "10.0.1.2", "carol": "10.0.1.3"}
PORT = 7000


async def _serve_with_listeners(net: SimNetwork, server: ChatServer) -> None:
    """The server without serve_tcp: the SimNetwork's own listener API."""
    with net.host(SERVER_IP):
        (listener,) = await net.listen_tcp(None, PORT)
    async with listener, yieldio.TaskGroup() as tg:
        while True:
            stream = await listener.accept()

            async def serve_one(stream: yieldio.Stream) -> None:
                async with stream:
                    await server.handle(stream)

            tg.spawn(serve_one, stream)


async def simulate(net: SimNetwork, duration: float = 3600.0, *,
                   use_yieldio_api: bool = True) -> dict[str, Any]:
    """Run the chat for ``duration`` virtual seconds with faults; return what happened.

    Run it with the network installed: ``yieldio.run(simulate, net, network=net, ...)``.
    """
    if use_yieldio_api and yieldio.net.current_network() is not net:
        raise RuntimeError("run simulate() with network=net: serve_tcp and open_tcp_stream "
                           "would use real sockets")
    net.add_host("chat.example", SERVER_IP)
    server = ChatServer()
    connect = None if use_yieldio_api else net.connect_tcp
    clients = {nick: ChatClient(nick, "chat.example", PORT, connect) for nick in CLIENTS}
    faults: list[tuple[float, str]] = []

    async def talk(client: ChatClient, rng: random.Random) -> None:
        n = 0
        while True:
            await yieldio.sleep(rng.expovariate(1 / 20))
            if yieldio.current_time() >= duration:
                return
            n += 1
            client.say(f"message {n} from {client.nick}")

    async def chaos() -> None:
        async def at(t: float, what: str, fault: Callable[[], Any]) -> None:
            await yieldio.sleep_until(t)
            fault()
            faults.append((t, what))

        await at(600, "partition carol", lambda: net.partition(CLIENTS["carol"], SERVER_IP))
        await at(720, "heal", net.heal)
        await at(1800, "reset every connection to the server",
                 lambda: net.reset((SERVER_IP, PORT)))
        await at(2400, "stall the server for 20 s", lambda: net.stall(SERVER_IP, 20))

    def converged() -> bool:
        return all(not c.outbox and len(c.received) == len(server.log) for c in clients.values())

    async with yieldio.TaskGroup() as tg:
        if use_yieldio_api:
            with net.host(SERVER_IP):
                chat_server = yieldio.serve_tcp(server.handle, None, PORT)
                await chat_server.__aenter__()
        else:
            tg.spawn(_serve_with_listeners, net, server)
        try:
            for i, (nick, ip) in enumerate(CLIENTS.items()):
                with net.host(ip):
                    tg.spawn(clients[nick].run, name=f"client {nick}")
                tg.spawn(talk, clients[nick], random.Random(i))
            tg.spawn(chaos)
            await yieldio.sleep_until(duration)
            with yieldio.fail_after(600):   # everyone catches up after the last message
                while not converged():
                    await yieldio.sleep(1)
            tg.cancel()
        finally:
            if use_yieldio_api:
                await chat_server.__aexit__(None, None, None)
    return {"server": server, "clients": clients, "faults": faults,
            "time": yieldio.current_time()}


def main() -> None:
    net = SimNetwork(latency=0.05, bandwidth=1_000_000)
    started = time.perf_counter()
    result = yieldio.run(simulate, net, network=net, clock=VirtualClock(autojump=True))
    elapsed = time.perf_counter() - started
    server, clients = result["server"], result["clients"]
    same = all(c.received == server.log for c in clients.values())
    connects = sum(c.connects for c in clients.values()) - len(clients)
    print(f"an hour of chat in {elapsed:.1f} s: {len(server.log)} messages, {connects} "
          f"reconnects, {'every log identical' if same else 'LOGS DIFFER'}")
    for t, what in result["faults"]:
        print(f"  t={t:>6.0f} s  {what}")
    for nick, c in clients.items():
        print(f"  {nick}: {c.connects} connections, failures {dict(c.failures)}")


if __name__ == "__main__":
    main()
