"""UniversalQueue.task_done() and join(), from tasks and from plain threads.

(The rest of UniversalQueue is tested in test_queue.py.)
"""

from __future__ import annotations

import threading
import time

import pytest

import yieldio
import yieldio.queue
from yieldio.debug import describe_wait
from yieldio.testing import VirtualClock, wait_all_tasks_blocked


def vrun(fn, *args):
    return yieldio.run(fn, *args, clock=VirtualClock(autojump=True))


def test_universal_queue_is_importable_from_both_places_as_before():
    assert yieldio.queue.UniversalQueue is yieldio.UniversalQueue
    assert yieldio.queue.__all__ == ["Queue", "UniversalQueue"]


@pytest.mark.timeout(10)
def test_task_join_waits_until_a_thread_has_marked_every_item_done():
    async def main():
        q = yieldio.UniversalQueue()
        go = threading.Event()
        done = []

        def worker():
            go.wait(5)
            for _ in range(3):
                item = q.get(timeout=5)
                time.sleep(0.01)
                done.append(item)
                q.task_done()  # the last one wakes the joiner from this thread

        async def joiner():
            await q.join()
            return list(done)

        th = threading.Thread(target=worker)
        th.start()
        try:
            for i in range(3):
                await q.put(i)
            with yieldio.fail_after(5):
                async with yieldio.TaskGroup() as tg:
                    t = tg.spawn(joiner)
                    await wait_all_tasks_blocked()
                    assert describe_wait(t).startswith(  # (real time: the deadline moves on)
                        "UniversalQueue.join on q, deadline +") and not t.done()
                    go.set()
        finally:
            go.set()
            await yieldio.to_thread(th.join)
        return t.result()

    assert yieldio.run(main) == [0, 1, 2]


@pytest.mark.timeout(10)
def test_thread_join_blocks_while_tasks_mark_items_done():
    async def main():
        q = yieldio.UniversalQueue()
        handled = []

        async def consumer():
            async for item in q:
                await yieldio.sleep(0.01)
                handled.append(item)
                q.task_done()

        def producer():
            for i in range(5):
                q.put(i)
            t0 = time.monotonic()
            q.join(timeout=5)  # blocks this thread, not the run
            waited = time.monotonic() - t0
            seen = list(handled)
            q.close()
            return seen, waited

        async with yieldio.TaskGroup() as tg:
            tg.spawn(consumer)
            seen, waited = await yieldio.to_thread(producer)
        return seen, waited < 2.5  # woken by the last task_done, not by the timeout

    assert yieldio.run(main) == ([0, 1, 2, 3, 4], True)


@pytest.mark.timeout(10)
def test_thread_join_timeout_raises_timeout_error_and_zero_does_not_wait():
    q = yieldio.UniversalQueue()
    q.put("job")
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="UniversalQueue.join timed out"):
        q.join(timeout=0.05)
    assert time.monotonic() - t0 >= 0.04
    with pytest.raises(TimeoutError):
        q.join(timeout=0)
    with pytest.raises(TimeoutError):
        q.join(timeout=-1)
    assert q.get() == "job"
    with pytest.raises(TimeoutError):  # taken, but not marked done yet
        q.join(timeout=0)
    q.task_done()
    q.join(timeout=0)
    q.join()


@pytest.mark.timeout(10)
def test_join_on_a_queue_with_nothing_unfinished_returns_at_once_on_both_sides():
    q = yieldio.UniversalQueue()
    t0 = time.monotonic()
    q.join()  # a thread: nothing was ever put
    assert time.monotonic() - t0 < 1

    async def main():
        q = yieldio.UniversalQueue()
        await q.join()
        await q.join(timeout=0)
        await q.put(1)
        assert await q.get() == 1
        q.task_done()
        await q.join()
        with yieldio.CancelScope() as scope:  # still a checkpoint
            scope.cancel()
            await q.join()
            raise AssertionError("join() did not check for cancellation")
        assert scope.cancelled_caught
        return yieldio.current_time()

    assert vrun(main) == 0


