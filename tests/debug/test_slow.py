"""The slow-step detector, and the debug options of run()."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
import traceback

import pytest

import yieldio
from yieldio._runopts import instruments_for
from yieldio.debug import NeverAwaitedReporter, SlowStep, SlowStepDetector


def blocking_helper(seconds):
    time.sleep(seconds)  # the line that blocks the loop


async def blocks_the_loop(seconds):
    await yieldio.sleep(0)
    blocking_helper(seconds)
    await yieldio.sleep(0)


async def well_behaved():
    for _ in range(200):
        await yieldio.sleep(0)


def test_a_slow_step_is_reported_with_the_line_that_blocked(caplog):
    detector = SlowStepDetector(threshold=0.05)

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(blocks_the_loop, 0.3, name="culprit")
            tg.spawn(well_behaved, name="innocent")

    with caplog.at_level(logging.WARNING, logger="yieldio.debug"):
        yieldio.run(main, instruments=[detector])
    assert len(detector.reports) == 1
    report = detector.reports[0]
    assert report.task_name == "culprit" and report.finished
    assert report.duration >= 0.25  # measured by sampling: within one interval (5 ms)
    # Captured *during* the step: the stack ends in the blocking call, and
    # starts at the task's coroutine (the kernel's frames are cut).
    names = [fs.name for fs in report.stack]
    assert names == ["blocks_the_loop", "blocking_helper"]
    assert report.stack[-1].line == "time.sleep(seconds)  # the line that blocks the loop"
    assert 0.05 <= report.captured_after < report.duration
    text = caplog.records[0].getMessage()
    assert caplog.records[0].name == "yieldio.debug"
    assert "task" in text and "'culprit' blocked the event loop for 0.3" in text
    assert "in blocking_helper\n    time.sleep(seconds)" in text
    # The watchdog is gone once run() returns.
    assert not [t for t in threading.enumerate() if t.name == "yieldio-slow-step-watchdog"]


def slow_leaf():
    blocking_helper(0.2)
    yield from yieldio.sleep(0)


def tramp_middle():
    return (yield slow_leaf())  # a trampolined call


def tramp_chain(n):
    if n == 0:
        return (yield tramp_middle())
    return (yield tramp_chain(n - 1))


@pytest.mark.parametrize("depth, shown", [(1, None), (300, 100)])
def test_a_slow_step_in_a_trampolined_call_shows_its_callers(depth, shown):
    # Only the innermost trampolined call is on the Python stack: the report
    # showed slow_leaf alone, where the same program with 'yield from' shows
    # every caller. The callers come from the trampoline's list; a very deep
    # chain shows its innermost callers, after a line saying how many are left out.
    detector = SlowStepDetector(threshold=0.05, log=False)

    async def main():
        await yieldio.coroutine(tramp_chain)(depth)

    yieldio.run(main, instruments=[detector])
    (report,) = detector.reports
    names = [fs.name for fs in report.stack]
    assert names[-3:] == ["tramp_middle", "slow_leaf", "blocking_helper"]
    assert report.stack[-3].line == "return (yield slow_leaf())  # a trampolined call"
    if shown is None:
        assert names == ["main", "tramp_chain", "tramp_chain", "tramp_middle", "slow_leaf",
                         "blocking_helper"]
    else:
        assert names[0] == "..." and report.stack[0].filename.startswith(
            f"<{depth + 2 - shown:,} outer trampolined calls not shown")
        assert names[1:-3] == ["tramp_chain"] * (shown - 1)
    assert "in tramp_middle\n    return (yield slow_leaf())" in report.format()


def test_fast_steps_are_not_reported():
    detector = SlowStepDetector(threshold=0.05)
    yieldio.run(well_behaved, instruments=[detector])
    assert detector.reports == []


def test_a_step_that_hangs_is_reported_while_it_runs():
    detector = SlowStepDetector(threshold=0.05, hang_after=0.2, log=False)
    seen_while_running = []

    def hang():
        deadline = time.monotonic() + 0.7
        while time.monotonic() < deadline:  # busy: holds the GIL like real CPU work
            if detector.reports and not seen_while_running:
                seen_while_running.append(detector.reports[0])

    async def main():
        await yieldio.sleep(0)
        hang()

    yieldio.run(main, instruments=[detector])
    assert seen_while_running, "the hang was only reported after the step ended"
    early = seen_while_running[0]
    assert not early.finished and early.duration >= 0.2
    assert "has been blocking the event loop" in early.format()
    assert early.stack[-1].name == "hang"
    assert detector.reports[-1].finished and detector.reports[-1].duration >= 0.6


def test_report_without_a_captured_stack_still_says_how_long():
    text = SlowStep(3, "t", 0.2, traceback.StackSummary(), 0.2).format()
    assert "blocked the event loop for 0.20 s" in text and "ended before" in text


def test_bad_threshold_is_refused():
    with pytest.raises(ValueError, match="threshold must be > 0"):
        SlowStepDetector(threshold=0)


# -- run(debug=...) and the environment ----------------------------------------------------
def kinds(instruments):
    return [type(i).__name__ for i in instruments]


def test_debug_options_make_the_right_instruments(monkeypatch):
    monkeypatch.delenv("YIELDIO_DEBUG", raising=False)
    monkeypatch.delenv("YIELDIO_MONITOR", raising=False)
    monkeypatch.delenv("YIELDIO_SLOW_STEP", raising=False)
    assert kinds(instruments_for({})) == []
    assert kinds(instruments_for({"debug": True})) == ["SlowStepDetector",
                                                       "NeverAwaitedReporter"]
    assert instruments_for({"debug": True})[0].threshold == 0.1
    assert instruments_for({"debug": 0.02})[0].threshold == 0.02
    assert kinds(instruments_for({"debug": {"slow_step": None}})) == ["NeverAwaitedReporter"]
    assert kinds(instruments_for({"debug": {"never_awaited": False}})) == ["SlowStepDetector"]
    assert kinds(instruments_for({"debug": False})) == []
    monkeypatch.setenv("YIELDIO_DEBUG", "1")
    assert kinds(instruments_for({})) == ["SlowStepDetector", "NeverAwaitedReporter"]
    assert kinds(instruments_for({"debug": False})) == []  # explicit wins
    monkeypatch.setenv("YIELDIO_SLOW_STEP", "0.25")
    assert instruments_for({})[0].threshold == 0.25


@pytest.mark.parametrize("opts, error, match", [
    ({"debug": "yes"}, TypeError, "takes True/False"),
    ({"debug": -1}, ValueError, "must be seconds > 0"),
    ({"debug": {"slow": 1}}, TypeError, "unknown keys"),
    ({"trace": 42}, TypeError, "takes a file path"),
    ({"trace": {"max_events": 5}}, TypeError, "needs a 'path'"),
    ({"monitor": 3}, TypeError, "takes True/False or a socket path"),
])
# run() creates the coroutine before it checks the options (a kernel detail
# reported to the lead), so the refused run leaves a never-awaited coroutine.
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
def test_bad_debug_options_are_clear_errors(opts, error, match, monkeypatch):
    monkeypatch.delenv("YIELDIO_DEBUG", raising=False)
    ran = []

    async def main():
        ran.append(1)

    with pytest.raises(error, match=match):
        yieldio.run(main, **opts)
    assert ran == []


def test_bad_environment_values_are_clear_errors(monkeypatch):
    monkeypatch.setenv("YIELDIO_DEBUG", "maybe")
    with pytest.raises(ValueError, match="YIELDIO_DEBUG='maybe': use 1 or 0"):
        instruments_for({})
    monkeypatch.setenv("YIELDIO_DEBUG", "1")
    monkeypatch.setenv("YIELDIO_SLOW_STEP", "soon")
    with pytest.raises(ValueError, match="YIELDIO_SLOW_STEP='soon': expected seconds"):
        instruments_for({})


def test_run_debug_true_reports_on_stderr_of_a_real_program(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        import time, yieldio

        async def handler():
            await yieldio.sleep(0)
            time.sleep(0.3)   # oops: blocks everything

        async def main():
            async with yieldio.TaskGroup() as tg:
                tg.spawn(handler, name="handler")

        yieldio.run(main)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, env={**_env(), "YIELDIO_DEBUG": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "task" in proc.stderr and "'handler' blocked the event loop for 0." in proc.stderr
    assert f'File "{script}", line 6, in handler\n    time.sleep(0.3)' in proc.stderr


def test_debug_mode_attaches_both_reporters():
    got = []

    async def main():
        k = yieldio._state.current_kernel()
        got.extend(type(i) for i in k.instruments)

    yieldio.run(main, debug=True)
    assert SlowStepDetector in got and NeverAwaitedReporter in got


def _env():
    import os

    env = dict(os.environ)
    env.pop("YIELDIO_MONITOR", None)
    return env


def _phase_one():
    time.sleep(0.05)  # where the step is when it crosses the threshold


def _phase_two():
    time.sleep(0.3)  # where it is at the hang report, and where most time goes


def test_the_final_report_of_a_long_step_quotes_the_latest_sample():
    detector = SlowStepDetector(threshold=0.02, hang_after=0.1, log=False)

    async def main():
        await yieldio.sleep(0)
        _phase_one()
        _phase_two()

    yieldio.run(main, instruments=[detector])
    *hangs, final = detector.reports
    assert hangs and final.finished
    latest = hangs[-1]
    assert latest.stack[-1].name == "_phase_two"
    # Not the 0.02 s sample in _phase_one: the one the last hang report showed.
    assert final.stack[-1].name == "_phase_two"
    assert final.captured_after == latest.captured_after
