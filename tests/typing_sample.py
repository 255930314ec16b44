"""A small typed user program, checked by ``mypy --strict`` in test_typing.py.

Not collected by pytest (its name does not start with ``test_``) and never
run: it only has to type-check, with ``assert_type`` pinning the key types.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, assert_type

import yieldio
import yieldio.aio


async def fetch(n: int) -> str:
    await yieldio.sleep(0)
    return str(n)


@yieldio.coroutine
def gen_style(n: int) -> Generator[Any, Any, int]:
    yield from yieldio.sleep(0)  # a generator coroutine may yield from yieldio waits
    s = yield from fetch_gen(n)
    return len(s)


@yieldio.coroutine
def fetch_gen(n: int) -> Generator[Any, Any, str]:
    yield from yieldio.checkpoint()
    return str(n)


async def server(*, task_status: yieldio.TaskStatus = yieldio.TASK_STATUS_IGNORED) -> None:
    task_status.started(1)


def blocking(n: int) -> bytes:
    return yieldio.from_thread(fetch, n).encode()


async def main() -> int:
    async with yieldio.TaskGroup() as tg:
        t = tg.spawn(fetch, 1)
        assert_type(t, yieldio.Task[str])
        assert_type(await t.join(), str)
        assert_type(tg.spawn(gen_style, 2), yieldio.Task[int])
        assert_type(tg.tasks, list[yieldio.Task[Any]])
        await tg.start(server)
    assert_type(t.result(), str)
    assert_type(await gen_style(3), int)

    q: yieldio.Queue[int] = yieldio.Queue(10)
    await q.put(1)
    assert_type(await q.get(), int)
    assert_type(q.get_nowait(), int)
    q.close()
    async for item in q:
        assert_type(item, int)
    assert_type(yieldio.Queue[str](), yieldio.Queue[str])

    uq: yieldio.UniversalQueue[bytes] = yieldio.UniversalQueue()
    uq.put_nowait(b"x")
    assert_type(uq.get_nowait(), bytes)

    assert_type(await yieldio.to_thread(blocking, 3), bytes)

    with yieldio.move_on_after(1) as scope:
        await yieldio.sleep(2)
    assert_type(scope.cancelled_caught, bool)
    assert_type(scope.relative_deadline, float)

    ev = yieldio.Event()
    await ev.wait()
    async with yieldio.Lock():
        pass
    cond = yieldio.Condition()
    async with cond:
        assert_type(await cond.wait_for(lambda: 3), int)

    a, b = yieldio.testing.memory_stream_pair()
    await a.send_all(b"x")
    assert_type(await b.receive_some(), bytes)
    return 0


async def from_asyncio() -> int:
    return await yieldio.aio.run_yieldio(main)


assert_type(yieldio.run(main), int)
assert_type(yieldio.run(fetch, 3), str)
