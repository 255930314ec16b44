"""One HTTP/1.1 server connection: the request/response loop over a Stream.

:class:`ServerConnection` runs in its own task (see :mod:`._server`): let
h11 parse a request head from what was read, build the :class:`Request`,
``await app(request)``, have the :class:`Response` sent (:mod:`._respond`:
h11 frames it, one ``write`` for a bytes body), read what is left of the
request body (a little is drained to keep the connection, more closes it),
start the next cycle. Pipelined requests wait in h11's buffer and are
answered in order.

Deadlines, not timers: before each wait the connection stores when that
wait must end (``deadline``); the server's reaper task cancels the
connection's scope once it has passed. A WebSocket handshake hands the
stream, and the bytes h11 had buffered, to wsproto (:mod:`._upgrade`).
Nothing reads while the application runs unless it asks whether its client
is still there, or the server cancels on disconnect (:mod:`._disconnect`).
"""

from __future__ import annotations

import inspect
import logging
import math
import re
from typing import TYPE_CHECKING, Any

import h11

from .._cancel import CancelScope
from .._time import current_time
from ..net._stream import Stream
from ._disconnect import ClientGone, call_app_cancellable, start_cancelling_watch
from ._errors import HTTPException, WebSocketClosed
from ._request import Request

# The kept response heads (_heads, _HEADS_MAX, _response_head) are re-exported
# from where they were before the sending side moved out: the tests look here.
from ._respond import _HEADS_MAX as _HEADS_MAX
from ._respond import _PEER_GONE, _REASONS, send_continue, send_protocol_error, send_response
from ._respond import _heads as _heads
from ._respond import _response_head as _response_head
from ._response import Response, _close_iterator

if TYPE_CHECKING:
    from ._disconnect import DisconnectWatch
    from ._server import HTTPServer

__all__ = ["ServerConnection"]

logger = logging.getLogger("yieldio.http")

#: How much unread request body the server reads and drops to keep a connection alive.
DRAIN_LIMIT = 256 * 1024
#: Lingering close (see ServerConnection._linger): at most this long, and this much data.
LINGER_TIME = 2.0
LINGER_BYTES = 16 * 1024 * 1024

_NEED_DATA = h11.NEED_DATA
_PAUSED = h11.PAUSED
_H11Request = h11.Request
_Data = h11.Data
_EOM = h11.EndOfMessage
_DONE = h11.DONE
_SEND_BODY = h11.SEND_BODY
_RemoteProtocolError = h11.RemoteProtocolError
_INF = math.inf
# A Host value: uri-host [ ":" port ] (RFC 9110 section 7.2, RFC 3986), or
# empty. h11 checks that there is exactly one Host, not what it holds; RFC
# 9112 section 3.2 requires a 400 for an invalid one. It matters because
# request.url is built from it: a value such as "x Content-Length: 5" (an
# obs-fold line h11 joined into Host), "evil/x" or "a@evil" would put
# whatever the client likes into the URLs an application builds from it.
_VALID_HOST = re.compile(
    rb"(?:\[[0-9A-Za-z:.%_~-]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::[0-9]*)?").fullmatch


def _full_items(headers: Any) -> Any:
    """h11's header triples (falls back to rebuilding them if h11 changes)."""
    full = getattr(headers, "_full_items", None)
    if full is None:
        return [(n, n, v) for n, v in headers]
    return full


def _error_response(status: int, detail: str | None = None) -> Response:
    text = detail if detail is not None else _REASONS.get(status, b"").decode()
    return Response(status, {"content-type": "text/plain; charset=utf-8"}, text + "\n")


