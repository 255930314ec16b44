"""pytest plugin: run ``async def`` tests and their async fixtures under yieldio.

Registered through the ``pytest11`` entry point ``yieldio``, so installing
yieldio is enough::

    @pytest.mark.yieldio
    async def test_echo(autojump_clock, sim_network):
        ...

* Opt in per test with ``@pytest.mark.yieldio`` (or ``pytestmark`` for a
  module), or for a whole project with ``yieldio_mode = "auto"`` in the pytest
  config: then every ``async def`` test runs under yieldio, except tests that
  belong to another async plugin (marked ``asyncio``, ``anyio`` or ``trio``,
  or using ``anyio_backend``) -- so pytest-asyncio can run its own tests in
  the same session.
* Async fixtures (coroutine or async generator functions) used by a yieldio
  test run inside the *same* ``yieldio.run`` as the test: setup in
  dependency order, then the test, then teardown in reverse order. They must
  be function-scoped. If a fixture's cancel scope (say a TaskGroup whose
  background task crashed) cancels the test, that cancellation is thrown into
  the fixture at its ``yield``, so the fixture's error is what gets reported.
* Fixtures ``autojump_clock`` (the test runs under this
  ``VirtualClock(autojump=True)``) and ``sim_network`` (a ``SimNetwork``
  installed for the test's run). Override either by name in a conftest to
  configure it (``return SimNetwork(latency=0.05)``). ``task_group``: a
  TaskGroup for background tasks, cancelled when the test ends.
* ``--yieldio-seed N`` (or ``random``) runs tests with a seeded schedule;
  ``--yieldio-explore K`` runs each yieldio test under K seeds (from the
  ``--yieldio-seed`` value, default 0). ``@pytest.mark.yieldio(seed=..,
  explore=..)`` does the same for one test. A failing test shows the seed
  that reproduces it in a "yieldio" report section.
"""

from __future__ import annotations

import functools
import inspect
import os
import random
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from .._exceptions import Cancelled, Deadlock
from .._run import run
from .._state import current_task
from .._taskgroup import TaskGroup
from ._clock import VirtualClock

if TYPE_CHECKING:
    from ._simnet import SimNetwork

_OTHER_PLUGIN_MARKS = ("asyncio", "anyio", "trio")
_IS_YIELDIO = pytest.StashKey[bool]()
_SEED = pytest.StashKey[Any]()
_REPORTED = pytest.StashKey[bool]()


# -- configuration -------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("yieldio", "yieldio async tests")
    group.addoption("--yieldio-seed", dest="yieldio_seed", default=None, metavar="N|random",
                    help="run yieldio tests with this schedule seed ('random': pick one "
                         "for the session and show it in the header)")
    group.addoption("--yieldio-explore", dest="yieldio_explore", type=int, default=None,
                    metavar="K", help="run each yieldio test under K seeded schedules")
    parser.addini("yieldio_mode", default="strict",
                  help="'strict': only tests marked @pytest.mark.yieldio run under yieldio; "
                       "'auto': every async def test not claimed by another async plugin")


def _mode(config: pytest.Config) -> str:
    mode = str(config.getini("yieldio_mode")).strip().lower() or "strict"
    if mode not in ("strict", "auto"):
        raise pytest.UsageError(f"yieldio_mode must be 'strict' or 'auto', not {mode!r}")
    return mode


def _asyncio_mode(config: pytest.Config) -> str | None:
    if not config.pluginmanager.hasplugin("asyncio"):
        return None
    try:
        value = config.getoption("asyncio_mode", None) or config.getini("asyncio_mode")
    except (ValueError, KeyError):
        return None
    return str(value).lower()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "yieldio(seed=None, explore=None): run this async test (and its async "
                   "fixtures) in one yieldio.run(), optionally under seeded schedules")
    mode = _mode(config)
    if mode == "auto" and _asyncio_mode(config) == "auto":
        raise pytest.UsageError(
            "yieldio_mode = 'auto' and asyncio_mode = 'auto' both claim every async test; "
            "set one of them to 'strict' and mark that plugin's tests")
    raw = config.getoption("yieldio_seed")
    seed: int | None
    if raw is None:
        seed = None
    elif str(raw).lower() == "random":
        seed = random.SystemRandom().randrange(2**32)
    else:
        try:
            seed = int(raw)
        except ValueError:
            raise pytest.UsageError(
                f"--yieldio-seed needs an integer or 'random', not {raw!r}") from None
    config.stash[_SEED] = seed
    explore = config.getoption("yieldio_explore")
    if explore is not None and explore < 1:
        raise pytest.UsageError("--yieldio-explore needs K >= 1")


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.stash.get(_SEED, None)
    explore = config.getoption("yieldio_explore")
    bits = [f"mode={_mode(config)}", f"seed={'FIFO' if seed is None else seed}"]
    if explore:
        bits.append(f"explore={explore}")
    return "yieldio: " + ", ".join(bits)


