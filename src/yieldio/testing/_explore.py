"""``explore()``: run a test under many seeded schedules; report a seed that fails.

``yieldio.run(main, seed=N)`` makes the kernel shuffle the order of the tasks
that are ready together (and of timer and I/O wake-ups that happen together)
with ``random.Random(N)``; in a seeded run every fast-path operation is also a
schedule point. With a :class:`VirtualClock` and a :class:`SimNetwork` (no
threads, no real sockets), the same seed gives the same interleaving, so a
failure found by one seed replays every time.

``explore`` does the looping, gives each seed a fresh clock (and network),
and turns the first failure into an :class:`ExploreFailure` that says how to
replay it. Module-level state is *not* reset between seeds: build the state a
test needs inside the function it explores.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from .._run import run
from ._clock import VirtualClock

__all__ = ["explore", "ExploreFailure"]


class ExploreFailure(AssertionError):
    """A seed made the explored function fail; ``__cause__`` is the original error.

    Attributes: ``seed`` (the first failing seed), ``replay`` (the call that
    reproduces it, as text), ``failures`` (every ``(seed, exception)`` found),
    ``runs`` (how many seeds ran), ``reproducible`` (whether replaying the
    seed failed the same way again; None if not checked).

    ::

        try:
            yieldio.testing.explore(main, seeds=range(100))
        except yieldio.testing.ExploreFailure as e:
            print(e.seed, e.replay)
    """

    def __init__(self, message: str, *, seed: int, replay: str,
                 failures: list[tuple[int, BaseException]], runs: int,
                 reproducible: bool | None) -> None:
        super().__init__(message)
        self.seed = seed
        self.replay = replay
        self.failures = failures
        self.runs = runs
        self.reproducible = reproducible


def _name(obj: Any, what: str) -> str:
    qualname = getattr(obj, "__qualname__", None)
    module = getattr(obj, "__module__", None)
    if qualname is None or module is None or "<" in qualname:
        return what
    if module == "__main__":
        return qualname
    return f"{_public_module(obj, module)}.{qualname}"


def _public_module(obj: Any, module: str) -> str:
    """The module users import ``obj`` from: ``yieldio.testing`` for SimNetwork,
    not ``yieldio.testing._simnet`` (which a replay line should not need)."""
    parts = module.split(".")
    while len(parts) > 1 and parts[-1].startswith("_"):
        parent = sys.modules.get(".".join(parts[:-1]))
        if parent is None or getattr(parent, getattr(obj, "__name__", ""), None) is not obj:
            break
        parts.pop()
    return ".".join(parts)


def _replay_call(fn: Any, seed: int, clock: Any, network_factory: Any) -> str:
    if clock is None:
        clock_text = "yieldio.testing.VirtualClock(autojump=True)"
    else:
        clock_text = f"{_name(clock, 'clock_factory')}()"
    text = f"yieldio.run({_name(fn, 'fn')}, seed={seed}, clock={clock_text}"
    if network_factory is not None:
        text += f", network={_name(network_factory, 'network_factory')}()"
    elif _installed_network() is not None:
        # The run took a network installed with 'with net.install():': the
        # call replays only there (outside, it would use the real network).
        return text + ")  # inside the same 'with net.install():' block"
    return text + ")"


def _installed_network() -> Any:
    simnet = sys.modules.get("yieldio.testing._simnet")
    return simnet.installed_network() if simnet is not None else None


def _same_failure(a: BaseException, b: BaseException) -> bool:
    return type(a) is type(b) and str(a) == str(b)


def explore(fn: Callable[[], Any], seeds: Iterable[int] = range(1000), *,
            clock: Callable[[], Any] | None = None,
            network_factory: Callable[[], Any] | None = None,
            stop_on_first: bool = True, verify: bool = True) -> dict[int, Any]:
    """Run ``yieldio.run(fn, seed=s, ...)`` for each seed; raise on the first failure.

    Each seed gets a fresh clock -- ``VirtualClock(autojump=True)`` unless
    ``clock`` (a zero-argument factory) says otherwise -- and, if
    ``network_factory`` is given, a fresh network (e.g. ``SimNetwork``).
    Returns ``{seed: result}`` when every seed passes. On failure raises
    :class:`ExploreFailure` naming the seed and the exact replay call, with
    the original exception chained. ``verify`` replays the failing seed once
    more and says so if it does not fail the same way (the test depends on
    something the seed does not control: threads, real sockets, wall time,
    global state). ``stop_on_first=False`` runs every seed and reports all
    failing ones.

    ::

        def test_no_lost_deposit():
            yieldio.testing.explore(bank_scenario, seeds=range(100))
    """
    if not callable(fn) or hasattr(fn, "send"):
        raise TypeError("explore() needs a function it can call once per seed "
                        f"(an async function or generator function), not {fn!r}")
    if clock is not None and not callable(clock):
        raise TypeError("clock must be a zero-argument factory such as VirtualClock, "
                        "so that every seed starts from a fresh clock")
    # Checked here, not at the first seed: an instance was reported as an
    # ExploreFailure "of the user's code" at seed 0 ("'SimNetwork' object is
    # not callable"), and seeds=5 as "'int' object is not iterable".
    if network_factory is not None and not callable(network_factory):
        raise TypeError("network_factory must be a zero-argument factory such as SimNetwork "
                        "(the class), so that every seed gets a fresh network; not "
                        f"{network_factory!r}")
    if isinstance(seeds, int):
        raise TypeError(f"seeds must be an iterable of ints, such as range({seeds}), "
                        f"not {seeds!r}")
    try:
        seeds = iter(seeds)
    except TypeError:
        raise TypeError(f"seeds must be an iterable of ints, such as range(100), "
                        f"not {seeds!r}") from None

    def one_run(seed: int) -> Any:
        c = VirtualClock(autojump=True) if clock is None else clock()
        options: dict[str, Any] = {}
        if network_factory is not None:
            options["network"] = network_factory()
        return run(fn, seed=seed, clock=c, **options)

    results: dict[int, Any] = {}
    failures: list[tuple[int, BaseException]] = []
    runs = first_at = 0
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int):
            # run() would refuse it, and that TypeError would pass for a failure.
            raise TypeError(f"seeds must be ints, not {seed!r}")
        runs += 1
        try:
            results[seed] = one_run(seed)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            failures.append((seed, exc))
            if len(failures) == 1:
                first_at = runs
            if stop_on_first:
                break
    if not failures:
        return results

    seed, error = failures[0]
    replay = _replay_call(fn, seed, clock, network_factory)
    reproducible: bool | None = None
    if verify:
        try:
            one_run(seed)
            reproducible = False
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as again:
            reproducible = _same_failure(error, again)
    # ": message" only if there is one; not rstrip(": "), which also ate a
    # colon or spaces that end the message itself ("expected 2, got:").
    message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    lines = [f"seed {seed} fails (found on run {first_at}): {message}",
             f"replay it with: {replay}"]
    if len(failures) > 1:
        seeds_text = ", ".join(str(s) for s, _ in failures[:20])
        more = "" if len(failures) <= 20 else f", ... ({len(failures)} in all)"
        lines.append(f"failing seeds: {seeds_text}{more} ({len(failures)} of {runs} runs)")
    if reproducible is False:
        lines.append("WARNING: replaying this seed did not fail the same way; the outcome "
                     "depends on something the seed does not control (threads, real "
                     "sockets or time, global state left over between runs).")
    where = traceback.extract_tb(error.__traceback__)
    if where:
        last = where[-1]
        lines.append(f"failed at {last.filename}:{last.lineno} in {last.name}")
    failure = ExploreFailure("\n".join(lines), seed=seed, replay=replay, failures=failures,
                             runs=runs, reproducible=reproducible)
    raise failure from error
