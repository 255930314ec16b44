"""serve(..., error_handler=fn): custom error responses for HTTPException (the Router's
404 and 405 too) and for application failures, over real loopback sockets."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import pytest

import yieldio
from yieldio.http import Client, HTTPException, Request, Response, Router, serve

pytestmark = pytest.mark.timeout(10)


def _router() -> Router:
    router = Router()

    @router.get("/items/{item_id}")
    async def item(request: Request) -> Response:
        item_id = request.path_params["item_id"]
        if item_id == "99":
            raise HTTPException(404, f"item {item_id} not found")
        if not item_id.isdigit():
            raise HTTPException(422, "item_id must be a number", headers={"x-field": "item_id"})
        return Response.json({"id": int(item_id)})

    @router.get("/bug")
    async def bug(request: Request) -> Response:
        raise ValueError("the database password is hunter2")

    @router.post("/upload")
    async def upload(request: Request) -> Response:
        return Response.text(f"{len(await request.body())} bytes")

    return router


async def json_errors(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return Response.json({"error": exc.detail, "status": exc.status}, exc.status)
    return Response.json({"error": "internal error", "kind": type(exc).__name__}, 500)


def _run(check: Any, error_handler: Any = json_errors, **kwargs: Any) -> Any:
    """Serve _router() with ``error_handler`` and run ``await check(client, base, server)``."""
    async def main() -> Any:
        async with serve(_router(), "127.0.0.1", 0, error_handler=error_handler,
                         **kwargs) as server, Client() as client:
            with yieldio.fail_after(5):
                return await check(client, f"http://127.0.0.1:{server.port}", server)

    return yieldio.run(main)


def test_a_router_404_and_a_handlers_404_come_back_as_json() -> None:
    async def check(client: Client, base: str, server: Any) -> None:
        r = await client.get(base + "/nowhere")
        assert r.status == 404 and r.headers["content-type"] == "application/json"
        assert await r.json() == {"error": "Not Found", "status": 404}
        r = await client.get(base + "/items/99")
        assert await r.json() == {"error": "item 99 not found", "status": 404}
        assert (await client.get(base + "/items/7")).status == 200
        assert server.app_errors == 0

    _run(check)


def test_a_405_keeps_its_allow_header_unless_the_handler_sets_its_own() -> None:
    async def check(client: Client, base: str, server: Any) -> None:
        r = await client.delete(base + "/items/7")
        assert (r.status, r.headers["allow"]) == (405, "GET, HEAD")
        assert await r.json() == {"error": "Method Not Allowed", "status": 405}

    _run(check)

    async def own_allow(request: Request, exc: Exception) -> Response:
        return Response.text("no", 405, headers={"Allow": "GET"})

    async def check_own(client: Client, base: str, server: Any) -> None:
        r = await client.delete(base + "/items/7")
        assert r.headers.get_all("allow") == ["GET"]

    _run(check_own, own_allow)


def test_an_http_exception_from_a_handler_keeps_its_status_detail_and_headers() -> None:
    seen: list[Exception] = []

    async def handler(request: Request, exc: Exception) -> Response:
        seen.append(exc)
        return await json_errors(request, exc)

    async def check(client: Client, base: str, server: Any) -> None:
        r = await client.get(base + "/items/abc")
        assert (r.status, r.headers["x-field"]) == (422, "item_id")
        assert await r.json() == {"error": "item_id must be a number", "status": 422}

    _run(check, handler)
    [exc] = seen
    assert isinstance(exc, HTTPException) and str(exc) == "422 item_id must be a number"


def test_an_unhandled_error_gets_the_custom_500_and_is_still_logged(
        http_errors: pytest.LogCaptureFixture) -> None:
    async def check(client: Client, base: str, server: Any) -> int:
        r = await client.get(base + "/bug")
        assert r.status == 500
        assert await r.json() == {"error": "internal error", "kind": "ValueError"}
        assert b"hunter2" not in r.content
        return server.app_errors  # type: ignore[no-any-return]

    assert _run(check) == 1
    [record] = [r for r in http_errors.records if r.levelno >= logging.ERROR]
    assert "HTTP application failed on GET /bug" in record.getMessage()
    assert isinstance(record.exc_info[1], ValueError)  # type: ignore[index]


def test_an_error_handler_that_fails_falls_back_to_the_default_response_and_is_logged(
        http_errors: pytest.LogCaptureFixture) -> None:
    async def broken(request: Request, exc: Exception) -> Response:
        raise RuntimeError("the error handler has a bug")

    async def check(client: Client, base: str, server: Any) -> int:
        r = await client.get(base + "/bug")
        assert (r.status, r.content) == (500, b"Internal Server Error\n")
        r = await client.delete(base + "/items/7")    # the default keeps Allow too
        assert (r.status, r.headers["allow"], r.content) == (405, "GET, HEAD",
                                                             b"Method Not Allowed\n")
        # The connection and the server are fine.
        assert (await client.get(base + "/items/7")).status == 200
        return server.app_errors  # type: ignore[no-any-return]

    assert _run(check, broken) == 3           # the application's bug, the handler's twice
    failures = [r for r in http_errors.records if "error handler failed" in r.getMessage()]
    assert len(failures) == 2
    assert all(isinstance(r.exc_info[1], RuntimeError) for r in failures)  # type: ignore[index]
    assert "ValueError" in failures[0].getMessage()          # names what it was handling


def test_an_error_handler_returning_something_else_falls_back_too(
        http_errors: pytest.LogCaptureFixture) -> None:
    async def forgetful(request: Request, exc: Exception) -> Any:
        return {"error": "a dict is not a Response"}

    async def check(client: Client, base: str, server: Any) -> None:
        r = await client.get(base + "/items/99")
        assert (r.status, r.content) == (404, b"item 99 not found\n")

    _run(check, forgetful)
    assert any("not a Response" in str(r.exc_info[1]) for r in http_errors.records
               if r.exc_info)


def test_a_plain_function_is_an_error_handler_too() -> None:
    def sync_handler(request: Request, exc: Exception) -> Response:
        return Response.text(f"oops: {request.path}", getattr(exc, "status", 500))

    async def check(client: Client, base: str, server: Any) -> None:
        r = await client.get(base + "/missing")
        assert (r.status, r.content) == (404, b"oops: /missing")

    _run(check, sync_handler)


def test_a_head_request_gets_the_error_response_without_its_body(exchange: Any) -> None:
    async def check(client: Client, base: str, server: Any) -> bytes:
        r = await client.head(base + "/items/99")
        assert r.status == 404 and r.content == b""
        body = b'{"error":"item 99 not found","status":404}'
        assert r.headers["content-length"] == str(len(body))
        raw: bytes = await exchange(server.port, b"HEAD /nowhere HTTP/1.1\r\nHost: x\r\n"
                                                 b"Connection: close\r\n\r\n")
        return raw

    raw = _run(check)
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404 ") and b"content-type: application/json" in head
    assert rest == b""


def test_a_body_over_the_limit_by_its_content_length_goes_through_the_handler() -> None:
    # The 413 the server sends before the application runs is in the same
    # format as the one request.body() raises for a chunked body.
    from yieldio.http import Limits

    too_large = {"error": HTTPStatus(413).phrase, "status": 413}  # the phrase differs by Python

    async def check(client: Client, base: str, server: Any) -> None:
        r = await client.post(base + "/upload", content=b"x" * 101)
        assert r.status == 413
        assert await r.json() == too_large

        async def chunked() -> Any:
            yield b"x" * 101
        r = await client.post(base + "/upload", content=chunked())
        assert r.status == 413
        assert await r.json() == too_large

    _run(check, limits=Limits(max_body_size=100))


def test_without_a_handler_the_defaults_are_unchanged() -> None:
    async def check(client: Client, base: str, server: Any) -> None:
        r = await client.get(base + "/items/99")
        assert (r.status, r.content) == (404, b"item 99 not found\n")
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        r = await client.get(base + "/items/abc")
        assert (r.status, r.headers["x-field"]) == (422, "item_id")

    _run(check, None)


def test_error_handler_must_be_callable() -> None:
    with pytest.raises(TypeError, match="error_handler"):
        serve(_router(), "127.0.0.1", 0, error_handler="json")  # type: ignore[call-overload]
