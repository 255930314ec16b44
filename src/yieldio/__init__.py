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

from __future__ import annotations

import types as _types
from collections.abc import Callable as _Callable
from typing import TYPE_CHECKING
from typing import Any as _Any
from typing import TypeVar as _TypeVar

from ._cancel import CancelScope, fail_after, fail_at, move_on_after, move_on_at
from ._exceptions import (
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
from ._run import run
from ._state import current_task
from ._task import Task
from ._taskgroup import TaskGroup, TaskStatus
from ._time import checkpoint, current_time, sleep, sleep_forever, sleep_until
from ._trampoline import Trampoline, trampoline
from .queue import Queue, UniversalQueue
from .sync import Condition, Event, Lock, Semaphore
from .threads import from_thread, to_thread

_F = _TypeVar("_F", bound=_Callable[..., _Any])

if TYPE_CHECKING:  # the lazily imported names, for type checkers and IDEs
    from .files import AsyncFile as AsyncFile
    from .files import open_file as open_file
    from .files import wrap_file as wrap_file
    from .net import (
        BrokenStreamError as BrokenStreamError,
    )
    from .net import (
        Server as Server,
    )
    from .net import (
        SocketStream as SocketStream,
    )
    from .net import (
        Stream as Stream,
    )
    from .net import (
        TLSStream as TLSStream,
    )
    from .net import (
        open_tcp_stream as open_tcp_stream,
    )
    from .net import (
        open_unix_stream as open_unix_stream,
    )
    from .net import (
        serve_tcp as serve_tcp,
    )
    from .net import (
        serve_unix as serve_unix,
    )
    from .signals import open_signal_receiver as open_signal_receiver


__version__ = "0.1.0"

# I/O, HTTP and tools are imported on first use: ``import yieldio`` stays
# cheap, and a program that never opens a socket never loads ``ssl``.
_LAZY = {
    # yieldio.net: streams, TCP/Unix clients and servers, TLS
    "Stream": "yieldio.net",
    "BrokenStreamError": "yieldio.net",
    "SocketStream": "yieldio.net",
    "TLSStream": "yieldio.net",
    "Server": "yieldio.net",
    "open_tcp_stream": "yieldio.net",
    "open_unix_stream": "yieldio.net",
    "serve_tcp": "yieldio.net",
    "serve_unix": "yieldio.net",
    # signals and files
    "open_signal_receiver": "yieldio.signals",
    "open_file": "yieldio.files",
    "AsyncFile": "yieldio.files",
    "wrap_file": "yieldio.files",
}
# Submodules reachable as attributes without an explicit import.
_SUBMODULES = {"socket", "subprocess", "http", "debug", "testing", "threads", "net", "aio",
               "files", "signals", "queue", "sync"}


def __getattr__(name: str) -> object:
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"yieldio.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'yieldio' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value



def coroutine(fn: _F) -> _F:
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
    """
    return _types.coroutine(fn)  # type: ignore[return-value]


__all__ = [
    *_LAZY,
    "BusyResourceError",
    "CancelScope",
    "Cancelled",
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
    "Trampoline",
    "UniversalQueue",
    "WouldBlock",
    "checkpoint",
    "coroutine",
    "current_task",
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
