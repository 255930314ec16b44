"""WebSocket connections (RFC 6455) on wsproto, for servers and clients.

Server side, inside an HTTP application::

    async def app(request):
        ws = await request.accept_websocket()
        async for message in ws:              # str or bytes; ends at the close
            await ws.send(f"echo: {message}")

Client side::

    async with yieldio.http.connect_websocket("ws://127.0.0.1:8000/chat") as ws:
        await ws.send("hello")
        print(await ws.receive())

A background task reads the connection: it answers pings as they arrive
(even while the application is busy elsewhere), reassembles fragmented
messages, enforces the message size limit (close code 1009) and takes part
in the closing handshake. Received messages wait in a small queue; when it
is full the reader stops reading, so a fast sender is slowed down by TCP
instead of filling memory -- and pings and pongs queued behind those
messages wait too, so keepalive (either side's) can count a live peer whose
messages are not received for ``ping_timeout`` seconds as gone.

On the server, each write is bounded by ``Limits.write_timeout``: a peer
that reads nothing for that long has its connection aborted (no Close frame
can reach it) and the WebSocket ends with code 1011.

Closing (``await ws.close(code, reason)``) follows the RFC: send a Close
frame, wait (at most ``close_timeout``) for the peer's Close, then the
server closes the TCP connection first and the client waits for that.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Iterator
from typing import Any

import wsproto.events as wse
from wsproto.connection import Connection, ConnectionState
from wsproto.utilities import LocalProtocolError

from .._cancel import CancelScope
from .._exceptions import Cancelled, ClosedResourceError, QueueClosed
from .._taskgroup import TaskGroup
from .._timeouts import fail_after, move_on_after
from ..net._stream import BrokenStreamError, Stream
from ..queue import Queue
from ..sync import Event, Lock
from ._errors import WebSocketClosed
from ._headers import Headers

__all__ = ["WebSocket"]

logger = logging.getLogger("yieldio.http")

#: Messages that may wait for the application before the reader pauses.
QUEUE_SIZE = 16
#: A longer message is sent in fragments of this many bytes (characters for a str).
FRAGMENT_SIZE = 256 * 1024
#: Pongs owed at most: a peer that pings faster than we can answer gets
#: answers to its latest pings only (RFC 6455, section 5.5.3, allows that).
PONGS_OWED_MAX = 16
_OPEN = ConnectionState.OPEN
_IO_ERRORS = (OSError, ClosedResourceError, BrokenStreamError, EOFError)


class WebSocket:
    """One WebSocket connection (get one from ``request.accept_websocket()`` or
    :func:`connect_websocket`).

    ::

        await ws.send("text")            # a str is a text message
        await ws.send(b"\\x00\\x01")       # bytes are a binary message
        message = await ws.receive()     # str or bytes
        async for message in ws: ...     # until the connection closes
        await ws.close(1000, "bye")

    After the close, ``send`` and ``receive`` raise :class:`WebSocketClosed`
    (``close_code``/``close_reason`` say how it ended: the peer's code, or
    1006 if the connection was lost without a Close frame).
    """

    def __init__(self, stream: Stream, connection: Connection, *, client: bool,
                 max_message_size: int = 1 << 20, close_timeout: float = 5.0,
                 subprotocol: str | None = None, path: str = "/",
                 headers: Headers | None = None, ping_interval: float | None = None,
                 ping_timeout: float | None = None,
                 write_timeout: float | None = None) -> None:
        self._stream = stream
        self._ws = connection
        self._client = client
        self.max_message_size = max_message_size
        self.close_timeout = close_timeout
        #: Keepalive: a ping every ``ping_interval`` seconds (None: none), and
        #: the connection counts as lost if no pong comes in ``ping_timeout``.
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        #: A write not done in this many seconds aborts the connection (None: no limit).
        self.write_timeout = write_timeout
        #: The subprotocol agreed in the handshake (None if none).
        self.subprotocol = subprotocol
        #: The request path of the handshake.
        self.path = path
        #: The handshake's headers: the request's (server side) or the response's (client side).
        self.headers = headers if headers is not None else Headers()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._messages: Queue = Queue(QUEUE_SIZE)
        # Two locks: one per frame, and one per data message (all its
        # fragments). Control frames (pings, pongs, Close) take only the
        # first, so they go out between the fragments of a big message.
        self._send_lock = Lock()
        self._message_lock = Lock()
        # Pongs the reader owes, sent by its helper task (see _pong_writer).
        self._pongs_owed: deque[bytes] = deque(maxlen=PONGS_OWED_MAX)
        self._pong_wanted = Event()
        self._cut_off = False  # _write_cut_off() ran
        self._finished = Event()  # the reader is done: close seen or connection lost
        # The pings waiting for their pong, by payload (two pings may share one).
        self._pongs: dict[bytes, list[Event]] = {}
        self._reader_scope: CancelScope | None = None
        self._write_scope: CancelScope | None = None  # the write in progress, if any

    def __repr__(self) -> str:
        state = "open" if self.close_code is None else f"closed {self.close_code}"
        return f"<WebSocket {'client' if self._client else 'server'} {self.path} {state}>"

    @property
    def closed(self) -> bool:
        """True once a Close frame was sent or received, or the connection was lost."""
        return self.close_code is not None or self._ws.state is not _OPEN

    # -- sending ----------------------------------------------------------------------
    async def send(self, message: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message.

        Raises :class:`WebSocketClosed` if the connection is closing or closed.
        It waits while the peer reads slowly; cancelled after part of the
        message went out, it ends the connection (code 1006): nothing can
        follow half a message. A message longer than ``FRAGMENT_SIZE`` goes
        out in fragments, so sending it takes little memory beyond the
        message itself; the peer receives it whole.
        """
        if isinstance(message, str):
            kind: Any = wse.TextMessage
        elif isinstance(message, (bytes, bytearray, memoryview)):
            kind = wse.BytesMessage
            message = bytes(message)  # (the caller may reuse a bytearray once we wait)
        else:
            raise TypeError(f"a WebSocket message is str or bytes, not {type(message).__name__}")
        async with self._message_lock:  # (data frames of two messages must not mix)
            if len(message) <= FRAGMENT_SIZE:
                await self._send_event(kind(data=message), raise_closed=True)
                return
            started = False
            try:
                for fragment in _fragments(kind, message):
                    await self._send_event(fragment, raise_closed=True, started=started)
                    started = True
            except Cancelled:
                if started:
                    # Between two fragments (waiting for the send lock): the
                    # message is begun and can never be finished.
                    await self._write_cut_off()
                raise

    async def ping(self, payload: bytes = b"") -> None:
        """Send a ping and wait for its pong (wrap it in ``fail_after`` to time it out).

        ::

            with yieldio.fail_after(5):
                await ws.ping()
        """
        if not isinstance(payload, (bytes, bytearray)):
            raise TypeError(f"a ping payload is bytes, not {type(payload).__name__}")
        if len(payload) > 125:  # checked before the pong table remembers it
            raise ValueError("a ping payload is at most 125 bytes (RFC 6455, section 5.5)")
        payload = bytes(payload) or os.urandom(4)
        waiter = Event()
        waiters = self._pongs.setdefault(payload, [])
        waiters.append(waiter)
        try:
            await self._send_event(wse.Ping(payload=payload), raise_closed=True)
            await waiter.wait()
        finally:
            # Still listed: no pong came (cancelled, timed out, the send
            # failed, or woken by the connection's end): forget this ping.
            unanswered = self._pongs.get(payload) is waiters
            if unanswered:
                waiters.remove(waiter)
                if not waiters:
                    del self._pongs[payload]
        if unanswered:
            raise WebSocketClosed(self.close_code or 1006, self.close_reason or "")

    async def _send_event(self, event: wse.Event, *, raise_closed: bool,
                          started: bool = False) -> bool:
        """Send one frame; False (or :class:`WebSocketClosed`) if the connection is closing.

        ``started``: an earlier fragment of this message went out already.
        """
        async with self._send_lock:
            # (close_code: set by close() before its Close frame goes out, and
            # when the connection is lost, which wsproto's state does not
            # know.) A message cut short here is abandoned: a Close frame may
            # follow any whole frame.
            if ((self._ws.state is not _OPEN or self.close_code is not None)
                    and not isinstance(event, wse.CloseConnection)):
                if raise_closed:
                    raise WebSocketClosed(self.close_code or 1006, self.close_reason or "")
                return False
            try:
                data = self._ws.send(event)
            except LocalProtocolError:
                if raise_closed:
                    raise WebSocketClosed(self.close_code or 1006,
                                          self.close_reason or "") from None
                return False
            try:
                # In a scope _lost() cancels: once keepalive (or anything) has
                # given the connection up, a write stuck on a peer that reads
                # nothing must end too, not hold send() (and the lock) for ever.
                with move_on_after(self.write_timeout or math.inf) as scope:
                    self._write_scope = scope
                    try:
                        await self._stream.write(data)
                    finally:
                        self._write_scope = None
                if scope.cancelled_caught:
                    if not self._finished.is_set():
                        self._write_timed_out()  # the deadline, not _lost()
                    if raise_closed:
                        raise WebSocketClosed(self.close_code or 1006, self.close_reason or "")
                    return False
            except _IO_ERRORS as exc:
                self._lost()
                if raise_closed:
                    raise WebSocketClosed(1006, "connection lost") from exc
                return False
            except Cancelled:
                # Cancelled from outside (a timeout around send(), say), not by
                # the scope above. Part of the frame went out: the byte stream
                # is mid-frame for good (the Stream refuses more writes). Whole
                # fragments went out: it is mid-message, and no other message
                # may follow. Not a byte of a first fragment: wsproto already
                # counts the message as begun, and would send the next one as
                # its continuation -- unless told to forget it.
                if (self._stream._write_broken or started
                        or (_opens_a_message(event) and not _forget_message(self._ws))):
                    await self._write_cut_off()
                raise
        return True

    async def _write_cut_off(self) -> None:
        """A write was cancelled part way: the connection is lost, end it now.

        Why now: until the next write failed, the WebSocket looked open
        (``closed`` False, ``receive()`` waiting) while the peer waited for
        the rest of a frame that can never come. No Close frame is possible
        after half a frame; closing the transport lets the peer see 1006 at
        once instead of at its own timeout.
        """
        if self._cut_off:
            return  # (a fragment's send and the message's both saw the cancel)
        self._cut_off = True
        logger.info("WebSocket write cancelled part way: aborting (%r)", self)
        if self.close_code is None:
            self.close_code, self.close_reason = 1006, "send cancelled part way"
        self._lost()
        if self._reader_scope is not None:
            self._reader_scope.cancel()
        await self._stream.aclose()  # never raises Cancelled: safe in this handler

    def _write_timed_out(self) -> None:
        """The peer read nothing for ``write_timeout`` s: abort, as an HTTP write timeout does.

        No Close frame: the peer is not reading, and part of a frame may
        already be out. The reader's end closes the transport.
        """
        logger.info("WebSocket peer read nothing for %s s: aborting (%r)", self.write_timeout,
                    self)
        if self.close_code is None:
            self.close_code, self.close_reason = 1011, "write timeout"
        self._lost()
        if self._reader_scope is not None:
            self._reader_scope.cancel()

    # -- receiving ----------------------------------------------------------------------
    async def receive(self) -> str | bytes:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Raises :class:`WebSocketClosed` once the connection is closed (after
        the messages that arrived before the close were received).
        """
        try:
            return await self._messages.get()  # type: ignore[no-any-return]
        except QueueClosed:
            raise WebSocketClosed(self.close_code or 1006, self.close_reason or "") from None

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self._messages.get()  # type: ignore[no-any-return]
        except QueueClosed:
            raise StopAsyncIteration from None

    # -- closing ------------------------------------------------------------------------
    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` and ``reason``; idempotent.

        Sends the Close frame, waits up to ``close_timeout`` for the peer's
        answer, and closes the transport. Messages not yet received are
        dropped. ``code`` is 1000-1003, 1007-1014 or 3000-4999 (the others
        are reserved or invalid) and ``reason`` at most 123 bytes of UTF-8:
        anything else is a ``ValueError``.
        """
        if not _sendable_close_code(code):
            raise ValueError(f"WebSocket close code {code!r} cannot be sent: use 1000-1003, "
                             "1007-1014 or 3000-4999 (RFC 6455, section 7.4)")
        if len(reason.encode("utf-8")) > 123:
            raise ValueError("a WebSocket close reason is at most 123 bytes of UTF-8 "
                             f"(a Close frame holds 125), not {len(reason.encode())}")
        if self._ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            if self.close_code is None:
                self.close_code, self.close_reason = code, reason
            # Shielded and bounded, like the wait for the answer below: a
            # block left by cancellation (a timeout around ``async with
            # connect_websocket(...)``) still says goodbye with a Close frame
            # instead of leaving the peer to see 1006, and a peer that reads
            # nothing cannot hold close() for ever.
            with move_on_after(self.close_timeout, shield=True):
                await self._send_event(wse.CloseConnection(code=code, reason=reason or None),
                                       raise_closed=False)
        self._messages.close()  # unblock a reader waiting for room: drop the rest
        with move_on_after(self.close_timeout, shield=True):
            await self._finished.wait()
        await self._stream.aclose()

    def _lost(self) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = 1006, "connection lost"
        self._messages.close()
        self._finished.set()
        if self._write_scope is not None:
            self._write_scope.cancel()
        for waiters in self._pongs.values():
            for waiter in waiters:
                waiter.set()

    async def _finish(self, failed: bool = False) -> None:
        """The owner is done (handler returned, ``async with`` exited): close, stop reading."""
        try:
            if not self._finished.is_set():
                await self.close(1011 if failed else 1000,
                                 "internal error" if failed else "")
        finally:
            await self._stream.aclose()
            if self._reader_scope is not None:
                self._reader_scope.cancel()

    # -- keepalive ------------------------------------------------------------------------
    async def _keepalive(self) -> None:
        """Ping every ``ping_interval`` s; no pong within ``ping_timeout`` s: close with 1011.

        Why: a peer that vanishes without a FIN (a dropped Wi-Fi, a killed
        VM, a NAT that forgot the flow) leaves TCP silent for hours, and a
        handler in ``async for message in ws`` would wait for ever. Only
        traffic that needs an answer notices (``websockets`` and browsers'
        servers do the same, with the same 20 s defaults).
        """
        interval = self.ping_interval
        timeout = self.ping_timeout if self.ping_timeout is not None else math.inf
        assert interval is not None
        while True:
            with move_on_after(interval):
                await self._finished.wait()
                return  # closed or lost: nothing left to watch
            try:
                with fail_after(timeout):
                    await self.ping()
            except WebSocketClosed:
                return
            except TimeoutError:
                break
        logger.info("WebSocket peer did not answer a ping within %s s: closing (%r)",
                    timeout, self)
        # Say why, if the bytes can still go anywhere (bounded: the peer may
        # not be reading; not at all behind a write already stuck, which
        # _lost() then ends), then end the connection as lost.
        if self._write_scope is None:
            with move_on_after(self.close_timeout):
                await self._abort(1011, "keepalive ping timeout")
        elif self.close_code is None:
            self.close_code, self.close_reason = 1011, "keepalive ping timeout"
        self._lost()
        if self._reader_scope is not None:
            self._reader_scope.cancel()

    # -- the reader task ------------------------------------------------------------------
    async def _reader(self) -> None:
        """Read frames until the close: answer pings, queue messages, close on errors."""
        with CancelScope() as scope:
            self._reader_scope = scope
            try:
                async with TaskGroup() as helpers:
                    helpers.spawn(self._pong_writer, name=f"websocket pongs {self.path}")
                    try:
                        await self._read_loop()
                    finally:
                        helpers.cancel()
            except BaseExceptionGroup as group:  # (only the read loop can fail)
                errors, others = group.split(Exception)
                if others is not None:
                    raise others from None  # (KeyboardInterrupt, SystemExit: not ours to log)
                for exc in errors.exceptions if errors is not None else ():
                    if not isinstance(exc, _IO_ERRORS):
                        logger.error("WebSocket reader failed (%r)", self, exc_info=exc)
            except _IO_ERRORS:
                pass
            except Exception:
                logger.exception("WebSocket reader failed (%r)", self)
            finally:
                self._lost()
                if not self._client:
                    await self._stream.aclose()

    async def _pong_writer(self) -> None:
        """Send the pongs the reader owes, in order, as the send lock allows."""
        owed = self._pongs_owed
        while True:
            await self._pong_wanted.wait()
            self._pong_wanted.clear()
            while owed:
                if not await self._send_event(wse.Pong(payload=owed.popleft()),
                                              raise_closed=False):
                    return  # closing or lost: no more pongs

    async def _read_loop(self) -> None:
        ws = self._ws
        parts: list[Any] = []
        size = 0
        while True:
            for event in ws.events():
                kind = type(event)
                if kind is wse.TextMessage or kind is wse.BytesMessage:
                    if self.close_code is not None:
                        continue  # closing: drop
                    data = event.data  # type: ignore[attr-defined]
                    # The limit is in bytes as sent (UTF-8 for text): a str of
                    # N characters can hold up to 4N bytes of memory.
                    if kind is wse.BytesMessage or data.isascii():
                        size += len(data)
                    else:
                        size += len(data.encode("utf-8"))
                    if size > self.max_message_size:
                        parts.clear()
                        await self._abort(1009, f"message larger than {self.max_message_size}")
                        continue
                    if event.message_finished and not parts:  # type: ignore[attr-defined]
                        message = data
                    else:
                        parts.append(data)
                        if not event.message_finished:  # type: ignore[attr-defined]
                            continue
                        message = ("" if kind is wse.TextMessage else b"").join(parts)
                        parts.clear()
                    size = 0
                    try:
                        await self._messages.put(message)
                    except QueueClosed:
                        pass  # we are closing: nobody will read it
                elif kind is wse.Ping:
                    # Owed, not sent here: the reader must never wait for the
                    # sending side. Two peers each in a big send, each reader
                    # waiting to answer a ping behind its own send, would
                    # both stop reading: a deadlock (found by a seeded test).
                    self._pongs_owed.append(bytes(event.payload))  # type: ignore[attr-defined]
                    self._pong_wanted.set()
                elif kind is wse.Pong:
                    for waiter in self._pongs.pop(bytes(event.payload), ()):  # type: ignore[attr-defined]
                        waiter.set()
                elif kind is wse.CloseConnection:
                    await self._on_close(event)  # type: ignore[arg-type]
            if self._finished.is_set():
                return
            if ws.state is ConnectionState.CLOSED:
                await self._after_close()
                return
            data = await self._stream.read(65536)
            if not data:
                ws.receive_data(None)  # yields CloseConnection(1006)
                for event in ws.events():
                    if self.close_code is None and isinstance(event, wse.CloseConnection):
                        self.close_code, self.close_reason = int(event.code), "connection lost"
                return
            ws.receive_data(data)

    async def _on_close(self, event: wse.CloseConnection) -> None:
        ws = self._ws
        if ws.state is ConnectionState.REMOTE_CLOSING:
            # The peer started the close: record its code and answer with the same.
            self.close_code, self.close_reason = int(event.code), event.reason or ""
            self._messages.close()
            await self._send_event(event.response(), raise_closed=False)
        elif ws.state is ConnectionState.CLOSED:
            # The answer to our own Close: the handshake is complete.
            if self.close_code is None:
                self.close_code, self.close_reason = int(event.code), event.reason or ""
        else:
            # wsproto reports a malformed frame as a CloseConnection it did not send.
            await self._abort(int(event.code), event.reason or "protocol error")  # (an enum)
            # _Fail the WebSocket Connection_ (RFC 6455, 7.1.7): after the
            # Close frame, end the connection without waiting for the
            # peer's, which a peer that sends bad frames may never send.
            self._lost()

    async def _abort(self, code: int, reason: str) -> None:
        """Start a close because of something the peer did (1009 too big, 1002/1007 bad frame)."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self._messages.close()
        if self._ws.state is _OPEN:
            await self._send_event(wse.CloseConnection(code=code, reason=reason),
                                   raise_closed=False)

    async def _after_close(self) -> None:
        """Both Close frames exchanged: the server closes TCP; the client waits for that."""
        self._messages.close()
        if self._client:
            with move_on_after(self.close_timeout):
                while await self._stream.read(65536):
                    pass
        await self._stream.aclose()


def _opens_a_message(event: wse.Event) -> bool:
    """A data frame that leaves its message unfinished (the first of several)."""
    return isinstance(event, wse.Message) and not event.message_finished


def _forget_message(connection: Connection) -> bool:
    """Have wsproto forget a message whose first fragment never went out; False if it cannot.

    wsproto has no public way to abandon a message: it keeps the opcode of
    the one in progress (``FrameProtocol._outbound_opcode``) to send the
    next data frame as its continuation.
    """
    proto = getattr(connection, "_proto", None)
    if proto is None or not hasattr(proto, "_outbound_opcode"):
        return False
    proto._outbound_opcode = None
    return True


def _fragments(kind: Any, message: str | bytes) -> Iterator[wse.Event]:
    """``message`` as ``kind`` events of at most ``FRAGMENT_SIZE`` items, the last one final.

    One event would have wsproto build the whole frame (and, on a client,
    its masked copy) at once: a 50 MiB send needed three to four times its
    size in memory. (A ``str`` is cut between characters, so each fragment
    encodes on its own.)
    """
    end = len(message)
    for start in range(0, end, FRAGMENT_SIZE):
        stop = start + FRAGMENT_SIZE
        yield kind(data=message[start:stop], message_finished=stop >= end)


def _sendable_close_code(code: object) -> bool:
    """A code a Close frame may carry: 1004-1006 and 1015 are reserved, 1016-2999 unassigned."""
    return (isinstance(code, int) and not isinstance(code, bool)
            and (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999))
