"""Cancel scopes and timeouts: level-triggered, nestable, shieldable."""

from __future__ import annotations

import math

import pytest

import yieldio
from yieldio.testing import VirtualClock


def vrun(fn, *args):
    return yieldio.run(fn, *args, clock=VirtualClock(autojump=True))


def test_move_on_after_times_out_quietly():
    async def main():
        with yieldio.move_on_after(1) as scope:
            await yieldio.sleep(10)
        return scope.cancelled_caught, yieldio.current_time()

    assert vrun(main) == (True, 1.0)


def test_move_on_after_not_triggered():
    async def main():
        with yieldio.move_on_after(10) as scope:
            await yieldio.sleep(1)
        return scope.cancelled_caught, scope.cancel_called

    assert vrun(main) == (False, False)


def test_fail_after_raises_builtin_timeout_error():
    async def main():
        with yieldio.fail_after(0.5):
            await yieldio.sleep(10)

    with pytest.raises(TimeoutError):
        vrun(main)


def test_fail_at_and_move_on_at():
    async def main():
        now = yieldio.current_time()
        with yieldio.move_on_at(now + 2) as s:
            await yieldio.sleep(5)
        assert s.cancelled_caught
        try:
            with yieldio.fail_at(yieldio.current_time() + 1):
                await yieldio.sleep(5)
        except TimeoutError:
            return yieldio.current_time()

    assert vrun(main) == 3.0


def test_cancellation_is_level_triggered():
    async def main():
        hits = 0
        with yieldio.CancelScope() as scope:
            scope.cancel()
            for _ in range(3):
                try:
                    await yieldio.sleep(0)
                except yieldio.Cancelled:
                    hits += 1
        return hits, scope.cancelled_caught

    assert vrun(main) == (3, False)  # swallowed every time -> never reached the scope


def test_outermost_cancelled_scope_catches():
    async def main():
        with yieldio.CancelScope() as outer:
            with yieldio.CancelScope() as inner:
                outer.cancel()
                inner.cancel()
                await yieldio.sleep(1)
            reached_after_inner = True
        return outer.cancelled_caught, inner.cancelled_caught, locals().get("reached_after_inner")

    assert vrun(main) == (True, False, None)


def test_shield_protects_then_cancel_arrives_after():
    async def main():
        log = []
        with yieldio.CancelScope() as outer:
            outer.cancel()
            with yieldio.CancelScope(shield=True):
                await yieldio.sleep(1)  # not cancelled
                log.append("shielded work done")
            log.append("not reached")
            await yieldio.sleep(0)
        log.append(outer.cancelled_caught)
        return log

    assert vrun(main) == ["shielded work done", "not reached", True]


def test_unshielding_delivers_pending_cancel():
    async def main():
        with yieldio.CancelScope() as outer:
            with yieldio.CancelScope(shield=True) as inner:
                outer.cancel()
                await yieldio.sleep(0)
                inner.shield = False
                await yieldio.sleep(100)
        return outer.cancelled_caught, yieldio.current_time()

    assert vrun(main) == (True, 0.0)


def test_deadline_can_be_moved():
    async def main():
        with yieldio.CancelScope(deadline=yieldio.current_time() + 10) as scope:
            scope.deadline = yieldio.current_time() + 1
            await yieldio.sleep(5)
        return yieldio.current_time(), scope.deadline

    assert vrun(main) == (1.0, 1.0)


def test_expired_deadline_cancels_on_entry():
    async def main():
        with yieldio.move_on_after(0) as scope:
            await yieldio.sleep(1)
        return scope.cancelled_caught

    assert vrun(main) is True


def test_cancel_wakes_a_parked_task_in_another_scope():
    async def sleeper(box, *, task_status):
        with yieldio.CancelScope() as scope:
            box.append(scope)
            task_status.started()
            await yieldio.sleep_forever()
        return "cancelled cleanly", scope.cancelled_caught

    async def main2():
        box = []
        async with yieldio.TaskGroup() as tg:
            await tg.start(sleeper, box)
            t = tg.tasks[0]
            await yieldio.sleep(1)
            box[0].cancel()
        return await t.join(), yieldio.current_time()

    assert vrun(main2) == (("cancelled cleanly", True), 1.0)


