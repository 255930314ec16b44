"""The asyncio bridge: call asyncio code from yieldio, and yieldio code from asyncio.

Two event loops, two threads. yieldio and asyncio each keep their own loop,
running in its own thread, and a call from one side to the other is a
message to the other loop's thread plus a message back with the outcome:

* ``await run_asyncio(fn, *args)`` (in a yieldio task) runs ``fn(*args)`` as
  an asyncio task on an asyncio event loop that runs in a background daemon
  thread, and waits for its result without blocking other yieldio tasks.
  Each :func:`yieldio.run` gets at most one such loop thread, started on the
  first call and shut down when the run ends (pending asyncio tasks are
  cancelled, the loop is closed and the thread is joined).
* ``await run_yieldio(main, *args)`` (in asyncio code) runs
  ``yieldio.run(main, *args)`` in a worker thread and waits for its result
  without blocking the asyncio loop.

Why threads, and not a guest mode: a guest mode would run one loop *inside*
the other (one loop's poll step driven by the other's callbacks). yieldio's
loop is a plain loop that owns its epoll object (see ``docs/architecture.md``,
section 8), so it cannot be driven step by step from asyncio; two loops in
two threads need nothing from either loop's internals, keep both loops'
guarantees (yieldio's cancel scopes, deadlock detection and virtual time;
asyncio's libraries) and cost one thread hop per call. asyncio objects
(futures, tasks, ``asyncio.sleep()``) still cannot be awaited directly inside
yieldio: wrap the asyncio call in :func:`run_asyncio`.

Cancellation crosses over, and neither side is silently abandoned:

* A yieldio task cancelled while in :func:`run_asyncio` (a cancel scope, a
  timeout, ``task.cancel()``) cancels the asyncio task, *waits for it to
  finish* (its ``finally`` blocks and ``except CancelledError`` handlers run
  first) and then raises :class:`yieldio.Cancelled`. If the asyncio side
  fails with an ordinary exception while being cancelled, that exception is
  raised instead (like an exception raised by a ``finally`` block). (The
  one exception: a ``loop=`` of your own that was closed with the call still
  pending can never answer, so a cancelled call then stops waiting at once.)
* An asyncio task cancelled from the asyncio side raises
  :class:`AsyncioCancelled` (a ``RuntimeError``) in the yieldio task: a raw
  ``asyncio.CancelledError`` never reaches yieldio code.
* An asyncio task cancelled while in :func:`run_yieldio` cancels the yieldio
  main task from outside (thread-safe), waits for the run to end (its
  ``finally`` blocks run first) and then raises ``asyncio.CancelledError``.

While a yieldio task waits in :func:`run_asyncio` it counts as waiting on
another thread (like :func:`yieldio.to_thread`): the kernel does not report a
deadlock, and a ``VirtualClock(autojump=True)`` does not jump while asyncio
work is in flight. The task tree shows the wait as ``asyncio: fetch()``.

(The run's asyncio loop thread, and the async generators handed over to it,
are in :mod:`yieldio._aio_loop`.)
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import sys
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import Any, TypeVar, TypeVarTuple, Unpack, overload

from . import _state
from ._aio_loop import _adopt_asyncgen, _keep_until_closed, _loop_thread
from ._exceptions import Cancelled
from ._instrument import Instrument
from ._kernel import Kernel
from ._run import _as_coroutine, _discard, run
from ._task import Task
from ._traps import PARK
from ._typing import awaitable

__all__ = ["run_asyncio", "run_yieldio", "AsyncioCancelled"]

T = TypeVar("T")
_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


class AsyncioCancelled(RuntimeError):
    """The asyncio task behind :func:`run_asyncio` was cancelled from the asyncio side.

    yieldio code never sees a raw ``asyncio.CancelledError``; the original one
    is kept as ``__cause__``::

        try:
            await yieldio.aio.run_asyncio(fetch)
        except yieldio.aio.AsyncioCancelled:
            print("someone on the asyncio side cancelled fetch()")

    (A cancellation that *yieldio* asked for raises :class:`yieldio.Cancelled`
    instead, as every cancelled yieldio wait does. If yieldio asked for it
    and then withdrew it -- a shield switched on while the asyncio task was
    still finishing -- nothing is cancelled any more on the yieldio side, so
    this is raised, with a message that says so.)
    """


# -- yieldio -> asyncio ---------------------------------------------------------------------


class _AsyncioCall:
    """One run_asyncio call: the waiting yieldio task, the asyncio task, the outcome.

    It is the yieldio task's wait object. Its ``_abort_wait`` never abandons
    the asyncio side: it asks the asyncio loop to cancel the task and returns
    False, so the yieldio task keeps waiting until the asyncio task is done.
    """

    __slots__ = ("kernel", "task", "loop", "label", "fn", "args", "awaitable", "context",
                 "atask", "started", "finished", "value", "error", "cancel_requested",
                 "posted", "abandoned", "asyncgen")

    def __init__(self, kernel: Kernel, task: Task, loop: asyncio.AbstractEventLoop, label: str,
                 fn: Callable[..., Any] | None, args: tuple[Any, ...],
                 awaitable: Awaitable[Any] | None) -> None:
        self.kernel = kernel
        self.task = task
        self.loop = loop
        self.label = label
        self.fn = fn
        self.args = args
        self.awaitable = awaitable
        self.context = contextvars.copy_context()
        self.atask: asyncio.Task[None] | None = None
        self.started = False
        self.finished = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.cancel_requested = False
        self.posted = False  # the outcome was sent to the kernel (set on the loop thread)
        self.abandoned = False
        self.asyncgen: AsyncGenerator[Any, Any] | None = None  # see _adopt_asyncgen

    # -- the wait protocol (kernel thread) --
    def _abort_wait(self, task: Task) -> bool:
        if not self.cancel_requested:
            self.cancel_requested = True
            _request_cancel(self)
        if self.abandoned:
            return False  # given up by _loop_unreachable, which woke the task
        if self.loop.is_closed() and not self.posted:
            # The loop was closed (a loop of the caller's own, closed with our
            # task pending): no asyncio callback can run any more, so no
            # outcome will ever come. Waiting for it would hang forever, and
            # uncancellably: give up the call instead. (is_closed() first: once
            # it is true, `posted` can no longer change.)
            self.abandoned = True
            self.kernel.thread_jobs -= 1
            return True
        return False

    def _describe_wait(self, task: Task) -> str:
        if self.cancel_requested:
            return f"asyncio: {self.label} (cancelling)"
        return f"asyncio: {self.label}"

    def _complete(self) -> None:
        if self.abandoned:
            return
        self.kernel.thread_jobs -= 1
        if self.task._wait is self:
            self.kernel.reschedule(self.task)

    # -- the asyncio side (loop thread) --
    def _start(self) -> None:
        agen, self.asyncgen = self.asyncgen, None
        if agen is not None:
            # Hand the generator to this loop's own hooks (asyncio's
            # loop._asyncgen_firstiter_hook): its shutdown_asyncgens() closes it.
            firstiter = sys.get_asyncgen_hooks().firstiter
            if firstiter is not None:
                firstiter(agen)
        drive = self._drive()
        try:
            self.atask = self.loop.create_task(drive, name=f"yieldio: {self.label}",
                                               context=self.context)
        except BaseException as exc:  # (a task factory that fails)
            drive.close()  # never started: no "coroutine was never awaited" warning
            self.error = exc
            self._close_unstarted()
            self._post()
            return
        self.atask.add_done_callback(self._on_done)

    async def _drive(self) -> None:
        self.started = True
        try:
            aw = self.awaitable
            if aw is None:
                assert self.fn is not None
                aw = self.fn(*self.args)
                if not inspect.isawaitable(aw):
                    raise TypeError(
                        f"run_asyncio(): {_name_of(self.fn)} returned {aw!r}, which is not "
                        "awaitable (pass an 'async def' function or an awaitable; the "
                        "function did run, on the asyncio loop's thread: to call a plain "
                        "function there, such as writer.close(), wrap it in an 'async def')")
            self.value = await aw
        except BaseException as exc:  # CancelledError too: reported, not re-raised
            self.error = exc
        self.finished = True

    def _on_done(self, atask: asyncio.Task[None]) -> None:
        if not self.finished:
            # Cancelled before its first step: the body never ran.
            self.error = asyncio.CancelledError()
            self._close_unstarted()
        self._post()

    def _loop_unreachable(self) -> None:
        """(Kernel thread.) The loop closed before our cancellation could reach it."""
        if self.posted or self.abandoned or self.task._wait is not self:
            return  # answered (the outcome is on its way), or no longer waited for
        # As in _abort_wait: no outcome will ever come, stop waiting. The
        # task is still cancelled (Cancelled is raised); if that was
        # withdrawn meanwhile, the CancelledError makes it AsyncioCancelled.
        self.abandoned = True
        self.kernel.thread_jobs -= 1
        self.error = asyncio.CancelledError()
        self.kernel.reschedule(self.task)

    def _close_unstarted(self) -> None:
        if not self.started:
            _close(self.awaitable)

    def _post(self) -> None:
        self.fn = self.args = self.awaitable = None  # type: ignore[assignment]
        self.posted = True
        try:
            self.kernel.call_soon_threadsafe(self._complete)
        except RuntimeError:
            pass  # the yieldio run is gone; nobody waits for this outcome


# -- cancellations, sent to asyncio in batches ----------------------------------------------
#
# One yieldio cancellation often reaches many run_asyncio calls at once (a
# cancel scope or a TaskGroup around them; a deadline). They are sent to each
# asyncio loop as ONE message, which cancels all their asyncio tasks in the
# same loop step, as asyncio's own TaskGroup does. Sent one message each, they
# were cancelled over several loop steps, and some libraries misbehave then:
# httpcore (httpx) can leak a connection pool slot for good when requests
# queued on a full pool are cancelled one loop step apart (encode/httpcore#1093).
#
# The batch is collected on the kernel side: _abort_wait adds the call to the
# kernel's current batch, and the first call of a batch sets a kernel timer
# due at once (the batch is its target). Timers fire when the kernel next
# looks at them: after the task step or batch of steps that cancelled the
# calls, or, for cancellations made by firing timers (a deadline), after the
# other timers due. That flush sends the batch, one message per asyncio loop.
# (A timer, not a kernel thread call: it needs no wake-up byte, so no system
# call. And not a list on the asyncio side with a flush scheduled when it goes
# from empty to non-empty: the loop thread could run that flush between two
# of the kernel's appends.) A call that is never cancelled costs nothing more.


class _CancelBatch:
    """The run_asyncio calls one kernel has cancelled since its last flush, in order.

    A kernel timer target: ``_timer`` and ``_on_deadline`` (see ``_timers``).
    """

    __slots__ = ("kernel", "calls", "_timer")

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.calls: list[_AsyncioCall] = []
        self._timer: float | None = None

    def _on_deadline(self) -> None:
        """(Kernel thread.) Send the batch: one message per asyncio loop."""
        if getattr(_batches, "current", None) is self:
            _batches.current = None
        by_loop: dict[asyncio.AbstractEventLoop, list[_AsyncioCall]] = {}
        for call in self.calls:
            by_loop.setdefault(call.loop, []).append(call)
        for loop, calls in by_loop.items():
            _send_cancels(loop, calls)


# The batch being collected, per kernel thread (a thread runs one kernel at a
# time; the kernel check below ignores one left over by an earlier run).
_batches = threading.local()


def _request_cancel(call: _AsyncioCall) -> None:
    """(Kernel thread.) Cancel ``call``'s asyncio task, with the others of this kernel step."""
    k = call.kernel
    if k.closed:  # (no later kernel step to wait for, nor a timer to fire)
        _send_cancels(call.loop, [call])
        return
    batch: _CancelBatch | None = getattr(_batches, "current", None)
    if batch is None or batch.kernel is not k:
        batch = _batches.current = _CancelBatch(k)
        k.add_timer(k.clock_now(), batch)
    batch.calls.append(call)


