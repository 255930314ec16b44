"""Trampolined calls: ``x = yield sub()`` behaves exactly like ``x = yield from sub()``.

Most tests run one program twice -- written with ``yield from`` and driven
natively, and written with ``yield sub()`` and driven by
:func:`yieldio.trampoline` -- and compare everything a driver can observe.
The random version of that lives in ``test_trampoline_props.py``.
"""

from __future__ import annotations

import gc
import sys
import time
import traceback
import tracemalloc
import types
import weakref
from types import GeneratorType
from typing import Any

import pytest

from yieldio import _pep380, _trampoline
from yieldio._trampoline import Trampoline, is_subcoroutine, trampoline

NATIVE, TRAMPOLINE = "yield from", "trampoline"
MODES = [NATIVE, TRAMPOLINE]


def drive(coro: Any, script: list[Any]) -> list[Any]:
    """Run a driver script against ``coro``; return what each step gave.

    A step is ``("send", v)``, ``("throw", exc[, value[, tb]])`` or ``("close",)``. Each
    outcome is ``("yield", v)``, ``("stop", value)``, ``("closed", None)`` or
    ``("raise", type, args)``.
    """
    out: list[Any] = []
    for step in script:
        try:
            if step[0] == "send":
                out.append(("yield", coro.send(step[1])))
            elif step[0] == "throw":
                out.append(("yield", coro.throw(*step[1:])))  # 1 to 3 arguments
            else:
                out.append(("closed", coro.close()))
        except StopIteration as stop:
            out.append(("stop", stop.value))
        except Exception as exc:
            out.append(("raise", type(exc), exc.args))
    return out


def start(program: Any, mode: str) -> Any:
    return trampoline(program) if mode == TRAMPOLINE else program


# -- the walkthrough ----------------------------------------------------------------
# A four-level delegation chain d -> c -> b -> (a, then a1), in the spirit of
# the seed article, told anew. ``a`` totals the numbers the driver sends until
# it sends None; ``a1`` totals exactly two numbers; ``b`` adds the two; ``c``
# runs ``b`` twice; ``d`` reports the grand total. Every function logs what
# it sees, so the order of events is compared, not only the values.


def walkthrough_native(log: list[Any]) -> Any:
    def a():
        total = 0
        while True:
            n = yield "a: a number, or None to stop"
            log.append(("a got", n))
            if n is None:
                return total
            total += n

    def a1():
        first = yield "a1: first number"
        second = yield "a1: second number"
        log.append(("a1 got", first, second))
        return first + second

    def b():
        x = yield from a()
        log.append(("b: a returned", x))
        y = yield from a1()
        log.append(("b: a1 returned", y))
        return x + y

    def c():
        s1 = yield from b()
        s2 = yield from b()
        log.append(("c: sums", s1, s2))
        return s1 + s2

    def d():
        log.append("d starts")
        total = yield from c()
        log.append(("d: total", total))
        return f"grand total {total}"

    return d()


def walkthrough_trampolined(log: list[Any]) -> Any:
    def a():
        total = 0
        while True:
            n = yield "a: a number, or None to stop"
            log.append(("a got", n))
            if n is None:
                return total
            total += n

    def a1():
        first = yield "a1: first number"
        second = yield "a1: second number"
        log.append(("a1 got", first, second))
        return first + second

    def b():
        x = yield a()
        log.append(("b: a returned", x))
        y = yield a1()
        log.append(("b: a1 returned", y))
        return x + y

    def c():
        s1 = yield b()
        s2 = yield b()
        log.append(("c: sums", s1, s2))
        return s1 + s2

    def d():
        log.append("d starts")
        total = yield c()
        log.append(("d: total", total))
        return f"grand total {total}"

    return trampoline(d())


def test_walkthrough_chain_matches_yield_from():
    # None starts; then a gets 1, 2, None; a1 gets 3, 4; then b runs again.
    script = [("send", v) for v in (None, 1, 2, None, 3, 4, 10, None, 20, 30, 99)]
    native_log: list[Any] = []
    tramp_log: list[Any] = []
    native = drive(walkthrough_native(native_log), script)
    tramp = drive(walkthrough_trampolined(tramp_log), script)
    assert tramp == native
    assert tramp_log == native_log
    # And the story itself is the one we meant to tell.
    assert native[0] == ("yield", "a: a number, or None to stop")
    assert native[4] == ("yield", "a1: second number")
    assert native[-2] == ("stop", "grand total 70")  # (1+2 + 3+4) + (10 + 20+30)
    assert native[-1] == ("stop", None)  # a finished generator stays finished
    assert ("c: sums", 10, 60) in native_log


def test_walkthrough_depth_is_visible_while_suspended():
    t = walkthrough_trampolined([])
    assert next(t) == "a: a number, or None to stop"
    assert t.depth == 4
    assert [g.__name__ for g in t.stack] == ["d", "c", "b", "a"]
    assert "depth=4" in repr(t) and "innermost=walkthrough_trampolined.<locals>.a" in repr(t)
    t.close()


