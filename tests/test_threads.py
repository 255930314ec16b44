"""to_thread / from_thread: results, errors, cancellation, misuse."""

from __future__ import annotations

import contextvars
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
