"""Coroutines called but never awaited are reported with where they were created."""

from __future__ import annotations

import gc
import importlib.metadata
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


def _line_of(text: str) -> int:
    """The line of this file that starts with ``text``."""
    with open(HERE) as f:
        (lineno,) = [i for i, line in enumerate(f, 1) if line.strip().startswith(text)]
    return lineno


def test_never_awaited_coroutine_is_reported_with_its_origin():
    reporter = NeverAwaitedReporter()

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(forgetful_worker, name="forgetful")
            tg.spawn(careful_worker, tg, name="careful")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yieldio.run(main, instruments=[reporter])
    assert len(reporter.reports) == 1
    r = reporter.reports[0]
    assert r.qualname == "fetch" and r.task_name == "forgetful"
    # The origin starts at the task's coroutine (runtime frames cut) and ends
    # at the line that called fetch().
    assert [fn for _, _, fn in r.origin] == ["forgetful_worker"]
    assert r.origin[-1][0] == HERE
    # One RuntimeWarning (CPython's own is replaced), located at that line,
    # whose message is the report, but for that line: warnings prints it.
    (w,) = [w for w in caught if "never awaited" in str(w.message)]
    assert w.category is RuntimeWarning
    assert (w.filename, w.lineno) == (HERE, _line_of('fetch("https://example.invalid/")'))
    text = str(w.message)
    assert text == r.format(last_line=False)
    # It starts as CPython's does: filters written for that one match it.
    assert text.startswith("coroutine 'fetch' was never awaited (dropped in task 'forgetful').")
    assert text.endswith(f'File "{HERE}", line {w.lineno}, in forgetful_worker')
    assert r.format() == text + '\n    fetch("https://example.invalid/")  # BUG: not awaited'


