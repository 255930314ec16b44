"""Noticing a client that goes away while its request is being handled.

Nothing reads a server connection while the application runs, so by
default a client that closes is noticed only when the response is written.
A request that asks (:meth:`Request.is_disconnected`,
:meth:`Request.wait_disconnected`), or every request of a server started
with ``cancel_on_disconnect=True``, gets a :class:`DisconnectWatch`: a task
that reads the connection until EOF, after the request body.

- What it reads is the client's *next* bytes (a pipelined request): they go
  into h11's buffer (``receive_data`` works in any state; ``next_event``
  answers ``PAUSED`` until the cycle ends), so nothing is lost.
- At most ``Limits.max_header_size`` bytes are held that way (one pipelined
  request head). Past that the watch stops reading, TCP pushes back, and a
  disconnect can no longer be seen for this request.
- EOF (a close, or a half-close: ``shutdown(SHUT_WR)``), a reset or a broken
  stream all count as gone, as in uvicorn. The connection remembers it
  (``ServerConnection.peer_eof``): requests already buffered are answered,
  then it closes instead of waiting for another one.
- The watch never reads alongside anyone: it starts only once the body is
  read, and the connection stops it (cancels its task and waits for it)
  before reading again or handing the stream to a WebSocket.

A server that never asks pays nothing: no task, no read, one attribute test.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import h11

from .._cancel import CancelScope
from .._exceptions import ClosedResourceError, TaskCancelled
from .._stream import BrokenStreamError
from ..sync import Event

if TYPE_CHECKING:
    from .._task import Task
    from ._connection import ServerConnection
    from ._request import Request

__all__ = ["ClientGone", "DisconnectWatch", "call_app_cancellable", "watch"]

logger = logging.getLogger("yieldio.http")

_PEER_GONE = (OSError, ClosedResourceError, BrokenStreamError, EOFError)
_SEND_BODY = h11.SEND_BODY
_EOM = h11.EndOfMessage
# What the response may be doing while a watch reads: not yet sent, or streaming.
_RESPONDING = (h11.SEND_RESPONSE, h11.SEND_BODY)


class ClientGone(Exception):
    """The application was cancelled because its client went away (cancel_on_disconnect)."""


class DisconnectWatch:
    """One request's watch: a task reading the connection until EOF (see the module docstring)."""

    __slots__ = ("conn", "gone", "capped", "on_gone", "_event", "_task")

    def __init__(self, conn: ServerConnection, on_gone: Any = None) -> None:
        self.conn = conn
        self.gone = False
        self.capped = False
        self.on_gone = on_gone  # called once, when the client is seen to go
        self._event = Event()
        self._task: Task | None = None
        if conn.peer_eof:
            self._mark_gone()
        else:
            self._task = conn.server._tg.spawn(self._run, name=f"http disconnect watch {conn.client}")

    def _mark_gone(self) -> None:
        self.gone = True
        self.conn.peer_eof = True
        self._event.set()
        if self.on_gone is not None:
            self.on_gone()

    async def _run(self) -> None:
        conn = self.conn
        h = conn.h11
        read = conn.stream.read
        room = conn.server.limits.max_header_size - len(h.trailing_data[0])
        try:
            while room > 0:
                data = await read(min(room, 65536))
                if not data:
                    break
                h.receive_data(data)  # a pipelined request: kept for the next cycle
                room -= len(data)
            else:
                self.capped = True
                logger.debug("HTTP client %s sent %d bytes ahead: no longer watching for "
                             "a disconnect", conn.client, conn.server.limits.max_header_size)
                return
        except _PEER_GONE as exc:  # a reset, a broken stream
            logger.debug("HTTP client %s gone while its request ran: %r", conn.client, exc)
        except Exception:  # a bug: never let it take the server's task group down
            logger.exception("watching HTTP client %s for a disconnect failed", conn.client)
            return
        self._mark_gone()

    async def wait(self) -> None:
        await self._event.wait()

    def cancel(self) -> None:
        """Cancel the watch's task without waiting for it (the connection is ending)."""
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        """End the watch (the connection is about to read again, or to close).

        Waiters not woken by then stay asleep: the connection, no longer
        read, cannot tell any more (the response has been sent by then).
        """
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task.join()
            except TaskCancelled:
                pass


def _body_done(conn: ServerConnection, req: Request) -> bool:
    """True if the request body has been read, or there is none (its end is then taken)."""
    h = conn.h11
    if h.their_state is not _SEND_BODY:
        return True  # DONE, MIGHT_SWITCH_PROTOCOL, CLOSED...
    headers = req.headers
    if "transfer-encoding" in headers or headers.get("content-length", "0").strip() != "0":
        return False
    # No body: h11 has the end of the message already, no byte needed.
    return type(h.next_event()) is _EOM


def watch(conn: ServerConnection, req: Request) -> DisconnectWatch | None:
    """The watch of ``req``, started on first use; None once its response is sent.

    Raises RuntimeError if the body is not read yet: the watch would have
    to read it, and take it from the application.
    """
    w = conn.watch
    if w is not None:
        return w
    if conn.current is not req or conn.websocket is not None \
            or conn.h11.our_state not in _RESPONDING:
        return None
    if not conn.peer_eof and not _body_done(conn, req):
        raise RuntimeError("read the request body (await request.body(), or "
                           "request.stream() to its end) before watching for a disconnect")
    w = conn.watch = DisconnectWatch(conn)
    return w


async def call_app_cancellable(conn: ServerConnection, req: Request) -> Any:
    """``cancel_on_disconnect=True``: run the application in a scope the watch cancels.

    The watch starts now if the request has no body, else when the
    application has read the body to its end (``receive_body_chunk``).
    Raises :class:`ClientGone` if the application was cancelled that way.
    """
    if conn.peer_eof:
        raise ClientGone  # (a request pipelined before the client left)
    with CancelScope() as scope:
        conn.app_scope = scope
        try:
            if _body_done(conn, req):
                start_cancelling_watch(conn)
            return await conn.server.app(req)
        finally:
            conn.app_scope = None
    if req._websocket is not None:
        return None  # accepted before the cancel landed: the connection finishes it
    raise ClientGone


def start_cancelling_watch(conn: ServerConnection) -> None:
    """Start the watch of a ``cancel_on_disconnect`` request (its body is read)."""
    scope = conn.app_scope
    if scope is None:
        return
    w = conn.watch
    if w is None:
        conn.watch = DisconnectWatch(conn, scope.cancel)
    elif w.on_gone is None:  # the application asked first
        w.on_gone = scope.cancel
        if w.gone:
            scope.cancel()
