"""open_file / AsyncFile on real files and FIFOs: every method, closing, cancellation."""

from __future__ import annotations

import io
import os

import pytest

import yieldio
import yieldio.testing
from yieldio.files import AsyncFile, wrap_file


def test_text_round_trip_and_attributes(tmp_path):
    path = tmp_path / "notes.txt"

    async def main():
        async with await yieldio.open_file(path, "w", encoding="utf-8") as f:
            assert isinstance(f, AsyncFile)
            assert f.name == str(path) and f.mode == "w" and f.encoding == "utf-8"
            assert f.errors == "strict" and f.writable() and not f.readable()
            assert f.seekable() and not f.isatty() and f.fileno() >= 0
            assert await f.write("héllo\n") == 6
            await f.writelines(["two\n", "three\n"])
            await f.flush()
            assert f.wrapped.closed is False
        assert f.closed
        async with await yieldio.open_file(path, encoding="utf-8") as f:
            assert await f.readline() == "héllo\n"
            assert await f.readlines() == ["two\n", "three\n"]
            assert await f.read() == ""
        async with await yieldio.open_file(path, newline=None) as f:
            lines = [line async for line in f]
            assert f.newlines == "\n"
        return lines

    assert yieldio.run(main) == ["héllo\n", "two\n", "three\n"]


def test_binary_methods(tmp_path):
    path = tmp_path / "data.bin"

    async def main():
        async with await yieldio.open_file(path, "w+b") as f:
            await f.write(b"0123456789")
            assert await f.tell() == 10
            assert await f.seek(2) == 2
            assert await f.read(3) == b"234"
            assert await f.seek(-2, os.SEEK_END) == 8
            assert await f.read1(10) == b"89"
            await f.seek(0)
            buf = bytearray(4)
            assert await f.readinto(buf) == 4 and buf == b"0123"
            assert await f.truncate(6) == 6
            await f.seek(0)
            assert await f.read() == b"012345"
            assert f.encoding is None and f.newlines is None

    yieldio.run(main)
    assert path.read_bytes() == b"012345"


