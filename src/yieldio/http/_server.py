"""The HTTP/1.1 server: h11 for the protocol, yieldio streams for the bytes.

::

    from yieldio.http import Response, serve

    async def app(request):
        return Response.text(f"hello from {request.path}")

    async def main():
        async with serve(app, "127.0.0.1", 8000) as server:
            print(f"http://127.0.0.1:{server.port}/")
            await server.serve_forever()

One task per connection runs the request/response loop of
:class:`~yieldio.http._connection.ServerConnection`; keep-alive and
pipelining fall out of h11 (pipelined requests wait in its buffer and are
answered in order).

Timeouts cost nothing per request: each connection stores the deadline of
what it is waiting for (a float), and one *reaper* task, waking a few times
per timeout period, cancels the connections whose deadline has passed.
That is how the slowloris defence, the keep-alive idle timeout and the
body/write timeouts work without a timer per read.

Shutdown is graceful: leaving the ``async with`` block (or :meth:`close`)
stops accepting, closes idle keep-alive connections at once, lets requests
in flight finish (their responses say ``Connection: close``), sends
WebSockets a 1001 close, and ``grace_period`` seconds after the close
cancels whatever is left. :meth:`HTTPServer.wait_closed` waits for that
drain from anywhere (the block's exit waits for it too).
"""

from __future__ import annotations

import logging
import math
import ssl as _ssl
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, overload

import h11

from .._cancel import CancelScope
from .._taskgroup import TASK_STATUS_IGNORED, TaskGroup, TaskStatus
from .._time import current_time, sleep
from .._timeouts import move_on_after
from ..net._stream import Stream
from ..net._tcp import Server, serve_tcp
from ..sync import Event
from ._connection import _PEER_GONE, LINGER_TIME, ServerConnection
from ._limits import Limits
from ._request import Request
from ._response import Response

__all__ = ["serve", "HTTPServer", "App", "ErrorHandler"]

logger = logging.getLogger("yieldio.http")

#: ``async def app(request) -> Response`` (None only after ``accept_websocket()``).
App = Callable[[Request], Awaitable[Response | None]]
#: ``async def error_handler(request, exc) -> Response`` (a plain ``def`` too), where
#: ``exc`` is an :class:`HTTPException` or the exception the application failed with.
ErrorHandler = Callable[[Request, Exception], Awaitable[Response] | Response]


