"""``check_stream()``: the conformance suite every :class:`~yieldio.Stream` must pass.

Servers, TLS and ``yieldio.http`` are written against the Stream interface
only, so every transport -- TCP and Unix sockets, TLS, pipes, memory streams,
SimNetwork -- must agree on what it means: ordering, read sizes, EOF and
half-close, closing, one reader and one writer at a time, what a blocked
task sees when its stream is closed, and that cancelling a read loses no
data. The checks run one after another, each on a fresh pair from the
factory, inside the caller's run::

    async def pair():
        return yieldio.testing.memory_stream_pair()

    yieldio.run(yieldio.testing.check_stream, pair)
"""

from __future__ import annotations

import hashlib
import inspect
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .._cancel import CancelScope
from .._exceptions import BusyResourceError, Cancelled, ClosedResourceError, IncompleteRead
from .._taskgroup import TaskGroup
from .._timeouts import fail_after
from ..sync import Event
from ._blocked import wait_all_tasks_blocked

__all__ = ["check_stream"]

Pair = tuple[Any, Any]
Factory = Callable[[], Awaitable[Pair]]
_CHECKS: list[tuple[str, Callable[[Any, Any], Awaitable[None]]]] = []


def _check(fn: Callable[[Any, Any], Awaitable[None]]) -> Callable[[Any, Any], Awaitable[None]]:
    _CHECKS.append((fn.__name__.lstrip("_"), fn))
    return fn