def test_scopes_must_exit_in_order_once_and_after_entering():
    async def main():
        outer = yieldio.CancelScope()
        inner = yieldio.CancelScope()
        outer.__enter__()
        inner.__enter__()
        with pytest.raises(RuntimeError, match="out of order"):
            outer.__exit__(None, None, None)
        inner.__exit__(None, None, None)
        outer.__exit__(None, None, None)
        with pytest.raises(RuntimeError, match="exited twice"):
            outer.__exit__(None, None, None)
        with pytest.raises(RuntimeError, match="entered only once"):
            outer.__enter__()
        with pytest.raises(RuntimeError, match="without being entered"):
            yieldio.CancelScope().__exit__(None, None, None)

    vrun(main)


@pytest.mark.timeout(10)
def test_scope_left_open_by_an_ended_task_and_exited_elsewhere_is_a_clear_error():
    # Was a bare KeyError from the scope's bookkeeping.
    async def main():
        box = []

        async def leaves_it_open():
            scope = yieldio.CancelScope()
            scope.__enter__()
            box.append(scope)

        async with yieldio.TaskGroup() as tg:
            tg.spawn(leaves_it_open)
        with pytest.raises(RuntimeError, match="different task than it was entered in"):
            box[0].__exit__(None, None, None)
        # The dead scope was dropped from the tree, and this task is unharmed.
        assert box[0] not in (yieldio.current_task()._scope._children or {})
        with yieldio.move_on_after(1) as scope:
            await yieldio.sleep(5)
        return scope.cancelled_caught

    assert vrun(main) is True


@pytest.mark.timeout(10)
def test_scope_exited_from_another_task_while_its_task_is_inside_it_deeper():
    async def main():
        box = []
        release = yieldio.Event()

        async def inside():
            with yieldio.CancelScope() as outer:
                box.append(outer)
                with yieldio.CancelScope():
                    await release.wait()

        async with yieldio.TaskGroup() as tg:
            tg.spawn(inside)
            await yieldio.sleep(1)
            with pytest.raises(RuntimeError, match="different task than it was entered in"):
                box[0].__exit__(None, None, None)
            release.set()

    vrun(main)


def test_scope_cannot_be_reentered():
    async def main():
        scope = yieldio.CancelScope()
        with scope:
            pass
        with pytest.raises(RuntimeError, match="only once"):
            with scope:
                pass

    vrun(main)


def test_cancelled_is_base_exception_not_swallowed_by_except_exception():
    async def main():
        with yieldio.move_on_after(1) as scope:
            try:
                await yieldio.sleep(5)
            except Exception:  # noqa: BLE001 - the point of the test
                return "swallowed"
        return scope.cancelled_caught

    assert vrun(main) is True


def test_async_with_scope():
    async def main():
        async with yieldio.move_on_after(1) as scope:
            await yieldio.sleep(2)
        return scope.cancelled_caught

    assert vrun(main)


def test_nan_timeout_rejected():
    async def main():
        with pytest.raises(ValueError):
            yieldio.move_on_after(math.nan)

    vrun(main)


def test_negative_timeout_is_already_expired_and_bad_types_are_rejected():
    async def main():
        with yieldio.move_on_after(-5) as scope:
            assert scope.deadline == yieldio.current_time()
            await yieldio.sleep(1)
        assert scope.cancelled_caught
        with pytest.raises(yieldio.TooSlowError if hasattr(yieldio, "TooSlowError")
                           else TimeoutError):
            with yieldio.fail_after(-1):
                await yieldio.checkpoint()
        with pytest.raises(TypeError, match="number of seconds, not '10'"):
            yieldio.move_on_after("10")
        with pytest.raises(TypeError, match="number of seconds, not None"):
            yieldio.fail_after(None)
        return yieldio.current_time()

    assert vrun(main) == 0.0


def test_fail_after_is_a_cancel_scope_that_raises_timeout_error():
    async def main():
        with pytest.raises(TimeoutError, match=r"^fail_after\(1\) timed out$"):
            async with yieldio.fail_after(1) as scope:
                await yieldio.sleep(5)
        assert isinstance(scope, yieldio.CancelScope) and scope.cancelled_caught
        with yieldio.fail_after(5) as quiet:
            await yieldio.sleep(1)
        assert not quiet.cancelled_caught
        # Cancelled by hand, not by its deadline: leaves silently, like any scope.
        with yieldio.fail_after(5) as by_hand:
            by_hand.cancel()
            await yieldio.sleep(1)
        assert by_hand.cancelled_caught
        return yieldio.current_time()

    assert vrun(main) == 2.0  # the timeout at 1, the quiet second; by_hand took no time


def test_timeout_outside_a_run_is_a_clear_error_when_entered():
    scope = yieldio.move_on_after(1)  # made ahead: its time counts from entering
    with pytest.raises(RuntimeError, match="yieldio"):
        scope.__enter__()


