"""Bug hunt 3: files, paths, fd streams, waiting on fds, signals (real OS objects)."""

from __future__ import annotations

import os
import signal

import pytest

import yieldio
from yieldio._fdstream import FdStream


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- signals -------------------------------------------------------------------

@pytest.mark.timeout(10)
@pytest.mark.skipif(not hasattr(signal, "SIGRTMIN"), reason="no real-time signals")
def test_real_time_signals_can_be_received():
    # SIGRTMIN+1 is as valid as SIGUSR1 (signal.signal and trio accept it),
    # but only SIGRTMIN and SIGRTMAX are members of signal.Signals: checking
    # the number against that enum refused every real-time signal in between
    # with "35 is not a valid signal number", and repr() of a receiver for one
    # would have crashed the same way.
    rt1 = signal.SIGRTMIN + 1
    rt2 = signal.SIGRTMAX - 1
    before = (signal.getsignal(rt1), signal.getsignal(rt2))

    async def main():
        with yieldio.open_signal_receiver(rt1, rt2) as signals:
            assert signals.signals == (rt1, rt2)
            assert "SIGRTMIN+1" in repr(signals)
            os.kill(os.getpid(), rt2)
            os.kill(os.getpid(), rt1)
            with yieldio.fail_after(2):
                assert await signals.receive() == rt2
                assert await signals.receive() == rt1

    yieldio.run(main)
    assert (signal.getsignal(rt1), signal.getsignal(rt2)) == before


def test_invalid_signal_numbers_are_still_a_clear_value_error():
    async def main():
        for bad in (0, -1, signal.NSIG, 1000):
            with pytest.raises(ValueError, match="not a valid signal number"):
                with yieldio.open_signal_receiver(bad):
                    pass

    yieldio.run(main)


# -- FdStream --------------------------------------------------------------------

@pytest.mark.timeout(10)
def test_fdstream_reads_a_regular_file_to_the_end(tmp_path):
    # FdStream(0) is how a program reads its stdin as a stream, and stdin is
    # often a regular file (`prog < input.txt`). epoll refuses regular files
    # (EPERM): after the first short read the stream waited for readiness
    # and failed with PermissionError instead of returning b"" at the end.
    path = tmp_path / "input.txt"
    payload = b"".join(b"line %d\n" % i for i in range(1000))
    path.write_bytes(payload)
    fds_before = _open_fds()

    async def main():
        async with FdStream(os.open(path, os.O_RDONLY)) as stream:
            assert await stream.receive_some(5) == payload[:5]     # full read
            rest = payload[5:]
            assert await stream.receive_some(len(rest) + 10) == rest  # short read
            assert await stream.receive_some() == b""              # at the end
            assert await stream.receive_some() == b""
        async with FdStream(os.open(path, os.O_RDONLY)) as stream:
            lines = [line async for line in stream]
            assert b"".join(lines) == payload
            assert await stream.readline() == b""

    yieldio.run(main)
    assert _open_fds() == fds_before


@pytest.mark.timeout(10)
def test_fdstream_on_stdin_redirected_from_a_file(tmp_path):
    # The same, as a user meets it: a child whose stdin is a file.
    import subprocess
    import sys

    data = tmp_path / "in.txt"
    data.write_bytes(b"alpha\nbeta\n")
    child = (
        "import yieldio\n"
        "from yieldio.subprocess import FdStream\n"
        "async def main():\n"
        "    async with FdStream(0) as stdin:\n"
        "        lines = []\n"
        "        while line := await stdin.readline():\n"
        "            lines.append(line)\n"
        "        print(lines)\n"
        "yieldio.run(main)\n"
    )
    with open(data, "rb") as stdin:
        done = subprocess.run([sys.executable, "-c", child], stdin=stdin,
                              capture_output=True, timeout=8)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"[b'alpha\\n', b'beta\\n']\n"
