"""yieldio.aio: edge cases of the asyncio bridge found by a focused bug hunt."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import threading
import traceback
import warnings

import pytest

import yieldio
from yieldio.aio import run_asyncio, run_yieldio

pytestmark = pytest.mark.timeout(10)


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "yieldio-asyncio" and t.is_alive()]


def run_leaving_nothing_open(main) -> None:
    """``yieldio.run(main)``, then a collection: an unclosed resource is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        yieldio.run(main)
        gc.collect()


def run_logging_warnings(main) -> list[str]:
    """``yieldio.run(main)``; the warnings and errors yieldio logged meanwhile."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logging.getLogger("yieldio").addHandler(handler)
    try:
        yieldio.run(main)
    finally:
        logging.getLogger("yieldio").removeHandler(handler)
    return messages


async def double_later(n):
    await asyncio.sleep(0.001)
    return n * 2


def test_a_call_made_in_one_run_and_awaited_in_a_later_run_runs_in_the_later_run():
    # run_asyncio() kept the kernel of the run that *created* the awaitable:
    # awaited in a later run, it used the ended run's kernel and failed with
    # AttributeError ('NoneType' object has no attribute '_cancel_pending').
    # Like to_thread(), the call now belongs to the run that awaits it.
    saved = []

    async def first():
        saved.append(run_asyncio(double_later, 21))

    async def second():
        return await saved[0]

    yieldio.run(first)
    assert yieldio.run(second) == 42
    assert loop_threads() == []


def test_a_call_awaited_outside_any_run_gives_the_usual_error_and_closes_the_coroutine():
    saved = []

    async def first():
        saved.append(run_asyncio(double_later(1)))

    yieldio.run(first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine was never awaited"
        with pytest.raises(RuntimeError, match="yieldio.run"):
            saved[0].send(None)
        gc.collect()


def test_run_yieldio_closes_the_coroutine_when_its_thread_cannot_start(monkeypatch):
    # Thread.start() can fail (RuntimeError: can't start new thread). The
    # caller gets that error -- and the yieldio coroutine that will now never
    # run is closed, not left "never awaited" (run_asyncio does the same when
    # its loop thread cannot start).
    async def on_yieldio():
        await yieldio.sleep(0)

    def failing_start(self):
        raise RuntimeError("can't start new thread")

    async def main():
        monkeypatch.setattr(threading.Thread, "start", failing_start)
        try:
            with pytest.raises(RuntimeError, match="can't start new thread"):
                await run_yieldio(on_yieldio)
        finally:
            monkeypatch.undo()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    assert [str(w.message) for w in caught] == []


def _asyncio_numbers(closed: list):
    """An asyncio async generator function whose cleanup awaits asyncio and
    records ``(tag, thread name)`` in ``closed`` when it has run."""
    async def numbers(tag):                      # asyncio code
        try:
            for i in range(10):
                await asyncio.sleep(0)
                yield i
        finally:
            await asyncio.sleep(0)               # cleanup that awaits asyncio
            closed.append((tag, threading.current_thread().name))
    return numbers


def test_an_asyncio_async_generator_stepped_with_anext_is_closed_by_asyncio():
    # run_asyncio(anext(agen)) calls agen.__anext__() in the yieldio thread:
    # yieldio's async generator hooks claimed the generator, and at the end of
    # the run (or when it was garbage-collected) yieldio ran its cleanup as a
    # yieldio task, where the first asyncio await failed -- the cleanup never
    # ran and "error while closing the abandoned async generator" was logged.
    # The bridge now hands such a generator to the asyncio loop, which closes it.
    closed: list = []
    numbers = _asyncio_numbers(closed)

    async def main():
        kept = numbers("kept")
        assert await run_asyncio(anext(kept)) == 0
        assert await run_asyncio(anext(kept)) == 1
        dropped = numbers("dropped")
        assert await run_asyncio(anext(dropped)) == 0
        del dropped
        gc.collect()
        await yieldio.sleep(0)
        closed.append("main ended")

    assert run_logging_warnings(main) == []
    assert closed[0] == "main ended"
    assert sorted(closed[1:]) == [("dropped", "yieldio-asyncio"), ("kept", "yieldio-asyncio")]
    assert loop_threads() == []


def test_an_asyncio_async_generator_stepped_with_anext_and_a_default_is_closed_by_asyncio():
    # anext(agen, default) calls agen.__anext__() at once too (in the yieldio
    # thread: yieldio's hooks claimed the generator), but wraps the result in
    # an anext_awaitable, which the bridge did not look into: the generator
    # was left to yieldio, whose clean-up of it failed at the first asyncio
    # await (logged), so its finally block never ran.
    closed: list = []
    numbers = _asyncio_numbers(closed)

    async def main():
        kept = numbers("kept")
        assert await run_asyncio(anext(kept, None)) == 0
        dropped = numbers("dropped")
        assert await run_asyncio(anext(dropped, "end")) == 0
        del dropped
        gc.collect()
        empty = numbers("empty")
        await run_asyncio(empty.aclose())         # never started: nothing to close
        assert await run_asyncio(anext(empty, "end")) == "end"

    assert run_logging_warnings(main) == []
    assert sorted(closed) == [("dropped", "yieldio-asyncio"), ("kept", "yieldio-asyncio")]
    assert loop_threads() == []


def test_an_async_generator_stepped_on_a_loop_of_your_own_is_closed_by_that_loop():
    # With loop=, nothing kept the generator alive: dropped unfinished, its
    # finalizer (yieldio's) ran its asyncio cleanup as a yieldio task, where
    # it failed. It is now kept until that loop's shutdown_asyncgens().
    closed = []

    async def numbers():
        try:
            while True:
                await asyncio.sleep(0)
                yield 1
        finally:
            await asyncio.sleep(0)
            closed.append(threading.current_thread().name)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="my-loop")
    thread.start()
    try:
        async def main():
            dropped = numbers()
            assert await run_asyncio(anext(dropped), loop=loop) == 1
            del dropped
            gc.collect()
            await yieldio.sleep(0)

        assert run_logging_warnings(main) == [] and closed == []
        asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result(5)
        assert closed == ["my-loop"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


# -- one yieldio cancellation, one asyncio loop step -------------------------------------------


class LoopSteps:
    """Which asyncio loop iteration each cancelled call saw its CancelledError in.

    The first handler of an iteration makes a mark and schedules (call_soon)
    the callback that drops it: that callback runs in the *next* iteration,
    so all the handlers of one iteration record the same mark.
    """

    def __init__(self) -> None:
        self.started = 0
        self.seen: list[tuple[int, object]] = []  # (call number, iteration mark)
        self._mark: object | None = None

    def _clear(self) -> None:
        self._mark = None

    async def wait(self, n: int) -> None:        # asyncio code
        self.started += 1
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if self._mark is None:
                self._mark = object()
                asyncio.get_running_loop().call_soon(self._clear)
            self.seen.append((n, self._mark))
            raise

    def iterations(self) -> int:
        return len({id(mark) for _, mark in self.seen})


@pytest.mark.parametrize("how", ["scope.cancel()", "move_on_after", "a failing task"])
def test_the_calls_one_yieldio_cancellation_reaches_are_cancelled_in_one_asyncio_loop_step(how):
    # asyncio's own TaskGroup cancels its tasks in one loop step, and some
    # libraries rely on it (httpx: encode/httpcore#1093 leaks a pool slot
    # when queued requests are cancelled one loop step apart). The bridge
    # sends the calls one kernel step cancels as one message: all their
    # asyncio tasks are cancelled together, in the kernel's order. (It used
    # to send one message per call: they were spread over several loop
    # steps, now and then -- 20 rounds make that show.)
    async def round_(steps: LoopSteps) -> None:
        async def fail_when_all_started() -> None:
            while steps.started < 10:
                await yieldio.sleep(0.001)
            raise KeyError("boom")

        with yieldio.move_on_after(5 if how != "move_on_after" else 0.05) as scope:
            try:
                async with yieldio.TaskGroup() as tg:
                    for n in range(10):
                        tg.spawn(run_asyncio, steps.wait, n)
                    if how == "a failing task":
                        tg.spawn(fail_when_all_started)
                    while steps.started < 10:
                        await yieldio.sleep(0.001)
                    if how == "scope.cancel()":
                        scope.cancel()
                    await yieldio.sleep_forever()
            except* KeyError:
                assert how == "a failing task"
        assert scope.cancelled_caught is (how != "a failing task")

    async def main() -> list[LoopSteps]:
        rounds = []
        for _ in range(20):
            steps = LoopSteps()
            await round_(steps)
            rounds.append(steps)
        return rounds

    for steps in yieldio.run(main):
        assert steps.started == 10
        assert sorted(n for n, _ in steps.seen) == list(range(10))
        assert steps.iterations() == 1
        assert [n for n, _ in steps.seen] == list(range(10))  # the kernel's order: spawn order
    assert loop_threads() == []


def test_calls_of_one_cancellation_on_two_loops_get_one_message_per_loop():
    # One call on the run's loop and one on a loop of your own, in one
    # cancel scope: each loop gets its own message, and the run's 10 calls
    # are still cancelled in one step of the run's loop.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="my-asyncio", daemon=True)
    thread.start()
    mine = LoopSteps()
    runs = LoopSteps()
    try:
        async def main() -> None:
            with yieldio.CancelScope() as scope:
                async with yieldio.TaskGroup() as tg:
                    for n in range(10):
                        tg.spawn(run_asyncio, runs.wait, n)
                        tg.spawn(functools.partial(run_asyncio, mine.wait, n, loop=loop))
                    while runs.started < 10 or mine.started < 10:
                        await yieldio.sleep(0.001)
                    scope.cancel()
            assert scope.cancelled_caught

        yieldio.run(main)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    for steps in (runs, mine):
        assert [n for n, _ in steps.seen] == list(range(10))
        assert steps.iterations() == 1


def test_a_loop_of_your_own_closed_before_the_cancellations_are_sent_does_not_hang():
    # The cancellation is sent at the end of the kernel step that asked for
    # it. If the loop of your own was closed in that very step, the message
    # cannot be sent and no outcome will ever come: the calls give up
    # waiting (Cancelled), instead of waiting for ever.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="my-asyncio", daemon=True)
    thread.start()
    steps = LoopSteps()

    async def main() -> bool:
        with yieldio.move_on_after(5) as timeout:
            with yieldio.CancelScope() as scope:
                async with yieldio.TaskGroup() as tg:
                    for n in range(3):
                        tg.spawn(functools.partial(run_asyncio, steps.wait, n, loop=loop))
                    while steps.started < 3:
                        await yieldio.sleep(0.001)
                    scope.cancel()              # the message waits for the end of this step
                    loop.call_soon_threadsafe(loop.stop)
                    thread.join(5)              # (blocking, on purpose: the same step)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # the pending tasks are destroyed
                        loop.close()
            assert scope.cancelled_caught
        return timeout.cancelled_caught

    try:
        assert yieldio.run(main) is False
    finally:
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()
    assert steps.seen == []  # never reached the loop
    assert loop_threads() == []


# -- real asyncio libraries against yieldio, in one program -----------------------------------


def _router(started=None):
    from yieldio.http import Response, Router

    router = Router()

    @router.get("/hello/{name}")
    async def hello(request):
        return Response.json({"hello": request.path_params["name"]})

    @router.get("/missing")
    async def missing(request):
        return Response.json({"error": "no such thing"}, status=404)

    @router.get("/slow")
    async def slow(request):
        started.set()
        await yieldio.sleep(30)
        return Response.json({})

    @router.websocket("/shout")
    async def shout(request):
        ws = await request.accept_websocket()
        async for message in ws:
            await ws.send(message.upper() if isinstance(message, str) else message[::-1])

    return router


def test_httpx_async_client_reused_across_calls_and_cancelled_mid_request():
    httpx = pytest.importorskip("httpx")
    from yieldio.http import serve

    seen = []

    async def new_client():
        return httpx.AsyncClient(timeout=5)

    async def slow_get(client, url):             # asyncio code
        try:
            await client.get(url)
        except asyncio.CancelledError:
            seen.append("httpx request cancelled")
            raise

    async def main():
        started = yieldio.Event()
        # (grace_period: yieldio.http does not notice that the client of the
        # /slow request went away, so its handler runs until the shutdown.)
        async with serve(_router(started), "127.0.0.1", 0, grace_period=0.05) as server:
            base = f"http://127.0.0.1:{server.port}"
            client = await run_asyncio(new_client)       # one client, many calls
            try:
                for name in ["a", "b"]:
                    r = await run_asyncio(client.get, f"{base}/hello/{name}")
                    assert (r.status_code, r.json()) == (200, {"hello": name})
                r = await run_asyncio(client.get, f"{base}/missing")
                with pytest.raises(httpx.HTTPStatusError) as info:
                    r.raise_for_status()
                assert info.value.response.status_code == 404

                async with yieldio.TaskGroup() as tg:
                    with yieldio.CancelScope() as scope:
                        async def cancel_once_started():
                            await started.wait()
                            scope.cancel()
                        tg.spawn(cancel_once_started)
                        await run_asyncio(slow_get, client, f"{base}/slow")
                assert scope.cancelled_caught
                assert seen == ["httpx request cancelled"]
                r = await run_asyncio(client.get, f"{base}/hello/after")  # still usable
                assert r.json() == {"hello": "after"}
            finally:
                await run_asyncio(client.aclose)
            server.close()

    run_leaving_nothing_open(main)
    assert loop_threads() == []


def test_aiohttp_session_reused_across_calls_and_its_errors_keep_their_type():
    aiohttp = pytest.importorskip("aiohttp")
    from yieldio.http import serve

    async def new_session():
        return aiohttp.ClientSession(raise_for_status=True)

    async def get_json(session, url):            # asyncio code
        async with session.get(url) as response:
            return await response.json()

    async def main():
        async with serve(_router(), "127.0.0.1", 0) as server:
            base = f"http://127.0.0.1:{server.port}"
            session = await run_asyncio(new_session)
            try:
                results = [await run_asyncio(get_json, session, f"{base}/hello/{i}")
                           for i in range(5)]
                assert results == [{"hello": str(i)} for i in range(5)]
                with pytest.raises(aiohttp.ClientResponseError) as info:
                    await run_asyncio(get_json, session, f"{base}/missing")
                assert info.value.status == 404
                # the traceback reaches into aiohttp, on the asyncio side
                files = [f.f_code.co_filename
                         for f, _ in traceback.walk_tb(info.value.__traceback__)]
                assert any("aiohttp" in f for f in files)
                async with yieldio.TaskGroup() as tg:   # concurrent calls, one session
                    tasks = [tg.spawn(run_asyncio, get_json, session, f"{base}/hello/c{i}")
                             for i in range(20)]
                assert [t.result() for t in tasks] == [{"hello": f"c{i}"} for i in range(20)]
            finally:
                await run_asyncio(session.close)
            server.close()

    run_leaving_nothing_open(main)


def test_websockets_client_talks_to_a_yieldio_websocket_server():
    websockets = pytest.importorskip("websockets")
    from yieldio.http import serve

    async def talk(port):                        # asyncio code
        async with websockets.connect(f"ws://127.0.0.1:{port}/shout") as ws:
            await ws.send("hello")
            text = await ws.recv()
            await ws.send(b"abc")
            return text, await ws.recv()

    async def connect(port):
        return await websockets.connect(f"ws://127.0.0.1:{port}/shout")

    async def main():
        async with serve(_router(), "127.0.0.1", 0) as server:
            assert await run_asyncio(talk, server.port) == ("HELLO", b"cba")
            ws = await run_asyncio(connect, server.port)    # one connection, many calls
            try:
                with yieldio.move_on_after(0.05) as scope:  # a recv() that gets nothing
                    await run_asyncio(ws.recv)
                assert scope.cancelled_caught
                for word in ["one", "two"]:
                    await run_asyncio(ws.send, word)
                    assert await run_asyncio(ws.recv) == word.upper()
            finally:
                await run_asyncio(ws.close)
            server.close()

    yieldio.run(main)


def test_run_yieldio_inside_an_aiohttp_handler_and_cancelled_when_the_client_leaves():
    pytest.importorskip("aiohttp")
    from aiohttp import web

    from yieldio.http import Client

    job_started = threading.Event()
    job_ended = threading.Event()

    async def job(n):                            # yieldio code, in the aiohttp app
        if n < 0:
            job_started.set()
            try:
                await yieldio.sleep(30)
            finally:
                job_ended.set()
        await yieldio.sleep(0.001)
        return n * 2

    async def handler(request):                  # asyncio code
        return web.json_response({"result": await run_yieldio(job, int(request.query["n"]))})

    async def start():
        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, runner.addresses[0][1]

    async def main():
        runner, port = await run_asyncio(start)
        try:
            async with Client() as client:
                r = await client.get(f"http://127.0.0.1:{port}/?n=21")
                assert (r.status, await r.json()) == (200, {"result": 42})
                async with yieldio.TaskGroup() as tg:
                    with yieldio.CancelScope() as scope:
                        async def leave_once_started():
                            await yieldio.to_thread(job_started.wait, 5)
                            scope.cancel()
                        tg.spawn(leave_once_started)
                        await client.get(f"http://127.0.0.1:{port}/?n=-1")
                assert scope.cancelled_caught
            # the client hung up: aiohttp cancels the handler, which cancels the run
            assert await yieldio.to_thread(job_ended.wait, 5)
        finally:
            await run_asyncio(runner.cleanup)

    yieldio.run(main)
    assert loop_threads() == []


def test_asyncio_code_awaited_directly_says_how_to_call_it():
    # asyncio.sleep() asks asyncio for its running loop before it yields
    # anything: the RuntimeError is asyncio's, and a task that lets it out
    # gets a note naming the bridge.
    async def main():
        await asyncio.sleep(0.01)

    with pytest.raises(RuntimeError, match="no running event loop") as info:
        yieldio.run(main)
    assert any("yieldio.aio.run_asyncio" in note for note in info.value.__notes__)

    async def through_the_bridge():
        return await run_asyncio(asyncio.sleep(0.01, result="slept"))

    assert yieldio.run(through_the_bridge) == "slept"


def test_a_refused_call_does_not_close_an_awaitable_that_is_no_coroutine():
    # A refused run_asyncio closes what it was given only if it speaks the
    # coroutine protocol: a server object is awaitable and has close() too,
    # and a mistaken argument must not shut it down.
    closed = []

    class ServerLike:
        def __await__(self):
            yield from ()

        def close(self):
            closed.append(True)

    async def main():
        with pytest.raises(TypeError):
            await run_asyncio(ServerLike(), "an extra argument")
        with yieldio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(yieldio.Cancelled):
                await run_asyncio(ServerLike())

    yieldio.run(main)
    assert closed == []