def test_move_on_after_counts_from_entering_not_from_the_call():
    async def main():
        early = yieldio.move_on_after(1)
        late = yieldio.fail_after(2)
        assert early.is_relative and early.relative_deadline == 1
        with pytest.raises(RuntimeError, match="relative"):
            _ = early.deadline
        with pytest.raises(RuntimeError, match="relative"):
            early.deadline = 5
        await yieldio.sleep(0.5)
        with early:
            assert early.is_relative is None
            assert early.deadline == 1.5 and early.relative_deadline == 1.0
            early.relative_deadline = 3  # from now: 0.5 + 3
            assert early.deadline == 3.5
            await yieldio.sleep(10)
        assert early.cancelled_caught and yieldio.current_time() == 3.5
        with pytest.raises(TimeoutError):
            with late:
                await yieldio.sleep(10)
        assert yieldio.current_time() == 5.5

    vrun(main)


def test_relative_deadline_arguments_are_checked():
    with pytest.raises(ValueError, match="not both"):
        yieldio.CancelScope(deadline=1, relative_deadline=1)
    with pytest.raises(ValueError, match=">= 0"):
        yieldio.CancelScope(relative_deadline=-1)
    with pytest.raises(ValueError, match="NaN"):
        yieldio.CancelScope(relative_deadline=float("nan"))
    with pytest.raises(TypeError, match="seconds"):
        yieldio.CancelScope(relative_deadline="soon")
    absolute = yieldio.move_on_at(5)
    assert absolute.is_relative is False and absolute.deadline == 5
    with pytest.raises(RuntimeError, match="absolute"):
        _ = absolute.relative_deadline
    with pytest.raises(RuntimeError, match="absolute"):
        absolute.relative_deadline = 1
    scope = yieldio.CancelScope(relative_deadline=2)
    scope.relative_deadline = yieldio.CancelScope().relative_deadline  # inf: no deadline
    assert scope.is_relative is False
    scope.deadline = 7  # now an absolute scope
    assert scope.deadline == 7
    assert "relative_deadline=1.000" in repr(yieldio.move_on_after(1))


def test_many_timeouts_that_never_fire_do_not_grow_the_heap():
    async def main():
        k = yieldio._state.current_kernel()
        for _ in range(5000):
            with yieldio.move_on_after(1000):
                await yieldio.checkpoint()
        return len(k.timers)

    assert vrun(main) < 3000


def test_checkpoint_raises_when_cancelled():
    async def main():
        with yieldio.CancelScope() as s:
            s.cancel()
            await yieldio.checkpoint()
            return "not reached"
        return s.cancelled_caught

    assert vrun(main) is True


def test_nan_deadline_rejected_everywhere():
    # A NaN deadline never compares as reached: the scope would silently never
    # time out (and NaN breaks the timer heap's ordering). trio refuses it too.
    async def main():
        with pytest.raises(ValueError, match="NaN"):
            yieldio.move_on_at(math.nan)
        with pytest.raises(ValueError, match="NaN"):
            yieldio.fail_at(math.nan)
        with pytest.raises(ValueError, match="NaN"):
            yieldio.CancelScope(deadline=math.nan)
        with pytest.raises(TypeError, match="deadline must be a number"):
            yieldio.CancelScope(deadline="soon")
        with yieldio.move_on_after(5) as scope:
            with pytest.raises(ValueError, match="NaN"):
                scope.deadline = math.nan
            with pytest.raises(TypeError, match="deadline must be a number"):
                scope.deadline = None
            assert scope.deadline == 5.0  # unchanged, still armed
            await yieldio.sleep(10)
        return scope.cancelled_caught, yieldio.current_time()

    assert vrun(main) == (True, 5.0)


def test_repr_and_properties_of_a_scope():
    async def main():
        with yieldio.CancelScope(shield=True, deadline=5) as scope:
            assert scope.shield and scope.deadline == 5
            assert repr(scope) == "<CancelScope shield deadline=5.000>"
            scope.cancel()
            assert repr(scope) == "<CancelScope cancelled shield deadline=5.000>"
        assert repr(yieldio.CancelScope()) == "<CancelScope active>"
        fail = yieldio.fail_after(1)
        assert fail.scope is fail

    vrun(main)


def test_deadline_moved_into_the_past_cancels_at_once():
    async def main():
        with yieldio.move_on_after(10) as scope:
            scope.deadline = yieldio.current_time() - 1
            assert scope.cancel_called  # before any checkpoint
            await yieldio.sleep(1)
        assert scope.cancelled_caught and yieldio.current_time() == 0.0

        with pytest.raises(TimeoutError, match="fail_after"):
            with yieldio.fail_after(10) as scope:
                scope.deadline = 0.0
                await yieldio.checkpoint()

    vrun(main)


