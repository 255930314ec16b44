"""SocketStream: a :class:`Stream` over a connected stream socket (TCP or Unix).

This is the hottest path of every server, so ``read`` and ``write`` are
written flat (one generator, no wrapper layers, bound methods looked up
once) instead of going through the base class's general machinery:

* ``read`` tries ``recv`` first and waits for readiness only on
  ``BlockingIOError``; it asks for at most 64 KiB (a bigger ``recv`` makes
  glibc allocate and free a large block on every call).
* **The short-read shortcut.** A ``recv`` that returned fewer bytes than
  asked has drained the socket, so the next receive *waits for readiness
  first* instead of trying a ``recv`` that would almost surely fail (a
  failed ``recv`` plus its ``BlockingIOError`` costs about as much as the
  whole wait). The kernel keeps the epoll registration between waits, so
  the wait is cheap, and epoll is level-triggered, so data that arrived in
  the meantime wakes us at once. Only here: not after EOF, not for the
  public ``yieldio.socket`` methods, not for datagram sockets.
* ``write`` tries ``send`` first and only on a partial send loops waiting
  for room, slicing a ``memoryview`` -- nothing is copied or buffered, so
  memory stays bounded with a slow reader: the writer waits instead.
"""

from __future__ import annotations

import socket as _stdsocket
from collections.abc import Generator
from typing import Any

from .. import _state
from .._exceptions import BusyResourceError, Cancelled, ClosedResourceError
from .._io import wait_readable, wait_writable
from .._outside import _EPOLLIN
from .._stream import DEFAULT_READ_SIZE, BrokenStreamError, Stream, byte_view
from .._traps import PARK, SCHEDULE
from .._typing import awaitable
from ..socket import SocketType, from_stdlib

__all__ = ["SocketStream"]

#: The largest single ``recv``: more only costs malloc churn.
MAX_RECV = 65536

_local = _state.local
_outside_run = _state.outside_run
_SHUT_WR = _stdsocket.SHUT_WR


def _raise_if_closed(raw: _stdsocket.socket) -> None:
    """In an ``OSError`` handler: the error is EBADF because the socket was closed.

    ``stream.socket.close()`` closes the socket behind the stream's back;
    its ``recv``/``send`` then fail with ``EBADF``, which means "closed".
    Checked only after a failure, so the fast paths pay nothing.
    """
    if raw.fileno() < 0:
        raise ClosedResourceError("the socket under this stream was closed") from None


