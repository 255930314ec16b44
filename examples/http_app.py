"""An HTTP application on yieldio.http: a JSON API, a streaming endpoint, a WebSocket chat.

    python examples/http_app.py --port 8000     # then open http://127.0.0.1:8000/

The first line printed is the URL (``--port 0`` picks a free port). Ctrl-C
shuts the server down gracefully: requests in flight finish, chat clients
get a "going away" close.

Endpoints:

    GET    /                    the chat page (HTML + JavaScript)
    WS     /chat?name=NAME      the chat: every message goes to everyone
    GET    /api/items           list the items          (JSON)
    POST   /api/items           add {"name": ..., "price": ...}
    GET    /api/items/{id}      one item, or 404
    DELETE /api/items/{id}      remove it
    GET    /stream?n=5          n lines, one every 0.1 s (chunked)
"""

from __future__ import annotations

import argparse
import signal
import sys

import yieldio
from yieldio.http import HTTPException, Request, Response, Router, WebSocket, serve

CHAT_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>yieldio chat</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}
#log{border:1px solid #ccc;height:20em;overflow-y:auto;padding:.5em}</style></head>
<body><h1>yieldio chat</h1>
<div id="log"></div>
<form id="form"><input id="text" autocomplete="off" size="40" autofocus>
<button>Send</button></form>
<script>
const name = new URLSearchParams(location.search).get("name") ||
             "guest" + Math.floor(Math.random() * 1000);
const ws = new WebSocket(`ws://${location.host}/chat?name=${encodeURIComponent(name)}`);
const log = document.getElementById("log");
function show(text) {
  const line = document.createElement("div");
  line.textContent = text;
  log.appendChild(line);
  log.scrollTop = log.scrollHeight;
}
ws.onmessage = (event) => show(event.data);
ws.onclose = (event) => show(`(disconnected: ${event.code})`);
document.getElementById("form").onsubmit = (event) => {
  event.preventDefault();
  const input = document.getElementById("text");
  if (input.value) { ws.send(input.value); input.value = ""; }
};
</script></body></html>
"""


class ChatRoom:
    """The connected WebSockets; a message from one goes to all."""

    def __init__(self) -> None:
        self.members: dict[WebSocket, str] = {}

    async def broadcast(self, text: str) -> None:
        for ws in list(self.members):
            try:
                await ws.send(text)
            except yieldio.http.WebSocketClosed:
                self.members.pop(ws, None)

    async def join(self, request: Request) -> None:
        name = request.query.get("name", "anonymous")[:32]
        ws = await request.accept_websocket()
        self.members[ws] = name
        await self.broadcast(f"* {name} joined ({len(self.members)} here)")
        try:
            async for message in ws:
                if isinstance(message, str):
                    await self.broadcast(f"{name}: {message[:500]}")
        finally:
            self.members.pop(ws, None)
            await self.broadcast(f"* {name} left")


def make_app() -> Router:
    router = Router()
    items: dict[int, dict] = {1: {"id": 1, "name": "coffee", "price": 2.5}}
    room = ChatRoom()

    @router.get("/")
    async def index(request: Request) -> Response:
        return Response.html(CHAT_PAGE)

    router.websocket("/chat")(room.join)

    @router.get("/api/items")
    async def list_items(request: Request) -> Response:
        return Response.json(list(items.values()))

    @router.post("/api/items")
    async def add_item(request: Request) -> Response:
        data = await request.json()  # not JSON at all: request.json() answers 400
        # Valid JSON of the wrong shape is a 422. Check every field: a missing
        # or mistyped one is the client's error, not a silent default or a 500.
        # (bool is a subclass of int, so True must be refused explicitly.)
        name = data.get("name") if isinstance(data, dict) else None
        price = data.get("price") if isinstance(data, dict) else None
        if (not isinstance(name, str) or isinstance(price, bool)
                or not isinstance(price, (int, float))):
            raise HTTPException(422, 'send {"name": "...", "price": 1.0}')
        item_id = max(items, default=0) + 1
        items[item_id] = {"id": item_id, "name": name, "price": float(price)}
        return Response.json(items[item_id], status=201,
                             headers={"location": f"/api/items/{item_id}"})

    def find(request: Request) -> int:
        try:
            item_id = int(request.path_params["item_id"])
        except ValueError:
            raise HTTPException(404) from None
        if item_id not in items:
            raise HTTPException(404, f"no item {item_id}")
        return item_id

    @router.get("/api/items/{item_id}")
    async def get_item(request: Request) -> Response:
        return Response.json(items[find(request)])

    @router.delete("/api/items/{item_id}")
    async def delete_item(request: Request) -> Response:
        del items[find(request)]
        return Response(204)

    @router.get("/stream")
    async def stream(request: Request) -> Response:
        # Query parameters are text from the client: a bad one is a 400, not
        # a ValueError (which the server would log and answer with a 500).
        try:
            n = min(int(request.query.get("n", "5")), 100)
        except ValueError:
            raise HTTPException(400, "n must be a whole number") from None

        async def lines():
            for i in range(n):
                yield f"line {i + 1} of {n}\n".encode()
                await yieldio.sleep(0.1)

        return Response(headers={"content-type": "text/plain; charset=utf-8"}, body=lines())

    return router


async def main(host: str, port: int) -> None:
    async with serve(make_app(), host, port) as server:
        print(f"http://{host}:{server.port}/", flush=True)
        # Ctrl-C or SIGTERM: a graceful shutdown (leaving the block lets
        # requests in flight finish and closes the chat with 1001).
        with yieldio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                print(f"{signal.Signals(signum).name}: shutting down", file=sys.stderr,
                      flush=True)
                break


def port_number(text: str) -> int:
    """An argparse type: a TCP port, so a typo is a usage error (exit 2), not a traceback."""
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, not {port}")
    return port


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port_number, default=8000, help="0 picks a free port")
    args = parser.parse_args()
    try:
        yieldio.run(main, args.host, args.port)
    except OSError as exc:
        # Most often the port is taken ("Address already in use") or the
        # host is not an address of this machine: one line, not a traceback.
        print(f"cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        sys.exit(1)
