"""Regression tests from a bug hunt in sync, queues, cancel scopes, threads and the asyncio bridge."""

from __future__ import annotations

import functools
import threading

import pytest

import yieldio

# -- threads: from_thread() inside a cancelled to_thread() ----------------------------------


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


def test_from_thread_after_the_caller_was_cancelled_raises_cancelled_in_the_thread():
    # The caller is cancelled first; the thread asks for an async call after:
    # that call starts cancelled, the thread sees Cancelled, and if it goes on
    # and returns normally the caller still reports its cancellation.
    seen = []

    async def quick():
        await yieldio.sleep(0)
        return "ran"

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

    async def quick():
        await yieldio.sleep(0)
        return "ran"

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
