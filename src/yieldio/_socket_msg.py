"""The datagram and ancillary-data methods of :class:`yieldio.socket.SocketType`.

``recvfrom``/``sendto`` (a datagram and its address), ``recvmsg``/``sendmsg``
(scatter/gather buffers plus ancillary data, such as passing file
descriptors over a Unix socket) and their ``_into`` forms. Each is the
stdlib call run through the socket's one try-then-wait helper (``_io``):
they share no state with the byte-stream methods, so they live apart.
"""

from __future__ import annotations

import socket as _stdsocket
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from ._io import wait_readable, wait_writable
from ._resolve import resolve_sockaddr

__all__ = ["MessageMethods"]


class MessageMethods:
    """Mixed into :class:`~yieldio.socket.SocketType`, which provides ``_sock`` and ``_io``.

    ::

        data, addr = await sock.recvfrom(65535)
        await sock.sendto(data, addr)
    """

    if TYPE_CHECKING:
        _sock: _stdsocket.socket

        def _io(self, fn: Any, args: tuple[Any, ...], wait: Any) -> Awaitable[Any]: ...

    def recvfrom(self, bufsize: int, flags: int = 0) -> Awaitable[tuple[bytes, Any]]:
        """Receive a datagram (or stream data): return ``(data, address)``."""
        return self._io(self._sock.recvfrom, (bufsize, flags),
                        wait_readable)

    def recvfrom_into(self, buffer: Any, nbytes: int = 0,
                      flags: int = 0) -> Awaitable[tuple[int, Any]]:
        """Like :meth:`recvfrom` but into ``buffer``: return ``(nbytes, address)``."""
        return self._io(self._sock.recvfrom_into,  # type: ignore[no-any-return]
                        (buffer, nbytes, flags), wait_readable)

    def recvmsg(self, bufsize: int, ancbufsize: int = 0,
                flags: int = 0) -> Awaitable[tuple[bytes, list[Any], int, Any]]:
        """Like :meth:`socket.socket.recvmsg` (for example to receive file descriptors)."""
        return self._io(self._sock.recvmsg,  # type: ignore[no-any-return]
                        (bufsize, ancbufsize, flags), wait_readable)

    def recvmsg_into(self, buffers: Any, ancbufsize: int = 0,
                     flags: int = 0) -> Awaitable[tuple[int, list[Any], int, Any]]:
        """Like :meth:`socket.socket.recvmsg_into`: scatter the data into ``buffers``.

        ::

            nbytes, ancdata, flags, addr = await sock.recvmsg_into([header, body])
        """
        # A list, not an iterator: a retry after a wait must see the buffers again.
        return self._io(self._sock.recvmsg_into,  # type: ignore[no-any-return]
                        (list(buffers), ancbufsize, flags), wait_readable)

    async def sendto(self, data: Any, flags_or_address: Any, address: Any = None) -> int:
        """Send a datagram: ``sendto(data, address)`` or ``sendto(data, flags, address)``.

        A host name in ``address`` is resolved first (without blocking).
        """
        if address is None:
            flags, address = 0, flags_or_address
        else:
            flags = flags_or_address
        address = await resolve_sockaddr(self._sock, address)
        return await self._io(self._sock.sendto, (data, flags, address),  # type: ignore[no-any-return]
                              wait_writable)

    def sendmsg(self, buffers: Any, ancdata: Any = (), flags: int = 0,
                address: Any = None) -> Awaitable[int]:
        """Like :meth:`socket.socket.sendmsg` (for example to pass file descriptors).

        A host name in ``address`` is resolved first (without blocking), as
        in :meth:`sendto`.
        """
        if address is None:
            return self._io(self._sock.sendmsg, (buffers, ancdata, flags),  # type: ignore[no-any-return]
                            wait_writable)
        return self._sendmsg_to(buffers, ancdata, flags, address)

    async def _sendmsg_to(self, buffers: Any, ancdata: Any, flags: int, address: Any) -> int:
        # A coroutine only when there is an address to resolve: the plain
        # sendmsg (fd passing on a connected socket) keeps its single layer.
        address = await resolve_sockaddr(self._sock, address)
        return await self._io(self._sock.sendmsg,  # type: ignore[no-any-return]
                              (buffers, ancdata, flags, address), wait_writable)
