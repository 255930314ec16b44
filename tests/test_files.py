"""open_file / AsyncFile on real files and FIFOs: every method, closing, cancellation."""

from __future__ import annotations

import inspect
import io
import os
import pathlib

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


# -- AsyncFile against trio's AsyncIOWrapper, each checked against the stdlib itself ---------
# AsyncFile forwards a method or optional attribute exactly when the wrapped
# file has it.
DATA = bytes(range(256)) * 40  # 10240 bytes: more than one buffer's worth is not needed

# Everything trio's AsyncIOWrapper forwards when the wrapped object has it.
TRIO_FORWARDED = sorted({
    "closed", "encoding", "errors", "fileno", "isatty", "newlines", "readable", "seekable",
    "writable", "buffer", "raw", "line_buffering", "closefd", "name", "mode", "getvalue",
    "getbuffer", "flush", "read", "read1", "readall", "readinto", "readinto1", "readline",
    "readlines", "seek", "tell", "truncate", "write", "writelines", "peek", "detach",
})
# yieldio keeps these three always present (None when the wrapped file lacks them).
ALWAYS = {"closed", "encoding", "errors", "newlines"}


def _data_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return path


# -- AsyncFile: what exists ------------------------------------------------------------
OPEN_MODES = [
    {"mode": "rb"}, {"mode": "rb", "buffering": 0}, {"mode": "r+b"}, {"mode": "wb"},
    {"mode": "ab", "buffering": 0}, {"mode": "r", "encoding": "latin-1"},
    {"mode": "w", "buffering": 1}, {"mode": "a+", "encoding": "utf-8"},
]


@pytest.mark.parametrize("kwargs", OPEN_MODES, ids=lambda kw: "-".join(map(str, kw.values())))
def test_async_file_has_exactly_what_the_open_file_has(tmp_path, kwargs):
    path = _data_file(tmp_path)

    async def main():
        async with await yieldio.open_file(path, **kwargs) as f:
            with open(path, **kwargs) as plain:
                for name in TRIO_FORWARDED:
                    if name in ALWAYS:
                        assert hasattr(f, name)
                        continue
                    assert hasattr(f, name) == hasattr(plain, name), name
                    assert (name in dir(f)) == hasattr(plain, name), name

    yieldio.run(main)


@pytest.mark.parametrize("make", [lambda: io.BytesIO(DATA), lambda: io.StringIO("text"),
                                  lambda: io.BufferedReader(io.BytesIO(DATA))],
                         ids=["BytesIO", "StringIO", "BufferedReader-over-BytesIO"])
def test_wrapped_in_memory_files_have_exactly_what_they_have(make):
    async def main():
        obj = make()
        f = wrap_file(obj)
        for name in TRIO_FORWARDED:
            if name not in ALWAYS:
                assert hasattr(f, name) == hasattr(obj, name), name
                # dir() lists what can be read: a BufferedReader over a BytesIO
                # lists ``mode`` but reading it raises AttributeError.
                assert (name in dir(f)) == hasattr(obj, name), name
        await f.aclose()

    yieldio.run(main)


def test_a_missing_method_is_an_attribute_error_naming_the_wrapped_type(tmp_path):
    async def main():
        async with await yieldio.open_file(tmp_path / "t.txt", "w") as f:
            for name in ("peek", "read1", "readinto", "readinto1", "readall", "raw", "closefd",
                         "getvalue"):
                with pytest.raises(AttributeError, match=name):
                    getattr(f, name)
            assert getattr(f, "peek", None) is None
            with pytest.raises(AttributeError, match="'TextIOWrapper' object has no attribute"):
                f.peek  # noqa: B018

    yieldio.run(main)


def test_class_level_access_gives_the_documented_functions():
    for name in ("peek", "readall", "readinto1", "read1", "readinto", "detach", "read"):
        fn = getattr(AsyncFile, name)
        assert inspect.iscoroutinefunction(fn) and fn.__doc__, name
    for name in ("getvalue", "getbuffer", "fileno", "readable"):
        fn = getattr(AsyncFile, name)
        assert callable(fn) and not inspect.iscoroutinefunction(fn) and fn.__doc__, name


# -- AsyncFile: the newer methods, against the stdlib's ----------------------------------
def test_peek_read1_readinto_readinto1_match_a_buffered_reader(tmp_path):
    path = _data_file(tmp_path)

    async def main():
        async with await yieldio.open_file(path, "rb", buffering=4096) as f:
            with open(path, "rb", buffering=4096) as plain:
                assert await f.peek() == plain.peek()
                assert await f.peek(3) == plain.peek(3)
                assert await f.tell() == plain.tell() == 0  # peek does not move
                assert await f.read1(10) == plain.read1(10)
                a, b = bytearray(5000), bytearray(5000)
                assert await f.readinto1(a) == plain.readinto1(b)
                assert a == b
                a, b = bytearray(7000), bytearray(7000)
                assert await f.readinto(a) == plain.readinto(b)
                assert a == b
                assert await f.tell() == plain.tell()
                assert await f.read1() == plain.read1()
                assert await f.peek() == plain.peek() == b""  # EOF

    yieldio.run(main)


