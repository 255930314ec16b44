"""Event, Lock, Semaphore, Condition: fairness, cancellation safety, misuse."""

from __future__ import annotations

import pytest

import yieldio
from yieldio.testing import VirtualClock, wait_all_tasks_blocked


def vrun(fn, *args):
    return yieldio.run(fn, *args, clock=VirtualClock(autojump=True))


def test_event_wakes_all_waiters_in_order():
    async def waiter(ev, log, n):
        await ev.wait()
        log.append(n)

    async def main():
        ev = yieldio.Event()
        log = []
        async with yieldio.TaskGroup() as tg:
            for n in range(5):
                tg.spawn(waiter, ev, log, n)
            await yieldio.sleep(1)
            assert not log and not ev.is_set()
            assert ev.statistics()["tasks_waiting"] == 5
            ev.set()
        ev.clear()
        assert not ev.is_set()
        return log

    assert vrun(main) == [0, 1, 2, 3, 4]


def test_event_wait_when_set_is_still_a_checkpoint():
    async def main():
        ev = yieldio.Event()
        ev.set()
        with yieldio.CancelScope() as s:
            s.cancel()
            await ev.wait()
        return s.cancelled_caught

    assert vrun(main)


def test_cancelled_event_waiter_is_removed():
    async def main():
        ev = yieldio.Event()
        with yieldio.move_on_after(1):
            await ev.wait()
        return ev.statistics()["tasks_waiting"]

    assert vrun(main) == 0


def test_lock_is_fifo_and_exclusive():
    async def worker(lock, log, n):
        async with lock:
            log.append(("in", n))
            await yieldio.sleep(1)
            log.append(("out", n))

    async def main():
        lock = yieldio.Lock()
        log = []
        async with yieldio.TaskGroup() as tg:
            for n in range(3):
                tg.spawn(worker, lock, log, n)
        return log

    assert vrun(main) == [("in", 0), ("out", 0), ("in", 1), ("out", 1), ("in", 2), ("out", 2)]


def test_lock_misuse_is_clear():
    async def main():
        lock = yieldio.Lock()
        with pytest.raises(RuntimeError, match="does not hold"):
            lock.release()
        await lock.acquire()
        with pytest.raises(RuntimeError, match="re-entrant"):
            await lock.acquire()

        async def other():
            with pytest.raises(RuntimeError, match="does not hold"):
                lock.release()
            with pytest.raises(yieldio.WouldBlock):
                lock.acquire_nowait()

        async with yieldio.TaskGroup() as tg:
            tg.spawn(other)
        lock.release()
        assert not lock.locked()

    vrun(main)


def test_cancelled_lock_waiter_does_not_get_the_lock():
    async def main():
        lock = yieldio.Lock()
        await lock.acquire()

        async def waiter():
            with yieldio.move_on_after(1):
                await lock.acquire()
                return "got it"
            return "gave up"

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(waiter)
            await yieldio.sleep(2)
            lock.release()
        return t.result(), lock.locked()

    assert vrun(main) == ("gave up", False)


def test_semaphore_limits_concurrency():
    async def worker(sem, state):
        async with sem:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            await yieldio.sleep(1)
            state["now"] -= 1

    async def main():
        sem = yieldio.Semaphore(3)
        state = {"now": 0, "max": 0}
        async with yieldio.TaskGroup() as tg:
            for _ in range(10):
                tg.spawn(worker, sem, state)
        return state["max"], yieldio.current_time(), sem.value

    assert vrun(main) == (3, 4.0, 3)


def test_semaphore_bounds_and_bad_values():
    with pytest.raises(ValueError):
        yieldio.Semaphore(-1)

    async def main():
        sem = yieldio.Semaphore(1, max_value=1)
        with pytest.raises(ValueError, match="too many"):
            sem.release()
        sem.acquire_nowait()
        with pytest.raises(yieldio.WouldBlock):
            sem.acquire_nowait()
        sem.release()

    vrun(main)


def test_condition_wait_notify():
    async def consumer(cond, box, log):
        async with cond:
            await cond.wait_for(lambda: box)
            log.append(box.pop())

    async def main():
        cond = yieldio.Condition()
        box, log = [], []
        async with yieldio.TaskGroup() as tg:
            tg.spawn(consumer, cond, box, log)
            tg.spawn(consumer, cond, box, log)
            await yieldio.sleep(1)
            for item in ("a", "b"):
                async with cond:
                    box.append(item)
                    cond.notify()
                await yieldio.sleep(1)
        return sorted(log)

    assert vrun(main) == ["a", "b"]


