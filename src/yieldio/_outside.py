"""The kernel's windows on the outside world: file descriptors, threads, Ctrl-C.

Everything here ends a task's wait from *outside* the task graph:

* **File descriptors.** One raw ``select.epoll``, level-triggered. A task
  waiting to read or write an fd is recorded on that fd's :class:`_FdWaits`;
  registrations are kept across waits (a loop that waits on the same fd
  again costs no ``epoll_ctl``), and disarmed lazily when epoll reports an
  fd nobody waits on (else level-triggered epoll would spin). Every close
  goes through :meth:`OutsideWorld.notify_closing` first, so a reused fd
  number never inherits a stale registration.
* **Other threads** hand the loop callables through a deque plus one byte on
  a socketpair that the poll watches.
* **Ctrl-C**: a SIGINT handler that only sets a flag (the same socketpair
  wakes the poll); the loop turns it into ``KeyboardInterrupt`` in the main
  task.

:class:`OutsideWorld` is a mixin of :class:`~yieldio._kernel.Kernel`: the
methods live here to keep the scheduler module short, but run on the kernel
object itself (no extra indirection on the I/O hot path).
"""

from __future__ import annotations

import errno
import select
import signal
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ._exceptions import ClosedResourceError
from ._task import RUNNING, Task

__all__ = ["OutsideWorld"]

_EPOLLIN = select.EPOLLIN
_EPOLLOUT = select.EPOLLOUT
_READ_EVENTS = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP | select.EPOLLRDHUP
_WRITE_EVENTS = select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP


class _FdWaits:
    """Who waits on one file descriptor, and what epoll is asked to watch."""

    __slots__ = ("fd", "reader", "writer", "mask", "kernel")

    def __init__(self, fd: int, kernel: OutsideWorld) -> None:
        self.fd = fd
        self.reader: Task | None = None
        self.writer: Task | None = None
        self.mask = 0
        self.kernel = kernel

    def _abort_wait(self, task: Task) -> bool:
        k = self.kernel
        if self.reader is task:
            self.reader = None
        elif self.writer is task:
            self.writer = None
        else:
            return False
        k.io_waiters -= 1
        return True

    def _describe_wait(self, task: Task) -> str:
        what = "read" if self.reader is task else "write"
        return f"{what} fd {self.fd}"


