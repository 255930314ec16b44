"""Child processes: spawn, talk to them through pipe streams, wait, kill.

::

    import yieldio, yieldio.subprocess as ysp

    async def main():
        done = await ysp.run(["echo", "hi"], capture_output=True, check=True)
        assert done.stdout == b"hi\\n"

        async with await ysp.open_process(["cat"], stdin=ysp.PIPE, stdout=ysp.PIPE) as p:
            await p.stdin.write(b"ping\\n")
            await p.stdin.send_eof()
            assert await p.stdout.readline() == b"ping\\n"
        assert p.returncode == 0

    yieldio.run(main)

**Cancelling a task that waits on a child kills the child.** If
``Process.wait()`` (and so ``run()``, ``Process.aclose()`` and the end of an
``async with process:`` block) is cancelled -- by a timeout, a failing
sibling, Ctrl-C -- the child gets ``SIGKILL``, is reaped inside a shielded
scope, and then ``Cancelled`` propagates. A cancelled program therefore
leaves no orphan and no zombie behind. (trio only waits; asyncio leaves the
child running. Send a gentler signal yourself first if the child needs to
clean up: ``p.terminate()`` then ``with yieldio.move_on_after(5): await
p.wait()``.)

How a child is watched: with a *pidfd* (``os.pidfd_open``, Linux >= 5.3)
that the kernel's epoll reports readable when the child exits; elsewhere a
daemon thread per waited child blocks in ``waitid(pid, WNOWAIT)``. Neither
ever calls ``waitpid(-1)``, which would steal the children of the standard
:mod:`subprocess` module; the child is reaped by its own ``Popen`` object.
"""

from __future__ import annotations

import locale
import os
import signal
import subprocess as _sp
import threading
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, cast

from . import _state
from ._cancel import CancelScope
from ._fdstream import FdStream, close_fd_soon
from ._io import wait_readable
from ._task import Task
from ._taskgroup import TaskGroup
from ._time import checkpoint
from ._timeouts import move_on_after
from ._traps import PARK
from ._typing import awaitable
from .threads import to_thread

PIPE = _sp.PIPE
DEVNULL = _sp.DEVNULL
STDOUT = _sp.STDOUT
CalledProcessError = _sp.CalledProcessError
CompletedProcess = _sp.CompletedProcess
TimeoutExpired = _sp.TimeoutExpired
SubprocessError = _sp.SubprocessError

__all__ = ["open_process", "run", "Process", "FdStream", "PIPE", "DEVNULL", "STDOUT",
           "CalledProcessError", "CompletedProcess", "TimeoutExpired", "SubprocessError"]

#: Watch children with pidfds when the OS has them; tests switch it off to
#: exercise the thread fallback.
USE_PIDFD = hasattr(os, "pidfd_open")

_TEXT_OPTIONS = ("text", "universal_newlines", "encoding", "errors")


def _current_task() -> Task:
    task = _state.current_kernel().current
    assert task is not None
    return task


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    # to_thread() returns a generator-based coroutine that mypy cannot see as awaitable.
    return await cast(Awaitable[Any], to_thread(fn, *args))


class _ExitWaiters:
    """Tasks parked until the child exits (all but the one watching the pidfd).

    Each park is counted for the deadlock detector: in ``thread_jobs`` when
    the watcher thread will end it (so a VirtualClock does not autojump past
    a child that really runs), in ``external_parks`` when the pidfd watcher
    task will (its fd wait already blocks autojump).
    """

    __slots__ = ("tasks", "pid")

    def __init__(self, pid: int) -> None:
        self.tasks: dict[Task, str] = {}  # task -> name of the kernel counter it holds
        self.pid = pid

    def _abort_wait(self, task: Task) -> bool:
        counter = self.tasks.pop(task, None)
        if counter is None:
            return False
        k = task._kernel
        setattr(k, counter, getattr(k, counter) - 1)
        return True

    def _describe_wait(self, task: Task) -> str:
        return f"wait for process {self.pid} to exit"

    def wake_all(self) -> None:
        tasks = self.tasks
        self.tasks = {}
        for task, counter in tasks.items():
            k = task._kernel
            setattr(k, counter, getattr(k, counter) - 1)
            k.reschedule(task)


