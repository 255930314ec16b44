"""open_unix_stream and serve_unix on real Unix sockets."""

from __future__ import annotations

import errno
import os
import socket as stdsocket
import stat

import pytest

import yieldio


async def echo(stream):
    async for data in stream:
        await stream.write(data)


def test_echo_over_a_unix_socket_and_the_file_is_removed(tmp_path):
    path = str(tmp_path / "echo.sock")

    async def main():
        async with yieldio.serve_unix(echo, path) as server:
            assert stat.S_ISSOCK(os.stat(path).st_mode)
            assert server.addresses == [path]
            assert server.port is None
            async with await yieldio.open_unix_stream(path) as stream:
                await stream.write(b"over unix\n")
                assert await stream.readline() == b"over unix\n"
        assert not os.path.exists(path)

    yieldio.run(main)


def test_path_like_objects_work(tmp_path):
    path = tmp_path / "p.sock"

    async def main():
        async with yieldio.serve_unix(echo, path):
            async with await yieldio.open_unix_stream(path) as stream:
                await stream.write(b"p")
                assert await stream.read() == b"p"

    yieldio.run(main)


def test_a_stale_socket_file_is_replaced(tmp_path):
    path = str(tmp_path / "stale.sock")
    dead = stdsocket.socket(stdsocket.AF_UNIX)
    dead.bind(path)  # bound, never listening, then closed: a crashed server's file
    dead.close()
    assert os.path.exists(path)

    async def main():
        async with yieldio.serve_unix(echo, path):
            async with await yieldio.open_unix_stream(path) as stream:
                await stream.write(b"fresh")
                assert await stream.read() == b"fresh"

    yieldio.run(main)


def test_a_live_server_is_not_replaced(tmp_path):
    path = str(tmp_path / "live.sock")

    async def main():
        async with yieldio.serve_unix(echo, path):
            with pytest.raises(OSError) as info:
                async with yieldio.serve_unix(echo, path):
                    pass
            assert info.value.errno == errno.EADDRINUSE
            # ... and the first server still works.
            async with await yieldio.open_unix_stream(path) as stream:
                await stream.write(b"still here")
                assert await stream.read() == b"still here"

    yieldio.run(main)


def test_a_file_that_is_not_a_socket_is_never_touched(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("precious")

    async def main():
        with pytest.raises(FileExistsError):
            async with yieldio.serve_unix(echo, str(path)):
                pass

    yieldio.run(main)
    assert path.read_text() == "precious"


def test_the_file_is_removed_only_if_it_is_still_ours(tmp_path):
    path = str(tmp_path / "moved.sock")

    async def main():
        async with yieldio.serve_unix(echo, path):
            os.unlink(path)
            with open(path, "w") as f:  # someone else's file now
                f.write("not ours")
        with open(path) as f:
            assert f.read() == "not ours"

    yieldio.run(main)


def test_a_relative_path_is_removed_even_after_a_chdir(tmp_path, monkeypatch):
    # A daemon binds "app.sock" in its directory, then chdir()s elsewhere:
    # the file it created must still be the one removed at the end, and a
    # file of that name in the new directory must not be touched.
    first = tmp_path / "first"
    second = tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (second / "app.sock").write_text("someone else's")
    monkeypatch.chdir(first)

    async def main():
        async with yieldio.serve_unix(echo, "app.sock") as server:
            assert server.addresses == ["app.sock"]  # as given
            os.chdir(second)
            async with await yieldio.open_unix_stream(first / "app.sock") as stream:
                await stream.write(b"x")
                assert await stream.read() == b"x"

    yieldio.run(main)
    assert not (first / "app.sock").exists()
    assert (second / "app.sock").read_text() == "someone else's"


def test_connecting_to_a_missing_or_dead_path(tmp_path):
    missing = str(tmp_path / "missing.sock")
    dead = str(tmp_path / "dead.sock")
    s = stdsocket.socket(stdsocket.AF_UNIX)
    s.bind(dead)
    s.close()

    async def main():
        with pytest.raises(FileNotFoundError):
            await yieldio.open_unix_stream(missing)
        with pytest.raises(ConnectionRefusedError):
            await yieldio.open_unix_stream(dead)
        with pytest.raises(TypeError):
            await yieldio.open_unix_stream(42)  # type: ignore[arg-type]

    yieldio.run(main)


def test_abstract_namespace_socket():
    name = f"\0yieldio-test-{os.getpid()}"

    async def main():
        async with yieldio.serve_unix(echo, name) as server:
            assert server.addresses == [name.encode()] or server.addresses == [name]
            async with await yieldio.open_unix_stream(name) as stream:
                await stream.write(b"abstract")
                assert await stream.read() == b"abstract"

    yieldio.run(main)



def test_an_empty_path_autobinds_an_abstract_name():
    # bind("") makes Linux pick a free abstract name; the listener then
    # stat()ed the path "" for its file and failed with FileNotFoundError.
    async def main():
        with yieldio.fail_after(5):
            async with yieldio.serve_unix(echo, "") as server:
                [name] = server.addresses
                assert name[:1] == b"\0" and len(name) > 1
                async with await yieldio.open_unix_stream(name) as stream:
                    await stream.write(b"autobind")
                    assert await stream.read() == b"autobind"

    yieldio.run(main)

def test_many_clients_at_once_even_with_a_tiny_backlog(tmp_path):
    # A full Unix-socket backlog makes connect() fail with EAGAIN (no attempt
    # in progress, unlike TCP): the client must retry, not fail or hang.
    path = str(tmp_path / "many.sock")

    async def client(i, results):
        async with await yieldio.open_unix_stream(path) as stream:
            await stream.write(b"%d\n" % i)
            results[i] = await stream.readline()

    async def main():
        results = {}
        async with yieldio.serve_unix(echo, path, backlog=1):
            async with yieldio.TaskGroup() as tg:
                for i in range(50):
                    tg.spawn(client, i, results)
        assert results == {i: b"%d\n" % i for i in range(50)}

    yieldio.run(main)


def test_stdlib_client_against_a_yieldio_unix_server(tmp_path):
    path = str(tmp_path / "std.sock")

    def stdlib_client():
        with stdsocket.socket(stdsocket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(path)
            s.sendall(b"from a thread\n")
            return s.makefile("rb").readline()

    async def main():
        async with yieldio.serve_unix(echo, path):
            assert await yieldio.to_thread(stdlib_client) == b"from a thread\n"

    yieldio.run(main)


def test_a_server_that_fails_to_start_after_binding_removes_its_socket_file(tmp_path):
    # bind() creates the file; a failure after it (here listen() refusing the
    # backlog) closed the socket but left the file, and no listener existed
    # to remove it on close.
    path = str(tmp_path / "failed.sock")

    async def main():
        with pytest.raises(OverflowError):
            async with yieldio.serve_unix(echo, path, backlog=2**40):
                pass
        assert not os.path.exists(path)

    yieldio.run(main)
