"""The TLS engine loop: moving bytes between an ``ssl.SSLObject``'s BIOs and the transport.

:class:`TLSEngine` is the half of :class:`~yieldio.net.TLSStream` that a
reader of the Stream API need not see: ``_retry`` runs one engine call to
completion (call it; send what it wrote to the outgoing BIO; if it wants
more input, read the transport into the incoming BIO and call it again),
``_flush`` sends, ``_feed`` reads. The rules for a reader and a writer
sharing one engine are in ``_flush`` and ``_flush_for_reader`` (and in
docs/architecture.md, "TLS: one engine, a reader and a writer").

The attributes it works on (the BIOs, the engine, the locks, the flags) are
made by ``TLSStream.__init__``.
"""

from __future__ import annotations

import ssl as _ssl
from typing import Any

from .._exceptions import Cancelled, ClosedResourceError
from .._stream import DEFAULT_READ_SIZE, BrokenStreamError, Stream
from ..sync import Lock

__all__ = ["TLSEngine"]

_SSLWantReadError = _ssl.SSLWantReadError
_EOF_ERRORS = (_ssl.SSLZeroReturnError, _ssl.SSLEOFError)


class TLSEngine(Stream):
    """The engine loop under :class:`~yieldio.net.TLSStream` (not used on its own)."""

    transport: Stream
    _in: _ssl.MemoryBIO
    _out: _ssl.MemoryBIO
    _ssl: _ssl.SSLObject
    _send_lock: Lock
    _recv_lock: Lock
    _recv_count: int
    _broken: BaseException | None
    _tls_closed: bool
    _transport_eof: bool
    _handshake_done: bool
    _in_send: bool
    _unsent: bytes
    _write_error: BaseException | None
    _plain: bytearray
    #: Whether any ciphertext went to the transport (start_tls: is the
    #: connection still plaintext after a cancelled handshake?).
    _sent_some = False

    def _check_usable(self) -> None:
        if self._closed:
            raise ClosedResourceError("this TLS stream is closed")
        if self._broken is not None:
            raise BrokenStreamError(f"this TLS stream is broken: {self._broken!r}") \
                from self._broken
        if self._tls_closed:
            raise ClosedResourceError("TLS was shut down with unwrap()")

    async def _retry(self, fn: Any, *args: Any, feed_first: bool = False,
                     reading: bool = False) -> Any:
        """Run one engine operation to completion, feeding and draining the BIOs.

        ``feed_first``: the caller just saw ``fn`` want more ciphertext, so
        read it before the first try (a failed try raises an exception:
        not free). ``reading``: an application read, which never waits to
        send (see :meth:`_flush_for_reader`).
        """
        if feed_first:
            await self._feed()
        while True:
            want_read = False
            try:
                result = fn(*args)
            except _SSLWantReadError:
                want_read = True
            except _EOF_ERRORS:
                if self._out.pending:
                    await self._flush_best_effort(reading)
                raise
            except _ssl.SSLError as exc:
                self._broken = exc
                await self._flush_best_effort(reading)
                raise
            if self._out.pending or self._unsent:
                if reading:
                    await self._flush_for_reader(None if want_read else result)
                else:
                    await self._flush()
            if not want_read:
                return result
            await self._feed()

    async def _flush(self) -> None:
        """Send the ciphertext the engine queued, in order (one flusher at a time).

        It sends until the outgoing BIO is empty: records a read queued
        meanwhile (a reply the engine owes the peer) go out with ours, since
        a reader leaves them to an active writer (:meth:`_flush_for_reader`).
        """
        # (acquire/release rather than "async with": two coroutine frames
        # less on the path of every TLS write)
        lock = self._send_lock
        await lock.acquire()
        out = self._out
        try:
            while True:
                data = out.read()
                if self._unsent:
                    data, self._unsent = self._unsent + data, b""
                if not data:
                    return
                if self._write_broken:
                    # A record before these was lost or cut: the peer could
                    # not decrypt them (nor anything after).
                    raise self._write_broken_error()
                try:
                    await self.transport.write(data)
                    self._sent_some = True
                    if not out.pending:
                        return  # (the common case: nothing queued meanwhile)
                except BaseException as exc:
                    if isinstance(exc, Cancelled) and not getattr(self.transport,
                                                                  "_write_broken", True):
                        # Cancelled before a byte went out: nothing is lost.
                        # The records wait, in order, for the next flush (a
                        # reader's cancelled read must not break the stream,
                        # nor drop records a writer queued).
                        self._unsent = data
                        raise
                    # Ciphertext was taken from the engine and not (all) sent:
                    # the TLS record stream is corrupt from here on.
                    self._sent_some = True  # (perhaps part of it)
                    self._write_broken = True
                    self._write_error = exc
                    if not self._handshake_done and self._broken is None:
                        # A lost handshake message: the handshake can never
                        # complete, and a retry (or a read) would wait forever
                        # for the peer's answer to a message it never got.
                        self._broken = exc
                    raise
        finally:
            lock.release()

    async def _flush_for_reader(self, plaintext: bytes | None = None) -> None:
        """Send what a read made the engine queue, unless a writer is at work.

        A reader must never wait for the sending side: a writer blocked on a
        peer that does not read (because its own reader waits the same way)
        would hold it for ever -- a full-duplex deadlock. And a reader that
        flushed a writer's records and was then cancelled dropped them. So
        while a task writes, its own flush (which sends until the BIO is
        empty) takes the read's records along.
        """
        if self._in_send or self._send_lock.locked() or self._write_broken:
            return
        try:
            await self._flush()
        except BaseException:
            if plaintext:
                # The read had its data when the send it owed was cancelled
                # (the peer not reading): keep it for the next read, which
                # serves _plain first, instead of dropping decrypted bytes.
                # (_plain is empty here: a read that found some returned it.)
                self._plain[:0] = plaintext
            raise

    def _write_broken_error(self) -> BrokenStreamError:
        exc = BrokenStreamError("a previous write on this TLS stream was interrupted"
                                + (f" ({self._write_error!r})" if self._write_error else ""))
        exc.__cause__ = self._write_error
        return exc

    async def _flush_best_effort(self, reading: bool = False) -> None:
        """Send an alert the engine queued while failing (so the peer learns why)."""
        try:
            if reading:
                await self._flush_for_reader()
            else:
                await self._flush()
        except Exception:
            pass

    async def _feed(self) -> None:
        count = self._recv_count
        lock = self._recv_lock
        await lock.acquire()
        try:
            if count != self._recv_count:
                return  # another task fed the engine while we waited: retry first
            data = await self.transport.read(DEFAULT_READ_SIZE)
            self._recv_count += 1
            if data:
                self._in.write(data)
            else:
                self._transport_eof = True
                self._in.write_eof()
        finally:
            lock.release()
