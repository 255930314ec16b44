"""Regression tests from a third bug hunt: UniversalQueue timeouts, cancel-scope misuse, aio."""

from __future__ import annotations

import asyncio
import threading

import pytest

import yieldio
from yieldio.aio import AsyncioCancelled, run_asyncio
from yieldio.testing import VirtualClock

pytestmark = pytest.mark.timeout(10)


def vrun(fn, *args):
    return yieldio.run(fn, *args, clock=VirtualClock(autojump=True))


# -- UniversalQueue: timeout= in a task ------------------------------------------------------


def test_universal_get_timeout_in_a_task_raises_queue_empty_at_the_deadline():
    # The timeout was silently ignored in a task: the get waited for ever
    # (and, being a passive wait, was not even reported as a deadlock).
    async def main():
        q = yieldio.UniversalQueue()
        t0 = yieldio.current_time()
        with yieldio.move_on_after(100):  # bounds the test without the fix
            with pytest.raises(yieldio.QueueEmpty, match="timed out"):
                await q.get(timeout=5)
        return yieldio.current_time() - t0

    assert vrun(main) == 5


def test_universal_put_timeout_in_a_task_raises_queue_full_and_does_not_enqueue():
    async def main():
        q = yieldio.UniversalQueue(1)
        await q.put("a")
        t0 = yieldio.current_time()
        with yieldio.move_on_after(100):
            with pytest.raises(yieldio.QueueFull, match="timed out"):
                await q.put("b", timeout=3)
        return yieldio.current_time() - t0, q.qsize(), q.get_nowait()

    assert vrun(main) == (3, 1, "a")


def test_universal_get_timeout_returns_an_item_that_comes_in_time():
    async def main():
        q = yieldio.UniversalQueue()

        async def later():
            await yieldio.sleep(2)
            await q.put("x")

        async with yieldio.TaskGroup() as tg:
            tg.spawn(later)
            item = await q.get(timeout=5)
        return item, yieldio.current_time()

    assert vrun(main) == ("x", 2)


def test_universal_timeout_zero_or_negative_does_not_wait_but_takes_what_is_there():
    # As threading's wait_for: a timeout of 0 or less is one try, no wait.
    async def main():
        q = yieldio.UniversalQueue(1)
        with pytest.raises(yieldio.QueueEmpty):
            await q.get(timeout=0)
        await q.put("a", timeout=0)
        with pytest.raises(yieldio.QueueFull):
            await q.put("b", timeout=-1)
        got = await q.get(timeout=-1)
        return got, yieldio.current_time()

    assert vrun(main) == ("a", 0)


def test_universal_timed_get_lets_an_enclosing_cancellation_through():
    async def main():
        q = yieldio.UniversalQueue()
        with yieldio.move_on_after(1) as outer:
            await q.get(timeout=5)
        return outer.cancelled_caught, yieldio.current_time()

    assert vrun(main) == (True, 1)


def test_universal_timeout_must_be_a_number():
    async def main():
        q = yieldio.UniversalQueue()
        with pytest.raises(TypeError, match="timeout"):
            await q.get(timeout="soon")

    vrun(main)


# -- UniversalQueue: what Queue had and it lacked ----------------------------------------------


def test_universal_queue_nowait_full_maxsize_closed():
    q = yieldio.UniversalQueue(2)
    assert q.maxsize == 2 and not q.full() and not q.closed
    q.put_nowait(1)
    q.put_nowait(2)
    assert q.full()
    with pytest.raises(yieldio.QueueFull):
        q.put_nowait(3)
    assert q.get_nowait() == 1 and q.get_nowait() == 2
    with pytest.raises(yieldio.QueueEmpty):
        q.get_nowait()
    q.close()
    assert q.closed
    with pytest.raises(yieldio.QueueClosed):
        q.put_nowait(4)
    with pytest.raises(yieldio.QueueClosed):
        q.get_nowait()
    assert not yieldio.UniversalQueue().full()


def test_universal_nowait_from_a_thread_wakes_waiting_tasks():
    async def main():
        q = yieldio.UniversalQueue(1)
        got = []

        async def getter():
            got.append(await q.get())

        async with yieldio.TaskGroup() as tg:
            tg.spawn(getter)
            await yieldio.sleep(1)  # the getter waits
            await yieldio.to_thread(q.put_nowait, "from thread")
        # A waiting putter is woken by get_nowait from a thread.
        await q.put("first")

        async def putter():
            await q.put("second")
            got.append("put done")

        async with yieldio.TaskGroup() as tg:
            tg.spawn(putter)
            await yieldio.sleep(1)  # the putter waits: the queue is full
            taken = await yieldio.to_thread(q.get_nowait)
        return got, taken, q.get_nowait()

    assert vrun(main) == (["from thread", "put done"], "first", "second")


# -- cancel scopes: misuse gives a clear RuntimeError --------------------------------------


def test_scope_left_open_by_an_ended_task_and_exited_elsewhere_is_a_clear_error():
    # Was a bare KeyError from the scope's bookkeeping.
    async def main():
        box = []

        async def leaves_it_open():
            scope = yieldio.CancelScope()
            scope.__enter__()
            box.append(scope)

        async with yieldio.TaskGroup() as tg:
            tg.spawn(leaves_it_open)
        with pytest.raises(RuntimeError, match="different task than it was entered in"):
            box[0].__exit__(None, None, None)
        # The dead scope was dropped from the tree, and this task is unharmed.
        assert box[0] not in (yieldio.current_task()._scope._children or {})
        with yieldio.move_on_after(1) as scope:
            await yieldio.sleep(5)
        return scope.cancelled_caught

    assert vrun(main) is True


def test_scope_exited_from_another_task_while_its_task_is_inside_it_deeper():
    async def main():
        box = []
        release = yieldio.Event()

        async def inside():
            with yieldio.CancelScope() as outer:
                box.append(outer)
                with yieldio.CancelScope():
                    await release.wait()

        async with yieldio.TaskGroup() as tg:
            tg.spawn(inside)
            await yieldio.sleep(1)
            with pytest.raises(RuntimeError, match="different task than it was entered in"):
                box[0].__exit__(None, None, None)
            release.set()

    vrun(main)


# -- aio: a cancellation yieldio asked for, then withdrew ------------------------------------


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


def test_run_asyncio_cancelled_on_the_asyncio_side_still_says_so():
    async def cancels_itself():
        asyncio.current_task().cancel()
        await asyncio.sleep(0)

    async def main():
        with pytest.raises(AsyncioCancelled, match="cancelled on the asyncio side"):
            await run_asyncio(cancels_itself)

    yieldio.run(main)


def test_thread_side_universal_timeouts_are_unchanged():
    q = yieldio.UniversalQueue(1)
    with pytest.raises(yieldio.QueueEmpty):
        q.get(timeout=0.01)
    q.put(1)
    with pytest.raises(yieldio.QueueFull):
        q.put(2, timeout=0.01)
    out = []
    t = threading.Thread(target=lambda: out.append(q.get(timeout=1)))
    t.start()
    t.join(5)
    assert out == [1]
