"""CapacityLimiter: tokens per borrower, FIFO hand-over, cancellation, to_thread(limiter=)."""

from __future__ import annotations

import functools
import math
import threading
import time

import pytest

import yieldio
from yieldio.testing import VirtualClock, wait_all_tasks_blocked


def vrun(fn, *args):
    return yieldio.run(fn, *args, clock=VirtualClock(autojump=True))


# -- construction and total_tokens -------------------------------------------

@pytest.mark.parametrize("bad", [1.5, 2.0, "3", None, True, -math.inf, math.nan])
def test_total_tokens_of_the_wrong_type_is_a_type_error(bad):
    with pytest.raises(TypeError, match="int or math.inf"):
        yieldio.CapacityLimiter(bad)


@pytest.mark.parametrize("bad", [0, -1])
def test_total_tokens_below_one_is_a_value_error(bad):
    with pytest.raises(ValueError, match=">= 1"):
        yieldio.CapacityLimiter(bad)


def test_setting_a_bad_total_keeps_the_old_one():
    limiter = yieldio.CapacityLimiter(math.inf)
    assert limiter.total_tokens == math.inf
    for bad, error in ((0, ValueError), (2.5, TypeError), (False, TypeError)):
        with pytest.raises(error):
            limiter.total_tokens = bad
    assert limiter.total_tokens == math.inf
    limiter.total_tokens = 3
    assert limiter.total_tokens == 3 and limiter.available_tokens == 3


def test_sync_reexports_it():
    from yieldio.sync import CapacityLimiter

    assert CapacityLimiter is yieldio.CapacityLimiter
    assert "CapacityLimiter" in yieldio.__all__


# -- the basics ----------------------------------------------------------------

def test_limits_concurrency():
    async def worker(limiter, state):
        async with limiter:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            await yieldio.sleep(1)
            state["now"] -= 1

    async def main():
        limiter = yieldio.CapacityLimiter(3)
        state = {"now": 0, "max": 0}
        async with yieldio.TaskGroup() as tg:
            for _ in range(10):
                tg.spawn(worker, limiter, state)
        return state["max"], yieldio.current_time(), limiter.borrowed_tokens

    assert vrun(main) == (3, 4.0, 0)


def test_waiters_get_tokens_in_fifo_order():
    async def worker(limiter, log, n):
        async with limiter:
            log.append(n)
            await yieldio.sleep(1)

    async def main():
        limiter = yieldio.CapacityLimiter(1)
        log = []
        await limiter.acquire()
        async with yieldio.TaskGroup() as tg:
            for n in range(6):
                tg.spawn(worker, limiter, log, n)
                await wait_all_tasks_blocked()  # each parks before the next arrives
            assert limiter.statistics()["tasks_waiting"] == 6
            limiter.release()
        return log

    assert vrun(main) == [0, 1, 2, 3, 4, 5]


def test_acquire_nowait_and_release():
    async def main():
        limiter = yieldio.CapacityLimiter(1)
        me = yieldio.current_task()
        limiter.acquire_nowait()
        assert limiter.statistics()["borrowers"] == [me]
        assert (limiter.borrowed_tokens, limiter.available_tokens) == (1, 0)
        with pytest.raises(yieldio.WouldBlock):
            limiter.acquire_on_behalf_of_nowait("someone else")
        limiter.release()
        limiter.acquire_on_behalf_of_nowait("someone else")
        assert limiter.statistics()["borrowers"] == ["someone else"]
        limiter.release_on_behalf_of("someone else")
        assert limiter.borrowed_tokens == 0

    vrun(main)


