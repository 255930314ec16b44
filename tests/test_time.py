"""Sleeping, deadlines and clocks."""

from __future__ import annotations

import math
import time

import pytest

import yieldio
from yieldio.testing import VirtualClock


def vrun(fn, *args, **kw):
    return yieldio.run(fn, *args, clock=VirtualClock(autojump=True), **kw)


def test_sleep_until_has_no_drift():
    async def main():
        start = yieldio.current_time()
        ticks = []
        deadline = start
        for _ in range(5):
            deadline += 1.5
            await yieldio.sleep_until(deadline)
            ticks.append(yieldio.current_time() - start)
        return ticks

    assert vrun(main) == [1.5, 3.0, 4.5, 6.0, 7.5]


def test_sleep_rejects_bad_values():
    async def main():
        with pytest.raises(ValueError):
            await yieldio.sleep(-1)
        with pytest.raises(ValueError):
            await yieldio.sleep_until(math.nan)

    vrun(main)


def test_sleep_in_the_past_is_a_checkpoint():
    async def main():
        with yieldio.CancelScope() as s:
            s.cancel()
            await yieldio.sleep_until(yieldio.current_time() - 10)
        return s.cancelled_caught

    assert vrun(main)


def test_timers_fire_in_deadline_order_and_ties_in_order():
    async def sleeper(d, log, tag):
        await yieldio.sleep(d)
        log.append(tag)

    async def main():
        log = []
        async with yieldio.TaskGroup() as tg:
            for tag, d in [("c", 3), ("a", 1), ("b1", 2), ("b2", 2)]:
                tg.spawn(sleeper, d, log, tag)
        return log

    assert vrun(main) == ["a", "b1", "b2", "c"]


def test_real_clock_sleep_is_real():
    async def main():
        t0 = time.monotonic()
        await yieldio.sleep(0.05)
        return time.monotonic() - t0

    assert yieldio.run(main) >= 0.045


def test_virtual_clock_manual_jump():
    clock = VirtualClock(start=100.0)

    async def sleeper(log):
        await yieldio.sleep(10)
        log.append(yieldio.current_time())

    async def main():
        log = []
        async with yieldio.TaskGroup() as tg:
            tg.spawn(sleeper, log)
            await yieldio.sleep(0)
            clock.jump(5)
            await yieldio.sleep(0)
            assert log == []
            clock.jump(5)
        return log

    assert yieldio.run(main, clock=clock) == [110.0]
    with pytest.raises(ValueError):
        clock.jump(-1)


def test_sleep_forever_until_cancelled():
    async def main():
        with yieldio.move_on_after(2):
            await yieldio.sleep_forever()
        return yieldio.current_time()

    assert vrun(main) == 2.0


def test_many_timers():
    import random

    rnd = random.Random(1)

    async def sleeper(d, out):
        await yieldio.sleep(d)
        out.append(d)

    async def main():
        out = []
        async with yieldio.TaskGroup() as tg:
            for _ in range(5000):
                tg.spawn(sleeper, rnd.random(), out)
        return out

    out = vrun(main)
    assert out == sorted(out) and len(out) == 5000


def test_sleep_rejects_non_numbers_clearly():
    async def main():
        with pytest.raises(TypeError, match="number of seconds"):
            await yieldio.sleep("x")

    vrun(main)


# -- the timer heap: distinct deadlines, ties kept in arrival order ------------

def test_many_tied_timers_fire_in_the_order_they_were_set():
    async def main():
        log = []

        async def sleeper(i):
            await yieldio.sleep(1)
            log.append(i)

        async with yieldio.TaskGroup() as tg:
            for i in range(50):
                tg.spawn(sleeper, i)
        return log

    assert vrun(main) == list(range(50))


def test_one_deadline_object_shared_by_several_sleepers():
    async def main():
        deadline = yieldio.current_time() + 2.0   # the very same float object
        woke = []

        async def sleeper(tag):
            await yieldio.sleep_until(deadline)
            woke.append((tag, yieldio.current_time()))

        async with yieldio.TaskGroup() as tg:
            for tag in "abc":
                tg.spawn(sleeper, tag)
        return woke

    assert vrun(main) == [("a", 2.0), ("b", 2.0), ("c", 2.0)]