# -- hand-written class coroutines -----------------------------------------------------
class Turnstile:
    """The seed's shape: a state machine with only ``send()``.

    Counts down the coins it is fed, yields how many are still needed, and
    finishes with ``StopIteration("done")``.
    """

    def __init__(self, coins: int) -> None:
        self.needed = coins
        self.fed: list[Any] = []

    def send(self, value: Any) -> Any:
        if value is not None:
            self.fed.append(value)
            self.needed -= 1
        if self.needed == 0:
            raise StopIteration("done")
        return f"insert {self.needed}"


class IterTurnstile(Turnstile):
    """The same, iterable, so that native ``yield from`` accepts it too."""

    def __iter__(self) -> IterTurnstile:
        return self

    def __next__(self) -> Any:
        return self.send(None)


def test_class_coroutine_as_the_outermost():
    gate = Turnstile(2)
    t = trampoline(gate)
    assert drive(t, [("send", None), ("send", "c1"), ("send", "c2")]) == [
        ("yield", "insert 2"),
        ("yield", "insert 1"),
        ("stop", "done"),
    ]
    assert gate.fed == ["c1", "c2"]
    # A send-only object has no close(): closing skips it, as PEP 380 does.
    assert t.close() is None


def test_class_coroutine_as_a_subcall_matches_yield_from():
    def program(mode: str) -> Any:
        def walk() -> Any:
            result = (yield from IterTurnstile(2)) if mode == NATIVE else (yield IterTurnstile(2))
            return f"gate says {result}"

        return start(walk(), mode)

    script = [("send", None), ("send", "c1"), ("send", "c2"), ("send", None)]
    native = drive(program(NATIVE), script)
    assert drive(program(TRAMPOLINE), script) == native
    assert native[2] == ("stop", "gate says done")


def test_send_only_class_coroutine_as_a_subcall():
    # No __next__ and no __iter__: native ``yield from`` cannot call it, the
    # trampoline can (it resumes with send(None), as PyIter_Send would).
    gate = Turnstile(1)

    def walk() -> Any:
        return (yield gate), "after"

    t = trampoline(walk())
    assert drive(t, [("send", None), ("send", "coin")]) == [
        ("yield", "insert 1"),
        ("stop", ("done", "after")),
    ]


def test_throw_into_class_without_throw_raises_in_caller_and_does_not_close_it():
    closed = []

    class NoThrow(IterTurnstile):
        def close(self) -> None:
            closed.append(self)

    def program(mode: str) -> Any:
        def caller() -> Any:
            try:
                (yield from NoThrow(3)) if mode == NATIVE else (yield NoThrow(3))
            except KeyError as e:
                return f"caller caught {e!r}"

        return start(caller(), mode)

    script = [("send", None), ("throw", KeyError("k")), ("send", None)]
    native = drive(program(NATIVE), script)
    n_closed = len(closed)
    assert drive(program(TRAMPOLINE), script) == native
    assert native[1] == ("stop", "caller caught KeyError('k')")
    assert len(closed) == n_closed == 0  # abandoned, not closed


def test_close_reaches_a_class_coroutines_close():
    log = []

    class Closable(IterTurnstile):
        def close(self) -> None:
            log.append("class closed")

    def program(mode: str) -> Any:
        def caller() -> Any:
            try:
                (yield from Closable(3)) if mode == NATIVE else (yield Closable(3))
            finally:
                log.append("caller finally")

        return start(caller(), mode)

    for mode in MODES:
        log.clear()
        assert drive(program(mode), [("send", None), ("close",)])[1] == ("closed", None)
        assert log == ["class closed", "caller finally"]


# -- throw() and close() -----------------------------------------------------------------
def both(make: Any, script: list[Any]) -> list[Any]:
    """Run ``make(mode)`` under both modes and check they agree; return one."""
    logs: dict[str, list[Any]] = {}
    results = {}
    for mode in MODES:
        log: list[Any] = []
        results[mode] = drive(start(make(mode, log), mode), script)
        logs[mode] = log
    assert results[TRAMPOLINE] == results[NATIVE]
    assert logs[TRAMPOLINE] == logs[NATIVE]
    return [results[NATIVE], logs[NATIVE]]


def test_thrown_exception_caught_in_the_caller():
    def make(mode: str, log: list[Any]) -> Any:
        def inner():
            try:
                yield "inner waits"
            finally:
                log.append("inner finally")

        def outer():
            try:
                x = (yield from inner()) if mode == NATIVE else (yield inner())
            except ValueError as e:
                log.append(("outer caught", e.args))
                x = yield "outer recovered"
            return x

        return outer()

    results, log = both(make, [("send", None), ("throw", ValueError("boom")), ("send", 7)])
    assert results == [("yield", "inner waits"), ("yield", "outer recovered"), ("stop", 7)]
    assert log == ["inner finally", ("outer caught", ("boom",))]


def test_exception_class_thrown_is_instantiated_where_it_lands():
    def make(mode: str, log: list[Any]) -> Any:
        def inner():
            try:
                yield 1
            except KeyError as e:
                log.append(("inner caught", type(e), e.args))
                return "handled"

        def outer():
            r = (yield from inner()) if mode == NATIVE else (yield inner())
            return r

        return outer()

    results, log = both(make, [("send", None), ("throw", KeyError)])
    assert results == [("yield", 1), ("stop", "handled")]
    assert log == [("inner caught", KeyError, ())]