def _send_cancels(loop: asyncio.AbstractEventLoop, calls: list[_AsyncioCall]) -> None:
    try:
        # (After the calls' own _start messages, sent earlier by this same
        # thread: call_soon_threadsafe keeps the order, so each task exists.)
        loop.call_soon_threadsafe(_cancel_in_loop, calls)
    except RuntimeError:
        # The loop has closed since the calls were cancelled: none of them
        # can be answered any more. Not a lost cancellation: stop waiting.
        for call in calls:
            call._loop_unreachable()


def _cancel_in_loop(calls: list[_AsyncioCall]) -> None:
    """(Loop thread, one callback.) Cancel the asyncio tasks, all in this loop step."""
    for call in calls:
        if call.atask is not None:  # (None: its task factory failed; already answered)
            try:
                call.atask.cancel()
            except Exception:
                # (A task factory's own Task class failing to cancel must not
                # leave the rest of the batch uncancelled, waited for ever.)
                logging.getLogger("yieldio.aio").exception("cancelling %r failed", call.atask)


def _name_of(obj: Any) -> str:
    """A short name for a function or awaitable: ``fetch``, ``Client.get``, ``Future``."""
    name = getattr(obj, "__qualname__", None)
    if not isinstance(name, str):
        name = type(obj).__qualname__
    return name.rpartition("<locals>.")[2]


