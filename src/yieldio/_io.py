"""Waiting for file descriptors: the bridge between I/O code and the kernel's epoll.

I/O code follows one pattern (curio's): try the non-blocking syscall first,
and only on ``BlockingIOError`` wait for readiness, then retry::

    while True:
        try:
            return sock.recv(n)
        except BlockingIOError:
            await wait_readable(sock)

The common case never enters the kernel. Use :func:`fast_checkpoint` after
an operation that succeeded without waiting: it raises if the task is
cancelled and, every Nth time (counted, so seeded runs replay), yields to the
other tasks so one busy socket cannot starve the rest.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from . import _state
from ._exceptions import BusyResourceError
from ._outside import _EPOLLIN, _EPOLLOUT
from ._traps import PARK, SCHEDULE
from ._typing import awaitable

__all__ = ["wait_readable", "wait_writable", "notify_closing", "fast_checkpoint",
           "cancel_check"]


def _fileno(obj: Any) -> int:
    if isinstance(obj, int):
        return obj
    try:
        fd = obj.fileno()
    except ValueError:  # a closed file object: "I/O operation on closed file"
        fd = -1
    except AttributeError:
        raise TypeError(f"need a file descriptor (an int) or an object with fileno(), "
                        f"not {type(obj).__name__}") from None
    if fd < 0:
        from ._exceptions import ClosedResourceError

        raise ClosedResourceError("the socket or file is closed")
    return int(fd)


@awaitable
def wait_readable(obj: Any) -> Generator[Any, Any, None]:
    """Wait until ``obj`` (an fd or anything with ``fileno()``) is readable.

    Raises :class:`BusyResourceError` if another task already waits to read it,
    and :class:`ClosedResourceError` if it is closed (via :func:`notify_closing`)
    while waiting.

    ::

        await yieldio.wait_readable(sock)
        data = sock.recv(4096)
    """
    try:
        k = _state.local.kernel
    except AttributeError:
        _state.outside_run()
    task = k.current
    if task._cancel_pending:
        task._raise_cancel()
    fd = _fileno(obj)
    w = k.fds.get(fd)
    if w is None:
        w = k.fd_waits(fd)
    if w.reader is not None:
        raise BusyResourceError(f"another task ({w.reader.name!r}) is already reading fd {fd}")
    if not w.mask & _EPOLLIN:
        k._watch(w, w.mask | _EPOLLIN)
    w.reader = task
    task._wait = w
    k.io_waiters += 1
    yield PARK


@awaitable
def wait_writable(obj: Any) -> Generator[Any, Any, None]:
    """Wait until ``obj`` is writable (see :func:`wait_readable`).

    ::

        await yieldio.wait_writable(sock)
        sock.send(data)
    """
    try:
        k = _state.local.kernel
    except AttributeError:
        _state.outside_run()
    task = k.current
    if task._cancel_pending:
        task._raise_cancel()
    fd = _fileno(obj)
    w = k.fds.get(fd)
    if w is None:
        w = k.fd_waits(fd)
    if w.writer is not None:
        raise BusyResourceError(f"another task ({w.writer.name!r}) is already writing fd {fd}")
    if not w.mask & _EPOLLOUT:
        k._watch(w, w.mask | _EPOLLOUT)
    w.writer = task
    task._wait = w
    k.io_waiters += 1
    yield PARK


def notify_closing(obj: Any) -> None:
    """Call before closing an fd you have waited on: unregister it and fail its waiters.

    Needed even when no task waits now: registrations outlive a wait (see
    docs/streams.md, "Any file descriptor"), and an fd closed behind the
    kernel's back leaves a stale one.

    A no-op outside a running kernel (closing in a finalizer, say).

    ::

        yieldio.notify_closing(sock)   # waiters get ClosedResourceError
        sock.close()
    """
    k = getattr(_state.local, "kernel", None)
    if k is None:
        return
    try:
        fd = obj if isinstance(obj, int) else obj.fileno()
    except (OSError, ValueError):
        return
    if fd >= 0:
        k.notify_closing(fd)


def cancel_check() -> None:
    """Raise :class:`Cancelled` (or a pending KeyboardInterrupt) if due; O(1)."""
    try:
        task = _state.local.kernel.current
    except AttributeError:
        _state.outside_run()
    if task._cancel_pending:
        task._raise_cancel()


@awaitable
def fast_checkpoint() -> Generator[Any, Any, None]:
    """The checkpoint to take after an operation that succeeded without waiting."""
    try:
        k = _state.local.kernel
    except AttributeError:
        _state.outside_run()
    task = k.current
    if task._cancel_pending:
        task._raise_cancel()
    k.fast_budget -= 1
    if k.fast_budget <= 0:
        k.fast_budget = k.fast_budget_full
        yield SCHEDULE
