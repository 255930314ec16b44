"""The kernel: running coroutines of every shape, traps, bad yields, instruments."""

from __future__ import annotations

import pytest

import yieldio
import yieldio.socket
from yieldio.testing import VirtualClock


def test_run_returns_result_of_async_function():
    async def main(a, b):
        await yieldio.sleep(0)
        return a + b

    assert yieldio.run(main, 2, 3) == 5


def test_run_accepts_coroutine_object_and_generator():
    async def main():
        return "coro"

    @yieldio.coroutine
    def gen():
        yield from yieldio.sleep(0)
        return "gen"

    assert yieldio.run(main()) == "coro"
    assert yieldio.run(gen) == "gen"
    assert yieldio.run(gen()) == "gen"


def test_run_raises_main_exception():
    async def main():
        await yieldio.sleep(0)
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        yieldio.run(main)


def test_run_rejects_non_coroutines():
    def plain():
        return 1

    with pytest.raises(TypeError, match="not a coroutine"):
        yieldio.run(plain)
    with pytest.raises(TypeError):
        yieldio.run(42)

    async def main():
        pass

    with pytest.raises(TypeError, match="arguments"):
        yieldio.run(main(), 1)


def test_nested_run_is_a_clear_error():
    async def inner():
        return 1

    async def main():
        coro = inner()
        try:
            yieldio.run(coro)
        finally:
            coro.close()

    with pytest.raises(RuntimeError, match="cannot be called from inside"):
        yieldio.run(main)


def test_calls_outside_run_are_clear_errors():
    with pytest.raises(RuntimeError, match="yieldio.run"):
        yieldio.current_time()
    with pytest.raises(RuntimeError, match="yieldio.run"):
        yieldio.current_task()
    with pytest.raises(RuntimeError, match="yieldio.run"):
        yieldio.sleep(1).send(None)
    ev = yieldio.Event()
    with pytest.raises(RuntimeError, match="yieldio.run"):
        ev.wait().send(None)
    scope = yieldio.move_on_after(1)  # made ahead is fine: it counts from entering
    with pytest.raises(RuntimeError, match="yieldio.run"):
        scope.__enter__()


def test_run_is_reusable_after_it_ends():
    async def main():
        await yieldio.sleep(0.001)
        return yieldio.current_task().name

    assert yieldio.run(main) == "main"
    assert yieldio.run(main) == "main"


class Countdown:
    """A hand-written coroutine class: a state machine with send() and throw()."""

    def __init__(self, n):
        self.n = n
        self.log = []

    def send(self, value):
        self.log.append(value)
        if self.n == 0:
            raise StopIteration("liftoff")
        self.n -= 1
        # Each step is a trampolined call into a real wait.
        return yieldio.sleep(0)

    def throw(self, exc):
        raise exc


def test_class_based_coroutine_runs_as_a_task():
    c = Countdown(3)
    assert yieldio.run(c) == "liftoff"
    assert c.log == [None, None, None, None]


class SendOnly:
    """The seed's shape: only send(), no throw() -- still runs."""

    def __init__(self):
        self.steps = 0

    def send(self, value):
        self.steps += 1
        if self.steps > 2:
            raise StopIteration(self.steps)
        return yieldio.checkpoint()


def test_send_only_coroutine_runs():
    assert yieldio.run(SendOnly()) == 3


def test_class_based_coroutine_spawned_in_group():
    async def main():
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(Countdown(2))
        return t.result()

    assert yieldio.run(main) == "liftoff"


def test_mixing_styles_in_both_directions():
    async def native(x):
        await yieldio.sleep(0)
        return x * 2

    @yieldio.coroutine
    def gen_calls_native(x):
        a = yield from native(x)      # a generator awaiting native code
        b = yield native(x + 1)        # a trampolined call of a native coroutine
        return a + b

    async def native_calls_gen():
        return await gen_calls_native(1)   # native code awaiting a generator

    assert yieldio.run(native_calls_gen) == 2 + 4


