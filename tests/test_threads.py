"""to_thread / from_thread: results, errors, cancellation, misuse."""

from __future__ import annotations

import contextvars
import functools
import math
import re
import sys
import threading
import time

import pytest

import yieldio

var = contextvars.ContextVar("var", default="none")


def test_to_thread_returns_result_without_blocking_the_loop():
    async def ticker(log):
        for _ in range(5):
            log.append("tick")
            await yieldio.sleep(0.01)

    async def main():
        log = []
        async with yieldio.TaskGroup() as tg:
            tg.spawn(ticker, log)
            result = await yieldio.to_thread(lambda: (time.sleep(0.1), "slow")[1])
        return result, len(log)

    result, ticks = yieldio.run(main)
    assert result == "slow" and ticks == 5


def test_to_thread_raises_the_thread_error():
    def boom():
        raise ValueError("in thread")

    async def main():
        with pytest.raises(ValueError, match="in thread"):
            await yieldio.to_thread(boom)

    yieldio.run(main)


def test_to_thread_copies_context_and_runs_elsewhere():
    async def main():
        var.set("from task")
        return await yieldio.to_thread(lambda: (var.get(), threading.current_thread().name))

    value, name = yieldio.run(main)
    assert value == "from task" and name == "yieldio-worker"


def test_uncancellable_to_thread_waits_then_raises_cancelled():
    done = threading.Event()

    def work():
        time.sleep(0.2)
        done.set()
        return 1

    async def main():
        with yieldio.move_on_after(0.01) as scope:
            await yieldio.to_thread(work)
        return scope.cancelled_caught, done.is_set()

    assert yieldio.run(main) == (True, True)


def test_uncancellable_to_thread_cancelled_keeps_the_thread_error():
    # The caller is cancelled while the thread runs; the thread then fails.
    # Its error must not be dropped in favour of Cancelled (which a timeout
    # would swallow silently): like an error raised by a finally block, it
    # wins, as run_asyncio does with an error raised while cancelling.
    async def main():
        scope = yieldio.CancelScope()

        def work():
            yieldio.from_thread(scope.cancel)  # the caller is cancelled now
            raise OSError("disk full")

        with pytest.raises(OSError, match="disk full"):
            with scope:
                await yieldio.to_thread(work)
        return scope.cancel_called, scope.cancelled_caught

    assert yieldio.run(main) == (True, False)


def test_cancellable_to_thread_returns_at_once():
    release = threading.Event()

    def work():
        release.wait(5)

    async def main():
        t0 = yieldio.current_time()
        with yieldio.move_on_after(0.05):
            await yieldio.to_thread(work, cancellable=True)
        elapsed = yieldio.current_time() - t0
        release.set()
        return elapsed

    assert yieldio.run(main) < 2


def test_from_thread_sync_and_async():
    async def double(x):
        await yieldio.sleep(0.001)
        return x * 2

    def in_thread():
        me = yieldio.from_thread(lambda: threading.current_thread() is threading.main_thread())
        value = yieldio.from_thread(double, 21)
        return me, value

    async def main():
        return await yieldio.to_thread(in_thread)

    assert yieldio.run(main) == (True, 42)


def test_from_thread_propagates_errors():
    async def fails():
        raise KeyError("k")

    def in_thread():
        with pytest.raises(KeyError):
            yieldio.from_thread(fails)
        return "ok"

    async def main():
        return await yieldio.to_thread(in_thread)

    assert yieldio.run(main) == "ok"


def test_from_thread_misuse():
    with pytest.raises(RuntimeError, match="to_thread"):
        yieldio.from_thread(print)

    async def main():
        with pytest.raises(RuntimeError, match="own thread"):
            yieldio.from_thread(print)

    yieldio.run(main)


def test_to_thread_needs_callable():
    async def main():
        with pytest.raises(TypeError):
            await yieldio.to_thread(42)

    yieldio.run(main)


