"""TLS over any :class:`Stream`, with the stdlib's ``ssl`` module and memory BIOs.

The TLS engine (``ssl.SSLObject`` from ``SSLContext.wrap_bio``) never touches
a socket: it reads ciphertext from an incoming ``MemoryBIO`` and writes
ciphertext to an outgoing one. This module moves bytes between those BIOs
and the transport stream, so TLS works the same over TCP, Unix sockets,
pipes and the in-memory network of :mod:`yieldio.testing`.

Every operation follows one loop (``_tls_engine.TLSEngine._retry``): call
the engine; send whatever it wrote to the outgoing BIO; if it wants more
input, read from the transport into the incoming BIO and call it again.
Reads try the engine first, so decrypted data already buffered
(``pending()``) and ciphertext already in the incoming BIO are used before
waiting on the transport. This module is the Stream API on top: handshake,
reads and writes, half-close, ``unwrap`` and close.
"""

from __future__ import annotations

import ssl as _ssl
from typing import Any

from .. import _state
from .._exceptions import BusyResourceError, ClosedResourceError
from .._io import cancel_check, fast_checkpoint
from .._stream import DEFAULT_READ_SIZE, BrokenStreamError, Stream, byte_view
from .._timeouts import move_on_after
from ..sync import Lock
from ._tls_engine import _EOF_ERRORS, TLSEngine, _SSLWantReadError

__all__ = ["TLSStream"]

#: Plaintext is handed to the engine in pieces of this size, so the
#: outgoing BIO (and memory) stays bounded however big a write is.
WRITE_CHUNK = 65536
#: How long ``aclose`` may spend sending close_notify to a peer that is not reading.
CLOSE_NOTIFY_TIMEOUT = 2.0



