"""The HTTP section of ``python -m yieldio demo``: a chat server, a client, a WebSocket.

It serves a small chat page on 127.0.0.1 (a free port) and prints its URL,
fetches it and a JSON endpoint with :class:`yieldio.http.Client` over one
kept-alive connection, has two WebSocket clients talk through the chat, and
shuts the server down gracefully -- all in well under a second.
"""

from __future__ import annotations

import time
from typing import Any

import yieldio

# Imported here, not in the functions, so that without h11/wsproto importing
# this module fails with ImportError and the demo skips the section.
from .http import (
    Client,
    Request,
    Response,
    Router,
    WebSocket,
    WebSocketClosed,
    connect_websocket,
    serve,
)

PAGE = """<!doctype html><meta charset="utf-8"><title>yieldio chat</title>
<h1>yieldio chat</h1><div id="log"></div><input id="text" autofocus>
<script>
const ws = new WebSocket(`ws://${location.host}/chat`);
const log = document.getElementById("log");
ws.onmessage = (e) => log.append(Object.assign(document.createElement("div"),
                                               {textContent: e.data}));
document.getElementById("text").onkeydown = (e) => {
  if (e.key === "Enter" && e.target.value) { ws.send(e.target.value); e.target.value = ""; }
};
</script>"""


def _say(text: str) -> None:
    print(text, flush=True)


def make_chat_app() -> Any:
    """A router with the chat page, the chat WebSocket and a JSON status endpoint."""
    router = Router()
    members: list[WebSocket] = []

    @router.get("/")
    async def page(request: Request) -> Response:
        return Response.html(PAGE)

    @router.get("/api/status")
    async def status(request: Request) -> Response:
        return Response.json({"members": len(members), "runtime": "yieldio"})

    @router.websocket("/chat")
    async def chat(request: Request) -> None:
        ws = await request.accept_websocket()
        members.append(ws)
        try:
            async for message in ws:
                if not isinstance(message, str):
                    continue  # a text chat
                for other in list(members):
                    try:
                        await other.send(f"{request.client[1]}: {message}")
                    except WebSocketClosed:
                        pass
        finally:
            members.remove(ws)

    return router


async def http_section() -> None:
    """Serve the chat page, use it with the client and two WebSockets, shut down."""
    _say("\nHTTP and WebSocket (yieldio.http, on h11 and wsproto):")
    t0 = time.perf_counter()
    async with serve(make_chat_app(), "127.0.0.1", 0) as server:
        url = f"http://127.0.0.1:{server.port}/"
        _say(f"   serving the chat page at {url}")
        async with Client(timeout=5) as client:
            page = await client.get(url)
            _say(f"   GET /            -> {page.status}, {len(page.content)} bytes of HTML")
            async with connect_websocket(url.replace("http", "ws") + "chat") as alice, \
                    connect_websocket(url.replace("http", "ws") + "chat") as bob:
                status = await (await client.get(url + "api/status")).json()
                _say(f"   GET /api/status  -> {status}")
                await alice.send("hello from alice")
                heard = await bob.receive()
                _say(f"   WebSocket: alice sent, bob heard {heard!r}")
            _say(f"   the client's two requests shared {client._pool.open} kept-alive "
                 f"connection")
    _say(f"   server shut down gracefully; {1000 * (time.perf_counter() - t0):.0f} ms in all")


if __name__ == "__main__":
    yieldio.run(http_section)
