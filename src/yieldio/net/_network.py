"""The Network interface, its OS implementation, and socket listeners.

Everything that opens connections or listens (``open_tcp_stream``,
``serve_tcp``, TLS, ``yieldio.http``) asks :func:`current_network` for the
network of the running kernel. It is :class:`OSNetwork` -- real sockets --
unless the run installed another one (``yieldio.run(main, network=...)``,
for example the in-memory network of :mod:`yieldio.testing`). A network
provides::

    async connect_tcp(host, port, *, local_address=None, happy_eyeballs_delay=0.25) -> Stream
    async listen_tcp(host, port, *, backlog=128, reuse_port=False) -> list[Listener]
    async connect_unix(path) -> Stream
    async listen_unix(path, *, backlog=128) -> Listener
    async getaddrinfo(host, port, family=0, type=0, proto=0, flags=0) -> list

and a :class:`Listener` provides ``async accept() -> Stream``, ``async
aclose()``, ``address`` and ``port``.
"""

from __future__ import annotations

import errno
import logging
import os
import socket as _stdsocket
import stat
from abc import ABC, abstractmethod
from typing import Any

from .. import _state
from .._exceptions import ClosedResourceError
from .._resolve import _os_getaddrinfo
from .._stream import Stream
from ..socket import SocketType
from ..socket import socket as _new_socket
from ._socket_stream import SocketStream

__all__ = ["Listener", "SocketListener", "UnixSocketListener", "OSNetwork", "current_network"]

logger = logging.getLogger("yieldio.server")

# accept() errors that concern only the connection being accepted (it died
# in the backlog, or Linux passes a pending network error up): try the next.
_ACCEPT_SKIP = {
    errno.ECONNABORTED, errno.EPROTO, errno.ENETDOWN, errno.ENOPROTOOPT, errno.EHOSTDOWN,
    errno.ENONET, errno.EHOSTUNREACH, errno.EOPNOTSUPP, errno.ENETUNREACH, errno.EPERM,
}
# accept() errors that mean "out of resources right now": wait a bit, retry.
_ACCEPT_LATER = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
#: How long accept() sleeps before retrying when the process is out of fds.
ACCEPT_RETRY_DELAY = 0.1


class Listener(ABC):
    """Something that accepts incoming connections as :class:`Stream` objects.

    ::

        listeners = await current_network().listen_tcp("127.0.0.1", 0)
        async with listeners[0] as listener:
            stream = await listener.accept()
    """

    @abstractmethod
    async def accept(self) -> Stream:
        """Wait for the next connection and return it as a stream."""
        ...

    @abstractmethod
    async def aclose(self) -> None:
        """Stop listening (idempotent); a task blocked in ``accept`` gets ``ClosedResourceError``."""
        ...

    @property
    @abstractmethod
    def address(self) -> Any:
        """The local address: a sockaddr tuple, or a path for Unix sockets."""
        ...

    @property
    def port(self) -> int | None:
        """The local TCP port, or None for Unix sockets."""
        return None

    async def __aenter__(self) -> Listener:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class SocketListener(Listener):
    """A :class:`Listener` over a listening yieldio (or stdlib) socket.

    ::

        sock = yieldio.socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        listener = SocketListener(sock)
        stream = await listener.accept()

    ``accept`` survives the transient failures a busy server meets: a
    connection reset while waiting in the backlog is skipped, and running
    out of file descriptors (``EMFILE``/``ENFILE``) makes it sleep briefly
    and retry instead of failing (logged once per episode on the
    ``"yieldio.server"`` logger, and its end at INFO level) -- the pending
    connections wait in the backlog until descriptors are free again.
    """

    def __init__(self, sock: SocketType | _stdsocket.socket) -> None:
        if isinstance(sock, _stdsocket.socket):
            sock = SocketType(sock)
        self.socket = sock
        self._closed = False
        self._warned_fds = False
        self._address = sock.getsockname()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._address!r}{' closed' if self._closed else ''}>"

    @property
    def address(self) -> Any:
        return self._address

    @property
    def port(self) -> int | None:
        if isinstance(self._address, tuple):
            return int(self._address[1])
        return None

    async def accept(self) -> SocketStream:
        """Wait for a connection and return it as a :class:`SocketStream`."""
        from .._time import sleep

        while True:
            if self._closed:
                raise ClosedResourceError("this listener is closed")
            try:
                conn, peer = await self.socket.accept()
            except OSError as exc:
                if exc.errno in _ACCEPT_SKIP:
                    continue
                if exc.errno in _ACCEPT_LATER:
                    if not self._warned_fds:
                        self._warned_fds = True
                        logger.warning("accept() on %r failed with %s; retrying every %.1f s "
                                       "until resources are free", self,
                                       errno.errorcode.get(exc.errno or 0, exc.errno),
                                       ACCEPT_RETRY_DELAY)
                    await sleep(ACCEPT_RETRY_DELAY)  # type: ignore[misc]
                    continue
                if self._closed or exc.errno == errno.EBADF:
                    raise ClosedResourceError("this listener is closed") from None
                raise
            if self._warned_fds:
                # The episode is over: say so, and warn again if another begins.
                self._warned_fds = False
                logger.info("accept() on %r works again", self)
            stream = SocketStream(conn)
            # Kept for get_extra_info("peername"): after a reset, getpeername() fails.
            stream._peername = peer
            return stream

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.socket.close()


