"""Synchronisation primitives: Event, Lock, Semaphore, Condition, Barrier, CapacityLimiter.

All are built on the kernel's one waiting primitive (park + reschedule) and
keep their waiters in insertion-ordered dicts: FIFO-fair, O(1) removal when
a waiter is cancelled. Ownership is *handed over* on release -- the next
waiter is made owner before it even runs -- so nobody can barge in, and a
cancelled waiter never leaves a lock or permit behind.

Every ``acquire``/``wait`` is a checkpoint: it raises :class:`Cancelled`
when the task is cancelled, even if it would not have had to wait.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

from . import _state
from ._barrier import Barrier, BrokenBarrierError
from ._cancel import CancelScope
from ._exceptions import BrokenResourceError, WouldBlock
from ._limiter import CapacityLimiter
from ._task import RUNNING, Task
from ._traps import PARK, SCHEDULE
from ._typing import awaitable

__all__ = ["Event", "Lock", "Semaphore", "Condition", "Barrier", "BrokenBarrierError",
           "CapacityLimiter"]

_T = TypeVar("_T")


def _first(d: dict[Task, Any]) -> Task:
    return next(iter(d))


def _tell_on_exit(owner: Task, lock: Lock) -> None:
    """Have the kernel call ``lock._owner_ended`` when ``owner`` ends.

    Only the slow path (a task about to wait) registers, so an uncontended
    acquire/release costs nothing; a lock whose owner ended with nobody
    waiting is caught by the next ``acquire`` instead.
    """
    extra = owner._extras()
    held = extra.held
    if held is None:
        extra.held = {lock: None}
    else:
        held[lock] = None


def _waker_kernel(task: Task) -> Any:
    """``task``'s kernel, if this thread runs it; else ``RuntimeError``.

    For the branches that wake a waiter (never the fast paths): called from a
    plain thread, they would touch the kernel's ready queue unlocked and the
    woken task could sleep on unnoticed. Checking first leaves the waiters
    in place, still cancellable, as ``Event.set`` does.
    """
    k = getattr(_state.local, "kernel", None)
    if k is not task._kernel:
        raise RuntimeError(
            "a yieldio primitive belongs to the thread of the run its tasks wait in; "
            "from another thread use yieldio.UniversalQueue or yieldio.from_thread()")
    return k


class Event:
    """A flag tasks can wait for; once set it stays set until :meth:`clear`.

    ::

        ready = yieldio.Event()

        async def waiter():
            await ready.wait()
            print("go!")

        # elsewhere: ready.set()
    """

    __slots__ = ("_flag", "_waiters", "__weakref__")

    def __init__(self) -> None:
        self._flag = False
        self._waiters: dict[Task, None] = {}

    def __repr__(self) -> str:
        return f"<Event {'set' if self._flag else 'unset'}, {len(self._waiters)} waiting>"

    def is_set(self) -> bool:
        """True if the event is set."""
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiter (in the order they started waiting)."""
        if self._flag:
            return
        waiters = self._waiters
        if waiters:
            # Find the kernel before changing anything: called outside it (a
            # plain thread) this raises, and must leave the waiters in place,
            # still cancellable, rather than forgotten by a half-done set().
            try:
                k = _state.local.kernel
            except AttributeError:
                _state.outside_run()
            if next(iter(waiters))._kernel is not k:
                # Another run's kernel (one per thread): waking its tasks
                # from here would race that kernel's ready queue.
                raise RuntimeError(
                    "Event.set() from a different yieldio run than its waiters'; "
                    "from another thread use yieldio.from_thread() to set it in theirs")
            self._waiters = {}
            self._flag = True
            if k._hooks["task_scheduled"]:
                for task in waiters:
                    k.reschedule(task)
            else:
                # Kernel.reschedule inlined (a Python call per waiter less),
                # as in _dispatch_io; an instrument gets the real call.
                ready = k.ready
                for task in waiters:
                    task._wait = None
                    task._val = None
                    ready.append(task)
        else:
            self._flag = True

    def clear(self) -> None:
        """Unset the flag; later ``wait()`` calls block again."""
        self._flag = False

    @awaitable
    def wait(self) -> Generator[Any, Any, None]:
        """Wait until the flag is set (a checkpoint even when it already is)."""
        try:
            k = _state.local.kernel
        except AttributeError:
            _state.outside_run()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        if self._flag:
            yield SCHEDULE
            return
        self._waiters[task] = None
        task._wait = self
        yield PARK

    def _abort_wait(self, task: Task) -> bool:
        return self._waiters.pop(task, 0) is None

    def _describe_wait(self, task: Task) -> str:
        return "Event.wait"

    def statistics(self) -> dict[str, int]:
        """``{"tasks_waiting": n}``."""
        return {"tasks_waiting": len(self._waiters)}