def test_trampolined_calls_inside_the_kernel_are_deep():
    @yieldio.coroutine
    def down(n):
        if n == 0:
            yield from yieldio.sleep(0)
            return 0
        return (yield down(n - 1)) + 1

    assert yieldio.run(down, 50_000) == 50_000


def test_trampolined_call_exception_reaches_caller():
    def fails():
        yield from yieldio.sleep(0)
        raise ValueError("deep")

    @yieldio.coroutine
    def caller():
        try:
            yield fails()
        except ValueError as e:
            return f"caught {e}"

    assert yieldio.run(caller) == "caught deep"


def test_bad_yield_gets_type_error_at_the_yield():
    def bad():
        try:
            yield 42
        except TypeError as e:
            return str(e)

    msg = yieldio.run(bad)
    assert "42" in msg and "main" in msg and ("yield from" in msg or "await" in msg)


def test_yielding_a_callable_names_it():
    async def job():
        return 1

    def bad():
        try:
            yield job  # forgot to call it
        except TypeError as e:
            return str(e)

    assert "call it" in yieldio.run(bad)


def test_bare_yield_and_asyncio_sleep_get_a_hint():
    # Both yield None: the message says what to use instead of guessing.
    import asyncio

    def bare():
        yield

    async def asyncio_code():
        await asyncio.sleep(0)

    for fn in (bare, asyncio_code):
        with pytest.raises(TypeError) as info:
            yieldio.run(fn)
        assert "yieldio.sleep(0)" in str(info.value) and "yieldio.aio" in str(info.value)


def test_yielding_an_awaitable_says_how_to_call_it():
    class Ready:
        def __await__(self):
            return iter(())

    def bad():
        try:
            yield Ready()
        except TypeError as e:
            return str(e)

    assert "__await__()" in yieldio.run(bad)


def test_bad_yield_uncaught_fails_the_task():
    def bad():
        yield "nope"

    with pytest.raises(TypeError, match="'nope'"):
        yieldio.run(bad)


def test_current_task_and_names():
    async def child():
        return yieldio.current_task().name

    async def main():
        async with yieldio.TaskGroup() as tg:
            a = tg.spawn(child, name="alpha")
            b = tg.spawn(child)
        assert a.parent is yieldio.current_task()
        return a.result(), b.result(), a.id != b.id

    assert yieldio.run(main) == ("alpha", "test_current_task_and_names.<locals>.child", True)


def test_each_task_runs_in_its_own_context():
    import contextvars

    var = contextvars.ContextVar("var", default="unset")

    async def child(value):
        var.set(value)
        await yieldio.sleep(0)
        return var.get()

    async def main():
        var.set("main")
        async with yieldio.TaskGroup() as tg:
            a = tg.spawn(child, "a")
            b = tg.spawn(child, "b")
        return a.result(), b.result(), var.get()

    assert yieldio.run(main) == ("a", "b", "main")


class Recorder(yieldio.Instrument):
    def __init__(self):
        self.events = []

    def task_spawned(self, task):
        self.events.append(("spawned", task.name))

    def before_task_step(self, task):
        self.events.append(("before", task.name))

    def after_task_step(self, task):
        self.events.append(("after", task.name))

    def task_exited(self, task):
        self.events.append(("exited", task.name, task.state))

    def task_scheduled(self, task):
        self.events.append(("scheduled", task.name))

    def before_io_wait(self, timeout):
        self.events.append(("io", timeout >= 0))


def test_instruments_see_the_lifecycle():
    rec = Recorder()

    async def child():
        await yieldio.sleep(0.001)

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(child, name="kid")

    yieldio.run(main, instruments=[rec])
    names = [e for e in rec.events if e[0] != "io"]
    assert ("spawned", "main") in names
    assert ("spawned", "kid") in names
    assert ("exited", "kid", "done") in names
    assert ("exited", "main", "done") in names
    assert ("scheduled", "kid") in names  # woken from its sleep
    assert ("io", True) in rec.events
    # every step is bracketed
    befores = sum(1 for e in names if e[0] == "before")
    afters = sum(1 for e in names if e[0] == "after")
    assert befores == afters > 0


