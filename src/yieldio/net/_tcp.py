"""TCP clients and servers: ``open_tcp_stream`` (with Happy Eyeballs) and ``serve_tcp``.

Both go through :func:`current_network`, so they work unchanged on the real
network and on an installed in-memory one. :class:`Server` is shared with
:func:`serve_unix`: it only needs listeners. The race between a host's
addresses (Happy Eyeballs) is in :mod:`._happy_eyeballs`.
"""

from __future__ import annotations

import logging
import ssl as _ssl
from collections.abc import Awaitable, Callable, Coroutine, Generator
from inspect import isawaitable as _isawaitable
from typing import Any, overload

from .._run import _discard
from .._stream import BrokenStreamError, Stream
from .._taskgroup import TASK_STATUS_IGNORED, TaskGroup, TaskStatus
from .._timeouts import move_on_after
from ..sync import Event

# Re-exported: yieldio.testing and the tests import them from here.
from ._happy_eyeballs import format_target as format_target
from ._happy_eyeballs import happy_eyeballs as happy_eyeballs
from ._happy_eyeballs import interleave_families as interleave_families
from ._network import Listener, current_network

__all__ = ["open_tcp_stream", "serve_tcp", "Server", "happy_eyeballs"]

logger = logging.getLogger("yieldio.server")

Handler = Callable[[Stream], Awaitable[Any]]


# -- the client ------------------------------------------------------------------
def _check_port(port: Any) -> None:
    """Refuse what is not a TCP port number.

    Out of range matters: ``getaddrinfo`` takes the port modulo 65536, so
    70000 would silently mean 4464.
    """
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"port must be an int, not {port!r}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be in 0-65535, not {port}")


def _client_context(ssl: Any) -> _ssl.SSLContext | None:
    if ssl is None or ssl is False:
        return None
    if ssl is True:
        return _ssl.create_default_context()
    if isinstance(ssl, _ssl.SSLContext):
        return ssl
    raise TypeError(f"ssl must be None, True or an ssl.SSLContext, not {ssl!r}")


async def open_tcp_stream(host: str | bytes, port: int, *, ssl: bool | _ssl.SSLContext | None = None,
                          server_hostname: str | None = None,
                          happy_eyeballs_delay: float | None = 0.25,
                          local_address: str | None = None) -> Stream:
    """Connect to ``host``:``port`` and return a :class:`Stream`.

    ::

        stream = await yieldio.open_tcp_stream("127.0.0.1", 8000)
        async with stream:
            await stream.write(b"hello\\n")
            print(await stream.readline())

    ``host`` is resolved without blocking the loop (IPv4 and IPv6); the
    addresses are tried with Happy Eyeballs (RFC 8305): families
    interleaved, the next attempt starting after ``happy_eyeballs_delay``
    seconds or as soon as the previous one fails, the first success winning
    and the others cancelled and closed. If every attempt fails you get one
    ``OSError`` carrying all the causes (``ConnectionRefusedError`` if all
    were refused); an unknown host raises ``socket.gaierror``.

    ``ssl=True`` wraps the connection in TLS with
    ``ssl.create_default_context()`` (certificate and host name verified);
    pass an ``SSLContext`` to configure it. ``server_hostname`` defaults to
    ``host``. ``local_address`` binds the client side to that IP first.
    """
    if not isinstance(host, (str, bytes)):
        raise TypeError(f"host must be a str or bytes, not {type(host).__name__}")
    _check_port(port)
    context = _client_context(ssl)
    if context is None and server_hostname is not None:
        raise ValueError("server_hostname is only meaningful with ssl=")
    if context is not None and server_hostname is None:
        # Before connecting: a host that cannot be a TLS name (non-ASCII
        # bytes) failed here after the connection was made, and leaked it.
        server_hostname = host.decode("ascii") if isinstance(host, bytes) else host
    stream = await current_network().connect_tcp(host, port, local_address=local_address,
                                                 happy_eyeballs_delay=happy_eyeballs_delay)
    if context is None:
        return stream  # type: ignore[no-any-return]
    from ._tls import TLSStream

    try:
        return await TLSStream.wrap(stream, context, server_hostname=server_hostname)
    except BaseException:
        await stream.aclose()
        raise


