"""The public fd-level waits: yieldio.wait_readable / wait_writable / notify_closing on real fds."""

from __future__ import annotations

import os
import socket

import pytest

import yieldio


@pytest.fixture
def pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def test_wait_readable_wakes_when_a_thread_writes(pipe):
    r, w = pipe

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.to_thread, os.write, w, b"from a thread")
            await yieldio.wait_readable(r)
            return os.read(r, 100)

    assert yieldio.run(main) == b"from a thread"


def test_objects_with_fileno_and_wait_writable():
    a, b = socket.socketpair()
    a.setblocking(False)

    async def main():
        await yieldio.wait_writable(a)  # an empty send buffer: at once
        a.send(b"x")
        await yieldio.wait_readable(b)
        return b.recv(1)

    with a, b:
        assert yieldio.run(main) == b"x"


def test_wait_writable_waits_for_room(pipe):
    r, w = pipe
    filled = 0
    while True:  # fill the pipe's buffer
        try:
            filled += os.write(w, b"\0" * 65536)
        except BlockingIOError:
            break

    async def main():
        async with yieldio.TaskGroup() as tg:
            writer = tg.spawn(yieldio.wait_writable, w)
            await yieldio.testing.wait_all_tasks_blocked()
            assert not writer.done()  # still no room
            drained = 0
            while drained < filled:
                drained += len(os.read(r, 1 << 20))
        return writer.done()

    assert yieldio.run(main) is True


def test_two_readers_of_one_fd_is_a_clear_error(pipe):
    r, _ = pipe

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.wait_readable, r, name="first")
            await yieldio.testing.wait_all_tasks_blocked()
            with pytest.raises(yieldio.BusyResourceError, match="first"):
                await yieldio.wait_readable(r)
            tg.cancel()

    yieldio.run(main)


def test_notify_closing_fails_the_waiter_and_the_fd_can_be_reused(pipe):
    r, w = pipe

    async def waiter():
        try:
            await yieldio.wait_readable(r)
        except yieldio.ClosedResourceError as exc:
            return str(exc)

    async def main():
        async with yieldio.TaskGroup() as tg:
            task = tg.spawn(waiter)
            await yieldio.testing.wait_all_tasks_blocked()
            yieldio.notify_closing(r)
        assert "closed" in task.result()
        # A new pipe may get the same number: waiting on it works normally.
        os.close(r)
        r2, w2 = os.pipe()
        try:
            os.write(w2, b"again")
            await yieldio.wait_readable(r2)
            return os.read(r2, 10)
        finally:
            os.close(r2)
            os.close(w2)

    assert yieldio.run(main) == b"again"


def test_a_wait_is_cancellable_and_bad_arguments_are_refused(pipe):
    r, _ = pipe

    async def main():
        with yieldio.move_on_after(0.01) as scope:
            await yieldio.wait_readable(r)
        assert scope.cancelled_caught
        with pytest.raises(TypeError, match="fileno"):
            await yieldio.wait_readable("not an fd")
        closed = socket.socket()
        closed.close()
        with pytest.raises(yieldio.ClosedResourceError):
            await yieldio.wait_readable(closed)
        # After the cancelled wait, the fd is free for another one.
        with yieldio.move_on_after(0.01):
            await yieldio.wait_readable(r)

    yieldio.run(main)


def test_outside_a_run():
    with pytest.raises(RuntimeError, match="yieldio.run"):
        yieldio.wait_readable(0).send(None)
    yieldio.notify_closing(0)  # a no-op outside a run (a finalizer may call it)


def test_a_closed_file_object_is_a_closed_resource(tmp_path):
    f = open(tmp_path / "x", "wb")  # noqa: SIM115
    f.close()

    async def main():
        with pytest.raises(yieldio.ClosedResourceError):
            await yieldio.wait_readable(f)  # fileno() of a closed file raises ValueError
        with pytest.raises(yieldio.ClosedResourceError):
            await yieldio.wait_writable(f)

    yieldio.run(main)


@pytest.mark.timeout(10)
def test_an_fd_closed_without_notify_closing_while_a_dup_is_open_is_a_clear_error():
    # epoll watches the open file: with a duplicate still open it keeps
    # reporting it under the closed number, which can no longer be
    # unregistered. The run must say so, not die on a bare EBADF (or spin).
    async def main():
        a, b = socket.socketpair()
        keep = -1
        try:
            b.send(b"x")
            await yieldio.wait_readable(a)  # the registration outlives the wait
            a.recv(1)
            keep = os.dup(a.fileno())
            a.close()  # no notify_closing
            b.send(b"more")  # the old file becomes readable again
            await yieldio.sleep(0.05)
        finally:
            if keep >= 0:
                os.close(keep)
            b.close()

    with pytest.raises(RuntimeError, match=r"closed while yieldio still watched it.*notify_closing"):
        yieldio.run(main)


@pytest.mark.timeout(10)
def test_notify_closing_before_close_keeps_a_dup_from_haunting_the_run():
    async def main():
        a, b = socket.socketpair()
        b.send(b"x")
        await yieldio.wait_readable(a)
        a.recv(1)
        keep = os.dup(a.fileno())
        yieldio.notify_closing(a)  # as the docs ask
        a.close()
        b.send(b"more")
        await yieldio.sleep(0.05)
        os.close(keep)
        b.close()
        return "ok"

    assert yieldio.run(main) == "ok"


def test_a_refused_wait_leaves_no_registration_entry_behind(tmp_path):
    # epoll refuses a regular file (EPERM) and a closed fd (EBADF); the
    # kernel's per-fd record made for that wait must go with the refusal.
    path = tmp_path / "plain.txt"
    path.write_bytes(b"x")

    async def main():
        k = yieldio._state.local.kernel
        with open(path, "rb") as f:
            with pytest.raises(PermissionError):
                await yieldio.wait_readable(f.fileno())
            assert f.fileno() not in k.fds
        r, w = os.pipe()
        os.close(r)
        os.close(w)
        with pytest.raises(OSError):
            await yieldio.wait_writable(w)
        assert w not in k.fds

    yieldio.run(main)
