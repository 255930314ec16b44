"""task.stack() / format_stack: the whole chain across every kind of call."""

from __future__ import annotations

import socket
import traceback

import pytest

import yieldio
from yieldio._io import notify_closing, wait_readable
from yieldio._traps import SCHEDULE
from yieldio.debug import format_stack, innermost_frame, task_stack, where_frame
from yieldio.debug._stack import MAX_FRAMES, Frame, coroutine_frames
from yieldio.testing import VirtualClock

HERE = __file__


def functions(task):
    return [f.function for f in task.stack()]


async def spawn_and_look(fn, *args, settle=2):
    """Spawn fn(*args), let it block, return (task, stack, formatted), then unblock."""
    async with yieldio.TaskGroup() as tg:
        t = tg.spawn(fn, *args, name="subject")
        for _ in range(settle):
            await yieldio.sleep(0)
        stack, text = t.stack(), format_stack(t)
        tg.cancel()
    return t, stack, text


# -- async def ------------------------------------------------------------------------
async def inner(ev):
    await ev.wait()


async def middle(ev):
    await inner(ev)


async def outer(ev):
    await middle(ev)


def test_async_def_chain_down_to_the_wait():
    t, stack, text = yieldio.run(spawn_and_look, outer, yieldio.Event())
    assert [f.function for f in stack] == ["outer", "middle", "inner", "Event.wait"]
    assert stack[0].filename == HERE and "await middle(ev)" in stack[0].line
    assert "await inner(ev)" in stack[1].line
    assert "await ev.wait()" in stack[2].line
    assert stack[3].filename.endswith("yieldio/sync.py")
    assert text.startswith("Stack of <Task") and "waiting on Event.wait on ev:" in text
    assert 'in middle\n    await inner(ev)' in text
    assert t.stack() == []  # finished: nothing suspended


def test_a_task_sees_its_own_running_frame():
    async def main():
        return functions(yieldio.current_task()), yieldio.current_task().stack()[-1].lineno

    names, lineno = yieldio.run(main)
    # The plain function that called stack() is on the running task's stack too.
    assert names == ["test_a_task_sees_its_own_running_frame.<locals>.main", "functions"]
    assert lineno > 0


# -- generators with yield from ---------------------------------------------------------
@yieldio.coroutine
def gen_inner(ev):
    yield from ev.wait()


@yieldio.coroutine
def gen_outer(ev):
    yield from gen_inner(ev)


def test_generator_chain_with_yield_from():
    t, stack, _ = yieldio.run(spawn_and_look, gen_outer, yieldio.Event())
    assert [f.function for f in stack] == ["gen_outer", "gen_inner", "Event.wait"]
    assert "yield from gen_inner(ev)" in stack[0].line


@yieldio.coroutine
def gen_awaits_native(ev):
    yield from outer(ev)  # a generator delegating to an async def


async def native_awaits_gen(ev):
    await gen_awaits_native(ev)


def test_mixed_native_and_generator_chain():
    _, stack, _ = yieldio.run(spawn_and_look, native_awaits_gen, yieldio.Event())
    assert [f.function for f in stack] == [
        "native_awaits_gen", "gen_awaits_native", "outer", "middle", "inner", "Event.wait"]


# -- trampolined calls ------------------------------------------------------------------
@yieldio.coroutine
def tr_leaf(ev):
    yield from ev.wait()
    return 1


@yieldio.coroutine
def tr_middle(ev):
    x = yield tr_leaf(ev)  # trampolined call
    return x


@yieldio.coroutine
def tr_top(ev):
    x = yield tr_middle(ev)  # trampolined call
    return x


