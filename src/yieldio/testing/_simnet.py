"""SimNetwork: an in-memory TCP/IP (and Unix socket) network in virtual time.

Installed for a run (``yieldio.run(main, network=net)`` or ``with
net.install():``), it answers ``open_tcp_stream``, ``serve_tcp``,
``open_unix_stream``, ``serve_unix`` and ``getaddrinfo``, so the code under
test runs unchanged, without a socket, on links with latency and bandwidth,
and with faults injected at chosen moments:

* **byte streams, arbitrary splits** -- reads return arbitrary prefixes of
  what has arrived (``chunking``), chosen by the run's seeded random
  generator: ``yieldio.run(main, seed=N)`` replays the same splits;
* **latency and bandwidth** per link (pair of hosts), in ``current_time()``
  units: pair it with ``VirtualClock(autojump=True)`` and an hour of traffic
  takes milliseconds;
* **refusal**: no listener -> :class:`ConnectionRefusedError`;
* **resets**: ``net.reset(...)`` -> :class:`ConnectionResetError` at both ends
  (and, as in TCP, closing with unread data, or writing to a closed peer,
  resets the connection);
* **stalls and partitions**: ``net.stall(host, seconds)``,
  ``net.partition(a, b)`` / ``net.heal()``: data stops flowing (nothing is
  lost), connects wait and time out after ``connect_timeout`` (a Unix
  connect waits out a stall of its path, with no timeout of its own);
* **ports**: as with ``bind()``, a local ``(ip, port)`` held by an open client
  or a listener is refused with ``EADDRINUSE``.

State created during a run (listeners, connections, ports, faults) belongs to
that run: the next run that uses the same SimNetwork starts clean, so a
seed replays the same way whatever ran before. Hosts (``add_host``) and link
settings (``set_link``) persist.

This module is the network itself: hosts and names, links, the table of
listeners and local ports (``EADDRINUSE``, ephemeral ports), and connecting.
The wires -- connections, their streams, listeners -- are in ``_simlink.py``;
the fault model -- ``reset``/``stall``/``partition``/``heal``, what they hold
back and the waits they cause -- is in ``_simfaults.py``, a mixin of
:class:`SimNetwork`.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import ipaddress
import itertools
import random
import socket
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .. import _state
from .._time import sleep_until
from .._timeouts import move_on_at
from ..net._tcp import format_target, happy_eyeballs, interleave_families
from ._memory import _cancel_point
from ._simfaults import SimFaults
from ._simlink import SimConnection, SimListener, SimStream, _fmt

if TYPE_CHECKING:
    from .._kernel import Kernel

__all__ = ["SimNetwork", "installed_network"]

_WILDCARDS = ("", "0.0.0.0", "::", "*")

_installed: list[SimNetwork] = []


def installed_network() -> SimNetwork | None:
    """The SimNetwork made the default by ``with net.install():``, or None.

    ::

        with net.install():
            assert yieldio.testing.installed_network() is net
    """
    return _installed[-1] if _installed else None


def _now() -> float:
    return _state.current_kernel().clock_now()


class SimNetwork(SimFaults):
    """An in-memory network for tests: hosts, links, listeners, faults, in virtual time.

    ::

        net = yieldio.testing.SimNetwork(latency=0.05)
        net.add_host("chat.example", "10.0.0.1")

        async def main():
            with net.host("10.0.0.1"):
                (listener,) = await net.listen_tcp(None, 7000)
            with net.host("10.0.0.2"):
                client = await net.connect_tcp("chat.example", 7000)
            server = await listener.accept()
            ...

        yieldio.run(main, network=net, clock=yieldio.testing.VirtualClock(autojump=True))

    ``latency`` is one-way, in seconds; ``bandwidth`` in bytes per second per
    direction (None: unlimited); ``chunking`` makes reads return arbitrary
    splits. The splits come from the run's seeded Random when the run has a
    seed, else from ``Random(seed)`` (``seed`` None: 0) created afresh for
    each run. Code outside ``with net.host(...)`` runs on ``127.0.0.1``.
    """

    def __init__(self, seed: int | None = None, latency: float = 0.0,
                 bandwidth: float | None = None, chunking: bool = True, *,
                 connect_timeout: float = 127.0, max_buffer: int = 65536) -> None:
        _check_link_settings(latency, bandwidth)
        if max_buffer < 1:
            raise ValueError("max_buffer must be >= 1")
        # 'not >= 0' refuses NaN too: a partitioned connect compared its
        # deadline with NaN and never timed out. (math.inf: never time out.)
        if not connect_timeout >= 0:
            raise ValueError(f"connect_timeout must be >= 0 seconds, not {connect_timeout!r}")
        self.seed = seed
        self.latency = float(latency)
        self.bandwidth = bandwidth
        self.chunking = chunking
        self.connect_timeout = connect_timeout
        self.max_buffer = max_buffer
        self._dns: dict[str, list[str]] = {}
        self._links: dict[tuple[str, str], tuple[float | None, float | None]] = {}
        self._here: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            f"simnet-host-{id(self)}", default=None)
        self._kernel: Kernel = None  # type: ignore[assignment]
        self._new_run_state()

    def __repr__(self) -> str:
        return (f"<SimNetwork latency={self.latency} bandwidth={self.bandwidth} "
                f"{len(self._conns)} connections>")

    # -- configuration, saved and restored (explore: every seed starts alike) --
    def _configuration(self) -> tuple[Any, ...]:
        """What a run may change that outlives it: the links, names and defaults."""
        return (self.latency, self.bandwidth, self.chunking, self.connect_timeout,
                self.max_buffer, {name: list(addrs) for name, addrs in self._dns.items()},
                dict(self._links))

    def _restore_configuration(self, saved: tuple[Any, ...]) -> None:
        (self.latency, self.bandwidth, self.chunking, self.connect_timeout, self.max_buffer,
         dns, links) = saved
        self._dns = {name: list(addrs) for name, addrs in dns.items()}
        self._links = dict(links)

    # -- per-run state ---------------------------------------------------------
    def _new_run_state(self) -> None:
        self._listeners: dict[Any, list[SimListener]] = {}
        # port -> the IPs ("*": every address) with TCP listeners on it
        self._listen_ips: dict[int, dict[str, None]] = {}
        self._conns: dict[SimConnection, None] = {}
        self._next_port = 49152
        self._used_ports: dict[int, None] = {}
        # Local (ip, port) of each client socket: a connect in progress, then
        # its SimConnection until the client end is closed.
        self._bound: dict[tuple[str, int], Any] = {}
        self._stale_paths: dict[str, None] = {}
        self._new_fault_state()  # stalls, partitions: see _simfaults.py
        self._rr = itertools.count()
        self._own_random = random.Random(0 if self.seed is None else self.seed)

    def _bind(self) -> Kernel:
        """Attach to the running kernel; a new run starts from a clean state."""
        k = _state.current_kernel()
        if k is not self._kernel:
            self._kernel = k
            self._new_run_state()
        return k

    def _random(self) -> random.Random:
        k = self._kernel
        if k is not None and k.random is not None:
            return k.random
        return self._own_random

    # -- configuration ---------------------------------------------------------
    def add_host(self, name: str, address: str) -> None:
        """Make ``name`` resolve to ``address`` (call again to add more addresses).

        ::

            net.add_host("api.example", "10.0.0.7")
        """
        ipaddress.ip_address(address)  # a clear ValueError for a bad address
        addrs = self._dns.setdefault(name.lower(), [])
        if address not in addrs:
            addrs.append(address)

    def set_link(self, a: str, b: str, *, latency: float | None = None,
                 bandwidth: float | None = None) -> None:
        """Give the link between hosts ``a`` and ``b`` its own latency/bandwidth.

        ::

            net.set_link("10.0.0.1", "10.0.0.2", latency=0.2, bandwidth=10_000)

        A setting left out keeps what an earlier call gave this link (else
        the network's default). Bandwidth applies to each connection over
        the link, in each direction.
        """
        _check_link_settings(latency, bandwidth)
        for x in self._hosts(a):
            for y in self._hosts(b):
                old_latency, old_bandwidth = self._links.get(_pair(x, y), (None, None))
                self._links[_pair(x, y)] = (old_latency if latency is None else latency,
                                            old_bandwidth if bandwidth is None else bandwidth)

    def _link_settings(self, a: str, b: str) -> tuple[float, float | None]:
        lat, bw = self._links.get(_pair(a, b), (None, None))
        return (self.latency if lat is None else lat, self.bandwidth if bw is None else bw)

    @contextlib.contextmanager
    def host(self, address: str) -> Iterator[None]:
        """Run the block "on" host ``address``: connects come from it, wildcard listens bind to it.

        Tasks spawned inside the block inherit it. ::

            with net.host("10.0.0.2"):
                stream = await yieldio.open_tcp_stream("chat.example", 7000)
        """
        ipaddress.ip_address(address)
        token = self._here.set(address)
        try:
            yield
        finally:
            self._here.reset(token)

    @contextlib.contextmanager
    def install(self) -> Iterator[SimNetwork]:
        """Make this the network of runs started without ``network=`` inside the block.

        ::

            with net.install():
                yieldio.run(main)
        """
        _installed.append(self)
        try:
            yield self
        finally:
            _installed.remove(self)

    def _hosts(self, spec: str | Iterable[str]) -> list[str]:
        if not isinstance(spec, str):
            if not isinstance(spec, Iterable) or isinstance(spec, (bytes, bytearray)):
                # Not "'int' object is not iterable" from the loop below.
                raise TypeError(f"a host is an IP address or a name (or a list of them), "
                                f"not {spec!r}")
            return [h for s in spec for h in self._hosts(s)]
        try:
            ipaddress.ip_address(spec)
            return [spec]
        except ValueError:
            pass
        addrs = self._dns.get(spec.lower())
        if addrs is None:
            if spec.lower() == "localhost":
                return ["127.0.0.1"]
            raise ValueError(f"unknown host {spec!r}: use an IP address or net.add_host()")
        return list(addrs)

    # -- introspection -----------------------------------------------------------
    def connections(self) -> list[SimConnection]:
        """Live connections of the current run (or of the last one), oldest first."""
        self._bind_if_running()
        return list(self._conns)

    def listeners(self) -> list[SimListener]:
        """Open listeners of the current run (or of the last one)."""
        self._bind_if_running()
        return [lst for group in self._listeners.values() for lst in group]

    def _bind_if_running(self) -> None:
        if getattr(_state.local, "kernel", None) is not None:
            self._bind()

    # -- the Network interface ------------------------------------------------------
    async def getaddrinfo(self, host: str | None, port: int | str | None, family: int = 0,
                          type: int = 0, proto: int = 0, flags: int = 0) -> list[Any]:
        """Resolve like :func:`socket.getaddrinfo`, from ``add_host`` names and IP literals.

        Unknown names raise :class:`socket.gaierror`.
        """
        self._bind()
        await _cancel_point()
        if isinstance(host, (bytes, bytearray)):
            # socket.getaddrinfo takes bytes hosts too; without this, _hosts()
            # iterated the bytes and failed with "'int' object is not iterable".
            host = bytes(host).decode("idna")
        if port is None:
            port = 0
        if isinstance(port, str):
            if not port.isdigit():
                raise socket.gaierror(socket.EAI_SERVICE, "Servname not supported for ai_socktype")
            port = int(port)
        if port < 0:
            raise socket.gaierror(socket.EAI_SERVICE, "Servname not supported for ai_socktype")
        port &= 0xFFFF  # what the C library does with a port above 65535 (70000 -> 4464)
        if host is None:
            addrs = ["127.0.0.1"]
        else:
            try:
                addrs = self._hosts(host)
            except ValueError:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            if flags & socket.AI_NUMERICHOST and addrs != [host]:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for ip in addrs:
            fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
            if family not in (0, socket.AF_UNSPEC, fam):
                continue
            sockaddr = (ip, port, 0, 0) if fam == socket.AF_INET6 else (ip, port)
            kind = type or socket.SOCK_STREAM
            # The protocol that goes with the socket type, as the OS answers.
            default_proto = socket.IPPROTO_UDP if kind == socket.SOCK_DGRAM else socket.IPPROTO_TCP
            out.append((fam, kind, proto or default_proto, "", sockaddr))
        if not out:
            raise socket.gaierror(socket.EAI_ADDRFAMILY, "Address family for hostname not supported")
        return out

    async def listen_tcp(self, host: str | None, port: int, *, backlog: int = 128,
                         reuse_port: bool = False) -> list[SimListener]:
        """Listen on ``(host, port)``; ``host`` None or ``""``: every address (of this host)."""
        self._bind()
        await _cancel_point()
        here = self._here.get()
        if host is None or host in _WILDCARDS:
            ips = [here if here is not None else "*"]
        else:
            ips = [ai[4][0] for ai in await self.getaddrinfo(host, port)]
        if port == 0:
            port = self._ephemeral(ips[0])
        out = []
        try:
            for ip in ips:
                key = (ip, port)
                # As bind() on Linux, a listener on every address ("*") and one
                # on a single address of the same port exclude each other too.
                ips_on_port = self._listen_ips.get(port, {})
                overlap = ips_on_port if ip == "*" else [x for x in (ip, "*") if x in ips_on_port]
                group = [lst for x in overlap for lst in self._listeners[(x, port)]]
                if group and not (reuse_port and all(g._reuse for g in group)):
                    raise OSError(errno.EADDRINUSE, f"Address already in use: {_fmt(key)}")
                holder = next((h for (bip, bport), h in self._bound.items()
                               if bport == port and ip in (bip, "*")), None)
                if holder is not None:
                    raise OSError(errno.EADDRINUSE,
                                  f"Address already in use: {_fmt(key)} (held by {holder!r})")
                addr = ("0.0.0.0" if ip == "*" else ip, port)
                lst = SimListener(self, key, addr, backlog, reuse_port)
                self._listeners.setdefault(key, []).append(lst)
                self._listen_ips.setdefault(port, {})[ip] = None
                self._used_ports[port] = None
                out.append(lst)
        except BaseException:
            for lst in out:
                self._unlisten(lst)
            raise
        return out

    async def listen_unix(self, path: str, *, backlog: int = 128) -> SimListener:
        """Listen on the simulated Unix socket ``path``."""
        self._bind()
        await _cancel_point()
        path = str(path)
        if path in self._listeners:
            raise OSError(errno.EADDRINUSE, f"Address already in use: {path}")
        lst = SimListener(self, path, path, backlog)
        self._listeners[path] = [lst]
        self._stale_paths.pop(path, None)
        return lst

    def _unlisten(self, lst: SimListener) -> None:
        group = self._listeners.get(lst._key)
        if group is not None and lst in group:
            group.remove(lst)
            if not group:
                del self._listeners[lst._key]
                if isinstance(lst._key, str):
                    self._stale_paths[lst._key] = None
                else:
                    ip, port = lst._key
                    ips = self._listen_ips[port]
                    del ips[ip]
                    if not ips:
                        del self._listen_ips[port]

    def _find_listener(self, key: Any) -> SimListener | None:
        group = self._listeners.get(key)
        if group is None and isinstance(key, tuple):
            group = self._listeners.get(("*", key[1]))
        if not group:
            return None
        return group[next(self._rr) % len(group)]

    def _ephemeral(self, ip: str) -> int:
        # One counter for all addresses: simple, deterministic, no collisions
        # between a wildcard listener and a specific address.
        for _ in range(2):
            while self._next_port <= 65535:
                port = self._next_port
                self._next_port += 1
                if port not in self._used_ports:
                    self._used_ports[port] = None
                    return port
            # Wrapped around: only ports of live listeners and connections are taken.
            self._next_port = 49152
            self._used_ports = dict.fromkeys(
                [lst.port for lst in self.listeners() if lst.port is not None]
                + [a[1] for c in self._conns for a in (c.client_address, c.server_address)
                   if isinstance(a, tuple)]
                + [port for _, port in self._bound])
        raise OSError(errno.EADDRNOTAVAIL, "no free simulated port")

    def _check_free(self, local: tuple[str, int]) -> None:
        """bind() of a client socket to ``local``: EADDRINUSE if a socket already has it.

        Like Linux without SO_REUSEADDR, minus TIME_WAIT: the holder is a live
        client socket (connecting, connected, or reset but not yet closed) or
        a listener on that address or on every address.
        """
        taken = self._bound.get(local)
        if taken is None:
            group = self._listeners.get(local) or self._listeners.get(("*", local[1]))
            taken = group[0] if group else None
        if taken is not None:
            raise OSError(errno.EADDRINUSE,
                          f"Address already in use: {_fmt(local)} (held by {taken!r})")

    def _claim(self, local: tuple[str, int], holder: Any) -> None:
        self._check_free(local)
        self._bound[local] = holder
        self._used_ports[local[1]] = None  # ephemeral ports step around it

    def _release(self, local: tuple[str, int], holder: Any) -> None:
        if self._bound.get(local) is holder:
            del self._bound[local]

    async def connect_tcp(self, host: str, port: int, *, local_address: Any = None,
                          happy_eyeballs_delay: float | None = 0.25) -> SimStream:
        """Connect to ``(host, port)`` from the current host (or ``local_address``).

        Several addresses are raced with Happy Eyeballs, exactly as on the OS
        network. Raises :class:`ConnectionRefusedError` if nobody listens and
        :class:`TimeoutError` after ``connect_timeout`` seconds of partition
        or stall. ``local_address`` is an IP or an ``(ip, port)``; a port that
        a client not yet closed, or a listener, holds on that IP raises
        ``OSError(EADDRINUSE)`` at once, as ``bind()`` does.
        """
        self._bind()
        infos = await self.getaddrinfo(host, port)
        if isinstance(local_address, tuple):
            src, src_port = str(local_address[0]), int(local_address[1])
            if src_port:  # refused here: one plain OSError, not one per address tried
                self._check_free((src, src_port))
        else:
            src, src_port = local_address or self._here.get() or "", 0
        targets = interleave_families(infos, lambda info: info[0])

        async def connect_one(info: Any) -> SimStream:
            # Not on any host(): the loopback of the target's family, as the OS
            # picks a source address -- not 127.0.0.1 talking to ::1.
            here = src or ("::1" if info[0] == socket.AF_INET6 else "127.0.0.1")
            return await self._connect_one(here, src_port, (info[4][0], info[4][1]))

        stream: SimStream = await happy_eyeballs(
            targets, connect_one, happy_eyeballs_delay,
            describe=lambda info: _fmt((info[4][0], info[4][1])),
            peer=format_target(host, port))
        return stream

    async def _connect_one(self, src: str, src_port: int, dst: tuple[str, int]) -> SimStream:
        local = (src, src_port)
        holder = _Connecting(local, dst)
        if src_port:
            self._claim(local, holder)  # bind() first: refused at once
        try:
            conn = await self._handshake(src, src_port, dst)
        except BaseException:
            self._release(local, holder)
            raise
        return conn.client

    async def _handshake(self, src: str, src_port: int, dst: tuple[str, int]) -> SimConnection:
        k = self._kernel
        deadline = k.clock_now() + self.connect_timeout
        await self._wait_reachable(src, dst, deadline, src_port)
        latency, _ = self._link_settings(src, dst[0])
        await _sleep(latency)  # the SYN travels
        # A stall or partition that began meanwhile holds the SYN (it is retransmitted).
        await self._wait_reachable(src, dst, deadline, src_port)
        lst = self._find_listener(dst)
        while lst is not None and len(lst._queue) >= lst._backlog:
            # Accept queue full: the SYN is dropped and retried, as on Linux.
            with move_on_at(deadline):
                await lst._room.wait()
            if k.clock_now() >= deadline:
                raise TimeoutError(errno.ETIMEDOUT, f"connect to {_fmt(dst)} timed out")
            lst = self._find_listener(dst)
        if lst is None:
            await _sleep(latency)  # the RST travels back
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"Connection refused: {_fmt(dst)}")
        if src_port == 0:
            src_port = self._ephemeral(src)
        server_addr = (dst[0], dst[1]) if lst.address[0] == "0.0.0.0" else lst.address
        conn = SimConnection(self, "tcp", (src, src_port), server_addr)
        self._bound[conn.client_address] = conn  # until the client end is closed
        self._conns[conn] = None
        lst._enqueue(conn.server)
        try:
            await _sleep(latency)  # the SYN-ACK travels back
            await self._wait_reachable(src, dst, deadline, src_port)  # ... or is held
        except BaseException:
            conn._reset()  # the client gave up: the server sees a reset
            self._release(conn.client_address, conn)
            raise
        return conn

    async def connect_unix(self, path: str) -> SimStream:
        """Connect to the simulated Unix socket ``path``.

        While ``path`` is stalled the connect waits (it has no timeout: use
        ``fail_after``); a full backlog makes it wait for room.
        """
        k = self._bind()
        await _cancel_point()
        path = str(path)
        while True:
            lst = self._find_listener(path)
            if lst is None:
                if path in self._stale_paths:
                    raise ConnectionRefusedError(errno.ECONNREFUSED, f"Connection refused: {path}")
                raise FileNotFoundError(errno.ENOENT, f"No such file or directory: {path}")
            # A stalled listener does not answer: wait for the stall to end, as a
            # TCP connect does. No connect_timeout (a Unix connect has none):
            # bound it with fail_after().
            until = self._stalled_until(path)
            if until <= k.clock_now():
                break
            await self._wait_fault_end(until)
        while len(lst._queue) >= lst._backlog:
            await lst._room.wait()  # a Unix connect blocks while the backlog is full
            if lst._closed:
                raise ConnectionRefusedError(errno.ECONNREFUSED, f"Connection refused: {path}")
        conn = SimConnection(self, "unix", "", path)
        self._conns[conn] = None
        lst._enqueue(conn.server)
        return conn.client


class _Connecting:
    """Holds a client's local address while its connect is in progress."""

    def __init__(self, local: tuple[str, int], dst: tuple[str, int]) -> None:
        self.local = local
        self.dst = dst

    def __repr__(self) -> str:
        return f"<connect in progress {_fmt(self.local)} -> {_fmt(self.dst)}>"


async def _sleep(seconds: float) -> None:
    """``yieldio.sleep`` (a checkpoint even for 0), in a shape mypy can await."""
    if seconds <= 0:
        await _cancel_point()
    else:
        await sleep_until(_now() + seconds)


def _check_link_settings(latency: float | None, bandwidth: float | None) -> None:
    """Refuse a latency or bandwidth that would fail only later, inside a run.

    'not x >= 0' (not 'x < 0'): NaN fails every comparison, so it passed the
    old check and crashed the first connect ("deadline must not be NaN").
    """
    if latency is not None and not latency >= 0:
        raise ValueError(f"latency must be >= 0 seconds, not {latency!r}")
    if bandwidth is not None and not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0 bytes/second (or None), not {bandwidth!r}")


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)
