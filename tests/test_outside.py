"""The kernel's wake-ups from outside (yieldio/_outside.py), driven the way programs drive them.

Real sockets, pipes and files, real threads, real SIGINT; the kernel's own
state (its fd table, its loop counter) is only read, to check that nothing
is left behind and that the loop does not spin.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import pytest

import yieldio
from yieldio import _state
from yieldio._fdstream import FdStream

pytestmark = pytest.mark.timeout(10)


def _kernel():
    return _state.current_kernel()


def _fill(sock: socket.socket) -> int:
    """Send until ``sock``'s send buffer is full; return how much went."""
    sock.setblocking(False)
    sent = 0
    try:
        while True:
            sent += sock.send(b"\0" * 65536)
    except BlockingIOError:
        return sent


def _drain(sock: socket.socket, n: int) -> None:
    sock.settimeout(5)
    while n > 0:
        n -= len(sock.recv(1 << 20))


def _socket_with_fd(n: int) -> tuple[socket.socket, socket.socket]:
    """A connected pair one of which got fd number ``n`` (just freed): (that one, its peer)."""
    c, d = socket.socketpair()
    if n not in (c.fileno(), d.fileno()):
        c.close()
        d.close()
        pytest.fail(f"fd {n} was not reused by the next socketpair")
    return (c, d) if c.fileno() == n else (d, c)


# -- file descriptors ---------------------------------------------------------


def test_a_reader_and_a_writer_on_one_socket_are_named_cancelled_and_replaced():
    a, b = socket.socketpair()
    fd = a.fileno()
    filled = _fill(a)  # nothing more can be sent until b reads

    async def main():
        k = _kernel()
        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.wait_readable, a, name="reader")
            tg.spawn(yieldio.wait_writable, a, name="writer")  # same fd, both directions
            await yieldio.testing.wait_all_tasks_blocked()
            tree = yieldio.debug.format_task_tree()
            tg.cancel()  # ends both waits on the fd
        assert k.io_waiters == 0
        # Both directions are free for new waits, which readiness ends.
        b.send(b"x")
        await yieldio.wait_readable(a)
        assert a.recv(1) == b"x"
        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.to_thread, _drain, b, filled)
            await yieldio.wait_writable(a)
        return tree

    with a, b:
        tree = yieldio.run(main)
    assert f"read fd {fd}" in tree and f"write fd {fd}" in tree, tree


class _Scheduled(yieldio.Instrument):
    def __init__(self) -> None:
        self.tasks: list[str] = []

    def task_scheduled(self, task) -> None:
        self.tasks.append(task.name)


@pytest.mark.parametrize("instrumented", [False, True])
def test_a_writer_wakes_when_a_thread_makes_room(instrumented: bool):
    a, b = socket.socketpair()
    filled = _fill(a)
    seen = _Scheduled()

    async def writer():
        await yieldio.wait_writable(a)
        return a.send(b"more")

    async def main():
        async with yieldio.TaskGroup() as tg:
            task = tg.spawn(writer, name="writer")
            await yieldio.testing.wait_all_tasks_blocked()
            assert not task.done()
            tg.spawn(yieldio.to_thread, _drain, b, filled)
        return task.result()

    with a, b:
        assert yieldio.run(main, instruments=[seen] if instrumented else []) == 4
    if instrumented:  # the instrument hears of the wake-up by epoll too
        assert seen.tasks.count("writer") == 2  # spawned, then woken


def test_a_writer_blocked_on_a_peer_that_goes_away_wakes():
    # Only writing is watched; the hang-up epoll reports anyway (HUP/ERR are
    # never masked) wakes the writer, whose send then fails as it should.
    a, b = socket.socketpair()
    _fill(a)

    async def main():
        async with yieldio.TaskGroup() as tg:
            task = tg.spawn(yieldio.wait_writable, a)
            await yieldio.testing.wait_all_tasks_blocked()
            b.close()
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            a.send(b"anyone there?")
        return task.done()

    with a:
        assert yieldio.run(main) is True


def test_readiness_nobody_waits_for_is_disarmed_not_spun_on():
    # Registrations outlive the waits (no epoll_ctl per wait); readiness that
    # then finds nobody waiting must be disarmed, or level-triggered epoll
    # would wake the loop again and again.
    a, b = socket.socketpair()
    a.setblocking(False)

    async def main():
        k = _kernel()
        b.send(b"1")
        await yieldio.wait_readable(a)
        assert a.recv(1) == b"1"
        await yieldio.wait_writable(a)  # the fd is now watched both ways, nobody waits
        assert a.fileno() in k.fds
        b.send(b"2")  # readable, and writable all along: unclaimed readiness both ways
        before = k.stats_iterations
        await yieldio.sleep(0.05)
        spins = k.stats_iterations - before
        assert spins < 10, f"the loop woke {spins} times for a sleep"
        assert a.fileno() not in k.fds  # disarmed both ways and forgotten
        # ...while the data is still there for whoever reads next.
        await yieldio.wait_readable(a)
        return a.recv(1)

    with a, b:
        assert yieldio.run(main) == b"2"


