"""Cancel scopes: level-triggered, nestable, shieldable cancellation.

Scopes form a tree that mirrors how code is nested: a scope's parent is the
scope that was innermost when it was entered; a task spawned into a
:class:`TaskGroup` hangs off the group's scope. Each scope caches ``_eff``
("effectively cancelled"): it was cancelled, or its parent is effectively
cancelled and it is not a shield. Each task caches ``_cancel_pending`` for its
innermost scope, so a checkpoint's cancellation test is one attribute load.

``cancel()`` walks down the tree (iteratively -- nesting depth is not bounded
by the recursion limit), marks every task it reaches and aborts the waits of
those parked, so they wake with :class:`Cancelled`. The *outermost* cancelled
scope that the exception reaches catches it, as in trio; because cancellation
is level-triggered, any inner cancelled scope would see it again at the next
checkpoint anyway.

The timeouts built on scopes (``move_on_after``, ``fail_after``, ...) live
in ``_timeouts``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NoReturn

from . import _state
from ._exceptions import Cancelled

if TYPE_CHECKING:
    from ._task import Task

__all__ = ["CancelScope"]


_INF = math.inf


def _check_deadline(deadline: float) -> float:
    """``deadline`` as a float; a NaN or a non-number is refused with a clear error.

    A NaN deadline would never compare as reached (so the scope would silently
    never time out) and would break the ordering of the kernel's timer heap.
    """
    try:
        value = float(deadline)
    except (TypeError, ValueError):
        raise TypeError(f"deadline must be a number (a current_time() value), "
                        f"not {deadline!r}") from None
    if value != value:
        raise ValueError("deadline must not be NaN")
    return value


class CancelScope:
    """A region of code that can be cancelled as a unit.

    ::

        with yieldio.CancelScope() as scope:
            tg.spawn(watchdog, scope)        # may call scope.cancel()
            await do_work()
        if scope.cancelled_caught:
            print("work was cancelled")

    ``deadline`` (in :func:`current_time` units) cancels the scope when it
    passes; ``relative_deadline`` (seconds) sets one counted from the moment
    the scope is *entered* (what :func:`move_on_after` uses; give one or the
    other, not both); ``shield=True`` hides cancellation of enclosing scopes
    from the code inside. Usable with ``with`` or ``async with``; a scope can
    be entered only once.
    """

    __slots__ = (
        "_parent",
        "_children",
        "_tasks",
        "_cancel_called",
        "_shield",
        "_eff",
        "_deadline",
        "_relative",
        "_timer",
        "_task",
        "_entered",
        "_exited",
        "_by_deadline",
        "cancelled_caught",
        "_kernel",
        "_is_task_root",
    )

    def __init__(self, *, deadline: float = math.inf, relative_deadline: float = math.inf,
                 shield: bool = False) -> None:
        self._parent: CancelScope | None = None
        # Made when the first scope is entered inside this one: most timeout
        # scopes never have one, and a dict is an allocation per request.
        self._children: dict[CancelScope, None] | None = None
        self._tasks: dict[Task, None] = {}
        self._cancel_called = False
        self._shield = bool(shield)
        self._eff = False
        # _check_deadline inlined (every timeout scope is made here): a try
        # costs nothing in 3.11 unless it raises, the NaN test one comparison.
        try:
            deadline = float(deadline)
        except (TypeError, ValueError):
            _check_deadline(deadline)  # raises the clear TypeError
        if deadline != deadline:
            _check_deadline(deadline)  # raises ValueError
        self._deadline = deadline
        if relative_deadline != _INF:
            relative_deadline = _check_relative(relative_deadline)
            if deadline != _INF:
                raise ValueError("give a CancelScope a deadline or a relative_deadline, not both")
        self._relative = relative_deadline
        self._timer: Any = None
        self._task: Task | None = None
        self._entered = False
        self._exited = False
        self._by_deadline = False
        self.cancelled_caught = False
        self._kernel: Any = None
        self._is_task_root = False

    def __repr__(self) -> str:
        bits = []
        if self._cancel_called:
            bits.append("cancelled")
        if self._shield:
            bits.append("shield")
        if self._deadline != math.inf:
            bits.append(f"deadline={self._deadline:.3f}")
        elif self._relative != math.inf:
            bits.append(f"relative_deadline={self._relative:.3f}")
        return f"<CancelScope {' '.join(bits) or 'active'}>"

    # -- properties ---------------------------------------------------------
    @property
    def cancel_called(self) -> bool:
        """True once :meth:`cancel` was called or the deadline passed.

        A deadline that has passed counts at once, before its timer fired
        (as in trio): code that checks ``cancel_called`` after a long
        computation sees the truth, not the state of the last loop turn.
        """
        if not self._cancel_called and self._deadline != _INF and self._entered \
                and not self._exited:
            k = self._kernel
            if k is not None and self._deadline <= k.clock_now():
                if _state.foreign_thread(k):
                    # A to_thread worker polling "should I stop?": tell it the
                    # truth, but leave cancelling to the kernel's timer (the
                    # scope tree belongs to the kernel's thread).
                    return True
                self._on_deadline()
        return self._cancel_called

    @property
    def shield(self) -> bool:
        """While True, cancellation of enclosing scopes does not reach inside."""
        return self._shield

    @shield.setter
    def shield(self, value: bool) -> None:
        _check_thread(self, "set shield on")
        self._shield = bool(value)
        if self._parent is not None:
            self._recompute()

    @property
    def deadline(self) -> float:
        """When the scope cancels itself (``math.inf`` for never).

        A scope made with a relative deadline (``move_on_after``) has no
        absolute one until it is entered: reading or setting ``deadline``
        before then raises ``RuntimeError`` (as trio does), since any answer
        would be a guess about when the ``with`` starts.
        """
        if self._relative != _INF:
            raise RuntimeError("this cancel scope's deadline is relative to when it is "
                               "entered: read relative_deadline until then")
        return self._deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        if self._relative != _INF:
            raise RuntimeError("this cancel scope's deadline is relative to when it is "
                               "entered: set relative_deadline (or set it to math.inf first)")
        value = _check_deadline(value)
        _check_thread(self, "set the deadline of")
        self._deadline = value
        if self._entered and not self._exited:
            self._arm_deadline()

    @property
    def relative_deadline(self) -> float:
        """Seconds from entering (before) or from now (once entered) to the deadline.

        ::

            scope = yieldio.move_on_after(5)      # counts from the `with`, not from here
            ...
            with scope:
                scope.relative_deadline += 10     # ten more seconds from now

        ``RuntimeError`` on a scope not yet entered that has an absolute
        deadline.
        """
        if self._entered:
            return self._deadline - self._kernel.clock_now()  # type: ignore[no-any-return]
        if self._deadline != _INF:
            raise RuntimeError("this cancel scope has an absolute deadline, not a relative one")
        return self._relative

    @relative_deadline.setter
    def relative_deadline(self, value: float) -> None:
        value = _check_relative(value)
        if self._entered:
            if not self._exited:
                self.deadline = self._kernel.clock_now() + value
            return
        if self._deadline != _INF:
            raise RuntimeError("this cancel scope has an absolute deadline, not a relative one")
        self._relative = value

    @property
    def is_relative(self) -> bool | None:
        """True if the deadline will count from entering; None once entered."""
        if self._entered:
            return None
        return self._relative != _INF

    # -- cancellation -------------------------------------------------------
    def cancel(self) -> None:
        """Cancel everything inside this scope; idempotent and synchronous."""
        if self._cancel_called:
            return
        _check_thread(self, "cancel")
        self._cancel_called = True
        self._disarm_deadline()
        if self._entered:  # not yet entered: __enter__ will see cancel_called
            self._recompute()

    def _recompute(self) -> None:
        """Refresh ``_eff`` for this subtree and deliver to tasks that became cancelled."""
        parent = self._parent
        eff = self._cancel_called or (not self._shield and parent is not None and parent._eff)
        if eff == self._eff:
            return
        pending = [self]
        self._eff = eff
        first = True
        while pending:
            scope = pending.pop()
            if not first:
                p = scope._parent
                new = scope._cancel_called or (not scope._shield and p is not None and p._eff)
                if new == scope._eff:
                    continue
                scope._eff = new
            first = False
            new_eff = scope._eff
            for task in tuple(scope._tasks):
                if task._scope is scope:
                    extra = task._extra
                    task._cancel_pending = new_eff or (extra is not None and extra.ki_pending)
                    if new_eff:
                        _deliver(task)
            # Reverse so the stack pops children in insertion order.
            if scope._children:
                pending.extend(reversed(tuple(scope._children)))

    # -- deadlines ----------------------------------------------------------
    def _arm_deadline(self) -> None:
        k = self._kernel
        self._disarm_deadline()
        if self._cancel_called or self._deadline == math.inf:
            return
        if self._deadline <= k.clock_now():
            self._by_deadline = True
            self.cancel()
            return
        self._timer = k.add_timer(self._deadline, self)

    def _disarm_deadline(self) -> None:
        # (Off the hot path: cancel(), a new deadline, a task's own scope.
        # __exit__, which is on it, inlines cancel_timer instead.)
        if self._timer is not None:
            self._kernel.cancel_timer(self)  # clears self._timer

    def _on_deadline(self) -> None:
        self._by_deadline = True
        self.cancel()

    # -- entering and leaving -----------------------------------------------
    def __enter__(self) -> CancelScope:
        try:
            k = _state.local.kernel
        except AttributeError:
            _state.outside_run()
        task = k.current
        if self._entered:
            raise RuntimeError("a CancelScope can be entered only once")
        self._entered = True
        self._kernel = k
        self._task = task
        parent = task._scope
        self._parent = parent
        children = parent._children
        if children is None:
            children = parent._children = {}
        children[self] = None
        del parent._tasks[task]  # a running task is always in its scope's set
        self._tasks[task] = None
        task._scope = self
        self._eff = self._cancel_called or (not self._shield and parent._eff)
        extra = task._extra
        task._cancel_pending = self._eff or (extra is not None and extra.ki_pending)
        deadline = self._relative
        if deadline != _INF:  # move_on_after: the time counts from here
            deadline = self._deadline = k.clock_now() + deadline
            self._relative = _INF
        else:
            deadline = self._deadline
        if deadline != _INF and not self._cancel_called:
            # _arm_deadline inlined: nothing is armed yet (a timeout scope's
            # enter is on the path of every request a server times out).
            if deadline <= k.clock_now():
                self._by_deadline = True
                self.cancel()
            else:
                self._timer = k.add_timer(deadline, self)
        return self

    def __exit__(self, etype: Any, exc: BaseException | None, tb: Any) -> bool:
        task = self._task
        # (One comparison with the running task: exited by another task while
        # its owner is still inside, the scope left the owner's scope chain
        # silently. No task running is fine: a coroutine closed by the
        # collector or the kernel leaves its scopes on its way out.
        # _check_exit, off the common path, says what went wrong.)
        if task is None or task._scope is not self:
            self._check_exit(task)  # raises
        current = self._kernel.current
        if current is not task and current is not None:
            self._check_exit(task)  # raises
        self._exited = True
        if self._timer is not None:
            # TimerHeap.cancel_timer inlined: the heap entry goes stale.
            self._timer = None
            self._kernel.stale_timers += 1
        parent = self._parent
        assert parent is not None
        try:
            del self._tasks[task]
        except KeyError:
            # The task that entered the scope ended without leaving it (it
            # left the tree then); someone else is exiting it now.
            if parent._children:
                parent._children.pop(self, None)
            try:
                self._check_exit(task)  # raises
            except RuntimeError as err:
                raise err from exc  # the exception leaving the block, not the KeyError
        del parent._children[self]  # type: ignore[union-attr]
        parent._tasks[task] = None
        task._scope = parent
        extra = task._extra
        task._cancel_pending = parent._eff or (extra is not None and extra.ki_pending)
        if exc is None or not self._eff:
            return False
        # Catch only if no enclosing cancellation is visible from here: the
        # outermost cancelled scope is the one that swallows Cancelled.
        if not self._shield and parent._eff:
            return False
        if isinstance(exc, Cancelled):
            self.cancelled_caught = True
            return True
        if isinstance(exc, BaseExceptionGroup):
            mine, rest = exc.split(Cancelled)
            if mine is not None:
                self.cancelled_caught = True
                if rest is None:
                    return True
                # Catch our Cancelled, let the other errors go on without it
                # (as trio does): a Cancelled must not escape its scope.
                context = rest.__context__
                try:
                    raise rest
                finally:
                    rest.__context__ = context  # not the group it came from
        return False

    def _check_exit(self, owner: Task | None) -> NoReturn:
        """``__exit__`` off its common path: raise a RuntimeError that says what went wrong.

        ``owner`` is the task that entered the scope (None if none did).
        """
        if owner is None:
            raise RuntimeError(f"{self!r} was exited without being entered")
        k = getattr(_state.local, "kernel", None)
        current = k.current if k is not None else None
        where = f"in {current!r}" if current is not None else "outside any task"
        from ._task import RUNNING  # (off the hot path; _task imports nothing of ours)

        if owner._state is not RUNNING:
            raise RuntimeError(
                f"cancel scope exited in a different task than it was entered in: {self!r} "
                f"was entered in {owner!r}, which ended without leaving it, and exited {where}"
            )
        if self._exited:
            raise RuntimeError(f"{self!r} was exited twice (or exited from another task)")
        if current is not owner:
            raise RuntimeError(
                f"cancel scope exited in a different task than it was entered in: {self!r} "
                f"was entered in {owner!r} and exited {where}"
            )
        raise RuntimeError(
            "cancel scopes exited out of order: a scope must be left before the "
            f"scope it encloses ({self!r} is not the innermost scope of {owner!r})"
        )

    async def __aenter__(self) -> CancelScope:
        return self.__enter__()

    async def __aexit__(self, etype: Any, exc: BaseException | None, tb: Any) -> bool:
        return self.__exit__(etype, exc, tb)


def _check_thread(scope: CancelScope, what: str) -> None:
    """Refuse to change an entered scope from outside its kernel's thread.

    (Not on a hot path: cancel(), and setting a deadline or a shield.)
    """
    k = scope._kernel
    if k is not None and _state.foreign_thread(k):
        raise RuntimeError(
            f"cannot {what} {scope!r} from another thread than its yieldio run's; "
            "from a to_thread worker use yieldio.from_thread(scope.cancel)")


def cancelled_for(task: Task) -> Cancelled:
    """The ``Cancelled`` to raise in ``task``, saying which scope cancelled it.

    "task 'main' was cancelled" under a timeout sent readers looking for a
    ``task.cancel()`` that never happened. The outermost cancelled scope up
    to the nearest shield is the one whose cancellation this is (and the one
    that will catch it)::

        Cancelled("task 'main': the deadline of fail_after(0.01) passed")

    (Only when a Cancelled is raised: a walk over the task's few scopes.)
    """
    cause = None
    scope: CancelScope | None = task._scope
    while scope is not None:
        if scope._cancel_called:
            cause = scope
        if scope._shield:
            break
        scope = scope._parent
    name = task.name
    if cause is None:
        return Cancelled(f"task {name!r} was cancelled")
    if cause._by_deadline:
        seconds = getattr(cause, "_seconds", None)  # a fail_after scope's (see _timeouts)
        what = f"fail_after({seconds:g})" if seconds is not None else "a cancel scope"
        return Cancelled(f"task {name!r}: the deadline of {what} passed")
    if cause._is_task_root:
        return Cancelled(f"task {name!r} was cancelled by Task.cancel()")
    return Cancelled(f"task {name!r}: a cancel scope around it was cancelled "
                     "(scope.cancel(), tg.cancel(), or a failed task in its group)")


def _deliver(task: Task) -> None:
    """Wake a parked task with Cancelled if its wait can be aborted."""
    wait = task._wait
    if wait is None or task._state != "running":
        return
    if wait._abort_wait(task):
        task._kernel.reschedule_error(task, cancelled_for(task))


def insert_task_scope(task: Task) -> CancelScope:
    """Give ``task`` its own root scope (for :meth:`Task.cancel`), created lazily.

    Spawning stays cheap because most tasks are never cancelled one by one.
    The new scope is spliced between the task's group scope and the scopes the
    task itself has entered.
    """
    k = task._kernel
    root = CancelScope()
    root._kernel = k
    root._task = task
    root._entered = True
    root._is_task_root = True
    # Find the outermost scope this task entered itself.
    outer: CancelScope | None = task._scope
    own = None
    while outer is not None and outer._task is task and not outer._is_task_root:
        own = outer
        outer = outer._parent
    assert outer is not None
    root._parent = outer
    if outer._children is None:
        outer._children = {}
    outer._children[root] = None
    root._eff = not root._shield and outer._eff
    if own is None:
        outer._tasks.pop(task, None)
        root._tasks[task] = None
        task._scope = root
    else:
        del outer._children[own]
        own._parent = root
        root._children = {own: None}
    task._extras().own_scope = root
    return root


def remove_task_scope(task: Task) -> None:
    """Unlink a finished task's root scope from the tree."""
    extra = task._extra
    root = extra.own_scope if extra is not None else None
    if root is None:
        return
    parent = root._parent
    if parent is not None:
        if parent._children:
            parent._children.pop(root, None)
    root._disarm_deadline()


def _check_relative(seconds: float) -> float:
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        raise TypeError(f"relative_deadline must be a number of seconds, "
                        f"not {seconds!r}") from None
    if seconds != seconds:
        raise ValueError("relative_deadline must not be NaN")
    if seconds < 0:
        raise ValueError(f"relative_deadline must be >= 0, not {seconds!r}")
    return seconds

