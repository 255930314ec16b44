"""The kernel: a ready queue, a timer heap, epoll, and one loop that drives tasks.

Read this module top to bottom in one sitting; it is the whole scheduler.

* A task is stepped by sending it a value (or throwing an exception) inside
  its ``contextvars.Context``: its own copy if the context it was spawned in
  held variables, else one context shared by such tasks until one of them
  sets a variable. What it yields is tested by identity against the two
  traps of :mod:`yieldio._traps`.
* Waiting has one primitive: the waiting code records an abortable wait on
  the task and yields ``PARK``; whoever ends the wait calls
  :meth:`Kernel.reschedule` or :meth:`Kernel.reschedule_error`. Timers,
  sockets, events and queues are all built on it, outside the kernel.
* epoll registrations are level-triggered and kept across waits: a task that
  waits on the same fd again costs no ``epoll_ctl``. An armed fd that reports
  readiness with nobody waiting is disarmed then (lazily), so it cannot spin.
* The loop runs the tasks that were ready at the start of a batch, then
  polls. It is written once; instruments and the seeded schedule are tested
  with a local flag per batch/step, so an un-instrumented run pays nothing
  measurable for them.
* Three parts live in their own modules, as mixins of :class:`Kernel` (no
  extra hop: they are its methods): ``_outside.py`` (epoll, thread calls,
  Ctrl-C), ``_timers.py`` (the clock, the timer heap, sleeping) and
  ``_instrument.py`` (attaching instruments and calling their hooks).
"""

from __future__ import annotations

import contextvars
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from types import CoroutineType, GeneratorType
from typing import Any

from ._asyncgens import AsyncGenFinalizer
from ._cancel import CancelScope, remove_task_scope
from ._exceptions import _HINTED, Cancelled, _add_hint
from ._instrument import HOOK_NAMES, InstrumentHooks
from ._outside import OutsideWorld
from ._stuck import StuckRun
from ._task import CANCELLED, DONE, FAILED, RUNNING, NotStarted, Task, throw_into
from ._timers import SystemClock, TimerHeap
from ._trampoline import Trampoline
from ._traps import PARK, SCHEDULE

__all__ = ["Kernel", "SystemClock", "FAST_PATH_BUDGET"]

_copy_context = contextvars.copy_context

#: How many fast-path successes (an I/O call or lock acquire that did not have
#: to wait) pass before one of them takes a real schedule point. Counted, not
#: timed, so that a seeded run replays exactly.
FAST_PATH_BUDGET = 32

#: In a seeded run, the chance that a ready task is held back one batch.
DELAY_PROBABILITY = 0.1
_INF = float("inf")