def test_condition_cancelled_wait_reacquires_lock():
    async def main():
        cond = yieldio.Condition()
        async with cond:
            with yieldio.move_on_after(1):
                await cond.wait()
            held = cond.locked() and cond.lock.owner is yieldio.current_task()
        return held

    assert vrun(main) is True


def test_condition_needs_lock():
    async def main():
        cond = yieldio.Condition()
        with pytest.raises(RuntimeError, match="lock held"):
            await cond.wait()
        with pytest.raises(RuntimeError, match="lock held"):
            cond.notify()

    vrun(main)


def test_event_set_outside_the_kernel_thread_leaves_its_waiters_waiting():
    # Event.set() from a plain thread is a misuse and raises. It used to empty
    # the waiter list before raising: the waiters were then never woken and,
    # worse, could not be cancelled any more (their timeout could not reach
    # them; the run ended in Deadlock).
    import threading

    async def main():
        ev = yieldio.Event()
        errors = []

        def set_from_a_thread():
            try:
                ev.set()
            except RuntimeError as exc:
                errors.append(str(exc))

        async with yieldio.TaskGroup() as tg:
            async def waiter():
                with yieldio.move_on_after(5) as scope:
                    await ev.wait()
                return scope.cancelled_caught

            t = tg.spawn(waiter)
            await yieldio.sleep(1)
            th = threading.Thread(target=set_from_a_thread)
            th.start()
            th.join()
        return len(errors), ev.is_set(), t.result(), yieldio.current_time()

    assert vrun(main) == (1, False, True, 5.0)


def test_lock_acquire_nowait_by_the_owner_says_it_is_not_re_entrant():
    async def main():
        lock = yieldio.Lock()
        lock.acquire_nowait()
        with pytest.raises(RuntimeError, match="re-entrant"):
            lock.acquire_nowait()
        lock.release()  # no cancelled waiter is handed the lock
        assert not lock.locked()

    vrun(main)


def test_semaphore_max_value_must_be_an_int():
    with pytest.raises(ValueError, match="max_value"):
        yieldio.Semaphore(1, max_value="3")


# -- edge cases: reprs, checkpoints, misuse outside a run, waits seen from outside --

def test_reprs_and_properties_show_the_state():
    async def main():
        ev = yieldio.Event()
        lock = yieldio.Lock()
        sem = yieldio.Semaphore(2, max_value=3)
        assert repr(ev) == "<Event unset, 0 waiting>"
        assert repr(lock) == "<Lock unlocked, 0 waiting>"
        assert repr(sem) == "<Semaphore value=2, 0 waiting>"
        assert sem.max_value == 3 and yieldio.Semaphore().max_value is None
        async with lock:
            assert repr(lock) == f"<Lock held by {yieldio.current_task()!r}, 0 waiting>"
        ev.set()
        ev.set()  # setting a set event changes nothing
        assert repr(ev) == "<Event set, 0 waiting>" and ev.is_set()

    vrun(main)


def test_acquire_is_a_checkpoint_even_when_free():
    async def main():
        lock = yieldio.Lock()
        sem = yieldio.Semaphore(1)
        for acquire in (lock.acquire, sem.acquire):
            with yieldio.CancelScope() as scope:
                scope.cancel()
                await acquire()
                raise AssertionError("not a checkpoint")
            assert scope.cancelled_caught
        # Nothing was taken by the cancelled calls.
        assert not lock.locked() and sem.value == 1

    vrun(main)


def test_waiting_outside_a_run_is_a_clear_error():
    for wait in (yieldio.Lock().acquire(), yieldio.Semaphore().acquire()):
        with pytest.raises(RuntimeError, match=r"yieldio\.run\(\)"):
            wait.send(None)


def test_condition_acquire_release_and_notify_all():
    async def waiter(cond, woke):
        await cond.acquire()
        try:
            await cond.wait()
            woke.append(cond.lock.owner is yieldio.current_task())
        finally:
            cond.release()

    async def main():
        cond = yieldio.Condition()
        woke = []
        async with yieldio.TaskGroup() as tg:
            for _ in range(3):
                tg.spawn(waiter, cond, woke)
            await yieldio.sleep(1)
            await cond.acquire()
            assert cond.locked()
            cond.notify_all()
            cond.release()
        assert woke == [True, True, True]
        with pytest.raises(RuntimeError, match="does not hold"):
            cond.release()

    vrun(main)


