"""yieldio.run()'s options: debug/trace/monitor, their environment variables, bad values."""

from __future__ import annotations

import functools
import gc
import json
import os
import warnings
from typing import Any

import pytest

import yieldio
from yieldio._runopts import instruments_for
from yieldio.debug._monitor import MonitorError, MonitorServer
from yieldio.debug._never_awaited import NeverAwaitedReporter
from yieldio.debug._slow import DEFAULT_THRESHOLD, SlowStepDetector
from yieldio.debug._trace import TraceRecorder
from yieldio.testing import SimNetwork, VirtualClock


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("YIELDIO_DEBUG", "YIELDIO_MONITOR", "YIELDIO_SLOW_STEP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YIELDIO_MONITOR_DIR", str(tmp_path / "mon"))


def kinds(opts):
    return [type(i).__name__ for i in instruments_for(opts)]


async def answer():
    await yieldio.sleep(0)
    return 42


# -- debug ------------------------------------------------------------------------
def test_debug_true_runs_with_slow_step_detector_and_never_awaited_reporter():
    insts = instruments_for({"debug": True})
    assert [type(i) for i in insts] == [SlowStepDetector, NeverAwaitedReporter]
    assert insts[0].threshold == DEFAULT_THRESHOLD
    assert yieldio.run(answer, debug=True) == 42


def test_debug_number_is_the_slow_step_threshold():
    (slow, _never) = instruments_for({"debug": 0.02})
    assert slow.threshold == 0.02
    assert yieldio.run(answer, debug=0.5) == 42


def test_debug_dict_picks_tools():
    assert kinds({"debug": {"slow_step": None, "never_awaited": False}}) == []
    assert kinds({"debug": {"never_awaited": False}}) == ["SlowStepDetector"]
    (slow,) = instruments_for({"debug": {"slow_step": 0.3, "never_awaited": False}})
    assert slow.threshold == 0.3
    assert kinds({"debug": False}) == []


@pytest.mark.parametrize("bad, exc, match", [
    ({"slowstep": 1}, TypeError, r"unknown keys \['slowstep'\].*known: 'slow_step'"),
    ("yes", TypeError, r"takes True/False, a slow-step threshold in seconds, or a dict"),
    (0, ValueError, r"must be seconds > 0, not 0.0"),
    (-1.5, ValueError, r"must be seconds > 0"),
    ({"slow_step": True}, ValueError, r"must be seconds > 0, not True"),
    ({"slow_step": "0.1"}, ValueError, r"must be seconds > 0, not '0.1'"),
])
def test_bad_debug_value_fails_before_the_program_runs(bad, exc, match):
    ran = []

    async def main():
        ran.append(1)

    with pytest.raises(exc, match=match):
        yieldio.run(main, debug=bad)
    assert ran == []


@pytest.mark.parametrize("flag", ["no", "false", 0, None])
def test_debug_never_awaited_takes_a_bool_only(flag: Any) -> None:
    """bool("no") is True: a string meant to turn the reporter off turned it on."""

    async def main() -> None:
        pass

    with pytest.raises(TypeError, match=r"'never_awaited': \.\.\.\}\) takes True or False"):
        yieldio.run(main, debug={"never_awaited": flag})


def test_yieldio_debug_env_turns_debug_on_and_explicit_false_wins(monkeypatch):
    monkeypatch.setenv("YIELDIO_DEBUG", " Yes ")
    assert kinds({}) == ["SlowStepDetector", "NeverAwaitedReporter"]
    assert kinds({"debug": False}) == []
    assert yieldio.run(answer) == 42
    monkeypatch.setenv("YIELDIO_DEBUG", "0")
    assert kinds({}) == []
    assert yieldio.run(answer) == 42


def test_bad_yieldio_debug_env_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("YIELDIO_DEBUG", "maybe")
    with pytest.raises(ValueError, match=r"YIELDIO_DEBUG='maybe': use 1 or 0"):
        yieldio.run(answer)
    # An explicit option does not even read the variable.
    assert yieldio.run(answer, debug=False) == 42


def test_yieldio_slow_step_env_sets_the_threshold(monkeypatch):
    monkeypatch.setenv("YIELDIO_SLOW_STEP", "0.25")
    (slow, _never) = instruments_for({"debug": True})
    assert slow.threshold == 0.25
    # An explicit threshold wins over the environment.
    (slow, _never) = instruments_for({"debug": 0.5})
    assert slow.threshold == 0.5


