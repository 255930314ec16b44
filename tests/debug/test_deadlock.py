"""Deadlock detection: reported at once, with the task tree; never for real waits."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

import yieldio
from yieldio._io import wait_readable
from yieldio.testing import VirtualClock


class LoopCounter:
    """Counts loop iterations (polls) and notes when the last task parked."""

    def __init__(self):
        self.polls = 0
        self.polls_at_last_park = None
        self.polls_when_reported = None
        self.kernel = None

    def before_run(self):
        self.kernel = yieldio._state.current_kernel()

    def _check(self):
        # The first hook that runs after the kernel made its report notes
        # how many polls had happened by then.
        if self.polls_when_reported is None and getattr(self.kernel, "deadlock_report", None):
            self.polls_when_reported = self.polls

    def before_io_wait(self, timeout):
        self._check()
        self.polls += 1

    def before_task_step(self, task):
        self._check()

    def after_run(self):
        self._check()

    def after_task_step(self, task):
        if task.state == "waiting":
            self.polls_at_last_park = self.polls


async def wait_then_set(mine, other):
    await mine.wait()
    other.set()


def test_two_tasks_waiting_on_each_other_are_reported_in_the_iteration_that_proves_it():
    async def main():
        a, b = yieldio.Event(), yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            tg.spawn(wait_then_set, a, b, name="needs-a")
            tg.spawn(wait_then_set, b, a, name="needs-b")

    counter = LoopCounter()
    started = time.monotonic()
    with pytest.raises(yieldio.Deadlock) as info:
        yieldio.run(main, instruments=[counter])
    assert time.monotonic() - started < 30  # it did not hang (generous: no speed claim)
    # Reported before the loop polled again: the very iteration in which the
    # last task parked with nothing left that could wake anything.
    assert counter.polls_at_last_park is not None
    assert counter.polls_when_reported == counter.polls_at_last_park
    text = str(info.value)
    assert text.startswith("every task is blocked and nothing can wake them:")
    assert "'main' [waiting] -- waiting on TaskGroup exit (2 children left)" in text
    assert "'needs-a' [waiting] -- waiting on Event.wait" in text
    assert "'needs-b' [waiting] -- waiting on Event.wait" in text
    # ...and where each one is stuck: the program's line, not yieldio's.
    line = wait_then_set.__code__.co_firstlineno + 1
    assert text.count(f"at wait_then_set (debug/test_deadlock.py:{line})") == 2


def test_a_lock_cycle_is_a_deadlock_too():
    async def take_both(first, second, ready, go):
        async with first:
            ready.set()
            await go.wait()
            async with second:
                pass

    async def main():
        l1, l2 = yieldio.Lock(), yieldio.Lock()
        r1, r2, go = yieldio.Event(), yieldio.Event(), yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            tg.spawn(take_both, l1, l2, r1, go, name="one")
            tg.spawn(take_both, l2, l1, r2, go, name="two")
            await r1.wait()
            await r2.wait()
            go.set()

    with pytest.raises(yieldio.Deadlock, match=r"'one' \[waiting\] -- waiting on Lock.acquire"):
        yieldio.run(main)


def test_waiting_on_real_io_is_never_a_deadlock():
    a, b = socket.socketpair()
    a.setblocking(False)

    def later():
        time.sleep(0.2)
        b.send(b"!")

    async def main():
        t = threading.Thread(target=later)
        t.start()
        try:
            await wait_readable(a)  # only the thread can end this wait
            return a.recv(1)
        finally:
            t.join()

    try:
        assert yieldio.run(main) == b"!"
    finally:
        a.close()
        b.close()


def test_waiting_on_a_timer_is_never_a_deadlock():
    async def setter(ev):
        await yieldio.sleep(0.05)
        ev.set()

    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            tg.spawn(setter, ev)
            await ev.wait()
        return "ok"

    assert yieldio.run(main) == "ok"
    assert yieldio.run(main, clock=VirtualClock(autojump=True)) == "ok"


def test_waiting_on_a_thread_is_never_a_deadlock():
    async def main():
        return await yieldio.to_thread(lambda: (time.sleep(0.1), "done")[1])

    assert yieldio.run(main) == "done"


def test_a_pipe_fed_by_a_child_process_is_not_a_deadlock():
    child = subprocess.Popen(
        [sys.executable, "-c", "import time, sys; time.sleep(0.2); sys.stdout.write('x')"],
        stdout=subprocess.PIPE)
    fd = child.stdout.fileno()
    os.set_blocking(fd, False)

    async def main():
        await wait_readable(fd)
        return os.read(fd, 1)

    try:
        assert yieldio.run(main) == b"x"
    finally:
        child.stdout.close()
        child.wait()


def test_deadlocked_tasks_are_cancelled_before_run_raises():
    seen = []

    async def stuck(ev):
        try:
            await ev.wait()
        except yieldio.Cancelled:
            seen.append("cancelled")
            raise

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(stuck, yieldio.Event())

    with pytest.raises(yieldio.Deadlock):
        yieldio.run(main)
    assert seen == ["cancelled"]
