"""Pieces without a network: Headers, QueryParams, Response, Router, Request, errors."""

from __future__ import annotations

import io

import pytest

import yieldio
from yieldio.http import (
    Headers,
    HTTPException,
    QueryParams,
    Request,
    Response,
    Router,
    WebSocketClosed,
)
from yieldio.http._wsgi import build_environ


def make_request(method: str = "GET", target: str = "/", headers=(), **kw) -> Request:
    raw = [(n.lower().encode(), v.encode()) for n, v in headers]
    return Request(method, target, raw, "1.1", ("127.0.0.1", 5555), kw.get("scheme", "http"),
                   None)


# -- Headers and QueryParams ------------------------------------------------------------------
def test_headers_are_case_insensitive_and_multi_valued() -> None:
    h = Headers({"Content-Type": "text/plain"})
    h.add("Set-Cookie", "a=1")
    h.add("set-cookie", "b=2")
    assert h["CONTENT-TYPE"] == "text/plain" and "content-type" in h
    assert h["Set-Cookie"] == "a=1" and h.get_all("SET-COOKIE") == ["a=1", "b=2"]
    assert h.keys() == ["content-type", "set-cookie"] and len(h) == 3
    h["set-cookie"] = "c=3"
    assert h.get_all("set-cookie") == ["c=3"]
    del h["Set-Cookie"]
    assert "set-cookie" not in h and h.get("set-cookie", "none") == "none"
    with pytest.raises(KeyError):
        h["missing"]  # noqa: B018
    with pytest.raises(KeyError):
        del h["missing"]
    assert h.pop("content-type") == "text/plain" and not h
    assert h.pop("x", None) is None
    assert Headers([("A", "1")]) == {"a": "1"} and Headers([("A", "1")]) == Headers({"a": "1"})
    assert Headers.from_raw([(b"x-latin", "é".encode("latin-1"))])["x-latin"] == "é"
    assert Headers({"X": "é"}).raw() == [(b"x", "é".encode("latin-1"))]
    assert Headers({"a": 1}).setdefault("a", "2") == "1"
    assert Headers([("a", "1"), ("b", "2")]).to_dict() == {"a": "1", "b": "2"}


def test_headers_from_a_dict() -> None:
    # The one-pass path for a dict, and the names that collide once lower-cased
    # ("A" then "a"): the later value replaces the earlier, in the first place.
    assert Headers({"A": "1", "B": 2, b"C": b"3"}).items() == [("a", "1"), ("b", "2"), ("c", "3")]
    assert Headers({"A": "1", "b": "2", "a": "3"}).items() == [("a", "3"), ("b", "2")]
    h = Headers([("x", "0")])
    h.update({"X": "1", "y": "2"})
    assert h.items() == [("x", "1"), ("y", "2")]
    assert Headers({}).items() == [] and not Headers(None)


def test_query_params() -> None:
    q = QueryParams("tag=a&tag=b&empty=&sp=x+y&pct=%C3%A9&bad=%FF")
    assert q["tag"] == "a" and q.get_all("tag") == ["a", "b"]
    assert q["empty"] == "" and q["sp"] == "x y" and q["pct"] == "é" and q["bad"] == "\ufffd"
    assert "Tag" not in q  # case-sensitive
    assert str(QueryParams([("a", "1 2"), ("a", "&")])) == "a=1+2&a=%26"
    assert QueryParams(b"x=1")["x"] == "1" and not QueryParams("")


# -- Response ---------------------------------------------------------------------------------------
def test_response_constructors() -> None:
    r = Response.json({"é": [1, None]}, status=201)
    assert (r.status, r.body, r.headers["content-type"]) == (201, '{"é":[1,null]}'.encode(),
                                                              "application/json")
    r = Response.text("hi")
    assert r.headers["content-type"] == "text/plain; charset=utf-8" and r.body == b"hi"
    assert Response.html("<b>").headers["content-type"].startswith("text/html")
    r = Response(body="str body")
    assert r.body == b"str body" and r.headers["content-type"].startswith("text/plain")
    r = Response.redirect("/x", status=303)
    assert (r.status, r.headers["location"]) == (303, "/x")
    assert Response(204).body == b"" and not Response(204).streamed
    assert Response(body=iter([b"a"])).streamed
    with pytest.raises(ValueError):
        Response.redirect("/x", status=200)
    with pytest.raises(ValueError):
        Response(42)
    with pytest.raises(TypeError):
        Response("200")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Response(body=12)  # type: ignore[arg-type]
    assert "streamed" in repr(Response(body=iter([])))


