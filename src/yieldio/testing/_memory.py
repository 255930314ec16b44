"""In-memory byte streams: two connected :class:`MemoryStream` ends, no sockets.

``memory_stream_pair()`` gives two :class:`~yieldio.Stream` objects wired
back to back through two bounded buffers (one per direction). They behave
like a socket pair as far as the Stream interface can tell:

* writers block while the peer's buffer is full, so memory stays bounded;
* ``send_eof()`` half-closes: the peer reads what is buffered, then ``b""``;
* ``aclose()`` is idempotent; afterwards every operation on that end raises
  :class:`~yieldio.ClosedResourceError`, a task blocked on it is woken with
  that error, the peer reads EOF and the peer's writes fail with
  :class:`BrokenPipeError`;
* one reader and one writer at a time (:class:`~yieldio.BusyResourceError`);
* a cancelled blocked read loses no data: bytes are taken from the buffer
  only by a reader that is actually running.

The waiting is the kernel's own primitive (park + reschedule), so memory
streams take part in deadlock detection, autojump and seeded schedules like
any other wait. :mod:`yieldio.testing._simnet` builds its TCP model on the
same pipe by overriding how bytes travel (latency, bandwidth, faults).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from .. import _state
from .._exceptions import BusyResourceError, ClosedResourceError
from .._stream import DEFAULT_READ_SIZE, BrokenStreamError, Stream, byte_view
from .._traps import PARK, SCHEDULE
from .._typing import awaitable

if TYPE_CHECKING:
    import random

    from .._kernel import Kernel
    from .._task import Task

__all__ = ["MemoryStream", "memory_stream_pair"]


def _fast_point(k: Kernel) -> bool:
    """The counted schedule point after an operation that did not wait.

    Returns True when the caller must ``yield SCHEDULE`` now: at the
    ``FAST_PATH_BUDGET``-th in a row (see the kernel), and every time in a seeded run (so seeds
    explore the interleavings around every stream operation).
    """
    k.fast_budget -= 1
    if k.fast_budget <= 0:
        k.fast_budget = k.fast_budget_full
        return True
    return False


def _kernel() -> Kernel:
    try:
        return _state.local.kernel  # type: ignore[no-any-return]
    except AttributeError:
        _state.outside_run()


class _Pipe:
    """One direction of a stream: bytes written at one end, read at the other.

    ``buf`` holds bytes that have *arrived* and wait to be read. The writer
    may put at most ``capacity`` bytes in the pipe (arrived + in transit,
    see :meth:`pending`) before it blocks. The pipe is also the wait object
    of the task parked on it (``reader`` or ``writer``), hence the
    ``_abort_wait`` / ``_describe_wait`` methods.
    """

    __slots__ = ("buf", "capacity", "eof", "write_closed", "read_closed", "reset", "reader",
                 "writer", "name", "reverse", "__weakref__")

    def __init__(self, capacity: int, name: str = "memory stream") -> None:
        self.buf = bytearray()
        self.capacity = capacity
        self.eof = False            # the reader has been told: no more data
        self.write_closed = False   # the writer end sent EOF or closed
        self.read_closed = False    # the reader end closed: arriving data is dropped
        self.reset = False          # connection reset: both directions fail
        self.reader: Task | None = None
        self.writer: Task | None = None
        self.name = name
        self.reverse: _Pipe | None = None  # the other direction of the same stream

    # -- what subclasses change -----------------------------------------------
    def pending(self) -> int:
        """Bytes the writer has put in that the reader has not consumed."""
        return len(self.buf)

    def push(self, data: bytes) -> None:
        """Hand ``data`` (at most the free room) to the pipe; deliver it now."""
        self.buf += data
        self.wake_reader()

    def close_write(self) -> None:
        """The writer is done: the reader gets EOF after the buffered data."""
        if self.write_closed:
            return
        self.write_closed = True
        self.eof = True
        self.wake_reader()

    def close_read(self) -> bool:
        """The reader end is gone: drop buffered data, fail the writer.

        Returns True if unread data was dropped (TCP turns that into a reset).
        """
        dropped = bool(self.buf)
        self.read_closed = True
        self.buf.clear()
        self.wake_writer_error(BrokenPipeError("the other end of the stream was closed"))
        return dropped

    def consumed(self) -> None:
        """The reader took bytes: a blocked writer may have room now."""
        if self.writer is not None and self.pending() < self.capacity:
            self.wake_writer()

    # -- waking -----------------------------------------------------------------
    def wake_reader(self) -> None:
        task = self.reader
        if task is not None:
            self.reader = None
            task._kernel.reschedule(task)

    def wake_writer(self) -> None:
        task = self.writer
        if task is not None:
            self.writer = None
            task._kernel.reschedule(task)

    def wake_reader_error(self, exc: BaseException) -> None:
        task = self.reader
        if task is not None:
            self.reader = None
            task._kernel.reschedule_error(task, exc)

    def wake_writer_error(self, exc: BaseException) -> None:
        task = self.writer
        if task is not None:
            self.writer = None
            task._kernel.reschedule_error(task, exc)

    def do_reset(self) -> None:
        """Reset this direction: data is lost, both ends' operations fail."""
        self.reset = True
        self.buf.clear()
        self.wake_reader_error(ConnectionResetError("connection reset by peer"))
        self.wake_writer_error(ConnectionResetError("connection reset by peer"))

    # -- wait protocol ------------------------------------------------------------
    def _abort_wait(self, task: Task) -> bool:
        if self.reader is task:
            self.reader = None
            return True
        if self.writer is task:
            self.writer = None
            return True
        return False

    def _describe_wait(self, task: Task) -> str:
        if self.reader is task:
            return f"receive on {self.name}"
        return f"send on {self.name} ({self.pending()}/{self.capacity} bytes buffered)"