class UnixSocketListener(SocketListener):
    """A :class:`SocketListener` on a Unix socket path; removes the file on close.

    The file is removed only if it is still the one this listener created
    (same device and inode), so a newer server on the same path is safe.

    ::

        async with yieldio.serve_unix(handler, "/tmp/app.sock") as server:
            ...   # the socket file is removed when the server closes
    """

    def __init__(self, sock: SocketType | _stdsocket.socket, path: str | bytes | None) -> None:
        super().__init__(sock)
        self.path = path
        self._file_id: tuple[int, int] | None = None
        # The file to remove at the end, by absolute path: a relative one
        # would name another file once the process has chdir()ed (as
        # daemons do), and the socket file would be left behind.
        self._file_path: str | bytes | None = None
        if path is not None and not _is_abstract(path):
            st = os.stat(path)
            self._file_id = (st.st_dev, st.st_ino)
            self._file_path = os.path.abspath(path)

    @property
    def port(self) -> int | None:
        return None

    async def aclose(self) -> None:
        if self._closed:
            return
        try:
            if self._file_id is not None and self._file_path is not None:
                try:
                    st = os.stat(self._file_path)
                    if (st.st_dev, st.st_ino) == self._file_id:
                        os.unlink(self._file_path)
                except FileNotFoundError:
                    pass
        finally:
            await super().aclose()


def _is_abstract(path: str | bytes) -> bool:
    """A Linux abstract address: no file to check, stat or remove.

    ``""`` too: binding it makes Linux pick a free abstract name ("autobind",
    read back from ``getsockname``); there is no file, and ``os.stat("")``
    failed with a baffling ``FileNotFoundError`` after the bind succeeded.
    """
    return not path or path[:1] in ("\0", b"\0")


class OSNetwork:
    """The real network: sockets of the operating system.

    ::

        net = yieldio.net.current_network()     # an OSNetwork unless one was installed
        stream = await net.connect_tcp("127.0.0.1", 8000)
    """

    def __repr__(self) -> str:
        return "<OSNetwork>"

    async def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0,
                          proto: int = 0, flags: int = 0) -> list[Any]:
        """The system resolver, in a cancellable worker thread (IP literals inline)."""
        return await _os_getaddrinfo(host, port, family, type, proto, flags)

    async def connect_tcp(self, host: str | bytes, port: int | str, *,
                          local_address: str | None = None,
                          happy_eyeballs_delay: float | None = 0.25) -> SocketStream:
        """Resolve ``host`` and connect with Happy Eyeballs (see :func:`open_tcp_stream`)."""
        from ._happy_eyeballs import _os_connect_tcp

        return await _os_connect_tcp(self, host, port, local_address=local_address,
                                     happy_eyeballs_delay=happy_eyeballs_delay)

    async def listen_tcp(self, host: str | bytes | None, port: int | str, *, backlog: int = 128,
                         reuse_port: bool = False) -> list[SocketListener]:
        """Bind and listen on every address ``host`` resolves to (None, "" or b"": all interfaces).

        With port 0 and several addresses, all listeners share the port the
        first one got, so a server has one port number.
        """
        if isinstance(host, (str, bytes)) and not host:
            host = None  # (b"" too: getaddrinfo would take it for a name and fail)
        infos = await self.getaddrinfo(host, port, 0, _stdsocket.SOCK_STREAM, 0,
                                       _stdsocket.AI_PASSIVE)
        targets: list[tuple[int, int, Any]] = []
        for family, _type, proto, _name, sockaddr in infos:
            key = (family, proto, sockaddr)
            if key not in targets:
                targets.append(key)
        if not targets:
            raise OSError(f"{host!r} resolved to no address to listen on")
        attempts = 5 if len(targets) > 1 and _is_zero_port(port) else 1
        for attempt in range(attempts):
            try:
                return _bind_all(targets, backlog, reuse_port)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    async def connect_unix(self, path: str | bytes | os.PathLike[str]) -> SocketStream:
        """Connect to the Unix socket at ``path``."""
        sock = _new_socket(_stdsocket.AF_UNIX, _stdsocket.SOCK_STREAM)
        try:
            await sock.connect(os.fspath(path))
        except BaseException:
            sock.close()
            raise
        return SocketStream(sock)

    async def listen_unix(self, path: str | bytes | os.PathLike[str], *,
                          backlog: int = 128) -> UnixSocketListener:
        """Listen on the Unix socket ``path``.

        A leftover socket file that nobody listens on any more (a crashed
        server's) is replaced; a live one raises ``OSError(EADDRINUSE)``; a
        file that is not a socket is never touched (``FileExistsError``).
        """
        from .._io import fast_checkpoint

        await fast_checkpoint()
        path = os.fspath(path)
        if not _is_abstract(path):
            _remove_stale_socket_file(path)
        sock = _new_socket(_stdsocket.AF_UNIX, _stdsocket.SOCK_STREAM)
        bound = False
        try:
            sock.bind(path)
            bound = True
            sock.listen(backlog)
            return UnixSocketListener(sock, path)
        except BaseException:
            sock.close()
            if bound and not _is_abstract(path):
                # bind() created the socket file; nothing will ever listen on
                # it now, and no listener exists to remove it on close: a
                # failed start must not leave it behind.
                try:
                    os.unlink(path)
                except OSError:
                    pass
            raise


