"""Edge cases of open_file / wrap_file / yieldio.Path, probed as a trio/anyio/aiofiles user would."""

from __future__ import annotations

import array
import http.client
import os
import pathlib
import pickle
import socket

import pytest

import yieldio
from yieldio.files import AsyncFile, wrap_file

pytestmark = pytest.mark.timeout(30)


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- open_file behaves like the builtin open ------------------------------------------
def test_text_modes_and_newlines_match_the_builtin(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"a\r\nb\rc\nd")  # no trailing newline

    def builtin(**kw):
        with open(path, **kw) as f:  # noqa: ASYNC230 -- the reference, outside the run
            return list(f), getattr(f, "newlines", None)

    async def ours(**kw):
        async with await yieldio.open_file(path, **kw) as f:
            return [line async for line in f], f.newlines

    async def main():
        for kw in ({}, {"newline": ""}, {"newline": "\r"}, {"mode": "rb"}):
            assert await ours(**kw) == builtin(**kw), kw
        path.write_bytes(b"\xffok")
        with pytest.raises(UnicodeDecodeError):
            async with await yieldio.open_file(path, encoding="utf-8") as f:
                await f.read()
        async with await yieldio.open_file(path, encoding="utf-8", errors="replace") as f:
            assert await f.read() == "\ufffdok" and f.errors == "replace"
        out = tmp_path / "crlf.txt"
        async with await yieldio.open_file(out, "w", newline="\r\n") as f:
            await f.write("x\ny\n")
        assert out.read_bytes() == b"x\r\ny\r\n"

    yieldio.run(main)