def _close(obj: Any) -> None:
    """Close an awaitable that will never be awaited (a call refused or never started).

    No "coroutine ... was never awaited" warning for it. Not only coroutines:
    a wrapper around one is awaitable and passes ``close()`` on to it --
    aiohttp's ``session.get(url)`` returns such a request context manager,
    whose coroutine warned when only coroutines were closed here.
    """
    # Only what speaks the coroutine protocol (send/throw/close): a server
    # object is awaitable and has close() too, and closing that would shut
    # down a live server that was merely passed by mistake.
    close = getattr(obj, "close", None)
    if close is not None and inspect.isawaitable(obj) and hasattr(obj, "send"):
        close()


def run_asyncio(fn_or_coro: Callable[..., Awaitable[T]] | Awaitable[T], *args: Any,
                loop: asyncio.AbstractEventLoop | None = None) -> Awaitable[T]:
    """From a yieldio task, run asyncio code on an asyncio loop; return its result.

    ``fn_or_coro`` is an ``async def`` function (called with ``args`` on the
    asyncio loop's thread) or an awaitable already created (a coroutine)::

        async def main():
            reader, writer = await yieldio.aio.run_asyncio(
                asyncio.open_connection, "example.com", 80)
            await yieldio.aio.run_asyncio(asyncio.sleep, 0.1)

        yieldio.run(main)

    The call runs as an asyncio task on the run's own asyncio loop thread
    (started on first use, shut down when :func:`yieldio.run` returns), or on
    ``loop``, an asyncio loop you run in another thread. The result is
    returned and an exception is raised as the original object, traceback
    kept. The caller's context variables are copied into the asyncio task.

    If the yieldio task is cancelled, the asyncio task is cancelled and
    waited for, then :class:`yieldio.Cancelled` is raised. If the asyncio
    side cancels it, :class:`AsyncioCancelled` is raised.
    """
    if inspect.isawaitable(fn_or_coro):
        if args:
            _close(fn_or_coro)
            raise TypeError(f"run_asyncio(): arguments given with an awaitable {fn_or_coro!r}; "
                            "pass the async function and its arguments instead")
        fn: Callable[..., Any] | None = None
        awaitable: Awaitable[Any] | None = fn_or_coro
        label = f"{_name_of(fn_or_coro)}()"
    elif callable(fn_or_coro):
        fn = fn_or_coro
        awaitable = None
        label = f"{_name_of(fn_or_coro)}()"
    else:
        raise TypeError(f"run_asyncio() needs an async function or an awaitable, "
                        f"not {fn_or_coro!r}")
    k = getattr(_state.local, "kernel", None)
    if k is None:
        _close(awaitable)
        _state.outside_run()
    if loop is not None:
        problem = _unusable_loop(loop)
        if problem:
            _close(awaitable)
            raise RuntimeError(f"run_asyncio(loop=...): {problem}")
    return _run_asyncio(fn, args, awaitable, label, loop)


