"""yieldio.aio with real asyncio libraries, as a codebase migrating to yieldio uses them.

aiohttp, httpx and uvicorn, against servers on 127.0.0.1 started by the test
itself: one client session shared by many yieldio tasks, cancellation and
timeouts mid-request, async iterators left early, context variables, asyncio
servers whose handlers call yieldio, the end of a run with asyncio work in
flight, and the exceptions that come back. Every test also checks that
nothing was reported on the way: no "Task was destroyed but it is pending",
no "Unclosed client session" (the ``asyncio`` logger), no ResourceWarning,
and no asyncio loop thread left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import logging
import socket
import threading
import time
import traceback
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import yieldio
from yieldio.aio import AsyncioCancelled, run_asyncio, run_yieldio

pytestmark = pytest.mark.timeout(20)

var = contextvars.ContextVar("var", default="unset")


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "yieldio-asyncio" and t.is_alive()]


@contextlib.contextmanager
def reported() -> Iterator[list[str]]:
    """Collect what asyncio and yieldio log (WARNING and up), ResourceWarnings and RuntimeWarnings.

    asyncio reports a pending task destroyed, an unclosed aiohttp session or
    an exception nobody retrieved through its logger; a socket or transport
    left open is a ResourceWarning when collected; a coroutine never awaited
    is a RuntimeWarning.
    """
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(f"{record.name}: {record.getMessage()}")

    handler = Collect(logging.WARNING)
    loggers = [logging.getLogger("asyncio"), logging.getLogger("yieldio")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            warnings.simplefilter("always", RuntimeWarning)
            yield messages
            gc.collect()
        messages.extend(f"{w.category.__name__}: {w.message}" for w in caught
                        if issubclass(w.category, (ResourceWarning, RuntimeWarning)))
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connecting is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- an aiohttp server, on the run's asyncio loop ---------------------------------------------


class Server:
    """What the aiohttp test server saw: requests to /slow started, and ended how."""

    def __init__(self) -> None:
        self.slow_started = 0
        self.slow_ended: list[str] = []


def _app(seen: Server) -> Any:
    from aiohttp import web

    async def hello(request: Any) -> Any:
        return web.json_response({"hello": request.match_info["name"]})

    async def slow(request: Any) -> Any:
        seen.slow_started += 1
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:        # the client went away
            seen.slow_ended.append("cancelled")
            raise
        return web.json_response({})

    async def stream(request: Any) -> Any:    # 1 MiB in 1 KiB chunks
        response = web.StreamResponse()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):   # the client left early
            for _ in range(1024):
                await response.write(b"x" * 1024)
        return response

    app = web.Application()
    app.router.add_get("/hello/{name}", hello)
    app.router.add_get("/slow", slow)
    app.router.add_get("/stream", stream)
    return app


@contextlib.asynccontextmanager
async def aiohttp_server() -> AsyncIterator[tuple[str, Server]]:
    """In a yieldio task: an aiohttp web server on the run's asyncio loop."""
    from aiohttp import web

    seen = Server()

    async def start() -> tuple[Any, int]:
        runner = web.AppRunner(_app(seen), handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner, runner.addresses[0][1]

    runner, port = await run_asyncio(start)
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await run_asyncio(runner.cleanup)


async def wait_until(predicate: Any) -> None:
    """Poll (from yieldio) for something the asyncio side does; at most 5 s."""
    with yieldio.fail_after(5):
        while not predicate():
            await yieldio.sleep(0.005)


# -- the two clients, behind one interface ----------------------------------------------------


class AiohttpClient:
    def __init__(self, limit: int = 100) -> None:
        self.aiohttp = pytest.importorskip("aiohttp")
        self.limit = limit
        self.session: Any = None

    async def open(self) -> None:
        async def new_session() -> Any:
            connector = self.aiohttp.TCPConnector(limit=self.limit)
            return self.aiohttp.ClientSession(connector=connector)

        self.session = await run_asyncio(new_session)

    async def get_json(self, url: str) -> Any:           # asyncio code
        async with self.session.get(url) as response:
            response.raise_for_status()
            return await response.json()

    async def close(self) -> None:
        await run_asyncio(self.session.close)


class HttpxClient:
    def __init__(self, limit: int = 100) -> None:
        self.httpx = pytest.importorskip("httpx")
        self.limit = limit
        self.client: Any = None

    async def open(self) -> None:
        async def new_client() -> Any:
            limits = self.httpx.Limits(max_connections=self.limit)
            return self.httpx.AsyncClient(limits=limits, timeout=5)

        self.client = await run_asyncio(new_client)

    async def get_json(self, url: str) -> Any:           # asyncio code
        response = await self.client.get(url)
        response.raise_for_status()
        return response.json()

    async def close(self) -> None:
        await run_asyncio(self.client.aclose)


CLIENTS = [pytest.param(AiohttpClient, id="aiohttp"), pytest.param(HttpxClient, id="httpx")]


# -- 1. one client session, many yieldio tasks; cancellation; timeouts -------------------------


@pytest.mark.parametrize("client_type", CLIENTS)
def test_many_yieldio_tasks_share_one_client_session(client_type):
    client = client_type(limit=10)

    async def main():
        async with aiohttp_server() as (base, _):
            await client.open()
            try:
                async with yieldio.TaskGroup() as tg:
                    tasks = [tg.spawn(run_asyncio, client.get_json, f"{base}/hello/{i}")
                             for i in range(60)]
                assert [t.result() for t in tasks] == [{"hello": str(i)} for i in range(60)]
            finally:
                await client.close()

    with reported() as messages:
        yieldio.run(main)
    assert messages == []
    assert loop_threads() == []


@pytest.mark.parametrize("client_type,limit", [
    pytest.param(AiohttpClient, 4, id="aiohttp, 4 connections"),
    # (httpx with requests queued on a full pool: the next test.)
    pytest.param(HttpxClient, 12, id="httpx, 12 connections"),
])
def test_yieldio_tasks_cancelled_mid_request_leave_the_session_usable(client_type, limit):
    # 12 requests in flight (with 4 connections, 8 of them still wait for
    # one), all cancelled by a yieldio cancel scope: the asyncio side of each
    # is cancelled (the server sees its clients leave), and no connection
    # stays taken -- 12 more requests then go through the same pool.
    # (The 12 cancellations reach asyncio together, in one loop step, but a
    # waiting request may still get a connection freed by another one's
    # cancellation, and reach the server, before its own takes effect.)
    client = client_type(limit=limit)

    async def main():
        async with aiohttp_server() as (base, seen):
            await client.open()
            try:
                with yieldio.CancelScope() as scope:
                    async with yieldio.TaskGroup() as tg:
                        for _ in range(12):
                            tg.spawn(run_asyncio, client.get_json, f"{base}/slow")
                        await wait_until(lambda: seen.slow_started == limit)
                        scope.cancel()
                assert scope.cancelled_caught
                await wait_until(lambda: len(seen.slow_ended) >= limit)
                async with yieldio.TaskGroup() as tg:
                    tasks = [tg.spawn(run_asyncio, client.get_json, f"{base}/hello/{i}")
                             for i in range(12)]
                assert [t.result() for t in tasks] == [{"hello": str(i)} for i in range(12)]
            finally:
                await client.close()
        assert seen.slow_started >= limit
        assert seen.slow_ended == ["cancelled"] * seen.slow_started

    with reported() as messages:
        yieldio.run(main)
    assert messages == []
    assert loop_threads() == []


def test_httpx_requests_queued_on_a_full_pool_and_cancelled_together_leak_no_pool_slot():
    # httpcore issue #1093 (open, plain asyncio too): requests queued for a
    # connection of a full pool, cancelled one asyncio loop step apart, can
    # keep a pool slot for good; once the slots are gone, every request
    # fails with PoolTimeout. asyncio's TaskGroup cancels its tasks in one
    # loop step, which does not trigger it, and so does the bridge: all the
    # calls one yieldio cancellation reaches are cancelled in one loop step.
    # A smoke test: the leak depends on timing, and this test did not catch
    # it even when the bridge sent one message per call (a script with a
    # busy asyncio loop did, about one run in five). The deterministic check
    # is test_aio_edges' one-loop-step test.
    httpx = pytest.importorskip("httpx")
    client = HttpxClient(limit=2)

    async def new_client() -> Any:
        return httpx.AsyncClient(limits=httpx.Limits(max_connections=2),
                                 timeout=httpx.Timeout(5, pool=1))

    async def main():
        async with aiohttp_server() as (base, seen):
            client.client = await run_asyncio(new_client)
            try:
                for round_ in range(8):
                    wanted = seen.slow_started + 2   # this round's 2 on the server
                    with yieldio.CancelScope() as scope:   # all 10, at once
                        async with yieldio.TaskGroup() as tg:
                            for _ in range(10):           # 2 get a connection, 8 queue
                                tg.spawn(run_asyncio, client.get_json, f"{base}/slow")
                            await wait_until(lambda w=wanted: seen.slow_started >= w)
                            scope.cancel()
                    assert scope.cancelled_caught
                    # The pool still serves requests: one at a time, then as
                    # many as it has connections, at once.
                    assert await run_asyncio(client.get_json, f"{base}/hello/{round_}") == {
                        "hello": str(round_)}
                    async with yieldio.TaskGroup() as tg:
                        for i in range(2):
                            tg.spawn(run_asyncio, client.get_json, f"{base}/hello/{i}")
                await wait_until(lambda: len(seen.slow_ended) == seen.slow_started)
            finally:
                await client.close()
        assert seen.slow_ended == ["cancelled"] * seen.slow_started

    with reported() as messages:
        yieldio.run(main)
    assert messages == []
    assert loop_threads() == []


@pytest.mark.parametrize("client_type", CLIENTS)
def test_fail_after_around_a_bridged_request(client_type):
    client = client_type()

    async def main():
        async with aiohttp_server() as (base, seen):
            await client.open()
            try:
                started = time.monotonic()
                with pytest.raises(TimeoutError):
                    with yieldio.fail_after(0.1):
                        await run_asyncio(client.get_json, f"{base}/slow")
                assert time.monotonic() - started < 2
                await wait_until(lambda: seen.slow_ended == ["cancelled"])
                with yieldio.fail_after(5):             # a deadline that does not fire
                    assert await run_asyncio(client.get_json, f"{base}/hello/x") == {"hello": "x"}
            finally:
                await client.close()

    with reported() as messages:
        yieldio.run(main)
    assert messages == []


# -- 2. asyncio async iterators left early -----------------------------------------------------


def test_aiohttp_iter_chunked_stepped_from_yieldio_and_left_early():
    # A response obtained through the bridge, its chunks read one call at a
    # time. iter_chunked() is an async iterator, not a generator: nothing to
    # close; the response is, on the asyncio loop (resp.release() is asyncio
    # code too: call it through the bridge).
    client = AiohttpClient()

    async def main():
        async with aiohttp_server() as (base, _):
            await client.open()
            try:
                response = await run_asyncio(client.session.get, f"{base}/stream")
                chunks = response.content.iter_chunked(1024)
                for _ in range(3):
                    assert await run_asyncio(anext(chunks)) == b"x" * 1024
                await run_asyncio(response.release)     # left early
                assert response.closed
                assert await run_asyncio(client.get_json, f"{base}/hello/after") == {
                    "hello": "after"}
            finally:
                await client.close()

    with reported() as messages:
        yieldio.run(main)
    assert messages == []


@pytest.mark.parametrize("close", ["aclose", "dropped", "run ends"])
def test_an_asyncio_async_generator_left_early_is_closed_on_the_asyncio_side(close):
    # The usual shape of asyncio code that streams: an async generator that
    # holds the response open in an `async with`. Stepped from yieldio and
    # left early, its `async with` exits on the asyncio loop -- whether it is
    # closed through the bridge, dropped, or still open when the run ends.
    client = AiohttpClient()
    exited: list[str] = []

    async def chunks(url):                               # asyncio code
        try:
            async with client.session.get(url) as response:
                async for chunk in response.content.iter_chunked(1024):
                    yield chunk
        finally:
            await asyncio.sleep(0)                       # cleanup that awaits asyncio
            exited.append(threading.current_thread().name)

    async def main():
        async with aiohttp_server() as (base, _):
            await client.open()
            try:
                it = chunks(f"{base}/stream")
                for _ in range(3):
                    assert await run_asyncio(anext(it)) == b"x" * 1024
                if close == "aclose":
                    await run_asyncio(it.aclose())
                    assert exited == ["yieldio-asyncio"]
                elif close == "dropped":
                    del it
                    gc.collect()
                assert await run_asyncio(client.get_json, f"{base}/hello/after") == {
                    "hello": "after"}
            finally:
                await client.close()

    with reported() as messages:
        yieldio.run(main)
    assert messages == []
    assert exited == ["yieldio-asyncio"]
    assert loop_threads() == []


# -- 3. context variables ---------------------------------------------------------------------


def test_context_variables_are_copied_into_each_call_as_asyncio_to_thread_does():
    async def read():                                    # asyncio code
        return var.get()

    async def write():                                   # asyncio code
        var.set("set by asyncio")
        return var.get()

    async def main():                                    # yieldio code
        var.set("set by yieldio")
        assert await run_asyncio(read) == "set by yieldio"
        assert await run_asyncio(write) == "set by asyncio"
        assert var.get() == "set by yieldio"             # not shared back...
        assert await run_asyncio(read) == "set by yieldio"   # ...nor kept for the next call
        assert await yieldio.to_thread(var.get) == "set by yieldio"  # (yieldio.to_thread too)

    yieldio.run(main)

    async def asyncio_main():                            # the same, in plain asyncio
        var.set("set by the task")
        assert await asyncio.to_thread(var.get) == "set by the task"
        assert await asyncio.to_thread(var.set, "set by the thread") is not None
        assert var.get() == "set by the task"

    asyncio.run(asyncio_main())


def test_each_step_of_an_async_generator_gets_a_fresh_copy_of_the_context():
    # A difference from plain asyncio, where the steps of an async generator
    # all run in the context of the one task that iterates it: here each
    # step is a call of its own, so a variable the generator sets in one
    # step is gone in the next. (Iterate inside one asyncio coroutine to keep it.)
    async def steps():                                   # asyncio code
        var.set("set in the first step")
        yield var.get()
        yield var.get()

    async def main():
        it = steps()
        assert await run_asyncio(anext(it)) == "set in the first step"
        assert await run_asyncio(anext(it)) == "unset"

        async def iterate_in_asyncio():
            return [v async for v in steps()]

        assert await run_asyncio(iterate_in_asyncio) == ["set in the first step"] * 2

    contextvars.Context().run(yieldio.run, main)


# -- 4. run_yieldio inside an asyncio server --------------------------------------------------


class Job:
    """yieldio code called by asyncio request handlers; counts the runs at once.

    A job for ``0 <= n < 100`` meets the other nine at a barrier: ten such
    requests succeed only if the ten runs are under way at the same time.
    """

    def __init__(self) -> None:
        self.barrier = threading.Barrier(10)
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.cancelled = 0

    async def __call__(self, n: int) -> int:             # yieldio code
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            if n < 0:
                await yieldio.sleep(0.01)
                raise ValueError(f"bad n: {n}")
            if n < 100:
                await yieldio.to_thread(self.barrier.wait, 5)
            else:
                await yieldio.sleep(30)
            return n * 2
        except yieldio.Cancelled:
            with self.lock:
                self.cancelled += 1
            raise
        finally:
            with self.lock:
                self.running -= 1


def test_aiohttp_handlers_call_yieldio_concurrently():
    aiohttp = pytest.importorskip("aiohttp")
    from aiohttp import web

    job = Job()

    async def handler(request):                          # asyncio code
        try:
            result = await run_yieldio(job, int(request.query["n"]))
        except ValueError as exc:                        # yieldio's error, its traceback
            frames = [f.f_code.co_name for f, _ in traceback.walk_tb(exc.__traceback__)]
            return web.json_response({"error": str(exc), "frames": frames}, status=400)
        return web.json_response({"result": result})

    async def main():                                    # a plain asyncio program
        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        try:
            async with aiohttp.ClientSession() as session:
                async def get(n):
                    async with session.get(url, params={"n": n}) as r:
                        return r.status, await r.json()

                results = await asyncio.gather(*(get(n) for n in range(10)))
                assert results == [(200, {"result": n * 2}) for n in range(10)]
                assert job.most == 10                    # side by side (the barrier)

                status, body = await get(-1)
                assert (status, body["error"]) == (400, "bad n: -1")
                assert body["frames"][0] == "handler" and body["frames"][-1] == "__call__"

                # Five clients give up: aiohttp cancels their handlers, and
                # each handler's cancellation cancels its yieldio run.
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.gather(*(get(100 + n) for n in range(5))), 0.3)
                for _ in range(200):
                    if job.cancelled == 5 and job.running == 0:
                        break
                    await asyncio.sleep(0.01)
                assert (job.cancelled, job.running) == (5, 0)
        finally:
            await runner.cleanup()

    with reported() as messages:
        asyncio.run(main())
    assert messages == []


