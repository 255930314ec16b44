"""CapacityLimiter: at most ``total_tokens`` borrowers at once (trio's API).

Split out of ``sync.py`` (which re-exports it). A Semaphore that knows who
holds its permits: each borrower -- the current task by default, or any
hashable object, such as a ``to_thread`` call -- holds at most one token,
so a double acquire or a stray release is an error where it happens instead
of a silent over- or under-count. Waiters are served FIFO and tokens are
*handed over* on release, as the locks in ``sync.py`` do (architecture §7).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Generator
from typing import Any

from . import _state
from ._exceptions import WouldBlock
from ._task import Task
from ._traps import PARK, SCHEDULE
from ._typing import Waitable, awaitable

__all__ = ["CapacityLimiter"]

_CURRENT_TASK: Any = object()  # "the task that awaits": acquire()'s borrower
_NOT_WAITING: Any = object()


def _waker_kernel(task: Task) -> Any:
    # sync.py imports this module (to re-export CapacityLimiter), so its
    # helper is imported here, on the branches that wake a waiter only.
    from .sync import _waker_kernel as check

    return check(task)


class CapacityLimiter:
    """Let at most ``total_tokens`` borrowers hold a token at once.

    ::

        limiter = yieldio.CapacityLimiter(10)   # at most 10 downloads at once
        async with limiter:
            await download(url)

    Each borrower holds at most one token: the current task by default, or
    any hashable object given to :meth:`acquire_on_behalf_of` (``to_thread``
    borrows one for each call given ``limiter=``). Acquiring twice for one
    borrower, or releasing for one that holds no token, raises
    ``RuntimeError``. ``total_tokens`` (an int >= 1, or ``math.inf``) may be
    changed at any time.

    A task that ends holding a token keeps it borrowed, as in trio: unlike a
    :class:`Lock`, a limiter does not break. Borrowers need not be tasks,
    any task may give a token back with :meth:`release_on_behalf_of`, and
    watching every holder would cost the uncontended acquire something.
    ``async with limiter:`` always gives it back.
    """

    __slots__ = ("_total", "_borrowers", "_waiters", "_pending", "__weakref__")

    def __init__(self, total_tokens: int | float) -> None:
        self._total: int | float = _check_total(total_tokens)
        # Dicts, not sets: insertion-ordered, so statistics() and the wake-up
        # order are deterministic.
        self._borrowers: dict[object, None] = {}
        self._waiters: dict[Task, object] = {}  # waiting task -> its borrower, FIFO
        self._pending: dict[object, None] = {}  # the borrowers those tasks wait for

    def __repr__(self) -> str:
        return (f"<CapacityLimiter {len(self._borrowers)}/{self._total} borrowed, "
                f"{len(self._waiters)} waiting>")

    # -- capacity ------------------------------------------------------------
    @property
    def total_tokens(self) -> int | float:
        """The capacity; assign to change it.

        ::

            limiter.total_tokens = 20      # waiters get the new tokens at once

        Raising it hands the new tokens to the longest waiters at once.
        Lowering it below :attr:`borrowed_tokens` takes no token back: the
        holders finish, and new borrowers wait until fewer than the new total
        are borrowed.
        """
        return self._total

    @total_tokens.setter
    def total_tokens(self, new_total: int | float) -> None:
        new_total = _check_total(new_total)
        if self._waiters and new_total > len(self._borrowers):
            _waker_kernel(_first(self._waiters))  # refuse a plain thread before any change
        self._total = new_total
        self._wake()

    @property
    def borrowed_tokens(self) -> int:
        """Tokens held now: ``limiter.borrowed_tokens``."""
        return len(self._borrowers)

    @property
    def available_tokens(self) -> int | float:
        """Tokens free now (0, not negative, after ``total_tokens`` was lowered)."""
        return max(0, self._total - len(self._borrowers))

    def statistics(self) -> dict[str, Any]:
        """What the limiter is doing, for debugging.

        ::

            limiter.statistics()
            # {'borrowed_tokens': 1, 'total_tokens': 2,
            #  'borrowers': [<Task 3 'fetch' running>], 'tasks_waiting': 4}
        """
        return {
            "borrowed_tokens": len(self._borrowers),
            "total_tokens": self._total,
            "borrowers": list(self._borrowers),
            "tasks_waiting": len(self._waiters),
        }

    # -- acquiring -----------------------------------------------------------
    def acquire(self) -> Waitable[None]:
        """Borrow a token for the current task, waiting in FIFO order if none is free.

        ::

            await limiter.acquire()
            try:
                await work()
            finally:
                limiter.release()

        A checkpoint: a cancelled task raises :class:`Cancelled` even when a
        token is free (and then takes none).
        """
        return self._acquire(_CURRENT_TASK)

    def acquire_on_behalf_of(self, borrower: object) -> Waitable[None]:
        """Borrow a token for ``borrower`` (any hashable object), waiting if none is free.

        ::

            job = object()
            await limiter.acquire_on_behalf_of(job)
            ...                                     # later, from any task:
            limiter.release_on_behalf_of(job)

        ``RuntimeError`` if ``borrower`` already holds a token, or another
        task is already waiting for one on its behalf.
        """
        return self._acquire(borrower)

    @awaitable
    def _acquire(self, borrower: object) -> Generator[Any, Any, None]:
        try:
            k = _state.local.kernel
        except AttributeError:
            _state.outside_run()
        task = k.current
        if borrower is _CURRENT_TASK:
            borrower = task
        if task._cancel_pending:
            task._raise_cancel()
        self._refuse_a_second_token(borrower)
        if len(self._borrowers) < self._total and not self._waiters:
            self._borrowers[borrower] = None
            # Semaphore.acquire's fast path: a schedule point only once the
            # task's budget of uncontended successes is spent.
            k.fast_budget -= 1
            if k.fast_budget <= 0:
                k.fast_budget = k.fast_budget_full
                yield SCHEDULE
            return
        self._waiters[task] = borrower
        self._pending[borrower] = None
        task._wait = self
        # Woken means the token is already ours (_wake made the borrower
        # hold it): a cancellation arriving after that finds _wait cleared,
        # cannot abort, and is raised at the next checkpoint, while
        # ``async with`` still releases. Never a token kept by nobody.
        yield PARK

    def acquire_nowait(self) -> None:
        """Borrow a token for the current task now, or raise :class:`WouldBlock`.

        ::

            try:
                limiter.acquire_nowait()
            except yieldio.WouldBlock:
                ...   # every token is out (or others are waiting for one)
        """
        self._acquire_nowait(_state.current_task())

    def acquire_on_behalf_of_nowait(self, borrower: object) -> None:
        """Borrow a token for ``borrower`` now, or raise :class:`WouldBlock`.

        ::

            limiter.acquire_on_behalf_of_nowait("cache-refresh")
        """
        _state.current_kernel()  # (outside a run: the usual clear RuntimeError)
        self._acquire_nowait(borrower)

    def _acquire_nowait(self, borrower: object) -> None:
        self._refuse_a_second_token(borrower)
        # Not while others wait, even with a token free: they came first.
        if len(self._borrowers) >= self._total or self._waiters:
            raise WouldBlock("no CapacityLimiter token is free")
        self._borrowers[borrower] = None

    def _refuse_a_second_token(self, borrower: object) -> None:
        if borrower in self._borrowers:
            raise RuntimeError(
                f"{borrower!r} already holds a token of this CapacityLimiter "
                "(a borrower may hold only one)")
        if borrower in self._pending:
            raise RuntimeError(
                f"a task is already waiting for a token of this CapacityLimiter "
                f"on behalf of {borrower!r}")

    # -- releasing -----------------------------------------------------------
    def release(self) -> None:
        """Give back the current task's token; the longest waiter gets it.

        ::

            limiter.release()
        """
        self.release_on_behalf_of(_state.current_task())

    def release_on_behalf_of(self, borrower: object) -> None:
        """Give back ``borrower``'s token; ``RuntimeError`` if it holds none.

        ::

            limiter.release_on_behalf_of(job)
        """
        borrowers = self._borrowers
        if borrower not in borrowers:
            raise RuntimeError(
                f"{borrower!r} holds no token of this CapacityLimiter, so cannot release one")
        if self._waiters and len(borrowers) <= self._total:
            # This release will wake someone: refuse a plain thread first,
            # leaving the token and the waiters as they were.
            _waker_kernel(_first(self._waiters))
        del borrowers[borrower]
        self._wake()

    def _wake(self) -> None:
        """Hand free tokens to the longest waiters.

        The borrower holds its token before its task even runs, so nobody
        can barge in between, and a cancellation that comes later cannot
        make the token vanish (see ``_acquire``).
        """
        waiters = self._waiters
        borrowers = self._borrowers
        while waiters and len(borrowers) < self._total:
            task = _first(waiters)
            borrower = waiters.pop(task)
            del self._pending[borrower]
            borrowers[borrower] = None
            task._kernel.reschedule(task)

    # -- the wait-object protocol (architecture §2) ---------------------------
    def _abort_wait(self, task: Task) -> bool:
        # Still in _waiters: no token was handed to it, so withdrawing
        # leaves the count exactly as it was.
        borrower = self._waiters.pop(task, _NOT_WAITING)
        if borrower is _NOT_WAITING:
            return False
        del self._pending[borrower]
        return True

    def _describe_wait(self, task: Task) -> str:
        # Who holds the tokens, as Lock's wait names its owner: the first
        # question when a limiter is the bottleneck (or half a deadlock).
        held = [f"task {b.id}" if isinstance(b, Task) else repr(b)
                for b in itertools.islice(self._borrowers, 3)]
        if len(self._borrowers) > 3:
            held.append("...")
        by = f", by {', '.join(held)}" if held else ""
        return f"CapacityLimiter.acquire ({len(self._borrowers)}/{self._total} borrowed{by})"

    async def __aenter__(self) -> None:
        await self._acquire(_CURRENT_TASK)

    async def __aexit__(self, *exc: Any) -> None:
        self.release()


def _first(d: dict[Task, Any]) -> Task:
    return next(iter(d))


def _check_total(total: Any) -> int | float:
    # bool is an int, but CapacityLimiter(True) is surely a mistake; 2.0 is
    # refused too, as trio does: a capacity counts borrowers.
    if isinstance(total, bool) or not (isinstance(total, int) or total == math.inf):
        raise TypeError(f"total_tokens must be an int or math.inf, not {total!r}")
    if total < 1:
        raise ValueError(f"total_tokens must be >= 1, not {total!r}")
    return total
