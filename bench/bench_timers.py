"""timers: many concurrent sleeps and how late they wake.

What is measured
    100,000 tasks, each sleeping once for a duration drawn uniformly from
    0–100 ms (``random.Random(1234)``, same sequence for every runtime). Each
    task notes the monotonic time it started and when it woke.

Metrics
    ``wall_s``        from before the first spawn until all tasks are joined;
                      the ideal is just over 0.1 s.
    ``late_p50_ms``   median lateness: wake time minus (start + duration).
    ``late_p99_ms``   99th percentile lateness.

Why
    Timeouts and sleeps are everywhere in servers (keep-alive, retries,
    deadlines). This shows the timer structure's cost (heap, wheel, sorted
    list) and how a burst of work delays due timers: lateness includes the
    time the loop spends starting the other tasks, which is realistic.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from bench._common import percentile, require, require_yieldio

METRICS = [
    ("wall_s", "wall s", "lower"),
    ("late_p50_ms", "late p50 ms", "lower"),
    ("late_p99_ms", "late p99 ms", "lower"),
]
BASELINE = "asyncio"
SEED = 1234
MAX_SLEEP = 0.1


def cases(quick: bool) -> list[dict[str, Any]]:
    """100,000 tasks; 3,000 with --quick (to stay inside its time budget)."""
    return [{"tasks": 3_000 if quick else 100_000}]


def case_label(case: dict[str, Any]) -> str:
    return f"{case['tasks']:,} sleeps 0–100 ms"


def _durations(n: int) -> list[float]:
    rng = random.Random(SEED)
    return [rng.random() * MAX_SLEEP for _ in range(n)]


def _result(late: list[float], wall: float, n: int) -> dict[str, Any]:
    if len(late) != n:
        raise RuntimeError(f"only {len(late)} of {n} sleepers finished")
    return {
        "metrics": {
            "wall_s": wall,
            "late_p50_ms": percentile(late, 50) * 1e3,
            "late_p99_ms": percentile(late, 99) * 1e3,
        },
        "info": {"max_late_ms": round(max(late) * 1e3, 3)},
    }


async def _asyncio_main(n: int) -> dict[str, Any]:
    durations = _durations(n)
    late: list[float] = []
    clock = time.monotonic

    async def sleeper(d: float) -> None:
        due = clock() + d
        await asyncio.sleep(d)
        late.append(clock() - due)

    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for d in durations:
            tg.create_task(sleeper(d))
    return _result(late, time.perf_counter() - t0, n)


def run_asyncio(case: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_asyncio_main(case["tasks"]))


def run_uvloop(case: dict[str, Any]) -> dict[str, Any]:
    uvloop = require("uvloop")
    return uvloop.run(_asyncio_main(case["tasks"]))


def run_trio(case: dict[str, Any]) -> dict[str, Any]:
    trio = require("trio")
    n = case["tasks"]

    async def main() -> dict[str, Any]:
        durations = _durations(n)
        late: list[float] = []
        clock = time.monotonic

        async def sleeper(d: float) -> None:
            due = clock() + d
            await trio.sleep(d)
            late.append(clock() - due)

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for d in durations:
                nursery.start_soon(sleeper, d)
        return _result(late, time.perf_counter() - t0, n)

    return trio.run(main)


def run_curio(case: dict[str, Any]) -> dict[str, Any]:
    curio = require("curio")
    n = case["tasks"]

    async def main() -> dict[str, Any]:
        durations = _durations(n)
        late: list[float] = []
        clock = time.monotonic

        async def sleeper(d: float) -> None:
            due = clock() + d
            await curio.sleep(d)
            late.append(clock() - due)

        t0 = time.perf_counter()
        async with curio.TaskGroup() as g:
            for d in durations:
                await g.spawn(sleeper, d)
        return _result(late, time.perf_counter() - t0, n)

    return curio.run(main)


def run_yieldio(case: dict[str, Any]) -> dict[str, Any]:
    yio = require_yieldio("run", "TaskGroup", "sleep")
    n = case["tasks"]

    async def main() -> dict[str, Any]:
        durations = _durations(n)
        late: list[float] = []
        clock = time.monotonic

        async def sleeper(d: float) -> None:
            due = clock() + d
            await yio.sleep(d)
            late.append(clock() - due)

        t0 = time.perf_counter()
        async with yio.TaskGroup() as tg:
            for d in durations:
                tg.spawn(sleeper, d)
        return _result(late, time.perf_counter() - t0, n)

    return yio.run(main)


RUNTIMES = {
    "asyncio": run_asyncio,
    "uvloop": run_uvloop,
    "trio": run_trio,
    "curio": run_curio,
    "yieldio": run_yieldio,
}