# -- which tests are ours ---------------------------------------------------------------
def _is_yieldio_test(item: Any) -> bool:
    if not isinstance(item, pytest.Function):
        return False
    known = item.stash.get(_IS_YIELDIO, None)
    if known is not None:
        return known
    ours = False
    if inspect.iscoroutinefunction(_test_function(item)):
        if item.get_closest_marker("yieldio") is not None:
            ours = True
        elif _mode(item.config) == "auto":
            ours = (not any(item.get_closest_marker(m) for m in _OTHER_PLUGIN_MARKS)
                    and "anyio_backend" not in item.fixturenames)
    if ours and item.get_closest_marker("asyncio") is not None:
        if _asyncio_mode(item.config) == "auto":
            # pytest-asyncio's auto mode adds the asyncio mark to every async
            # test (and claims every async fixture): the user did not write
            # it, so "keep one" would send them hunting for a mark that is not there.
            raise pytest.UsageError(
                f"{item.nodeid} is marked yieldio, but asyncio_mode = 'auto' marks every "
                "async test asyncio (and runs every async fixture); set asyncio_mode = "
                "'strict' and mark the asyncio tests @pytest.mark.asyncio")
        raise pytest.UsageError(f"{item.nodeid} is marked both yieldio and asyncio; keep one")
    item.stash[_IS_YIELDIO] = ours
    return ours


def _test_function(item: pytest.Function) -> Any:
    """The async function to run: the test itself, or the one inside ``@hypothesis.given``."""
    func = item.obj
    if getattr(func, "is_hypothesis_test", False):
        return getattr(getattr(func, "hypothesis", None), "inner_test", func)
    return func


# -- fixtures -----------------------------------------------------------------------------
@pytest.fixture
def autojump_clock() -> VirtualClock:
    """A ``VirtualClock(autojump=True)``; a yieldio test that uses it runs under it."""
    return VirtualClock(autojump=True)


@pytest.fixture
def sim_network() -> SimNetwork:
    """A :class:`SimNetwork`; a yieldio test that uses it runs with it installed."""
    from ._simnet import SimNetwork

    return SimNetwork()


@pytest.fixture
async def task_group() -> AsyncIterator[TaskGroup]:
    """A :class:`~yieldio.TaskGroup` for background tasks, cancelled when the test ends.

    (pytest-trio's ``nursery``.) A task in it that crashes cancels the test,
    and the crash is what gets reported.
    """
    async with TaskGroup() as tg:
        yield tg
        tg.cancel()


class _AsyncFixture:
    """What pytest caches for an async fixture of a yieldio test: set up later, in the run."""

    __slots__ = ("name", "func", "kwargs")

    def __init__(self, name: str, func: Any, kwargs: dict[str, Any]) -> None:
        self.name = name
        self.func = func
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return (f"<async fixture {self.name!r}: its value exists only inside the test's "
                "yieldio run; sync fixtures and request.getfixturevalue() cannot use it>")


