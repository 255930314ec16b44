"""The wires of :class:`SimNetwork`: simulated connections, their streams, listeners.

A :class:`SimConnection` is two :class:`_SimPipe` s (one per direction) and
two :class:`SimStream` ends. A pipe is the memory stream's bounded buffer
plus travel: every write becomes a segment stamped with its arrival time
(transmission at the link's bandwidth after the previous segment, plus the
link's latency) and one kernel timer per pipe -- no task -- moves due
segments into the reader's buffer. EOF and RST travel behind the data, as in
TCP; a stall or partition (the fault model, ``_simfaults.py``, says until
when) just holds segments back, so nothing is lost.

TCP's unhappy paths are modelled because servers meet them: closing with
unread data aborts the connection (RST), data arriving for a closed socket
provokes an RST, and a reset discards what was not yet read.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any

from .. import _state
from .._exceptions import BusyResourceError, ClosedResourceError
from .._traps import park
from ..net._network import Listener
from ..sync import Event
from ._memory import MemoryStream, _cancel_point, _Pipe

if TYPE_CHECKING:
    from .._task import Task
    from ._simnet import SimNetwork

__all__ = ["SimStream", "SimConnection", "SimListener"]

_EOF = object()   # segment markers travelling behind the data
_RST = object()
_SEGMENT = 16384  # bandwidth-limited data is delivered in pieces of this size


class _SimPipe(_Pipe):
    """A direction of a simulated connection: bytes arrive after latency and transmission time."""

    __slots__ = ("conn", "segments", "inflight", "tx_free", "last_arrival", "_timer", "rst_sent")

    def __init__(self, conn: SimConnection, capacity: int, name: str) -> None:
        super().__init__(capacity, name)
        self.conn = conn
        self.segments: deque[tuple[float, Any]] = deque()
        self.inflight = 0
        self.tx_free = -math.inf
        self.last_arrival = -math.inf
        self._timer: Any = None
        self.rst_sent = False

    def pending(self) -> int:
        return len(self.buf) + self.inflight

    def push(self, data: bytes) -> None:
        latency, bandwidth = self.conn.link()
        if bandwidth is None:
            self._send(data, len(data), latency, None)
            return
        for i in range(0, len(data), _SEGMENT):
            piece = data[i:i + _SEGMENT]
            self._send(piece, len(piece), latency, bandwidth)

    def close_write(self) -> None:
        if self.write_closed or self.reset:
            return
        self.write_closed = True
        self._send(_EOF, 0, *self.conn.link())

    def close_read(self) -> bool:
        # Unlike a memory pipe, the writer is not told: TCP learns about a
        # closed peer only from the RST its next data provokes.
        dropped = bool(self.buf)
        self.read_closed = True
        self.buf.clear()
        self.consumed()
        return dropped

    def send_rst(self) -> None:
        if not self.rst_sent and not self.reset:
            self.rst_sent = True
            self._send(_RST, 0, *self.conn.link())

    def _send(self, item: Any, size: int, latency: float, bandwidth: float | None) -> None:
        now = self.conn.net._kernel.clock_now()
        done = max(now, self.tx_free)
        if bandwidth:
            done += size / bandwidth
        self.tx_free = done
        # Segments never overtake each other, even if the latency changed.
        arrival = max(done + latency, self.last_arrival)
        self.last_arrival = arrival
        self.segments.append((arrival, item))
        self.inflight += size
        if arrival <= now and len(self.segments) == 1:
            self.deliver_due()
        else:
            self._arm()

    def _arm(self, at: float | None = None) -> None:
        if self._timer is not None or not self.segments:
            return
        k = self.conn.net._kernel
        k.add_timer(self.segments[0][0] if at is None else at, self)

    def _on_deadline(self) -> None:  # called by the kernel's timer heap
        self.deliver_due()

    def deliver_due(self) -> None:
        """Move every segment whose time has come into the reader's buffer."""
        net = self.conn.net
        now = net._kernel.clock_now()
        until = net._blocked_until(self.conn, now)
        if until > now:
            if until != math.inf:   # a stall: look again when it ends
                self._arm(until)
            return                  # a partition: heal() looks again
        arrived = False
        segments = self.segments
        while segments and segments[0][0] <= now:
            item = segments.popleft()[1]
            if item is _RST:
                self.conn._reset()
                return
            if item is _EOF:
                self.eof = True
                arrived = True
                continue
            self.inflight -= len(item)
            if self.read_closed:
                # Data for a closed socket: dropped, and the sender is reset.
                assert self.reverse is not None
                self.reverse.send_rst()  # type: ignore[attr-defined]
                self.consumed()
                continue
            self.buf += item
            arrived = True
        if arrived:
            self.wake_reader()
        self._arm()

    def do_reset(self) -> None:
        self.segments.clear()
        self.inflight = 0
        if self._timer is not None:
            self.conn.net._kernel.cancel_timer(self)
        super().do_reset()

    def resume(self) -> None:
        """Faults changed: deliver now whatever is due (a stall timer may be pending)."""
        if self._timer is not None:
            self.conn.net._kernel.cancel_timer(self)
        self.deliver_due()


