"""``yieldio.run()``: the entry point, and turning "something to run" into a coroutine.

Kept apart from the kernel loop (``_kernel.py``) so that the loop reads in one
sitting: this module only validates arguments, builds a :class:`Kernel`,
wires optional tools (debugger, tracer, monitor, simulated network) and
translates the outcome into a return value or an exception.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Awaitable, Callable, Generator
from types import AsyncGeneratorType, CoroutineType, FunctionType, GeneratorType
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple, Unpack, overload

from . import _state
from ._exceptions import Deadlock
from ._kernel import Kernel

__all__ = ["run"]

if TYPE_CHECKING:
    from ._typing import SendThrow

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


def _call_async_function(fn: FunctionType, args: tuple[Any, ...],
                         what: str = "TaskGroup.spawn()") -> Any:
    """``fn(*args)`` for a Python function, checked to have made a coroutine."""
    coro = fn(*args)
    if type(coro) is CoroutineType or type(coro) is GeneratorType:
        return coro
    if not hasattr(coro, "send"):
        raise TypeError(_not_a_coroutine(what, fn, coro))
    return coro


def _not_a_coroutine(what: str, fn: Any, made: Any) -> str:
    """The message for a function that made something else than a coroutine."""
    if type(made) is AsyncGeneratorType:
        # 'async def' with a 'yield' in it: the usual hint ("use async def")
        # would send the user in a circle.
        hint = ("it is an async generator function (its body contains 'yield'); "
                "iterate it with 'async for' inside an async function instead")
    else:
        hint = "is it a plain function? use 'async def' or a generator"
    return (f"{what}: {getattr(fn, '__qualname__', fn)!r} returned {made!r}, which is not a "
            f"coroutine ({hint})")


def _as_coroutine(fn: Any, args: tuple[Any, ...], what: str) -> Any:
    if type(fn) is FunctionType:  # the common case, checked cheaply first
        return _call_async_function(fn, args, what)
    if hasattr(fn, "send") and not isinstance(fn, type):
        if args:
            _discard(fn)
            raise TypeError(f"{what}: arguments given with a coroutine object {fn!r}")
        _check_unstarted(fn, what)
        return fn
    if not callable(fn):
        raise TypeError(f"{what} expects an async function, a generator function or a "
                        f"coroutine object, not {fn!r}")
    coro = fn(*args)
    if not hasattr(coro, "send"):
        raise TypeError(_not_a_coroutine(what, fn, coro))
    return coro


def _check_unstarted(coro: Any, what: str) -> None:
    """Refuse a coroutine object that has run already, or is running in another task.

    A native coroutine would fail at its first step anyway ("cannot reuse
    already awaited coroutine"); a generator -- every yieldio wait, such as
    ``lock.acquire()``, is one -- would not: a finished one ended the new
    task at once with None, and a suspended one (another task awaiting it)
    was resumed by the new task, which then held that task's lock.
    """
    kind = type(coro)
    if kind is GeneratorType:
        ended, started = coro.gi_frame is None, coro.gi_suspended or coro.gi_running
    elif kind is CoroutineType:
        ended, started = coro.cr_frame is None, coro.cr_suspended or coro.cr_running
    else:
        return
    if ended:
        raise RuntimeError(f"{what}: cannot reuse {coro!r}: it has already run (a coroutine "
                           "object runs once; pass the function, or call it again)")
    if started:
        raise RuntimeError(f"{what}: {coro!r} has already started, in another task: a "
                           "coroutine object can be run by one task only")


def _discard(fn: Any) -> None:
    """Close a coroutine object that will not run (no "never awaited" warning)."""
    if hasattr(fn, "send") and not isinstance(fn, type):
        close = getattr(fn, "close", None)
        if close is not None:
            close()


def _check_clock(clock: Any) -> None:
    """Refuse a ``clock`` that the kernel would fail on only once it runs.

    The kernel reads ``current_time`` at start and calls
    ``deadline_to_sleep_time``/reads ``autojump`` at its first timer (see
    :class:`yieldio.Clock`). The usual slip is passing the class
    (``clock=VirtualClock``) rather than an instance.
    """
    if clock is None:
        return
    if isinstance(clock, type):
        raise TypeError(f"yieldio.run(clock=...) takes a clock object, not the class "
                        f"{clock.__qualname__}; did you mean {clock.__qualname__}()?")
    missing = [name for name in ("current_time", "deadline_to_sleep_time")
               if not callable(getattr(clock, name, None))]
    if not hasattr(clock, "autojump"):
        missing.append("autojump")
    if missing:
        raise TypeError(f"yieldio.run(clock=...) takes a clock (see yieldio.Clock: "
                        f"current_time(), deadline_to_sleep_time(), autojump); {clock!r} "
                        f"lacks {', '.join(missing)}")


def _check_instruments(instruments: Any) -> list[Any]:
    """``instruments`` as a list; a single instrument or a non-iterable is refused."""
    try:
        return list(instruments)
    except TypeError:
        raise TypeError(f"yieldio.run(instruments=...) takes a list of instruments, not "
                        f"{instruments!r}") from None


def _check_seed(seed: Any) -> None:
    """Refuse a seed that is not an int (or None).

    ``random.Random`` also takes floats and strings, but a seed is something
    to print and replay (``--yieldio-seed N``, explore()'s replay line), and
    ``seed=True`` or ``seed="abc"`` is more likely a slip than a plan.
    """
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"yieldio.run(seed=...) takes an int (or None), not {seed!r}")


_NETWORK_METHODS = ("connect_tcp", "listen_tcp", "connect_unix", "listen_unix", "getaddrinfo")


def _check_network(network: Any) -> None:
    """Refuse a ``network`` that would fail only at the first connect, confusingly.

    ``network=SimNetwork`` (the class) failed with "listen_tcp() missing 1
    required positional argument", ``network="x"`` with an AttributeError. A
    network may provide only some of the methods (a test's resolver may
    have just ``getaddrinfo``), so only one with none of them is refused.
    """
    if network is None:
        return
    if isinstance(network, type):
        raise TypeError(f"yieldio.run(network=...) takes a network object, not the class "
                        f"{network.__qualname__}; did you mean {network.__qualname__}()?")
    if not any(callable(getattr(network, name, None)) for name in _NETWORK_METHODS):
        raise TypeError(f"yieldio.run(network=...) takes a network (such as "
                        f"yieldio.testing.SimNetwork(), with {', '.join(_NETWORK_METHODS)}), "
                        f"not {network!r}")


def _options(options: dict[str, Any]) -> tuple[Any, list[Any]]:
    """run()'s keyword options: (the network, the debugging instruments)."""
    debug_opts: dict[str, Any] = {k: options.pop(k) for k in ("debug", "trace", "monitor", "network")
                  if k in options}
    network = debug_opts.pop("network", None)
    _check_network(network)
    if network is None:
        # ``with SimNetwork().install():`` -- consulted only if that module was
        # imported at all, so the kernel never imports the testing package.
        simnet = sys.modules.get("yieldio.testing._simnet")
        if simnet is not None:
            network = simnet.installed_network()
    if options:
        raise TypeError(f"yieldio.run() got unexpected options {sorted(options)}")
    extra: list[Any] = []
    if debug_opts or os.environ.get("YIELDIO_DEBUG") or os.environ.get("YIELDIO_MONITOR"):
        from . import _runopts

        extra = _runopts.instruments_for(debug_opts)
    return network, extra


def _take_cli_handoff(options: dict[str, Any]) -> list[Any]:
    """``python -m yieldio run``'s instruments, for the first run in its thread.

    ``yieldio run --trace t.json app.py`` must trace the program whether
    ``app.py`` leaves ``main()`` for the command to run or calls
    ``yieldio.run(main)`` itself (README's examples do, with no ``__name__``
    guard). So the command leaves its instruments here, and the first run in
    its thread takes them. An option the call gives itself wins, one option
    at a time, as it wins over ``YIELDIO_DEBUG``; the ones it does not give
    are set to ``False`` here, since the command has read the environment.
    """
    handoff = _state.cli_handoff
    if handoff is None or handoff[0] != threading.get_ident():
        return []
    _state.cli_handoff = None
    taken: list[Any] = []
    for option, instruments in handoff[1].items():
        if option not in options:
            options[option] = False
            taken += instruments
    return taken


@overload
def run(fn: Callable[[Unpack[_Ts]], Awaitable[_T]], *args: *_Ts, clock: Any = None,
        instruments: Any = (), seed: int | None = None, **options: Any) -> _T: ...
@overload
def run(fn: Callable[[Unpack[_Ts]], Generator[Any, Any, _T]], *args: *_Ts,
        clock: Any = None, instruments: Any = (), seed: int | None = None,
        **options: Any) -> _T: ...
@overload
def run(fn: Awaitable[_T] | Generator[Any, Any, _T], *, clock: Any = None,
        instruments: Any = (), seed: int | None = None, **options: Any) -> _T: ...
@overload
def run(fn: SendThrow, *, clock: Any = None, instruments: Any = (), seed: int | None = None,
        **options: Any) -> Any: ...
# (For type checkers: the result type comes from ``fn`` and ``args`` are checked
# against its parameters. mypy cannot match a TypeVarTuple overload to *args.)
def run(fn: Any, *args: Any, clock: Any = None, instruments: Any = (),  # type: ignore[misc]
        seed: int | None = None, **options: Any) -> Any:
    """Run ``fn(*args)`` (or a coroutine object) as the main task; return its result.

    ::

        async def main():
            await yieldio.sleep(0.1)
            return 42

        assert yieldio.run(main) == 42

    ``clock`` replaces the system clock (for example
    ``yieldio.testing.VirtualClock(autojump=True)``), ``instruments`` are
    objects with hook methods (see :class:`yieldio.Instrument`), and ``seed``
    shuffles the order of ready tasks reproducibly. The main task's exception
    is raised from ``run``; Ctrl-C raises ``KeyboardInterrupt`` after every
    task was cancelled.
    """
    if getattr(_state.local, "kernel", None) is not None:
        _discard(fn)
        raise RuntimeError("yieldio.run() cannot be called from inside a running yieldio kernel "
                           "(in the same thread); await the function instead")
    try:
        # Every argument is checked before the main coroutine is made: a bad
        # one must fail with a clear message here, not as an AttributeError
        # from inside the loop, and must leave no coroutine "never awaited".
        _check_clock(clock)
        instruments = _check_instruments(instruments)
        _check_seed(seed)
        from_cli = _take_cli_handoff(options)
        network, extra = _options(options)
        extra += from_cli
    except BaseException:
        _discard(fn)
        raise
    coro = _as_coroutine(fn, args, "yieldio.run()")
    try:
        kernel = Kernel(clock, instruments + extra, seed)
    except BaseException:
        _discard(coro)  # made above (run(main) form) and never run
        raise
    _state.local.kernel = kernel
    # Counted per thread for 'python -m yieldio run': a script whose top level
    # calls yieldio.run() itself (README's 'print(yieldio.run(main))', with no
    # __name__ guard) has had its run, and its main() must not run again.
    _state.local.runs = getattr(_state.local, "runs", 0) + 1
    try:
        kernel._install_sigint()
        kernel.network = network
        result = kernel.run_main(coro)
        report = getattr(kernel, "deadlock_report", None)
        if report is not None:
            raise Deadlock("every task is blocked and nothing can wake them:\n" + report)
        return result
    except BaseException:
        report = getattr(kernel, "deadlock_report", None)
        if report is not None:
            raise Deadlock("every task is blocked and nothing can wake them:\n" + report) from None
        raise
    finally:
        try:
            kernel.close()
        finally:
            del _state.local.kernel
