"""Tasks: a coroutine plus the bookkeeping the kernel needs to drive it.

A task is created by :meth:`TaskGroup.spawn` (or by :func:`yieldio.run` for the
main task); it never outlives its group. Its coroutine may be anything with
``send``/``throw``: a generator, an ``async def`` coroutine, or a hand-written
class. A task is small on purpose (a dozen slots, no instance dict): servers
keep thousands alive, and the garbage collector walks every one of them.
"""

from __future__ import annotations

import types
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _state
from ._exceptions import TaskCancelled
from ._traps import PARK, SCHEDULE
from ._typing import Waitable, awaitable

if TYPE_CHECKING:
    from ._cancel import CancelScope
    from ._taskgroup import TaskGroup, TaskStatus

__all__ = ["Task"]

_T_co = TypeVar("_T_co", covariant=True)


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


class Task(Generic[_T_co]):
    """A coroutine running concurrently under the kernel.

    You get one from :meth:`TaskGroup.spawn`::

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(fetch, url, name="fetch")
        print(t.result())

    ``await task.join()`` waits for it and returns its result (or raises its
    exception, or :class:`TaskCancelled`); ``task.cancel()`` cancels it.

    For type checkers a task is generic in its result: spawning an
    ``async def fetch(url: str) -> bytes`` gives a ``Task[bytes]``, whose
    ``join()`` and ``result()`` are ``bytes`` (``Generic`` costs nothing per
    task: it adds no ``__new__``, ``__init__`` or slot).
    """

    # Every field is a slot and there is no instance dict: CPython 3.11 gives
    # a class with a dict an inline-values array per instance (one more
    # allocation per spawn, ~100 bytes, and one more walk for the garbage
    # collector). Fields few tasks ever need live in a TaskExtras made on
    # demand; after a task ends, _val holds its result and _exc its error.
    __slots__ = (
        "id",
        "_coro",  # the coroutine; before the first step maybe its function
        "_driver",  # what the kernel sends to: _coro, its Trampoline, or NotStarted
        "_context",
        "_val",
        "_exc",
        "_wait",
        "_scope",
        "_cancel_pending",
        "_group",
        "_state",
        "_kernel",
        "_timer",
        "_extra",
    )

    def __init__(self, coro: Any, kernel: Any, scope: CancelScope, context: Any,
                 group: TaskGroup | None, name: str | None) -> None:
        self.id = next(kernel.task_ids)
        self._coro = coro
        # (Bound send/throw methods are not cached: each would be one more
        # GC-tracked object per task.)
        self._driver = coro
        self._context = context
        self._val: Any = None
        self._exc: BaseException | None = None
        self._wait: Any = None
        self._scope = scope
        self._cancel_pending = scope._eff
        self._group = group
        self._state = RUNNING
        self._kernel = kernel
        self._timer: Any = None
        self._extra: TaskExtras | None = None if name is None else TaskExtras(name)

    def _extras(self) -> TaskExtras:
        """The task's rare fields, created the first time one is set."""
        extra = self._extra
        if extra is None:
            extra = self._extra = TaskExtras()
        return extra

    @property
    def _tramp(self) -> Any:
        """The task's Trampoline, or None if it never made a trampolined call."""
        driver = self._driver
        return None if driver is self._coro or type(driver) is NotStarted else driver

    @property
    def coro(self) -> Any:
        """The task's coroutine object (made now if the task has not run yet)."""
        if type(self._driver) is NotStarted:
            args = self._val
            self._val = None
            coro = self._coro = self._driver = self._coro(*args)
            if self._state is not RUNNING:
                coro.close()  # the task ended before its first step: this never runs
        return self._coro

    # -- identity -----------------------------------------------------------
    @property
    def name(self) -> str:
        """The name given at spawn, or the coroutine's qualified name."""
        extra = self._extra
        if extra is not None and extra.name is not None:
            return extra.name
        # Not stored: a name read for a repr or a Cancelled message should
        # not give the task its extras.
        return describe_coroutine(self._coro)  # a function's qualname is its coroutine's

    @name.setter
    def name(self, value: str) -> None:
        self._extras().name = str(value)

    @property
    def parent(self) -> Task | None:
        """The task that spawned this one (None for the main and system tasks).

        Usually the owner of the task's group, which is where it is found
        (one field less on every task); another spawner is kept in extras.
        """
        extra = self._extra
        if extra is not None and extra.parent is not _GROUP_OWNER:
            return extra.parent  # type: ignore[return-value]
        group = self._group
        return group._owner if group is not None else None

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
    def children(self) -> list[Task[Any]]:
        """Live tasks spawned into task groups that this task has open."""
        out: list[Task[Any]] = []
        extra = self._extra
        for g in (extra.child_groups if extra is not None else None) or ():
            out.extend(g.tasks)
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

    def result(self) -> _T_co:
        """The return value; raises the task's exception, or :class:`TaskCancelled`.

        Raises ``RuntimeError`` if the task has not finished.
        """
        if self._state is RUNNING:
            raise RuntimeError(f"{self!r} has not finished; use 'await task.join()'")
        if self._state is CANCELLED:
            raise TaskCancelled(f"{self!r} was cancelled")
        if self._state is FAILED:
            # A bare 'raise self._exc' would prepend this call's frames to
            # the exception's __traceback__ every time: a loop polling
            # result() or join() grows it without bound, and the same object
            # sits in the ExceptionGroup the task group raised. As asyncio's
            # Future.result() does, raise it each time with the traceback of
            # its first report (kept in extras: only failed tasks pay).
            exc = self._exc
            assert exc is not None
            extra = self._extras()
            tb = extra.failure_tb
            if tb is _NO_TB:
                tb = extra.failure_tb = exc.__traceback__
            raise exc.with_traceback(tb)
        return self._val

    def exception(self) -> BaseException | None:
        """The exception the task failed with, or None (raises if not finished)."""
        if self._state is RUNNING:
            raise RuntimeError(f"{self!r} has not finished; use 'await task.join()'")
        if self._state is CANCELLED:
            raise TaskCancelled(f"{self!r} was cancelled")
        return self._exc

    def join(self) -> Waitable[_T_co]:
        """Wait for the task to finish; return its result or raise its error.

        A cancelled task makes ``join`` raise :class:`TaskCancelled`::

            result = await task.join()
        """
        return _join(self)

    def __await__(self) -> Generator[Any, Any, _T_co]:
        """``await task`` is ``await task.join()``: asyncio's spelling works too.

        ::

            t = tg.spawn(fetch, url)
            page = await t          # its result, or its error raised here
        """
        # A plain generator, delegating: CPython refuses a (types.coroutine)
        # coroutine object as what __await__ returns.
        return (yield from _join(self))

    # -- cancellation -------------------------------------------------------
    def cancel(self) -> None:
        """Cancel the task, as if its whole body ran in a cancelled scope.

        It takes effect at the task's next checkpoint; shielded scopes inside
        the task still protect their contents. Cancelling a finished task does
        nothing.
        """
        if self._state is not RUNNING:
            return
        if _state.foreign_thread(self._kernel):
            raise RuntimeError(f"cannot cancel {self!r} from another thread than its "
                               "yieldio run's; use yieldio.from_thread(task.cancel)")
        extra = self._extra
        scope = extra.own_scope if extra is not None else None
        if scope is None:
            from ._cancel import insert_task_scope

            scope = insert_task_scope(self)
        scope.cancel()

    def _raise_cancel(self) -> None:
        """Raise what a checkpoint must raise: KeyboardInterrupt or Cancelled."""
        extra = self._extra
        if extra is not None and extra.ki_pending:
            extra.ki_pending = False
            self._cancel_pending = self._scope._eff
            raise KeyboardInterrupt
        if self._scope._eff:
            from ._cancel import cancelled_for  # (_cancel imports _task for its types only)

            raise cancelled_for(self)
        self._cancel_pending = False

    # -- waiting protocol (for join) -----------------------------------------
    def _abort_wait(self, task: Task) -> bool:
        joiners = self._extra.joiners if self._extra is not None else None
        if joiners is not None and task in joiners:
            del joiners[task]
            return True
        return False

    def _describe_wait(self, task: Task) -> str:
        return f"join task {self.id} ({self.name})"


