"""``wait_all_tasks_blocked()``: let everything else run until it is stuck.

A test often needs "the server task has reached its ``accept()``" or "the
reader is parked in ``receive_some``" before it acts. Sleeping for a while is
slow and racy; this waits for the exact moment when no other task can run:
nothing is ready, no timer is due, the last I/O poll woke nobody and no
thread has handed work back. Tasks sleeping until a later time, or waiting
for I/O, a lock, a queue or a thread, count as blocked.

The caller parks in the kernel's ``idle_waiters``, and the loop wakes it
when it finds nothing ready after a non-blocking poll -- O(1) per loop
iteration. A parked idle waiter keeps autojump and deadlock detection from
firing, as in trio, where wait_all_tasks_blocked wakes before the autojump
clock moves.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from .. import _state
from .._time import sleep_until
from .._traps import PARK
from .._typing import awaitable

if TYPE_CHECKING:
    from .._kernel import Kernel
    from .._task import Task

__all__ = ["wait_all_tasks_blocked"]


async def wait_all_tasks_blocked(cushion: float = 0.0) -> None:
    """Return once every other task is blocked and nothing is ready to run.

    With ``cushion > 0``, they must stay blocked for ``cushion`` seconds of
    the run's clock (virtual time under ``VirtualClock``). A checkpoint.

    ::

        async def test_reader_wakes_on_close():
            a, b = yieldio.testing.memory_stream_pair()
            async with yieldio.TaskGroup() as tg:
                tg.spawn(expect_closed, b)
                await yieldio.testing.wait_all_tasks_blocked()   # b is parked now
                await b.aclose()
    """
    if cushion < 0 or cushion != cushion:
        raise ValueError(f"cushion must be >= 0, not {cushion!r}")
    k = _state.current_kernel()
    await _park_until_idle(k)
    if cushion == 0:
        return
    # The quiet period counts from the last step another task took, which an
    # instrument notes while we sleep (only while a cushion is being waited
    # for: tests, never a hot path). Sleeping a whole cushion again from the
    # moment we notice that someone ran would return up to a cushion late.
    watch = _LastStep(k.current, k.clock_now)
    k.add_instrument(watch)
    try:
        while True:
            steps = watch.steps
            await sleep_until(watch.at + cushion)
            if watch.steps == steps and _nothing_runnable(k):
                return
            await _park_until_idle(k)
    finally:
        k.remove_instrument(watch)


class _LastStep:
    """An instrument: when did a task other than ``me`` last take a step?"""

    __slots__ = ("me", "clock_now", "at", "steps")

    def __init__(self, me: Any, clock_now: Any) -> None:
        self.me = me
        self.clock_now = clock_now
        self.at: float = clock_now()
        self.steps = 0

    def after_task_step(self, task: Any) -> None:
        if task is not self.me:
            self.at = self.clock_now()
            self.steps += 1


def _nothing_runnable(k: Kernel) -> bool:
    """True if no task is ready and nothing is about to wake one."""
    if k.ready or k._thread_calls:
        return False
    deadline = k._next_deadline()
    return deadline is None or deadline > k.clock_now()


class _IdleWait:
    """The wait object of a task parked in ``k.idle_waiters``."""

    __slots__ = ()

    def _abort_wait(self, task: Task) -> bool:
        return task._kernel.idle_waiters.pop(task, 0) is None  # type: ignore[no-any-return]

    def _describe_wait(self, task: Task) -> str:
        return "wait_all_tasks_blocked"


_IDLE_WAIT = _IdleWait()


@awaitable
def _park_until_idle(k: Kernel) -> Generator[Any, Any, None]:
    task: Task = k.current  # type: ignore[assignment]
    if task._cancel_pending:
        task._raise_cancel()
    k.idle_waiters[task] = None  # type: ignore[attr-defined]
    task._wait = _IDLE_WAIT
    yield PARK