def test_to_thread_refuses_an_async_function():
    # It returned an un-run coroutine (and a "never awaited" warning later).
    async def fetch(x):
        return x

    async def main():
        for fn in (fetch, functools.partial(fetch, 1)):
            with pytest.raises(TypeError, match="async function"):
                await yieldio.to_thread(fn, 1)
        return await yieldio.to_thread(len, "abc")

    assert yieldio.run(main) == 3


def test_to_thread_refuses_a_callable_that_returns_a_coroutine():
    # An object with an async __call__ passes the async-function check; its
    # coroutine was handed back un-run (and warned "never awaited" later).
    # trio raises TypeError after the call; so do we, closing the coroutine.
    made = []

    class Fetcher:
        async def __call__(self):
            return 1

        def __repr__(self):
            return "<Fetcher>"

    def call(fetcher):
        coro = fetcher()
        made.append(coro)
        return coro

    async def main():
        with pytest.raises(TypeError, match="returned a coroutine"):
            await yieldio.to_thread(Fetcher())
        with pytest.raises(TypeError, match="returned a coroutine"):
            await yieldio.to_thread(call, Fetcher())
        return await yieldio.to_thread(len, "abc")

    assert yieldio.run(main) == 3
    assert made[0].cr_frame is None  # closed: no "never awaited" warning


def test_many_to_thread_calls_are_bounded_by_the_pool():
    async def main():
        pool = yieldio.threads.WorkerPool(max_workers=4)
        peak = {"now": 0, "max": 0}
        lock = threading.Lock()

        def work():
            with lock:
                peak["now"] += 1
                peak["max"] = max(peak["max"], peak["now"])
            time.sleep(0.005)
            with lock:
                peak["now"] -= 1

        async with yieldio.TaskGroup() as tg:
            for _ in range(40):
                tg.spawn(lambda: yieldio.to_thread(work, pool=pool))
        return peak["max"]

    assert yieldio.run(main) <= 4


def test_burst_of_jobs_gets_enough_threads():
    """Five jobs that wait for each other need five threads at once."""
    barrier = threading.Barrier(5, timeout=10)

    async def main():
        pool = yieldio.threads.WorkerPool(max_workers=10)
        await yieldio.to_thread(lambda: None, pool=pool)  # leaves one idle worker
        async with yieldio.TaskGroup() as tg:
            for _ in range(5):
                tg.spawn(lambda: yieldio.to_thread(barrier.wait, pool=pool))

    yieldio.run(main)


def test_a_thread_that_cannot_start_leaves_no_phantom_job(monkeypatch):
    # Thread.start() can fail (RuntimeError: can't start new thread). The
    # to_thread call must then fail cleanly: no job left queued, no worker
    # counted, and the kernel must not believe a thread is still running
    # (that would disable deadlock detection and the virtual clock's jumps).
    from yieldio.threads import WorkerPool

    pool = WorkerPool(max_workers=1)
    real_start = threading.Thread.start

    def failing_start(self):
        raise RuntimeError("can't start new thread")

    async def main():
        monkeypatch.setattr(threading.Thread, "start", failing_start)
        with pytest.raises(RuntimeError, match="can't start"):
            await yieldio.to_thread(lambda: 1, pool=pool)
        monkeypatch.setattr(threading.Thread, "start", real_start)
        await yieldio.sleep(10)  # autojumps only if no thread job is pending
        value = await yieldio.to_thread(lambda: 2, pool=pool)
        return value, yieldio.current_time()

    from yieldio.testing import VirtualClock

    assert yieldio.run(main, clock=VirtualClock(autojump=True)) == (2, 10.0)


def test_cancellable_calls_cancelled_before_a_thread_took_them_never_run():
    # One worker, busy: the calls queue behind it, and their callers give up.
    # Once the worker is free, the abandoned calls must not run (a slow DNS
    # lookup that every caller abandoned would otherwise still be made).
    pool = yieldio.threads.WorkerPool(max_workers=1)
    release = threading.Event()
    ran = []

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(lambda: yieldio.to_thread(release.wait, 10, pool=pool))
            await yieldio.sleep(0)
            for i in range(5):
                with yieldio.move_on_after(0.001):
                    await yieldio.to_thread(ran.append, i, cancellable=True, pool=pool)
            release.set()
        # FIFO: once this one is done, the abandoned ones were taken too.
        await yieldio.to_thread(ran.append, "last", pool=pool)

    yieldio.run(main)
    assert ran == ["last"]


