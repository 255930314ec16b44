"""The sending side of a server connection: a :class:`Response` framed by h11 and written.

:class:`~._connection.ServerConnection` reads requests and runs the
application; everything it writes to its client is put together here:

- a response (``send_response``, bound as ``ServerConnection._send``): the
  headers encoded for h11 in one pass, the ``Date`` header formatted once a
  second, validated h11 heads kept and reused, then one ``write`` for a
  bytes body, or one per chunk for a streamed one, each under the write
  timeout;
- the ``100 Continue`` a client may wait for before sending its body;
- the plain 400 (or 431) for a request h11 could not parse.

Separate because writing has its own rules and costs (statuses that have
no body, a ``Content-Length`` checked before anything is sent, a streamed
body's failure told apart from a client that left), while the connection
reads, runs the application and decides keep-alive. Only the end of
``send_response`` reaches back: the response sent, it asks the connection
whether the request is finished (``_request_finished``, ``_drain_body``).
It is on the hot path, so it moved whole rather than behind a wrapper:
``send_response`` *is* the method, and no call per request was added.
"""

from __future__ import annotations

import logging
import math
import struct
import time
from email.utils import formatdate
from http import HTTPStatus
from socket import SO_LINGER, SOL_SOCKET
from typing import TYPE_CHECKING, Any

import h11

from .._exceptions import ClosedResourceError
from .._time import current_time
from ..net._stream import BrokenStreamError, Stream
from ._errors import HTTPException
from ._response import _as_bytes, _close_iterator

if TYPE_CHECKING:
    from ._connection import ServerConnection
    from ._request import Request
    from ._response import Response

__all__ = ["send_continue", "send_protocol_error", "send_response"]

logger = logging.getLogger("yieldio.http")

_LINGER_0 = struct.pack("ii", 1, 0)  # on, 0 s: close() sends a reset

_H11Response = h11.Response
_Data = h11.Data
#: What a failed read or write of the client raises when the client is gone.
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
#: A bytes response bigger than this is written in slices of it, each under the write timeout.
_WRITE_SLICE = 256 * 1024


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


async def send_response(conn: ServerConnection, req: Request, response: Response) -> bool:
    """Send ``response`` to ``req``; True to keep the connection (``ServerConnection._send``)."""
    h = conn.h11
    server = conn.server
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
    if (h.they_are_waiting_for_100_continue and not isinstance(response.body, bytes)
            and response.status not in _NO_BODY and req.method != "HEAD"):
        # A streamed answer may read the request body as it goes (an echo,
        # a transform of an upload): the "100 Continue" its first read would
        # send cannot follow the final head, and the client would wait for
        # it while we wait for the body. So the client is asked for its body
        # now; one the app leaves unread is drained or the connection
        # closed, as after any response.
        try:
            await send_continue(conn)
        except HTTPException:  # the client is gone
            await _close_iterator(response.body)
            return False
    if server._closing or conn.must_close or (h.they_are_waiting_for_100_continue
                                              and not _body_already_here(conn, req)):
        # Waiting for 100-continue and answered without it: the client may
        # or may not send the body now, so this connection cannot be reused.
        headers.append((b"connection", b"close"))
    status = response.status
    if 200 <= status < 300 and req.method == "CONNECT":
        # h11 takes a 2xx to CONNECT for an open tunnel: it would send the
        # head, then refuse the body, and the client would get nothing at
        # all. The server has no tunnels, so it is refused here, as a 500.
        raise h11.LocalProtocolError(
            f"a {status} response to CONNECT would open a tunnel, which the server "
            "does not provide")
    body = response.body
    write_timeout = server.limits.write_timeout
    write = conn.stream.write
    if status in _NO_BODY:
        # 1xx, 204 and 304 responses have no body (RFC 9110): drop one given.
        if not isinstance(body, bytes):
            await _close_iterator(body)
        body = b""
        if status != 304 and stated_length is not None:
            # ... and no Content-Length either (RFC 9110 section 8.6); a 304's
            # may stand, as the length the 200 would have had.
            headers = [(n, v) for n, v in headers if n != b"content-length"]
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
        if write_timeout is None:
            await write(out)
        elif len(out) <= _WRITE_SLICE:
            conn.deadline = current_time() + write_timeout
            await write(out)
        else:
            await _write_in_slices(conn, out, write_timeout)
        conn.deadline = _INF
    else:
        head = _H11Response(status_code=status, headers=headers,
                            reason=_REASONS.get(status, b""))
        if not await _send_streamed(conn, req, head, body, write_timeout):
            return False
    # Sent: whether the connection is kept is the connection's to say.
    done = conn._request_finished()
    if done is None:
        return await conn._drain_body()
    return done