def test_acquire_nowait_is_refused_while_others_wait():
    async def main():
        limiter = yieldio.CapacityLimiter(1)
        await limiter.acquire()
        async with yieldio.TaskGroup() as tg:
            tg.spawn(limiter.acquire_on_behalf_of, "first in line")
            await wait_all_tasks_blocked()
            with pytest.raises(yieldio.WouldBlock):
                limiter.acquire_on_behalf_of_nowait("barger")
            limiter.release()  # handed to the waiter, not left for a barger
            assert limiter.statistics()["borrowers"] == ["first in line"]
            with pytest.raises(yieldio.WouldBlock):
                limiter.acquire_on_behalf_of_nowait("barger")

    vrun(main)


# -- one token per borrower ------------------------------------------------------

def test_acquiring_twice_is_a_runtime_error():
    async def main():
        limiter = yieldio.CapacityLimiter(5)
        async with limiter:
            with pytest.raises(RuntimeError, match="already holds"):
                await limiter.acquire()
            with pytest.raises(RuntimeError, match="already holds"):
                limiter.acquire_nowait()
            with pytest.raises(RuntimeError, match="already holds"):
                await limiter.acquire_on_behalf_of(yieldio.current_task())
        await limiter.acquire_on_behalf_of("job")
        with pytest.raises(RuntimeError, match="already holds"):
            limiter.acquire_on_behalf_of_nowait("job")
        assert limiter.borrowed_tokens == 1  # the refused calls took nothing
        limiter.release_on_behalf_of("job")

    vrun(main)


def test_the_refusal_also_holds_when_every_token_is_out():
    async def main():
        limiter = yieldio.CapacityLimiter(1)
        await limiter.acquire()
        with pytest.raises(RuntimeError, match="already holds"):
            await limiter.acquire()  # not a wait for ever on itself
        limiter.release()

    vrun(main)


def test_two_waits_on_behalf_of_one_borrower_are_refused():
    async def main():
        limiter = yieldio.CapacityLimiter(1)
        await limiter.acquire()
        async with yieldio.TaskGroup() as tg:
            tg.spawn(limiter.acquire_on_behalf_of, "job")
            await wait_all_tasks_blocked()
            with pytest.raises(RuntimeError, match="already waiting"):
                await limiter.acquire_on_behalf_of("job")
            with pytest.raises(RuntimeError, match="already waiting"):
                limiter.acquire_on_behalf_of_nowait("job")
            limiter.release()
        assert limiter.statistics()["borrowers"] == ["job"]

    vrun(main)


def test_releasing_a_token_you_do_not_hold_is_a_runtime_error():
    async def main():
        limiter = yieldio.CapacityLimiter(2)
        with pytest.raises(RuntimeError, match="holds no token"):
            limiter.release()
        with pytest.raises(RuntimeError, match="holds no token"):
            limiter.release_on_behalf_of("nobody")

        async def holder():
            await limiter.acquire()
            await yieldio.sleep(1)
            limiter.release()

        async with yieldio.TaskGroup() as tg:
            tg.spawn(holder)
            await wait_all_tasks_blocked()
            with pytest.raises(RuntimeError, match="holds no token"):
                limiter.release()  # another task's token is not ours to return
            assert limiter.borrowed_tokens == 1
        assert limiter.borrowed_tokens == 0

    vrun(main)


def test_a_borrower_may_be_released_by_another_task():
    async def main():
        limiter = yieldio.CapacityLimiter(1)
        job = object()
        await limiter.acquire_on_behalf_of(job)
        # The task itself is a different borrower, and must wait.
        async with yieldio.TaskGroup() as tg:
            waiter = tg.spawn(limiter.acquire)
            await wait_all_tasks_blocked()

            async def finisher():
                limiter.release_on_behalf_of(job)

            tg.spawn(finisher)
        assert limiter.statistics()["borrowers"] == [waiter]

    vrun(main)


