"""The run's token: how threads the run did not start reach it.

A ``to_thread`` worker knows its run; a library's callback thread or a
``threading.Thread`` of your own does not. Inside the run,
``current_token()`` gives a :class:`RunToken` to hand over::

    token = yieldio.threads.current_token()
    threading.Thread(target=watch_files, args=(token,)).start()

    def watch_files(token):                 # in that thread
        for event in blocking_iterator():
            token.run_sync_soon(queue.put_nowait, event)

(trio's ``TrioToken``; asyncio's ``loop.call_soon_threadsafe``.)
``yieldio.from_thread(fn, *args, token=token)`` waits for the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from . import _state
from ._kernel import Kernel

__all__ = ["RunToken", "current_token"]

logger = logging.getLogger("yieldio")


class RunToken:
    """A handle on a running yieldio run, for threads it did not start.

    Take it inside the run, hand it to the thread::

        token = yieldio.threads.current_token()

        def on_message(msg):            # called by a library's own thread
            token.run_sync_soon(inbox.put_nowait, msg)     # returns at once
            # or wait for the answer: from_thread(fn, *args, token=token)

    (trio's ``TrioToken``; asyncio's ``loop.call_soon_threadsafe``.) Two
    tokens of the same run are equal.
    """

    __slots__ = ("_kernel",)

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel

    def __repr__(self) -> str:
        state = "ended" if self._kernel.closed else "running"
        return f"<RunToken of a yieldio run, {state}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunToken) and other._kernel is self._kernel

    def __hash__(self) -> int:
        return id(self._kernel)

    def run_sync_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` on the run's thread soon; from any thread, without waiting.

        Calls run in the order they were made. An exception ``fn`` raises
        is logged (logger ``"yieldio"``), as asyncio's loop reports one from
        a ``call_soon_threadsafe`` callback: there is nobody to raise it to.
        Raises ``RuntimeError`` once the run has ended.
        """
        if not callable(fn):
            raise TypeError(f"run_sync_soon() needs a callable, not {fn!r}")

        def call() -> None:
            try:
                fn(*args)
            except Exception:
                logger.exception("run_sync_soon(%s) failed", getattr(fn, "__qualname__", fn))

        try:
            self._kernel.call_soon_threadsafe(call)
        except RuntimeError:
            raise RuntimeError("the yieldio run of this token has ended") from None


def current_token() -> RunToken:
    """The :class:`RunToken` of the run in this thread (``RuntimeError`` outside one).

    ::

        token = yieldio.threads.current_token()
        threading.Thread(target=worker, args=(token,)).start()

    Once a token was taken, a thread may call in at any time: from then on
    the run no longer ends in :class:`yieldio.Deadlock` while its main task
    runs (every task blocked is then waiting for that thread, perhaps), as
    with a task waiting on a :class:`yieldio.UniversalQueue`.
    """
    k = _state.current_kernel()
    token: RunToken | None = getattr(k, "_run_token", None)
    if token is None:
        token = k._run_token = RunToken(k)  # type: ignore[attr-defined]
        # For the rest of the run, as a passive park: it holds no virtual
        # time (autojump goes on), but "nothing can wake them" is not known.
        k.passive_parks += 1
    return token
