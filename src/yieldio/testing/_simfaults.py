"""The faults of :class:`~yieldio.testing.SimNetwork`: resets, stalls, partitions.

:class:`SimFaults` is a mixin of ``SimNetwork`` (as ``_timers.py`` and
``_outside.py`` are of the kernel): these are the network's own methods,
split out along the seam "what stops data from flowing", so that
``_simnet.py`` reads as hosts, addresses, listeners and connecting, and the
fault model reads here in one piece:

* **injecting** faults: ``reset()``, ``stall()``, ``partition()``, ``heal()``
  (the public API; see "Faults" in docs/testing.md);
* **the bookkeeping**, per run: ``_stalls`` (a host, an ``(ip, port)`` or a
  Unix path -> when its stall ends), ``_partitions`` (pairs of hosts cut from
  each other), ``_isolated`` (hosts cut from everyone), and ``_healed`` (the
  Event the next ``heal()`` sets);
* **the questions the rest asks of it**: may data flow over this connection,
  or from this host to that address, now -- and if not, until when
  (``math.inf``: until a ``heal()``)? The wires in ``_simlink.py`` ask before
  delivering each segment; a connect asks before and during its handshake;
* **the waits** a connect makes while the answer is no.

Nothing here draws on the run's Random (the random splits of reads are the
streams', in ``_memory.py``): faults only hold data back, nothing is lost.
"""

from __future__ import annotations

import errno
import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .._timeouts import move_on_at
from ..sync import Event
from ._simlink import SimConnection, SimStream, _fmt

if TYPE_CHECKING:
    from .._kernel import Kernel

__all__ = ["SimFaults"]


