"""FdStream over real pipes: data, EOF, blocking, busy/closed errors, cancellation."""

from __future__ import annotations

import fcntl
import gc
import io
import os
import subprocess
import sys
import warnings

import pytest

import yieldio
from yieldio._fdstream import FdStream
from yieldio.net._stream import BrokenStreamError


def _pipe() -> tuple[FdStream, FdStream]:
    r, w = os.pipe()
    return FdStream(r), FdStream(w)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_write_read_readline_and_eof():
    async def main():
        reader, writer = _pipe()
        async with reader, writer:
            await writer.write(b"one\ntwo\nthree")
            await writer.send_eof()
            assert await reader.readline() == b"one\n"
            assert await reader.read_exactly(4) == b"two\n"
            assert await reader.read() == b"three"
            assert await reader.read() == b""
            assert await reader.receive_some() == b""

    yieldio.run(main)


def test_a_huge_max_bytes_returns_what_came_instead_of_allocating_it():
    async def main():
        reader, writer = _pipe()
        async with reader, writer:
            await writer.write(b"abc")
            assert await reader.receive_some(2**40) == b"abc"  # MemoryError before
            await writer.write(b"x" * 60_000)  # (a pipe holds 64 KiB)
            await writer.send_eof()
            assert await reader.receive_some(2**40) == b"x" * 60_000
            assert await reader.receive_some(2**40) == b""

    yieldio.run(main)


def test_large_transfer_waits_for_room_and_data():
    payload = os.urandom(3 * 1024 * 1024 + 17)  # far beyond the 64 KiB pipe buffer

    async def main():
        reader, writer = _pipe()
        got = bytearray()

        async def produce():
            async with writer:
                await writer.write(payload)

        async def consume():
            async for chunk in reader:
                got.extend(chunk)

        async with reader, yieldio.TaskGroup() as tg:
            tg.spawn(produce)
            tg.spawn(consume)
        return bytes(got)

    assert yieldio.run(main) == payload


def test_works_under_a_seeded_schedule():
    async def main():
        reader, writer = _pipe()
        async with reader, writer, yieldio.TaskGroup() as tg:
            tg.spawn(writer.write, b"x" * 200_000)
            assert await reader.read_exactly(200_000) == b"x" * 200_000

    yieldio.run(main, seed=7)


def test_sets_nonblocking_and_detects_direction():
    r, w = os.pipe()
    reader, writer = FdStream(r), FdStream(w)
    try:
        assert fcntl.fcntl(r, fcntl.F_GETFL) & os.O_NONBLOCK
        assert reader.fileno() == r and reader.get_extra_info("fd") == r
        assert "FdStream r " in repr(reader) and "FdStream w " in repr(writer)

        async def main():
            with pytest.raises(io.UnsupportedOperation):
                await reader.write(b"x")
            with pytest.raises(io.UnsupportedOperation):
                await reader.send_eof()
            with pytest.raises(io.UnsupportedOperation):
                await writer.receive_some()

        yieldio.run(main)
    finally:
        os.close(r)
        os.close(w)
        reader._fd = writer._fd = -1


def test_bad_arguments():
    with pytest.raises(TypeError):
        FdStream("3")  # type: ignore[arg-type]
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError):
        FdStream(r)

    async def main():
        reader, writer = _pipe()
        async with reader, writer:
            with pytest.raises(ValueError):
                await reader.receive_some(0)

    yieldio.run(main)


def test_aclose_is_idempotent_closes_the_fd_and_later_use_raises():
    async def main():
        reader, writer = _pipe()
        fd = reader.fileno()
        await reader.aclose()
        await reader.aclose()
        assert reader.closed and reader.fileno() == -1
        with pytest.raises(OSError):
            os.fstat(fd)
        with pytest.raises(yieldio.ClosedResourceError):
            await reader.receive_some()
        with pytest.raises(yieldio.ClosedResourceError):
            await reader.read()
        await writer.aclose()
        with pytest.raises(yieldio.ClosedResourceError):
            await writer.send_all(b"x")
        with pytest.raises(yieldio.ClosedResourceError):
            await writer.send_eof()

    yieldio.run(main)


def test_aclose_wakes_a_blocked_reader_with_closed_resource_error():
    async def main():
        reader, writer = _pipe()
        async with writer:
            async def blocked():
                with pytest.raises(yieldio.ClosedResourceError):
                    await reader.receive_some()

            async with yieldio.TaskGroup() as tg:
                tg.spawn(blocked)
                await yieldio.sleep(0.01)
                await reader.aclose()

    yieldio.run(main)


def test_send_eof_closes_write_end_and_is_idempotent():
    async def main():
        reader, writer = _pipe()
        async with reader, writer:
            await writer.write(b"last")
            await writer.send_eof()
            await writer.send_eof()
            assert writer.fileno() == -1 and not writer.closed
            with pytest.raises(yieldio.ClosedResourceError):
                await writer.write(b"more")
            assert await reader.read() == b"last"
            assert await reader.read() == b""

    yieldio.run(main)


