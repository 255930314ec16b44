"""The HTTP client's connections and their pool (keep-alive, per-origin limits).

A :class:`ClientConnection` is one HTTP/1.1 connection driven by an h11
client state machine. The :class:`ConnectionPool` hands them out per origin
(scheme, host, port): an idle kept-alive connection when one is fresh,
otherwise a new one. Two semaphores bound the connections *in use*: per
origin (``Limits.max_connections_per_host``) and in total
(``Limits.max_connections``); idle connections count towards the total too,
so when it is reached the oldest idle connection to another origin is
closed to make room. Idle connections are dropped after
``Limits.keep_alive_timeout`` seconds, and a connection the server has
closed meanwhile is noticed before it is reused (its socket is readable).

A request sent with ``Expect: 100-continue`` waits after its head, as curl
does, for the server's ``100 Continue`` before sending its body (see
:meth:`ClientConnection.send_request`).
"""

from __future__ import annotations

import math
import select
import ssl as _ssl
from typing import Any

import h11

from .._exceptions import ClosedResourceError
from .._time import current_time
from .._timeouts import fail_after
from ..net._socket_stream import SocketStream
from ..net._stream import BrokenStreamError, Stream
from ..net._tcp import open_tcp_stream
from ..net._tls import TLSStream
from ..sync import Semaphore
from ._errors import ProtocolError, Timeout, connect_error
from ._limits import Limits

__all__ = ["ClientConnection", "ConnectionPool", "Origin", "StaleConnection"]

Origin = tuple[str, str, int]  # (scheme, host, port)
_poll = getattr(select, "poll", None)  # not on Windows
_IO_ERRORS = (OSError, ClosedResourceError, BrokenStreamError, EOFError)


class StaleConnection(Exception):
    """A reused keep-alive connection failed before any response byte: retry on a new one."""


def _deadline(timeout: float | None) -> float:
    return math.inf if timeout is None else timeout