def test_an_idle_worker_does_not_keep_its_last_job_alive():
    import gc
    import weakref

    class Payload:
        pass

    pool = yieldio.threads.WorkerPool(max_workers=1, idle_timeout=60)
    payload = Payload()
    ref = weakref.ref(payload)

    async def main(p):
        await yieldio.to_thread(lambda p: None, p, pool=pool)

    yieldio.run(main, payload)
    del payload
    gc.collect()
    assert ref() is None  # not held by the idle worker's last closure


def test_a_worker_lets_go_of_the_call_before_it_reports_back(monkeypatch):
    # The same, with no race: the worker is held just after it posted the
    # result, while the run ends and the caller drops the arguments. The
    # closure it still holds kept them (a flaky failure of the test above on
    # Python 3.13, where the worker was sometimes that slow).
    import gc
    import weakref

    from yieldio._kernel import Kernel

    class Payload:
        pass

    posted, release = threading.Event(), threading.Event()
    plain = Kernel.call_soon_threadsafe

    seen = []

    def post_then_stall(self, fn, *args):
        seen.append((threading.current_thread().name, getattr(fn, "__qualname__", fn)))
        stall = (getattr(fn, "__qualname__", "") == "_ThreadJob._complete"
                 and threading.current_thread() is not threading.main_thread()
                 and not posted.is_set())
        if stall:
            # Set before posting: once posted, the run may end (and the test
            # look) before this thread runs another line.
            posted.set()
        plain(self, fn, *args)
        if stall:
            release.wait(5)  # the worker stops right after reporting back

    monkeypatch.setattr(Kernel, "call_soon_threadsafe", post_then_stall)
    pool = yieldio.threads.WorkerPool(max_workers=1, idle_timeout=60)
    payload = Payload()
    ref = weakref.ref(payload)

    async def main(p):
        await yieldio.to_thread(lambda p: None, p, pool=pool)

    try:
        yieldio.run(main, payload)
        assert posted.is_set(), seen
        del payload
        gc.collect()
        assert ref() is None  # not held by the stalled worker's closure
    finally:
        release.set()


# -- rarer paths ----------------------------------------------------------------------------


def test_worker_pool_needs_at_least_one_worker():
    with pytest.raises(ValueError, match="max_workers"):
        yieldio.threads.WorkerPool(max_workers=0)


@pytest.mark.timeout(5)
def test_a_pool_whose_workers_never_retire_keeps_working(monkeypatch):
    # idle_timeout=math.inf overflowed Condition.wait() in the first idle
    # worker: the thread died still counted as a worker, and as idle, so the
    # next call was handed to it and waited for ever, even past its timeout.
    died = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    pool = yieldio.threads.WorkerPool(max_workers=1, idle_timeout=math.inf)

    async def main():
        first = await yieldio.to_thread(lambda: 1, pool=pool)
        await yieldio.sleep(0.05)  # the worker is idle now
        with yieldio.move_on_after(1):
            return first, await yieldio.to_thread(lambda: 2, pool=pool)

    assert yieldio.run(main) == (1, 2)
    assert died == []


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"max_workers": None}, TypeError), ({"max_workers": 2.5}, TypeError),
    ({"max_workers": True}, TypeError), ({"idle_timeout": "10"}, TypeError),
    ({"idle_timeout": -1}, ValueError), ({"idle_timeout": math.nan}, ValueError),
])
def test_worker_pool_arguments_are_checked_when_it_is_made(kwargs, error):
    # A bad idle_timeout used to be noticed only by an idle worker, which
    # then died (see above); a bad max_workers gave "'<' not supported".
    with pytest.raises(error, match=next(iter(kwargs))):
        yieldio.threads.WorkerPool(**kwargs)