_GROUP_OWNER = object()  # TaskExtras.parent's default: the group's owner is the parent
_NO_TB = object()  # TaskExtras.failure_tb's default: not taken yet (None is a valid value)


class TaskExtras:
    """A task's fields that few tasks need, kept off the task itself."""

    __slots__ = ("name", "parent", "own_scope", "joiners", "start_status", "child_groups",
                 "ki_pending", "failure_tb", "held")

    def __init__(self, name: str | None = None) -> None:
        self.name = name  # given at spawn or set later; None: the coroutine's name
        self.parent: Task | None | object = _GROUP_OWNER  # when not the group's owner
        self.own_scope: CancelScope | None = None  # a root scope, made by cancel()
        self.joiners: dict[Task, None] | None = None  # tasks waiting in join()
        self.start_status: TaskStatus | None = None  # TaskGroup.start()'s handshake
        self.child_groups: list[TaskGroup] | None = None  # TaskGroups it has open
        self.ki_pending = False  # Ctrl-C waits for the main task's next checkpoint
        self.failure_tb: Any = _NO_TB  # a failed task's traceback, kept by result()
        # Locks it holds that others wait for; each is told when the task ends
        # (Lock._owner_ended). Filled only when a waiter parks, so an
        # uncontended acquire/release never touches it.
        self.held: dict[Any, None] | None = None


