"""Threads: run blocking code on workers, and call back into the kernel.

``await to_thread(fn, *args)`` runs ``fn`` on a bounded pool of daemon worker
threads (daemons, so a stuck call cannot hang interpreter exit) and waits
for its result without blocking other tasks. Inside such a worker,
``from_thread(fn, *args)`` runs ``fn`` back on the kernel's thread -- an
async function as a new task -- and blocks the worker until it is done.

Cancellation: a thread cannot be interrupted. By default a cancelled
``to_thread`` keeps waiting for the thread to finish, then returns nothing
and raises :class:`Cancelled` (so the work is never silently abandoned) --
unless the thread raised, in which case its exception is raised instead,
so that it is not lost. A call still waiting for a worker because the pool
is at ``max_workers`` has not started: cancelled, it is withdrawn and never
runs (trio's waits for a ``CapacityLimiter`` token, cancellably, too).
With ``cancellable=True`` the caller stops waiting at once and the thread's
eventual result is discarded. ``from_thread`` of an async function runs it
as a task that is cancelled if the kernel shuts down; the worker then gets
:class:`RuntimeError`. It is also cancelled when the ``to_thread`` call that
started the worker is cancelled (as trio's ``from_thread.run`` is: it runs
in the caller's cancel status); the worker then gets :class:`Cancelled`,
which, if it lets it through, the caller's cancel scope catches.

``to_thread(..., limiter=yieldio.CapacityLimiter(n))`` also caps how many
such calls run at once: each call first waits, cancellably and before any
thread is involved, for a token borrowed on its own behalf, and the token
is given back when the thread ends -- even when a ``cancellable=True``
caller stopped waiting long before (the thread still uses a worker), as
trio's ``to_thread.run_sync(limiter=...)`` does. A call cancelled while
still queued for a worker never runs, and gives its token back at once.

Threads the run did not start -- a library's callback thread, a
``threading.Thread`` of your own -- reach it through a :class:`RunToken`
taken inside the run (trio's ``TrioToken``, asyncio's
``loop.call_soon_threadsafe``): ``from_thread(fn, *args, token=token)``
waits for the result, ``token.run_sync_soon(fn, *args)`` does not.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar, TypeVarTuple, Unpack, overload

from . import _state
from ._exceptions import Cancelled
from ._kernel import Kernel
from ._limiter import CapacityLimiter
from ._run_token import RunToken, current_token
from ._task import Task
from ._traps import PARK
from ._typing import Waitable, awaitable

__all__ = ["to_thread", "from_thread", "WorkerPool", "default_pool", "RunToken",
           "current_token"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


class WorkerPool:
    """A bounded pool of daemon worker threads, started on demand.

    ::

        pool = yieldio.threads.WorkerPool(max_workers=4)
        await yieldio.to_thread(cpu_bound, data, pool=pool)
    """

    def __init__(self, max_workers: int = 40, idle_timeout: float = 10.0) -> None:
        # Checked here: a bad idle_timeout used to fail only later, inside an
        # idle worker's Condition.wait(), killing the thread while the pool
        # still counted it (as idle, too), so later calls waited for ever.
        if isinstance(max_workers, bool) or not isinstance(max_workers, int):
            raise TypeError(f"max_workers must be an int, not {max_workers!r}")
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, int | float):
            raise TypeError(f"idle_timeout must be a number of seconds, not {idle_timeout!r}")
        if not idle_timeout >= 0:  # (NaN too)
            raise ValueError(f"idle_timeout must be >= 0, not {idle_timeout!r}")
        self.max_workers = max_workers
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._jobs: deque[Callable[[], None]] = deque()
        self._idle = 0
        self._workers = 0
        self._cond = threading.Condition(self._lock)

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job()`` on a worker thread, starting one if none is idle and there is room.

        ::

            pool.submit(lambda: print("on a worker"))

        Returns at once; the result and errors of ``job`` are its own business
        (``to_thread`` wraps its call to report both). Past ``max_workers``,
        jobs queue until a worker is free.
        """
        self._submit(job)

    def _submit(self, job: Callable[[], None]) -> bool:
        """``submit``; True if ``job`` must wait for a busy worker (the pool is full)."""
        with self._lock:
            self._jobs.append(job)
            if self._idle:
                self._cond.notify()
            # An idle worker lowers _idle only once it runs: count queued jobs
            # against idle workers, or a burst of jobs would all queue behind
            # one woken worker while the pool has room for more threads.
            if len(self._jobs) <= self._idle:
                return False
            if self._workers >= self.max_workers:
                return True
            self._workers += 1
        t = threading.Thread(target=self._worker, name="yieldio-worker", daemon=True)
        try:
            t.start()
        except BaseException:
            # (RuntimeError: can't start new thread.) Undo both counts, or the
            # pool would believe in a worker that never existed and keep the
            # job queued for it: the caller's to_thread would wait forever.
            with self._lock:
                self._workers -= 1
                try:
                    self._jobs.remove(job)
                except ValueError:
                    pass  # an existing worker already took it: it will run
                else:
                    raise
        return False

    def _worker(self) -> None:
        while True:
            with self._lock:
                while not self._jobs:
                    self._idle += 1
                    # math.inf (never retire) overflows Condition.wait(): wait unbounded.
                    timeout = self.idle_timeout
                    got = self._cond.wait(timeout if timeout < threading.TIMEOUT_MAX else None)
                    self._idle -= 1
                    if not got and not self._jobs:
                        self._workers -= 1
                        return
                job = self._jobs.popleft()
            try:
                job()
            except BaseException as exc:
                # A job submitted by hand may raise ("its own business"): report
                # it as a dying thread would, but keep the worker. Letting it
                # end the thread left it counted in _workers, so a pool at
                # max_workers queued every later job for a worker that was gone.
                threading.excepthook(threading.ExceptHookArgs(
                    (type(exc), exc, exc.__traceback__, threading.current_thread())))
            # An idle worker must not keep its last job's closure alive (the
            # kernel, the task, the arguments): after the run ended, that
            # would hold its sockets and pipes open until the idle timeout.
            del job

    def _withdraw(self, job: Callable[[], None]) -> bool:
        """Take ``job`` back out of the queue; False if a worker already took it."""
        with self._lock:
            try:
                self._jobs.remove(job)
            except ValueError:
                return False
            return True

    @property
    def workers(self) -> int:
        """Threads alive now."""
        return self._workers