def test_close_with_ignored_generator_exit_raises_runtime_error():
    def make(mode: str, log: list[Any]) -> Any:
        def stubborn():
            try:
                yield "first"
            except GeneratorExit:
                log.append("ignoring GeneratorExit")
                yield "still here"

        return stubborn()

    results, log = both(make, [("send", None), ("close",), ("send", None)])
    assert results == [
        ("yield", "first"),
        ("raise", RuntimeError, ("generator ignored GeneratorExit",)),
        ("stop", None),
    ]


def test_callee_ignoring_generator_exit_raises_runtime_error_in_the_caller():
    def make(mode: str, log: list[Any]) -> Any:
        def stubborn():
            try:
                yield "first"
            except GeneratorExit:
                yield "ignored"

        def caller():
            try:
                (yield from stubborn()) if mode == NATIVE else (yield stubborn())
            except RuntimeError as e:
                log.append(("caller caught", e.args))
                return "caller done"  # returning during close means "closed"

        return caller()

    results, log = both(make, [("send", None), ("close",), ("send", None)])
    # From 3.13, close() returns what the generator returned while closing.
    returned = "caller done" if sys.version_info >= (3, 13) else None
    assert results == [("yield", "first"), ("closed", returned), ("stop", None)]
    assert log == [("caller caught", ("generator ignored GeneratorExit",))]


def test_stop_iteration_thrown_at_a_callee_without_throw_is_as_native():
    # 3.11: raised in the caller, where it becomes RuntimeError (PEP 479).
    # 3.12+: the caller's ``yield from`` takes it as the callee's return.
    # The trampoline does what this Python's ``yield from`` does.
    def make(mode: str, log: list[Any]) -> Any:
        def caller():
            got = (yield from IterTurnstile(3)) if mode == NATIVE else (yield IterTurnstile(3))
            log.append(("got", got))
            return "end"

        return caller()

    results, log = both(make, [("send", None), ("throw", StopIteration("v"))])
    if sys.version_info >= (3, 12):
        assert results[1] == ("stop", "end") and log == [("got", "v")]
    else:
        assert results[1][0] == "raise" and "StopIteration" in str(results[1]) and log == []


def test_error_raised_while_closing_the_callee_goes_to_the_caller():
    def make(mode: str, log: list[Any]) -> Any:
        def inner():
            try:
                yield "inner"
            finally:
                log.append("inner cleanup fails")
                raise OSError("cleanup failed")

        def outer():
            try:
                (yield from inner()) if mode == NATIVE else (yield inner())
            except OSError as e:
                log.append(("outer sees", e.args))
                raise

        return outer()

    results, log = both(make, [("send", None), ("close",), ("close",)])
    assert results == [("yield", "inner"), ("raise", OSError, ("cleanup failed",)),
                       ("closed", None)]
    assert log == ["inner cleanup fails", ("outer sees", ("cleanup failed",))]


def test_thrown_generator_exit_closes_callees_and_the_outermost_may_yield():
    def make(mode: str, log: list[Any]) -> Any:
        def inner():
            try:
                yield "inner"
            except GeneratorExit:
                log.append("inner closed")
                raise

        def outer():
            try:
                (yield from inner()) if mode == NATIVE else (yield inner())
            except GeneratorExit as e:
                log.append(("outer got", type(e)))
                x = yield "outer yields during GeneratorExit"
                return x

        return outer()

    results, log = both(make, [("send", None), ("throw", GeneratorExit()), ("send", 5)])
    assert results == [("yield", "inner"), ("yield", "outer yields during GeneratorExit"),
                       ("stop", 5)]
    assert log == ["inner closed", ("outer got", GeneratorExit)]


def test_cleanup_code_can_make_trampolined_calls():
    def make(mode: str, log: list[Any]) -> Any:
        def cleanup():
            log.append("cleanup runs")
            return "cleaned"
            yield  # a generator that finishes without yielding

        def worker():
            try:
                yield "working"
            finally:
                r = (yield from cleanup()) if mode == NATIVE else (yield cleanup())
                log.append(r)

        def outer():
            (yield from worker()) if mode == NATIVE else (yield worker())

        return outer()

    results, log = both(make, [("send", None), ("close",)])
    assert results == [("yield", "working"), ("closed", None)]
    assert log == ["cleanup runs", "cleaned"]


def test_return_value_travels_in_stop_iteration():
    def make(mode: str, log: list[Any]) -> Any:
        def inner():
            x = yield "give me x"
            return x * 2

        def outer():
            y = (yield from inner()) if mode == NATIVE else (yield inner())
            return {"y": y}

        return outer()

    results, _ = both(make, [("send", None), ("send", 21)])
    assert results[-1] == ("stop", {"y": 42})


def test_close_unstarted_then_send():
    def make(mode: str, log: list[Any]) -> Any:
        def gen():
            log.append("started!")  # must never run
            yield 1

        return gen()

    results, log = both(make, [("close",), ("send", None), ("close",)])
    assert results == [("closed", None), ("stop", None), ("closed", None)]
    assert log == []


