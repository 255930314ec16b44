"""switch: cost of handing control from one task to another.

What is measured
    ``queue``   two tasks ping-pong a token through two 1-slot queues
                (``asyncio.Queue(1)``, ``trio.open_memory_channel(1)``,
                ``curio.Queue(1)``, ``yieldio.Queue(1)``): each hand-off
                wakes the other task, 2 switches per round.
    ``event``   two tasks alternately set an event and wait on their own
                (cleared with ``clear()`` where the Event supports it:
                asyncio, curio, floor, yieldio; a fresh Event per round where
                it does not: trio), 2 switches per round.
    ``sleep0``  10 tasks each loop on ``sleep(0)``; every call yields to the
                scheduler, which round-robins: 1 switch per call.

Metric
    ``switches_per_s``: logical hand-offs per second of wall time, from before
    the tasks are spawned until they are joined (spawning 2–10 tasks is
    negligible next to the 10⁵+ switches).

Why
    Everything a runtime does between two awaits that block (trap dispatch,
    wait-queue bookkeeping, the ready queue) shows up here without any I/O.
    ``floor`` (bench/_floor.py) is a bare generator round-robin with wait
    queues: the pure-Python lower bound.

Note trio checkpoints inside ``send``/``receive`` even when they need not
block, so it performs more scheduler passes per hand-off; that is part of
its idiomatic cost and is counted as such.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import _floor
from bench._common import require, require_yieldio

METRICS = [("switches_per_s", "switches/s", "higher")]
BASELINE = "asyncio"
SLEEP0_TASKS = 10


def cases(quick: bool) -> list[dict[str, Any]]:
    rounds = 5_000 if quick else 100_000
    return [
        {"variant": "queue", "rounds": rounds},
        {"variant": "event", "rounds": rounds},
        {"variant": "sleep0", "rounds": rounds // SLEEP0_TASKS * 2, "tasks": SLEEP0_TASKS},
    ]


def case_label(case: dict[str, Any]) -> str:
    if case["variant"] == "sleep0":
        return f"sleep(0) × {case['tasks']} tasks"
    return {"queue": "Queue(1) ping-pong", "event": "Event ping-pong"}[case["variant"]]


def _switches(case: dict[str, Any]) -> int:
    if case["variant"] == "sleep0":
        return case["rounds"] * case["tasks"]
    return 2 * case["rounds"]


def _result(case: dict[str, Any], elapsed: float) -> dict[str, Any]:
    return {
        "metrics": {"switches_per_s": _switches(case) / elapsed},
        "info": {"switches": _switches(case), "seconds": round(elapsed, 4)},
    }


class _Box:
    """Holder for the current 'fresh' events in the fresh-Event ping-pong."""

    __slots__ = ("a", "b")


# --------------------------------------------------------------------------
# asyncio / uvloop
# --------------------------------------------------------------------------


async def _asyncio_main(case: dict[str, Any]) -> float:
    n = case["rounds"]
    variant = case["variant"]
    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        if variant == "queue":
            q_ab: asyncio.Queue[int] = asyncio.Queue(1)
            q_ba: asyncio.Queue[int] = asyncio.Queue(1)

            async def ping() -> None:
                for i in range(n):
                    await q_ab.put(i)
                    await q_ba.get()

            async def pong() -> None:
                for _ in range(n):
                    await q_ba.put(await q_ab.get())

            tg.create_task(pong())
            tg.create_task(ping())
        elif variant == "event":
            ev_a, ev_b = asyncio.Event(), asyncio.Event()

            async def ping() -> None:
                for _ in range(n):
                    ev_b.set()
                    await ev_a.wait()
                    ev_a.clear()

            async def pong() -> None:
                for _ in range(n):
                    await ev_b.wait()
                    ev_b.clear()
                    ev_a.set()

            tg.create_task(pong())
            tg.create_task(ping())
        else:

            async def spin() -> None:
                for _ in range(n):
                    await asyncio.sleep(0)

            for _ in range(case["tasks"]):
                tg.create_task(spin())
    return time.perf_counter() - t0


def run_asyncio(case: dict[str, Any]) -> dict[str, Any]:
    return _result(case, asyncio.run(_asyncio_main(case)))


def run_uvloop(case: dict[str, Any]) -> dict[str, Any]:
    uvloop = require("uvloop")
    return _result(case, uvloop.run(_asyncio_main(case)))


# --------------------------------------------------------------------------
# trio
# --------------------------------------------------------------------------


def run_trio(case: dict[str, Any]) -> dict[str, Any]:
    trio = require("trio")
    n = case["rounds"]
    variant = case["variant"]

    async def main() -> float:
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            if variant == "queue":
                send_ab, recv_ab = trio.open_memory_channel(1)
                send_ba, recv_ba = trio.open_memory_channel(1)

                async def ping() -> None:
                    for i in range(n):
                        await send_ab.send(i)
                        await recv_ba.receive()

                async def pong() -> None:
                    for _ in range(n):
                        await send_ba.send(await recv_ab.receive())

                nursery.start_soon(pong)
                nursery.start_soon(ping)
            elif variant == "event":
                # trio.Event cannot be cleared: the idiom is a fresh Event.
                box = _Box()
                box.a, box.b = trio.Event(), trio.Event()

                async def ping() -> None:
                    for _ in range(n):
                        box.a = trio.Event()
                        box.b.set()
                        await box.a.wait()

                async def pong() -> None:
                    for _ in range(n):
                        await box.b.wait()
                        box.b = trio.Event()
                        box.a.set()

                nursery.start_soon(pong)
                nursery.start_soon(ping)
            else:

                async def spin() -> None:
                    for _ in range(n):
                        await trio.sleep(0)

                for _ in range(case["tasks"]):
                    nursery.start_soon(spin)
        return time.perf_counter() - t0

    return _result(case, trio.run(main))


# --------------------------------------------------------------------------
# curio
# --------------------------------------------------------------------------


def run_curio(case: dict[str, Any]) -> dict[str, Any]:
    curio = require("curio")
    n = case["rounds"]
    variant = case["variant"]

    async def main() -> float:
        t0 = time.perf_counter()
        async with curio.TaskGroup() as g:
            if variant == "queue":
                q_ab, q_ba = curio.Queue(1), curio.Queue(1)

                async def ping() -> None:
                    for i in range(n):
                        await q_ab.put(i)
                        await q_ba.get()

                async def pong() -> None:
                    for _ in range(n):
                        await q_ba.put(await q_ab.get())

                await g.spawn(pong)
                await g.spawn(ping)
            elif variant == "event":
                ev_a, ev_b = curio.Event(), curio.Event()

                async def ping() -> None:
                    for _ in range(n):
                        await ev_b.set()
                        await ev_a.wait()
                        ev_a.clear()

                async def pong() -> None:
                    for _ in range(n):
                        await ev_b.wait()
                        ev_b.clear()
                        await ev_a.set()

                await g.spawn(pong)
                await g.spawn(ping)
            else:

                async def spin() -> None:
                    for _ in range(n):
                        await curio.sleep(0)

                for _ in range(case["tasks"]):
                    await g.spawn(spin)
        return time.perf_counter() - t0

    return _result(case, curio.run(main))


# --------------------------------------------------------------------------
# floor: generator round-robin (bench/_floor.py)
# --------------------------------------------------------------------------


def run_floor(case: dict[str, Any]) -> dict[str, Any]:
    n = case["rounds"]
    variant = case["variant"]
    k = _floor.Kernel()

    def main():
        group = _floor.Group()
        if variant == "queue":
            q_ab, q_ba = _floor.Queue(k, 1), _floor.Queue(k, 1)

            def ping():
                for i in range(n):
                    yield from q_ab.put(i)
                    yield from q_ba.get()

            def pong():
                for _ in range(n):
                    x = yield from q_ab.get()
                    yield from q_ba.put(x)

            k.spawn(pong(), group)
            k.spawn(ping(), group)
        elif variant == "event":
            ev_a, ev_b = _floor.Event(k), _floor.Event(k)

            def ping():
                for _ in range(n):
                    ev_b.set()
                    yield from ev_a.wait()
                    ev_a.clear()

            def pong():
                for _ in range(n):
                    yield from ev_b.wait()
                    ev_b.clear()
                    ev_a.set()

            k.spawn(pong(), group)
            k.spawn(ping(), group)
        else:

            def spin():
                for _ in range(n):
                    yield

            for _ in range(case["tasks"]):
                k.spawn(spin(), group)
        yield from k.join(group)

    t0 = time.perf_counter()
    k.spawn(main())
    k.run()
    return _result(case, time.perf_counter() - t0)


# --------------------------------------------------------------------------
# yieldio
# --------------------------------------------------------------------------


def run_yieldio(case: dict[str, Any]) -> dict[str, Any]:
    yio = require_yieldio("run", "TaskGroup", "sleep", "Event", "Queue")
    n = case["rounds"]
    variant = case["variant"]

    async def main() -> float:
        t0 = time.perf_counter()
        async with yio.TaskGroup() as tg:
            if variant == "queue":
                q_ab, q_ba = yio.Queue(1), yio.Queue(1)

                async def ping() -> None:
                    for i in range(n):
                        await q_ab.put(i)
                        await q_ba.get()

                async def pong() -> None:
                    for _ in range(n):
                        await q_ba.put(await q_ab.get())

                tg.spawn(pong)
                tg.spawn(ping)
            elif variant == "event":
                ev_a, ev_b = yio.Event(), yio.Event()

                async def ping() -> None:
                    for _ in range(n):
                        ev_b.set()
                        await ev_a.wait()
                        ev_a.clear()

                async def pong() -> None:
                    for _ in range(n):
                        await ev_b.wait()
                        ev_b.clear()
                        ev_a.set()

                tg.spawn(pong)
                tg.spawn(ping)
            else:

                async def spin() -> None:
                    for _ in range(n):
                        await yio.sleep(0)

                for _ in range(case["tasks"]):
                    tg.spawn(spin)
        return time.perf_counter() - t0

    return _result(case, yio.run(main))


RUNTIMES = {
    "asyncio": run_asyncio,
    "uvloop": run_uvloop,
    "trio": run_trio,
    "curio": run_curio,
    "floor": run_floor,
    "yieldio": run_yieldio,
}
