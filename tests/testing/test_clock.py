"""VirtualClock: time that moves only when told to, or (autojump) when everyone is idle."""

from __future__ import annotations

import time

import pytest

import yieldio
from yieldio.testing import VirtualClock, wait_all_tasks_blocked


def test_autojump_sleeps_an_hour_instantly():
    async def main():
        await yieldio.sleep(3600)
        return yieldio.current_time()

    started = time.monotonic()
    assert yieldio.run(main, clock=VirtualClock(autojump=True)) == 3600.0
    assert time.monotonic() - started < 30  # generous: only "not an hour"


def test_start_time_and_repr():
    clock = VirtualClock(100.0, autojump=True)
    assert "now=100.000000" in repr(clock) and "autojump=True" in repr(clock)

    async def main():
        await yieldio.sleep(5)
        return yieldio.current_time()

    assert yieldio.run(main, clock=clock) == 105.0


def test_jump_moves_time_and_fires_timers_without_autojump():
    clock = VirtualClock()
    woke: list[float] = []

    async def sleeper():
        await yieldio.sleep(10)
        woke.append(yieldio.current_time())

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(sleeper)
            await wait_all_tasks_blocked()
            clock.jump(5)
            await wait_all_tasks_blocked()
            assert woke == []           # 5 < 10: still asleep
            clock.jump(5)
        assert woke == [10.0]

    yieldio.run(main, clock=clock)


def test_jump_to_and_bad_jumps():
    clock = VirtualClock()
    clock.jump_to(7.5)
    assert clock.current_time() == 7.5
    clock.jump_to(1.0)  # the past: no-op
    assert clock.current_time() == 7.5
    with pytest.raises(ValueError, match="backwards"):
        clock.jump(-1)


def test_deadline_to_sleep_time_never_sleeps_on_virtual_deadlines():
    clock = VirtualClock(10.0)
    assert clock.deadline_to_sleep_time(5.0) == 0.0
    assert clock.deadline_to_sleep_time(20.0) == float("inf")


def test_rewind_returns_to_the_start_for_replays():
    clock = VirtualClock(3.0, autojump=True)

    async def main():
        await yieldio.sleep(2)
        return yieldio.current_time()

    assert yieldio.run(main, clock=clock) == 5.0
    clock._rewind()
    assert yieldio.run(main, clock=clock) == 5.0


def test_timeouts_are_exact_in_virtual_time():
    async def main():
        start = yieldio.current_time()
        with yieldio.move_on_after(2.5) as scope:
            await yieldio.sleep_forever()
        assert scope.cancelled_caught
        return yieldio.current_time() - start

    assert yieldio.run(main, clock=VirtualClock(autojump=True)) == 2.5


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_jump_refuses_nan_and_infinity(bad):
    # They used to be accepted: now + nan is NaN, and every timer comparison
    # after it is false, so the run silently stopped firing timers.
    clock = VirtualClock(start=5)
    with pytest.raises(ValueError, match="finite"):
        clock.jump(bad)
    with pytest.raises(ValueError, match="finite"):
        VirtualClock(start=bad)
    with pytest.raises(ValueError, match="NaN"):
        clock.jump_to(float("nan"))
    assert clock.current_time() == 5


def test_without_autojump_only_timers_left_is_a_deadlock_not_a_hang() -> None:
    # Nothing can move this clock once every task sleeps: say so at once
    # (trio's MockClock would hang here).
    with pytest.raises(yieldio.Deadlock, match=r"(?s)sleep until.*autojump=True"):
        yieldio.run(lambda: yieldio.sleep(10), clock=VirtualClock())


def test_without_autojump_a_task_that_jumps_is_not_a_deadlock() -> None:
    clock = VirtualClock()

    async def main() -> float:
        async def jumper() -> None:
            await yieldio.sleep(0)
            clock.jump(10)

        async with yieldio.TaskGroup() as tg:
            tg.spawn(jumper)
            await yieldio.sleep(10)
        return yieldio.current_time()

    assert yieldio.run(main, clock=clock) == 10.0


def test_jump_to_infinity_is_refused_and_time_still_moves():
    clock = VirtualClock()

    async def main():
        with pytest.raises(ValueError, match="infinity"):
            clock.jump_to(float("inf"))
        clock.jump_to(float("-inf"))  # the past: a no-op, harmless
        await yieldio.sleep(2)  # would never wake once now was inf
        return yieldio.current_time()

    clock.autojump = True
    assert yieldio.run(main, clock=clock) == 2.0


@pytest.mark.parametrize("bad", ["yes", 0.5, 1, None])
def test_autojump_takes_a_bool_not_a_threshold(bad) -> None:
    # Regression: autojump="yes" or 0.5 (trio's MockClock takes a threshold in
    # seconds) was accepted and, being truthy, meant True.
    with pytest.raises(TypeError, match=r"takes True or False .*there is no threshold"):
        VirtualClock(autojump=bad)
