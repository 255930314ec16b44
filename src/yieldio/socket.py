"""An async twin of the stdlib :mod:`socket` module.

The constants, exceptions and pure helpers are the stdlib's own objects
(``yieldio.socket.AF_INET is socket.AF_INET``); what changes is the socket
class: every operation that could block is an ``async`` method that waits
for the kernel's readiness notification instead of blocking the thread::

    import yieldio
    from yieldio import socket

    async def main():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with sock:
            await sock.connect(("127.0.0.1", 8000))
            await sock.sendall(b"hello")
            print(await sock.recv(1024))

How an operation works (curio's technique): try the non-blocking system
call first; only if it raises ``BlockingIOError`` wait for readiness and
retry. The common case never enters the kernel. Every operation is a
checkpoint: it raises :class:`yieldio.Cancelled` first thing if the task is
cancelled, and a task's 32nd success in a row that did not wait lets the
other tasks run, so one busy socket cannot starve the rest.

Host names are resolved without blocking the loop: :func:`getaddrinfo` runs
the resolver in a worker thread, and ``connect``/``sendto`` given a name
resolve it that way. ``bind`` is synchronous, so it accepts only IP
literals, ``""`` and ``"localhost"``.
"""

from __future__ import annotations

import socket as _stdsocket
import sys
import warnings
import weakref
from collections.abc import Awaitable, Generator
from socket import (
    AF_INET,
    AF_INET6,
    AF_UNIX,
    AF_UNSPEC,
    AI_NUMERICHOST,
    AI_PASSIVE,
    EAI_NONAME,
    IPPROTO_TCP,
    SHUT_RD,
    SHUT_RDWR,
    SHUT_WR,
    SO_ERROR,
    SO_REUSEADDR,
    SOCK_DGRAM,
    SOCK_STREAM,
    SOL_SOCKET,
    SOMAXCONN,
    TCP_NODELAY,
    error,
    gaierror,
    has_ipv6,
    herror,
    timeout,
)
from typing import Any

from . import _state
from ._exceptions import ClosedResourceError
from ._fdstream import close_fd_soon
from ._io import _fileno, notify_closing, wait_readable, wait_writable
from ._resolve import bind_address, getaddrinfo, getnameinfo, resolve_sockaddr
from ._socket_msg import MessageMethods
from ._traps import SCHEDULE
from ._typing import awaitable

# Re-exports of the stdlib's constants, exceptions and helpers: the common
# names are imported above (so type checkers and IDEs see them); every other
# upper-case constant of the platform and the pure helpers are copied here.
__all__ = [
    "SocketType", "socket", "from_stdlib", "socketpair", "getaddrinfo", "getnameinfo",
    "AF_INET", "AF_INET6", "AF_UNIX", "AF_UNSPEC", "AI_NUMERICHOST", "AI_PASSIVE",
    "EAI_NONAME", "IPPROTO_TCP", "SHUT_RD", "SHUT_RDWR", "SHUT_WR", "SOCK_DGRAM",
    "SOCK_STREAM", "SOL_SOCKET", "SOMAXCONN", "SO_ERROR", "SO_REUSEADDR", "TCP_NODELAY",
    "error", "gaierror", "has_ipv6", "herror", "timeout",
]
_HELPERS = {"htonl", "htons", "ntohl", "ntohs", "inet_aton", "inet_ntoa", "inet_pton",
            "inet_ntop", "CMSG_LEN", "CMSG_SPACE",
            # Pure, non-blocking names code ported from the stdlib reaches for.
            "AddressFamily", "SocketKind", "MsgFlag", "AddressInfo", "gethostname",
            "has_dualstack_ipv6", "if_nameindex", "if_nametoindex", "if_indextoname"}
for _name, _value in vars(_stdsocket).items():
    if ((_name.isupper() and not _name.startswith("_")) or _name in _HELPERS) \
            and _name not in globals():
        globals()[_name] = _value
        __all__.append(_name)
del _name, _value

