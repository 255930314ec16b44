"""Building a client request: the URL, the query string, the body, the head.

What :class:`~yieldio.http.Client` does before it takes a connection, with
no I/O: resolve the URL against ``base_url`` and add ``params=``
(:func:`build_request`), encode the body (JSON, a form, bytes or a stream),
then make the h11 request head with the headers a client adds by itself
(:func:`request_head`)::

    method, url, headers, body = build_request(base, client.headers, "post", "/items",
                                               None, None, None, {"name": "x"}, None)
    origin, head = request_head(method, url, headers, body, client.cookies)
"""

from __future__ import annotations

import base64
import json as _json
from collections.abc import Mapping
from http.cookiejar import CookieJar
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import h11

from .. import __version__
from ._cookies import request_cookie_header
from ._headers import Headers, HeadersLike
from ._pool import Origin

__all__ = ["build_request", "request_head"]

_UNSET: Any = object()
_USER_AGENT = f"yieldio/{__version__}"
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


def build_request(base_url: str | None, client_headers: Headers, method: str, url: str,
                  params: Any, headers: HeadersLike, content: Any, json: Any,
                  data: Any) -> tuple[str, str, Headers, Any]:
    """``(METHOD, url, headers, body)`` from :meth:`Client.request`'s arguments.

    ::

        build_request(None, Headers(), "post", "http://h/", None, None, None, {"a": 1}, None)
        # ("POST", "http://h/", Headers([("content-type", "application/json")]), b'{"a":1}')

    The body is bytes (JSON, a form, or ``content=`` as bytes) or, for a
    streamed ``content=``, the caller's (async) iterable, as it is.
    """
    if base_url is not None:
        url = _merge_url(base_url, url)
    if params:
        query = params if isinstance(params, str) else _urlencode(params)
        url = url.split("#", 1)[0]  # the query goes before a fragment (never sent anyway)
        url += ("&" if "?" in url else "?") + query
    h = client_headers.copy()
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


def request_head(method: str, url: str, h: Headers, body: Any,
                 cookies: CookieJar) -> tuple[Origin, h11.Request]:
    """The origin to connect to and the h11 request head for ``url``.

    ::

        origin, head = request_head("GET", "http://h:8080/a b", Headers(), b"", CookieJar())
        # origin == ("http", "h", 8080); head.target == b"/a%20b", Host: h:8080 among its headers

    Adds what the caller did not set: ``Host``, ``User-Agent``, ``Accept``,
    ``Accept-Encoding``, the jar's cookies, Basic auth from the URL, and the
    framing (``Content-Length``, or chunked for a streamed body). A value
    h11 refuses (a header with a line break) is a ``ValueError``, raised
    before any connection is taken.
    """
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
        cookie = request_cookie_header(cookies, url, method)
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
        return origin, h11.Request(method=method, target=target, headers=raw)
    except h11.LocalProtocolError as exc:
        raise ValueError(f"invalid request {method} {url}: {exc} "
                         "(a header with a line break, say)") from None


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
