"""idle: memory held by a task that is blocked.

What is measured
    10,000 tasks are spawned and each blocks on the same Event. Once all of
    them are parked (each increments a counter just before waiting; the main
    task yields until the counter reaches N), garbage is collected and RSS is
    read from /proc/self/statm; RSS before spawning (also after a full GC) is
    subtracted. Then the event is set and the group joined, so the tasks end
    normally.

Metric
    ``rss_per_task_b``: (RSS with N parked tasks − RSS before) / N, in bytes:
    coroutine frame, task object, wait-queue entry and group bookkeeping.

Why
    A server with many idle keep-alive connections is a server with many
    parked tasks; their weight decides how many fit in memory. RSS (not
    tracemalloc) is used because it also counts allocator overhead and the
    memory of C extensions (uvloop).
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench._common import full_gc, require, require_yieldio, rss_bytes

METRICS = [("rss_per_task_b", "RSS bytes/task", "lower")]
BASELINE = "asyncio"


def cases(quick: bool) -> list[dict[str, Any]]:
    """10,000 tasks; 3,000 with --quick (to stay inside its time budget)."""
    return [{"tasks": 3_000 if quick else 10_000}]


def case_label(case: dict[str, Any]) -> str:
    return f"{case['tasks']:,} tasks parked on one Event"


class _Probe:
    """Counts parked tasks and takes the before/after RSS readings."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.parked = 0
        self.rss0 = 0
        self.rss1 = 0

    def before(self) -> None:
        full_gc()
        self.rss0 = rss_bytes()

    def after(self) -> None:
        full_gc()
        self.rss1 = rss_bytes()

    def result(self) -> dict[str, Any]:
        delta = self.rss1 - self.rss0
        return {
            "metrics": {"rss_per_task_b": delta / self.n},
            "info": {"rss_delta_kib": delta // 1024, "rss_before_kib": self.rss0 // 1024},
        }


async def _asyncio_main(n: int) -> dict[str, Any]:
    probe = _Probe(n)
    ev = asyncio.Event()

    async def idle() -> None:
        probe.parked += 1
        await ev.wait()

    probe.before()
    async with asyncio.TaskGroup() as tg:
        for _ in range(n):
            tg.create_task(idle())
        while probe.parked < n:
            await asyncio.sleep(0)
        probe.after()
        ev.set()
    return probe.result()


def run_asyncio(case: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_asyncio_main(case["tasks"]))


def run_uvloop(case: dict[str, Any]) -> dict[str, Any]:
    uvloop = require("uvloop")
    return uvloop.run(_asyncio_main(case["tasks"]))


def run_trio(case: dict[str, Any]) -> dict[str, Any]:
    trio = require("trio")
    n = case["tasks"]

    async def main() -> dict[str, Any]:
        probe = _Probe(n)
        ev = trio.Event()

        async def idle() -> None:
            probe.parked += 1
            await ev.wait()

        probe.before()
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(idle)
            while probe.parked < n:
                await trio.sleep(0)
            probe.after()
            ev.set()
        return probe.result()

    return trio.run(main)


def run_curio(case: dict[str, Any]) -> dict[str, Any]:
    curio = require("curio")
    n = case["tasks"]

    async def main() -> dict[str, Any]:
        probe = _Probe(n)
        ev = curio.Event()

        async def idle() -> None:
            probe.parked += 1
            await ev.wait()

        probe.before()
        async with curio.TaskGroup() as g:
            for _ in range(n):
                await g.spawn(idle)
            while probe.parked < n:
                await curio.sleep(0)
            probe.after()
            await ev.set()
        return probe.result()

    return curio.run(main)


def run_yieldio(case: dict[str, Any]) -> dict[str, Any]:
    yio = require_yieldio("run", "TaskGroup", "Event", "checkpoint")
    n = case["tasks"]

    async def main() -> dict[str, Any]:
        probe = _Probe(n)
        ev = yio.Event()

        async def idle() -> None:
            probe.parked += 1
            await ev.wait()

        probe.before()
        async with yio.TaskGroup() as tg:
            for _ in range(n):
                tg.spawn(idle)
            while probe.parked < n:
                await yio.checkpoint()
            probe.after()
            ev.set()
        return probe.result()

    return yio.run(main)


RUNTIMES = {
    "asyncio": run_asyncio,
    "uvloop": run_uvloop,
    "trio": run_trio,
    "curio": run_curio,
    "yieldio": run_yieldio,
}