# -- the server ------------------------------------------------------------------------
#: What a handler may fail with when its client went away. Not all of
#: ConnectionError: ConnectionRefusedError can only come from a connection the
#: handler made itself (a backend that is down), which is a real error.
_PEER_WENT_AWAY = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


# A client gone during the TLS handshake (the ssl module reports an EOF there
# as SSLEOFError, "UNEXPECTED_EOF_WHILE_READING").
_HUNG_UP_IN_HANDSHAKE = (_ssl.SSLEOFError, *_PEER_WENT_AWAY)


def _peer_went_away(exc: BaseException) -> bool:
    """Whether a handler's exception only says that its client went away.

    A handler that runs a TaskGroup (a proxy's two pumps, a reader and a
    writer task) gets the reset wrapped in an ``ExceptionGroup``: that is
    still a disconnect, as long as every exception in the group is one.
    """
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(_gone)[1] is None
    return _gone(exc)


def _gone(exc: BaseException) -> bool:
    # A stream broken for writing by a reset (a TLS stream whose reader's
    # flush met it first) says so with its cause.
    return isinstance(exc, _PEER_WENT_AWAY) or (
        isinstance(exc, BrokenStreamError) and isinstance(exc.__cause__, _PEER_WENT_AWAY))


class Server:
    """A running server: listeners, an accept loop each, one task per connection.

    Get one from :func:`serve_tcp` or :func:`serve_unix` and use it as an
    async context manager::

        async def echo(stream):
            async for data in stream:
                await stream.write(data)

        async with yieldio.serve_tcp(echo, "127.0.0.1", 0) as server:
            print("listening on port", server.port)
            await server.serve_forever()

    Inside the block the server accepts connections and runs
    ``await handler(stream)`` for each in its own task. Leaving the block
    (or :meth:`close`) stops accepting, cancels the handlers and closes
    every socket. A handler that raises is logged with its traceback on the
    ``"yieldio.server"`` logger and counted in :attr:`handler_errors`; the
    server keeps serving. A stream is always closed after its handler
    returns. A handler that fails because the peer went away
    (``ConnectionResetError``, ``BrokenPipeError``, ``ConnectionAbortedError``,
    alone or in an ``ExceptionGroup`` of nothing else) is routine, not a bug:
    it is counted in :attr:`disconnects` and logged at INFO level without a
    traceback. Failed TLS handshakes are logged and counted in
    :attr:`tls_errors`, and never reach the handler.

    Counters: :attr:`connections` (open now), :attr:`accepted` (in total),
    :attr:`handler_errors`, :attr:`disconnects`, :attr:`tls_errors`.
    """

    #: Seconds a TLS client gets to complete its handshake before the
    #: connection is dropped (counted in ``tls_errors``).
    tls_handshake_timeout: float = 60.0

    def __init__(self, handler: Handler, open_listeners: Callable[[], Awaitable[list[Listener]]],
                 *, ssl: _ssl.SSLContext | None = None,
                 handler_nursery: TaskGroup | None = None) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be an async function taking a stream, not {handler!r}")
        self._handler = handler
        self._open_listeners = open_listeners
        self._ssl = ssl
        self._handler_nursery = handler_nursery
        self.listeners: list[Listener] = []
        self.connections = 0
        self.accepted = 0
        self.handler_errors = 0
        self.disconnects = 0
        self.tls_errors = 0
        self._entered = False
        self._outer: TaskGroup | None = None
        self._inner: TaskGroup | None = None
        self._close_requested = False
        self._stopped = Event()

    def __repr__(self) -> str:
        return f"<Server {self.addresses!r} connections={self.connections}>"

    @property
    def addresses(self) -> list[Any]:
        """The addresses listened on (sockaddr tuples, or paths)."""
        return [listener.address for listener in self.listeners]

    @property
    def port(self) -> int | None:
        """The TCP port (the same on every address); None for Unix sockets."""
        for listener in self.listeners:
            if listener.port is not None:
                return listener.port
        return None

    def close(self) -> None:
        """Stop the server: stop accepting, cancel handlers, close the sockets (soon).

        :meth:`serve_forever` returns once everything is closed.
        """
        self._close_requested = True
        if self._inner is not None:
            self._inner.cancel()

    async def serve_forever(self) -> None:
        """Wait until the server stops (:meth:`close`, or an accept loop failing)."""
        if not self._entered:
            raise RuntimeError("use 'async with serve_tcp(...) as server' before serve_forever()")
        await self._stopped.wait()

    async def wait_closed(self) -> None:
        """Wait until a :meth:`close` has finished: handlers ended, sockets closed.

        asyncio's name for it (``server.close(); await server.wait_closed()``);
        the same wait as :meth:`serve_forever`.
        """
        if not self._entered:
            raise RuntimeError("use 'async with serve_tcp(...) as server' before wait_closed()")
        await self._stopped.wait()

    async def aclose(self) -> None:
        """:meth:`close` and wait until it has finished (trio's and anyio's name)::

            async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
                ...
                await server.aclose()   # nothing listens on server.port now
        """
        self.close()
        await self.wait_closed()

    async def serve(self, *, task_status: TaskStatus = TASK_STATUS_IGNORED) -> None:
        """Open the server, report it started, and serve until closed or cancelled.

        What ``await server`` and ``tg.start(serve_tcp, ...)`` run: the
        server lives as long as the task that serves it, as in trio::

            server = await tg.start(yieldio.serve_tcp, handler, "127.0.0.1", 0)
            print("listening on", server.port)      # serving, in tg
        """
        async with self:
            task_status.started(self)
            await self.serve_forever()

    def __await__(self) -> Generator[Any, Any, None]:
        """``await serve_tcp(handler, host, port)``: serve until cancelled (trio's idiom)."""
        if self._entered:
            raise RuntimeError("this Server is already open ('async with' or await): "
                               "await server.serve_forever() to wait for it")
        return self.serve().__await__()

    # -- the context manager ---------------------------------------------------
    async def __aenter__(self) -> Server:
        if self._entered:
            raise RuntimeError("a Server can be entered only once")
        self._entered = True
        self.listeners = list(await self._open_listeners())
        outer = TaskGroup()
        try:
            await outer.__aenter__()
        except BaseException:
            await self._close_listeners()
            raise
        self._outer = outer
        outer.spawn(self._run, name=f"server {self.addresses!r}")
        return self

    async def __aexit__(self, etype: Any, exc: BaseException | None, tb: Any) -> bool:
        self.close()
        outer = self._outer
        assert outer is not None
        try:
            return await outer.__aexit__(etype, exc, tb)
        except BaseExceptionGroup as group:
            # The body's own exception, alone: give it back bare, not wrapped.
            if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                raise exc from None
            raise
        finally:
            await self._close_listeners()

    async def _run(self) -> None:
        try:
            async with TaskGroup() as inner:
                self._inner = inner
                if self._close_requested:
                    inner.cancel()
                for listener in self.listeners:
                    inner.spawn(self._accept_loop, listener, inner,
                                name=f"accept {listener.address!r}")
        finally:
            self._inner = None
            await self._close_listeners()
            self._stopped.set()

    async def _close_listeners(self) -> None:
        for listener in self.listeners:
            try:
                await listener.aclose()
            except Exception:
                logger.exception("closing listener %r failed", listener)

    async def _accept_loop(self, listener: Listener, tg: TaskGroup) -> None:
        nursery = self._handler_nursery or tg
        while True:
            stream = await listener.accept()
            self.accepted += 1
            try:
                nursery.spawn(self._serve_one, stream, name="connection handler")
            except BaseException:
                await stream.aclose()
                raise

    async def _serve_one(self, stream: Stream) -> None:
        self.connections += 1
        peer = stream.get_extra_info("peername")
        try:
            if self._ssl is not None:
                from ._tls import TLSStream

                try:
                    # A client that connects and never says hello must not
                    # hold a task (and a descriptor) forever.
                    with move_on_after(self.tls_handshake_timeout) as handshake:
                        stream = await TLSStream.wrap(stream, self._ssl, server_side=True)
                except Exception as exc:
                    self.tls_errors += 1
                    if isinstance(exc, _HUNG_UP_IN_HANDSHAKE):
                        # A health check or a port scan connects and hangs up:
                        # routine, so INFO; a failing protocol stays a WARNING.
                        logger.info("TLS handshake with %s failed: the client hung up (%s)",
                                    peer, exc)
                    else:
                        logger.warning("TLS handshake with %s failed: %s", peer, exc)
                    return
                if handshake.cancelled_caught:
                    self.tls_errors += 1
                    logger.warning("TLS handshake with %s failed: no TLS handshake within %g s",
                                   peer, self.tls_handshake_timeout)
                    return
            try:
                made = self._handler(stream)
                if not _isawaitable(made):
                    # Else "object NoneType can't be used in 'await' expression"
                    # for each connection, naming neither the handler nor the fix.
                    _discard(made)
                    raise TypeError(
                        f"the connection handler "
                        f"{getattr(self._handler, '__qualname__', self._handler)!r} returned "
                        f"{made!r}, not an awaitable: define it as 'async def handler(stream)'")
                await made
            except Exception as exc:
                if _peer_went_away(exc):
                    # The peer went away (reset, broken pipe): routine for a
                    # server, not a bug in the handler. Counted, logged quietly.
                    self.disconnects += 1
                    logger.info("connection from %s lost in handler %s: %r", peer,
                                getattr(self._handler, "__qualname__", self._handler), exc)
                else:
                    self.handler_errors += 1
                    logger.exception("connection handler %s failed (peer %s)",
                                     getattr(self._handler, "__qualname__", self._handler), peer)
        finally:
            self.connections -= 1
            try:
                await stream.aclose()
            except Exception:
                logger.debug("closing a connection failed", exc_info=True)


