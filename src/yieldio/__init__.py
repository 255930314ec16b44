"""yieldio: an async I/O runtime built on the coroutine model.

A coroutine is anything with ``send()``/``throw()``; ``await``/``yield from``
is a call; the kernel drives coroutines and performs the waiting they ask
for. Write ``async def`` or generator coroutines and mix them freely::

    import yieldio

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.sleep, 0.1)
        return "done"

    print(yieldio.run(main))
"""

from __future__ import annotations as _annotations

import os as _os
import threading as _threading
import types as _types
from collections.abc import Callable as _Callable
from collections.abc import Generator as _Generator
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any
from typing import ParamSpec as _ParamSpec
from typing import TypeVar as _TypeVar
from typing import overload as _overload

from ._cancel import CancelScope
from ._exceptions import (
    BrokenBarrierError,
    BrokenResourceError,
    BusyResourceError,
    Cancelled,
    ClosedResourceError,
    Deadlock,
    IncompleteRead,
    QueueClosed,
    QueueEmpty,
    QueueFull,
    TaskCancelled,
    WouldBlock,
)
from ._instrument import Instrument
from ._io import notify_closing, wait_readable, wait_writable
from ._run import run
from ._state import current_task
from ._task import Task
from ._taskgroup import TASK_STATUS_IGNORED, TaskGroup, TaskStatus
from ._time import Clock, checkpoint, current_time, sleep, sleep_forever, sleep_until
from ._timeouts import (
    current_effective_deadline,
    fail_after,
    fail_at,
    move_on_after,
    move_on_at,
)
from ._trampoline import Trampoline, trampoline
from .files import AsyncFile, Path, open_file, wrap_file
from .net import (
    BrokenStreamError,
    Server,
    SocketStream,
    Stream,
    TLSStream,
    open_tcp_stream,
    open_unix_stream,
    serve_tcp,
    serve_unix,
)
from .queue import Queue, UniversalQueue
from .signals import open_signal_receiver
from .sync import Barrier, CapacityLimiter, Condition, Event, Lock, Semaphore
from .threads import from_thread, to_thread

_F = _TypeVar("_F", bound=_Callable[..., _Any])
_P = _ParamSpec("_P")
_R = _TypeVar("_R")

if _TYPE_CHECKING:  # the submodules bound lazily below, for type checkers and IDEs
    from . import aio as aio
    from . import debug as debug
    from . import http as http
    from . import subprocess as subprocess
    from . import testing as testing
    from ._typing import Waitable as _Waitable


__version__ = "0.1.0"

# No module-level __getattr__ here: CPython 3.11 does not specialise attribute
# reads on a module that has one, and ``yieldio.sleep`` in a loop would pay a
# generic lookup (~50 ns) every time. The heavy submodules (HTTP, the debug
# tools, testing, the asyncio bridge, subprocesses) are still reachable as
# attributes without an import and still load only when first touched: each is
# bound as a _LazyModule, which runs its code on the first attribute it lacks
# and then becomes an ordinary module.
class _LazyModule(_types.ModuleType):
    """A submodule whose code runs when an attribute it lacks is first read.

    Not ``importlib.util.LazyLoader``: its module runs on *any* attribute
    read, ``__path__`` included, and Python 3.11's import system reads a
    package's ``__path__`` *after* checking ``sys.modules`` for the
    submodule it is importing. So ``import yieldio.http._errors`` as the
    first import ran ``http/__init__`` (which imports ``_errors``) in the
    middle of importing ``_errors``, and ``_errors`` then ran a second time:
    two ``HTTPException`` classes, and ``except`` clauses that missed. Here
    ``__path__``, ``__spec__`` and the rest are ordinary attributes, set
    from the start: importing a submodule first leaves the package's code
    for later, and when it runs it finds that submodule in ``sys.modules``.
    """

    def __getattr__(self, name: str) -> _Any:
        _load_lazy(self)
        if type(self) is _LazyModule:
            # Still loading, in this very thread (its own code reads a name
            # it has not set yet): a real miss, as in any module.
            raise AttributeError(f"partially initialized module {self.__name__!r} "
                                 f"has no attribute {name!r}")
        return getattr(self, name)  # an AttributeError now is a real one

    def __dir__(self) -> list[str]:
        _load_lazy(self)
        return list(self.__dict__) if type(self) is _LazyModule else dir(self)


# Reentrant: one lazy module's code may touch another (http's uses debug's).
_lazy_lock = _threading.RLock()
_loading: set[int] = set()  # ids of the modules whose code runs now (under the lock)


