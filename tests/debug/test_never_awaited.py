"""Coroutines called but never awaited are reported with where they were created."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import textwrap
import warnings

import pytest

import yieldio
from yieldio.debug import NeverAwaitedReporter

HERE = __file__


async def fetch(url):
    await yieldio.sleep(0)
    return url


async def forgetful_worker():
    fetch("https://example.invalid/")  # BUG: not awaited
    await yieldio.sleep(0)


def make_it_in_a_helper():
    return fetch("x")


async def careful_worker(tg):
    await fetch("a")
    tg.spawn(fetch, "b")
    coro = fetch("c")
    await coro


def test_never_awaited_coroutine_is_reported_with_its_origin(caplog):
    reporter = NeverAwaitedReporter()

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(forgetful_worker, name="forgetful")
            tg.spawn(careful_worker, tg, name="careful")

    with caplog.at_level(logging.WARNING, logger="yieldio.debug"):
        yieldio.run(main, instruments=[reporter])
    assert len(reporter.reports) == 1
    r = reporter.reports[0]
    assert r.qualname == "fetch" and r.task_name == "forgetful"
    # The origin starts at the task's coroutine (runtime frames cut) and ends
    # at the line that called fetch().
    assert [fn for _, _, fn in r.origin] == ["forgetful_worker"]
    assert r.origin[-1][0] == HERE
    text = caplog.records[0].getMessage()
    assert text.startswith("yieldio: coroutine 'fetch' was never awaited (dropped in task ")
    assert "'forgetful')." in text
    assert 'in forgetful_worker\n    fetch("https://example.invalid/")  # BUG: not awaited' in text


def test_origin_through_a_helper_function():
    reporter = NeverAwaitedReporter(log=False)

    async def main():
        make_it_in_a_helper()

    yieldio.run(main, instruments=[reporter])
    (r,) = reporter.reports
    assert [fn for _, _, fn in r.origin][-2:] == [
        "main", "make_it_in_a_helper"]


def test_a_coroutine_lost_in_a_reference_cycle_is_reported_when_run_ends():
    reporter = NeverAwaitedReporter(log=False)

    async def main():
        holder = {}
        holder["self"] = holder
        holder["coro"] = fetch("cycle")
        gc.disable()  # keep the cycle alive until run() ends

    try:
        yieldio.run(main, instruments=[reporter])
    finally:
        gc.enable()
    assert [r.qualname for r in reporter.reports] == ["fetch"]


def test_the_interpreter_is_restored_after_the_run():
    before_depth = sys.get_coroutine_origin_tracking_depth()
    before_hook = warnings._warn_unawaited_coroutine

    async def main():
        return sys.get_coroutine_origin_tracking_depth()

    assert yieldio.run(main, debug=True) >= 16
    assert sys.get_coroutine_origin_tracking_depth() == before_depth
    assert warnings._warn_unawaited_coroutine is before_hook
    # Outside debug mode CPython warns as usual.
    with pytest.warns(RuntimeWarning, match="coroutine 'fetch' was never awaited"):
        fetch("z")
        gc.collect()


def test_reported_once_not_twice_and_real_programs_show_it_on_stderr(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        import yieldio

        async def send_email(to):
            await yieldio.sleep(0)

        async def main():
            send_email("bob@example.invalid")
            await yieldio.sleep(0)

        yieldio.run(main, debug=True)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "yieldio: coroutine 'send_email' was never awaited (dropped in task " in err
    assert f'File "{script}", line 8, in main\n    send_email("bob@example.invalid")' in err
    assert "RuntimeWarning" not in err  # one clear report, not two


def test_a_coroutine_made_before_the_run_says_its_origin_is_unknown():
    early = fetch("made before debug mode")
    reporter = NeverAwaitedReporter(log=False)

    async def main():
        nonlocal early
        del early  # dropped during the run
        await yieldio.sleep(0)

    yieldio.run(main, instruments=[reporter])
    assert [r.origin for r in reporter.reports] == [[]]
    text = reporter.reports[0].format()
    assert text == ("yieldio: coroutine 'fetch' was never awaited (dropped in task 1 'main').\n"
                    "Where it was created is unknown (it was created before debug mode was on, "
                    "or on a thread other than the kernel's).")


def test_two_debug_kernels_in_threads_each_get_their_own_reports():
    import threading

    barrier = threading.Barrier(2, timeout=10)
    reporters = [NeverAwaitedReporter(log=False) for _ in range(2)]
    errors = []

    def run(reporter):
        async def main():
            barrier.wait()  # both kernels are in debug mode now
            make_it_in_a_helper()
            await yieldio.sleep(0)
            barrier.wait()  # both have dropped theirs before either ends

        try:
            yieldio.run(main, instruments=[reporter])
            # ... and turns it off again when its run ends, whichever ends first.
            assert sys.get_coroutine_origin_tracking_depth() == 0
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    hook = getattr(warnings, "_warn_unawaited_coroutine", None)
    threads = [threading.Thread(target=run, args=(r,)) for r in reporters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    # Each kernel's own thread records origins: the second kernel's reports
    # used to have none (the depth is per thread; only the first set it).
    for r in reporters:
        assert [rep.origin[-1][2] for rep in r.reports] == ["make_it_in_a_helper"]
    assert getattr(warnings, "_warn_unawaited_coroutine", None) is hook


def test_a_coroutine_dropped_in_a_worker_thread_is_reported_too():
    reporter = NeverAwaitedReporter(log=False)

    def blocking_helper():
        fetch("from a thread")  # BUG: not awaited, and dropped on the worker thread

    async def main():
        await yieldio.to_thread(blocking_helper)

    yieldio.run(main, instruments=[reporter])
    assert [(r.qualname, r.task_id) for r in reporter.reports] == [("fetch", None)]
    # Origins are recorded on the kernel's thread only: the report says so
    # (it used to blame "before debug mode was on").
    text = reporter.reports[0].format()
    assert "(dropped in task" not in text and "on a thread other than the kernel's" in text


def test_a_drop_in_a_plain_run_on_another_thread_names_no_task_of_that_run():
    import threading

    reporter = NeverAwaitedReporter(log=False)
    in_debug = threading.Event()
    dropped = threading.Event()

    def plain_run():
        async def dropper():
            in_debug.wait(10)
            fetch("from a plain run")  # BUG: not awaited, in a run without debug
            await yieldio.sleep(0)

        async def main():
            async with yieldio.TaskGroup() as tg:
                tg.spawn(dropper, name="plain-dropper")
            dropped.set()

        yieldio.run(main)

    async def main():
        in_debug.set()
        await yieldio.to_thread(dropped.wait, 10)

    t = threading.Thread(target=plain_run)
    t.start()
    yieldio.run(main, instruments=[reporter])
    t.join(10)
    # Reported to the only reporter there is, but not as a drop in a task of
    # its run: task ids are per run, and 'plain-dropper' is not one of them.
    assert [(r.qualname, r.task_id, r.task_name) for r in reporter.reports] == [
        ("fetch", None, None)]