def test_the_default_action_shows_a_lines_report_once_across_runs():
    async def main():
        await forgetful_worker()

    reporters = [NeverAwaitedReporter() for _ in range(3)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for reporter in reporters:
            yieldio.run(main, instruments=[reporter])
    # Every run has its report; the warning is shown once for its line.
    assert [len(r.reports) for r in reporters] == [1, 1, 1]
    assert [w.lineno for w in caught] == [_line_of('fetch("https://example.invalid/")')]


def test_warnings_can_be_filtered_by_the_message_cpython_uses():
    reporter = NeverAwaitedReporter()

    async def main():
        await forgetful_worker()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
        yieldio.run(main, instruments=[reporter])
    assert caught == []
    assert len(reporter.reports) == 1  # recorded all the same


def test_an_error_from_warnings_becomes_an_unraisable_exception(monkeypatch):
    """``-W error``: as CPython does with its own warning, not lost, not a crash."""
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    reporter = NeverAwaitedReporter()

    async def main():
        await forgetful_worker()
        return "finished"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("error", RuntimeWarning)
        assert yieldio.run(main, instruments=[reporter]) == "finished"
    assert caught == []  # and no second, plain warning from CPython
    (u,) = unraisable
    assert type(u.exc_value) is RuntimeWarning
    assert str(u.exc_value) == reporter.reports[0].format()
    assert type(u.object).__name__ == "coroutine" and u.object.__qualname__ == "fetch"


def test_warn_false_only_collects():
    reporter = NeverAwaitedReporter(warn=False)

    async def main():
        await forgetful_worker()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yieldio.run(main, instruments=[reporter])
    assert caught == []
    assert [r.qualname for r in reporter.reports] == ["fetch"]


def test_log_is_the_old_name_of_warn():
    with pytest.warns(DeprecationWarning, match="now called warn="):
        quiet = NeverAwaitedReporter(log=False)
    assert quiet.warn is False and quiet.log is False
    assert NeverAwaitedReporter().log is True


def test_origin_through_a_helper_function():
    reporter = NeverAwaitedReporter(warn=False)

    async def main():
        make_it_in_a_helper()

    yieldio.run(main, instruments=[reporter])
    (r,) = reporter.reports
    assert [fn for _, _, fn in r.origin][-2:] == [
        "main", "make_it_in_a_helper"]


def test_a_coroutine_lost_in_a_reference_cycle_is_reported_when_run_ends():
    reporter = NeverAwaitedReporter(warn=False)

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


def test_under_w_error_a_dropped_wait_is_unraisable_and_reporting_goes_on(monkeypatch):
    # A dropped wait is found after a step, in an instrument hook: -W error
    # used to raise the report into the kernel, which removed the reporter,
    # so this and every later drop went unreported. Now each is an
    # unraisable exception, as CPython's own warning is, and the run goes on.
    from yieldio import _unawaited

    monkeypatch.setattr(_unawaited, "ENABLED", True)
    def event_wait():
        yield

    event_wait.__qualname__ = "Event.wait"
    wait = _unawaited.tracked(event_wait)  # as YIELDIO_DEBUG=1 makes yieldio's waits
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    reporter = NeverAwaitedReporter()

    async def main():
        wait()  # BUG 1
        await yieldio.sleep(0)
        wait()  # BUG 2
        await yieldio.sleep(0)
        return "finished"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("error", RuntimeWarning)
        assert yieldio.run(main, instruments=[reporter]) == "finished"
    assert caught == []
    assert [r.origin[-1][1] for r in reporter.reports] == [_line_of("wait()  # BUG 1"),
                                                           _line_of("wait()  # BUG 2")]
    assert [type(u.exc_value) for u in unraisable] == [RuntimeWarning, RuntimeWarning]
    assert [str(u.exc_value) for u in unraisable] == [r.format() for r in reporter.reports]
    # Printed as "Exception ignored in: <coroutine object Event.wait at ...>".
    assert all(repr(u.object).startswith("<coroutine object Event.wait at ")
               for u in unraisable)


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
    assert err.startswith(f"{script}:8: RuntimeWarning: coroutine 'send_email' was never "
                          "awaited (dropped in task 'main').\n")
    # The line once, as warnings prints it after the message: the report
    # showed it in its stack too, so twice.
    assert err.endswith(f'File "{script}", line 8, in main\n  send_email("bob@example.invalid")\n')
    assert err.count('send_email("bob@example.invalid")') == 1, err
    assert err.count("RuntimeWarning") == 1  # one clear report, not two


def test_under_w_error_a_program_goes_on_as_with_cpythons_own_warning(tmp_path):
    script = tmp_path / "app.py"
    body = textwrap.dedent("""
        import gc, sys

        async def send_email(to):
            pass

        def main():
            send_email("bob@example.invalid")
            print("went on")

        if sys.argv[1:] == ["debug"]:
            import yieldio

            async def amain():
                main()

            yieldio.run(amain, debug=True)
        else:
            main()
    """)
    script.write_text(body)

    def run(*args):
        return subprocess.run([sys.executable, "-W", "error::RuntimeWarning", str(script), *args],
                              capture_output=True, text=True, timeout=60)

    plain, debug = run(), run("debug")
    # CPython: the warning raised in the finalizer is printed as an unraisable
    # exception, and the program goes on. The debug report does the same.
    for proc in (plain, debug):
        assert proc.returncode == 0 and proc.stdout == "went on\n", proc.stderr
        assert proc.stderr.startswith("Exception ignored in: <coroutine object send_email at ")
        assert proc.stderr.count("RuntimeWarning: coroutine 'send_email' was never awaited") == 1
    assert "It was created at" in debug.stderr and "It was created at" not in plain.stderr


def test_code_with_no_source_file_is_reported_too():
    # A notebook cell, exec'd code: no module has this file. The report used
    # to vanish (warn_explicit with module=None drops it) where CPython's own
    # plain warning is shown.
    ns = {"yieldio": yieldio, "__name__": "cell"}
    exec(compile("async def f():\n    pass\n\nasync def main():\n    f()\n",
                 "<ipython-input-1-abc>", "exec"), ns)
    reporter = NeverAwaitedReporter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        yieldio.run(ns["main"], instruments=[reporter])
    (w,) = caught
    assert (w.filename, w.lineno) == ("<ipython-input-1-abc>", 5)
    assert str(w.message) == reporter.reports[0].format()
    assert str(w.message).startswith("coroutine 'f' was never awaited (dropped in task 'main').")


@pytest.mark.parametrize("how", ["-c", "stdin"])
def test_python_c_and_stdin_programs_get_the_report(how):
    # python -c: no module has the file "<string>" (the report was lost).
    # python - < app.py: __main__'s loader cannot give its source, and the C
    # warn_explicit let its ImportError out (the report was lost, and for a
    # dropped wait the reporter removed). Both get it, without a source line.
    code = textwrap.dedent("""
        import yieldio
        async def f(): pass
        async def main():
            f()
            yieldio.sleep(1)
            await yieldio.sleep(0)
            yieldio.sleep(2)
        yieldio.run(main, debug=True)
    """)
    env = {**__import__("os").environ, "YIELDIO_DEBUG": "1"}
    args, stdin, name = ([sys.executable, "-c", code], None, "<string>") if how == "-c" else (
        [sys.executable, "-"], code, "<stdin>")
    proc = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    reports = [line for line in proc.stderr.splitlines() if "RuntimeWarning" in line]
    assert reports == [
        f"{name}:5: RuntimeWarning: coroutine 'f' was never awaited (dropped in task 'main').",
        f"{name}:6: RuntimeWarning: coroutine 'sleep' was never awaited "
        "(dropped in task 'main').",
        f"{name}:8: RuntimeWarning: coroutine 'sleep' was never awaited "
        "(dropped in task 'main').",
    ], proc.stderr
    assert "removing it" not in proc.stderr and "Exception ignored" not in proc.stderr


def test_a_coroutine_made_before_the_run_says_its_origin_is_unknown():
    early = fetch("made before debug mode")
    reporter = NeverAwaitedReporter(warn=False)

    async def main():
        nonlocal early
        del early  # dropped during the run
        await yieldio.sleep(0)

    yieldio.run(main, instruments=[reporter])
    assert [r.origin for r in reporter.reports] == [[]]
    text = reporter.reports[0].format()
    assert text == ("coroutine 'fetch' was never awaited (dropped in task 'main').\n"
                    "Where it was created is unknown (it was created before debug mode was on, "
                    "or on a thread other than the kernel's).")


def test_two_debug_kernels_in_threads_each_get_their_own_reports():
    import threading

    barrier = threading.Barrier(2, timeout=10)
    reporters = [NeverAwaitedReporter(warn=False) for _ in range(2)]
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
    reporter = NeverAwaitedReporter(warn=False)

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

    reporter = NeverAwaitedReporter(warn=False)
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


# -- under pytest ------------------------------------------------------------------------

def _entry_point_installed() -> bool:
    return any(ep.value == "yieldio.testing._pytest_plugin"
               for ep in importlib.metadata.entry_points(group="pytest11"))


# As tests/testing/test_pytest_plugin.py: the plugin by hand until its entry
# point is installed.
PLUGIN = [] if _entry_point_installed() else ["-p", "yieldio.testing._pytest_plugin"]

_DROPPING_TEST = """
    import yieldio

    async def fetch(url):
        await yieldio.sleep(0)

    async def main():
        fetch("x")  # BUG: not awaited
        await yieldio.sleep(0)

    def test_forgets_an_await():
        yieldio.run(main, debug=True)
"""


def _runpytest(pytester, *args):
    # No pytest-asyncio: these runs use -W error, which turns its
    # configuration-time deprecation warnings (asyncio_default_fixture_loop_scope
    # unset) into an INTERNALERROR. The tests here need no asyncio plugin.
    return pytester.runpytest_subprocess(*PLUGIN, "-p", "no:cacheprovider",
                                         "-p", "no:hypothesispytest", "-p", "no:asyncio",
                                         *args)


def test_inner_pytest_runs_do_not_load_pytest_asyncio(pytester):
    pytest.importorskip("pytest_asyncio")
    pytester.makepyfile(test_plugins="""
        def test_no_asyncio_plugin(pytestconfig):
            assert not pytestconfig.pluginmanager.has_plugin("asyncio")
    """)
    _runpytest(pytester, "-W", "error").assert_outcomes(passed=1)


def test_pytest_shows_the_report_in_its_warnings_summary(pytester):
    path = pytester.makepyfile(test_drop=_DROPPING_TEST)
    (line,) = [i for i, text in enumerate(path.read_text().splitlines(), 1) if "BUG" in text]
    result = _runpytest(pytester)
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines([
        "*= warnings summary =*",
        "test_drop.py::test_forgets_an_await",
        f"  {path}:{line}: RuntimeWarning: coroutine 'fetch' was never awaited "
        "(dropped in task 'main').",
        "  It was created at (most recent call last):",
        f'    File "{path}", line {line}, in main',
        '    fetch("x")  # BUG: not awaited',
        "",
    ])


def test_pytest_w_error_runtimewarning_does_what_it_does_for_cpythons_warning(pytester):
    # CPython's own warning, raised in the finalizer, becomes an unraisable
    # exception: pytest passes the test and reports a
    # PytestUnraisableExceptionWarning. The same happens to the report.
    pytester.makepyfile(test_drop=_DROPPING_TEST, test_plain="""
        async def fetch(url):
            pass

        def test_forgets_an_await():
            fetch("x")
    """)
    result = _runpytest(pytester, "-W", "error::RuntimeWarning")
    result.assert_outcomes(passed=2, warnings=2)
    out = result.stdout.str()
    assert out.count("PytestUnraisableExceptionWarning: Exception ignored in: "
                     "<coroutine object fetch at ") == 2
    result.stdout.fnmatch_lines([
        "*RuntimeWarning: coroutine 'fetch' was never awaited (dropped in task 'main').",
        "*It was created at (most recent call last):",
    ])
    # ... and plain "-W error" fails both tests alike.
    result = _runpytest(pytester, "-W", "error")
    result.assert_outcomes(failed=2)


def test_pytest_w_error_fails_a_test_that_drops_one_of_yieldios_waits(pytester, monkeypatch):
    # The drop is found after a step, not in a finalizer; under -W error it
    # used to remove the reporter and the test passed. It is now an
    # unraisable exception, as for a dropped coroutine: -W error fails it.
    monkeypatch.setenv("YIELDIO_DEBUG", "1")
    pytester.makepyfile(test_waits="""
        import yieldio

        def test_drops_a_put():
            async def main():
                q = yieldio.Queue(1)
                q.put(1)  # BUG: not awaited
                await yieldio.sleep(0)
            yieldio.run(main, debug=True)

        def test_drops_a_wait_later():
            async def main():
                yieldio.Event().wait()  # BUG: not awaited
                await yieldio.sleep(0)
            yieldio.run(main, debug=True)
    """)
    result = _runpytest(pytester, "-W", "error")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*PytestUnraisableExceptionWarning: Exception ignored in: "
        "<coroutine object Queue.put at *",
    ])
    assert "removing it" not in result.stdout.str() + result.stderr.str()


