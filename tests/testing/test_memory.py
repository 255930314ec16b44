"""memory_stream_pair(): in-memory Streams that pass the conformance suite."""

from __future__ import annotations

import functools

import pytest

import yieldio
from yieldio.testing import (
    MemoryStream,
    VirtualClock,
    check_stream,
    memory_stream_pair,
    wait_all_tasks_blocked,
)


def vrun(fn, *args, **kw):
    return yieldio.run(fn, *args, clock=VirtualClock(autojump=True), **kw)


async def default_pair():
    return memory_stream_pair()


async def small_chunked_pair():
    return memory_stream_pair(100, chunking=True)


def test_conformance_default():
    ran = vrun(check_stream, default_pair)
    assert "cancelled_read_loses_no_data" in ran and len(ran) == 14


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_conformance_small_buffer_arbitrary_splits(seed):
    vrun(check_stream, small_chunked_pair, seed=seed)


def test_is_a_stream():
    a, b = memory_stream_pair()
    assert isinstance(a, yieldio.Stream) and isinstance(b, MemoryStream)
    assert "open" in repr(a)


def test_bad_max_buffer():
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError):
            memory_stream_pair(bad)


def test_writer_blocks_when_the_buffer_is_full():
    async def main():
        a, b = memory_stream_pair(10)
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(a.send_all, b"x" * 25)
            await wait_all_tasks_blocked()
            assert not t.done()
            assert "10/10 bytes buffered" in t.waiting_on._describe_wait(t)
            assert await b.read_exactly(25) == b"x" * 25
        await a.aclose()
        await b.aclose()

    vrun(main)


def test_peer_close_gives_broken_pipe_to_writers():
    async def main():
        a, b = memory_stream_pair()
        await a.send_all(b"bye")
        await b.aclose()
        with pytest.raises(BrokenPipeError):
            await a.send_all(b"more")
        # a writer blocked when the peer closes wakes with it too
        c, d = memory_stream_pair(4)
        errors = []

        async def writer():
            try:
                await c.send_all(b"123456789")
            except BrokenPipeError as exc:
                errors.append(exc)

        async with yieldio.TaskGroup() as tg:
            tg.spawn(writer)
            await wait_all_tasks_blocked()
            await d.aclose()
        assert len(errors) == 1

    vrun(main)


def test_read_from_closed_peer_returns_buffered_data_then_eof():
    async def main():
        a, b = memory_stream_pair()
        await a.send_all(b"last")
        await a.aclose()
        assert await b.read() == b"last"
        assert await b.read() == b""

    vrun(main)


def test_cancelled_write_before_any_byte_keeps_the_stream_usable():
    async def main():
        a, b = memory_stream_pair(4)
        await a.send_all(b"full")        # the buffer is full now
        with yieldio.move_on_after(1):
            await a.write(b"blocked")    # cancelled before a byte moved
        assert await b.read_exactly(4) == b"full"
        await a.write(b"ok")             # still usable
        assert await b.read_exactly(2) == b"ok"

    vrun(main)


def test_cancelled_write_after_some_bytes_breaks_the_stream():
    async def main():
        a, b = memory_stream_pair(4)
        with yieldio.move_on_after(1):
            await a.write(b"0123456789")  # 4 bytes moved, then blocked
        with pytest.raises(yieldio.BrokenStreamError):
            await a.write(b"x")
        assert await b.read_exactly(4) == b"0123"

    vrun(main)


def test_write_cancelled_on_entry_after_a_full_write_keeps_the_stream_usable():
    # The byte count of the previous, complete write must not make a write
    # that was cancelled before it moved anything look like a partial one.
    async def main():
        a, b = memory_stream_pair()
        await a.write(b"abc")
        with yieldio.CancelScope() as scope:
            scope.cancel()
            await a.write(b"def")        # cancelled on entry: nothing moved
        assert scope.cancelled_caught
        await a.write(b"ghi")            # not BrokenStreamError
        assert await b.read_exactly(6) == b"abcghi"

    vrun(main)


def test_write_of_text_is_refused_and_leaves_the_stream_usable():
    async def main():
        a, b = memory_stream_pair()
        await a.write(b"abc")
        with pytest.raises(TypeError):
            await a.write("text")        # type: ignore[arg-type]
        await a.write(b"def")
        assert await b.read_exactly(6) == b"abcdef"

    vrun(main)