class Kernel(OutsideWorld, TimerHeap, InstrumentHooks, StuckRun):
    """One event loop; created by :func:`run`, one per thread at most."""

    def __init__(self, clock: Any = None, instruments: Any = (), seed: int | None = None) -> None:
        self._init_timers(clock)
        self.ready: deque[Task] = deque()
        # The running task; None only between steps (typed as Task: every
        # caller runs inside a task).
        self.current: Task = None  # type: ignore[assignment]
        # Task ids count per run, so that a seeded run's trace is identical every time.
        self.task_ids = itertools.count(1)
        self.not_started = NotStarted(self)  # the driver of tasks not run yet
        # Made before the outside world is opened: a seed Random refuses
        # must fail before there are fds to leak.
        self.random = random.Random(seed) if seed is not None else None
        self._open_outside()
        # Counters that decide "every task is blocked" in O(1).
        self.io_waiters = 0
        self.thread_jobs = 0
        self.external_parks = 0  # waits a thread will end: they hold virtual time too
        # Waits that nothing known will end (sleep_forever, a signal, a
        # UniversalQueue a plain thread may feed): they neither hold virtual
        # time nor count as stuck while the main task runs.
        self.passive_parks = 0
        # Fast-path successes a task may take in one step before it must give
        # way (see the step loop). Seeded: every one is a schedule point.
        self.fast_budget_full = FAST_PATH_BUDGET if seed is None else 1
        self.fast_budget = self.fast_budget_full
        self.seed = seed
        self.root_scope = CancelScope()
        self.root_scope._kernel = self
        self.root_scope._entered = True
        self.main_task: Task | None = None
        self.shared_context = contextvars.Context()
        self.system_tasks: dict[Task, None] = {}
        self.asyncgens = AsyncGenFinalizer(self)  # installed by run_main
        self.closed = False
        self.thread_id = threading.get_ident()
        self.stats_steps = 0
        # Tasks in yieldio.testing.wait_all_tasks_blocked(), in arrival order:
        # when nothing is ready after a non-blocking poll, the first is woken.
        self.idle_waiters: dict[Task, None] = {}
        self.stats_iterations = 0
        self.debug_listeners: list[Any] = []
        # The Network that open_tcp_stream & co. use (None: the OS network;
        # yieldio.testing.SimNetwork plugs in here).
        self.network: Any = None
        self._deadlocked = False
        self.deadlock_report: str | None = None  # the task tree, once a deadlock is found
        # Instruments: one tuple of bound hooks per hook name.
        self.instruments: list[Any] = []
        self._hooks: dict[str, tuple[Callable[..., Any], ...]] = {h: () for h in HOOK_NAMES}
        self.spawn_hooked = False  # see _rebuild_hooks
        try:
            for inst in instruments:
                self.add_instrument(inst)
        except BaseException:
            self._close_outside()  # the epoll fd and the wakeup socketpair
            raise

    # -- scheduling -----------------------------------------------------------
    def reschedule(self, task: Task, value: Any = None) -> None:
        """End ``task``'s wait: it resumes with ``value`` as the result of its yield."""
        task._wait = None
        task._val = value
        self.ready.append(task)

    def reschedule_error(self, task: Task, exc: BaseException) -> None:
        """End ``task``'s wait by raising ``exc`` at its yield."""
        task._wait = None
        task._exc = exc
        self.ready.append(task)

    def _reschedule_instrumented(self, task: Task, value: Any = None) -> None:
        Kernel.reschedule(self, task, value)
        self._call_hooks("task_scheduled", task)

    def _reschedule_error_instrumented(self, task: Task, exc: BaseException) -> None:
        Kernel.reschedule_error(self, task, exc)
        self._call_hooks("task_scheduled", task)

    def spawn(self, coro: Any, scope: CancelScope, parent: Task | None, group: Any,
              name: str | None, context: contextvars.Context | None = None,
              args: tuple[Any, ...] | None = None) -> Task:
        """Create a task for ``coro`` under ``scope`` and make it ready.

        With ``args``, ``coro`` is a function whose call ``coro(*args)`` is
        deferred to the task's first step (see NotStarted). TaskGroup.spawn
        inlines the common case; keep the two in step.
        """
        if self.closed:
            raise RuntimeError("the yieldio kernel has shut down; no new tasks")
        if context is None:
            cur = self.current
            if cur is None or cur._context is not None or len(self.shared_context):
                context = _copy_context()
                if not len(context):
                    context = None  # nothing to keep apart: run in the shared context
            # else: spawned from the empty shared context, which it shares too
        task: Task[Any] = Task(coro, self, scope, context, group, name)
        if args is not None:
            task._driver = self.not_started
            task._val = args
        if parent is not (group._owner if group is not None else None):
            task._extras().parent = parent
        scope._tasks[task] = None
        self.ready.append(task)
        if self.spawn_hooked:
            self._call_hooks("task_spawned", task)
            self._call_hooks("task_scheduled", task)  # ready from the start, as in trio
        return task

    # -- stepping ---------------------------------------------------------------
    def _odd_yield(self, task: Task, value: Any) -> None:
        """Handle a yield that is neither trap: a trampolined call or a bad yield.

        Loops without recursion: the pushed call's first yield comes back here
        until it is a trap.
        """
        ctx = task._context
        run = ctx.run if ctx is not None else _call
        while True:
            if value is PARK:
                return
            if value is SCHEDULE:
                task._val = None
                self.ready.append(task)
                return
            if is_call(value):
                tramp = task._driver
                if tramp is task._coro:
                    tramp = task._driver = Trampoline(tramp, started=True, subcall=is_call)
                tramp.push(value)
                try:
                    value = run(tramp.send, None)
                except BaseException as exc:
                    self._task_exited(task, exc)
                    return
                continue
            err = TypeError(_bad_yield_message(task, value))
            try:
                value = run(throw_into, task, err)
            except BaseException as exc:
                self._task_exited(task, exc)
                return

    def _task_exited(self, task: Task, exc: BaseException) -> None:
        # From here on _val holds the result (None unless DONE) and _exc the
        # error of a FAILED task (see Task).
        if type(exc) is StopIteration:
            task._state = DONE
            task._val = exc.value
        elif isinstance(exc, Cancelled):
            task._val = None
            if task._scope._eff:
                task._state = CANCELLED
            else:
                # No scope around the task is cancelled, so this Cancelled is
                # not this run's (another run's, through a bridge or a thread,
                # or raised by hand). As a cancellation it would vanish in the
                # group; as an error it is seen.
                task._state = FAILED
                task._exc = _stray_cancelled(task, exc)
        elif isinstance(exc, StopIteration):
            # A hand-written coroutine may return through a subclass, as
            # 'yield from' allows (tested after the exact type: that one
            # is every task's end, this one almost never).
            task._state = DONE
            task._val = exc.value
        else:
            task._state = FAILED
            task._val = None
            task._exc = exc
            if type(exc) in _HINTED:
                _add_hint(exc)
        del task._scope._tasks[task]  # a running task is always in its scope's set
        if task._timer is not None:
            self.cancel_timer(task)
        extra = task._extra
        if extra is not None:
            if extra.own_scope is not None:
                remove_task_scope(task)
            joiners = extra.joiners
            if joiners:
                extra.joiners = None
                for j in joiners:
                    self.reschedule(j)
            held = extra.held
            if held:
                extra.held = None
                for lock in held:
                    lock._owner_ended(task)
        if self._hooks["task_exited"]:
            self._call_hooks("task_exited", task)
        group = task._group
        if group is not None:
            if extra is None and task._state is DONE and group._live > 1:
                # TaskGroup._child_exited's common case, inlined (one Python
                # call less per task): a clean exit that is not the last.
                group._live -= 1
            else:
                group._child_exited(task)
        elif task in self.system_tasks:
            del self.system_tasks[task]

    # -- the loop ---------------------------------------------------------------
    def run_main(self, coro: Any) -> Any:
        main = self.main_task = self.spawn(coro, self.root_scope, None, None, "main")
        if self._hooks["before_run"]:
            self._call_hooks("before_run")
        self.asyncgens.install()
        try:
            self._loop()
        finally:
            self.asyncgens.uninstall()
            if self._hooks["after_run"]:
                # Through _call_hooks: one failing instrument must not stop the
                # others' clean-up (yieldio.aio stops its loop thread here).
                self._call_hooks("after_run")
        if self._ki_pending or self._ki_at_exit:
            # Ctrl-C after the main task ended: in its last step (never
            # delivered), or while system tasks finished (they were cancelled;
            # see _deliver_keyboard_interrupt). Not lost: raised here.
            _raise_late_keyboard_interrupt(main)
        return main.result() if main._state is not CANCELLED else _raise_cancelled_main(main)

    def _look_outside(self, main: Task) -> bool:
        """Poll for I/O (blocking if nothing is ready), run thread calls, fire timers.

        Returns False when the run is over.
        """
        hooks = self._hooks
        if self.ready or self.idle_waiters:
            timeout = 0.0
        else:
            if main._state is not RUNNING and not self.system_tasks:
                # The run is over, once unfinished async generators have had
                # their cleanup (it runs as system tasks, now ready).
                return self.asyncgens.finalize_remaining()
            timers = self.timers
            if not timers:
                deadline: float | None = None
            elif self.timer_targets[timers[0]]._timer == timers[0]:
                deadline = timers[0]  # the common case, inlined
            else:
                deadline = self._next_deadline()
            if deadline is None:
                timeout = -1.0
                if (self.io_waiters == 0 and self.thread_jobs == 0
                        and self.external_parks == 0 and not self._thread_calls
                        and not self._ki_pending
                        and (self.passive_parks == 0 or main._state is not RUNNING)):
                    # Nothing can ever wake anybody. (Once the main task is
                    # done, a system task asleep for ever is stuck as well:
                    # only Ctrl-C would end its wait, and nobody is left to
                    # press it for.)
                    return self._stuck(main)
            elif (not self.system_clock and self.io_waiters == 0 and self.thread_jobs == 0
                    and self.external_parks == 0 and not self._thread_calls
                    and self.clock.autojump):
                self.clock.jump_to(deadline)  # type: ignore[union-attr]
                timeout = 0.0
            else:
                if self.system_clock:
                    timeout = deadline - time.monotonic()
                else:
                    timeout = self.clock.deadline_to_sleep_time(deadline)
                    if (timeout == _INF and self.io_waiters == 0 and self.thread_jobs == 0
                            and self.external_parks == 0 and self.passive_parks == 0
                            and not self._thread_calls and not self._ki_pending):
                        # A clock that real time does not move (a VirtualClock
                        # without autojump), and no task left to move it.
                        first = not self._deadlocked
                        stuck = self._stuck(main)
                        if first and self._deadlocked:
                            self.deadlock_report = (self.deadlock_report or "").rstrip("\n") + (
                                "\n(timers are pending, but this clock moves only when "
                                "a task calls its jump(); VirtualClock(autojump=True) "
                                "jumps by itself)")
                        return stuck
                if timeout < 0.0:
                    timeout = 0.0
                elif timeout > 86400.0:
                    timeout = 86400.0
        if hooks["before_io_wait"]:
            self._call_hooks("before_io_wait", timeout)
        try:
            events = self.epoll.poll(timeout)
        except InterruptedError:
            events = []
        if hooks["after_io_wait"]:
            self._call_hooks("after_io_wait", timeout)
        if events:
            self._dispatch_io(events)
        if self._thread_calls:
            self._run_thread_calls()
        if self._ki_pending:
            self._deliver_keyboard_interrupt()
        if self.timers:
            self._tend_timers()
        if not self.ready and self.idle_waiters:
            # Everyone else is blocked and this poll woke nobody.
            waiter = next(iter(self.idle_waiters))
            del self.idle_waiters[waiter]
            self.reschedule(waiter)
        return True

    def _loop(self) -> None:
        # Tasks whose context is empty at spawn (the common case: nobody set a
        # ContextVar) share one context instead of each entering its own copy
        # with Context.run on every step. The loop runs inside that shared
        # context; the first step that sets a variable in it makes it that
        # task's own, and the loop re-enters a fresh empty one.
        while True:
            shared = self.shared_context = contextvars.Context()
            if shared.run(self._run, shared):
                return

    def _run(self, shared: contextvars.Context) -> bool:
        """Run batches until the run is over (True) or ``shared`` is taken (False)."""
        ready = self.ready
        append = ready.append
        hooks = self._hooks
        main = self.main_task
        assert main is not None
        odd_yield = self._odd_yield
        task_exited = self._task_exited
        budget_full = self.fast_budget_full
        while True:
            # 1. Look outside (I/O, timers, threads, signals) -- unless tasks are
            # ready and nothing outside could need us: then a poll(0) would be
            # pure overhead (it is most of a ping-pong switch).
            if (not ready or self.io_waiters or self._thread_calls
                    or self._ki_pending or hooks["before_io_wait"]):
                if not self._look_outside(main):
                    return True
                if len(shared):
                    return False  # set outside any task (a thread call): drop it
            elif self.timers:
                # Tasks are ready and only timers could need us: a poll(0)
                # could only return nothing (no fd waiters, no thread calls),
                # so just fire the timers that are due. A server with a
                # timeout around every read saves a system call per batch.
                self._tend_timers()
                if len(shared):
                    return False
            self.stats_iterations += 1
            # 2. Run the batch of tasks that were ready when it started.
            n = len(ready)
            if self.random is not None and n > 1:
                n = self._seeded_batch(n)
            before = hooks["before_task_step"]
            after = hooks["after_task_step"]
            self.stats_steps += n
            # 'while True' + break, not 'while n': CPython 3.11 warms a code
            # object up (then specialises its instructions) on calls and on
            # unconditional backward jumps only. 'while n' ends in a
            # conditional one, so a long batch in a long-lived _run frame ran
            # every step unspecialised (a 100,000-task spawn: ~10% slower).
            while True:
                if not n:
                    break
                n -= 1
                # ready.popleft(), not a cached bound method: 3.11 specialises
                # the method call, but not a call of a bound no-argument builtin.
                task = ready.popleft()
                self.current = task
                if before:
                    self._call_hooks("before_task_step", task)
                exc = task._exc
                ctx = task._context
                try:
                    if ctx is None:
                        if exc is None:
                            value = task._driver.send(task._val)
                        else:
                            task._exc = None
                            value = throw_into(task, exc)
                            # A caught exception must not outlive its
                            # handler here (its traceback holds frames).
                            exc = None
                    elif exc is None:
                        value = ctx.run(task._driver.send, task._val)
                    else:
                        task._exc = None
                        value = ctx.run(throw_into, task, exc)
                        exc = None
                except BaseException as e:
                    task_exited(task, e)
                else:
                    if value is PARK:
                        # The task really waits: its run of fast paths is
                        # over. Without this reset the budget would span
                        # tasks, and a server whose every task parks after
                        # one fast write would still take a needless
                        # schedule point per 32 requests -- and with it a
                        # readiness event for a task that is not waiting,
                        # two epoll_ctl calls each (echo: ~4% of requests).
                        self.fast_budget = budget_full
                    elif value is SCHEDULE:
                        task._val = None
                        append(task)
                    else:
                        odd_yield(task, value)
                        value = None  # else the call object outlives its step
                if after:
                    self._call_hooks("after_task_step", task)
                if ctx is None and len(shared):
                    # This step set a context variable: the shared context
                    # is now this task's own. The rest of the batch runs
                    # in the next one, inside a fresh shared context.
                    if task._state is RUNNING:
                        task._context = shared
                    self.stats_steps -= n
                    self.current = None  # type: ignore[assignment]
                    return False
            self.current = None  # type: ignore[assignment]

    def _seeded_batch(self, n: int) -> int:
        """Seeded runs: shuffle the batch, and hold some tasks back one batch.

        A shuffle alone keeps every task in lock-step (one step per batch);
        holding a task back (each with DELAY_PROBABILITY) lets the others run
        ahead of it, so seeds also reach races that need one task to be
        several steps slower. Returns how many tasks run now (at least one).
        """
        rng = self.random
        assert rng is not None
        batch = list(self.ready)
        self.ready.clear()
        rng.shuffle(batch)
        held = [rng.random() < DELAY_PROBABILITY for _ in batch]
        if all(held):
            held[-1] = False
        self.ready.extend(t for t, h in zip(batch, held, strict=True) if not h)
        self.ready.extend(t for t, h in zip(batch, held, strict=True) if h)  # next batch
        return held.count(False)

    def _all_tasks(self) -> list[Task]:
        out: list[Task] = []
        stack = [self.root_scope]
        while stack:
            s = stack.pop()
            out.extend(s._tasks)
            stack.extend(s._children or ())
        return out

    def all_tasks(self) -> list[Task]:
        """Every live task, in the order of the cancel-scope tree."""
        return [t for t in self._all_tasks() if t._state is RUNNING]

    # -- shutdown ---------------------------------------------------------------
    def close(self) -> None:
        self.closed = True
        self._close_outside()


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """``Context.run`` for a task that runs in the shared context."""
    return fn(*args)