def test_a_pool_at_its_limit_queues_jobs_and_idle_workers_exit():
    pool = yieldio.threads.WorkerPool(max_workers=2, idle_timeout=0.05)
    release = threading.Event()
    seen = []

    async def main():
        async with yieldio.TaskGroup() as tg:
            for _ in range(2):
                tg.spawn(lambda: yieldio.to_thread(release.wait, 5, pool=pool))
            queued = tg.spawn(lambda: yieldio.to_thread(seen.append, "queued ran", pool=pool))
            await yieldio.sleep(0.02)
            seen.append(("workers", pool.workers, queued.done()))  # at the limit: it waits
            release.set()
        return await yieldio.to_thread(lambda: pool.workers, pool=pool)

    assert yieldio.run(main) <= 2
    assert seen == [("workers", 2, False), "queued ran"]
    deadline = time.monotonic() + 2
    while pool.workers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.workers == 0


@pytest.mark.timeout(5)
def test_a_submitted_job_that_raises_does_not_use_up_the_pool(monkeypatch):
    # submit() leaves a job's errors to the job. One that raised used to end
    # its worker thread while the pool still counted it: with max_workers=1,
    # every later call queued for a worker that no longer existed.
    reported = []
    monkeypatch.setattr(threading, "excepthook", lambda args: reported.append(args.exc_value))
    pool = yieldio.threads.WorkerPool(max_workers=1, idle_timeout=0.05)
    boom = ValueError("boom")

    def bad():
        raise boom

    async def main():
        pool.submit(bad)
        with yieldio.move_on_after(1):
            return await yieldio.to_thread(lambda: "ran", pool=pool)

    assert yieldio.run(main) == "ran"
    assert reported == [boom]  # still reported, as an uncaught thread error is


def test_a_thread_that_cannot_start_is_no_error_if_a_busy_worker_took_the_job(monkeypatch):
    # The pool is one worker short of its limit and that worker is busy: a
    # new thread is started for the next job. If the start fails but the busy
    # worker has meanwhile taken the job, the job runs: to_thread succeeds.
    pool = yieldio.threads.WorkerPool(max_workers=2)
    release, taken = threading.Event(), threading.Event()
    real_start = threading.Thread.start

    def failing_start(self):
        release.set()  # the busy worker finishes and takes the queued job
        assert taken.wait(5)
        raise RuntimeError("can't start new thread")

    def job():
        taken.set()
        return "ran on the old worker"

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(lambda: yieldio.to_thread(release.wait, 5, pool=pool))
            await yieldio.sleep(0.01)
            monkeypatch.setattr(threading.Thread, "start", failing_start)
            try:
                result = await yieldio.to_thread(job, pool=pool)
            finally:
                monkeypatch.setattr(threading.Thread, "start", real_start)
        return result, pool.workers

    assert yieldio.run(main) == ("ran on the old worker", 1)


def test_the_task_tree_shows_a_to_thread_wait():
    started, release = threading.Event(), threading.Event()

    def work():
        started.set()
        release.wait(5)

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.to_thread, work, name="blocking")
            await yieldio.to_thread(started.wait, 5)
            tree = yieldio.debug.format_task_tree()
            release.set()
        return tree

    assert "'blocking' [waiting] -- waiting on to_thread" in yieldio.run(main)


def test_an_abandoned_thread_that_finishes_later_leaves_the_run_healthy():
    # A cancellable to_thread is abandoned; its thread finishes while the run
    # goes on. Its late report must change nothing: the run's count of
    # threads in flight stays right, so virtual time still autojumps.
    from yieldio.testing import VirtualClock

    pool = yieldio.threads.WorkerPool(max_workers=1)
    release = threading.Event()

    async def main():
        with yieldio.CancelScope() as scope:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(lambda: yieldio.to_thread(release.wait, 5, cancellable=True, pool=pool))
                await yieldio.sleep(0)
                scope.cancel()
        release.set()
        # One worker, FIFO: this call's report comes after the abandoned one's.
        await yieldio.to_thread(lambda: None, pool=pool)
        await yieldio.sleep(3600)  # would never end if the count went wrong
        return yieldio.current_time()

    # In a thread of its own, so that a broken count fails the test, not hangs it.
    result = []
    runner = threading.Thread(
        target=lambda: result.append(yieldio.run(main, clock=VirtualClock(autojump=True))),
        daemon=True)
    runner.start()
    runner.join(5)
    assert result == [3600.0]


