"""Run the examples of docs/architecture.md (conventions: tests/_docs.py).

The page has one ```python block (a fragment, run with the stub below) and a
pseudo-code block without a language (not Python, not run). Its §10, "Coming
from trio or asyncio", gives its examples inline: each check below runs one
of them and names the sentence of §10 it runs, so that rewording the section
without updating its check fails here.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from _docs import (
    ROOT,
    Block,
    block_id,
    check_output,
    check_stubs,
    python_blocks,
    read,
    run_complete_program,
    run_python,
)

import yieldio
from yieldio.testing import VirtualClock

DOC = ROOT / "docs" / "architecture.md"
WHERE = "docs/architecture.md"
BLOCKS = read(DOC)
PYTHON = python_blocks(BLOCKS)

# -- the stub --------------------------------------------------------------------------

# Two parties pass the barrier (the one that arrives last trips it and runs
# first); then a third waits alone until abort() breaks the barrier.
_BARRIER_MAIN = """

async def main():
    async with yieldio.TaskGroup() as tg:
        tg.spawn(party, "a")
        tg.spawn(party, "b")
    async with yieldio.TaskGroup() as tg:
        tg.spawn(party, "c")
        await yieldio.sleep(0.01)
        barrier.abort()


yieldio.run(main)
"""


def stub_barrier(block: Block, tmp_path: Path) -> None:
    proc = run_python("import yieldio\n\n" + block.code + _BARRIER_MAIN, tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    check_output(f"{WHERE} line {block.line}",
                 "b passed, index 1\na passed, index 0\nc gave up: another party aborted\n",
                 proc.stdout)


STUBS = {"barrier": stub_barrier}


def test_the_page_has_examples() -> None:
    assert PYTHON
    check_stubs(BLOCKS, STUBS, WHERE)


@pytest.mark.parametrize("block", PYTHON, ids=block_id)
def test_example(block: Block, tmp_path: Path) -> None:
    if block.not_run is not None:
        pytest.skip(f"{WHERE} line {block.line}: not run: {block.not_run}")
    if block.stub is not None:
        STUBS[block.stub](block, tmp_path)
    else:
        run_complete_program(block, WHERE, tmp_path)


# -- §10, "Coming from trio or asyncio" ------------------------------------------------------

def _section_10() -> str:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(r"^## 10\. Coming from trio or asyncio\n(.*?)^## ", text, re.S | re.M)
    assert m, "architecture.md lost its §10"
    return " ".join(m.group(1).split())  # one line: sentences wrap anywhere


SECTION_10 = _section_10()


def says(sentence: str) -> None:
    """The check that calls this runs ``sentence``: §10 must still say it."""
    assert " ".join(sentence.split()) in SECTION_10, f"§10 no longer says: {sentence!r}"


def run(fn, *args):
    return yieldio.run(fn, *args, clock=VirtualClock(autojump=True))


def test_cancellation_is_level_triggered() -> None:
    says("every checkpoint inside a cancelled scope raises `Cancelled` again")

    async def main():
        raised = 0
        with yieldio.move_on_after(1):
            for _ in range(3):
                try:
                    await yieldio.sleep(10)
                except yieldio.Cancelled:  # swallowed: the next checkpoint raises again
                    raised += 1
        return raised

    assert run(main) == 3


def test_cancelled_is_not_asyncio_cancelled_error() -> None:
    says("`except asyncio.CancelledError` does not catch yieldio's")
    assert issubclass(yieldio.Cancelled, BaseException)
    assert not issubclass(yieldio.Cancelled, Exception)
    assert not issubclass(yieldio.Cancelled, asyncio.CancelledError)


def test_fail_after_raises_the_builtin_timeout_error() -> None:
    says("The scope's `Cancelled` is its `__cause__`")
    says("a `fail_after` scope cancelled by hand (`scope.cancel()`) is left silently "
         "with `cancelled_caught` set")

    async def timed_out():
        with yieldio.fail_after(1):
            await yieldio.sleep(10)

    with pytest.raises(TimeoutError) as info:
        run(timed_out)
    assert isinstance(info.value.__cause__, yieldio.Cancelled)

    async def cancelled_by_hand():
        with yieldio.fail_after(1) as scope:
            scope.cancel()
            await yieldio.sleep(10)
        return scope.cancelled_caught

    assert run(cancelled_by_hand) is True


def test_a_negative_timeout_counts_as_zero() -> None:
    says("`move_on_after(-1)` is cancelled at once and `fail_after(-1)` raises `TimeoutError`")

    async def main():
        with yieldio.move_on_after(-1) as scope:
            await yieldio.sleep(10)
        assert scope.cancelled_caught and yieldio.current_time() == 0
        with pytest.raises(TimeoutError):
            with yieldio.fail_after(-1):
                await yieldio.sleep(10)

    run(main)


def test_timeouts_count_from_when_they_are_entered() -> None:
    says("`scope = yieldio.move_on_after(5)`, then `await sleep(3)`, then `with scope:` "
         "ends 5 s in")

    async def main():
        scope = yieldio.move_on_after(5)
        await yieldio.sleep(3)
        entered = yieldio.current_time()
        with scope:
            await yieldio.sleep(10)
        return yieldio.current_time() - entered

    assert run(main) == pytest.approx(5)


def test_a_task_group_always_raises_an_exception_group() -> None:
    says("A task group always raises an `ExceptionGroup`**, even when one child failed")

    async def fail():
        raise KeyError("x")

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(fail)

    with pytest.raises(ExceptionGroup) as info:
        run(main)
    assert [type(e) for e in info.value.exceptions] == [KeyError]


def test_spawn_returns_a_task_and_join_raises_task_cancelled() -> None:
    says("`tg.spawn()` returns a `Task`** (trio's `start_soon` returns nothing), with "
         "`result()` and `join()`; `await task` is `await task.join()`, as in asyncio. "
         "`join()` on a task that was cancelled raises "
         "`TaskCancelled`, an `Exception`")
    assert issubclass(yieldio.TaskCancelled, Exception)

    async def main():
        async with yieldio.TaskGroup() as tg:
            done = tg.spawn(yieldio.sleep, 0)
            sleeper = tg.spawn(yieldio.sleep, 10)
            assert isinstance(done, yieldio.Task)
            await done.join()
            sleeper.cancel()
            with pytest.raises(yieldio.TaskCancelled):
                await sleeper.join()
        return done.result()

    assert run(main) is None


def test_a_hang_is_reported() -> None:
    says("When no task can ever be woken, `run` raises `Deadlock` with the task tree")

    async def main():
        await yieldio.Event().wait()

    with pytest.raises(yieldio.Deadlock, match="Event.wait"):
        yieldio.run(main)


def test_event_clear_right_after_set_keeps_the_wakeups() -> None:
    says("`set()` reschedules every task already waiting before it returns, so a "
         "`clear()` right after it cannot take their wake-up back")

    async def main():
        event, woken = yieldio.Event(), []

        async def waiter(n):
            await event.wait()
            woken.append(n)

        async with yieldio.TaskGroup() as tg:
            for n in range(3):
                tg.spawn(waiter, n)
            await yieldio.sleep(1)
            event.set()
            event.clear()
        return woken

    assert run(main) == [0, 1, 2]


def test_barrier_abort_is_a_plain_call_that_can_be_awaited() -> None:
    says("They return an already-finished awaitable, so asyncio's `await barrier.abort()` "
         "works unchanged")

    async def main():
        barrier = yieldio.Barrier(2)
        barrier.abort()
        await barrier.reset()
        await barrier.abort()
        with pytest.raises(yieldio.BrokenBarrierError):
            await barrier.wait()

    run(main)


def test_to_thread_refuses_an_async_function() -> None:
    says("An `async def` function is refused (`TypeError`, as trio)")

    async def work():
        pass

    async def main():
        with pytest.raises(TypeError):
            await yieldio.to_thread(work)

    yieldio.run(main)


def test_run_takes_the_function_or_a_coroutine() -> None:
    says("(`yieldio.run(main, 5)`). A coroutine object (`yieldio.run(main())`, the asyncio "
         "habit) works too")

    async def main(n=1):
        return n * 2

    assert yieldio.run(main, 5) == 10
    assert yieldio.run(main()) == 2


def test_a_failing_handler_does_not_stop_the_server(caplog) -> None:
    says("yieldio logs it with its traceback, counts it in `server.handler_errors` and "
         "keeps serving")

    async def handler(stream):
        async with stream:
            line = await stream.readline()
            if line == b"boom\n":
                raise ValueError("bad request")
            await stream.write(line)

    async def main():
        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            for line in (b"boom\n", b"fine\n"):
                async with await yieldio.open_tcp_stream("127.0.0.1", server.port) as s:
                    await s.write(line)
                    answer = await s.read()
            with yieldio.fail_after(5):
                while server.handler_errors < 1:
                    await yieldio.sleep(0.01)
            return answer, server.handler_errors

    assert yieldio.run(main) == (b"fine\n", 1)
    assert "bad request" in caplog.text
