"""One HTTP/1.1 server connection: the request/response loop over a Stream.

:class:`ServerConnection` runs in its own task (see :mod:`._server`): let
h11 parse a request head from what was read, build the :class:`Request`,
``await app(request)``, let h11 frame the :class:`Response` (one ``write``
for a bytes body), read what is left of the request body (a little is
drained to keep the connection, more closes it), start the next cycle.
Pipelined requests wait in h11's buffer and are answered in order.

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
import struct
import time
from email.utils import formatdate
from http import HTTPStatus
from socket import SO_LINGER, SOL_SOCKET
from typing import TYPE_CHECKING, Any

import h11

from .._cancel import CancelScope
from .._exceptions import ClosedResourceError
from .._time import current_time
from ..net._stream import BrokenStreamError, Stream
from ._disconnect import ClientGone, call_app_cancellable, start_cancelling_watch
from ._errors import HTTPException, WebSocketClosed
from ._request import Request
from ._response import Response, _as_bytes, _close_iterator

if TYPE_CHECKING:
    from ._disconnect import DisconnectWatch
    from ._server import HTTPServer

__all__ = ["ServerConnection"]

_LINGER_0 = struct.pack("ii", 1, 0)  # on, 0 s: close() sends a reset

logger = logging.getLogger("yieldio.http")

#: How much unread request body the server reads and drops to keep a connection alive.
DRAIN_LIMIT = 256 * 1024
#: Lingering close (see ServerConnection._linger): at most this long, and this much data.
LINGER_TIME = 2.0
LINGER_BYTES = 16 * 1024 * 1024

_NEED_DATA = h11.NEED_DATA
_PAUSED = h11.PAUSED
_H11Request = h11.Request
_H11Response = h11.Response
_Data = h11.Data
_EOM = h11.EndOfMessage
_DONE = h11.DONE
_SEND_BODY = h11.SEND_BODY
_RemoteProtocolError = h11.RemoteProtocolError
_PEER_GONE = (OSError, ClosedResourceError, BrokenStreamError, EOFError)
_INF = math.inf

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_NO_BODY = frozenset({100, 101, 102, 103, 204, 304})
_date_cache: list[Any] = [0, (b"date", b"")]


def _date_header() -> tuple[bytes, bytes]:
    """The Date header, formatted once per second."""
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[0] = now
        _date_cache[1] = (b"date", formatdate(now, usegmt=True).encode())
    return _date_cache[1]  # type: ignore[no-any-return]


# h11's events are frozen dataclasses, so one may be sent many times. The
# end of a message is always the same event, and a response head repeats as
# long as its status and headers do (Date changes once a second): building an
# h11.Response validates every header with a regular expression (~9,000
# instructions per header, most of the cost of a small response), so heads
# are kept, keyed by what they are built from. Bounded: emptied when full.
_END = h11.EndOfMessage()
_CONTINUE = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
_heads: dict[tuple[Any, ...], h11.Response] = {}
_HEADS_MAX = 256
_HEAD_CACHE_LIMIT = 1024  # bytes of header names and values; bigger heads are not kept


def _response_head(status: int, headers: list[tuple[bytes, bytes]], size: int) -> h11.Response:
    """The h11 event for this head, validated once per distinct head."""
    key = (status, *headers) if size <= _HEAD_CACHE_LIMIT else None
    head = _heads.get(key) if key is not None else None
    if head is None:
        # A bad header raises LocalProtocolError here, before anything is kept.
        head = _H11Response(status_code=status, headers=headers, reason=_REASONS.get(status, b""))
        if key is not None:
            if len(_heads) >= _HEADS_MAX:
                _heads.clear()
            _heads[key] = head
    return head


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
                 "current", "watch", "peer_eof", "app_scope")

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
            await self._send_protocol_error(exc)
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
        for _, name, value in _full_items(event.headers):
            size += len(name) + len(value) + 4
            if name == b"content-length":
                length = value
        limits = server.limits
        if size > limits.max_header_size:
            server.bad_requests += 1
            self.must_close = True
            return await self._send(req, _error_response(431))
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

    # -- sending ----------------------------------------------------------------------------
    async def _send(self, req: Request, response: Response) -> bool:
        h = self.h11
        server = self.server
        # The pairs as bytes for h11, noting a Content-Length on the way
        # (cheaper than a second, case-insensitive lookup).
        headers = []
        stated_length: str | None = None  # the app's Content-Length, if any
        size = 0
        for name, value in response.headers._items:
            if name == "content-length":
                stated_length = value
            size += len(name) + len(value)
            try:
                headers.append((name.encode("latin-1"), value.encode("latin-1")))
            except UnicodeEncodeError:
                # HTTP/1.1 header text is ISO-8859-1: the app's bug, a logged 500.
                raise h11.LocalProtocolError(
                    f"header {name!r}: {value!r} is not ISO-8859-1 text") from None
        headers.append(_date_header())
        if server._closing or self.must_close or (h.they_are_waiting_for_100_continue
                                                  and not self._body_already_here(req)):
            # Waiting for 100-continue and answered without it: the client may
            # or may not send the body now, so this connection cannot be reused.
            headers.append((b"connection", b"close"))
        status = response.status
        body = response.body
        write_timeout = server.limits.write_timeout
        write = self.stream.write
        if status in _NO_BODY:
            # 1xx, 204 and 304 responses have no body (RFC 9110): drop one given.
            if not isinstance(body, bytes):
                await _close_iterator(body)
            body = b""
        elif isinstance(body, bytes):
            if stated_length is None:
                headers.append((b"content-length", b"%d" % len(body)))
            elif stated_length.strip() != str(len(body)) and req.method != "HEAD":
                # h11 would notice only after the head is sent, too late for
                # a 500: the client would get nothing at all.
                raise h11.LocalProtocolError(
                    f"Content-Length {stated_length!r} does not match the "
                    f"{len(body)}-byte body")
        if isinstance(body, bytes):
            out = h.send(_response_head(status, headers, size))
            if body and req.method != "HEAD":
                out += h.send(_Data(data=body))
            out += h.send(_END)
            if write_timeout is not None:
                self.deadline = current_time() + write_timeout
            await write(out)
            self.deadline = _INF
        else:
            head = _H11Response(status_code=status, headers=headers,
                                reason=_REASONS.get(status, b""))
            if not await self._send_streamed(req, head, body, write_timeout):
                return False
        done = self._request_finished()
        if done is None:
            return await self._drain_body()
        return done

    async def _send_streamed(self, req: Request, head: h11.Response, body: Any,
                             write_timeout: float | None) -> bool:
        h = self.h11
        write = self.stream.write
        out = h.send(head)
        if req.method == "HEAD":
            await _close_iterator(body)
            if write_timeout is not None:
                self.deadline = current_time() + write_timeout
            await write(out + h.send(_END))
            self.deadline = _INF
            return True
        # The write timeout bounds each write, and only the writes: the
        # deadline is lifted after each one, or the time the application
        # takes to produce the next chunk (server-sent events, say) would
        # count against it and a healthy stream would be cut off.
        timeout = _INF if write_timeout is None else write_timeout
        # True while a write to the client is under way: only then does an
        # OSError (or a closed stream) mean the client went away. The same
        # errors raised by the body itself (a file that cannot be read, a
        # backend that refused a connection) are the application's failure
        # and must be logged and counted, not taken for a lost client.
        writing = True
        try:
            self.deadline = current_time() + timeout
            await write(out)
            self.deadline = _INF
            writing = False
            if hasattr(body, "__aiter__"):
                async for chunk in body:
                    if chunk:
                        self.deadline = current_time() + timeout
                        writing = True
                        await write(h.send(_Data(data=_as_bytes(chunk))))
                        writing = False
                        self.deadline = _INF
            else:
                for chunk in body:
                    if chunk:
                        self.deadline = current_time() + timeout
                        writing = True
                        await write(h.send(_Data(data=_as_bytes(chunk))))
                        writing = False
                        self.deadline = _INF
            self.deadline = current_time() + timeout
            writing = True
            await write(h.send(_END))
        except Exception as exc:
            if writing and isinstance(exc, _PEER_GONE):
                raise
            # Too late for a 500: end the connection so the client sees a
            # truncated body (no final chunk) rather than a complete one. An
            # HTTP/1.0 body ends where the connection does, so a plain close
            # would read as complete: reset it instead.
            if req.http_version == "1.0":
                _reset_now(self.stream)
            self.server.app_errors += 1
            logger.exception("streamed response body failed on %s %s (client %s)",
                             req.method, req.target, self.client)
            return False
        finally:
            self.deadline = _INF
            await _close_iterator(body)
        return True

    def _body_already_here(self, req: Request) -> bool:
        """Expect: 100-continue, yet the whole body is already buffered (``Content-Length: 0``,
        or a client that did not wait): the connection can be kept all the same.

        h11 clears its waiting flag only when it reaches the body, which the
        application did not read; the drain after the response reads it.
        (A chunked body is not measured: such a connection is closed.)
        """
        length = req.headers.get("content-length")
        if length is None or not length.isdigit():
            return False
        return len(self.h11.trailing_data[0]) >= int(length)

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

    async def _send_protocol_error(self, exc: h11.RemoteProtocolError) -> None:
        """A malformed request: answer 400 (431 for oversized headers) and close."""
        h = self.h11
        self.server.bad_requests += 1
        logger.debug("bad request from %s: %s", self.client, exc)
        if h.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status = exc.error_status_hint
        body = _REASONS.get(status, b"Bad Request") + b"\n"
        headers = [(b"content-type", b"text/plain; charset=utf-8"),
                   (b"content-length", b"%d" % len(body)), (b"connection", b"close"),
                   _date_header()]
        try:
            out = h.send(_H11Response(status_code=status, headers=headers,
                                      reason=_REASONS.get(status, b"")))
            out += h.send(_Data(data=body)) + h.send(_END)
            self.deadline = current_time() + (self.server.limits.write_timeout or 5.0)
            await self.stream.write(out)
        except (h11.LocalProtocolError, *_PEER_GONE):
            pass

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
                raise HTTPException(400, f"malformed request body: {exc}") from None
            if event is _NEED_DATA:
                if h.their_state is not _SEND_BODY:
                    return b""  # its end was taken already (see _disconnect._body_done)
                if h.they_are_waiting_for_100_continue:
                    await self._send_continue()
                if limits.body_timeout is not None:
                    self.deadline = current_time() + limits.body_timeout
                try:
                    data = await self.stream.read(65536)
                except _PEER_GONE as exc:
                    self.must_close = self.peer_eof = True
                    raise HTTPException(400, "the client disconnected") from exc
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
                    raise HTTPException(413)
                return bytes(data)
            if kind is _EOM or event is _PAUSED:
                if self.app_scope is not None:
                    start_cancelling_watch(self)  # cancel_on_disconnect, now that the body is read
                return b""
            self.must_close = True
            raise HTTPException(400, "the request body ended early")

    async def _send_continue(self) -> None:
        """``100 Continue``: the client waits for it before sending the body."""
        write_timeout = self.server.limits.write_timeout
        if write_timeout is not None:
            self.deadline = current_time() + write_timeout
        try:
            await self.stream.write(self.h11.send(_CONTINUE))
        except _PEER_GONE as exc:
            self.must_close = True
            raise HTTPException(400, "the client disconnected") from exc
        self.deadline = _INF


def _reset_now(stream: Stream) -> None:
    """Close ``stream``'s socket with a TCP reset now: a FIN or close_notify reads as a clean end."""
    sock = stream.get_extra_info("socket")
    if sock is None:  # not a socket (a test's memory stream): the plain close follows
        return
    try:
        sock.setsockopt(SOL_SOCKET, SO_LINGER, _LINGER_0)
    except OSError:
        pass
    sock.close()
