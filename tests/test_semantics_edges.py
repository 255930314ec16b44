"""Edge cases of task groups, cancel scopes, tasks and queues, checked against trio's semantics.

Each test is deterministic (virtual clock with autojump, or a seed) and fast.
The first three sections pin bugs found in a bug hunt; the rest pin edges that
were probed and found to match trio (or a documented yieldio choice), so they
stay that way.
"""

from __future__ import annotations

import math

import pytest

import yieldio
from yieldio.testing import VirtualClock

pytestmark = pytest.mark.timeout(30)


def vrun(fn, *args, **kw):
    return yieldio.run(fn, *args, clock=VirtualClock(autojump=True), **kw)


# -- bug: a group's cancel scope never reported cancelled_caught ----------------


def test_group_cancel_scope_reports_cancelled_caught_like_a_trio_nursery():
    async def body_cancelled():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.sleep, 10)
            tg.cancel()
            await yieldio.sleep(1)
        return tg.cancel_scope.cancelled_caught

    async def only_children_cancelled():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.sleep, 10)
            tg.cancel()
        return tg.cancel_scope.cancelled_caught

    async def failure_cancels_the_body():
        async def bad():
            await yieldio.sleep(1)
            raise KeyError("x")

        try:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(bad)
                await yieldio.sleep(5)
        except ExceptionGroup:
            pass
        return tg.cancel_scope.cancelled_caught

    async def nothing_cancelled():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.sleep, 1)
        return tg.cancel_scope.cancelled_caught

    async def outer_scope_catches():
        with yieldio.CancelScope() as outer:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(yieldio.sleep, 10)
                tg.cancel()
                outer.cancel()
                await yieldio.sleep(1)
        return tg.cancel_scope.cancelled_caught, outer.cancelled_caught

    # trio: True, True, True, False, (False, True)
    assert vrun(body_cancelled) is True
    assert vrun(only_children_cancelled) is True
    assert vrun(failure_cancels_the_body) is True
    assert vrun(nothing_cancelled) is False
    assert vrun(outer_scope_catches) == (False, True)


# -- bug: a shielded group let its own Cancelled escape the shield --------------


def test_shielded_group_catches_its_own_cancellation():
    async def main():
        log = []
        with yieldio.CancelScope() as outer:
            async with yieldio.TaskGroup() as tg:
                tg.cancel_scope.shield = True
                outer.cancel()
                tg.spawn(yieldio.sleep, 1)
                await yieldio.sleep(2)  # the shield holds the outer cancel off
                log.append("body slept")
                tg.cancel()
                await yieldio.sleep(1)
                log.append("not reached")
            log.append(("after group", tg.cancel_scope.cancelled_caught))
        log.append(("outer caught", outer.cancelled_caught))
        return log, yieldio.current_time()

    # As trio: the group's scope catches its own Cancelled; the outer scope
    # never sees one (nothing after the group checkpoints).
    assert vrun(main) == (["body slept", ("after group", True), ("outer caught", False)], 2.0)


def test_shielded_group_waiting_for_children_is_not_cancelled_from_outside():
    async def main():
        with yieldio.move_on_after(1) as outer:
            async with yieldio.TaskGroup() as tg:
                tg.cancel_scope.shield = True
                t = tg.spawn(yieldio.sleep, 3)
            after = (yieldio.current_time(), t.state)
        return after, outer.cancelled_caught

    assert vrun(main) == ((3.0, "done"), False)


# -- bug: a group raised Cancelled at exit though no child was cancelled --------


def test_group_exit_does_not_raise_cancelled_when_every_child_ended_on_its_own():
    async def shielded_child():
        with yieldio.CancelScope(shield=True):
            await yieldio.sleep(2)
        return "done"

    async def children_finish_in_a_shield():
        log = []
        with yieldio.move_on_after(1) as scope:
            async with yieldio.TaskGroup() as tg:
                t = tg.spawn(shielded_child)
            log.append(("after group", t.result()))  # no checkpoint: runs, as in trio
            await yieldio.sleep(0)
            log.append("not reached: the next checkpoint raises")
        return log, scope.cancelled_caught

    async def no_children_in_a_cancelled_scope():
        with yieldio.CancelScope() as scope:
            scope.cancel()
            async with yieldio.TaskGroup():
                pass
            return "after group"

    # trio (since gh-1457): a nursery raises Cancelled only if a task in it did.
    assert vrun(children_finish_in_a_shield) == ([("after group", "done")], True)
    assert vrun(no_children_in_a_cancelled_scope) == "after group"


