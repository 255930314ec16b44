"""Receiving Unix signals as an async stream.

::

    import signal, yieldio

    async def main():
        with yieldio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    reload_config()
                else:
                    break               # SIGTERM: shut down cleanly

For the duration of the ``with`` block, Python handlers replace whatever
handled those signals before (including the default action: a SIGTERM no
longer kills the process); leaving the block restores the previous handlers.

Semantics, as in trio:

* **Coalescing.** A signal that arrives while the same signal is still
  pending (received by the OS but not yet returned by the receiver) is merged
  with it. Signals are returned in the order they first arrived; the first
  occurrence of each is never lost. (The OS itself coalesces standard
  signals the same way, so counting signals was never reliable.)
* **Nothing is lost on exit.** Signals still pending when the block is left
  are re-delivered to the restored handlers with :func:`signal.raise_signal`,
  as if the receiver had never existed.
* Main thread only, inside :func:`yieldio.run` (``RuntimeError`` otherwise),
  because Python runs signal handlers only in the main thread.
* Receivers stack: of the receivers open for a signal, the most recently
  opened gets it. They may close in any order (two tasks, say): the handler
  that was there before the first one is restored when the last one closes,
  and not before.

The handler runs between two bytecodes of whatever the main thread was doing
-- possibly in the middle of kernel code -- so it only appends to the
receiver's own queue and asks the loop, via ``call_soon_threadsafe``, to wake
the waiting task. ``signal.set_wakeup_fd`` (installed by the kernel, or here
if the kernel could not) makes a signal delivered to another thread interrupt
the loop's ``epoll`` wait.
"""

from __future__ import annotations

import signal
import threading
from collections import deque
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

from . import _state
from ._exceptions import BusyResourceError, ClosedResourceError
from ._task import Task
from ._traps import PARK, SCHEDULE
from ._typing import awaitable

__all__ = ["open_signal_receiver", "SignalReceiver"]


