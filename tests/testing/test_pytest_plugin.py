"""The pytest plugin, tested by running pytest on small test files (pytester)."""

from __future__ import annotations

import importlib.metadata
import re

import pytest

# Imported here, once: pytester's in-process runs forget modules first
# imported inside them, and would pay for these imports on every run.
import yieldio.net  # noqa: F401
import yieldio.testing._pytest_plugin  # noqa: F401
import yieldio.testing._simnet  # noqa: F401


def _entry_point_installed() -> bool:
    return any(ep.value == "yieldio.testing._pytest_plugin"
               for ep in importlib.metadata.entry_points(group="pytest11"))


# Until the pytest11 entry point is installed, load the plugin by hand.
PLUGIN = [] if _entry_point_installed() else ["-p", "yieldio.testing._pytest_plugin"]
try:
    import pytest_asyncio  # noqa: F401

    # Silence pytest-asyncio's "loop scope unset" deprecation in the inner runs.
    QUIET = ["-o", "asyncio_default_fixture_loop_scope=function"]
except ImportError:
    QUIET = []


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # hypothesis's plugin imports much of hypothesis at the end of every session.
    return pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                              "-W", "ignore::pytest.PytestAssertRewriteWarning", *QUIET, *args)


def test_marked_tests_and_fixtures_run_in_one_yieldio_run(pytester):
    pytester.makepyfile("""
        import pytest, yieldio
        from yieldio import _state

        events = []

        @pytest.fixture
        async def kernel_id():
            events.append("setup coroutine fixture")
            return id(_state.current_kernel())

        @pytest.fixture
        async def resource(kernel_id):
            events.append("setup")
            assert id(_state.current_kernel()) == kernel_id
            yield "value"
            assert id(_state.current_kernel()) == kernel_id
            events.append("teardown")

        @pytest.fixture
        def sync_fixture():
            return 41

        @pytest.mark.yieldio
        async def test_it(resource, kernel_id, sync_fixture):
            assert resource == "value" and sync_fixture == 41
            assert id(_state.current_kernel()) == kernel_id
            await yieldio.sleep(0)
            events.append("test")

        def test_order():
            assert events == ["setup coroutine fixture", "setup", "test", "teardown"]
    """)
    run(pytester).assert_outcomes(passed=2)