def test_throw_into_unstarted_raises_and_finishes():
    def make(mode: str, log: list[Any]) -> Any:
        def gen():
            try:
                log.append("started!")
                yield 1
            except ValueError:
                log.append("caught")  # cannot happen: the body never started
                yield 2

        return gen()

    results, log = both(make, [("throw", ValueError("early")), ("send", None)])
    assert results == [("raise", ValueError, ("early",)), ("stop", None)]
    assert log == []


def test_non_none_to_unstarted_is_refused_and_leaves_it_unstarted():
    def make(mode: str, log: list[Any]) -> Any:
        def gen():
            yield "first"

        return gen()

    results, _ = both(make, [("send", 1), ("send", None)])
    assert results[0] == ("raise", TypeError,
                          ("can't send non-None value to a just-started generator",))
    assert results[1] == ("yield", "first")


def test_after_finishing_send_stops_throw_reraises_close_is_a_no_op():
    def make(mode: str, log: list[Any]) -> Any:
        def inner():
            return "inner done"
            yield

        def outer():
            r = (yield from inner()) if mode == NATIVE else (yield inner())
            return r

        return outer()

    results, _ = both(make, [("send", None), ("send", None), ("close",), ("send", 5),
                             ("throw", KeyError("late"))])
    assert results == [("stop", "inner done"), ("stop", None), ("closed", None),
                       ("stop", None), ("raise", KeyError, ("late",))]


def test_reentrant_send_raises_value_error_like_a_generator():
    def check(coro_holder: list[Any]) -> Any:
        def gen():
            try:
                coro_holder[0].send(None)
            except ValueError as e:
                return e.args
            yield

        return gen()

    holder: list[Any] = []
    native = check(holder)
    holder.append(native)
    with pytest.raises(StopIteration) as native_stop:
        next(native)

    holder.clear()

    def outer():
        return (yield check(holder))

    t = trampoline(outer())
    holder.append(t)
    with pytest.raises(StopIteration) as tramp_stop:
        next(t)
    assert tramp_stop.value.value == native_stop.value.value == ("generator already executing",)


def test_throw_of_stop_iteration_becomes_runtime_error_in_a_generator():
    def make(mode: str, log: list[Any]) -> Any:
        def inner():
            yield "inner"

        def outer():
            try:
                (yield from inner()) if mode == NATIVE else (yield inner())
            except RuntimeError as e:
                log.append(e.args)
                return "outer survived"

        return outer()

    results, log = both(make, [("send", None), ("throw", StopIteration("x"))])
    assert results == [("yield", "inner"), ("stop", "outer survived")]
    assert log == [("generator raised StopIteration",)]


def test_dropping_a_trampoline_closes_the_chain_innermost_first():
    def make(mode: str, log: list[Any]) -> Any:
        def level(n: int):
            try:
                if n == 0:
                    yield "bottom"
                else:
                    (yield from level(n - 1)) if mode == NATIVE else (yield level(n - 1))
            finally:
                log.append(n)

        return level(3)

    for mode in MODES:
        log: list[Any] = []
        coro = start(make(mode, log), mode)
        assert next(coro) == "bottom"
        del coro
        gc.collect()
        assert log == [0, 1, 2, 3]


def test_a_returning_class_coroutine_does_not_keep_the_trampoline_alive():
    class Returns:
        def send(self, value: Any) -> Any:
            stop = StopIteration("result")
            raise stop  # the frame holds its exception: a reference cycle

    def outer():
        return (yield Returns())

    gc.disable()
    try:
        t = trampoline(outer())
        with pytest.raises(StopIteration) as stop:
            next(t)
        assert stop.value.value == "result"
        ref = weakref.ref(t)
        del t
        assert ref() is None  # freed by reference counting, as a generator would be
    finally:
        gc.enable()


# -- tracebacks -------------------------------------------------------------------------
def deep_failure(mode: str) -> Any:
    def c3():
        yield "c3 waits"
        raise LookupError("three calls deep")

    def c2():
        return (yield from c3()) if mode == NATIVE else (yield c3())

    def c1():
        return (yield from c2()) if mode == NATIVE else (yield c2())

    def c0():
        return (yield from c1()) if mode == NATIVE else (yield c1())

    return start(c0(), mode)


def tb_frames(exc: BaseException) -> list[tuple[str, str, int | None]]:
    return [(f.filename, f.name, f.lineno) for f in traceback.extract_tb(exc.__traceback__)]


@pytest.mark.parametrize("resume", ["send", "next"])
def test_traceback_reads_caller_to_callee_with_no_trampoline_frames(resume: str):
    frames = {}
    for mode in MODES:
        coro = deep_failure(mode)
        next(coro)
        with pytest.raises(LookupError) as info:
            coro.send(None) if resume == "send" else next(coro)
        frames[mode] = tb_frames(info.value)
    names = [name for _, name, _ in frames[TRAMPOLINE]]
    assert names == [
        "test_traceback_reads_caller_to_callee_with_no_trampoline_frames",
        "c0", "c1", "c2", "c3",
    ]
    runtime_files = {_trampoline.__file__, _pep380.__file__}
    assert not any(path in runtime_files for path, _, _ in frames[TRAMPOLINE])
    assert [f[1:] for f in frames[TRAMPOLINE][1:]] == [f[1:] for f in frames[NATIVE][1:]]


