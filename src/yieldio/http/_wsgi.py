"""Run a WSGI application (Flask, Django, Bottle...) on yieldio's HTTP server.

::

    from flask import Flask
    from yieldio.http import serve, wsgi

    flask_app = Flask(__name__)

    @flask_app.route("/")
    def index():
        return "hello from Flask"

    async with serve(wsgi(flask_app), "127.0.0.1", 8000) as server:
        await server.serve_forever()

The WSGI application runs on worker threads (:func:`yieldio.to_thread`), so
its blocking code never stalls the event loop. Both directions stream:

* **request body** -- a small body with a ``Content-Length`` (at most
  ``PREREAD_LIMIT``) is read before the application starts; anything else is
  read on demand: ``environ["wsgi.input"].read()`` in the worker asks the
  event loop for the next chunk (:func:`yieldio.from_thread`);
* **response** -- the event loop pulls one chunk at a time from the
  application's iterable on a worker thread and writes it before asking for
  the next, so a generator response of any size streams in bounded memory.
  A buffered response (one chunk that fills its ``Content-Length``, as
  Flask sends) costs a single thread hop.

Per PEP 3333 the status line and headers are sent with the first non-empty
body chunk, so an application may still call ``start_response`` again with
``exc_info`` until then.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from ..threads import WorkerPool, from_thread, to_thread
from ._request import Request
from ._response import Response

__all__ = ["wsgi", "build_environ", "PREREAD_LIMIT"]

logger = logging.getLogger("yieldio.http")

#: Request bodies up to this size (with a Content-Length) are read before the app starts.
PREREAD_LIMIT = 64 * 1024

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade",
                         "proxy-connection", "te", "trailer"})
_END = object()

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


#: The threads WSGI applications run on unless wsgi(pool=...) says otherwise.
_DEFAULT_POOL = WorkerPool(max_workers=40)


class _Input(io.RawIOBase):
    """``wsgi.input``'s raw stream: the request body from the event loop, chunk by chunk.

    Always read through an :class:`io.BufferedReader` (see :func:`wsgi`), which
    builds ``read``/``readline``/iteration on :meth:`readinto` alone.
    """

    def __init__(self, request: Request) -> None:
        self._chunks = request.stream()
        self._buf = bytearray()
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        # What has arrived, up to len(b); 0 only at the end of the body. A raw
        # read may return less than asked (the BufferedReader asks again when
        # it needs more): waiting to fill its whole 8 KiB buffer stalled a
        # readline() on a body that streams in a line at a time.
        if not self._buf and not self._eof:
            chunk = from_thread(_anext_or_empty, self._chunks)
            if chunk:
                self._buf += chunk
            else:
                self._eof = True
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        del self._buf[:n]
        return n


async def _anext_or_empty(chunks: Any) -> bytes:
    try:
        return await chunks.__anext__()  # type: ignore[no-any-return]
    except StopAsyncIteration:
        return b""


class _Call:
    """One WSGI call: start_response's state and the response iterable (worker side)."""

    def __init__(self, app: WSGIApp, environ: dict[str, Any]) -> None:
        self.app = app
        self.environ = environ
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.sent = False
        self.written: list[bytes] = []
        self.iterable: Iterable[bytes] | None = None
        self.iterator: Iterator[bytes] | None = None

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise RuntimeError("start_response() called twice without exc_info")
        self.status = status
        self.headers = list(headers)
        return self.written.append

    def start(self) -> tuple[bool, bytes]:
        """Run the app up to its first body bytes: ``(complete, data)``."""
        try:
            self.iterable = self.app(self.environ, self.start_response)
            self.iterator = iter(self.iterable)
            data = self.next_chunk()
            # Checked here, not first on the event loop: a bad status line is
            # an error like any other before the body, and the iterable must
            # still be closed (PEP 3333).
            self.response_parts()
        except BaseException:
            self.close()
            raise
        if data is _END:
            self.close()
            return True, b""
        length = self._content_length()
        if length is not None and len(data) >= length:  # type: ignore[arg-type]
            self.close()  # Content-Length is filled: nothing more may follow
            return True, data  # type: ignore[return-value]
        return False, data  # type: ignore[return-value]

    def next_chunk(self) -> Any:
        """The next non-empty chunk (written data first), or ``_END``."""
        data: Any
        while True:
            if self.written:
                data = b"".join(self.written)
                self.written.clear()
                if data:
                    break
            assert self.iterator is not None
            data = next(self.iterator, _END)
            if data is _END:
                if self.written:
                    continue
                if self.status is None:
                    raise RuntimeError("the WSGI application did not call start_response()")
                return _END
            if not isinstance(data, bytes):
                raise TypeError(f"a WSGI application must yield bytes, not {type(data).__name__}")
            if self.written:
                # What write() was given while this chunk was made goes first.
                self.written.append(data)
                continue
            if data:
                break
        if self.status is None:
            raise RuntimeError("the WSGI application yielded data before start_response()")
        self.sent = True
        return data

    def close(self) -> None:
        close = getattr(self.iterable, "close", None)
        self.iterable = None
        if close is not None:
            close()

    def close_quietly(self) -> None:
        try:
            self.close()
        except Exception:
            logger.exception("closing the WSGI response iterable failed")

    def _content_length(self) -> int | None:
        for name, value in self.headers:
            if name.lower() == "content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    def response_parts(self) -> tuple[int, list[tuple[str, str]]]:
        assert self.status is not None
        try:
            status = int(self.status.split(None, 1)[0])
        except (ValueError, IndexError):
            raise ValueError(f"bad WSGI status line {self.status!r}") from None
        headers = [(n, v) for n, v in self.headers if n.lower() not in _HOP_BY_HOP]
        return status, headers