def test_strict_mode_leaves_unmarked_async_tests_alone(pytester):
    pytester.makepyfile("""
        async def test_unmarked():
            pass
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*async def functions are not natively supported*"])


def test_auto_mode_and_marks_on_modules_and_classes(pytester):
    pytester.makeini("[pytest]\nyieldio_mode = auto\n")
    pytester.makepyfile("""
        import yieldio

        async def test_auto():
            await yieldio.sleep(0)

        class TestGroup:
            async def test_method(self):
                await yieldio.sleep(0)

        def test_sync_still_works():
            pass
    """)
    run(pytester).assert_outcomes(passed=3)


def test_bad_mode_is_a_usage_error(pytester):
    pytester.makeini("[pytest]\nyieldio_mode = sometimes\n")
    pytester.makepyfile("def test_x(): pass")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*yieldio_mode must be 'strict' or 'auto'*"])


def test_autojump_clock_fixture(pytester):
    pytester.makepyfile("""
        import pytest, time, yieldio

        @pytest.mark.yieldio
        async def test_an_hour(autojump_clock):
            start = time.monotonic()
            await yieldio.sleep(3600)
            assert yieldio.current_time() == 3600
            assert time.monotonic() - start < 30

        @pytest.fixture
        async def timeout_scope(autojump_clock):
            with yieldio.fail_after(10):
                yield

        @pytest.mark.yieldio
        async def test_fixture_cancel_scope_times_out(timeout_scope):
            await yieldio.sleep(11)
    """)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*TimeoutError*"])


def test_sim_network_fixture_runs_real_server_code(pytester):
    pytester.makepyfile("""
        import pytest, yieldio

        @pytest.fixture
        def sim_network(sim_network):
            sim_network.add_host("echo.example", "10.0.0.1")
            return sim_network

        async def echo(stream):
            async for data in stream:
                await stream.write(data)

        @pytest.fixture
        async def server(sim_network):
            with sim_network.host("10.0.0.1"):
                async with yieldio.serve_tcp(echo, None, 7) as server:
                    yield server

        @pytest.mark.yieldio
        async def test_echo(server, sim_network, autojump_clock):
            assert yieldio.net.current_network() is sim_network
            stream = await yieldio.open_tcp_stream("echo.example", 7)
            async with stream:
                await stream.write(b"hi")
                assert await stream.read_exactly(2) == b"hi"
    """)
    run(pytester).assert_outcomes(passed=1)


def test_background_crash_in_a_fixture_is_reported(pytester):
    pytester.makepyfile("""
        import pytest, yieldio

        @pytest.fixture
        async def crashing(autojump_clock):
            async with yieldio.TaskGroup() as tg:
                async def background():
                    await yieldio.sleep(1)
                    raise ValueError("background crash")
                tg.spawn(background)
                yield

        @pytest.mark.yieldio
        async def test_it(crashing):
            await yieldio.sleep(100)
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ValueError: background crash*"])


def test_a_background_crash_is_the_first_error_shown(pytester):
    # Regression: the first traceback was the test's Cancelled, ending in the
    # source of yieldio's sleep(); the ValueError came ~100 lines later. Now
    # the crash is shown alone, with a note saying where the test was.
    pytester.makepyfile("""
        import pytest, yieldio

        @pytest.mark.yieldio
        async def test_it(task_group, autojump_clock):
            async def boom():
                await yieldio.sleep(5)
                raise ValueError("background boom")
            task_group.spawn(boom)
            await yieldio.sleep(100)
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "Cancelled" not in out
    assert "def sleep(" not in out  # yieldio's source is not shown
    result.stdout.fnmatch_lines([
        "*yieldio: this error cancelled the test, at *.py:9 in test_it: "
        "await yieldio.sleep(100)*",
        "*ValueError: background boom*"])


def test_fixture_errors(pytester):
    pytester.makepyfile("""
        import pytest, yieldio

        @pytest.fixture(scope="module")
        async def wide():
            return 1

        @pytest.fixture
        async def async_value():
            return 1

        @pytest.fixture
        def sync_on_async(async_value):
            return async_value

        @pytest.fixture
        async def no_yield():
            return
            yield

        @pytest.fixture
        async def yields_twice():
            yield 1
            yield 2

        @pytest.mark.yieldio
        async def test_wide(wide):
            pass

        @pytest.mark.yieldio
        async def test_sync_on_async(sync_on_async):
            pass

        @pytest.mark.yieldio
        async def test_no_yield(no_yield):
            pass

        @pytest.mark.yieldio
        async def test_yields_twice(yields_twice):
            pass
    """)
    result = run(pytester)
    result.assert_outcomes(errors=2, failed=2)
    result.stdout.fnmatch_lines([
        "*async fixture 'wide' has scope 'module'*",
        "*sync fixture 'sync_on_async' requests async fixture 'async_value'*",
        "*async fixture 'no_yield' did not yield a value*",
        "*async fixture 'yields_twice' yielded more than once*",
    ])


def test_seed_option_and_marker(pytester):
    pytester.makepyfile("""
        import pytest
        from yieldio import _state

        @pytest.mark.yieldio
        async def test_seed_from_option():
            assert _state.current_kernel().seed == 1234

        @pytest.mark.yieldio(seed=7)
        async def test_seed_from_marker():
            assert _state.current_kernel().seed == 7
    """)
    result = run(pytester, "--yieldio-seed", "1234")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["yieldio: mode=strict, seed=1234"])


def test_random_seed_is_shown_in_the_header(pytester):
    pytester.makepyfile("def test_x(): pass")
    result = run(pytester, "--yieldio-seed", "random")
    header = [line for line in result.outlines if line.startswith("yieldio:")]
    assert re.fullmatch(r"yieldio: mode=strict, seed=\d+", header[0])
    result = run(pytester, "--yieldio-seed", "banana")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


RACE_TEST = """
    import pytest, yieldio

    @pytest.mark.yieldio
    async def test_race(autojump_clock):
        accounts = {}

        async def ensure(name):
            if name not in accounts:
                await yieldio.sleep(0.01)
                accounts[name] = 0

        async def deposit():
            await yieldio.sleep(0.01)
            await ensure("alice")
            accounts["alice"] += 100

        async def bonus():
            await yieldio.sleep(0.01)
            await yieldio.sleep(0.01)
            await ensure("alice")
            accounts["alice"] += 5

        async with yieldio.TaskGroup() as tg:
            tg.spawn(deposit)
            tg.spawn(bonus)
        with open("seeds.txt", "a") as f:
            f.write(f"{yieldio._state.current_kernel().seed}\\n")
        assert accounts["alice"] == 105, accounts
"""


def test_explore_finds_the_race_and_the_printed_seed_replays_it(pytester):
    pytester.makepyfile(RACE_TEST)
    run(pytester).assert_outcomes(passed=1)  # FIFO: fine
    (pytester.path / "seeds.txt").unlink()
    result = run(pytester, "--yieldio-explore", "100")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Captured yieldio call*", "failed with seed *",
                                 "replay: pytest *--yieldio-seed *"])
    seed = int(re.search(r"replay: pytest .* --yieldio-seed (\d+)", result.stdout.str())[1])
    ran = [line for line in (pytester.path / "seeds.txt").read_text().split()]
    assert ran == [str(s) for s in range(seed + 1)]  # seeds 0, 1, ... up to the failing one
    for _ in range(3):
        run(pytester, "--yieldio-seed", str(seed)).assert_outcomes(failed=1)


def test_explore_marker_on_one_test(pytester):
    pytester.makepyfile("""
        import pytest
        from yieldio import _state

        seen = []

        @pytest.mark.yieldio(explore=5, seed=10)
        async def test_many(autojump_clock):
            seen.append(_state.current_kernel().seed)

        def test_seen():
            assert seen == [10, 11, 12, 13, 14]
    """)
    run(pytester).assert_outcomes(passed=2)


def test_a_failure_under_an_explore_marker_names_the_marker_that_replays_it(pytester):
    # The marker's seeds win over --yieldio-seed, so a replay command would
    # run the marker's seeds again: the report names the marker instead.
    pytester.makepyfile("""
        import pytest
        from yieldio import _state

        @pytest.mark.yieldio(explore=5, seed=10)
        async def test_many(autojump_clock):
            assert _state.current_kernel().seed != 12
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["failed with seed 12 (seed 3 of 5 explored)",
                                 "replay: @pytest.mark.yieldio(seed=12) on the test"])
    assert "--yieldio-seed" not in result.stdout.str()
    test = pytester.path / "test_a_failure_under_an_explore_marker_names_the_marker_that_replays_it.py"
    test.write_text(test.read_text().replace("explore=5, seed=10", "seed=12"))
    run(pytester).assert_outcomes(failed=1)


def test_fifo_failure_says_so(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.yieldio
        async def test_fail():
            assert 1 == 2
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*failed in FIFO order (no seed)*"])


# -- living next to pytest-asyncio -------------------------------------------------------------
pytest_asyncio = pytest.importorskip("pytest_asyncio")

MIXED = """
    import asyncio, pytest, pytest_asyncio, yieldio
    from yieldio import _state

    @pytest_asyncio.fixture
    async def asyncio_value():
        await asyncio.sleep(0)
        return "from asyncio"

    @pytest.fixture
    async def yieldio_value():
        await yieldio.sleep(0)
        return "from yieldio"

    @pytest.mark.asyncio
    async def test_asyncio(asyncio_value):
        assert asyncio.get_running_loop() is not None
        assert asyncio_value == "from asyncio"

    @pytest.mark.yieldio
    async def test_yieldio_marked(yieldio_value):
        assert _state.current_kernel() is not None
        assert yieldio_value == "from yieldio"

    def test_both_plugins_loaded(request):
        pm = request.config.pluginmanager
        assert pm.hasplugin("asyncio")
        assert any("yieldio.testing._pytest_plugin" in repr(p) for p in pm.get_plugins())
"""


def test_coexists_with_pytest_asyncio_strict(pytester):
    pytester.makepyfile(MIXED)
    result = run(pytester, "-p", "asyncio")
    result.assert_outcomes(passed=3)


def test_auto_mode_does_not_claim_asyncio_tests(pytester):
    pytester.makeini("[pytest]\nyieldio_mode = auto\nasyncio_mode = strict\n")
    pytester.makepyfile(MIXED + """
    async def test_unmarked_goes_to_yieldio():
        assert _state.current_kernel() is not None
""")
    run(pytester, "-p", "asyncio").assert_outcomes(passed=4)


def test_both_auto_modes_is_a_usage_error(pytester):
    pytester.makeini("[pytest]\nyieldio_mode = auto\nasyncio_mode = auto\n")
    pytester.makepyfile("async def test_x(): pass")
    result = run(pytester, "-p", "asyncio")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*both claim every async test*"])


def test_a_test_marked_for_both_is_an_error(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.yieldio
        @pytest.mark.asyncio
        async def test_x():
            pass
    """)
    result = run(pytester, "-p", "asyncio")
    assert "marked both yieldio and asyncio" in result.stdout.str() + result.stderr.str()


def test_hypothesis_given_on_async_tests(pytester):
    pytest.importorskip("hypothesis")
    pytester.makepyfile("""
        import pytest, yieldio
        from hypothesis import HealthCheck, given, settings, strategies as st
        from yieldio import _state

        kernels = set()

        # The clock fixture is shared by the examples; the plugin rewinds it for each run.
        @settings(max_examples=20, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(n=st.integers(0, 100))
        @pytest.mark.yieldio
        async def test_each_example_is_a_run(n, autojump_clock):
            kernels.add(id(_state.current_kernel()))
            await yieldio.sleep(n)
            assert yieldio.current_time() == n

        def test_many_runs():
            assert len(kernels) > 1

        @settings(max_examples=50, deadline=None, database=None)
        @given(st.integers(0, 1000))
        @pytest.mark.yieldio
        async def test_shrinks(n):
            await yieldio.sleep(0)
            assert n < 10
    """)
    result = run(pytester)
    result.assert_outcomes(passed=2, failed=1)
    # Hypothesis < 6.16x says "Falsifying example:", newer "Failing test case:".
    result.stdout.re_match_lines([r".*(Falsifying example|Failing test case): test_shrinks\(",
                                  r".*n=10,"])


def test_teardown_errors_of_several_async_fixtures_are_all_reported(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.fixture
        async def first():
            yield 1
            raise KeyError("first teardown")

        @pytest.fixture
        async def second():
            yield 2
            raise ValueError("second teardown")

        @pytest.mark.yieldio
        async def test_passes_but_teardowns_fail(first, second):
            pass
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    # The last set up is torn down first: its error is reported, the other noted.
    result.stdout.fnmatch_lines([
        "*ValueError: second teardown*",
        "*also, in an async fixture's teardown: KeyError('first teardown')*",
    ])


def test_a_fixture_whose_scope_cancels_the_test_is_named(pytester):
    pytester.makepyfile("""
        import pytest, yieldio

        @pytest.fixture
        async def crashy():
            with yieldio.move_on_after(1):  # cancels the test, then swallows the Cancelled
                yield

        @pytest.mark.yieldio
        async def test_waits(crashy, autojump_clock):
            await yieldio.sleep(10)
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*the test was cancelled by a cancel scope in async fixture 'crashy' before it finished*"])


def test_explore_zero_is_a_usage_error(pytester):
    pytester.makepyfile("def test_x(): pass")
    result = run(pytester, "--yieldio-explore", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--yieldio-explore needs K >= 1*"])


def test_bad_marker_arguments_are_errors_that_name_them(pytester):
    # Regression: explore=-2 built an empty list of seeds, so the test passed
    # without running; explore=0 fell back to the command line; a misspelt
    # keyword was ignored; seed="x" ran and was "replayed" as seed=x.
    pytester.makepyfile("""
        import pytest

        @pytest.mark.yieldio(explore=-2)
        async def test_negative():
            assert False, "body ran"

        @pytest.mark.yieldio(explore=0)
        async def test_zero():
            assert False, "body ran"

        @pytest.mark.yieldio(explore=2.5)
        async def test_float():
            assert False, "body ran"

        @pytest.mark.yieldio(sed=3)
        async def test_typo():
            pass

        @pytest.mark.yieldio(seed="x")
        async def test_seed_str():
            assert False, "body ran"

        @pytest.mark.yieldio(seed=True)
        async def test_seed_bool():
            assert False, "body ran"

        @pytest.mark.yieldio(3)
        async def test_positional():
            pass

        @pytest.mark.yieldio(seed=7, explore=2)
        async def test_good():
            pass
    """)
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=7)
    result.stdout.fnmatch_lines_random([
        "@pytest.mark.yieldio(explore=-2): explore needs an int K >= 1, as --yieldio-explore does",
        "@pytest.mark.yieldio(explore=0): explore needs an int K >= 1*",
        "@pytest.mark.yieldio(explore=2.5): explore needs an int K >= 1*",
        "@pytest.mark.yieldio: unknown keyword 'sed'; it takes seed=N*",
        "@pytest.mark.yieldio(seed='x'): seed needs an int (or None)",
        "@pytest.mark.yieldio(seed=True): seed needs an int (or None)",
        "@pytest.mark.yieldio(3,): it takes keyword arguments only*",
    ])
    assert "body ran" not in result.stdout.str()


def test_async_fixture_with_hypothesis_is_a_usage_error(pytester):
    pytest.importorskip("hypothesis")
    pytester.makepyfile("""
        import pytest
        from hypothesis import given, strategies as st

        @pytest.fixture
        async def resource():
            return 1

        @given(st.integers())
        @pytest.mark.yieldio
        async def test_x(resource, n):
            pass
    """)
    result = run(pytester)
    result.stdout.fnmatch_lines(["*async fixture 'resource' with @hypothesis.given*"])
    assert result.ret != 0


def test_autouse_and_usefixtures_async_fixtures_are_set_up_and_torn_down(pytester):
    # Async fixtures the test does not take as arguments (autouse, usefixtures)
    # used to be silently skipped: neither their setup nor teardown ran.
    pytester.makepyfile("""
        import pytest, yieldio

        events = []

        class TestAsync:  # the autouse fixture applies to this class only
            @pytest.fixture(autouse=True)
            async def auto(self):
                events.append("auto setup")
                yield
                events.append("auto teardown")

            @pytest.fixture
            async def used(self):
                await yieldio.sleep(0)
                events.append("used setup")

            @pytest.mark.usefixtures("used")
            @pytest.mark.yieldio
            async def test_it(self):
                assert events == ["auto setup", "used setup"], events
                events.append("test")

        def test_order():
            assert events == ["auto setup", "used setup", "test", "auto teardown"], events
    """)
    run(pytester).assert_outcomes(passed=2)


def test_asyncio_auto_mode_with_a_yieldio_test_names_the_auto_mode(pytester):
    # Regression: pytest-asyncio's auto mode marks every async test asyncio, so
    # a test marked only yieldio was refused as "marked both yieldio and
    # asyncio; keep one" -- a mark the user never wrote.
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    pytester.makepyfile("""
        import pytest

        @pytest.mark.yieldio
        async def test_x():
            pass
    """)
    result = run(pytester, "-p", "asyncio")
    out = result.stdout.str() + result.stderr.str()
    assert "asyncio_mode = 'auto' marks every async test asyncio" in out
    assert "marked both yieldio and asyncio" not in out


def test_a_deadlocked_test_is_named_in_the_report_without_the_plugin_internals(pytester):
    pytester.makepyfile("""
        import pytest, yieldio

        @pytest.mark.yieldio
        async def test_stuck():
            await yieldio.Event().wait()
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    # The test's task is named after the test (not 'main', a name the user never wrote).
    result.stdout.fnmatch_lines(["*Deadlock: every task is blocked*",
                                 "*task 1 'test_stuck' ?waiting? -- waiting on Event.wait",
                                 "*at test_stuck (*test_a_deadlocked_test*.py:5)"])
    assert "def pytest_pyfunc_call" not in out and "def run(" not in out


def test_task_group_fixture_is_cancelled_when_the_test_ends(pytester):
    pytester.makepyfile("""
        import pytest, yieldio

        beats = []

        async def heartbeat():
            while True:
                beats.append(yieldio.current_time())
                await yieldio.sleep(1)

        @pytest.mark.yieldio
        async def test_background(task_group, autojump_clock):
            assert isinstance(task_group, yieldio.TaskGroup)
            task_group.spawn(heartbeat)
            await yieldio.sleep(2.5)

        def test_it_stopped():
            assert beats == [0.0, 1.0, 2.0]

        @pytest.mark.yieldio
        async def test_a_crash_in_it_fails_the_test(task_group):
            async def boom():
                raise ValueError("background crash")
            task_group.spawn(boom)
            await yieldio.sleep_forever()
    """)
    result = run(pytester)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*ValueError: background crash*"])


def test_explore_restores_the_networks_links_for_each_seed(pytester):
    # A test that degraded a link part way left it degraded for the next
    # seed: seed 1 failed under --yieldio-explore, and its replay passed.
    pytester.makepyfile("""
        import pytest, yieldio

        @pytest.mark.yieldio
        async def test_link(sim_network, autojump_clock):
            assert sim_network._links == {}, "a fresh link has no latency"
            sim_network.set_link("127.0.0.1", "10.0.0.2", latency=0.5)
            await yieldio.sleep(0)
    """)
    run(pytester, "--yieldio-explore", "5").assert_outcomes(passed=1)


def test_a_seed_after_the_first_says_that_sync_fixtures_were_shared(pytester):
    # The replay of a failure that came from state an earlier seed left in a
    # sync fixture passes: the report now says so.
    pytester.makepyfile("""
        import pytest

        @pytest.fixture
        def registry():
            return {}

        @pytest.mark.yieldio
        async def test_register_once(registry):
            assert "alice" not in registry, "alice registered twice"
            registry["alice"] = 1
    """)
    result = run(pytester, "--yieldio-explore", "3")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["failed with seed 1 (seed 2 of 3 explored)",
                                 "replay: pytest *--yieldio-seed 1",
                                 "(the seeds before it ran with the same sync fixture values*"])


def test_the_replay_line_works_from_the_directory_pytest_was_started_in(pytester,
                                                                        monkeypatch):
    # The node id is relative to the root directory: started in tests/, the
    # printed 'tests/test_fail.py::...' was "file or directory not found".
    pytester.makeini("[pytest]\n")  # the root directory: the node id says tests/...
    sub = pytester.mkpydir("tests")
    sub.joinpath("test_fail.py").write_text(
        "import pytest\n\n\n@pytest.mark.yieldio\nasync def test_fails():\n    assert False\n")
    monkeypatch.chdir(sub)
    result = run(pytester, "--yieldio-seed", "4", "test_fail.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["replay: pytest 'test_fail.py::test_fails' --yieldio-seed 4"])