class ClientConnection:
    """One HTTP/1.1 connection to ``origin`` (used by one request at a time)."""

    __slots__ = ("stream", "h11", "origin", "idle_since", "reused", "closed", "send_error",
                 "early_response")

    def __init__(self, stream: Stream, origin: Origin, max_header_size: int) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_size)
        self.origin = origin
        self.idle_since = 0.0
        self.reused = False
        self.closed = False
        self.send_error: BaseException | None = None
        #: The final response that came instead of a ``100 Continue``: the
        #: body was never sent (so the connection is not reused).
        self.early_response: h11.Response | None = None

    def __repr__(self) -> str:
        return f"<ClientConnection {self.origin[0]}://{self.origin[1]}:{self.origin[2]}>"

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            await self.stream.aclose()

    def looks_dead(self) -> bool:
        """An idle connection whose socket is readable was closed (or spoken to) by the server.

        Over TLS the socket under it is checked: a close_notify or a FIN
        makes it readable. (So may a late TLS 1.3 session ticket: that
        connection is dropped too, which costs only a new connection,
        whereas reusing a closed one fails a request whose body is
        streamed, since that body cannot be sent again.)
        """
        stream = self.stream
        transport = getattr(stream, "transport", None)
        if isinstance(transport, SocketStream):
            stream = transport
        if not isinstance(stream, SocketStream):
            return False  # not a socket we can look at (the in-memory network)
        try:
            fd = stream.get_extra_info("socket").fileno()
            if _poll is not None:
                # poll(), not select(): select() cannot watch a descriptor
                # >= FD_SETSIZE (1024), so in a busy process every idle
                # connection would look dead and none would be reused.
                poller = _poll()
                poller.register(fd, select.POLLIN)
                return bool(poller.poll(0))
            readable, _, _ = select.select([fd], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    async def send_request(self, request: h11.Request, body: Any, timeout: float | None,
                           expect_continue: float | None = None) -> None:
        """Send the request head and ``body`` (bytes, or an iterable of chunks).

        With ``expect_continue`` (seconds; the request says ``Expect:
        100-continue``) the head goes alone, then the body once the server
        says ``100 Continue`` or that many seconds pass without an answer
        (servers that ignore Expect are common). A final response instead
        (a 401, a 413, a 417) means the server does not want the body: it is
        not sent, and :meth:`receive_head` returns that response.
        """
        h = self.h11
        out = h.send(request)
        if expect_continue is not None:
            # The head goes alone (a request without Expect sends it with
            # the body below, under one timeout scope).
            try:
                with fail_after(_deadline(timeout)):
                    await self.stream.write(out)
                out = b""
            except TimeoutError as exc:
                raise Timeout(f"sending the request to {self.origin[1]} timed out") from exc
            except _IO_ERRORS as exc:
                if self.reused:
                    raise StaleConnection(str(exc)) from exc
                self.send_error = exc  # see below: perhaps there is an early answer to read
                return
            # Raises StaleConnection if a reused connection turns out closed:
            # nothing of the body was sent, so it can go on a new one.
            self.early_response = await self._wait_for_continue(expect_continue)
            if self.early_response is not None:
                return
            # It was alive all that time (a close would have been seen): a
            # failure from now on is no stale keep-alive connection, and the
            # server may act on the request, so it is not sent again.
            self.reused = False
        try:
            with fail_after(_deadline(timeout)):
                if isinstance(body, bytes):
                    if body:
                        out += h.send(h11.Data(data=body))
                    await self.stream.write(out + h.send(h11.EndOfMessage()))
                    return
                if out:
                    await self.stream.write(out)
        except TimeoutError as exc:
            raise Timeout(f"sending the request to {self.origin[1]} timed out") from exc
        except _IO_ERRORS as exc:
            if self.reused:
                raise StaleConnection(str(exc)) from exc
            # The server may have answered early (a 413, say) and closed:
            # stop sending and let receive_head() read what it said.
            self.send_error = exc
            return
        # A streamed body: each chunk gets the timeout.
        try:
            if hasattr(body, "__aiter__"):
                async for chunk in body:
                    await self._write_chunk(chunk, timeout)
            else:
                for chunk in body:
                    await self._write_chunk(chunk, timeout)
            with fail_after(_deadline(timeout)):
                await self.stream.write(h.send(h11.EndOfMessage()))
        except TimeoutError as exc:
            raise Timeout(f"sending the request body to {self.origin[1]} timed out") from exc
        except h11.LocalProtocolError as exc:
            # More or fewer bytes than the Content-Length the caller gave.
            raise ValueError(f"the streamed request body does not match its "
                             f"Content-Length: {exc}") from None
        except _IO_ERRORS as exc:
            self.send_error = exc  # as above: perhaps there is an early answer to read

    async def _wait_for_continue(self, wait: float) -> h11.Response | None:
        """After a head saying ``Expect: 100-continue``: None when the body should
        go (a ``100 Continue`` came, or ``wait`` seconds passed), or the final
        response the server sent instead."""
        deadline = current_time() + wait
        while True:
            remaining = deadline - current_time()
            if remaining <= 0:
                return None
            try:
                # A read cut short by the timeout loses nothing: a partial head
                # stays in h11's buffer for receive_head().
                event = await self._receive_event(remaining, "head")
            except Timeout:
                return None
            if isinstance(event, h11.InformationalResponse):
                self.reused = False  # it has the request (see receive_head)
                if event.status_code == 100:
                    return None
                continue  # a 103 Early Hints, say: still waiting
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.ConnectionClosed):
                if self.reused:
                    raise StaleConnection("the server closed the kept-alive connection")
                raise ProtocolError(f"{self.origin[1]} closed the connection without a response")
            raise ProtocolError(f"unexpected {event!r} from {self.origin[1]}")

    async def _write_chunk(self, chunk: Any, timeout: float | None) -> None:
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8")
        if chunk:
            with fail_after(_deadline(timeout)):
                await self.stream.write(self.h11.send(h11.Data(data=chunk)))

    def _lost(self, exc: BaseException) -> Exception:
        if self.reused:
            return StaleConnection(str(exc))
        if self.send_error is not None:
            return ProtocolError(f"connection to {self.origin[1]} lost while sending the "
                                 f"request: {self.send_error!r}")
        return ProtocolError(f"connection to {self.origin[1]} lost while waiting for the "
                             f"response: {exc!r}")

    async def _receive_event(self, timeout: float | None, phase: str) -> Any:
        h = self.h11
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                # Never StaleConnection, even on a reused connection: the
                # server did answer (a closed connection is noticed below,
                # before h11 sees the end of the data), so sending the
                # request again could run it twice.
                raise ProtocolError(f"bad response from {self.origin[1]}: {exc}") from exc
            if event is not h11.NEED_DATA:
                return event
            try:
                with fail_after(_deadline(timeout)):
                    data = await self.stream.read(65536)
            except TimeoutError as exc:
                raise Timeout(f"waiting for the response {phase} from {self.origin[1]} "
                              f"timed out") from exc
            except _IO_ERRORS as exc:
                if phase == "head":
                    raise self._lost(exc) from exc
                raise ProtocolError(f"connection lost while reading the response body: "
                                    f"{exc!r}") from exc
            if not data and phase == "head" and not h.trailing_data[0]:
                if self.reused:
                    raise StaleConnection("the server closed the kept-alive connection")
                raise ProtocolError(f"{self.origin[1]} closed the connection without a response")
            if data:
                # The server has started answering, so it has the request: a
                # reset from now on (even before the head is complete) is no
                # stale keep-alive connection, and sending the request again
                # could run it twice (a POST, say).
                self.reused = False
            h.receive_data(data)

    async def receive_head(self, timeout: float | None) -> h11.Response:
        """The final response head (1xx informational responses are skipped)."""
        if self.early_response is not None:
            return self.early_response
        while True:
            event = await self._receive_event(timeout, "head")
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.InformationalResponse):
                # The server has answered (a 100 Continue, a 103 Early Hints):
                # it has the request, so a close from now on is no stale
                # keep-alive connection, and sending the request again could
                # run it twice (a POST, say).
                self.reused = False
                continue
            if isinstance(event, h11.ConnectionClosed):
                if self.reused:
                    raise StaleConnection("the server closed the kept-alive connection")
                raise ProtocolError(f"{self.origin[1]} closed the connection without a response")
            raise ProtocolError(f"unexpected {event!r} from {self.origin[1]}")

    async def receive_body_chunk(self, timeout: float | None) -> bytes:
        """The next piece of the response body; ``b""`` at its end."""
        event = await self._receive_event(timeout, "body")
        if type(event) is h11.Data:
            return bytes(event.data)
        if type(event) is h11.EndOfMessage:
            return b""
        raise ProtocolError(f"unexpected {event!r} in the response body from {self.origin[1]}")

    def finish_cycle(self) -> bool:
        """After a complete response: ready the connection for reuse if both sides allow."""
        h = self.h11
        # A body delimited by the end of the connection leaves h11 in DONE
        # until the next event: the close it has already seen (trailing_data
        # says so) means the connection cannot go back to the pool.
        # Bytes already received past the end of this response (a body longer
        # than its Content-Length, a response nobody asked for) would be taken
        # for the answer to the next request sent on this connection: it is
        # out of step with the server and cannot be reused either.
        # Over TLS such bytes may still be inside the TLS stream, where h11
        # cannot see them: decrypted, or still encrypted in a record after
        # the one that ended this response.
        buffered, closed = h.trailing_data
        if isinstance(self.stream, TLSStream) and self.stream._unread_bytes():
            return False
        if closed or buffered:
            return False
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()
            return True
        return False