class Lock:
    """A mutual-exclusion lock, owned by the task that acquired it.

    ::

        lock = yieldio.Lock()
        async with lock:
            await update_shared_state()

    Not re-entrant; releasing from a task that does not hold it raises
    ``RuntimeError``. A task that ends while holding the lock *breaks* it:
    nobody else may release it, so instead of waiting for ever its waiters,
    and every later ``acquire``, raise :class:`BrokenResourceError` naming
    the ended owner (as trio's Lock does; asyncio's locks have no owner).
    Use ``async with lock:`` and this cannot happen by accident.
    """

    __slots__ = ("_owner", "_waiters")

    def __init__(self) -> None:
        self._owner: Task | None = None
        self._waiters: dict[Task, None] = {}

    def __repr__(self) -> str:
        held = f"held by {self._owner!r}" if self._owner else "unlocked"
        return f"<Lock {held}, {len(self._waiters)} waiting>"

    def locked(self) -> bool:
        """True if some task holds the lock."""
        return self._owner is not None

    @property
    def owner(self) -> Task | None:
        """The task holding the lock, or None."""
        return self._owner

    @awaitable
    def acquire(self) -> Generator[Any, Any, None]:
        """Wait until the lock is free and take it."""
        try:
            k = _state.local.kernel
        except AttributeError:
            _state.outside_run()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        if self._owner is None and not self._waiters:
            self._owner = task
            k.fast_budget -= 1
            if k.fast_budget <= 0:
                k.fast_budget = k.fast_budget_full
                yield SCHEDULE
            return
        owner = self._owner
        if owner is task:
            raise RuntimeError(f"{task!r} already holds this Lock (it is not re-entrant)")
        if owner is not None and owner._state is not RUNNING:
            raise self._broken()
        self._waiters[task] = None
        task._wait = self
        if owner is not None:
            _tell_on_exit(owner, self)
        yield PARK

    def acquire_nowait(self) -> None:
        """Take the lock now or raise :class:`WouldBlock` if it is held."""
        task = _state.current_task()
        owner = self._owner
        if owner is task:
            raise RuntimeError(f"{task!r} already holds this Lock (it is not re-entrant)")
        if owner is not None and owner._state is not RUNNING:
            raise self._broken()
        if owner is not None or self._waiters:
            raise WouldBlock("the Lock is held by another task")
        self._owner = task

    def release(self) -> None:
        """Release the lock; the longest waiter becomes the owner."""
        task = _state.current_task()
        if self._owner is not task:
            raise RuntimeError(
                f"Lock.release() by {task!r}, which does not hold the lock "
                f"(owner: {self._owner!r})"
            )
        if self._waiters:
            _waker_kernel(_first(self._waiters))  # a waiter in another thread's run: refused
        extra = task._extra
        if extra is not None and extra.held:
            # Forget the registration a waiter made (a long-lived task taking
            # many short-lived locks must not keep them all alive).
            extra.held.pop(self, None)
        self._handoff()

    def _handoff(self) -> None:
        waiters = self._waiters
        if waiters:
            nxt = _first(waiters)
            del waiters[nxt]
            self._owner = nxt
            nxt._kernel.reschedule(nxt)
            if waiters:
                _tell_on_exit(nxt, self)
        else:
            self._owner = None

    def _owner_ended(self, task: Task) -> None:
        # Called by the kernel when a task that others waited on this lock
        # for ends. If it released the lock first, nothing to do.
        if self._owner is not task:
            return
        waiters = self._waiters
        self._waiters = {}
        here = getattr(_state.local, "kernel", None)
        for w in waiters:
            if w._kernel is here and here is not None:
                here.reschedule_error(w, self._broken())
            else:
                # A waiter in another thread's run (a misuse release() and
                # notify() refuse): woken by its own kernel, never from here.
                w._kernel.call_soon_threadsafe(self._wake_broken, w, self._broken())

    def _wake_broken(self, task: Task, error: BrokenResourceError) -> None:
        if task._wait is self:  # (unless cancelled meanwhile)
            task._kernel.reschedule_error(task, error)

    def _broken(self) -> BrokenResourceError:
        owner = self._owner
        assert owner is not None
        return BrokenResourceError(
            f"this Lock is broken: its owner {owner!r} ended without releasing it")

    def _abort_wait(self, task: Task) -> bool:
        return self._waiters.pop(task, 0) is None

    def _describe_wait(self, task: Task) -> str:
        owner = self._owner
        return f"Lock.acquire (held by task {owner.id if owner else '?'})"

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: Any) -> None:
        self.release()


