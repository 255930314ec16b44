"""Task groups: structured concurrency.

A :class:`TaskGroup` owns the tasks spawned into it and does not let its
``async with`` block end until every one of them has ended. The first failure
cancels the rest; all failures come out together as an ``ExceptionGroup``.
Nothing is ever only logged: a task's exception goes to the group (and to
anyone who joins the task).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Generator
from types import FunctionType
from typing import Any, TypeVar, TypeVarTuple, Unpack, overload

from . import _state
from ._cancel import CancelScope
from ._exceptions import _HINTED, Cancelled, _add_hint, _note
from ._run import _as_coroutine, _call_async_function
from ._task import _DEFERRABLE, CANCELLED, FAILED, RUNNING, Task, deferrable_arity
from ._traps import PARK
from ._typing import SendThrow, Waitable, awaitable

__all__ = ["TaskGroup", "TaskStatus"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

# The bound method, not `_DEFERRABLE.get(...)` at the call: CPython 3.11
# compiles a method call on an imported name as an attribute load (it
# assumes a module), which makes a bound method object on every spawn.
_cached_arity = _DEFERRABLE.get


class TaskStatus:
    """Handed to a task started with :meth:`TaskGroup.start` as ``task_status``.

    ::

        async def server(port, *, task_status):
            listener = await bind(port)
            task_status.started(listener.port)   # start() returns this value
            await serve(listener)
    """

    __slots__ = ("_value", "_started", "_error", "_waiter", "_task", "_group")

    def __init__(self) -> None:
        self._value: Any = None
        self._started = False
        self._error: BaseException | None = None
        self._waiter: Task | None = None
        self._task: Task | None = None
        self._group: TaskGroup | None = None

    def started(self, value: Any = None) -> None:
        """Report that the task is ready; ``start()`` returns ``value``.

        From here on the task runs under the group's cancel scope instead of
        the caller's.
        """
        if self._started:
            raise RuntimeError("task_status.started() called twice")
        task = self._task
        if task is not None and task._state is not RUNNING:
            raise RuntimeError(f"task_status.started() for {task!r}, which has ended")
        if task is not None:
            group = self._group
            assert group is not None
            if group._closed:
                # As trio's nursery: the child is not the group's until now,
                # so the group may have closed meanwhile (its body ended and
                # its other children too). The child's error goes to start().
                raise RuntimeError(f"task_status.started(): {group!r} closed while {task!r} "
                                   "was starting, and takes no new tasks")
            extra = task._extras()
            extra.start_status = None
            assert extra.own_scope is not None
            group._live += 1
            _move_root(extra.own_scope, group._scope)
        self._started = True
        self._value = value
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and waiter._wait is self:
            self._waiter = None
            waiter._kernel.reschedule(waiter)

    def _abort_wait(self, task: Task) -> bool:
        # The caller of start() is cancelled (or hit by Ctrl-C). The child
        # runs under the caller's scopes until started(), so a cancellation
        # of the caller has reached it too; as trio's start() does, keep
        # waiting until the child either calls started() or ends, so that
        # no task is left running under scopes its caller is about to leave.
        # Ctrl-C is not a scope's: pass it on to the child as a cancellation.
        child = self._task
        if child is not None and child._state is RUNNING and not task._scope._eff:
            child.cancel()
        return False

    def _describe_wait(self, task: Task) -> str:
        name = self._task.name if self._task is not None else "?"
        return f"start of task {name}"


def _start_root(caller: Task) -> CancelScope:
    """A root scope for a task being started, hung below ``caller``'s innermost scope.

    Until ``started()`` the task runs under the caller's cancel scopes (as in
    trio): a timeout around ``await tg.start(...)`` covers the start-up, and
    a group that is already cancelled does not cancel a task still starting.
    The root is the task's own scope (``Task.cancel`` uses it), so moving the
    task later is moving this one scope.
    """
    parent = caller._scope
    root = CancelScope()
    root._kernel = caller._kernel
    root._entered = True
    root._is_task_root = True
    root._parent = parent
    children = parent._children
    if children is None:
        children = parent._children = {}
    children[root] = None
    root._eff = parent._eff
    return root


def _move_root(root: CancelScope, parent: CancelScope) -> None:
    """Hang a started task's root scope below ``parent`` (the group's scope).

    If that changes whether the task is cancelled -- the group is already
    cancelled, or the caller was and the group is not -- the task sees it at
    its next checkpoint.
    """
    old = root._parent
    if old is not None and old._children:
        old._children.pop(root, None)
    root._parent = parent
    children = parent._children
    if children is None:
        children = parent._children = {}
    children[root] = None
    root._recompute()


class _TaskStatusIgnored(TaskStatus):
    """The default ``task_status`` of a function that may also be spawned plainly."""

    __slots__ = ()

    def started(self, value: Any = None) -> None:
        """Nobody waits: do nothing (as many times as it is called)."""

    def __repr__(self) -> str:
        return "yieldio.TASK_STATUS_IGNORED"


TASK_STATUS_IGNORED: TaskStatus = _TaskStatusIgnored()
"""A ``task_status`` default, so that a function can be started or spawned.

