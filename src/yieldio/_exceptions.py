"""The exceptions the core runtime raises.

The errors of the kernel, tasks, cancellation, queues and streams are
defined here, so ``except yieldio.X`` works no matter which module raised
them. Optional parts keep theirs next to them (``yieldio.http``'s client
errors, ``yieldio.aio.AsyncioCancelled``; ``BrokenStreamError`` lives with
the Stream it describes).
"""

from __future__ import annotations

import re
import threading

__all__ = [
    "BrokenBarrierError",
    "BrokenResourceError",
    "Cancelled",
    "TaskCancelled",
    "ClosedResourceError",
    "BusyResourceError",
    "Deadlock",
    "QueueClosed",
    "QueueEmpty",
    "QueueFull",
    "IncompleteRead",
    "WouldBlock",
]


class Cancelled(BaseException):
    """Raised at a checkpoint inside a cancelled :class:`CancelScope`.

    It derives from :class:`BaseException` (like ``KeyboardInterrupt``) so that
    a bare ``except Exception:`` does not swallow it by accident; the cancel
    scope that was cancelled catches it on the way out::

        with yieldio.move_on_after(1):
            await yieldio.sleep(10)      # Cancelled raised here after 1 s ...
        # ... and caught here by the scope.

    Never raise it yourself and never swallow it: re-raise it after cleanup.
    """


class TaskCancelled(Exception):
    """Raised by :meth:`Task.join` and :meth:`Task.result` for a cancelled task.

    It is an ordinary ``Exception`` on purpose: the *joiner* was not cancelled,
    so it must not receive a raw :class:`Cancelled` that its own cancel scopes
    would misread::

        task.cancel()
        try:
            await task.join()
        except yieldio.TaskCancelled:
            print("it was cancelled")
    """


class ClosedResourceError(Exception):
    """The stream, socket, queue or other resource was already closed.

    Also thrown into a task that was waiting on a file descriptor when another
    task closed it, so no task waits forever on a dead descriptor.

    ::

        await stream.aclose()
        try:
            await stream.send_all(b"x")
        except yieldio.ClosedResourceError:
            ...
    """


class BrokenResourceError(Exception):
    """A resource can no longer be used because of something that already happened.

    A :class:`Lock` whose owner ended without releasing it is broken: the
    tasks waiting for it, and every later ``acquire``, get this error instead
    of waiting for ever. :class:`BrokenStreamError` (a write was interrupted
    half-way) is a kind of it too, so one ``except`` covers both::

        try:
            async with lock:
                ...
        except yieldio.BrokenResourceError:
            print("the lock's owner died holding it")

    Like trio's ``BrokenResourceError``. Broken is not closed: a closed
    resource was closed on purpose (:class:`ClosedResourceError`).
    """


class BusyResourceError(Exception):
    """Two tasks tried to use a resource that allows only one at a time.

    For example two tasks reading the same stream at once: the interleaving of
    their data would be undefined, so the second reader gets this error.

    ::

        try:
            await stream.receive_some()   # while another task reads it too
        except yieldio.BusyResourceError:
            ...
    """


class Deadlock(RuntimeError):
    """Every task is blocked on something only another task could release.

    :func:`yieldio.run` raises it instead of hanging forever. Its message holds
    the task tree, so you can see who waits on what.

    ::

        async def main():
            await yieldio.Event().wait()   # nothing can ever set it

        try:
            yieldio.run(main)
        except yieldio.Deadlock:
            ...
    """


class QueueClosed(Exception):
    """The :class:`Queue` was closed: no more items will arrive.

    ``put`` raises it at once; ``get`` raises it once the queue is drained
    (at once after ``close(immediate=True)``, which drops the queued items).

    ::

        q.close()
        try:
            await q.put(1)
        except yieldio.QueueClosed:
            ...
    """


class QueueEmpty(Exception):
    """``Queue.get_nowait()`` found no item.

    ::

        try:
            item = q.get_nowait()
        except yieldio.QueueEmpty:
            item = None
    """


class QueueFull(Exception):
    """``Queue.put_nowait()`` found no room.

    ::

        try:
            q.put_nowait(item)
        except yieldio.QueueFull:
            dropped += 1
    """


