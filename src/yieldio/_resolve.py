"""Name resolution for :mod:`yieldio.socket`, without blocking the loop.

IP literals (and ``None``) are answered inline: ``AI_NUMERICHOST`` makes libc
reply at once with no lookup. Names go to the system resolver in a
cancellable worker thread, or to the run's installed network (the in-memory
one of :mod:`yieldio.testing`) when there is one::

    from yieldio import socket

    infos = await socket.getaddrinfo("localhost", 80)

The public functions are re-exported by :mod:`yieldio.socket`, whose
methods also use :func:`bind_address` and :func:`resolve_sockaddr` here to
turn the address a caller gave into one the stdlib socket takes.
"""

from __future__ import annotations

import _socket as _c_socket
import socket as _stdsocket
from socket import AF_INET, AF_INET6, AI_NUMERICHOST, EAI_NONAME, gaierror
from typing import Any

from . import _state

__all__ = ["getaddrinfo", "getnameinfo"]

_local = _state.local
_outside_run = _state.outside_run
# The C function: the numeric fast path must never reach a (patched or
# slow) Python-level resolver on the loop's thread.
_c_getaddrinfo = _c_socket.getaddrinfo
# Host strings the stdlib itself turns into addresses, never resolved.
_STDLIB_SPECIAL_HOSTS = ("", b"", "<broadcast>", b"<broadcast>")


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


# -- the addresses a socket call is given ------------------------------------------
def bind_address(sock: _stdsocket.socket, address: Any) -> Any:
    """``address`` for ``sock.bind``: IP literals as given, ``"localhost"`` mapped.

    A bind is not a coroutine, so it cannot wait for a resolver: any other
    host name is refused with a ``ValueError`` that says what to do instead.
    """
    family = sock.family
    if family not in (AF_INET, AF_INET6) or not isinstance(address, tuple):
        return address
    host = address[0]
    if host in ("", None, "<broadcast>") or _is_ip_literal(host):
        return address
    if host == "localhost":
        return ("127.0.0.1" if family == AF_INET else "::1",) + tuple(address[1:])
    raise ValueError(
        f"bind() cannot resolve the host name {host!r} without blocking the loop; "
        "pass an IP address, or resolve it first with await yieldio.socket.getaddrinfo()"
    )


async def resolve_sockaddr(sock: _stdsocket.socket, address: Any) -> Any:
    """``address`` with its host name resolved for ``sock`` (IP literals pass through).

    What ``connect``, ``sendto`` and ``sendmsg`` need: the stdlib would call
    the blocking resolver itself.
    """
    family = sock.family
    if family not in (AF_INET, AF_INET6) or not isinstance(address, tuple) or \
            len(address) < 2:
        return address
    host = address[0]
    if _is_ip_literal(host) or host in _STDLIB_SPECIAL_HOSTS:
        # "" and "<broadcast>" are no names: the stdlib maps them itself
        # (to INADDR_ANY, INADDR_BROADCAST) without a lookup, as for bind.
        return address
    port = address[1]
    if isinstance(port, int) and not 0 <= port <= 65535:
        # What the stdlib raises; getaddrinfo would take it modulo 65536.
        raise OverflowError(f"port must be 0-65535, not {port}")
    infos = await getaddrinfo(host, address[1], family, sock.type, sock.proto)
    if not infos:
        raise gaierror(EAI_NONAME, f"no {family!r} address found for {host!r}")
    sockaddr = infos[0][4]
    if family == AF_INET6 and len(address) > 2:
        sockaddr = (sockaddr[0], sockaddr[1], *address[2:])
    return sockaddr
