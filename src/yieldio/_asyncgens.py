"""Async generators left unfinished get their cleanup run as tasks, not lost.

::

    async def numbers():
        try:
            for i in range(10):
                yield i
        finally:
            await log("done")        # an await in cleanup

    async for n in numbers():
        if n == 2:
            break                    # numbers() is abandoned mid-way

An abandoned async generator is closed when the garbage collector finds it.
Left to itself, Python closes it by throwing ``GeneratorExit`` in and
expecting it to stop without awaiting anything; a ``finally`` or
``async with`` that awaits then fails with "async generator ignored
GeneratorExit" and its cleanup never runs. PEP 525 lets the event loop take
over instead: ``sys.set_asyncgen_hooks`` names a *finalizer* that the
collector calls in place of that close. Like asyncio and trio, yieldio's
finalizer runs ``await agen.aclose()`` in a system task, so the cleanup
awaits normally; generators still unfinished when the main task ends are
closed the same way before :func:`yieldio.run` returns. An error raised by
such a cleanup has no caller left to receive it: it is logged on the
``yieldio`` logger. (Closing the generator yourself, with
``contextlib.aclosing``, keeps its errors in your code.)
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
import warnings
import weakref
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from ._exceptions import Cancelled

if TYPE_CHECKING:
    from ._kernel import Kernel

__all__ = ["AsyncGenFinalizer"]

logger = logging.getLogger("yieldio")


class AsyncGenFinalizer:
    """One run's async generator hooks (installed by ``yieldio.run``)."""

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel
        # Every async generator first iterated in this run and not yet
        # finalized. Weak: tracking must not keep a generator alive.
        self._alive: weakref.WeakSet[AsyncGenerator[Any, Any]] = weakref.WeakSet()
        self._previous: Any = None
        self._running = False  # between install() and uninstall(): the loop runs

    def install(self) -> None:
        # Per thread, like the running kernel: a loop in another thread keeps its own.
        self._previous = sys.get_asyncgen_hooks()
        sys.set_asyncgen_hooks(firstiter=self._alive.add, finalizer=self._finalizer)
        self._running = True

    def uninstall(self) -> None:
        self._running = False
        if self._previous is not None:
            sys.set_asyncgen_hooks(*self._previous)
            self._previous = None

    def _finalizer(self, agen: AsyncGenerator[Any, Any]) -> None:
        # Called by the collector, in whichever thread dropped the last
        # reference, possibly long after the run ended.
        self._alive.discard(agen)
        k = self._kernel
        if not self._running:
            _close_without_loop(agen)
        elif threading.get_ident() == k.thread_id:
            self._spawn_aclose(agen)
        else:
            try:
                k.call_soon_threadsafe(self._spawn_aclose, agen)
            except RuntimeError:  # the run ended meanwhile
                _close_without_loop(agen)

    def _spawn_aclose(self, agen: AsyncGenerator[Any, Any]) -> None:
        k = self._kernel
        if not self._running:
            _close_without_loop(agen)
            return
        name = f"aclose of {_name(agen)}"
        # A fresh, empty context, as trio's system tasks have: the collector
        # calls the finalizer in whichever task happened to drop the last
        # reference, and that task's context variables are not the cleanup's.
        task = k.spawn(_aclose(agen), k.root_scope, None, None, name, contextvars.Context())
        k.system_tasks[task] = None

    def finalize_remaining(self) -> bool:
        """At the end of the run: close every unfinished generator. False if there were none."""
        # A generator that finished or never started has no frame: nothing to run.
        pending = [agen for agen in list(self._alive) if getattr(agen, "ag_frame", None) is not None]
        self._alive.clear()
        for agen in pending:
            self._spawn_aclose(agen)
        return bool(pending)


def _name(agen: AsyncGenerator[Any, Any]) -> str:
    return getattr(agen, "__qualname__", None) or repr(agen)


async def _aclose(agen: AsyncGenerator[Any, Any]) -> None:
    try:
        await agen.aclose()
    except Cancelled:
        # Only the end of the run cancels these tasks: the cleanup was
        # still waiting for something nobody could do any more.
        logger.warning("the cleanup of the abandoned async generator %s was still "
                       "waiting when the run ended: it was cancelled", _name(agen))
    except BaseException:
        logger.exception(
            "error while closing the abandoned async generator %s (close it yourself "
            "with 'async with contextlib.aclosing(...)' to get such errors in your code)",
            _name(agen))


def _close_without_loop(agen: AsyncGenerator[Any, Any]) -> None:
    """Close ``agen`` with no run to await in: its cleanup may not await."""
    closer = agen.aclose()
    try:
        closer.send(None)
    except StopIteration:
        return  # closed without awaiting anything
    except BaseException:
        logger.exception("error while closing the async generator %s after its "
                         "yieldio.run() ended", _name(agen))
        return
    closer.close()
    warnings.warn(
        f"the async generator {_name(agen)} was collected after its yieldio.run() "
        "ended, and its cleanup awaits: it could not run; close it inside the run "
        "(async with contextlib.aclosing(...))", RuntimeWarning, stacklevel=1)