@awaitable
def _park_until_exit(waiters: _ExitWaiters, counter: str) -> Generator[Any, Any, None]:
    task = _current_task()
    if task._cancel_pending:
        task._raise_cancel()
    k = task._kernel
    waiters.tasks[task] = counter
    task._wait = waiters
    setattr(k, counter, getattr(k, counter) + 1)
    yield PARK


class Process:
    """A running child process, created by :func:`open_process`.

    ::

        p = await open_process(["sleep", "10"])
        p.terminate()
        assert await p.wait() == -signal.SIGTERM

    ``stdin``/``stdout``/``stderr`` are :class:`FdStream` (a
    :class:`yieldio.Stream` over a pipe) objects for the pipes you asked for (``PIPE``), else None. ``returncode``
    is None while the child runs (it does not poll: call :meth:`poll`),
    negative ``-N`` if it died of signal ``N``. A Process belongs to the
    ``yieldio.run`` that created it.
    """

    def __init__(self, popen: _sp.Popen[bytes], stdin: FdStream | None,
                 stdout: FdStream | None, stderr: FdStream | None, pidfd: int) -> None:
        self._popen = popen
        self.args = popen.args
        self.pid: int = popen.pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self._pidfd = pidfd
        self._kernel = _state.current_kernel()
        self._watcher: Task | None = None  # the task waiting on the pidfd
        self._waiters = _ExitWaiters(self.pid)
        self._thread: threading.Thread | None = None
        self._thread_saw_exit = False

    def __repr__(self) -> str:
        rc = self.returncode
        state = "running" if rc is None else f"exited with {rc}"
        return f"<yieldio Process {self.pid} {self.args!r} {state}>"

    @property
    def returncode(self) -> int | None:
        """The exit status once the child was reaped, else None (no polling)."""
        return self._popen.returncode

    # -- status and signals ------------------------------------------------
    def poll(self) -> int | None:
        """Reap the child if it has exited; return ``returncode`` (never blocks)."""
        rc = self._popen.poll()
        if rc is not None:
            self._on_reaped()
        return rc

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the child; does nothing once it was reaped.

        Never signals a recycled pid: the child is polled first, and a zombie
        (our unreaped child) keeps its pid reserved.
        """
        self._popen.send_signal(sig)
        if self._popen.returncode is not None:
            self._on_reaped()

    def terminate(self) -> None:
        """Send ``SIGTERM``."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """Send ``SIGKILL``."""
        self.send_signal(signal.SIGKILL)

    def _on_reaped(self) -> None:
        """The exit status is known: release the pidfd, wake the waiters."""
        if getattr(_state.local, "kernel", None) is not self._kernel:
            if self._kernel.closed:
                # Its run is over (a Process reaped after it): nobody waits
                # and no loop watches the pidfd, so release it now.
                self._close_pidfd()
            else:
                try:
                    self._kernel.call_soon_threadsafe(self._on_reaped)
                except RuntimeError:
                    pass
            return
        if self._watcher is None:
            self._close_pidfd()
        if self._waiters.tasks:
            self._waiters.wake_all()

    def _close_pidfd(self) -> None:
        fd = self._pidfd
        if fd >= 0:
            self._pidfd = -1
            if getattr(_state.local, "kernel", None) is self._kernel:
                self._kernel.notify_closing(fd)
                os.close(fd)
            else:
                close_fd_soon(self._kernel, fd)

    # -- waiting ------------------------------------------------------------
    async def wait(self) -> int:
        """Wait for the child to exit, reap it, and return its ``returncode``.

        **If the wait is cancelled, the child is killed** (``SIGKILL``) and
        reaped before ``Cancelled`` propagates::

            with yieldio.move_on_after(1):
                await p.wait()          # the child is dead after this block
        """
        task = _current_task()
        if task._kernel is not self._kernel:
            raise RuntimeError("this Process belongs to another yieldio.run()")
        if self.poll() is None:
            try:
                # The checkpoint is inside the try: a wait entered already
                # cancelled (an aclose() or "async with" exit in a cancelled
                # scope) must kill and reap the child too, not just raise.
                if task._cancel_pending:
                    task._raise_cancel()
                await self._wait_exit(task)
            except GeneratorExit:
                # The coroutine is being closed (garbage-collected or abandoned):
                # it may not await any more. Withdraw its wait as cancellation
                # would, then SIGKILL, which makes a blocking reap short.
                wait = task._wait
                if wait is not None and wait._abort_wait(task):
                    task._wait = None
                self.kill()
                self._popen.wait()
                self._on_reaped()
                raise
            except BaseException:
                await self._kill_and_reap()
                raise
        else:
            await checkpoint()
        rc = self._popen.returncode
        assert rc is not None
        return rc

    async def _wait_exit(self, task: Task) -> None:
        """Block until the child is reaped (no kill on cancellation)."""
        while self._popen.returncode is None:
            if self._pidfd >= 0 and self._watcher is None:
                self._watcher = task
                try:
                    # Readable once the child has exited (it is then a zombie
                    # that only we can reap, so the pid cannot be recycled).
                    await wait_readable(self._pidfd)
                finally:
                    self._watcher = None
                    if self._popen.returncode is not None:
                        # Another task reaped the child (poll(), kill()) while
                        # we watched: _on_reaped() left the pidfd to us. If
                        # this wait is being cancelled, the _on_reaped() below
                        # never runs, so release the pidfd here.
                        self._close_pidfd()
                if self._popen.poll() is None:
                    # The child has exited, but another thread inside
                    # Popen.wait() holds the reaping lock: let it finish.
                    await _in_thread(self._popen.wait)
                self._on_reaped()
            elif self._pidfd >= 0:
                await _park_until_exit(self._waiters, "external_parks")
            else:
                if self._thread_saw_exit:
                    # The thread saw the exit but poll() lost a race with a
                    # thread inside Popen.wait(): let that thread finish.
                    await _in_thread(self._popen.wait)
                    self._on_reaped()
                    continue
                self._start_thread()
                await _park_until_exit(self._waiters, "thread_jobs")

    def _start_thread(self) -> None:
        if self._thread is not None:
            return
        k = self._kernel

        def watch() -> None:
            # WNOWAIT: learn that the child exited without reaping it, so the
            # Popen object still reaps it (and records the status) itself.
            try:
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                pass  # already reaped by someone else
            try:
                k.call_soon_threadsafe(self._thread_exit)
            except RuntimeError:
                pass  # the run ended; nobody waits any more

        self._thread = threading.Thread(target=watch, name=f"yieldio-child-{self.pid}",
                                        daemon=True)
        self._thread.start()

    def _thread_exit(self) -> None:
        self._thread_saw_exit = True
        self._popen.poll()
        self._waiters.wake_all()
        if self._popen.returncode is not None:
            self._on_reaped()

    async def _kill_and_reap(self) -> None:
        """SIGKILL the child if it runs, then reap it, immune to cancellation."""
        if self._popen.returncode is not None:
            return
        self.kill()
        task = _current_task()
        try:
            with CancelScope(shield=True):
                await self._wait_exit(task)
        except BaseException:
            # KeyboardInterrupt pierces shields: the child was SIGKILLed, so a
            # blocking reap is short. Never leave a zombie.
            self._popen.wait()
            self._on_reaped()
            raise

    # -- closing ------------------------------------------------------------
    def _close_pipes(self) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream._closed = True
                stream._close_fd()

    async def aclose(self) -> None:
        """Close the pipes, then wait for the child (killing it if cancelled).

        Closing ``stdout``/``stderr`` first means a child still writing gets
        ``EPIPE``/``SIGPIPE`` instead of blocking forever on a full pipe.
        """
        self._close_pipes()
        await self.wait()

    async def __aenter__(self) -> Process:
        return self

    async def __aexit__(self, etype: Any, exc: BaseException | None, tb: Any) -> None:
        """Leaving the block: kill the child if an exception is leaving it, then aclose()."""
        if exc is not None and self._popen.returncode is None:
            self.kill()
        await self.aclose()

    def __del__(self) -> None:
        fd = getattr(self, "_pidfd", -1)
        if fd >= 0:
            self._pidfd = -1
            close_fd_soon(self._kernel, fd)


def _check_binary(popen_kwargs: dict[str, Any]) -> None:
    for name in _TEXT_OPTIONS:
        if popen_kwargs.get(name):
            raise TypeError(f"open_process() got {name}=...: process pipes are byte streams; "
                            "decode the data yourself, or use yieldio.subprocess.run(text=True)")


async def open_process(args: str | bytes | os.PathLike[str] | Sequence[Any], *,
                       stdin: Any = None, stdout: Any = None, stderr: Any = None,
                       **popen_kwargs: Any) -> Process:
    """Start a child process; ``PIPE`` gives a stream for that pipe.

    ::

        p = await open_process(["grep", "x"], stdin=PIPE, stdout=PIPE)
        await p.stdin.write(b"a\\nx\\n")
        await p.stdin.send_eof()
        assert await p.stdout.read() == b"x\\n"
        assert await p.wait() == 0

    ``stdin``/``stdout``/``stderr`` take what :class:`subprocess.Popen` takes
    (``PIPE``, ``DEVNULL``, ``STDOUT`` for stderr, a file object or an fd,
    None to inherit); other keywords go to ``Popen`` (``close_fds`` defaults
    to True). Pipes are binary: ``text``/``encoding`` are refused. A missing
    program raises ``FileNotFoundError`` here. The spawn itself runs on a
    worker thread, so a slow ``fork`` never stalls the loop; if it is
    cancelled, the new child is killed and reaped.
    """
    _check_binary(popen_kwargs)
    popen_kwargs.setdefault("close_fds", True)
    if stdin is STDOUT or stdout is STDOUT:
        raise ValueError("STDOUT is only valid for stderr")
    specs = [stdin, stdout, stderr]
    ours: list[int | None] = [None, None, None]  # the parent's end of each PIPE
    theirs: list[int] = []  # the child's ends: closed here once the child has them
    box: list[tuple[_sp.Popen[bytes], int]] = []

    def spawn() -> None:
        popen = _sp.Popen(args, stdin=specs[0], stdout=specs[1], stderr=specs[2],
                          **popen_kwargs)
        pidfd = -1
        if USE_PIDFD:
            try:
                pidfd = os.pidfd_open(popen.pid)
            except OSError:  # ENOSYS under old kernels or seccomp: use a thread
                pidfd = -1
        box.append((popen, pidfd))

    try:
        for i in range(3):
            if specs[i] is PIPE:
                # os.pipe() fds are non-inheritable; Popen dup2()s the child's end.
                r, w = os.pipe()
                ours[i], specs[i] = (w, r) if i == 0 else (r, w)
                theirs.append(specs[i])
        await _in_thread(spawn)
    except BaseException:
        for fd in ours:
            if fd is not None:
                os.close(fd)
        if box:
            # Spawned, but the spawn was cancelled: nobody will own this child.
            popen, pidfd = box[0]
            popen.kill()
            popen.wait()
            if pidfd >= 0:
                os.close(pidfd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    popen, pidfd = box[0]
    streams = [FdStream(fd) if fd is not None else None for fd in ours]
    made_with: Any = popen.args
    command = os.fsdecode(made_with) if isinstance(made_with, (str, bytes, os.PathLike)) \
        else " ".join(map(os.fsdecode, made_with))
    if len(command) > 60:
        command = command[:57] + "..."
    for which, stream in zip(("stdin", "stdout", "stderr"), streams, strict=True):
        if stream is not None:
            stream._what = f"{which} of process {popen.pid} ({command})"
    return Process(popen, streams[0], streams[1], streams[2], pidfd)


async def _feed(stream: FdStream, data: bytes | bytearray | memoryview | None) -> None:
    try:
        if data:
            await stream.write(data)
    except BrokenPipeError:
        pass  # the child stopped reading; like subprocess.communicate(), not an error
    finally:
        await stream.aclose()


async def _drain(stream: FdStream, sink: bytearray) -> None:
    while True:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return
        sink += chunk


def _decode(data: bytes, encoding: str | None, errors: str | None) -> str:
    text = data.decode(encoding or locale.getpreferredencoding(False), errors or "strict")
    return text.replace("\r\n", "\n").replace("\r", "\n")


async def run(args: str | bytes | os.PathLike[str] | Sequence[Any], *,
              input: bytes | str | None = None, capture_output: bool = False,
              check: bool = False, stdin: Any = None, stdout: Any = None, stderr: Any = None,
              timeout: float | None = None, **popen_kwargs: Any) -> _sp.CompletedProcess[Any]:
    """Run a command to completion, like :func:`subprocess.run`, without blocking the loop.

    ::

        done = await yieldio.subprocess.run(["sort"], input=b"b\\na\\n", capture_output=True)
        assert done.stdout == b"a\\nb\\n"

    ``input`` is fed and stdout/stderr are drained concurrently, so large
    data in both directions never deadlocks. ``check=True`` raises
    :class:`CalledProcessError` (with ``output``/``stderr``) on a non-zero
    exit; ``timeout`` kills the child and raises :class:`TimeoutExpired`
    (whose partial ``output``/``stderr`` are bytes, as in the stdlib);
    ``text=True`` (or ``encoding``/``errors``) encodes ``input`` and decodes
    the output. If the caller is cancelled, the child is killed and reaped.
    """
    if input is not None:
        if stdin is not None:
            raise ValueError("stdin and input arguments may not both be used.")
        stdin = PIPE
    if capture_output:
        if stdout is not None or stderr is not None:
            raise ValueError("stdout and stderr arguments may not be used with capture_output.")
        stdout = stderr = PIPE
    text = {name: popen_kwargs.pop(name, None) for name in _TEXT_OPTIONS}
    text_mode = any(text.values())
    if isinstance(input, str):
        if not text_mode:
            raise TypeError("input must be bytes unless text=True (or encoding=...) is given")
        input = input.replace("\n", os.linesep).encode(
            text["encoding"] or locale.getpreferredencoding(False), text["errors"] or "strict")
    elif input is not None and not isinstance(input, bytes | bytearray | memoryview):
        raise TypeError(f"input must be bytes or str, not {type(input).__name__}")
    elif input is not None and text_mode:
        # The stdlib refuses this too (by accident: bytes has no .encode).
        raise TypeError("input must be str when text=True (or encoding=...) is given")
    elif isinstance(input, memoryview) and not input.c_contiguous:
        # Refused here, before the child starts: the feeding task would fail
        # with it, and come out wrapped in run()'s internal ExceptionGroup.
        raise TypeError("input must be a C-contiguous buffer (m[::2] is not); pass bytes(m)")
    if timeout is not None and timeout != timeout:
        raise ValueError("timeout must not be NaN")
    proc = await open_process(args, stdin=stdin, stdout=stdout, stderr=stderr, **popen_kwargs)
    out = bytearray()
    err = bytearray()
    try:
        scope = move_on_after(timeout) if timeout is not None else CancelScope()
        with scope:
            async with TaskGroup() as tg:
                if proc.stdin is not None:
                    tg.spawn(_feed, proc.stdin, input, name="run: feed stdin")
                if proc.stdout is not None:
                    tg.spawn(_drain, proc.stdout, out, name="run: drain stdout")
                if proc.stderr is not None:
                    tg.spawn(_drain, proc.stderr, err, name="run: drain stderr")
            await proc.wait()
    finally:
        proc._close_pipes()
        await proc._kill_and_reap()
    if scope.cancelled_caught:
        raise TimeoutExpired(proc.args, 0.0 if timeout is None else timeout,
                             output=bytes(out) if proc.stdout is not None else None,
                             stderr=bytes(err) if proc.stderr is not None else None)
    rc = proc.returncode
    assert rc is not None
    stdout_data: Any = bytes(out) if proc.stdout is not None else None
    stderr_data: Any = bytes(err) if proc.stderr is not None else None
    if text_mode:
        if stdout_data is not None:
            stdout_data = _decode(stdout_data, text["encoding"], text["errors"])
        if stderr_data is not None:
            stderr_data = _decode(stderr_data, text["encoding"], text["errors"])
    if check and rc:
        raise CalledProcessError(rc, proc.args, output=stdout_data, stderr=stderr_data)
    return CompletedProcess(proc.args, rc, stdout_data, stderr_data)

