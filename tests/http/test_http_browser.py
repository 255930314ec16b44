"""End to end in a real browser: headless Chromium loads a page from yieldio, the page
opens a WebSocket to yieldio and exchanges messages, and the test reads the result
from the page.

The test reads the page through the Chrome DevTools Protocol -- with yieldio's own
HTTP client and WebSocket client, against Chromium's DevTools server -- polling
the DOM until the page is done. (``--dump-dom --virtual-time-budget`` is
racy for WebSockets: virtual time does not wait for them, so under load the
DOM can be dumped before the exchange even started.)
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import pytest

import yieldio
from yieldio.http import Client, Request, Response, Router, connect_websocket, serve

CHROMIUM = next((p for p in (shutil.which(n) for n in
                             ("chromium", "chromium-browser", "google-chrome")) if p), None)

PAGE = """<!doctype html>
<html><body><div id="result">pending</div>
<script>
const ws = new WebSocket(`ws://${location.host}/ws`);
const got = [];
ws.onopen = () => { ws.send("hello"); ws.send("wörld"); ws.send("3"); };
ws.onmessage = (event) => {
  got.push(event.data);
  if (got.length === 3) {
    ws.send("result:" + got.join(","));   // tell the server what we saw, then close
    ws.close(1000, "done");
  }
};
ws.onclose = (event) => {
  document.getElementById("result").textContent = got.join(",") + "|" + event.code;
  window.finished = true;
};
</script></body></html>"""


async def devtools_port(profile: Path, proc: subprocess.Popen, log: Path) -> int:
    """Chromium writes the DevTools port it picked into the profile directory."""
    port_file = profile / "DevToolsActivePort"
    while not port_file.exists() or not port_file.read_text().strip():
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
        await yieldio.sleep(0.05)
    return int(port_file.read_text().split()[0])


async def read_result(port: int, page_url: str) -> str:
    """Poll ``#result`` of the page at ``page_url`` over the DevTools Protocol."""
    async with Client(timeout=10) as client:
        while True:
            targets = await (await client.get(f"http://127.0.0.1:{port}/json/list")).json()
            pages = [t for t in targets if t.get("type") == "page" and t["url"] == page_url]
            if pages:
                break
            await yieldio.sleep(0.05)
    ids = itertools.count(1)
    async with connect_websocket(pages[0]["webSocketDebuggerUrl"],
                                 max_message_size=16 << 20) as cdp:
        while True:
            call_id = next(ids)
            await cdp.send(json.dumps({"id": call_id, "method": "Runtime.evaluate", "params": {
                # null until the page says it is done (the DOM may still be loading)
                "expression": "window.finished === true ? "
                              "document.getElementById('result').textContent : null",
                "returnByValue": True}}))
            while True:  # skip events; wait for our answer
                answer = json.loads(await cdp.receive())
                if answer.get("id") == call_id:
                    break
            value = answer["result"]["result"].get("value")
            if value is not None:
                return str(value)
            await yieldio.sleep(0.05)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                             "(apt-get install -y chromium)")
@pytest.mark.timeout(120)
def test_chromium_websocket_round_trip(tmp_path: Path) -> None:
    reported: list[str] = []
    closes: list[int | None] = []
    router = Router()

    @router.get("/")
    async def page(request: Request) -> Response:
        return Response.html(PAGE)

    @router.websocket("/ws")
    async def ws_endpoint(request: Request) -> None:
        ws = await request.accept_websocket()
        async for message in ws:
            if message.startswith("result:"):
                reported.append(message.removeprefix("result:"))
            else:
                await ws.send(f"echo:{message}")
        closes.append(ws.close_code)

    async def main() -> None:
        async with serve(router, "127.0.0.1", 0) as server:
            url = f"http://127.0.0.1:{server.port}/"
            profile = tmp_path / "profile"
            log = tmp_path / "chromium.log"
            with log.open("wb") as log_file:  # a file, not a pipe nobody would drain
                proc = subprocess.Popen(
                    [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={profile}", "--remote-debugging-port=0", url],
                    stdout=subprocess.DEVNULL, stderr=log_file)
            try:
                with yieldio.fail_after(90):
                    port = await devtools_port(profile, proc, log)
                    result = await read_result(port, url)
                    while not closes:  # the server's side of the close may trail a bit
                        await yieldio.sleep(0.02)
            finally:
                proc.terminate()
                try:
                    await yieldio.to_thread(proc.wait, 20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    await yieldio.to_thread(proc.wait)
        echoes = "echo:hello,echo:wörld,echo:3"
        assert result == echoes + "|1000"
        assert reported == [echoes]
        assert closes == [1000]

    yieldio.run(main)