def is_call(value: Any) -> bool:
    """What the kernel treats as a trampolined call when a task yields it.

    Generators and coroutine objects, and hand-written coroutines that are
    also iterators (``send`` *and* ``__next__``, the shape of a generator).
    A socket has ``send`` but is no coroutine: yielding one is a bad yield.
    """
    t = type(value)
    if t is GeneratorType or t is CoroutineType:
        return True
    try:
        return (not isinstance(value, type) and callable(getattr(value, "send", None))
                and callable(getattr(value, "__next__", None)))
    except Exception:
        # A __getattr__ that raises something else: not a coroutine, and its
        # error must reach the task as a bad yield, not escape the kernel.
        return False


def _stray_cancelled(task: Task, exc: BaseException) -> RuntimeError:
    err = RuntimeError(f"task {task.name!r} ended with a yieldio.Cancelled that no cancel "
                       f"scope of this run raised (from another yieldio.run()?)")
    err.__cause__ = exc
    return err


def _raise_cancelled_main(main: Task) -> Any:
    raise Cancelled("the main task was cancelled")


def _raise_late_keyboard_interrupt(main: Task) -> None:
    if main._state is FAILED and isinstance(main._exc, KeyboardInterrupt):
        raise main._exc  # that Ctrl-C already ended the main task
    ki = KeyboardInterrupt()
    if main._state is FAILED:
        ki.__context__ = main._exc  # what the main task raised is not hidden
    raise ki


