"""Abandoned async generators: their cleanup runs as a task, in the run, and is never lost."""

from __future__ import annotations

import contextvars
import gc
import logging
import sys
import types
import warnings

import pytest

import yieldio
from yieldio.testing import VirtualClock


def run(main):
    return yieldio.run(main, clock=VirtualClock(autojump=True))


def make_ticker(log):
    async def ticker():
        try:
            for i in range(10):
                yield i
        finally:
            await yieldio.sleep(1)  # cleanup that awaits: Python alone cannot run it
            log.append(("cleaned", yieldio.current_time()))

    return ticker


def test_generator_abandoned_by_break_is_cleaned_up_in_the_run():
    log = []
    ticker = make_ticker(log)

    async def main():
        async for i in ticker():
            if i == 2:
                break
        gc.collect()  # the generator is garbage now (refcounting already dropped it)
        await yieldio.sleep(5)
        log.append(("main end", yieldio.current_time()))

    run(main)
    assert log == [("cleaned", 1.0), ("main end", 5.0)]


def test_generator_still_referenced_is_closed_before_run_returns():
    log = []
    ticker = make_ticker(log)
    keep = []

    async def main():
        gen = ticker()
        keep.append(gen)  # outlives the run: only the run's end can close it
        assert await gen.__anext__() == 0
        return "result"

    assert run(main) == "result"
    assert log == [("cleaned", 1.0)]
    assert keep[0].ag_frame is None  # finished


def test_finished_and_never_started_generators_need_nothing():
    log = []
    ticker = make_ticker(log)
    keep = []

    async def main():
        keep.append(ticker())  # never iterated: no frame to clean up
        assert [i async for i in ticker()] == list(range(10))
        return len(log)

    assert run(main) == 1  # the exhausted one cleaned itself up
    assert log == [("cleaned", 1.0)]


def test_an_error_in_cleanup_is_logged_not_raised_and_not_lost(caplog):
    async def broken():
        try:
            yield 1
        finally:
            await yieldio.sleep(0)
            raise ValueError("cleanup failed")

    async def main():
        async for _ in broken():
            break
        await yieldio.sleep(1)
        return "still fine"

    with caplog.at_level(logging.ERROR, logger="yieldio"):
        assert run(main) == "still fine"
    records = [r for r in caplog.records if r.name == "yieldio"]
    assert len(records) == 1
    assert "broken" in records[0].getMessage()
    assert isinstance(records[0].exc_info[1], ValueError)


def test_cleanup_waiting_for_ever_is_cancelled_when_the_run_ends(caplog):
    keep = []
    reached = []

    async def stuck():
        try:
            yield 1
        finally:
            reached.append("cleanup")
            await yieldio.sleep_forever()

    async def main():
        gen = stuck()
        keep.append(gen)
        await gen.__anext__()
        return "done"

    with caplog.at_level(logging.WARNING, logger="yieldio"):
        assert yieldio.run(main) == "done"  # real clock: it must not hang
    assert reached == ["cleanup"]
    assert any("still waiting when the run ended" in r.getMessage() for r in caplog.records)


def test_generator_dropped_in_a_worker_thread_is_cleaned_up_on_the_loop():
    log = []
    ticker = make_ticker(log)

    async def main():
        gen = ticker()
        await gen.__anext__()
        box = [gen]
        del gen
        await yieldio.to_thread(box.clear)  # the last reference dies in the thread
        await yieldio.sleep(5)
        return yieldio.current_time()

    assert run(main) == 5.0
    assert log == [("cleaned", 1.0)]