def test_to_thread_in_a_cancelled_scope_never_runs_the_function():
    ran = []

    async def main():
        with yieldio.CancelScope() as scope:
            scope.cancel()
            await yieldio.to_thread(ran.append, "ran")
        return scope.cancelled_caught

    assert yieldio.run(main) is True and ran == []


def test_a_thread_function_raising_base_exceptions_reaches_the_caller():
    def interrupt():
        raise KeyboardInterrupt

    async def main():
        with pytest.raises(SystemExit) as info:
            await yieldio.to_thread(sys.exit, 3)
        with pytest.raises(KeyboardInterrupt):
            await yieldio.to_thread(interrupt)
        return info.value.code, await yieldio.to_thread(lambda: "the worker survived")

    assert yieldio.run(main) == (3, "the worker survived")


def test_from_thread_raises_errors_of_plain_functions_too():
    def in_thread():
        with pytest.raises(ValueError, match="invalid literal"):
            yieldio.from_thread(int, "not a number")
        with pytest.raises(SystemExit):
            yieldio.from_thread(sys.exit, 1)
        return yieldio.from_thread(int, "42")

    async def main():
        return await yieldio.to_thread(in_thread)

    assert yieldio.run(main) == 42


def test_from_thread_from_a_thread_to_thread_did_not_start():
    def plain_thread(out):
        try:
            yieldio.from_thread(lambda: None)
        except RuntimeError as exc:
            out.append(str(exc))

    def in_worker():
        out: list[str] = []
        t = threading.Thread(target=plain_thread, args=(out,))
        t.start()
        t.join()
        return out

    async def main():
        return await yieldio.to_thread(in_worker)

    assert yieldio.run(main) == [
        "from_thread() must be called from a thread started by to_thread(), or be given the "
        "run's token (yieldio.threads.current_token())"]


def abandon_when_started(fn, started):
    """A main() that runs ``fn`` with a cancellable to_thread, abandoned once it started."""

    async def main():
        async with yieldio.TaskGroup() as tg:
            task = tg.spawn(lambda: yieldio.to_thread(fn, cancellable=True))
            assert await yieldio.to_thread(started.wait, 5)
            task.cancel()

    return main


def test_from_thread_after_the_run_ended_raises_runtime_error():
    started, go, done = threading.Event(), threading.Event(), threading.Event()
    outcome = []

    def late():
        started.set()
        go.wait(5)
        try:
            outcome.append(yieldio.from_thread(lambda: "too late"))
        except RuntimeError as exc:
            outcome.append(str(exc))
        done.set()

    yieldio.run(abandon_when_started(late, started))
    go.set()
    assert done.wait(5)
    assert outcome == ["the yieldio run that started this thread has ended"]


def test_from_thread_queued_when_the_run_ends_raises_instead_of_hanging():
    # The worker's call reaches the kernel as the run ends (an instrument's
    # after_run hook is still busy): it is never run. The worker must not
    # wait for it forever. (If the worker is slower than the hook, its call
    # is refused at once instead: the same error, either way.)
    started, ending, done = threading.Event(), threading.Event(), threading.Event()
    outcome = []

    def late():
        started.set()
        ending.wait(5)
        try:
            outcome.append(yieldio.from_thread(lambda: "too late"))
        except RuntimeError as exc:
            outcome.append(str(exc))
        done.set()

    class SlowEnd(yieldio.Instrument):
        def after_run(self):
            ending.set()
            time.sleep(0.05)  # the worker posts its call meanwhile

    yieldio.run(abandon_when_started(late, started), instruments=[SlowEnd()])
    assert done.wait(2)
    assert len(outcome) == 1 and re.fullmatch(
        "the yieldio run (that started this thread has ended|ended before from_thread"
        r"\(\) finished)", outcome[0]), outcome