def test_int_and_float_deadlines_that_are_equal_share_a_slot():
    async def main():
        log = []

        async def sleeper(tag, deadline):
            await yieldio.sleep_until(deadline)
            log.append(tag)

        async with yieldio.TaskGroup() as tg:
            tg.spawn(sleeper, "int", 3)
            tg.spawn(sleeper, "float", 3.0)
            tg.spawn(sleeper, "early", 1)
        k = yieldio._state.current_kernel()
        return log, k.timers, k.timer_targets

    log, heap, targets = vrun(main)
    assert log == ["early", "int", "float"]
    assert heap == [] and targets == {}


def test_cancelling_one_of_tied_timers_leaves_the_others():
    async def main():
        log = []

        async def sleeper(tag):
            with yieldio.move_on_after(5) as scope:
                await yieldio.sleep(5)
                log.append(tag)
            if scope.cancelled_caught:
                log.append(tag + " timed out")

        async with yieldio.TaskGroup() as tg:
            tasks = [tg.spawn(sleeper, tag) for tag in "abcd"]
            await yieldio.sleep(1)
            tasks[1].cancel()
        return log

    # Each task's sleep and its scope's deadline tie at t=5; b was cancelled at
    # t=1, so its timers are stale and must be skipped, not fired.
    # The scope's timer was set first, so it fires first: the sleeps time out.
    assert vrun(main) == ["a timed out", "c timed out", "d timed out"]


def test_a_timer_set_again_at_the_same_deadline_fires_once():
    async def main():
        fired = []
        with yieldio.CancelScope() as scope:
            scope.deadline = yieldio.current_time() + 1
            scope.deadline = yieldio.current_time() + 2
            scope.deadline = yieldio.current_time() + 1   # same value as the first
            try:
                await yieldio.sleep(10)
            finally:
                fired.append(yieldio.current_time())
        k = yieldio._state.current_kernel()
        return fired, scope.cancelled_caught, k.stale_timers, len(k.timers)

    fired, caught, stale, left = vrun(main)
    assert fired == [1.0] and caught
    # Left in the heap: the t=2 deadline and the sleep's t=10 timer, both stale.
    assert stale == left == 2


def test_cancelled_tied_timers_are_compacted_away():
    async def main():
        k = yieldio._state.current_kernel()
        async with yieldio.TaskGroup() as tg:
            deadline = yieldio.current_time() + 100
            for _ in range(3000):
                tg.spawn(yieldio.sleep_until, deadline)
            keeper = tg.spawn(yieldio.sleep_until, deadline)
            for _ in range(5):
                await yieldio.sleep(0)          # all of them are asleep now
            for t in tg.tasks:
                if t is not keeper:
                    t.cancel()
            await yieldio.sleep(1)              # a poll: compaction runs
            sizes = (len(k.timers), len(k.timer_targets), k.stale_timers)
        return sizes, keeper.done(), yieldio.current_time()

    sizes, keeper_done, now = vrun(main)
    assert keeper_done and now == 100.0
    assert sizes[2] == 0 and sizes[0] <= 2


def test_compaction_keeps_one_timer_for_a_target_re_armed_at_the_same_deadline():
    async def main():
        k = yieldio._state.current_kernel()
        with yieldio.CancelScope() as scope:
            scope.deadline = yieldio.current_time() + 1
            scope.deadline = math.inf
            scope.deadline = yieldio.current_time() + 1    # same deadline, again
            k._compact_timers()
            await yieldio.sleep(5)
        return scope.cancelled_caught, yieldio.current_time(), k.stale_timers

    # Only the sleep's own timer is left, stale after the scope fired at t=1.
    assert vrun(main) == (True, 1.0, 1)


def test_deadlines_fire_while_tasks_never_stop_being_ready():
    # With tasks always ready and no fd waiters the loop skips its poll and
    # only tends the timers: a busy loop of checkpoints must still time out,
    # and a sleeper beside it must still wake.
    woke = []

    async def sleeper():
        await yieldio.sleep(0.02)
        woke.append(yieldio.current_time())

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(sleeper)
            start = yieldio.current_time()
            spins = 0
            with yieldio.move_on_after(0.05) as scope:
                while True:
                    await yieldio.sleep(0)
                    spins += 1
            assert scope.cancelled_caught and spins > 10
            assert 0.05 <= yieldio.current_time() - start < 5
            assert woke and woke[0] - start >= 0.02

    yieldio.run(main)