::

    async def serve(port, *, task_status=yieldio.TASK_STATUS_IGNORED):
        listener = await bind(port)
        task_status.started(listener.port)   # a no-op when spawned plainly
        await accept_forever(listener)

    port = await tg.start(serve, 0)   # waits for started()
    tg.spawn(serve, 8080)             # does not wait
"""


def _start_coroutine(fn: Any, args: tuple[Any, ...], status: TaskStatus) -> Any:
    """``fn(*args, task_status=status)`` for TaskGroup.start(), checked with clear errors.

    (Not through a lambda and _as_coroutine: their messages would name the
    lambda, and a coroutine object would fail with "not callable".)
    """
    if hasattr(fn, "send") and not isinstance(fn, type):
        close = getattr(fn, "close", None)
        if close is not None:
            close()  # refused: no "coroutine was never awaited" warning
        raise TypeError(f"TaskGroup.start() needs the async function, not the coroutine object "
                        f"{fn!r}: it calls the function itself, to pass task_status=")
    if not callable(fn):
        raise TypeError(f"TaskGroup.start() expects an async function or a generator function, "
                        f"not {fn!r}")
    coro = fn(*args, task_status=status)
    if not hasattr(coro, "send"):
        raise TypeError(f"TaskGroup.start(): {getattr(fn, '__qualname__', fn)!r} returned "
                        f"{coro!r}, which is not a coroutine (is it a plain function? use "
                        "'async def' or a generator)")
    return coro


_local = _state.local
#: Python's words for a call that lacked a parameter called "name".
_MISSING_NAME = re.compile(r"missing \d+ required (?:positional|keyword-only) "
                           r"arguments?: .*'name'").search


def _check_thread(k: Any, refused: Any = None) -> None:
    """Refuse a spawn from another thread than the run's (see _state.foreign_thread).

    The owner's fast path checks the thread inline and calls this only to
    raise.
    """
    if _state.foreign_thread(k):
        if hasattr(refused, "send") and hasattr(refused, "close"):
            refused.close()  # a coroutine object that will never run: no "never awaited"
        raise RuntimeError("TaskGroup.spawn() from another thread than its yieldio run's: "
                           "use yieldio.from_thread(tg.spawn, fn, ...) from a to_thread worker")


def _spawn_order(task: Task) -> int:
    return task.id


class _GroupExitWait:
    """What a task waits on while its TaskGroup's block waits for children."""

    __slots__ = ("group",)

    def __init__(self, group: TaskGroup) -> None:
        self.group = group

    def _abort_wait(self, task: Task) -> bool:
        # The block cannot be left before the children end; instead they are
        # cancelled, and the wait ends when the last of them exits.
        self.group._scope.cancel()
        return False

    def _describe_wait(self, task: Task) -> str:
        n = self.group._live
        return f"TaskGroup exit ({n} {'child' if n == 1 else 'children'} left)"