def test_a_task_that_ends_holding_a_token_keeps_it_borrowed():
    # As in trio (and unlike Lock, which breaks): documented on the class.
    async def main():
        limiter = yieldio.CapacityLimiter(1)
        async with yieldio.TaskGroup() as tg:
            forgetful = tg.spawn(limiter.acquire)
        assert forgetful.done() and limiter.statistics()["borrowers"] == [forgetful]
        with pytest.raises(yieldio.WouldBlock):
            limiter.acquire_nowait()
        limiter.release_on_behalf_of(forgetful)  # anyone may give it back
        limiter.acquire_nowait()
        limiter.release()

    vrun(main)


# -- total_tokens changes ----------------------------------------------------------

def test_raising_total_tokens_wakes_waiters_at_once_in_order():
    async def waiter(limiter, log, n):
        await limiter.acquire()
        log.append((n, yieldio.current_time()))

    async def main():
        limiter = yieldio.CapacityLimiter(1)
        log = []
        await yieldio.sleep(1)
        await limiter.acquire()
        async with yieldio.TaskGroup() as tg:
            for n in range(5):
                tg.spawn(waiter, limiter, log, n)
                await wait_all_tasks_blocked()
            limiter.total_tokens = 3  # two more: the two longest waiters
            assert limiter.statistics()["tasks_waiting"] == 3
            assert limiter.borrowed_tokens == 3
            await wait_all_tasks_blocked()
            assert log == [(0, 1.0), (1, 1.0)]
            limiter.total_tokens = math.inf  # every one
            assert limiter.statistics()["tasks_waiting"] == 0
        assert [n for n, _ in log] == [0, 1, 2, 3, 4]
        assert limiter.available_tokens == math.inf
        return limiter.borrowed_tokens

    assert vrun(main) == 6


def test_lowering_total_tokens_revokes_nothing_and_later_acquires_wait():
    async def main():
        limiter = yieldio.CapacityLimiter(3)
        for name in "abc":
            limiter.acquire_on_behalf_of_nowait(name)
        limiter.total_tokens = 1
        assert (limiter.borrowed_tokens, limiter.available_tokens) == (3, 0)
        assert repr(limiter) == "<CapacityLimiter 3/1 borrowed, 0 waiting>"
        with pytest.raises(yieldio.WouldBlock):
            limiter.acquire_nowait()
        async with yieldio.TaskGroup() as tg:
            waiter = tg.spawn(limiter.acquire)
            await wait_all_tasks_blocked()
            limiter.release_on_behalf_of("a")
            limiter.release_on_behalf_of("b")
            await wait_all_tasks_blocked()
            assert not waiter.done()  # 1 borrowed of 1: still no room
            limiter.release_on_behalf_of("c")
        assert limiter.statistics()["borrowers"] == [waiter]

    vrun(main)


# -- cancellation ----------------------------------------------------------------

def test_acquire_is_a_checkpoint_even_when_a_token_is_free():
    async def main():
        limiter = yieldio.CapacityLimiter(2)
        for acquire in (limiter.acquire, lambda: limiter.acquire_on_behalf_of("x")):
            with yieldio.CancelScope() as scope:
                scope.cancel()
                await acquire()
                raise AssertionError("not a checkpoint")
            assert scope.cancelled_caught
        with yieldio.CancelScope() as scope:
            scope.cancel()
            async with limiter:
                raise AssertionError("not a checkpoint")
        assert scope.cancelled_caught
        return limiter.borrowed_tokens  # the cancelled calls took nothing

    assert vrun(main) == 0


def test_a_cancelled_waiter_withdraws_and_leaves_the_counts_whole():
    async def main():
        limiter = yieldio.CapacityLimiter(1)
        await limiter.acquire()

        async def impatient():
            with yieldio.move_on_after(1) as scope:
                await limiter.acquire_on_behalf_of("impatient")
            return scope.cancelled_caught

        async with yieldio.TaskGroup() as tg:
            gave_up = tg.spawn(impatient)
            patient = tg.spawn(limiter.acquire)
            await yieldio.sleep(2)
            assert gave_up.result() is True
            assert limiter.statistics()["tasks_waiting"] == 1
            limiter.release()  # goes to the patient one, never to the one gone
        assert limiter.statistics()["borrowers"] == [patient]
        # "impatient" is no longer pending: it may wait again.
        limiter.release_on_behalf_of(patient)
        await limiter.acquire_on_behalf_of("impatient")
        return limiter.borrowed_tokens

    assert vrun(main) == 1