class HTTPServer:
    """A running HTTP server; get one from :func:`serve`.

    ::

        async with serve(app, "127.0.0.1", 0) as server:
            print("port", server.port)
            await server.serve_forever()       # until server.close()

    Attributes: :attr:`port`, :attr:`addresses`, and counters
    :attr:`connections` (open now), :attr:`requests` (served in total),
    :attr:`app_errors` (application exceptions, each logged on the
    ``"yieldio.http"`` logger), :attr:`bad_requests` (malformed requests),
    :attr:`rejected` (connections refused with 503 over ``max_connections``),
    :attr:`tls_errors` (failed or timed-out TLS handshakes).

    :meth:`close` starts the graceful shutdown from anywhere (a handler, a
    signal watcher); :meth:`wait_closed` waits until it is done::

        server.close()                         # stop accepting, drain
        await server.wait_closed()             # every connection is done

    :attr:`cancel_on_disconnect` (off by default): cancel a handler whose
    client goes away (see :func:`serve`)::

        async with serve(app, "127.0.0.1", 0, cancel_on_disconnect=True) as server:
            ...                                # a long poll ends when its client leaves

    :attr:`error_handler` (None by default) makes the error responses (see
    :func:`serve`). Besides ``async with``, trio's idioms: ``await server``
    serves until cancelled, ``await tg.start(serve, app, host, port)`` returns
    it once it listens (see :meth:`serve`).
    """

    def __init__(self, app: App, host: str | None, port: int, *, ssl: _ssl.SSLContext | None,
                 limits: Limits | None, grace_period: float, backlog: int,
                 reuse_port: bool, cancel_on_disconnect: bool = False,
                 error_handler: ErrorHandler | None = None) -> None:
        if not callable(app):
            raise TypeError(f"app must be an async function taking a Request, not {app!r}")
        if error_handler is not None and not callable(error_handler):
            raise TypeError("error_handler must be a function (request, exc) -> Response, "
                            f"not {error_handler!r}")
        if limits is not None and not isinstance(limits, Limits):
            raise TypeError(f"limits must be a yieldio.http.Limits, not {limits!r}")
        self.app = app
        self.ssl = ssl
        self.limits = limits or Limits()
        self.grace_period = grace_period
        self.cancel_on_disconnect = bool(cancel_on_disconnect)
        self.error_handler = error_handler
        self._host, self._port, self._backlog, self._reuse_port = host, port, backlog, reuse_port
        self.requests = 0
        self.app_errors = 0
        self.bad_requests = 0
        self.rejected = 0
        self.tls_errors = 0
        # Each open connection with the scope its task runs in: what the end
        # of the grace period cancels (not the task group, whose scope also
        # holds the body of the ``async with`` that may be awaiting wait_closed()).
        self._conns: dict[ServerConnection, CancelScope] = {}
        self._closing = False
        self._stop = Event()
        self._drained = Event()
        self._tg = TaskGroup()
        self._tcp: Server | None = None
        self._busy = self._prepare_busy_response()

    def __repr__(self) -> str:
        return f"<HTTPServer {self.addresses!r} connections={self.connections}>"

    @staticmethod
    def _prepare_busy_response() -> bytes:
        h = h11.Connection(h11.SERVER)
        body = b"server busy, retry later\n"
        return (h.send(h11.Response(status_code=503, reason=b"Service Unavailable", headers=[
            (b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body)),
            (b"connection", b"close"), (b"retry-after", b"1")]))
            + h.send(h11.Data(data=body)) + h.send(h11.EndOfMessage()))

    @property
    def port(self) -> int | None:
        """The TCP port listened on (useful with port 0)."""
        return self._tcp.port if self._tcp is not None else None

    @property
    def addresses(self) -> list[Any]:
        """The addresses listened on."""
        return self._tcp.addresses if self._tcp is not None else []

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._conns)

    def close(self) -> None:
        """Begin the graceful shutdown; :meth:`serve_forever` returns, the block exits.

        ::

            server.close()              # from a handler, another task, a signal watcher

        New connections are refused from now on; requests in flight finish,
        and what is still running ``grace_period`` seconds from now is
        cancelled. It does not wait: :meth:`wait_closed` does.
        """
        if self._closing:
            return
        self._closing = True
        self._stop.set()
        if self._tcp is not None:
            self._tcp.close()
            # The grace period runs from the close, not from the block's exit:
            # else wait_closed() inside the block would wait for a stuck
            # request for ever.
            self._tg.spawn(self._end_grace_period, name="http shutdown")
        for conn in list(self._conns):
            conn.shutdown()
        if not self._conns:
            self._drained.set()

    async def wait_closed(self) -> None:
        """Wait until a :meth:`close` has finished: nothing listens, every connection is done.

        ::

            server.close()
            await server.wait_closed()       # the requests in flight were answered

        asyncio's name and meaning (it also waits for a close still to come);
        any number of tasks may wait, cancelling one cancels only its wait, and
        it returns at once once the server is closed. Not from a handler: it
        would wait for its own request (until ``grace_period`` cancels it).
        """
        if self._tcp is None:
            raise RuntimeError("use 'async with serve(...) as server' before wait_closed()")
        await self._tcp.wait_closed()
        await self._drained.wait()

    async def aclose(self) -> None:
        """:meth:`close` and :meth:`wait_closed` (trio's and anyio's name)::

            async with serve(app, "127.0.0.1", 0) as server:
                ...
                await server.aclose()   # drained; nothing listens on server.port now
        """
        self.close()
        await self.wait_closed()

    async def _end_grace_period(self) -> None:
        """``grace_period`` seconds after :meth:`close`: cancel the connections left."""
        with move_on_after(self.grace_period):
            await self._drained.wait()
            return
        for scope in list(self._conns.values()):
            scope.cancel()

    async def serve_forever(self) -> None:
        """Wait until :meth:`close` is called."""
        if self._tcp is None:
            raise RuntimeError("use 'async with serve(...) as server' before serve_forever()")
        await self._stop.wait()

    async def serve(self, *, task_status: TaskStatus = TASK_STATUS_IGNORED) -> None:
        """Open the server, report it started, and serve until closed or cancelled.

        What ``await serve(...)`` and ``tg.start(serve, ...)`` run: the server
        lives as long as the task that serves it, as in trio::

            server = await tg.start(yieldio.http.serve, app, "127.0.0.1", 0)
            print("listening on", server.port)      # serving, in tg

        :meth:`close` ends it gracefully (it returns once drained); a cancel
        ends it at once, cancelling the requests in flight.
        """
        async with self:
            task_status.started(self)
            await self.serve_forever()

    def __await__(self) -> Generator[Any, Any, None]:
        """``await serve(app, host, port)``: serve until cancelled (trio's idiom)."""
        if self._tcp is not None:
            raise RuntimeError("this HTTPServer is already open ('async with' or await): "
                               "await server.serve_forever() to wait for it")
        return self.serve().__await__()

    async def __aenter__(self) -> HTTPServer:
        if self._tcp is not None:
            raise RuntimeError("an HTTPServer can be entered only once")
        await self._tg.__aenter__()
        try:
            # TLS is started here, not by serve_tcp: the handshake then runs
            # under the header timeout and counts against max_connections
            # (a client that never sends its ClientHello is a slowloris too).
            tcp = serve_tcp(self._on_connection, self._host, self._port, ssl=None,
                            backlog=self._backlog, reuse_port=self._reuse_port,
                            handler_nursery=self._tg)
            await tcp.__aenter__()
        except BaseException:
            self._tg.cancel()
            await self._tg.__aexit__(None, None, None)
            raise
        self._tcp = tcp
        self._tg.spawn(self._reaper, name="http timeouts")
        return self

    async def __aexit__(self, etype: Any, exc: BaseException | None, tb: Any) -> bool:
        self.close()
        assert self._tcp is not None
        try:
            await self._tcp.__aexit__(None, None, None)
            if exc is None and self._conns:
                # Bounded: _end_grace_period cancels what outlives the grace period.
                await self._drained.wait()
        except BaseException as failure:  # e.g. cancelled from outside while draining
            etype, exc, tb = type(failure), failure, failure.__traceback__
        self._tg.cancel()
        try:
            swallowed = await self._tg.__aexit__(etype, exc, tb)
        except BaseExceptionGroup as group:
            # The body's own exception, alone: give it back bare, not wrapped.
            if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                raise exc from None
            raise
        finally:
            # Every connection task has ended (cancelled, if the block failed
            # or was cancelled): wait_closed() must not wait any longer.
            self._drained.set()
        if exc is not None and not swallowed and etype is not None:
            raise exc
        return swallowed

    # -- per connection ---------------------------------------------------------------------
    async def _on_connection(self, stream: Stream) -> None:
        if self._closing:
            return
        limit = self.limits.max_connections
        if limit is not None and len(self._conns) >= limit:
            await self._refuse(stream)
            return
        conn = ServerConnection(self, stream)
        scope = self._conns[conn] = CancelScope()
        try:
            with scope:
                if self.ssl is not None:
                    tls = await self._start_tls(conn, stream)
                    if tls is None:
                        return
                    conn.stream = tls
                try:
                    await conn.run()
                finally:
                    if conn.stream is not stream:
                        await conn.stream.aclose()  # close_notify, then the transport
        finally:
            del self._conns[conn]
            if self._closing and not self._conns:
                self._drained.set()

    async def _start_tls(self, conn: ServerConnection, stream: Stream) -> Stream | None:
        """The TLS handshake, within the header timeout; None if it failed."""
        from ..net._tls import TLSStream

        assert self.ssl is not None
        timeout = self.limits.header_timeout
        with move_on_after(math.inf if timeout is None else timeout):
            try:
                return await TLSStream.wrap(stream, self.ssl, server_side=True)
            except (_ssl.SSLError, *_PEER_GONE) as exc:
                self.tls_errors += 1
                logger.info("TLS handshake with %s failed: %s", conn.client, exc)
                return None
        self.tls_errors += 1
        logger.info("TLS handshake with %s timed out", conn.client)
        return None

    async def _refuse(self, stream: Stream) -> None:
        """Over ``max_connections``: 503, then let the client see it before closing."""
        self.rejected += 1
        with move_on_after(1.0):
            try:
                await stream.write(self._busy)
                await stream.send_eof()
                # Read what the client sent, so closing does not reset the
                # connection and destroy the 503 before the client reads it.
                while await stream.read(65536):
                    pass
            except _PEER_GONE:
                pass

    async def _reaper(self) -> None:
        """Cancel the connections whose deadline passed (see the module docstring)."""
        limits = self.limits
        # With every timeout off the reaper still runs: some deadlines are
        # the server's own and always set (the lingering close after a 413,
        # the write of a 400), and nothing else would enforce them.
        timeouts = [t for t in (limits.header_timeout, limits.keep_alive_timeout,
                                limits.body_timeout, limits.write_timeout)
                    if t is not None] or [LINGER_TIME]
        tick = min(1.0, max(0.005, min(timeouts) / 4))
        while True:
            await sleep(tick)  # type: ignore[misc]
            now = current_time()
            for conn in list(self._conns):
                if conn.deadline <= now and conn.scope is not None:
                    conn.timed_out = True
                    conn.scope.cancel()


