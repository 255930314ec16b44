"""Regression tests from a bug hunt in yieldio.testing (the pytest plugin, clocks, streams)."""

from __future__ import annotations

import importlib.metadata

import pytest

import yieldio.testing._pytest_plugin  # noqa: F401  (imported once, outside pytester runs)


def _entry_point_installed() -> bool:
    return any(ep.value == "yieldio.testing._pytest_plugin"
               for ep in importlib.metadata.entry_points(group="pytest11"))


PLUGIN = [] if _entry_point_installed() else ["-p", "yieldio.testing._pytest_plugin"]
try:
    import pytest_asyncio  # noqa: F401

    QUIET = ["-o", "asyncio_default_fixture_loop_scope=function"]
except ImportError:
    QUIET = []


def run_pytest(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                              "-W", "ignore::pytest.PytestAssertRewriteWarning", *QUIET, *args)


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
    run_pytest(pytester).assert_outcomes(passed=2)