@overload
def serve_tcp(handler: Handler, host: str | bytes | None, port: int, *,
              ssl: _ssl.SSLContext | None = None, backlog: int = 128, reuse_port: bool = False,
              handler_nursery: TaskGroup | None = None, task_status: None = None) -> Server: ...
@overload
def serve_tcp(handler: Handler, host: str | bytes | None, port: int, *,
              ssl: _ssl.SSLContext | None = None, backlog: int = 128, reuse_port: bool = False,
              handler_nursery: TaskGroup | None = None,
              task_status: TaskStatus) -> Coroutine[Any, Any, None]: ...
def serve_tcp(handler: Handler, host: str | bytes | None, port: int, *,
              ssl: _ssl.SSLContext | None = None, backlog: int = 128, reuse_port: bool = False,
              handler_nursery: TaskGroup | None = None,
              task_status: TaskStatus | None = None) -> Server | Coroutine[Any, Any, None]:
    """Serve TCP on ``host``:``port``: ``async with serve_tcp(...) as server:``.

    ::

        async def handler(stream):
            line = await stream.readline()
            await stream.write(line.upper())

        async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
            stream = await yieldio.open_tcp_stream("127.0.0.1", server.port)
            ...

    trio's two idioms work too: ``await serve_tcp(handler, host, port)``
    serves until cancelled, and ``server = await tg.start(serve_tcp,
    handler, host, port)`` returns once it listens, serving in ``tg``
    (``task_status`` is for ``start()``; see :meth:`Server.serve`).

    Binds every address ``host`` resolves to (``"localhost"``: 127.0.0.1
    and ::1, on one port even when ``port`` is 0); ``None`` or ``""`` means
    all interfaces. ``ssl`` (an ``SSLContext`` with a certificate) serves
    TLS: each connection's handshake happens before the handler runs.
    ``handler_nursery`` spawns the handlers into your own
    :class:`yieldio.TaskGroup`, so leaving the block stops accepting but
    does not cancel them. See :class:`Server`.
    """
    if ssl is not None and not isinstance(ssl, _ssl.SSLContext):
        raise TypeError("serve_tcp(ssl=...) needs an ssl.SSLContext with a certificate "
                        "(for example ssl.create_default_context(ssl.Purpose.CLIENT_AUTH) "
                        "+ load_cert_chain())")
    if host is not None and not isinstance(host, (str, bytes)):
        # As open_tcp_stream does, and now: else the resolver's "getaddrinfo()
        # argument 1 must be string or None" came only at 'async with'.
        raise TypeError(f"host must be a str, bytes or None, not {type(host).__name__}")
    _check_port(port)
    if backlog < 1:
        raise ValueError("backlog must be >= 1")

    async def open_listeners() -> list[Listener]:
        return list(await current_network().listen_tcp(host, port, backlog=backlog,
                                                      reuse_port=reuse_port))

    server = Server(handler, open_listeners, ssl=ssl, handler_nursery=handler_nursery)
    return server if task_status is None else server.serve(task_status=task_status)