def test_a_waiter_woken_then_cancelled_keeps_its_token_until_it_releases():
    # The race: release() hands the token over, and the waiter's scope is
    # cancelled before the waiter runs. The token is the waiter's (not lost,
    # not left to nobody), and `async with` gives it back on the way out.
    async def main():
        limiter = yieldio.CapacityLimiter(1)
        await limiter.acquire()
        scopes, log = [], []

        async def waiter():
            with yieldio.CancelScope() as scope:
                scopes.append(scope)
                async with limiter:
                    log.append(("in", limiter.statistics()["borrowers"]))
                    await yieldio.sleep(1)
                    log.append("not reached")
            log.append(("cancelled", scope.cancelled_caught))

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(waiter)
            await wait_all_tasks_blocked()
            limiter.release()
            scopes[0].cancel()  # same step: the waiter was woken already
            assert limiter.statistics()["borrowers"] == [t]
        assert log == [("in", [t]), ("cancelled", True)]
        return limiter.borrowed_tokens, limiter.statistics()["tasks_waiting"]

    assert vrun(main) == (0, 0)


def test_a_bare_acquire_woken_then_cancelled_returns_with_the_token():
    async def main():
        limiter = yieldio.CapacityLimiter(1)
        await limiter.acquire()
        scopes = []

        async def waiter():
            with yieldio.CancelScope() as scope:
                scopes.append(scope)
                await limiter.acquire()
                held = limiter.statistics()["borrowers"] == [yieldio.current_task()]
                try:
                    await yieldio.checkpoint()  # the cancellation comes here
                finally:
                    limiter.release()
            return held, scope.cancelled_caught

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(waiter)
            await wait_all_tasks_blocked()
            limiter.release()
            scopes[0].cancel()
        return t.result(), limiter.borrowed_tokens

    assert vrun(main) == ((True, True), 0)


def test_cancelling_every_waiter_then_raising_the_total_wakes_nobody_stale():
    async def main():
        limiter = yieldio.CapacityLimiter(1)
        await limiter.acquire()
        async with yieldio.TaskGroup() as tg:
            for n in range(3):
                tg.spawn(limiter.acquire_on_behalf_of, n)
            await wait_all_tasks_blocked()
            tg.cancel()
        assert limiter.statistics()["tasks_waiting"] == 0
        limiter.total_tokens = 10
        return limiter.statistics()["borrowers"] == [yieldio.current_task()]

    assert vrun(main)


# -- repr, statistics, describe_wait, misuse ------------------------------------------

def test_repr_statistics_and_describe_wait():
    from yieldio.debug import describe_wait

    async def main():
        limiter = yieldio.CapacityLimiter(2)
        assert repr(limiter) == "<CapacityLimiter 0/2 borrowed, 0 waiting>"
        assert limiter.statistics() == {
            "borrowed_tokens": 0, "total_tokens": 2, "borrowers": [], "tasks_waiting": 0}
        me = yieldio.current_task()
        await limiter.acquire()
        limiter.acquire_on_behalf_of_nowait("job")
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(limiter.acquire)
            await wait_all_tasks_blocked()
            assert repr(limiter) == "<CapacityLimiter 2/2 borrowed, 1 waiting>"
            assert limiter.statistics() == {
                "borrowed_tokens": 2, "total_tokens": 2, "borrowers": [me, "job"],
                "tasks_waiting": 1}
            # Like Lock's, the wait names who holds the tokens.
            assert describe_wait(t) == (
                f"CapacityLimiter.acquire (2/2 borrowed, by task {me.id}, 'job')")
            assert t.waiting_on is limiter
            limiter.release()
        assert limiter.statistics()["borrowers"] == ["job", t]
        limiter.total_tokens = math.inf
        assert repr(limiter) == "<CapacityLimiter 2/inf borrowed, 0 waiting>"

    vrun(main)