# -- from_thread() inside a cancelled to_thread() -------------------------------------------


def test_cancelled_to_thread_cancels_the_async_from_thread_call_it_waits_for():
    # trio runs from_thread.run in the to_thread caller's cancel status. Here
    # the async call ran as an uncancellable system task: a cancelled
    # (uncancellable) to_thread waited for the thread, the thread for the
    # call, and the call for ever -- the caller's timeout never ended it.
    outcome = []
    started = None

    async def waits_for_ever():
        started.set()
        try:
            with yieldio.move_on_after(3) as guard:  # bounds the test without the fix
                await yieldio.sleep_forever()
            outcome.append("timed out" if guard.cancelled_caught else "ended")
        except yieldio.Cancelled:
            outcome.append("cancelled")
            raise

    def work():
        try:
            yieldio.from_thread(waits_for_ever)
        except BaseException as exc:
            outcome.append(type(exc).__name__)
            raise

    async def main():
        nonlocal started
        started = yieldio.Event()
        scope = yieldio.CancelScope()

        async def cancel_soon():
            await started.wait()  # the async call is in flight
            scope.cancel()

        t0 = yieldio.current_time()
        async with yieldio.TaskGroup() as tg:
            tg.spawn(cancel_soon)
            with scope:
                await yieldio.to_thread(work)
        return scope.cancelled_caught, yieldio.current_time() - t0

    caught, elapsed = yieldio.run(main)
    assert outcome == ["cancelled", "Cancelled"]
    assert caught
    assert elapsed < 2


async def quick():
    """What the from_thread tests below ask the kernel to run."""
    await yieldio.sleep(0)
    return "ran"


def test_from_thread_after_the_caller_was_cancelled_raises_cancelled_in_the_thread():
    # The caller is cancelled first; the thread asks for an async call after:
    # that call starts cancelled, the thread sees Cancelled, and if it goes on
    # and returns normally the caller still reports its cancellation.
    seen = []

    async def main():
        scope = yieldio.CancelScope()

        def work():
            yieldio.from_thread(scope.cancel)
            try:
                seen.append(yieldio.from_thread(quick))
            except yieldio.Cancelled:
                seen.append("Cancelled")
            return "thread result"

        with scope:
            await yieldio.to_thread(work)
        return scope.cancelled_caught

    assert yieldio.run(main) is True
    assert seen == ["Cancelled"]


def test_abandoned_to_thread_still_lets_its_thread_call_from_thread():
    # cancellable=True abandons the thread: later from_thread calls run as
    # plain system tasks (as trio's do), not cancelled along with the caller.
    go_on = threading.Event()
    seen = []

    async def main():
        scope = yieldio.CancelScope()

        def work():
            yieldio.from_thread(scope.cancel)  # abandons this thread
            go_on.wait(5)
            seen.append(yieldio.from_thread(quick))

        with scope:
            await yieldio.to_thread(work, cancellable=True)
        # The caller has moved on; now the thread asks for a call.
        go_on.set()
        while not seen:
            await yieldio.sleep(0.01)

    yieldio.run(main)
    assert seen == ["ran"]


def test_an_uncancellable_call_cancelled_while_queued_for_a_worker_never_runs():
    # One worker, busy until `release`: the second call queues behind it. Its
    # caller's cancellation must withdraw it at once (no thread started it);
    # before, the cancel waited for the worker, which here waits for the
    # caller's own scope to end first: a hang.
    pool = yieldio.threads.WorkerPool(max_workers=1)
    release = threading.Event()
    ran = []

    async def main():
        from yieldio.testing import wait_all_tasks_blocked

        async def queued():
            await yieldio.to_thread(ran.append, "queued", pool=pool)

        async with yieldio.TaskGroup() as tg:
            tg.spawn(lambda: yieldio.to_thread(release.wait, 10, pool=pool))
            t = tg.spawn(queued)
            await wait_all_tasks_blocked()
            t.cancel()
            await wait_all_tasks_blocked()
            assert t.cancelled()  # without waiting for the busy worker
            release.set()
        # FIFO on one worker: had the withdrawn call stayed queued, it would run first.
        await yieldio.to_thread(ran.append, "last", pool=pool)

    yieldio.run(main)
    assert ran == ["last"]


