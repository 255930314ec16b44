"""Queue and UniversalQueue: FIFO, bounded, closing, cancellation safety."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import yieldio
from yieldio.testing import VirtualClock


def vrun(fn, *args):
    return yieldio.run(fn, *args, clock=VirtualClock(autojump=True))


def test_fifo_and_bounded():
    async def producer(q, log):
        for i in range(5):
            await q.put(i)
            log.append(("put", i, yieldio.current_time()))
        q.close()

    async def consumer(q, out):
        async for item in q:
            out.append(item)
            await yieldio.sleep(1)

    async def main():
        q = yieldio.Queue(2)
        log, out = [], []
        async with yieldio.TaskGroup() as tg:
            tg.spawn(producer, q, log)
            tg.spawn(consumer, q, out)
        return out, max(t for _, _, t in log)

    out, last_put = vrun(main)
    assert out == [0, 1, 2, 3, 4]
    assert last_put >= 2.0  # the producer was held back by maxsize


def test_nowait_errors():
    async def main():
        q = yieldio.Queue(1)
        with pytest.raises(yieldio.QueueEmpty):
            q.get_nowait()
        q.put_nowait(1)
        assert q.full() and q.qsize() == 1
        with pytest.raises(yieldio.QueueFull):
            q.put_nowait(2)
        assert q.get_nowait() == 1
        q.close()
        with pytest.raises(yieldio.QueueClosed):
            q.put_nowait(3)
        with pytest.raises(yieldio.QueueClosed):
            q.get_nowait()
        q.close()  # idempotent

    vrun(main)


def test_close_wakes_blocked_putters_and_getters():
    async def main():
        full = yieldio.Queue(1)
        await full.put("x")
        empty = yieldio.Queue()
        results = {}

        async def blocked_put():
            try:
                await full.put("y")
            except yieldio.QueueClosed:
                results["put"] = "closed"

        async def blocked_get():
            try:
                await empty.get()
            except yieldio.QueueClosed:
                results["get"] = "closed"

        async with yieldio.TaskGroup() as tg:
            tg.spawn(blocked_put)
            tg.spawn(blocked_get)
            await yieldio.sleep(1)
            full.close()
            empty.close()
        # items put before close are still drained
        assert await full.get() == "x"
        with pytest.raises(yieldio.QueueClosed):
            await full.get()
        return results

    assert vrun(main) == {"put": "closed", "get": "closed"}


def test_cancelled_get_loses_no_item_and_cancelled_put_adds_none():
    async def main():
        q = yieldio.Queue(1)
        with yieldio.move_on_after(1):
            await q.get()
        await q.put("a")
        with yieldio.move_on_after(1):
            await q.put("b")  # full: cancelled, must not be added
        assert q.qsize() == 1
        assert await q.get() == "a"
        assert q.empty()

    vrun(main)


def test_join_and_task_done():
    async def worker(q, done):
        async for item in q:
            await yieldio.sleep(1)
            done.append(item)
            q.task_done()

    async def main():
        q = yieldio.Queue()
        done = []
        async with yieldio.TaskGroup() as tg:
            tg.spawn(worker, q, done)
            for i in range(3):
                await q.put(i)
            await q.join()
            assert done == [0, 1, 2]
            q.close()
        with pytest.raises(ValueError):
            q.task_done()

    vrun(main)


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["put", "get"]), st.floats(0, 2)), max_size=30),
       maxsize=st.integers(0, 3))
def test_property_no_item_lost_or_duplicated_under_timeouts(ops, maxsize):
    """Random puts and gets, each under a random timeout: items never vanish or repeat."""

    async def main():
        q = yieldio.Queue(maxsize)
        put_ok, got = [], []
        counter = 0
        async with yieldio.TaskGroup() as tg:
            for op, timeout in ops:
                if op == "put":
                    counter += 1

                    async def put(item=counter, timeout=timeout):
                        with yieldio.move_on_after(timeout):
                            await q.put(item)
                            put_ok.append(item)

                    tg.spawn(put)
                else:
                    async def get(timeout=timeout):
                        with yieldio.move_on_after(timeout):
                            got.append(await q.get())

                    tg.spawn(get)
        rest = []
        while not q.empty():
            rest.append(q.get_nowait())
        return put_ok, got, rest

    put_ok, got, rest = vrun(main)
    assert sorted(got + rest) == sorted(put_ok)


def test_universal_queue_between_threads_and_tasks():
    async def main():
        q = yieldio.UniversalQueue()
        back = yieldio.UniversalQueue()

        def worker():
            for i in range(100):
                q.put(i)
            total = 0
            for _ in range(100):
                total += back.get(timeout=10)
            q.put(("total", total))

        t = threading.Thread(target=worker)
        t.start()
        got = []
        for _ in range(100):
            item = await q.get()
            got.append(item)
            await back.put(item * 2)
        final = await q.get()
        await yieldio.to_thread(t.join)
        return got == list(range(100)), final

    assert yieldio.run(main) == (True, ("total", 9900))


def test_universal_queue_close_and_timeout():
    q = yieldio.UniversalQueue()
    with pytest.raises(yieldio.QueueEmpty):
        q.get(timeout=0.01)
    q.put(1)
    q.close()
    assert q.get() == 1
    with pytest.raises(yieldio.QueueClosed):
        q.get()
    with pytest.raises(yieldio.QueueClosed):
        q.put(2)


def test_task_waiting_on_universal_queue_is_not_a_deadlock():
    async def main():
        q = yieldio.UniversalQueue()

        def feed():
            import time
            time.sleep(0.05)
            q.put("late")

        th = threading.Thread(target=feed)
        th.start()
        item = await q.get()
        th.join()
        return item

    assert yieldio.run(main) == "late"


def test_universal_queue_async_for_ends_when_closed_and_drained():
    # Like Queue: a task consumes what a thread produces with 'async for',
    # which ends once the thread has closed the queue and the items are drained.
    async def main():
        q = yieldio.UniversalQueue(2)

        def producer():
            for i in range(5):
                q.put(i, timeout=10)
            q.close()

        t = threading.Thread(target=producer)
        t.start()
        got = [item async for item in q]
        await yieldio.to_thread(t.join)
        return got

    assert yieldio.run(main) == [0, 1, 2, 3, 4]


def test_universal_queue_rejects_a_bad_maxsize_at_once():
    for bad in ("3", None, 1.5):
        with pytest.raises(TypeError, match="maxsize must be an int"):
            yieldio.UniversalQueue(bad)