def test_instruments_hear_about_wakeups_by_io():
    import socket

    rec = Recorder()
    a, b = socket.socketpair()

    async def reader():
        return await yieldio.socket.from_stdlib(a).recv(10)

    async def main():
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(reader, name="reader")
            await yieldio.testing.wait_all_tasks_blocked()
            before = rec.events.count(("scheduled", "reader"))
            b.send(b"ping")
        return t.result(), before

    try:
        got, before = yieldio.run(main, instruments=[rec])
    finally:
        a.close()
        b.close()
    assert got == b"ping"
    # woken by epoll readiness: the kernel reports it like any reschedule
    assert rec.events.count(("scheduled", "reader")) == before + 1


@pytest.mark.parametrize("via", ["event", "queue-get", "queue-put"])
def test_instruments_hear_about_wakeups_by_event_and_queue(via):
    # Event.set and Queue put/get wake their waiters without a call to
    # Kernel.reschedule when no instrument listens; with one, each wakeup
    # is still reported, with the value the waiter resumes with.
    rec = Recorder()

    async def main(instrumented=True):
        ev = yieldio.Event()
        q = yieldio.Queue(1)

        async def waiter():
            if via == "event":
                await ev.wait()
                return "set"
            if via == "queue-get":
                return await q.get()
            await q.put("second")  # the queue holds "first": this waits
            return "put"

        async with yieldio.TaskGroup() as tg:
            if via == "queue-put":
                q.put_nowait("first")
            t = tg.spawn(waiter, name="waiter")
            await yieldio.testing.wait_all_tasks_blocked()
            before = rec.events.count(("scheduled", "waiter"))
            if via == "event":
                ev.set()
            elif via == "queue-get":
                await q.put("item")
            else:
                assert await q.get() == "first"
        heard = rec.events.count(("scheduled", "waiter")) - before
        assert heard == (1 if instrumented else 0)
        if via == "queue-put":
            assert q.get_nowait() == "second"
        return t.result()

    expected = {"event": "set", "queue-get": "item", "queue-put": "put"}[via]
    assert yieldio.run(main, instruments=[rec]) == expected
    assert yieldio.run(main, False) == expected  # and the same without one


def test_broken_instrument_is_removed_not_fatal(capsys):
    class Broken:
        def before_task_step(self, task):
            raise RuntimeError("oops")

    class BrokenIO:
        def before_io_wait(self, timeout):
            raise RuntimeError("oops-io")

    async def main():
        await yieldio.sleep(0)
        return "fine"

    assert yieldio.run(main, instruments=[Broken(), BrokenIO()]) == "fine"
    err = capsys.readouterr().err
    assert "oops" in err and "oops-io" in err


def test_a_broken_instrument_is_removed_by_identity_not_equality(capsys):
    # Two instruments that compare equal (dataclass-style __eq__): the one
    # that raised goes, the other stays. list.remove() took the first equal
    # one, so the working instrument was dropped and the broken one kept
    # raising. The report names the hook, not the method's __name__.
    class Rec:
        def __init__(self, label):
            self.label = label
            self.steps = 0

        def __eq__(self, other):
            return isinstance(other, Rec)

        __hash__ = object.__hash__

        def before_task_step(self, task):
            self.steps += 1
            if self.label == "bad":
                raise ValueError("bad")

    def failing(self, timeout):
        raise ValueError("io")

    class EqRaises:
        def __eq__(self, other):
            raise TypeError("no ==")

        __hash__ = object.__hash__
        before_io_wait = failing

    async def main():
        for _ in range(5):
            await yieldio.sleep(0)
        return "fine"

    good, bad = Rec("good"), Rec("bad")
    assert yieldio.run(main, instruments=[good, bad, EqRaises()]) == "fine"
    assert (good.steps, bad.steps) == (6, 1)
    err = capsys.readouterr().err
    assert err.count("removing it") == 2
    assert "in before_io_wait" in err


