"""wait_all_tasks_blocked(): returns exactly when every other task is stuck."""

from __future__ import annotations

import socket
import threading

import pytest

import yieldio
from yieldio import _io
from yieldio.testing import VirtualClock, wait_all_tasks_blocked


def vrun(fn, *args):
    return yieldio.run(fn, *args, clock=VirtualClock(autojump=True))


def test_returns_once_others_are_parked():
    async def main():
        ev = yieldio.Event()
        steps = []

        async def worker(n):
            for i in range(n):
                steps.append((n, i))
                await yieldio.sleep(0)
            await ev.wait()

        async with yieldio.TaskGroup() as tg:
            tasks = [tg.spawn(worker, n) for n in (1, 5, 50)]
            await wait_all_tasks_blocked()
            assert len(steps) == 56
            assert all(t.state == "waiting" for t in tasks)
            ev.set()

    yieldio.run(main)


def test_returns_before_autojump_moves_time():
    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.sleep, 100)
            await wait_all_tasks_blocked()
            assert yieldio.current_time() == 0.0  # the sleeper counts as blocked
        assert yieldio.current_time() == 100.0

    vrun(main)


def test_a_ready_io_event_runs_its_task_first():
    async def main():
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        got = []

        async def reader():
            while True:
                await _io.wait_readable(b)
                data = b.recv(100)
                got.append(data)
                if data == b"stop":
                    return

        try:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(reader)
                await wait_all_tasks_blocked()
                a.send(b"hello")
                await wait_all_tasks_blocked()
                assert got == [b"hello"]  # the poll woke the reader before we returned
                a.send(b"stop")
        finally:
            _io.notify_closing(b)
            a.close()
            b.close()

    yieldio.run(main)


def test_a_task_waiting_for_a_thread_counts_as_blocked():
    release = threading.Event()

    async def main():
        async with yieldio.TaskGroup() as tg:
            job = tg.spawn(yieldio.to_thread, release.wait, 10)
            await wait_all_tasks_blocked()
            assert not job.done()
            release.set()
        assert job.result() is True

    yieldio.run(main)


def test_several_waiters_all_return_smallest_cushion_first():
    async def main():
        order = []

        async def waiter(name, cushion):
            await wait_all_tasks_blocked(cushion)
            order.append(name)

        async with yieldio.TaskGroup() as tg:
            tg.spawn(waiter, "slow", 2.0)
            tg.spawn(waiter, "a", 0.0)
            tg.spawn(waiter, "b", 0.0)
        return order

    assert vrun(main) == ["a", "b", "slow"]


def test_cushion_waits_for_a_quiet_period():
    async def main():
        async def ticker():
            for _ in range(3):
                await yieldio.sleep(0.5)
            await yieldio.sleep_forever()

        async with yieldio.TaskGroup() as tg:
            tg.spawn(ticker)
            await wait_all_tasks_blocked(cushion=1.0)
            # The ticker last woke at 1.5; quiet for a full second after that,
            # and not a moment more.
            assert yieldio.current_time() == 2.5
            tg.cancel()

    vrun(main)


def test_is_cancellable_while_others_keep_running():
    async def main():
        async def spinner():
            while True:
                await yieldio.sleep(0)

        async with yieldio.TaskGroup() as tg:
            tg.spawn(spinner)
            with yieldio.move_on_after(0.05) as scope:
                await wait_all_tasks_blocked()
            assert scope.cancelled_caught
            tg.cancel()

    yieldio.run(main)  # real clock: the spinner never lets autojump happen


def test_does_not_count_as_deadlock():
    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            tg.spawn(ev.wait)
            await wait_all_tasks_blocked()
            ev.set()

    yieldio.run(main)


def test_bad_cushion():
    async def main():
        with pytest.raises(ValueError):
            await wait_all_tasks_blocked(-1)

    yieldio.run(main)


def test_is_a_checkpoint():
    async def main():
        with yieldio.CancelScope() as scope:
            scope.cancel()
            await wait_all_tasks_blocked()
            raise AssertionError("not reached")
        assert scope.cancelled_caught

    yieldio.run(main)


def test_a_waiting_caller_is_described_as_such():
    from yieldio.debug import describe_wait

    async def main():
        seen = []

        async def observer(waiter):
            seen.append(describe_wait(waiter))

        async with yieldio.TaskGroup() as tg:
            me = yieldio.current_task()
            tg.spawn(observer, me)  # runs while we are parked below
            await wait_all_tasks_blocked()
        assert seen == ["wait_all_tasks_blocked"]

    yieldio.run(main)


@pytest.mark.parametrize("seed", range(60))  # some hold the sleeper back
def test_cushion_never_ends_while_a_task_woken_with_us_has_not_run(seed):
    # The sleeper's timer and the end of the cushion fall at the same instant;
    # seeded runs shuffle (and hold back) who runs first. Either way the waiter
    # must not return before the sleeper has had its step.
    async def main():
        steps = []

        async def sleeper():
            await yieldio.sleep_until(1.0)
            steps.append(yieldio.current_time())
            await yieldio.sleep_forever()

        async with yieldio.TaskGroup() as tg:
            tg.spawn(sleeper)
            await wait_all_tasks_blocked()
            await wait_all_tasks_blocked(cushion=1.0)
            assert steps == [1.0]
            assert yieldio.current_time() == 2.0  # a full quiet second after its step
            tg.cancel()

    yieldio.run(main, clock=VirtualClock(autojump=True), seed=seed)
