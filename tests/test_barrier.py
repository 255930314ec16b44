"""Barrier: rendezvous, indexes, reset/abort, cancellation, misuse, seeded runs."""

from __future__ import annotations

import threading

import pytest

import yieldio
from yieldio.testing import VirtualClock

pytestmark = pytest.mark.timeout(30)


def vrun(fn, *args, seed=None):
    return yieldio.run(fn, *args, clock=VirtualClock(autojump=True), seed=seed)


def test_rendezvous_across_generations_gives_arrival_indexes():
    # Worker n arrives n seconds after the previous generation left, so the
    # arrival order, and hence the index, is n in every generation.
    async def worker(barrier, log, n):
        for gen in range(3):
            await yieldio.sleep(n)
            i = await barrier.wait()
            log.append((gen, n, i, yieldio.current_time()))

    async def main():
        barrier = yieldio.Barrier(3)
        log = []
        with yieldio.fail_after(60):
            async with yieldio.TaskGroup() as tg:
                for n in range(3):
                    tg.spawn(worker, barrier, log, n)
        assert barrier.n_waiting == 0 and not barrier.broken
        return log

    log = vrun(main)
    assert sorted((g, n, i) for g, n, i, _ in log) == [
        (g, n, n) for g in range(3) for n in range(3)]
    # Nobody leaves before the last arrival: generation g trips at 2, 4, 6.
    assert {(g, t) for g, _, _, t in log} == {(0, 2.0), (1, 4.0), (2, 6.0)}
    # The last arrival (index 2) does not wait, and goes on first.
    assert [i for _, _, i, _ in log[:3]] == [2, 0, 1]


def test_state_properties_and_repr():
    async def main():
        barrier = yieldio.Barrier(3)
        assert barrier.parties == 3 and barrier.n_waiting == 0
        assert repr(barrier) == "<Barrier 0/3 waiting>"
        with yieldio.fail_after(10):
            async with yieldio.TaskGroup() as tg:
                tg.spawn(barrier.wait)
                tg.spawn(barrier.wait)
                await yieldio.sleep(1)
                assert barrier.n_waiting == 2
                assert repr(barrier) == "<Barrier 2/3 waiting>"
                assert await barrier.wait() == 2
                assert barrier.n_waiting == 0
        barrier.abort()
        assert repr(barrier) == "<Barrier broken, parties=3>"

    vrun(main)


def test_one_party_never_waits_but_is_a_checkpoint():
    async def main():
        barrier = yieldio.Barrier(1)
        assert [await barrier.wait() for _ in range(3)] == [0, 0, 0]
        with yieldio.CancelScope() as scope:
            scope.cancel()
            await barrier.wait()
            raise AssertionError("not a checkpoint")
        assert scope.cancelled_caught

    vrun(main)


def test_async_with_gives_the_index():
    async def party(barrier, got):
        async with barrier as i:
            got.append(i)

    async def main():
        barrier = yieldio.Barrier(2)
        got = []
        with yieldio.fail_after(10):
            async with yieldio.TaskGroup() as tg:
                tg.spawn(party, barrier, got)
                await yieldio.sleep(1)
                tg.spawn(party, barrier, got)
        return got

    assert vrun(main) == [1, 0]


def test_reset_breaks_the_waiters_and_leaves_the_barrier_usable():
    async def waiter(barrier, out):
        try:
            await barrier.wait()
        except yieldio.BrokenBarrierError as exc:
            out.append(str(exc))

    async def main():
        barrier = yieldio.Barrier(3)
        out = []
        with yieldio.fail_after(10):
            async with yieldio.TaskGroup() as tg:
                tg.spawn(waiter, barrier, out)
                tg.spawn(waiter, barrier, out)
                await yieldio.sleep(1)
                barrier.reset()
                assert barrier.n_waiting == 0 and not barrier.broken
            assert out == ["the Barrier was reset while this task waited"] * 2
            # A fresh generation works, and asyncio's spelling is accepted.
            async with yieldio.TaskGroup() as tg:
                tg.spawn(barrier.wait)
                tg.spawn(barrier.wait)
                await yieldio.sleep(1)
                assert await barrier.wait() == 2
            await barrier.reset()

    vrun(main)