async def _send_streamed(conn: ServerConnection, req: Request, head: h11.Response, body: Any,
                         write_timeout: float | None) -> bool:
    h = conn.h11
    write = conn.stream.write
    out = h.send(head)
    if req.method == "HEAD":
        await _close_iterator(body)
        if write_timeout is not None:
            conn.deadline = current_time() + write_timeout
        await write(out + h.send(_END))
        conn.deadline = _INF
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
        conn.deadline = current_time() + timeout
        await write(out)
        conn.deadline = _INF
        writing = False
        if hasattr(body, "__aiter__"):
            async for chunk in body:
                if chunk:
                    writing = True
                    await _write_piece(conn, h.send(_Data(data=_as_bytes(chunk))), timeout)
                    writing = False
        else:
            for chunk in body:
                if chunk:
                    writing = True
                    await _write_piece(conn, h.send(_Data(data=_as_bytes(chunk))), timeout)
                    writing = False
        conn.deadline = current_time() + timeout
        writing = True
        await write(h.send(_END))
    except Exception as exc:
        if writing and isinstance(exc, _PEER_GONE):
            raise
        if exc is conn.body_error:
            # The body read the request's and that failed (the client left,
            # or sent too much or garbage): the client's doing, not a bug in
            # the app. Cut off as below, but neither logged as one nor counted.
            logger.debug("HTTP %s %s: streamed response cut off: the request body failed (%s)",
                         req.method, req.target, exc)
            return False
        # Too late for a 500: end the connection so the client sees a
        # truncated body (no final chunk) rather than a complete one. An
        # HTTP/1.0 body ends where the connection does, so a plain close
        # would read as complete: reset it instead.
        if req.http_version == "1.0":
            _reset_now(conn.stream)
        conn.server.app_errors += 1
        logger.exception("streamed response body failed on %s %s (client %s)",
                         req.method, req.target, conn.client)
        return False
    finally:
        conn.deadline = _INF
        await _close_iterator(body)
    return True


async def _write_piece(conn: ServerConnection, data: bytes, timeout: float) -> None:
    """Write one piece of a streamed body under the write timeout (sliced if big).

    An application may yield one huge chunk (a whole file read at once): as
    for a bytes body, the timeout bounds each slice, so a client reading
    steadily is not cut off mid-chunk.
    """
    if len(data) <= _WRITE_SLICE:
        conn.deadline = current_time() + timeout
        await conn.stream.write(data)
    else:
        await _write_in_slices(conn, data, timeout)
    conn.deadline = _INF


async def _write_in_slices(conn: ServerConnection, out: bytes, write_timeout: float) -> None:
    """Write a big response, the write timeout bounding each slice, not the whole.

    The timeout is for a client that reads *nothing* that long. One
    deadline for a 10 MB write would instead cut off, mid-body, a client
    that reads steadily but needs longer than that in all (a slow mobile
    link): it would get a truncated response.
    """
    view = memoryview(out)
    write = conn.stream.write
    for start in range(0, len(out), _WRITE_SLICE):
        conn.deadline = current_time() + write_timeout
        await write(view[start:start + _WRITE_SLICE])


def _body_already_here(conn: ServerConnection, req: Request) -> bool:
    """Expect: 100-continue, yet the whole body is already buffered (``Content-Length: 0``,
    or a client that did not wait): the connection can be kept all the same.

    h11 clears its waiting flag only when it reaches the body, which the
    application did not read; the drain after the response reads it.
    (A chunked body is not measured: such a connection is closed.)
    """
    length = req.headers.get("content-length")
    if length is None or not length.isdigit():
        return False
    return len(conn.h11.trailing_data[0]) >= int(length)


async def send_continue(conn: ServerConnection) -> None:
    """``100 Continue``: the client waits for it before sending the body."""
    write_timeout = conn.server.limits.write_timeout
    if write_timeout is not None:
        conn.deadline = current_time() + write_timeout
    try:
        await conn.stream.write(conn.h11.send(_CONTINUE))
    except _PEER_GONE as exc:
        conn.must_close = True
        raise HTTPException(400, "the client disconnected") from exc
    finally:
        conn.deadline = _INF  # (also if the app's own timeout cancelled the wait)


async def send_protocol_error(conn: ServerConnection, exc: h11.RemoteProtocolError) -> None:
    """A malformed request: answer 400 (431 for oversized headers) and close."""
    h = conn.h11
    conn.server.bad_requests += 1
    logger.debug("bad request from %s: %s", conn.client, exc)
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
        conn.deadline = current_time() + (conn.server.limits.write_timeout or 5.0)
        await conn.stream.write(out)
    except (h11.LocalProtocolError, *_PEER_GONE):
        pass


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