def test_two_readers_or_two_writers_are_busy():
    async def main():
        reader, writer = _pipe()
        async with reader, writer:
            async def read_one():
                return await reader.receive_some()

            async with yieldio.TaskGroup() as tg:
                t = tg.spawn(read_one)
                await yieldio.sleep(0.01)
                with pytest.raises(yieldio.BusyResourceError):
                    await reader.receive_some()
                await writer.write(b"x")
            assert t.result() == b"x"

            # Fill the pipe so one writer blocks; a second writer is busy.
            async with yieldio.TaskGroup() as tg:
                tg.spawn(writer.send_all, b"y" * 1_000_000)
                await yieldio.sleep(0.01)
                with pytest.raises(yieldio.BusyResourceError):
                    await writer.send_all(b"z")
                assert len(await reader.read_exactly(1_000_000)) == 1_000_000

    yieldio.run(main)


def test_write_to_closed_reader_raises_broken_pipe():
    async def main():
        reader, writer = _pipe()
        await reader.aclose()
        async with writer:
            with pytest.raises(BrokenPipeError):
                await writer.write(b"nobody listens")

    yieldio.run(main)


def test_cancelled_read_leaves_stream_usable():
    async def main():
        reader, writer = _pipe()
        async with reader, writer:
            with yieldio.move_on_after(0.02) as scope:
                await reader.receive_some()
            assert scope.cancelled_caught
            await writer.write(b"after")
            assert await reader.read() == b"after"

    yieldio.run(main)


def test_cancelled_partial_write_breaks_the_stream_for_writing():
    async def main():
        reader, writer = _pipe()
        async with reader, writer:
            with yieldio.move_on_after(0.02) as scope:
                await writer.write(b"a" * 1_000_000)  # more than the pipe holds
            assert scope.cancelled_caught
            with pytest.raises(BrokenStreamError):
                await writer.write(b"b")
            with pytest.raises(BrokenStreamError):
                await writer.send_all(b"b")

    yieldio.run(main)


def test_cancelled_before_start_is_a_checkpoint():
    async def main():
        reader, writer = _pipe()
        async with reader, writer:
            await writer.write(b"ready")
            with yieldio.CancelScope() as scope:
                scope.cancel()
                await reader.receive_some()  # data is there, but it is a checkpoint
            assert scope.cancelled_caught
            assert await reader.read() == b"ready"  # nothing consumed

    yieldio.run(main)


async def _tick(ticks: list[int]) -> None:
    """Count how often this task gets to run (it only yields, never waits)."""
    while True:
        ticks[0] += 1
        await yieldio.sleep(0)


def test_fast_path_does_not_starve_other_tasks():
    async def main():
        reader, writer = _pipe()
        ticks = [0]
        async with reader, writer, yieldio.TaskGroup() as tg:
            tg.spawn(_tick, ticks)
            for _ in range(2000):  # never has to wait: data is always there
                await writer.send_all(b"ping")
                assert await reader.receive_some(4) == b"ping"
            tg.cancel()
        return ticks[0]

    assert yieldio.run(main) > 10


def test_unclosed_stream_is_closed_by_the_garbage_collector():
    r, w = os.pipe()
    os.close(w)
    stream = FdStream(r)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del stream
        gc.collect()
    assert any(issubclass(x.category, ResourceWarning) for x in caught)
    with pytest.raises(OSError):
        os.fstat(r)


def test_operations_outside_run_raise_runtime_error():
    r, w = os.pipe()
    reader = FdStream(r)
    os.close(w)
    try:
        coro = reader.receive_some()
        with pytest.raises(RuntimeError, match="yieldio.run"):
            coro.send(None)
    finally:
        os.close(r)
        reader._fd = -1


def test_a_write_of_a_wrong_type_is_refused_without_breaking_the_stream():
    # write("text") raised TypeError before anything was written but left the
    # stream "broken for writing": every later write raised BrokenStreamError.
    async def main():
        r, w = os.pipe()
        async with FdStream(r) as reader, FdStream(w) as writer:
            for bad in ("text", 42, None, memoryview(b"abcdef")[::2]):
                with pytest.raises(TypeError):
                    await writer.write(bad)
            await writer.write(b"still fine")
            assert await reader.read() == b"still fine"

    yieldio.run(main)


def test_send_eof_while_another_task_writes_is_busy_and_the_write_completes():
    # send_eof() closed the fd under a blocked write (which then failed part
    # way with ClosedResourceError); sockets and TLS raise BusyResourceError.
    async def main():
        r, w = os.pipe()
        async with FdStream(r) as reader, FdStream(w) as writer:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(writer.write, b"x" * 1_000_000)  # far more than a pipe holds
                await yieldio.sleep(0)
                with pytest.raises(yieldio.BusyResourceError):
                    await writer.send_eof()
                assert len(await reader.read_exactly(1_000_000)) == 1_000_000
            await writer.send_eof()
            assert await reader.read() == b""

    yieldio.run(main)