class Semaphore:
    """A counter of permits: ``acquire`` takes one (waiting if none), ``release`` returns one.

    ::

        limit = yieldio.Semaphore(10)      # at most 10 fetches at once
        async with limit:
            await fetch(url)

    With ``max_value`` set, releasing beyond it raises ``ValueError``.
    """

    __slots__ = ("_value", "_max", "_waiters")

    def __init__(self, value: int = 1, *, max_value: int | None = None) -> None:
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"Semaphore value must be an int >= 0, not {value!r}")
        if max_value is not None and (not isinstance(max_value, int) or max_value < value):
            raise ValueError(f"max_value must be an int >= the initial value, not {max_value!r}")
        self._value = value
        self._max = max_value
        self._waiters: dict[Task, None] = {}

    def __repr__(self) -> str:
        return f"<Semaphore value={self._value}, {len(self._waiters)} waiting>"

    @property
    def value(self) -> int:
        """Permits available now."""
        return self._value

    @property
    def max_value(self) -> int | None:
        """The most permits :meth:`release` may build up, or None for no limit.

        ``Semaphore(2, max_value=2).release()`` raises ``ValueError``: a
        release with no matching acquire is a bug, caught where it happens.
        """
        return self._max

    @awaitable
    def acquire(self) -> Generator[Any, Any, None]:
        """Take a permit, waiting in FIFO order if none is free."""
        try:
            k = _state.local.kernel
        except AttributeError:
            _state.outside_run()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        if self._value > 0 and not self._waiters:
            self._value -= 1
            k.fast_budget -= 1
            if k.fast_budget <= 0:
                k.fast_budget = k.fast_budget_full
                yield SCHEDULE
            return
        self._waiters[task] = None
        task._wait = self
        yield PARK

    def acquire_nowait(self) -> None:
        """Take a permit now or raise :class:`WouldBlock`."""
        _state.current_task()
        if self._value <= 0 or self._waiters:
            raise WouldBlock("no Semaphore permit is free")
        self._value -= 1

    def release(self) -> None:
        """Return a permit (handing it straight to the longest waiter, if any)."""
        if self._waiters:
            nxt = _first(self._waiters)
            k = _waker_kernel(nxt)
            del self._waiters[nxt]
            k.reschedule(nxt)
            return
        if self._max is not None and self._value >= self._max:
            raise ValueError(f"Semaphore released too many times (max_value={self._max})")
        self._value += 1

    def _abort_wait(self, task: Task) -> bool:
        return self._waiters.pop(task, 0) is None

    def _describe_wait(self, task: Task) -> str:
        return "Semaphore.acquire"

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: Any) -> None:
        self.release()


