"""The HTTP/1.1 client: ``async with Client() as client: await client.get(url)``.

::

    async with yieldio.http.Client(timeout=10) as client:
        r = await client.get("https://example.org/")
        print(r.status, r.headers["content-type"], len(await r.read()))

        r = await client.post("http://127.0.0.1:8000/items", json={"name": "x"})
        item = await r.json()

        async with client.stream("GET", "http://127.0.0.1:8000/big") as r:
            async for chunk in r.iter_bytes():
                sink.write(chunk)

Connections are kept alive and reused per origin (see
:class:`~yieldio.http._pool.ConnectionPool`); a kept-alive connection the
server closed meanwhile is retried once on a fresh connection (only for
requests whose body can be sent again, or whose streamed body was not
started yet). HTTPS verifies certificates with
``ssl.create_default_context()`` unless you pass ``ssl=``. Redirects are
followed when ``follow_redirects=True``. ``gzip``/``deflate`` bodies are
decoded (``iter_raw()`` gives the bytes as sent) and cookies are kept in
``client.cookies`` (see :class:`Client`). A body sent with ``Expect:
100-continue`` waits for the server's word (see :class:`Client`). The
request itself (URL, body, head) is built in :mod:`._client_request`, the
connections are :mod:`._pool`'s. Errors: :class:`ConnectError`,
:class:`Timeout` (a ``TimeoutError``), :class:`ProtocolError` (and its
:class:`DecodingError`), :class:`TooManyRedirects`.
"""

from __future__ import annotations

import json as _json
import ssl as _ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urljoin

from .._time import checkpoint
from ._client_request import (  # _merge_url: also imported from here by the tests
    _UNSET,
    _location,
    _merge_url,  # noqa: F401
    _split_url,
    build_request,
    request_head,
)
from ._cookies import CookiesLike, make_jar, store_cookies
from ._decoding import DEFAULT_MAX_DECODED_SIZE, ContentDecoder
from ._errors import DecodingError, HTTPStatusError, ProtocolError, Timeout, TooManyRedirects
from ._headers import Headers, HeadersLike
from ._limits import Limits
from ._pool import ClientConnection, ConnectionPool, StaleConnection

__all__ = ["Client", "ClientResponse"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})