def test_line_iteration_of_a_large_file_without_trailing_newline(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("".join(f"line {i}\n" for i in range(3000)) + "tail")

    async def main():
        async with await yieldio.open_file(path) as f:
            return [line async for line in f]

    lines = yieldio.run(main)
    assert len(lines) == 3001 and lines[0] == "line 0\n" and lines[-1] == "tail"


def test_every_operation_on_a_closed_file_is_closed_resource_error(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")

    async def main():
        f = await yieldio.open_file(path, "r+b")
        await f.aclose()
        await f.aclose()
        for op in (f.write(b"x"), f.writelines([b"x"]), f.truncate(), f.read1(),
                   f.readinto(bytearray(1))):
            with pytest.raises(yieldio.ClosedResourceError):
                await op
        for sync in (f.readable, f.writable, f.seekable, f.isatty):
            with pytest.raises(yieldio.ClosedResourceError):
                sync()
        assert f.closed and f.name == str(path) and f.mode == "rb+"  # still readable

    yieldio.run(main)


def test_aclose_in_a_cancelled_scope_leaks_no_descriptor(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")

    async def main():
        before = _fd_count()
        for _ in range(20):
            with yieldio.CancelScope() as scope:
                async with await yieldio.open_file(path, "rb") as f:
                    scope.cancel()
                    await yieldio.checkpoint()  # raises Cancelled: __aexit__ closes anyway
            assert f.closed and scope.cancelled_caught
        assert _fd_count() == before

    yieldio.run(main)


def test_ctrl_c_while_aclose_waits_for_a_full_pool_still_closes_and_flushes(tmp_path):
    # Ctrl-C reaches a shielded wait, and a close still queued behind a busy
    # pool was withdrawn: the buffered data was lost until the garbage
    # collector closed the file (or for good, at exit).
    import subprocess
    import sys

    path = tmp_path / "out.txt"
    code = f"""
import os, signal, threading, yieldio, yieldio.testing

release = threading.Event()

async def main():
    pool = yieldio.threads.WorkerPool(max_workers=1)
    yieldio.threads.default_pool = pool
    f = state["file"] = await yieldio.open_file({str(path)!r}, "w")
    await f.write("kept")  # buffered in the file object, not yet written
    async with yieldio.TaskGroup() as tg:
        tg.spawn(yieldio.to_thread, release.wait)  # the only worker, busy
        await yieldio.testing.wait_all_tasks_blocked()
        # The close waits for the busy worker; Ctrl-C then arrives.
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            await f.aclose()
        finally:
            release.set()

state = {{}}
try:
    yieldio.run(main)
except KeyboardInterrupt:
    # Read before exit: the interpreter's exit would close and flush it too.
    with open({str(path)!r}) as check:
        print("interrupted:", state["file"].wrapped.closed, repr(check.read()), flush=True)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30)
    assert out.stdout == "interrupted: True 'kept'\n", out.stderr


def test_ctrl_c_while_aclose_waits_for_a_call_in_flight_still_closes(tmp_path):
    # The wait for other tasks' calls sat outside the handler that closes
    # the file on Ctrl-C: the file stayed open and unflushed, and since it
    # counted as closed, a second aclose() did nothing.
    import subprocess
    import sys

    path = tmp_path / "out.txt"
    code = f"""
import os, signal, threading, yieldio, yieldio.testing

release = threading.Event()

class Slow:
    def __init__(self, real): self.real = real
    def write(self, s):
        if s == "BLOCK":
            release.wait()
            return 0
        return self.real.write(s)
    def close(self): self.real.close()
    @property
    def closed(self): return self.real.closed

state = {{}}

async def main():
    f = state["f"] = yieldio.wrap_file(Slow(open({str(path)!r}, "w")))
    await f.write("kept")  # buffered in the real file object
    async with yieldio.TaskGroup() as tg:
        tg.spawn(f.write, "BLOCK")  # a call in flight on a worker thread
        await yieldio.testing.wait_all_tasks_blocked()
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            await f.aclose()  # waits for that call; Ctrl-C arrives
        finally:
            release.set()

try:
    yieldio.run(main)
except KeyboardInterrupt:
    with open({str(path)!r}) as check:
        print("interrupted:", state["f"].wrapped.real.closed, repr(check.read()), flush=True)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30)
    assert out.stdout == "interrupted: True 'kept'\n", out.stderr


def test_a_second_aclose_returns_once_the_file_is_closed(tmp_path):
    import threading

    release = threading.Event()

    class Slow:
        def __init__(self, real):
            self.real = real

        def write(self, s):
            release.wait(5)
            return self.real.write(s)

        def close(self):
            self.real.close()

        @property
        def closed(self):
            return self.real.closed

    async def main():
        f = yieldio.wrap_file(Slow(open(tmp_path / "f.txt", "w")))  # noqa: SIM115
        async with yieldio.TaskGroup() as tg:
            tg.spawn(f.write, "data")  # in flight: the first aclose() waits for it
            await yieldio.testing.wait_all_tasks_blocked()
            first = tg.spawn(f.aclose)
            await yieldio.testing.wait_all_tasks_blocked()
            async def release_soon():
                await yieldio.sleep(0.05)
                release.set()

            tg.spawn(release_soon)
            await f.aclose()  # used to return at once, the file still open
            assert f.wrapped.real.closed and first.done()
        assert (tmp_path / "f.txt").read_text() == "data"

    yieldio.run(main)


def test_a_read_that_completed_under_cancellation_moved_the_position(tmp_path):
    # Documented: an operation that started completes and its result is returned;
    # the file position therefore matches what the caller received.
    path = tmp_path / "x.bin"
    path.write_bytes(b"0123456789")

    async def main():
        async with await yieldio.open_file(path, "rb") as f:
            got = None
            with yieldio.CancelScope() as scope:

                async def cancel_soon():
                    scope.cancel()

                async with yieldio.TaskGroup() as tg:
                    tg.spawn(cancel_soon)
                    got = await f.read(4)  # the thread runs; the cancel arrives meanwhile
                    await yieldio.checkpoint()
            assert scope.cancelled_caught
            return got, await f.tell()

    assert yieldio.run(main) == (b"0123", 4)


# -- wrap_file forwards calls faithfully ------------------------------------------------
def test_wrap_file_passes_only_the_arguments_the_caller_gave():
    # AsyncFile.read() used to call the wrapped object's read(-1). For a file
    # object whose default is not -1 that changes the meaning: an
    # http.client.HTTPResponse reads up to Content-Length for read(), but
    # until the connection closes for read(-1) -- into the next response, or
    # forever on a keep-alive connection. trio and aiofiles forward exactly
    # the arguments given; so must we.
    a, b = socket.socketpair()
    b.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloNEXT RESPONSE")
    b.close()
    resp = http.client.HTTPResponse(a)
    resp.begin()
    a.close()  # the response holds its own file object on the socket

    class Minimal:
        """A file-like whose methods take no optional arguments at all."""

        def __init__(self):
            self.lines = [b"one\n", b"two\n"]

        def read(self):
            return b"".join(self.lines)

        def readline(self):
            return self.lines.pop(0) if self.lines else b""

        def readlines(self):
            return list(self.lines)

        def truncate(self):
            return 0

        def seek(self, pos):
            return pos

        def close(self):
            pass

    async def main():
        async with wrap_file(resp) as f:
            assert await f.read() == b"hello"
        m = wrap_file(Minimal())
        assert await m.read() == b"one\ntwo\n"
        assert await m.readlines() == [b"one\n", b"two\n"]
        assert await m.seek(3) == 3 and await m.truncate() == 0
        assert [line async for line in m] == [b"one\n", b"two\n"]
        await m.aclose()

    yieldio.run(main)


def test_wrap_file_missing_methods_fail_at_the_call_not_at_wrap():
    class WriteOnly:
        def write(self, data):
            return len(data)

        def close(self):
            pass

    async def main():
        f = wrap_file(WriteOnly())  # accepted
        assert await f.write(b"abc") == 3
        with pytest.raises(AttributeError, match="'WriteOnly' object has no attribute 'read'"):
            await f.read()
        with pytest.raises(AttributeError, match="fileno"):
            f.fileno()
        await f.aclose()

    yieldio.run(main)


# -- yieldio.Path against pathlib.Path -------------------------------------------------
def test_path_write_bytes_accepts_any_bytes_like_object_as_pathlib_does(tmp_path):
    # pathlib.Path.write_bytes takes anything memoryview() takes (array.array,
    # mmap, numpy arrays); yieldio refused all but bytes/bytearray/memoryview.
    async def main():
        p = yieldio.Path(tmp_path) / "data"
        assert await p.write_bytes(array.array("B", [1, 2, 3])) == 3
        assert await p.read_bytes() == b"\x01\x02\x03"
        with pytest.raises(TypeError, match="needs bytes"):
            await p.write_bytes("text")  # type: ignore[arg-type]

    yieldio.run(main)
    with pytest.raises(TypeError):
        pathlib.Path(tmp_path / "data").write_bytes("text")  # type: ignore[arg-type]


def test_path_has_every_public_method_of_pathlib_311(tmp_path):
    # link_to() is deprecated since 3.10 and gone in 3.12: deliberately not offered.
    missing = {n for n in dir(pathlib.Path) if not n.startswith("_")} - set(dir(yieldio.Path))
    assert missing <= {"link_to"}, missing
    assert yieldio.Path("nul").is_reserved() is pathlib.Path("nul").is_reserved()

    async def main():
        link = yieldio.Path(tmp_path) / "link"
        await link.symlink_to(tmp_path)
        try:
            pathlib.Path(link).lchmod(0o700)
        except Exception as exc:  # Linux has no lchmod: the same error, awaited
            with pytest.raises(type(exc)):
                await link.lchmod(0o700)
        else:
            await link.lchmod(0o700)

    yieldio.run(main)


def test_path_pickles_and_copies_with_every_protocol():
    p = yieldio.Path("/srv", "data.bin")
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        q = pickle.loads(pickle.dumps(p, proto))
        assert type(q) is yieldio.Path and q == p, proto


def test_path_results_and_items_are_yieldio_paths(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.txt").write_text("x")

    async def main():
        base = yieldio.Path(tmp_path)
        results = [await (base / "sub" / ".." / "sub").resolve(), await yieldio.Path("x").absolute(),
                   await yieldio.Path("~").expanduser(), await yieldio.Path.cwd()]
        results += [p async for p in base.iterdir()] + [p async for p in base.rglob("*.txt")]
        results += [r.with_name("y") for r in results] + list(results[0].parents)
        assert all(type(r) is yieldio.Path for r in results)
        async with await (base / "sub" / "f.txt").open() as f:
            assert isinstance(f, AsyncFile) and await f.read() == "x"
        with pytest.raises(NotADirectoryError):
            async for _ in (base / "sub" / "f.txt").iterdir():
                pass
        with pytest.raises(FileNotFoundError):
            await (base / "missing").stat()
        with pytest.raises(FileNotFoundError):
            await (base / "missing").open()

    yieldio.run(main)


def test_path_comparisons_and_hashing_agree_with_pathlib():
    p = yieldio.Path("/a/b")
    assert p == pathlib.Path("/a/b") == pathlib.PurePosixPath("/a/b") == p
    assert {p} == {pathlib.Path("/a/b")} and pathlib.PurePath("/a/b") in {p}
    assert p != "/a/b" and sorted([pathlib.Path("/b"), p]) == [p, pathlib.Path("/b")]
    with pytest.raises(TypeError, match="'Path' and 'int'"):
        p < 3  # noqa: B015
    with pytest.raises(TypeError, match="'int' and 'Path'"):
        3 >= p  # noqa: B015


def test_path_io_outside_a_run_is_a_clear_error():
    coro = yieldio.Path("/").exists()
    with pytest.raises(RuntimeError, match="yieldio.run"):
        coro.send(None)
    coro.close()


@pytest.mark.parametrize("buffering", [0, -1])
def test_aclose_waits_for_other_tasks_calls_on_the_same_file(tmp_path, buffering):
    # aclose() closed the file under writes still running on worker threads:
    # a write got EBADF instead of ClosedResourceError, a buffered write that
    # had returned was dropped, and an unbuffered one could land in another
    # file that took the fd number meanwhile.
    import random

    async def writer(f, tag, returned):
        for j in range(100_000):
            data = b"[%s:%d]" % (tag, j)
            try:
                await f.write(data)
            except yieldio.ClosedResourceError:
                return
            returned.append(data)

    async def trial(path, delay):
        f = await yieldio.open_file(path, "wb", buffering=buffering)
        returned = []
        async with yieldio.TaskGroup() as tg:
            for tag in (b"a", b"b", b"c"):
                tg.spawn(writer, f, tag, returned)
            await yieldio.sleep(delay)
            await f.aclose()
            other = await yieldio.open_file(tmp_path / "other.bin", "wb", buffering=0)
            await other.write(b"OTHER")  # may take the fd number the close freed
            await other.aclose()
        return returned

    rng = random.Random(7)
    for i in range(25):
        path = tmp_path / f"shared{i}.bin"
        returned = yieldio.run(trial, path, rng.random() * 0.003)
        written = path.read_bytes()
        assert all(chunk in written for chunk in returned)
        assert (tmp_path / "other.bin").read_bytes() == b"OTHER"
