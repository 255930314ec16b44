"""Queue and UniversalQueue: FIFO, bounded, closing, cancellation safety."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import yieldio
from yieldio.debug import describe_wait
from yieldio.testing import VirtualClock, wait_all_tasks_blocked


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


# -- edge cases: misuse, closing, cancellation, waits seen from outside ----------

def test_queue_rejects_a_bad_maxsize_and_shows_its_state():
    for bad in ("3", None, 1.5):
        with pytest.raises(TypeError, match="maxsize must be an int"):
            yieldio.Queue(bad)

    async def main():
        q = yieldio.Queue(2)
        assert q.maxsize == 2 and not q.closed
        q.put_nowait("a")
        assert repr(q) == "<Queue size=1 maxsize=2 getters=0 putters=0>"
        q.close()
        assert q.closed
        assert repr(q) == "<Queue closed size=1 maxsize=2 getters=0 putters=0>"

    vrun(main)


def test_queue_outside_a_run_is_a_clear_error():
    q = yieldio.Queue()
    for op in (q.put(1), q.get()):
        with pytest.raises(RuntimeError, match=r"yieldio\.run\(\)"):
            op.send(None)
    assert q.qsize() == 0


def test_awaited_put_to_a_closed_queue_raises_and_adds_nothing():
    async def main():
        q = yieldio.Queue()
        q.put_nowait(1)
        q.close()
        with pytest.raises(yieldio.QueueClosed, match="put to a closed Queue"):
            await q.put(2)
        assert [item async for item in q] == [1]

    vrun(main)


def test_join_with_nothing_unfinished_returns_but_is_a_checkpoint():
    async def main():
        q = yieldio.Queue()
        await q.join()  # nothing was ever put
        with yieldio.CancelScope() as scope:
            scope.cancel()
            await q.join()
            raise AssertionError("join() did not check for cancellation")
        assert scope.cancelled_caught

    vrun(main)


def test_cancelled_join_stops_waiting_and_leaves_no_joiner_behind():
    async def main():
        q = yieldio.Queue()
        await q.put("job")
        with yieldio.move_on_after(1) as scope:
            await q.join()
        assert scope.cancelled_caught and yieldio.current_time() == 1.0
        assert await q.get() == "job"
        q.task_done()  # wakes nobody: the cancelled joiner is gone
        await q.join()

    vrun(main)


def test_deadlock_report_says_a_task_waits_in_queue_join():
    async def main():
        q = yieldio.Queue()
        await q.put("never processed")
        await q.join()

    with pytest.raises(yieldio.Deadlock, match="Queue.join"):
        vrun(main)


def test_universal_queue_task_putter_waits_for_room_made_by_a_thread():
    async def main():
        q = yieldio.UniversalQueue(1)
        await q.put(1)
        assert q.qsize() == 1 and not q.empty()
        log = []

        async def putter():
            await q.put(2)
            log.append("put 2")

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(putter)
            await wait_all_tasks_blocked()
            assert describe_wait(t) == "UniversalQueue.put on q" and log == []
            assert await yieldio.to_thread(q.get, 1) == 1
        assert log == ["put 2"]
        assert await q.get() == 2 and q.empty()

    yieldio.run(main)


def test_universal_queue_between_tasks_of_one_run():
    async def main():
        q = yieldio.UniversalQueue(1)
        got = []

        async def getter():
            got.append(await q.get())

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(getter)
            await wait_all_tasks_blocked()
            assert describe_wait(t) == "UniversalQueue.get on q"
            await q.put("handed over")  # straight to the waiting getter
        assert got == ["handed over"] and q.empty()

        await q.put("a")
        async with yieldio.TaskGroup() as tg:
            p = tg.spawn(q.put, "b")  # full: waits
            await wait_all_tasks_blocked()
            assert p.state == "waiting"
            assert await q.get() == "a"  # makes room: the putter's item goes in
        assert await q.get() == "b" and q.empty()

    vrun(main)


def test_universal_queue_close_wakes_waiting_tasks():
    async def main():
        full = yieldio.UniversalQueue(1)
        await full.put("x")
        empty = yieldio.UniversalQueue()
        results = {}

        async def blocked_put():
            with pytest.raises(yieldio.QueueClosed, match="closed while waiting to put"):
                await full.put("y")
            results["put"] = "closed"

        async def blocked_get():
            with pytest.raises(yieldio.QueueClosed, match="closed and empty"):
                await empty.get()
            results["get"] = "closed"

        async with yieldio.TaskGroup() as tg:
            tg.spawn(blocked_put)
            tg.spawn(blocked_get)
            await wait_all_tasks_blocked()
            full.close()
            empty.close()
            full.close()  # idempotent
        assert results == {"put": "closed", "get": "closed"}
        with pytest.raises(yieldio.QueueClosed, match="put to a closed UniversalQueue"):
            await full.put("z")
        assert await full.get() == "x"  # what was in it is still drained

    vrun(main)


def test_universal_queue_task_waits_are_checkpoints_and_cancellable():
    # (Cancelled by hand: virtual time does not autojump while a task waits
    # on a UniversalQueue, which a thread might feed.)
    async def cancel_when_blocked(scope):
        await wait_all_tasks_blocked()
        scope.cancel()

    async def main():
        q = yieldio.UniversalQueue(1)
        with yieldio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(yieldio.Cancelled):
                await q.put("not added")  # there is room, but it is a checkpoint
            with pytest.raises(yieldio.Cancelled):
                await q.get()
        assert q.empty()

        async with yieldio.TaskGroup() as tg:
            with yieldio.CancelScope() as scope:
                tg.spawn(cancel_when_blocked, scope)
                await q.get()
            assert scope.cancelled_caught
        await q.put("a")  # not handed to the cancelled getter
        async with yieldio.TaskGroup() as tg:
            with yieldio.CancelScope() as scope:
                tg.spawn(cancel_when_blocked, scope)
                await q.put("b")
            assert scope.cancelled_caught
        assert q.qsize() == 1 and await q.get() == "a" and q.empty()

    vrun(main)


def test_universal_queue_item_handed_to_a_task_then_cancelled_is_not_lost():
    # A thread hands the item to the waiting getter; the getter is cancelled
    # before its kernel has woken it. The hand-over wins: the get returns the item.
    async def main():
        q = yieldio.UniversalQueue()
        results = []

        async def getter():
            results.append(await q.get())
            await yieldio.checkpoint()  # the cancellation lands here
            results.append("not reached")

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(getter)
            await wait_all_tasks_blocked()
            th = threading.Thread(target=q.put, args=("item",))
            th.start()
            th.join()  # blocks the loop: the wake-up is still queued
            t.cancel()
        assert results == ["item"] and q.empty()

    yieldio.run(main)


def test_universal_queue_blocking_put_times_out_or_sees_close():
    q = yieldio.UniversalQueue(1)
    q.put(1)
    with pytest.raises(yieldio.QueueFull, match="timed out"):
        q.put(2, timeout=0.01)

    closer = threading.Timer(0.05, q.close)
    closer.start()
    with pytest.raises(yieldio.QueueClosed, match="put to a closed UniversalQueue"):
        q.put(2, timeout=10)  # waiting for room when the queue is closed
    closer.join()
    assert q.get() == 1


@pytest.mark.timeout(10)
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


def test_universal_queue_waits_let_virtual_time_jump():
    # A task waiting on a UniversalQueue that another task feeds after a
    # (virtual) sleep: autojump must move time on, or the run would hang.
    async def main():
        uq = yieldio.UniversalQueue(1)

        async def producer():
            await yieldio.sleep(10)
            await uq.put("a")
            await uq.put("b")
            await yieldio.sleep(10)
            await uq.put("c")  # waits for room: also a UniversalQueue wait

        async with yieldio.TaskGroup() as tg:
            tg.spawn(producer)
            got = [await uq.get()]
            await yieldio.sleep(5)
            got += [await uq.get(), await uq.get()]
            with yieldio.move_on_after(3) as scope:
                await uq.get()  # nothing more comes: the timeout fires in virtual time
            return got, yieldio.current_time(), scope.cancelled_caught

    assert yieldio.run(main, clock=VirtualClock(autojump=True)) == (["a", "b", "c"], 23.0, True)


def test_universal_queue_fed_by_to_thread_holds_virtual_time():
    # A to_thread job holds virtual time while it works (real time), so a
    # virtual timeout around the wait for its item does not fire early.
    import time

    async def main():
        uq = yieldio.UniversalQueue()

        def slow_producer():
            time.sleep(0.05)
            uq.put("from the thread")

        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.to_thread, slow_producer)
            with yieldio.fail_after(1):
                return await uq.get()

    assert yieldio.run(main, clock=VirtualClock(autojump=True)) == "from the thread"


# -- UniversalQueue: timeout= in a task ------------------------------------------------------


@pytest.mark.timeout(10)
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


@pytest.mark.timeout(10)
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


@pytest.mark.timeout(10)
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


@pytest.mark.timeout(10)
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


@pytest.mark.timeout(10)
def test_universal_timed_get_lets_an_enclosing_cancellation_through():
    async def main():
        q = yieldio.UniversalQueue()
        with yieldio.move_on_after(1) as outer:
            await q.get(timeout=5)
        return outer.cancelled_caught, yieldio.current_time()

    assert vrun(main) == (True, 1)


@pytest.mark.timeout(10)
def test_universal_timeout_must_be_a_number():
    async def main():
        q = yieldio.UniversalQueue()
        with pytest.raises(TypeError, match="timeout"):
            await q.get(timeout="soon")

    vrun(main)


# -- UniversalQueue: the nowait methods, full(), maxsize, closed, as Queue has them -----------


@pytest.mark.timeout(10)
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


@pytest.mark.timeout(10)
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


def test_queue_waking_a_task_from_a_plain_thread_is_a_clear_error_that_changes_nothing():
    # Queue belongs to the kernel's thread. put_nowait() from a plain thread
    # used to hand the item to the waiting getter by touching the kernel's
    # ready queue unlocked (the getter could sleep on, unnoticed); close()
    # and get_nowait() did the same to blocked putters. Now they raise first,
    # as Event.set() does, and leave the waiters waiting.
    def try_from_a_thread(fn, *args):
        out = []

        def run():
            try:
                fn(*args)
            except RuntimeError as exc:
                out.append(str(exc))

        th = threading.Thread(target=run)
        th.start()
        th.join()
        return out

    async def main():
        q = yieldio.Queue(1)
        async with yieldio.TaskGroup() as tg:
            getter = tg.spawn(q.get)
            await wait_all_tasks_blocked()
            errors = try_from_a_thread(q.put_nowait, "x")
            errors += try_from_a_thread(q.close)
            assert (len(q._getters), q.qsize(), q.closed) == (1, 0, False)
            q.put_nowait("from the kernel thread")
        assert getter.result() == "from the kernel thread"

        q.put_nowait(1)
        async with yieldio.TaskGroup() as tg:
            putter = tg.spawn(q.put, 2)
            await wait_all_tasks_blocked()
            errors += try_from_a_thread(q.get_nowait)
            assert (q.qsize(), len(q._putters)) == (1, 1)
            assert q.get_nowait() == 1
        assert putter.done() and q.get_nowait() == 2
        return errors

    errors = vrun(main)
    assert len(errors) == 3 and all("UniversalQueue" in e for e in errors)


def test_close_immediate_drops_queued_items_stops_getters_and_ends_join():
    async def main():
        q = yieldio.Queue(2)
        got, log = [], []

        async def consumer():
            try:
                async for item in q:
                    got.append(item)
                    await yieldio.sleep(1)
                    q.task_done()
            finally:
                log.append(("consumer done", yieldio.current_time()))

        async def joiner():
            await q.join()
            log.append(("joined", yieldio.current_time()))

        async with yieldio.TaskGroup() as tg:
            tg.spawn(consumer)
            tg.spawn(joiner)
            for i in range(3):
                await q.put(i)
            await wait_all_tasks_blocked()
            assert q.qsize() == 2 and got == [0]
            q.close(immediate=True)
            assert q.qsize() == 0 and q.closed
            with pytest.raises(yieldio.QueueClosed):
                q.put_nowait(9)
        return got, log

    # Item 0 was taken before the close and marked done at t=1; items 1, 2
    # were dropped (counted as done), so join() ends with the consumer.
    assert vrun(main) == ([0], [("consumer done", 1.0), ("joined", 1.0)])


def test_close_immediate_after_a_plain_close_still_drops_what_is_left():
    async def main():
        q = yieldio.Queue()
        for i in range(3):
            q.put_nowait(i)
        q.close()
        assert q.get_nowait() == 0  # a plain close lets getters drain
        q.close(immediate=True)
        with pytest.raises(yieldio.QueueClosed):
            q.get_nowait()
        q.task_done()  # for item 0; the dropped two count as done already
        await q.join()
        return "ok"

    assert vrun(main) == "ok"