def test_a_failing_after_run_hook_does_not_skip_the_others(capsys):
    ran = []

    class Failing:
        def after_run(self):
            raise RuntimeError("after_run broke")

    class CleanUp:
        def after_run(self):
            ran.append("cleaned up")

    async def main():
        return "ok"

    assert yieldio.run(main, instruments=[Failing(), CleanUp()]) == "ok"
    assert ran == ["cleaned up"]
    assert "after_run broke" in capsys.readouterr().err


def test_virtual_clock_autojump_sleeps_an_hour_instantly():
    import time

    clock = VirtualClock(autojump=True)

    async def main():
        t0 = yieldio.current_time()
        await yieldio.sleep(3600)
        return yieldio.current_time() - t0

    start = time.monotonic()
    assert yieldio.run(main, clock=clock) == 3600
    assert time.monotonic() - start < 5


def test_unknown_run_option_is_rejected():
    async def main():
        pass

    with pytest.raises(TypeError, match="unexpected"):
        yieldio.run(main, bogus=1)
    coro = main()
    with pytest.raises(TypeError, match="unexpected"):
        yieldio.run(coro, bogus=1)
    coro.close()


def test_yielding_a_socket_is_a_bad_yield_not_a_call():
    import socket

    def bad():
        a, b = socket.socketpair()
        try:
            yield a
        except TypeError as e:
            return "socket" in str(e)
        finally:
            a.close()
            b.close()

    assert yieldio.run(bad) is True


# -- instruments, deadlocks, seeded schedules, odd yields ------------------------------
class WholeRun(yieldio.Instrument):
    def __init__(self):
        self.events = []

    def before_run(self):
        self.events.append("before_run")

    def after_io_wait(self, timeout):
        self.events.append("io")

    def task_scheduled(self, task):
        self.events.append(("scheduled", task.name))

    def after_run(self):
        self.events.append("after_run")


def test_instruments_hear_before_run_io_waits_and_cancellation_wakeups():
    rec = WholeRun()

    async def sleeper():
        await yieldio.sleep_forever()

    async def main():
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(sleeper, name="sleeper")
            await yieldio.sleep(0.01)
            t.cancel()  # ends the wait with an error: task_scheduled too
        return t.cancelled()

    assert yieldio.run(main, instruments=[rec]) is True
    # The main task is spawned (so ready: scheduled) just before before_run.
    assert rec.events[:2] == [("scheduled", "main"), "before_run"]
    assert rec.events[-1] == "after_run"
    assert "io" in rec.events
    # task_scheduled is "a task was made ready": when it is spawned, and when
    # the cancellation ended the sleeper's wait (reschedule_error).
    assert rec.events.count(("scheduled", "sleeper")) == 2


def test_a_virtual_clock_without_autojump_reports_the_deadlock():
    async def main():
        await yieldio.sleep(5)

    with pytest.raises(yieldio.Deadlock) as info:
        yieldio.run(main, clock=VirtualClock())
    msg = str(info.value)
    assert "sleep until +5.00 s" in msg
    assert "this clock moves only when a task calls its jump()" in msg


def test_tasks_that_keep_blocking_after_the_deadlock_are_closed_not_leaked():
    cleaned = []

    async def stubborn(name):
        try:
            try:
                await yieldio.Event().wait()
            except yieldio.Cancelled:
                with yieldio.CancelScope(shield=True):
                    await yieldio.Event().wait()  # blocks again: nothing can end this
        finally:
            cleaned.append(name)

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(stubborn, "child")
            await stubborn("main")

    with pytest.raises(yieldio.Deadlock, match="every task is blocked"):
        yieldio.run(main)
    assert sorted(cleaned) == ["child", "main"]


def test_a_long_sleep_does_not_stop_the_loop_from_serving_others():
    import time

    async def main():
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(yieldio.sleep, 10 * 86400.0)  # beyond epoll's longest wait
            await yieldio.to_thread(time.sleep, 0.01)
            t.cancel()
        return t.cancelled()

    assert yieldio.run(main) is True