class ServerConnection:
    """One client connection: the h11 state machine, the stream, the current deadline."""

    __slots__ = ("server", "stream", "h11", "client", "scheme", "deadline", "idle", "scope",
                 "timed_out", "body_received", "must_close", "websocket", "requests",
                 "current", "watch", "peer_eof", "app_scope", "body_error")

    def __init__(self, server: HTTPServer, stream: Stream) -> None:
        self.server = server
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER,
                                  max_incomplete_event_size=server.limits.max_header_size)
        peer = stream.get_extra_info("peername")
        self.client = tuple(peer[:2]) if isinstance(peer, tuple) else peer
        self.scheme = "https" if server.ssl is not None else "http"
        self.deadline = _INF
        self.idle = True
        self.scope: CancelScope | None = None
        self.timed_out = False
        self.body_received = 0
        self.must_close = False
        self.websocket: Any = None
        self.requests = 0
        self.current: Request | None = None  # the request being answered
        self.watch: DisconnectWatch | None = None  # its disconnect watch, if one was asked for
        self.peer_eof = False  # the client closed (or reset): answer what is buffered, then close
        self.app_scope: CancelScope | None = None  # cancel_on_disconnect: the app's scope
        # Why reading this request's body failed (413, malformed, the client
        # left), if it did: the answer to give, whatever the app made of it.
        self.body_error: HTTPException | None = None

    def shutdown(self) -> None:
        """The server is stopping: end now if idle; WebSockets get a 1001 close."""
        if self.idle and self.scope is not None:
            self.scope.cancel()
        elif self.websocket is not None and not self.websocket.closed:
            self.server._tg.spawn(self.websocket.close, 1001, "server shutting down",
                                  name="websocket shutdown")

    # -- the loop -------------------------------------------------------------------------
    async def run(self) -> None:
        with CancelScope() as scope:
            self.scope = scope
            try:
                while True:
                    event = await self._next_request()
                    if event is None:
                        return
                    keep = await self._handle(event)
                    if self.watch is not None:
                        # No two readers: the watch ends before anyone reads again.
                        await self.watch.stop()
                        self.watch = None
                    if not keep:
                        if self.websocket is None and self._client_still_sending():
                            await self._linger()
                        return
                    self.h11.start_next_cycle()
            except _PEER_GONE as exc:
                logger.debug("HTTP connection from %s lost: %r", self.client, exc)
            finally:
                if self.watch is not None:  # (cancelled, or failed: the stream closes next)
                    self.watch.cancel()
        if self.timed_out:
            logger.debug("HTTP connection from %s timed out", self.client)

    async def _next_request(self) -> h11.Request | None:
        h = self.h11
        try:
            event = h.next_event()
            if event is _NEED_DATA:
                server = self.server
                if server._closing or self.peer_eof:
                    return None
                limits = server.limits
                timeout = limits.keep_alive_timeout if self.requests else limits.header_timeout
                self.idle = True
                if timeout is not None:
                    self.deadline = current_time() + timeout
                read = self.stream.read
                while event is _NEED_DATA:
                    data = await read(65536)
                    if self.idle:
                        self.idle = False
                        if self.requests:
                            # The header timeout runs from the first byte of the request.
                            ht = limits.header_timeout
                            self.deadline = _INF if ht is None else current_time() + ht
                    h.receive_data(data)
                    event = h.next_event()
                self.deadline = _INF
            self.idle = False
        except _RemoteProtocolError as exc:
            self.idle = False
            self.deadline = _INF
            await send_protocol_error(self, exc)
            return None
        if type(event) is _H11Request:
            return event  # type: ignore[return-value]
        return None  # ConnectionClosed

    async def _handle(self, event: h11.Request) -> bool:
        """Run the application for one request; True to keep the connection."""
        server = self.server
        self.requests += 1
        server.requests += 1
        self.body_received = 0
        self.body_error = None
        version = "1.1" if event.http_version == b"1.1" else event.http_version.decode("ascii")
        req = self.current = Request(event.method.decode("ascii"),
                                     event.target.decode("latin-1"), event.headers,
                                     version, self.client, self.scheme, self)
        if version != "1.1" and version != "1.0":
            # h11 parses any "HTTP/x.y" (an HTTP/2 preface too): not ours to route.
            self.must_close = True
            return await self._send(req, _error_response(505))
        # h11 bounds only an *incomplete* head; one that arrived whole in a
        # single read is measured here. One pass over h11's (raw name, name,
        # value) triples, which is cheaper than its Sequence interface.
        size = len(event.target)
        length = None
        host = b""
        for _, name, value in _full_items(event.headers):
            size += len(name) + len(value) + 4
            if name == b"content-length":
                length = value
            elif name == b"host":
                host = value
        limits = server.limits
        if size > limits.max_header_size:
            server.bad_requests += 1
            self.must_close = True
            return await self._send(req, _error_response(431))
        if host and _VALID_HOST(host) is None:
            server.bad_requests += 1
            self.must_close = True
            return await self._send(req, _error_response(400, "invalid Host header"))
        if length is not None:
            if any(n == b"transfer-encoding" for _, n, _ in _full_items(event.headers)):
                # Both framings: how requests are smuggled past a proxy that
                # reads the other one. h11 reads the chunked body; RFC 9112
                # section 6.1 then requires closing the connection after the
                # response, so whatever follows is never taken for a request.
                self.must_close = True
            elif limits.max_body_size is not None and int(length) > limits.max_body_size:
                self.must_close = True
                # Through the error handler: the same 413 as request.body()
                # raises for a chunked body, in the application's format.
                return await self._send(req, await self._answer_error(req, HTTPException(413)))
        try:
            if server.cancel_on_disconnect:
                response = await call_app_cancellable(self, req)
            else:
                response = await server.app(req)
        except ClientGone:
            logger.debug("HTTP client %s left during %s %s: cancelled", self.client,
                         req.method, req.target)
            return False
        except HTTPException as exc:
            if req._websocket is not None:
                await req._websocket._finish(failed=True)
                return False
            response = await self._answer_error(req, exc)
        except Exception as exc:
            ws = req._websocket
            if isinstance(exc, WebSocketClosed) and ws is not None and ws.close_code is not None:
                # The handler's own WebSocket closed under a receive() or
                # send() loop: the usual way such a loop ends, not a failure
                # (the websockets library ends the handler quietly too).
                logger.debug("WebSocket handler for %s ended by its close: %s", req.target, exc)
                await ws._finish()
                return False
            server.app_errors += 1
            logger.exception("HTTP application failed on %s %s (client %s)", req.method,
                             req.target, self.client)
            if ws is not None:
                await ws._finish(failed=True)
                return False
            response = await self._answer_error(req, exc)
        else:
            if req._websocket is not None:
                await req._websocket._finish()
                return False
            if not isinstance(response, Response):
                server.app_errors += 1
                logger.error("HTTP application returned %r for %s %s, not a Response",
                             response, req.method, req.target)
                response = await self._answer_error(req, TypeError(
                    f"the application returned {response!r}, not a Response"))
        body_error = self.body_error
        if body_error is not None and response.status >= 500:
            # The app turned the body's failure into a server error: a WSGI
            # framework (Flask) does, catching what wsgi.input raised. The
            # client is told what really happened: 413, or 400.
            logger.debug("HTTP %s %s: answering %d, not the app's %d, for the request body",
                         req.method, req.target, body_error.status, response.status)
            if not isinstance(response.body, bytes):
                await _close_iterator(response.body)
            response = await self._answer_error(req, body_error)
        try:
            return await self._send(req, response)
        except h11.LocalProtocolError as exc:
            # h11 refused what the application returned (a header with a
            # line break, a body on a 304...): a bug, logged; never sent.
            server.app_errors += 1
            logger.error("invalid response from the HTTP application for %s %s: %s",
                         req.method, req.target, exc)
            if not isinstance(response.body, bytes):
                # Refused before streaming began: close the body all the
                # same (a WSGI iterable must be closed, PEP 3333).
                await _close_iterator(response.body)
            if self.h11.our_state is h11.SEND_RESPONSE:
                self.must_close = True
                return await self._send(req, _error_response(500))
            return False

    async def _answer_error(self, req: Request, exc: Exception) -> Response:
        """The response to ``exc``: an :class:`HTTPException`, or the application's failure.

        The server's ``error_handler``'s, when it has one, with the
        exception's ``headers`` added unless its response sets them (a 405
        keeps its ``Allow``); else, or if the handler fails, the plain text
        default. A failing handler is logged and counted like the application.
        """
        if isinstance(exc, HTTPException):
            default = _error_response(exc.status, exc.detail)
            default.headers.update(exc.headers)
        else:
            default = _error_response(500)
        handler = self.server.error_handler
        if handler is None:
            return default
        try:
            response = handler(req, exc)
            if inspect.isawaitable(response):
                response = await response
            if not isinstance(response, Response):
                raise TypeError(f"the error handler returned {response!r}, not a Response")
        except Exception:
            # An error while answering an error: the default is always there,
            # so the client is answered and the handler's bug is not lost.
            self.server.app_errors += 1
            logger.exception("HTTP error handler failed on %s %s (handling %r)", req.method,
                             req.target, exc)
            return default
        if isinstance(exc, HTTPException):
            for name, value in exc.headers.items():
                if name not in response.headers:
                    response.headers[name] = value
        return response

    # -- sending (._respond) ----------------------------------------------------------------
    # The function itself, bound as a method: self._send(req, response) costs
    # what it did when the code was written here, no wrapper call per request.
    _send = send_response

    # -- after the response: keep, drain or close ------------------------------------------
    def _client_still_sending(self) -> bool:
        """Closing after a response: may the client still be sending (a body, more requests)?

        A request whose end is already buffered (a GET answered with
        ``Connection: close`` while the server shuts down) leaves nothing to
        linger for: the close would only wait for the client's, holding up
        the server's drain (``wait_closed()``) for up to ``LINGER_TIME``.
        """
        h = self.h11
        if h.their_state is not _SEND_BODY:
            return False
        try:
            event = h.next_event()
        except _RemoteProtocolError:
            return True
        return type(event) is not _EOM or bool(h.trailing_data[0])

    async def _linger(self) -> None:
        """Closing while the client may still be sending its body (after a 413, say).

        Closing a socket with unread data makes the kernel send a reset,
        which can destroy our response before the client reads it. So: end
        our direction, then read and drop what the client sends, for a
        little while, until it closes too (what nginx calls lingering close).
        """
        self.deadline = current_time() + LINGER_TIME
        try:
            await self.stream.send_eof()
            budget = LINGER_BYTES
            while budget > 0:
                data = await self.stream.read(65536)
                if not data:
                    break
                budget -= len(data)
        except _PEER_GONE:
            pass
        self.deadline = _INF

    def _request_finished(self) -> bool | None:
        """After the response: True/False to keep/close, None if body is left to read."""
        h = self.h11
        if h.our_state is not _DONE or self.must_close:
            return False  # we said "connection: close" (h11 is in MUST_CLOSE)
        if h.their_state is _SEND_BODY:
            # Most often (a GET) only the end of the message is left, and it
            # is already buffered: no coroutine needed to see it.
            try:
                if type(h.next_event()) is not _EOM:
                    return None
            except _RemoteProtocolError:
                return False
        return h.their_state is _DONE

    async def _drain_body(self) -> bool:
        """Read and drop what is left of the request body, if it is small."""
        h = self.h11
        limits = self.server.limits
        budget = DRAIN_LIMIT
        try:
            while True:
                event = h.next_event()
                if event is _NEED_DATA:
                    if limits.body_timeout is not None:
                        self.deadline = current_time() + limits.body_timeout
                    h.receive_data(await self.stream.read(65536))
                    self.deadline = _INF
                elif type(event) is _Data:
                    budget -= len(event.data)  # type: ignore[union-attr]
                    if budget < 0:
                        return False
                else:
                    break
        except _RemoteProtocolError:
            return False
        return h.their_state is _DONE


    # -- the body, for Request ------------------------------------------------------------------
    async def receive_body_chunk(self) -> bytes:
        """The next piece of the request body; ``b""`` at its end."""
        h = self.h11
        limits = self.server.limits
        while True:
            try:
                event = h.next_event()
            except _RemoteProtocolError as exc:
                self.must_close = True
                raise self._body_failed(400, f"malformed request body: {exc}") from None
            if event is _NEED_DATA:
                if h.their_state is not _SEND_BODY:
                    return b""  # its end was taken already (see _disconnect._body_done)
                if h.they_are_waiting_for_100_continue:
                    await send_continue(self)
                if limits.body_timeout is not None:
                    self.deadline = current_time() + limits.body_timeout
                try:
                    data = await self.stream.read(65536)
                except _PEER_GONE as exc:
                    self.must_close = self.peer_eof = True
                    raise self._body_failed(400, "the client disconnected") from exc
                finally:
                    # Also when the app gave up waiting (a timeout around
                    # request.body()): a deadline left set would have the
                    # reaper cancel the handler later, for a body nobody reads.
                    self.deadline = _INF
                if not data:
                    self.peer_eof = True
                h.receive_data(data)
                continue
            kind = type(event)
            if kind is _Data:
                data = event.data  # type: ignore[union-attr]
                self.body_received += len(data)
                if limits.max_body_size is not None and self.body_received > limits.max_body_size:
                    self.must_close = True
                    raise self._body_failed(413)
                return bytes(data)
            if kind is _EOM or event is _PAUSED:
                if self.app_scope is not None:
                    start_cancelling_watch(self)  # cancel_on_disconnect, now that the body is read
                return b""
            self.must_close = True
            raise self._body_failed(400, "the request body ended early")

    def _body_failed(self, status: int, detail: str | None = None) -> HTTPException:
        """The error for a request body that cannot be read, remembered as ``body_error``."""
        self.body_error = exc = HTTPException(status, detail)
        return exc

