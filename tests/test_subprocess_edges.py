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