def test_traceback_of_thrown_exception_and_of_caught_rethrow():
    def make(mode: str) -> Any:
        def inner():
            yield "inner"

        def outer():
            try:
                (yield from inner()) if mode == NATIVE else (yield inner())
            except KeyError as e:
                raise ValueError("wrapped") from e

        return start(outer(), mode)

    seen = {}
    for mode in MODES:
        coro = make(mode)
        next(coro)
        with pytest.raises(ValueError) as info:
            coro.throw(KeyError("k"))
        cause = info.value.__cause__
        assert isinstance(cause, KeyError)
        seen[mode] = ([f[1] for f in tb_frames(info.value)][1:],
                      [f[1] for f in tb_frames(cause)])
    assert seen[TRAMPOLINE] == seen[NATIVE] == (["outer"], ["outer", "inner"])


def test_runtime_error_and_stop_iteration_carry_no_trampoline_frames():
    def stubborn():
        try:
            yield 1
        except GeneratorExit:
            yield 2

    t = trampoline(stubborn())
    next(t)
    with pytest.raises(RuntimeError) as info:
        t.close()
    assert [f[1] for f in tb_frames(info.value)] == [
        "test_runtime_error_and_stop_iteration_carry_no_trampoline_frames"
    ]
    with pytest.raises(StopIteration) as stop:
        t.send(None)
    assert len(tb_frames(stop.value)) == 1


def test_exception_context_set_inside_the_program_is_kept():
    def make(mode: str) -> Any:
        def inner():
            yield "inner"
            try:
                raise KeyError("first")
            except KeyError:
                raise ValueError("second") from None

        def outer():
            (yield from inner()) if mode == NATIVE else (yield inner())

        return start(outer(), mode)

    for mode in MODES:
        coro = make(mode)
        next(coro)
        try:
            raise OSError("the driver is handling this")
        except OSError:
            with pytest.raises(ValueError) as info:
                coro.send(None)
        assert isinstance(info.value.__context__, KeyError)
        assert info.value.__suppress_context__


# -- depth ---------------------------------------------------------------------------
def deeper(n: int):
    """Recurse n trampolined calls deep, wait there, then sum 1..n on the way up."""
    if n == 0:
        got = yield "at the bottom"
        return got
    return (yield deeper(n - 1)) + n


def test_one_million_calls_deep():
    n = 1_000_000
    started = time.perf_counter()
    t = trampoline(deeper(n))
    assert next(t) == "at the bottom"
    assert t.depth == n + 1
    assert "depth=1000001" in repr(t)
    with pytest.raises(StopIteration) as stop:
        t.send(0)
    elapsed = time.perf_counter() - started
    assert stop.value.value == n * (n + 1) // 2
    assert t.depth == 1
    # Typically a few seconds; the bound only catches accidental O(n**2).
    assert elapsed < 30, elapsed


def test_deep_exception_unwinds_to_the_outermost_without_recursion():
    def fail_at_bottom(n: int):
        if n == 0:
            yield "bottom"
            raise ValueError("from the bottom")
        return (yield fail_at_bottom(n - 1))

    def top():
        try:
            yield fail_at_bottom(100_000)
        except ValueError as e:
            return f"caught {e}"

    t = trampoline(top())
    next(t)
    with pytest.raises(StopIteration) as stop:
        t.send(None)
    assert stop.value.value == "caught from the bottom"


def test_deep_close_and_drop_without_recursion():
    closed: list[int] = []

    def level(n: int):
        try:
            if n == 0:
                yield "bottom"
            else:
                yield level(n - 1)
        finally:
            if n % 10_000 == 0:
                closed.append(n)

    t = trampoline(level(100_000))
    next(t)
    t.close()
    assert closed == list(range(0, 100_001, 10_000))
    closed.clear()

    t = trampoline(level(100_000))
    next(t)
    del t  # finalization closes the chain too, innermost first
    gc.collect()
    assert closed == list(range(0, 100_001, 10_000))


def suspended_memory(depth: int) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        t = trampoline(deeper(depth))
        next(t)
        used = tracemalloc.get_traced_memory()[0] - before
        t.close()
        del t
    finally:
        tracemalloc.stop()
    return used


def test_memory_is_linear_in_depth():
    small, large = suspended_memory(5_000), suspended_memory(50_000)
    per_call = large / 50_000
    assert 7 < large / small < 13, (small, large)
    assert per_call < 2_000, per_call  # a generator frame plus a list slot


# -- the rest of the API -----------------------------------------------------------------
def test_is_subcoroutine():
    async def native_coro() -> None:
        pass

    def gen():
        yield

    class Sender:
        def send(self, value: Any) -> None:
            pass

    class NotCallableSend:
        send = 42

    c = native_coro()
    try:
        assert is_subcoroutine(gen())
        assert is_subcoroutine(c)
        assert is_subcoroutine(Sender())
        assert is_subcoroutine(trampoline(gen()))
        assert not is_subcoroutine(Sender)  # a class is not a call
        assert not is_subcoroutine(gen)  # nor is a generator function
        assert not is_subcoroutine(NotCallableSend())
        for value in (None, 1, "s", b"b", (), [], {}, object()):
            assert not is_subcoroutine(value)
    finally:
        c.close()


