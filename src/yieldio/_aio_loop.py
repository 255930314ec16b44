"""The asyncio side of :func:`yieldio.aio.run_asyncio`: the loop thread, and async generators.

* :class:`_LoopThread`: the asyncio event loop, in a daemon thread, that a
  yieldio run starts on its first ``run_asyncio`` call (:func:`_loop_thread`)
  and shuts down when the run ends, as ``asyncio.run`` would.
* :func:`_adopt_asyncgen`: an asyncio async generator stepped through
  ``run_asyncio(anext(agen))`` is taken away from yieldio's async generator
  hooks and kept alive until its asyncio loop closes it.

The public API and the call itself (``_AsyncioCall``) are in
:mod:`yieldio.aio`; see its docstring for the design.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable
from typing import Any

from ._instrument import Instrument
from ._kernel import Kernel

# -- the asyncio loop thread of one yieldio run ---------------------------------------------


class _LoopThread(Instrument):
    """An asyncio loop in a daemon thread, owned by one yieldio run.

    It is attached to the kernel as an instrument so that its ``after_run``
    hook (the loop has ended, before ``yieldio.run`` returns) shuts the asyncio
    loop down and joins the thread. It defines no other hook, so it costs the
    kernel nothing while the run goes on.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.closed = False
        self.thread = threading.Thread(target=self._main, name="yieldio-asyncio", daemon=True)
        try:
            self.thread.start()
        except BaseException:
            self.loop.close()
            raise

    def _main(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            while True:
                try:
                    loop.run_forever()
                except (KeyboardInterrupt, SystemExit) as exc:
                    # A task or callback raised one of these through the loop
                    # (asyncio re-raises them). The calls still waiting must be
                    # answered: keep serving until the run ends -- but report
                    # it, as nobody else will see it.
                    loop.call_exception_handler({
                        "message": f"{type(exc).__name__} raised in the asyncio loop thread "
                                   "of a yieldio run; the loop keeps running",
                        "exception": exc,
                    })
                if self.closed:
                    break
        finally:
            try:
                _cancel_all_tasks(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                with _ADOPTED_LOCK:
                    _ADOPTED.pop(loop, None)  # closed by shutdown_asyncgens() above
                asyncio.set_event_loop(None)
                loop.close()

    def after_run(self) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Cancel the asyncio tasks still pending, close the loop, join the thread."""
        if self.closed:
            return
        self.closed = True
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            pass  # already closed
        self.thread.join()


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """What ``asyncio.run`` does on the way out: cancel what is left, wait for it."""
    to_cancel = asyncio.all_tasks(loop)
    if not to_cancel:
        return
    for t in to_cancel:
        t.cancel()
    loop.run_until_complete(asyncio.gather(*to_cancel, return_exceptions=True))
    for t in to_cancel:
        if not t.cancelled() and t.exception() is not None:
            loop.call_exception_handler({
                "message": "unhandled exception in an asyncio task during yieldio run shutdown",
                "exception": t.exception(),
                "task": t,
            })


def _loop_thread(k: Kernel) -> _LoopThread:
    """The run's asyncio loop thread, started on first use."""
    for inst in k.instruments:
        if type(inst) is _LoopThread:
            if inst.closed:
                raise RuntimeError("the yieldio run has ended; its asyncio loop is closed")
            return inst
    lt = _LoopThread()
    k.add_instrument(lt)
    return lt


# -- async generators handed over to asyncio ---------------------------------------------


# The awaitables returned by an async generator's __anext__/asend/athrow/aclose.
_ASYNCGEN_AWAITABLES = frozenset({"async_generator_asend", "async_generator_athrow"})
# anext(agen, default): calls agen.__anext__() at once, and wraps what it returns.
_ANEXT_WITH_DEFAULT = "anext_awaitable"


def _adopt_asyncgen(k: Kernel, aw: Awaitable[Any] | None) -> AsyncGenerator[Any, Any] | None:
    """Take an asyncio async generator away from yieldio's async generator hooks.

    ``run_asyncio(anext(agen))`` calls ``agen.__anext__()`` in the yieldio
    thread, and that first call is where Python runs the thread's
    ``firstiter`` hook and fixes the generator's finalizer: yieldio's. yieldio
    would then close the generator itself -- at the end of the run, or when it
    is garbage-collected -- by running its cleanup (``finally``, ``async
    with``) as a yieldio task, where the first asyncio ``await`` fails: the
    cleanup never ran (a connection left open) and an error was logged. The
    generator is asyncio code: it is removed from yieldio's tracking here and
    registered with the asyncio loop's hooks in ``_start``, so that asyncio
    closes it, on its own loop. (Its finalizer stays yieldio's, a per-generator
    setting nothing can change: ``_keep_until_closed`` holds a strong
    reference until the generator has finished, so the finalizer never fires
    on an unclosed generator.) Returns the generator adopted, or None.
    """
    if aw is None:
        return None
    if type(aw).__name__ == _ANEXT_WITH_DEFAULT:
        # (CPython: it refers to the __anext__() awaitable, and to the default.)
        aw = next((ref for ref in gc.get_referents(aw)
                   if type(ref).__name__ in _ASYNCGEN_AWAITABLES), None)
        if aw is None:
            return None
    elif type(aw).__name__ not in _ASYNCGEN_AWAITABLES:
        return None
    alive = k.asyncgens._alive
    for ref in gc.get_referents(aw):  # (CPython: the awaitable refers to its generator)
        if inspect.isasyncgen(ref) and ref in alive:
            alive.discard(ref)
            return ref
    return None


# Adopted generators, per asyncio loop, kept alive until they are finished.
# Their finalizer is yieldio's (fixed at their first step, in the yieldio
# thread), so dropped unfinished they would be closed by yieldio, which cannot
# run their asyncio cleanup; alive, the loop's shutdown_asyncgens() closes
# them. Weak in the loop: a loop that is gone takes its entry with it.
_ADOPTED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[AsyncGenerator[Any, Any]]] = (
    weakref.WeakKeyDictionary())
_ADOPTED_LOCK = threading.Lock()  # runs in several threads may adopt at once


def _keep_until_closed(loop: asyncio.AbstractEventLoop, agen: AsyncGenerator[Any, Any]) -> None:
    with _ADOPTED_LOCK:
        kept = _ADOPTED.get(loop)
        if kept is None:
            kept = _ADOPTED[loop] = set()
        else:
            # Drop the finished ones (no frame): nothing is left to close.
            kept.difference_update([a for a in kept if getattr(a, "ag_frame", None) is None])
        kept.add(agen)