def _resolve(fixturedef: Any, request: Any) -> Any:
    try:
        from _pytest.fixtures import resolve_fixture_function
    except ImportError:  # pragma: no cover - very old or very new pytest
        return fixturedef.func
    return resolve_fixture_function(fixturedef, request)


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Any:
    item = getattr(request, "_pyfuncitem", None)
    if item is None or not _is_yieldio_test(item):
        return None
    func = fixturedef.func
    is_async = inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
    if getattr(func, "_force_asyncio_fixture", False):
        return None  # a @pytest_asyncio.fixture: pytest-asyncio runs it
    kwargs = {name: request.getfixturevalue(name) for name in fixturedef.argnames}
    if not is_async:
        for name, value in kwargs.items():
            if isinstance(value, _AsyncFixture):
                raise pytest.UsageError(
                    f"sync fixture {fixturedef.argname!r} requests async fixture {name!r}: "
                    "its value exists only inside the test's yieldio run; make "
                    f"{fixturedef.argname!r} async too")
        return None
    if fixturedef.scope != "function":
        raise pytest.UsageError(
            f"async fixture {fixturedef.argname!r} has scope {fixturedef.scope!r}: yieldio runs "
            "each test, with its async fixtures, in its own yieldio.run(), so async fixtures "
            "must be function-scoped (a wider-scoped fixture can be sync)")
    placeholder = _AsyncFixture(fixturedef.argname, _resolve(fixturedef, request), kwargs)
    fixturedef.cached_result = (placeholder, fixturedef.cache_key(request), None)
    return placeholder


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # A bad marker is an error of the test before any fixture is set up.
    if _is_yieldio_test(item):
        _marker_kwargs(item)


# -- running a test ---------------------------------------------------------------------------
class _Fixtures:
    """Set up async fixtures in dependency order inside the run; tear down in reverse."""

    def __init__(self) -> None:
        self.values: dict[int, Any] = {}
        self.active: list[tuple[str, Any]] = []  # (name, async generator) to finish

    async def value(self, obj: Any) -> Any:
        if not isinstance(obj, _AsyncFixture):
            return obj
        if id(obj) in self.values:
            return self.values[id(obj)]
        kwargs = {k: await self.value(v) for k, v in obj.kwargs.items()}
        if inspect.isasyncgenfunction(obj.func):
            agen = obj.func(**kwargs)
            try:
                value = await agen.__anext__()
            except StopAsyncIteration:
                raise RuntimeError(f"async fixture {obj.name!r} did not yield a value") from None
            self.active.append((obj.name, agen))
        else:
            value = await obj.func(**kwargs)
        self.values[id(obj)] = value
        return value

    async def teardown(self, error: BaseException | None) -> BaseException | None:
        """Finish the fixtures; return the error the test should report (or None)."""
        teardown_errors: list[BaseException] = []
        while self.active:
            name, agen = self.active.pop()
            try:
                if isinstance(error, Cancelled):
                    # The test was cancelled, most likely by this fixture's own
                    # scope (its TaskGroup's task crashed): deliver it there.
                    await agen.athrow(error)
                else:
                    await agen.__anext__()
            except StopAsyncIteration:
                if isinstance(error, Cancelled):
                    error = RuntimeError(
                        f"the test was cancelled by a cancel scope in async fixture {name!r} "
                        "before it finished")
                continue
            except BaseException as exc:
                if exc is error:
                    continue
                if isinstance(error, Cancelled) and not isinstance(exc, Cancelled):
                    _blame(exc, error)
                if isinstance(error, Cancelled) or error is None and isinstance(exc, Cancelled):
                    error = exc
                else:
                    teardown_errors.append(exc)
                continue
            teardown_errors.append(RuntimeError(f"async fixture {name!r} yielded more than once"))
            await agen.aclose()
        if error is None and teardown_errors:
            error = teardown_errors.pop(0)
        for extra in teardown_errors:
            assert error is not None
            error.add_note(f"also, in an async fixture's teardown: {extra!r}")
        return error


def _blame(crash: BaseException, cancelled: Cancelled) -> None:
    """Report ``crash`` (a fixture's background failure) first, not the test's Cancelled.

    ``crash`` was raised while ``cancelled`` was thrown in, so pytest showed the
    Cancelled first -- with the source of yieldio's sleep() -- and the real
    error some hundred lines later. Hide that chain (``__context__`` still holds
    it) and keep the one useful fact it carried: where the test was.
    """
    crash.__suppress_context__ = True
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # yieldio's package
    frames = [f for f in traceback.extract_tb(cancelled.__traceback__)
              if not os.path.abspath(f.filename).startswith(ours + os.sep)]
    if frames:
        f = frames[-1]
        crash.add_note(f"yieldio: this error cancelled the test, at {f.filename}:{f.lineno} "
                       f"in {f.name}" + (f": {f.line}" if f.line else ""))