class ConnectionPool:
    """Connections by origin, with limits (see the module docstring)."""

    def __init__(self, limits: Limits, ssl_context: _ssl.SSLContext | None) -> None:
        self.limits = limits
        self._ssl = ssl_context
        self._idle: dict[Origin, list[ClientConnection]] = {}
        self._per_host: dict[Origin, Semaphore] = {}
        self._total = Semaphore(limits.max_connections) if limits.max_connections else None
        self.open = 0
        self.connecting = 0  # connections being opened: they count against the limit too
        self.closed = False

    def _ssl_context(self) -> _ssl.SSLContext:
        if self._ssl is None:
            self._ssl = _ssl.create_default_context()
        return self._ssl

    async def acquire(self, origin: Origin, timeout: float | None) -> ClientConnection:
        """A connection to ``origin`` for one request; give it back with :meth:`release`."""
        if self.closed:
            raise RuntimeError("this Client is closed")
        sem = self._per_host.get(origin)
        per_host = self.limits.max_connections_per_host
        if sem is None and per_host:
            sem = self._per_host[origin] = Semaphore(per_host)
        try:
            with fail_after(_deadline(timeout)):
                if sem is not None:
                    await sem.acquire()
                try:
                    if self._total is not None:
                        await self._total.acquire()
                except BaseException:
                    if sem is not None:
                        sem.release()
                    raise
        except TimeoutError as exc:
            raise Timeout(f"no free connection to {origin[1]} within the timeout") from exc
        if self.closed:
            # aclose() ran while this request waited for a free connection.
            self._release_permits(origin)
            raise RuntimeError("this Client is closed")
        try:
            return await self._get(origin, timeout)
        except BaseException:
            self._release_permits(origin)
            raise

    async def _get(self, origin: Origin, timeout: float | None) -> ClientConnection:
        idle = self._idle.get(origin)
        expiry = self.limits.keep_alive_timeout
        now = current_time()
        while idle:
            conn = idle.pop()
            if (expiry is not None and now - conn.idle_since > expiry) or conn.looks_dead():
                await self._discard(conn)
                continue
            conn.reused = True
            return conn
        if (self.limits.max_connections
                and self.open + self.connecting >= self.limits.max_connections):
            # (Counting those still connecting: two tasks that each saw room
            # for one more both opened one, and the pool went past its limit.)
            await self._evict_one()
        return await self.connect(origin, timeout)

    async def connect(self, origin: Origin, timeout: float | None) -> ClientConnection:
        scheme, host, port = origin
        self.connecting += 1
        try:
            with fail_after(_deadline(timeout)):
                stream = await open_tcp_stream(
                    host, port, ssl=self._ssl_context() if scheme == "https" else None)
        except TimeoutError as exc:
            raise Timeout(f"connecting to {host}:{port} timed out") from exc
        except (OSError, _ssl.SSLError) as exc:
            raise connect_error(host, port, exc) from exc
        finally:
            self.connecting -= 1
        self.open += 1
        return ClientConnection(stream, origin, self.limits.max_header_size)

    async def _evict_one(self) -> None:
        oldest: ClientConnection | None = None
        for conns in self._idle.values():
            if conns and (oldest is None or conns[0].idle_since < oldest.idle_since):
                oldest = conns[0]
        if oldest is not None:
            self._idle[oldest.origin].remove(oldest)
            await self._discard(oldest)

    async def _discard(self, conn: ClientConnection) -> None:
        if not conn.closed:
            self.open -= 1
        await conn.aclose()

    def _release_permits(self, origin: Origin) -> None:
        sem = self._per_host.get(origin)
        if sem is not None:
            sem.release()
        if self._total is not None:
            self._total.release()

    async def release(self, conn: ClientConnection, reusable: bool) -> None:
        """Give ``conn`` back: kept idle for reuse, or closed."""
        try:
            if reusable and not conn.closed and not self.closed:
                conn.idle_since = current_time()
                self._idle.setdefault(conn.origin, []).append(conn)
            else:
                await self._discard(conn)
        finally:
            self._release_permits(conn.origin)

    async def aclose(self) -> None:
        """Close every idle connection; connections in use close when released."""
        self.closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                await self._discard(conn)