def _bad_yield_message(task: Task, value: Any) -> str:
    kind = type(value)
    hint = "use 'yield from' or 'await' to call a coroutine"
    if callable(value) and not isinstance(value, type):
        hint = (f"you yielded the callable {getattr(value, '__qualname__', value)!r} itself; "
                "call it and use 'await'/'yield from' on the result")
    elif kind.__module__.lstrip("_").startswith("asyncio"):  # _asyncio: the C Future/Task
        hint = "asyncio objects cannot be awaited directly; use the yieldio.aio bridge"
    elif hasattr(kind, "__await__"):
        hint = ("an awaitable is not a coroutine: 'await' it in async def code, or "
                "'yield from obj.__await__()' in a generator coroutine")
    elif value is None:
        # A bare 'yield' in a generator coroutine, or asyncio's own sleep(0)
        # (asyncio code yields None to its loop): both land here.
        hint = ("a bare 'yield' is not a checkpoint: use 'yield from yieldio.sleep(0)'; "
                "if this came from asyncio code (asyncio.sleep...), call it through "
                "the yieldio.aio bridge")
    try:
        shown = repr(value)
    except Exception:  # a broken __repr__ must not take the kernel down
        shown = f"<{kind.__qualname__} object at {id(value):#x}>"
    return (f"task {task.name!r} (id {task.id}) yielded {shown} of type "
            f"{kind.__qualname__}, which the yieldio kernel does not understand: {hint}")