def test_abort_breaks_waiters_and_later_waits_until_reset():
    async def failing_party(barrier):
        try:
            await yieldio.sleep(1)
            raise ValueError("could not load")
        except ValueError:
            await barrier.abort()   # asyncio's spelling: awaiting is allowed
            raise

    async def party(barrier, out):
        try:
            await barrier.wait()
        except yieldio.BrokenBarrierError as exc:
            out.append((yieldio.current_time(), str(exc)))

    async def main():
        barrier = yieldio.Barrier(3)
        out = []
        with yieldio.fail_after(10):
            with pytest.raises(ExceptionGroup) as info:
                async with yieldio.TaskGroup() as tg:
                    tg.spawn(party, barrier, out)
                    tg.spawn(party, barrier, out)
                    tg.spawn(failing_party, barrier)
            assert info.group_contains(ValueError)
        assert out == [(1.0, "the Barrier was aborted while this task waited")] * 2
        assert barrier.broken and barrier.n_waiting == 0
        with pytest.raises(yieldio.BrokenBarrierError, match="broken"):
            await barrier.wait()
        assert barrier.n_waiting == 0
        barrier.abort()  # again: still broken, nothing to wake
        barrier.reset()
        assert not barrier.broken
        async with yieldio.TaskGroup() as tg:
            tg.spawn(barrier.wait)
            tg.spawn(barrier.wait)
            await yieldio.sleep(1)
            assert await barrier.wait() == 2

    vrun(main)


def test_a_cancelled_waiter_withdraws_and_indexes_stay_unique():
    # asyncio counts at arrival: after A's cancellation, B and C both get 1.
    async def party(barrier, got, name, timeout=None):
        if timeout is None:
            got[name] = await barrier.wait()
            return
        with yieldio.move_on_after(timeout) as scope:
            got[name] = await barrier.wait()
        if scope.cancelled_caught:
            got[name] = "gave up"

    async def main():
        barrier = yieldio.Barrier(3)
        got = {}
        with yieldio.fail_after(10):
            async with yieldio.TaskGroup() as tg:
                tg.spawn(party, barrier, got, "A", 1)
                await yieldio.sleep(0.5)
                tg.spawn(party, barrier, got, "B")
                await yieldio.sleep(1)
                assert got == {"A": "gave up"}
                assert barrier.n_waiting == 1 and not barrier.broken
                tg.spawn(party, barrier, got, "C")
                await yieldio.sleep(1)
                tg.spawn(party, barrier, got, "D")
        return got, barrier.n_waiting, barrier.broken

    assert vrun(main) == ({"A": "gave up", "B": 0, "C": 1, "D": 2}, 0, False)


def test_fail_after_around_a_wait_raises_timeout_and_leaves_no_arrival():
    async def main():
        barrier = yieldio.Barrier(2)
        with pytest.raises(TimeoutError):
            with yieldio.fail_after(3):
                await barrier.wait()
        assert yieldio.current_time() == 3.0
        assert barrier.n_waiting == 0 and not barrier.broken
        # The withdrawn arrival does not count: one more party is not enough.
        with yieldio.move_on_after(1) as scope:
            await barrier.wait()
        return scope.cancelled_caught

    assert vrun(main) is True


def test_a_waiter_released_before_its_cancellation_keeps_its_index():
    # Once the barrier trips, the rendezvous has happened for every party: a
    # cancellation arriving later is raised at the waiter's next checkpoint.
    async def main():
        barrier = yieldio.Barrier(2)
        got = []
        scope = yieldio.CancelScope()

        async def waiter():
            with scope:
                got.append(await barrier.wait())
                await yieldio.checkpoint()
                got.append("not cancelled")
            got.append(scope.cancelled_caught)

        with yieldio.fail_after(10):
            async with yieldio.TaskGroup() as tg:
                tg.spawn(waiter)
                await yieldio.sleep(1)
                index = await barrier.wait()
                scope.cancel()   # the waiter has not run since it was released
        return index, got

    assert vrun(main) == (1, [0, True])


def test_bad_arguments_are_clear():
    for bad in (0, -1):
        with pytest.raises(ValueError, match="parties must be >= 1"):
            yieldio.Barrier(bad)
    for bad in (2.0, "3", None, True):
        with pytest.raises(TypeError, match="parties must be an int"):
            yieldio.Barrier(bad)
    with pytest.raises(TypeError):
        yieldio.Barrier()  # type: ignore[call-arg]


def test_waiting_outside_a_run_is_a_clear_error():
    barrier = yieldio.Barrier(2)
    with pytest.raises(RuntimeError, match=r"yieldio\.run\(\)"):
        barrier.wait().send(None)
    # With nobody waiting, reset and abort need no kernel.
    barrier.abort()
    assert barrier.broken
    barrier.reset()
    assert not barrier.broken