class _Body:
    """The rest of a streamed WSGI response: pulled a chunk at a time on a worker thread.

    A class rather than an async generator so that :meth:`aclose` closes
    the WSGI iterable (PEP 3333) even if iteration never started: the server
    drops the body of a HEAD, a 204 or a 304 unread, and a client may leave
    before the first chunk -- an async generator's ``finally`` does not run
    when it is closed before its first step.
    """

    def __init__(self, call: _Call, first: bytes, pool: WorkerPool) -> None:
        self._call = call
        self._first: bytes | None = first
        self._pool = pool
        self._closed = False

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        first, self._first = self._first, None
        if first is not None:
            return first
        chunk = await to_thread(self._call.next_chunk, cancellable=True, pool=self._pool)
        if chunk is _END:
            await self.aclose()
            raise StopAsyncIteration
        return chunk  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            # Not awaited: this also runs when the response is abandoned
            # (client gone, cancelled), and must not wait for the worker.
            self._pool.submit(self._call.close_quietly)


def build_environ(request: Request, body_input: Any) -> dict[str, Any]:
    """The PEP 3333 ``environ`` for ``request`` (``wsgi.input`` is ``body_input``)."""
    prefix = request.path_params.get("prefix", "") if request.path_params else ""
    # The router matched the prefix against the UTF-8-decoded path, but the
    # environ holds paths as bytes decoded as ISO-8859-1 (PEP 3333): a
    # non-ASCII prefix ("/café") must be in that form too, both to be found
    # at the start of PATH_INFO and as SCRIPT_NAME.
    prefix = prefix.encode("utf-8").decode("latin-1")
    path = unquote_to_bytes(request.raw_path).decode("latin-1")
    if prefix and path.startswith(prefix):
        path = path[len(prefix):]
    host_header = request.headers.get("host", "")
    default_port = "443" if request.scheme == "https" else "80"
    if host_header.startswith("["):
        name, _, port = host_header[1:].partition("]")
        port = port.lstrip(":") or default_port
    elif ":" in host_header:
        name, _, port = host_header.rpartition(":")
        port = port or default_port  # "Host: example.com:" (empty port, RFC 3986)
    else:
        name, port = host_header, default_port
    if not host_header:
        # No Host (an HTTP/1.0 client): PEP 3333 wants the server's own
        # address, as gunicorn gives; "localhost:80" would send the URLs a
        # framework builds (url_for(_external=True)) to the wrong port.
        conn = request._conn
        local = conn.stream.get_extra_info("sockname") if conn is not None else None
        if isinstance(local, tuple) and len(local) >= 2:
            name, port = str(local[0]), str(local[1])
    client = request.client if isinstance(request.client, tuple) else ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": prefix,
        "PATH_INFO": path,
        "QUERY_STRING": request.query_string,
        "SERVER_NAME": name or "localhost",
        "SERVER_PORT": port,
        "SERVER_PROTOCOL": f"HTTP/{request.http_version}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]) if len(client) > 1 else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": request.scheme,
        "wsgi.input": body_input,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        # Our input returns b"" at the end of the body, chunked or not:
        # frameworks may read to EOF (PEP 3333 extension used by Werkzeug).
        "wsgi.input_terminated": True,
    }
    for name, value in request.headers.items():
        if name == "content-type":
            environ["CONTENT_TYPE"] = value
        elif name == "content-length":
            environ["CONTENT_LENGTH"] = value
        elif "_" in name:
            # "X_Forwarded_For" would become the same key as "X-Forwarded-For":
            # a client could spoof a header a proxy in front of us set. Such
            # names are dropped, as gunicorn, nginx and Apache do.
            continue
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
            if key in environ:
                sep = "; " if key == "HTTP_COOKIE" else ","
                environ[key] += sep + value
            else:
                environ[key] = value
    return environ


def wsgi(app: WSGIApp, *, pool: WorkerPool | None = None) -> Callable[[Request], Any]:
    """Wrap a WSGI application as a yieldio.http application.

    ::

        async with serve(wsgi(flask_app), "127.0.0.1", 8000) as server: ...
        router.mount("/old", wsgi(legacy_app))     # under a prefix: SCRIPT_NAME="/old"

    ``pool`` (a :class:`yieldio.threads.WorkerPool`) bounds the threads the
    application runs on (default: a pool of up to 40 threads for WSGI apps). An exception in
    the application before its first body byte becomes a 500 (logged by the
    server); after it, the connection is cut so the client sees an
    incomplete response.
    """
    if not callable(app):
        raise TypeError(f"wsgi() needs a WSGI application, not {app!r}")
    pool = pool or _DEFAULT_POOL

    async def wsgi_app(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) <= PREREAD_LIMIT:
            body_input: Any = io.BytesIO(await request.body())
        elif length == "0" or (length is None and "transfer-encoding" not in request.headers):
            body_input = io.BytesIO(b"")
        else:
            body_input = io.BufferedReader(_Input(request))
        call = _Call(app, build_environ(request, body_input))
        # cancellable: if the client goes away or the server gives up, stop
        # waiting; the worker fails on its next read of the closed body.
        complete, first = await to_thread(call.start, cancellable=True, pool=pool)
        status, headers = call.response_parts()
        if complete:
            if request.method == "HEAD" and not first and call._content_length() is None:
                # The application answered the HEAD itself, without a body
                # or a length (Werkzeug does, for a streamed response): frame
                # it as a streamed body, like the GET, rather than let the
                # server state a "Content-Length: 0" the GET would not have.
                return Response(status, headers, iter(()))
            return Response(status, headers, first)
        return Response(status, headers, _Body(call, first, pool))

    wsgi_app.__qualname__ = wsgi_app.__name__ = f"wsgi({getattr(app, '__name__', app)!s})"
    return wsgi_app
