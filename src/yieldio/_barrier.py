"""Barrier: wait until ``parties`` tasks have arrived (``asyncio.Barrier``'s API).

Split out of ``sync.py`` (which re-exports it); architecture §7 explains
the choices.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Generator
from typing import Any

from . import _state
from ._exceptions import BrokenBarrierError
from ._io import fast_checkpoint
from ._task import Task
from ._traps import PARK
from ._typing import awaitable

__all__ = ["Barrier", "BrokenBarrierError"]


_RESET = object()  # sent to waiters by Barrier.reset()
_ABORTED = object()  # sent to waiters by Barrier.abort()


@types.coroutine
def _done() -> Generator[Any, Any, None]:
    """An awaitable that is already finished (what ``reset``/``abort`` return).

    Plain ``types.coroutine``, not ``awaitable``: dropping it unawaited is
    the normal use (``barrier.abort()``), which YIELDIO_DEBUG's tracking of
    yieldio's waits must not report.
    """
    return
    yield  # pragma: no cover -- makes this a generator


class Barrier:
    """Wait until ``parties`` tasks have arrived, then let them all go on together.

    ::

        barrier = yieldio.Barrier(3)

        async def worker(n):
            await load(n)
            i = await barrier.wait()     # the 3 workers leave together
            if i == 0:
                print("everyone has loaded")

    ``wait()`` returns the task's arrival index, ``0`` to ``parties - 1``
    (``async with barrier as i:`` is the same). The barrier then starts over:
    the next ``parties`` arrivals make the next generation. The API is
    ``asyncio.Barrier``'s; where yieldio differs, for these reasons:

    * **A cancelled waiter withdraws; the barrier is not broken.** Its arrival
      is taken back (``n_waiting`` drops) and the others keep waiting for a
      full set, as in ``asyncio.Barrier`` and as a cancelled ``Lock`` or
      ``Semaphore`` waiter leaves nothing behind. (``threading.Barrier``
      breaks on a timeout instead: call :meth:`abort` in an ``except`` if you
      want that.) Once the last party arrives every waiter already has its
      index and can no longer be cancelled out of the rendezvous: it happened
      for all of them or for none. A hang from a party that never comes is
      reported as :class:`Deadlock` when nothing else can run.
    * **Indexes are unique.** They are given out when the barrier trips, in
      arrival order among the tasks still waiting; asyncio counts at arrival
      and can give two tasks the same index after a cancellation.
    * **No draining phase.** The waiters are all woken when the barrier trips,
      so a task may start waiting for the next generation at once.
    * **reset() and abort() act at once** and need not be awaited; they
      return an already-finished awaitable so asyncio's ``await
      barrier.abort()`` works too.

    ``wait()`` is a checkpoint, even for the last arrival, which does not wait.
    """

    __slots__ = ("_parties", "_waiters", "_broken")

    def __init__(self, parties: int) -> None:
        if isinstance(parties, bool) or not isinstance(parties, int):
            raise TypeError(f"Barrier parties must be an int, not {type(parties).__name__}")
        if parties < 1:
            raise ValueError(f"Barrier parties must be >= 1, not {parties!r}")
        self._parties = parties
        self._waiters: dict[Task, None] = {}
        self._broken = False

    def __repr__(self) -> str:
        if self._broken:
            return f"<Barrier broken, parties={self._parties}>"
        return f"<Barrier {len(self._waiters)}/{self._parties} waiting>"

    @property
    def parties(self) -> int:
        """How many tasks must arrive to trip the barrier: ``Barrier(3).parties == 3``."""
        return self._parties

    @property
    def n_waiting(self) -> int:
        """How many tasks are waiting now for the current generation to fill."""
        return len(self._waiters)

    @property
    def broken(self) -> bool:
        """True after :meth:`abort`, until :meth:`reset`: ``wait()`` then raises at once."""
        return self._broken

    @awaitable
    def wait(self) -> Generator[Any, Any, int]:
        """Wait for ``parties`` arrivals; return this task's index (0 .. parties-1).

        ``i = await barrier.wait()``. Raises :class:`BrokenBarrierError` if
        the barrier is broken, or is reset or aborted while this task waits.
        """
        try:
            k = _state.local.kernel
        except AttributeError:
            _state.outside_run()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        if self._broken:
            raise BrokenBarrierError("the Barrier is broken (abort() was called)")
        waiters = self._waiters
        if len(waiters) + 1 < self._parties:
            waiters[task] = None
            task._wait = self
            index = yield PARK
            if index is _RESET:
                raise BrokenBarrierError("the Barrier was reset while this task waited")
            if index is _ABORTED:
                raise BrokenBarrierError("the Barrier was aborted while this task waited")
            return index  # type: ignore[no-any-return]
        # The last arrival: hand every waiter its index, in arrival order.
        self._waiters = {}
        for i, waiter in enumerate(waiters):
            k.reschedule(waiter, i)
        yield from fast_checkpoint()  # it did not wait: a budgeted schedule point
        return self._parties - 1

    def reset(self) -> Awaitable[None]:
        """Empty the barrier and mend it: ``barrier.reset()``.

        Every waiting task gets :class:`BrokenBarrierError`; later ``wait()``
        calls start a fresh generation.
        """
        self._wake_all(_RESET)
        self._broken = False
        return _done()

    def abort(self) -> Awaitable[None]:
        """Break the barrier: ``barrier.abort()``.

        Every waiting task, and every later ``wait()`` until :meth:`reset`,
        gets :class:`BrokenBarrierError`. Use it when a party fails, so the
        others do not wait for it for ever.
        """
        self._wake_all(_ABORTED)
        self._broken = True
        return _done()

    def _wake_all(self, why: object) -> None:
        waiters = self._waiters
        if waiters:
            # As in Event.set: fail outside the kernel before changing anything.
            try:
                k = _state.local.kernel
            except AttributeError:
                _state.outside_run()
            self._waiters = {}
            for task in waiters:
                k.reschedule(task, why)

    async def __aenter__(self) -> int:
        return await self.wait()

    async def __aexit__(self, *exc: Any) -> None:
        pass

    def _abort_wait(self, task: Task) -> bool:
        return self._waiters.pop(task, 0) is None

    def _describe_wait(self, task: Task) -> str:
        return f"Barrier.wait ({len(self._waiters)}/{self._parties} arrived)"
