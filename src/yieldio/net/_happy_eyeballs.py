"""Happy Eyeballs (RFC 8305): racing connection attempts to a host's addresses.

:func:`happy_eyeballs` is the race itself, on any kind of connection (the
in-memory network of :mod:`yieldio.testing` reuses it); :func:`_os_connect_tcp`
runs it on real sockets for :meth:`OSNetwork.connect_tcp`. When every
attempt fails, :func:`_combined_error` makes one ``OSError`` that names
each address with its own reason.
"""

from __future__ import annotations

import logging
import math
import os as _os
import socket as _stdsocket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from .._taskgroup import TaskGroup
from .._timeouts import move_on_after
from ..socket import SocketType
from ..socket import socket as _new_socket
from ..sync import Event
from ._socket_stream import SocketStream

__all__ = ["happy_eyeballs", "interleave_families", "format_target"]

logger = logging.getLogger("yieldio.server")

T = TypeVar("T")

# Linux: bind() picks the address now and the port at connect() time, so a
# client with local_address= does not use up the ephemeral ports.
_IP_BIND_ADDRESS_NO_PORT = getattr(_stdsocket, "IP_BIND_ADDRESS_NO_PORT", 24)


# -- Happy Eyeballs (RFC 8305) ----------------------------------------------------
def interleave_families(targets: Sequence[T], family_of: Callable[[T], int]) -> list[T]:
    """Reorder resolved addresses so families alternate, keeping the resolver's first first.

    RFC 8305 section 4: the first address of the preferred family, then one
    of the other family, and so on.

    >>> interleave_families([(6, "a"), (6, "b"), (4, "c")], lambda t: t[0])
    [(6, 'a'), (4, 'c'), (6, 'b')]
    """
    if not targets:
        return []
    first = family_of(targets[0])
    same = [t for t in targets if family_of(t) == first]
    other = [t for t in targets if family_of(t) != first]
    out: list[T] = []
    for i in range(max(len(same), len(other))):
        if i < len(same):
            out.append(same[i])
        if i < len(other):
            out.append(other[i])
    return out


async def happy_eyeballs(targets: Sequence[T], connect: Callable[[T], Awaitable[Any]],
                         delay: float | None = 0.25,
                         close: Callable[[Any], Awaitable[None]] | None = None,
                         describe: Callable[[T], str] = repr,
                         peer: str | None = None) -> Any:
    """Race connection attempts to ``targets``, staggered; return the first that succeeds.

    ::

        conn = await happy_eyeballs(sockaddrs, connect_one, delay=0.25)

    Attempt *n+1* starts ``delay`` seconds after attempt *n*, or at once if
    attempt *n* fails first (``delay=None``: only then -- one at a time).
    The first success wins; every other attempt is cancelled, and a result
    that arrives too late is closed with ``close`` (default: its
    ``aclose()``, else ``close()``). If all fail with ``OSError``, raise one
    ``OSError`` that carries them all (``.errors``, and an ``ExceptionGroup``
    as ``__cause__``); if every attempt failed with the same ``errno`` it has
    that ``errno`` (a ``ConnectionRefusedError`` if every attempt was
    refused). Its message names ``peer`` (what was being connected to,
    e.g. ``"example.com:443"``), how many addresses were tried, and each
    target (``describe(target)``) with its error, once::

        [Errno 111] cannot connect to localhost:8080 (2 addresses tried):
        [::1]:8080: Connection refused; 127.0.0.1:8080: Connection refused

    Reused by the in-memory network of :mod:`yieldio.testing`.
    """
    if not targets:
        raise OSError("no address to connect to")
    wait = math.inf if delay is None else max(0.0, float(delay))
    winner: list[Any] = []
    errors: list[tuple[T, OSError]] = []

    async def attempt(target: T, failed: Event, tg: TaskGroup) -> None:
        try:
            conn = await connect(target)
        except OSError as exc:
            errors.append((target, exc))
            failed.set()
            return
        if winner:
            await _close_quietly(conn, close)
        else:
            winner.append(conn)
            tg.cancel()

    try:
        async with TaskGroup() as tg:
            for target in targets:
                failed = Event()
                tg.spawn(attempt, target, failed, tg, name=f"happy eyeballs {describe(target)}")
                with move_on_after(wait):
                    await failed.wait()
    except BaseException:
        for conn in winner:
            await _close_quietly(conn, close)
        raise
    if winner:
        return winner[0]
    raise _combined_error(errors, describe, peer)