def test_a_uvicorn_asgi_app_calls_yieldio_concurrently():
    uvicorn = pytest.importorskip("uvicorn")
    httpx = pytest.importorskip("httpx")
    job = Job()

    async def app(scope, receive, send):                 # an ASGI app (asyncio code)
        assert scope["type"] == "http"
        n = int(scope["query_string"].decode().partition("=")[2])
        body = str(await run_yieldio(job, n)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def main():                                    # uvicorn, in-process
        config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off",
                                log_level="warning")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            async with httpx.AsyncClient() as client:
                responses = await asyncio.gather(
                    *(client.get(f"http://127.0.0.1:{port}/?n={n}") for n in range(10)))
            assert [r.text for r in responses] == [str(n * 2) for n in range(10)]
            assert job.most == 10                        # side by side (the barrier)
        finally:
            # (Not serving.cancel(): a cancelled serve() leaves its listening
            # socket open -- uvicorn's behaviour under plain asyncio too.)
            server.should_exit = True
            await serving

    with reported() as messages:
        asyncio.run(main())
    assert messages == []


# -- 5. the end of a run with asyncio work in flight ------------------------------------------


def test_a_run_ending_with_bridged_requests_in_flight_cancels_them_and_stops_its_loop():
    client = AiohttpClient()
    background_ended: list[str] = []

    async def request_and_leave_a_task_behind(url):      # asyncio code
        async def background():                          # fire-and-forget
            try:
                await asyncio.sleep(30)
            finally:
                background_ended.append("cancelled")

        asyncio.get_running_loop().create_task(background())
        return await client.get_json(url)

    async def fail_soon():
        await yieldio.sleep(0.1)
        raise ValueError("the run ends")

    async def main():
        async with aiohttp_server() as (base, seen):
            await client.open()
            try:
                async with yieldio.TaskGroup() as tg:
                    for _ in range(5):
                        tg.spawn(run_asyncio, request_and_leave_a_task_behind, f"{base}/slow")
                    tg.spawn(fail_soon)
            finally:
                assert seen.slow_started == 5
                await client.close()

    started = time.monotonic()
    with reported() as messages:
        with pytest.raises(ExceptionGroup) as info:
            yieldio.run(main)
    assert time.monotonic() - started < 5
    assert info.group_contains(ValueError, match="the run ends")
    assert messages == []
    assert background_ended == ["cancelled"] * 5        # by the run's end, as asyncio.run does
    assert loop_threads() == []