def test_trampolined_calls_are_on_the_stack():
    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(tr_top, ev, name="subject")
            await yieldio.sleep(0)
            await yieldio.sleep(0)
            assert t._tramp is not None and t._tramp.depth == 3
            stack = t.stack()
            ev.set()
        return stack, t.result()

    stack, result = yieldio.run(main)
    assert result == 1
    assert [f.function for f in stack] == ["tr_top", "tr_middle", "tr_leaf", "Event.wait"]
    assert "x = yield tr_middle(ev)" in stack[0].line
    assert "x = yield tr_leaf(ev)" in stack[1].line


async def native_outer_of_trampoline(ev):
    return await tr_top(ev)  # the async def is the task's coroutine; calls trampoline above it


def test_trampolined_calls_under_an_async_def():
    _, stack, _ = yieldio.run(spawn_and_look, native_outer_of_trampoline, yieldio.Event())
    assert [f.function for f in stack] == [
        "native_outer_of_trampoline", "tr_top", "tr_middle", "tr_leaf", "Event.wait"]


@yieldio.coroutine
def deep(n, ev):
    if n == 0:
        yield from ev.wait()
        return 0
    return (yield deep(n - 1, ev)) + 1


def test_a_deep_trampolined_stack_is_walked_without_recursion():
    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(deep, 3000, ev)
            await yieldio.sleep(0)
            await yieldio.sleep(0)
            frames = t.stack()
            last = innermost_frame(t)
            ev.set()
        return frames, last, t.result()

    frames, last, result = yieldio.run(main)
    assert result == 3000
    assert len(frames) == 3002 and frames[-1].function == "Event.wait"
    assert last == frames[-1]


