"""task_tree / format_task_tree / format_task_table / describe_wait."""

from __future__ import annotations

import os
import socket

import pytest

import yieldio
from yieldio._io import wait_readable, wait_writable
from yieldio.debug import (
    describe_fd,
    describe_wait,
    format_task_table,
    format_task_tree,
    render_tree,
    snapshot,
    task_tree,
)
from yieldio.testing import VirtualClock

# A name that a table row must not print raw: a newline, a terminal escape
# sequence and a lone surrogate (a name decoded from a non-UTF-8 file name).
EVIL = "evil\n\x1b[2J\udcff"


def vrun(fn, *args):
    return yieldio.run(fn, *args, clock=VirtualClock(autojump=True))


async def settle(n=3):
    for _ in range(n):
        await yieldio.sleep(0)


def test_tree_nests_tasks_under_their_parents_with_their_waits():
    async def leaf(ev):
        await ev.wait()

    async def branch(ev):
        async with yieldio.TaskGroup() as tg:
            tg.spawn(leaf, ev, name="leaf-1")
            tg.spawn(leaf, ev, name="leaf-2")

    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            tg.spawn(branch, ev, name="branch")
            tg.spawn(yieldio.sleep, 3, name="sleeper")
            await settle()
            roots, text = task_tree(), format_task_tree()
            ev.set()
        return roots, text

    roots, text = vrun(main)
    assert [r.task.name for r in roots] == ["main"]
    main = roots[0]
    assert main.state == "running" and main.waiting_on == ""
    assert [c.task.name for c in main.children] == ["branch", "sleeper"]
    branch_info, sleeper = main.children
    assert branch_info.waiting_on == "TaskGroup exit (2 children left)"
    assert [c.task.name for c in branch_info.children] == ["leaf-1", "leaf-2"]
    assert all(c.waiting_on == "Event.wait on ev" and c.state == "waiting"
               for c in branch_info.children)
    assert sleeper.waiting_on == "sleep until +3.00 s"
    assert branch_info.children[0].where.function.endswith("leaf")  # the program's frame
    lines = text.splitlines()
    assert lines[0].startswith("task ") and lines[0].endswith("'main' [running]")
    assert lines[1].startswith("    at ") and "test_tree.py:" in lines[1]
    assert any(ln.startswith("  task ") and "'branch' [waiting] -- waiting on TaskGroup exit"
               in ln for ln in lines)
    assert any(ln.startswith("    task ") and "'leaf-2' [waiting] -- waiting on Event.wait" in ln
               for ln in lines)
    assert any(ln.strip().startswith("at test_tree_nests_tasks_under_their_parents_with_their"
                                     "_waits.<locals>.leaf (debug/test_tree.py:") for ln in lines)


def test_wait_descriptions_of_the_primitives():
    async def holder(lock, ev):
        async with lock:
            await ev.wait()

    async def main():
        lock, ev, q = yieldio.Lock(), yieldio.Event(), yieldio.Queue(1)
        async with yieldio.TaskGroup() as tg:
            h = tg.spawn(holder, lock, ev, name="holder")
            await settle()
            waiter = tg.spawn(lock.acquire, name="waiter")
            getter = tg.spawn(q.get, name="getter")
            joiner = tg.spawn(h.join, name="joiner")
            await settle()
            got = {t.name: describe_wait(t) for t in (h, waiter, getter, joiner)}
            ev.set()
            await settle()
            await q.put(1)
        return got, h.id

    got, hid = vrun(main)
    assert got["holder"] == "Event.wait on ev"
    assert got["waiter"] == f"Lock.acquire (held by task {hid})"
    assert got["getter"] == "Queue.get"
    assert got["joiner"].startswith(f"join task {hid} (holder)")


def test_describe_wait_is_empty_for_a_ready_task_and_survives_a_broken_wait():
    class Broken:
        def _describe_wait(self, task):
            raise RuntimeError("half-built")

    class Nameless:
        pass

    async def main():
        me = yieldio.current_task()
        ready = describe_wait(me)
        me._wait = Broken()
        broken = describe_wait(me)
        me._wait = Nameless()
        nameless = describe_wait(me)
        me._wait = None
        return ready, broken, nameless

    ready, broken, nameless = yieldio.run(main)
    assert ready == ""
    assert broken.startswith("Broken (describe failed: RuntimeError('half-built')")
    assert nameless == "Nameless"