class TLSStream(TLSEngine):
    """A TLS connection over another :class:`Stream` (the *transport*).

    ::

        ctx = ssl.create_default_context()
        tcp = await yieldio.open_tcp_stream("example.org", 443)
        tls = await TLSStream.wrap(tcp, ctx, server_hostname="example.org")
        await tls.write(b"GET / HTTP/1.0\\r\\nHost: example.org\\r\\n\\r\\n")
        print(await tls.read())

    Reading and writing are the base class's (``read``, ``readline``,
    ``write``, ...). The handshake happens in :meth:`wrap` (or lazily on the
    first read/write with ``handshake=False``); a failed handshake raises
    the ``ssl.SSLError`` subclass that says why (for example
    ``ssl.SSLCertVerificationError`` for an untrusted certificate or a
    wrong host name), after sending the TLS alert to the peer.

    :meth:`send_eof` sends close_notify and keeps reading (a TLS 1.3
    half-close); :meth:`aclose` sends close_notify (best effort) and closes
    the transport; :meth:`unwrap` ends TLS and gives the transport back
    (then closing the TLS stream leaves it open). A peer that closes
    without close_notify (a "ragged EOF") reads as a normal EOF unless
    ``suppress_ragged_eofs=False``, as with the stdlib's ``ssl`` sockets.
    """

    #: The stream start_tls() was called on, when it retired it and gave us a
    #: new object over the same connection (see Stream._hand_over): unwrap()
    #: hands the connection back to it. A class attribute: wrap() sets nothing.
    _origin: Stream | None = None

    def __init__(self, transport: Stream, context: _ssl.SSLContext, *, server_side: bool = False,
                 server_hostname: str | None = None, suppress_ragged_eofs: bool = True) -> None:
        super().__init__()
        if not isinstance(context, _ssl.SSLContext):
            raise TypeError(f"context must be an ssl.SSLContext, not {context!r}")
        self.transport = transport
        self.server_side = server_side
        self.suppress_ragged_eofs = suppress_ragged_eofs
        self._ragged_eof = False  # the peer left without close_notify (read as EOF)
        self._in = _ssl.MemoryBIO()
        self._out = _ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._in, self._out, server_side=server_side,
                                     server_hostname=server_hostname)
        self._handshake_done = False
        self._handshake_lock = Lock()
        self._send_lock = Lock()  # keeps ciphertext in order on the transport
        self._recv_lock = Lock()  # one transport reader at a time
        self._recv_count = 0  # transport reads so far (see _feed)
        self._broken: BaseException | None = None
        self._tls_closed = False  # unwrap() finished
        self._eof_sent = False  # send_eof() sent close_notify
        self._transport_eof = False  # the transport ended (write_eof on the incoming BIO)
        self._tls_eof = False  # a read saw the peer's close_notify
        self._plain = bytearray()  # plaintext send_eof() took out of the engine, unread
        self._in_receive = False  # a task is in receive_some (one at a time)
        self._in_send = False  # a task is in send_all (one at a time)
        # Ciphertext a cancelled flush took from the engine but did not send
        # (not a byte of it): the next flush sends it first, in order.
        self._unsent = b""
        self._write_error: BaseException | None = None  # what broke the writing side

    def __repr__(self) -> str:
        side = "server" if self.server_side else "client"
        return f"<TLSStream {side} over {self.transport!r}>"

    @classmethod
    async def wrap(cls, transport: Stream, context: _ssl.SSLContext, *, server_side: bool = False,
                   server_hostname: str | None = None, handshake: bool = True,
                   suppress_ragged_eofs: bool = True) -> TLSStream:
        """Start TLS on ``transport`` and (by default) complete the handshake.

        ::

            tls = await TLSStream.wrap(stream, ctx, server_side=True)

        On failure the transport is left open: it is the caller's to close.
        """
        self = cls(transport, context, server_side=server_side, server_hostname=server_hostname,
                   suppress_ragged_eofs=suppress_ragged_eofs)
        if handshake:
            await self.do_handshake()
        return self

    # -- handshake -------------------------------------------------------------------
    async def do_handshake(self) -> None:
        """Complete the TLS handshake (idempotent; a checkpoint).

        Raises ``ssl.SSLError`` (e.g. ``ssl.SSLCertVerificationError``) if
        the peer cannot be trusted or speaks no common protocol.
        """
        self._check_usable()
        if self._handshake_done:
            await fast_checkpoint()
            return
        async with self._handshake_lock:
            if not self._handshake_done:
                # Another task's attempt, which we waited for, may have broken it.
                self._check_usable()
                try:
                    await self._retry(self._ssl.do_handshake)
                except _EOF_ERRORS as exc:
                    # EOF in the middle of a handshake is a failure, not an EOF.
                    self._broken = exc
                    raise
                self._handshake_done = True

    # -- the Stream primitives -------------------------------------------------------
    async def receive_some(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        """Up to ``max_bytes`` of plaintext; ``b""`` at EOF (close_notify or ragged)."""
        self._check_usable()
        if max_bytes < 1:
            # read(0) gives b"", which would be taken (and recorded) as EOF.
            raise ValueError("max_bytes must be >= 1")
        if max_bytes > DEFAULT_READ_SIZE:
            # SSLObject.read(n) allocates n bytes up front, although a TLS
            # record holds at most 16 KiB: read(2**40) (or read_exactly of a
            # big n, which asks for all of it) would raise MemoryError here
            # where a SocketStream just returns what came (it clamps too).
            max_bytes = DEFAULT_READ_SIZE
        if self._in_receive:
            raise BusyResourceError("another task is already reading from this TLS stream")
        self._in_receive = True
        # (one function, not a wrapper around a helper: a coroutine frame
        # less on every TLS read)
        try:
            if not self._handshake_done:
                await self.do_handshake()
            else:
                cancel_check()
            if self._plain:  # (rare: only after send_eof, see _queue_close_notify)
                data = bytes(self._plain[:max_bytes])
                del self._plain[:max_bytes]
                return data
            # Without plaintext, ciphertext or an EOF to report, a read can only
            # fail with SSLWantReadError, and raising that costs more than the
            # rest of a small read: then feed the engine before the first try.
            # (What follows is _retry(self._ssl.read, ...) with its first round
            # inline: a coroutine frame less on every read.)
            fed = not (self._in.pending or self._ssl.pending() or self._transport_eof
                       or self._tls_eof)
            if fed:
                await self._feed()  # (a checkpoint: the transport's read)
            try:
                try:
                    data = self._ssl.read(max_bytes)
                except _SSLWantReadError:
                    fed = True
                    data = await self._retry(self._ssl.read, max_bytes, feed_first=True,
                                             reading=True)
                else:
                    if self._out.pending or self._unsent:
                        await self._flush_for_reader(data)
            except _EOF_ERRORS as exc:
                if self._out.pending:
                    await self._flush_best_effort(reading=True)
                if isinstance(exc, _ssl.SSLEOFError):
                    if not self.suppress_ragged_eofs:
                        raise
                    self._ragged_eof = True
                data = b""
            except _ssl.SSLError as exc:
                if self._broken is None:  # (_retry has already done this)
                    self._broken = exc
                    await self._flush_best_effort(reading=True)
                raise
            if not data:
                self._tls_eof = True  # (close_notify reads as b"", not as an error)
            if not fed:
                try:
                    await fast_checkpoint()
                except BaseException:
                    # Cancelled with the data in hand (a cancel that came
                    # while the read's flush finished): the next read has it.
                    self._plain[:0] = data
                    raise
            return data  # type: ignore[no-any-return]
        finally:
            self._in_receive = False

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send all of ``data`` (see :meth:`Stream.write`)."""
        if self._write_broken and not self._closed and self._write_error is not None:
            raise self._write_broken_error()  # (naming what broke it: a reset, say)
        if self._closed or self._write_broken or self._writing:
            await super().write(data)  # (it raises the right error)
            return
        if self._in_send:
            # Rejected before anything was sent: the stream stays intact
            # (the base class would count this failure as a broken write).
            raise BusyResourceError("another task is already writing to this TLS stream")
        # Stream.write and send_all in one frame: two coroutine frames less
        # on every TLS write. The bookkeeping is theirs, step for step.
        self._writing = self._in_send = True
        try:
            self._check_usable()
            if self._eof_sent:
                raise ClosedResourceError("cannot send after send_eof()")
            if self._handshake_done and type(data) is bytes and 0 < len(data) <= WRITE_CHUNK:
                # _send_all's common case, and _retry's first round, inline.
                cancel_check()
                try:
                    self._ssl.write(data)
                except _SSLWantReadError:
                    await self._retry(self._ssl.write, data)
                except _EOF_ERRORS:
                    if self._out.pending:
                        await self._flush_best_effort()
                    raise
                except _ssl.SSLError as exc:
                    self._broken = exc
                    await self._flush_best_effort()
                    raise
                else:
                    if self._out.pending:
                        await self._flush()
            else:
                await self._send_all(data)
        except BaseException as exc:
            self._write_failed(data, exc)
            raise
        finally:
            self._writing = self._in_send = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send all of ``data`` (in bounded pieces).

        Like ``write``, it refuses a stream broken for writing: after a lost
        or partly sent record, the peer could not decrypt the next one.
        """
        self._check_usable()
        if self._eof_sent:
            raise ClosedResourceError("cannot send after send_eof()")
        if self._write_broken:
            raise self._write_broken_error()
        if self._in_send:
            raise BusyResourceError("another task is already writing to this TLS stream")
        self._in_send = True
        try:
            await self._send_all(data)
        finally:
            self._in_send = False

    async def _send_all(self, data: bytes | bytearray | memoryview) -> None:
        if not self._handshake_done:
            await self.do_handshake()
        else:
            cancel_check()
        if type(data) is bytes and 0 < len(data) <= WRITE_CHUNK:
            await self._retry(self._ssl.write, data)  # the common case: one piece
            return
        view = byte_view(data)
        with view, view.cast("B") as flat:
            total = len(flat)
            if total == 0:
                await fast_checkpoint()
                return
            for start in range(0, total, WRITE_CHUNK):
                await self._retry(self._ssl.write, flat[start:start + WRITE_CHUNK])

    async def send_eof(self) -> None:
        """Half-close: send close_notify; we can still read until the peer's own.

        TLS 1.3 defines close_notify as closing only the sender's direction
        (RFC 8446, section 6.1), so the peer reads EOF and may still answer.
        (A TLS 1.2 peer is entitled to close at once instead.) Idempotent;
        later writes raise ``ClosedResourceError``. After a write that was cut
        off it raises :class:`BrokenStreamError`: the peer could not decrypt
        the close_notify.
        """
        self._check_usable()
        if self._in_send:
            raise BusyResourceError("another task is writing to this TLS stream")
        if not self._handshake_done:
            await self.do_handshake()
        else:
            await fast_checkpoint()
        if self._eof_sent:
            return
        if self._write_broken:
            # close_notify is a record too: after a lost or partial one the
            # peer could not decrypt it (aclose skips it for the same reason).
            raise BrokenStreamError("a previous write on this TLS stream was interrupted")
        self._eof_sent = True
        try:
            self._queue_close_notify()
        except _SSLWantReadError:
            pass  # close_notify is queued; the peer's comes later (or never)
        except _ssl.SSLError as exc:
            self._broken = exc
            if self._ragged_eof:
                # OpenSSL's own words here ("shutdown while in init") blame
                # the wrong thing: the peer is gone, without a goodbye.
                raise _ssl.SSLEOFError(
                    "cannot send close_notify: the peer closed the connection without "
                    "TLS close_notify (a ragged EOF, read as end of data)") from exc
            raise
        await self._flush()

    def _queue_close_notify(self) -> None:
        """Have the engine queue close_notify without reading anything.

        ``SSLObject.unwrap()`` calls ``SSL_shutdown`` twice, and the second
        call reads on, looking for the peer's close_notify: application data
        still unread (the peer is still sending, as a half-close allows)
        fails with ``APPLICATION_DATA_AFTER_CLOSE_NOTIFY`` and kills the
        connection. So the engine is emptied first: decrypted plaintext it
        still holds moves to ``_plain`` (served before anything else by
        :meth:`receive_some`), and the ciphertext in the incoming BIO is
        taken out for the call and put back for the reads that follow.
        (After the transport's EOF the BIO refuses writes; the peer is gone
        then anyway.)
        """
        ssl_object = self._ssl
        while ssl_object.pending():
            self._plain += ssl_object.read(ssl_object.pending())
        unread = b"" if self._transport_eof else self._in.read()
        try:
            self._ssl.unwrap()
        finally:
            if unread:
                self._in.write(unread)

    async def unwrap(self) -> tuple[Stream, bytes]:
        """End TLS (exchange close_notify) and return ``(transport, trailing_bytes)``.

        ``trailing_bytes`` arrived after the peer's close_notify and belong
        to whatever the transport carries next: handle them as if the
        transport's first read had returned them. Call it only when the
        protocol says the peer shuts TLS down too, or it waits for it.

        From then on the transport is the caller's: this TLS stream is
        closed for use, and its :meth:`aclose` (or ``async with``) leaves
        the transport open -- close it yourself.

        Decrypted data that was received but not read yet (left in the
        buffer by ``readline``/``read_until``, or by a short ``read``) is
        never thrown away: ``unwrap()`` then raises ``RuntimeError`` and
        changes nothing, so read it first and call ``unwrap()`` again.
        ::

            transport, trailing = await tls.unwrap()
            async with transport:
                ...  # plaintext from here on, starting with ``trailing``
        """
        self._check_usable()
        if not self._handshake_done:
            raise RuntimeError("unwrap() before the handshake completed")
        if self._in_receive or self._in_send:
            raise BusyResourceError("another task is using this TLS stream")
        # That plaintext is TLS data, not ``trailing_bytes`` (raw bytes from
        # after TLS, as in trio): returning it there would hand the next
        # protocol bytes it must not see, and the engine's shutdown would
        # discard it (or fail on it). Refuse while the stream is intact.
        unread = len(self._rbuf) + len(self._plain) + self._ssl.pending()
        if unread:
            raise RuntimeError(f"unwrap() would discard {unread} bytes of decrypted data "
                               "not read yet: read them first")
        # Busy both ways while it waits for the peer's close_notify: a read
        # here would take TLS records (or the trailing plaintext) out from
        # under the shutdown, a write would send data after our close_notify.
        self._in_receive = self._in_send = self._writing = True
        try:
            await self._retry(self._ssl.unwrap)
        except _EOF_ERRORS:
            pass  # the transport ended right after close_notify: fine
        finally:
            self._in_receive = self._in_send = self._writing = False
        self._tls_closed = True
        if self._origin is not None:
            # start_tls() retired the caller's stream: give it its connection
            # back, so the caller gets the object it upgraded (as after wrap()).
            self.transport = self._origin._take_back(self.transport)
        return self.transport, self._in.read()

    def _unread_bytes(self) -> int:
        """Bytes received from the peer that no read has returned yet (private).

        Plaintext buffered (``_rbuf``, ``_plain``, the engine's
        ``pending()``) and ciphertext already in the incoming BIO but not
        decrypted yet (the engine decrypts one record per read): a reader
        at the end of a message (the HTTP client's pool) uses it to tell
        whether the peer sent more than that message.
        """
        return len(self._rbuf) + len(self._plain) + self._ssl.pending() + self._in.pending

    async def aclose(self) -> None:
        """Send close_notify (best effort, bounded) and close the transport; idempotent.

        Skips close_notify when the task is being cancelled or the stream is
        broken; it never fails to close the transport -- except after a
        completed :meth:`unwrap`, which gave the transport to the caller:
        then it only marks this stream closed.
        """
        if self._closed:
            return
        self._closed = True
        if self._tls_closed:
            return  # unwrap() handed the transport over: not ours to close (as in trio)
        try:
            if (self._handshake_done and self._broken is None and not self._tls_closed
                    and not self._eof_sent and not self._write_broken
                    and not _cancel_pending()):
                try:
                    self._queue_close_notify()
                except (_ssl.SSLError, ValueError):
                    pass  # SSLWantReadError: we do not wait for the peer's reply
                data = self._unsent + self._out.read()
                if data and not self._send_lock.locked():
                    with move_on_after(CLOSE_NOTIFY_TIMEOUT):
                        await self.transport.write(data)
        except Exception:
            pass  # best effort: the peer may already be gone
        finally:
            await self.transport.aclose()

    # -- details ------------------------------------------------------------------------
    @property
    def ssl_object(self) -> _ssl.SSLObject:
        """The ``ssl.SSLObject`` doing the work (cipher, version, peer certificate...)."""
        return self._ssl

    def getpeercert(self, binary_form: bool = False) -> Any:
        """The peer's certificate (see ``ssl.SSLSocket.getpeercert``)."""
        return self._ssl.getpeercert(binary_form)

    def cipher(self) -> tuple[str, str, int] | None:
        """The negotiated cipher as ``(name, protocol, bits)``; None before the handshake.

        ::

            name, protocol, bits = stream.cipher()
        """
        return self._ssl.cipher()

    def version(self) -> str | None:
        """The negotiated protocol version, e.g. ``"TLSv1.3"``."""
        return self._ssl.version()

    def selected_alpn_protocol(self) -> str | None:
        """The ALPN protocol agreed in the handshake (``"h2"``, ``"http/1.1"``), or None.

        ::

            if stream.selected_alpn_protocol() == "http/1.1": ...
        """
        return self._ssl.selected_alpn_protocol()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``"ssl_object"``, ``"peercert"``, ``"cipher"``, ``"version"``,
        ``"server_hostname"``, ``"alpn_protocol"``; anything else is asked of the transport."""
        if name == "ssl_object":
            return self._ssl
        if name in ("peercert", "cipher", "version", "server_hostname", "alpn_protocol"):
            if not self._handshake_done and name != "server_hostname":
                return default
            if name == "peercert":
                return self._ssl.getpeercert()
            if name == "cipher":
                return self._ssl.cipher()
            if name == "version":
                return self._ssl.version()
            if name == "alpn_protocol":
                return self._ssl.selected_alpn_protocol()
            return self._ssl.server_hostname
        return self.transport.get_extra_info(name, default)


def _cancel_pending() -> bool:
    """Is the current task being cancelled? (Checked, not raised: aclose must close.)"""
    k = getattr(_state.local, "kernel", None)
    task = k.current if k is not None else None
    return bool(task is not None and task._cancel_pending)