def test_a_stack_deeper_than_the_cut_keeps_the_innermost_frames():
    # A trampolined chain can be deeper than MAX_FRAMES: the cut keeps the
    # outermost frames *and* the innermost ones, where the task waits (it
    # used to keep the first 10,000 only, so frames[-1] was the marker).
    depth = MAX_FRAMES + 2_000

    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(deep, depth, ev)
            while t._tramp is None or t._tramp.depth < depth + 1:
                await yieldio.sleep(0)
            frames, text = t.stack(), format_stack(t)
            ev.set()
        return frames, text, t.result()

    frames, text, result = yieldio.run(main)
    assert result == depth
    assert len(frames) == MAX_FRAMES + 1
    cut = [i for i, f in enumerate(frames) if f.opaque]
    assert cut == [MAX_FRAMES // 2]
    assert "stack cut" in frames[cut[0]].function and f"{depth + 1:,}" in frames[cut[0]].function
    # Every frame shown but Event.wait is one whole call: the marker counts
    # exactly the others (it used to count the head's last call as hidden).
    shown_calls = sum(f.function == "deep" for f in frames)
    assert shown_calls == MAX_FRAMES - 1
    assert f"stack cut: {depth + 1 - shown_calls:,} of {depth + 1:,} " in frames[cut[0]].function
    assert frames[0].function == "deep" and "yield deep(n - 1, ev)" in frames[0].line
    assert [f.function for f in frames[-2:]] == ["deep", "Event.wait"]
    assert "yield from ev.wait()" in frames[-2].line
    assert text.rstrip().endswith(frames[-1].format().rstrip())


def test_the_cut_marker_of_a_deep_stack_is_not_shown_as_a_coroutine():
    depth = MAX_FRAMES + 10

    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(deep, depth, ev)
            while t._tramp is None or t._tramp.depth < depth + 1:
                await yieldio.sleep(0)
            text = format_stack(t)
            ev.set()
        return text

    text = yieldio.run(main)
    cut = [line for line in text.splitlines() if "stack cut" in line]
    assert len(cut) == 1 and cut[0].startswith("  ... stack cut: "), cut
    assert "class-based coroutine" not in text
    assert len(text.splitlines()) < 40


async def recurse(n: int, ev: yieldio.Event) -> None:
    if n == 0:
        await ev.wait()
        return
    await recurse(n - 1, ev)


def test_format_stack_folds_repeated_frames_like_a_traceback():
    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(recurse, 200, ev)
            await yieldio.sleep(0)
            frames, text = t.stack(), format_stack(t)
            ev.set()
        return frames, text

    frames, text = yieldio.run(main)
    assert len(frames) > 200  # the data keeps every frame
    lines = text.splitlines()
    assert len(lines) < 20, text
    assert lines[1:7:2] == [lines[1]] * 3 and "in recurse" in lines[1]
    assert "  [Previous line repeated 197 more times]" in lines
    assert "in Event.wait" in text  # the innermost frames are still there


def test_innermost_and_where_frame_do_not_copy_a_trampolined_stack(monkeypatch):
    # They run for every task when a tree is drawn: O(1) in the depth of a
    # trampolined chain, not a copy of the whole stack (Trampoline.stack).
    from yieldio._trampoline import Trampoline

    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(deep, 50, ev)
            await yieldio.sleep(0)
            await yieldio.sleep(0)
            with monkeypatch.context() as m:
                m.setattr(Trampoline, "stack", property(lambda self: pytest.fail("copied")))
                out = innermost_frame(t), where_frame(t), t.stack()
            ev.set()
        return out

    innermost, where, stack = yieldio.run(main)
    assert innermost.function == "Event.wait" and where.function == "deep"
    assert len(stack) == 52 and stack[-1] == innermost


def test_a_task_running_a_trampoline_object_shows_its_calls():
    # yieldio.trampoline(gen) as a task's coroutine, or delegated to with
    # 'yield from': the trampoline's calls are on the stack (it was one
    # opaque <Trampoline> frame, and where_frame pointed into _trampoline.py).
    @yieldio.coroutine
    def delegates(ev):
        return (yield from yieldio.trampoline(tr_top(ev)))

    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            runs = tg.spawn(lambda: yieldio.trampoline(tr_top(ev)))
            via = tg.spawn(delegates, ev)
            await yieldio.sleep(0)
            await yieldio.sleep(0)
            out = [(functions(t), where_frame(t), innermost_frame(t)) for t in (runs, via)]
            ev.set()
        return out

    (runs, runs_where, runs_last), (via, via_where, via_last) = yieldio.run(main)
    assert runs == ["tr_top", "tr_middle", "tr_leaf", "Event.wait"]
    assert via[0].endswith(".delegates")
    assert via[1:] == ["tr_top", "tr_middle", "tr_leaf", "Event.wait"]
    assert runs_where.function == via_where.function == "tr_leaf"
    assert runs_last.function == via_last.function == "Event.wait"


def leaf_raises():
    yield from yieldio.sleep(0)
    raise ValueError("boom")


@yieldio.coroutine
def tb_middle_trampolined():
    return (yield leaf_raises())


@yieldio.coroutine
def tb_top_trampolined():
    return (yield tb_middle_trampolined())


@yieldio.coroutine
def tb_middle_yield_from():
    return (yield from leaf_raises())


@yieldio.coroutine
def tb_top_yield_from():
    return (yield from tb_middle_yield_from())


def _traceback_names(top):
    async def main():
        try:
            await top()
        except ValueError as exc:
            return [fs.name for fs in traceback.extract_tb(exc.__traceback__)]

    return yieldio.run(main)


def test_traceback_across_trampolined_calls_shows_the_caller_chain():
    trampolined = _traceback_names(tb_top_trampolined)
    native = _traceback_names(tb_top_yield_from)
    assert native == ["main", "tb_top_yield_from", "tb_middle_yield_from", "leaf_raises"]
    assert trampolined == ["main", "tb_top_trampolined", "tb_middle_trampolined", "leaf_raises"]


# -- async generators and CPython's hidden wrappers ------------------------------------------
async def agen(ev):
    yield 1
    await ev.wait()
    yield 2


async def consumer(ev):
    async for _ in agen(ev):
        pass


def test_async_generator_frames_are_found_through_asend():
    _, stack, _ = yieldio.run(spawn_and_look, consumer, yieldio.Event())
    assert [f.function for f in stack] == ["consumer", "agen", "Event.wait"]


@yieldio.coroutine
def gen_awaits_coroutine_wrapper(ev):
    yield from inner(ev).__await__()  # a coroutine_wrapper between the two


def test_coroutine_wrapper_is_seen_through():
    _, stack, _ = yieldio.run(spawn_and_look, gen_awaits_coroutine_wrapper, yieldio.Event())
    assert [f.function for f in stack] == ["gen_awaits_coroutine_wrapper", "inner", "Event.wait"]


# -- class-based coroutines -------------------------------------------------------------------
class Ticker:
    """A hand-written coroutine (the seed's Iterator shape): yields SCHEDULE n times."""

    def __init__(self, n):
        self.n = n

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        return self.send(None)

    def send(self, value):
        if self.n == 0:
            raise StopIteration("ticked")
        self.n -= 1
        return SCHEDULE

    def throw(self, exc, *rest):
        raise exc


async def awaits_ticker():
    return await Ticker(1000)


def test_class_based_coroutines_are_one_opaque_frame():
    async def main():
        async with yieldio.TaskGroup() as tg:
            as_task = tg.spawn(Ticker(1000), name="ticker")
            awaited = tg.spawn(awaits_ticker)
            await yieldio.sleep(0)
            await yieldio.sleep(0)
            result = as_task.stack(), awaited.stack(), format_stack(as_task)
            tg.cancel()
        return result

    own, awaited, text = yieldio.run(main)
    assert len(own) == 1 and own[0].opaque and own[0].function == "Ticker"
    assert own[0].filename == HERE and own[0].lineno == 0
    assert [f.function for f in awaited] == ["awaits_ticker", "Ticker"]
    assert awaited[0].opaque is False and awaited[1].opaque is True
    assert "<Ticker> class-based coroutine, no frame" in text


# -- a blocked echo server ---------------------------------------------------------------------
async def receive_some(sock, n=65536):
    while True:
        try:
            return sock.recv(n)
        except BlockingIOError:
            await wait_readable(sock)


async def echo_handler(sock):
    while True:
        data = await receive_some(sock)
        if not data:
            return
        sock.sendall(data)


async def echo_server(listener):
    while True:
        try:
            conn, _ = listener.accept()
            break
        except BlockingIOError:
            await wait_readable(listener)
    conn.setblocking(False)
    try:
        await echo_handler(conn)
    finally:
        notify_closing(conn)
        conn.close()


def test_blocked_echo_server_shows_the_handler_stack_down_to_the_wait():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))

    async def main():
        async with yieldio.TaskGroup() as tg:
            server = tg.spawn(echo_server, listener, name="echo")
            client.sendall(b"hello")
            while True:  # let the server accept, echo, and block again
                await yieldio.sleep(0.01)
                frames = server.stack()
                if frames and "echo_handler" in [f.function for f in frames] \
                        and server.state == "waiting":
                    break
            text = format_stack(server)
            tree = yieldio.debug.format_task_tree()
            echoed = client.recv(100)
            client.close()  # the handler sees EOF and returns
        return frames, text, tree, echoed

    try:
        frames, text, tree, echoed = yieldio.run(main)
    finally:
        notify_closing(listener)
        listener.close()
    assert echoed == b"hello"
    assert [f.function for f in frames] == ["echo_server", "echo_handler", "receive_some",
                                            "wait_readable"]
    assert "await receive_some(sock)" in frames[1].line
    assert "await wait_readable(sock)" in frames[2].line
    cport = client_port_in(text)
    assert "read fd" in text and f"127.0.0.1:{port} <- 127.0.0.1:{cport}" in text
    assert "task" in tree and "'echo' [waiting] -- waiting on read fd" in tree
    assert f"127.0.0.1:{port} <- 127.0.0.1:" in tree