async def _test_main(testfunction: Any, testargs: dict[str, Any],
                     setup: list[Any] | None = None, name: str | None = None) -> None:
    """Set up the async fixtures (``setup`` first, in order), run the test, tear down.

    ``setup`` holds the fixtures the test uses but does not take as arguments
    (autouse ones, ``@pytest.mark.usefixtures``): they run all the same.
    ``name`` (the test's) names the task, for deadlock reports and the monitor.
    """
    if name is not None:
        current_task().name = name
    fixtures = _Fixtures()
    error: BaseException | None = None
    try:
        for obj in setup or ():
            await fixtures.value(obj)
        kwargs = {name: await fixtures.value(v) for name, v in testargs.items()}
        await testfunction(**kwargs)
    except BaseException as exc:
        error = exc
    error = await fixtures.teardown(error)
    if error is not None:
        raise error


_MARKER_KEYWORDS = ("seed", "explore")


def _bad_marker(message: str) -> NoReturn:
    # The test errors at setup with just the message (pytest names the test;
    # no traceback into this plugin), as "--yieldio-explore needs K >= 1" does.
    pytest.fail(message, pytrace=False)


def _marker_kwargs(item: pytest.Item) -> dict[str, Any]:
    """The ``@pytest.mark.yieldio(...)`` keywords of ``item``, checked as the CLI's are.

    Unchecked, ``explore=-2`` built an empty range of seeds (the test passed
    without running), ``explore=0`` fell back to the command line, a typo such
    as ``sed=3`` was ignored and ``seed="x"`` was "replayed" as ``seed=x``.
    """
    marker = item.get_closest_marker("yieldio")
    if marker is None:
        return {}
    if marker.args:
        _bad_marker(f"@pytest.mark.yieldio{marker.args!r}: it takes keyword arguments "
                    "only (seed=N, explore=K)")
    unknown = sorted(set(marker.kwargs) - set(_MARKER_KEYWORDS))
    if unknown:
        _bad_marker(f"@pytest.mark.yieldio: unknown keyword {', '.join(map(repr, unknown))}; "
                    "it takes seed=N (an int, or None) and explore=K (an int >= 1)")
    seed = marker.kwargs.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        _bad_marker(f"@pytest.mark.yieldio(seed={seed!r}): seed needs an int (or None)")
    explore = marker.kwargs.get("explore")
    if explore is not None and (isinstance(explore, bool) or not isinstance(explore, int)
                                or explore < 1):
        _bad_marker(f"@pytest.mark.yieldio(explore={explore!r}): explore needs an int "
                    "K >= 1, as --yieldio-explore does")
    return dict(marker.kwargs)


def _seeds(item: pytest.Function) -> list[int | None]:
    mark_kw = _marker_kwargs(item)
    seed = mark_kw.get("seed", item.config.stash.get(_SEED, None))
    explore = mark_kw.get("explore")
    if explore is None:  # not 'or': only an absent K defers to the command line
        explore = item.config.getoption("yieldio_explore")
    if not explore:
        return [seed]
    base = seed if seed is not None else 0
    return list(range(base, base + int(explore)))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not _is_yieldio_test(pyfuncitem):
        return None
    __tracebackhide__ = True  # a failure shows the test's frames, not ours
    funcargs = pyfuncitem.funcargs
    testargs = {arg: funcargs[arg] for arg in pyfuncitem._fixtureinfo.argnames}
    # Every async fixture the test uses, in pytest's order: autouse fixtures and
    # those of @pytest.mark.usefixtures are not arguments of the test, but
    # must be set up (and torn down) in its run all the same.
    setup = [funcargs[name] for name in pyfuncitem.fixturenames
             if isinstance(funcargs.get(name), _AsyncFixture)]
    if getattr(pyfuncitem.obj, "is_hypothesis_test", False):
        return _hypothesis_call(pyfuncitem, testargs, setup)
    for seed, i, seeds, options in _runs(pyfuncitem):
        try:
            run(_test_main, pyfuncitem.obj, testargs, setup, pyfuncitem.name, **options)
        except BaseException as exc:
            if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
                _report_seed(pyfuncitem, exc, seed, i, seeds)
            if isinstance(exc, Deadlock):
                # Raised by run() itself: its traceback is run()'s source and
                # ours; the report (the task tree, with the test's line) says it all.
                raise exc.with_traceback(None) from None
            raise
    return True