class SignalReceiver:
    """The pending signals of one :func:`open_signal_receiver` block.

    ::

        with yieldio.open_signal_receiver(signal.SIGUSR1) as signals:
            signum = await signals.receive()      # or: async for signum in signals

    One task may wait on it at a time (:class:`BusyResourceError`
    otherwise). Once the block is left, ``receive()`` raises
    :class:`ClosedResourceError` and ``async for`` ends. It belongs to the
    ``yieldio.run`` that opened it (``RuntimeError`` from another run).
    """

    def __init__(self, kernel: Any, signals: tuple[int, ...]) -> None:
        self._kernel = kernel
        self._signals = signals
        # Written by the signal handler, read by the task: deque and set
        # operations are single C calls, so a handler that interrupts the
        # task's code between two bytecodes sees consistent state.
        self._pending: deque[int] = deque()
        self._pending_set: set[int] = set()
        self._waiter: Task | None = None
        self._wake_scheduled = False
        self._closed = False

    def __repr__(self) -> str:
        names = ", ".join(_signal_name(s) for s in self._signals)
        state = "closed" if self._closed else f"{len(self._pending)} pending"
        return f"<SignalReceiver ({names}) {state}>"

    @property
    def signals(self) -> tuple[int, ...]:
        """The signal numbers this receiver listens for."""
        return self._signals

    def pending(self) -> list[int]:
        """Signals received but not yet returned, oldest first."""
        return list(self._pending)

    # -- called by the signal handler (anywhere in the main thread) -----------
    def _handler(self, signum: int, frame: Any) -> None:
        if signum not in self._pending_set:
            self._pending_set.add(signum)
            self._pending.append(signum)
        if not self._wake_scheduled:
            self._wake_scheduled = True
            try:
                self._kernel.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the kernel is shutting down
                self._wake_scheduled = False

    # -- called by the loop ---------------------------------------------------
    def _wake(self) -> None:
        self._wake_scheduled = False
        task = self._waiter
        if task is not None and self._pending:
            self._waiter = None
            self._kernel.passive_parks -= 1
            self._kernel.reschedule(task)

    def _abort_wait(self, task: Task) -> bool:
        if self._waiter is task:
            self._waiter = None
            self._kernel.passive_parks -= 1
            return True
        return False

    def _describe_wait(self, task: Task) -> str:
        names = ", ".join(_signal_name(s) for s in self._signals)
        return f"signal receiver ({names})"

    def _pop(self) -> int:
        signum = self._pending[0]
        # Leave the "pending" set before the queue: a handler running between
        # these two lines then queues a new occurrence instead of merging it
        # into the one being returned.
        self._pending_set.discard(signum)
        self._pending.popleft()
        return signum

    # -- the task side --------------------------------------------------------
    @awaitable
    def receive(self) -> Generator[Any, Any, int]:
        """Wait for the next signal and return its number (a checkpoint).

        ::

            signum = await signals.receive()
        """
        try:
            k = _state.local.kernel
        except AttributeError:
            _state.outside_run()
        if k is not self._kernel:
            # Its wakeups go to the loop of the run that opened it.
            raise RuntimeError("this signal receiver belongs to another yieldio.run()")
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        if self._closed:
            raise ClosedResourceError("the signal receiver's block has ended")
        if self._pending:
            yield SCHEDULE
            # The block may have ended during the checkpoint: its pending
            # signals went to the restored handlers, and parking on a closed
            # receiver would wait for ever (nothing wakes it any more).
            if self._closed:
                raise ClosedResourceError("the signal receiver's block has ended")
            if self._pending:  # a checkpoint: another task may have taken it
                return self._pop()
        while True:
            if self._waiter is not None:
                raise BusyResourceError(
                    f"another task ({self._waiter.name!r}) is already receiving signals")
            self._waiter = task
            task._wait = self
            # Only a signal (from outside the kernel) can end this park.
            k.passive_parks += 1
            yield PARK
            if self._closed:
                raise ClosedResourceError("the signal receiver's block has ended")
            if self._pending:
                return self._pop()

    def __aiter__(self) -> SignalReceiver:
        return self

    async def __anext__(self) -> int:
        if self._closed:
            raise StopAsyncIteration
        try:
            return await self.receive()
        except ClosedResourceError:
            raise StopAsyncIteration from None

    # -- closing -------------------------------------------------------------
    def _close(self) -> None:
        self._closed = True
        task = self._waiter
        if task is not None:
            self._waiter = None
            self._kernel.passive_parks -= 1
            self._kernel.reschedule(task)  # it sees _closed and raises


def _signal_numbers(signals: tuple[Any, ...]) -> tuple[int, ...]:
    if not signals:
        raise TypeError("open_signal_receiver() needs at least one signal")
    out: list[int] = []
    for s in signals:
        if isinstance(s, bool) or not isinstance(s, int):
            raise TypeError(f"not a signal number: {s!r}")
        # valid_signals(), not the Signals enum: the enum names only SIGRTMIN
        # and SIGRTMAX, and the real-time signals between them are valid too.
        num = int(s)
        if num not in signal.valid_signals():
            raise ValueError(f"{s!r} is not a valid signal number")
        if num not in out:
            out.append(num)
    return tuple(out)


def _signal_name(num: int) -> str:
    """``"SIGTERM"``; ``"SIGRTMIN+3"`` for a real-time signal the enum does not name."""
    try:
        return signal.Signals(num).name
    except ValueError:
        rtmin = getattr(signal, "SIGRTMIN", None)
        if rtmin is not None and num > rtmin:
            return f"SIGRTMIN+{num - rtmin}"
        return f"signal {num}"


# The receivers open for each signal, oldest first (all in the main thread),
# and the handler each signal had before the first of them. One dispatcher is
# installed per signal while any receiver wants it: a receiver that closes out
# of order then leaves the others working, instead of restoring a handler
# from under them.
_open: dict[int, list[SignalReceiver]] = {}
_before: dict[int, Any] = {}
# While any receiver is open: how many, and the wakeup fd from before them.
_wakeup = {"users": 0, "before": -1}