def test_a_seeded_run_is_reproducible_and_loses_no_task():
    def one_run(seed):
        order = []

        async def worker(i):
            for step in range(3):
                order.append((i, step))
                await yieldio.sleep(0)

        async def main():
            async with yieldio.TaskGroup() as tg:
                for i in range(20):
                    tg.spawn(worker, i)

        yieldio.run(main, seed=seed)
        return order

    first = one_run(7)
    assert first == one_run(7)
    assert sorted(first) == [(i, s) for i in range(20) for s in range(3)]
    assert first != one_run(8)
    # Each task still runs its own steps in order.
    for i in range(20):
        assert [s for j, s in first if j == i] == [0, 1, 2]


def test_context_variables_set_by_tasks_stay_theirs():
    import contextvars

    var = contextvars.ContextVar("var", default="unset")
    seen = {}

    async def worker(i):
        if i % 2:
            var.set(f"v{i}")
        await yieldio.sleep(0)
        await yieldio.sleep(0)
        seen[i] = var.get()

    async def short_lived():
        var.set("gone")  # sets a variable, then ends in the same step

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(short_lived)
            for i in range(6):
                tg.spawn(worker, i)
        return var.get()

    # From an empty context (pytest's own holds variables), where tasks start
    # out sharing one context until they set a variable.
    assert contextvars.Context().run(yieldio.run, main) == "unset"
    assert seen == {0: "unset", 1: "v1", 2: "unset", 3: "v3", 4: "unset", 5: "v5"}


def test_a_trampolined_call_that_fails_at_once_fails_its_task():
    @yieldio.coroutine
    def child():
        raise ValueError("from the child")
        yield  # pragma: no cover

    @yieldio.coroutine
    def parent():
        yield from yieldio.sleep(0)
        yield child()  # a trampolined call, in the shared context

    with pytest.raises(ValueError, match="from the child"):
        yieldio.run(parent)


def test_awaiting_an_asyncio_future_points_to_the_bridge():
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        fut = loop.create_future()

        async def main():
            await fut

        with pytest.raises(TypeError, match="asyncio objects cannot be awaited directly; use "
                                            "the yieldio.aio bridge"):
            yieldio.run(main)
    finally:
        loop.close()


def test_an_instrument_with_only_task_scheduled_hears_new_tasks():
    # A new task is ready from the start: task_scheduled reports it (as in
    # trio) even when no instrument listens for task_spawned.
    class OnlyScheduled(yieldio.Instrument):
        def __init__(self):
            self.names = []

        def task_scheduled(self, task):
            self.names.append(task.name)

    inst = OnlyScheduled()

    async def child():
        pass

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(child, name="kid")

    yieldio.run(main, instruments=[inst])
    assert inst.names[:1] == ["main"] and "kid" in inst.names


@pytest.mark.timeout(10)
def test_an_exception_a_task_caught_is_not_kept_alive_by_the_kernel():
    # The step loop used to keep the last thrown exception in a local until
    # the next step began, and with it the traceback's frames and locals.
    import gc
    import weakref

    caught: list[weakref.ref[BaseException]] = []
    alive_at_next_step: list[bool] = []

    class Probe(yieldio.Instrument):
        def before_task_step(self, task):
            if caught and not alive_at_next_step:
                gc.collect()
                alive_at_next_step.append(caught[0]() is not None)

    async def victim(scopes, ev):
        with yieldio.CancelScope() as cs:
            scopes.append(cs)
            try:
                await yieldio.sleep_forever()
            except yieldio.Cancelled as e:
                caught.append(weakref.ref(e))
                raise
        await ev.wait()

    async def main():
        scopes: list[yieldio.CancelScope] = []
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            tg.spawn(victim, scopes, ev)
            await yieldio.sleep(0)
            scopes[0].cancel()
            await yieldio.sleep(0)
            ev.set()

    yieldio.run(main, instruments=[Probe()])
    assert alive_at_next_step == [False]