class MemoryStream(Stream):
    """One end of an in-memory byte stream; create pairs with :func:`memory_stream_pair`.

    ::

        a, b = yieldio.testing.memory_stream_pair()
        await a.write(b"ping\\n")
        assert await b.readline() == b"ping\\n"
    """

    def __init__(self, incoming: _Pipe, outgoing: _Pipe, *, chunking: bool = False,
                 rng: Any = None) -> None:
        super().__init__()
        self._in = incoming
        self._out = outgoing
        self._receiving = False
        self._sending = False
        self._eof_sent = False
        self._pushed = 0  # bytes the current send_all has handed over so far
        self._chunking = chunking
        # A callable returning the Random that picks read sizes (None: the
        # running kernel's seeded Random, else no splitting).
        self._rng = rng

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self._in.name} {state}>"

    # -- the four primitives -------------------------------------------------
    async def receive_some(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        """Return 1..``max_bytes`` bytes as soon as some are buffered; ``b""`` at EOF.

        ::

            data = await stream.receive_some(4096)
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if self._closed:
            raise ClosedResourceError("this stream is closed")
        if self._receiving:
            raise BusyResourceError("another task is already receiving on this stream")
        self._receiving = True
        try:
            return await self._receive(max_bytes)  # type: ignore[no-any-return]
        finally:
            self._receiving = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``, waiting while the peer's buffer is full.

        ::

            await stream.send_all(b"hello")
        """
        if self._closed:
            raise ClosedResourceError("this stream is closed")
        if self._eof_sent:
            raise ClosedResourceError("cannot send after send_eof()")
        if self._sending:
            raise BusyResourceError("another task is already sending on this stream")
        # Copy once: the caller may reuse its buffer as soon as we return
        # (or even while we wait for room). Through a memoryview, which only
        # bytes-like objects give: bytes(5) is five NUL bytes.
        data = bytes(byte_view(data))
        self._sending = True
        try:
            await self._send(data)
        finally:
            self._sending = False

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data`` (see :meth:`Stream.write`).

        Only a write that fails or is cancelled *after* handing over some
        bytes breaks the stream; one rejected up front (busy, closed) or
        cancelled before any byte moved leaves it intact.
        """
        if self._closed:
            raise ClosedResourceError("this stream is closed")
        if self._write_broken:
            raise BrokenStreamError("a previous write on this stream was interrupted")
        if self._eof_sent:
            raise ClosedResourceError("cannot send after send_eof()")
        if self._writing or self._sending:
            raise BusyResourceError("another task is already writing to this stream")
        self._writing = True
        # _pushed counts the bytes *this* write hands over: reset it here, since
        # send_all can fail before _send does (a str, a pending cancellation)
        # and the count of the previous, complete write must not look partial.
        self._pushed = 0
        try:
            await self.send_all(data)
        except BaseException:
            # Nothing moved (write("text"), cancelled before any room): the byte
            # stream is intact. Some bytes moved: the peer saw part of a message.
            if self._pushed:
                self._write_broken = True
            raise
        finally:
            self._writing = False

    async def send_eof(self) -> None:
        """Half-close: the peer reads EOF after the data already sent; idempotent.

        ::

            await stream.send_eof()
            reply = await stream.read()   # we can still receive
        """
        if self._closed:
            raise ClosedResourceError("this stream is closed")
        if self._sending or self._writing:
            raise BusyResourceError("another task is sending on this stream")
        task = _kernel().current
        if task._cancel_pending:  # as trio: a cancelled send_eof sends nothing
            task._raise_cancel()
        if not self._eof_sent:
            self._eof_sent = True
            self._out.close_write()
        await _cancel_point()

    async def aclose(self) -> None:
        """Close both directions (idempotent): the peer reads EOF, its writes fail.

        A task blocked on this end wakes with :class:`~yieldio.ClosedResourceError`.
        """
        if self._closed:
            return
        self._closed = True
        err = "the stream was closed by another task while it waited"
        self._in.wake_reader_error(ClosedResourceError(err))
        self._out.wake_writer_error(ClosedResourceError(err))
        self._close_pipes()

    def _close_pipes(self) -> None:
        self._out.close_write()
        self._in.close_read()

    # -- internals -------------------------------------------------------------
    def _chunk(self, n: int) -> int:
        """How many of the ``n`` available bytes this read returns."""
        if not self._chunking or n <= 1:
            return n
        rng: random.Random | None = self._rng() if self._rng is not None else _kernel().random
        if rng is None:
            return n
        # Half the time everything available, otherwise an arbitrary prefix:
        # protocol code must cope with any split, and with whole messages too.
        if rng.random() < 0.5:
            return n
        return rng.randint(1, n)

    @awaitable
    def _receive(self, max_bytes: int) -> Generator[Any, Any, bytes]:
        k = _kernel()
        task: Task = k.current  # type: ignore[assignment]
        if task._cancel_pending:
            task._raise_cancel()
        pipe = self._in
        waited = False
        while True:
            if self._closed:
                raise ClosedResourceError("this stream is closed")
            if pipe.reset:
                raise ConnectionResetError("connection reset by peer")
            buf = pipe.buf
            if buf:
                n = self._chunk(min(max_bytes, len(buf)))
                data = bytes(buf[:n])
                del buf[:n]
                pipe.consumed()
                if not waited and _fast_point(k):
                    yield SCHEDULE
                return data
            if pipe.eof:
                if not waited and _fast_point(k):
                    yield SCHEDULE
                return b""
            if pipe.reader is not None:
                raise BusyResourceError("another task is already receiving on this stream")
            pipe.reader = task
            task._wait = pipe
            yield PARK
            waited = True

    @awaitable
    def _send(self, data: bytes) -> Generator[Any, Any, None]:
        k = _kernel()
        task: Task = k.current  # type: ignore[assignment]
        if task._cancel_pending:
            task._raise_cancel()
        pipe = self._out
        self._pushed = pos = 0
        total = len(data)
        waited = False
        while pos < total:
            if self._closed:
                raise ClosedResourceError("this stream is closed")
            if pipe.reset:
                raise ConnectionResetError("connection reset by peer")
            if pipe.read_closed and not self._peer_close_is_silent():
                raise BrokenPipeError("the other end of the stream was closed")
            room = pipe.capacity - pipe.pending()
            if room > 0:
                chunk = data[pos:pos + room] if pos or room < total else data
                pos += len(chunk)
                self._pushed = pos
                pipe.push(chunk)
                continue
            pipe.writer = task
            task._wait = pipe
            yield PARK
            waited = True
        if not waited and _fast_point(k):
            yield SCHEDULE

    def _peer_close_is_silent(self) -> bool:
        """Whether writing to a closed peer is accepted (TCP: the peer answers with RST later)."""
        return False


@awaitable
def _cancel_point() -> Generator[Any, Any, None]:
    """Check for cancellation and take the counted schedule point."""
    k = _kernel()
    task: Task = k.current  # type: ignore[assignment]
    if task._cancel_pending:
        task._raise_cancel()
    if _fast_point(k):
        yield SCHEDULE


def memory_stream_pair(max_buffer: int = 65536, *, chunking: bool = False
                       ) -> tuple[MemoryStream, MemoryStream]:
    """Two connected in-memory streams; what one sends, the other receives.

    ``max_buffer`` bounds the bytes buffered in each direction (a writer
    waits for the reader beyond it). With ``chunking=True`` and a seeded run
    (``yieldio.run(main, seed=N)``), reads return arbitrary splits of the
    buffered bytes, chosen by the run's seeded random generator.

    ::

        async def main():
            a, b = yieldio.testing.memory_stream_pair()
            async with a, b:
                await a.write(b"hello")
                await a.send_eof()
                assert await b.read() == b"hello"
                assert await b.read() == b""

        yieldio.run(main)
    """
    if not isinstance(max_buffer, int) or max_buffer < 1:
        raise ValueError(f"max_buffer must be an int >= 1, not {max_buffer!r}")
    ab = _Pipe(max_buffer, "memory stream a->b")
    ba = _Pipe(max_buffer, "memory stream b->a")
    ab.reverse = ba
    ba.reverse = ab
    a = MemoryStream(ba, ab, chunking=chunking)
    b = MemoryStream(ab, ba, chunking=chunking)
    return a, b