def test_errors() -> None:
    e = HTTPException(404)
    assert (e.status, e.detail, str(e)) == (404, "Not Found", "404 Not Found")
    assert HTTPException(799).detail == ""
    closed = WebSocketClosed(1001, "going away")
    assert (closed.code, closed.reason) == (1001, "going away") and "1001" in str(closed)


# -- Request -----------------------------------------------------------------------------------------
def test_request_parsing() -> None:
    r = make_request("GET", "/a%2Fb/c%20d?x=1&x=2", [("Host", "example.org:8080"),
                                                     ("Upgrade", "WebSocket")])
    assert r.path == "/a/b/c d" and r.raw_path == "/a%2Fb/c%20d"
    assert r.query_string == "x=1&x=2" and r.query.get_all("x") == ["1", "2"]
    assert r.url == "http://example.org:8080/a%2Fb/c%20d?x=1&x=2"
    assert r.is_websocket and not make_request("POST", "/", [("upgrade", "websocket")]).is_websocket
    absolute = make_request("GET", "http://proxy.example/p?q=1")
    assert absolute.path == "/p" and absolute.url == "http://proxy.example/p?q=1"
    assert make_request("OPTIONS", "*").path == "*"
    assert "GET /" in repr(make_request())

    async def main() -> None:
        assert await r.body() == b"" and [c async for c in r.stream()] == []
        with pytest.raises(HTTPException) as info:
            await r.json()
        assert info.value.status == 400
        with pytest.raises(HTTPException):
            await make_request().accept_websocket()

    yieldio.run(main)


# -- Router --------------------------------------------------------------------------------------------
def test_router_dispatch() -> None:
    router = Router()

    @router.get("/")
    async def home(request: Request) -> Response:
        return Response.text("home")

    @router.route("/items/{item_id}", methods=["GET", "PUT"])
    async def item(request: Request) -> Response:
        return Response.text(f"{request.method} {request.path_params['item_id']}")

    @router.get("/files/{rest:path}")
    async def files(request: Request) -> Response:
        return Response.text(request.path_params["rest"])

    @router.delete("/items/{item_id}/tags/{tag}")
    async def tag(request: Request) -> Response:
        return Response.text(f"{request.path_params['item_id']}:{request.path_params['tag']}")

    async def sub(request: Request) -> Response:
        return Response.text(f"mounted {request.path} at {request.path_params['prefix']}")

    router.mount("/sub/", sub)

    async def call(method: str, target: str) -> tuple[int, bytes, str | None]:
        try:
            r = await router(make_request(method, target))
        except HTTPException as exc:
            return exc.status, b"", exc.headers.get("allow")
        return r.status, r.body, None

    async def main() -> None:
        assert await call("GET", "/") == (200, b"home", None)
        assert await call("HEAD", "/") == (200, b"home", None)
        assert await call("PUT", "/items/42") == (200, b"PUT 42", None)
        assert await call("GET", "/items/a%20b") == (200, b"GET a b", None)
        assert await call("GET", "/files/a/b/c.txt") == (200, b"a/b/c.txt", None)
        assert await call("DELETE", "/items/1/tags/red") == (200, b"1:red", None)
        assert await call("GET", "/sub/x/y") == (200, b"mounted /sub/x/y at /sub", None)
        assert await call("GET", "/items/") == (404, b"", None)
        assert await call("GET", "/items/1/2") == (404, b"", None)
        assert await call("POST", "/items/1") == (405, b"", "GET, HEAD, PUT")
        assert await call("GET", "/subway") == (404, b"", None)

    yieldio.run(main)