@pytest.mark.timeout(10)
def test_task_done_more_times_than_items_put_raises_value_error_on_both_sides():
    q = yieldio.UniversalQueue()
    with pytest.raises(ValueError, match="more times than there were items"):
        q.task_done()
    q.put_nowait("a")
    q.get_nowait()
    q.task_done()
    with pytest.raises(ValueError):
        q.task_done()
    q.put("b")  # the failed calls did not drive the count below zero
    with pytest.raises(TimeoutError):
        q.join(timeout=0)

    async def main():
        q = yieldio.UniversalQueue()
        await q.put("c")
        q.task_done()
        with pytest.raises(ValueError):
            q.task_done()
        errors = []

        def from_a_thread():
            try:
                q.task_done()
            except ValueError as exc:
                errors.append(exc)

        await yieldio.to_thread(from_a_thread)
        return len(errors)

    assert vrun(main) == 1


@pytest.mark.timeout(10)
def test_every_item_put_is_counted_also_one_a_waiting_putter_hands_in():
    async def main():
        q = yieldio.UniversalQueue(1)
        await q.put("a")
        async with yieldio.TaskGroup() as tg:
            tg.spawn(q.put, "b")  # waits for room
            await wait_all_tasks_blocked()
            assert await q.get() == "a"  # "b" goes in now
        assert await q.get() == "b"
        q.task_done()
        with pytest.raises(TimeoutError):
            await q.join(timeout=0)  # "b" is still unfinished
        q.task_done()
        await q.join(timeout=0)
        with pytest.raises(ValueError):
            q.task_done()

        # A cancelled putter's item never went in: nothing to mark done for it.
        await q.put("c")
        with yieldio.move_on_after(1):
            await q.put("never")
        assert q.get_nowait() == "c"
        q.task_done()
        await q.join(timeout=0)

    vrun(main)


@pytest.mark.timeout(10)
def test_cancelled_join_stops_waiting_and_leaves_no_joiner_behind():
    async def main():
        q = yieldio.UniversalQueue()
        await q.put("job")
        with yieldio.move_on_after(1) as scope:
            await q.join()
        assert scope.cancelled_caught and yieldio.current_time() == 1.0
        assert q._task_joiners == {}
        assert await q.get() == "job"
        q.task_done()  # wakes nobody: the cancelled joiner is gone
        await q.join()

    vrun(main)


@pytest.mark.timeout(10)
def test_task_join_timeout_raises_timeout_error_at_the_deadline():
    async def main():
        q = yieldio.UniversalQueue()
        await q.put("job")
        with yieldio.move_on_after(100):  # bounds the test if the timeout were ignored
            with pytest.raises(TimeoutError, match="UniversalQueue.join timed out"):
                await q.join(timeout=5)
        with pytest.raises(TimeoutError):
            await q.join(timeout=0)
        with pytest.raises(TypeError, match="timeout"):
            await q.join(timeout="soon")
        return yieldio.current_time(), q._task_joiners

    assert vrun(main) == (5, {})


@pytest.mark.timeout(10)
def test_join_is_woken_by_a_task_of_its_own_run():
    async def main():
        q = yieldio.UniversalQueue()
        log = []

        async def worker():
            item = await q.get()
            await yieldio.sleep(3)
            log.append(item)
            q.task_done()

        async with yieldio.TaskGroup() as tg:
            tg.spawn(worker)
            await q.put("x")
            await q.join(timeout=10)  # autojump: the joiner's wait is passive
            log.append(("joined at", yieldio.current_time()))
        return log

    assert vrun(main) == ["x", ("joined at", 3)]


@pytest.mark.timeout(10)
def test_join_woken_from_a_thread_then_cancelled_still_returns():
    # The last task_done comes from a thread while the loop is blocked: the
    # wake-up is queued, then the joiner is cancelled. The wake-up wins (as an
    # item handed to a getter does): join returns, the cancellation lands at
    # the next checkpoint.
    async def main():
        q = yieldio.UniversalQueue()
        await q.put("job")
        assert await q.get() == "job"
        results = []

        async def joiner():
            await q.join()
            results.append("joined")
            await yieldio.checkpoint()
            results.append("not reached")

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(joiner)
            await wait_all_tasks_blocked()
            th = threading.Thread(target=q.task_done)
            th.start()
            th.join()  # blocks the loop: the wake-up is still queued
            t.cancel()
        return results, q._task_joiners

    assert yieldio.run(main) == (["joined"], {})


