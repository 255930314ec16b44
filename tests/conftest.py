"""Shared test fixtures: every test is checked for leaked file descriptors and threads."""

from __future__ import annotations

import gc
import os
import signal
import threading

import pytest

# A shell starts a background job ('bash .ci/run &', nohup, some CI
# runners) with SIGINT ignored, and an ignored signal stays ignored across
# exec: Python then installs no KeyboardInterrupt handler, here or in the
# programs the tests start and stop with Ctrl-C. Handling it here makes
# those children start with the default again, as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _open_fds() -> set[int]:
    return {int(x) for x in os.listdir("/proc/self/fd")}


def _leaked_fds(before: set[int]) -> set[int]:
    leaked = _open_fds() - before
    # The fd used by listdir itself comes and goes; resolve what is left.
    return {fd for fd in leaked if os.path.exists(f"/proc/self/fd/{fd}")}


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest):
    """Fail a test that leaves file descriptors or non-daemon threads behind."""
    if request.node.get_closest_marker("allow_leaks"):
        yield
        return
    before = _open_fds()
    threads_before = {t for t in threading.enumerate() if not t.daemon}
    # Set aside every object alive now (gc.freeze), so that the collection
    # after the test looks only at what the test made: a full collection of
    # the session's heap cost some 60 ms after each test. Only when that
    # finds a leak is the whole heap collected (a cycle through an older
    # object may hold the fd) before the verdict: the same verdict as a full
    # collection, which gc_after_each_module also makes once per module.
    gc.freeze()
    yield
    gc.collect()
    leaked = _leaked_fds(before)
    if leaked:
        gc.unfreeze()
        gc.collect()
        leaked = _leaked_fds(before)
    if leaked:
        targets = {}
        for fd in leaked:
            try:
                targets[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                pass
        if targets:
            pytest.fail(f"file descriptors leaked: {targets}")
    extra = {t for t in threading.enumerate() if not t.daemon} - threads_before
    extra = {t for t in extra if t.is_alive()}
    if extra:
        pytest.fail(f"threads leaked: {extra}")


@pytest.fixture(autouse=True, scope="module")
def gc_after_each_module():
    """Collect the whole heap once per module, including what no_leaks froze."""
    yield
    gc.unfreeze()
    gc.collect()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_leaks: skip the fd/thread leak check")
    # pytester (pytest inside a test) for tests/testing and tests/debug. Loaded
    # here because pytest refuses a `pytest_plugins = [...]` line in a
    # conftest below the root directory.
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")
