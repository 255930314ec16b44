"""The client's content decoding (gzip, deflate, stacked) and its cookie jar.

Against yieldio.http's own server and the stdlib's ``http.server`` (a peer
written elsewhere), both on 127.0.0.1.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import json
import threading
import zlib
from collections.abc import Iterator
from http.cookiejar import Cookie, CookieJar

import pytest

import yieldio
from yieldio.http import (
    Client,
    DecodingError,
    ProtocolError,
    Request,
    Response,
    Router,
    serve,
)

DATA = b"".join(b"line %d of the body, somewhat compressible\n" % i for i in range(50_000))


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


ENCODINGS = {
    "gzip": ("gzip", gzip.compress(DATA)),
    "x-gzip": ("x-gzip", gzip.compress(DATA)),
    "deflate-zlib": ("deflate", zlib.compress(DATA)),
    "deflate-raw": ("deflate", _raw_deflate(DATA)),
    "stacked": ("gzip, gzip", gzip.compress(gzip.compress(DATA))),
    "stacked-mixed": ("deflate, identity, gzip", gzip.compress(zlib.compress(DATA))),
    "two-headers": (["gzip", "gzip"], gzip.compress(gzip.compress(DATA))),
    "identity": ("identity", DATA),
    "none": (None, DATA),
}


BOMB_SIZE = 8 << 20  # of zeros: a few KiB compressed, sent in one small chunk


@functools.cache
def _zeros(kind: str) -> tuple[str, bytes]:
    """``(Content-Encoding, body)``: ``BOMB_SIZE`` zeros, compressed as ``kind`` says."""
    zeros = bytes(BOMB_SIZE)
    return {"gzip": ("gzip", gzip.compress(zeros)),
            "deflate-zlib": ("deflate", zlib.compress(zeros)),
            "deflate-raw": ("deflate", _raw_deflate(zeros))}[kind]


def content_app(state: dict) -> Router:
    router = Router()

    @router.get("/zeros/{kind}")
    async def zeros(request: Request) -> Response:
        ce, body = _zeros(request.path_params["kind"])
        return Response(200, {"content-encoding": ce}, body)

    @router.get("/enc/{name}")
    async def enc(request: Request) -> Response:
        value, body = ENCODINGS[request.path_params["name"]]
        values = [] if value is None else [value] if isinstance(value, str) else value
        return Response(200, [("content-encoding", v) for v in values], body)

    @router.get("/raw")
    async def raw(request: Request) -> Response:
        # Sent as is, whatever the Content-Encoding claims.
        body = bytes.fromhex(request.query["hex"])
        return Response(200, {"content-encoding": request.query["ce"]}, body)

    @router.get("/stream")
    async def stream(request: Request) -> Response:
        packed = gzip.compress(DATA * 4)

        async def gen():
            for i in range(0, len(packed), 1000):
                yield packed[i:i + 1000]
        return Response(200, {"content-encoding": "gzip"}, gen())

    @router.get("/bomb")
    async def bomb(request: Request) -> Response:
        return Response(200, {"content-encoding": "gzip"},
                        gzip.compress(b"\0" * int(request.query["n"])))

    @router.get("/port")
    async def port(request: Request) -> Response:
        return Response.json(request.client[1])

    @router.get("/headers")
    async def headers(request: Request) -> Response:
        return Response.json({"accept-encoding": request.headers.get("accept-encoding"),
                              "cookie": request.headers.get("cookie")})

    @router.get("/set")
    async def set_cookie(request: Request) -> Response:
        return Response(200, [("set-cookie", v) for v in request.query.get_all("c")], b"set")

    @router.route("/login", methods=["POST"])
    async def login(request: Request) -> Response:
        r = Response.redirect(request.query.get("to", "/headers"), status=303)
        r.headers.add("set-cookie", "session=s3cret; Path=/; HttpOnly")
        return r

    return router


@pytest.fixture
def stdlib_server() -> Iterator[str]:
    """The stdlib's threaded ``http.server`` with a handler that gzips and sets cookies."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/gzip":
                body = gzip.compress(DATA)
                self.send_response(200)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/chunked-deflate":
                body = _raw_deflate(DATA)
                self.send_response(200)
                self.send_header("Content-Encoding", "deflate")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(body), 777):
                    part = body[i:i + 777]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            elif self.path.startswith("/set"):
                body = b"ok"
                self.send_response(200)
                self.send_header("Set-Cookie", "peer=1; Path=/")
                self.send_header("Set-Cookie", "scoped=2; Path=/only")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(body)
            else:
                body = json.dumps({"cookie": self.headers.get("Cookie"),
                                   "accept-encoding": self.headers.get("Accept-Encoding")}
                                  ).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _run(coro_fn, *args):
    yieldio.run(coro_fn, *args)


