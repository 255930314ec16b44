"""Slow-step detector: report a task step that blocks the event loop.

A task *step* is the code between two of its yields to the kernel. While a
step runs, no other task runs, no I/O is served and no timer fires -- so a
step that takes 100 ms (a blocking call, a big computation, an accidental
``time.sleep``) freezes the whole program for 100 ms.

Measuring the step's duration afterwards is not enough: by then the task is
somewhere else and the stack that blocked is gone. So a watchdog thread
looks at the kernel thread *during* the step (``sys._current_frames()``, a
read-only snapshot) once the step has run longer than the threshold, and the
report shows the line that was blocking::

    yieldio.run(main, debug=True)             # threshold 100 ms
    yieldio.run(main, debug={"slow_step": 0.02})

    # yieldio: task 4 'handler' blocked the event loop for 0.253 s in one step.
    # It was here 0.100 s into the step:
    #   File "app.py", line 12, in handler
    #     time.sleep(0.25)

A step still running long after the threshold (a hang) is reported while it
runs, so even a step that never ends says where it is stuck.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from .. import _state

__all__ = ["SlowStepDetector", "SlowStep"]

logger = logging.getLogger("yieldio.debug")

DEFAULT_THRESHOLD = 0.1

# Frames of the runtime itself sit between yieldio.run() and the task's
# coroutine; a report starts at the first frame below them.
_RUNTIME_FILES = ("_kernel.py", "_trampoline.py", "_pep380.py", "_runopts.py", "_cli_debug.py")


@dataclass
class SlowStep:
    """One report: which task, how long its step took, and where it blocked.

    ``stack`` is a :class:`traceback.StackSummary`, outermost first, taken
    on the kernel thread while the step was running (empty if the step ended
    before the watchdog could look)::

        for r in detector.reports:
            print(r.task_name, f"{r.duration:.2f} s", r.stack[-1].line)
    """

    task_id: int
    task_name: str
    duration: float
    stack: traceback.StackSummary
    captured_after: float
    finished: bool = True

    def format(self) -> str:
        """The report text, as logged."""
        if self.finished:
            head = (f"yieldio: task {self.task_id} {self.task_name!r} blocked the event loop "
                    f"for {self.duration:.2f} s in one step.")
        else:
            head = (f"yieldio: task {self.task_id} {self.task_name!r} has been blocking the "
                    f"event loop for {self.duration:.2f} s (the step has not ended).")
        if not self.stack:
            return head + " (The step ended before its stack could be captured.)"
        when = f"It was here {self.captured_after:.2f} s into the step:"
        return "\n".join([head, when, *("".join(self.stack.format()).rstrip("\n").split("\n"))])


def _task_part(stack: traceback.StackSummary) -> traceback.StackSummary:
    """Drop the frames from the program's start down to the kernel's step call."""
    frames = list(stack)
    last_runtime = -1
    for i, fs in enumerate(frames):
        name = fs.filename.replace("\\", "/")
        if "/yieldio/" in name and name.endswith(_RUNTIME_FILES):
            last_runtime = i
    return traceback.StackSummary.from_list(frames[last_runtime + 1:])


def _trampolined_callers(task: Any) -> list[traceback.FrameSummary]:
    """The frames of the task's trampolined callers (``x = yield sub()``), outermost first.

    Only the innermost trampolined call runs on the Python stack; its callers
    are suspended on the trampoline's list. Without them a slow step under
    ``main -> outer -> leaf`` was reported as ``leaf`` alone, where the same
    program written with ``yield from`` shows the three frames. Read from
    the watchdog thread: a copy of the list and the suspended frames' line
    numbers, nothing the kernel writes to.
    """
    from .._trampoline import Trampoline
    from ._stack import _walk

    driver = task._driver
    if type(driver) is not Trampoline:
        return []
    calls = list(driver._stack)
    while len(calls) == 1 and type(calls[0]) is Trampoline:  # a task running trampoline(gen)
        calls = list(calls[0]._stack)
    callers = calls[:-1]
    out: list[traceback.FrameSummary] = []
    if len(callers) > _MAX_CALLERS:  # a report is read by a person: the innermost ones
        out.append(traceback.FrameSummary(
            f"<{len(callers) - _MAX_CALLERS:,} outer trampolined calls not shown>", 0, "..."))
        callers = callers[-_MAX_CALLERS:]
    frames: list[Any] = []
    for coro in callers:
        _walk(coro, frames, _MAX_CALLERS * 10)
    # co_name, as the live frames below (and Python's tracebacks) name functions.
    out += [traceback.FrameSummary(f.filename, f.lineno, f.function.rpartition(".")[2])
            for f in frames if not f.opaque]
    return out


_MAX_CALLERS = 100


class SlowStepDetector:
    """Instrument that reports every step longer than ``threshold`` seconds.

    ::

        detector = yieldio.debug.SlowStepDetector(threshold=0.05)
        yieldio.run(main, instruments=[detector])
        for report in detector.reports:
            print(report.format())

    Reports go to the ``yieldio.debug`` logger at WARNING level (which
    Python prints on stderr when logging is not configured) and are kept in
    :attr:`reports` (the last ``keep`` of them). A step still running after
    ``hang_after`` seconds (default: 10x the threshold, at least 1 s) is
    reported while it runs, then again each time its duration doubles.

    Cost: nothing per step. The detector has no step hooks at all: a
    watchdog thread samples which task the kernel is running
    (``kernel.current``) and in which loop iteration, every ``threshold /
    10`` seconds (at most 50 ms, at least 1 ms). A task runs at most once
    per iteration, so an unchanged pair means an unchanged step. Durations
    are therefore measured to within one sampling interval.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, *, hang_after: float | None = None,
                 keep: int = 100, log: bool = True) -> None:
        if not threshold > 0:
            raise ValueError(f"the slow-step threshold must be > 0 seconds, not {threshold!r}")
        self.threshold = float(threshold)
        self.hang_after = hang_after if hang_after is not None else max(1.0, 10 * threshold)
        self.interval = min(max(self.threshold / 10, 0.001), 0.05)
        self.keep = keep
        self.log = log
        self.reports: list[SlowStep] = []
        self._kernel: Any = None
        self._thread_id = 0
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    # -- hooks (kernel thread) ---------------------------------------------------
    def before_run(self) -> None:
        """Instrument hook: start timing task steps."""
        self._kernel = _state.current_kernel()
        self._thread_id = threading.get_ident()
        self._stop.clear()
        self._watchdog = threading.Thread(target=self._watch, name="yieldio-slow-step-watchdog",
                                          daemon=True)
        self._watchdog.start()

    def after_run(self) -> None:
        """Instrument hook: stop timing task steps."""
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join()
            self._watchdog = None
        self._kernel = None

    # -- the watchdog thread ---------------------------------------------------
    def _watch(self) -> None:
        k = self._kernel
        perf = time.perf_counter
        # The step being watched: its task, its loop iteration, and when it
        # began (half-way between the sample before it and its first sample).
        task: Any = None
        iteration = -1
        began = 0.0
        last_seen = 0.0
        captured: tuple[traceback.StackSummary, float] | None = None
        next_hang_report = 0.0
        prev_sample = perf()
        while not self._stop.wait(self.interval):
            now = perf()
            # Two attribute reads, each atomic under the GIL: this thread
            # never walks kernel structures.
            cur, it = k.current, k.stats_iterations
            if cur is task and it == iteration and cur is not None:
                last_seen = now
                elapsed = now - began
                if captured is None and elapsed >= self.threshold:
                    stack = self._kernel_stack(cur)
                    if k.current is cur and k.stats_iterations == it:  # not stale
                        captured = (stack, elapsed)
                        next_hang_report = self.hang_after
                elif captured is not None and elapsed >= next_hang_report:
                    stack = self._kernel_stack(cur)
                    if k.current is cur and k.stats_iterations == it:
                        self._report(SlowStep(cur.id, cur.name, elapsed, stack, elapsed,
                                              finished=False))
                        next_hang_report = elapsed * 2
                        # The final report quotes this, the latest sample: in
                        # a long step it is where most of the time went, and
                        # the report must not go back to an older place
                        # than the hang reports already showed.
                        captured = (stack, elapsed)
            else:
                if task is not None and captured is not None:
                    # The slow step ended between the last two samples.
                    ended = (last_seen + now) / 2
                    self._report(SlowStep(task.id, task.name, ended - began, captured[0],
                                          captured[1]))
                task, iteration, captured = cur, it, None
                began = last_seen = (prev_sample + now) / 2
            prev_sample = now
        if task is not None and captured is not None:
            # run() ended right after a slow step (the main task's last one).
            self._report(SlowStep(task.id, task.name, perf() - began, captured[0], captured[1]))
        task = cur = None  # no task objects kept alive by this thread

    def _kernel_stack(self, task: Any) -> traceback.StackSummary:
        callers = _trampolined_callers(task)
        frame = sys._current_frames().get(self._thread_id)
        if frame is None:
            return traceback.StackSummary()
        stack = traceback.StackSummary.extract(traceback.walk_stack(frame), lookup_lines=True)
        stack.reverse()
        del frame
        part = _task_part(stack)
        if callers and callers == _trampolined_callers(task):  # the calls did not change
            return traceback.StackSummary.from_list([*callers, *part])
        return part

    def _report(self, report: SlowStep) -> None:
        self.reports.append(report)
        if len(self.reports) > self.keep:
            del self.reports[0]
        if self.log:
            logger.warning("%s", report.format())


def current_detector() -> SlowStepDetector | None:
    """The slow-step detector attached to the running kernel, if any."""
    k = getattr(_state.local, "kernel", None)
    for inst in getattr(k, "instruments", ()):
        if isinstance(inst, SlowStepDetector):
            return inst
    return None
