"""examples/http_app.py and examples/http_client.py, run as the user would run them."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import yieldio
from yieldio.http import Client, connect_websocket

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def app_url():
    """Start examples/http_app.py on a free port; yield its URL; SIGTERM it after."""
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "http_app.py"), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the example printed no URL within 30 s"
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/"), url
        yield url
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "SIGTERM: shutting down" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_http_app_example(app_url: str) -> None:
    async def main() -> None:
        async with Client() as client:
            page = await client.get(app_url)
            assert page.status == 200 and b"new WebSocket" in page.content
            assert (await client.get(app_url + "api/items")).status == 200
            created = await client.post(app_url + "api/items", json={"name": "tea", "price": 3})
            item = await created.json()
            assert created.status == 201 and item["name"] == "tea"
            assert created.headers["location"] == f"/api/items/{item['id']}"
            assert await (await client.get(app_url + f"api/items/{item['id']}")).json() == item
            assert (await client.delete(app_url + f"api/items/{item['id']}")).status == 204
            assert (await client.get(app_url + f"api/items/{item['id']}")).status == 404
            assert (await client.post(app_url + "api/items", json=[1])).status == 422
            # Every field is checked: no silent default price, no 500.
            for bad in ({"name": "pen"}, {"name": "pen", "price": "cheap"},
                        {"name": "pen", "price": True}, {"price": 1}):
                refused = await client.post(app_url + "api/items", json=bad)
                assert refused.status == 422, bad
            assert (await client.post(app_url + "api/items", content=b"{")).status == 400
            # A bad query parameter is the client's error too (the fixture
            # checks the server logged no traceback).
            bad_n = await client.get(app_url + "stream?n=abc")
            assert bad_n.status == 400 and b"n must be a whole number" in bad_n.content
            async with client.stream("GET", app_url + "stream?n=3") as r:
                assert r.headers["transfer-encoding"] == "chunked"
                lines = [chunk async for chunk in r.iter_bytes()]
            assert b"".join(lines) == b"line 1 of 3\nline 2 of 3\nline 3 of 3\n"

        ws_url = app_url.replace("http://", "ws://") + "chat"
        async with connect_websocket(ws_url + "?name=ann") as ann:
            assert await ann.receive() == "* ann joined (1 here)"
            async with connect_websocket(ws_url + "?name=bob") as bob:
                assert await bob.receive() == "* bob joined (2 here)"
                assert await ann.receive() == "* bob joined (2 here)"
                await bob.send("hi all")
                assert await ann.receive() == "bob: hi all"
                assert await bob.receive() == "bob: hi all"
            assert await ann.receive() == "* bob left"

    yieldio.run(main)


def test_http_client_example(app_url: str) -> None:
    urls = [app_url, app_url + "api/items", app_url + "stream?n=2", app_url + "nowhere",
            "http://127.0.0.1:1/"]
    done = subprocess.run([sys.executable, str(EXAMPLES / "http_client.py"), "--limit", "2",
                           *urls], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr  # one URL was refused
    lines = done.stdout.splitlines()
    assert f"200  {app_url}api/items  " in done.stdout
    assert f"404  {app_url}nowhere  " in done.stdout
    assert any(line.startswith("ERR  http://127.0.0.1:1/  ConnectError") for line in lines)
    assert lines[-1].startswith("5 URLs, 1 failed, ") and lines[-1].endswith("(limit 2)")


def test_http_client_rejects_a_zero_limit() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLES / "http_client.py"), "--limit", "0",
                           "http://127.0.0.1:1/"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--limit must be >= 1" in done.stderr and "Traceback" not in done.stderr


def test_http_app_reports_startup_errors_in_one_line() -> None:
    app = str(EXAMPLES / "http_app.py")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, app, "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"cannot serve on 127.0.0.1:{port}: ")
    assert "Address already in use" in done.stderr
    done = subprocess.run([sys.executable, app, "--port", "70000"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "port must be 0-65535" in done.stderr and "Traceback" not in done.stderr