@pytest.mark.parametrize("raw, match", [
    ("fast", r"YIELDIO_SLOW_STEP='fast': expected seconds, like 0.1"),
    ("-1", r"YIELDIO_SLOW_STEP='-1': must be > 0"),
    ("nan", r"YIELDIO_SLOW_STEP='nan': must be > 0"),
])
def test_bad_yieldio_slow_step_env(monkeypatch, raw, match):
    monkeypatch.setenv("YIELDIO_SLOW_STEP", raw)
    with pytest.raises(ValueError, match=match):
        instruments_for({"debug": True})
    # Not read at all when debug mode is off.
    assert instruments_for({"debug": False}) == []


# -- trace ------------------------------------------------------------------------
def test_trace_path_writes_a_chrome_trace(tmp_path):
    path = tmp_path / "trace.json"
    assert yieldio.run(answer, trace=str(path)) == 42
    assert "traceEvents" in json.loads(path.read_text()) or json.loads(path.read_text())


def test_trace_accepts_pathlike_dict_and_recorder(tmp_path):
    (rec,) = instruments_for({"trace": tmp_path / "a.json"})
    assert isinstance(rec, TraceRecorder) and rec.path == str(tmp_path / "a.json")
    (rec,) = instruments_for({"trace": {"path": tmp_path / "b.json", "max_events": 10,
                                         "wakeups": True}})
    assert rec.max_events == 10 and rec.wakeups is True
    mine = TraceRecorder(tmp_path / "c.json")
    assert instruments_for({"trace": mine}) == [mine]
    assert instruments_for({"trace": False}) == []


@pytest.mark.parametrize("bad, exc, match", [
    ({"max_events": 5}, TypeError, r"trace=\{...\}\) needs a 'path'"),
    ({"path": "t.json", "wakeup": True}, TypeError, r"unknown keys \['wakeup'\]"),
    (42, TypeError, r"takes a file path \(or a dict with 'path'\), not 42"),
    ({"path": "t.json", "max_events": 0}, ValueError, r"max_events must be a positive int"),
    ("/no/such/dir/t.json", FileNotFoundError, r"directory '/no/such/dir' does not exist"),
])
def test_bad_trace_value(bad, exc, match):
    with pytest.raises(exc, match=match):
        yieldio.run(answer, trace=bad)


# -- monitor ----------------------------------------------------------------------
def test_monitor_true_serves_during_the_run_and_cleans_up(tmp_path):
    async def main():
        await yieldio.sleep(0)
        return os.listdir(tmp_path / "mon")

    during = yieldio.run(main, monitor=True)
    assert any(name.endswith(".sock") for name in during)
    assert not [n for n in os.listdir(tmp_path / "mon") if n.endswith(".sock")]


def test_monitor_path_and_instance(tmp_path):
    sock = tmp_path / "app.sock"
    (server,) = instruments_for({"monitor": sock})
    assert isinstance(server, MonitorServer) and server.path == str(sock)
    mine = MonitorServer(str(tmp_path / "b.sock"))
    assert instruments_for({"monitor": mine}) == [mine]
    assert instruments_for({"monitor": False}) == []


def test_yieldio_monitor_env(monkeypatch):
    monkeypatch.setenv("YIELDIO_MONITOR", "on")
    assert kinds({}) == ["MonitorServer"]
    assert kinds({"monitor": None}) == []


def test_bad_monitor_value():
    with pytest.raises(TypeError, match=r"takes True/False or a socket path, not 3"):
        yieldio.run(answer, monitor=3)
    with pytest.raises(MonitorError, match="does not exist"):
        yieldio.run(answer, monitor="/no/such/dir/app.sock")


def test_unknown_options_are_refused():
    with pytest.raises(TypeError, match=r"unexpected options \['debgu'\]"):
        yieldio.run(answer, debgu=True)
    with pytest.raises(TypeError, match=r"unknown debugging options \['tracing'\]"):
        instruments_for({"tracing": True})


def test_refused_options_close_the_coroutine_given():
    # No "coroutine 'answer' was never awaited" warning for a refused call.
    for opts in ({"debgu": True}, {"debug": "yes"}, {"trace": 42}):
        coro = answer()
        with pytest.raises(TypeError):
            yieldio.run(coro, **opts)
        assert coro.cr_frame is None, opts


# -- clock=, instruments=, seed= -------------------------------------------------
class _NoAutojumpClock:
    def current_time(self) -> float:
        return 0.0

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return 0.0


