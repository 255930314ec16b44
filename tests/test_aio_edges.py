"""yieldio.aio: edge cases of the asyncio bridge found by a focused bug hunt."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings

import pytest

import yieldio
from yieldio.aio import run_asyncio, run_yieldio

pytestmark = pytest.mark.timeout(10)


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "yieldio-asyncio" and t.is_alive()]


async def double_later(n):
    await asyncio.sleep(0.001)
    return n * 2


def test_a_call_made_in_one_run_and_awaited_in_a_later_run_runs_in_the_later_run():
    # run_asyncio() kept the kernel of the run that *created* the awaitable:
    # awaited in a later run, it used the ended run's kernel and failed with
    # AttributeError ('NoneType' object has no attribute '_cancel_pending').
    # Like to_thread(), the call now belongs to the run that awaits it.
    saved = []

    async def first():
        saved.append(run_asyncio(double_later, 21))

    async def second():
        return await saved[0]

    yieldio.run(first)
    assert yieldio.run(second) == 42
    assert loop_threads() == []


def test_a_call_awaited_outside_any_run_gives_the_usual_error_and_closes_the_coroutine():
    saved = []

    async def first():
        saved.append(run_asyncio(double_later(1)))

    yieldio.run(first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine was never awaited"
        with pytest.raises(RuntimeError, match="yieldio.run"):
            saved[0].send(None)
        gc.collect()


def test_run_yieldio_closes_the_coroutine_when_its_thread_cannot_start(monkeypatch):
    # Thread.start() can fail (RuntimeError: can't start new thread). The
    # caller gets that error -- and the yieldio coroutine that will now never
    # run is closed, not left "never awaited" (run_asyncio does the same when
    # its loop thread cannot start).
    async def on_yieldio():
        await yieldio.sleep(0)

    def failing_start(self):
        raise RuntimeError("can't start new thread")

    async def main():
        monkeypatch.setattr(threading.Thread, "start", failing_start)
        try:
            with pytest.raises(RuntimeError, match="can't start new thread"):
                await run_yieldio(on_yieldio)
        finally:
            monkeypatch.undo()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    assert [str(w.message) for w in caught] == []
