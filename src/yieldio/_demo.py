"""``python -m yieldio demo``: a guided tour of the coroutine model, live."""

from __future__ import annotations

import sys
import time
from typing import Any

import yieldio


def say(text: str) -> None:
    print(text, flush=True)


# -- 1. A coroutine is anything with send(): a hand-written one -------------
class Countdown:
    """A coroutine written as a class: each send() returns the next step."""

    def __init__(self, n: int) -> None:
        self.n = n

    def send(self, value: Any) -> Any:
        if self.n == 0:
            raise StopIteration("liftoff")
        say(f"   countdown {self.n}")
        self.n -= 1
        return yieldio.sleep(0.01)  # a call: the kernel runs it, then resumes us

    def throw(self, exc: BaseException) -> Any:
        raise exc


# -- 2. A deep trampolined call -----------------------------------------------
@yieldio.coroutine
def depth(n: int):  # type: ignore[no-untyped-def]
    """Recurse n levels with trampolined calls: no RecursionError."""
    if n == 0:
        yield from yieldio.sleep(0)
        return 0
    return (yield depth(n - 1)) + 1


async def worker(i: int, results: list[int]) -> None:
    await yieldio.sleep(0.001 * (i % 10))
    results.append(i)


async def stubborn() -> None:
    try:
        await yieldio.sleep(3600)
    except yieldio.Cancelled:
        say("   the hour-long sleeper was cancelled, and cleans up")
        raise


async def main() -> None:
    say("yieldio demo -- the coroutine model, running\n")

    say("1. A class with send() is a coroutine; yielding a call runs it:")
    async with yieldio.TaskGroup() as tg:
        t = tg.spawn(Countdown(3), name="countdown")
    say(f"   -> {t.result()!r}\n")

    say("2. Hundreds of concurrent tasks in one TaskGroup:")
    results: list[int] = []
    t0 = time.perf_counter()
    async with yieldio.TaskGroup() as tg:
        for i in range(500):
            tg.spawn(worker, i, results)
    say(f"   500 tasks finished in {(time.perf_counter() - t0) * 1000:.1f} ms "
        f"(sum of ids {sum(results)})\n")

    say("3. A timeout: move_on_after(0.05) around a 10 s sleep:")
    t0 = time.perf_counter()
    with yieldio.move_on_after(0.05) as scope:
        await yieldio.sleep(10)
    say(f"   gave up after {(time.perf_counter() - t0) * 1000:.0f} ms, "
        f"cancelled_caught={scope.cancelled_caught}\n")

    say("4. A cancellation: cancel one task, the group carries on:")
    async with yieldio.TaskGroup() as tg:
        sleeper = tg.spawn(stubborn, name="sleeper")
        await yieldio.sleep(0.01)
        sleeper.cancel()
    say(f"   sleeper state: {sleeper.state}\n")

    say("5. A trampolined call 100,000 levels deep (Python's limit is ~1,000):")
    t0 = time.perf_counter()
    d = await depth(100_000)
    say(f"   returned {d} in {(time.perf_counter() - t0):.2f} s, no RecursionError\n")

    say("6. Errors are never lost: two failing tasks -> one ExceptionGroup:")

    async def fail(msg: str) -> None:
        await yieldio.sleep(0)
        raise ValueError(msg)

    try:
        async with yieldio.TaskGroup() as tg:
            tg.spawn(fail, "first")
            tg.spawn(fail, "second")
    except ExceptionGroup as eg:
        say(f"   caught {eg!r}")
    extra = _extra_sections()
    for section in extra:
        await section()
    say("\ndone.")


def _extra_sections() -> list[Any]:
    """Sections contributed by the I/O and HTTP layers, when they are installed."""
    sections = []
    try:
        from ._demo_net import net_section
    except ImportError:
        pass
    else:
        sections.append(net_section)
    try:
        from ._demo_net_http import http_section
    except ImportError:
        pass
    else:
        sections.append(http_section)
    return sections


def run_demo(argv: list[str]) -> int:
    yieldio.run(main)
    return 0


if __name__ == "__main__":
    sys.exit(run_demo(sys.argv[1:]))