def test_notify_closing_wakes_a_reader_and_a_writer_with_closed_resource_error():
    a, b = socket.socketpair()
    _fill(a)

    async def waiter(wait):
        try:
            await wait(a)
        except yieldio.ClosedResourceError:
            return "closed"

    async def main():
        async with yieldio.TaskGroup() as tg:
            reader = tg.spawn(waiter, yieldio.wait_readable)
            writer = tg.spawn(waiter, yieldio.wait_writable)
            await yieldio.testing.wait_all_tasks_blocked()
            yieldio.notify_closing(a)
            a.close()
        assert _kernel().io_waiters == 0
        return reader.result(), writer.result()

    with b:
        assert yieldio.run(main) == ("closed", "closed")


def test_an_fd_closed_without_notify_closing_then_reused_can_be_waited_on_for_writing():
    # Nobody waited on it any more, so it was closed plainly; its number's
    # registration for reading was still on the kernel's books. The new
    # socket that gets the number is watched for writing: epoll no longer
    # knows the number (modify fails), so it is registered afresh.
    a, b = socket.socketpair()

    async def main():
        b.send(b"x")
        await yieldio.wait_readable(a)
        a.recv(1)
        n = a.fileno()
        a.close()
        b.close()
        c, peer = _socket_with_fd(n)
        with c, peer:
            with yieldio.fail_after(2):
                await yieldio.wait_writable(c)
                c.send(b"request")
                peer.send(b"reply")
                await yieldio.wait_readable(c)  # watched both ways now: on the new socket
            return peer.recv(100), c.recv(100)

    assert yieldio.run(main) == (b"request", b"reply")


def test_notify_closing_after_a_library_closed_its_fd_forgets_the_old_registration():
    # A C library closes its connection itself (no chance to call
    # notify_closing first); telling yieldio afterwards is harmless (epoll
    # refuses the closed number, which is ignored) and the next connection,
    # which reuses the number, is waited on normally.
    a, b = socket.socketpair()

    async def main():
        b.send(b"x")
        await yieldio.wait_readable(a)
        a.recv(1)
        n = a.fileno()
        a.close()  # the library's own close
        b.close()
        yieldio.notify_closing(n)
        c, peer = _socket_with_fd(n)
        with c, peer:
            peer.send(b"fresh")
            with yieldio.fail_after(2):
                await yieldio.wait_readable(c)
            return c.recv(100)

    assert yieldio.run(main) == b"fresh"


def test_fds_still_watched_when_the_run_ends_are_released_and_usable_afterwards():
    a, b = socket.socketpair()
    x, y = socket.socketpair()
    a.setblocking(False)

    async def main():
        for sock, peer in ((a, b), (x, y)):
            peer.send(b"1")
            await yieldio.wait_readable(sock)
            sock.recv(1)
        x.close()  # closed plainly (nobody waits): the run's end must cope

    with a, b, y:
        yieldio.run(main)  # a is still registered at the end; x's number is dead
        b.send(b"2")

        async def again():
            await yieldio.wait_readable(a)
            return a.recv(1)

        assert yieldio.run(again) == b"2"


def test_waiting_on_a_regular_file_is_refused_and_notify_closing_still_works(tmp_path: Path):
    with open(tmp_path / "data", "wb") as f:

        async def main():
            k = _kernel()
            with pytest.raises(PermissionError):  # epoll does not watch regular files
                await yieldio.wait_readable(f)
            assert k.io_waiters == 0
            yieldio.notify_closing(f)  # before closing, as for any fd
            assert f.fileno() not in k.fds

        yieldio.run(main)


def test_closes_queued_in_the_last_step_run_at_the_end_other_thread_calls_do_not():
    ran = []
    r, w = os.pipe()

    async def main():
        k = _kernel()
        # A thread hands the loop a call just as the run ends: it never runs.
        t = threading.Thread(target=k.call_soon_threadsafe, args=(ran.append, "late"))
        t.start()
        t.join()
        stream = FdStream(r)
        del stream  # its finalizer hands the close to the loop, which does not poll again

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        yieldio.run(main)
    os.close(w)
    assert ran == []
    with pytest.raises(OSError):
        os.fstat(r)  # closed by the kernel on its way out


# -- Ctrl-C -------------------------------------------------------------------