BAD_RUN_ARGS: list[tuple[dict[str, Any], str]] = [
    ({"clock": VirtualClock}, r"not the class VirtualClock; did you mean VirtualClock\(\)"),
    ({"clock": 5}, r"takes a clock .* lacks current_time, deadline_to_sleep_time, autojump"),
    ({"clock": _NoAutojumpClock()}, r"lacks autojump"),
    ({"instruments": 5}, r"takes a list of instruments, not 5"),
    ({"seed": [1]}, r"takes an int \(or None\), not \[1\]"),
    # Regression: random.Random takes these, so run() did; a seed is an int
    # to print and replay, and True or "abc" is a slip.
    ({"seed": True}, r"takes an int \(or None\), not True"),
    ({"seed": "abc"}, r"takes an int \(or None\), not 'abc'"),
    ({"seed": 1.5}, r"takes an int \(or None\), not 1.5"),
    # Regression: network= was not checked; the class failed at the first
    # listen with "missing 1 required positional argument", a string with
    # an AttributeError.
    ({"network": SimNetwork}, r"not the class SimNetwork; did you mean SimNetwork\(\)"),
    ({"network": "x"}, r"takes a network \(such as yieldio.testing.SimNetwork\(\).*not 'x'"),
]


@pytest.mark.parametrize("kwargs, match", BAD_RUN_ARGS)
def test_run_with_a_bad_argument_fails_clearly_and_leaves_no_coroutine_behind(
        kwargs: dict[str, Any], match: str) -> None:
    """A bad clock, instruments, seed or network: TypeError before anything runs.

    Before, the coroutine was made first and never closed ("coroutine ...
    was never awaited"), and the error was an AttributeError from the
    kernel (or, for a clock class, a TypeError at the first sleep).
    """
    ran = []

    async def main() -> None:
        ran.append(1)
        await yieldio.sleep(1)

    # run(main, ...): the function is not even called.
    with pytest.raises(TypeError, match=match):
        yieldio.run(main, **kwargs)
    # run(main(), ...): the coroutine object given is closed.
    coro = main()
    with pytest.raises(TypeError, match=match):
        yieldio.run(coro, **kwargs)
    assert coro.cr_frame is None  # closed: no "never awaited" warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        del coro
        gc.collect()
    assert ran == []


def test_run_with_a_good_custom_clock_seed_and_partial_network_still_works() -> None:
    """The checks refuse only slips: a custom clock, an int seed and a network
    that provides only some of the methods (here a resolver) are fine."""

    class Clock(_NoAutojumpClock):
        autojump = False

    class Resolver:
        async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
            return []

    async def main() -> int:
        await yieldio.sleep(0)
        return 7

    assert yieldio.run(main, clock=Clock(), instruments=(), seed=12345678901234567890,
                       network=Resolver()) == 7


# -- what run() accepts ---------------------------------------------------------
def test_run_accepts_any_callable_returning_a_coroutine():
    async def add(a, b):
        await yieldio.sleep(0)
        return a + b

    assert yieldio.run(functools.partial(add, 1), 2) == 3


def test_run_refuses_a_callable_that_returns_no_coroutine():
    with pytest.raises(TypeError, match=r"'int' returned 0, which is not a coroutine"):
        yieldio.run(int)
    with pytest.raises(TypeError, match=r"returned 3, which is not a coroutine"):
        yieldio.run(functools.partial(int, 3))


def test_running_an_async_generator_function_says_what_it_is() -> None:
    """The old hint ("is it a plain function? use 'async def'") pointed in a circle."""

    async def numbers() -> Any:
        yield 1

    with pytest.raises(TypeError, match=r"numbers' returned .* \(it is an async generator "
                                        r"function .*'async for'"):
        yieldio.run(numbers)

    async def main() -> None:
        async with yieldio.TaskGroup() as tg:
            tg.spawn(numbers)

    with pytest.raises(ExceptionGroup) as info:
        yieldio.run(main)
    (err,) = info.value.exceptions
    assert isinstance(err, TypeError) and "async generator function" in str(err)


def test_run_accepts_a_function_returning_a_hand_written_coroutine():
    class Wrapper:
        """Not a generator or coroutine type, but shaped like one (send/throw/close)."""

        def __init__(self, inner):
            self.inner = inner

        def send(self, value):
            return self.inner.send(value)

        def throw(self, *exc):
            return self.inner.throw(*exc)

        def close(self):
            self.inner.close()

    async def inner():
        await yieldio.sleep(0)
        return "done"

    def make():
        return Wrapper(inner())

    assert yieldio.run(make) == "done"


def test_main_that_swallows_the_deadlock_cancellation_still_raises_deadlock():
    async def main():
        try:
            await yieldio.Event().wait()
        except yieldio.Cancelled:
            return "swallowed"

    with pytest.raises(yieldio.Deadlock, match="every task is blocked"):
        yieldio.run(main)
