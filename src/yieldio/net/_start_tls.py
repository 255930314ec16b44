"""``start_tls``: upgrade a connection that began in plaintext (STARTTLS) to TLS.

TLS itself is :class:`TLSStream` (``_tls.py``), over any stream. What this
adds is the hand-over: once the handshake succeeded, the stream that was
upgraded is retired (``Stream._hand_over``), so that raw bytes written to
an old reference cannot corrupt the TLS session, and ``TLSStream.unwrap()``
gives the connection back to it (``Stream._take_back``).
"""

from __future__ import annotations

import ssl as _ssl

from .._stream import Stream
from ._tls import TLSStream

__all__ = ["start_tls"]


async def start_tls(stream: Stream, context: _ssl.SSLContext | None = None, *,
                    server_side: bool = False, server_hostname: str | None = None) -> TLSStream:
    """Upgrade ``stream`` to TLS (STARTTLS-style protocols) and return the TLS stream.

    ::

        await stream.write(b"STARTTLS\\r\\n")
        await stream.readline()
        stream = await yieldio.net.start_tls(stream, server_hostname="mail.example.org")

    Data the stream had already buffered is fed to TLS first. ``context``
    defaults to ``ssl.create_default_context()`` on the client side; a
    server must pass one with its certificate. Use the returned stream from
    now on; closing it closes the connection.

    Once the handshake succeeded, ``stream`` itself is retired (socket
    streams; see ``Stream._hand_over``): TLS goes on over a new object on
    the same connection, and reading or writing ``stream`` raises
    ``ClosedResourceError`` -- raw bytes there would corrupt the TLS
    session. ``stream.aclose()`` still closes the connection (a server
    closing its handler's stream must not leak it), and ``unwrap()`` hands
    the connection back to ``stream``. A handshake that failed (an
    ``ssl.SSLError``, after the alert, or an ``OSError``) leaves ``stream``
    as it was: usable, and the caller's to close. One that was cancelled
    part way leaves the connection mid-handshake: ``stream`` is retired
    then too (its reads and writes raise ``ClosedResourceError`` saying so),
    and ``stream.aclose()`` closes the connection.
    """
    if context is None:
        if server_side:
            raise ValueError("start_tls(server_side=True) needs an SSLContext with a certificate")
        context = _ssl.create_default_context()
    tls = TLSStream(stream, context, server_side=server_side, server_hostname=server_hostname)
    try:
        await tls.do_handshake()
    except BaseException as exc:
        if not isinstance(exc, (_ssl.SSLError, OSError)) and (tls._sent_some
                                                              or tls._recv_count):
            # Cancelled (or interrupted) part way: handshake bytes went one
            # way or the other, so the connection is neither plaintext nor
            # TLS. Retire the stream, as a successful upgrade does, so that
            # its next read or write says so instead of mixing the two.
            # (Cancelled before a byte moved, it is still plain: left as is.)
            _retire_interrupted(stream)
        raise
    # Here, not in wrap(): wrap's callers (open_tcp_stream, servers) keep no
    # other reference to the transport, so they need no hand-over. No await
    # between the handshake and the swap: no one can use the old one between.
    moved = stream._hand_over()
    if moved is not None:
        tls.transport = moved
        tls._origin = stream
    return tls


def _retire_interrupted(stream: Stream) -> None:
    moved = stream._hand_over()
    if moved is None:
        # (A stream of a kind that is never retired, or one another task is
        # inside: at least no more bytes go out after the broken handshake.)
        stream._write_broken = True
        return
    stream._tls_interrupted = True