def test_send_eof_then_send_is_an_error():
    async def main():
        a, b = memory_stream_pair()
        await a.send_eof()
        with pytest.raises(yieldio.ClosedResourceError, match="send_eof"):
            await a.write(b"x")
        with pytest.raises(yieldio.ClosedResourceError, match="send_eof"):
            await a.send_all(b"x")

    vrun(main)


def test_receive_some_validates_max_bytes():
    async def main():
        a, b = memory_stream_pair()
        with pytest.raises(ValueError):
            await a.receive_some(0)

    vrun(main)


def test_both_sides_reading_is_a_deadlock_not_a_hang():
    async def main():
        a, b = memory_stream_pair()
        async with yieldio.TaskGroup() as tg:
            tg.spawn(a.receive_some)
            tg.spawn(b.receive_some)

    with pytest.raises(yieldio.Deadlock, match="receive on memory stream"):
        vrun(main)


def test_chunking_splits_reads_reproducibly_by_seed():
    async def main():
        a, b = memory_stream_pair(chunking=True)
        await a.send_all(bytes(range(200)) * 10)
        await a.send_eof()
        sizes = []
        while data := await b.receive_some(1000):
            sizes.append(len(data))
        assert sum(sizes) == 2000
        return sizes

    runs = {tuple(vrun(main, seed=s)) for s in range(5)}
    assert len(runs) > 1                      # different seeds, different splits
    assert vrun(main, seed=3) == vrun(main, seed=3)
    assert vrun(main) == [1000, 1000]         # unseeded: no splitting


def test_cancelled_blocked_read_then_data():
    async def main():
        a, b = memory_stream_pair()
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(b.read_exactly, 3)
            await wait_all_tasks_blocked()
            t.cancel()
        await a.write(b"abc")
        assert await b.read_exactly(3) == b"abc"

    vrun(main)


def test_using_a_stream_outside_a_run_is_a_clear_error():
    a, b = memory_stream_pair()
    with pytest.raises(RuntimeError, match="yieldio"):
        a.send_all(b"x").send(None)


def test_send_eof_while_a_send_waits_for_room_is_refused():
    async def main():
        a, b = memory_stream_pair(4)
        async with yieldio.TaskGroup() as tg:
            tg.spawn(a.send_all, b"more than four bytes")
            await wait_all_tasks_blocked()
            with pytest.raises(yieldio.BusyResourceError, match="another task is sending"):
                await a.send_eof()
            received = b""
            while len(received) < 20:
                received += await b.receive_some()
        assert received == b"more than four bytes"

    vrun(main)


def test_receive_in_a_cancelled_scope_takes_nothing():
    async def main():
        a, b = memory_stream_pair()
        await a.send_all(b"kept")
        with yieldio.move_on_after(10) as scope:
            scope.cancel()
            await b.receive_some()
        assert scope.cancelled_caught
        assert await b.receive_some() == b"kept"

    vrun(main)


def test_send_eof_in_a_cancelled_scope_sends_nothing():
    # As trio's streams: a cancelled call does nothing, so the caller knows
    # the peer has not seen the EOF and may still send.
    async def main():
        a, b = memory_stream_pair()
        with yieldio.CancelScope() as scope:
            scope.cancel()
            await a.send_eof()
        assert scope.cancelled_caught
        await a.write(b"more")
        await a.send_eof()
        return await b.read(), await b.read()

    assert vrun(main) == (b"more", b"")


@pytest.mark.parametrize("max_buffer", [1, 3])
def test_conformance_with_a_buffer_smaller_than_the_checks_messages(max_buffer):
    # A stream may buffer fewer bytes than a message: check_stream's senders must
    # run concurrently with the reads that drain them, else the check hangs
    # (cancelled_read_loses_no_data sent "hello" before anyone read it).
    async def tiny_pair():
        return memory_stream_pair(max_buffer, chunking=True)

    bulk = ["ordered_delivery", "large_transfer_both_ways", "busy_send"]  # slow byte by byte
    ran = vrun(functools.partial(check_stream, tiny_pair, skip=bulk), seed=1)
    assert "cancelled_read_loses_no_data" in ran