# -- 6. exceptions ----------------------------------------------------------------------------


def test_library_exceptions_come_back_with_their_type_and_traceback():
    client = AiohttpClient()
    aiohttp = client.aiohttp

    async def with_timeout():                            # asyncio code
        await asyncio.wait_for(asyncio.sleep(10), 0.01)

    async def main():
        await client.open()
        try:
            with pytest.raises(aiohttp.ClientConnectorError) as info:
                await run_asyncio(client.get_json, f"http://127.0.0.1:{closed_port()}/")
            assert isinstance(info.value, aiohttp.ClientError)
            files = [f.f_code.co_filename for f, _ in traceback.walk_tb(info.value.__traceback__)]
            assert any("aiohttp" in f for f in files)    # aiohttp's frames are in it

            with pytest.raises(TimeoutError) as timeout:  # asyncio.TimeoutError is TimeoutError
                await run_asyncio(with_timeout)
            names = [f.f_code.co_name for f, _ in traceback.walk_tb(timeout.value.__traceback__)]
            assert "with_timeout" in names and "wait_for" in names
        finally:
            await client.close()

    with reported() as messages:
        yieldio.run(main)
    assert messages == []


def test_a_cancelled_error_raised_by_the_library_itself_is_asyncio_cancelled():
    # Not a cancellation yieldio asked for: AsyncioCancelled (a RuntimeError)
    # with the library's CancelledError as its cause -- never a raw
    # asyncio.CancelledError in yieldio code, and not yieldio.Cancelled.
    async def library_call():                            # asyncio code
        raise asyncio.CancelledError("the library gave up")

    async def main():
        with yieldio.CancelScope() as scope:
            with pytest.raises(AsyncioCancelled) as info:
                await run_asyncio(library_call)
        assert not scope.cancelled_caught
        assert isinstance(info.value.__cause__, asyncio.CancelledError)
        assert str(info.value.__cause__) == "the library gave up"

    yieldio.run(main)