def _unusable_loop(loop: asyncio.AbstractEventLoop) -> str:
    if loop.is_closed():
        return "the loop is closed"
    if not loop.is_running():
        return "the loop is not running (run it in another thread with loop.run_forever())"
    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    if here is loop:
        return "the loop runs in this very thread, blocked by yieldio.run(): it would never answer"
    return ""


@awaitable
def _run_asyncio(fn: Callable[..., Any] | None, args: tuple[Any, ...],
                 awaitable: Awaitable[Any] | None, label: str,
                 loop: asyncio.AbstractEventLoop | None) -> Generator[Any, Any, Any]:
    # The kernel of the run that *awaits* the call, not the one that created
    # it (as to_thread does): an awaitable made in one run and awaited in a
    # later one used the ended run's kernel (AttributeError on its
    # ``current`` task, or a wait parked in the wrong kernel).
    k: Kernel | None = getattr(_state.local, "kernel", None)
    if k is None:
        _close(awaitable)
        _state.outside_run()
    task = k.current
    if task._cancel_pending:
        _close(awaitable)
        task._raise_cancel()
    try:
        if loop is None:
            loop = _loop_thread(k).loop
        call = _AsyncioCall(k, task, loop, label, fn, args, awaitable)
        call.asyncgen = agen = _adopt_asyncgen(k, awaitable)
        if agen is not None:
            _keep_until_closed(loop, agen)
        loop.call_soon_threadsafe(call._start)
    except RuntimeError as exc:
        _close(awaitable)
        raise RuntimeError(f"run_asyncio(): cannot reach the asyncio loop: {exc}") from None
    k.thread_jobs += 1
    task._wait = call
    yield PARK
    error, call.error = call.error, None
    if task._cancel_pending and (error is None or isinstance(error, asyncio.CancelledError)):
        # Cancelled on our side, and the asyncio task has finished: report the
        # cancellation (an ordinary error raised while cancelling wins, below).
        task._raise_cancel()
    if error is not None:
        if isinstance(error, asyncio.CancelledError):
            if call.cancel_requested:
                # We asked for it, then our cancellation was withdrawn (a
                # shield switched on; a deadline that fired stays fired)
                # before the asyncio task finished: not Cancelled (nothing
                # here is cancelled any more), and not the asyncio side's doing.
                raise AsyncioCancelled(
                    f"the asyncio task running {label} was cancelled because yieldio asked "
                    "for it, but that cancellation was withdrawn (a shield was switched on) "
                    "before the asyncio task finished, so there is no result") from error
            raise AsyncioCancelled(
                f"the asyncio task running {label} was cancelled on the asyncio side") from error
        raise error
    return call.value