def test_socket_waits_name_their_addresses():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    server_side, _ = listener.accept()
    client.setblocking(False)
    try:  # fill the send buffer so that a writer has to wait
        while True:
            client.send(b"x" * 65536)
    except BlockingIOError:
        pass
    cport = client.getsockname()[1]

    async def main():
        async with yieldio.TaskGroup() as tg:
            acc = tg.spawn(wait_readable, listener, name="acceptor")
            rd = tg.spawn(wait_readable, client, name="reader")
            wr = tg.spawn(wait_writable, client, name="writer")
            await settle()
            out = {t.name: describe_wait(t) for t in (acc, rd, wr)}
            plain = describe_wait(rd, detail=False)
            tree = format_task_tree()
            tg.cancel()
        return out, plain, tree

    try:
        out, plain, tree = yieldio.run(main)
    finally:
        for s in (listener, client, server_side):
            s.close()
    assert out["acceptor"].endswith(f"(listening on 127.0.0.1:{port})")
    assert out["acceptor"].startswith("read fd ")
    assert out["reader"].endswith(f"(127.0.0.1:{cport} <- 127.0.0.1:{port})")
    assert out["writer"].startswith("write fd ")
    assert out["writer"].endswith(f"(127.0.0.1:{cport} -> 127.0.0.1:{port})")
    assert plain == out["reader"].split(" (")[0]
    assert f"'reader' [waiting] -- waiting on {out['reader']}" in tree


def test_describe_fd_for_sockets_pipes_files_and_closed_fds(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    a, b = socket.socketpair()
    r, w = os.pipe()
    path = tmp_path / "f.txt"
    path.write_text("x")
    f = open(path)
    try:
        cport = client.getsockname()[1]
        assert describe_fd(listener.fileno()) == f"listening on 127.0.0.1:{port}"
        assert describe_fd(conn.fileno()) == f"127.0.0.1:{port} <- 127.0.0.1:{cport}"
        assert describe_fd(conn.fileno(), writing=True) == f"127.0.0.1:{port} -> 127.0.0.1:{cport}"
        assert describe_fd(udp.fileno()) == f"udp 127.0.0.1:{udp.getsockname()[1]}"
        assert describe_fd(a.fileno()) == "unix socket, unnamed"
        assert describe_fd(r) == "pipe"
        assert describe_fd(f.fileno()) == str(path)
        # The fd is only borrowed: it is still open and still non-blocking-or-not as before.
        assert conn.getblocking() is True and conn.fileno() >= 0
        closed = os.dup(r)
        os.close(closed)
        assert describe_fd(closed) == "closed"
    finally:
        for s in (listener, client, conn, udp, a, b):
            s.close()
        os.close(r)
        os.close(w)
        f.close()


def test_collapse_folds_identical_siblings():
    async def worker(q):
        await q.get()

    async def main():
        q = yieldio.Queue()
        async with yieldio.TaskGroup() as tg:
            ts = [tg.spawn(worker, q, name="worker") for _ in range(100)]
            tg.spawn(yieldio.sleep, 5, name="odd one")
            await settle()
            rows = snapshot()
            folded, full = render_tree(rows, collapse=True), render_tree(rows)
            again = format_task_tree().splitlines()
            assert again[0] == full.splitlines()[0] and again[2:] == full.splitlines()[2:]
            for _ in ts:
                q.put_nowait(None)
        return folded, full, rows, [t.id for t in ts]

    folded, full, rows, ids = vrun(main)
    assert len(full.splitlines()) == 2 * 102
    assert f"... and 99 more like it (tasks {ids[1]}-{ids[-1]})" in folded
    assert folded.count("'worker'") == 1 and "'odd one'" in folded
    assert len(folded.splitlines()) == 2 * 3 + 1
    assert {r.name for r in rows} == {"main", "worker", "odd one"}


def test_collapse_folds_waits_that_differ_only_in_numbers():
    async def main():
        async with yieldio.TaskGroup() as tg:
            for i in range(5):
                tg.spawn(yieldio.sleep, i + 1, name="napper")
            await settle()
            text = format_task_tree(collapse=True)
            tg.cancel()
        return text

    text = vrun(main)
    assert "waiting on sleep until +1.00 s" in text and "... and 4 more like it" in text


def test_task_table_has_one_row_per_task():
    async def main():
        async with yieldio.TaskGroup() as tg:
            for i in range(3):
                tg.spawn(yieldio.sleep_forever, name=f"t{i}")
            await settle()
            table = format_task_table()
            tg.cancel()
        return table

    table = vrun(main)
    lines = table.splitlines()
    assert lines[0].split() == ["ID", "PARENT", "STATE", "NAME", "WAITING", "ON", "WHERE"]
    assert len(lines) == 5
    assert "sleep forever" in lines[2] and "t0" in lines[2]
    assert lines[1].split()[1] == "-"  # main has no parent


def test_task_table_limit():
    async def main():
        async with yieldio.TaskGroup() as tg:
            for _ in range(10):
                tg.spawn(yieldio.sleep_forever)
            await settle()
            text = format_task_table(limit=4)
            tg.cancel()
        return text

    text = vrun(main)
    assert text.splitlines()[-1] == "... 7 more tasks not shown"
    assert len(text.splitlines()) == 1 + 4 + 1


def test_the_task_table_keeps_one_line_per_task_whatever_the_names():
    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.sleep, 3600, name=EVIL)
            await yieldio.sleep(0)
            table = format_task_table()
            tree = format_task_tree()
            tg.cancel()
        return table, tree

    table, tree = yieldio.run(main)
    lines = table.splitlines()
    assert len(lines) == 3, table  # the header, main, the evil one
    assert "evil\\n\\x1b[2J\\udcff" in lines[2]
    assert "\x1b" not in table and "\udcff" not in table
    table.encode("utf-8")  # printable on a strict UTF-8 terminal
    assert len(tree.splitlines()) == 4 and "\x1b" not in tree


