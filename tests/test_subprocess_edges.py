"""Edge cases of yieldio.subprocess with real children: no fd, pidfd or zombie left behind."""

# ruff: noqa: F811 (the fixtures imported from test_subprocess are test arguments here)

from __future__ import annotations

import os
import signal
import sys

import pytest

import yieldio
import yieldio.subprocess as ysp

PY = sys.executable
pytestmark = pytest.mark.timeout(30)


# The same child checks and watcher switch as the main subprocess tests
# (importing the fixtures makes the autouse one apply here too).
from test_subprocess import _children, no_children, watcher  # noqa: E402, F401


@pytest.mark.timeout(10)
def test_every_kind_of_cancellation_leaves_no_fd_behind(watcher):
    # The feeder is blocked on a full stdin pipe (sleep never reads it) when
    # the cancellation hits: pipes, pidfds and children must all be released.
    def fds() -> list[str]:
        return sorted(os.listdir("/proc/self/fd"))

    async def main():
        await ysp.run(["true"])  # warm-up: worker threads
        before = fds()
        for _ in range(3):
            with pytest.raises(ysp.TimeoutExpired):
                await ysp.run(["sleep", "10"], input=b"x" * 1_000_000, capture_output=True,
                              timeout=0.02)
            with yieldio.move_on_after(0.02):
                await ysp.run(["sleep", "10"], input=b"x" * 1_000_000, capture_output=True)
            with yieldio.move_on_after(0.02):
                async with await ysp.open_process(["sleep", "10"], stdin=ysp.PIPE,
                                                  stdout=ysp.PIPE) as p:
                    await p.stdout.read()
            assert p.returncode == -signal.SIGKILL
        return before, fds()

    before, after = yieldio.run(main)
    assert after == before


@pytest.mark.timeout(10)
def test_run_timeout_while_a_grandchild_holds_stdout_open():
    # sh exits at once, but its background child keeps the pipe open: as in
    # the stdlib, run() waits for EOF, so only the timeout ends it, with the
    # partial output.
    async def main():
        with pytest.raises(ysp.TimeoutExpired) as info:
            await ysp.run(["sh", "-c", "sleep 30 & echo $!"], capture_output=True, timeout=0.3)
        return info.value

    err = yieldio.run(main)
    grandchild = int(err.output)
    os.kill(grandchild, signal.SIGKILL)  # not ours to reap: init adopted it
    assert err.stderr == b""


@pytest.mark.timeout(10)
def test_check_reports_a_signal_killed_child_with_a_negative_status():
    code = "import os, signal; print('bye', flush=True); os.kill(os.getpid(), signal.SIGTERM)"

    async def main():
        with pytest.raises(ysp.CalledProcessError) as info:
            await ysp.run([PY, "-c", code], capture_output=True, check=True)
        return info.value

    err = yieldio.run(main)
    assert err.returncode == -signal.SIGTERM and err.output == b"bye\n"
    assert "SIGTERM" in str(err)


@pytest.mark.timeout(10)
def test_missing_executable_or_cwd_raises_file_not_found_without_leaks(tmp_path):
    async def main():
        for kwargs in ({"args": [str(tmp_path / "nope")]},
                       {"args": ["true"], "cwd": str(tmp_path / "nope")}):
            with pytest.raises(FileNotFoundError):
                await ysp.run(input=b"x", capture_output=True, **kwargs)

    yieldio.run(main)  # the conftest fixture fails the test if a pipe leaked


def test_run_refuses_bytes_input_in_text_mode_before_starting_a_child():
    async def main():
        with pytest.raises(TypeError, match="input must be str when text=True"):
            await ysp.run([PY, "-c", "pass"], input=b"x", text=True)

    yieldio.run(main)


def test_run_refuses_a_non_contiguous_memoryview_input_with_a_plain_type_error():
    # It used to start the child and fail in the feeding task, so the error
    # came out wrapped in run()'s internal ExceptionGroup.
    async def main():
        with pytest.raises(TypeError, match="C-contiguous"):
            await ysp.run([PY, "-c", "pass"], input=memoryview(b"abcdef")[::2])
        done = await ysp.run([PY, "-c", "import sys; print(sys.stdin.read())"],
                             input=memoryview(b"abcdef")[1:3], capture_output=True)
        assert done.stdout.strip() == b"bc"

    yieldio.run(main)


@pytest.mark.timeout(10)
@pytest.mark.skipif(not ysp.USE_PIDFD, reason="needs os.pidfd_open")
def test_a_cancelled_wait_releases_the_pidfd_when_another_task_reaped_the_child():
    # Task A watches the pidfd; the main task kills and reaps the child
    # (poll()), then cancels A before A runs again. The pidfd must not stay
    # open for the rest of the run.
    from test_subprocess import _pidfds, _wait_until_exited

    async def main():
        p = await ysp.open_process(["sleep", "10"])
        scope = yieldio.CancelScope()

        async def waiter():
            with scope:
                await p.wait()

        async with yieldio.TaskGroup() as tg:
            tg.spawn(waiter)
            await yieldio.testing.wait_all_tasks_blocked()
            p.kill()
            _wait_until_exited(p.pid)
            assert p.poll() == -signal.SIGKILL
            scope.cancel()
        return _pidfds()

    assert yieldio.run(main) == 0


class _Woken(yieldio.Instrument):
    """Notes when a given task's wait ends (it is scheduled to run again)."""

    def __init__(self) -> None:
        self.task = None
        self.woken = False

    def task_scheduled(self, task):
        if task is self.task:
            self.woken = True


@pytest.mark.timeout(10)
@pytest.mark.parametrize("direction", ["read", "write"])
def test_a_stream_closed_between_a_wake_up_and_the_io_raises_closed_resource_error(direction):
    # The pipe became ready and woke the task, but before that task ran,
    # another one closed the pipe (aclose(), the end of "async with p:").
    # The woken task must fail with ClosedResourceError, and never touch the
    # fd number it saw: that number may already belong to another file.
    woken = _Woken()

    async def main():
        p = await ysp.open_process(["cat"], stdin=ysp.PIPE, stdout=ysp.PIPE)
        stream = p.stdout if direction == "read" else p.stdin
        result = []

        async def io():
            try:
                if direction == "read":
                    result.append(await stream.receive_some())
                else:
                    await stream.send_all(b"x" * 10_000_000)  # fills both pipes
            except Exception as exc:
                result.append(exc)

        stolen = b""
        async with yieldio.TaskGroup() as tg:
            woken.task = tg.spawn(io)
            await yieldio.testing.wait_all_tasks_blocked()
            woken.woken = False
            if direction == "read":
                await p.stdin.write(b"data")
            else:
                await p.stdout.receive_some(65536)  # cat drains its stdin a bit
            while not woken.woken:
                await yieldio.checkpoint()  # we stay ahead of it in the run queue
            fd = stream.fileno()
            await stream.aclose()
            if direction == "read":
                # Give the fd number to another pipe with data in it.
                r, w = os.pipe2(os.O_NONBLOCK)
                os.write(w, b"NOT YOURS")
                if r != fd:
                    os.dup2(r, fd)
                try:
                    await yieldio.testing.wait_all_tasks_blocked()
                    try:
                        stolen = b"NOT YOURS"[:9 - len(os.read(r, 100))]
                    except BlockingIOError:
                        stolen = b"NOT YOURS"
                finally:
                    for x in {fd, r, w}:
                        os.close(x)
        await p.aclose()
        return result, stolen

    result, stolen = yieldio.run(main, instruments=[woken])
    assert stolen == b""
    assert len(result) == 1 and isinstance(result[0], yieldio.ClosedResourceError), result