def _dispatch(signum: int, frame: Any) -> None:
    receivers = _open.get(signum)
    if receivers:
        receivers[-1]._handler(signum, frame)


def _take(num: int, receiver: SignalReceiver) -> None:
    receivers = _open.setdefault(num, [])
    if not receivers:
        _before[num] = signal.signal(num, _dispatch)  # OSError for SIGKILL: nothing taken
    receivers.append(receiver)


def _give_back(num: int, receiver: SignalReceiver) -> None:
    receivers = _open[num]
    if receivers == [receiver]:
        # Restore first, then forget: a signal in between still finds a home.
        # None: the old handler was installed from C; the best we can do is
        # the default action.
        handler = _before.pop(num)
        signal.signal(num, handler if handler is not None else signal.SIG_DFL)
    receivers.remove(receiver)


@contextmanager
def open_signal_receiver(*signals: int) -> Iterator[SignalReceiver]:
    """Catch ``signals`` while the ``with`` block runs; iterate to receive them.

    ::

        with yieldio.open_signal_receiver(signal.SIGTERM) as signals:
            async for signum in signals:
                print("got", signal.Signals(signum).name)
                break

    Raises ``RuntimeError`` outside the main thread or outside
    :func:`yieldio.run`, ``ValueError`` for an unknown number and
    ``OSError`` for a signal that cannot be caught (``SIGKILL``,
    ``SIGSTOP``). Duplicates of a still-pending signal are coalesced; signals
    pending when the block ends are re-delivered to the restored handlers.
    """
    # The thread first: a worker thread of a run (to_thread) has no kernel of
    # its own, and "must be used inside yieldio.run()" would mislead there.
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("open_signal_receiver() only works in the main thread "
                           "(Python runs signal handlers only there)")
    k = getattr(_state.local, "kernel", None)
    if k is None:
        raise RuntimeError("open_signal_receiver() must be used inside yieldio.run()")
    nums = _signal_numbers(signals)
    receiver = SignalReceiver(k, nums)
    taken: list[int] = []
    if not _wakeup["users"]:
        # Make sure a signal that lands on another thread interrupts epoll:
        # the kernel installs its wakeup fd only over the default SIGINT
        # handler, so point it at the kernel's wake socket while receivers
        # are open.
        _wakeup["before"] = signal.set_wakeup_fd(k.wakeup_fileno(), warn_on_full_buffer=False)
    _wakeup["users"] += 1
    try:
        for num in nums:
            _take(num, receiver)
            taken.append(num)
        yield receiver
    finally:
        for num in reversed(taken):
            _give_back(num, receiver)
        _wakeup["users"] -= 1
        if not _wakeup["users"]:
            # Python cannot report the flag the old wakeup fd had. If it is
            # the kernel's own socket, the kernel installed it with
            # warn_on_full_buffer=False (a full socket is harmless: one byte
            # wakes the loop), so keep that; the default would print a warning
            # for every signal of a burst that arrives while the loop is busy.
            before = _wakeup["before"]
            try:
                signal.set_wakeup_fd(before, warn_on_full_buffer=before != k.wakeup_fileno())
            except (ValueError, OSError):
                # The old wakeup fd was closed during the block (or its number
                # now names a blocking file): it cannot come back. Raising here
                # skipped the close and the redelivery below; drop ours instead,
                # as the kernel does at the end of a run.
                signal.set_wakeup_fd(-1)
        receiver._close()
        # Pending signals go to whoever handles them now (an older receiver,
        # or the restored handler), as if this receiver had never existed.
        _redeliver(receiver)


def _redeliver(receiver: SignalReceiver) -> None:
    """Raise each pending signal, even if a handler raises (as trio does).

    A restored handler may raise (``sys.exit()`` in a SIGTERM handler, or
    ``KeyboardInterrupt``): the ``finally`` still delivers the rest, and the
    exceptions chain as they would for signals arriving one after another.
    """
    if receiver._pending:
        try:
            signal.raise_signal(receiver._pop())
        finally:
            _redeliver(receiver)