def test_generator_collected_after_the_run_ended(caplog):
    keep = []
    log = []

    @types.coroutine
    def suspend():
        yield "anything"  # what a foreign awaitable might yield

    async def quiet():
        try:
            yield 1
        finally:
            log.append("sync cleanup")  # no await: it can still run

    async def needs_run():
        try:
            yield 1
        finally:
            await yieldio.sleep(0)  # raises: no run any more
            log.append("never")

    async def suspends():
        try:
            yield 1
        finally:
            await suspend()  # would wait: nothing can resume it
            log.append("never")

    async def main():
        for make in (quiet, needs_run, suspends):
            gen = make()
            await gen.__anext__()
            keep.append(gen)
        # Keep them out of the run's end-of-run cleanup: as if they were
        # found only later (a reference cycle, a cache).
        yieldio.current_task()._kernel.asyncgens._alive.clear()

    yieldio.run(main)
    assert log == []
    with warnings.catch_warnings(record=True) as caught, \
            caplog.at_level(logging.ERROR, logger="yieldio"):
        warnings.simplefilter("always")
        keep.clear()
        gc.collect()
    assert log == ["sync cleanup"]
    errors = [r for r in caplog.records if r.name == "yieldio"]
    assert len(errors) == 1 and "needs_run" in errors[0].getMessage()
    assert isinstance(errors[0].exc_info[1], RuntimeError)
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)
            and "suspends" in str(w.message)]


def test_hooks_are_restored_after_the_run_even_when_it_fails():
    before = sys.get_asyncgen_hooks()

    async def main():
        assert sys.get_asyncgen_hooks() != before
        raise KeyError("boom")

    with pytest.raises(KeyError):
        yieldio.run(main)
    assert sys.get_asyncgen_hooks() == before


def test_async_with_inside_a_generator_closes_its_resource(tmp_path):
    # The everyday case: a generator reading lines from a file, abandoned
    # after the first one. Its 'async with' closes the file (on a worker
    # thread, so it awaits); the leak check of this test suite would see
    # the descriptor otherwise.
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"line {i}\n" for i in range(100)))
    files = []

    async def lines():
        async with await yieldio.open_file(path) as f:
            files.append(f)
            async for line in f:
                yield line

    async def main():
        async for line in lines():
            assert line == "line 0\n"
            break
        await yieldio.sleep(0.1)
        return files[0].closed

    assert yieldio.run(main) is True


def test_generator_dropped_by_another_thread_is_cleaned_up_on_the_loop():
    import threading

    log = []
    loop_thread = threading.get_ident()

    async def numbers():
        try:
            yield 1
            yield 2
        finally:
            await yieldio.sleep(0)  # awaits: needs the loop
            log.append(threading.get_ident() == loop_thread)

    async def main():
        box = [numbers()]
        assert await box[0].__anext__() == 1
        # The worker drops the last reference: the finalizer runs in its thread.
        await yieldio.to_thread(box.clear)
        for _ in range(5):
            await yieldio.sleep(0)
        return list(log)

    assert yieldio.run(main) == [True]


def test_cleanup_that_waits_shielded_forever_does_not_hang_the_end_of_the_run():
    async def stuck():
        try:
            yield 1
        finally:
            with yieldio.CancelScope(shield=True):
                await yieldio.Event().wait()  # nobody will ever set it

    keep = []

    async def main():
        gen = stuck()
        keep.append(gen)
        assert await gen.__anext__() == 1
        return "done"

    assert yieldio.run(main) == "done"
    keep.clear()
    gc.collect()


def test_cleanup_runs_in_a_fresh_context_not_the_task_that_dropped_the_generator():
    request_id = contextvars.ContextVar("request_id", default="none")
    seen = []

    async def gen():
        try:
            yield 1
            yield 2
        finally:
            await yieldio.sleep(0)
            seen.append(request_id.get())

    async def main():
        async def handler():
            request_id.set("handler-7")
            agen = gen()
            await agen.__anext__()
            del agen  # dropped here: the finalizer runs inside this task
            gc.collect()
            await yieldio.sleep(1)

        async with yieldio.TaskGroup() as tg:
            tg.spawn(handler)

    run(main)
    assert seen == ["none"]
