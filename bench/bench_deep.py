"""deep: cost of resuming a coroutine suspended under a deep call chain.

What is measured
    A chain of D generator frames (D = 1, 100, 1,000) whose innermost frame
    loops ``x = yield x``; the chain is resumed R times with ``send`` and the
    time per resume is reported.

    ``native``  each level delegates with ``return (yield from sub())``:
                CPython passes every ``send`` down through all D frames, so a
                resume costs O(D).
    ``yieldio`` each level *calls* with ``x = yield sub()`` and the chain is
                driven by ``yieldio.trampoline(gen)``, which keeps the frames
                on an explicit stack and sends into the innermost one only:
                O(1) per resume, at a constant price per call/return.
    ``floor``   the same shape driven by a minimal hand-written trampoline
                (a list as stack, ~15 lines): the pure-Python limit for that
                design, to judge yieldio's implementation against.

Metric
    ``us_per_resume``: microseconds per ``send`` (loop overhead included,
    identical for all variants), over batches of sends lasting at least
    ``min_time`` seconds.

Why
    yieldio runs coroutines on a trampoline; this shows where that beats or
    loses to the interpreter's native ``yield from`` delegation.
"""

from __future__ import annotations

import sys
import time
from types import GeneratorType
from typing import Any

from bench._common import require_yieldio

METRICS = [("us_per_resume", "µs/resume", "lower")]
BASELINE = "native"


def cases(quick: bool) -> list[dict[str, Any]]:
    """Depths 1, 100, 1,000; each timed for at least ``min_time`` seconds."""
    min_time = 0.05 if quick else 0.3
    return [{"depth": d, "min_time": min_time} for d in (1, 100, 1000)]


def case_label(case: dict[str, Any]) -> str:
    return f"depth {case['depth']:,}"


def _native_leaf():
    x = None
    while True:
        x = yield x


def _native_chain(depth: int):
    if depth <= 1:
        return (yield from _native_leaf())
    return (yield from _native_chain(depth - 1))


def _tramp_leaf():
    x = None
    while True:
        x = yield x


def _tramp_chain(depth: int):
    if depth <= 1:
        return (yield _tramp_leaf())
    return (yield _tramp_chain(depth - 1))


def _drive(send, min_time: float) -> dict[str, Any]:
    """Check the chain echoes values, then time batches of sends.

    Batches of 1,000 sends run until *min_time* seconds have passed, so a
    slow O(depth) resume and a fast O(1) one are both timed long enough.
    """
    for i in range(3):
        got = send(i)
        if got != i:
            raise RuntimeError(f"chain returned {got!r} for send({i!r}): unexpected semantics")
    batch = range(1000)
    resumes = 0
    t0 = time.perf_counter()
    while True:
        for i in batch:
            send(i)
        resumes += 1000
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            break
    return {
        "metrics": {"us_per_resume": elapsed / resumes * 1e6},
        "info": {"resumes": resumes, "seconds": round(elapsed, 4)},
    }


def run_native(case: dict[str, Any]) -> dict[str, Any]:
    """Plain ``yield from`` chain driven by ``gen.send``."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), case["depth"] * 4 + 1000))
    gen = _native_chain(case["depth"])
    gen.send(None)
    return _drive(gen.send, case["min_time"])


class _FloorTrampoline:
    """Minimal trampoline: yielded generators are calls, anything else goes out."""

    __slots__ = ("stack",)

    def __init__(self, gen) -> None:
        self.stack = [gen]

    def send(self, value: Any) -> Any:
        stack = self.stack
        while True:
            try:
                out = stack[-1].send(value)
            except StopIteration as stop:
                stack.pop()
                if not stack:
                    raise
                value = stop.value
                continue
            if type(out) is GeneratorType:
                stack.append(out)
                value = None
                continue
            return out


def run_floor(case: dict[str, Any]) -> dict[str, Any]:
    """``x = yield sub()`` chain driven by the minimal trampoline above."""
    tr = _FloorTrampoline(_tramp_chain(case["depth"]))
    tr.send(None)
    return _drive(tr.send, case["min_time"])


def run_yieldio(case: dict[str, Any]) -> dict[str, Any]:
    """``x = yield sub()`` chain driven by ``yieldio.trampoline``."""
    yio = require_yieldio("trampoline")
    tr = yio.trampoline(_tramp_chain(case["depth"]))
    tr.send(None)
    return _drive(tr.send, case["min_time"])


RUNTIMES = {
    "native": run_native,
    "floor": run_floor,
    "yieldio": run_yieldio,
}