class NotStarted:
    """The driver of a task whose coroutine is not made yet: one per kernel.

    ``TaskGroup.spawn(fn, *args)`` usually does not call ``fn`` at once. When
    ``fn`` is an ``async def`` or generator function whose signature takes
    exactly ``args`` (so the call can only make a coroutine: no code runs,
    binding cannot fail), the task keeps ``fn`` and ``args`` and the call
    happens in its first step. Why: a burst of spawns then holds one object
    per task, not two, until each task runs -- the garbage collector walks
    half as much and a task that ends in its first step never has a
    coroutine that outlives it (a 100,000-task spawn: about half the
    collector's time). ``Task.coro`` makes the coroutine on demand, so the
    deferral cannot be observed.
    """

    __slots__ = ("kernel",)

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel

    def send(self, args: tuple[Any, ...]) -> Any:
        # The kernel sends task._val, which holds the arguments until now.
        task = self.kernel.current
        coro = task._coro = task._driver = task._coro(*args)
        task._val = None
        return coro.send(None)


# Code object -> number of positional arguments a call can be deferred with
# (-1: never). Keyed by code, not function: closures made in a loop share one.
# Bounded, so a program that compiles functions at run time cannot grow it
# without end (emptied when full: refilling costs one lookup per function).
_DEFERRABLE: dict[types.CodeType, int] = {}
_DEFERRABLE_MAX = 4096
_CO_GENERATOR = 0x20
_CO_COROUTINE = 0x80
_CO_VARARGS_OR_KW = 0x04 | 0x08


def deferrable_arity(code: types.CodeType) -> int:
    """How many positional arguments let a call of ``code``'s function be deferred.

    Only an ``async def`` or generator function qualifies (calling it runs
    none of its code), with no ``*args``, ``**kwargs`` or keyword-only
    parameters; the call must pass every parameter, so defaults are never
    used and binding cannot fail. Returns -1 when calls are never deferred.
    """
    arity = _DEFERRABLE.get(code)
    if arity is None:
        flags = code.co_flags
        if (flags & (_CO_GENERATOR | _CO_COROUTINE) and not flags & _CO_VARARGS_OR_KW
                and not code.co_kwonlyargcount):
            arity = code.co_argcount
        else:
            arity = -1
        if len(_DEFERRABLE) >= _DEFERRABLE_MAX:
            _DEFERRABLE.clear()
        _DEFERRABLE[code] = arity
    return arity


def throw_into(task: Task, exc: BaseException) -> Any:
    """Throw ``exc`` into the task's innermost coroutine (run inside its context).

    A hand-written coroutine without ``throw()`` cannot receive it: the
    exception then ends the task, as if raised by the coroutine.
    """
    driver = task._driver
    if type(driver) is NotStarted:
        driver = task.coro  # cancelled before its first step: make it to throw into
    throw = getattr(driver, "throw", None)
    try:
        if throw is None:
            raise exc
        return throw(exc)
    finally:
        # Python 3.12+ puts this frame in the traceback of what throw() hands
        # in, so the frame holding ``exc`` would make a cycle (exc -> its
        # traceback -> this frame -> exc) keeping every frame of the task's
        # stack, and their sockets, alive until the cyclic GC -- which then
        # finalizes them in no particular order (a stdlib socket could close
        # its fd before yieldio's wrapper tells the loop).
        del exc


@awaitable
def _join(target: Task[_T_co]) -> Generator[Any, Any, _T_co]:
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
        extra = target._extras()
        if extra.joiners is None:
            extra.joiners = {}
        extra.joiners[task] = None
        task._wait = target
        yield PARK
    else:
        yield SCHEDULE
    return target.result()