def test_a_refused_aiohttp_request_is_closed_not_left_never_awaited():
    # session.get(url) returns aiohttp's request context manager, an
    # awaitable wrapping a coroutine. A call refused at once (the caller
    # already cancelled; arguments given with an awaitable) closed only
    # coroutines: "coroutine 'ClientSession._request' was never awaited".
    client = AiohttpClient()

    async def main():
        await client.open()
        try:
            url = f"http://127.0.0.1:{closed_port()}/"
            with yieldio.CancelScope() as scope:
                scope.cancel()
                await run_asyncio(client.session.get(url))
            assert scope.cancelled_caught
            with pytest.raises(TypeError, match="arguments given"):
                await run_asyncio(client.session.get(url), 1)
        finally:
            await client.close()

    with reported() as messages:
        yieldio.run(main)
    assert messages == []


def test_a_plain_function_given_to_run_asyncio_says_it_ran_and_how_to_call_one():
    # Sync asyncio APIs (writer.close(), response.close()) must run on the
    # loop's thread as well, but run_asyncio wants something to await.
    ran: list[str] = []

    def close_something():
        ran.append(threading.current_thread().name)

    async def main():
        with pytest.raises(TypeError, match="did run.*wrap it in an 'async def'"):
            await run_asyncio(close_something)

    yieldio.run(main)
    assert ran == ["yieldio-asyncio"]