# -- content decoding --------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ENCODINGS))
def test_bodies_are_decoded(name: str) -> None:
    async def main() -> None:
        async with serve(content_app({}), "127.0.0.1", 0) as server, \
                Client(timeout=10) as client:
            r = await client.get(f"http://127.0.0.1:{server.port}/enc/{name}")
            assert r.content == DATA
            # Headers stay as received: Content-Length is the encoded size.
            assert int(r.headers["content-length"]) == len(ENCODINGS[name][1])
            assert (await r.text()).startswith("line 0 ")
    _run(main)


def test_unknown_encoding_is_passed_through() -> None:
    async def main() -> None:
        async with serve(content_app({}), "127.0.0.1", 0) as server, \
                Client(timeout=10) as client:
            base = f"http://127.0.0.1:{server.port}"
            for ce in ("br", "gzip, br", "br, gzip"):  # any unknown layer: nothing decoded
                r = await client.get(f"{base}/raw", params={"hex": "00ff10", "ce": ce})
                assert r.content == b"\x00\xff\x10" and r.headers["content-encoding"] == ce
    _run(main)


def test_streamed_body_is_decoded_incrementally() -> None:
    async def main() -> None:
        async with serve(content_app({}), "127.0.0.1", 0) as server, \
                Client(timeout=10) as client:
            url = f"http://127.0.0.1:{server.port}/stream"
            async with client.stream("GET", url) as r:
                assert "content-length" not in r.headers
                pieces = [piece async for piece in r.iter_bytes()]
            assert b"".join(pieces) == DATA * 4
            assert len(pieces) > 10 and max(map(len, pieces)) <= 65536  # bounded pieces
    _run(main)


def test_iter_raw_gives_the_encoded_bytes() -> None:
    async def main() -> None:
        async with serve(content_app({}), "127.0.0.1", 0) as server, \
                Client(timeout=10) as client:
            base = f"http://127.0.0.1:{server.port}"
            async with client.stream("GET", f"{base}/enc/stacked") as r:
                raw = b"".join([c async for c in r.iter_raw()])
            assert raw == ENCODINGS["stacked"][1]
            r = await client.get(f"{base}/enc/gzip")  # read, so decoded: raw bytes are gone
            with pytest.raises(RuntimeError, match="iter_raw"):
                r.iter_raw()
            r = await client.get(f"{base}/enc/none")  # nothing was decoded: same bytes
            assert b"".join([c async for c in r.iter_raw()]) == DATA
            # The connection is reused after a raw read as after a decoded one.
            ports = {(await client.get(f"{base}/port")).content for _ in range(3)}
            assert len(ports) == 1
    _run(main)


@pytest.mark.parametrize("ce,body", [
    ("gzip", b"this is not gzip at all"),
    ("gzip", gzip.compress(b"hello " * 100)[:-6]),   # truncated
    ("deflate", b"\x78\x9c" + b"\xff" * 40),         # a zlib header, then garbage
    ("gzip, gzip", gzip.compress(b"inner is plain")),
], ids=["garbage", "truncated", "bad-deflate", "stacked-inner-plain"])
def test_corrupt_body_raises_and_the_connection_is_dropped(ce: str, body: bytes) -> None:
    async def main() -> None:
        async with serve(content_app({}), "127.0.0.1", 0) as server, \
                Client(timeout=10) as client:
            base = f"http://127.0.0.1:{server.port}"
            port = (await client.get(f"{base}/port")).content
            assert (await client.get(f"{base}/port")).content == port  # reused so far
            with pytest.raises(DecodingError, match=r"gzip|deflate") as info:
                await client.get(f"{base}/raw", params={"hex": body.hex(), "ce": ce})
            assert isinstance(info.value, ProtocolError)
            assert client._pool.open == 0  # closed, not pooled
            assert (await client.get(f"{base}/port")).content != port
            async with client.stream("GET", f"{base}/raw",
                                     params={"hex": body.hex(), "ce": ce}) as r:
                with pytest.raises(DecodingError):
                    async for _ in r.iter_bytes():
                        pass
            assert client._pool.open == 0
    _run(main)


def test_decompression_bomb_limit() -> None:
    async def main() -> None:
        async with serve(content_app({}), "127.0.0.1", 0) as server, \
                Client(timeout=10, max_decoded_size=1 << 20) as client:
            base = f"http://127.0.0.1:{server.port}"
            r = await client.get(f"{base}/bomb", params={"n": 1 << 20})  # at the limit: fine
            assert len(r.content) == 1 << 20
            with pytest.raises(DecodingError, match="max_decoded_size"):
                await client.get(f"{base}/bomb", params={"n": 20 << 20})
            async with client.stream("GET", f"{base}/bomb", params={"n": 20 << 20}) as r:
                got = 0
                with pytest.raises(DecodingError, match="max_decoded_size"):
                    async for chunk in r.iter_bytes():
                        got += len(chunk)
                assert got <= 1 << 20
            assert client._pool.open == 0
            client.max_decoded_size = None
            assert len((await client.get(f"{base}/bomb", params={"n": 20 << 20})).content) \
                == 20 << 20
    _run(main)


