"""When no task can ever run again: end the run, or report a deadlock.

The kernel's loop calls :meth:`StuckRun._stuck` when nothing is ready and
nothing outside (an fd, a timer, a thread, a signal) could ever wake a task.
Two cases, each one idea:

* the main task has finished and only system tasks are left (an asyncgen
  cleanup, a signal listener): cancel them, so the run can end;
* the main task still waits: every task waits on another. That is a
  deadlock. The first time, the kernel records the task tree (what each task
  waits for) and cancels everything, so that ``finally`` blocks run and the
  main task can end with :class:`yieldio.Deadlock`. If even that leaves the
  run stuck (a task that catches the cancellation and waits again), the
  second time it closes every coroutine itself instead of leaving them to
  the garbage collector.

A mixin of :class:`yieldio._kernel.Kernel`, kept apart because none of it
is on a hot path and all of it happens once per run at most.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ._task import CANCELLED, RUNNING, Task

if TYPE_CHECKING:
    from ._cancel import CancelScope


class StuckRun:
    """Kernel methods for a run in which no task can ever be woken."""

    # Set by Kernel.__init__ (declared here for type checkers).
    _deadlocked: bool
    deadlock_report: str | None
    root_scope: CancelScope
    system_tasks: dict[Task, None]
    _all_tasks: Callable[[], list[Task]]

    def _stuck(self, main: Task) -> bool:
        """Nothing can ever wake a task: end the run or report the deadlock.

        Returns what :meth:`_look_outside` returns (False: the run is over).
        """
        if main._state is not RUNNING:
            self._cancel_system_tasks()  # only system tasks are left
            return True
        if self._deadlocked:
            self._abandon_all()
            return False
        self._deadlocked = True
        self._report_deadlock()
        return True

    def _report_deadlock(self) -> None:
        """Every task waits on another task: cancel them all, then raise Deadlock."""
        from .debug import format_task_tree

        self.deadlock_report = format_task_tree(kernel=self)
        self.root_scope.cancel()
        for task in list(self.system_tasks):
            task.cancel()

    def _cancel_system_tasks(self) -> None:
        for task in list(self.system_tasks):
            task.cancel()
            if task._wait is not None and task._state is RUNNING:
                # An uncancellable system wait cannot be ended: drop the task.
                del self.system_tasks[task]

    def _abandon_all(self) -> None:
        """Close every coroutine still suspended (the kernel, not the GC, does it)."""
        seen: set[int] = set()
        for task in self._all_tasks():
            if id(task) in seen or task._state is not RUNNING:
                continue
            seen.add(id(task))
            task._state = CANCELLED
            coro = task._driver  # the Trampoline closes the whole chain
            close = getattr(coro, "close", None)
            if close is not None:
                try:
                    if task._context is None:
                        close()
                    else:
                        task._context.run(close)
                except BaseException:
                    pass