def test_entering_a_scope_outside_a_run_is_a_clear_error():
    scope = yieldio.CancelScope()
    with pytest.raises(RuntimeError, match=r"yieldio\.run\(\)"):
        with scope:
            pass
    assert not scope.cancel_called


def _cancelled_into_a_group(*others):
    async def fn():
        try:
            await yieldio.checkpoint()
        except yieldio.Cancelled as exc:
            # What a helper that collects its tasks' errors might raise.
            raise BaseExceptionGroup("collected", [exc, *others]) from None
    return fn


def test_scope_catches_a_group_of_only_its_cancellations():
    async def main():
        with yieldio.CancelScope() as scope:
            scope.cancel()
            await _cancelled_into_a_group()()
        assert scope.cancelled_caught

    vrun(main)


def test_scope_strips_its_cancellation_from_a_group_with_other_errors():
    async def main():
        with pytest.raises(ExceptionGroup) as info:
            with yieldio.CancelScope() as scope:
                scope.cancel()
                await _cancelled_into_a_group(ValueError("boom"))()
        assert scope.cancelled_caught
        # Only the real failure goes on: no Cancelled escapes its scope, where
        # nobody would catch it (an enclosing TaskGroup would report it).
        assert [type(e) for e in info.value.exceptions] == [ValueError]
        assert not isinstance(info.value.__context__, BaseExceptionGroup)
        await yieldio.checkpoint()  # not cancelled out here
        group = ExceptionGroup("no cancellation in it", [KeyError("k")])
        with pytest.raises(ExceptionGroup) as info:
            with yieldio.CancelScope() as scope:
                scope.cancel()
                raise group
        assert info.value is group and not scope.cancelled_caught

    vrun(main)


def test_current_effective_deadline_is_the_nearest_one_up_to_a_shield():
    async def main():
        seen = [yieldio.current_effective_deadline()]  # no scope with a deadline
        with yieldio.move_on_after(10):
            with yieldio.move_on_after(30):  # further away: the 10 s one rules
                seen.append(yieldio.current_effective_deadline())
                with yieldio.CancelScope(shield=True):
                    seen.append(yieldio.current_effective_deadline())  # the shield hides it
                    with yieldio.move_on_after(50):
                        seen.append(yieldio.current_effective_deadline())
            await yieldio.sleep(4)
            with yieldio.move_on_after(2):  # nearer than what is left of 10 s
                seen.append(yieldio.current_effective_deadline())
        with yieldio.CancelScope() as scope:
            scope.cancel()
            seen.append(yieldio.current_effective_deadline())  # already cancelled

        async def child():
            return yieldio.current_effective_deadline()

        with yieldio.move_on_after(7):  # a child task inherits its group's deadlines
            async with yieldio.TaskGroup() as tg:
                t = tg.spawn(child)
        seen.append(t.result())
        return seen

    assert vrun(main) == [math.inf, 10.0, math.inf, 50.0, 6.0, -math.inf, 11.0]


def test_current_effective_deadline_outside_a_run():
    with pytest.raises(RuntimeError, match="yieldio.run"):
        yieldio.current_effective_deadline()


def test_cancel_called_is_true_once_the_deadline_passed_before_the_timer_fired():
    # As trio's: a long stretch without a checkpoint (here a clock jump from
    # inside the task) passes the deadline; cancel_called says so at once,
    # and the scope then behaves as if its timer had fired.
    clock = VirtualClock()

    async def main():
        with yieldio.fail_after(1) as scope:
            assert not scope.cancel_called
            clock.jump(2)
            assert scope.cancel_called
            await yieldio.sleep(0)  # the checkpoint raises

    with pytest.raises(TimeoutError):
        yieldio.run(main, clock=clock)

    async def left_before_it_passed():
        with yieldio.move_on_after(1) as scope:
            pass
        clock2.jump(5)
        return scope.cancel_called

    clock2 = VirtualClock()
    assert yieldio.run(left_before_it_passed, clock=clock2) is False