def test_condition_wait_when_already_cancelled_keeps_the_lock():
    async def main():
        cond = yieldio.Condition()
        async with cond:
            with yieldio.CancelScope() as scope:
                scope.cancel()
                await cond.wait()
                raise AssertionError("not a checkpoint")
            assert scope.cancelled_caught
            assert cond.lock.owner is yieldio.current_task()
        assert not cond.locked()

    vrun(main)


def test_describe_wait_names_the_primitive():
    from yieldio.debug import describe_wait
    from yieldio.testing import wait_all_tasks_blocked

    async def main():
        lock, sem, cond = yieldio.Lock(), yieldio.Semaphore(0), yieldio.Condition()

        async def wait_cond():
            async with cond:
                await cond.wait()

        await lock.acquire()
        async with yieldio.TaskGroup() as tg:
            tasks = [tg.spawn(lock.acquire), tg.spawn(sem.acquire), tg.spawn(wait_cond)]
            await wait_all_tasks_blocked()
            me = yieldio.current_task().id
            assert [describe_wait(t) for t in tasks] == [
                f"Lock.acquire (held by task {me})", "Semaphore.acquire", "Condition.wait on cond"]
            tg.cancel()
        assert sem.value == 0  # the cancelled waiter took no permit
        lock.release()  # no cancelled waiter is handed the lock
        assert not lock.locked()

    vrun(main)


def test_semaphore_release_from_a_plain_thread_raises_and_keeps_its_waiter():
    # As Event.set(): a release that would wake a task checks the thread
    # first. It used to reschedule the waiter from the plain thread, touching
    # the kernel's ready queue unlocked.
    import threading

    async def main():
        sem = yieldio.Semaphore(0)
        errors = []

        def release_from_a_thread():
            try:
                sem.release()
            except RuntimeError as exc:
                errors.append(str(exc))

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(sem.acquire)
            await wait_all_tasks_blocked()
            th = threading.Thread(target=release_from_a_thread)
            th.start()
            th.join()
            assert "from_thread" in errors[0]
            assert (sem.value, repr(sem)) == (0, "<Semaphore value=0, 1 waiting>")
            sem.release()
        return t.done(), sem.value

    assert vrun(main) == (True, 0)


def test_a_lock_whose_owner_ended_holding_it_breaks_for_a_later_acquire():
    async def main():
        lock = yieldio.Lock()

        async def forgets_to_release():
            await lock.acquire()

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(forgets_to_release)
        assert t.done() and lock.locked() and lock.owner is t
        with pytest.raises(yieldio.BrokenResourceError, match="ended without releasing"):
            lock.acquire_nowait()
        with pytest.raises(yieldio.BrokenResourceError, match=f"Task {t.id}|task {t.id}|{t.id}"):
            async with lock:
                pass
        return "done"

    assert vrun(main) == "done"


def test_waiters_of_a_lock_whose_owner_ends_holding_it_get_broken_resource_error():
    async def main():
        lock = yieldio.Lock()
        release = yieldio.Event()
        outcomes = []

        async def owner():
            await lock.acquire()
            await release.wait()  # ends without lock.release()

        async def waiter(n):
            try:
                async with lock:
                    outcomes.append((n, "got it"))
            except yieldio.BrokenResourceError as exc:
                outcomes.append((n, type(exc).__name__))

        async with yieldio.TaskGroup() as tg:
            tg.spawn(owner)
            await wait_all_tasks_blocked()
            tg.spawn(waiter, 1)
            tg.spawn(waiter, 2)
            await wait_all_tasks_blocked()
            assert outcomes == []
            release.set()
        return outcomes

    assert vrun(main) == [(1, "BrokenResourceError"), (2, "BrokenResourceError")]


def test_a_lock_handed_over_then_kept_by_its_new_owner_breaks_for_the_rest():
    async def main():
        lock = yieldio.Lock()
        log = []

        async def first():
            async with lock:
                await yieldio.sleep(1)
            log.append("first released")

        async def second():
            await lock.acquire()  # handed over by first; never released
            log.append("second owns")
            await yieldio.sleep(1)

        async def third():
            try:
                await lock.acquire()
            except yieldio.BrokenResourceError:
                log.append("third broken")

        async with yieldio.TaskGroup() as tg:
            tg.spawn(first)
            await wait_all_tasks_blocked()
            tg.spawn(second)
            await wait_all_tasks_blocked()
            tg.spawn(third)
        return log

    assert vrun(main) == ["first released", "second owns", "third broken"]