def _is_zero_port(port: Any) -> bool:
    try:
        return int(port) == 0
    except (TypeError, ValueError):
        return False


def _bind_all(targets: list[tuple[int, int, Any]], backlog: int,
              reuse_port: bool) -> list[SocketListener]:
    listeners: list[SocketListener] = []
    port: int | None = None
    try:
        for family, proto, sockaddr in targets:
            try:
                sock = _new_socket(family, _stdsocket.SOCK_STREAM, proto)
            except OSError as exc:
                if exc.errno == errno.EAFNOSUPPORT and len(targets) > 1:
                    continue  # e.g. no IPv6 in this kernel: serve the other family
                raise
            try:
                sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEADDR, 1)
                if reuse_port:
                    sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEPORT, 1)
                if family == _stdsocket.AF_INET6:
                    # Each family gets its own socket, so "::" must not grab IPv4 too.
                    sock.setsockopt(_stdsocket.IPPROTO_IPV6, _stdsocket.IPV6_V6ONLY, 1)
                if port is not None and sockaddr[1] == 0:
                    sockaddr = (sockaddr[0], port, *sockaddr[2:])
                try:
                    sock.bind(sockaddr)
                except OSError as exc:
                    if exc.errno is None:
                        raise
                    # The stdlib's "[Errno 98] Address already in use" does not
                    # say which address, and host=None or "localhost" binds
                    # several. Same errno (and OSError subclass), as asyncio
                    # and trio do.
                    raise OSError(exc.errno, f"error while attempting to bind on address "
                                  f"{_format_address(sockaddr)}: {exc.strerror}") from None
                sock.listen(backlog)
            except BaseException:
                sock.close()
                raise
            listener = SocketListener(sock)
            listeners.append(listener)
            if port is None:
                port = listener.port
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    return listeners


def _format_address(sockaddr: Any) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _remove_stale_socket_file(path: str | bytes) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(errno.EEXIST, f"{path!r} exists and is not a socket; "
                              "not replacing it", path)
    probe = _stdsocket.socket(_stdsocket.AF_UNIX, _stdsocket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        # Nobody listens: a dead server's leftover. Remove it (if it is still
        # the same file) so that bind() can succeed.
        try:
            if os.stat(path).st_ino == st.st_ino:
                os.unlink(path)
        except FileNotFoundError:
            pass
        return
    except BlockingIOError:
        pass  # backlog full: very much alive
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno != errno.EPROTOTYPE:
            raise
        # A live socket of another type (SOCK_DGRAM, SOCK_SEQPACKET) is bound
        # there: Linux refuses the stream connect with EPROTOTYPE. A dead
        # one's file gives ECONNREFUSED (above), whatever its type.
        raise OSError(errno.EADDRINUSE, f"a socket of another type (e.g. SOCK_DGRAM) is "
                      f"bound to {path!r}", path) from None
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"a server is already listening on {path!r}", path)


_OS_NETWORK = OSNetwork()


def current_network() -> Any:
    """The network of the running kernel: an installed one, or :class:`OSNetwork`.

    ::

        stream = await yieldio.net.current_network().connect_tcp("127.0.0.1", 8000)
    """
    try:
        k = _state.local.kernel
    except AttributeError:
        _state.outside_run()
    network = k.network
    return _OS_NETWORK if network is None else network