def test_use_outside_a_run_is_a_clear_error():
    limiter = yieldio.CapacityLimiter(1)
    for wait in (limiter.acquire(), limiter.acquire_on_behalf_of("x")):
        with pytest.raises(RuntimeError, match=r"yieldio\.run\(\)"):
            wait.send(None)
    for call in (limiter.acquire_nowait, lambda: limiter.acquire_on_behalf_of_nowait("x"),
                 limiter.release):
        with pytest.raises(RuntimeError, match=r"yieldio\.run\(\)"):
            call()
    assert limiter.borrowed_tokens == 0


def test_waking_a_waiter_from_a_plain_thread_is_refused_and_changes_nothing():
    async def main():
        limiter = yieldio.CapacityLimiter(1)
        limiter.acquire_on_behalf_of_nowait("job")
        errors = []

        def from_a_thread():
            for change in (lambda: limiter.release_on_behalf_of("job"),
                           lambda: setattr(limiter, "total_tokens", 2)):
                try:
                    change()
                except RuntimeError as exc:
                    errors.append(str(exc))

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(limiter.acquire)
            await wait_all_tasks_blocked()
            th = threading.Thread(target=from_a_thread)
            th.start()
            th.join()
            assert len(errors) == 2 and all("from_thread" in e for e in errors)
            assert repr(limiter) == "<CapacityLimiter 1/1 borrowed, 1 waiting>"
            limiter.release_on_behalf_of("job")
        return limiter.statistics()["borrowers"] == [t]

    assert vrun(main)


# -- to_thread(limiter=) ------------------------------------------------------------

