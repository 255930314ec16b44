"""Queues between tasks (:class:`Queue`) and between tasks and threads (:class:`UniversalQueue`).

:class:`UniversalQueue` lives in ``_universal_queue.py`` and is re-exported
here; what follows holds for both.

Cancellation safety comes from handing items over at wake-up time: a getter
is rescheduled *with* its item, and a rescheduled task can no longer be
aborted, so an item is either still in the queue or in the hands of exactly
one getter. A cancelled putter's item was never enqueued.

``close()`` follows Python 3.13's ``Queue.shutdown(immediate=False)``: puts
fail from then on, getters drain what is left, and then ``get`` raises
:class:`QueueClosed` and ``async for`` ends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import Any, TypeVar

from . import _state
from ._exceptions import QueueClosed, QueueEmpty, QueueFull
from ._task import Task
from ._traps import PARK, SCHEDULE
from ._typing import awaitable
from ._universal_queue import _CLOSED, UniversalQueue, _IterateUntilClosed
from .sync import _waker_kernel

__all__ = ["Queue", "UniversalQueue"]

_T = TypeVar("_T")


class Queue(_IterateUntilClosed[_T]):
    """A FIFO queue for tasks; ``maxsize <= 0`` means unbounded.

    ::

        q = yieldio.Queue(100)

        async def producer():
            for i in range(10):
                await q.put(i)
            q.close()

        async def consumer():
            async for item in q:      # ends when closed and drained
                print(item)

    For type checkers it is generic in its items: ``q: Queue[int] = Queue()``
    (or ``Queue[int]()``) makes ``await q.get()`` an ``int``.
    """

    __slots__ = ("_maxsize", "_items", "_getters", "_putters", "_closed", "_unfinished", "_joiners")

    def __init__(self, maxsize: int = 0) -> None:
        if not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
        self._maxsize = maxsize
        self._items: deque[_T] = deque()
        self._getters: dict[Task, None] = {}
        self._putters: dict[Task, Any] = {}
        self._closed = False
        self._unfinished = 0
        self._joiners: dict[Task, None] = {}

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (f"<Queue{state} size={len(self._items)} maxsize={self._maxsize} "
                f"getters={len(self._getters)} putters={len(self._putters)}>")

    # -- state ------------------------------------------------------------------
    @property
    def maxsize(self) -> int:
        """The capacity given to the constructor: ``Queue(8).maxsize == 8``; 0 or less: unbounded."""
        return self._maxsize

    def qsize(self) -> int:
        """Number of items in the queue now."""
        return len(self._items)

    def empty(self) -> bool:
        """True if no item is waiting: ``get_nowait()`` would raise :class:`QueueEmpty`."""
        return not self._items

    def full(self) -> bool:
        """True if ``put`` would wait: ``Queue(1)`` is full after one ``put_nowait``.

        An unbounded queue is never full.
        """
        return 0 < self._maxsize <= len(self._items)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    # -- putting ------------------------------------------------------------------
    def put_nowait(self, item: _T) -> None:
        """Put ``item`` now, or raise :class:`QueueFull` / :class:`QueueClosed`."""
        if self._closed:
            raise QueueClosed("put to a closed Queue")
        if self._getters:
            getter = next(iter(self._getters))
            k = _waker_kernel(getter)  # not from a plain thread: see UniversalQueue
            del self._getters[getter]
            self._unfinished += 1
            k.reschedule(getter, item)
            return
        if 0 < self._maxsize <= len(self._items):
            raise QueueFull("the Queue is full")
        self._items.append(item)
        self._unfinished += 1

    @awaitable
    def put(self, item: _T) -> Generator[Any, Any, None]:
        """Put ``item``, waiting while the queue is full (a checkpoint)."""
        try:
            k = _state.local.kernel
        except AttributeError:
            _state.outside_run()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        if self._closed:
            raise QueueClosed("put to a closed Queue")
        getters = self._getters
        if getters or not 0 < self._maxsize <= len(self._items):
            if getters:
                getter = next(iter(getters))
                del getters[getter]
                if k._hooks["task_scheduled"]:
                    k.reschedule(getter, item)
                else:  # Kernel.reschedule inlined, as in Event.set
                    getter._wait = None
                    getter._val = item
                    k.ready.append(getter)
            else:
                self._items.append(item)
            self._unfinished += 1
            k.fast_budget -= 1
            if k.fast_budget <= 0:
                k.fast_budget = k.fast_budget_full
                yield SCHEDULE
            return
        self._putters[task] = item
        task._wait = self
        if (yield PARK) is _CLOSED:
            raise QueueClosed("the Queue was closed while waiting to put")

    # -- getting ------------------------------------------------------------------
    def get_nowait(self) -> _T:
        """Take an item now, or raise :class:`QueueEmpty` / :class:`QueueClosed`."""
        if self._items:
            if self._putters:  # _take wakes one: from this thread only
                _waker_kernel(next(iter(self._putters)))
            return self._take()
        if self._closed:
            raise QueueClosed("the Queue is closed and empty")
        raise QueueEmpty("the Queue is empty")

    def _take(self) -> _T:
        item = self._items.popleft()
        putters = self._putters
        if putters:
            putter = next(iter(putters))
            self._items.append(putters.pop(putter))
            self._unfinished += 1
            k = putter._kernel
            if k._hooks["task_scheduled"]:
                k.reschedule(putter)
            else:  # Kernel.reschedule inlined, as in Event.set
                putter._wait = None
                putter._val = None
                k.ready.append(putter)
        return item

    @awaitable
    def get(self) -> Generator[Any, Any, _T]:
        """Take the next item, waiting while the queue is empty (a checkpoint)."""
        try:
            k = _state.local.kernel
        except AttributeError:
            _state.outside_run()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        if self._items:
            item = self._take()
            k.fast_budget -= 1
            if k.fast_budget <= 0:
                k.fast_budget = k.fast_budget_full
                yield SCHEDULE
            return item
        if self._closed:
            raise QueueClosed("the Queue is closed and empty")
        self._getters[task] = None
        task._wait = self
        item = yield PARK
        if item is _CLOSED:
            raise QueueClosed("the Queue is closed and empty")
        return item

    _next_item = get  # what async iteration (_IterateUntilClosed) waits on

    # -- closing and joining ------------------------------------------------------
    def close(self, *, immediate: bool = False) -> None:
        """No more puts: blocked and later puts raise; getters drain, then stop.

        With ``immediate=True`` the items still queued are dropped too, so
        getters stop at once, and each dropped item counts as done for
        :meth:`join` (Python 3.13's ``Queue.shutdown(immediate=True)``)::

            queue.close(immediate=True)   # stop the consumers now

        Synchronous and idempotent (a later ``immediate=True`` still drops
        what is left).
        """
        if self._closed and not (immediate and self._items):
            return
        if self._putters or self._getters or (immediate and self._joiners):
            # (waking them: from this thread only)
            _waker_kernel(next(iter(self._putters or self._getters or self._joiners)))
        self._closed = True
        for putter in list(self._putters):
            del self._putters[putter]
            putter._kernel.reschedule(putter, _CLOSED)
        if immediate and self._items:
            self._unfinished -= len(self._items)
            self._items.clear()
            if not self._unfinished and self._joiners:
                joiners, self._joiners = self._joiners, {}
                for t in joiners:
                    t._kernel.reschedule(t)
        if not self._items:
            for getter in list(self._getters):
                del self._getters[getter]
                getter._kernel.reschedule(getter, _CLOSED)

    def task_done(self) -> None:
        """Mark one fetched item as processed (for :meth:`join`)."""
        if self._unfinished <= 0:
            raise ValueError("task_done() called more times than there were items")
        if self._unfinished == 1 and self._joiners:  # waking them: from this thread only
            k = _waker_kernel(next(iter(self._joiners)))
            joiners, self._joiners = self._joiners, {}
            for t in joiners:
                k.reschedule(t)
        self._unfinished -= 1

    @awaitable
    def join(self) -> Generator[Any, Any, None]:
        """Wait until every item put has been marked with :meth:`task_done`."""
        task = _state.current_task()
        if task._cancel_pending:
            task._raise_cancel()
        if self._unfinished == 0:
            yield SCHEDULE
            return
        self._joiners[task] = None
        task._wait = self
        yield PARK

    def _abort_wait(self, task: Task) -> bool:
        if task in self._getters:
            del self._getters[task]
            return True
        if task in self._putters:
            del self._putters[task]
            return True
        return self._joiners.pop(task, 0) is None

    def _describe_wait(self, task: Task) -> str:
        if task in self._getters:
            return "Queue.get"
        if task in self._putters:
            return "Queue.put"
        return "Queue.join"