class SimFaults:
    """SimNetwork's methods for faults and the waits they cause (see the module docstring)."""

    # Set by SimNetwork (declared here for type checkers).
    _kernel: Kernel
    _conns: dict[SimConnection, None]
    _bind: Callable[[], Kernel]
    _hosts: Callable[[str | Iterable[str]], list[str]]
    _stalls: dict[Any, float]
    _partitions: dict[frozenset[str], None]
    _isolated: dict[str, None]
    _healed: Event | None

    def _new_fault_state(self) -> None:
        """No faults: part of the per-run state of ``SimNetwork._new_run_state``."""
        self._partitions = {}
        self._isolated = {}
        self._stalls = {}
        self._healed = None

    # -- injecting faults -----------------------------------------------------
    def reset(self, target: Any, other: str | None = None) -> int:
        """Reset connections: both ends get :class:`ConnectionResetError`. Returns how many.

        ``target`` is a stream or connection, a host (every connection to or
        from it), a ``(host, port)`` address, or with ``other`` the link
        between two hosts::

            net.reset(("10.0.0.1", 7000))      # every connection to the chat server
        """
        self._bind()
        if isinstance(target, SimStream):
            target = target.connection
        if isinstance(target, SimConnection):
            victims = [target] if target in self._conns else []
        else:
            # Resolve the target before looking at connections: with none to
            # match, reset("nonsense") or reset(42) returned 0 silently, where
            # partition("nonsense") raises.
            self._check_reset_target(target, other)
            victims = [c for c in self._conns if self._matches(c, target, other)]
        for conn in victims:
            conn._reset()
        return len(victims)

    def stall(self, address: Any, seconds: float) -> None:
        """Stop all data to and from ``address`` (a host, ``(host, port)`` or Unix path) for ``seconds``.

        Nothing is lost: what was sent arrives when the stall ends.
        """
        k = self._bind()
        if not seconds >= 0:  # also refuses NaN, which every comparison lets through
            raise ValueError(f"seconds must be >= 0, not {seconds!r}")
        until = k.clock_now() + seconds
        for key in self._endpoint_keys(address):
            self._stalls[key] = max(until, self._stalls.get(key, -math.inf))

    def partition(self, a: str | Sequence[str], b: str | Sequence[str] | None = None) -> None:
        """Cut hosts ``a`` from hosts ``b`` (or from everyone) until :meth:`heal`.

        Data in flight waits; new connects wait and time out after
        ``connect_timeout``::

            net.partition("10.0.0.2", "chat.example")
        """
        self._bind()
        if b is None:
            for x in self._hosts(a):
                self._isolated[x] = None
            return
        for x in self._hosts(a):
            for y in self._hosts(b):
                if x != y:
                    self._partitions[frozenset((x, y))] = None

    def heal(self, a: str | Sequence[str] | None = None,
             b: str | Sequence[str] | None = None) -> None:
        """End partitions: with no arguments all of them and every stall too.

        ``heal(a)`` ends ``a``'s isolation and ``heal(a, b)`` the partition
        between ``a`` and ``b``; neither ends a stall (it ends by itself)::

            net.heal("10.0.0.2", "chat.example")
        """
        self._bind()
        if a is None:
            self._partitions.clear()
            self._isolated.clear()
            self._stalls.clear()
        elif b is None:
            for x in self._hosts(a):
                self._isolated.pop(x, None)
        else:
            for x in self._hosts(a):
                for y in self._hosts(b):
                    self._partitions.pop(frozenset((x, y)), None)
        for conn in list(self._conns):
            for pipe in (conn._up, conn._down):
                if pipe.segments:
                    pipe.resume()
        if self._healed is not None:
            self._healed.set()
            self._healed = None

    # -- what the faults hold back --------------------------------------------
    def _endpoint_keys(self, address: Any) -> list[Any]:
        # Every address of a name, as partition() and reset(host) take them:
        # not just the first, which left the others of the host flowing.
        if isinstance(address, tuple):
            return [(ip, int(address[1])) for ip in self._hosts(address[0])]
        if isinstance(address, str) and address.startswith("/"):
            return [address]
        return self._hosts(address)

    def _check_reset_target(self, target: Any, other: str | None) -> None:
        """Raise as ``partition()`` does for a ``reset()`` target that names nothing."""
        if other is not None:
            self._hosts(target)
            self._hosts(other)
        elif isinstance(target, tuple):
            if len(target) != 2:
                raise ValueError(f"an address to reset is (host, port), not {target!r}")
            self._endpoint_keys(target)
        elif not (isinstance(target, str) and target.startswith("/")):  # a Unix path is fine
            if not isinstance(target, (str, list, set, frozenset)):
                raise TypeError("reset() takes a stream or connection, a host, a (host, port) "
                                f"address, a Unix path, or two hosts; not {target!r}")
            self._hosts(target)  # ValueError for an unknown host

    def _matches(self, conn: SimConnection, target: Any, other: str | None) -> bool:
        ends = (conn.client_address, conn.server_address)
        if other is not None:
            a, b = set(self._hosts(target)), set(self._hosts(other))
            x, y = conn.hosts()
            return (x in a and y in b) or (x in b and y in a)
        if isinstance(target, tuple):
            keys = self._endpoint_keys(target)
            return any(isinstance(e, tuple) and (e[0], e[1]) in keys for e in ends)
        if isinstance(target, str) and target.startswith("/"):
            return conn.server_address == target
        hosts = set(self._hosts(target))
        return conn.kind == "tcp" and bool(hosts & set(conn.hosts()))

    def _blocked_until(self, conn: SimConnection, now: float) -> float:
        """When data between the ends of ``conn`` may flow again (``now`` or earlier: it may)."""
        if conn.kind == "unix":  # only a stall of its path can hold it back
            return self._stalls.get(conn.server_address, -math.inf)
        x, y = conn.hosts()
        if x != y and (x in self._isolated or y in self._isolated
                       or frozenset((x, y)) in self._partitions):
            return math.inf
        until = -math.inf
        for key in (x, y, conn.client_address[:2], conn.server_address[:2]):
            until = max(until, self._stalls.get(key, -math.inf))
        return until

    def _path_blocked_until(self, src: str, dst: tuple[str, int], now: float) -> float:
        if src != dst[0] and (src in self._isolated or dst[0] in self._isolated
                              or frozenset((src, dst[0])) in self._partitions):
            return math.inf
        return max(self._stalls.get(src, -math.inf), self._stalls.get(dst[0], -math.inf),
                   self._stalls.get(dst, -math.inf))

    def _stalled_until(self, key: Any) -> float:
        """When the stall of ``key`` (a host, ``(ip, port)`` or Unix path) ends; -inf: none."""
        return self._stalls.get(key, -math.inf)

    # -- the waits they cause -------------------------------------------------
    async def _wait_reachable(self, src: str, dst: tuple[str, int], deadline: float,
                              src_port: int = 0) -> None:
        k = self._kernel
        while True:
            now = k.clock_now()
            until = self._path_blocked_until(src, dst, now)
            if src_port:
                until = max(until, self._stalled_until((src, src_port)))
            if until <= now:
                return
            if now >= deadline:
                raise TimeoutError(errno.ETIMEDOUT, f"connect to {_fmt(dst)} timed out")
            await self._wait_fault_end(min(until, deadline))

    async def _wait_fault_end(self, until: float) -> None:
        """Sleep until ``until`` (a stall's end, a deadline) or the next ``heal()``.

        heal() ends stalls too: a connect waiting for one must not sleep through it.
        """
        if self._healed is None:
            self._healed = Event()
        with move_on_at(until):
            await self._healed.wait()
