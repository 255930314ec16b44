"""The exceptions of :mod:`yieldio.http`.

Client-side errors derive from :class:`HTTPError`, so one ``except`` catches
every way a request can fail; each also derives from the matching built-in
(``ConnectionError``, ``TimeoutError``) so generic code keeps working::

    try:
        response = await client.get(url)
    except yieldio.http.ConnectError:      # refused, unreachable, TLS failed
        ...
    except yieldio.http.Timeout:           # also a TimeoutError
        ...

On the server side an application raises :class:`HTTPException` to answer
with an error status instead of a 500.
"""

from __future__ import annotations

from http import HTTPStatus

__all__ = [
    "HTTPError",
    "ConnectError",
    "Timeout",
    "ProtocolError",
    "DecodingError",
    "TooManyRedirects",
    "HTTPStatusError",
    "HTTPException",
    "WebSocketClosed",
    "WebSocketRejected",
]


class HTTPError(Exception):
    """Base class of the errors raised by the HTTP client and WebSocket code.

    ::

        try:
            r = await client.get(url)
        except yieldio.http.HTTPError as exc:
            print("request failed:", exc)
    """


class ConnectError(HTTPError, ConnectionError):
    """The connection could not be made: refused, unreachable, or the TLS handshake failed.

    The underlying ``OSError`` / ``ssl.SSLError`` is the ``__cause__``::

        try:
            await client.get("http://127.0.0.1:1/")
        except yieldio.http.ConnectError as exc:
            print("down:", exc.__cause__)
    """


def connect_error(host: str, port: int, exc: BaseException) -> ConnectError:
    """The :class:`ConnectError` for ``exc``, a failure to connect to ``host:port``.

    Says the target and the cause once: the error of ``open_tcp_stream``
    already names ``host:port`` and each address tried, so it is not
    prefixed again. A plain ``OSError``'s ``errno`` is kept (``ECONNREFUSED``
    when every address refused); the codes of TLS and resolver errors are not
    errnos, so those leave it ``None``.
    """
    import socket
    import ssl

    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    text = str(exc)
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
        text = exc.strerror  # without the "[Errno N] " prefix
    if not text.startswith(f"cannot connect to {where}"):
        text = f"cannot connect to {where}: {text}"
    err = ConnectError(text)
    if isinstance(exc, OSError) and not isinstance(exc, (ssl.SSLError, socket.gaierror)):
        err.errno = exc.errno
    return err


class Timeout(HTTPError, TimeoutError):
    """Connecting, sending or receiving took longer than the ``timeout`` allowed.

    ::

        async with yieldio.http.Client(timeout=0.5) as client:
            try:
                await client.get(slow_url)
            except TimeoutError:          # yieldio.http.Timeout is one
                ...
    """


class ProtocolError(HTTPError):
    """The peer broke the HTTP or WebSocket protocol (or closed mid-message).

    ::

        except yieldio.http.ProtocolError as exc:
            print("bad peer:", exc)
    """


class DecodingError(ProtocolError):
    """A response body could not be decoded as its ``Content-Encoding`` says.

    A corrupt or truncated ``gzip``/``deflate`` body, or one that decodes to
    more than the client's ``max_decoded_size`` (a decompression bomb). The
    connection is closed, not reused::

        try:
            r = await client.get(url)
        except yieldio.http.DecodingError as exc:
            print("bad body:", exc)
    """


class TooManyRedirects(HTTPError):
    """More redirects than ``max_redirects`` while following them.

    ::

        except yieldio.http.TooManyRedirects as exc:
            print(exc.history)     # the responses seen so far
    """

    def __init__(self, message: str, history: list | None = None) -> None:
        super().__init__(message)
        self.history = history or []


class HTTPStatusError(HTTPError):
    """Raised by ``response.raise_for_status()`` for a 4xx or 5xx response.

    ::

        try:
            (await client.get(url)).raise_for_status()
        except yieldio.http.HTTPStatusError as exc:
            print(exc.response.status)
    """

    def __init__(self, message: str, response: object) -> None:
        super().__init__(message)
        self.response = response


class HTTPException(Exception):
    """Raise it in a server application to answer with ``status`` (and ``detail`` as text).

    ::

        async def app(request):
            if "id" not in request.query:
                raise HTTPException(400, "missing ?id=")
            ...

    Attributes:

    - ``status`` -- the HTTP status code (``404``).
    - ``detail`` -- the text of the default response body (``"item 99 not
      found"``); the status's reason phrase (``"Not Found"``) if none was given.
    - ``headers`` -- a dict of headers the response must carry (``{}`` if
      none): a 405 from :class:`Router` has ``{"allow": "GET, HEAD"}``, a 401
      would have its ``WWW-Authenticate``.

    The server answers it with ``status``, a ``text/plain`` body of
    ``detail`` and a newline, and ``headers``; ``serve(...,
    error_handler=fn)`` replaces that body, and ``headers`` are still added
    unless ``fn``'s response sets them itself (see docs/http.md, "Errors").

    ``str(exc)`` is ``"404 item 99 not found"``: the status first, so a log
    line or ``print(exc)`` says what was answered, not only why; use
    ``exc.detail`` for the text alone::

        >>> exc = HTTPException(404, "item 99 not found")
        >>> (exc.status, exc.detail, exc.headers, str(exc))
        (404, 'item 99 not found', {}, '404 item 99 not found')
        >>> HTTPException(405, headers={"allow": "GET"}).detail
        'Method Not Allowed'

    It is raised for you too: :class:`Router` raises ``HTTPException(404)``
    for a path no route matches and ``HTTPException(405)`` (with ``Allow``)
    for another method; :meth:`Request.body` raises ``HTTPException(413)``
    when the body is larger than the limit, :meth:`Request.json`
    ``HTTPException(400)`` for invalid JSON.
    """

    status: int
    detail: str
    headers: dict[str, str]

    def __init__(self, status: int, detail: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        if detail is None:
            try:
                detail = HTTPStatus(status).phrase
            except ValueError:
                detail = ""
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}

    def __str__(self) -> str:
        return f"{self.status} {self.detail}"


class WebSocketClosed(HTTPError):
    """The WebSocket is closed: ``code`` and ``reason`` say how (1006: no close frame).

    Raised by ``send`` and ``receive`` after the close; ``async for message
    in ws`` just ends instead::

        try:
            message = await ws.receive()
        except yieldio.http.WebSocketClosed as exc:
            print("closed", exc.code, exc.reason)
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket closed: code {code}" + (f" ({reason})" if reason else ""))
        self.code = code
        self.reason = reason


class WebSocketRejected(ProtocolError):
    """The server answered the WebSocket handshake with an HTTP response, not 101.

    ``status``, ``headers`` and ``body`` hold that response::

        try:
            async with connect_websocket(url) as ws: ...
        except yieldio.http.WebSocketRejected as exc:
            print(exc.status)         # e.g. 403
    """

    def __init__(self, status: int, headers: object = None, body: bytes = b"") -> None:
        super().__init__(f"WebSocket handshake rejected with HTTP status {status}")
        self.status = status
        self.headers = headers
        self.body = body