def test_sleep_of_infinity_sleeps_forever_and_never_jumps_virtual_time_to_infinity():
    # sleep(inf) / sleep_until(inf) must be sleep_forever (as in trio). It used
    # to arm a timer at +inf, which an autojumping VirtualClock jumped to:
    # the sleep returned and current_time() became inf for the rest of the run.
    import threading

    async def main():
        log = []
        k = yieldio._state.current_kernel()
        with yieldio.CancelScope() as scope:
            async with yieldio.TaskGroup() as tg:
                async def sleeper(sleep, arg):
                    await sleep(arg)
                    log.append(("woke", yieldio.current_time()))

                tg.spawn(sleeper, yieldio.sleep, math.inf)
                tg.spawn(sleeper, yieldio.sleep_until, math.inf)
                # Every task is blocked now, with no finite timer: only an
                # outside event (this thread, after 0.1 s) ends the run.
                timer = threading.Timer(0.1, k.call_soon_threadsafe, (scope.cancel,))
                timer.start()
        timer.join(5)  # (it may still be ending: the leak check would count it)
        return log, scope.cancelled_caught, yieldio.current_time()

    assert vrun(main) == ([], True, 0.0)


def test_sleep_until_rejects_non_numbers_clearly():
    async def main():
        with pytest.raises(TypeError, match="sleep_until.*not 'soon'"):
            await yieldio.sleep_until("soon")

    vrun(main)


def test_time_functions_outside_a_run_are_a_clear_error():
    for wait in (yieldio.checkpoint(), yieldio.sleep_until(1.0), yieldio.sleep_forever()):
        with pytest.raises(RuntimeError, match=r"yieldio\.run\(\)"):
            wait.send(None)


def test_sleep_until_a_past_deadline_returns_at_once_but_is_a_checkpoint():
    async def main():
        await yieldio.sleep(5)
        await yieldio.sleep_until(1.0)
        assert yieldio.current_time() == 5.0
        for wait in (lambda: yieldio.sleep_until(1.0), yieldio.sleep_forever):
            with yieldio.CancelScope() as scope:
                scope.cancel()
                await wait()
                raise AssertionError("not a checkpoint")
            assert scope.cancelled_caught
        assert yieldio.current_time() == 5.0

    vrun(main)


def test_sleep_of_nan_is_refused():
    async def main():
        with pytest.raises(ValueError, match="must not be NaN"):
            await yieldio.sleep(math.nan)

    vrun(main)


def test_timeouts_that_never_fire_are_dropped_and_live_ones_still_fire():
    # Thousands of timeouts exited early (stale), many sharing one deadline,
    # some re-armed at the same deadline: the heap is compacted, and the
    # timers still live fire once each, at their time.
    from yieldio import _state

    fired = []

    async def sleeper(i, delay):
        await yieldio.sleep(delay)
        fired.append((i, yieldio.current_time()))

    async def main():
        k = _state.local.kernel
        async with yieldio.TaskGroup() as tg:
            for i in range(3):
                tg.spawn(sleeper, i, 50.0)  # three live timers tied at t=50
            await yieldio.sleep(0)
            for _ in range(3000):
                with yieldio.move_on_at(50.0):  # tied with the sleepers, then cancelled
                    pass
                with yieldio.move_on_at(60.0 + _ % 7):
                    await yieldio.sleep(0)
            assert len(k.timers) < 100  # compacted, not thousands of stale entries
            with yieldio.move_on_after(1.0) as scope:
                await yieldio.sleep(2.0)
            assert scope.cancelled_caught and yieldio.current_time() == 1.0

    yieldio.run(main, clock=VirtualClock(autojump=True))
    assert sorted(fired) == [(0, 50.0), (1, 50.0), (2, 50.0)]


def test_a_cancelled_timeout_at_the_top_of_the_heap_does_not_wake_the_loop_early():
    async def main():
        with yieldio.move_on_after(1.0):
            await yieldio.sleep(0)
        # The stale 1.0 deadline is the earliest; the next real one is 5.0.
        await yieldio.sleep(5.0)
        return yieldio.current_time()

    assert yieldio.run(main, clock=VirtualClock(autojump=True)) == 5.0


def test_fail_after_negative_names_the_value_given():
    # A negative timeout counts as 0, but the message said "fail_after(0)",
    # a call nobody wrote.
    async def main():
        with pytest.raises(TimeoutError, match=r"^fail_after\(-1\) timed out$"):
            with yieldio.fail_after(-1):
                await yieldio.sleep(1)
        with pytest.raises(TimeoutError, match=r"^fail_after\(-0\.5\) timed out$"):
            with yieldio.fail_after(-0.5):
                await yieldio.sleep(1)

    vrun(main)
