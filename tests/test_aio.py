"""yieldio.aio: the thread-based bridge to asyncio, both directions, on real asyncio."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import re
import subprocess
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import pytest

import yieldio
from yieldio.aio import AsyncioCancelled, run_asyncio, run_yieldio
from yieldio.testing import VirtualClock

var = contextvars.ContextVar("var", default="none")


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "yieldio-asyncio" and t.is_alive()]


async def double_later(n):
    await asyncio.sleep(0.001)
    return n * 2


# -- yieldio -> asyncio: results and errors ---------------------------------------------------


def test_run_asyncio_returns_the_result_of_an_async_function_or_a_coroutine():
    async def main():
        a = await run_asyncio(double_later, 21)
        b = await run_asyncio(double_later(5))
        return a, b

    assert yieldio.run(main) == (42, 10)


def test_run_asyncio_runs_asyncio_sleep_on_another_thread_without_blocking_yieldio():
    async def ticker(log):
        for _ in range(5):
            log.append("tick")
            await yieldio.sleep(0.005)

    async def on_asyncio():
        await asyncio.sleep(0.1)
        return threading.current_thread().name, asyncio.get_running_loop().is_running()

    async def main():
        log: list[str] = []
        async with yieldio.TaskGroup() as tg:
            tg.spawn(ticker, log)
            result = await run_asyncio(on_asyncio)
        return result, len(log)

    (name, running), ticks = yieldio.run(main)
    assert name == "yieldio-asyncio" and running and ticks == 5


def test_run_asyncio_raises_the_original_exception_with_its_traceback():
    raised = []

    async def broken():
        await asyncio.sleep(0)
        err = ValueError("from asyncio")
        raised.append(err)
        raise err

    async def main():
        with pytest.raises(ValueError, match="from asyncio") as info:
            await run_asyncio(broken)
        return info.value

    err = yieldio.run(main)
    assert err is raised[0]
    functions = [frame.name for frame in traceback.extract_tb(err.__traceback__)]
    assert "broken" in functions and "main" in functions


def test_run_asyncio_awaits_an_asyncio_future_and_copies_the_context():
    async def make_future():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.call_later(0.01, fut.set_result, var.get())
        return await fut

    async def main():
        var.set("from yieldio")
        return await run_asyncio(make_future)

    assert yieldio.run(main) == "from yieldio"


def test_many_concurrent_calls_share_one_loop_thread():
    async def where(i):
        await asyncio.sleep(0.01)
        return i, threading.get_ident(), id(asyncio.get_running_loop())

    async def main():
        async with yieldio.TaskGroup() as tg:
            tasks = [tg.spawn(run_asyncio, where, i) for i in range(100)]
            await yieldio.sleep(0.001)
            assert len(loop_threads()) == 1
        return [t.result() for t in tasks]

    results = yieldio.run(main)
    assert [r[0] for r in results] == list(range(100))
    assert len({r[1] for r in results}) == 1 and len({r[2] for r in results}) == 1
    assert results[0][1] != threading.get_ident()


def test_the_loop_thread_starts_on_first_use_and_is_gone_after_run():
    seen = []

    async def main():
        assert loop_threads() == []  # not started before the first call
        await run_asyncio(asyncio.sleep, 0)
        seen.extend(loop_threads())

    yieldio.run(main)
    assert len(seen) == 1 and not seen[0].is_alive()
    assert loop_threads() == []


def test_pending_asyncio_tasks_are_cancelled_when_the_run_ends():
    log = []

    async def background():
        try:
            await asyncio.sleep(10)
        finally:
            log.append("background cancelled")

    async def spawn_background():
        # A fire-and-forget asyncio task, still pending when yieldio.run ends.
        log.append(asyncio.get_running_loop().create_task(background()))
        await asyncio.sleep(0)

    async def main():
        await run_asyncio(spawn_background)

    yieldio.run(main)
    assert log[1:] == ["background cancelled"] and log[0].cancelled()
    assert loop_threads() == []


def test_each_run_gets_its_own_loop_and_closes_it():
    async def the_loop():
        return asyncio.get_running_loop()

    async def main():
        return await run_asyncio(the_loop)

    first, second = yieldio.run(main), yieldio.run(main)
    assert first is not second and first.is_closed() and second.is_closed()
    assert loop_threads() == []


def test_run_asyncio_keeps_deadlock_detection_and_autojump_honest():
    clock = VirtualClock(autojump=True)

    async def sleeper():
        await yieldio.sleep(1000)

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(sleeper)
            # Real asyncio work in flight: virtual time must not jump to 1000,
            # and a lone task waiting on asyncio is no deadlock.
            await run_asyncio(asyncio.sleep, 0.05)
            during = yieldio.current_time()
        return during, yieldio.current_time()

    during, after = yieldio.run(main, clock=clock)
    assert during == 0.0 and after == 1000.0


def test_run_asyncio_with_a_loop_of_your_own():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="my-asyncio", daemon=True)
    thread.start()
    try:
        async def where():
            return threading.current_thread().name

        async def main():
            name = await run_asyncio(where, loop=loop)
            return name, loop_threads()

        assert yieldio.run(main) == ("my-asyncio", [])
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def test_cancelling_a_call_to_a_loop_of_your_own_that_was_closed_does_not_hang():
    # The user's loop was stopped and closed while a call was pending: the
    # asyncio task will never finish and never report. Cancelling the yieldio
    # side must then end the wait at once (it used to wait forever).
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="my-asyncio", daemon=True)
    thread.start()
    started = threading.Event()

    async def pending():
        started.set()
        await asyncio.sleep(10)

    async def call():
        await run_asyncio(pending, loop=loop)

    async def main():
        async with yieldio.TaskGroup() as tg:
            task = tg.spawn(call)
            assert await yieldio.to_thread(started.wait, 5)
            loop.call_soon_threadsafe(loop.stop)
            await yieldio.to_thread(thread.join)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the pending task is destroyed
                loop.close()
            task.cancel()
            with yieldio.move_on_after(5) as scope:
                with pytest.raises(yieldio.TaskCancelled):
                    await task.join()
            return scope.cancelled_caught

    try:
        assert yieldio.run(main) is False
    finally:
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()


# -- yieldio cancellation crosses over ----------------------------------------------------


def slow_asyncio(log: list[str]):
    async def slow():
        try:
            log.append("asyncio started")
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            log.append("asyncio cancelled")
            raise
        finally:
            await asyncio.sleep(0.02)  # slow cleanup: yieldio must wait for it
            log.append("asyncio finally")

    return slow


def test_move_on_after_cancels_the_asyncio_task_and_waits_for_its_cleanup():
    log: list[str] = []

    async def main():
        with yieldio.move_on_after(0.05) as scope:
            try:
                await run_asyncio(slow_asyncio(log))
            except yieldio.Cancelled:
                log.append("yieldio saw Cancelled")
                raise
        return scope.cancelled_caught

    assert yieldio.run(main) is True
    assert log == ["asyncio started", "asyncio cancelled", "asyncio finally",
                   "yieldio saw Cancelled"]


def test_fail_after_raises_timeout_error_after_the_asyncio_cleanup():
    log: list[str] = []

    async def main():
        with pytest.raises(TimeoutError):
            with yieldio.fail_after(0.05):
                await run_asyncio(slow_asyncio(log))
        log.append("TimeoutError")

    yieldio.run(main)
    assert log[-2:] == ["asyncio finally", "TimeoutError"]


def test_task_cancel_cancels_the_asyncio_task():
    log: list[str] = []

    async def main():
        async with yieldio.TaskGroup() as tg:
            task = tg.spawn(run_asyncio, slow_asyncio(log))
            await yieldio.sleep(0.05)
            task.cancel()
            with pytest.raises(yieldio.TaskCancelled):
                await task.join()
            log.append("joined")

    yieldio.run(main)
    assert log == ["asyncio started", "asyncio cancelled", "asyncio finally", "joined"]


def test_cancelled_before_the_call_never_starts_the_asyncio_side():
    log: list[str] = []

    async def main():
        with yieldio.CancelScope() as scope:
            scope.cancel()
            await run_asyncio(slow_asyncio(log)())
        return scope.cancelled_caught

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine was never awaited"
        assert yieldio.run(main) is True
        gc.collect()
    assert log == []


def test_an_error_raised_by_the_asyncio_cleanup_is_not_lost():
    async def cleanup_fails():
        try:
            await asyncio.sleep(10)
        finally:
            raise OSError("cleanup failed")

    async def main():
        with pytest.raises(OSError, match="cleanup failed"):
            with yieldio.move_on_after(0.02):
                await run_asyncio(cleanup_fails)

    yieldio.run(main)


def test_asyncio_side_cancellation_raises_asyncio_cancelled():
    async def cancelled_by_asyncio():
        me = asyncio.current_task()
        assert me is not None
        asyncio.get_running_loop().call_later(0.01, me.cancel, "asyncio said stop")
        await asyncio.sleep(10)

    async def raises_cancelled():
        raise asyncio.CancelledError

    async def main():
        for fn in (cancelled_by_asyncio, raises_cancelled):
            with pytest.raises(AsyncioCancelled, match=fn.__name__) as info:
                await run_asyncio(fn)
            assert isinstance(info.value, RuntimeError)
            assert isinstance(info.value.__cause__, asyncio.CancelledError)
        await yieldio.sleep(0)  # the task itself was not cancelled
        return "still running"

    assert yieldio.run(main) == "still running"


@pytest.mark.timeout(10)
def test_run_asyncio_cancelled_then_shielded_does_not_blame_the_asyncio_side():
    # The caller was told the task was "cancelled on the asyncio side", though
    # yieldio itself had cancelled it (and then withdrew the cancellation).
    async def slow():
        await asyncio.sleep(60)

    async def main():
        with yieldio.CancelScope() as outer:
            with yieldio.CancelScope() as inner:
                async def withdraw():
                    await yieldio.sleep(0.01)  # the asyncio call is in flight
                    outer.cancel()             # -> the asyncio task is asked to cancel
                    inner.shield = True        # -> and the caller is no longer cancelled

                async with yieldio.TaskGroup() as tg:
                    tg.spawn(withdraw)
                    with pytest.raises(AsyncioCancelled) as info:
                        await run_asyncio(slow)
            await yieldio.sleep(0)  # the outer cancellation is still there
        return str(info.value), outer.cancelled_caught

    message, caught = yieldio.run(main)
    assert "asyncio side" not in message
    assert "yieldio asked" in message and "withdrawn" in message
    assert caught


@pytest.mark.timeout(10)
def test_run_asyncio_cancelled_on_the_asyncio_side_still_says_so():
    async def cancels_itself():
        asyncio.current_task().cancel()
        await asyncio.sleep(0)

    async def main():
        with pytest.raises(AsyncioCancelled, match="cancelled on the asyncio side"):
            await run_asyncio(cancels_itself)

    yieldio.run(main)


def test_task_tree_shows_the_asyncio_wait():
    started = threading.Event()

    async def fetch():
        started.set()
        await asyncio.sleep(10)

    async def main():
        async with yieldio.TaskGroup() as tg:
            task = tg.spawn(run_asyncio, fetch, name="caller")
            await yieldio.to_thread(started.wait, 5)
            tree = yieldio.debug.format_task_tree()
            task.cancel()
            tree_cancelling = yieldio.debug.format_task_tree()
        return tree, tree_cancelling

    tree, cancelling = yieldio.run(main)
    assert "'caller' [waiting] -- waiting on asyncio: fetch()" in tree
    assert "asyncio: fetch() (cancelling)" in cancelling


# -- asyncio -> yieldio ---------------------------------------------------------------------


def test_run_yieldio_returns_results_and_raises_errors():
    async def on_yieldio(n):
        await yieldio.sleep(0.001)
        return n + 1, threading.current_thread().name

    async def fails():
        await yieldio.sleep(0)
        raise KeyError("from yieldio")

    async def main():
        value, name = await run_yieldio(on_yieldio, 1)
        with pytest.raises(KeyError, match="from yieldio"):
            await run_yieldio(fails)
        return value, name

    value, name = asyncio.run(main())
    assert value == 2 and name.startswith("yieldio-run")


def test_run_yieldio_does_not_block_asyncio_and_passes_run_options():
    async def on_yieldio():
        await yieldio.sleep(3600)  # virtual: instant
        return var.get(), yieldio.current_time()

    async def ticker(log):
        for _ in range(3):
            log.append("tick")
            await asyncio.sleep(0.001)

    async def main():
        var.set("from asyncio")
        log: list[str] = []
        tick = asyncio.create_task(ticker(log))
        result = await run_yieldio(on_yieldio, clock=VirtualClock(autojump=True))
        await tick
        return result, log

    result, log = asyncio.run(main())
    assert result == ("from asyncio", 3600.0) and len(log) == 3


def test_wait_for_timeout_cancels_the_yieldio_run_and_runs_its_finally_blocks():
    log: list[str] = []

    async def on_yieldio():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(child)
            try:
                await yieldio.sleep(10)
            finally:
                with yieldio.CancelScope(shield=True):
                    await yieldio.sleep(0.02)  # cleanup that itself waits
                log.append("main finally")

    async def child():
        try:
            await yieldio.sleep(10)
        finally:
            log.append("child finally")

    async def main():
        try:
            await asyncio.wait_for(run_yieldio(on_yieldio), 0.05)
        except TimeoutError:
            log.append("asyncio TimeoutError")

    asyncio.run(main())
    assert sorted(log[:2]) == ["child finally", "main finally"]
    assert log[2:] == ["asyncio TimeoutError"]
    assert not [t for t in threading.enumerate() if t.name.startswith("yieldio-run")]


def test_cancelling_the_asyncio_task_raises_cancelled_error_after_the_run_ends():
    log: list[str] = []

    async def on_yieldio():
        try:
            await yieldio.sleep(10)
        finally:
            log.append("yieldio finally")

    async def main():
        task = asyncio.create_task(run_yieldio(on_yieldio))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        log.append("asyncio saw CancelledError")

    asyncio.run(main())
    assert log == ["yieldio finally", "asyncio saw CancelledError"]


def test_cancelled_at_once_still_cancels_the_run():
    log: list[str] = []

    async def on_yieldio():
        log.append("yieldio started")
        await yieldio.sleep(10)

    async def main():
        task = asyncio.create_task(run_yieldio(on_yieldio))
        await asyncio.sleep(0)  # the thread is started, the run may not be yet
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    t0 = time.perf_counter()
    asyncio.run(main())
    assert time.perf_counter() - t0 < 5  # the 10 s sleep was cancelled


def test_both_directions_nest():
    async def yieldio_inner(n):
        await yieldio.sleep(0)
        return n * 3

    async def asyncio_middle(n):
        return await run_yieldio(yieldio_inner, n)

    async def main():
        return await run_asyncio(asyncio_middle, 7)

    assert yieldio.run(main) == 21
    assert loop_threads() == []


# -- errors -----------------------------------------------------------------------------------


def test_run_asyncio_outside_a_run_gives_the_usual_error():
    with pytest.raises(RuntimeError, match="yieldio.run"):
        run_asyncio(asyncio.sleep, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="yieldio.run"):
            run_asyncio(asyncio.sleep(0))  # the coroutine is closed, not leaked
        gc.collect()


def test_run_asyncio_rejects_what_is_not_awaitable():
    async def main():
        with pytest.raises(TypeError, match="42"):
            await run_asyncio(42)
        with pytest.raises(TypeError, match="arguments given"):
            await run_asyncio(asyncio.sleep(0), 1)
        with pytest.raises(TypeError, match="plain.*returned 5, which is not awaitable"):
            await run_asyncio(plain)

    def plain():
        return 5

    yieldio.run(main)


def test_run_asyncio_with_an_unusable_loop():
    loop = asyncio.new_event_loop()
    try:
        async def main():
            with pytest.raises(RuntimeError, match="not running"):
                await run_asyncio(asyncio.sleep, 0, loop=loop)

        yieldio.run(main)
    finally:
        loop.close()


def test_run_yieldio_needs_a_running_asyncio_loop():
    async def on_yieldio():
        return 1

    coro = run_yieldio(on_yieldio)
    with pytest.raises(RuntimeError, match="no asyncio event loop is running"):
        coro.send(None)

    async def main():
        with pytest.raises(RuntimeError, match="awaited inside a yieldio run"):
            await run_yieldio(on_yieldio)

    yieldio.run(main)


def test_run_yieldio_inside_a_yieldio_run_started_from_asyncio_code_is_refused_first():
    # With an asyncio loop running in the thread too, the loop check passed:
    # a second run started in a thread (and ran main), then the caller got
    # "task 'main' yielded <Future pending ...>".
    import threading

    ran = []

    async def side_effect():
        ran.append(threading.current_thread().name)

    async def on_yieldio():
        with pytest.raises(RuntimeError, match="awaited inside a yieldio run"):
            await run_yieldio(side_effect)
        return "refused"

    async def asyncio_main():
        return yieldio.run(on_yieldio)  # (blocks this loop: it is only the setting)

    assert asyncio.run(asyncio_main()) == "refused"
    assert ran == []


def test_run_yieldio_rejects_bad_arguments_at_once():
    async def main():
        with pytest.raises(TypeError, match="expects an async function"):
            await run_yieldio(42)

    asyncio.run(main())


def test_awaiting_an_asyncio_object_in_yieldio_points_at_the_bridge():
    loop = asyncio.new_event_loop()
    try:
        async def main():
            with pytest.raises(TypeError, match="use the yieldio.aio bridge"):
                await asyncio.futures._PyFuture(loop=loop)  # the pure-Python Future

        yieldio.run(main)
    finally:
        loop.close()


def test_awaiting_a_c_asyncio_future_in_yieldio_points_at_the_bridge():
    loop = asyncio.new_event_loop()
    try:
        async def main():
            with pytest.raises(TypeError, match="use the yieldio.aio bridge"):
                await loop.create_future()

        yieldio.run(main)
    finally:
        loop.close()


# -- a real asyncio library call --------------------------------------------------------------


def test_asyncio_open_connection_to_a_yieldio_server():
    async def echo(stream):
        async for data in stream:
            await stream.write(data.upper())

    async def client(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"hello from asyncio\n")
            await writer.drain()
            return await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()

    async def main():
        async with yieldio.serve_tcp(echo, "127.0.0.1", 0) as server:
            return await run_asyncio(client, server.port)

    assert yieldio.run(main) == b"HELLO FROM ASYNCIO\n"


def test_yieldio_open_tcp_stream_to_an_asyncio_server():
    async def handle(reader, writer):
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def client(port):
        async with await yieldio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.write(b"hello from yieldio\n")
            return await stream.readline()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            return await run_yieldio(client, port)

    assert asyncio.run(main()) == b"HELLO FROM YIELDIO\n"


# -- rarer paths: failures around the loop thread and the asyncio task ---------------------


def test_run_asyncio_fails_cleanly_when_the_loop_thread_cannot_start(monkeypatch):
    # Thread.start() can fail (RuntimeError: can't start new thread): the call
    # must fail with RuntimeError, the half-made loop must be closed (the
    # autouse fixture checks its fds), the coroutine closed without a warning,
    # and a later call must start the loop thread normally.
    real_start = threading.Thread.start

    def failing_start(self):
        raise RuntimeError("can't start new thread")

    async def main():
        monkeypatch.setattr(threading.Thread, "start", failing_start)
        with pytest.raises(RuntimeError, match="cannot reach the asyncio loop: can't start"):
            await run_asyncio(double_later(1))
        monkeypatch.setattr(threading.Thread, "start", real_start)
        assert loop_threads() == []
        return await run_asyncio(double_later, 2)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert yieldio.run(main) == 4
        gc.collect()
    assert loop_threads() == []


def test_a_task_factory_that_fails_fails_the_call_without_never_awaited_warnings():
    # An old-style task factory (no 'context' argument) on the caller's loop:
    # create_task() raises TypeError. The caller gets it; neither the caller's
    # coroutine nor the bridge's own wrapper is left "never awaited".
    loop = asyncio.new_event_loop()
    loop.set_task_factory(lambda loop, coro: asyncio.Task(coro, loop=loop))
    thread = threading.Thread(target=loop.run_forever, name="my-asyncio", daemon=True)
    thread.start()

    async def main():
        with pytest.raises(TypeError, match="context"):
            await run_asyncio(double_later(1), loop=loop)
        with pytest.raises(TypeError, match="context"):
            await run_asyncio(double_later, 1, loop=loop)

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yieldio.run(main)
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            gc.collect()
        assert [str(w.message) for w in caught] == []
    finally:
        loop.close()


def test_cancelled_before_the_asyncio_task_took_a_step_never_runs_it():
    # The asyncio loop is busy (a blocking call) while a yieldio task posts a
    # call and is cancelled: the asyncio task is cancelled before its first
    # step. Its body never runs, its coroutine is closed (no warning), and the
    # yieldio task ends cancelled, not with AsyncioCancelled.
    started, release = threading.Event(), threading.Event()
    log: list[str] = []

    async def hog_the_loop():
        started.set()
        release.wait(5)  # blocking on purpose

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(run_asyncio, hog_the_loop)
            assert await yieldio.to_thread(started.wait, 5)
            task = tg.spawn(run_asyncio, slow_asyncio(log)(), name="caller")
            await yieldio.sleep(0)
            assert "'caller' [waiting] -- waiting on asyncio" in yieldio.debug.format_task_tree()
            task.cancel()
            # Cancellations go to asyncio in one batch at the end of the
            # kernel's step (all those of one scope in one asyncio loop step):
            # end this step before the loop is let go.
            await yieldio.sleep(0)
            release.set()
            with pytest.raises(yieldio.TaskCancelled):
                await task.join()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yieldio.run(main)
        gc.collect()
    assert log == []


def test_an_asyncio_task_failing_while_cancelled_at_the_end_of_the_run_is_reported():
    reports: list[dict] = []

    async def background():
        try:
            await asyncio.sleep(10)
        finally:
            raise OSError("cleanup of a fire-and-forget task failed")

    async def spawn_background():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: reports.append(context))
        loop.create_task(background())
        await asyncio.sleep(0)

    async def main():
        await run_asyncio(spawn_background)

    yieldio.run(main)
    assert len(reports) == 1
    assert "during yieldio run shutdown" in reports[0]["message"]
    assert isinstance(reports[0]["exception"], OSError)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_the_loop_thread_survives_and_reports_an_exit_raised_by_asyncio_code(exc_type):
    # asyncio re-raises KeyboardInterrupt and SystemExit out of run_forever().
    # The loop thread must keep answering the calls in flight -- and must not
    # drop the exception silently: it goes to the loop's exception handler.
    reports: list[dict] = []

    async def poison():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: reports.append(context))

        def boom():
            raise exc_type("from a callback")

        loop.call_soon(boom)
        await asyncio.sleep(0.01)
        loop.stop()  # asyncio code stopping the loop does not kill the bridge either
        await asyncio.sleep(0.01)
        return "still answered"

    async def main():
        first = await run_asyncio(poison)
        return first, await run_asyncio(double_later, 4)

    assert yieldio.run(main) == ("still answered", 8)
    assert [type(r["exception"]) for r in reports] == [exc_type]
    assert loop_threads() == []


def test_the_task_tree_names_a_call_by_its_type_when_it_has_no_qualname():
    import functools

    started = threading.Event()

    async def fetch(n):
        started.set()
        await asyncio.sleep(10)

    async def main():
        async with yieldio.TaskGroup() as tg:
            task = tg.spawn(run_asyncio, functools.partial(fetch, 1), name="caller")
            await yieldio.to_thread(started.wait, 5)
            tree = yieldio.debug.format_task_tree()
            task.cancel()
        return tree

    assert "'caller' [waiting] -- waiting on asyncio: partial()" in yieldio.run(main)


def test_run_asyncio_refuses_a_closed_loop_or_the_loop_yieldio_run_blocks():
    closed = asyncio.new_event_loop()
    closed.close()

    async def on_yieldio(loop):
        with pytest.raises(RuntimeError, match="the loop is closed"):
            await run_asyncio(asyncio.sleep, 0, loop=closed)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(RuntimeError, match="runs in this very thread"):
                await run_asyncio(asyncio.sleep(0), loop=loop)
        return "refused"

    async def asyncio_main():
        # yieldio.run() called (blocking) from asyncio code, passed its own loop.
        return yieldio.run(on_yieldio, asyncio.get_running_loop())

    assert asyncio.run(asyncio_main()) == "refused"


def test_run_yieldio_whose_asyncio_loop_was_closed_ends_quietly():
    # The asyncio loop is closed while a run_yieldio() is in flight (a loop of
    # your own, closed with tasks pending). The yieldio run still finishes,
    # and its thread ends without an unhandled exception.
    loop = asyncio.new_event_loop()
    entered, release = threading.Event(), threading.Event()
    finished: list[str] = []
    thread_errors: list[Any] = []

    async def on_yieldio():
        entered.set()
        await yieldio.to_thread(release.wait, 5)
        finished.append("yieldio run finished")

    async def start():
        task = asyncio.create_task(run_yieldio(on_yieldio))
        await asyncio.sleep(0)
        return task

    old_hook = threading.excepthook
    threading.excepthook = thread_errors.append
    try:
        loop.run_until_complete(start())
        assert entered.wait(5)
        run_threads = [t for t in threading.enumerate() if t.name.startswith("yieldio-run")]
        loop.set_exception_handler(lambda loop, context: None)  # "task destroyed pending"
        loop.close()
        release.set()
        for t in run_threads:
            t.join(5)
        assert run_threads and not any(t.is_alive() for t in run_threads)
    finally:
        threading.excepthook = old_hook
        release.set()
    assert finished == ["yieldio run finished"] and thread_errors == []


# -- docs/asyncio.md: every example runs and prints what the page says ------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "asyncio.md"


def doc_examples() -> list[tuple[int, str, str]]:
    """[(line, program, expected stdout)]: each python block and the text block after it."""
    text = DOC.read_text()
    blocks = re.findall(r"(<!-- not run -->\n)?```(\w+)\n(.*?)```\n", text, re.S)
    out: list[tuple[int, str, str]] = []
    for i, (skip, lang, body) in enumerate(blocks):
        if lang != "python" or skip:
            continue
        assert i + 1 < len(blocks) and blocks[i + 1][1] == "text", body
        line = text[:text.index(body)].count("\n") + 1
        out.append((line, body, blocks[i + 1][2]))
    return out


EXAMPLES = doc_examples()


@pytest.mark.parametrize("line,program,expected", EXAMPLES,
                         ids=[f"docs/asyncio.md:{line}" for line, _, _ in EXAMPLES])
def test_docs_example(line, program, expected):
    proc = subprocess.run([sys.executable, "-W", "error::ResourceWarning", "-c", program],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout == expected