class Gauge:
    """How many threads are inside ``run`` at once, at most."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now = self.max = self.calls = 0

    def run(self, seconds):
        with self.lock:
            self.now += 1
            self.calls += 1
            self.max = max(self.max, self.now)
        time.sleep(seconds)
        with self.lock:
            self.now -= 1
        return seconds


def test_to_thread_with_a_limiter_runs_at_most_that_many_threads():
    async def main():
        limiter = yieldio.CapacityLimiter(2)
        gauge = Gauge()
        results = []

        async def call():
            results.append(await yieldio.to_thread(gauge.run, 0.05, limiter=limiter))

        async with yieldio.TaskGroup() as tg:
            for _ in range(5):
                tg.spawn(call)
            await wait_all_tasks_blocked()
            stats = limiter.statistics()
            assert (stats["borrowed_tokens"], stats["tasks_waiting"]) == (2, 3)
            assert all(repr(b) == "<to_thread(Gauge.run) call>" for b in stats["borrowers"])
        return gauge.max, gauge.calls, results, limiter.borrowed_tokens

    assert vrun(main) == (2, 5, [0.05] * 5, 0)


def test_to_thread_limiter_must_be_a_capacity_limiter():
    with pytest.raises(TypeError, match="CapacityLimiter"):
        yieldio.to_thread(print, limiter=yieldio.Semaphore(2))


def test_to_thread_error_still_returns_the_token():
    def boom():
        raise ValueError("in thread")

    async def main():
        limiter = yieldio.CapacityLimiter(1)
        with pytest.raises(ValueError, match="in thread"):
            await yieldio.to_thread(boom, limiter=limiter)
        return limiter.borrowed_tokens

    assert vrun(main) == 0


def test_to_thread_cancelled_while_waiting_for_a_token_never_runs():
    async def main():
        limiter = yieldio.CapacityLimiter(1)
        await limiter.acquire()
        ran = []
        with yieldio.move_on_after(1) as scope:
            await yieldio.to_thread(ran.append, "ran", limiter=limiter)
        limiter.release()
        return scope.cancelled_caught, ran, limiter.statistics()

    caught, ran, stats = vrun(main)
    assert caught and ran == []
    assert (stats["borrowed_tokens"], stats["tasks_waiting"]) == (0, 0)


def test_to_thread_woken_then_cancelled_gives_the_token_back_without_running():
    async def main():
        limiter = yieldio.CapacityLimiter(1)
        await limiter.acquire()
        ran, scopes = [], []

        async def caller():
            with yieldio.CancelScope() as scope:
                scopes.append(scope)
                await yieldio.to_thread(ran.append, "ran", limiter=limiter)
            return scope.cancelled_caught

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(caller)
            await wait_all_tasks_blocked()
            limiter.release()  # handed to the to_thread call's job...
            scopes[0].cancel()  # ...which is cancelled before its task runs
            nxt = tg.spawn(limiter.acquire)
        return t.result(), ran, limiter.statistics()["borrowers"] == [nxt]

    assert vrun(main) == (True, [], True)


def test_an_abandoned_to_thread_keeps_its_token_until_the_thread_ends():
    # cancellable=True: the caller leaves at once, but the thread still runs
    # and still holds the token; it goes back when the thread ends. A task
    # waiting for it meanwhile is not a Deadlock (the thread will end).
    async def main():
        limiter = yieldio.CapacityLimiter(1)
        started, finish = threading.Event(), threading.Event()
        scopes = []

        def blocking():
            started.set()
            finish.wait(10)
            return "late"

        async def caller():
            with yieldio.CancelScope() as scope:
                scopes.append(scope)
                await yieldio.to_thread(blocking, cancellable=True, limiter=limiter)
            return scope.cancelled_caught

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(caller)
            await yieldio.to_thread(started.wait, 10)
            scopes[0].cancel()
        assert t.result() is True
        stats = limiter.statistics()
        assert stats["borrowed_tokens"] == 1
        assert repr(stats["borrowers"][0]).endswith(".blocking) call>")
        timer = threading.Timer(0.05, finish.set)
        timer.start()
        await limiter.acquire()  # waits for the thread's end, not a Deadlock
        assert finish.is_set()
        await yieldio.to_thread(timer.join, 5)  # (else the leak check may see it ending)
        return limiter.statistics()["borrowers"] == [yieldio.current_task()]

    assert vrun(main)


def test_a_to_thread_withdrawn_from_a_full_pool_gives_its_token_back():
    async def main():
        pool = yieldio.threads.WorkerPool(max_workers=1)
        limiter = yieldio.CapacityLimiter(5)
        started, finish = threading.Event(), threading.Event()
        ran, scopes = [], []

        def occupy():
            started.set()
            finish.wait(10)

        async def queued():
            with yieldio.CancelScope() as scope:
                scopes.append(scope)
                await yieldio.to_thread(ran.append, 1, pool=pool, limiter=limiter)

        async with yieldio.TaskGroup() as tg:
            # No limiter for this one: it only keeps the pool's one worker busy.
            tg.spawn(functools.partial(yieldio.to_thread, occupy, pool=pool))
            await yieldio.to_thread(started.wait, 10)
            tg.spawn(queued)
            await wait_all_tasks_blocked()
            assert limiter.borrowed_tokens == 1  # it holds a token, queued for a worker
            scopes[0].cancel()
            await wait_all_tasks_blocked()
            assert limiter.borrowed_tokens == 0  # withdrawn: never runs, token back
            finish.set()
        return ran, limiter.borrowed_tokens

    assert vrun(main) == ([], 0)


def test_an_abandoned_call_queued_for_a_worker_gives_its_token_back_when_dropped():
    # cancellable=True and still queued behind a full pool: the job is taken
    # out of the queue, so the token comes back at once (it used to wait for
    # a worker to take the job and skip it).
    async def main():
        pool = yieldio.threads.WorkerPool(max_workers=1)
        limiter = yieldio.CapacityLimiter(5)
        started, finish = threading.Event(), threading.Event()
        ran, scopes = [], []

        def occupy():
            started.set()
            finish.wait(10)

        async def queued():
            with yieldio.CancelScope() as scope:
                scopes.append(scope)
                await yieldio.to_thread(ran.append, 1, pool=pool, limiter=limiter,
                                        cancellable=True)

        async with yieldio.TaskGroup() as tg:
            tg.spawn(functools.partial(yieldio.to_thread, occupy, pool=pool))
            await yieldio.to_thread(started.wait, 10)
            tg.spawn(queued)
            await wait_all_tasks_blocked()
            scopes[0].cancel()
            await wait_all_tasks_blocked()
            assert limiter.borrowed_tokens == 0  # withdrawn from the queue: given back
            finish.set()
        # The blocker's to_thread has returned; the skipped job reports back
        # through the kernel a moment later, from the worker: poll (real time).
        await limiter.acquire_on_behalf_of("after")  # a token is free: 5 total
        for _ in range(200):
            if limiter.borrowed_tokens == 1:
                break
            await yieldio.to_thread(time.sleep, 0.005)
        return ran, limiter.statistics()["borrowers"]

    assert vrun(main) == ([], ["after"])


def test_a_cancelled_call_queued_behind_a_full_pool_gives_its_token_back_at_once():
    # cancellable=True or not: a call still queued never runs, so its token
    # must not wait for a worker that unrelated calls keep busy.
    from yieldio.threads import WorkerPool

    gate = threading.Event()

    async def main():
        pool = WorkerPool(max_workers=1)
        limiter = yieldio.CapacityLimiter(1)
        ran = []
        async with yieldio.TaskGroup() as tg:
            tg.spawn(functools.partial(yieldio.to_thread, gate.wait, 10, pool=pool))
            await yieldio.sleep(0.05)  # the pool's only worker is busy now
            for cancellable in (True, False):
                with yieldio.move_on_after(0.05):
                    await yieldio.to_thread(ran.append, cancellable, cancellable=cancellable,
                                            pool=pool, limiter=limiter)
                assert limiter.borrowed_tokens == 0, limiter.statistics()
                with yieldio.fail_after(1):
                    async with limiter:  # at once: nothing holds the token
                        pass
            gate.set()
        assert ran == []  # neither call ever ran

    yieldio.run(main)


def test_a_call_whose_thread_cannot_start_gives_its_token_back(monkeypatch):
    from yieldio.threads import WorkerPool

    async def main():
        limiter = yieldio.CapacityLimiter(1)
        pool = WorkerPool(max_workers=4)

        def cannot_start(self):
            raise RuntimeError("can't start new thread")

        with monkeypatch.context() as m:
            m.setattr(threading.Thread, "start", cannot_start)
            with pytest.raises(RuntimeError, match="can't start new thread"):
                await yieldio.to_thread(lambda: 1, pool=pool, limiter=limiter)
        assert limiter.borrowed_tokens == 0
        with yieldio.fail_after(5):
            assert await yieldio.to_thread(lambda: 2, pool=pool, limiter=limiter) == 2

    yieldio.run(main)


def test_a_wait_on_a_limiter_names_at_most_three_holders():
    from yieldio.debug import describe_wait
    from yieldio.testing import wait_all_tasks_blocked

    async def main():
        limiter = yieldio.CapacityLimiter(5)
        for name in "abcde":
            limiter.acquire_on_behalf_of_nowait(name)
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(limiter.acquire)
            await wait_all_tasks_blocked()
            text = describe_wait(t)
            limiter.release_on_behalf_of("a")
        return text

    assert vrun(main) == "CapacityLimiter.acquire (5/5 borrowed, by 'a', 'b', 'c', ...)"