class SimStream(MemoryStream):
    """One end of a simulated TCP or Unix connection (a :class:`~yieldio.Stream`).

    You get it from ``open_tcp_stream`` / ``serve_tcp`` while a
    :class:`SimNetwork` is installed, or from ``net.connect_tcp``::

        stream = await net.connect_tcp("db.example", 5432)
        print(stream.get_extra_info("peername"))   # ('10.0.0.5', 5432)
    """

    def __init__(self, conn: SimConnection, incoming: _SimPipe, outgoing: _SimPipe,
                 local: Any, remote: Any) -> None:
        net = conn.net
        super().__init__(incoming, outgoing, chunking=net.chunking, rng=net._random)
        self.connection = conn
        self._local = local
        self._remote = remote

    def _peer_close_is_silent(self) -> bool:
        return True

    def _close_pipes(self) -> None:
        incoming = self._in
        assert isinstance(incoming, _SimPipe)
        if incoming.buf and not incoming.reset:
            # Closing with unread data aborts the connection (RFC 1122 4.2.2.13).
            incoming.close_read()
            self._out.send_rst()  # type: ignore[attr-defined]
            self._out.write_closed = True
        else:
            super()._close_pipes()
        self.connection._end_closed()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``"peername"``, ``"sockname"``, ``"connection"`` (the :class:`SimConnection`)."""
        if name == "peername":
            return self._remote
        if name == "sockname":
            return self._local
        if name == "connection":
            return self.connection
        return default


class SimConnection:
    """A live simulated connection: its two ends and their addresses.

    ::

        for conn in net.connections():
            print(conn.client_address, "->", conn.server_address)
        net.reset(conn)   # both ends get ConnectionResetError
    """

    def __init__(self, net: SimNetwork, kind: str, client_addr: Any, server_addr: Any) -> None:
        self.net = net
        self.kind = kind
        self.client_address = client_addr
        self.server_address = server_addr
        cap = net.max_buffer
        name = f"{kind} {_fmt(client_addr)} -> {_fmt(server_addr)}"
        back = f"{kind} {_fmt(server_addr)} -> {_fmt(client_addr)}"
        self._up = _SimPipe(self, cap, name)
        self._down = _SimPipe(self, cap, back)
        self._up.reverse = self._down
        self._down.reverse = self._up
        self.client = SimStream(self, self._down, self._up, client_addr, server_addr)
        self.server = SimStream(self, self._up, self._down, server_addr, client_addr)

    def __repr__(self) -> str:
        return (f"<SimConnection {self.kind} {_fmt(self.client_address)} -> "
                f"{_fmt(self.server_address)}>")

    def hosts(self) -> tuple[str, str]:
        """``(client ip, server ip)``; ``("unix", "unix")`` for a Unix connection."""
        if self.kind == "unix":
            return ("unix", "unix")
        return (self.client_address[0], self.server_address[0])

    def link(self) -> tuple[float, float | None]:
        """The ``(latency, bandwidth)`` of the link this connection runs over, now."""
        if self.kind == "unix":
            return (0.0, None)
        return self.net._link_settings(*self.hosts())

    def _reset(self) -> None:
        self._up.do_reset()
        self._down.do_reset()
        self.net._conns.pop(self, None)

    def _end_closed(self) -> None:
        if self.client._closed and self.kind == "tcp":
            # The client socket is gone, and its local port with it (no TIME_WAIT).
            self.net._release(self.client_address, self)
        if self.client._closed and self.server._closed:
            self.net._conns.pop(self, None)


def _fmt(addr: Any) -> str:
    if isinstance(addr, tuple):
        host = addr[0]
        return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
    return str(addr)


class SimListener(Listener):
    """A listening endpoint of a :class:`SimNetwork` (what ``serve_tcp`` accepts on).

    ::

        (listener,) = await net.listen_tcp("10.0.0.1", 80)
        stream = await listener.accept()
    """

    def __init__(self, net: SimNetwork, key: Any, address: Any, backlog: int,
                 reuse_port: bool = False) -> None:
        self._net = net
        self._reuse = reuse_port
        self._key = key
        self._address = address
        self._backlog = max(1, backlog)
        self._queue: deque[SimStream] = deque()
        self._acceptor: Task | None = None
        self._room = Event()
        self._closed = False

    def __repr__(self) -> str:
        return f"<SimListener {_fmt(self.address)}{' closed' if self._closed else ''}>"

    @property
    def address(self) -> Any:
        """``(ip, port)``, or the path of a simulated Unix socket."""
        return self._address

    @property
    def port(self) -> int | None:
        """The TCP port; None for a simulated Unix socket."""
        return self._address[1] if isinstance(self._address, tuple) else None

    async def accept(self) -> SimStream:
        """Wait for the next connection and return its server end."""
        if self._closed:
            raise ClosedResourceError("this listener is closed")
        if self._acceptor is not None:
            raise BusyResourceError("another task is already accepting on this listener")
        while not self._queue:
            await self._park()
            if self._closed and not self._queue:
                # Woken by a connection that aclose() then reset and dropped
                # before we ran: parking again would wait on a dead listener for ever.
                raise ClosedResourceError("the listener was closed")
        stream = self._queue.popleft()
        try:
            await _cancel_point()
        except BaseException:
            # Cancelled after a connection woke us (in the same batch): the
            # connection stays queued for the next accept(), as in the OS
            # backlog, instead of vanishing with its client left connected.
            self._queue.appendleft(stream)
            raise
        self._room.set()
        self._room = Event()
        return stream

    async def _park(self) -> None:
        k = _state.current_kernel()
        task = k.current
        assert task is not None
        if task._cancel_pending:
            task._raise_cancel()
        self._acceptor = task
        task._wait = self
        await park()

    def _abort_wait(self, task: Task) -> bool:
        if self._acceptor is task:
            self._acceptor = None
            return True
        return False

    def _describe_wait(self, task: Task) -> str:
        return f"accept on simulated {_fmt(self.address)}"

    def _enqueue(self, stream: SimStream) -> None:
        self._queue.append(stream)
        task = self._acceptor
        if task is not None:
            self._acceptor = None
            task._kernel.reschedule(task)

    async def aclose(self) -> None:
        """Stop listening (idempotent); connections not yet accepted are reset."""
        if self._closed:
            return
        self._closed = True
        self._net._unlisten(self)
        task = self._acceptor
        if task is not None:
            self._acceptor = None
            task._kernel.reschedule_error(task, ClosedResourceError("the listener was closed"))
        while self._queue:
            self._queue.popleft().connection._reset()
        self._room.set()

    async def __aenter__(self) -> SimListener:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