def _runs(item: pytest.Function) -> Iterator[tuple[int | None, int, list[int | None],
                                                   dict[str, Any]]]:
    """For each seed to run: (seed, index, all seeds, keyword arguments for run())."""
    clock = item.funcargs.get("autojump_clock")
    network: Any = item.funcargs.get("sim_network")
    seeds = _seeds(item)
    # A test may change its network's links or names as it runs (a link
    # that degrades): each seed starts from the configuration the first
    # one had, as a replay of that seed alone would.
    configured = network._configuration() if hasattr(network, "_configuration") else None
    for i, seed in enumerate(seeds):
        if isinstance(clock, VirtualClock):
            clock._rewind()  # every seed starts at the same time, as in a replay
        if configured is not None and i:
            network._restore_configuration(configured)  # (a SimNetwork: it has _configuration)
        options: dict[str, Any] = {"seed": seed, "clock": clock}
        if network is not None:
            options["network"] = network
        yield seed, i, seeds, options


def _hypothesis_call(item: pytest.Function, testargs: dict[str, Any],
                     setup: list[Any]) -> bool:
    """``@given`` on an async test: hypothesis calls the inner test once per example;
    each call becomes its own yieldio run (under every seed asked for)."""
    for value in setup:
        if isinstance(value, _AsyncFixture):
            raise pytest.UsageError(
                f"{item.nodeid}: async fixture {value.name!r} with @hypothesis.given: fixtures are "
                "set up once for all examples, outside any run; use a sync fixture")
    hypothesis_handle = item.obj.hypothesis
    inner = hypothesis_handle.inner_test

    @functools.wraps(inner)
    def run_example(*args: Any, **kwargs: Any) -> None:
        for seed, i, seeds, options in _runs(item):
            try:
                run(functools.partial(inner, *args, **kwargs), **options)
            except BaseException as exc:
                if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    _report_seed(item, exc, seed, i, seeds)
                raise

    hypothesis_handle.inner_test = run_example
    try:
        item.obj(**testargs)
    finally:
        hypothesis_handle.inner_test = inner
    return True


def _node_from_here(item: pytest.Function) -> str:
    """The test's node id as pytest takes it in the directory pytest was started in.

    Node ids are relative to the root directory; started in a subdirectory,
    pytest would not find ``tests/test_x.py`` there.
    """
    path, sep, rest = item.nodeid.partition("::")
    invoked = item.config.invocation_params.dir
    try:
        relative = os.path.relpath(item.config.rootpath / path, invoked)
    except ValueError:  # (another drive, on Windows)
        return item.nodeid
    return relative + sep + rest


def _report_seed(item: pytest.Function, exc: BaseException, seed: int | None, index: int,
                 seeds: list[int | None]) -> None:
    if seed is None:
        text = ("failed in FIFO order (no seed): it fails without any shuffling, so "
                "rerunning it reproduces it; --yieldio-explore 100 tries 100 shuffled "
                "schedules, for failures that only some orders show")
        note = None
    else:
        where = f" (seed {index + 1} of {len(seeds)} explored)" if len(seeds) > 1 else ""
        marker = item.get_closest_marker("yieldio")
        mark_kw = marker.kwargs if marker is not None else {}
        if "seed" in mark_kw or "explore" in mark_kw:
            # The marker's seeds win over --yieldio-seed (the test's own pin
            # is the more specific): only the marker can replay this one.
            how = f"@pytest.mark.yieldio(seed={seed}) on the test"
            text = f"failed with seed {seed}{where}\nreplay: {how}"
        else:
            how = f"--yieldio-seed {seed}"
            text = (f"failed with seed {seed}{where}\n"
                    f"replay: pytest '{_node_from_here(item)}' --yieldio-seed {seed}")
        if index:
            # Sync fixtures are made once per test item, not per seed: state a
            # test leaves in one (a registry it fills) meets the next seed.
            text += ("\n(the seeds before it ran with the same sync fixture values: if the "
                     "replay passes, the failure came from state an earlier seed left in one "
                     "of them)")
        note = f"yieldio: failed with seed {seed}; replay with {how}"
    if not item.stash.get(_REPORTED, False):  # once, even if hypothesis retries examples
        item.stash[_REPORTED] = True
        item.add_report_section("call", "yieldio", text)
    if note is not None:
        try:
            exc.add_note(note)
        except Exception:  # pragma: no cover - an exception type that refuses notes
            pass