def test_unknown_extra_info_gives_the_default():
    r, w = os.pipe()
    os.close(w)
    reader = FdStream(r)
    try:
        assert reader.get_extra_info("peername") is None
        assert reader.get_extra_info("peername", "none") == "none"
    finally:
        os.close(r)
        reader._fd = -1


def test_write_cancelled_before_start_writes_nothing_and_leaves_the_stream_usable():
    async def main():
        reader, writer = _pipe()
        async with reader, writer:
            with yieldio.CancelScope() as scope:
                scope.cancel()
                await writer.send_all(b"never")  # room in the pipe, but a checkpoint
            assert scope.cancelled_caught
            await writer.write(b"after")
            await writer.send_eof()
            assert await reader.read() == b"after"

    yieldio.run(main)


def test_writes_that_never_wait_do_not_starve_other_tasks():
    async def main():
        reader, writer = _pipe()
        ticks = [0]
        async with reader, writer, yieldio.TaskGroup() as tg:
            tg.spawn(_tick, ticks)
            await yieldio.sleep(0)
            start = ticks[0]
            for _ in range(1000):  # 1000 bytes: the pipe never fills, no write waits
                await writer.send_all(b"w")
            tg.cancel()
        return ticks[0] - start

    assert yieldio.run(main) > 10


def test_a_reader_that_loses_the_race_for_shared_pipe_data_keeps_waiting():
    # Two fds on one pipe (a dup, or a child holding a copy): both are woken
    # when data arrives, only one gets it; the other must not report EOF.
    async def main():
        r, w = os.pipe()
        got = []

        async def read(stream):
            got.append(await stream.receive_some())

        async with FdStream(r) as a, FdStream(os.dup(r)) as b, FdStream(w) as writer:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(read, a)
                tg.spawn(read, b)
                await yieldio.sleep(0.01)
                await writer.write(b"1")
                await yieldio.sleep(0.01)
                assert got == [b"1"]
                await writer.write(b"2")
        return got

    assert yieldio.run(main) == [b"1", b"2"]


def test_closing_from_another_threads_run_wakes_the_reader_and_closes_the_fd():
    async def main():
        r, w = os.pipe()
        reader = FdStream(r)

        async def blocked():
            with pytest.raises(yieldio.ClosedResourceError):
                await reader.receive_some()

        async with FdStream(w), yieldio.TaskGroup() as tg:
            tg.spawn(blocked)
            await yieldio.sleep(0.01)
            # Another thread's run closes it: this run's loop must forget the
            # fd and wake its reader before the fd is closed.
            await yieldio.to_thread(yieldio.run, reader.aclose)
        await yieldio.sleep(0)
        assert reader.closed
        with pytest.raises(OSError):
            os.fstat(r)

    yieldio.run(main)


def test_finalizer_never_raises_when_the_fd_was_closed_behind_its_back(monkeypatch):
    unraisable = []
    monkeypatch.setattr("sys.unraisablehook", unraisable.append)

    def abandon_after_closing_its_fd() -> None:
        r, w = os.pipe()
        os.close(w)
        stream = FdStream(r)
        os.close(r)  # misuse: the stream owns the fd
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            del stream
            gc.collect()

    abandon_after_closing_its_fd()  # outside a run: closed by the finalizer

    async def main():  # inside a run: the close is handed to the loop
        abandon_after_closing_its_fd()
        await yieldio.sleep(0)

    yieldio.run(main)
    assert unraisable == []


# -- regular files: stdin redirected from a file -------------------------------------------


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


def test_a_pty_master_reads_eof_when_the_child_side_closes():
    # Linux fails a pty master's read with EIO once the other side is closed;
    # it surfaced as a raw OSError where a pipe reads b"" (pty.spawn and
    # pexpect take it for the end too).
    import pty

    async def main():
        master, slave = pty.openpty()
        child = subprocess.Popen([sys.executable, "-c", "print('from the child')"],
                                 stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)  # the child holds the only copy now
        stream = FdStream(master)
        async with stream:
            with yieldio.fail_after(30):
                got = b""
                while chunk := await stream.read():
                    got += chunk
            assert got.replace(b"\r\n", b"\n") == b"from the child\n"
            assert await stream.read() == b""  # and it stays ended
        assert child.wait(timeout=30) == 0

    yieldio.run(main)


def test_other_read_errors_are_still_raised():
    # EIO is the end of the stream only for a terminal: a directory's fd
    # fails its read with EISDIR, which is not an end.
    async def main():
        fd = os.open(".", os.O_RDONLY)
        stream = FdStream(fd)
        async with stream:
            with pytest.raises(IsADirectoryError):
                await stream.read()

    yieldio.run(main)
