"""Name resolution for :mod:`yieldio.socket`, without blocking the loop.

IP literals (and ``None``) are answered inline: ``AI_NUMERICHOST`` makes libc
reply at once with no lookup. Names go to the system resolver in a
cancellable worker thread, or to the run's installed network (the in-memory
one of :mod:`yieldio.testing`) when there is one::

    from yieldio import socket

    infos = await socket.getaddrinfo("localhost", 80)

The public functions are re-exported by :mod:`yieldio.socket`.
"""

from __future__ import annotations

import _socket as _c_socket
import socket as _stdsocket
from socket import AI_NUMERICHOST, gaierror
from typing import Any

from . import _state

__all__ = ["getaddrinfo", "getnameinfo"]

_local = _state.local
_outside_run = _state.outside_run
# The C function: the numeric fast path must never reach a (patched or
# slow) Python-level resolver on the loop's thread.
_c_getaddrinfo = _c_socket.getaddrinfo


def _numeric_getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0,
                         proto: int = 0, flags: int = 0) -> list[Any] | None:
    """Resolve without the resolver if ``host`` is an IP literal (or None); else None.

    ``AI_NUMERICHOST`` makes libc answer at once without any lookup, so this
    never blocks; a name fails fast with ``EAI_NONAME``.
    """
    if host is not None and not _is_ip_literal(host):
        return None
    infos = _c_getaddrinfo(host, port, family, type, proto, flags | AI_NUMERICHOST)
    # The same enums as socket.getaddrinfo returns.
    return [(_family_enum(af), _kind_enum(kind), pr, canon, sa)
            for af, kind, pr, canon, sa in infos]


def _family_enum(value: int) -> int:
    try:
        return _stdsocket.AddressFamily(value)
    except ValueError:
        return value


def _kind_enum(value: int) -> int:
    try:
        return _stdsocket.SocketKind(value)
    except ValueError:
        return value


def _is_ip_literal(host: Any) -> bool:
    if isinstance(host, bytes):
        try:
            host = host.decode("ascii")
        except UnicodeDecodeError:
            return False
    if not isinstance(host, str):
        return False
    try:
        _c_getaddrinfo(host, None, 0, 0, 0, AI_NUMERICHOST)
    except (gaierror, UnicodeError):
        return False
    return True


async def getaddrinfo(host: str | bytes | None, port: str | int | None, family: int = 0,
                      type: int = 0, proto: int = 0, flags: int = 0) -> list[Any]:
    """Resolve ``host``/``port`` like :func:`socket.getaddrinfo`, without blocking the loop.

    ::

        for family, type, proto, _, sockaddr in await socket.getaddrinfo("localhost", 80):
            print(family, sockaddr)

    IP literals are answered at once; names are resolved by the system
    resolver in a worker thread (``yieldio.to_thread(..., cancellable=True)``),
    so cancelling the caller returns at once and the thread's late answer is
    discarded. When the run has a network installed (``yieldio.run(...,
    network=...)``, e.g. the in-memory one of :mod:`yieldio.testing`), the
    question goes to it instead. Failures raise :class:`socket.gaierror`.
    """
    try:
        k = _local.kernel
    except AttributeError:
        _outside_run()
    network = k.network
    if network is not None:
        return list(await network.getaddrinfo(host, port, family, type, proto, flags))
    return await _os_getaddrinfo(host, port, family, type, proto, flags)


async def _os_getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0,
                          proto: int = 0, flags: int = 0) -> list[Any]:
    """The OS resolver: numeric answers inline, names in a cancellable worker thread."""
    from .threads import to_thread

    numeric = _numeric_getaddrinfo(host, port, family, type, proto, flags)
    if numeric is not None:
        from ._io import fast_checkpoint

        await fast_checkpoint()
        return numeric
    # (to_thread returns a generator coroutine that mypy cannot see as awaitable)
    return await to_thread(_stdsocket.getaddrinfo, host, port, family, type, proto,  # type: ignore[misc,no-any-return]
                           flags, cancellable=True)


async def getnameinfo(sockaddr: tuple[Any, ...], flags: int) -> tuple[str, str]:
    """Reverse-resolve ``sockaddr`` like :func:`socket.getnameinfo`, in a worker thread.

    ::

        host, service = await socket.getnameinfo(("127.0.0.1", 80), 0)
    """
    from .threads import to_thread

    return await to_thread(_stdsocket.getnameinfo, sockaddr, flags,  # type: ignore[misc,no-any-return]
                           cancellable=True)
