"""Timers: the kernel's heap of deadlines, the clock it reads, and sleeping.

A mixin of :class:`~yieldio._kernel.Kernel` (like ``_outside.py``), split out
along the seam "when does something happen" so the kernel stays readable in
one sitting; there is no extra hop: these are the kernel's own methods.

The heap holds each distinct deadline once, as a bare float: floats compare in
one C call and are not GC-tracked, where ``(deadline, seq, target)`` tuples cost
a tracked object per timer and two comparisons per heap level.
``timer_targets`` maps a deadline to its target, or to a :class:`_Tied` list of
the targets that share it, in the order their timers were set (ties fire
FIFO). A timer is live while ``target._timer == deadline``; cancelling one only
clears ``target._timer``, and the stale entry is skipped when it comes up
(lazy deletion), or dropped when stale entries are most of the heap.

A target is a sleeping :class:`~yieldio.Task` (woken) or any object with a
``_timer`` attribute and an ``_on_deadline()`` method (a cancel scope, a
simulated link).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._task import Task

if TYPE_CHECKING:
    from collections import deque

__all__ = ["SLEEP_WAIT", "SystemClock", "TimerHeap"]


class SystemClock:
    """The default clock: ``time.monotonic()``, and real sleeping."""

    autojump = False

    def current_time(self) -> float:
        return time.monotonic()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return deadline - time.monotonic()


class _SleepWait:
    """The wait object of a sleeping task; aborting it makes its timer stale."""

    __slots__ = ()

    def _abort_wait(self, task: Task) -> bool:
        task._kernel.cancel_timer(task)
        return True

    def _describe_wait(self, task: Task) -> str:
        entry = task._timer
        if entry is None:
            return "sleep"
        left = max(0.0, entry - task._kernel.clock_now())
        return f"sleep until +{left:.2f} s"


SLEEP_WAIT = _SleepWait()


class _Tied(list):  # type: ignore[type-arg]
    """The targets of timers that share one deadline, in the order they were set."""

    __slots__ = ()
    _timer = None  # a bucket is never "the" live timer: see TimerHeap._next_deadline


class TimerHeap:
    """The timer half of the kernel (a mixin; see the module docstring)."""

    clock: Any
    clock_now: Callable[[], float]
    system_clock: bool
    timers: list[float]
    timer_targets: dict[float, Any]
    stale_timers: int
    ready: deque[Task]
    reschedule: Callable[..., None]  # Kernel.reschedule

    def _init_timers(self, clock: Any) -> None:
        self.clock = clock if clock is not None else SystemClock()
        # The system clock is read straight from time.monotonic (no Python
        # frame per reading: the loop reads it every iteration with timers).
        self.system_clock = type(self.clock) is SystemClock
        self.clock_now = time.monotonic if self.system_clock else self.clock.current_time
        self.timers = []  # a heap of distinct deadlines
        self.timer_targets = {}
        self.stale_timers = 0

    def add_timer(self, deadline: float, target: Any) -> float:
        """Call ``target._on_deadline()`` (or wake a sleeping task) at ``deadline``.

        Returns the deadline as the timer's entry (also set as ``target._timer``).
        """
        entry = deadline + 0.0  # one key for 2, 2.0 and -0.0 == 0.0
        targets = self.timer_targets
        first = targets.get(entry)
        if first is None:
            targets[entry] = target
            heapq.heappush(self.timers, entry)
        elif type(first) is _Tied:
            first.append(target)
        else:
            targets[entry] = _Tied((first, target))
        target._timer = entry
        return entry

    def cancel_timer(self, target: Any) -> None:
        """Cancel ``target``'s timer, if it has one.

        The entry stays in the heap, stale, and is dropped when it reaches the top.
        (CancelScope.__exit__ inlines this: keep the two in step.)
        """
        if target._timer is not None:
            target._timer = None
            self.stale_timers += 1

    def _next_deadline(self) -> float | None:
        timers = self.timers
        targets = self.timer_targets
        while timers:
            entry = timers[0]
            item = targets[entry]
            if type(item) is _Tied:
                stale = sum(1 for t in item if t._timer != entry)
                if stale < len(item):
                    return entry
            elif item._timer == entry:
                return entry
            else:
                stale = 1
            heapq.heappop(timers)
            del targets[entry]
            self.stale_timers -= stale
        return None

    def _compact_timers(self) -> None:
        # Timeouts that never fire leave stale entries behind; once they are
        # most of the heap, rebuild it so memory stays proportional to live timers.
        live: dict[float, Any] = {}
        for entry, item in self.timer_targets.items():
            if type(item) is _Tied:
                # dict.fromkeys: a target re-armed at the same deadline is in
                # the bucket twice (once stale) but has one live timer.
                still = list(dict.fromkeys(t for t in item if t._timer == entry))
                if len(still) > 1:
                    live[entry] = _Tied(still)
                elif still:
                    live[entry] = still[0]
            elif item._timer == entry:
                live[entry] = item
        self.timer_targets = live
        self.timers = list(live)
        heapq.heapify(self.timers)
        self.stale_timers = 0

    def _tend_timers(self) -> None:
        """Fire the due timers; rebuild the heap when it is mostly stale entries."""
        timers = self.timers
        # clock_now holds a function, not a method: read it, then call it
        # (3.11 cannot specialise LOAD_METHOD for an instance attribute).
        clock_now = self.clock_now
        if timers[0] <= clock_now():
            self._expire_timers()
        if self.stale_timers > 1024 and self.stale_timers * 2 > len(timers):
            self._compact_timers()

    def _expire_timers(self) -> None:
        timers = self.timers
        targets = self.timer_targets
        clock_now = self.clock_now
        now = clock_now()
        reschedule = self.reschedule
        while timers and timers[0] <= now:
            entry = heapq.heappop(timers)
            item = targets.pop(entry)
            for target in item if type(item) is _Tied else (item,):
                if target._timer != entry:
                    self.stale_timers -= 1
                    continue
                target._timer = None
                if type(target) is Task:
                    reschedule(target)
                else:
                    target._on_deadline()