class SocketStream(Stream):
    """A :class:`Stream` over a connected ``SOCK_STREAM`` socket.

    ::

        sock = yieldio.socket.socket()
        await sock.connect(("127.0.0.1", 8000))
        stream = SocketStream(sock)
        await stream.write(b"ping\\n")
        print(await stream.readline())

    Usually you get one from :func:`open_tcp_stream`, :func:`open_unix_stream`
    or a server. It accepts a yieldio socket or a stdlib socket (which it then
    owns) and sets ``TCP_NODELAY`` on TCP sockets: a stream sends each
    ``write`` as soon as possible.

    Errors from the OS (``ConnectionResetError``, ``BrokenPipeError``, ...)
    propagate unchanged; a failed or part-way cancelled write leaves the
    stream broken for writing (see :class:`BrokenStreamError`).
    """

    def __init__(self, sock: SocketType | _stdsocket.socket) -> None:
        super().__init__()
        if isinstance(sock, _stdsocket.socket):
            sock = from_stdlib(sock)
        if not isinstance(sock, SocketType):
            raise TypeError(f"SocketStream needs a socket, not {type(sock).__name__}")
        if sock.type != _stdsocket.SOCK_STREAM:
            raise ValueError("SocketStream needs a SOCK_STREAM socket")
        self.socket = sock
        raw = sock._sock
        self._raw = raw
        self._recv = raw.recv
        self._send = raw.send
        # True after a short read: the next receive waits before trying recv.
        self._drained = False
        self._eof_sent = False
        # The peer's address as accept() returned it (see get_extra_info).
        self._peername: Any = None
        if sock.family in (_stdsocket.AF_INET, _stdsocket.AF_INET6):
            try:
                raw.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
            except OSError:  # not TCP after all (e.g. SCTP): nothing to tune
                pass

    def __repr__(self) -> str:
        if self._moved_to is not None:
            state = "upgraded with start_tls()"
        else:
            state = "closed" if self._closed else f"fd={self._raw.fileno()}"
        return f"<SocketStream {state}>"

    # -- receiving -----------------------------------------------------------
    @awaitable
    def read(self, max_bytes: int = DEFAULT_READ_SIZE) -> Generator[Any, Any, bytes]:
        """Return up to ``max_bytes`` bytes as soon as any are available; ``b""`` at EOF.

        A checkpoint. ``ClosedResourceError`` if the stream is (or gets)
        closed, ``BusyResourceError`` if another task is reading.
        """
        if self._rbuf or self._eof or self._closed or self._reading or max_bytes < 1:
            # Buffered data, EOF, errors: the base class handles the rare cases.
            return (yield from Stream.read(self, max_bytes).__await__())
        # The rest duplicates receive_some() on purpose: one generator layer
        # less on the path every byte takes.
        try:
            k = _local.kernel
        except AttributeError:
            _outside_run()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        if max_bytes > MAX_RECV:
            max_bytes = MAX_RECV
        if not self._drained:
            try:
                recv = self._recv  # a bound method in an attribute: load it, then call it
                data = recv(max_bytes)
            except BlockingIOError:
                pass
            except OSError:
                _raise_if_closed(self._raw)
                raise
            else:
                if len(data) < max_bytes:
                    if data:
                        self._drained = True
                    else:
                        self._eof = True
                k.fast_budget -= 1
                if k.fast_budget <= 0:
                    k.fast_budget = k.fast_budget_full
                    yield SCHEDULE
                return data
        self._reading = True
        try:
            while True:
                # This is _io.wait_readable inlined (same steps, same order):
                # a generator layer and an fd lookup less per wait.
                fd = self._raw.fileno()
                if fd < 0:
                    raise ClosedResourceError("the socket under this stream was closed")
                w = k.fds.get(fd)
                if w is None:
                    w = k.fd_waits(fd)
                if w.reader is not None:
                    raise BusyResourceError(
                        f"another task ({w.reader.name!r}) is already reading fd {fd}")
                if not w.mask & _EPOLLIN:
                    k._watch(w, w.mask | _EPOLLIN)
                w.reader = task
                task._wait = w
                k.io_waiters += 1
                yield PARK
                try:
                    recv = self._recv
                    data = recv(max_bytes)
                except BlockingIOError:  # spurious wakeup
                    continue
                except OSError:
                    _raise_if_closed(self._raw)  # (closed by another task since the wakeup)
                    raise
                break
        finally:
            self._reading = False
        if len(data) < max_bytes:
            if data:
                self._drained = True
            else:
                self._drained = False
                self._eof = True
        else:
            self._drained = False
        return data

    @awaitable
    def receive_some(self, max_bytes: int = DEFAULT_READ_SIZE) -> Generator[Any, Any, bytes]:
        """The primitive under the base class's readers (see :meth:`read`)."""
        try:
            k = _local.kernel
        except AttributeError:
            _outside_run()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        if self._closed:
            raise self._closed_error()  # (says so if start_tls() retired this object)
        if max_bytes < 1:
            # recv(0) returns b"", which every caller would take for EOF.
            raise ValueError("max_bytes must be >= 1")
        if max_bytes > MAX_RECV:
            max_bytes = MAX_RECV
        if not self._drained:
            try:
                recv = self._recv
                data = recv(max_bytes)
            except BlockingIOError:
                pass
            except OSError:
                _raise_if_closed(self._raw)
                raise
            else:
                self._drained = 0 < len(data) < max_bytes
                k.fast_budget -= 1
                if k.fast_budget <= 0:
                    k.fast_budget = k.fast_budget_full
                    yield SCHEDULE
                return data
        while True:
            yield from wait_readable(self._raw)
            try:
                recv = self._recv
                data = recv(max_bytes)
            except BlockingIOError:
                continue
            except OSError:
                _raise_if_closed(self._raw)
                raise
            self._drained = 0 < len(data) < max_bytes
            return data

    # -- sending ---------------------------------------------------------------
    @awaitable
    def write(self, data: bytes | bytearray | memoryview) -> Generator[Any, Any, None]:
        """Send all of ``data``; return once the OS accepted every byte.

        A checkpoint. Waits (without buffering) while the peer is slow.
        Cancelled or failed part way, it leaves the stream broken for
        writing: an unknown prefix of ``data`` was sent, so later writes
        raise :class:`BrokenStreamError`. Cancelled before any byte went
        out, the stream stays usable.
        """
        if self._closed or self._write_broken or self._writing or self._eof_sent:
            if self._eof_sent and not self._closed:
                raise ClosedResourceError("cannot send after send_eof()")
            return (yield from Stream.write(self, data).__await__())  # raises the right error
        try:
            k = _local.kernel
        except AttributeError:
            _outside_run()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        if type(data) is not bytes and type(data) is not bytearray:
            data = byte_view(data).cast("B")
        try:
            send = self._send
            sent = send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            _raise_if_closed(self._raw)  # (nothing was sent: closed, not broken)
            self._write_broken = True
            raise
        if sent == len(data):
            k.fast_budget -= 1
            if k.fast_budget <= 0:
                k.fast_budget = k.fast_budget_full
                yield SCHEDULE
            return
        yield from self._send_rest(data, sent)

    @awaitable
    def send_all(self, data: bytes | bytearray | memoryview) -> Generator[Any, Any, None]:
        """The sending primitive (see :meth:`write`).

        Like ``write`` (and ``send_all`` on pipes and TLS), it refuses a
        stream broken by an earlier write cut off part way
        (:class:`BrokenStreamError`): its bytes would follow an unknown prefix.
        """
        try:
            k = _local.kernel
        except AttributeError:
            _outside_run()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        if self._closed:
            raise self._closed_error()  # (says so if start_tls() retired this object)
        if self._eof_sent:
            raise ClosedResourceError("cannot send after send_eof()")
        if self._write_broken:
            raise BrokenStreamError("a previous write on this stream was interrupted")
        if self._writing:
            raise BusyResourceError("another task is already writing to this stream")
        if type(data) is not bytes and type(data) is not bytearray:
            data = byte_view(data).cast("B")
        try:
            send = self._send
            sent = send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            _raise_if_closed(self._raw)  # (nothing was sent: closed, not broken)
            self._write_broken = True
            raise
        if sent == len(data):
            k.fast_budget -= 1
            if k.fast_budget <= 0:
                k.fast_budget = k.fast_budget_full
                yield SCHEDULE
            return
        yield from self._send_rest(data, sent)

    def _send_rest(self, data: Any, sent: int) -> Generator[Any, Any, None]:
        """The slow path of a write: wait for room, send the rest, mark failures."""
        self._writing = True
        total = len(data)
        send = self._send
        raw = self._raw
        try:
            with memoryview(data) as view:
                while sent < total:
                    yield from wait_writable(raw)
                    try:
                        sent += send(view[sent:])
                    except BlockingIOError:
                        pass
                    except OSError:
                        _raise_if_closed(raw)
                        raise
        except BaseException as exc:
            # Cancelled before any byte went out: the byte stream is intact.
            # Anything else (a prefix sent, or an OS error) breaks it.
            if sent or not isinstance(exc, (Cancelled, KeyboardInterrupt)):
                self._write_broken = True
            raise
        finally:
            self._writing = False

    async def send_eof(self) -> None:
        """Shut down the sending direction (the peer reads EOF); idempotent.

        We can still read. Later writes raise ``ClosedResourceError``.
        """
        try:
            task = _local.kernel.current
        except AttributeError:
            _outside_run()
        if task._cancel_pending:
            task._raise_cancel()
        if self._closed:
            raise self._closed_error()  # (says so if start_tls() retired this object)
        if self._writing:
            raise BusyResourceError("another task is writing to this stream")
        if self._eof_sent:
            return
        self._eof_sent = True
        try:
            self._raw.shutdown(_SHUT_WR)
        except OSError:
            # Already disconnected (ENOTCONN): the peer will see EOF anyway.
            pass

    # -- closing ---------------------------------------------------------------
    async def aclose(self) -> None:
        """Close the stream and its socket; idempotent.

        Tasks blocked reading or writing it wake with ``ClosedResourceError``.
        It never raises ``Cancelled``: closing always happens at once.
        """
        if self._closed:
            moved = self._moved_to
            if moved is not None:
                # Retired by start_tls(): the connection lives on in the
                # stream TLS uses. A server closes the stream it handed
                # its handler, so this must close the connection (else a
                # handler that drops its TLS stream would leak the fd).
                await moved.aclose()
            return
        self._closed = True
        self.socket.close()  # notify_closing, then close

    # -- start_tls hand-over (see Stream._hand_over) -----------------------------
    def _hand_over(self) -> SocketStream | None:
        """Move the connection to a new SocketStream for TLS; retire this object.

        A retired object has ``_closed`` set, which every fast path already
        tests on its way to the slow path: old references to it fail there
        (``ClosedResourceError``) instead of writing raw bytes into the TLS
        session, and the fast paths gain no check. The socket is shared, not
        closed: ``aclose()`` here closes the new object.
        """
        if self._reading or self._writing:
            # Another task is inside a read or write of this object (it would
            # carry on with the socket after we hand it over): leave things
            # as TLSStream.wrap does.
            return None
        # A copy of the state, not SocketStream(sock): no second setsockopt,
        # and the read buffer, EOF, drained and broken flags, and the peer's
        # address carry over. The copy takes the buffer; ours is replaced.
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        self._rbuf = bytearray()
        self._closed = True
        self._moved_to = new
        return new

    def _take_back(self, moved: Stream) -> Stream:
        """``TLSStream.unwrap()``: this object takes the connection back from ``moved``.

        So ``plain, _ = await tls.unwrap()`` gives back the very stream
        start_tls() was called on, as it does after ``TLSStream.wrap``.
        """
        if moved is not self._moved_to or moved._moved_to is not None:
            return moved  # (not ours, or moved on again: leave it be)
        self.__dict__.update(moved.__dict__)
        self._moved_to = None
        moved._rbuf = bytearray()
        moved._closed = True
        moved._moved_to = self
        return self

    # -- details -----------------------------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``"peername"``, ``"sockname"``, ``"socket"`` (the yieldio socket), ``"family"``.

        ::

            host, port = stream.get_extra_info("peername")
        """
        if name == "socket":
            return self.socket
        if name == "family":
            return self.socket.family
        try:
            if name == "peername":
                return self._raw.getpeername()
            if name == "sockname":
                return self._raw.getsockname()
        except OSError:
            # A peer that reset the connection is not connected any more
            # (ENOTCONN), but a server still wants to say who it was.
            if name == "peername" and self._peername is not None:
                return self._peername
            return default
        return default

    def setsockopt(self, level: int, optname: int, value: Any) -> None:
        """Set a socket option on the underlying socket."""
        self._raw.setsockopt(level, optname, value)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        """Read a socket option of the underlying socket."""
        if buflen is None:
            return self._raw.getsockopt(level, optname)
        return self._raw.getsockopt(level, optname, buflen)

