"""The Stream interface: a reliable, ordered byte stream, whatever carries it.

Every transport -- TCP and Unix sockets, TLS, subprocess pipes, the
in-memory network of :mod:`yieldio.testing` -- implements four primitives:

* ``receive_some(max_bytes)`` -> up to ``max_bytes`` bytes, ``b""`` at EOF;
* ``send_all(data)`` -> returns once all of ``data`` was handed to the
  transport;
* ``send_eof()`` -> half-close the sending direction;
* ``aclose()`` -> close both directions, release the resource.

:class:`Stream` builds the convenient methods (``read_exactly``,
``readline``, ``read_until``, ``async for``) on top, with one buffer, so
they behave identically on every transport. Servers, TLS and
``yieldio.http`` use only this interface.

Concurrency rules, as in trio: at most one task may receive and one task may
send at a time (:class:`BusyResourceError` otherwise); using a closed stream
raises :class:`ClosedResourceError`. A ``write`` that is cancelled part way
leaves the stream *broken for writing*: an unknown prefix was already sent,
so later writes raise :class:`BrokenStreamError` instead of corrupting the
byte stream. Every read is a checkpoint, also when it is served from the
buffer or at end of stream (and it checkpoints before taking any data).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from ._exceptions import BrokenResourceError, BusyResourceError, ClosedResourceError, IncompleteRead
from ._io import fast_checkpoint

__all__ = ["Stream", "BrokenStreamError", "DEFAULT_READ_SIZE"]

DEFAULT_READ_SIZE = 65536

#: What using a stream retired by start_tls() raises (see Stream._hand_over).
UPGRADED_MESSAGE = "this stream was upgraded with start_tls(): use the stream it returned"
INTERRUPTED_UPGRADE_MESSAGE = ("start_tls() on this stream was cancelled part way: the "
                               "connection is mid-handshake, neither plaintext nor TLS; "
                               "close it")


def _is_sendable(data: Any) -> bool:
    """Bytes-like and C-contiguous: what a write can send (``m[::2]`` is not)."""
    try:
        with memoryview(data) as view:
            return view.c_contiguous
    except TypeError:
        return False


def byte_view(data: Any) -> memoryview:
    """``memoryview(data)``, or a ``TypeError`` saying a stream sends bytes (``write("text")``)."""
    try:
        return memoryview(data)
    except TypeError:
        hint = ": encode it first, as data.encode()" if isinstance(data, str) else ""
        raise TypeError(f"a stream sends bytes, bytearray or memoryview, not "
                        f"{type(data).__name__}{hint}") from None


class BrokenStreamError(BrokenResourceError):
    """The stream can no longer be written: a previous write was interrupted.

    A kind of :class:`BrokenResourceError`.

    ::

        try:
            await stream.send_all(data)
        except yieldio.BrokenStreamError:
            await stream.aclose()
    """


class Stream(ABC):
    """A bidirectional byte stream (subclasses provide the transport).

    ::

        stream = await yieldio.open_tcp_stream("example.org", 80)
        async with stream:
            await stream.write(b"HEAD / HTTP/1.0\\r\\n\\r\\n")
            status = await stream.readline()
    """

    def __init__(self) -> None:
        self._rbuf = bytearray()
        self._eof = False
        self._reading = False
        self._writing = False
        self._closed = False
        self._write_broken = False

    # -- primitives (override) -------------------------------------------
    @abstractmethod
    async def receive_some(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        """Return up to ``max_bytes`` (at least 1) bytes, or ``b""`` at EOF."""
        ...

    @abstractmethod
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``."""
        ...

    @abstractmethod
    async def send_eof(self) -> None:
        """Half-close: the peer reads EOF; we can still read."""
        ...

    async def aclose(self) -> None:
        """Close the stream (idempotent)."""
        self._closed = True

    # -- shared machinery -------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise self._closed_error()

    def _enter_read(self) -> None:
        if self._closed:
            raise self._closed_error()
        if self._reading:
            raise BusyResourceError("another task is already reading from this stream")
        self._reading = True

    async def _fill(self, max_bytes: int) -> bool:
        """Receive more into the buffer; False at EOF."""
        if self._eof:
            # No receive_some (the checkpoint) below: take one here, so a
            # loop reading a finished stream can be cancelled and is fair.
            await fast_checkpoint()
            return False
        data = await self.receive_some(max_bytes)
        if not data:
            self._eof = True
            return False
        self._rbuf += data
        return True

    # -- reading ----------------------------------------------------------
    async def read(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        """Return up to ``max_bytes`` bytes as soon as any are available; ``b""`` at EOF."""
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        self._enter_read()
        try:
            if self._rbuf or self._eof:
                # Served without receive_some: checkpoint here, and before
                # taking the data, so that a cancellation loses nothing.
                await fast_checkpoint()
                if self._rbuf:
                    data = bytes(self._rbuf[:max_bytes])
                    del self._rbuf[:max_bytes]
                    return data
                return b""
            data = await self.receive_some(max_bytes)
            if not data:
                self._eof = True
            return data
        finally:
            self._reading = False

    async def read_exactly(self, n: int) -> bytes:
        """Return exactly ``n`` bytes; :class:`IncompleteRead` (with the partial data) at EOF."""
        if n < 0:
            raise ValueError("n must be >= 0")
        self._enter_read()
        try:
            if len(self._rbuf) >= n:
                await fast_checkpoint()  # served from the buffer: still a checkpoint
            while len(self._rbuf) < n:
                if not await self._fill(max(n - len(self._rbuf), DEFAULT_READ_SIZE)):
                    partial = bytes(self._rbuf)
                    self._rbuf.clear()
                    raise IncompleteRead(partial, n)
            data = bytes(self._rbuf[:n])
            del self._rbuf[:n]
            return data
        finally:
            self._reading = False

    async def read_until(self, separator: bytes = b"\n", max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        """Return data up to and including ``separator``.

        Raises :class:`IncompleteRead` at EOF before the separator (with what
        was read), and ``ValueError`` if ``max_bytes`` pass without it (the
        data stays buffered).
        """
        if not separator:
            raise ValueError("separator must not be empty")
        self._enter_read()
        try:
            start = 0
            received = False
            while True:
                i = self._rbuf.find(separator, start)
                if i >= 0:
                    end = i + len(separator)
                    if end > max_bytes:
                        raise ValueError(f"separator not found within {max_bytes} bytes")
                    if not received:
                        await fast_checkpoint()  # served from the buffer: still a checkpoint
                    data = bytes(self._rbuf[:end])
                    del self._rbuf[:end]
                    return data
                if len(self._rbuf) >= max_bytes:
                    raise ValueError(f"separator not found within {max_bytes} bytes")
                start = max(0, len(self._rbuf) - len(separator) + 1)
                received = True
                if not await self._fill(DEFAULT_READ_SIZE):
                    partial = bytes(self._rbuf)
                    self._rbuf.clear()
                    raise IncompleteRead(partial, len(partial) + len(separator))
        finally:
            self._reading = False

    async def readline(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        """Return one line including ``b"\\n"``; at EOF, the last unterminated line or ``b""``."""
        try:
            return await self.read_until(b"\n", max_bytes)
        except IncompleteRead as e:
            return e.partial

    def lines(self, max_bytes: int = DEFAULT_READ_SIZE) -> _Lines:
        """Iterate over the lines of the stream, each with its ``b"\\n"``.

        ::

            async for line in stream.lines():
                print(line.decode().rstrip())

        The last unterminated line comes last; a line longer than
        ``max_bytes`` raises ``ValueError`` (as :meth:`readline` does).
        ``async for data in stream`` gives chunks as they arrive instead,
        as trio's streams do; asyncio's ``StreamReader`` gives lines, so
        code moved from asyncio wants this method.
        """
        return _Lines(self, max_bytes)

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> bytes:
        data = await self.read()
        if not data:
            raise StopAsyncIteration
        return data

    # -- writing ----------------------------------------------------------
    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``; returns when it was handed to the transport.

        Memory stays bounded with a slow reader: ``write`` waits for room
        instead of buffering without limit.
        """
        if self._closed:
            raise self._closed_error()
        if self._write_broken:
            raise BrokenStreamError("a previous write on this stream was interrupted")
        if self._writing:
            raise BusyResourceError("another task is already writing to this stream")
        self._writing = True
        try:
            await self.send_all(data)
        except BaseException as exc:
            self._write_failed(data, exc)
            raise
        finally:
            self._writing = False

    def _write_failed(self, data: Any, exc: BaseException) -> None:
        """Mark the stream broken for writing unless ``exc`` refused the write whole.

        BusyResourceError, ClosedResourceError, and a TypeError for data that
        cannot be sent (``write("text")``, a non-contiguous memoryview) come
        before anything was sent: the byte stream is intact. Anything else
        may have sent a prefix.
        """
        if isinstance(exc, (BusyResourceError, ClosedResourceError)):
            return
        if isinstance(exc, TypeError) and not _is_sendable(data):
            return
        self._write_broken = True

    # -- TLS --------------------------------------------------------------------
    #: The stream that took over this one's connection when start_tls()
    #: upgraded it (see :meth:`_hand_over`). A class attribute, so streams
    #: that are never upgraded pay nothing for it.
    _moved_to: Stream | None = None
    #: start_tls() was cancelled part way: retired, mid-handshake (class attribute, as above).
    _tls_interrupted = False

    async def start_tls(self, context: Any = None, *, server_side: bool = False,
                        server_hostname: str | None = None) -> Stream:
        """Upgrade to TLS; use the returned stream from now on.

        ::

            stream = await stream.start_tls(server_hostname="mail.example.org")

        After a successful upgrade this stream object is retired (on socket
        streams): reading or writing it raises :class:`ClosedResourceError`,
        since raw bytes would corrupt the TLS session, while ``aclose()``
        still closes the connection. A failed handshake (``ssl.SSLError``)
        leaves it as it was; one cancelled part way retires it too, since the
        connection is then mid-handshake.
        """
        from .net._start_tls import start_tls  # lazy: no ssl import for programs without TLS

        result: Stream = await start_tls(self, context, server_side=server_side,
                                         server_hostname=server_hostname)
        return result

    def _hand_over(self) -> Stream | None:
        """Move this stream's connection to a new object and retire this one (private).

        :func:`yieldio.net.start_tls` calls it once the handshake succeeded
        and gives the new object to TLS; this one then raises
        :class:`ClosedResourceError` (see :meth:`_closed_error`) and its
        ``aclose()`` closes ``_moved_to``. Retiring an object this way costs
        the read and write fast paths nothing: they already leave it for
        ``_closed``. The default returns None: this kind of stream is not
        retired and TLS uses it directly, as :meth:`TLSStream.wrap` does.
        """
        return None

    def _take_back(self, moved: Stream) -> Stream:
        """Undo :meth:`_hand_over` (``TLSStream.unwrap``): return the stream to use."""
        return moved

    def _closed_error(self) -> ClosedResourceError:
        """The error for using this closed stream; says so if start_tls() retired it.

        Built only on the failure path, so the open path never pays for it.
        """
        if self._tls_interrupted:
            return ClosedResourceError(INTERRUPTED_UPGRADE_MESSAGE)
        if self._moved_to is not None:
            return ClosedResourceError(UPGRADED_MESSAGE)
        return ClosedResourceError("this stream is closed")

    # -- context manager ------------------------------------------------------
    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        """True once the stream is closed (``aclose()`` or the resource under it).

        ::

            await stream.aclose()
            assert stream.closed
        """
        return self._closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Transport details: ``"peername"``, ``"sockname"``, ``"socket"``, ``"ssl_object"``..."""
        return default


class _Lines:
    """What :meth:`Stream.lines` returns: an async iterator over lines.

    A class rather than an async generator, so that leaving the loop early
    leaves nothing to finalize.
    """

    __slots__ = ("_stream", "_max_bytes")

    def __init__(self, stream: Stream, max_bytes: int) -> None:
        self._stream = stream
        self._max_bytes = max_bytes

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> bytes:
        line = await self._stream.readline(self._max_bytes)
        if not line:
            raise StopAsyncIteration
        return line