def test_group_exit_still_raises_cancelled_when_a_child_was_cancelled():
    async def main():
        log = []
        with yieldio.move_on_after(1) as scope:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(yieldio.sleep, 5)
            log.append("not reached: the child's Cancelled belongs to the scope")
        return log, scope.cancelled_caught, yieldio.current_time()

    async def child_cancelled_by_itself_only():
        with yieldio.CancelScope() as scope:
            async with yieldio.TaskGroup() as tg:
                t = tg.spawn(yieldio.sleep, 5)
                await yieldio.sleep(1)
                t.cancel()  # the task's own cancellation: ends with the task
                with pytest.raises(yieldio.TaskCancelled):
                    await t.join()
                scope.cancel()  # the body then exits without a checkpoint
            return "after group", t.state, tg.cancel_scope.cancelled_caught

    assert vrun(main) == ([], True, 1.0)
    assert vrun(child_cancelled_by_itself_only) == ("after group", "cancelled", False)


# -- TaskGroup.start() ---------------------------------------------------------------


def test_start_edges_match_trio():
    async def twice(*, task_status):
        task_status.started(1)
        task_status.started(2)

    async def never(*, task_status):
        await yieldio.sleep(1)

    async def fails(*, task_status):
        await yieldio.sleep(1)
        raise KeyError("early")

    async def value(v, *, task_status):
        task_status.started(v)

    async def main():
        out = []
        for fn in (twice, never):
            try:
                async with yieldio.TaskGroup() as tg:
                    await tg.start(fn)
            except ExceptionGroup as eg:  # twice: the child's error; never: start()'s
                out.append([type(e).__name__ for e in eg.exceptions])
        async with yieldio.TaskGroup() as tg:
            with pytest.raises(KeyError):  # to the caller, not to the group
                await tg.start(fails)
            data = ValueError("data, not an error")
            out.append([await tg.start(value, v) for v in (None, 0, data)] == [None, 0, data])
        out.append(tg.cancel_scope.cancel_called)  # the early failure cancelled nothing
        return out

    assert vrun(main) == [["RuntimeError"], ["RuntimeError"], True, False]


def test_start_caller_timing_out_cancels_the_child_as_in_trio():
    # trio: the child runs under the caller's scopes until started(), and is
    # cancelled with it (architecture §6).
    async def slow(log, *, task_status):
        await yieldio.sleep(5)
        task_status.started("late")
        log.append(("started", yieldio.current_time()))

    async def main():
        log = []
        async with yieldio.TaskGroup() as tg:
            with yieldio.move_on_after(1) as scope:
                await tg.start(slow, log)
            log.append(("timed out", scope.cancelled_caught, yieldio.current_time()))
        return log

    assert vrun(main) == [("timed out", True, 1.0)]


# -- nested groups -------------------------------------------------------------------


def test_nested_groups_failing_together_lose_nothing():
    async def bad(tag):
        await yieldio.sleep(1)
        raise ValueError(tag)

    async def main():
        async with yieldio.TaskGroup() as outer:
            outer.spawn(bad, "outer")
            async with yieldio.TaskGroup() as inner:
                inner.spawn(bad, "inner")
                await yieldio.sleep(10)

    with pytest.raises(ExceptionGroup) as info:
        vrun(main)
    # The body's error (the inner group) first, then the children's.
    inner, outer = info.value.exceptions
    assert isinstance(inner, ExceptionGroup) and [str(e) for e in inner.exceptions] == ["inner"]
    assert str(outer) == "outer"


def test_child_failing_while_the_body_is_shielded_waits_for_the_shield():
    async def bad():
        await yieldio.sleep(1)
        raise ValueError("x")

    async def main():
        log = []
        try:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(bad)
                with yieldio.CancelScope(shield=True):
                    await yieldio.sleep(5)
                    log.append(("shield done", yieldio.current_time()))
                await yieldio.sleep(0)
                log.append("not reached")
        except ExceptionGroup as eg:
            log.append([str(e) for e in eg.exceptions])
        return log

    assert vrun(main) == [("shield done", 5.0), ["x"]]


# -- cancel scopes -------------------------------------------------------------------