def test_native_coroutine_objects_are_called_too():
    async def native(x: int) -> int:
        return x + 1

    def gen():
        return (yield native(1)) * 10

    t = trampoline(gen())
    with pytest.raises(StopIteration) as stop:
        next(t)
    assert stop.value.value == 20


@pytest.mark.parametrize(
    "script",
    [
        [("send", None), ("throw", KeyError("k")), ("send", 5)],
        [("send", None), ("close",)],
        [("send", None), ("throw", 5)],  # not an exception: TypeError, raised in the frames
        [("send", None), ("send", 7)],
    ],
)
def test_async_def_callees_match_await(script: list[Any]):
    def make(mode: str, log: list[Any]) -> Any:
        @types.coroutine
        def park(tag: str):
            try:
                return (yield tag)
            finally:
                log.append(("park exits", tag))

        async def inner() -> Any:
            try:
                return await park("parked")
            finally:
                log.append("inner finally")

        @types.coroutine
        def outer():
            try:
                r = (yield from inner()) if mode == NATIVE else (yield inner())
            except KeyError as e:
                log.append(("outer caught", e.args))
                r = yield "after"
            return r

        return outer()

    results, log = both(make, script)
    assert results[0] == ("yield", "parked")
    assert log[:2] == [("park exits", "parked"), "inner finally"]


def test_custom_subcall_predicate():
    def sub():
        yield "sub"

    def gen():
        got = yield sub()
        return got

    t = Trampoline(gen(), subcall=lambda value: False)
    value = next(t)
    assert isinstance(value, GeneratorType)  # not a call: handed to the driver
    with pytest.raises(StopIteration) as stop:
        t.send("driver answered")
    assert stop.value.value == "driver answered"
    value.close()


def test_push_starts_a_call_on_behalf_of_a_driver():
    # The kernel's pattern: the task yielded a call before it had a
    # trampoline; wrap it (already started) and push the call.
    def sub():
        x = yield "sub runs"
        return x + 1

    def task():
        return (yield sub())

    coro = task()
    call = coro.send(None)
    t = Trampoline(coro, started=True)
    t.push(call)
    assert t.depth == 2
    assert t.send(None) == "sub runs"
    with pytest.raises(StopIteration) as stop:
        t.send(41)
    assert stop.value.value == 42


def test_push_while_running_is_refused():
    holder: list[Trampoline] = []

    def gen():
        assert "running at" in repr(holder[0])
        with pytest.raises(ValueError):
            holder[0].push(iter(()))
        yield "fine"

    t = trampoline(gen())
    holder.append(t)
    assert next(t) == "fine"
    assert "running at" not in repr(t)


def test_iteration_and_stack_is_a_copy():
    def inner():
        yield 2
        yield 3

    def outer():
        yield 1
        yield inner()
        yield 4

    t = trampoline(outer())
    assert iter(t) is t
    assert list(t) == [1, 2, 3, 4]
    snapshot = t.stack
    snapshot.clear()
    assert t.depth == 1


def test_not_a_coroutine_is_a_type_error():
    def gen():
        yield

    with pytest.raises(TypeError, match="forget to call"):
        trampoline(gen)
    with pytest.raises(TypeError, match="int"):
        trampoline(42)


def test_no_native_recursion_even_with_a_tiny_recursion_limit():
    limit = sys.getrecursionlimit()
    t = trampoline(deeper(5_000))
    sys.setrecursionlimit(100)
    try:
        assert next(t) == "at the bottom"
        with pytest.raises(StopIteration) as stop:
            t.send(0)
    finally:
        sys.setrecursionlimit(limit)
    assert stop.value.value == 5_000 * 5_001 // 2


def test_a_value_whose_attribute_lookup_fails_is_an_ordinary_value():
    # getattr(value, "send") raising something else than AttributeError used
    # to escape from the trampoline; 'yield from' hands such a value out.
    class Touchy:
        def __getattr__(self, name: str) -> Any:
            raise ValueError(f"no {name}")

    touchy = Touchy()
    assert not is_subcoroutine(touchy)

    def gen():
        got = yield touchy
        return got

    for mode in MODES:
        program = gen() if mode == TRAMPOLINE else (lambda: (yield from gen()))()
        assert drive(start(program, mode), [("send", None), ("send", 7)]) == [
            ("yield", touchy), ("stop", 7)]


def three_argument_throws(mode: str) -> list[Any]:
    """What throw(type, value, tb) gives, natively and through a trampoline."""

    def inner():
        while True:
            try:
                yield "inner"
            except KeyError as e:
                yield ("inner caught", e.args, e.__traceback__.tb_next is not None)

    def outer():
        return (yield from inner()) if mode == NATIVE else (yield inner())

    try:
        raise KeyError("for its traceback")
    except KeyError as e:
        tb = e.__traceback__
    coro = start(outer(), mode)
    out = drive(coro, [("send", None)])
    for args in [(KeyError, "v"), (KeyError, ("a", "b")), (KeyError, KeyError("same")),
                 (KeyError, None, tb), (KeyError("inst"), None, None), (KeyError("i"), None, tb),
                 (KeyError("x"), "v"),
                 (KeyError, "v", "not a traceback"), (42, "v")]:
        try:
            out.append(("yield", coro.throw(*args)))
            out.append(("yield", coro.send(None)))
        except Exception as exc:
            out.append(("raise", type(exc), str(exc)))
    coro.close()
    return out