@pytest.mark.timeout(30)
def test_many_joins_racing_threads_marking_done_lose_no_wake_up():
    # Each round: the task puts items, two threads take and mark them done,
    # the task joins. A lost wake-up shows as fail_after's TimeoutError.
    async def main():
        q = yieldio.UniversalQueue()

        def worker():
            while True:
                try:
                    q.get(timeout=10)
                except yieldio.QueueClosed:
                    return
                q.task_done()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for th in threads:
            th.start()
        try:
            for n in range(200):
                for i in range(n % 4 + 1):
                    await q.put(i)
                with yieldio.fail_after(5):
                    await q.join()
                assert q._unfinished == 0
        finally:
            q.close()
            for th in threads:
                await yieldio.to_thread(th.join)
        return q._task_joiners

    assert yieldio.run(main) == {}


@pytest.mark.timeout(10)
def test_task_waiting_in_join_for_a_thread_is_not_a_deadlock():
    # No timer and no other task: only the thread will end the wait.
    async def main():
        q = yieldio.UniversalQueue()
        await q.put("job")

        def finish():
            time.sleep(0.05)
            q.get()
            q.task_done()

        th = threading.Thread(target=finish)
        th.start()
        await q.join()
        th.join()
        return q.qsize()

    assert yieldio.run(main) == 0


@pytest.mark.timeout(10)
def test_close_immediate_from_a_thread_stops_a_task_getter_and_a_task_join():
    async def main():
        q = yieldio.UniversalQueue()
        for i in range(3):
            await q.put(i)
        assert await q.get() == 0
        log = []

        async def joiner():
            await q.join()
            log.append("joined")

        async with yieldio.TaskGroup() as tg:
            tg.spawn(joiner)
            await wait_all_tasks_blocked()
            q.task_done()  # item 0; items 1 and 2 still unfinished
            th = threading.Thread(target=q.close, kwargs={"immediate": True})
            th.start()
            th.join(5)
        with pytest.raises(yieldio.QueueClosed):
            await q.get()
        return log, q.qsize()

    assert yieldio.run(main) == (["joined"], 0)


@pytest.mark.timeout(10)
def test_close_immediate_wakes_a_thread_blocked_in_get():
    q = yieldio.UniversalQueue()
    errors = []

    def getter():
        try:
            q.get(timeout=5)
        except yieldio.QueueClosed as exc:
            errors.append(exc)

    th = threading.Thread(target=getter)
    th.start()
    time.sleep(0.05)
    q.close(immediate=True)
    th.join(5)
    assert not th.is_alive() and len(errors) == 1


@pytest.mark.parametrize("seed", [None, *range(8)])
def test_threads_blocked_in_put_are_all_woken_while_a_task_gets(seed):
    # A get's "there is room" woke one blocked thread, which handed its item
    # straight to a task already waiting in get(): the room stayed, and the
    # other blocked threads slept on an empty queue while that task waited
    # (about one run in two hung).
    import threading

    per_thread, threads = 150, 2

    async def main():
        q = yieldio.UniversalQueue(1)

        def produce(p):
            for j in range(per_thread):
                q.put((p, j))

        workers = [threading.Thread(target=produce, args=(p,)) for p in range(threads)]
        for w in workers:
            w.start()
        got = []
        with yieldio.move_on_after(10):
            while len(got) < per_thread * threads:
                got.append(await q.get())
        for w in workers:
            await yieldio.to_thread(w.join, 5)
        assert len(got) == per_thread * threads
        for p in range(threads):
            assert [j for (who, j) in got if who == p] == list(range(per_thread))

    yieldio.run(main, seed=seed)