def test_readall_and_closefd_match_an_unbuffered_file(tmp_path):
    path = _data_file(tmp_path)

    async def main():
        async with await yieldio.open_file(path, "rb", buffering=0) as f:
            with open(path, "rb", buffering=0) as plain:
                assert await f.read(100) == plain.read(100)
                assert await f.readall() == plain.readall() == DATA[100:]
                assert f.closefd is plain.closefd is True
        fd = os.open(path, os.O_RDONLY)
        try:
            async with await yieldio.open_file(fd, "rb", buffering=0, closefd=False) as f:
                with open(fd, "rb", buffering=0, closefd=False) as plain:
                    assert f.closefd is plain.closefd is False
            os.fstat(fd)  # still open
        finally:
            os.close(fd)

    yieldio.run(main)


def test_plain_attributes_are_the_wrapped_files_own(tmp_path):
    path = _data_file(tmp_path)

    async def main():
        async with await yieldio.open_file(path, "rb") as f:
            assert f.raw is f.wrapped.raw and isinstance(f.raw, io.FileIO)
        async with await yieldio.open_file(tmp_path / "t.txt", "w", buffering=1) as f:
            with open(tmp_path / "u.txt", "w", buffering=1) as plain:
                assert f.line_buffering is plain.line_buffering is True
                assert f.buffer is f.wrapped.buffer
                assert type(f.buffer) is type(plain.buffer)
        async with await yieldio.open_file(tmp_path / "t.txt") as f:
            assert f.line_buffering is False

    yieldio.run(main)


def test_getvalue_and_getbuffer_match_bytesio_and_stringio():
    async def main():
        b, plain_b = io.BytesIO(), io.BytesIO()
        f = wrap_file(b)
        await f.write(b"hello world")
        plain_b.write(b"hello world")
        assert f.getvalue() == plain_b.getvalue() == b"hello world"
        with f.getbuffer() as view, plain_b.getbuffer() as plain_view:
            assert bytes(view) == bytes(plain_view)
            view[0] = ord("J")
        assert f.getvalue() == b"Jello world"
        s, plain_s = io.StringIO(), io.StringIO()
        g = wrap_file(s)
        await g.write("texte")
        plain_s.write("texte")
        assert g.getvalue() == plain_s.getvalue()
        assert not hasattr(g, "getbuffer") and not hasattr(plain_s, "getbuffer")
        await f.aclose()
        await g.aclose()
        with pytest.raises(yieldio.ClosedResourceError):
            f.getvalue()

    yieldio.run(main)


def test_new_methods_on_a_closed_file_raise_closed_resource_error(tmp_path):
    path = _data_file(tmp_path)

    async def main():
        f = await yieldio.open_file(path, "rb")
        await f.aclose()
        for op in (f.peek(), f.readinto1(bytearray(1)), f.detach()):
            with pytest.raises(yieldio.ClosedResourceError):
                await op
        g = await yieldio.open_file(path, "rb", buffering=0)
        await g.aclose()
        with pytest.raises(yieldio.ClosedResourceError):
            await g.readall()

    yieldio.run(main)


# -- AsyncFile.detach --------------------------------------------------------------------
def test_detach_a_text_file_gives_its_buffer_wrapped_and_flushes_like_the_stdlib(tmp_path):
    ours, theirs = tmp_path / "ours.txt", tmp_path / "theirs.txt"

    async def main():
        f = await yieldio.open_file(ours, "w", encoding="utf-8")
        await f.write("é pending")  # still in the text layer's buffer
        buf = await f.detach()
        plain = open(theirs, "w", encoding="utf-8")
        plain.write("é pending")
        plain_buf = plain.detach()
        assert isinstance(buf, AsyncFile) and type(buf.wrapped) is type(plain_buf)
        assert f.closed  # finished with: the new wrapper owns the file
        with pytest.raises(yieldio.ClosedResourceError):
            await f.write("more")
        await f.aclose()  # does nothing, where the stdlib's close() raises ValueError
        with pytest.raises(ValueError):
            plain.close()
        await buf.write(b"!")
        plain_buf.write(b"!")
        await buf.aclose()
        plain_buf.close()
        assert buf.closed

    yieldio.run(main)
    assert ours.read_bytes() == theirs.read_bytes() == "é pending!".encode()


def test_detach_a_buffered_reader_gives_its_raw_file(tmp_path):
    path = _data_file(tmp_path)

    async def main():
        async with await yieldio.open_file(path, "rb") as f:
            raw = await f.detach()  # the async with's aclose() then does nothing
        plain = open(path, "rb").detach()  # (a with-block would raise ValueError at exit)
        try:
            async with raw:
                assert type(raw.wrapped) is type(plain) is io.FileIO
                assert await raw.readall() == plain.readall() == DATA
        finally:
            plain.close()
        assert raw.closed and raw.wrapped.closed

    yieldio.run(main)


def test_a_detach_cancelled_before_it_starts_leaves_the_file_usable(tmp_path):
    path = _data_file(tmp_path)

    async def main():
        async with await yieldio.open_file(path, "rb") as f:
            with yieldio.move_on_after(0) as scope:
                await f.detach()
            assert scope.cancelled_caught and not f.closed
            assert await f.read(4) == DATA[:4]

    yieldio.run(main)


def test_unbuffered_and_in_memory_detach_match_the_stdlib(tmp_path):
    async def main():
        async with await yieldio.open_file(tmp_path / "x", "wb", buffering=0) as f:
            assert not hasattr(f, "detach")  # FileIO has none
        s = wrap_file(io.StringIO())
        with pytest.raises(io.UnsupportedOperation):
            io.StringIO().detach()
        with pytest.raises(io.UnsupportedOperation):
            await s.detach()
        await s.aclose()

    yieldio.run(main)