def test_an_owner_that_released_before_ending_leaves_the_lock_usable():
    async def main():
        lock = yieldio.Lock()
        got = []

        async def owner():
            async with lock:
                await yieldio.sleep(1)
            await yieldio.sleep(1)  # still alive after releasing

        async def waiter():
            async with lock:
                got.append(yieldio.current_task().name)

        async with yieldio.TaskGroup() as tg:
            o = tg.spawn(owner)
            await wait_all_tasks_blocked()
            tg.spawn(waiter, name="w")
        # The waiter's registration on the owner was dropped at release.
        assert o._extra is None or not o._extra.held
        async with lock:
            pass
        return got

    assert vrun(main) == ["w"]


def test_a_cancelled_waiter_is_not_woken_when_the_owner_later_ends_holding_the_lock():
    async def main():
        lock = yieldio.Lock()
        log = []

        async def owner():
            await lock.acquire()
            await yieldio.sleep(5)

        async def impatient():
            with yieldio.move_on_after(1) as scope:
                await lock.acquire()
            log.append(("timed out", scope.cancelled_caught))
            await yieldio.sleep(10)  # alive when the owner ends
            log.append("still fine")

        async with yieldio.TaskGroup() as tg:
            tg.spawn(owner)
            await wait_all_tasks_blocked()
            tg.spawn(impatient)
        return log

    assert vrun(main) == [("timed out", True), "still fine"]


def test_broken_stream_error_is_a_broken_resource_error():
    assert issubclass(yieldio.BrokenStreamError, yieldio.BrokenResourceError)
    assert not issubclass(yieldio.BrokenResourceError, yieldio.ClosedResourceError)


def test_event_set_from_another_run_raises_and_keeps_its_waiters():
    # Each thread has its own kernel: a set() from a run in another thread
    # must not touch this run's ready queue (it used to check only that some
    # kernel ran in the calling thread).
    import threading

    async def main():
        ev = yieldio.Event()
        errors = []

        async def set_it():
            ev.set()

        def other_run():
            try:
                yieldio.run(set_it)
            except RuntimeError as exc:
                errors.append(str(exc))

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(ev.wait)
            await wait_all_tasks_blocked()
            th = threading.Thread(target=other_run)
            th.start()
            th.join(10)
            assert "different yieldio run" in errors[0]
            assert not ev.is_set() and ev.statistics()["tasks_waiting"] == 1
            ev.set()
        return t.done()

    assert vrun(main) is True


@pytest.mark.parametrize("primitive", ["lock", "condition"])
def test_lock_release_and_notify_refuse_to_wake_a_task_of_another_threads_run(primitive):
    # Two yieldio.run()s in two threads sharing one Lock (or Condition): the
    # release (notify) pushed the waiter onto the other kernel's ready queue
    # from the wrong thread, and that kernel noticed only when something else
    # woke it. Semaphore, Event and Queue refused with a RuntimeError.
    import threading

    cond = yieldio.Condition()
    lock = cond._lock
    a_holds, b_waits, a_tried, a_released, b_done = (threading.Event() for _ in range(5))
    seen = {}

    async def run_a():
        if primitive == "lock":
            await lock.acquire()
            a_holds.set()
        await yieldio.to_thread(b_waits.wait, 10)
        if primitive == "condition":
            await lock.acquire()
        with pytest.raises(RuntimeError, match="another thread use yieldio.UniversalQueue"):
            if primitive == "lock":
                lock.release()
            else:
                cond.notify()
        seen["a still owns it"] = lock._owner is yieldio.current_task()
        a_tried.set()
        if primitive == "lock":
            await yieldio.to_thread(b_done.wait, 10)  # B's waiter gone: now it can go
        lock.release()
        a_released.set()

    async def run_b():
        async def waiter():
            if primitive == "lock":
                await lock.acquire()
            else:
                async with cond:
                    await cond.wait()
            seen["b woke"] = True

        if primitive == "lock":
            await yieldio.to_thread(a_holds.wait, 10)
        async with yieldio.TaskGroup() as tg:
            tg.spawn(waiter)
            await wait_all_tasks_blocked()
            b_waits.set()
            await yieldio.to_thread(a_tried.wait, 10)
            if primitive == "condition":
                # A cancelled cond.wait() takes the lock back before it ends.
                await yieldio.to_thread(a_released.wait, 10)
            tg.cancel()  # the waiter is still parked, and still cancellable
        b_done.set()

    threads = [threading.Thread(target=yieldio.run, args=(fn,)) for fn in (run_a, run_b)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(20)
    assert seen == {"a still owns it": True}
