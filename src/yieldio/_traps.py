"""Traps: the only values a coroutine may yield to the kernel.

A coroutine talks to the kernel by yielding. Everything it may yield is one of
two module-level marker objects, compared by identity (no tuples, no dispatch
table):

* ``SCHEDULE`` -- "put me at the back of the ready queue" (a schedule point).
* ``PARK`` -- "I am waiting; do not run me until somebody calls
  ``kernel.reschedule(task, value)``". Before yielding it, the waiting code
  stores on the task what it waits on (``task._wait``): an object with an
  ``_abort_wait(task) -> bool`` method that cancellation calls to ask "can you
  stop waiting?".

Plus one shape that is not a trap but a *call*: a generator or coroutine
object yielded from a generator coroutine is pushed on the task's explicit
stack (see ``_trampoline``). Anything else is a bad yield and gets a
``TypeError`` thrown back at the offending ``yield``.

Nothing outside this package yields to the kernel; ``async def`` code reaches
the traps through ``await`` on small generator functions decorated with
:func:`types.coroutine`, such as :func:`park` below.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ._typing import awaitable


class _Trap:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<yieldio trap {self.name}>"


SCHEDULE = _Trap("SCHEDULE")
PARK = _Trap("PARK")


@awaitable
def park() -> Generator[Any, Any, Any]:
    """Suspend the current task until it is rescheduled; return the value sent.

    The caller must have stored its wait object in ``task._wait`` first.
    """
    return (yield PARK)


@awaitable
def schedule() -> Generator[Any, Any, None]:
    """Yield to the other ready tasks (no cancellation check)."""
    yield SCHEDULE