_local = _state.local
_outside_run = _state.outside_run
_StdSocket = _stdsocket.socket


# -- creating sockets -----------------------------------------------------------
def socket(family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0,
           fileno: int | None = None) -> SocketType:
    """Create a new socket (like :class:`socket.socket`), wrapped for async use.

    ::

        sock = yieldio.socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    """
    return SocketType(_StdSocket(family, type, proto, fileno))


def from_stdlib(sock: _stdsocket.socket) -> SocketType:
    """Wrap an existing stdlib socket; the wrapper owns it from now on.

    The socket is switched to non-blocking mode. ::

        listener = socket.create_server(("127.0.0.1", 0))
        ylistener = yieldio.socket.from_stdlib(listener)
    """
    return SocketType(sock)


def socketpair(family: int = AF_UNIX, type: int = SOCK_STREAM,
               proto: int = 0) -> tuple[SocketType, SocketType]:
    """A pair of connected sockets (like :func:`socket.socketpair`).

    ::

        a, b = yieldio.socket.socketpair()
        await a.sendall(b"ping")
        assert await b.recv(4) == b"ping"
    """
    a, b = _stdsocket.socketpair(family, type, proto)
    return SocketType(a), SocketType(b)


# -- the socket class --------------------------------------------------------------
def _close_dropped(sock: _stdsocket.socket, kernel: Any) -> None:
    """A :class:`SocketType` was dropped without ``close()``: warn, and close via the loop."""
    if sock.fileno() == -1:
        return
    warnings.warn(f"unclosed {sock!r}".replace("<socket.socket", "<yieldio.socket.SocketType", 1),
                  ResourceWarning, stacklevel=2, source=sock)
    close_fd_soon(kernel or getattr(_local, "kernel", None), sock.detach())


