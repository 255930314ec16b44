"""Request: what a server application receives.

::

    async def app(request):
        print(request.method, request.path, request.query.get("page"))
        print(request.headers["user-agent"], request.client)
        data = await request.json()          # or body(), text(), stream()
        return Response.json({"got": data})

The body is not read before the application runs: ``await
request.body()`` reads all of it (at most ``Limits.max_body_size``), and
``async for chunk in request.stream()`` reads it piece by piece, so an
upload of any size runs in bounded memory. A client that sent ``Expect:
100-continue`` gets its ``100 Continue`` when the application first asks for
the body -- not at all if it answers without reading it.

Whether the client is still there: ``request.is_disconnected()`` and
``await request.wait_disconnected()`` (see :mod:`._disconnect`).
"""

from __future__ import annotations

import json as _json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ._disconnect import watch as _watch
from ._errors import HTTPException
from ._headers import Headers, QueryParams
from ._upgrade import accept_websocket as _accept_websocket

if TYPE_CHECKING:
    from ._connection import ServerConnection
    from ._websocket import WebSocket

__all__ = ["Request"]


class Request:
    """One HTTP request, handed to the application by the server.

    Attributes: ``method`` (``"GET"``), ``target`` (the request target as
    sent: ``"/items/7?full=1"``), ``http_version`` (``"1.1"``), ``client``
    (the peer's ``(host, port)``), ``scheme`` (``"http"`` or ``"https"``),
    ``path_params`` (filled by :class:`Router`). Parsed on first use:
    ``path`` (percent-decoded: ``"/items/7"``), ``query`` (a
    :class:`QueryParams`), ``headers`` (case-insensitive :class:`Headers`).

    ::

        async def app(request):
            if request.method == "POST":
                async for chunk in request.stream():
                    sink.write(chunk)
            return Response.text(f"hello {request.client[0]}")
    """

    __slots__ = ("method", "target", "http_version", "client", "scheme", "path_params",
                 "_raw_headers", "_headers", "_path", "_query", "_conn", "_body",
                 "_streaming", "_websocket")

    def __init__(self, method: str, target: str, raw_headers: Any, http_version: str,
                 client: Any, scheme: str, conn: ServerConnection | None) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.client = client
        self.scheme = scheme
        self.path_params: dict[str, str] = {}
        self._raw_headers = raw_headers
        self._headers: Headers | None = None
        self._path: str | None = None
        self._query: QueryParams | None = None
        self._conn = conn
        self._body: bytes | None = None
        self._streaming = False
        self._websocket: WebSocket | None = None

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target}>"

    # -- parsed on demand ---------------------------------------------------------
    @property
    def headers(self) -> Headers:
        """The request headers (names lower-cased, case-insensitive lookups)."""
        h = self._headers
        if h is None:
            h = self._headers = Headers.from_raw(self._raw_headers)
        return h

    @property
    def raw_path(self) -> str:
        """The path part of the target, still percent-encoded."""
        target = self.target
        i = target.find("?")
        if i >= 0:
            # The query goes first: in absolute-form it may hold a "/" that
            # is not the path's ("http://host?next=/admin" is a request for "/").
            target = target[:i]
        if not target.startswith("/"):  # absolute-form ("http://host/x") or "*"
            if "://" in target:
                rest = target.split("://", 1)[1]
                target = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        return target

    @property
    def path(self) -> str:
        """The percent-decoded path: ``"/a b"`` for a target of ``"/a%20b?x=1"``."""
        p = self._path
        if p is None:
            raw = self.raw_path
            p = self._path = unquote(raw) if "%" in raw else raw
        return p

    @property
    def query_string(self) -> str:
        """The raw query string (after ``?``; ``""`` if none)."""
        i = self.target.find("?")
        return "" if i < 0 else self.target[i + 1:]

    @property
    def query(self) -> QueryParams:
        """The parsed query string (multi-valued: ``request.query.get_all("tag")``)."""
        q = self._query
        if q is None:
            q = self._query = QueryParams(self.query_string)
        return q

    @property
    def url(self) -> str:
        """The full URL, rebuilt from the scheme, the ``Host`` header (or, without one, the
        server address the request came in on) and the target."""
        if "://" in self.target:
            return self.target
        host = self.headers.get("host")
        if not host:
            # HTTP/1.0 needs no Host (and an HTTP/1.1 one may be empty): the
            # address the request came in on, as Starlette uses the ASGI
            # "server" -- not "http:///path", a URL without a host.
            host = self._server_host()
        return f"{self.scheme}://{host}{self.target}"

    def _server_host(self) -> str:
        conn = self._conn
        addr = conn.stream.get_extra_info("sockname") if conn is not None else None
        if not isinstance(addr, tuple) or len(addr) < 2:
            return ""
        ip, port = addr[0], addr[1]
        if ":" in ip:
            ip = f"[{ip}]"
        default = 443 if self.scheme == "https" else 80
        return ip if port == default else f"{ip}:{port}"

    @property
    def is_websocket(self) -> bool:
        """True for a WebSocket opening handshake (``Upgrade: websocket``)."""
        if self.method != "GET":
            return False
        return any(v.lower() == "websocket" for v in
                   (p.strip() for value in self.headers.get_all("upgrade")
                    for p in value.split(",")))

    # -- the body -------------------------------------------------------------------
    async def stream(self) -> AsyncIterator[bytes]:
        """Yield the body in chunks as they arrive (each non-empty).

        ::

            total = 0
            async for chunk in request.stream():
                total += len(chunk)

        Raises :class:`HTTPException` ``(413)`` past ``max_body_size`` and
        ``(400)`` if the client sends a malformed or truncated body.
        """
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._streaming:
            raise RuntimeError("the request body was already consumed")
        self._streaming = True
        conn = self._conn
        if conn is None:
            return
        while True:
            chunk = await conn.receive_body_chunk()
            if not chunk:
                return
            yield chunk

    async def body(self) -> bytes:
        """The whole body (read once, then cached).

        ::

            raw = await request.body()
        """
        if self._body is None:
            if self._streaming:
                raise RuntimeError("the request body was already consumed by stream()")
            self._streaming = True
            conn = self._conn
            parts = []
            if conn is not None:
                while True:
                    chunk = await conn.receive_body_chunk()
                    if not chunk:
                        break
                    parts.append(chunk)
            self._body = b"".join(parts)
        return self._body

    async def text(self) -> str:
        """The body decoded with the ``charset`` of ``content-type`` (UTF-8 by default)."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return (await self.body()).decode(charset)
        except (LookupError, UnicodeDecodeError) as exc:
            raise HTTPException(400, f"the body is not valid {charset} text") from exc

    async def json(self) -> Any:
        """The body parsed as JSON; :class:`HTTPException` ``(400)`` if it is not JSON.

        ::

            item = await request.json()
        """
        body = await self.body()
        try:
            return _json.loads(body)
        except (ValueError, RecursionError) as exc:
            # RecursionError: "[" nested some 100,000 deep, a few bytes a
            # client may send, is malformed input -- a 400, not a logged 500.
            raise HTTPException(400, f"invalid JSON body: {exc}") from exc

    # -- the client going away ----------------------------------------------------------
    def is_disconnected(self) -> bool:
        """True once the client is known to have closed, half-closed or reset the connection.

        ::

            async def report(request):
                for part in parts:
                    if request.is_disconnected():
                        break                      # nobody will read the rest
                    await build(part)
                return Response.text("done")

        It never waits, so it is a plain method, not a coroutine (Starlette's
        is async only because it must poll an ASGI ``receive``): the first
        call starts a task reading the connection after the request, and
        answers from what that task has seen so far -- ``False`` until it
        has run, so call it between awaits. Raises ``RuntimeError`` if the
        request body is not read yet (its bytes would be taken from you):
        ``await request.body()`` first. After the response, or on a
        WebSocket, it reports only what was seen before.
        """
        conn = self._conn
        if conn is None:
            return False
        if not conn.peer_eof:
            _watch(conn, self)
        return conn.peer_eof

    async def wait_disconnected(self) -> None:
        """Return when the client closes, half-closes or resets the connection.

        ::

            async def long_poll(request):
                message = None
                async with yieldio.TaskGroup() as tg:
                    async def give_up():
                        await request.wait_disconnected()
                        tg.cancel()                # the client left: stop waiting
                    tg.spawn(give_up)
                    message = await inbox.get()
                    tg.cancel()                    # got one: stop watching
                if message is None:
                    return Response(204)           # nobody is there to read it
                return Response.json(message)

        Bytes the client sends meanwhile (a pipelined request) are kept for
        the next request, up to ``Limits.max_header_size``; past that it
        stops reading and can no longer tell, and waits until cancelled. A
        half-close (``shutdown(SHUT_WR)``) counts as gone, as in uvicorn.
        Raises ``RuntimeError`` if the request body is not read yet, or if
        the response was already sent.
        """
        conn = self._conn
        if conn is None:
            raise RuntimeError("this request has no connection to watch")
        w = _watch(conn, self)
        if w is None:
            if conn.peer_eof:
                return
            raise RuntimeError("the response to this request was already sent"
                               if conn.websocket is None else
                               "a WebSocket reports its close itself (WebSocketClosed)")
        await w.wait()

    # -- WebSocket --------------------------------------------------------------------
    async def accept_websocket(self, subprotocol: str | None = None,
                               headers: dict[str, str] | None = None) -> WebSocket:
        """Accept a WebSocket handshake and return the :class:`WebSocket`.

        ::

            async def app(request):
                ws = await request.accept_websocket()
                async for message in ws:
                    await ws.send(message)       # echo

        ``subprotocol`` picks one of the client's ``Sec-WebSocket-Protocol``
        offers; ``headers`` are added to the 101 response. On a request that
        is not a WebSocket handshake it raises :class:`HTTPException`
        ``(400)`` (the client gets a 400). What the application returns
        afterwards is ignored; when it returns, the server closes the
        WebSocket (code 1000, or 1011 if it raised) if it is still open.
        """
        if self._websocket is not None:
            raise RuntimeError("accept_websocket() was already called for this request")
        if not self.is_websocket or self._conn is None:
            raise HTTPException(400, "expected a WebSocket handshake (Upgrade: websocket)")
        self._websocket = await _accept_websocket(self._conn, self, subprotocol, headers)
        return self._websocket
