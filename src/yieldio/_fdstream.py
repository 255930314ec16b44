"""FdStream: a :class:`~yieldio.net.Stream` over a pipe (or any non-socket fd).

Subprocess pipes are plain file descriptors, not sockets, so they are read
and written with ``os.read``/``os.write`` rather than ``recv``/``send``.
The pattern is the usual one: put the fd in non-blocking mode, try the
syscall first, and only on ``BlockingIOError`` wait for epoll readiness::

    r, w = os.pipe()
    async with FdStream(r) as reader, FdStream(w) as writer:
        await writer.write(b"hello\\n")
        await writer.send_eof()           # closes the write end: reader sees EOF
        assert await reader.readline() == b"hello\\n"

The stream *owns* the fd: ``aclose()`` closes it (idempotently, after
``notify_closing`` so a task waiting on it wakes with
:class:`ClosedResourceError` and a reused fd number inherits no stale epoll
registration). The direction is read from the fd's access mode: an
``O_RDONLY`` fd cannot be written and vice versa (``io.UnsupportedOperation``).

Caveat (as in trio): ``O_NONBLOCK`` is a property of the *open file
description*, which is shared with every process holding a copy of it.
Wrapping an fd inherited from a parent (``sys.stdin`` from a shell, say)
makes the parent's copy non-blocking too. The pipes created by
:func:`yieldio.subprocess.open_process` are private to this process, so this
never matters there.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import warnings
from typing import Any

from . import _state
from ._exceptions import BusyResourceError, ClosedResourceError
from ._io import fast_checkpoint, wait_readable, wait_writable
from ._stream import DEFAULT_READ_SIZE, BrokenStreamError, Stream, byte_view
from ._traps import schedule

__all__ = ["FdStream"]


def _kernel() -> Any:
    try:
        return _state.local.kernel
    except AttributeError:
        _state.outside_run()


def close_fd_soon(kernel: Any, fd: int) -> None:
    """Close ``fd`` from a finalizer, safely for the kernel that may watch it.

    A finalizer can run in the middle of kernel code (the garbage collector
    runs anywhere), so it must not touch the kernel's fd table directly: the
    close is handed to the loop, which does ``notify_closing`` then
    ``os.close``. If that kernel is gone, nothing watches the fd any more.
    """
    if kernel is not None and not kernel.closed:
        try:
            kernel.call_soon_threadsafe(_notify_and_close, kernel, fd)
            return
        except RuntimeError:
            pass
    try:
        os.close(fd)
    except OSError:
        pass


def _notify_and_close(kernel: Any, fd: int) -> None:
    kernel.notify_closing(fd)
    try:
        os.close(fd)
    except OSError:
        pass


# Still queued when the run ends, it runs then (see OutsideWorld._close_outside).
_notify_and_close.run_at_kernel_close = True  # type: ignore[attr-defined]


def _eio_as_eof(fd: int, exc: OSError) -> bytes:
    """``b""`` for a terminal's ``EIO``, else raise ``exc``.

    A pty master's read fails with ``EIO`` once every process has closed the
    other side (Linux); for the reader that is the end of the stream, as
    the stdlib's ``pty.spawn`` and pexpect treat it. Any other error, or
    ``EIO`` from something that is not a terminal, is a real failure.
    """
    if exc.errno == errno.EIO and os.isatty(fd):
        return b""
    raise exc


class FdStream(Stream):
    """A byte stream over a pipe file descriptor; it takes ownership of ``fd``.

    ::

        stream = FdStream(fd)
        data = await stream.receive_some()
        await stream.aclose()

    At most one task may receive and one task may send at a time
    (:class:`BusyResourceError`); after ``aclose()`` every operation raises
    :class:`ClosedResourceError`. ``send_eof()`` on a write-only stream closes
    the fd, so the reader at the other end sees end-of-file.
    """

    def __init__(self, fd: int) -> None:
        super().__init__()
        if not isinstance(fd, int) or isinstance(fd, bool):
            raise TypeError(f"FdStream needs an int file descriptor, not {fd!r}")
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)  # OSError(EBADF) for a bad fd
        access = flags & os.O_ACCMODE
        self._fd = fd
        self._readable = access in (os.O_RDONLY, os.O_RDWR)
        self._writable = access in (os.O_WRONLY, os.O_RDWR)
        self._receiving = False
        self._sending = False
        self._eof_sent = False
        # After a short read the pipe is drained: wait for readiness before
        # the next read instead of paying for a read that fails (see DESIGN 4).
        self._drained = False
        self._kernel = kernel = getattr(_state.local, "kernel", None)
        if kernel is not None:
            kernel.forget_stale(fd)
        # What the pipe is, for the unclosed warning and repr ("stdout of
        # process 4242 (sort -n)"): with twenty leaked pipes, an fd number
        # alone does not say where to look.
        self._what: str | None = None
        if not flags & os.O_NONBLOCK:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)

    def __repr__(self) -> str:
        mode = ("r" if self._readable else "") + ("w" if self._writable else "")
        state = "closed" if self._closed else f"fd={self._fd}"
        what = f" {self._what}" if getattr(self, "_what", None) else ""
        return f"<FdStream {mode} {state}{what}>"

    def fileno(self) -> int:
        """The file descriptor (``-1`` once closed or after ``send_eof``)."""
        return self._fd

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``"fd"``: the file descriptor (see :meth:`fileno`)."""
        if name == "fd":
            return self._fd
        return default

    # -- receiving ------------------------------------------------------------
    async def receive_some(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        """Return up to ``max_bytes`` (at least 1) bytes, or ``b""`` at EOF."""
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if self._closed:
            raise ClosedResourceError("this stream is closed")
        if not self._readable:
            raise io.UnsupportedOperation("this pipe stream is write-only")
        if self._receiving:
            raise BusyResourceError("another task is already receiving from this stream")
        if max_bytes > DEFAULT_READ_SIZE:
            # os.read(fd, n) allocates n bytes before reading: receive_some(2**40)
            # raised MemoryError where a socket stream returns what came. A
            # pipe holds 64 KiB by default; more waits for the next call.
            max_bytes = DEFAULT_READ_SIZE
        k = _kernel()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        self._receiving = True
        try:
            fd = self._fd
            if not self._drained:
                try:
                    data = os.read(fd, max_bytes)
                except BlockingIOError:
                    pass
                except OSError as exc:
                    return _eio_as_eof(fd, exc)
                else:
                    self._drained = 0 < len(data) < max_bytes
                    # The counted schedule point after a success that did not wait.
                    k.fast_budget -= 1
                    if k.fast_budget <= 0:
                        k.fast_budget = k.fast_budget_full
                        await schedule()
                    return data
            while True:
                try:
                    await wait_readable(fd)
                except PermissionError:
                    # epoll refuses fds that are always ready: a regular file
                    # or /dev/null (stdin redirected from a file, say). Only a
                    # short read brings us here (they never block), so read
                    # again at once, as trio does, with the fast path's
                    # counted checkpoint.
                    data = os.read(fd, max_bytes)
                    self._drained = False
                    await fast_checkpoint()
                    return data
                self._check_not_closed(fd)
                try:
                    data = os.read(fd, max_bytes)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    return _eio_as_eof(fd, exc)
                self._drained = 0 < len(data) < max_bytes
                return data
        finally:
            self._receiving = False

    # -- sending ----------------------------------------------------------------
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data``; waits for room when the pipe is full.

        Raises ``BrokenPipeError`` if the reading end was closed (the child
        exited, say). If it is cancelled part way, an unknown prefix was
        written and the stream is broken for writing.
        """
        if self._closed:
            raise ClosedResourceError("this stream is closed")
        if self._eof_sent:
            raise ClosedResourceError("send_eof() was called; this stream cannot be written")
        if not self._writable:
            raise io.UnsupportedOperation("this pipe stream is read-only")
        if self._write_broken:
            raise BrokenStreamError("a previous write on this stream was interrupted")
        if self._sending:
            raise BusyResourceError("another task is already sending on this stream")
        k = _kernel()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        # memoryview() first: a TypeError (write("text")) must not leave the
        # stream marked as busy sending.
        view = byte_view(data)
        with view, view.cast("B") as mv:
            total = len(mv)
            pos = 0
            waited = False
            self._sending = True
            try:
                fd = self._fd
                while pos < total:
                    try:
                        pos += os.write(fd, mv[pos:])
                    except BlockingIOError:
                        waited = True
                        await wait_writable(fd)
                        self._check_not_closed(fd)
            except BaseException:
                if pos:
                    self._write_broken = True
                raise
            finally:
                self._sending = False
        if not waited:
            k.fast_budget -= 1
            if k.fast_budget <= 0:
                k.fast_budget = k.fast_budget_full
                await schedule()

    async def send_eof(self) -> None:
        """Close the write end, so the reader sees end-of-file (idempotent).

        Only for a write-only stream (a subprocess's stdin): a read-write fd
        cannot be half-closed (``io.UnsupportedOperation``).
        """
        if self._closed:
            raise ClosedResourceError("this stream is closed")
        if self._eof_sent:
            return
        if self._sending:
            # As on sockets and TLS: closing the fd under a write in progress
            # would cut it off at an unknown point.
            raise BusyResourceError("another task is writing to this stream")
        if not self._writable or self._readable:
            raise io.UnsupportedOperation(
                "send_eof() needs a write-only pipe stream; close the stream instead")
        self._eof_sent = True
        self._close_fd()

    # -- closing ----------------------------------------------------------------
    def _check_not_closed(self, fd: int) -> None:
        # After a wait that ended normally: another task may have closed the
        # stream between our wake-up and now (notify_closing only reaches
        # tasks still parked). The fd number may already belong to a new
        # file: never read or write it, fail as a closed stream does.
        if self._fd != fd:
            raise ClosedResourceError("another task closed this resource")

    def _close_fd(self) -> None:
        fd = self._fd
        if fd < 0:
            return
        self._fd = -1
        here = getattr(_state.local, "kernel", None)
        owner = self._kernel
        if owner is not None and owner is not here and not owner.closed:
            # Closed from another thread: the owning loop must forget it first.
            close_fd_soon(owner, fd)
            return
        if here is not None:
            here.notify_closing(fd)
        os.close(fd)

    async def aclose(self) -> None:
        """Close the fd (idempotent, never blocks, not a cancellation point).

        A task blocked reading or writing this stream wakes with
        :class:`ClosedResourceError`.
        """
        self._closed = True
        self._close_fd()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", -1)
        if fd >= 0:
            self._fd = -1
            what = getattr(self, "_what", None)
            warnings.warn(f"unclosed FdStream (fd {fd}{', ' + what if what else ''})",
                          ResourceWarning, stacklevel=2, source=self)
            close_fd_soon(self._kernel, fd)