default_pool = WorkerPool()
_worker_local = threading.local()  # .kernel while a to_thread job runs


class _ThreadJob:
    """One to_thread call: the waiting task, and the thread's outcome."""

    __slots__ = ("kernel", "task", "value", "error", "finished", "abandoned", "cancellable",
                 "calls", "cancelled", "pool", "work", "fn", "limiter")

    def __init__(self, kernel: Kernel, task: Task, cancellable: bool, pool: WorkerPool) -> None:
        self.kernel = kernel
        self.task = task
        self.pool = pool
        self.fn: Any = None  # what runs, for describe_wait
        # The job, while it waits in the pool's queue for a busy worker.
        self.work: Callable[[], None] | None = None
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.abandoned = False
        self.cancellable = cancellable
        # The tasks running async functions this job's thread gave to
        # from_thread(), and whether the caller's cancellation reached them.
        self.calls: dict[Task, None] = {}
        self.cancelled = False
        # The limiter this job holds a token of (borrowed on its own behalf),
        # until the thread ends; None without limiter= or once given back.
        self.limiter: CapacityLimiter | None = None

    def __repr__(self) -> str:  # as limiter.statistics()["borrowers"] shows it
        return f"<{self._describe_wait(self.task)} call>"

    def _release_token(self) -> None:  # on the kernel thread
        limiter = self.limiter
        if limiter is not None:
            self.limiter = None
            # (Unless someone already released it by hand, having found the
            # job among the limiter's borrowers: an error raised here, in a
            # kernel callback, would be nobody's to catch.)
            if self in limiter._borrowers:
                limiter.release_on_behalf_of(self)

    def _abort_wait(self, task: Task) -> bool:
        if task._scope._eff and not self.cancelled:
            # The caller is cancelled (not merely hit by Ctrl-C, which only
            # aborts the main task's wait): so are the async calls its thread
            # is making through from_thread(). Without this, a thread blocked
            # in from_thread() on a task that waits for something would keep
            # an uncancellable to_thread() -- and the caller's timeout --
            # waiting for ever.
            self.cancelled = True
            for call in list(self.calls):
                call.cancel()
        # A call still queued behind a full pool is taken out of the queue,
        # cancellable or not: it never runs, and a limiter token it holds
        # goes back now, not when a worker frees up for unrelated calls.
        withdrawn = self.work is not None and self.pool._withdraw(self.work)
        if self.cancellable or withdrawn:
            # (The second case: still queued behind a full pool. Waiting for
            # a worker to free up just to run a call nobody wants any more
            # kept the caller's cancellation -- its timeout -- waiting on
            # unrelated calls, or for ever if those wait for the caller.
            # trio's to_thread waits for a CapacityLimiter token, cancellably,
            # in the same place; a call given to an idle or a new worker has
            # started, as trio's has once it holds a token.)
            self.abandoned = True
            self.work = None
            if withdrawn:
                self._release_token()  # it will never run: its token goes back now
            if self.limiter is None:
                self.kernel.thread_jobs -= 1
            # (Else a thread still holds the token, and a task may be waiting
            # for it: the job stays counted until _complete gives it back, or
            # the kernel would call that waiter deadlocked while the thread's
            # end is still to come.)
            return True
        return False

    def _describe_wait(self, task: Task) -> str:
        fn = self.fn
        while isinstance(fn, functools.partial):
            fn = fn.func
        name = getattr(fn, "__qualname__", None) or type(fn).__name__
        return f"to_thread({name})"

    def _complete(self) -> None:  # on the kernel thread
        if self.limiter is not None:
            self._release_token()
            if self.abandoned:
                self.kernel.thread_jobs -= 1  # counted until now: see _abort_wait
                return
        if self.abandoned:
            return
        self.finished = True
        self.kernel.thread_jobs -= 1
        if self.task._wait is self:
            self.kernel.reschedule(self.task)