class ClientResponse:
    """A response received by :class:`Client`.

    ::

        r = await client.get(url)
        r.status, r.reason, r.headers["content-type"], r.http_version
        data = await r.read()        # bytes (cached: also r.content)
        obj = await r.json()
        text = await r.text()
        r.raise_for_status()         # HTTPStatusError for 4xx/5xx

    From :meth:`Client.stream` the body is not read yet: iterate
    :meth:`iter_bytes` (or call :meth:`read`) inside the ``async with``.
    """

    def __init__(self, status: int, reason: str, headers: Headers, http_version: str,
                 url: str, method: str, conn: ClientConnection | None, pool: ConnectionPool,
                 timeout: float | None,
                 max_decoded_size: int | None = DEFAULT_MAX_DECODED_SIZE) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.http_version = http_version
        self.url = url
        self.method = method
        #: Redirect responses that led here (oldest first).
        self.history: list[ClientResponse] = []
        self._conn = conn
        self._pool = pool
        self._timeout = timeout
        self._content: bytes | None = None
        self._consumed = False
        self._decoder = ContentDecoder.for_headers(headers, max_decoded_size)

    def __repr__(self) -> str:
        return f"<ClientResponse {self.status} {self.reason} {self.method} {self.url}>"

    @property
    def status_code(self) -> int:
        """Alias of :attr:`status`."""
        return self.status

    @property
    def is_redirect(self) -> bool:
        """A 301/302/303/307/308 with a ``Location`` header."""
        return self.status in _REDIRECTS and "location" in self.headers

    @property
    def ok(self) -> bool:
        """True for status codes below 400."""
        return self.status < 400

    @property
    def content(self) -> bytes:
        """The body, once read (:meth:`read`); RuntimeError before."""
        if self._content is None:
            raise RuntimeError("the response body was not read yet: await response.read()")
        return self._content

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """Yield the body in chunks as they arrive, decoded (``Content-Encoding: gzip``...).

        ::

            async for chunk in response.iter_bytes():
                f.write(chunk)
        """
        return self._iter(True)

    def iter_raw(self) -> AsyncIterator[bytes]:
        """Yield the body as received, not decoded (still gzipped if it was sent so).

        ::

            async with client.stream("GET", url) as r:
                async for chunk in r.iter_raw():
                    f.write(chunk)            # the .gz as the server sent it

        Only before the body is read: once :meth:`read` decoded it, the raw
        bytes are gone (``RuntimeError``, unless there was nothing to decode).
        """
        if self._content is not None and self._decoder is not None:
            raise RuntimeError("the response body was already read and decoded: "
                               "call iter_raw() on a streamed response, before reading")
        return self._iter(False)

    async def _iter(self, decode: bool) -> AsyncIterator[bytes]:
        if self._content is not None:
            if self._content:
                yield self._content
            return
        if self._consumed:
            raise RuntimeError("the response body was already consumed")
        self._consumed = True
        conn = self._conn
        if conn is None:
            return
        decoder = self._decoder if decode else None
        ok = False
        try:
            while True:
                chunk = await conn.receive_body_chunk(self._timeout)
                if not chunk:
                    if decoder is not None:
                        decoder.finish()  # a truncated body: DecodingError, not pooled
                    ok = True
                    break
                if decoder is None:
                    yield chunk
                else:
                    # One received chunk (up to 64 KiB compressed) can decode to
                    # megabytes: the decoder makes it in pieces of at most 64 KiB,
                    # and each piece after the first waits for a checkpoint, so a
                    # compression bomb up to max_decoded_size cannot hold the loop.
                    first = True
                    for piece in decoder.feed(chunk):  # DecodingError: not pooled either
                        if not first:
                            await checkpoint()
                        first = False
                        yield piece
        finally:
            # aclose() may have released it already (the loop was abandoned):
            # then there is nothing to await here, which also keeps this
            # generator safe to finalize without an event loop.
            if self._conn is conn:
                self._conn = None
                await self._pool.release(conn, ok and conn.finish_cycle())

    async def read(self) -> bytes:
        """The whole body (read once, then cached)."""
        if self._content is None:
            parts = [chunk async for chunk in self.iter_bytes()]
            self._content = b"".join(parts)
        return self._content

    async def text(self) -> str:
        """The body decoded with the response charset (UTF-8 by default, errors replaced)."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        body = await self.read()
        try:
            return body.decode(charset, errors="replace")
        except LookupError:
            return body.decode("utf-8", errors="replace")

    async def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` if it is not)."""
        return _json.loads(await self.read())

    def raise_for_status(self) -> ClientResponse:
        """Raise :class:`HTTPStatusError` for a 4xx or 5xx status; return self otherwise."""
        if self.status >= 400:
            raise HTTPStatusError(f"{self.status} {self.reason} for {self.method} {self.url}",
                                  self)
        return self

    async def aclose(self) -> None:
        """Stop reading: the connection is closed (not reused) unless the body was read."""
        conn, self._conn = self._conn, None
        self._consumed = True
        if conn is not None:
            await self._pool.release(conn, False)


