"""The coroutine model under the kernel: trampolined calls in real tasks.

``tests/test_trampoline*.py`` check the :class:`Trampoline` against ``yield
from`` with a plain driver. These run the same kind of programs as yieldio
tasks -- cancelled, timed out, interrupted, fed bad yields -- at depths that
native ``yield from`` cannot reach, and compare with the ``yield from`` twin
where one exists.
"""

from __future__ import annotations

import contextvars
import gc
import traceback
import weakref
from typing import Any

import pytest

import yieldio

NATIVE, TRAMPOLINE = "yield from", "trampoline"


def chain(depth: int, mode: str, bottom: Any, log: list[Any]):
    """A chain of ``depth`` calls, each logging its exit; ``bottom()`` runs at the end."""

    @yieldio.coroutine
    def level(n: int):
        try:
            if n == 0:
                return (yield from bottom())
            if mode == NATIVE:
                return (yield from level(n - 1)) + 1
            return (yield level(n - 1)) + 1
        finally:
            log.append(n)

    return level(depth)


def test_cancelling_mid_chain_unwinds_innermost_first_like_yield_from():
    def run(mode: str, depth: int) -> tuple[Any, ...]:
        log: list[int] = []

        async def main():
            with yieldio.move_on_after(0.01) as scope:
                await chain(depth, mode, lambda: yieldio.sleep(10), log)
            return scope.cancelled_caught

        return yieldio.run(main), log

    assert run(TRAMPOLINE, 200) == run(NATIVE, 200) == (True, list(range(201)))
    caught, log = run(TRAMPOLINE, 100_000)  # far beyond what 'yield from' can do
    assert caught and log == list(range(100_001))


def test_a_timeout_fires_deep_inside_trampolined_calls():
    log: list[int] = []

    @yieldio.coroutine
    def bottom():
        yield from yieldio.sleep(0)  # one step before the deadline passes
        yield from yieldio.sleep(10)

    async def main():
        with yieldio.fail_after(0.02):
            await chain(50_000, TRAMPOLINE, bottom, log)

    with pytest.raises(TimeoutError):
        yieldio.run(main)
    assert log == list(range(50_001))


def test_a_cancelled_call_that_swallows_it_is_cancelled_again_at_the_next_call():
    # Level-triggered: the caller of a callee that ate Cancelled gets it again
    # at its next checkpoint, even when that checkpoint is a trampolined call.
    seen: list[str] = []

    @yieldio.coroutine
    def swallow():
        try:
            yield from yieldio.sleep(10)
        except yieldio.Cancelled:
            seen.append("swallowed")
        return "ate it"

    @yieldio.coroutine
    def caller():
        seen.append((yield swallow()))
        yield yieldio.sleep(0)  # a trampolined call of a checkpoint
        seen.append("not reached")

    async def main():
        with yieldio.move_on_after(0.01) as scope:
            await caller()
        return scope.cancelled_caught

    assert yieldio.run(main) is True
    assert seen == ["swallowed", "ate it"]


def test_a_bad_yield_deep_in_a_chain_is_a_type_error_at_that_line():
    @yieldio.coroutine
    def bottom():
        yield 0.5  # meant: yield from yieldio.sleep(0.5)

    @yieldio.coroutine
    def catches_it():
        try:
            yield chain(1_000, TRAMPOLINE, bottom, [])
        except TypeError as exc:
            frames = traceback.extract_tb(exc.__traceback__)
            return str(exc), frames[0].name, frames[-1].line, len(frames)

    message, outermost, innermost, n = yieldio.run(catches_it)
    assert "yielded 0.5 of type float" in message
    assert outermost == "catches_it" and innermost == "yield 0.5  # meant: yield from yieldio.sleep(0.5)"
    assert n == 1 + 1_001 + 1  # catches_it, every level, bottom: as with 'yield from'


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_cross_a_deep_chain_and_end_the_run(kind: type[BaseException]):
    log: list[int] = []

    @yieldio.coroutine
    def bottom():
        yield from yieldio.sleep(0)
        raise kind("from the bottom")

    async def main():
        try:
            await chain(20_000, TRAMPOLINE, bottom, log)
        except Exception:  # neither is an Exception: must not be caught here
            pytest.fail("caught")

    with pytest.raises(kind, match="from the bottom"):
        yieldio.run(main)
    assert log == list(range(20_001))


class Countdown:
    """A hand-written coroutine (no close()): calls sleep(0) ``n`` times, returns via ``Done``."""

    class Done(StopIteration):
        pass

    def __init__(self, n: int) -> None:
        self.n = n
        self.log: list[Any] = []

    def send(self, value: Any) -> Any:
        if self.n == 0:
            raise Countdown.Done(("done", value))
        self.n -= 1
        return yieldio.sleep(0)  # a call: the kernel runs it and sends us its result

    def __next__(self) -> Any:
        return self.send(None)

    def throw(self, exc: BaseException) -> Any:
        self.log.append(type(exc).__name__)
        if isinstance(exc, ValueError):
            return self.send("recovered")
        raise exc