async def _close_quietly(conn: Any, close: Callable[[Any], Awaitable[None]] | None) -> None:
    try:
        if close is not None:
            await close(conn)
        elif hasattr(conn, "aclose"):
            await conn.aclose()
        else:
            conn.close()
    except Exception:  # a loser's close failing must not hide the winner
        logger.debug("closing a losing connection attempt failed", exc_info=True)


def _combined_error(errors: list[tuple[Any, OSError]], describe: Callable[[Any], str],
                    peer: str | None) -> OSError:
    """One ``OSError`` for every failed attempt, each named and explained once.

    Each attempt's own message usually repeats its errno and address (the
    socket's "[Errno 111] error connecting to ('127.0.0.1', 80): Connection
    refused"), so only the reason is quoted; the exceptions themselves stay
    in ``.errors`` and the ``__cause__`` group.
    """
    excs = [e for _, e in errors]
    places = [describe(t) for t, _ in errors]
    reasons = [_reason(e) for e in excs]
    where = f"cannot connect to {peer}" if peer else "connection failed"
    if len(errors) == 1 and places[0] == peer:  # an IP literal: its one address is the peer
        message = f"{where}: {reasons[0]}"
    else:
        tried = f"{len(errors)} address{'es' if len(errors) > 1 else ''} tried"
        message = f"{where} ({tried}): " + "; ".join(
            f"{place}: {reason}" for place, reason in zip(places, reasons, strict=True))
    codes = {e.errno for e in excs}
    if len(codes) == 1 and None not in codes:
        # OSError(errno, msg) picks the subclass: ConnectionRefusedError, ...
        err = OSError(codes.pop(), message)
    else:
        err = OSError(message)
    err.errors = excs  # type: ignore[attr-defined]
    err.__cause__ = ExceptionGroup("connection attempts", excs)
    return err


def _reason(exc: OSError) -> str:
    """Why one attempt failed, without the errno prefix or the address it names."""
    if exc.errno is not None:
        try:
            return _os.strerror(exc.errno)
        except ValueError:  # not an errno the platform knows
            pass
    return str(exc) or type(exc).__name__


def format_target(host: str | bytes, port: int) -> str:
    """``host:port`` for messages, with an IPv6 literal in brackets: ``[::1]:80``."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _os_connect_tcp(network: Any, host: Any, port: Any, *, local_address: str | None,
                          happy_eyeballs_delay: float | None) -> SocketStream:
    """OSNetwork.connect_tcp: resolve through ``network``, then Happy Eyeballs on real sockets."""
    infos = await network.getaddrinfo(host, port, 0, _stdsocket.SOCK_STREAM)
    if local_address is not None:
        family = _family_of_ip(local_address)
        infos = [i for i in infos if i[0] == family]
        if not infos:
            raise OSError(f"{host!r} has no address of the family of local_address "
                          f"{local_address!r}")
    targets = interleave_families(infos, lambda info: info[0])

    async def connect_one(info: Any) -> SocketType:
        family, type_, proto, _, sockaddr = info
        sock = _new_socket(family, type_, proto)
        try:
            if local_address is not None:
                try:
                    sock.setsockopt(_stdsocket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
                except OSError:
                    pass
                sock.bind((local_address, 0))
            await sock.connect(sockaddr)
        except BaseException:
            sock.close()
            raise
        return sock

    async def close(sock: SocketType) -> None:
        sock.close()

    sock = await happy_eyeballs(targets, connect_one, happy_eyeballs_delay, close,
                                describe=lambda info: _format_sockaddr(info[4]),
                                peer=format_target(host, port))
    return SocketStream(sock)


def _family_of_ip(address: str) -> int:
    for family in (_stdsocket.AF_INET, _stdsocket.AF_INET6):
        try:
            _stdsocket.inet_pton(family, address)
            return family
        except (OSError, ValueError):
            pass
    raise ValueError(f"local_address must be an IP address, not {address!r}")


def _format_sockaddr(sockaddr: Any) -> str:
    if isinstance(sockaddr, tuple) and len(sockaddr) >= 2:
        return format_target(str(sockaddr[0]), sockaddr[1])
    return repr(sockaddr)