def to_thread(fn: Callable[[Unpack[_Ts]], _T], *args: *_Ts, cancellable: bool = False,
              pool: WorkerPool | None = None,
              limiter: CapacityLimiter | None = None) -> Waitable[_T]:
    """Run ``fn(*args)`` in a worker thread; return its result or raise its error.

    ::

        data = await yieldio.to_thread(path.read_bytes)

    The caller's context variables are copied into the thread. An ``async
    def`` function is refused with ``TypeError`` (as trio does): the thread
    would only make a coroutine that nothing ever runs.

    With ``limiter=``, at most ``limiter.total_tokens`` such calls run at
    once (counting other borrowers of the same limiter)::

        limiter = yieldio.CapacityLimiter(2)
        await yieldio.to_thread(blocking_io, path, limiter=limiter)

    The call waits for a token before its thread starts (cancelled there, it
    never runs); the token is given back when the thread ends.
    """
    if not callable(fn):
        raise TypeError(f"to_thread() needs a callable, not {fn!r}")
    if inspect.iscoroutinefunction(fn):
        raise TypeError(f"to_thread() runs plain functions; {fn!r} is an async function: "
                        "await it directly instead")
    if limiter is not None and not isinstance(limiter, CapacityLimiter):
        raise TypeError(f"to_thread(limiter=...) needs a yieldio.CapacityLimiter, not {limiter!r}")
    return _to_thread(fn, args, cancellable, pool or default_pool, limiter)