class Condition:
    """Wait for a state change announced by another task, under a :class:`Lock`.

    ::

        cond = yieldio.Condition()
        async with cond:
            while not ready:
                await cond.wait()     # releases the lock while waiting

        # producer:
        async with cond:
            ready = True
            cond.notify_all()
    """

    __slots__ = ("_lock", "_waiters", "_unheld")

    def __init__(self, lock: Lock | None = None) -> None:
        self._lock = lock if lock is not None else Lock()
        self._waiters: dict[Task, None] = {}
        # Tasks whose wait() was left by Ctrl-C before the lock was taken
        # back (see wait()): their next release() is a no-op.
        self._unheld: set[Task] | None = None

    @property
    def lock(self) -> Lock:
        """The :class:`Lock` under the condition (``Condition(lock)`` shares one)."""
        return self._lock

    def locked(self) -> bool:
        """True if some task holds the lock: ``cond.locked()``."""
        return self._lock.locked()

    async def acquire(self) -> None:
        """Take the lock, as ``await cond.lock.acquire()``; ``async with cond:`` is the usual form."""
        await self._lock.acquire()

    def release(self) -> None:
        """Release the lock: ``cond.release()``. ``RuntimeError`` if this task does not hold it."""
        unheld = self._unheld
        if unheld:
            task = _state.current_task()
            if task in unheld:
                unheld.discard(task)
                return
        self._lock.release()

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(self, *exc: Any) -> None:
        self.release()

    async def wait(self) -> None:
        """Release the lock, wait for a notify, then take the lock back.

        The lock is re-taken even when the wait is cancelled, so code after a
        ``wait()`` (or in its ``finally``) always runs holding the lock. Only
        Ctrl-C, which no shield stops, can leave while another task holds the
        lock: the ``KeyboardInterrupt`` goes out without it, and the
        ``async with cond`` exit (or ``cond.release()``) knows not to release.
        """
        task = _state.current_task()
        if self._lock._owner is not task:
            raise RuntimeError("Condition.wait() needs the condition's lock held")
        if task._cancel_pending:
            task._raise_cancel()
        self._lock.release()
        try:
            await self._park(task)
        finally:
            with CancelScope(shield=True):
                try:
                    await self._lock.acquire()
                except KeyboardInterrupt:
                    # Ctrl-C pierces the shield, and waiting on for the lock
                    # could make it do nothing (its holder may be the task
                    # that is meant to be unwound). Leave without the lock,
                    # and let the matching release() -- the `async with`
                    # exit -- pass quietly, so the KeyboardInterrupt goes
                    # out instead of a "lock not held" RuntimeError.
                    if self._unheld is None:
                        self._unheld = set()
                    self._unheld.add(task)
                    raise

    async def wait_for(self, predicate: Callable[[], _T]) -> _T:
        """Wait until ``predicate()`` is true; return its value.

        ::

            async with cond:
                item = await cond.wait_for(lambda: queue and queue.pop())
        """
        result = predicate()
        while not result:
            await self.wait()
            result = predicate()
        return result

    @awaitable
    def _park(self, task: Task) -> Generator[Any, Any, None]:
        self._waiters[task] = None
        task._wait = self
        yield PARK

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiting tasks (needs the lock held)."""
        task = _state.current_task()
        if self._lock._owner is not task:
            raise RuntimeError("Condition.notify() needs the condition's lock held")
        if n > 0 and self._waiters:
            _waker_kernel(_first(self._waiters))  # a waiter in another thread's run: refused
        while n > 0 and self._waiters:
            nxt = _first(self._waiters)
            del self._waiters[nxt]
            nxt._kernel.reschedule(nxt)
            n -= 1

    def notify_all(self) -> None:
        """Wake every waiting task (needs the lock held)."""
        self.notify(len(self._waiters))

    def _abort_wait(self, task: Task) -> bool:
        return self._waiters.pop(task, 0) is None

    def _describe_wait(self, task: Task) -> str:
        return "Condition.wait"
