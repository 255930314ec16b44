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
``client.cookies`` (see :class:`Client`). Errors: :class:`ConnectError`,
:class:`Timeout` (a ``TimeoutError``), :class:`ProtocolError` (and its
:class:`DecodingError`), :class:`TooManyRedirects`.
"""

from __future__ import annotations

import base64
import json as _json
import ssl as _ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

import h11

from .. import __version__
from .._time import checkpoint
from ._cookies import CookiesLike, make_jar, request_cookie_header, store_cookies
from ._decoding import DEFAULT_MAX_DECODED_SIZE, ContentDecoder
from ._errors import DecodingError, HTTPStatusError, ProtocolError, Timeout, TooManyRedirects
from ._headers import Headers, HeadersLike
from ._limits import Limits
from ._pool import ClientConnection, ConnectionPool, Origin, StaleConnection

__all__ = ["Client", "ClientResponse"]

_UNSET: Any = object()
_USER_AGENT = f"yieldio/{__version__}"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: What may stay as it is in a request target: printable ASCII but the space
#: (``%`` included, so escapes already in the URL are kept as they are).
_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


def _split_url(url: str) -> tuple[Origin, str, str]:
    """``(origin, target, host header)`` of an absolute http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"only http:// and https:// URLs are supported, not {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in URL {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # A space or a non-ASCII character cannot go on the request line: send
    # it percent-encoded (as UTF-8), as browsers, httpx and requests do.
    target = quote(target, safe=_TARGET_SAFE)
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return (scheme, parts.hostname, port), target, host_header


def _basic_auth(url: str) -> list[tuple[bytes, bytes]]:
    """The ``Authorization: Basic`` header for the credentials in ``url``, if any.

    They are percent-decoded first (``user%40corp:p%3Ass``), then sent as
    UTF-8, as httpx does; the user part alone means an empty password.
    """
    parts = urlsplit(url)
    if parts.username is None:
        return []
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return [(b"authorization", b"Basic " + base64.b64encode(pair.encode("utf-8")))]


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
    """

    def __init__(self, *, timeout: float | None = 10.0, limits: Limits | None = None,
                 follow_redirects: bool = False, max_redirects: int = 20,
                 ssl: _ssl.SSLContext | None = None, headers: HeadersLike = None,
                 base_url: str | None = None, cookies: CookiesLike = None,
                 max_decoded_size: int | None = DEFAULT_MAX_DECODED_SIZE) -> None:
        if limits is not None and not isinstance(limits, Limits):
            raise TypeError(f"limits must be a yieldio.http.Limits, not {limits!r}")
        self.timeout = timeout
        self.limits = limits or Limits()
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.headers = Headers(headers)
        self.base_url = base_url
        self.max_decoded_size = max_decoded_size
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
    def _build(self, method: str, url: str, params: Any, headers: HeadersLike, content: Any,
               json: Any, data: Any) -> tuple[str, str, Headers, Any]:
        if self.base_url is not None:
            url = _merge_url(self.base_url, url)
        if params:
            query = params if isinstance(params, str) else _urlencode(params)
            url = url.split("#", 1)[0]  # the query goes before a fragment (never sent anyway)
            url += ("&" if "?" in url else "?") + query
        h = self.headers.copy()
        assert isinstance(h, Headers)
        if headers is not None:
            # The request's headers replace the client's of the same name
            # (given as a dict, pairs or a Headers alike); several values of
            # one name in the request are all kept.
            extra = Headers(headers)
            for name in extra.keys():
                h.pop(name, None)
            h.update(extra)
        given = sum(x is not None for x in (content, data)) + (json is not _UNSET)
        if given > 1:
            raise TypeError("pass at most one of content=, json= and data=")
        body: Any = b""
        if json is not _UNSET:
            body = _json.dumps(json, separators=(",", ":")).encode("utf-8")
            h.setdefault("content-type", "application/json")
        elif data is not None:
            if not isinstance(data, Mapping):
                raise TypeError("data= is a form, a mapping of field names to values, not "
                                f"{type(data).__name__}; send bytes or str with content=")
            body = _urlencode(data).encode("ascii")
            h.setdefault("content-type", "application/x-www-form-urlencoded")
        elif content is not None:
            # A dict is iterable (its keys): refuse it rather than send its keys.
            if isinstance(content, Mapping) or not (
                    isinstance(content, (str, bytes, bytearray, memoryview))
                    or hasattr(content, "__aiter__") or hasattr(content, "__iter__")):
                raise TypeError("content= is bytes, str or an (async) iterable of bytes, not "
                                f"{type(content).__name__}; send objects with json= or data=")
            body = content.encode("utf-8") if isinstance(content, str) else content
            if isinstance(body, (bytearray, memoryview)):
                body = bytes(body)
        return method.upper(), url, h, body

    async def _send(self, method: str, url: str, params: Any, headers: HeadersLike,
                    content: Any, json: Any, data: Any, timeout: Any,
                    follow_redirects: bool | None) -> ClientResponse:
        method, url, h, body = self._build(method, url, params, headers, content, json, data)
        timeout = self.timeout if timeout is _UNSET else timeout
        follow = self.follow_redirects if follow_redirects is None else follow_redirects
        history: list[ClientResponse] = []
        while True:
            response = await self._send_one(method, url, h, body, timeout)
            store_cookies(self.cookies, response.headers, url, method)
            if not (follow and response.is_redirect):
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
            new_url = urljoin(url, _location(response.headers["location"]))
            if _split_url(new_url)[0] != _split_url(url)[0]:
                h.pop("authorization", None)  # never leak credentials to another origin
                h.pop("proxy-authorization", None)
                h.pop("cookie", None)
                h.pop("host", None)  # a Host set by the caller was for the first origin
            status = response.status
            if status == 303 and method != "HEAD" or status in (301, 302) and method == "POST":
                method, body = "GET", b""
                for name in ("content-type", "content-length", "transfer-encoding"):
                    h.pop(name, None)
            elif not isinstance(body, bytes):
                response.history = history[:-1]
                return response  # a streamed body cannot be sent again: stop here
            url = new_url

    async def _send_one(self, method: str, url: str, h: Headers, body: Any,
                        timeout: float | None) -> ClientResponse:
        origin, target, host_header = _split_url(url)
        host = h.get("host")  # the caller's Host header wins (virtual hosts, proxies)
        raw = [(b"host", host.encode("latin-1") if host is not None else
                host_header.encode("idna" if not host_header.isascii() else "ascii"))]
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in h.items()
                if k not in ("host", "content-length", "transfer-encoding")]
        if "@" in url and "authorization" not in h:
            raw += _basic_auth(url)  # http://user:pass@host/, as httpx and requests send it
        if "user-agent" not in h:
            raw.append((b"user-agent", _USER_AGENT.encode()))
        if "accept" not in h:
            raw.append((b"accept", b"*/*"))
        if "accept-encoding" not in h:
            raw.append((b"accept-encoding", b"gzip, deflate"))
        if "cookie" not in h:  # a Cookie header set by the caller wins over the jar
            cookie = request_cookie_header(self.cookies, url, method)
            if cookie:
                raw.append((b"cookie", cookie.encode("latin-1")))
        if isinstance(body, bytes):
            if body or method in ("POST", "PUT", "PATCH"):
                raw.append((b"content-length", b"%d" % len(body)))
        else:
            # A streamed body of a length the caller states goes with that
            # Content-Length, as httpx sends it (some servers, a presigned S3
            # PUT say, refuse chunked uploads); otherwise it is chunked.
            stated = h.get("content-length")
            if stated is None:
                raw.append((b"transfer-encoding", b"chunked"))
            elif stated.strip().isdigit() and stated.strip().isascii():
                raw.append((b"content-length", stated.strip().encode("ascii")))
            else:
                raise ValueError(f"invalid Content-Length header {stated!r}")
        try:
            # Built (and so validated by h11) before taking a connection.
            request = h11.Request(method=method, target=target, headers=raw)
        except h11.LocalProtocolError as exc:
            raise ValueError(f"invalid request {method} {url}: {exc} "
                             "(a header with a line break, say)") from None
        pool = self._pool
        while True:
            conn = await pool.acquire(origin, timeout)
            sent = False
            try:
                await conn.send_request(request, body, timeout)
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
                # not be written, before a streamed body's iterator was
                # touched: then that body can go on the new connection too.
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


def _form_value(value: Any) -> Any:
    """A query or form value as httpx renders it: ``true``/``false``, ``""`` for None."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else value