# -- asyncio -> yieldio ---------------------------------------------------------------------


class _RunHandle(Instrument):
    """Records the kernel of a yieldio run started in a worker thread.

    Passed to ``yieldio.run`` as an instrument with a ``before_run`` hook
    only: it records the kernel (and removes itself) before the main task
    takes its first step, so asyncio can cancel the run from outside.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kernel: Kernel | None = None
        self.cancel_requested = False

    def before_run(self) -> None:
        k: Kernel = _state.local.kernel
        with self.lock:
            self.kernel = k
            cancel = self.cancel_requested
        k.remove_instrument(self)
        if cancel and k.main_task is not None:
            k.main_task.cancel()

    def cancel(self) -> None:
        """Cancel the run's main task (from any thread)."""
        with self.lock:
            self.cancel_requested = True
            k = self.kernel
        if k is None:
            return  # before_run will see cancel_requested
        task = k.main_task
        if task is None:
            return
        try:
            k.call_soon_threadsafe(task.cancel)
        except RuntimeError:
            pass  # the run has already ended


@overload
async def run_yieldio(main: Callable[[Unpack[_Ts]], Awaitable[_T]], *args: *_Ts,
                      **run_kwargs: Any) -> _T: ...
@overload
async def run_yieldio(main: Callable[[Unpack[_Ts]], Generator[Any, Any, _T]],
                      *args: *_Ts, **run_kwargs: Any) -> _T: ...