def test_tree_outside_a_run_is_a_clear_error():
    with pytest.raises(RuntimeError, match="must be called from a task running under"):
        format_task_tree()


def test_describe_fd_for_unix_sockets_by_path_and_abstract_name(tmp_path):
    path = str(tmp_path / "s.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)
    client = socket.socket(socket.AF_UNIX)
    client.connect(path)
    conn, _ = listener.accept()
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(b"\0yieldio-test-%d" % os.getpid())
    abstract.listen(1)
    try:
        assert describe_fd(listener.fileno()) == f"unix socket, listening on {path}"
        assert describe_fd(conn.fileno()) == f"unix socket, {path} <- unnamed"
        assert describe_fd(client.fileno(), writing=True) == f"unix socket, unnamed -> {path}"
        assert describe_fd(abstract.fileno()) == \
            f"unix socket, listening on @yieldio-test-{os.getpid()}"
    finally:
        for s in (listener, client, conn, abstract):
            s.close()


def test_describe_fd_leaves_sockets_alone_under_a_default_timeout():
    a, b = socket.socketpair()
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5)
    try:
        assert describe_fd(a.fileno()) == "socket"
        assert a.gettimeout() is None  # not made non-blocking behind its owner's back
    finally:
        socket.setdefaulttimeout(old)
        a.close()
        b.close()


def test_collapse_keeps_subtrees_and_names_odd_id_spans():
    async def idle(ev):
        await ev.wait()

    async def supervisor(ev):
        async with yieldio.TaskGroup() as tg:
            for _ in range(2):
                tg.spawn(idle, ev, name="leaf")
            await ev.wait()

    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            pair = [tg.spawn(idle, ev, name="pair") for _ in range(2)]
            spread = []
            for _ in range(8):  # ids not in one run: others are spawned between them
                spread.append(tg.spawn(idle, ev, name="spread"))
                tg.spawn(supervisor, ev, name="boss")
            await settle()
            text = format_task_tree(collapse=True)
            ev.set()
        return text, [t.id for t in pair], [t.id for t in spread]

    text, pair, spread = vrun(main)
    lines = text.splitlines()
    assert f"    ... and 1 more like it (task {pair[1]})" in lines
    rest = ", ".join(map(str, spread[1:6]))
    assert f"    ... and 7 more like it (tasks {rest}, ...)" in lines
    # A task with children of its own is never folded into its siblings:
    # each supervisor is shown, with its two leaves folded under it.
    assert text.count("'boss' [waiting]") == 8
    assert text.count("'leaf' [waiting]") == 8 and text.count("... and 1 more like it") == 9


@pytest.mark.timeout(10)
@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfd_open (Linux >= 5.3)")
def test_a_task_waiting_for_a_child_process_names_the_child():
    import sys

    import yieldio.subprocess
    import yieldio.testing
    from yieldio.debug import format_task_tree

    async def main():
        proc = await yieldio.subprocess.open_process(
            [sys.executable, "-c", "import time; time.sleep(30)"])
        async with proc:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(proc.wait, name="waiter")
                await yieldio.testing.wait_all_tasks_blocked()
                tree = format_task_tree()
                proc.kill()
        return proc.pid, tree

    pid, tree = yieldio.run(main)
    assert f"exit of child process {pid}" in tree
    assert "anon_inode" not in tree


GLOBAL_LOCK = None