class SocketType(MessageMethods):
    """A non-blocking stdlib socket with async methods for everything that can wait.

    ::

        async with yieldio.socket.socket() as sock:     # closed on exit
            await sock.connect(("127.0.0.1", 8000))
            await sock.sendall(b"ping")
            reply = await sock.recv(100)

    Synchronous: ``bind``, ``listen``, ``shutdown``, ``close``, ``fileno``,
    ``dup``, ``detach``, ``getsockname``, ``getpeername``, ``setsockopt``,
    ``getsockopt``, ``get_inheritable``, ``set_inheritable``. Asynchronous (each a
    checkpoint): ``connect``, ``accept``, ``recv``, ``recv_into``, ``recvfrom``,
    ``recvfrom_into``, ``recvmsg``, ``recvmsg_into``, ``send``,
    ``sendall``, ``sendto``, ``sendmsg``. At most one task may wait to read
    and one to write at a time (:class:`yieldio.BusyResourceError`);
    closing the socket wakes them with :class:`yieldio.ClosedResourceError`.
    """

    def __init__(self, sock: _stdsocket.socket) -> None:
        if not isinstance(sock, _StdSocket):
            raise TypeError(f"expected a stdlib socket.socket, not {type(sock).__name__}")
        # An ssl.SSLSocket is a socket.socket subclass, but non-blocking it
        # fails with SSLWantReadError/SSLWantWriteError, which no yieldio
        # method waits on: every recv would raise where it should wait.
        # (No SSLSocket can exist unless ssl was imported: no import here.)
        ssl_module = sys.modules.get("ssl")
        if ssl_module is not None and isinstance(sock, ssl_module.SSLSocket):
            raise TypeError("cannot wrap an ssl.SSLSocket: wrap the plain socket and use "
                            "yieldio.net.SocketStream + TLSStream (or open_tcp_stream(ssl=...))")
        sock.setblocking(False)
        self._sock = sock
        # Bound methods of the stdlib socket, looked up once.
        self._recv = sock.recv
        self._send = sock.send
        # A byte stream whose last recv came back short has (almost surely)
        # nothing more buffered: the next recv waits for readiness first
        # instead of trying a recv that fails with BlockingIOError (as dear
        # as the wait it then does anyway). Never for datagrams, where a
        # short read says nothing about what is queued.
        self._is_stream = sock.type == _stdsocket.SOCK_STREAM
        self._drained = False
        # The run that may watch this fd: a dropped socket's close goes to it.
        self._kernel = kernel = getattr(_local, "kernel", None)
        if kernel is not None:
            kernel.forget_stale(sock.fileno())
        # Dropped without close(), the stdlib socket's own finalizer would
        # close the fd behind the loop's back, leaving its epoll interest on
        # the fd number: the next socket or pipe to get that number would
        # never be registered, and its waiters would hang. So the loop is
        # told first, as FdStream does. A weakref callback, not __del__: when
        # the wrapper dies in a reference cycle, the garbage collector runs
        # the finalizers of the cycle in no set order (the stdlib socket's
        # could run first), but it runs weakref callbacks before any of
        # them -- and this one holds the stdlib socket, so that socket is
        # not garbage until the callback has taken its fd.
        self._dropped = weakref.finalize(self, _close_dropped, sock, kernel)
        self._dropped.atexit = False

    def __repr__(self) -> str:
        return repr(self._sock).replace("<socket.socket", "<yieldio.socket.SocketType", 1)

    # -- plain attributes and synchronous calls --------------------------------
    @property
    def family(self) -> int:
        """The address family, as the stdlib socket's (``AF_INET``, ``AF_INET6``, ``AF_UNIX``)."""
        return self._sock.family

    @property
    def type(self) -> int:
        """The socket type, as the stdlib socket's (``SOCK_STREAM``, ``SOCK_DGRAM``)."""
        return self._sock.type

    @property
    def proto(self) -> int:
        """The protocol number, as the stdlib socket's (usually 0)."""
        return self._sock.proto

    def fileno(self) -> int:
        """The file descriptor, or -1 once closed."""
        return self._sock.fileno()

    def getsockname(self) -> Any:
        """This end's address (no I/O, so not a coroutine)::

            host, port = sock.getsockname()
        """
        return self._sock.getsockname()

    def getpeername(self) -> Any:
        """The other end's address; ``OSError`` if not connected::

            host, port = sock.getpeername()
        """
        return self._sock.getpeername()

    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
        """Set a socket option, as the stdlib does::

            sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
        """
        if optlen is None:
            self._sock.setsockopt(level, optname, value)
        else:
            self._sock.setsockopt(level, optname, value, optlen)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        """Read a socket option, as the stdlib does::

            sock.getsockopt(SOL_SOCKET, SO_ERROR)
        """
        if buflen is None:
            return self._sock.getsockopt(level, optname)
        return self._sock.getsockopt(level, optname, buflen)

    def get_inheritable(self) -> bool:
        """Whether the fd is inherited by child processes (``False`` by default)."""
        return self._sock.get_inheritable()

    def set_inheritable(self, inheritable: bool) -> None:
        """Let child processes inherit the fd (or not), as the stdlib does."""
        self._sock.set_inheritable(inheritable)

    def bind(self, address: Any) -> None:
        """Bind to ``address``; the host must be an IP literal, ``""`` or ``"localhost"``.

        (``bind`` is synchronous, so it cannot resolve names without blocking
        the loop: resolve first with ``await yieldio.socket.getaddrinfo``.)
        """
        self._sock.bind(bind_address(self._sock, address))

    def listen(self, backlog: int = SOMAXCONN) -> None:
        """Start accepting connections (no I/O, so not a coroutine)::

            sock.bind(("127.0.0.1", 0))
            sock.listen()
        """
        self._sock.listen(backlog)

    def shutdown(self, how: int) -> None:
        """Shut down one or both directions (``SHUT_RD``, ``SHUT_WR``, ``SHUT_RDWR``)."""
        self._sock.shutdown(how)

    def close(self) -> None:
        """Close the socket (idempotent); tasks waiting on it get ``ClosedResourceError``."""
        if self._sock.fileno() != -1:
            notify_closing(self._sock)
            self._sock.close()
        self._drained = False  # a recv after close fails as the stdlib's does (EBADF)

    def detach(self) -> int:
        """Forget the file descriptor without closing it and return it."""
        if self._sock.fileno() != -1:
            notify_closing(self._sock)
        self._drained = False
        return self._sock.detach()

    def dup(self) -> SocketType:
        """A new yieldio socket on a duplicate of the file descriptor (as ``socket.dup``).

        Both must be closed. ``OSError`` (``EBADF``) once this one is closed::

            copy = sock.dup()
        """
        return SocketType(self._sock.dup())

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called (or the fd was detached)."""
        return self._sock.fileno() == -1

    def __enter__(self) -> SocketType:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> SocketType:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    # -- connecting and accepting --------------------------------------------------
    async def connect(self, address: Any) -> None:
        """Connect to ``address``; a host name is resolved first (without blocking).

        Raises the OS error of a failed attempt (``ConnectionRefusedError``,
        ...). Cancelling ``connect`` raises ``Cancelled`` and closes nothing,
        but the socket is then *unusable*: the kernel may still be completing
        (or have completed) the attempt. Close it and make a new one.
        """
        try:
            k = _local.kernel
        except AttributeError:
            _outside_run()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        address = await resolve_sockaddr(self._sock, address)
        sock = self._sock
        try:
            sock.connect(address)
        except BlockingIOError:
            pass  # EINPROGRESS: finish below
        else:
            # Connected at once (Unix sockets, usually): the counted schedule point.
            from ._io import fast_checkpoint

            await fast_checkpoint()
            return
        if sock.family == AF_UNIX:
            # A Unix socket says EAGAIN when the listener's backlog is full; no
            # attempt is in progress, so readiness would tell nothing: retry.
            await self._retry_unix_connect(address)
            return
        await wait_writable(sock)
        err = sock.getsockopt(SOL_SOCKET, SO_ERROR)
        if err:
            import os

            raise OSError(err, f"error connecting to {address!r}: {os.strerror(err)}")

    async def _retry_unix_connect(self, address: Any) -> None:
        from ._time import sleep

        delay = 0.001
        while True:
            await sleep(delay)  # type: ignore[misc]
            delay = min(delay * 2, 0.1)
            if self._sock.fileno() == -1:  # closed by another task meanwhile:
                # as for a task blocked in wait_writable (not the EBADF of connect)
                raise ClosedResourceError("another task closed this resource")
            try:
                self._sock.connect(address)
            except BlockingIOError:
                continue
            return

    @awaitable
    def accept(self) -> Generator[Any, Any, tuple[SocketType, Any]]:
        """Wait for a connection; return ``(SocketType, address)``.

        ::

            conn, addr = await listener.accept()
        """
        try:
            k = _local.kernel
        except AttributeError:
            _outside_run()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        sock = self._sock
        try:
            conn, addr = sock.accept()
        except BlockingIOError:
            pass
        else:
            k.fast_budget -= 1
            if k.fast_budget <= 0:
                k.fast_budget = k.fast_budget_full
                yield SCHEDULE
            return SocketType(conn), addr
        while True:
            yield from wait_readable(sock)
            try:
                conn, addr = sock.accept()
            except BlockingIOError:
                continue
            except OSError:
                _fileno(sock)  # closed meanwhile: ClosedResourceError
                raise
            return SocketType(conn), addr

    # -- receiving -------------------------------------------------------------------
    # recv() and send() are _io() written out: they are the hot calls, and the
    # generic path costs a bound method, an argument tuple and a call each time.
    @awaitable
    def recv(self, bufsize: int, flags: int = 0) -> Generator[Any, Any, bytes]:
        """Receive up to ``bufsize`` bytes; ``b""`` means the peer closed (EOF)."""
        try:
            k = _local.kernel
        except AttributeError:
            _outside_run()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        if not self._drained or not bufsize:  # (recv(0) returns b"" at once, as the stdlib's)
            try:
                data = self._recv(bufsize, flags)
            except BlockingIOError:
                pass
            else:
                if 0 < len(data) < bufsize and self._is_stream and not flags:
                    self._drained = True
                k.fast_budget -= 1
                if k.fast_budget <= 0:
                    k.fast_budget = k.fast_budget_full
                    yield SCHEDULE
                return data
        sock = self._sock
        # A task woken as ready whose socket another task closed before it
        # ran fails its retry with EBADF: the same event as a close during
        # the wait, so the same ClosedResourceError (here and in every loop).
        while True:
            yield from wait_readable(sock)
            try:
                data = self._recv(bufsize, flags)
            except BlockingIOError:
                continue
            except OSError:
                _fileno(sock)  # closed meanwhile: ClosedResourceError
                raise
            self._drained = 0 < len(data) < bufsize and self._is_stream and not flags
            return data

    @awaitable
    def _io(self, fn: Any, args: tuple[Any, ...], wait: Any) -> Generator[Any, Any, Any]:
        """Try ``fn(*args)``; on ``BlockingIOError`` wait with ``wait`` and retry."""
        try:
            k = _local.kernel
        except AttributeError:
            _outside_run()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        try:
            result = fn(*args)
        except BlockingIOError:
            pass
        else:
            k.fast_budget -= 1
            if k.fast_budget <= 0:
                k.fast_budget = k.fast_budget_full
                yield SCHEDULE
            return result
        sock = self._sock
        while True:
            yield from wait(sock)
            try:
                return fn(*args)
            except BlockingIOError:
                continue
            except OSError:
                _fileno(sock)  # closed meanwhile: ClosedResourceError
                raise

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> Awaitable[int]:
        """Receive into ``buffer``; return the number of bytes written (0 at EOF)."""
        return self._io(self._sock.recv_into, (buffer, nbytes, flags),
                        wait_readable)

    # -- sending ---------------------------------------------------------------------
    @awaitable
    def send(self, data: Any, flags: int = 0) -> Generator[Any, Any, int]:  # _io() inlined
        """Send some of ``data``; return how many bytes the OS accepted (at least 1)."""
        try:
            k = _local.kernel
        except AttributeError:
            _outside_run()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        try:
            n = self._send(data, flags)
        except BlockingIOError:
            pass
        else:
            k.fast_budget -= 1
            if k.fast_budget <= 0:
                k.fast_budget = k.fast_budget_full
                yield SCHEDULE
            return n
        sock = self._sock
        while True:
            yield from wait_writable(sock)
            try:
                return self._send(data, flags)
            except BlockingIOError:
                continue
            except OSError:
                _fileno(sock)  # closed meanwhile: ClosedResourceError
                raise

    @awaitable
    def sendall(self, data: Any, flags: int = 0) -> Generator[Any, Any, None]:
        """Send all of ``data``, waiting for room as needed.

        Memory stays bounded: nothing is copied or buffered. If ``sendall``
        is cancelled part way it raises ``Cancelled`` and *how much was sent
        is unknown* (some prefix of ``data``): the byte stream can no longer
        be trusted; close the connection.
        """
        try:
            k = _local.kernel
        except AttributeError:
            _outside_run()
        task = k.current
        if task._cancel_pending:
            task._raise_cancel()
        if type(data) is not bytes and type(data) is not bytearray:
            data = memoryview(data).cast("B")
        total = len(data)
        try:
            sent = self._send(data, flags)
        except BlockingIOError:
            sent = 0
        if sent == total:
            k.fast_budget -= 1
            if k.fast_budget <= 0:
                k.fast_budget = k.fast_budget_full
                yield SCHEDULE
            return
        sock = self._sock
        send = self._send
        with memoryview(data) as view:
            while sent < total:
                yield from wait_writable(sock)
                try:
                    sent += send(view[sent:], flags)
                except BlockingIOError:
                    pass
                except OSError:
                    _fileno(sock)  # closed meanwhile: ClosedResourceError
                    raise
