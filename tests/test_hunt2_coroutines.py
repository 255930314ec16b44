"""Regression tests from a bug hunt in the coroutine model: tasks and run()."""

from __future__ import annotations

import gc
import traceback
import warnings
from typing import Any

import pytest

import yieldio
from yieldio.testing import VirtualClock


# -- Task.result() / join() of a failed task -----------------------------------------
def test_result_and_join_of_a_failed_task_do_not_grow_its_traceback() -> None:
    """Each report raises the task's error with the same traceback, as asyncio does.

    A bare ``raise self._exc`` prepended the caller's frames at every call:
    a loop polling ``result()`` grew the traceback (and the exception held
    in the group's ExceptionGroup) without bound.
    """

    async def bad() -> None:
        raise ValueError("boom")

    def depth(exc: BaseException) -> int:
        return len(traceback.extract_tb(exc.__traceback__))

    async def main() -> tuple[list[int], list[int]]:
        with pytest.raises(ExceptionGroup):
            async with yieldio.TaskGroup() as tg:
                task = tg.spawn(bad)
        by_result = []
        for _ in range(3):
            with pytest.raises(ValueError) as info:
                task.result()
            by_result.append(depth(info.value))
        by_join = []
        for _ in range(3):
            with pytest.raises(ValueError) as info:
                await task.join()
            by_join.append(depth(info.value))
        # The traceback still leads to the line that raised.
        assert traceback.extract_tb(info.value.__traceback__)[-1].name == "bad"
        return by_result, by_join

    by_result, by_join = yieldio.run(main)
    assert len(set(by_result)) == 1, by_result
    assert len(set(by_join)) == 1, by_join


# -- run() given bad values -------------------------------------------------------------
class _NoAutojumpClock:
    def current_time(self) -> float:
        return 0.0

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return 0.0


BAD_RUN_ARGS: list[tuple[dict[str, Any], str]] = [
    ({"clock": VirtualClock}, r"not the class VirtualClock; did you mean VirtualClock\(\)"),
    ({"clock": 5}, r"takes a clock .* lacks current_time, deadline_to_sleep_time, autojump"),
    ({"clock": _NoAutojumpClock()}, r"lacks autojump"),
    ({"instruments": 5}, r"takes a list of instruments, not 5"),
    ({"seed": [1]}, r"takes an int \(or None\), not \[1\]"),
]


@pytest.mark.parametrize("kwargs, match", BAD_RUN_ARGS)
def test_run_with_a_bad_argument_fails_clearly_and_leaves_no_coroutine_behind(
        kwargs: dict[str, Any], match: str) -> None:
    """A bad clock, instruments or seed: TypeError before anything runs.

    Before, the coroutine was made first and never closed ("coroutine ...
    was never awaited"), and the error was an AttributeError from the
    kernel (or, for a clock class, a TypeError at the first sleep).
    """
    ran = []

    async def main() -> None:
        ran.append(1)
        await yieldio.sleep(1)

    # run(main, ...): the function is not even called.
    with pytest.raises(TypeError, match=match):
        yieldio.run(main, **kwargs)
    # run(main(), ...): the coroutine object given is closed.
    coro = main()
    with pytest.raises(TypeError, match=match):
        yieldio.run(coro, **kwargs)
    assert coro.cr_frame is None  # closed: no "never awaited" warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        del coro
        gc.collect()
    assert ran == []


def test_run_with_a_good_custom_clock_and_string_seed_still_works() -> None:
    """The checks refuse only what the kernel would fail on."""

    class Clock(_NoAutojumpClock):
        autojump = False

    async def main() -> int:
        await yieldio.sleep(0)
        return 7

    assert yieldio.run(main, clock=Clock(), instruments=(), seed="replay") == 7


# -- run() / spawn() of an async generator function ------------------------------------
def test_running_an_async_generator_function_says_what_it_is() -> None:
    """The old hint ("is it a plain function? use 'async def'") pointed in a circle."""

    async def numbers() -> Any:
        yield 1

    with pytest.raises(TypeError, match=r"numbers' returned .* \(it is an async generator "
                                        r"function .*'async for'"):
        yieldio.run(numbers)

    async def main() -> None:
        async with yieldio.TaskGroup() as tg:
            tg.spawn(numbers)

    with pytest.raises(ExceptionGroup) as info:
        yieldio.run(main)
    (err,) = info.value.exceptions
    assert isinstance(err, TypeError) and "async generator function" in str(err)


# -- run(debug=...) ----------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["no", "false", 0, None])
def test_debug_never_awaited_takes_a_bool_only(flag: Any) -> None:
    """bool("no") is True: a string meant to turn the reporter off turned it on."""

    async def main() -> None:
        pass

    with pytest.raises(TypeError, match=r"'never_awaited': \.\.\.\}\) takes True or False"):
        yieldio.run(main, debug={"never_awaited": flag})