def test_a_wait_names_the_object_by_the_waiting_lines_name_for_it():
    # "Event.wait" alone does not say which Event; the name the waiting code
    # uses does: a local or closure variable, self.<attr>, a module global.
    class Account:
        def __init__(self):
            self.lock = yieldio.Lock()

        async def update(self):
            async with self.lock:
                pass

    async def closure_waiter(done):
        await done.wait()

    async def global_waiter():
        async with GLOBAL_LOCK:
            pass

    async def main():
        global GLOBAL_LOCK
        GLOBAL_LOCK = yieldio.Lock()
        acct, done, jobs = Account(), yieldio.Event(), yieldio.Queue(1)
        await acct.lock.acquire()
        await GLOBAL_LOCK.acquire()
        async with yieldio.TaskGroup() as tg:
            tasks = [tg.spawn(acct.update), tg.spawn(closure_waiter, done),
                     tg.spawn(global_waiter),
                     tg.spawn(jobs.get)]  # the whole stack is yieldio's: no name
            await settle()
            got = [describe_wait(t) for t in tasks]
            rows = {r.id: r.waiting_on for r in snapshot()}
            untold = snapshot(detail=False)  # the tracer's cheap form names nothing
            done.set()
            acct.lock.release()
            GLOBAL_LOCK.release()
            await jobs.put(1)
        return got, [rows[t.id] for t in tasks], [r.waiting_on for r in untold
                                                  if r.id in {t.id for t in tasks}]

    got, rows, untold = vrun(main)
    me = 1
    assert got == [f"Lock.acquire (held by task {me}) on self.lock", "Event.wait on done",
                   f"Lock.acquire (held by task {me}) on GLOBAL_LOCK", "Queue.get"]
    assert rows == got
    assert untold == [f"Lock.acquire (held by task {me})", "Event.wait",
                      f"Lock.acquire (held by task {me})", "Queue.get"]


def test_a_wait_shows_the_deadline_that_will_end_it():
    # move_on_after / fail_after around the wait -- its own, or its parent's
    # across a task group -- say when the wait will be cut short; a shield
    # hides the deadlines outside it, as it hides their cancellation.
    async def own(ev):
        with yieldio.move_on_after(2):
            await ev.wait()

    async def shielded(ev):
        with yieldio.move_on_after(2):
            with yieldio.CancelScope(shield=True):
                await ev.wait()

    async def inherits(ev):
        await ev.wait()

    async def main():
        ev = yieldio.Event()
        with yieldio.fail_after(5):
            async with yieldio.TaskGroup() as tg:
                tasks = [tg.spawn(own, ev), tg.spawn(shielded, ev), tg.spawn(inherits, ev)]
                await yieldio.sleep(0.5)
                got = [describe_wait(t) for t in tasks]
                cheap = describe_wait(tasks[0], detail=False)
                ev.set()
        return got, cheap

    got, cheap = vrun(main)
    assert got == ["Event.wait on ev, deadline +1.50 s", "Event.wait on ev",
                   "Event.wait on ev, deadline +4.50 s"]
    assert cheap == "Event.wait"


def test_tasks_waiting_on_each_other_are_shown_as_a_cycle():
    # Two locks taken in opposite orders: neither task can ever move, but a
    # third task sleeps, so the run is not a Deadlock -- the tree still says
    # so. A task queued behind the cycle is not part of it.
    async def take(first, second):
        async with first:
            await yieldio.sleep(0.01)
            async with second:
                pass

    async def main():
        a, b = yieldio.Lock(), yieldio.Lock()
        async with yieldio.TaskGroup() as tg:
            one, two = tg.spawn(take, a, b), tg.spawn(take, b, a)
            tg.spawn(yieldio.sleep, 5)
            await yieldio.sleep(0.1)
            behind = tg.spawn(a.acquire)
            await settle()
            got = {t: describe_wait(t) for t in (one, two, behind)}
            rows = {r.id: r.waiting_on for r in snapshot()}
            infos = {i.task: i.waiting_on for i in task_tree()[0].children}
            tg.cancel()
        return one, two, behind, got, rows, infos

    one, two, behind, got, rows, infos = vrun(main)
    cycle = f", in a wait cycle: tasks {one.id} -> {two.id} -> {one.id}"
    assert rows[one.id] == f"Lock.acquire (held by task {two.id}) on second" + cycle
    assert rows[two.id] == f"Lock.acquire (held by task {one.id}) on second" + cycle
    assert rows[behind.id] == f"Lock.acquire (held by task {one.id})"  # waits, not in it
    assert infos[one] == rows[one.id] and infos[behind] == rows[behind.id]
    assert "cycle" not in got[one]  # one task alone cannot see a cycle: only the views do


def test_tasks_joining_each_other_are_shown_as_a_cycle():
    async def join_other(box, me):
        await yieldio.sleep(0.01)
        await box[1 - me]

    async def main():
        box: list = []
        async with yieldio.TaskGroup() as tg:
            box.extend([tg.spawn(join_other, box, 0), tg.spawn(join_other, box, 1)])
            tg.spawn(yieldio.sleep, 5)
            await yieldio.sleep(0.1)
            rows = {r.id: r.waiting_on for r in snapshot()}
            tg.cancel()
        return box, rows

    (a, b), rows = vrun(main)
    assert rows[a.id].endswith(f", in a wait cycle: tasks {a.id} -> {b.id} -> {a.id}")
    assert rows[b.id].endswith(f", in a wait cycle: tasks {a.id} -> {b.id} -> {a.id}")