@pytest.fixture
def default_sigint():
    """yieldio takes over SIGINT only from Python's default handler (not under every runner)."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default handler in this process")
    yield
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_from_another_thread_wakes_the_loop_and_interrupts_main(default_sigint):
    sender = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT))

    async def main():
        sender.start()  # the signal lands whenever; the wakeup fd ends the poll
        await yieldio.sleep(5)

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        yieldio.run(main)
    sender.join()
    assert time.monotonic() - t0 < 2


def test_ctrl_c_while_main_waits_for_its_children_cancels_them(default_sigint):
    cancelled = []

    async def child(n):
        try:
            await yieldio.sleep_forever()
        except yieldio.Cancelled:
            cancelled.append(n)
            raise

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(child, 1)
            tg.spawn(child, 2)
            tg.spawn(yieldio.to_thread, os.kill, os.getpid(), signal.SIGINT)
        # main waits in the group's exit, which Ctrl-C cannot abort

    with pytest.raises(KeyboardInterrupt):
        yieldio.run(main)
    assert sorted(cancelled) == [1, 2]


def test_ctrl_c_in_main_s_last_step_is_not_lost(default_sigint):
    async def main():
        signal.raise_signal(signal.SIGINT)  # the handler only sets the kernel's flag
        return "finished"  # ...and main ends before the loop looks at it

    with pytest.raises(KeyboardInterrupt):
        yieldio.run(main)


@pytest.mark.parametrize("main_ends", ["returns", "raises", "interrupted"])
def test_ctrl_c_during_the_clean_up_after_main_cancels_it_and_raises(default_sigint, caplog,
                                                                      main_ends: str):
    # main has ended; the run still awaits the clean-up of an async generator
    # it abandoned. Ctrl-C was dropped there: the run sat out the clean-up
    # and returned main's result as if nothing had been pressed.
    reached = []

    async def numbers():
        try:
            yield 1
        finally:
            signal.raise_signal(signal.SIGINT)
            await yieldio.sleep(5)  # a slow clean-up
            reached.append("end of clean-up")

    async def main():
        g = numbers()
        await g.__anext__()
        if main_ends == "raises":
            raise ValueError("main failed")
        if main_ends == "interrupted":
            signal.raise_signal(signal.SIGINT)
            await yieldio.sleep(5)
        return "main's result"

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt) as info:
        yieldio.run(main)
    assert time.monotonic() - t0 < 2
    assert reached == []
    assert "was still waiting when the run ended: it was cancelled" in caplog.text
    if main_ends == "raises":
        assert isinstance(info.value.__context__, ValueError)


def test_a_closed_old_wakeup_fd_is_not_restored(default_sigint):
    # An asyncio loop with a signal handler points the wakeup fd at its
    # self-pipe; closing the loop during the run closes that pipe. Restoring
    # it at the end of the run raised OSError from yieldio.run().
    loop = asyncio.new_event_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)

    async def main():
        loop.close()
        return "done"

    try:
        assert yieldio.run(main) == "done"
        assert signal.set_wakeup_fd(-1) == -1
    finally:
        signal.set_wakeup_fd(-1)


def test_an_old_wakeup_fd_whose_number_was_reused_leaves_no_wakeup_fd(default_sigint):
    # The old wakeup fd's number now names a blocking file, which
    # set_wakeup_fd refuses. The wakeup fd must not stay on the kernel's wake
    # socket (closed right after: later signals would write into whatever
    # reuses its number).
    r, w = socket.socketpair()
    w.setblocking(False)
    signal.set_wakeup_fd(w.fileno())
    n = w.fileno()
    reused = []

    async def main():
        w.close()
        fd = os.open(os.devnull, os.O_RDONLY)  # blocking, and the lowest free number
        reused.append(fd)
        return _kernel().wakeup_fileno()

    try:
        with r:
            wake_fd = yieldio.run(main)
        assert reused == [n]
        assert signal.set_wakeup_fd(-1) == -1, f"still the kernel's closed wake socket ({wake_fd})"
    finally:
        signal.set_wakeup_fd(-1)
        for fd in reused:
            os.close(fd)


def test_no_ctrl_c_handler_where_the_interpreter_refuses_a_wakeup_fd():
    # threading imported first in a thread other than the interpreter's main
    # one (as some embedding hosts do): threading calls that thread the main
    # thread, but the signal module refuses it. The run goes on without
    # taking over Ctrl-C.
    code = textwrap.dedent("""
        import _thread, sys
        assert "threading" not in sys.modules
        done = _thread.allocate_lock()
        done.acquire()
        out = []
        def body():
            try:
                import signal, threading, yieldio
                async def main():
                    return signal.getsignal(signal.SIGINT) is signal.default_int_handler
                out.append(threading.current_thread() is threading.main_thread())
                out.append(yieldio.run(main))
            except BaseException as exc:
                out.append(repr(exc))
            finally:
                done.release()
        _thread.start_new_thread(body, ())
        done.acquire()
        print(out)
    """)
    src = str(Path(yieldio.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src}
    # -S: no site (it imports threading, in the main thread).
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         env=env, timeout=8)
    # (Python 3.13's threading knows the real main thread: False there. Either
    # way, the run must go on and leave Ctrl-C alone.)
    expected = "[True, True]" if sys.version_info < (3, 13) else "[False, True]"
    assert out.stdout.strip() == expected, out
