"""Tasks: a coroutine plus the bookkeeping the kernel needs to drive it.

A task is created by :meth:`TaskGroup.spawn` (or by :func:`yieldio.run` for the
main task); it never outlives its group. Its coroutine may be anything with
``send``/``throw``: a generator, an ``async def`` coroutine, or a hand-written
class. The kernel stores the bound ``send``/``throw`` of the coroutine on the
task so that a step costs no attribute lookups on the coroutine.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Generator
from typing import TYPE_CHECKING, Any

from . import _state
from ._exceptions import Cancelled, TaskCancelled
from ._traps import PARK, SCHEDULE

if TYPE_CHECKING:
    from ._cancel import CancelScope
    from ._taskgroup import TaskGroup, TaskStatus

__all__ = ["Task"]


# Task states, readable strings for the debugger and repr().
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"


def describe_coroutine(coro: Any) -> str:
    """A short name for a coroutine object: its qualname, or its class name."""
    name = getattr(coro, "__qualname__", None)
    if name is None:
        name = type(coro).__qualname__
    return str(name)


class Task:
    """A coroutine running concurrently under the kernel.

    You get one from :meth:`TaskGroup.spawn`::

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(fetch, url, name="fetch")
        print(t.result())

    ``await task.join()`` waits for it and returns its result (or raises its
    exception, or :class:`TaskCancelled`); ``task.cancel()`` cancels it.
    """

    # Hot fields live in slots. Rare ones (set by few tasks: a sleeping one,
    # a joined one, a cancelled one...) fall back to the class defaults below
    # and go to a lazily created instance dict when set: spawning then costs
    # a dozen stores instead of two dozen, and an idle task stays small.
    __slots__ = (
        "id",
        "coro",
        "_driver",
        "_context",
        "_val",
        "_exc",
        "_wait",
        "_scope",
        "_cancel_pending",
        "_group",
        "parent",
        "_state",
        "_kernel",
        "_timer",  # a slot, not a class default: every sleep sets it
        # Read when every task exits: slots, because CPython 3.11 cannot
        # specialise reading a class default through an instance.
        "_own_scope",
        "_joiners",
        "_start_status",
        "__dict__",
    )

    _name: str | None = None
    _ki_pending = False
    _tramp: Any = None
    _result: Any = None
    _exception: BaseException | None = None
    _child_groups: list[TaskGroup] | None = None

    def __init__(self, coro: Any, kernel: Any, scope: CancelScope, context: Any,
                 parent: Task | None, group: TaskGroup | None, name: str | None) -> None:
        self.id = next(kernel.task_ids)
        if name is not None:
            self._name = name
        self.coro = coro
        # What the kernel sends to: the coroutine, or its Trampoline once the
        # task made a trampolined call. (Bound methods are not cached: each
        # would be one more GC-tracked object per task.)
        self._driver = coro
        self._context = context
        self._val = None
        self._exc: BaseException | None = None
        self._wait: Any = None
        self._scope = scope
        self._cancel_pending = scope._eff
        self._group = group
        self.parent = parent
        self._state = RUNNING
        self._kernel = kernel
        self._timer: Any = None
        self._own_scope: CancelScope | None = None
        self._joiners: dict[Task, None] | None = None
        self._start_status: TaskStatus | None = None

    # -- identity -----------------------------------------------------------
    @property
    def name(self) -> str:
        """The name given at spawn, or the coroutine's qualified name."""
        if self._name is None:
            self._name = describe_coroutine(self.coro)
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = str(value)

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.name!r} {self.state}>"

    @property
    def state(self) -> str:
        """``"running"`` (ready, running or waiting), ``"done"``, ``"failed"`` or ``"cancelled"``."""
        if self._state is RUNNING:
            if self._wait is not None:
                return "waiting"
            if self._kernel is not None and self._kernel.current is self:
                return "running"
            return "ready"
        return self._state

    @property
    def children(self) -> list[Task]:
        """Live tasks spawned into task groups that this task has open."""
        out: list[Task] = []
        for g in self._child_groups or ():
            out.extend(g._tasks)
        return out

    def stack(self) -> list[Any]:
        """The task's whole await / yield-from chain, outermost frame first.

        ::

            for frame in task.stack():
                print(frame.filename, frame.lineno, frame.function)
        """
        from .debug import task_stack

        return task_stack(self)

    @property
    def waiting_on(self) -> Any:
        """The object this task is parked on (an Event, a Queue, ...), or None."""
        return self._wait

    # -- outcome ------------------------------------------------------------
    def done(self) -> bool:
        """True once the task has finished, whatever the outcome."""
        return self._state is not RUNNING

    def cancelled(self) -> bool:
        """True if the task ended by cancellation."""
        return self._state is CANCELLED

    def result(self) -> Any:
        """The return value; raises the task's exception, or :class:`TaskCancelled`.

        Raises ``RuntimeError`` if the task has not finished.
        """
        if self._state is RUNNING:
            raise RuntimeError(f"{self!r} has not finished; use 'await task.join()'")
        if self._state is CANCELLED:
            raise TaskCancelled(f"{self!r} was cancelled")
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self) -> BaseException | None:
        """The exception the task failed with, or None (raises if not finished)."""
        if self._state is RUNNING:
            raise RuntimeError(f"{self!r} has not finished; use 'await task.join()'")
        if self._state is CANCELLED:
            raise TaskCancelled(f"{self!r} was cancelled")
        return self._exception

    def join(self) -> Awaitable[Any]:
        """Wait for the task to finish; return its result or raise its error.

        A cancelled task makes ``join`` raise :class:`TaskCancelled`::

            result = await task.join()
        """
        return _join(self)

    # -- cancellation -------------------------------------------------------
    def cancel(self) -> None:
        """Cancel the task, as if its whole body ran in a cancelled scope.

        It takes effect at the task's next checkpoint; shielded scopes inside
        the task still protect their contents. Cancelling a finished task does
        nothing.
        """
        if self._state is not RUNNING:
            return
        scope = self._own_scope
        if scope is None:
            from ._cancel import insert_task_scope

            scope = insert_task_scope(self)
        scope.cancel()

    def _raise_cancel(self) -> None:
        """Raise what a checkpoint must raise: KeyboardInterrupt or Cancelled."""
        if self._ki_pending:
            self._ki_pending = False
            self._cancel_pending = self._scope._eff
            raise KeyboardInterrupt
        if self._scope._eff:
            raise Cancelled(f"task {self.name!r} was cancelled")
        self._cancel_pending = False

    # -- waiting protocol (for join) -----------------------------------------
    def _abort_wait(self, task: Task) -> bool:
        if self._joiners is not None and task in self._joiners:
            del self._joiners[task]
            return True
        return False

    def _describe_wait(self, task: Task) -> str:
        return f"join task {self.id} ({self.name})"


def throw_into(task: Task, exc: BaseException) -> Any:
    """Throw ``exc`` into the task's innermost coroutine (run inside its context).

    A hand-written coroutine without ``throw()`` cannot receive it: the
    exception then ends the task, as if raised by the coroutine.
    """
    throw = getattr(task._driver, "throw", None)
    if throw is None:
        raise exc
    return throw(exc)


@types.coroutine
def _join(target: Task) -> Generator[Any, Any, Any]:
    try:
        k = _state.local.kernel
    except AttributeError:
        _state.outside_run()
    task = k.current
    if task is target:
        raise RuntimeError(f"{task!r} cannot join itself: it would wait forever")
    if task._cancel_pending:
        task._raise_cancel()
    if target._state is RUNNING:
        if target._joiners is None:
            target._joiners = {}
        target._joiners[task] = None
        task._wait = target
        yield PARK
    else:
        yield SCHEDULE
    return target.result()