@awaitable
def _to_thread(fn: Callable[..., Any], args: tuple[Any, ...], cancellable: bool,
               pool: WorkerPool, limiter: CapacityLimiter | None) -> Generator[Any, Any, Any]:
    k = _state.current_kernel()
    task = k.current
    if task._cancel_pending:
        task._raise_cancel()
    job = _ThreadJob(k, task, cancellable, pool)
    job.fn = fn
    if limiter is not None:
        # The job, not the task, borrows: the token must outlive the task's
        # wait when a cancellable=True caller leaves, and one task may have
        # several calls under way (in a TaskGroup's children, say).
        yield from limiter.acquire_on_behalf_of(job)
        job.limiter = limiter
        if task._cancel_pending:
            # Cancelled after the token was handed over (or during the fast
            # path's schedule point): no thread has started, so give it back
            # and leave, as a cancelled wait for the token would have.
            try:
                task._raise_cancel()
            except BaseException:
                job._release_token()
                raise
    ctx = contextvars.copy_context()

    def work() -> None:
        nonlocal fn, args
        job.work = None  # taken by a worker: no withdrawing it now (and no cycle left)
        if not job.abandoned:
            _worker_local.kernel = k
            _worker_local.job = job
            try:
                job.value = ctx.run(fn, *args)
                if inspect.iscoroutine(job.value):
                    # An async callable the check in to_thread() cannot see
                    # (an object with an async __call__): as trio does, refuse
                    # the coroutine it made instead of handing back one that
                    # nothing will run (and "never awaited" warnings).
                    job.value.close()
                    job.value = None
                    raise TypeError(f"to_thread() runs plain functions; {fn!r} returned a "
                                    "coroutine: await it directly instead")
            except BaseException as exc:
                job.error = exc
            finally:
                _worker_local.kernel = None
                _worker_local.job = None
        elif job.limiter is None:
            # Cancelled (cancellable=True) before a thread took it: nobody
            # wants the result, so do not run it. Stale calls would otherwise
            # pile up behind a slow resolver and delay the fresh ones.
            return
        # (Abandoned but holding a limiter token: report back all the same,
        # so that _complete gives the token back.)
        # Let go of the call before reporting back: once the result is in,
        # the run may end and its caller drop the arguments, and this
        # closure -- still the worker's until it loops -- must not keep them.
        fn = args = None  # type: ignore[assignment]
        try:
            k.call_soon_threadsafe(job._complete)
        except RuntimeError:
            # The kernel is gone; nobody waits for this result. A limiter
            # token is not given back from here (as in trio): the limiter
            # belongs to the kernel's thread, and its waiters with it.
            pass

    try:
        queued = pool._submit(work)  # first: if no thread can start, nothing is left counted
    except BaseException:
        job._release_token()  # ("can't start new thread": the call never runs)
        raise
    if queued:
        job.work = work  # queued for a busy worker: a cancellation may withdraw it
    k.thread_jobs += 1  # (the job reports back through the kernel thread, after this)
    task._wait = job
    yield PARK
    if job.error is not None:
        # Even if we were cancelled meanwhile: an error must not be replaced by
        # a Cancelled that a timeout would swallow (it is like an error raised
        # in a finally block; the cancellation is level-triggered and is seen
        # again at the next checkpoint).
        raise job.error
    if task._cancel_pending:
        # The thread finished while we were cancelled: report the cancellation.
        task._raise_cancel()
    return job.value


@overload
def from_thread(fn: Callable[[Unpack[_Ts]], Awaitable[_T]], *args: *_Ts,
                token: RunToken | None = None) -> _T: ...
@overload
def from_thread(fn: Callable[[Unpack[_Ts]], Generator[Any, Any, _T]], *args: *_Ts,
                token: RunToken | None = None) -> _T: ...
@overload
def from_thread(fn: Callable[[Unpack[_Ts]], _T], *args: *_Ts,
                token: RunToken | None = None) -> _T: ...