class OutsideWorld:
    """Kernel methods for fds, thread calls and Ctrl-C (see the module docstring)."""

    # Set by Kernel.__init__ (declared here for type checkers).
    ready: deque[Task]
    _hooks: dict[str, tuple[Callable[..., Any], ...]]
    epoll: select.epoll
    fds: dict[int, _FdWaits]
    io_waiters: int
    closed: bool
    main_task: Task | None
    reschedule: Callable[..., None]
    reschedule_error: Callable[[Task, BaseException], None]
    _cancel_system_tasks: Callable[[], None]
    _thread_calls: deque[tuple[Callable[..., Any], tuple[Any, ...]]]
    _wakeup_pending: bool
    _wake_r: socket.socket
    _wake_w: socket.socket
    _wake_fd: int
    _ki_pending: bool
    _ki_at_exit: bool
    _old_sigint: Any
    _old_wakeup_fd: int | None

    def _open_outside(self) -> None:
        self.epoll = select.epoll()
        self.fds = {}
        # Other threads hand work to the loop through this deque + a wakeup.
        self._thread_calls = deque()
        self._wakeup_pending = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_fd = self._wake_r.fileno()
        self.epoll.register(self._wake_fd, _EPOLLIN)
        self._ki_pending = False
        self._ki_at_exit = False  # Ctrl-C came after the main task ended (see run_main)
        self._old_sigint = None
        self._old_wakeup_fd = None

    def _close_outside(self) -> None:
        self._restore_signals()
        # Closes that finalizers handed to the loop (close_fd_soon) but that it
        # never got to (an object dropped in the run's last step): do them now.
        # Their owner has already let go of the fd, so nobody else ever would.
        # Other pending thread calls are not run: their run is over.
        for fn, args in self._thread_calls:
            if getattr(fn, "run_at_kernel_close", False):
                fn(*args)
        for fd in list(self.fds):
            self.notify_closing(fd)
        self.epoll.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- file descriptors -----------------------------------------------------
    def _watch(self, w: _FdWaits, mask: int) -> None:
        fd = w.fd
        try:
            if mask == 0:
                self.epoll.unregister(fd)
            elif w.mask == 0:
                self.epoll.register(fd, mask)
            else:
                self.epoll.modify(fd, mask)
        except FileExistsError:  # fd number reused behind our back
            self.epoll.modify(fd, mask)
        except FileNotFoundError:  # closed and reopened without notify_closing
            if mask:
                self.epoll.register(fd, mask)
        except OSError:
            # Refused (EBADF: not open; EPERM: a regular file, which epoll
            # cannot watch). An entry made just for this wait must not stay.
            if w.mask == 0 and w.reader is None and w.writer is None:
                if self.fds.get(fd) is w:
                    del self.fds[fd]
            raise
        w.mask = mask

    def fd_waits(self, fd: int) -> _FdWaits:
        w = self.fds.get(fd)
        if w is None:
            w = self.fds[fd] = _FdWaits(fd, self)
        return w

    def notify_closing(self, fd: int) -> None:
        """Forget ``fd`` before it is closed and wake its waiters with an error.

        Call it *before* closing: a reused fd number must never inherit a
        stale registration, and no task may wait forever on a dead fd.
        """
        w = self.fds.pop(fd, None)
        if w is None:
            return
        if w.mask:
            try:
                self.epoll.unregister(fd)
            except OSError:
                pass
        for task in (w.reader, w.writer):
            if task is not None:
                self.io_waiters -= 1
                self.reschedule_error(task, ClosedResourceError("another task closed this resource"))
        w.reader = w.writer = None

    def forget_stale(self, fd: int) -> None:
        """A new object owns ``fd``: drop what the loop still knows of that number.

        The loop knows a number while a yieldio object watches it, until
        :meth:`notify_closing`. One closed behind its back -- the stdlib
        socket a ``with`` block closes after ``from_stdlib()`` took it over,
        an ``os.close()`` -- leaves a registration epoll itself has dropped:
        the next socket or pipe given the number saw its interest "already
        armed", was never registered, and its waits never woke. Its waiters
        (on a file that no longer exists) get ``ClosedResourceError``.
        """
        if fd in self.fds:
            self.notify_closing(fd)

    def _dispatch_io(self, events: list[tuple[int, int]]) -> None:
        fds = self.fds
        # Waking a task is Kernel.reschedule inlined (one Python call less per
        # event) unless an instrument wants to hear about it.
        reschedule = self.reschedule if self._hooks["task_scheduled"] else None
        ready = self.ready
        woken = 0
        try:
            for fd, mask in events:
                w = fds.get(fd)
                if w is None:
                    if fd == self._wake_fd:
                        self._drain_wakeup()
                    continue
                stale = 0
                if mask & _READ_EVENTS:
                    task = w.reader
                    if task is not None:
                        w.reader = None
                        woken += 1
                        if reschedule is None:
                            task._wait = None
                            task._val = None
                            ready.append(task)
                        else:
                            reschedule(task)
                    elif w.mask & _EPOLLIN:
                        stale = _EPOLLIN
                if mask & _WRITE_EVENTS:
                    task = w.writer
                    if task is not None:
                        w.writer = None
                        woken += 1
                        if reschedule is None:
                            task._wait = None
                            task._val = None
                            ready.append(task)
                        else:
                            reschedule(task)
                    elif w.mask & _EPOLLOUT:
                        stale |= _EPOLLOUT
                if stale:
                    # Nobody is waiting in that direction any more: stop watching
                    # it, or level-triggered epoll would wake us forever.
                    try:
                        self._watch(w, w.mask & ~stale)
                    except OSError as exc:
                        if exc.errno == errno.EBADF:
                            raise _closed_behind_our_back(fd) from exc
                        raise
                    if w.mask == 0 and w.reader is None and w.writer is None:
                        del fds[fd]
        finally:
            self.io_waiters -= woken

    # -- other threads and signals --------------------------------------------
    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the kernel's thread at the next loop iteration."""
        if self.closed:
            raise RuntimeError("the yieldio kernel has shut down")
        self._thread_calls.append((fn, args))
        if not self._wakeup_pending:
            self._wakeup_pending = True
            try:
                self._wake_w.send(b"\0")
            except (BlockingIOError, OSError):
                pass

    def wakeup_fileno(self) -> int:
        """The fd that, when written to, wakes the loop (for ``signal.set_wakeup_fd``)."""
        return self._wake_w.fileno()

    def _drain_wakeup(self) -> None:
        # The byte read here may be one whose call _run_thread_calls already
        # ran (a call posted while it drained the queue is run in the same
        # pass, and set the flag again). Clear the flag first, or it would
        # stay set with the queue empty: _run_thread_calls, which also
        # clears it, runs only when the queue is not, so no later
        # call_soon_threadsafe would write a byte, and a loop polling with
        # no timeout would sleep through it. (A call posted between this and
        # the recv writes a byte the recv may eat, but it is in the queue
        # already, and the loop looks at the queue after reading events.)
        self._wakeup_pending = False
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _run_thread_calls(self) -> None:
        # Clear the flag before draining: a call appended after this point
        # writes a new wakeup byte, so none can be stranded.
        self._wakeup_pending = False
        calls = self._thread_calls
        while calls:
            fn, args = calls.popleft()
            fn(*args)

    def _install_sigint(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return
        try:
            self._old_wakeup_fd = signal.set_wakeup_fd(self._wake_w.fileno(),
                                                       warn_on_full_buffer=False)
        except ValueError:
            return

        def on_sigint(signum: int, frame: Any) -> None:
            self._ki_pending = True

        self._old_sigint = signal.signal(signal.SIGINT, on_sigint)

    def _restore_signals(self) -> None:
        if self._old_sigint is not None:
            signal.signal(signal.SIGINT, self._old_sigint)
            self._old_sigint = None
        if self._old_wakeup_fd is not None:
            try:
                signal.set_wakeup_fd(self._old_wakeup_fd)
            except (ValueError, OSError):
                # The old wakeup fd was closed during the run (OSError), or its
                # number now names a blocking file (ValueError): it cannot be
                # restored, and run() must not fail for it. Do not leave ours
                # installed either: the wake socket is closed right after, and
                # later signals would write into whatever file reuses its number.
                signal.set_wakeup_fd(-1)
            self._old_wakeup_fd = None

    def _deliver_keyboard_interrupt(self) -> None:
        """Raise KeyboardInterrupt in the main task, ignoring shields."""
        self._ki_pending = False
        task = self.main_task
        if task is None or task._state is not RUNNING:
            # The main task is over; the run only waits for system tasks (the
            # clean-up of abandoned async generators, from_thread calls). This
            # Ctrl-C was dropped, and the run went on for as long as they took:
            # cancel them instead, and run() raises KeyboardInterrupt at its end.
            self._ki_at_exit = True
            self._cancel_system_tasks()
            return
        wait = task._wait
        if wait is not None and wait._abort_wait(task):
            self.reschedule_error(task, KeyboardInterrupt())
            return
        task._extras().ki_pending = True
        task._cancel_pending = True


def _closed_behind_our_back(fd: int) -> RuntimeError:
    """The error for an event on an fd number that was closed without notify_closing.

    epoll watches the open file, not the number: while a duplicate of the fd
    is open it keeps reporting the file, and with the number gone nothing can
    stop it. Level-triggered, the loop would spin for ever; say why instead.
    """
    return RuntimeError(
        f"fd {fd} was closed while yieldio still watched it, and a duplicate of it is "
        f"still open (epoll keeps reporting it and it can no longer be unregistered): "
        f"call yieldio.notify_closing(fd) before closing an fd you have waited on")