def test_closed_file_operations_raise_closed_resource_error(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc")

    async def main():
        f = await yieldio.open_file(path, "rb")
        await f.aclose()
        await f.aclose()  # idempotent
        for call in (f.read, f.readline, f.tell, f.flush, f.readlines):
            with pytest.raises(yieldio.ClosedResourceError):
                await call()
        with pytest.raises(yieldio.ClosedResourceError):
            await f.seek(0)
        with pytest.raises(yieldio.ClosedResourceError):
            f.fileno()
        with pytest.raises(yieldio.ClosedResourceError):
            async for _ in f:
                pass

    yieldio.run(main)


def test_open_errors_are_the_builtin_ones(tmp_path):
    async def main():
        with pytest.raises(FileNotFoundError):
            await yieldio.open_file(tmp_path / "missing")
        with pytest.raises(IsADirectoryError):
            await yieldio.open_file(tmp_path)
        with pytest.raises(ValueError):
            await yieldio.open_file(tmp_path / "x", "rw+q")

    yieldio.run(main)


def test_unsupported_operation_is_reported(tmp_path):
    async def main():
        async with await yieldio.open_file(tmp_path / "w.txt", "w") as f:
            with pytest.raises(io.UnsupportedOperation):
                await f.read()
            with pytest.raises(AttributeError):
                await f.read1()  # text files have no read1

    yieldio.run(main)


def test_wrap_file_and_open_by_descriptor(tmp_path):
    async def main():
        f = wrap_file(io.BytesIO(b"in memory"))
        assert await f.read() == b"in memory"
        await f.aclose()
        with pytest.raises(TypeError, match="file object"):
            wrap_file(object())
        fd = os.open(tmp_path / "fd.txt", os.O_CREAT | os.O_WRONLY)
        async with await yieldio.open_file(fd, "w") as g:
            await g.write("via fd")
        with pytest.raises(OSError):
            os.fstat(fd)  # closefd=True closed it

    yieldio.run(main)
    assert (tmp_path / "fd.txt").read_text() == "via fd"


def test_a_blocking_read_does_not_block_the_loop(tmp_path):
    # A FIFO read blocks until a writer shows up: it runs on a worker thread,
    # so another task can be the writer.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    async def writer():
        async with await yieldio.open_file(fifo, "wb") as w:
            await yieldio.sleep(0.05)
            await w.write(b"through the fifo")

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(writer)
            async with await yieldio.open_file(fifo, "rb") as r:  # blocks until writer opens
                return await r.read()

    assert yieldio.run(main) == b"through the fifo"


def test_operation_that_started_completes_even_if_cancelled(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    async def main():
        results = []
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        wfd = os.open(fifo, os.O_WRONLY)
        os.set_blocking(rfd, True)
        reader = await yieldio.open_file(rfd, "rb", buffering=0)
        try:
            async def read_it():
                data = await reader.read(100)  # blocks in the thread
                results.append(data)  # the data is returned, not lost ...
                await yieldio.checkpoint()  # ... and the cancellation comes here
                results.append("not reached")

            async with yieldio.TaskGroup() as tg:
                task = tg.spawn(read_it)
                await yieldio.sleep(0.05)
                task.cancel()
                await yieldio.sleep(0.05)
                os.write(wfd, b"precious")
            assert task.cancelled()
        finally:
            os.close(wfd)
            await reader.aclose()
        return results

    assert yieldio.run(main) == [b"precious"]


def test_aclose_closes_even_in_a_cancelled_scope(tmp_path):
    async def main():
        f = await yieldio.open_file(tmp_path / "c.txt", "w")
        await f.write("buffered")
        with yieldio.CancelScope() as scope:
            scope.cancel()
            await f.aclose()
        assert f.closed

    yieldio.run(main)
    assert (tmp_path / "c.txt").read_text() == "buffered"  # flushed by close


def test_cancelled_open_does_not_leak_the_file(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    async def main():
        async with yieldio.TaskGroup() as tg:
            task = tg.spawn(yieldio.open_file, fifo, "rb")  # blocks: no writer yet
            await yieldio.sleep(0.05)
            task.cancel()
            await yieldio.sleep(0.01)
            # Unblock the thread's open(); the opened file must be closed again.
            wfd = os.open(fifo, os.O_WRONLY)
        os.close(wfd)
        assert task.cancelled()

    yieldio.run(main)  # the conftest fixture fails the test on a leaked fd


def test_open_file_outside_run_raises():
    coro = yieldio.open_file(os.devnull)
    with pytest.raises(RuntimeError, match="yieldio.run"):
        coro.send(None)
    coro.close()


def test_a_wrapped_file_like_without_a_closed_attribute_works():
    # wrap_file() accepts any object with close() and read() or write() (as
    # trio does), but every call read its `closed` attribute first and failed
    # with AttributeError when there was none.
    class Reader:
        def __init__(self) -> None:
            self.close_calls = 0

        def read(self, size: int = -1) -> bytes:
            return b"data"

        def close(self) -> None:
            self.close_calls += 1

    async def main():
        f = wrap_file(Reader())
        assert not f.closed
        assert await f.read() == b"data"
        await f.aclose()
        await f.aclose()  # idempotent
        assert f.closed and f.wrapped.close_calls == 1
        with pytest.raises(yieldio.ClosedResourceError):
            await f.read()

    yieldio.run(main)


# -- yieldio.Stream over a real socketpair (the rules every transport shares) ---------
def _stream_pair():
    import socket

    a, b = socket.socketpair()
    return yieldio.SocketStream(a), yieldio.SocketStream(b)


def test_stream_argument_errors_are_clear():
    async def main():
        s, t = _stream_pair()
        async with s, t:
            with pytest.raises(ValueError, match="max_bytes must be >= 1"):
                await s.read(0)
            with pytest.raises(ValueError, match="n must be >= 0"):
                await s.read_exactly(-1)
            with pytest.raises(ValueError, match="separator must not be empty"):
                await s.read_until(b"")
            # None of them left the stream marked busy.
            await t.write(b"ok")
            assert await s.read() == b"ok"

    yieldio.run(main)


def test_stream_two_readers_or_writers_are_refused_and_nothing_is_lost():
    async def main():
        s, t = _stream_pair()
        async with s, t, yieldio.TaskGroup() as tg:
            first = tg.spawn(s.read_exactly, 4)
            await yieldio.testing.wait_all_tasks_blocked()
            for second in (s.read(), s.read_exactly(1), s.read_until(b"\n"), s.readline()):
                with pytest.raises(yieldio.BusyResourceError, match="already reading"):
                    await second
            await t.write(b"da")
            await t.write(b"ta")
            await first.join()
        assert first.result() == b"data"

    yieldio.run(main)


def test_stream_concurrent_write_is_busy_not_broken():
    async def main():
        s, t = _stream_pair()
        big = b"x" * (8 << 20)
        async with s, t, yieldio.TaskGroup() as tg:
            tg.spawn(t.write, big)  # blocks: nobody reads yet
            await yieldio.testing.wait_all_tasks_blocked()
            with pytest.raises(yieldio.BusyResourceError, match="already writing"):
                await t.write(b"y")
            got = await s.read_exactly(len(big))
        assert got == big
        await t.aclose()

    yieldio.run(main)


def test_stream_used_after_close():
    async def main():
        s, t = _stream_pair()
        await s.aclose()
        await s.aclose()  # idempotent
        assert s.closed and not t.closed
        for op in (s.read(), s.read_exactly(1), s.read_until(b"\n"), s.write(b"x")):
            with pytest.raises(yieldio.ClosedResourceError, match="closed"):
                await op
        await t.aclose()

    yieldio.run(main)


def test_stream_reads_at_eof():
    async def main():
        s, t = _stream_pair()
        async with s, t:
            await t.write(b"one\ntwo\nthree")
            await t.send_eof()
            assert await s.readline() == b"one\n"
            assert await s.read_until(b"\n") == b"two\n"
            with pytest.raises(yieldio.IncompleteRead) as info:
                await s.read_exactly(10)
            assert info.value.partial == b"three"
            assert await s.readline() == b""
            assert await s.read() == b""
            assert [chunk async for chunk in s] == []
            with pytest.raises(yieldio.IncompleteRead):
                await s.read_until(b"\n")

    yieldio.run(main)


def test_stream_read_until_limit_keeps_the_data():
    async def main():
        s, t = _stream_pair()
        async with s, t:
            await t.write(b"0123456789\n")
            with pytest.raises(ValueError, match="not found within 4 bytes"):
                await s.read_until(b"\n", max_bytes=4)
            # The separator is buffered now, but past the limit: still refused.
            with pytest.raises(ValueError, match="not found within 8 bytes"):
                await s.read_until(b"\n", max_bytes=8)
            assert await s.read_exactly(2) == b"01"
            assert await s.read(3) == b"234"  # served from the buffer
            assert await s.readline() == b"56789\n"

    yieldio.run(main)


def test_stream_async_for_yields_chunks_until_eof():
    async def main():
        s, t = _stream_pair()
        async with s, t:
            await t.write(b"abc")
            await t.send_eof()
            assert b"".join([chunk async for chunk in s]) == b"abc"

    yieldio.run(main)


def test_stream_write_cancelled_part_way_breaks_writing_only():
    async def main():
        s, t = _stream_pair()
        async with s, t:
            with yieldio.move_on_after(0.05):
                await t.write(b"x" * (8 << 20))  # more than the socket buffers
            with pytest.raises(yieldio.BrokenStreamError, match="interrupted"):
                await t.write(b"more")
            # Reading still works in both directions.
            await s.write(b"pong")
            assert await t.read() == b"pong"

    yieldio.run(main)


def test_stream_write_of_text_is_refused_and_the_stream_stays_usable():
    async def main():
        s, t = _stream_pair()
        async with s, t:
            with pytest.raises(TypeError):
                await t.write("text")  # type: ignore[arg-type]
            await t.write(b"bytes")
            assert await s.read() == b"bytes"

    yieldio.run(main)


def test_a_minimal_stream_subclass_gets_the_defaults():
    class Chunks(yieldio.Stream):
        def __init__(self, chunks):
            super().__init__()
            self.chunks = list(chunks)

        async def receive_some(self, max_bytes=65536):
            await yieldio.sleep(0)
            return self.chunks.pop(0) if self.chunks else b""

        async def send_all(self, data):
            raise OSError("read-only")

        async def send_eof(self):
            pass

    async def main():
        s = Chunks([b"a,b", b",c"])
        assert s.get_extra_info("peername", "none") == "none"
        assert await s.read_until(b",") == b"a,"
        assert await s.read_until(b",") == b"b,"
        assert await s.read() == b"c"
        with pytest.raises(OSError, match="read-only"):
            await s.write(b"x")
        with pytest.raises(yieldio.BrokenStreamError):
            await s.write(b"x")
        async with s:
            pass
        assert s.closed
        with pytest.raises(yieldio.ClosedResourceError):
            await s.read()

    yieldio.run(main)


def test_async_file_repr_and_errors_of_an_open_file_pass_through(tmp_path):
    async def main():
        async with await yieldio.open_file(tmp_path / "f.bin", "wb+") as f:
            assert repr(f).startswith("<yieldio AsyncFile <_io.BufferedRandom")
            with pytest.raises(ValueError, match="whence"):
                await f.seek(0, 7)  # a ValueError of the file's own, not "closed"
            assert await f.write(b"abc") == 3

    yieldio.run(main)


def test_a_file_closed_under_a_waiting_reader_raises_closed_resource_error():
    import threading

    class SlowFile:
        """A read that blocks until the file is closed, as on a pipe or a slow mount."""

        def __init__(self):
            self.started = threading.Event()
            self.closed_evt = threading.Event()
            self.closed = False

        def read(self, size=-1):
            self.started.set()
            self.closed_evt.wait(5)
            raise ValueError("I/O operation on closed file")

        def close(self):
            self.closed = True
            self.closed_evt.set()

    async def main():
        f = wrap_file(SlowFile())

        async def reader():
            with pytest.raises(yieldio.ClosedResourceError, match="the file is closed"):
                await f.read()
            return "refused"

        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(reader)
            await yieldio.to_thread(f.wrapped.started.wait, 5)
            await f.aclose()
        assert t.result() == "refused"

    yieldio.run(main)