# -- yieldio's own waits (generator coroutines): tracked under YIELDIO_DEBUG=1 --------------
FORGETFUL_WAITS = """
import yieldio

@yieldio.coroutine
def gen_style(ev):
    yield from ev.wait()            # a call through yield from: awaited

async def main():
    q = yieldio.Queue()
    ev = yieldio.Event()
    q.put(1)                        # BUG 1
    yieldio.sleep(1)                # BUG 2
    later = q.put(2)                # kept, then awaited: fine
    await yieldio.sleep(0)
    await later
    async with yieldio.TaskGroup() as tg:
        tg.spawn(ev.wait)           # spawned: fine
        tg.spawn(ev.wait())         # a coroutine object, spawned: fine
        tg.spawn(gen_style, ev)
        await yieldio.sleep(0)
        ev.wait()                   # BUG 3
        ev.set()
    print("qsize", q.qsize())

yieldio.run(main)
"""


def test_yieldio_debug_reports_a_forgotten_await_on_yieldios_own_waits(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(FORGETFUL_WAITS)
    env = {**__import__("os").environ, "YIELDIO_DEBUG": "1"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "qsize 1\n"  # the forgotten put put nothing
    err = proc.stderr
    reports = [line for line in err.splitlines() if "RuntimeWarning" in line]
    assert reports == [
        f"{script}:11: RuntimeWarning: coroutine 'Queue.put' was never awaited "
        "(dropped in task 'main').",
        f"{script}:12: RuntimeWarning: coroutine 'sleep' was never awaited "
        "(dropped in task 'main').",
        f"{script}:21: RuntimeWarning: coroutine 'Event.wait' was never awaited "
        "(dropped in task 'main').",
    ], err
    assert f'File "{script}", line 11, in main\n  q.put(1)                        # BUG 1\n' in err
    assert err.count("q.put(1)") == 1, err


def test_a_wait_made_through_a_wrapper_is_reported_at_the_programs_call(tmp_path):
    # to_thread() returns _to_thread(...): the report pointed inside yieldio
    # (threads.py) and named '_to_thread', a name the program never wrote.
    script = tmp_path / "app.py"
    script.write_text("import yieldio\n"
                      "async def main():\n"
                      "    yieldio.to_thread(print, 'x')   # BUG\n"
                      "yieldio.run(main)\n")
    env = {**__import__("os").environ, "YIELDIO_DEBUG": "1"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    reports = [line for line in proc.stderr.splitlines() if "RuntimeWarning" in line]
    assert reports == [f"{script}:3: RuntimeWarning: coroutine 'to_thread' was never awaited "
                       "(dropped in task 'main')."], proc.stderr
    assert "threads.py" not in proc.stderr


def test_without_yieldio_debug_the_waits_are_the_plain_generator_functions():
    # The tracking wrapper is decided at import and costs a call per wait:
    # the test suite runs without the variable, so these are the plain ones.
    import inspect

    from yieldio import _unawaited

    if _unawaited.ENABLED:
        pytest.skip("this process was started with YIELDIO_DEBUG set")
    assert inspect.isgeneratorfunction(yieldio.sleep)
    assert inspect.isgeneratorfunction(yieldio.Queue.put)
    assert _unawaited.sweep() == []


def test_yieldio_debug_does_not_report_calls_whose_result_may_be_dropped(tmp_path):
    # Barrier.abort()/reset() return an already-finished awaitable so that
    # asyncio's `await barrier.abort()` works; a plain call drops it, which
    # is fine and must not be reported.
    script = tmp_path / "app.py"
    script.write_text(
        "import yieldio\n"
        "async def main():\n"
        "    b = yieldio.Barrier(2)\n"
        "    b.abort()\n"
        "    b.reset()\n"
        "    await yieldio.sleep(0)\n"
        "yieldio.run(main)\n")
    env = {**__import__("os").environ, "YIELDIO_DEBUG": "1"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0 and "RuntimeWarning" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("run_args, tracked", [
    (["--debug"], True),
    (["--trace", "t.json", "--deb", "--slow-step", "5"], True),  # argparse's abbreviation
    (["--trace=t.json"], False),
])
def test_run_debug_tracks_yieldios_waits_without_the_variable(tmp_path, run_args, tracked):
    # 'python -m yieldio' imports yieldio, which chooses the waits, before
    # 'run' reads --debug: the choice looks at the command line itself.
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        import yieldio

        async def main():
            q = yieldio.Queue(1)
            q.put(1)  # BUG: not awaited
            await yieldio.sleep(0)
            print(yieldio._unawaited.ENABLED)
    """))
    env = {k: v for k, v in __import__("os").environ.items() if k != "YIELDIO_DEBUG"}
    proc = subprocess.run([sys.executable, "-m", "yieldio", "run", *run_args, str(script),
                           "--debug"],  # the script's own argument: not run's
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{tracked}\n"
    reported = (f"{script}:6: RuntimeWarning: coroutine 'Queue.put' was never awaited "
                "(dropped in task 'main').")
    assert (reported in proc.stderr.splitlines()) is tracked, proc.stderr