def test_three_argument_throw_is_accepted_like_a_generators():
    # CPython 3.11 still throws with (type, value, traceback): contextlib does,
    # and a generator that delegates to a trampoline with 'yield from' passes
    # the three on. Trampoline.throw() took one argument only (TypeError).
    native, trampolined = three_argument_throws(NATIVE), three_argument_throws(TRAMPOLINE)
    assert trampolined == native
    assert ("yield", ("inner caught", ("a", "b"), False)) in native
    assert ("yield", ("inner caught", (), True)) in native  # the traceback was kept
    assert [o[2] for o in native if o[0] == "raise"] == [
        "instance exception may not have a separate value",
        "throw() third argument must be a traceback object",
        "exceptions must be classes or instances deriving from BaseException, not int",
    ]

    import contextlib

    def body():
        try:
            yield "in the with block"
        except KeyError:
            yield "handled"  # a context manager that swallows: must then stop

    @contextlib.contextmanager
    def manager(mode: str):
        if mode == NATIVE:
            yield from body()
        else:
            yield from trampoline(body())

    for mode in MODES:
        with pytest.raises(RuntimeError, match="didn't stop after throw"):
            with manager(mode) as value:
                assert value == "in the with block"
                raise KeyError("k")


# -- rarer paths: no throw() at the top, coroutines, re-entry -------------------------------
def test_throw_into_an_outermost_without_throw_raises_it_to_the_driver():
    # A send-only state machine has nowhere to receive a thrown exception: as
    # with 'yield from' (PEP 380), it is raised where the call was made -- here
    # in the driver. An exception class is instantiated on the way.
    def native_program() -> Any:
        return (yield from IterTurnstile(3))

    for thrown in (KeyError("k"), KeyError):
        native, tramp = native_program(), trampoline(IterTurnstile(3))
        assert next(native) == next(tramp) == "insert 3"
        with pytest.raises(KeyError) as from_native:
            native.throw(thrown)
        with pytest.raises(KeyError) as from_tramp:
            tramp.throw(thrown)
        assert from_tramp.value.args == from_native.value.args
        if isinstance(thrown, BaseException):
            assert from_tramp.value is thrown