class TaskGroup:
    """A nursery for tasks: ``async with TaskGroup() as tg: tg.spawn(...)``.

    ::

        async with yieldio.TaskGroup() as tg:
            for url in urls:
                tg.spawn(fetch, url)
        # here every fetch has finished, or all were cancelled and the
        # failures are raised as an ExceptionGroup

    ``tg.cancel()`` cancels the body and every child; the group then exits
    quietly.
    """

    __slots__ = ("_scope", "_live", "_errors", "_owner", "_kernel", "_entered", "_closed",
                 "_waiting", "_exit_wait", "_child_cancelled", "__weakref__")

    def __init__(self) -> None:
        self._scope = CancelScope()
        # A count, not a set: the children are already listed by the cancel
        # scopes they run in (see ``tasks``), and a second dict would cost
        # every spawn an insert and a delete, and the collector a walk.
        self._live = 0
        self._errors: list[BaseException] = []
        self._owner: Task | None = None
        self._kernel: Any = None
        self._entered = False
        self._closed = False
        self._waiting = False
        self._exit_wait = _GroupExitWait(self)
        # A child ended with a Cancelled that reached the group (trio would
        # have it in the nursery's exception): see __aexit__.
        self._child_cancelled = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._live} tasks"
        return f"<TaskGroup {state}>"

    @property
    def cancel_scope(self) -> CancelScope:
        """The scope that encloses the group's body and its children."""
        return self._scope

    @property
    def tasks(self) -> list[Task[Any]]:
        """The live child tasks, in spawn order."""
        if not self._live:
            return []
        found: list[Task[Any]] = []
        pending = [self._scope]
        while pending:  # every child runs in our scope or one nested in it
            scope = pending.pop()
            found.extend(t for t in scope._tasks if t._group is self
                         and (t._extra is None or t._extra.start_status is None))
            pending.extend(scope._children or ())
        found.sort(key=_spawn_order)
        return found

    def cancel(self) -> None:
        """Cancel the body and all children; the group then exits without error."""
        self._scope.cancel()

    # -- spawning ---------------------------------------------------------------
    # (For type checkers: the task's result type comes from ``fn``, and
    # ``args`` are checked against its parameters.)
    @overload
    def spawn(self, fn: Callable[[Unpack[_Ts]], Awaitable[_T]], *args: *_Ts,
              name: str | None = None) -> Task[_T]: ...
    @overload
    def spawn(self, fn: Callable[[Unpack[_Ts]], Generator[Any, Any, _T]], *args: *_Ts,
              name: str | None = None) -> Task[_T]: ...
    @overload
    def spawn(self, fn: Awaitable[_T] | Generator[Any, Any, _T], *,
              name: str | None = None) -> Task[_T]: ...
    @overload
    def spawn(self, fn: SendThrow, *, name: str | None = None) -> Task[Any]: ...
    # (mypy cannot match a TypeVarTuple overload to an implementation's *args.)
    def spawn(self, fn: Any, *args: Any, name: str | None = None) -> Task[Any]:  # type: ignore[misc]
        """Start ``fn(*args)`` as a child task and return its :class:`Task`.

        ``fn`` is an async function, a generator function, or an already
        created coroutine object (then pass no args). A wrong argument or a
        function that makes no coroutine raises ``TypeError`` here::

            t = tg.spawn(fetch, url, name="fetch " + url)

        Keyword arguments for ``fn`` are not passed through (``name=`` is
        spawn's own, as in trio): give a coroutine object, or a partial::

            tg.spawn(fetch(url, timeout=5))
            tg.spawn(functools.partial(yieldio.to_thread, work, limiter=limiter))

        (When ``fn(*args)`` can only make a coroutine, the call is made in
        the task's first step; ``t.coro`` still gives the coroutine.)
        """
        if self._closed or not self._entered:
            raise RuntimeError("this TaskGroup is not open: spawn inside its 'async with' block")
        k = self._kernel
        cur = k.current
        if type(fn) is FunctionType:
            arity = _cached_arity(fn.__code__)  # deferrable_arity's cache, read inline
            if arity is None:
                arity = deferrable_arity(fn.__code__)
            if arity == len(args):
                # fn(*args) can only make a coroutine: the task makes it in
                # its first step (see NotStarted for why).
                if (cur is self._owner and cur is not None and cur._context is None
                        and not len(k.shared_context)
                        and not k.closed and not k.spawn_hooked):
                    # Kernel.spawn's common case, inlined (a Python call is ~4%
                    # of a spawn): the owner spawns from the empty shared
                    # context, so the child shares it too, and no instrument
                    # wants to hear of it.
                    try:
                        # The running task being the owner does not prove this
                        # is the kernel's thread: 'current' stays set for the
                        # rest of a batch, and a to_thread worker the owner
                        # started may call in meanwhile (~25 ns a spawn).
                        if _local.kernel is not k:
                            raise AttributeError
                    except AttributeError:
                        _check_thread(k)
                    scope = self._scope
                    task: Task[Any] = Task(fn, k, scope, None, self, name)
                    task._driver = k.not_started
                    task._val = args
                    scope._tasks[task] = None
                    k.ready.append(task)
                else:
                    _check_thread(k)
                    task = k.spawn(fn, self._scope, cur, self, name, args=args)
                self._live += 1
                return task
            _check_thread(k)
            try:
                coro = _call_async_function(fn, args)
            except TypeError as exc:
                if name is not None and _MISSING_NAME(str(exc)):
                    # spawn(worker, name="bob") for worker(name): the name
                    # went to the task, and worker() "missed" an argument.
                    _note(exc, "(name= is spawn's own argument, the task's name, as in trio; "
                               "to pass name= to the function, use functools.partial(fn, "
                               "name=...) or spawn a coroutine: tg.spawn(fn(..., name=...)))")
                raise
        else:
            _check_thread(k, fn)
            coro = _as_coroutine(fn, args, "TaskGroup.spawn()")
        task = k.spawn(coro, self._scope, cur, self, name)
        self._live += 1
        return task

    def start(self, fn: Callable[[Unpack[_Ts]], Awaitable[Any] | Generator[Any, Any, Any]],
              *args: *_Ts, name: str | None = None) -> Waitable[Any]:
        """Spawn ``fn(*args, task_status=...)`` and wait until it calls ``started()``.

        Returns the value passed to ``task_status.started(value)``. If the task
        fails first, its exception is raised here (and not by the group); if it
        returns without calling ``started()``, this raises ``RuntimeError``.

        Until ``started()`` the task runs under the *caller's* cancel scopes,
        as in trio, and then moves into the group: a timeout around
        ``await tg.start(...)`` bounds the start-up and cancels a task that is
        too slow. A cancelled caller waits until its cancelled task has
        ended::

            async def serve(port, *, task_status=yieldio.TASK_STATUS_IGNORED):
                listener = await open_listener(port)
                task_status.started(listener.port)
                ...

            port = await tg.start(serve, 0)
        """
        return self._start(fn, args, name)

    @awaitable
    def _start(self, fn: Any, args: tuple[Any, ...], name: str | None) -> Generator[Any, Any, Any]:
        if not self._entered or self._closed:
            raise RuntimeError("this TaskGroup is not open: start inside its 'async with' block")
        k = self._kernel
        me = k.current
        if me._cancel_pending:
            me._raise_cancel()
        status = TaskStatus()
        coro = _start_coroutine(fn, args, status)
        root = _start_root(me)
        task = k.spawn(coro, root, me, self, name or getattr(fn, "__qualname__", None))
        root._task = task
        # Not counted in _live until started(): until then the child is the
        # caller's, and the group may close without waiting for it (trio).
        status._task = task
        status._group = self
        extra = task._extras()
        extra.own_scope = root
        extra.start_status = status
        # The child cannot have run yet (spawn only made it ready), so wait;
        # _abort_wait refuses to stop waiting while the child still runs
        # under our scopes, so we resume only once it started or ended.
        status._waiter = me
        me._wait = status
        yield PARK
        if status._started:
            return status._value
        if status._error is not None:
            raise status._error
        if task._state is CANCELLED:
            if me._cancel_pending:
                me._raise_cancel()  # the child was cancelled with us: Cancelled (or Ctrl-C)
            raise RuntimeError(f"{task!r} was cancelled before it called task_status.started()")
        raise RuntimeError(f"{task!r} returned without calling task_status.started()")

    # -- children ending ----------------------------------------------------
    def _child_exited(self, task: Task) -> None:
        # Kernel._task_exited inlines the common case (a clean exit that is
        # not the last child): keep the two in step.
        extra = task._extra
        status = extra.start_status if extra is not None else None
        if status is not None and not status._started:
            # Ended before started(): never counted as the group's (see _start).
            extra.start_status = None  # type: ignore[union-attr]
            if task._state is FAILED:
                # An error before started() belongs to the caller of start().
                status._error = task._exc
            status._wake()
            return
        self._live -= 1
        if task._state is FAILED:
            exc = task._exc
            assert exc is not None
            self._errors.append(exc)
            self._scope.cancel()
        elif task._state is CANCELLED:
            # (Not on the inlined clean-exit path: Kernel._task_exited sends
            # every cancelled child here.) A Cancelled that only the task's
            # own task.cancel() scope caused stays inside the task, as one
            # caught by a scope inside a trio task would.
            own = extra.own_scope if extra is not None else None
            if own is None or not own._cancel_called or own._parent._eff:  # type: ignore[union-attr]
                self._child_cancelled = True
        if not self._live and self._waiting:
            owner = self._owner
            assert owner is not None
            if owner._wait is self._exit_wait:
                self._kernel.reschedule(owner)

    # -- the block ------------------------------------------------------------
    async def __aenter__(self) -> TaskGroup:
        if self._entered:
            raise RuntimeError("a TaskGroup can be entered only once")
        k = _state.current_kernel()
        self._kernel = k
        self._owner = k.current
        self._entered = True
        self._scope.__enter__()
        owner = k.current
        extra = owner._extras()
        if extra.child_groups is None:
            extra.child_groups = []
        extra.child_groups.append(self)
        return self

    async def __aexit__(self, etype: Any, exc: BaseException | None, tb: Any) -> bool:
        owner = self._owner
        assert owner is not None
        if isinstance(exc, Cancelled) and not self._scope._eff:
            # No scope around the body is cancelled, so this Cancelled is not
            # this run's (another run's, through to_thread(yieldio.run, ...)
            # or the asyncio bridge, or raised by hand). Taken for one, it
            # cancelled no child (the group waited for them all to end on
            # their own) and was then swallowed without a trace. It is a
            # failure of the body instead, reported as the kernel reports a
            # child's (Kernel._task_exited).
            err = RuntimeError("the body of a TaskGroup raised a yieldio.Cancelled that no "
                               "cancel scope of this run raised (from another yieldio.run()?)")
            err.__cause__ = exc
            exc = err
        if exc is not None and not isinstance(exc, Cancelled):
            self._scope.cancel()
            if type(exc) in _HINTED:
                _add_hint(exc)  # as the kernel does for a child: the body is not a task
        if self._live:
            await self._wait_children()
        self._closed = True
        extra = owner._extra
        if extra is not None and extra.child_groups is not None:
            extra.child_groups.remove(self)
        errors = self._errors
        # Leave our scope; remember whether an *enclosing* scope's cancellation
        # is visible here. Not through a shielded group scope: then every
        # Cancelled inside is the group's own, and the group catches it (as a
        # shielded trio nursery does); it used to escape the shield.
        scope = self._scope
        parent = scope._parent
        assert parent is not None
        outer_cancelled = parent._eff and not scope._shield
        scope.__exit__(None, None, None)  # RuntimeError if mis-nested
        # Did a Cancelled of the group's own reach it (the body's, or a
        # child's)? Then the group's scope caught it, and says so in
        # cancelled_caught, as trio's nursery.cancel_scope does. (The group
        # leaves its scope with no exception, so the scope cannot see it.)
        cancelled_here = self._child_cancelled or isinstance(exc, Cancelled)
        if cancelled_here and scope._cancel_called and not outer_cancelled:
            scope.cancelled_caught = True
        # KeyboardInterrupt and SystemExit go out bare, after the children ended.
        everything = ([exc] if exc is not None else []) + errors
        for e in everything:
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise _carrying(e, everything)
        extra = owner._extra
        if extra is not None and extra.ki_pending:
            extra.ki_pending = False
            owner._cancel_pending = owner._scope._eff
            raise _carrying(KeyboardInterrupt(), everything)
        failures = list(errors)
        if exc is not None and not isinstance(exc, Cancelled):
            failures.insert(0, exc)
        if failures:
            if all(isinstance(e, Exception) for e in failures):
                raise ExceptionGroup("unhandled errors in a TaskGroup",
                                     [e for e in failures if isinstance(e, Exception)])
            raise BaseExceptionGroup("unhandled errors in a TaskGroup", failures)
        if isinstance(exc, Cancelled):
            if outer_cancelled:
                return False  # an enclosing scope's cancellation: propagate it bare
            return True  # our own cancellation (tg.cancel() or a failure): swallow
        if outer_cancelled and self._child_cancelled and owner._cancel_pending:
            # Only when a child was cancelled: its Cancelled belongs to the
            # enclosing scope, which must see one. Children that all ended on
            # their own leave nothing to raise, and the code after the block
            # runs (trio gh-1457: a nursery raises Cancelled only if one of
            # its tasks did); the next checkpoint there raises anyway.
            raise Cancelled("cancelled while waiting for the TaskGroup's children")
        return False

    @awaitable
    def _wait_children(self) -> Generator[Any, Any, None]:
        owner = self._owner
        assert owner is not None
        self._waiting = True
        try:
            while self._live:
                owner._wait = self._exit_wait
                yield PARK
        finally:
            self._waiting = False


def _carrying(bare: BaseException, everything: list[BaseException]) -> BaseException:
    """``bare`` (a KeyboardInterrupt or SystemExit), not losing the group's other errors.

    It goes out bare, as asyncio's does, so ``except KeyboardInterrupt``
    works. The failures that came with it (the body's and the children's)
    become its ``__cause__``, printed above it with their tracebacks: not
    ``__context__``, which Python overwrites when ``__aexit__`` raises while
    the body's exception is being handled.
    """
    others = [e for e in everything if e is not bare and not isinstance(e, Cancelled)]
    if others:
        group = BaseExceptionGroup(
            f"other errors in the TaskGroup that {type(bare).__name__} ended", others)
        if bare.__cause__ is None:
            bare.__cause__ = group
        else:
            bare.add_note(f"also in the TaskGroup: {group!r}")
    return bare