@overload
def serve(app: App, host: str | None, port: int, *, ssl: _ssl.SSLContext | None = None,
          limits: Limits | None = None, grace_period: float = 10.0, backlog: int = 128,
          reuse_port: bool = False, cancel_on_disconnect: bool = False,
          error_handler: ErrorHandler | None = None, task_status: None = None) -> HTTPServer: ...
@overload
def serve(app: App, host: str | None, port: int, *, ssl: _ssl.SSLContext | None = None,
          limits: Limits | None = None, grace_period: float = 10.0, backlog: int = 128,
          reuse_port: bool = False, cancel_on_disconnect: bool = False,
          error_handler: ErrorHandler | None = None,
          task_status: TaskStatus) -> Coroutine[Any, Any, None]: ...
def serve(app: App, host: str | None, port: int, *, ssl: _ssl.SSLContext | None = None,
          limits: Limits | None = None, grace_period: float = 10.0, backlog: int = 128,
          reuse_port: bool = False, cancel_on_disconnect: bool = False,
          error_handler: ErrorHandler | None = None,
          task_status: TaskStatus | None = None) -> HTTPServer | Coroutine[Any, Any, None]:
    """Serve ``app`` over HTTP/1.1 on ``host``:``port``: ``async with serve(...) as server:``.

    ::

        async def app(request):
            return Response.json({"path": request.path})

        async with yieldio.http.serve(app, "127.0.0.1", 0) as server:
            print(f"listening on http://127.0.0.1:{server.port}/")
            await server.serve_forever()

    trio's two idioms work too: ``await serve(app, host, port)`` serves
    until cancelled, and ``server = await tg.start(serve, app, host, port)``
    returns once it listens, serving in ``tg`` (``task_status`` is for
    ``start()``; see :meth:`HTTPServer.serve`).

    ``app`` is ``async def app(request) -> Response`` (a :class:`Router` is
    one). An exception in it becomes a ``500 Internal Server Error`` (the
    traceback is logged on ``"yieldio.http"``, never sent); an
    :class:`HTTPException` becomes its status, with its ``headers``.
    ``error_handler`` (``async def fn(request, exc) -> Response``) makes
    those responses instead, for every :class:`HTTPException` (a
    :class:`Router`'s 404 and 405 too) and every failure of ``app`` (after
    it is logged); its response gets the exception's ``headers`` it does not
    set itself, and if it fails the plain default is sent (and the failure
    logged)::

        async def json_errors(request, exc):
            if isinstance(exc, HTTPException):
                return Response.json({"error": exc.detail}, exc.status)
            return Response.json({"error": "internal error"}, 500)

        async with serve(router, "127.0.0.1", 0, error_handler=json_errors): ...

    ``ssl`` (a server ``SSLContext``) serves HTTPS. ``limits`` bounds what a
    client may cost (see :class:`Limits`). On shutdown requests in flight
    get ``grace_period`` seconds to finish.

    ``cancel_on_disconnect=True`` cancels the application (its cancel
    scope) when its client closes, half-closes or resets the connection
    once the request body is read: no response is written, nothing is
    logged as an error, the connection is closed. It costs a task per
    request, so it is off by default -- and a surprise to code that must
    finish what it started (aiohttp turned its equivalent off by default
    for that reason); ``request.wait_disconnected()`` asks per request::

        async with serve(app, "127.0.0.1", 0, cancel_on_disconnect=True):
            ...
    """
    server = HTTPServer(app, host, port, ssl=ssl, limits=limits, grace_period=grace_period,
                        backlog=backlog, reuse_port=reuse_port,
                        cancel_on_disconnect=cancel_on_disconnect, error_handler=error_handler)
    return server if task_status is None else server.serve(task_status=task_status)