def test_cancel_from_a_plain_thread_is_refused_not_lost():
    # From another thread, cancel() mutated the scope tree unlocked and the
    # task parked in the kernel's poll was not woken: the 5 s sleep ran to
    # its end. Refused now, as Event.set() from a thread is; through
    # from_thread (or call_soon_threadsafe) it works at once.
    errors = []

    async def main():
        with yieldio.CancelScope() as scope:
            async with yieldio.TaskGroup() as tg:
                task = tg.spawn(yieldio.sleep, 5)

                def worker():
                    for attempt in (scope.cancel, task.cancel,
                                    lambda: setattr(scope, "deadline", 0),
                                    lambda: setattr(scope, "shield", True)):
                        try:
                            attempt()
                        except RuntimeError as exc:
                            errors.append(str(exc))
                    yieldio.from_thread(scope.cancel)

                await yieldio.to_thread(worker)
        return scope.cancelled_caught, task.cancelled(), yieldio.current_time()

    assert vrun(main) == (True, True, 0.0)
    assert len(errors) == 4
    assert all("from another thread" in e for e in errors)


def test_cancel_called_read_from_a_worker_thread_reports_a_passed_deadline():
    # A worker polling "should I stop?" sees the deadline that passed, without
    # cancelling the scope from its own thread (the kernel's timer does that).
    import time

    seen = []

    async def main():
        with yieldio.move_on_after(0.05) as scope:
            def work():
                deadline = time.monotonic() + 5
                while not scope.cancel_called and time.monotonic() < deadline:
                    time.sleep(0.005)
                seen.append(scope.cancel_called)

            await yieldio.to_thread(work)  # waits for the worker, then Cancelled
        return scope.cancelled_caught

    assert yieldio.run(main) is True
    assert seen == [True]


def test_exiting_a_scope_from_another_task_while_its_owner_is_inside_is_an_error():
    scope = yieldio.CancelScope()
    seen = []

    async def owner():
        with scope:
            await yieldio.sleep(1)
            scope.cancel()  # still its scope: the owner's chain was not touched
            await yieldio.sleep(1)
        seen.append(scope.cancelled_caught)

    async def intruder():
        await yieldio.sleep(0.5)
        with pytest.raises(RuntimeError, match="different task"):
            scope.__exit__(None, None, None)

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(owner)
            tg.spawn(intruder)

    vrun(main)
    assert seen == [True]


def test_the_cancelled_message_names_what_cancelled_the_task():
    # "task 'main' was cancelled" under a timeout sent readers looking for a
    # task.cancel() that never happened.
    got = []

    async def waits():
        try:
            await yieldio.sleep(10)
        except yieldio.Cancelled as e:
            got.append(str(e))
            raise

    async def fails():
        await yieldio.sleep(1)
        raise ValueError

    async def main():
        with pytest.raises(TimeoutError) as info:
            with yieldio.fail_after(0.5):
                await yieldio.sleep(10)
        got.append(str(info.value.__cause__))
        with yieldio.move_on_after(0.5):
            await waits()
        with pytest.raises(ExceptionGroup):
            async with yieldio.TaskGroup() as tg:
                tg.spawn(waits, name="sibling")
                tg.spawn(fails)
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(waits, name="alone")
            await yieldio.sleep(1)
            t.cancel()
        with yieldio.move_on_after(0.5):
            with yieldio.CancelScope(shield=True):  # the shield hides the outer one
                with yieldio.move_on_after(1):
                    await waits()

    vrun(main)
    assert got == [
        "task 'main': the deadline of fail_after(0.5) passed",
        "task 'main': the deadline of a cancel scope passed",
        "task 'sibling': a cancel scope around it was cancelled (scope.cancel(), "
        "tg.cancel(), or a failed task in its group)",
        "task 'alone' was cancelled by Task.cancel()",
        "task 'main': the deadline of a cancel scope passed",
    ]


def test_the_cancelled_message_is_the_same_at_a_checkpoint_that_does_not_wait():
    # A task that is not parked meets its cancellation at its next
    # checkpoint (Task._raise_cancel), not through a wake-up (_deliver).
    async def main():
        got = []
        with yieldio.move_on_after(10) as scope:
            scope.cancel()
            try:
                await yieldio.checkpoint()
            except yieldio.Cancelled as e:
                got.append(str(e))
                raise
        with pytest.raises(TimeoutError):
            with yieldio.fail_after(10) as failing:
                failing.deadline = yieldio.current_time()  # due now: cancelled at once
                try:
                    await yieldio.checkpoint()
                except yieldio.Cancelled as e:
                    got.append(str(e))
                    raise
        return got

    assert vrun(main) == [
        "task 'main': a cancel scope around it was cancelled (scope.cancel(), tg.cancel(), "
        "or a failed task in its group)",
        "task 'main': the deadline of fail_after(10) passed",
    ]