# (mypy cannot match a TypeVarTuple overload to an implementation's *args.)
def from_thread(fn: Callable[..., Any], *args: Any,  # type: ignore[misc]
                token: RunToken | None = None) -> Any:
    """From a ``to_thread`` worker, run ``fn(*args)`` on the kernel thread; block for the result.

    ``fn`` may be a plain function (called on the kernel thread) or an async
    function (run as a new task). It runs in a copy of the thread's context
    variables (which ``to_thread`` copied from its caller), as in trio::

        def blocking_part():
            config = yieldio.from_thread(load_config_async)
            ...

        await yieldio.to_thread(blocking_part)

    From any other thread, name the run with a :class:`RunToken`
    (``from_thread(fn, *args, token=token)``). An async function called
    that way is cancelled only if the run shuts down: there is no
    ``to_thread`` caller whose cancellation it could share.
    """
    if token is not None and not isinstance(token, RunToken):
        raise TypeError(f"from_thread(token=...) takes a RunToken (from "
                        f"yieldio.threads.current_token()), not {token!r}")
    running = getattr(_state.local, "kernel", None)
    if running is not None:
        if token is not None and token._kernel is not running:
            # A thread that runs a yieldio run of its own: blocking here
            # would stall every task of that run.
            raise RuntimeError("from_thread() would block this thread's own yieldio run; "
                               "use token.run_sync_soon(), or a yieldio.UniversalQueue")
        raise RuntimeError("from_thread() called on the kernel's own thread; just call or await it")
    k: Kernel | None
    job: _ThreadJob | None
    if token is not None:
        k, job = token._kernel, None
        if getattr(_worker_local, "kernel", None) is k:
            job = getattr(_worker_local, "job", None)  # a worker of that run: as without
    else:
        k = getattr(_worker_local, "kernel", None)
        job = getattr(_worker_local, "job", None)
    if k is None:
        raise RuntimeError("from_thread() must be called from a thread started by to_thread(), "
                           "or be given the run's token (yieldio.threads.current_token())")
    if k.closed:
        raise RuntimeError("the yieldio run that started this thread has ended")
    done = threading.Event()
    box: dict[str, Any] = {}
    # The thread's context (a copy of the to_thread caller's, plus what the
    # thread set since), as trio's and anyio's from_thread do: the function
    # sees the caller's variables; what it sets stays in the copy.
    ctx = contextvars.copy_context()

    def finish(value: Any = None, error: BaseException | None = None) -> None:
        box["value"] = value
        box["error"] = error
        done.set()

    def start() -> None:
        try:
            result = ctx.run(fn, *args)
        except BaseException as exc:
            finish(error=exc)
            return
        if hasattr(result, "send") and hasattr(result, "throw"):
            _spawn_system(k, result, finish, job, ctx)
        else:
            finish(result)

    try:
        k.call_soon_threadsafe(start)
    except RuntimeError:
        raise RuntimeError("the yieldio run that started this thread has ended") from None
    while not done.wait(0.5):
        if k.closed and not done.is_set():
            raise RuntimeError("the yieldio run ended before from_thread() finished")
    if box["error"] is not None:
        raise box["error"]
    return box["value"]


@awaitable
def _call(coro: Any) -> Generator[Any, Any, Any]:
    """Run ``coro`` as a trampolined call: ``await`` refuses a plain generator,
    which yieldio runs as a coroutine everywhere else (architecture §1)."""
    return (yield coro)


def _spawn_system(k: Kernel, coro: Any, finish: Callable[..., None],
                  job: _ThreadJob | None, context: contextvars.Context) -> None:
    """Run ``coro`` as a system task in ``context``; report its outcome through ``finish``.

    ``job`` is the to_thread() call whose thread asked: the task is cancelled
    with it (see ``_ThreadJob._abort_wait``).
    """

    async def runner() -> None:
        try:
            value = await (coro if inspect.isawaitable(coro) else _call(coro))
        except BaseException as exc:
            if not isinstance(exc, Cancelled):
                finish(error=exc)
            elif job is not None and job.cancelled and not job.abandoned:
                # Cancelled because the to_thread() caller was: raise Cancelled
                # in the thread, so that, passed on by the thread, it reaches
                # the caller's cancelled scope and is caught there.
                finish(error=Cancelled(
                    "the to_thread() call whose thread called from_thread() was cancelled"))
            elif job is not None and job.cancelled:
                # (cancellable=True: the caller has stopped waiting; nothing
                # catches a Cancelled for this thread any more.)
                finish(error=RuntimeError(
                    "the task started by from_thread() was cancelled: the "
                    "to_thread(cancellable=True) call that started this thread was cancelled"))
            else:
                finish(error=RuntimeError(
                    "the task started by from_thread() was cancelled (the run is ending)"))
            return
        finally:
            if job is not None:
                job.calls.pop(task, None)
        finish(value)

    task = k.spawn(runner(), k.root_scope, None, None, getattr(coro, "__qualname__", None),
                   context)
    k.system_tasks[task] = None
    if job is not None and not job.abandoned:
        # (An abandoned job's thread runs on unobserved: what it asks for
        # afterwards runs as a plain system task, as trio's does.)
        job.calls[task] = None
        if job.cancelled:
            task.cancel()  # the caller was cancelled before this call came in