def test_deadline_moved_while_a_task_waits():
    async def main():
        out = []
        with yieldio.CancelScope(deadline=10) as s:  # earlier, from another task
            async with yieldio.TaskGroup() as tg:
                async def mover():
                    await yieldio.sleep(1)
                    s.deadline = 2
                tg.spawn(mover)
                await yieldio.sleep(100)
        out.append((yieldio.current_time(), s.cancelled_caught))
        with yieldio.move_on_after(2) as s:  # later
            await yieldio.sleep(1)
            s.deadline = yieldio.current_time() + 5
            await yieldio.sleep(100)
        out.append((yieldio.current_time(), s.cancelled_caught))
        with yieldio.move_on_after(2) as s:  # to inf
            await yieldio.sleep(1)
            s.deadline = math.inf
            await yieldio.sleep(100)
        out.append((yieldio.current_time(), s.cancelled_caught))
        return out

    assert vrun(main) == [(2.0, True), (8.0, True), (109.0, False)]


def test_shield_toggled_and_cancel_after_exit():
    async def main():
        out = []
        with yieldio.CancelScope() as outer:
            with yieldio.CancelScope(shield=True) as inner:
                outer.cancel()
                await yieldio.sleep(1)  # shielded
                inner.shield = False
                try:
                    await yieldio.sleep(1)
                except yieldio.Cancelled:
                    out.append("cancelled once unshielded")
                    raise
        out.append((outer.cancelled_caught, inner.cancelled_caught))
        with yieldio.CancelScope() as done:
            await yieldio.sleep(0)
        done.cancel()  # on an exited scope: recorded, affects nothing
        done.shield = True
        done.deadline = 0
        await yieldio.sleep(1)
        out.append((done.cancel_called, done.cancelled_caught))
        return out, yieldio.current_time()

    assert vrun(main) == (["cancelled once unshielded", (True, False), (True, False)], 2.0)


def test_timeout_edges_and_fail_after_chaining():
    async def main():
        out = []
        for t in (0, -1, -math.inf):  # -1: a documented choice (trio raises ValueError)
            with yieldio.move_on_after(t) as s:
                await yieldio.sleep(1)
            out.append(s.cancelled_caught)
        with pytest.raises(ValueError, match="NaN"):
            yieldio.move_on_after(math.nan)
        with pytest.raises(TimeoutError) as info:
            with yieldio.fail_after(1):
                await yieldio.sleep(2)
        out.append(type(info.value.__cause__).__name__)
        with yieldio.CancelScope() as outer:  # an outer cancel wins: no TimeoutError
            with yieldio.fail_after(1):
                outer.cancel()
                await yieldio.sleep(2)
        out.append(outer.cancelled_caught)
        return out, yieldio.current_time()

    assert vrun(main) == ([True, True, True, "Cancelled", True], 1.0)


def test_current_effective_deadline_stops_at_shields():
    ced = yieldio.current_effective_deadline

    async def main():
        out = []
        with yieldio.move_on_after(5):
            out.append(ced())
            with yieldio.CancelScope(shield=True):
                out.append(ced())
                with yieldio.move_on_after(10):
                    out.append(ced())
            with yieldio.CancelScope(shield=True, deadline=7) as s:
                out.append(ced())
                s.cancel()
                out.append(ced())
        with yieldio.CancelScope() as c:
            c.cancel()
            with yieldio.CancelScope(shield=True):
                out.append(ced())
            out.append(ced())
        return out

    assert vrun(main) == [5.0, math.inf, 10.0, 7.0, -math.inf, math.inf, -math.inf]


# -- tasks -----------------------------------------------------------------------------


def test_result_and_join_in_every_state():
    async def ok():
        await yieldio.sleep(1)
        return 1

    async def bad():
        await yieldio.sleep(1)
        raise KeyError(2)

    def outcome(fn):
        try:
            return fn()
        except BaseException as e:  # noqa: BLE001 - recording which one
            return type(e).__name__

    async def main():
        out = []
        try:
            async with yieldio.TaskGroup() as tg:
                a, b, c = tg.spawn(ok), tg.spawn(bad), tg.spawn(yieldio.sleep_forever)
                out.append([outcome(t.result) for t in (a, b, c)])  # not finished
                await yieldio.sleep(0.5)
                c.cancel()
                with pytest.raises(yieldio.TaskCancelled):
                    await c.join()
                out.append(await a.join())
                await yieldio.sleep(5)
        except ExceptionGroup as eg:
            out.append([type(e).__name__ for e in eg.exceptions])
        out.append([outcome(t.result) for t in (a, b, c)])
        out.append([outcome(t.exception) for t in (a, b, c)])
        for t in (a, b, c):
            try:
                out.append(await t.join())
            except BaseException as e:  # noqa: BLE001
                out.append(type(e).__name__)
        return out

    out = vrun(main)
    assert out[:4] == [["RuntimeError"] * 3, 1, ["KeyError"], [1, "KeyError", "TaskCancelled"]]
    none, err, cancelled = out[4]
    assert none is None and repr(err) == "KeyError(2)" and cancelled == "TaskCancelled"
    assert out[5:] == [1, "KeyError", "TaskCancelled"]


