"""UniversalQueue: a queue shared by yieldio tasks and plain threads.

Split out of ``queue.py``, which re-exports it; that module's docstring
explains the hand-over at wake-up and ``close()``. Here is what a queue
needs when its other side may be a thread: a lock around its state, and
waking a waiting task through its kernel's thread-safe call queue. The two
small pieces both queues share live here too (``queue.py`` imports them):
async iteration until closed, and the marker a closed queue sends its waiters.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Generator
from typing import Any, Generic, Self, TypeVar

from . import _state
from ._exceptions import QueueClosed, QueueEmpty, QueueFull
from ._task import Task
from ._timeouts import move_on_after
from ._traps import PARK, SCHEDULE
from ._typing import Waitable, awaitable

__all__ = ["UniversalQueue"]

_T = TypeVar("_T")


class _IterateUntilClosed(Generic[_T]):
    """``async for item in q``: one ``get`` per item, until the queue is closed and drained."""

    __slots__ = ()
    # Each queue sets this to its task-side get (Queue.get, UniversalQueue._get_async).
    _next_item: Callable[[], Generator[Any, Any, _T]]

    def __aiter__(self) -> Self:
        return self

    def __anext__(self) -> Waitable[_T]:
        return self._anext()

    @awaitable
    def _anext(self) -> Generator[Any, Any, _T]:
        try:
            return (yield from self._next_item())
        except QueueClosed:
            raise StopAsyncIteration from None


class _Closed:
    __repr__ = lambda self: "<closed>"  # noqa: E731


_CLOSED = _Closed()


class UniversalQueue(_IterateUntilClosed[_T]):
    """A queue shared by tasks and plain threads.

    In a task, ``get()``/``put()`` return awaitables; in a thread with no
    kernel they block::

        q = yieldio.UniversalQueue()

        def worker():                     # runs in a thread
            q.put(compute())

        async def main():
            threading.Thread(target=worker).start()
            print(await q.get())

    Both take an optional ``timeout`` in seconds (of the run's clock, in a
    task): when it runs out, ``get`` raises :class:`QueueEmpty` and ``put``
    :class:`QueueFull`, on either side. ``get_nowait()``/``put_nowait()``
    never wait, from a task or a thread.

    A task waiting on it is not counted as deadlocked: a thread may feed it.
    As with :class:`Queue`, ``async for item in q`` in a task ends once the
    queue is closed and drained, and :meth:`task_done`/:meth:`join` track
    the items processed, here from either side.

    For type checkers it is generic in its items (``UniversalQueue[bytes]``):
    ``get_nowait()``, ``put_nowait()`` and ``async for`` are precise.
    ``get()``/``put()``/``join()`` are typed ``Any``, since they return an awaitable in a
    task but the item itself in a thread; annotate the result
    (``data: bytes = await q.get()``).
    """

    def __init__(self, maxsize: int = 0) -> None:
        if not isinstance(maxsize, int):
            # Checked here, as Queue does: else the error comes from the first put.
            raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
        self._maxsize = maxsize
        self._items: deque[_T] = deque()
        self._mutex = threading.Lock()
        self._not_empty = threading.Condition(self._mutex)
        self._not_full = threading.Condition(self._mutex)
        # Tasks waiting: task -> its kernel (tasks may come from several kernels).
        self._task_getters: dict[Task, Any] = {}
        self._task_putters: dict[Task, Any] = {}  # task -> item
        self._closed = False
        # Items put and not yet marked task_done(); threads in join() wait on
        # _all_done, tasks in _task_joiners (task -> its kernel).
        self._unfinished = 0
        self._all_done = threading.Condition(self._mutex)
        self._task_joiners: dict[Task, Any] = {}

    def qsize(self) -> int:
        """Number of items in the queue now (from any thread, so it may be stale at once)."""
        with self._mutex:
            return len(self._items)

    def empty(self) -> bool:
        """True if no item is waiting: ``q.qsize() == 0``."""
        return self.qsize() == 0

    @property
    def maxsize(self) -> int:
        """The capacity given to the constructor; 0 or less: unbounded."""
        return self._maxsize

    def full(self) -> bool:
        """True if ``put`` would wait now (it may be stale at once, as :meth:`qsize`).

        An unbounded queue is never full.
        """
        with self._mutex:
            return 0 < self._maxsize <= len(self._items)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def close(self, *, immediate: bool = False) -> None:
        """Like :meth:`Queue.close` (``immediate`` too), from any thread."""
        joiners: list[Task] = []
        with self._mutex:
            if self._closed and not (immediate and self._items):
                return
            self._closed = True
            putters = list(self._task_putters)
            self._task_putters.clear()
            if immediate and self._items:
                self._unfinished -= len(self._items)
                self._items.clear()
                if not self._unfinished:
                    self._all_done.notify_all()
                    joiners = list(self._task_joiners)
                    self._task_joiners.clear()
            getters = list(self._task_getters) if not self._items else []
            for g in getters:
                del self._task_getters[g]
            self._not_empty.notify_all()
            self._not_full.notify_all()
        for t in putters + getters:
            _wake_from_anywhere(t, _CLOSED)
        for t in joiners:
            _wake_from_anywhere(t, None)

    # -- put ---------------------------------------------------------------------
    def put(self, item: _T, timeout: float | None = None) -> Any:
        """Put ``item`` (awaitable in a task, blocking in a thread).

        With a ``timeout`` (seconds), raise :class:`QueueFull` if there is
        still no room when it runs out; 0 or less: do not wait.
        """
        if getattr(_state.local, "kernel", None) is not None:
            if timeout is None:
                return self._put_async(item)
            return self._put_async_timeout(item, timeout)
        self._put_blocking(item, timeout)
        return None

    def put_nowait(self, item: _T) -> None:
        """Put ``item`` now, or raise :class:`QueueFull` / :class:`QueueClosed` (any thread)."""
        with self._mutex:
            if self._closed:
                raise QueueClosed("put to a closed UniversalQueue")
            if not (self._maxsize <= 0 or self._task_getters
                    or len(self._items) < self._maxsize):
                raise QueueFull("the UniversalQueue is full")
            getter = self._offer_locked(item)
        if getter is not None:
            _wake_from_anywhere(getter, item)

    def _offer_locked(self, item: Any) -> Task | None:
        """Hand to a waiting task or enqueue; return the task to wake. Mutex held."""
        self._unfinished += 1
        if self._task_getters:
            getter = next(iter(self._task_getters))
            del self._task_getters[getter]
            return getter
        self._items.append(item)
        self._not_empty.notify()
        return None

    def _put_blocking(self, item: Any, timeout: float | None) -> None:
        with self._mutex:
            if self._closed:
                raise QueueClosed("put to a closed UniversalQueue")
            if self._maxsize > 0 and not self._task_getters:
                if not self._not_full.wait_for(
                        lambda: (self._closed or len(self._items) < self._maxsize
                                 or bool(self._task_getters)), timeout):
                    raise QueueFull("UniversalQueue.put timed out")
                if self._closed:
                    raise QueueClosed("put to a closed UniversalQueue")
            getter = self._offer_locked(item)
            if getter is not None and len(self._items) < self._maxsize:
                # Woken by a get's "there is room", we handed the item to a
                # task waiting in get() instead: the room is still there, so
                # pass the word on, or the next blocked putter sleeps on an
                # empty queue while a task waits to get.
                self._not_full.notify()
        if getter is not None:
            _wake_from_anywhere(getter, item)

    @awaitable
    def _put_async(self, item: Any) -> Generator[Any, Any, None]:
        k = _state.current_kernel()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        with self._mutex:
            if self._closed:
                raise QueueClosed("put to a closed UniversalQueue")
            # A bool, not the getters dict itself: _offer_locked empties that dict,
            # and 'if room' below must still see the room there was.
            room = (self._maxsize <= 0 or bool(self._task_getters)
                    or len(self._items) < self._maxsize)
            if room:
                getter = self._offer_locked(item)
            else:
                getter = None
                self._task_putters[task] = item
                task._wait = self
                # Passive, not external: no thread is known to be on its way
                # (a to_thread producer holds virtual time by itself), so
                # autojump may move time on while a task waits here.
                k.passive_parks += 1
        if room:
            if getter is not None:
                _wake_from_anywhere(getter, item)
            yield SCHEDULE
            return
        try:
            result = yield PARK
        finally:
            k.passive_parks -= 1
        if result is _CLOSED:
            raise QueueClosed("the UniversalQueue was closed while waiting to put")

    @awaitable
    def _put_async_timeout(self, item: Any, timeout: float) -> Generator[Any, Any, None]:
        # The thread side's timeout, as a deadline on the wait: QueueFull when
        # it passes (a put whose wait was aborted never enqueued its item).
        if _no_wait(timeout):
            task = _state.current_task()
            if task._cancel_pending:
                task._raise_cancel()
            self.put_nowait(item)
            yield SCHEDULE
            return
        with move_on_after(timeout) as scope:
            yield from self._put_async(item)
        if scope.cancelled_caught:
            raise QueueFull("UniversalQueue.put timed out")

    # -- get ---------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> Any:
        """Take an item (awaitable in a task, blocking in a thread).

        With a ``timeout`` (seconds), raise :class:`QueueEmpty` if there is
        still no item when it runs out; 0 or less: do not wait.
        """
        if getattr(_state.local, "kernel", None) is not None:
            if timeout is None:
                return self._get_async()
            return self._get_async_timeout(timeout)
        return self._get_blocking(timeout)

    def get_nowait(self) -> _T:
        """Take an item now, or raise :class:`QueueEmpty` / :class:`QueueClosed` (any thread)."""
        with self._mutex:
            if self._items:
                item, putter = self._take_locked()
            elif self._closed:
                raise QueueClosed("the UniversalQueue is closed and empty")
            else:
                raise QueueEmpty("the UniversalQueue is empty")
        if putter is not None:
            _wake_from_anywhere(putter, None)
        return item

    def _take_locked(self) -> tuple[Any, Task | None]:
        item = self._items.popleft()
        putter = None
        if self._task_putters:
            putter = next(iter(self._task_putters))
            self._items.append(self._task_putters.pop(putter))
            self._unfinished += 1  # a waiting putter's item goes in only now
        self._not_full.notify()
        return item, putter

    def _get_blocking(self, timeout: float | None) -> Any:
        with self._mutex:
            if not self._not_empty.wait_for(lambda: self._items or self._closed, timeout):
                raise QueueEmpty("UniversalQueue.get timed out")
            if not self._items:
                raise QueueClosed("the UniversalQueue is closed and empty")
            item, putter = self._take_locked()
        if putter is not None:
            _wake_from_anywhere(putter, None)
        return item

    @awaitable
    def _get_async(self) -> Generator[Any, Any, _T]:
        k = _state.current_kernel()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        with self._mutex:
            if self._items:
                item, putter = self._take_locked()
                waiting = False
            elif self._closed:
                raise QueueClosed("the UniversalQueue is closed and empty")
            else:
                waiting = True
                self._task_getters[task] = k
                task._wait = self
                k.passive_parks += 1  # see _put_async
        if not waiting:
            if putter is not None:
                _wake_from_anywhere(putter, None)
            yield SCHEDULE
            return item
        try:
            item = yield PARK
        finally:
            k.passive_parks -= 1
        if item is _CLOSED:
            raise QueueClosed("the UniversalQueue is closed and empty")
        return item

    @awaitable
    def _get_async_timeout(self, timeout: float) -> Generator[Any, Any, Any]:
        # See _put_async_timeout. An item handed over at wake-up is returned
        # even if the deadline passes before the getter runs again.
        if _no_wait(timeout):
            task = _state.current_task()
            if task._cancel_pending:
                task._raise_cancel()
            item = self.get_nowait()
            yield SCHEDULE
            return item
        with move_on_after(timeout) as scope:
            return (yield from self._get_async())
        assert scope.cancelled_caught  # the only way out of the block without returning
        raise QueueEmpty("UniversalQueue.get timed out")

    # async iteration, in a task (_IterateUntilClosed)
    def _next_item(self) -> Generator[Any, Any, Any]:
        return self._get_async()

    # -- task_done and join ------------------------------------------------------
    def task_done(self) -> None:
        """Mark one item taken from the queue as processed, from a task or a thread.

        Each ``put`` counts one unfinished item and each ``task_done`` one
        less; when none is left, :meth:`join` returns on both sides::

            def worker():                     # runs in a thread
                while True:
                    handle(q.get())
                    q.task_done()

        Raises ``ValueError`` if called more times than items were put.
        """
        with self._mutex:
            if self._unfinished <= 0:
                raise ValueError("task_done() called more times than there were items")
            self._unfinished -= 1
            if self._unfinished:
                return
            self._all_done.notify_all()
            # Taken under the lock: from here on a joiner's wait cannot be
            # aborted, so the wake-up below is never lost nor doubled.
            joiners = list(self._task_joiners)
            self._task_joiners.clear()
        for t in joiners:
            _wake_from_anywhere(t, None)

    def join(self, timeout: float | None = None) -> Any:
        """Wait until every item put has been marked with :meth:`task_done`.

        Awaitable in a task (a checkpoint, cancellable), blocking in a thread::

            async def main():
                threading.Thread(target=worker, daemon=True).start()
                for job in jobs:
                    await q.put(job)
                await q.join()                # the worker has handled them all

        With a ``timeout`` (seconds, of the run's clock in a task), raise the
        built-in ``TimeoutError`` if items are still unfinished when it runs
        out, as ``fail_after`` does; 0 or less: do not wait.
        """
        if getattr(_state.local, "kernel", None) is not None:
            if timeout is None:
                return self._join_async()
            return self._join_async_timeout(timeout)
        self._join_blocking(timeout)
        return None

    def _join_blocking(self, timeout: float | None) -> None:
        with self._mutex:
            if not self._all_done.wait_for(lambda: self._unfinished == 0, timeout):
                raise TimeoutError("UniversalQueue.join timed out")

    @awaitable
    def _join_async(self) -> Generator[Any, Any, None]:
        k = _state.current_kernel()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        with self._mutex:
            waiting = self._unfinished > 0
            if waiting:
                self._task_joiners[task] = k
                task._wait = self
                k.passive_parks += 1  # see _put_async
        if not waiting:
            yield SCHEDULE
            return
        try:
            yield PARK
        finally:
            k.passive_parks -= 1

    @awaitable
    def _join_async_timeout(self, timeout: float) -> Generator[Any, Any, None]:
        # See _put_async_timeout. A join woken by the last task_done returns
        # even if the deadline passes before the joiner runs again.
        if _no_wait(timeout):
            task = _state.current_task()
            if task._cancel_pending:
                task._raise_cancel()
            with self._mutex:
                unfinished = self._unfinished
            if unfinished:
                raise TimeoutError("UniversalQueue.join timed out")
            yield SCHEDULE
            return
        with move_on_after(timeout) as scope:
            yield from self._join_async()
        if scope.cancelled_caught:
            raise TimeoutError("UniversalQueue.join timed out")

    def _abort_wait(self, task: Task) -> bool:
        with self._mutex:
            for waiting in (self._task_getters, self._task_putters, self._task_joiners):
                if task in waiting:
                    del waiting[task]
                    return True
        return False

    def _describe_wait(self, task: Task) -> str:
        if task in self._task_getters:
            return "UniversalQueue.get"
        if task in self._task_putters:
            return "UniversalQueue.put"
        if task in self._task_joiners:
            return "UniversalQueue.join"
        return "UniversalQueue (being woken)"


def _no_wait(timeout: float) -> bool:
    """True for a timeout of 0 or less (as for ``threading.Condition.wait_for``)."""
    try:
        return timeout <= 0
    except TypeError:
        raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}") from None


def _wake_from_anywhere(task: Task, value: Any) -> None:
    """Reschedule ``task`` from whatever thread we are on."""
    k: Any = task._kernel
    if getattr(_state.local, "kernel", None) is k:
        task._kernel.reschedule(task, value)
    else:
        k.call_soon_threadsafe(_wake_if_waiting, task, value)


def _wake_if_waiting(task: Task, value: Any) -> None:
    if task._wait is not None and task._state == "running":
        task._kernel.reschedule(task, value)