def client_port_in(text):
    return text.split(" <- 127.0.0.1:")[1].split(")")[0]


def test_stack_of_a_sleeping_task_under_a_virtual_clock():
    async def sleeper():
        await yieldio.sleep(5)

    async def main():
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(sleeper)
            await yieldio.sleep(1)
            text = format_stack(t)
        return text

    text = yieldio.run(main, clock=VirtualClock(autojump=True))
    assert "waiting on sleep until +4.00 s" in text
    assert "sleeper\n    await yieldio.sleep(5)" in text


def test_stack_needs_no_running_kernel_for_a_finished_task():
    async def main():
        return yieldio.current_task()

    t = yieldio.run(main)
    assert task_stack(t) == [] and "no frames" in format_stack(t)


def test_frame_format_and_short():
    f = yieldio.debug.Frame(HERE, 1, "fn")
    assert f.format() == f'  File "{HERE}", line 1, in fn\n    {f.line}'
    assert f.line.startswith('"""task.stack()')
    assert f.short() == "fn (debug/test_stack.py:1)"
    opaque = yieldio.debug.Frame("", 0, "Thing", opaque=True)
    assert opaque.short() == "<Thing>" and opaque.line == ""


def test_where_frame_is_the_programs_innermost_line():
    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            native = tg.spawn(outer, ev)
            tramp = tg.spawn(tr_top, ev)
            bare = tg.spawn(ev.wait)  # nothing but yieldio's own frame
            await yieldio.sleep(0)
            await yieldio.sleep(0)
            out = [where_frame(t) for t in (native, tramp, bare)]
            out.append(innermost_frame(native))
            ev.set()
        out.append(where_frame(native))  # finished
        return out

    native, tramp, bare, innermost, finished = yieldio.run(main)
    assert (native.function, native.filename) == ("inner", HERE)
    assert "await ev.wait()" in native.line
    assert tramp.function == "tr_leaf"
    assert bare.function == "Event.wait" and bare.filename.endswith("yieldio/sync.py")
    assert innermost.function == "Event.wait"
    assert finished is None


