"""Response: what a server application returns.

::

    from yieldio.http import Response

    async def app(request):
        return Response.json({"hello": "world"})

The body is ``bytes``, ``str`` (sent as UTF-8) or an async iterator of
bytes, which is streamed as it is produced, with chunked transfer encoding
(or, to an HTTP/1.0 client, delimited by closing the connection)::

    async def ticks():
        for i in range(3):
            yield f"tick {i}\\n".encode()
            await yieldio.sleep(1)

    return Response(body=ticks(), headers={"content-type": "text/plain"})
"""

from __future__ import annotations

import json as _json
from collections.abc import AsyncIterable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from ._headers import Headers, HeadersLike

__all__ = ["Response"]

# allow_nan=False: NaN and Infinity are not JSON (RFC 8259); JSON.parse in a
# browser rejects the whole body. A ValueError here is the app's bug: a logged 500.
_JSON_DUMPS = _json.JSONEncoder(ensure_ascii=False, allow_nan=False,
                                separators=(",", ":")).encode
# What a Location keeps as is: reserved characters and existing %XX escapes.
_URL_SAFE = ":/%#?=@[]!$&'()*+,;~"

Body = bytes | str | AsyncIterable[bytes] | Iterable[bytes]


class Response:
    """An HTTP response: ``Response(status=200, headers=None, body=b"")``.

    ::

        Response(204)
        Response(200, {"content-type": "image/png"}, png_bytes)
        Response.text("hello")                      # text/plain; charset=utf-8
        Response.html("<h1>hi</h1>")
        Response.json({"ok": True}, status=201)
        Response.redirect("/login")                 # 307 + Location

    ``headers`` is a dict, a list of ``(name, value)`` pairs or a
    :class:`Headers`; it becomes a :class:`Headers` you may still change.
    A ``str`` body without a ``content-type`` gets ``text/plain;
    charset=utf-8``. ``Content-Length`` is set for you for bytes bodies;
    an async (or plain) iterable of bytes is streamed chunk by chunk.
    """

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int = 200, headers: HeadersLike = None, body: Body = b"") -> None:
        if type(status) is not int:
            if isinstance(status, HTTPStatus):
                status = int(status)
            else:
                raise TypeError(f"status must be an int, not {status!r}")
        if not 100 <= status <= 999:
            raise ValueError(f"status must be between 100 and 999, not {status}")
        self.status = status
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        if isinstance(body, str):
            body = body.encode("utf-8")
            if "content-type" not in self.headers:
                self.headers.add("content-type", "text/plain; charset=utf-8")
        elif isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        elif not isinstance(body, bytes) and not hasattr(body, "__aiter__") \
                and not hasattr(body, "__iter__"):
            raise TypeError("body must be bytes, str or an (async) iterable of bytes, "
                            f"not {type(body).__name__}")
        self.body = body

    def __repr__(self) -> str:
        kind = f"{len(self.body)} bytes" if isinstance(self.body, bytes) else "streamed"
        return f"<Response {self.status} {kind}>"

    # -- constructors ---------------------------------------------------------------
    @classmethod
    def text(cls, text: str, status: int = 200, headers: HeadersLike = None) -> Response:
        """A ``text/plain; charset=utf-8`` response.

        ::

            return Response.text("pong")
        """
        h = Headers(headers)
        h.setdefault("content-type", "text/plain; charset=utf-8")
        return cls(status, h, text.encode("utf-8"))

    @classmethod
    def html(cls, html: str, status: int = 200, headers: HeadersLike = None) -> Response:
        """A ``text/html; charset=utf-8`` response.

        ::

            return Response.html("<h1>Hello</h1>")
        """
        h = Headers(headers)
        h.setdefault("content-type", "text/html; charset=utf-8")
        return cls(status, h, html.encode("utf-8"))

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: HeadersLike = None) -> Response:
        """``obj`` serialised as compact UTF-8 JSON, ``application/json``.

        NaN and infinities raise ``ValueError`` (they are not JSON).

        ::

            return Response.json({"id": 7, "tags": ["a"]}, status=201)
        """
        h = Headers(headers)
        h.setdefault("content-type", "application/json")
        return cls(status, h, _JSON_DUMPS(obj).encode("utf-8"))

    @classmethod
    def redirect(cls, location: str, status: int = 307, headers: HeadersLike = None) -> Response:
        """A redirect to ``location`` (307 keeps the method; use 303 after a POST).

        Characters a URL cannot hold (non-ASCII, spaces) are percent-encoded
        as UTF-8; ``%XX`` escapes already there are kept.

        ::

            return Response.redirect("/items/7", status=303)
        """
        if not 300 <= status < 400:
            raise ValueError(f"a redirect status is 3xx, not {status}")
        h = Headers(headers)
        # A header is ISO-8859-1 text and a URL is ASCII: "/café" or "/a b"
        # is percent-encoded (as UTF-8), or it would be sent as a Latin-1
        # byte (or fail as a 500) that no client decodes as meant.
        h["location"] = quote(location, safe=_URL_SAFE)
        return cls(status, h, b"")

    @property
    def streamed(self) -> bool:
        """True when the body is an iterator (sent as it is produced)."""
        return not isinstance(self.body, bytes)


async def _close_iterator(body: Any) -> None:
    """Close a response body iterator (async or sync), if it can be closed."""
    close = getattr(body, "aclose", None)
    if close is not None:
        await close()
    else:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def _as_bytes(chunk: Any) -> bytes:
    """A body chunk as bytes (``str`` is UTF-8)."""
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    return chunk  # type: ignore[no-any-return]
