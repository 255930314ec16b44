"""Edge cases of fd waiting (_io) and name resolution (_resolve)."""

from __future__ import annotations

import socket

import pytest

import yieldio
from yieldio import _io
from yieldio import socket as ysocket
from yieldio._resolve import _numeric_getaddrinfo
from yieldio.testing import wait_all_tasks_blocked


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_waiting_on_a_closed_socket_is_a_closed_resource_error():
    async def main():
        a, b = socket.socketpair()
        b.close()
        a.close()
        for wait in (_io.wait_readable, _io.wait_writable):
            with pytest.raises(yieldio.ClosedResourceError, match="is closed"):
                await wait(a)
        _io.notify_closing(a)  # an already-closed socket: nothing to do

    yieldio.run(main)


def test_notify_closing_of_a_closed_file_object_is_a_no_op():
    async def main():
        f = open(__file__, "rb")  # noqa: SIM115
        f.close()
        _io.notify_closing(f)  # fileno() raises ValueError: ignored

    yieldio.run(main)


def test_second_writer_on_one_fd_is_busy(pair):
    a, b = pair
    while True:  # fill the send buffer, so that a waits to write
        try:
            a.send(b"x" * 65536)
        except BlockingIOError:
            break

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(_io.wait_writable, a)
            await wait_all_tasks_blocked()
            with pytest.raises(yieldio.BusyResourceError, match="already writing"):
                await _io.wait_writable(a)
            _io.notify_closing(a)  # fails the first writer's wait...
            tg.cancel()

    with pytest.raises(ExceptionGroup) as info:
        yieldio.run(main)
    assert info.group_contains(yieldio.ClosedResourceError)  # ...clearly


def test_io_waits_are_checkpoints(pair):
    a, b = pair

    async def main():
        for wait in (_io.wait_readable, _io.wait_writable, lambda _: _io.fast_checkpoint()):
            with yieldio.CancelScope() as scope:
                scope.cancel()
                await wait(b)
                raise AssertionError("not a checkpoint")
            assert scope.cancelled_caught
        with yieldio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(yieldio.Cancelled):
                _io.cancel_check()

    yieldio.run(main)


def test_io_and_resolver_outside_a_run_are_a_clear_error(pair):
    a, b = pair
    waits = [_io.wait_readable(a), _io.wait_writable(a), _io.fast_checkpoint(),
             ysocket.getaddrinfo("127.0.0.1", 80)]
    for wait in waits:
        with pytest.raises(RuntimeError, match=r"yieldio\.run\(\)"):
            wait.send(None)
    with pytest.raises(RuntimeError, match=r"yieldio\.run\(\)"):
        _io.cancel_check()
    _io.notify_closing(a)  # outside a run: a no-op


def test_getaddrinfo_takes_bytes_literals_and_refuses_other_types():
    async def main():
        infos = await ysocket.getaddrinfo(b"127.0.0.1", 80, type=socket.SOCK_STREAM)
        assert [sa for *_, sa in infos] == [("127.0.0.1", 80)]
        assert infos[0][0] is socket.AF_INET and infos[0][1] is socket.SOCK_STREAM
        with pytest.raises(TypeError):  # as socket.getaddrinfo(123, 80)
            await ysocket.getaddrinfo(123, 80)

    yieldio.run(main)


def test_non_ascii_bytes_are_no_ip_literal():
    # Not answered inline (nor a UnicodeDecodeError on the loop): the resolver decides.
    assert _numeric_getaddrinfo(b"\xff\xfe", 80) is None
    assert _numeric_getaddrinfo(b"::1", 80) is not None