def test_innermost_and_where_frame_of_unusual_tasks():
    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            ticker = tg.spawn(Ticker(1000), name="ticker")
            awaits = tg.spawn(awaits_ticker)
            agen_task = tg.spawn(consumer, ev)
            for _ in range(3):
                await yieldio.sleep(0)
            out = {name: (innermost_frame(t), where_frame(t))
                   for name, t in [("ticker", ticker), ("awaits", awaits), ("agen", agen_task)]}
            tree = yieldio.debug.format_task_tree()
            tg.cancel()
        out["finished"] = (innermost_frame(ticker), where_frame(ticker))
        return out, tree

    out, tree = yieldio.run(main)
    for name in ("ticker", "awaits"):
        inner, where = out[name]
        assert inner.opaque and inner.function == "Ticker" and where == inner
    inner, where = out["agen"]
    assert inner.function == "Event.wait"
    assert where.function == "agen" and "await ev.wait()" in where.line
    assert out["finished"] == (None, None)
    assert "'ticker' [ready]\n      at <Ticker>" in tree


def test_looking_at_a_task_that_has_not_started_does_not_start_it():
    # The stack of a task spawned but not run yet used Task.coro, which
    # *makes* the coroutine: a 'ps' during a burst of spawns gave every task
    # a coroutine object (and changed the kernel's first send). The frame
    # is read from the function's code instead: the def line, as before.
    from yieldio._task import NotStarted

    async def waits(ev):
        await ev.wait()

    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(waits, ev)
            assert type(t._driver) is NotStarted
            seen = (task_stack(t), innermost_frame(t), where_frame(t),
                    yieldio.debug.format_task_table(), format_stack(t))
            still_unstarted = type(t._driver) is NotStarted
            await yieldio.sleep(0)
            after = [f.function for f in t.stack()]
            ev.set()
        return t, seen, still_unstarted, after

    t, (stack, inner, where, table, text), still_unstarted, after = yieldio.run(main)
    assert still_unstarted
    first = waits.__code__.co_firstlineno
    assert stack == [Frame(HERE, first, waits.__code__.co_qualname)]
    assert inner == where == stack[0]
    assert f"test_stack.py:{first})" in table
    assert "async def waits(ev):" in text
    assert after == [waits.__code__.co_qualname, "Event.wait"] and t.result() is None