def _expect(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


async def _raises(exc_types: type[BaseException] | tuple[type[BaseException], ...],
                  what: str, awaitable: Awaitable[Any]) -> BaseException:
    try:
        result = await awaitable
    except exc_types as exc:
        return exc
    names = exc_types.__name__ if isinstance(exc_types, type) else " or ".join(
        t.__name__ for t in exc_types)
    raise AssertionError(f"{what}: expected {names}, got the result {result!r}")


async def _read_all(stream: Any, max_bytes: int = 65536) -> bytes:
    out = bytearray()
    while True:
        data = await stream.receive_some(max_bytes)
        if not data:
            return bytes(out)
        out += data


def _payload(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


async def _feed(stream: Any, data: bytes, close: bool = False) -> None:
    """Send ``data`` (then EOF, or close). Run it in its own task: a stream
    may buffer very little, so the sender must not wait for the reader."""
    await stream.send_all(data)
    if close:
        await stream.aclose()
    else:
        await stream.send_eof()


# -- the checks (each gets a fresh connected pair a <-> b) -----------------------------
@_check
async def _ordered_delivery(a: Any, b: Any) -> None:
    data = _payload(300_000, 1)
    sizes = [1, 7, 100, 4096, 65537, 3]

    async def send() -> None:
        pos = i = 0
        while pos < len(data):
            n = sizes[i % len(sizes)]
            await a.send_all(data[pos:pos + n])
            pos += n
            i += 1
        await a.send_eof()

    async with TaskGroup() as tg:
        tg.spawn(send)
        got = await _read_all(b, 5000)
    _expect(got == data, f"bytes arrived out of order or were lost ({len(got)} of {len(data)})")


@_check
async def _refuses_what_is_not_bytes(a: Any, b: Any) -> None:
    # bytes(5) is five NUL bytes, and memoryview("text") names memoryview in
    # its error: a write must refuse both, clearly, and stay usable.
    for bad in ("text", 5, None):
        for method in (a.send_all, a.write):
            exc = await _raises(TypeError, f"{method.__name__}({bad!r})", method(bad))
            _expect("bytes" in str(exc),
                    f"{method.__name__}({bad!r}): the TypeError does not say bytes are "
                    f"expected: {exc}")
    async with TaskGroup() as tg:
        tg.spawn(_feed, a, b"still fine")
        got = await _read_all(b)
    _expect(got == b"still fine", f"after refused writes, received {got!r}")


@_check
async def _receive_some_sizes(a: Any, b: Any) -> None:
    total = 0
    async with TaskGroup() as tg:
        tg.spawn(_feed, a, _payload(1000, 2))
        for max_bytes in [1, 3, 17, 1000] * 1000:
            data = await b.receive_some(max_bytes)
            _expect(1 <= len(data) <= max_bytes or (not data and total == 1000),
                    f"receive_some({max_bytes}) returned {len(data)} bytes (total {total})")
            if not data:
                break
            total += len(data)
    _expect(total == 1000, f"received {total} of 1000 bytes")
    for _ in range(2):  # EOF is sticky
        _expect(await b.receive_some(10) == b"", "receive_some after EOF must return b''")
    await _raises(ValueError, "read(0)", b.read(0))


@_check
async def _read_exactly_and_incomplete_read(a: Any, b: Any) -> None:
    async with TaskGroup() as tg:
        tg.spawn(_feed, a, b"0123456789")
        _expect(await b.read_exactly(4) == b"0123", "read_exactly(4)")
        _expect(await b.read_exactly(0) == b"", "read_exactly(0)")
        exc = await _raises(IncompleteRead, "read_exactly past EOF", b.read_exactly(10))
    assert isinstance(exc, IncompleteRead)
    _expect(exc.partial == b"456789" and exc.expected == 10,
            f"IncompleteRead must carry what arrived: {exc.partial!r}, {exc.expected}")
    _expect(await b.read() == b"", "read after IncompleteRead must be at EOF")


@_check
async def _readline(a: Any, b: Any) -> None:
    async def send() -> None:
        for piece in (b"one\ntw", b"o\r", b"\n", b"\nthr", b"e", b"e"):
            await a.send_all(piece)
        await a.send_eof()

    async with TaskGroup() as tg:
        tg.spawn(send)
        lines = [await b.readline() for _ in range(5)]
    _expect(lines == [b"one\n", b"two\r\n", b"\n", b"three", b""], f"readline gave {lines!r}")


@_check
async def _read_until_limits(a: Any, b: Any) -> None:
    async with TaskGroup() as tg:
        tg.spawn(_feed, a, b"abcdefghijXYZ--0123456789==rest")
        await _read_until_part(b)


async def _read_until_part(b: Any) -> None:
    await _raises(ValueError, "read_until with no separator within max_bytes",
                  b.read_until(b"--", max_bytes=5))
    _expect(await b.read_until(b"--", max_bytes=100) == b"abcdefghijXYZ--",
            "data must stay buffered after a read_until limit error")
    await _raises(ValueError, "separator ending beyond max_bytes",
                  b.read_until(b"==", max_bytes=11))
    _expect(await b.read_until(b"==", max_bytes=12) == b"0123456789==", "read_until exact fit")
    exc = await _raises(IncompleteRead, "read_until at EOF", b.read_until(b"--"))
    assert isinstance(exc, IncompleteRead)
    _expect(exc.partial == b"rest", f"IncompleteRead.partial was {exc.partial!r}")


@_check
async def _send_eof_half_close(a: Any, b: Any) -> None:
    async with TaskGroup() as tg:
        tg.spawn(_feed, a, b"request")
        _expect(await _read_all(b) == b"request", "data before send_eof must arrive")
    await a.send_eof()  # idempotent
    async with TaskGroup() as tg:
        tg.spawn(_feed, b, b"reply")  # the other direction still works
        _expect(await _read_all(a) == b"reply", "the half-closed side must still receive")
    await _raises((ClosedResourceError, BrokenPipeError), "send_all after send_eof",
                  a.send_all(b"more"))


@_check
async def _aclose_idempotent(a: Any, b: Any) -> None:
    async with TaskGroup() as tg:
        tg.spawn(_feed, a, b"last words", True)
        _expect(await _read_all(b) == b"last words", "the peer reads the data, then EOF")
    await a.aclose()
    _expect(a.closed, "stream.closed must be True after aclose() (an aclose() override "
                      "must call super().aclose())")


@_check
async def _closed_resource_errors(a: Any, b: Any) -> None:
    await a.aclose()
    for what, make in [("receive_some", lambda: a.receive_some(10)),
                       ("send_all", lambda: a.send_all(b"x")),
                       ("send_eof", lambda: a.send_eof()),
                       ("read", lambda: a.read()),
                       ("read_exactly", lambda: a.read_exactly(1)),
                       ("readline", lambda: a.readline()),
                       ("write", lambda: a.write(b"x"))]:
        await _raises(ClosedResourceError, f"{what} on a closed stream", make())


@_check
async def _busy_receive(a: Any, b: Any) -> None:
    got: list[bytes] = []

    async def reader() -> None:
        got.append(await b.receive_some(100))

    async with TaskGroup() as tg:
        tg.spawn(reader)
        await wait_all_tasks_blocked()
        await _raises(BusyResourceError, "a second concurrent receive_some", b.receive_some(1))
        await _raises(BusyResourceError, "a concurrent read", b.read())
        await a.send_all(b"x")
    _expect(got == [b"x"], f"the first reader must still get the data, got {got!r}")


@_check
async def _busy_send(a: Any, b: Any) -> None:
    chunks = [_payload(65536, 3), _payload(65536, 4)]
    sent: list[bytes] = []
    stop = False

    async def writer() -> None:
        while not stop:  # until the buffers are full and we block
            chunk = chunks[len(sent) % 2]
            await a.send_all(chunk)
            sent.append(chunk)
        await a.write(b"tail")  # the rejected sends below must not break the stream
        await a.send_eof()

    async with TaskGroup() as tg:
        tg.spawn(writer)
        await wait_all_tasks_blocked()  # writer() is parked on a full buffer
        await _raises(BusyResourceError, "a second concurrent send_all", a.send_all(b"X"))
        await _raises(BusyResourceError, "a concurrent write", a.write(b"X"))
        stop = True
        got = await _read_all(b)
    expected = b"".join(sent) + b"tail"
    _expect(got == expected, "a send rejected with BusyResourceError disturbed the writer's "
                             f"byte stream ({len(got)} bytes arrived, expected {len(expected)})")


@_check
async def _close_wakes_blocked_tasks(a: Any, b: Any) -> None:
    errors: list[BaseException] = []

    async def reader() -> None:
        try:
            await b.receive_some(10)
        except ClosedResourceError as exc:
            errors.append(exc)

    async def writer() -> None:
        try:
            while True:  # a does not read: b's sending blocks soon
                await b.send_all(b"\0" * 65536)
        except ClosedResourceError as exc:
            errors.append(exc)

    async with TaskGroup() as tg:
        tg.spawn(reader)
        tg.spawn(writer)
        await wait_all_tasks_blocked()  # both are parked on b
        await b.aclose()
    _expect(len(errors) == 2 and all(isinstance(e, ClosedResourceError) for e in errors),
            f"blocked tasks must wake with ClosedResourceError, got {errors!r}")


@_check
async def _cancelled_read_loses_no_data(a: Any, b: Any) -> None:
    # Every send runs in a task of its own, concurrent with the reads that
    # drain it: a stream may buffer fewer bytes than a message (as _feed says),
    # and a sender waiting for a reader that comes later would hang the check.
    # 1. Cancelled while parked: nothing taken.
    with CancelScope() as scope:
        async with TaskGroup() as tg:
            tg.spawn(b.receive_some, 100)
            await wait_all_tasks_blocked()
            scope.cancel()
    async with TaskGroup() as tg:
        tg.spawn(a.send_all, b"data")
        got_data = await b.read_exactly(4)
    _expect(got_data == b"data", "data sent after a cancelled read must arrive")
    # 2. Cancelled around the moment data arrives: it is in exactly one place.
    got: list[bytes] = []

    async def reader(scope: CancelScope) -> None:
        with scope:
            got.append(await b.receive_some(5))

    async def send_then_cancel(scope: CancelScope) -> None:
        await a.send_all(b"hello")
        scope.cancel()

    scope = CancelScope()
    async with TaskGroup() as tg:
        reading = tg.spawn(reader, scope)
        await wait_all_tasks_blocked()
        tg.spawn(send_then_cancel, scope)
        # Until the reader is done (it took some bytes, or the cancel came),
        # not merely blocked: with latency, it may still wait for bytes in
        # flight while the sender waits for room. (The sender may still wait.)
        await reading.join()
        rest = b"".join(got)
        if len(rest) < 5:
            rest += await b.read_exactly(5 - len(rest))
    _expect(rest == b"hello", f"data lost or duplicated around a cancel: {rest!r}")
    # 3. A cancelled read_exactly keeps its partial data in the stream's buffer.
    # (One sender for both pieces: with a buffer smaller than "abc", its first
    # send_all ends only once the second read has taken some of it.)
    go_on = Event()

    async def send_in_two() -> None:
        await a.send_all(b"abc")
        await go_on.wait()
        await a.send_all(b"def")

    async with TaskGroup() as outer:
        outer.spawn(send_in_two)
        with CancelScope() as scope:
            async with TaskGroup() as tg:
                tg.spawn(b.read_exactly, 6)
                await wait_all_tasks_blocked()
                scope.cancel()
        go_on.set()
        got_data = await b.read_exactly(6)
    _expect(got_data == b"abcdef", "a cancelled read_exactly lost its bytes")


@_check
async def _large_transfer_both_ways(a: Any, b: Any) -> None:
    size = 1 << 20
    outcome: dict[str, bytes] = {}

    async def send(stream: Any, seed: int) -> None:
        data = _payload(size, seed)
        for i in range(0, size, 65536):
            await stream.send_all(data[i:i + 65536])
        await stream.send_eof()

    async def receive(stream: Any, key: str) -> None:
        digest = hashlib.sha256()
        async for chunk in stream:
            digest.update(chunk)
        outcome[key] = digest.digest()

    async with TaskGroup() as tg:
        tg.spawn(send, a, 10)
        tg.spawn(send, b, 11)
        tg.spawn(receive, a, "at_a")
        tg.spawn(receive, b, "at_b")
    _expect(outcome.get("at_b") == hashlib.sha256(_payload(size, 10)).digest(),
            "a -> b transfer corrupted")
    _expect(outcome.get("at_a") == hashlib.sha256(_payload(size, 11)).digest(),
            "b -> a transfer corrupted")


# -- the runner ----------------------------------------------------------------------
async def check_stream(factory: Factory, *, timeout: float = 30.0,
                       skip: Iterable[str] = ()) -> list[str]:
    """Run the Stream conformance checks; raise ``AssertionError`` listing the failures.

    ``factory()`` is an async function returning a fresh connected pair
    ``(a, b)``; every check gets its own pair and closes it. ``timeout``
    bounds each check (in the run's clock). Returns the names of the checks
    that ran; ``skip`` names checks to leave out.

    ::

        async def tcp_pair():
            ...  # return (client_stream, server_stream)

        async def main():
            await yieldio.testing.check_stream(tcp_pair)
    """
    if not callable(factory):
        raise TypeError(f"check_stream() needs a factory: an async function returning a "
                        f"fresh connected pair (a, b), not {factory!r}")
    skipped = set(skip)
    unknown = skipped - {name for name, _ in _CHECKS}
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; known: {[n for n, _ in _CHECKS]}")
    ran: list[str] = []
    failures: list[tuple[str, BaseException]] = []
    for name, check in _CHECKS:
        if name in skipped:
            continue
        ran.append(name)
        made = factory()
        if not inspect.isawaitable(made):
            # Awaiting it would fail with "object tuple can't be used in 'await'
            # expression", which names neither the factory nor the fix.
            raise TypeError(f"check_stream(factory): the factory must be an async function "
                            f"(or return an awaitable) giving a pair (a, b); {factory!r} "
                            f"returned {type(made).__name__} {made!r:.80}. Wrap it: "
                            "async def pair(): return ...")
        a, b = await made
        try:
            with fail_after(timeout):
                await check(a, b)
        except Cancelled:
            raise
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            failures.append((name, exc))
        finally:
            with CancelScope(shield=True):
                for s in (a, b):
                    try:
                        await s.aclose()
                    except Exception as exc:
                        failures.append((f"{name} (aclose)", exc))
    if failures:
        lines = [f"{len(failures)} of {len(ran)} stream checks failed:"]
        lines += [f"  {name}: {type(e).__name__}: {e}" for name, e in failures]
        raise AssertionError("\n".join(lines)) from failures[0][1]
    return ran
