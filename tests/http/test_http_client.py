"""The HTTP client: pooling, streaming, redirects, TLS, and its errors."""

from __future__ import annotations

import errno
import gc
import os
import socket
import ssl

import pytest

import yieldio
from yieldio.http import (
    Client,
    ConnectError,
    Headers,
    HTTPStatusError,
    Limits,
    ProtocolError,
    Request,
    Response,
    Router,
    Timeout,
    TooManyRedirects,
    serve,
)


def make_app(state: dict) -> Router:
    router = Router()
    state.setdefault("active", 0)
    state.setdefault("peak", 0)
    state.setdefault("auth", [])

    @router.get("/port")
    async def port(request: Request) -> Response:
        return Response.json(request.client[1])

    @router.get("/slow")
    async def slow(request: Request) -> Response:
        state["active"] += 1
        state["peak"] = max(state["peak"], state["active"])
        await yieldio.sleep(float(request.query.get("t", "0.05")))
        state["active"] -= 1
        return Response.text("slow")

    @router.route("/echo", methods=["POST", "PUT", "GET"])
    async def echo(request: Request) -> Response:
        body = await request.body()
        state["auth"].append(request.headers.get("authorization"))
        return Response.json({"method": request.method, "body": body.decode(),
                              "chunked": "chunked" in request.headers.get("transfer-encoding", ""),
                              "ua": request.headers.get("user-agent"),
                              "x": request.headers.get("x-default")})

    @router.route("/go/{status}", methods=["GET", "POST"])
    async def go(request: Request) -> Response:
        return Response.redirect(request.query.get("to", "/echo"),
                                 status=int(request.path_params["status"]))

    @router.get("/loop")
    async def loop(request: Request) -> Response:
        return Response.redirect("/loop", status=302)

    @router.get("/big")
    async def big(request: Request) -> Response:
        async def gen():
            for _ in range(100):
                yield b"b" * 10_000
        return Response(body=gen())

    return router


def test_connect_error_for_a_refused_port() -> None:
    async def main() -> None:
        async with Client() as client:
            with pytest.raises(ConnectError) as info:
                await client.get("http://127.0.0.1:1/")
        assert isinstance(info.value, ConnectionError)
        assert isinstance(info.value.__cause__, ConnectionRefusedError)

    yieldio.run(main)