class GenProxy:
    """A look-alike coroutine (as Cython makes): generator attributes, not a generator."""

    def __init__(self, gen):
        self.gen = gen
        self.gi_code = gen.gi_code

    @property
    def gi_frame(self):
        return self.gen.gi_frame

    @property
    def gi_yieldfrom(self):
        return self.gen.gi_yieldfrom

    def send(self, value):
        return self.gen.send(value)

    def throw(self, *exc):
        return self.gen.throw(*exc)

    def __await__(self):
        return self

    def __next__(self):
        return self.send(None)


def test_look_alike_coroutines_show_the_frames_they_expose():
    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(GenProxy(gen_outer(ev)), name="proxied")
            await yieldio.sleep(0)
            await yieldio.sleep(0)
            stack = t.stack()
            ev.set()
        return stack

    assert [f.function for f in yieldio.run(main)] == ["gen_outer", "gen_inner", "Event.wait"]


class Cyclic:
    """A broken look-alike whose await chain leads back to itself."""

    cr_code = None

    def __init__(self, frame):
        self.cr_frame = frame
        self.cr_await = self


def test_coroutine_frames_of_objects_outside_a_task():
    def gen():
        yield

    g = gen()
    next(g)
    assert [f.function for f in coroutine_frames(g)] == [
        "test_coroutine_frames_of_objects_outside_a_task.<locals>.gen"]
    frames = [Frame("x.py", 1, "earlier")]
    assert coroutine_frames(g, frames) is frames and len(frames) == 2
    g.close()
    assert coroutine_frames(g) == []  # finished: nothing suspended
    # A cycle in a broken object graph ends the walk instead of looping.
    g = gen()
    next(g)
    assert [f.function for f in coroutine_frames(Cyclic(g.gi_frame))] == [
        "test_coroutine_frames_of_objects_outside_a_task.<locals>.gen"]
    assert coroutine_frames(Ticker(1))[0].opaque


def test_a_cut_stack_shows_the_innermost_frames_of_a_call_it_cuts_in_two():
    # Past MAX_FRAMES, a call shown only in part after the marker showed its
    # *outermost* frames: an 'a_level' sat next to frames two levels further
    # in, as if it had called them, with no marker between.
    import yieldio.debug as dbg

    kinds = ["a" if i % 3 == 1 else "g" for i in range(20_001)]

    @yieldio.coroutine
    def g_level(n):
        if n == len(kinds) - 1:
            yield from yieldio.sleep(1)
            return
        yield (a_level if kinds[n + 1] == "a" else g_level)(n + 1)  # trampolined

    async def a_level(n):
        await g_level(n + 1)  # a native await inside the same trampolined call

    real = ["g_level" if k == "g" else "a_level" for k in kinds] + ["sleep"]

    async def main():
        async with yieldio.TaskGroup() as tg:
            task = tg.spawn(g_level, 0)
            await yieldio.testing.wait_all_tasks_blocked()
            names = [f.function if f.opaque else f.function.rsplit(".", 1)[-1]
                     for f in dbg.task_stack(task)]
            tg.cancel()
        cut = next(i for i, name in enumerate(names) if name.startswith("... stack cut"))
        head, tail = names[:cut], names[cut + 1:]
        assert head == real[:len(head)]
        assert tail == real[-len(tail):]

    yieldio.run(main, clock=yieldio.testing.VirtualClock(autojump=True))
