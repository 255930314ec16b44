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
