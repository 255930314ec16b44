"""The "floor": a minimal hand-written generator scheduler, no framework.

Used by the switch and spawn benchmarks as the pure-Python lower bound for a
task runtime built on generators (which is what yieldio is): a deque of ready
tasks, ``gen.send`` to resume, and two kinds of yield:

* ``yield`` (None): reschedule me (the ``sleep(0)`` of this world);
* ``yield waiters`` (a deque): park me on that wait queue; whoever wakes me
  appends me back to the ready queue with the value to send in.

Nothing else: no timers, no I/O, no cancellation, no error propagation. A
real runtime must do more, so its cost minus this floor is the price of its
features.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import Any


class Task:
    __slots__ = ("gen", "value", "group")

    def __init__(self, gen: Generator, group: Group | None = None) -> None:
        self.gen = gen
        self.value: Any = None
        self.group = group


class Group:
    """Counts live children; the parent parks on ``waiters`` until zero."""

    __slots__ = ("live", "waiters")

    def __init__(self) -> None:
        self.live = 0
        self.waiters: deque[Task] = deque()


class Kernel:
    def __init__(self) -> None:
        self.ready: deque[Task] = deque()

    def spawn(self, gen: Generator, group: Group | None = None) -> Task:
        task = Task(gen, group)
        if group is not None:
            group.live += 1
        self.ready.append(task)
        return task

    def wake(self, task: Task, value: Any = None) -> None:
        task.value = value
        self.ready.append(task)

    def run(self) -> None:
        ready = self.ready
        popleft = ready.popleft
        append = ready.append
        # 'while True' + break: CPython 3.11 specialises a code object only
        # after calls or unconditional backward jumps, and this frame is
        # entered once ('while ready' ends in a conditional jump).
        while True:
            if not ready:
                break
            task = popleft()
            try:
                trap = task.gen.send(task.value)
            except StopIteration:
                group = task.group
                if group is not None:
                    group.live -= 1
                    if not group.live:
                        ready.extend(group.waiters)
                        group.waiters.clear()
                continue
            task.value = None
            if trap is None:
                append(task)
            else:
                trap.append(task)

    def join(self, group: Group) -> Generator:
        """``yield from kernel.join(group)``: wait until all children ended."""
        while group.live:
            yield group.waiters


class Queue:
    """Bounded FIFO queue with parked getters and putters."""

    def __init__(self, kernel: Kernel, maxsize: int) -> None:
        self.kernel = kernel
        self.maxsize = maxsize
        self.items: deque[Any] = deque()
        self.getters: deque[Task] = deque()
        self.putters: deque[Task] = deque()

    def put(self, item: Any) -> Generator:
        while len(self.items) >= self.maxsize:
            yield self.putters
        self.items.append(item)
        if self.getters:
            self.kernel.ready.append(self.getters.popleft())

    def get(self) -> Generator:
        while not self.items:
            yield self.getters
        item = self.items.popleft()
        if self.putters:
            self.kernel.ready.append(self.putters.popleft())
        return item


class Event:
    """Settable/clearable flag with parked waiters."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.flag = False
        self.waiters: deque[Task] = deque()

    def set(self) -> None:
        self.flag = True
        if self.waiters:
            self.kernel.ready.extend(self.waiters)
            self.waiters.clear()

    def clear(self) -> None:
        self.flag = False

    def wait(self) -> Generator:
        while not self.flag:
            yield self.waiters