def _reset_lazy_lock_in_child() -> None:
    # A fork while another thread runs a lazy module's code: that thread is
    # not in the child, which would wait for its lock for ever. The child
    # runs the module's code again on its first touch instead.
    global _lazy_lock
    _lazy_lock = _threading.RLock()
    _loading.clear()


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_reset_lazy_lock_in_child)


def _load_lazy(module: _Any) -> None:
    # The class changes only once the code has run: until then, another
    # thread's miss comes here too and waits on the lock, instead of finding
    # a plain module half-built (two runs in two threads reporting deadlocks
    # at once each imported yieldio.debug, and all but one got ImportError).
    with _lazy_lock:
        if type(module) is not _LazyModule or id(module) in _loading:
            return  # loaded by another thread meanwhile, or loading in this one
        plain: _Any = module  # (for type checkers: its class is about to change)
        _loading.add(id(plain))
        try:
            plain.__spec__.loader.exec_module(plain)
        finally:
            _loading.discard(id(plain))
        plain.__class__ = _types.ModuleType


def _bind_lazy_submodules(names: tuple[str, ...]) -> None:
    import importlib.util
    import sys

    for name in names:
        fullname = f"{__name__}.{name}"
        module = sys.modules.get(fullname)
        if module is None:
            spec = importlib.util.find_spec(fullname)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            module.__class__ = _LazyModule
            sys.modules[fullname] = module
        globals()[name] = module


_bind_lazy_submodules(("aio", "debug", "http", "subprocess", "testing"))


@_overload
def coroutine(fn: _Callable[_P, _Generator[_Any, _Any, _R]]) -> _Callable[_P, _Waitable[_R]]: ...
@_overload
def coroutine(fn: _F) -> _F: ...
def coroutine(fn: _Any) -> _Any:
    """Mark a generator function as a coroutine: awaitable, and able to await.

    The generator may then be awaited from ``async def`` code, and may itself
    ``yield from`` native coroutines and yieldio awaitables::

        @yieldio.coroutine
        def fetch_twice(url):
            a = yield from fetch(url)        # fetch is an async def
            b = yield fetch(url)             # a trampolined call: same result
            return a, b

        async def main():
            print(await fetch_twice("x"))

    For type checkers, a generator function annotated
    ``-> Generator[Any, Any, T]`` becomes one whose calls may be both awaited
    and ``yield from``-ed, giving ``T``.
    """
    return _types.coroutine(fn)


__all__ = [
    "AsyncFile",
    "BrokenStreamError",
    "Path",
    "Server",
    "SocketStream",
    "Stream",
    "TLSStream",
    "open_file",
    "open_signal_receiver",
    "open_tcp_stream",
    "open_unix_stream",
    "serve_tcp",
    "serve_unix",
    "wrap_file",
    "notify_closing",
    "wait_readable",
    "wait_writable",
    "Barrier",
    "BrokenBarrierError",
    "BrokenResourceError",
    "BusyResourceError",
    "CancelScope",
    "Cancelled",
    "CapacityLimiter",
    "Clock",
    "ClosedResourceError",
    "Condition",
    "Deadlock",
    "Event",
    "IncompleteRead",
    "Instrument",
    "Lock",
    "Queue",
    "QueueClosed",
    "QueueEmpty",
    "QueueFull",
    "Semaphore",
    "Task",
    "TaskCancelled",
    "TaskGroup",
    "TaskStatus",
    "TASK_STATUS_IGNORED",
    "Trampoline",
    "UniversalQueue",
    "WouldBlock",
    "checkpoint",
    "coroutine",
    "current_task",
    "current_effective_deadline",
    "current_time",
    "fail_after",
    "fail_at",
    "from_thread",
    "move_on_after",
    "move_on_at",
    "run",
    "sleep",
    "sleep_forever",
    "sleep_until",
    "to_thread",
    "trampoline",
]


def _name_public_exceptions(namespace: dict[str, _Any], module: str) -> None:
    """Show public exceptions as ``yieldio.Deadlock``, not ``yieldio._exceptions.Deadlock``.

    Tracebacks and pytest summaries print ``__module__``; the private module
    an exception happens to be defined in is not where users import it from.
    (Pickling still works: ``yieldio.Deadlock`` is the same class.)
    """
    for name in namespace["__all__"]:
        value = namespace.get(name)
        if (isinstance(value, type) and issubclass(value, BaseException)
                and value.__module__.startswith(module + ".")):
            value.__module__ = module


_name_public_exceptions(globals(), "yieldio")