@pytest.mark.timeout(10)
def test_a_cancelled_no_scope_of_this_run_raised_is_an_error_not_a_silent_cancellation():
    # Before, a task ended by a stray Cancelled counted as cancelled, and a
    # TaskGroup drops cancelled children: the failure vanished.
    async def raises_by_hand():
        await yieldio.sleep(0)
        raise yieldio.Cancelled("raised by hand")

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(raises_by_hand, name="stray")

    with pytest.raises(ExceptionGroup) as info:
        yieldio.run(main)
    (err,) = info.value.exceptions
    assert isinstance(err, RuntimeError) and "'stray'" in str(err)
    assert isinstance(err.__cause__, yieldio.Cancelled)


@pytest.mark.timeout(10)
def test_a_nested_runs_cancelled_main_does_not_cancel_the_outer_task():
    async def inner():
        yieldio.current_task().cancel()
        await yieldio.sleep(0)

    async def outer():
        await yieldio.to_thread(yieldio.run, inner)

    async def main():
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(outer)
        return t

    with pytest.raises(ExceptionGroup) as info:
        yieldio.run(main)
    (err,) = info.value.exceptions
    assert isinstance(err, RuntimeError) and "another yieldio.run()" in str(err)


@pytest.mark.timeout(10)
def test_real_cancellations_still_end_tasks_as_cancelled():
    async def main():
        async with yieldio.TaskGroup() as tg:
            by_task = tg.spawn(yieldio.sleep_forever)
            await yieldio.sleep(0)
            by_task.cancel()
        async with yieldio.TaskGroup() as tg:
            by_group = tg.spawn(yieldio.sleep_forever)
            await yieldio.sleep(0)
            tg.cancel()
        return by_task.cancelled(), by_group.cancelled()

    assert yieldio.run(main) == (True, True)


def test_fast_path_budget_restarts_when_a_task_parks():
    # Two tasks each take 20 fast paths in one step, then park. The budget
    # (32 in a row) is per run of fast paths: neither task should be made to
    # give way, so the third task runs only after both finished their puts.
    # (With one count shared by all tasks, the second task yielded at its
    # 12th put and the third ran in the middle of it.)
    log = []

    async def main():
        q = yieldio.Queue()
        gate = yieldio.Event()

        async def putter(name):
            for i in range(20):
                await q.put(i)
            log.append(name)
            await gate.wait()

        async def other():
            log.append("other")
            gate.set()

        async with yieldio.TaskGroup() as tg:
            tg.spawn(putter, "a")
            tg.spawn(putter, "b")
            tg.spawn(other)

    yieldio.run(main)
    assert log == ["a", "b", "other"]


def test_fast_path_budget_still_interrupts_a_task_that_never_waits():
    log = []

    async def main():
        q = yieldio.Queue()

        async def putter():
            for i in range(100):
                await q.put(i)
                log.append(i)

        async def other():
            log.append("other")

        async with yieldio.TaskGroup() as tg:
            tg.spawn(putter)
            tg.spawn(other)

    yieldio.run(main)
    assert log.index("other") == 31  # the 32nd put in a row gave way, before logging


def test_a_kernel_that_fails_to_start_leaves_no_fd_behind():
    import os

    from yieldio._kernel import Kernel

    class BrokenInstrument:
        @property
        def before_run(self):
            raise RuntimeError("broken instrument")

    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(TypeError):
            Kernel(None, (), [1])  # a seed random.Random refuses
        with pytest.raises(RuntimeError, match="broken instrument"):
            Kernel(None, [BrokenInstrument()], None)
    assert len(os.listdir("/proc/self/fd")) == before


def test_deep_async_def_recursion_fails_with_a_note_naming_the_trampoline():
    # async def recursion uses Python's stack; the note says where the
    # unlimited kind of call is.
    async def down(n):
        return 0 if n == 0 else 1 + await down(n - 1)

    async def main():
        return await down(100_000)

    with pytest.raises(RecursionError) as info:
        yieldio.run(main)
    assert any("yield sub()" in note for note in info.value.__notes__)

    @yieldio.coroutine
    def deep(n):
        return 0 if n == 0 else 1 + (yield deep(n - 1))

    assert yieldio.run(deep, 100_000) == 100_000  # the trampolined form has no limit