@pytest.mark.parametrize("kind", ["gzip", "deflate-zlib", "deflate-raw"])
def test_a_highly_compressed_chunk_is_decoded_in_bounded_pieces_with_checkpoints(
        kind: str) -> None:
    # A few KiB received at once decode to 8 MiB: the pieces are handed out
    # one at a time, none over 64 KiB, and other tasks run between them even
    # though the consuming loop never awaits anything itself.
    assert len(_zeros(kind)[1]) < 65536

    async def main() -> None:
        ticks = 0

        async def counter() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await yieldio.sleep(0)

        async with serve(content_app({}), "127.0.0.1", 0) as server, \
                Client(timeout=10) as client, yieldio.TaskGroup() as tg:
            tg.spawn(counter)
            url = f"http://127.0.0.1:{server.port}/zeros/{kind}"
            async with client.stream("GET", url) as r:
                sizes, seen = [], []
                async for piece in r.iter_bytes():
                    assert piece.count(0) == len(piece)
                    sizes.append(len(piece))
                    seen.append(ticks)
            assert sum(sizes) == BOMB_SIZE
            assert max(sizes) <= 65536 and len(sizes) >= BOMB_SIZE // 65536
            assert all(seen[i] < seen[i + 1] for i in range(len(seen) - 1))  # the counter ran

            before = ticks
            assert len((await client.get(url)).content) == BOMB_SIZE  # read() as well
            assert ticks - before >= BOMB_SIZE // 65536 - 1

            # Cancellable in the middle of one received chunk.
            async with client.stream("GET", url) as r:
                got = 0
                with yieldio.CancelScope() as scope:
                    async for piece in r.iter_bytes():
                        got += len(piece)
                        if got >= 4 * 65536:
                            scope.cancel()
                assert scope.cancelled_caught and got < 8 * 65536

            # max_decoded_size still stops it early.
            client.max_decoded_size = 1 << 20
            async with client.stream("GET", url) as r:
                got = 0
                with pytest.raises(DecodingError, match="max_decoded_size"):
                    async for piece in r.iter_bytes():
                        got += len(piece)
                assert got <= 1 << 20
            tg.cancel()
    _run(main)


def test_accept_encoding_default_and_override() -> None:
    async def main() -> None:
        async with serve(content_app({}), "127.0.0.1", 0) as server:
            url = f"http://127.0.0.1:{server.port}/headers"
            async with Client(timeout=10) as client:
                assert (await (await client.get(url)).json())["accept-encoding"] == \
                    "gzip, deflate"
                r = await client.get(url, headers={"Accept-Encoding": "identity"})
                assert (await r.json())["accept-encoding"] == "identity"
            async with Client(timeout=10, headers={"accept-encoding": "br"}) as client:
                assert (await (await client.get(url)).json())["accept-encoding"] == "br"
    _run(main)


def test_stdlib_server_gzip_and_chunked_raw_deflate(stdlib_server: str) -> None:
    async def main() -> None:
        async with Client(timeout=10) as client:
            r = await client.get(stdlib_server + "/gzip")
            assert r.content == DATA and r.headers["content-encoding"] == "gzip"
            async with client.stream("GET", stdlib_server + "/chunked-deflate") as r:
                assert b"".join([c async for c in r.iter_bytes()]) == DATA
            r = await client.get(stdlib_server + "/echo")
            assert (await r.json())["accept-encoding"] == "gzip, deflate"
    _run(main)


# -- cookies ---------------------------------------------------------------------------------

def _names(jar: CookieJar) -> dict[str, str]:
    return {c.name: c.value or "" for c in jar}


def test_cookies_set_by_the_server_are_sent_back_by_path() -> None:
    async def main() -> None:
        async with serve(content_app({}), "127.0.0.1", 0) as server, \
                Client(timeout=10) as client:
            base = f"http://127.0.0.1:{server.port}"
            await client.get(f"{base}/set", params=[("c", "a=1; Path=/"),
                                                     ("c", "b=2; Path=/headers"),
                                                     ("c", "c=3; Path=/elsewhere")])
            assert _names(client.cookies) == {"a": "1", "b": "2", "c": "3"}
            got = (await (await client.get(f"{base}/headers")).json())["cookie"]
            assert sorted(got.split("; ")) == ["a=1", "b=2"]
            # The caller's own Cookie header wins over the jar.
            r = await client.get(f"{base}/headers", headers={"cookie": "mine=1"})
            assert (await r.json())["cookie"] == "mine=1"
    _run(main)