def test_hand_written_coroutines_make_calls_and_return_through_stop_iteration_subclasses():
    @yieldio.coroutine
    def raises_value_error():
        yield from yieldio.sleep(0)
        raise ValueError

    class Fails(Countdown):
        def send(self, value: Any) -> Any:
            if self.n == 1:
                self.n = 0
                return raises_value_error()  # its error comes back through throw()
            return super().send(value)

    @yieldio.coroutine
    def caller():
        first = yield Countdown(3)
        fails = Fails(1)
        second = yield fails
        return first, second, fails.log

    assert yieldio.run(caller) == (("done", None), ("done", "recovered"), ["ValueError"])


def test_a_hand_written_call_without_throw_is_dropped_and_the_caller_gets_the_cancel():
    class NoThrow:
        def send(self, value: Any) -> Any:
            return yieldio.sleep(10)

        def __next__(self) -> Any:
            return self.send(None)

    got: list[str] = []

    @yieldio.coroutine
    def caller():
        try:
            yield NoThrow()
        except yieldio.Cancelled:
            got.append("caller got Cancelled")
            raise

    async def main():
        with yieldio.move_on_after(0.01):
            await caller()
        return got

    assert yieldio.run(main) == ["caller got Cancelled"]


@pytest.mark.parametrize("mode", [NATIVE, TRAMPOLINE])
def test_calling_a_started_finished_or_awaited_coroutine(mode: str):
    # The kernel's trampolined call does what 'yield from' does with each.
    async def native() -> str:
        return "native"

    def started():
        yield from yieldio.sleep(0)
        yield from yieldio.sleep(0)
        return "resumed"

    @yieldio.coroutine
    def call(sub: Any):
        return (yield from sub) if mode == NATIVE else (yield sub)

    @yieldio.coroutine
    def main():
        out = []
        gen = started()
        next(gen)  # started by hand: the call resumes it
        out.append((yield from call(gen)))
        out.append((yield from call(gen)))  # finished: returns None at once
        coro = native()
        out.append((yield from call(coro)))
        try:
            yield from call(coro)  # awaited already
        except RuntimeError as exc:
            out.append(str(exc))
        return out

    assert yieldio.run(main) == [
        "resumed", None, "native", "cannot reuse already awaited coroutine"]


@pytest.mark.parametrize("mode", [NATIVE, TRAMPOLINE])
def test_context_variables_in_calls_behave_as_with_yield_from(mode: str):
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    @yieldio.coroutine
    def setter(value: str):
        var.set(value)
        yield from yieldio.sleep(0)
        return var.get()

    @yieldio.coroutine
    def task_body():
        inner = (yield from setter("in call")) if mode == NATIVE else (yield setter("in call"))
        return inner, var.get()

    async def main():
        var.set("main")
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(task_body)
        return t.result(), var.get()

    # A call runs in its caller's context (it is a call); the task has its own.
    assert yieldio.run(main) == (("in call", "in call"), "main")


def test_a_deep_chain_releases_every_frame_as_it_returns():
    gc.collect()
    refs: list[weakref.ref[Any]] = []

    depth = 200_000

    @yieldio.coroutine
    def level(n: int):
        if n == 0:
            yield from yieldio.sleep(0)
            return 0
        sub = level(n - 1)
        if n % 10_000 == 0:
            refs.append(weakref.ref(sub))
        return (yield sub) + 1

    async def main():
        result = await level(depth)
        # The first call's generator (refs[0]) is the value the kernel saw
        # yielded; its loop keeps that in a local until the next step ends.
        at_return = sum(r() is not None for r in refs[1:])
        await yieldio.sleep(0)
        return result, at_return, sum(r() is not None for r in refs)

    gc.disable()  # reference counting alone must free them, as for 'yield from'
    try:
        assert yieldio.run(main) == (depth, 0, 0)
    finally:
        gc.enable()
    assert len(refs) == 20


# -- found by this audit, fixed in _kernel.py -------------------------------------------
def test_a_task_returning_through_a_stop_iteration_subclass_returns():
    # A hand-written coroutine may return with a StopIteration subclass;
    # 'yield from' and the trampoline take its value, the kernel fails the task.
    assert yieldio.run(Countdown, 1) == ("done", None)


@pytest.mark.parametrize("broken", ["getattr", "repr"])
def test_a_yielded_value_that_breaks_on_inspection_is_a_bad_yield(broken: str):
    class Broken:
        if broken == "getattr":
            def __getattr__(self, name: str) -> Any:
                raise ValueError(name)
        else:
            def __repr__(self) -> str:
                raise ValueError("repr")

    @yieldio.coroutine
    def bad():
        try:
            yield Broken()
        except TypeError:
            return "TypeError at the yield"

    assert yieldio.run(bad) == "TypeError at the yield"
