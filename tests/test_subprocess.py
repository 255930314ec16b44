"""yieldio.subprocess with real child processes: pipes, waiting, killing, run().

Every test ends with ``no_children``: no child of the test process may be
left running or unreaped (a zombie), whatever the test did.
"""

from __future__ import annotations

import errno
import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest
from _procs import children_of

import yieldio
import yieldio.subprocess as ysp
from yieldio.debug import describe_wait

PY = sys.executable


def _children() -> list[tuple[int, str]]:
    """(pid, state) of every live or zombie child of this process, from /proc."""
    return children_of(os.getpid())


def _gone(pid: int) -> bool:
    """True if ``pid`` is not a child of ours any more (dead and reaped)."""
    return all(p != pid for p, _ in _children())


def _pidfds() -> int:
    """How many pidfds this process holds."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[pidfd]"
        except OSError:
            pass
    return count


def _wait_until_exited(pid: int) -> None:
    """Block until the child ``pid`` has exited, without reaping it."""
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


@pytest.fixture(autouse=True)
def no_children():
    yield
    assert _children() == [], "children left behind (running or zombies)"


@pytest.fixture(params=["pidfd", "thread"])
def watcher(request, monkeypatch):
    """Run a test with both child watchers: pidfd + epoll, and the waitid thread."""
    if request.param == "pidfd" and not hasattr(os, "pidfd_open"):
        pytest.skip("no pidfd_open on this system")
    monkeypatch.setattr(ysp, "USE_PIDFD", request.param == "pidfd")
    return request.param


# -- run() -----------------------------------------------------------------------

def test_run_captures_output(watcher):
    async def main():
        return await ysp.run(["echo", "hello"], capture_output=True)

    done = yieldio.run(main)
    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 0 and done.stdout == b"hello\n" and done.stderr == b""
    assert done.args == ["echo", "hello"]


def test_run_without_capture_returns_none_output():
    async def main():
        return await ysp.run(["true"])

    done = yieldio.run(main)
    assert done.returncode == 0 and done.stdout is None and done.stderr is None


def test_run_check_raises_called_process_error_with_output_and_stderr():
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"

    async def main():
        with pytest.raises(subprocess.CalledProcessError) as info:
            await ysp.run([PY, "-c", code], capture_output=True, check=True)
        return info.value

    err = yieldio.run(main)
    assert err.returncode == 3
    assert err.output == b"out\n" and err.stderr == b"err\n"
    assert isinstance(err, ysp.CalledProcessError)


def test_run_without_check_returns_nonzero_status():
    async def main():
        return await ysp.run(["sh", "-c", "exit 7"])

    assert yieldio.run(main).returncode == 7


def test_run_timeout_kills_child_and_raises_timeout_expired(watcher):
    code = "import sys, time; print('partial', flush=True); time.sleep(60)"

    async def main():
        t0 = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired) as info:
            await ysp.run([PY, "-c", code], capture_output=True, timeout=1.0)
        return info.value, time.monotonic() - t0

    err, elapsed = yieldio.run(main)
    assert err.timeout == 1.0
    assert err.output == b"partial\n" and err.stderr == b""
    assert elapsed < 30  # killed, not waited for


def test_run_timeout_without_pipes():
    async def main():
        with pytest.raises(ysp.TimeoutExpired) as info:
            await ysp.run(["sleep", "30"], timeout=0.05)
        return info.value

    err = yieldio.run(main)
    assert err.output is None and err.stderr is None


def test_run_large_data_both_ways_through_cat_does_not_deadlock(watcher):
    payload = os.urandom(3 * 1024 * 1024 + 5)

    async def main():
        return await ysp.run(["cat"], input=payload, capture_output=True, check=True)

    done = yieldio.run(main)
    assert done.stdout == payload


def test_run_large_stdout_and_stderr_at_once():
    # The child fills both pipes before reading its input: a sequential
    # reader would deadlock, run() drains both concurrently.
    code = textwrap.dedent("""
        import sys
        sys.stdout.buffer.write(b"o" * 2_000_000); sys.stdout.flush()
        sys.stderr.buffer.write(b"e" * 2_000_000); sys.stderr.flush()
        data = sys.stdin.buffer.read()
        sys.stdout.buffer.write(str(len(data)).encode())
    """)
    payload = b"i" * 1_500_000

    async def main():
        return await ysp.run([PY, "-c", code], input=payload, capture_output=True)

    done = yieldio.run(main)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout == b"o" * 2_000_000 + b"1500000"
    assert done.stderr == b"e" * 2_000_000


def test_run_child_that_ignores_its_input_is_not_an_error():
    async def main():
        return await ysp.run(["true"], input=b"x" * 5_000_000)

    assert yieldio.run(main).returncode == 0


def test_run_text_mode_encodes_input_and_decodes_output():
    async def main():
        a = await ysp.run(["cat"], input="héllo\nwörld\n", capture_output=True, text=True)
        b = await ysp.run(["printf", "a\\r\\nb"], capture_output=True, encoding="utf-8")
        return a, b

    a, b = yieldio.run(main)
    assert a.stdout == "héllo\nwörld\n" and a.stderr == ""
    assert b.stdout == "a\nb"  # universal newlines, as in the stdlib


def test_run_stderr_to_stdout_and_devnull():
    async def main():
        merged = await ysp.run(["sh", "-c", "echo a; echo b >&2"], stdout=ysp.PIPE,
                               stderr=ysp.STDOUT)
        quiet = await ysp.run(["sh", "-c", "echo a; cat"], stdin=ysp.DEVNULL,
                              stdout=ysp.DEVNULL)
        return merged, quiet

    merged, quiet = yieldio.run(main)
    assert sorted(merged.stdout.split()) == [b"a", b"b"] and merged.stderr is None
    assert quiet.returncode == 0 and quiet.stdout is None


def test_run_argument_errors():
    async def main():
        with pytest.raises(ValueError, match="stdin and input"):
            await ysp.run(["cat"], input=b"x", stdin=ysp.DEVNULL)
        with pytest.raises(ValueError, match="capture_output"):
            await ysp.run(["cat"], capture_output=True, stdout=ysp.PIPE)
        with pytest.raises(TypeError, match="text=True"):
            await ysp.run(["cat"], input="str without text")
        with pytest.raises(TypeError, match="bytes or str"):
            await ysp.run(["cat"], input=123)
        with pytest.raises(ValueError, match="NaN"):
            await ysp.run(["true"], timeout=float("nan"))

    yieldio.run(main)


def test_cancelling_run_kills_the_child(tmp_path, watcher):
    pidfile = tmp_path / "pid"
    code = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"

    async def main():
        async with yieldio.TaskGroup() as tg:
            task = tg.spawn(ysp.run, [PY, "-c", code], name="runner")
            while not pidfile.exists() or not pidfile.read_text():
                await yieldio.sleep(0.01)
            task.cancel()
        assert task.cancelled()

    yieldio.run(main)
    assert _gone(int(pidfile.read_text()))


# -- open_process and Process ----------------------------------------------------

def test_open_process_talks_through_pipes(watcher):
    async def main():
        async with await ysp.open_process(["cat"], stdin=ysp.PIPE, stdout=ysp.PIPE) as p:
            assert p.stderr is None and p.returncode is None and p.poll() is None
            assert isinstance(p.stdout, yieldio.Stream) and isinstance(p.stdin, ysp.FdStream)
            await p.stdin.write(b"ping\n")
            assert await p.stdout.readline() == b"ping\n"
            await p.stdin.send_eof()  # cat sees EOF and exits
            assert await p.stdout.read() == b""
            assert await p.wait() == 0
        return p

    p = yieldio.run(main)
    assert p.returncode == 0 and "exited with 0" in repr(p)
    assert p.stdin.closed and p.stdout.closed


def test_process_without_pipes_has_none_streams_and_exits_immediately(watcher):
    async def main():
        p = await ysp.open_process(["true"])
        assert p.stdin is None and p.stdout is None and p.stderr is None
        assert isinstance(p.pid, int) and p.args == ["true"]
        assert await p.wait() == 0
        assert await p.wait() == 0  # waiting again is fine
        q = await ysp.open_process(["false"])
        await yieldio.sleep(0.2)  # exited (a zombie) before anyone waits
        assert await q.wait() == 1
        assert q.poll() == 1

    yieldio.run(main)


def test_invalid_executable_raises_at_open_process_without_leaks(tmp_path):
    not_executable = tmp_path / "script"
    not_executable.write_text("#!/bin/sh\n")
    not_executable.chmod(0o644)  # no x bit: EACCES even for root

    async def main():
        with pytest.raises(FileNotFoundError):
            await ysp.open_process(["/definitely/not/a/program"], stdin=ysp.PIPE,
                                   stdout=ysp.PIPE, stderr=ysp.PIPE)
        with pytest.raises(PermissionError):
            await ysp.open_process([str(not_executable)], stdout=ysp.PIPE)

    yieldio.run(main)  # the conftest fixture fails the test if a pipe leaked


def test_open_process_argument_errors():
    async def main():
        with pytest.raises(TypeError, match="byte streams"):
            await ysp.open_process(["cat"], stdout=ysp.PIPE, text=True)
        with pytest.raises(TypeError, match="byte streams"):
            await ysp.open_process(["cat"], encoding="utf-8")
        with pytest.raises(ValueError, match="STDOUT"):
            await ysp.open_process(["cat"], stdin=ysp.STDOUT)

    yieldio.run(main)


def test_stderr_pipe_and_shell_and_popen_keywords(tmp_path):
    async def main():
        p = await ysp.open_process("echo $X >&2; pwd", shell=True, stdout=ysp.PIPE,
                                   stderr=ysp.PIPE, cwd=str(tmp_path), env={"X": "42"})
        async with p:
            out = await p.stdout.read_until(b"\n")
            err = await p.stderr.read_until(b"\n")
        return out, err, p.returncode

    out, err, rc = yieldio.run(main)
    assert out == str(tmp_path).encode() + b"\n" and err == b"42\n" and rc == 0


def test_cancelling_wait_kills_and_reaps_the_child(watcher):
    async def main():
        p = await ysp.open_process(["sleep", "60"])
        with yieldio.move_on_after(0.1) as scope:
            await p.wait()
        assert scope.cancelled_caught
        # Killed and reaped before the cancellation propagated:
        assert p.returncode == -signal.SIGKILL
        assert _gone(p.pid)

    yieldio.run(main)


def test_task_cancel_of_a_waiting_task_kills_the_child(watcher):
    async def main():
        p = await ysp.open_process(["sleep", "60"])
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(p.wait)
            await yieldio.sleep(0.05)
            assert "running" in repr(p)
            t.cancel()
        assert t.cancelled() and p.returncode == -signal.SIGKILL

    yieldio.run(main)


def test_several_tasks_wait_for_one_child_and_one_cancel_kills_it(watcher):
    async def main():
        p = await ysp.open_process(["sleep", "60"])
        async with yieldio.TaskGroup() as tg:
            waiters = [tg.spawn(p.wait) for _ in range(3)]
            await yieldio.sleep(0.05)
            descriptions = [describe_wait(t) for t in waiters]
            waiters[1].cancel()
        assert [t.cancelled() for t in waiters] == [False, True, False]
        assert waiters[0].result() == waiters[2].result() == -signal.SIGKILL
        return descriptions

    descriptions = yieldio.run(main)
    assert any("process" in d for d in descriptions), descriptions


def test_several_waiters_all_get_the_status(watcher):
    async def main():
        p = await ysp.open_process(["sh", "-c", "sleep 0.2; exit 5"])
        async with yieldio.TaskGroup() as tg:
            waiters = [tg.spawn(p.wait) for _ in range(3)]
        return [t.result() for t in waiters]

    assert yieldio.run(main) == [5, 5, 5]


def test_waiting_alone_for_a_child_is_not_a_deadlock(watcher):
    # Only the child's exit can wake main: the watcher must be counted.
    async def main():
        p = await ysp.open_process(["sleep", "0.3"])
        return await p.wait()

    assert yieldio.run(main) == 0


def test_terminate_kill_send_signal_and_poll(watcher):
    async def main():
        p = await ysp.open_process(["sleep", "60"])
        p.terminate()
        assert await p.wait() == -signal.SIGTERM
        p.kill()  # after the exit: no error, no signal to a recycled pid
        p.send_signal(signal.SIGUSR1)

        q = await ysp.open_process([PY, "-c", "import signal, sys; "
                                    "signal.signal(signal.SIGUSR1, lambda *a: sys.exit(9)); "
                                    "print('ready', flush=True); signal.pause()"],
                                   stdout=ysp.PIPE)
        async with q:
            assert await q.stdout.readline() == b"ready\n"
            q.send_signal(signal.SIGUSR1)
            assert await q.wait() == 9
        assert q.poll() == 9

        r = await ysp.open_process(["sleep", "60"])
        assert r.poll() is None
        r.kill()
        while r.poll() is None:  # polling alone reaps it too
            await yieldio.sleep(0.01)
        assert r.returncode == -signal.SIGKILL

    yieldio.run(main)


def test_async_with_waits_for_normal_exit():
    async def main():
        async with await ysp.open_process(["sh", "-c", "sleep 0.1; exit 4"]) as p:
            pass
        return p.returncode

    assert yieldio.run(main) == 4


def test_async_with_kills_the_child_when_an_exception_leaves_the_block(watcher):
    async def main():
        with pytest.raises(ZeroDivisionError):
            async with await ysp.open_process(["sleep", "60"], stdout=ysp.PIPE) as p:
                raise ZeroDivisionError("boom")
        assert p.returncode == -signal.SIGKILL
        assert p.stdout.closed

    yieldio.run(main)


def test_aclose_closes_pipes_so_a_writing_child_does_not_hang():
    async def main():
        p = await ysp.open_process(["yes"], stdout=ysp.PIPE)  # writes forever
        assert len(await p.stdout.read(10)) > 0
        await p.aclose()  # closing stdout makes `yes` die of SIGPIPE
        return p.returncode

    assert yieldio.run(main) == -signal.SIGPIPE


def test_cancelled_aclose_kills_the_child():
    async def main():
        p = await ysp.open_process(["sleep", "60"], stdin=ysp.PIPE)
        with yieldio.move_on_after(0.05):
            await p.aclose()
        return p

    p = yieldio.run(main)
    assert p.returncode == -signal.SIGKILL and p.stdin.closed


def test_wait_and_aclose_entered_already_cancelled_kill_and_reap_the_child(watcher):
    # The checkpoint at the start of wait() used to raise Cancelled before the
    # kill-and-reap logic: a cancelled aclose() left the child running, and
    # leaving "async with p:" in a cancelled scope left a SIGKILLed zombie.
    async def main():
        waited = await ysp.open_process(["sleep", "60"])
        closed = await ysp.open_process(["sleep", "60"], stdin=ysp.PIPE)
        with yieldio.CancelScope() as scope:
            scope.cancel()
            try:
                await waited.wait()
            finally:
                await closed.aclose()
        assert scope.cancelled_caught
        with yieldio.move_on_after(0.05):
            async with await ysp.open_process(["sleep", "60"]) as exited:
                await yieldio.sleep(10)   # cancelled: the block is left under cancellation
        return waited, closed, exited

    for p in yieldio.run(main):
        assert p.returncode == -signal.SIGKILL and _gone(p.pid)


def test_cancelling_open_process_during_the_spawn_kills_the_new_child(tmp_path):
    pidfile = tmp_path / "pid"

    def slow_start() -> None:  # runs in the child before exec; Popen waits for it
        pidfile.write_text(str(os.getpid()))
        time.sleep(0.5)

    async def main():
        with yieldio.move_on_after(0.1) as scope:
            await ysp.open_process(["sleep", "60"], stdout=ysp.PIPE, preexec_fn=slow_start)
        assert scope.cancelled_caught

    yieldio.run(main)
    assert _gone(int(pidfile.read_text()))


def test_process_belongs_to_its_run():
    box = []

    async def first():
        p = await ysp.open_process(["sleep", "0.1"])
        box.append(p)
        await p.wait()

    async def second():
        with pytest.raises(RuntimeError, match="another"):
            await box[0].wait()

    yieldio.run(first)
    yieldio.run(second)


def test_fd_count_is_stable_over_200_spawns(watcher):
    def count() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def main():
        await ysp.run(["true"], capture_output=True)  # warm-up (worker threads)
        before = count()
        for i in range(100):
            await ysp.run(["true"], input=b"x", capture_output=True)
            async with await ysp.open_process(["true"], stdout=ysp.PIPE) as p:
                await p.stdout.read()
            assert p.returncode == 0, i
        return before, count()

    before, after = yieldio.run(main)
    assert after == before


def test_keyboard_interrupt_while_waiting_kills_the_child():
    program = textwrap.dedent("""
        import sys, yieldio, yieldio.subprocess as ysp
        async def main():
            p = await ysp.open_process(["sleep", "60"])
            print(p.pid, flush=True)
            await p.wait()
        try:
            yieldio.run(main)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """)
    proc = subprocess.Popen([PY, "-c", program], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(proc.stdout.readline())
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "interrupted" in out
    # Its parent reaped it before exiting: the pid is gone, not an orphan.
    assert not os.path.exists(f"/proc/{grandchild}") or \
        open(f"/proc/{grandchild}/cmdline").read().split("\0")[0] != "sleep"


def test_children_of_the_stdlib_subprocess_module_are_not_stolen():
    # A yieldio watcher never calls waitpid(-1): stdlib children still get
    # their own exit status.
    async def main():
        std = subprocess.Popen(["sh", "-c", "exit 3"])
        p = await ysp.open_process(["sh", "-c", "sleep 0.2; exit 4"])
        await yieldio.sleep(0.1)  # the stdlib child is a zombie now
        rc = await p.wait()
        return rc, std.wait(timeout=10)

    assert yieldio.run(main) == (4, 3)


def test_virtual_clock_does_not_jump_while_a_child_runs(watcher):
    # Autojump may skip time only when nothing real is pending; a running
    # child is real (a pidfd waiter, or a watcher thread counted as a thread job).
    from yieldio.testing import VirtualClock

    async def main():
        p = await ysp.open_process(["sleep", "0.3"])
        with yieldio.move_on_after(1000) as scope:
            rc = await p.wait()
        assert not scope.cancelled_caught
        return rc

    assert yieldio.run(main, clock=VirtualClock(autojump=True)) == 0


def test_closing_a_coroutine_suspended_in_wait_kills_the_child(watcher):
    async def main():
        p = await ysp.open_process(["sleep", "60"])
        coro = p.wait()
        async with yieldio.TaskGroup() as tg:
            async def drive():
                # Step the wait by hand until it parks, then close it, as the
                # garbage collector would close an abandoned coroutine.
                coro.send(None)
                coro.close()

            tg.spawn(drive)
        return p

    p = yieldio.run(main)
    assert p.returncode == -signal.SIGKILL


def test_writing_to_a_child_that_closed_its_stdin_raises_broken_pipe(watcher):
    code = "import sys; sys.stdin.close(); print('closed', flush=True)"

    async def main():
        with pytest.raises(BrokenPipeError):
            async with await ysp.open_process([PY, "-c", code], stdin=ysp.PIPE,
                                              stdout=ysp.PIPE) as p:
                assert await p.stdout.readline() == b"closed\n"
                assert await p.stdout.read() == b""  # EOF: it has exited
                await p.stdin.write(b"x" * 100_000)
        return p

    p = yieldio.run(main)
    # Leaving the block with the error does not turn its clean exit into a kill.
    assert p.returncode == 0 and p.stdin.closed and p.stdout.closed


def test_poll_from_a_worker_thread_reaps_the_child_and_releases_the_pidfd(watcher):
    async def main():
        p = await ysp.open_process(["true"])
        await yieldio.to_thread(_wait_until_exited, p.pid)
        assert await yieldio.to_thread(p.poll) == 0  # reaped off the loop's thread
        await yieldio.sleep(0)
        assert _pidfds() == 0
        assert await p.wait() == 0
        return p

    p = yieldio.run(main)
    assert _gone(p.pid)


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no pidfd_open")
def test_a_process_reaped_after_its_run_ended_releases_its_pidfd():
    # The pidfd used to stay open until the Process was garbage-collected.
    async def main():
        return await ysp.open_process(["sleep", "60"])

    p = yieldio.run(main)
    assert _pidfds() == 1
    p.kill()
    deadline = time.monotonic() + 10
    while p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert p.returncode == -signal.SIGKILL
    assert _pidfds() == 0


def test_an_abandoned_process_releases_its_pidfd_and_pipes(watcher):
    async def main():
        p = await ysp.open_process(["true"], stdin=ysp.PIPE, stdout=ysp.PIPE)
        pid = p.pid
        await yieldio.to_thread(_wait_until_exited, pid)  # exited, not reaped
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del p  # never waited for nor closed
            gc.collect()
        await yieldio.sleep(0)  # the loop closes what the finalizers handed it
        assert _pidfds() == 0
        return pid, [str(w.message) for w in caught]

    pid, messages = yieldio.run(main)  # the conftest fixture checks the pipes
    assert _gone(pid)
    assert sum("unclosed FdStream" in m for m in messages) == 2, messages
    # Each warning says which pipe of which process it was.
    assert sorted(m.split(", ", 1)[1] for m in messages if "unclosed FdStream" in m) == \
        [f"stdin of process {pid} (true))", f"stdout of process {pid} (true))"], messages


def test_wait_returns_the_status_while_another_thread_holds_the_reaping_lock(watcher):
    # Another thread inside Popen.wait()/poll() holds the Popen's reaping
    # lock: the child has exited but poll() cannot reap it. wait() must let
    # that thread finish (here: wait for the lock) instead of failing or spinning.
    async def main():
        p = await ysp.open_process(["cat"], stdin=ysp.PIPE)
        lock = p._popen._waitpid_lock
        lock.acquire()
        try:
            async with yieldio.TaskGroup() as tg:
                waiter = tg.spawn(p.wait)
                await p.stdin.send_eof()  # cat exits
                await yieldio.to_thread(_wait_until_exited, p.pid)
                await yieldio.sleep(0.1)  # the waiter has seen the exit by now
                assert p.returncode is None and not waiter.done()
                lock.release()
        finally:
            if lock.locked():
                lock.release()
        return waiter.result(), p

    rc, p = yieldio.run(main)
    assert rc == 0 and p.returncode == 0


def test_keyboard_interrupt_while_reaping_a_killed_child_still_reaps_it(watcher):
    # A cancelled wait() SIGKILLs the child and reaps it in a shielded scope;
    # Ctrl-C pierces shields, and must not leave the killed child a zombie.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    box = []

    async def main():
        p = await ysp.open_process(["sleep", "60"])
        box.append(p)
        with yieldio.CancelScope() as scope:
            async with yieldio.TaskGroup() as tg:
                async def interrupt():
                    scope.cancel()
                    os.kill(os.getpid(), signal.SIGINT)

                tg.spawn(interrupt)
                await p.wait()

    with pytest.raises(KeyboardInterrupt):
        yieldio.run(main)
    assert box[0].returncode == -signal.SIGKILL and _gone(box[0].pid)


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no pidfd_open")
def test_without_a_working_pidfd_open_the_child_is_watched_by_a_thread(monkeypatch):
    # Old kernels (ENOSYS) or a seccomp filter (EPERM) refuse pidfd_open; this
    # cannot be provoked for real here, so the syscall is made to fail.
    def refuse(pid, flags=0):
        raise OSError(errno.ENOSYS, "pidfd_open not implemented")

    monkeypatch.setattr(os, "pidfd_open", refuse)

    async def main():
        p = await ysp.open_process(["sh", "-c", "sleep 0.05; exit 6"])
        assert _pidfds() == 0
        return await p.wait()

    assert yieldio.run(main) == 6