def _refused_port() -> int:
    """A port on 127.0.0.1 that nobody listens on: bound, then closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connect_error_message_says_the_target_and_the_cause_once() -> None:
    port = _refused_port()
    refused = os.strerror(errno.ECONNREFUSED)

    async def main() -> None:
        async with Client() as client:
            with pytest.raises(ConnectError) as info:
                await client.get(f"http://127.0.0.1:{port}/")
            message = str(info.value)
            assert message == f"cannot connect to 127.0.0.1:{port}: {refused}"
            assert info.value.errno == errno.ECONNREFUSED  # every attempt was refused
            with pytest.raises(ConnectError) as info:
                await client.get(f"http://localhost:{port}/")
            message = str(info.value)
            # localhost may resolve to ::1 and 127.0.0.1 or to one of them
            n = len(info.value.__cause__.errors)
            assert message.startswith(f"cannot connect to localhost:{port} ({n} address")
            assert message.count("localhost") == 1 and message.count("[Errno") == 0
            assert message.count("; ") == n - 1  # each address tried, with its error, once
            assert message.count(f"127.0.0.1:{port}") <= 1

    yieldio.run(main)


def test_read_timeout_is_a_timeout_error() -> None:
    async def main() -> None:
        async with serve(make_app({}), "127.0.0.1", 0, grace_period=0.1) as server:
            async with Client(timeout=0.1) as client:
                with pytest.raises(Timeout) as info:
                    await client.get(f"http://127.0.0.1:{server.port}/slow?t=5")
                assert isinstance(info.value, TimeoutError)
                # the per-request override
                r = await client.get(f"http://127.0.0.1:{server.port}/slow?t=0.2", timeout=5)
                assert r.status == 200

    yieldio.run(main)


def test_protocol_errors_from_a_broken_server() -> None:
    async def garbage(stream: yieldio.Stream) -> None:
        await stream.read()
        await stream.write(b"SMTP ready, not HTTP\r\n\r\n")

    async def truncated(stream: yieldio.Stream) -> None:
        await stream.read()
        await stream.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")

    async def silent(stream: yieldio.Stream) -> None:
        await stream.read()  # then close without a word

    async def main() -> None:
        async with Client() as client:
            for handler, message in ((garbage, "bad response"),
                                     (truncated, "peer closed"),
                                     (silent, "without a response")):
                async with yieldio.serve_tcp(handler, "127.0.0.1", 0) as server:
                    with pytest.raises(ProtocolError, match=message):
                        await client.get(f"http://127.0.0.1:{server.port}/")

    yieldio.run(main)


def test_tls_verification(server_context, client_context) -> None:
    async def main() -> None:
        async with serve(make_app({}), "127.0.0.1", 0, ssl=server_context) as server:
            url = f"https://localhost:{server.port}/port"
            async with Client() as client:  # the default context: our test CA is unknown
                with pytest.raises(ConnectError) as info:
                    await client.get(url)
                assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
            async with Client(ssl=client_context) as client:
                assert (await client.get(url)).status == 200
                with pytest.raises(ConnectError):  # the certificate has no such name
                    await client.get(f"https://127.0.0.2:{server.port}/port")

    yieldio.run(main)


def test_keep_alive_reuse_and_per_host_limit() -> None:
    state: dict = {}

    async def main() -> None:
        async with serve(make_app(state), "127.0.0.1", 0) as server:
            url = f"http://127.0.0.1:{server.port}"
            limits = Limits(max_connections_per_host=2)
            async with Client(limits=limits) as client:
                ports = {await (await client.get(url + "/port")).json() for _ in range(5)}
                assert len(ports) == 1

                async with yieldio.TaskGroup() as tg:
                    for _ in range(6):
                        tg.spawn(client.get, url + "/slow")
                assert 1 <= state["peak"] <= 2
                assert client._pool.open == 2

    yieldio.run(main)


def test_total_limit_evicts_idle_connections_of_other_origins() -> None:
    async def main() -> None:
        async with serve(make_app({}), "127.0.0.1", 0) as a, serve(make_app({}), "127.0.0.1", 0) as b:
            async with Client(limits=Limits(max_connections=1)) as client:
                for _ in range(3):
                    assert (await client.get(f"http://127.0.0.1:{a.port}/port")).status == 200
                    assert (await client.get(f"http://127.0.0.1:{b.port}/port")).status == 200
                    assert client._pool.open == 1

    yieldio.run(main)


@pytest.mark.parametrize("tls", [False, True])
def test_idle_connection_closed_by_the_server_is_replaced(tls: bool, server_context,
                                                          client_context) -> None:
    # Over TLS too, and before a streamed upload (which cannot be retried
    # once sent): the closed connection must be noticed before it is used.
    async def upload():
        yield b"streamed"

    async def main() -> None:
        limits = Limits(keep_alive_timeout=0.05)
        async with serve(make_app({}), "127.0.0.1", 0, limits=limits,
                         ssl=server_context if tls else None) as server:
            async with Client(ssl=client_context) as client:
                base = f"{'https' if tls else 'http'}://127.0.0.1:{server.port}"
                first = await (await client.get(base + "/port")).json()
                with yieldio.fail_after(10):  # the server closes the idle connection
                    while server.connections:
                        await yieldio.sleep(0.01)
                r = await client.post(base + "/echo", content=upload())
                assert (await r.json())["body"] == "streamed"
                second = await (await client.get(base + "/port")).json()
                assert first != second

    yieldio.run(main)


def test_stale_connection_is_retried_once_on_a_new_one() -> None:
    """The server drops a kept-alive connection right when our next request arrives."""
    served = []

    async def one_request_per_connection(stream: yieldio.Stream) -> None:
        await stream.read_until(b"\r\n\r\n")
        served.append(1)
        await stream.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await stream.read_until(b"\r\n\r\n")  # the second request: hang up without answering

    async def main() -> None:
        async with yieldio.serve_tcp(one_request_per_connection, "127.0.0.1", 0) as server:
            async with Client() as client:
                url = f"http://127.0.0.1:{server.port}/"
                assert (await client.get(url)).content == b"ok"
                assert (await client.get(url)).content == b"ok"  # retried transparently
                assert len(served) == 2

    yieldio.run(main)


def test_streaming_download_and_upload() -> None:
    async def main() -> None:
        async with serve(make_app({}), "127.0.0.1", 0) as server:
            url = f"http://127.0.0.1:{server.port}"
            async with Client() as client:
                async with client.stream("GET", url + "/big") as r:
                    assert r.status == 200
                    sizes = [len(chunk) async for chunk in r.iter_bytes()]
                assert sum(sizes) == 1_000_000 and len(sizes) > 1
                with pytest.raises(RuntimeError):
                    r.content  # noqa: B018 - streamed, not kept

                async with client.stream("GET", url + "/big") as r:
                    async for _ in r.iter_bytes():
                        break  # abandoned part way: that connection is closed
                gc.collect()  # finalize the abandoned iterator: no double release
                assert client._pool.open == 0
                pool = client._pool
                assert pool._total is not None and pool._total.value == pool.limits.max_connections
                assert [s.value for s in pool._per_host.values()] == [10]

                async def gen():
                    for word in ("stream", "ed ", "upload"):
                        yield word.encode()
                r = await client.put(url + "/echo", content=gen())
                assert await r.json() == {"method": "PUT", "body": "streamed upload",
                                          "chunked": True, "ua": "yieldio/0.1.0", "x": None}

    yieldio.run(main)


def test_redirects() -> None:
    state: dict = {}

    async def main() -> None:
        async with serve(make_app(state), "127.0.0.1", 0) as server:
            url = f"http://127.0.0.1:{server.port}"
            async with Client() as client:
                r = await client.get(url + "/go/302")
                assert r.status == 302 and r.headers["location"] == "/echo"
                r = await client.get(url + "/go/302", follow_redirects=True)
                assert r.status == 200 and r.url == url + "/echo"
            async with Client(follow_redirects=True, max_redirects=5) as client:
                r = await client.post(url + "/go/303", content=b"data")
                assert (await r.json())["method"] == "GET"
                r = await client.post(url + "/go/307", content=b"data")
                assert await r.json() == {"method": "POST", "body": "data", "chunked": False,
                                          "ua": "yieldio/0.1.0", "x": None}
                assert [h.status for h in r.history] == [307]
                with pytest.raises(TooManyRedirects) as info:
                    await client.get(url + "/loop")
                assert len(info.value.history) == 6
                # credentials do not follow a redirect to another origin
                other = f"http://localhost:{server.port}/echo"
                state["auth"].clear()
                await client.get(url + "/go/302", params={"to": other},
                                 headers={"authorization": "Bearer s3cret"})
                assert state["auth"] == [None]

    yieldio.run(main)


@pytest.mark.parametrize("base, url", [
    ("http://api.example/v1", "/items"), ("http://api.example/v1/", "items"),
    ("http://api.example/v1", "items/7?full=1"), ("http://api.example", "/x"),
    ("http://api.example:8080/v1/", "/a/b/"), ("http://api.example/v1", "https://other.example/z"),
])
def test_base_url_is_a_prefix_as_in_httpx(base: str, url: str) -> None:
    import httpx

    from yieldio.http._client import _merge_url

    expected = str(httpx.Client(base_url=base).build_request("GET", url).url)
    assert _merge_url(base, url) == expected


def test_base_url_with_a_path_reaches_the_routes_under_it() -> None:
    router = Router()

    @router.get("/api/v2/items/{n}")
    async def item(request: Request) -> Response:
        return Response.json({"n": request.path_params["n"], "q": request.query.get("q")})

    async def main() -> None:
        async with serve(router, "127.0.0.1", 0) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}/api/v2") as client:
                r = await client.get("/items/7", params={"q": "x"})
                assert await r.json() == {"n": "7", "q": "x"}

    yieldio.run(main)


def test_defaults_base_url_and_errors() -> None:
    async def main() -> None:
        async with serve(make_app({}), "127.0.0.1", 0) as server:
            base = f"http://127.0.0.1:{server.port}"
            async with Client(base_url=base, headers={"x-default": "d",
                                                      "user-agent": "tester"}) as client:
                r = await client.post("/echo", json={"a": 1})
                assert await r.json() == {"method": "POST", "body": '{"a":1}', "chunked": False,
                                          "ua": "tester", "x": "d"}
                assert r.raise_for_status() is r and r.ok
                r = await client.get("/nothing-here")
                with pytest.raises(HTTPStatusError) as info:
                    r.raise_for_status()
                assert info.value.response is r and not r.ok
                with pytest.raises(TypeError):
                    await client.post("/echo", json={}, content=b"x")
                with pytest.raises(ValueError):
                    await client.get("ftp://example.org/")

    yieldio.run(main)


def test_waiting_for_a_pooled_connection_times_out() -> None:
    async def main() -> None:
        async with serve(make_app({}), "127.0.0.1", 0, grace_period=0.1) as server:
            url = f"http://127.0.0.1:{server.port}/slow?t=0.5"
            async with Client(limits=Limits(max_connections_per_host=1)) as client:
                async with yieldio.TaskGroup() as tg:
                    tg.spawn(client.get, url)  # holds the only connection for 0.5 s
                    await yieldio.sleep(0.05)
                    with pytest.raises(Timeout, match="no free connection"):
                        await client.get(url, timeout=0.1)

    yieldio.run(main)


def test_early_413_is_read_even_while_the_upload_fails() -> None:
    """The server refuses a big upload at once and closes; the client still gets the 413."""
    async def main() -> None:
        async with serve(make_app({}), "127.0.0.1", 0,
                         limits=Limits(max_body_size=1000)) as server:
            async with Client() as client:
                url = f"http://127.0.0.1:{server.port}/echo"
                r = await client.post(url, content=b"x" * 5_000_000)
                assert r.status == 413

                async def endless():
                    while True:
                        yield b"y" * 65536
                r = await client.post(url, content=endless())
                assert r.status == 413

    yieldio.run(main)


def test_urls_are_percent_encoded_and_the_host_header_can_be_set() -> None:
    # As httpx and requests do: a space or a non-ASCII character in the URL
    # is sent percent-encoded (UTF-8), escapes already there are kept;
    # params= go in the query even when the URL has a #fragment (never
    # sent); a Host header given by the caller is the one sent.
    async def app(request: Request) -> Response:
        return Response.json({"target": request.target,
                              "host": request.headers.get_all("host")})

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server, Client() as client:
            base = f"http://127.0.0.1:{server.port}"
            r = await client.get(base + "/a b/café?q=x y&e=%2F")
            assert (await r.json())["target"] == "/a%20b/caf%C3%A9?q=x%20y&e=%2F"
            r = await client.get(base + "/p#section", params={"page": "2"})
            assert (await r.json())["target"] == "/p?page=2"
            r = await client.get(base + "/", headers={"Host": "example.org"})
            assert (await r.json())["host"] == ["example.org"]

    yieldio.run(main)


def test_wrong_request_arguments_raise_clear_errors_before_connecting() -> None:
    async def main() -> None:
        # Nothing listens on port 1: each mistake must be caught before connecting.
        async with Client() as client:
            url = "http://127.0.0.1:1/"
            with pytest.raises(TypeError, match="content="):
                await client.post(url, data=b"raw bytes")  # requests' spelling
            with pytest.raises(TypeError, match="json="):
                await client.post(url, content={"a": 1})  # would send the keys
            with pytest.raises(TypeError, match="content="):
                await client.post(url, content=123)
            with pytest.raises(ValueError, match="header"):
                await client.get(url, headers={"x-injected": "a\r\nevil: 1"})

    yieldio.run(main)


def test_connections_are_reused_when_file_descriptors_are_above_1024() -> None:
    # The pool's check that an idle connection is still alive must work for
    # any descriptor: select() cannot watch one >= FD_SETSIZE (1024), and a
    # busy process has such descriptors.
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip("cannot open 1,100 descriptors here")
    ports = []

    async def app(request: Request) -> Response:
        ports.append(request.client[1])
        return Response.text("x")

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server, Client() as client:
            for _ in range(3):
                await client.get(f"http://127.0.0.1:{server.port}/")

    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    filler = []
    try:
        filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
        yieldio.run(main)
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(set(ports)) == 1, "each request opened a new connection"


@pytest.mark.parametrize("kind", [dict, list, Headers])
def test_request_headers_replace_the_clients_defaults_of_the_same_name(kind) -> None:
    # However they are given (a dict, pairs, a Headers), a request's headers
    # override the client's headers of the same name -- never both sent --
    # and several values of one name in the request are all kept.
    async def app(request: Request) -> Response:
        return Response.json([request.headers.get_all(n) for n in ("x-token", "user-agent",
                                                                    "x-keep")])

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server, \
                Client(headers={"x-token": "default", "User-Agent": "ua/1", "x-keep": "k"}) \
                as client:
            pairs = [("X-Token", "a"), ("user-agent", "ua/2")]
            if kind is not dict:
                pairs.append(("x-token", "b"))
            headers = dict(pairs) if kind is dict else kind(pairs)
            r = await client.get(f"http://127.0.0.1:{server.port}/", headers=headers)
            expected = ["a"] if kind is dict else ["a", "b"]
            assert await r.json() == [expected, ["ua/2"], ["k"]]

    yieldio.run(main)


def test_params_and_form_values_as_httpx_renders_them() -> None:
    # httpx: a list is a repeated key (?tag=a&tag=b), None an empty value,
    # booleans "true"/"false" -- not the list's repr(), "None" or "True".
    async def app(request: Request) -> Response:
        return Response.json({"target": request.target, "form": (await request.body()).decode()})

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server, Client() as client:
            url = f"http://127.0.0.1:{server.port}/p?x=1"
            values = {"tag": ["a", "é"], "n": 7, "empty": None, "on": True, "off": False}
            r = await client.post(url, params=values, data=values)
            assert await r.json() == {
                "target": "/p?x=1&tag=a&tag=%C3%A9&n=7&empty=&on=true&off=false",
                "form": "tag=a&tag=%C3%A9&n=7&empty=&on=true&off=false"}
            r = await client.get(url, params=[("t", "a"), ("t", ("b", "c"))])
            assert (await r.json())["target"] == "/p?x=1&t=a&t=b&t=c"

    yieldio.run(main)


def test_a_streamed_upload_with_a_content_length_is_not_chunked() -> None:
    # httpx sends a streamed body of a length the caller states with that
    # Content-Length (a presigned S3 PUT refuses chunked uploads); a body
    # that does not match the length it was given is the caller's error.
    async def app(request: Request) -> Response:
        return Response.json({"te": request.headers.get("transfer-encoding"),
                              "cl": request.headers.get("content-length"),
                              "n": len(await request.body())})

    async def gen(*parts: bytes):
        for part in parts:
            yield part

    async def main() -> None:
        async with serve(app, "127.0.0.1", 0) as server, Client(timeout=5) as client:
            url = f"http://127.0.0.1:{server.port}/"
            r = await client.put(url, content=gen(b"abc", b"defg"),
                                 headers={"Content-Length": "7"})
            assert await r.json() == {"te": None, "cl": "7", "n": 7}
            r = await client.put(url, content=[b"ab", b"c"], headers={"content-length": "3"})
            assert await r.json() == {"te": None, "cl": "3", "n": 3}
            for parts in [(b"abc", b"defgh"), (b"abc",)]:
                with pytest.raises(ValueError, match="Content-Length"):
                    await client.put(url, content=gen(*parts), headers={"Content-Length": "7"})
            with pytest.raises(ValueError, match="Content-Length"):
                await client.put(url, content=gen(b"x"), headers={"Content-Length": "lots"})
            # Without one it is chunked, as before; a bytes body's is computed.
            r = await client.put(url, content=gen(b"abc"))
            assert await r.json() == {"te": "chunked", "cl": None, "n": 3}
            r = await client.put(url, content=b"abcd", headers={"Content-Length": "4"})
            assert await r.json() == {"te": None, "cl": "4", "n": 4}

    yieldio.run(main)