def test_a_callee_error_passes_through_an_outermost_without_throw_with_its_context():
    # The state machine's callee fails while handling a KeyError; the driver
    # resumed it from an 'except OSError' block. The error reaches the driver
    # with the context it was raised with (KeyError), not re-chained to OSError.
    def failing():
        yield "callee waits"
        try:
            raise KeyError("first")
        except KeyError:
            raise ValueError("callee failed") from None  # __context__ is still KeyError

    class Machine:
        def __init__(self) -> None:
            self.sent: list[Any] = []

        def send(self, value: Any) -> Any:
            self.sent.append(value)
            return failing() if len(self.sent) == 1 else "machine waits"

    t = trampoline(Machine())
    assert next(t) == "callee waits" and t.depth == 2
    try:
        raise OSError("the driver is handling this")
    except OSError:
        with pytest.raises(ValueError, match="callee failed") as info:
            t.send(None)
    assert type(info.value.__context__) is KeyError
    assert "failing" in [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert t.depth == 1


def test_close_reports_a_callee_cleanup_error_through_an_outermost_without_throw():
    log: list[str] = []

    def callee():
        try:
            yield "callee waits"
        finally:
            log.append("callee cleanup")
            raise OSError("cleanup failed")

    class Machine:
        def send(self, value: Any) -> Any:
            return callee()

        def close(self) -> None:
            log.append("machine closed")

    t = trampoline(Machine())
    assert next(t) == "callee waits"
    with pytest.raises(OSError, match="cleanup failed"):
        t.close()
    assert log == ["callee cleanup", "machine closed"] and t.depth == 1


def test_close_after_an_async_def_outermost_returned_is_a_no_op():
    async def done() -> str:
        return "result"

    native, t = done(), trampoline(done())
    for coro in (native, t):
        with pytest.raises(StopIteration):
            coro.send(None)
        assert coro.close() is None
        assert coro.close() is None


def test_an_async_def_that_ignores_generator_exit_is_reported_as_a_coroutine():
    @types.coroutine
    def park():
        yield "parked"

    async def stubborn() -> None:
        try:
            await park()
        except GeneratorExit:
            pass
        await park()

    for coro in (stubborn(), trampoline(stubborn())):
        assert coro.send(None) == "parked"
        with pytest.raises(RuntimeError, match="^coroutine ignored GeneratorExit$"):
            coro.close()
        with pytest.raises(StopIteration):
            coro.send(None)


def test_reentrant_throw_and_close_raise_value_error_like_a_generator():
    def program(mode: str, how: str, holder: list[Any]) -> Any:
        def inner():
            try:
                if how == "throw":
                    holder[0].throw(KeyError("re-entered"))
                else:
                    holder[0].close()
            except ValueError as e:
                return e.args
            yield

        def outer():
            return (yield from inner()) if mode == NATIVE else (yield inner())

        return start(outer(), mode)

    for how in ("throw", "close"):
        results = []
        for mode in MODES:
            holder: list[Any] = []
            holder.append(program(mode, how, holder))
            results.append(drive(holder[0], [("send", None)]))
        assert results[0] == results[1] == [("stop", ("generator already executing",))]


def test_thrown_generator_exit_whose_callee_cleanup_fails_raises_that_error_in_the_caller():
    def make(mode: str, log: list[Any]) -> Any:
        def inner():
            try:
                yield "inner"
            finally:
                raise OSError("inner cleanup failed")

        def outer():
            try:
                (yield from inner()) if mode == NATIVE else (yield inner())
            except OSError as e:
                log.append(("outer got", e.args))
                return "outer recovered"

        return outer()

    results, log = both(make, [("send", None), ("throw", GeneratorExit())])
    assert results == [("yield", "inner"), ("stop", "outer recovered")]
    assert log == [("outer got", ("inner cleanup failed",))]


# -- found by the PEP 380 audit: the legacy throw(type, value, tb), PyIter_Send --------------
def test_a_bad_three_argument_throw_is_raised_by_the_innermost_into_its_caller():
    # _gen_throw hands (type, value, tb) down the chain; the innermost
    # generator refuses a bad combination without running, and its caller
    # gets the TypeError at its 'yield from', abandoning the callee. The
    # trampoline checked the arguments itself and raised to the driver.
    def make(mode: str, log: list[Any]) -> Any:
        def inner():
            try:
                yield "inner"
            finally:
                log.append("inner finally")

        def outer():
            try:
                (yield from inner()) if mode == NATIVE else (yield inner())
            except TypeError as e:
                log.append(("outer caught", str(e)))
                yield "outer goes on"
            return "outer done"

        return outer()

    for bad in [(KeyError, None, "not a traceback"), (KeyError("i"), "v")]:
        results, log = both(make, [("send", None), ("throw", *bad), ("send", None)])
        assert results[1:] == [("yield", "outer goes on"), ("stop", "outer done")]
        assert log[0] == "inner finally" and log[1][0] == "outer caught"


def test_a_multi_argument_throw_reaches_a_hand_written_callee_as_given():
    # 'yield from' calls a callee's throw() with the driver's arguments, as
    # many as were given; the trampoline passed one normalized instance.
    class Callee:
        def __init__(self, log: list[Any]) -> None:
            self.log = log

        def __iter__(self) -> Any:
            return self

        def __next__(self) -> Any:
            return self.send(None)

        def send(self, value: Any) -> Any:
            return "callee"

        def throw(self, *args: Any) -> Any:
            self.log.append([a if a is None or isinstance(a, str) else type(a) for a in args])
            return "callee threw"

    def make(mode: str, log: list[Any]) -> Any:
        def outer():
            return (yield from Callee(log)) if mode == NATIVE else (yield Callee(log))

        return outer()

    script = [("send", None), ("throw", KeyError), ("throw", KeyError, "v"),
              ("throw", KeyError, None), ("throw", KeyError, "v", None)]
    results, log = both(make, script)
    assert results[1:] == [("yield", "callee threw")] * 4
    assert log == [[type], [type, "v"], [type, None], [type, "v", None]]


def test_a_hand_written_callee_is_resumed_through_its_types_next():
    # PyIter_Send calls the type's tp_iternext for None, at each step: not an
    # instance attribute named __next__, and not a method the class has since
    # replaced. The trampoline kept the bound coro.__next__ of the first step.
    def make(mode: str, log: list[Any]) -> Any:
        class Callee:
            def __init__(self) -> None:
                self.__next__ = lambda: "instance attribute"  # never called

            def __iter__(self) -> Any:
                return self

            def __next__(self) -> Any:
                Callee.__next__ = lambda self: "replaced"  # type: ignore[method-assign]
                return "original"

            def send(self, value: Any) -> Any:
                return ("send", value)

        def outer():
            return (yield from Callee()) if mode == NATIVE else (yield Callee())

        return outer()

    results, _ = both(make, [("send", None), ("send", None), ("send", 1)])
    assert results == [("yield", "original"), ("yield", "replaced"), ("yield", ("send", 1))]


def test_an_exception_a_generator_refuses_leaves_a_callee_without_throw_in_place():
    # throw(5) into a caller whose callee has no throw(): _gen_throw goes to
    # the caller's throw_here, which refuses 5 before it runs anything; the
    # callee is still there for the next send. The trampoline dropped it.
    class Turnstile:  # send only: no throw(), no close()
        def __iter__(self) -> Any:
            return self

        def __next__(self) -> Any:
            return "turnstile"

        def send(self, value: Any) -> Any:
            return "turnstile"

    def make(mode: str, log: list[Any]) -> Any:
        def outer():
            return (yield from Turnstile()) if mode == NATIVE else (yield Turnstile())

        return outer()

    results, _ = both(make, [("send", None), ("throw", 5), ("send", None)])
    assert results == [
        ("yield", "turnstile"),
        ("raise", TypeError,
         ("exceptions must be classes or instances deriving from BaseException, not int",)),
        ("yield", "turnstile"),
    ]