def test_from_thread_runs_a_plain_generator_coroutine():
    # yieldio runs plain generators as coroutines (a task may be one), but the
    # task from_thread() started awaited it, which a plain generator refuses.
    def doubled(x):
        yield from yieldio.sleep(0.001)
        return x * 2

    @yieldio.coroutine
    def marked(x):
        yield from yieldio.sleep(0.001)
        return x + 1

    def in_thread():
        return yieldio.from_thread(doubled, 21), yieldio.from_thread(marked, 1)

    async def main():
        return await yieldio.to_thread(in_thread)

    assert yieldio.run(main) == (42, 2)


def test_a_task_in_to_thread_is_described_with_the_function_it_runs():
    import functools
    import threading

    from yieldio.debug import describe_wait
    from yieldio.testing import wait_all_tasks_blocked

    release = threading.Event()

    def fetch(url):
        release.wait(10)

    async def main():
        async with yieldio.TaskGroup() as tg:
            plain = tg.spawn(yieldio.to_thread, fetch, "a")
            wrapped = tg.spawn(yieldio.to_thread, functools.partial(fetch, "b"))
            await wait_all_tasks_blocked()
            seen = describe_wait(plain), describe_wait(wrapped)
            release.set()
        return seen

    assert yieldio.run(main) == (
        "to_thread(test_a_task_in_to_thread_is_described_with_the_function_it_runs.<locals>.fetch)",
    ) * 2


def test_from_thread_runs_in_the_context_of_the_thread():
    # from_thread() ran its function in the kernel's context, not the
    # thread's: a variable the caller of to_thread() had set (which the thread
    # saw) read as its default again in the function the thread called back,
    # and so did one the thread set itself. trio and anyio copy the thread's
    # context into from_thread calls, sync and async alike.
    async def read_async():
        await yieldio.sleep(0)
        return var.get()

    def in_thread():
        first = yieldio.from_thread(read_async), yieldio.from_thread(var.get)
        var.set("thread")
        then = yieldio.from_thread(read_async), yieldio.from_thread(var.get)
        yieldio.from_thread(var.set, "changed by the call")  # a copy: it stays there
        return first, then, var.get()

    async def main():
        var.set("caller")
        return await yieldio.to_thread(in_thread), var.get()

    assert yieldio.run(main) == (
        (("caller", "caller"), ("thread", "thread"), "thread"), "caller")


@pytest.mark.timeout(30)
def test_a_call_posted_while_the_kernel_runs_thread_calls_does_not_silence_later_ones():
    # A call posted from another thread while the kernel drained its queue of
    # thread calls ran in that same pass, and left the "wake-up byte
    # pending" flag set with the queue empty: from then on no poster wrote a
    # wake-up byte, and a loop polling with no timeout slept through them
    # (a to_thread result waited for the next unrelated event).
    import time as _time

    from yieldio import _state

    async def main():
        k = _state.current_kernel()
        ran = []

        def posted_during_the_drain():
            ran.append("second")

        def first():
            ran.append("first")
            # Run by the drain on the kernel's thread: a post now is one made
            # while the queue is being drained, as a racing thread's would be.
            k.call_soon_threadsafe(posted_during_the_drain)

        threading.Thread(target=k.call_soon_threadsafe, args=(first,)).start()
        start = _time.monotonic()
        # (The deadline keeps a broken loop from sleeping for ever: it wakes
        # at the deadline instead, which the time taken shows.)
        with yieldio.move_on_after(5):
            while len(ran) < 2:
                await yieldio.to_thread(_time.sleep, 0.01)
            for _ in range(3):  # each completes through call_soon_threadsafe
                await yieldio.to_thread(_time.sleep, 0.05)
        return ran, _time.monotonic() - start

    ran, took = yieldio.run(main)
    assert ran == ["first", "second"]
    assert took < 2, f"the to_thread result waited {took:.1f} s for an unrelated wake-up"