def test_host_only_domain_secure_and_expiry(server_context, client_context) -> None:
    async def main() -> None:
        async with serve(content_app({}), "127.0.0.1", 0) as server, \
                serve(content_app({}), "127.0.0.1", 0, ssl=server_context) as tls, \
                Client(timeout=10, ssl=client_context) as client:
            base = f"http://127.0.0.1:{server.port}"
            await client.get(f"{base}/set", params=[
                ("c", "host=1"), ("c", "sec=2; Secure"),
                ("c", "foreign=3; Domain=example.com"),      # not this host's: refused
                ("c", "gone=4; Max-Age=100"), ("c", "old=5; Max-Age=100")])
            assert set(_names(client.cookies)) == {"host", "sec", "gone", "old"}
            await client.get(f"{base}/set", params=[
                ("c", "gone=; Max-Age=0"), ("c", "old=; Expires=Thu, 01 Jan 1970 00:00:00 GMT")])
            assert set(_names(client.cookies)) == {"host", "sec"}
            got = (await (await client.get(f"{base}/headers")).json())["cookie"]
            assert got == "host=1"                            # Secure: not over http
            r = await client.get(f"https://127.0.0.1:{tls.port}/headers")
            assert sorted((await r.json())["cookie"].split("; ")) == ["host=1", "sec=2"]
            # Host-only: the same server by another name gets none of them.
            r = await client.get(f"http://localhost:{server.port}/headers")
            assert (await r.json())["cookie"] is None
    _run(main)


def test_cookie_set_on_a_redirect_is_sent_to_its_target() -> None:
    async def main() -> None:
        async with serve(content_app({}), "127.0.0.1", 0) as server, \
                Client(timeout=10, follow_redirects=True) as client:
            base = f"http://127.0.0.1:{server.port}"
            r = await client.post(f"{base}/login", data={"user": "u"})
            assert [h.status for h in r.history] == [303]
            assert (await r.json())["cookie"] == "session=s3cret"
            assert _names(client.cookies) == {"session": "s3cret"}
    _run(main)


def test_cookies_do_not_leak_to_another_origin_on_redirect() -> None:
    async def main() -> None:
        async with serve(content_app({}), "127.0.0.1", 0) as a, \
                serve(content_app({}), "127.0.0.1", 0) as b, \
                Client(timeout=10, follow_redirects=True) as client:
            other = f"http://localhost:{b.port}/headers"
            r = await client.post(f"http://127.0.0.1:{a.port}/login", params={"to": other},
                                  headers={"cookie": "user-set=1"})
            assert r.url == other and (await r.json())["cookie"] is None
            assert _names(client.cookies) == {"session": "s3cret"}
            # Same host, another port: cookies are not port-bound (RFC 6265); the
            # caller's Cookie header is dropped all the same (another origin).
            r = await client.post(f"http://127.0.0.1:{a.port}/login",
                                  params={"to": f"http://127.0.0.1:{b.port}/headers"},
                                  headers={"cookie": "user-set=1"})
            assert (await r.json())["cookie"] == "session=s3cret"
    _run(main)


def test_seeding_and_reading_the_jar() -> None:
    async def main() -> None:
        async with serve(content_app({}), "127.0.0.1", 0) as server:
            url = f"http://127.0.0.1:{server.port}/headers"
            async with Client(timeout=10, cookies={"theme": "dark"}) as client:
                assert (await (await client.get(url)).json())["cookie"] == "theme=dark"
                assert isinstance(client.cookies, CookieJar)
            jar = CookieJar()
            jar.set_cookie(Cookie(0, "scoped", "x", None, False, "example.com", True, False,
                                  "/", True, False, None, True, None, None, {}))
            async with Client(timeout=10, cookies=jar) as client:
                assert client.cookies is jar
                assert (await (await client.get(url)).json())["cookie"] is None  # other domain
                await client.get(url.replace("/headers", "/set"), params={"c": "new=1"})
            assert _names(jar) == {"scoped": "x", "new": "1"}  # the caller's jar was filled
            with pytest.raises(TypeError, match="cookies="):
                Client(cookies=[("a", "1")])  # type: ignore[arg-type]
    _run(main)


def test_stdlib_server_cookies(stdlib_server: str) -> None:
    async def main() -> None:
        async with Client(timeout=10) as client:
            await client.get(stdlib_server + "/set")
            assert _names(client.cookies) == {"peer": "1", "scoped": "2"}
            assert (await (await client.get(stdlib_server + "/echo")).json())["cookie"] \
                == "peer=1"
            r = await client.get(stdlib_server + "/only/here")
            assert sorted((await r.json())["cookie"].split("; ")) == ["peer=1", "scoped=2"]
    _run(main)
