"""HTTP/1.1 and WebSocket for yieldio: server, client, router, WSGI -- on h11 and wsproto.

A server::

    import yieldio
    from yieldio.http import Response, Router, serve

    router = Router()

    @router.get("/hello/{name}")
    async def hello(request):
        return Response.json({"hello": request.path_params["name"]})

    @router.websocket("/echo")
    async def echo(request):
        ws = await request.accept_websocket()
        async for message in ws:
            await ws.send(message)

    async def main():
        async with serve(router, "127.0.0.1", 8000) as server:
            await server.serve_forever()

    yieldio.run(main)

A client::

    async with yieldio.http.Client() as client:
        r = await client.get("http://127.0.0.1:8000/hello/world")
        print(await r.json())
    async with yieldio.http.connect_websocket("ws://127.0.0.1:8000/echo") as ws:
        await ws.send("hi")
        print(await ws.receive())

The protocols are parsed and produced by the sans-IO libraries h11 and
wsproto (``pip install 'yieldio[http]'``); this package moves their bytes
over yieldio streams, so it runs on real sockets, TLS and the in-memory
network of :mod:`yieldio.testing` alike. See docs/http.md.
"""

from __future__ import annotations as _annotations

try:
    import h11 as _h11  # noqa: F401
    import wsproto as _wsproto  # noqa: F401
except ImportError as _exc:  # pragma: no cover - depends on the installation
    raise ImportError("yieldio.http needs h11 and wsproto: pip install 'yieldio[http]'") from _exc

from ._client import Client, ClientResponse
from ._errors import (
    ConnectError,
    DecodingError,
    HTTPError,
    HTTPException,
    HTTPStatusError,
    ProtocolError,
    Timeout,
    TooManyRedirects,
    WebSocketClosed,
    WebSocketRejected,
)
from ._headers import Headers, QueryParams
from ._limits import Limits
from ._request import Request
from ._response import Response
from ._router import Router
from ._server import HTTPServer, serve
from ._websocket import WebSocket
from ._websocket_client import connect_websocket
from ._wsgi import wsgi

__all__ = [
    "Client",
    "ClientResponse",
    "ConnectError",
    "DecodingError",
    "HTTPError",
    "HTTPException",
    "HTTPServer",
    "HTTPStatusError",
    "Headers",
    "Limits",
    "ProtocolError",
    "QueryParams",
    "Request",
    "Response",
    "Router",
    "Timeout",
    "TooManyRedirects",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketRejected",
    "connect_websocket",
    "serve",
    "wsgi",
]

from .. import _name_public_exceptions  # noqa: E402 (after __all__, which it reads)

_name_public_exceptions(globals(), "yieldio.http")