def _urlencode(items: Any) -> str:
    """``params=`` / ``data=`` (a mapping or pairs) URL-encoded; a list or tuple value
    repeats its key (``{"tag": ["a", "b"]}`` is ``tag=a&tag=b``), as in httpx."""
    pairs = []
    for name, value in (items.items() if isinstance(items, Mapping) else items):
        if isinstance(value, (list, tuple)):
            pairs += [(name, _form_value(v)) for v in value]
        else:
            pairs.append((name, _form_value(value)))
    return urlencode(pairs)


def _location(value: str) -> str:
    """A ``Location`` header as the server meant it.

    Headers are decoded as ISO-8859-1, but servers send a non-ASCII
    ``Location`` as raw UTF-8 (``/café``): read as ISO-8859-1 it would be
    followed to ``/cafÃ©``. Re-decode it as UTF-8 when it is, as requests
    and httpx do.
    """
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _merge_url(base_url: str, url: str) -> str:
    """``url`` under ``base_url``: appended to its path when relative, as-is when absolute.

    Not RFC 3986 resolution (``urljoin``), where ``/items`` would replace
    the base's path and ``items`` its last segment: a base URL names a
    prefix, which is what httpx users expect it to mean.
    """
    rel = urlsplit(url)
    if rel.scheme:
        return url
    base = urlsplit(base_url)
    if not rel.path:  # "" or "?q=1": the base itself, with the new query if any
        return urlunsplit(base._replace(query=rel.query or base.query, fragment=""))
    path = base.path.rstrip("/") + "/" + rel.path.lstrip("/")
    return urlunsplit(base._replace(path=path, query=rel.query, fragment=""))