def test_router_rejects_bad_routes() -> None:
    router = Router()

    async def h(request: Request) -> Response:
        return Response()

    router.add("GET", "/x/{a}", h)
    with pytest.raises(ValueError):
        router.add("GET", "/x/{a}", h)
    with pytest.raises(ValueError):
        router.add("GET", "no-slash", h)
    with pytest.raises(ValueError):
        router.add("GET", "/{a}/{a}", h)
    with pytest.raises(ValueError):
        router.add("GET", "/{bad-name}", h)
    with pytest.raises(TypeError):
        router.add("GET", "/y", "not callable")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        router.mount("relative", h)


def test_router_mount_at_the_root_catches_everything_else() -> None:
    # A catch-all mount (a legacy WSGI app behind a few native routes) is
    # "/", as in starlette's Mount("/", app); its SCRIPT_NAME is "".
    router = Router()
    seen = []

    async def native(request: Request) -> Response:
        return Response.text("native")

    async def fallback(request: Request) -> Response:
        seen.append((request.path, request.path_params["prefix"]))
        env = build_environ(request, io.BytesIO())
        return Response.text(env["SCRIPT_NAME"] + "|" + env["PATH_INFO"])

    router.add("GET", "/native", native)
    router.mount("/", fallback)

    async def main() -> list[bytes]:
        out = []
        for path in ("/native", "/", "/a/b"):
            response = await router(make_request("GET", path))
            assert response is not None and isinstance(response.body, bytes)
            out.append(response.body)
        return out

    assert yieldio.run(main) == [b"native", b"|/", b"|/a/b"]
    assert seen == [("/", ""), ("/a/b", "")]


# -- WSGI environ ----------------------------------------------------------------------------------------
def test_wsgi_environ() -> None:
    r = make_request("POST", "/app/caf%C3%A9?q=1", [
        ("Host", "[::1]:8443"), ("Content-Type", "text/plain"), ("Content-Length", "3"),
        ("Cookie", "a=1"), ("cookie", "b=2"), ("X-Many", "1"), ("x-many", "2")], scheme="https")
    r.path_params = {"prefix": "/app"}
    body = io.BytesIO(b"abc")
    env = build_environ(r, body)
    assert env["SCRIPT_NAME"] == "/app"
    assert env["PATH_INFO"] == "/café".encode().decode("latin-1")  # PEP 3333: bytes as latin-1
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("::1", "8443")
    assert (env["CONTENT_TYPE"], env["CONTENT_LENGTH"]) == ("text/plain", "3")
    assert env["HTTP_COOKIE"] == "a=1; b=2" and env["HTTP_X_MANY"] == "1,2"
    assert env["wsgi.url_scheme"] == "https" and env["wsgi.input"] is body
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("127.0.0.1", "5555")
    assert env["QUERY_STRING"] == "q=1" and env["SERVER_PROTOCOL"] == "HTTP/1.1"
    plain = build_environ(make_request("GET", "/", [("Host", "example.org")]), io.BytesIO())
    assert (plain["SERVER_NAME"], plain["SERVER_PORT"]) == ("example.org", "80")


def test_a_redirect_location_is_percent_encoded() -> None:
    # Regression: "/café" went out as a raw Latin-1 byte, and a location
    # outside ISO-8859-1 ("/日本") failed as a 500 at send time.
    assert Response.redirect("/café/a b?q=é#top").headers["location"] == \
        "/caf%C3%A9/a%20b?q=%C3%A9#top"
    assert Response.redirect("/日本").headers["location"] == "/%E6%97%A5%E6%9C%AC"
    # Escapes and reserved characters already in the URL are kept as they are.
    url = "https://x.example:8443/a%2Fb?next=/c&k=v;w=1,2#f"
    assert Response.redirect(url).headers["location"] == url


def test_response_json_refuses_nan_and_infinity() -> None:
    # Regression: NaN was serialised as a bare NaN, which is not JSON (a
    # browser's JSON.parse rejects the whole body).
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError):
            Response.json({"x": bad})
    assert Response.json({"x": 1.5, "é": "☃"}).body == '{"x":1.5,"é":"☃"}'.encode()
