"""spawn: start N trivial tasks in a task group and join them.

What is measured
    100,000 tasks whose body is empty (``async def noop(): pass``) are spawned
    into the runtime's structured-concurrency group (``asyncio.TaskGroup``,
    a trio nursery, ``curio.TaskGroup``, ``yieldio.TaskGroup``; floor: a bare
    counter group, bench/_floor.py) and the group is joined.

Metrics
    ``tasks_per_s``    N / wall time from the first spawn to the end of join.
    ``peak_rss_mib``   peak RSS of the process (``ru_maxrss``): all N tasks
                       may be alive at once, so this shows per-task weight
                       plus the interpreter and runtime baseline.
    ``peak_delta_mib`` peak RSS minus the RSS just before spawning: the part
                       due to the tasks alone.

Why
    Task creation, first resumption, completion and group bookkeeping are on
    the path of every connection or request a server handles.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import _floor
from bench._common import full_gc, peak_rss_bytes, require, require_yieldio, rss_bytes

METRICS = [
    ("tasks_per_s", "tasks/s", "higher"),
    ("peak_rss_mib", "peak RSS MiB", "lower"),
    ("peak_delta_mib", "peak ΔRSS MiB", "lower"),
]
BASELINE = "asyncio"
MIB = 1024 * 1024


def cases(quick: bool) -> list[dict[str, Any]]:
    """100,000 tasks; 5,000 with --quick (to stay inside its time budget)."""
    return [{"tasks": 5_000 if quick else 100_000}]


def case_label(case: dict[str, Any]) -> str:
    return f"{case['tasks']:,} tasks"


class _Measure:
    """Context manager: RSS before, wall time, peak RSS after."""

    def __enter__(self) -> _Measure:
        full_gc()
        self.rss0 = rss_bytes()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.t0
        self.peak = peak_rss_bytes()

    def result(self, n: int) -> dict[str, Any]:
        return {
            "metrics": {
                "tasks_per_s": n / self.elapsed,
                "peak_rss_mib": self.peak / MIB,
                "peak_delta_mib": (self.peak - self.rss0) / MIB,
            },
            "info": {"seconds": round(self.elapsed, 4)},
        }


async def _asyncio_main(n: int) -> dict[str, Any]:
    async def noop() -> None:
        pass

    with _Measure() as m:
        async with asyncio.TaskGroup() as tg:
            for _ in range(n):
                tg.create_task(noop())
    return m.result(n)


def run_asyncio(case: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_asyncio_main(case["tasks"]))


def run_uvloop(case: dict[str, Any]) -> dict[str, Any]:
    uvloop = require("uvloop")
    return uvloop.run(_asyncio_main(case["tasks"]))


def run_trio(case: dict[str, Any]) -> dict[str, Any]:
    trio = require("trio")
    n = case["tasks"]

    async def noop() -> None:
        pass

    async def main() -> dict[str, Any]:
        with _Measure() as m:
            async with trio.open_nursery() as nursery:
                for _ in range(n):
                    nursery.start_soon(noop)
        return m.result(n)

    return trio.run(main)


def run_curio(case: dict[str, Any]) -> dict[str, Any]:
    curio = require("curio")
    n = case["tasks"]

    async def noop() -> None:
        pass

    async def main() -> dict[str, Any]:
        with _Measure() as m:
            async with curio.TaskGroup() as g:
                for _ in range(n):
                    await g.spawn(noop)
        return m.result(n)

    return curio.run(main)


def run_floor(case: dict[str, Any]) -> dict[str, Any]:
    n = case["tasks"]
    k = _floor.Kernel()

    def noop():
        return
        yield  # a generator function whose body does nothing

    def main():
        group = _floor.Group()
        for _ in range(n):
            k.spawn(noop(), group)
        yield from k.join(group)

    with _Measure() as m:
        k.spawn(main())
        k.run()
    return m.result(n)


def run_yieldio(case: dict[str, Any]) -> dict[str, Any]:
    yio = require_yieldio("run", "TaskGroup")
    n = case["tasks"]

    async def noop() -> None:
        pass

    async def main() -> dict[str, Any]:
        with _Measure() as m:
            async with yio.TaskGroup() as tg:
                for _ in range(n):
                    tg.spawn(noop)
        return m.result(n)

    return yio.run(main)


RUNTIMES = {
    "asyncio": run_asyncio,
    "uvloop": run_uvloop,
    "trio": run_trio,
    "curio": run_curio,
    "floor": run_floor,
    "yieldio": run_yieldio,
}