def test_joiner_timing_out_leaves_no_joiner_behind():
    async def main():
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(yieldio.sleep, 10)
            with yieldio.move_on_after(1) as s:
                await t.join()
            tg.cancel()
        return s.cancelled_caught, t.state, bool(t._extra.joiners)

    assert vrun(main) == (True, "cancelled", False)


# -- queues ----------------------------------------------------------------------------


def test_queue_close_while_getters_and_putters_wait():
    async def main():
        log = []

        async def getter(q):
            try:
                log.append(("got", await q.get()))
            except yieldio.QueueClosed:
                log.append("get: closed")

        async def putter(q, item):
            try:
                await q.put(item)
                log.append(("put", item))
            except yieldio.QueueClosed:
                log.append(("put: closed", item))

        empty = yieldio.Queue(1)
        full = yieldio.Queue(1)
        full.put_nowait("kept")
        async with yieldio.TaskGroup() as tg:
            tg.spawn(getter, empty)
            tg.spawn(putter, full, "p1")
            tg.spawn(putter, full, "p2")
            await yieldio.sleep(1)
            empty.close()
            full.close()
            log.append(("drained", [x async for x in full]))
            log.append(("after drain", [x async for x in full]))
        return sorted(map(str, log))

    # Python 3.13's shutdown(immediate=False): blocked puts fail, items already
    # in stay to be drained, blocked gets on an empty queue end.
    assert vrun(main) == sorted(map(str, [
        "get: closed", ("put: closed", "p1"), ("put: closed", "p2"),
        ("drained", ["kept"]), ("after drain", []),
    ]))


def test_queue_nowait_edges_and_unbounded_maxsize():
    async def main():
        out = []
        q = yieldio.Queue(0)  # unbounded (asyncio's meaning), not a rendezvous
        for i in range(5):
            q.put_nowait(i)
        out.append((q.qsize(), q.full()))
        q = yieldio.Queue(1)
        q.put_nowait(1)
        with pytest.raises(yieldio.QueueFull):
            q.put_nowait(2)
        out.append(q.get_nowait())
        with pytest.raises(yieldio.QueueEmpty):
            q.get_nowait()
        q.put_nowait(3)
        q.close()
        out.append(q.get_nowait())  # a closed queue still hands out what it holds
        with pytest.raises(yieldio.QueueClosed):
            q.get_nowait()
        with pytest.raises(yieldio.QueueClosed):
            q.put_nowait(4)
        return out

    assert vrun(main) == [(5, False), 1, 3]


def test_cancelling_a_put_that_was_already_taken_loses_and_duplicates_nothing():
    async def main():
        q = yieldio.Queue(1)
        q.put_nowait("a")
        log = []

        async def putter():
            await q.put("b")  # waits: full
            log.append("put returned")
            await yieldio.sleep(0)
            log.append("not reached")

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(putter)
            await yieldio.sleep(1)
            log.append(q.get_nowait())  # "b" moves in; the putter is woken
            t.cancel()  # too late to take the put back
        log.append(t.state)
        log.append([q.get_nowait() for _ in range(q.qsize())])
        return log

    assert vrun(main) == ["a", "put returned", "cancelled", ["b"]]


def test_seeded_runs_with_timeouts_replay_identically():
    def trace(seed):
        log = []

        async def main():
            q = yieldio.Queue(2)

            async def producer(n):
                for i in range(10):
                    with yieldio.move_on_after(0.01 * (i % 3)):
                        await q.put((n, i))
                        log.append(("put", n, i))

            async def consumer(n):
                async for item in q:
                    log.append(("get", n, item))
                    await yieldio.sleep(0.005)

            async with yieldio.TaskGroup() as tg:
                for n in range(3):
                    tg.spawn(producer, n)
                async with yieldio.TaskGroup() as tg2:
                    for n in range(2):
                        tg2.spawn(consumer, n)
                    await yieldio.sleep(1)
                    q.close()

        yieldio.run(main, clock=VirtualClock(autojump=True), seed=seed)
        return log

    traces = [trace(seed) for seed in (1, 2)]
    assert traces == [trace(1), trace(2)]
    puts = [e for e in traces[0] if e[0] == "put"]
    gets = [e[2] for e in traces[0] if e[0] == "get"]
    assert sorted(gets) == sorted((n, i) for _, n, i in puts)  # nothing lost or doubled