# -- RunToken: threads the run did not start ---------------------------------------------
def test_a_thread_of_its_own_calls_in_with_the_runs_token():
    # from_thread() only worked in to_thread workers: a library's callback
    # thread had no way in but a UniversalQueue.
    import threading

    from yieldio.threads import RunToken, current_token

    async def double(x):
        await yieldio.sleep(0)
        return 2 * x

    async def main():
        token = current_token()
        assert token == current_token() and isinstance(token, RunToken)
        assert hash(token) == hash(current_token()) and "running" in repr(token)
        inbox = yieldio.Queue()
        results = []

        def library_thread():
            results.append(yieldio.from_thread(double, 21, token=token))  # async fn: a task
            results.append(yieldio.from_thread(len, "abc", token=token))  # plain fn
            for i in range(3):
                token.run_sync_soon(inbox.put_nowait, i)  # returns at once, in order
            token.run_sync_soon(inbox.close)

        th = threading.Thread(target=library_thread)
        th.start()
        got = [item async for item in inbox]
        await yieldio.to_thread(th.join)
        return results, got, token

    results, got, token = yieldio.run(main)
    assert results == [42, 3] and got == [0, 1, 2]
    assert "ended" in repr(token)
    with pytest.raises(RuntimeError, match="run of this token has ended"):
        token.run_sync_soon(print)


def test_run_sync_soon_logs_what_its_function_raises_and_the_run_goes_on(caplog):
    import logging

    from yieldio.threads import current_token

    async def main():
        token = current_token()
        done = yieldio.Event()

        def boom():
            raise ValueError("in a callback")

        await yieldio.to_thread(token.run_sync_soon, boom)
        await yieldio.to_thread(token.run_sync_soon, done.set)
        await done.wait()

    with caplog.at_level(logging.ERROR, logger="yieldio"):
        yieldio.run(main)
    assert "run_sync_soon(" in caplog.text and "ValueError: in a callback" in caplog.text


def test_token_misuse_gets_clear_errors():
    import threading

    from yieldio.threads import current_token

    with pytest.raises(RuntimeError, match="no yieldio kernel is running"):
        current_token()

    async def main():
        token = current_token()
        with pytest.raises(RuntimeError, match="kernel's own thread"):
            yieldio.from_thread(len, "x", token=token)
        with pytest.raises(TypeError, match="takes a RunToken"):
            await yieldio.to_thread(functools.partial(yieldio.from_thread, len, "x",
                                                      token="nope"))
        with pytest.raises(TypeError, match="needs a callable"):
            token.run_sync_soon(42)
        errors = []

        def plain_thread():
            try:
                yieldio.from_thread(len, "x")
            except RuntimeError as exc:
                errors.append(str(exc))

        th = threading.Thread(target=plain_thread)
        th.start()
        await yieldio.to_thread(th.join)
        assert "current_token()" in errors[0]

    yieldio.run(main)


def test_from_thread_with_a_token_from_inside_another_run_is_refused_clearly():
    # It said "called on the kernel's own thread", which was not the reason:
    # the calling thread runs a yieldio run of its own, which it would block.
    import threading

    from yieldio.threads import current_token

    async def main():
        token = current_token()
        errors = []

        async def other_run():
            try:
                yieldio.from_thread(len, "x", token=token)
            except RuntimeError as exc:
                errors.append(str(exc))

        th = threading.Thread(target=yieldio.run, args=(other_run,))
        th.start()
        await yieldio.to_thread(th.join)
        assert errors == ["from_thread() would block this thread's own yieldio run; use "
                          "token.run_sync_soon(), or a yieldio.UniversalQueue"]

    yieldio.run(main)