def test_generator_coroutines_and_async_def_share_a_barrier():
    @yieldio.coroutine
    def gen_party(barrier, got):
        i = yield from barrier.wait()       # delegation
        j = yield barrier.wait()            # a trampolined call
        got.append(("gen", i, j))

    async def async_party(barrier, got):
        await yieldio.sleep(1)
        i = await barrier.wait()
        await yieldio.sleep(1)
        j = await barrier.wait()
        got.append(("async", i, j))

    @yieldio.coroutine
    def gen_aborter(barrier):
        yield from yieldio.sleep(1)
        yield from barrier.abort()          # abort()'s result works with yield from too

    @yieldio.coroutine
    def gen_broken(barrier, got):
        try:
            yield barrier.wait()
        except yieldio.BrokenBarrierError:
            got.append("broken")

    async def main():
        barrier = yieldio.Barrier(2)
        got = []
        with yieldio.fail_after(10):
            async with yieldio.TaskGroup() as tg:
                tg.spawn(gen_party, barrier, got)
                tg.spawn(async_party, barrier, got)
            async with yieldio.TaskGroup() as tg:
                tg.spawn(gen_broken, barrier, got)
                tg.spawn(gen_aborter, barrier)
        return sorted(got, key=str)

    assert vrun(main) == [("async", 1, 1), ("gen", 0, 0), "broken"]


def test_a_party_that_never_comes_is_a_deadlock():
    async def main():
        barrier = yieldio.Barrier(3)
        async with yieldio.TaskGroup() as tg:
            tg.spawn(barrier.wait)
            await barrier.wait()

    with pytest.raises(yieldio.Deadlock, match="Barrier.wait"):
        yieldio.run(main)


def test_describe_wait_names_the_barrier():
    from yieldio.debug import describe_wait
    from yieldio.testing import wait_all_tasks_blocked

    async def main():
        barrier = yieldio.Barrier(3)
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(barrier.wait)
            tg.spawn(barrier.wait)
            await wait_all_tasks_blocked()
            assert describe_wait(t) == "Barrier.wait (2/3 arrived)"
            tg.cancel()
        assert barrier.n_waiting == 0

    vrun(main)


def test_a_seeded_run_is_reproducible_and_keeps_the_invariants():
    def one_run(seed):
        trace = []

        async def worker(barrier, n):
            for gen in range(4):
                await yieldio.sleep(0)
                i = await barrier.wait()
                trace.append((gen, n, i))

        async def main():
            barrier = yieldio.Barrier(4)
            with yieldio.fail_after(10):
                async with yieldio.TaskGroup() as tg:
                    for n in range(4):
                        tg.spawn(worker, barrier, n)
            assert barrier.n_waiting == 0

        vrun(main, seed=seed)
        return trace

    traces = {}
    for seed in range(20):
        trace = one_run(seed)
        assert trace == one_run(seed)
        # Every generation hands out each index exactly once, to each worker once.
        for gen in range(4):
            assert sorted(i for g, _, i in trace if g == gen) == [0, 1, 2, 3]
            assert sorted(n for g, n, _ in trace if g == gen) == [0, 1, 2, 3]
        traces[tuple(trace)] = seed
    assert len(traces) > 1  # the seed does change the interleaving


def test_broken_barrier_error_is_exported_and_a_thread_barrier_error():
    assert issubclass(yieldio.BrokenBarrierError, threading.BrokenBarrierError)
    assert issubclass(yieldio.BrokenBarrierError, RuntimeError)
    assert {"Barrier", "BrokenBarrierError"} <= set(yieldio.__all__)
    assert yieldio.sync.Barrier is yieldio.Barrier
    assert yieldio.sync.BrokenBarrierError is yieldio.BrokenBarrierError
    for obj in (yieldio.Barrier, yieldio.BrokenBarrierError, yieldio.Barrier.wait,
                yieldio.Barrier.reset, yieldio.Barrier.abort):
        assert obj.__doc__ and "barrier" in obj.__doc__.lower()


def test_abort_from_a_plain_thread_via_from_thread():
    async def main():
        barrier = yieldio.Barrier(2)
        out = []

        async def party():
            try:
                await barrier.wait()
            except yieldio.BrokenBarrierError:
                out.append("broken")

        with yieldio.fail_after(10):
            async with yieldio.TaskGroup() as tg:
                tg.spawn(party)
                await yieldio.sleep(1)
                await yieldio.to_thread(yieldio.from_thread, barrier.abort)
        return out, barrier.broken

    assert vrun(main) == (["broken"], True)