@overload
async def run_yieldio(main: Awaitable[_T] | Generator[Any, Any, _T], **run_kwargs: Any) -> _T: ...
# (mypy cannot match a TypeVarTuple overload to an implementation's *args.)
async def run_yieldio(main: Any, *args: Any, **run_kwargs: Any) -> Any:  # type: ignore[misc]
    """From asyncio code, run ``yieldio.run(main, *args, **run_kwargs)`` in a thread.

    Waits for the run without blocking the asyncio loop and returns its
    result (or raises its exception)::

        async def fetch(n):
            await yieldio.sleep(0.1)
            return n * 2

        async def asyncio_main():
            return await yieldio.aio.run_yieldio(fetch, 21)

        assert asyncio.run(asyncio_main()) == 42

    ``run_kwargs`` are ``yieldio.run`` options (``clock=``, ``instruments=``,
    ``seed=``...). The caller's context variables are copied into the run.
    If the awaiting asyncio task is cancelled, the yieldio main task is
    cancelled, the run is waited for (its ``finally`` blocks run), and then
    ``asyncio.CancelledError`` propagates -- unless the run failed with an
    ordinary exception, which is raised instead so that it is not lost.
    """
    # The kernel first: a yieldio run started from asyncio code has a running
    # asyncio loop in its thread too, and got past the loop check to start a
    # second run in a thread, then failed on the asyncio future it yielded.
    if getattr(_state.local, "kernel", None) is not None:
        _discard(main)
        raise RuntimeError("run_yieldio() was awaited inside a yieldio run; it must be "
                           "awaited from asyncio code (from yieldio, await the function "
                           "directly)")
    try:
        aloop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("run_yieldio() must be awaited from asyncio code: no asyncio event "
                           "loop is running in this thread") from None
    coro = _as_coroutine(main, args, "run_yieldio()")
    handle = _RunHandle()
    instruments = [*run_kwargs.pop("instruments", ()), handle]
    ctx = contextvars.copy_context()
    done: asyncio.Future[tuple[Any, BaseException | None]] = aloop.create_future()

    def report(value: Any, error: BaseException | None) -> None:  # on the asyncio loop
        if not done.done():
            done.set_result((value, error))

    def work() -> None:
        value: Any = None
        error: BaseException | None = None
        try:
            value = ctx.run(run, coro, instruments=instruments, **run_kwargs)  # type: ignore[arg-type]
        except BaseException as exc:
            error = exc
        try:
            aloop.call_soon_threadsafe(report, value, error)
        except RuntimeError:
            pass  # the asyncio loop is gone; nobody waits for this outcome

    name = f"yieldio-run: {_name_of(main)}"
    thread = threading.Thread(target=work, name=name, daemon=True)
    try:
        thread.start()
    except BaseException:
        # (RuntimeError: can't start new thread.) The coroutine will never
        # run: close it, or it is reported as "never awaited" on top of the error.
        _discard(coro)
        raise
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            value, error = await asyncio.shield(done)
            break
        except asyncio.CancelledError as exc:
            # Cancel the run from outside, then keep waiting for it to end
            # (further cancellations are already covered by this one).
            if cancelled is None:
                cancelled = exc
                handle.cancel()
    thread.join()
    if cancelled is not None and (error is None or isinstance(error, Cancelled)):
        raise cancelled
    if error is not None:
        raise error
    return value
