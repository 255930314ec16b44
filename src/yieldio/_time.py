"""Time: sleeping, deadlines, checkpoints, and the clock interface.

Each wait here is a flat generator (a :func:`types.coroutine`): awaiting it
costs one generator and no wrapper objects, and it works with ``await``,
``yield from`` and, inside generator coroutines, ``yield``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Protocol

from . import _state
from ._timers import SLEEP_WAIT
from ._traps import PARK, SCHEDULE
from ._typing import awaitable

__all__ = ["sleep", "sleep_until", "sleep_forever", "current_time", "checkpoint", "Clock"]

_INF = float("inf")


class Clock(Protocol):
    """What :func:`yieldio.run` needs from a clock (``run(main, clock=...)``).

    ``current_time()`` returns seconds on any monotonic scale;
    ``deadline_to_sleep_time(d)`` says how many real seconds the loop may
    block waiting for deadline ``d``; ``autojump`` true means that when every
    task is blocked with no I/O pending, the kernel calls ``jump_to(d)``
    instead of sleeping. A clock of your own, for example one that replays
    recorded time::

        class ReplayClock:
            autojump = False
            def current_time(self): ...
            def deadline_to_sleep_time(self, deadline): ...

        yieldio.run(main, clock=ReplayClock())
    """

    autojump: bool

    def current_time(self) -> float: ...

    def deadline_to_sleep_time(self, deadline: float) -> float: ...


def current_time() -> float:
    """The current time of the running kernel's clock, in seconds.

    >>> start = yieldio.current_time()   # inside a task
    """
    try:
        return _state.local.kernel.clock_now()  # type: ignore[no-any-return]
    except AttributeError:
        _state.outside_run()


@awaitable
def checkpoint() -> Generator[Any, Any, None]:
    """Raise :class:`Cancelled` if cancelled, and let other tasks run.

    ::

        for item in big_list:
            process(item)
            await yieldio.checkpoint()   # stay responsive and cancellable
    """
    try:
        task = _state.local.kernel.current
    except AttributeError:
        _state.outside_run()
    if task._cancel_pending:
        task._raise_cancel()
    yield SCHEDULE


@awaitable
def sleep_until(deadline: float) -> Generator[Any, Any, None]:
    """Sleep until :func:`current_time` reaches ``deadline``.

    ::

        next_tick = yieldio.current_time()
        while True:
            next_tick += 1.0
            await yieldio.sleep_until(next_tick)   # no drift
    """
    try:
        k = _state.local.kernel
    except AttributeError:
        _state.outside_run()
    task = k.current
    if task._cancel_pending:
        task._raise_cancel()
    now = k.clock_now()
    try:
        due = deadline <= now
    except TypeError:
        raise TypeError(f"sleep_until() takes a deadline in current_time() units, "
                        f"not {deadline!r}") from None
    if due:
        yield SCHEDULE
        return
    if not deadline < _INF:  # NaN, or +inf: a timer that must never fire
        if deadline != deadline:
            raise ValueError("deadline must not be NaN")
        yield from _park_forever(k, task)
        return
    k.add_timer(deadline, task)
    task._wait = SLEEP_WAIT
    yield PARK


@awaitable
def sleep(seconds: float) -> Generator[Any, Any, None]:
    """Sleep for ``seconds`` (a checkpoint even for 0).

    ::

        async def main():
            await yieldio.sleep(0.5)

        @yieldio.coroutine
        def old_style():
            yield from yieldio.sleep(0.5)
    """
    # One flat generator (no call into checkpoint()/sleep_until()): sleep(0)
    # is the most common schedule point there is.
    try:
        k = _state.local.kernel
    except AttributeError:
        _state.outside_run()
    task = k.current
    if task._cancel_pending:
        task._raise_cancel()
    if seconds == 0:
        yield SCHEDULE
        return
    try:
        negative = seconds < 0
    except TypeError:
        raise TypeError(f"sleep() takes a number of seconds, not {seconds!r}") from None
    if negative:
        raise ValueError(f"sleep length must be non-negative, not {seconds!r}")
    if not seconds < _INF:
        # NaN, or +inf. sleep(inf) is sleep_forever(), as in trio: a timer at
        # +inf would be "due" once a VirtualClock(autojump=True) jumped to it.
        # (One comparison, as the plain NaN test it replaces.)
        if seconds != seconds:
            raise ValueError("sleep length must not be NaN")
        yield from _park_forever(k, task)
        return
    clock_now = k.clock_now  # a function attribute: a plain load, then a call
    k.add_timer(clock_now() + seconds, task)
    task._wait = SLEEP_WAIT
    yield PARK


@awaitable
def sleep_forever() -> Generator[Any, Any, None]:
    """Sleep until cancelled (never reported as a deadlock).

    ::

        async with yieldio.serve_tcp(handler, "127.0.0.1", 8000):
            await yieldio.sleep_forever()     # until Ctrl-C
    """
    try:
        k = _state.local.kernel
    except AttributeError:
        _state.outside_run()
    task = k.current
    if task._cancel_pending:
        task._raise_cancel()
    yield from _park_forever(k, task)


def _park_forever(k: Any, task: Any) -> Generator[Any, Any, None]:
    """Park ``task`` until it is cancelled (sleep_forever, sleep(inf))."""
    task._wait = _FOREVER
    # Waiting to be cancelled (by Ctrl-C, a signal, another task) is a
    # deliberate wait, not a deadlock: count it like a wait on the outside.
    k.passive_parks += 1
    try:
        yield PARK
    finally:
        k.passive_parks -= 1


class _Forever:
    __slots__ = ()

    def _abort_wait(self, task: Any) -> bool:
        return True

    def _describe_wait(self, task: Any) -> str:
        return "sleep forever"


_FOREVER = _Forever()