class Client:
    """An HTTP/1.1 client with a keep-alive connection pool.

    ::

        async with Client(timeout=5, follow_redirects=True) as client:
            r = await client.get("http://127.0.0.1:8000/", params={"q": "x"})

    ``timeout`` (seconds, or None) bounds each step: waiting for a pooled
    connection, connecting (with TLS), sending, and each read.
    ``limits`` (:class:`Limits`) bounds the pool: ``max_connections``,
    ``max_connections_per_host``, ``keep_alive_timeout``,
    ``max_header_size``. ``ssl`` replaces the default verifying
    ``SSLContext``; ``headers`` are sent with every request; ``base_url``
    is put in front of relative URLs, as httpx does: with
    ``base_url="http://api.example/v1"``, ``get("/items")`` and
    ``get("items")`` both fetch ``http://api.example/v1/items``.

    Bodies sent with ``Content-Encoding: gzip`` or ``deflate`` (stacked too)
    are decoded as they are read, and ``Accept-Encoding: gzip, deflate`` is
    sent unless you set your own; a body decoding to more than
    ``max_decoded_size`` bytes (None: no limit) raises :class:`DecodingError`.
    ``cookies`` (a dict, or an :class:`http.cookiejar.CookieJar` used as is)
    seeds :attr:`cookies`, the jar keeping what servers set::

        async with Client(cookies={"theme": "dark"}) as client:
            await client.post(login_url, data=form)    # Set-Cookie: session=...
            {c.name: c.value for c in client.cookies}  # {"theme": ..., "session": ...}

    A request with an ``Expect: 100-continue`` header sends its body only
    once the server says ``100 Continue``, or after ``expect_continue_timeout``
    seconds without an answer (1, as curl); a final response instead (a
    401, a 417) is returned without the body ever being sent, so the server
    can refuse a big upload before it is made. 0 sends the body at once::

        await client.put(url, content=big_file, headers={"expect": "100-continue"})
    """

    def __init__(self, *, timeout: float | None = 10.0, limits: Limits | None = None,
                 follow_redirects: bool = False, max_redirects: int = 20,
                 ssl: _ssl.SSLContext | None = None, headers: HeadersLike = None,
                 base_url: str | None = None, cookies: CookiesLike = None,
                 max_decoded_size: int | None = DEFAULT_MAX_DECODED_SIZE,
                 expect_continue_timeout: float = 1.0) -> None:
        if limits is not None and not isinstance(limits, Limits):
            raise TypeError(f"limits must be a yieldio.http.Limits, not {limits!r}")
        if (isinstance(expect_continue_timeout, bool)
                or not isinstance(expect_continue_timeout, (int, float))
                or not expect_continue_timeout >= 0):
            raise ValueError("expect_continue_timeout must be a number of seconds >= 0, "
                             f"not {expect_continue_timeout!r}")
        self.timeout = timeout
        self.limits = limits or Limits()
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.headers = Headers(headers)
        self.base_url = base_url
        self.max_decoded_size = max_decoded_size
        self.expect_continue_timeout = expect_continue_timeout
        #: The cookie jar (:class:`http.cookiejar.CookieJar`): cookies set by
        #: responses (redirects included) and sent back where its rules allow.
        self.cookies = make_jar(cookies)
        self._pool = ConnectionPool(self.limits, ssl)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._pool.aclose()

    # -- the verbs -----------------------------------------------------------------------------
    async def get(self, url: str, **kwargs: Any) -> ClientResponse:
        """``GET url`` (see :meth:`request` for the keyword arguments)."""
        return await self.request("GET", url, **kwargs)

    async def head(self, url: str, **kwargs: Any) -> ClientResponse:
        """``HEAD url`` (see :meth:`request`)."""
        return await self.request("HEAD", url, **kwargs)

    async def options(self, url: str, **kwargs: Any) -> ClientResponse:
        """``OPTIONS url`` (see :meth:`request`)."""
        return await self.request("OPTIONS", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> ClientResponse:
        """``POST url``: pass ``content=``, ``json=`` or ``data=`` (a form)."""
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> ClientResponse:
        """``PUT url`` (see :meth:`request`)."""
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> ClientResponse:
        """``PATCH url`` (see :meth:`request`)."""
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> ClientResponse:
        """``DELETE url`` (see :meth:`request`)."""
        return await self.request("DELETE", url, **kwargs)

    async def request(self, method: str, url: str, *, params: Any = None,
                      headers: HeadersLike = None, content: Any = None, json: Any = _UNSET,
                      data: Mapping[str, Any] | None = None, timeout: Any = _UNSET,
                      follow_redirects: bool | None = None) -> ClientResponse:
        """Send a request and read the whole response body.

        ::

            r = await client.request("PUT", url, json={"a": 1}, headers={"x-id": "7"})

        ``content`` is bytes, str or an (async) iterable of bytes (sent
        chunked, or with the ``Content-Length`` you give in ``headers``);
        ``json`` an object sent as JSON; ``data`` a dict sent as a
        URL-encoded form. ``params`` adds to the query string. In both, a
        list value repeats its key, None is empty and booleans are
        ``true``/``false``, as in httpx.
        """
        response = await self._send(method, url, params, headers, content, json, data,
                                    timeout, follow_redirects)
        try:
            await response.read()
        finally:
            await response.aclose()
        return response

    @asynccontextmanager
    async def stream(self, method: str, url: str, *, params: Any = None,
                     headers: HeadersLike = None, content: Any = None, json: Any = _UNSET,
                     data: Mapping[str, Any] | None = None, timeout: Any = _UNSET,
                     follow_redirects: bool | None = None) -> AsyncIterator[ClientResponse]:
        """Send a request; the body is read as you iterate, inside the block.

        ::

            async with client.stream("GET", url) as response:
                async for chunk in response.iter_bytes():
                    ...
        """
        response = await self._send(method, url, params, headers, content, json, data,
                                    timeout, follow_redirects)
        try:
            yield response
        finally:
            await response.aclose()

    # -- the machinery ----------------------------------------------------------------------------
    async def _send(self, method: str, url: str, params: Any, headers: HeadersLike,
                    content: Any, json: Any, data: Any, timeout: Any,
                    follow_redirects: bool | None) -> ClientResponse:
        method, url, h, body = build_request(self.base_url, self.headers, method, url, params,
                                             headers, content, json, data)
        timeout = self.timeout if timeout is _UNSET else timeout
        follow = self.follow_redirects if follow_redirects is None else follow_redirects
        history: list[ClientResponse] = []
        while True:
            response = await self._send_one(method, url, h, body, timeout)
            store_cookies(self.cookies, response.headers, url, method)
            if not (follow and response.is_redirect):
                response.history = history
                return response
            status = response.status
            to_get = status == 303 and method != "HEAD" or status in (301, 302) and method == "POST"
            if not to_get and not isinstance(body, bytes):
                # A streamed body cannot be sent again: stop here, before the
                # redirect's own body is read or dropped (the caller reads it).
                response.history = history
                return response
            # Read a small redirect body so the connection can be reused. One
            # without a Content-Length (chunked, or up to EOF) may never end:
            # aclose() below drops its connection instead of reading it.
            try:
                if int(response.headers.get("content-length", "-1")) in range(65537):
                    await response.read()
            except (ValueError, DecodingError):
                pass  # a redirect's body is not needed (and its connection is closed)
            await response.aclose()
            history.append(response)
            if len(history) > self.max_redirects:
                raise TooManyRedirects(f"more than {self.max_redirects} redirects from {url}",
                                       history)
            location = response.headers["location"]
            try:
                new_url = urljoin(url, _location(location))
                new_origin = _split_url(new_url)[0]
            except ValueError as exc:
                # (ValueError alone missed "except HTTPError", and did not say
                # that a redirect was involved.)
                raise ProtocolError(f"{status} redirect from {url} to {location!r}, which "
                                    f"cannot be followed: {exc}") from exc
            if new_origin != _split_url(url)[0]:
                h.pop("authorization", None)  # never leak credentials to another origin
                h.pop("proxy-authorization", None)
                h.pop("cookie", None)
                h.pop("host", None)  # a Host set by the caller was for the first origin
            if to_get:
                method, body = "GET", b""
                for name in ("content-type", "content-length", "transfer-encoding"):
                    h.pop(name, None)
            url = new_url

    async def _send_one(self, method: str, url: str, h: Headers, body: Any,
                        timeout: float | None) -> ClientResponse:
        origin, request = request_head(method, url, h, body, self.cookies)
        expect: float | None = None
        if (h.get("expect", "").strip().lower() == "100-continue" and body != b""
                and self.expect_continue_timeout > 0):  # (no body: nothing to wait for)
            expect = self.expect_continue_timeout
        pool = self._pool
        while True:
            conn = await pool.acquire(origin, timeout)
            sent = False
            try:
                await conn.send_request(request, body, timeout, expect)
                sent = True
                try:
                    head = await conn.receive_head(timeout)
                except (ProtocolError, Timeout) as exc:
                    if conn.send_error is None:
                        raise
                    raise ProtocolError(f"connection to {origin[1]} lost while sending the "
                                        f"request: {conn.send_error!r}") from exc
            except StaleConnection as exc:
                # The server closed an idle kept-alive connection: try the
                # next one (a new connection never raises StaleConnection).
                # send_request() raises it only when the request head could
                # not be written (or, with Expect: 100-continue, the server
                # closed while we waited for its word), before a streamed
                # body's iterator was touched: then that body can go on the
                # new connection too.
                await pool.release(conn, False)
                if isinstance(body, bytes) or not sent:
                    continue
                raise ProtocolError(f"the server closed the kept-alive connection: {exc}; "
                                    "a streamed body cannot be sent again") from exc
            except BaseException:
                await pool.release(conn, False)
                raise
            break
        return ClientResponse(head.status_code, head.reason.decode("latin-1"),
                              Headers.from_raw(head.headers), head.http_version.decode("ascii"),
                              url, method, conn, pool, timeout, self.max_decoded_size)