class IncompleteRead(EOFError):
    """End of stream before ``read_exactly(n)`` got ``n`` bytes.

    ``partial`` holds what did arrive, so nothing read is lost::

        try:
            header = await stream.read_exactly(8)
        except yieldio.IncompleteRead as e:
            print("peer closed after", len(e.partial), "bytes")
    """

    def __init__(self, partial: bytes, expected: int) -> None:
        self.partial = partial
        self.expected = expected
        super().__init__(f"{len(partial)} bytes read on a total of {expected} expected bytes")


class WouldBlock(Exception):
    """A ``*_nowait`` operation would have had to wait (``Lock.acquire_nowait``).

    ::

        try:
            lock.acquire_nowait()
        except yieldio.WouldBlock:
            ...
    """


class BrokenBarrierError(threading.BrokenBarrierError):
    """A :class:`Barrier` was reset or aborted while a task waited, or is broken.

    Raised to every task waiting in :meth:`Barrier.wait` when another task
    calls :meth:`Barrier.reset` or :meth:`Barrier.abort`, and at once by
    ``wait()`` on a barrier that :meth:`Barrier.abort` left broken::

        try:
            await barrier.wait()
        except yieldio.BrokenBarrierError:
            print("the others gave up")

    It subclasses :class:`threading.BrokenBarrierError` (a ``RuntimeError``,
    like ``asyncio.BrokenBarrierError``), so ``except RuntimeError`` and code
    that already handles thread barriers catch it too. It is not
    ``asyncio.BrokenBarrierError``: that would mean importing asyncio with
    yieldio, which keeps its asyncio bridge lazy (``yieldio.aio``).
    """


#: Exception types whose usual cause in a task is a yieldio habit not yet
#: learned; a task that fails with one gets a note (see add_hint).
_HINTED = (RuntimeError, RecursionError, AttributeError, TypeError)

#: asyncio's and trio's names for what a TaskGroup does, and yieldio's. (A
#: note on the error, not a TaskGroup.__getattr__: defining that would slow
#: every attribute access on a group -- CPython specializes attribute loads
#: only for types with the generic lookup -- 15 % of the spawn benchmark.)
_OTHER_SPELLINGS = {
    "create_task": "tg.spawn(fn, *args) (or tg.spawn(coro)), which returns the Task",
    "start_soon": "tg.spawn(fn, *args)",
}


#: Python's error for a keyword that spawn-like calls do not pass on.
_NO_KEYWORDS = re.compile(
    r"(TaskGroup\.spawn|TaskGroup\.start|to_thread|from_thread|run_asyncio)\(\) got an "
    r"unexpected keyword argument '(\w+)'").match


def _note(exc: BaseException, text: str) -> None:
    """``exc.add_note(text)``, once: an error can pass several task groups."""
    if text not in getattr(exc, "__notes__", ()):
        exc.add_note(text)


def _add_hint(exc: BaseException) -> None:
    """Add a note pointing at the yieldio way, when ``exc`` is a known stumbling block.

    Called only when a task fails with an exception of a type in ``_HINTED``
    (an asyncio or trio name on a TaskGroup gets yieldio's, too)::

        RuntimeError: no running event loop
        (yieldio runs no asyncio event loop: call asyncio code through ...)
    """
    if type(exc) is RuntimeError and exc.args == ("no running event loop",):
        # asyncio code awaited from a task: asyncio's words say nothing of the fix.
        _note(exc, "(yieldio runs no asyncio event loop: call asyncio code "
                   "through yieldio.aio.run_asyncio(...); see docs/asyncio.md)")
    elif type(exc) is AttributeError:
        ours = _OTHER_SPELLINGS.get(exc.name or "")
        if ours is not None and type(exc.obj).__module__ == "yieldio._taskgroup":
            _note(exc, f"(yieldio spells {exc.name} {ours})")
    elif type(exc) is TypeError:
        match = _NO_KEYWORDS(str(exc))
        if match is not None:
            # trio's spawn takes no keywords for fn either; asyncio's
            # create_task(coro) never needed them.
            fn, keyword = match.groups()
            _note(exc, f"({fn}() passes only positional arguments on: for {keyword}=, use "
                       f"functools.partial(fn, {keyword}=...), or a coroutine object "
                       f"(tg.spawn(fn(..., {keyword}=...))))")
    elif type(exc) is RecursionError:
        _note(exc, "(if this is a chain of coroutine calls: 'async def' and 'yield from' "
                   "calls use Python's stack; a generator coroutine that calls with "
                   "'result = yield sub()' runs on yieldio's trampoline, with no depth "
                   "limit -- docs/tutorial.md, 'The trampoline')")
