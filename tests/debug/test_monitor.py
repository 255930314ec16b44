"""The live monitor: a real Unix socket, a real program under load, the real client."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

import yieldio
from yieldio._cli_debug import cmd_monitor
from yieldio._runopts import instruments_for
from yieldio.debug import MonitorClient, MonitorServer
from yieldio.debug._monitor import COMMANDS, MonitorError, monitor_dir
from yieldio.debug._monitor_client import find_monitor_socket

# A name that a table row must not print raw: a newline, a terminal escape
# sequence and a lone surrogate (a name decoded from a non-UTF-8 file name).
EVIL = "evil\n\x1b[2J\udcff"
LOADED_PROGRAM = textwrap.dedent("""
    import os, sys, yieldio
    from yieldio._io import wait_readable

    async def worker(i, q):
        while True:
            await yieldio.sleep(0.001 * (i % 20))
            if i % 500 == 0:
                await q.put(i)

    async def sink(q):
        while True:
            await q.get()

    async def stop_on_stdin_eof(tg):
        os.set_blocking(0, False)
        while True:
            await wait_readable(0)
            if not os.read(0, 100):
                break
        tg.cancel()

    async def main():
        q = yieldio.Queue(10)
        async with yieldio.TaskGroup() as tg:
            tg.spawn(sink, q, name="sink")
            for i in range(10_000):
                tg.spawn(worker, i, q, name="worker")
            tg.spawn(stop_on_stdin_eof, tg, name="stopper")
            await yieldio.sleep(0)
            print("ready", flush=True)

    yieldio.run(main, monitor=True)
""")


@pytest.fixture
def mon_dir(tmp_path, monkeypatch):
    path = tmp_path / "mon"
    monkeypatch.setenv("YIELDIO_MONITOR_DIR", str(path))
    monkeypatch.delenv("YIELDIO_MONITOR", raising=False)
    return path


@pytest.fixture
def loaded(tmp_path, mon_dir):
    """A program with 10,000 busy tasks and a monitor, in a child process."""
    script = tmp_path / "loaded.py"
    script.write_text(LOADED_PROGRAM)
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()
        yield proc
    finally:
        proc.stdin.close()  # the program's stopper sees EOF and cancels everything
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()


def monitor(capsys, *args):
    code = cmd_monitor([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def stat_value(text, label):
    for line in text.splitlines():
        if line.startswith(label):
            return int(line[len(label):].split()[0].replace(",", ""))
    raise AssertionError(f"{label!r} not in {text}")


def test_monitor_commands_answered_while_10000_tasks_run(loaded, mon_dir, capsys):
    pid = loaded.pid
    sock = mon_dir / f"{pid}.sock"
    # Only the user may enter the directory or use the socket.
    assert stat.S_IMODE(os.stat(mon_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600

    code, out, _ = monitor(capsys, pid, "-c", "stats")
    assert code == 0
    assert stat_value(out, "tasks") == 10_003  # main, sink, stopper and 10,000 workers
    steps_before = int(out.split("(total ")[2].split(")")[0].replace(",", ""))
    assert "loop iter/s" in out and "fds watched" in out and "ready queue" in out

    code, out, _ = monitor(capsys, pid, "-c", "tree")
    assert code == 0
    assert out.startswith("task 1 'main' [waiting] -- waiting on TaskGroup exit")
    assert "'worker' [waiting] -- waiting on sleep until" in out
    assert "more like it" in out and len(out.splitlines()) < 200

    code, out, _ = monitor(capsys, pid, "-c", "ps")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 1 + 10_003
    worker_id = next(ln.split()[0] for ln in lines[1:] if " worker " in ln)

    code, out, _ = monitor(capsys, pid, "-c", f"where {worker_id}")
    assert code == 0
    assert out.startswith(f"Stack of <Task {worker_id} 'worker'")
    assert 'loaded.py", line 7, in worker' in out or 'loaded.py", line 9, in worker' in out

    code, out, _ = monitor(capsys, pid, "-c", "where stopper")
    assert code == 0 and "in stop_on_stdin_eof\n    await wait_readable(0)" in out
    assert "waiting on read fd 0" in out

    code, out, err = monitor(capsys, pid, "-c", "where worker")
    assert code == 1 and "10000 tasks are named 'worker'" in err

    code, out, _ = monitor(capsys, pid, "-c", "cancel sink", "-c", "where sink")
    assert "cancelled task 2 'sink'" in out
    assert code == 1

    code, out, _ = monitor(capsys, pid, "-c", "top", "-n", "2", "-i", "0.2")
    assert code == 0
    views = out.split("loop iter/s")
    assert len(views) == 3 and out.count("CPU% is sampled") == 2
    assert " worker " in views[2].split("WAITING ON")[1]  # the busiest tasks are listed

    code, out, _ = monitor(capsys, pid, "-c", "stats")
    steps_after = int(out.split("(total ")[2].split(")")[0].replace(",", ""))
    assert steps_after > steps_before  # the program kept running all along

    code, out, _ = monitor(capsys, pid, "-c", "help")
    assert code == 0 and all(c in out for c in ("ps", "tree", "where", "cancel", "stats", "top"))

    loaded.stdin.close()
    assert loaded.wait(timeout=30) == 0
    assert not sock.exists()  # removed on exit
    assert f"monitor listening on {sock}" in loaded.stderr.read()


def test_the_monitor_command_line_in_another_process(loaded, mon_dir):
    code = ("import sys; from yieldio._cli_debug import cmd_monitor; "
            "sys.exit(cmd_monitor(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "-c", "stats", "-c", "where 1"],
                          capture_output=True, text=True, timeout=60)  # the only program: no PID
    assert proc.returncode == 0, proc.stderr
    assert "tasks" in proc.stdout and "Stack of <Task 1 'main'" in proc.stdout
    help_ = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True,
                           text=True, timeout=60)
    assert help_.returncode == 0 and "where TASK" in help_.stdout


# -- in-process: a kernel in a thread, the client here ----------------------------------------
class Program:
    """Run ``main`` under yieldio with a monitor in a background thread."""

    def __init__(self, main, server):
        self.server = server
        self.error = None
        self.started = threading.Event()
        self.stop = threading.Event()

        def target():
            try:
                yieldio.run(main, self, instruments=[server])
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.error = exc

        self.thread = threading.Thread(target=target)

    def __enter__(self):
        self.thread.start()
        assert self.started.wait(10)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


async def idle_until_stopped(prog):
    prog.started.set()
    while not prog.stop.is_set():
        await yieldio.sleep(0.01)


def test_a_loop_blocked_by_a_step_is_reported_with_the_kernel_threads_stack(tmp_path):
    blocking, unblock = threading.Event(), threading.Lock()
    unblock.acquire()  # (a bare lock: no threading.py frame in the stack)

    async def main(prog):
        prog.started.set()
        await yieldio.sleep(0.05)
        blocking.set()
        unblock.acquire(timeout=30)  # a step that blocks the loop
        await idle_until_stopped(prog)

    server = MonitorServer(str(tmp_path / "m.sock"), announce=False, answer_timeout=0.3)
    with Program(main, server), MonitorClient(server.path) as client:
        try:
            assert blocking.wait(10)
            reply = client.request("tree")
        finally:
            unblock.release()
    assert reply["ok"] is False
    text = reply["text"]
    assert "did not answer within 0.3 s" in text
    assert "It is running a step of task" in text and "'main'" in text
    assert "unblock.acquire(timeout=30)  # a step that blocks the loop" in text
    stack = text.split("most recent call last):", 1)[1]
    assert "_kernel.py" not in stack and "threading.py" not in stack  # from the task's code down


def test_a_command_the_blocked_loop_did_not_take_in_time_is_not_done_later(tmp_path):
    blocking, unblock = threading.Event(), threading.Event()
    seen = {}

    async def victim():
        await yieldio.sleep(3600)

    async def main(prog):
        async with yieldio.TaskGroup() as tg:
            v = tg.spawn(victim, name="victim")
            prog.started.set()
            await yieldio.sleep(0)
            blocking.set()
            unblock.wait(30)  # a step that blocks the loop until the test says
            await idle_until_stopped(prog)
            for _ in range(3):  # a cancel done late would have ended it by now
                await yieldio.sleep(0)
            seen["victim done"] = v.done()
            tg.cancel()

    server = MonitorServer(str(tmp_path / "m.sock"), announce=False, answer_timeout=0.2)
    with Program(main, server), MonitorClient(server.path) as client:
        assert blocking.wait(10)
        reply = client.request("cancel", "victim")
        unblock.set()
        # Answered after the withdrawn call's turn: it had its chance to run.
        assert client.request("ps")["ok"]
    assert reply["ok"] is False and "did not answer within 0.2 s" in reply["text"]
    assert "The command was not done" in reply["text"]
    assert seen == {"victim done": False}


def test_bad_requests_and_unknown_commands_keep_the_connection(tmp_path):
    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    with Program(idle_until_stopped, server):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(server.path)
            f = s.makefile("rwb")
            hello = json.loads(f.readline())
            assert hello["hello"] == "yieldio-monitor" and hello["pid"] == os.getpid()
            f.write(b"this is not json\n")
            f.flush()
            assert "bad request" in json.loads(f.readline())["text"]
            f.write(b'{"cmd": "frobnicate"}\n')
            f.flush()
            assert json.loads(f.readline()) == {
                "ok": False, "text": "unknown command 'frobnicate'; try 'help'"}
            f.write(b'{"cmd": "where", "arg": "999999"}\n')
            f.flush()
            assert json.loads(f.readline())["text"] == "no live task with id 999999"
            f.write(b'{"cmd": "tree", "arg": "--bogus"}\n')
            f.flush()
            assert "usage: tree" in json.loads(f.readline())["text"]
            f.close()
    assert not os.path.exists(server.path)


def test_the_socket_is_removed_when_main_fails(tmp_path):
    async def main(prog):
        prog.started.set()
        raise ValueError("boom")

    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    prog = Program(main, server)
    with prog:
        pass
    assert isinstance(prog.error, ValueError)
    assert not os.path.exists(server.path)


def test_a_stale_socket_of_a_dead_program_is_replaced(tmp_path):
    path = str(tmp_path / "m.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)
    dead.close()  # the file stays, nobody listens
    server = MonitorServer(path, announce=False)
    with Program(idle_until_stopped, server), MonitorClient(path) as client:
        assert client.request("stats")["ok"]


def test_sockets_of_programs_killed_by_a_signal_are_swept_at_the_next_start(mon_dir):
    # SIGTERM and SIGKILL skip the removal at exit; the next monitored program
    # removes what they left, and nothing that may still be alive.
    import subprocess
    import sys

    directory = monitor_dir(create=True)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)  # reaped: that pid runs no more
    alive = socket.socket(socket.AF_UNIX)  # a live pid (ours), with a listener
    alive.bind(os.path.join(directory, f"{os.getppid()}.sock"))
    alive.listen(1)
    # A dead pid whose socket still listens: a program in another pid
    # namespace sharing the directory. Only the connect probe can tell.
    elsewhere = socket.socket(socket.AF_UNIX)
    elsewhere.bind(os.path.join(directory, f"{dead_pid}-5.sock"))
    elsewhere.listen(1)
    for name in (f"{dead_pid}.sock", f"{dead_pid}-2.sock", f"{os.getppid()}-3.sock"):
        s = socket.socket(socket.AF_UNIX)
        s.bind(os.path.join(directory, name))
        s.close()  # the file stays and nobody listens
    with open(os.path.join(directory, f"{dead_pid}-4.sock"), "w"):
        pass  # not a socket: not ours to remove

    def main():
        yield from yieldio.sleep(0)
        return sorted(os.listdir(directory))

    try:
        left = yieldio.run(main, monitor=True)
    finally:
        alive.close()
        elsewhere.close()
    assert f"{dead_pid}.sock" not in left and f"{dead_pid}-2.sock" not in left
    assert f"{os.getppid()}.sock" in left       # its pid runs and it listens
    assert f"{os.getppid()}-3.sock" in left     # its pid runs (another kernel of it may start)
    assert f"{dead_pid}-4.sock" in left         # not a socket
    assert f"{dead_pid}-5.sock" in left         # something listens on it
    assert f"{os.getpid()}.sock" in left        # this run's own


def test_a_socket_in_use_is_not_stolen(tmp_path):
    path = str(tmp_path / "m.sock")
    server = MonitorServer(path, announce=False)
    with Program(idle_until_stopped, server):
        def main():  # a generator: the refused run leaves no coroutine unawaited
            yield from yieldio.sleep(0)

        with pytest.raises(MonitorError, match="already listens"):
            yieldio.run(main, monitor=path)


# -- the directory ---------------------------------------------------------------------------
def test_an_insecure_directory_is_refused(mon_dir):
    mon_dir.mkdir(mode=0o755)
    os.chmod(mon_dir, 0o755)
    with pytest.raises(MonitorError, match=r"its mode is 0755; it must be 0700"):
        instruments_for({"monitor": True})


def test_a_directory_owned_by_someone_else_is_refused(mon_dir):
    if os.getuid() != 0:
        pytest.skip("needs root to give the directory away")
    mon_dir.mkdir(mode=0o700)
    os.chown(mon_dir, 65534, 65534)
    with pytest.raises(MonitorError, match="belongs to uid 65534, not to you"):
        monitor_dir(create=True)


def test_a_symlink_is_refused(mon_dir, tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    mon_dir.symlink_to(real)
    with pytest.raises(MonitorError, match="not a directory"):
        monitor_dir(create=True)


def test_the_directory_is_created_private(mon_dir):
    assert monitor_dir(create=True) == str(mon_dir)
    assert stat.S_IMODE(os.stat(mon_dir).st_mode) == 0o700


def test_finding_programs(mon_dir, capsys):
    monitor_dir(create=True)
    code, _, err = monitor(capsys, "-c", "ps")
    assert code == 1 and "no monitored yieldio program is running" in err
    code, _, err = monitor(capsys, "999999999", "-c", "ps")
    assert code == 1 and "no monitor socket for pid 999999999" in err
    assert "no process has that pid" in err
    code, _, err = monitor(capsys, str(mon_dir / "nope.sock"), "-c", "ps")
    assert code == 1 and "no monitor socket at" in err
    # Two live programs (this process twice, as far as the names go).
    for name in (f"{os.getpid()}.sock", f"{os.getpid()}-2.sock"):
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(mon_dir / name))
        s.close()
    with pytest.raises(MonitorError, match="several monitored programs are running"):
        find_monitor_socket(None)
    with pytest.raises(MonitorError, match="is not a yieldio monitor|cannot talk"):
        MonitorClient(str(mon_dir / f"{os.getpid()}.sock"))


def test_finding_no_program_names_the_stale_sockets_found(mon_dir, capsys):
    # A program killed by a signal leaves its socket: "no socket in DIR" was untrue.
    monitor_dir(create=True)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, timeout=60)
    dead = int(gone.stdout)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(mon_dir / f"{dead}.sock"))
    s.close()
    code, _, err = monitor(capsys, "-c", "ps")
    assert code == 1 and "no monitored yieldio program is running" in err
    assert f"holds only stale sockets of programs no longer running: {dead}.sock" in err
    assert "no socket in" not in err


def test_environment_variable_turns_the_monitor_on(mon_dir, monkeypatch):
    monkeypatch.setenv("YIELDIO_MONITOR", "1")
    seen = []

    async def main():
        k = yieldio._state.current_kernel()
        server = next(i for i in k.instruments if isinstance(i, MonitorServer))
        seen.append(server.path)
        with MonitorClient(find_monitor_socket(str(os.getpid()))) as c:
            # The kernel thread is this one, busy in this step: answer later.
            seen.append(c.hello["pid"])

    yieldio.run(main)
    assert seen == [str(mon_dir / f"{os.getpid()}.sock"), os.getpid()]
    assert not os.path.exists(seen[0])


def test_interactive_prompt_and_top_in_a_terminal(tmp_path):
    """Drive the interactive client through a pseudo-terminal, as a person would."""
    import pty
    import select as _select

    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    code = ("import sys; from yieldio._cli_debug import cmd_monitor; "
            "sys.exit(cmd_monitor(sys.argv[1:]))")
    with Program(idle_until_stopped, server):
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-c", code, server.path, "-i", "0.2"],
                                stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        seen = b""

        def read_until(marker, timeout=20):
            nonlocal seen
            deadline = time.monotonic() + timeout
            while marker not in seen:
                left = deadline - time.monotonic()
                assert left > 0, f"no {marker!r} in {seen[-2000:]!r}"
                if _select.select([master], [], [], left)[0]:
                    try:
                        seen += os.read(master, 65536)
                    except OSError:
                        break
            return seen

        try:
            read_until(b"yieldio> ")
            os.write(master, b"tree\n")
            read_until(b"'main' [waiting] -- waiting on sleep until")
            read_until(b"at idle_until_stopped (debug/test_monitor.py:")
            os.write(master, b"top\n")
            read_until(b"(q to quit)")
            assert b"\x1b[H\x1b[2J" in seen  # redrawn in place
            n = seen.count(b"(q to quit)")  # now wait for a refresh
            deadline = time.monotonic() + 20
            while seen.count(b"(q to quit)") < n + 1 and time.monotonic() < deadline:
                if _select.select([master], [], [], 1)[0]:
                    seen += os.read(master, 65536)
            assert seen.count(b"(q to quit)") >= n + 1
            os.write(master, b"q")
            mark = len(seen)
            deadline = time.monotonic() + 20
            while b"yieldio> " not in seen[mark:] and time.monotonic() < deadline:
                if _select.select([master], [], [], 1)[0]:
                    seen += os.read(master, 65536)
            assert b"yieldio> " in seen[mark:]
            os.write(master, b"quit\n")
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)


# -- commands, in-process ------------------------------------------------------------------
def test_where_and_cancel_find_tasks_by_id_or_unique_name(tmp_path):
    async def twin():
        await yieldio.sleep(3600)

    async def main(prog):
        async with yieldio.TaskGroup() as tg:
            tg.spawn(twin, name="twin")
            tg.spawn(twin, name="twin")
            tg.spawn(twin, name="solo")
            for i in range(3):
                tg.spawn(twin, name=f"worker-{i}")
            await idle_until_stopped(prog)
            tg.cancel()

    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    with Program(main, server), MonitorClient(server.path) as client:
        assert client.request("ps")["text"].splitlines()[0].split()[:4] == [
            "ID", "PARENT", "STATE", "NAME"]
        # Names that 'ps worker' lists: it said "no live task named 'worker'".
        for cmd in ("where", "cancel"):
            assert client.request(cmd, "worker") == {
                "ok": False, "text": "'worker' is ambiguous: 3 tasks' names match it: "
                "5 'worker-0', 6 'worker-1', 7 'worker-2'; give an id"}
        assert client.request("cancel", "ol") == {
            "ok": False, "text": "no task is named 'ol'; one task's name matches it: "
            "4 'solo'; give its id"}
        twin = client.request("where", "twin")
        assert twin["ok"] is False and "2 tasks are named 'twin' (ids 2, 3); give an id" \
            in twin["text"]
        assert client.request("where", "nobody") == {
            "ok": False, "text": "no live task named 'nobody' (use an id from 'ps')"}
        # A digit int() refuses is a name, not an id: no traceback comes back.
        assert client.request("where", "\u00b2")["text"] == \
            "no live task named '\u00b2' (use an id from 'ps')"
        assert client.request("where", "2")["text"].startswith("Stack of <Task 2 'twin'")
        for cmd in ("where", "cancel"):
            assert client.request(cmd) == {"ok": False, "text": "usage: " + COMMANDS[cmd]}
        cancelled = client.request("cancel", "solo")
        assert cancelled["ok"] and "cancelled task 4 'solo'" in cancelled["text"]
        assert client.request("")["text"].startswith("commands:\n")
        assert client.request("quit") == {"ok": True, "text": "bye"}
        # Cancelled at its next checkpoint: soon gone from the table.
        deadline = time.monotonic() + 10
        while " solo " in client.request("ps")["text"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)


def test_ps_and_tree_filter_by_name_and_refuse_extra_arguments(tmp_path):
    # 10,000 tasks printed 10,000+ lines, and 'ps extra args' ignored the words.
    async def nap():
        await yieldio.sleep(3600)

    async def group(n):
        async with yieldio.TaskGroup() as tg:
            for i in range(n):
                tg.spawn(nap, name=f"fetch-{i}")

    async def main(prog):
        async with yieldio.TaskGroup() as tg:
            tg.spawn(group, 12, name="pool")
            tg.spawn(nap, name="http handler")
            await idle_until_stopped(prog)
            tg.cancel()

    def names(table):
        return [line.split()[3] for line in table.splitlines()[1:]]

    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    with Program(main, server), MonitorClient(server.path) as client:
        deadline = time.monotonic() + 10
        while "fetch-11" not in client.request("ps")["text"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        sub = client.request("ps", "fetch-1")  # a part of the name
        glob = client.request("ps", "fetch-?")  # a glob: the whole name
        spaced = client.request("ps", "'http handler'")
        tree = client.request("tree", "--full fetch-11")
        none = client.request("ps", "nobody")
        extra = client.request("ps", "extra args")
        extra_tree = client.request("tree", "--full a b")
    assert names(sub["text"]) == ["fetch-1", "fetch-10", "fetch-11"], sub
    assert names(glob["text"]) == [f"fetch-{i}" for i in range(10)], glob
    assert spaced["text"].splitlines()[1].split()[3:5] == ["http", "handler"], spaced
    # The matching task and its ancestors, nothing else.
    assert [line.split("'")[1] for line in tree["text"].splitlines() if "task " in line] == [
        "main", "pool", "fetch-11"], tree
    assert none == {"ok": True, "text": "no live task's name matches 'nobody'"}
    for reply in (extra, extra_tree):
        assert reply["ok"] is False and "unexpected argument" in reply["text"], reply
        assert "usage: " in reply["text"]


def test_top_lists_the_task_that_keeps_the_loop_busy(tmp_path):
    async def spinner(prog):
        while not prog.stop.is_set():
            time.sleep(0.002)  # every step of this task takes the loop for a while
            await yieldio.sleep(0)

    async def main(prog):
        async with yieldio.TaskGroup() as tg:
            tg.spawn(spinner, prog, name="spinner")
            await idle_until_stopped(prog)

    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    with Program(main, server), MonitorClient(server.path) as client:
        reply = client.request("top")
        assert client.request("top", "stop") == {"ok": True, "text": "top stopped"}
    assert reply["ok"], reply
    rows = reply["text"].split("WAITING ON\n")[1].splitlines()
    _, cpu, _, name = rows[0].split()[:4]
    assert name == "spinner" and float(cpu) > 50, reply["text"]


def test_top_does_not_call_a_loop_idle_when_its_steps_are_too_short_to_sample(tmp_path):
    # Steps far shorter than the sampling interval are rarely caught: top
    # said "loop idle 100%" and "no task ran" while stats counted the steps.
    async def ticker(prog):
        while not prog.stop.is_set():
            await yieldio.sleep(0.005)

    async def main(prog):
        async with yieldio.TaskGroup() as tg:
            tg.spawn(ticker, prog, name="ticker")
            await idle_until_stopped(prog)

    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    with Program(main, server), MonitorClient(server.path) as client:
        reply = client.request("top")
        client.request("top", "stop")
    assert reply["ok"] and reply["data"]["steps_per_s"] > 0, reply
    text = reply["text"]
    assert "idle" not in text and "no task ran" not in text, text
    assert "no task running" in text
    table = text.split("WAITING ON\n")[1]
    assert "ticker" in table or "task steps/s were each too short to catch" in table, text


def test_top_keeps_the_name_of_a_task_that_exited_since_it_was_sampled(tmp_path):
    go, gone = threading.Event(), threading.Event()

    async def brief(server):
        me = yieldio.current_task().id
        while True:  # busy until the top sampler has caught this task once
            time.sleep(0.003)
            [sampler] = server._samplers
            with sampler._lock:
                if me in sampler._counts:
                    return
            await yieldio.sleep(0)

    async def main(prog):
        async with yieldio.TaskGroup() as tg:
            prog.started.set()
            await yieldio.to_thread(go.wait, 30)
            await tg.spawn(brief, prog.server, name="brief").join()
            gone.set()
            await idle_until_stopped(prog)

    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    with Program(main, server), MonitorClient(server.path) as client:
        assert client.request("top")["ok"]  # starts the sampler
        go.set()
        assert gone.wait(10)
        reply = client.request("top")  # its samples include brief's, taken after it exited
        client.request("top", "stop")
    assert reply["ok"], reply
    rows = reply["text"].split("WAITING ON\n")[1].splitlines()
    brief_rows = [r for r in rows if "brief" in r]
    assert len(brief_rows) == 1 and brief_rows[0].split()[2:4] == ["done", "brief"], rows
    assert "(exited)" not in reply["text"]


def test_monitor_ps_and_top_escape_names(tmp_path):
    async def busy(prog):
        while not prog.stop.is_set():
            await yieldio.sleep(0)

    async def main(prog):
        async with yieldio.TaskGroup() as tg:
            tg.spawn(busy, prog, name=EVIL)
            await idle_until_stopped(prog)

    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    with Program(main, server), MonitorClient(server.path) as client:
        ps = client.request("ps")["text"]
        top = client.request("top")["text"]
        client.request("top", "stop")
    for text in (ps, top):
        assert "\x1b" not in text and "\udcff" not in text and "evil\n" not in text, text
    assert "evil\\n\\x1b[2J\\udcff" in ps
    assert "evil\\n\\x1b[2J" in top


def test_a_blocked_loop_fails_stats_and_top_with_the_reason(tmp_path):
    blocking, unblock = threading.Event(), threading.Lock()
    unblock.acquire()

    async def main(prog):
        prog.started.set()
        await yieldio.sleep(0.05)
        blocking.set()
        unblock.acquire(timeout=30)  # a step that blocks the loop
        await idle_until_stopped(prog)

    server = MonitorServer(str(tmp_path / "m.sock"), announce=False, answer_timeout=0.2)
    with Program(main, server), MonitorClient(server.path) as client:
        try:
            assert blocking.wait(10)
            stats, top = client.request("stats"), client.request("top")
        finally:
            unblock.release()
    for reply in (stats, top):
        assert reply["ok"] is False and "did not answer within 0.2 s" in reply["text"], reply


def test_a_command_pending_when_the_program_ends_is_answered_at_once(tmp_path):
    release = threading.Event()

    async def main(prog):
        prog.started.set()
        await yieldio.sleep(0)
        release.wait(30)  # the loop is busy in this, the last step of main

    server = MonitorServer(str(tmp_path / "m.sock"), announce=False, answer_timeout=30)
    prog = Program(main, server)
    replies = []
    with prog, MonitorClient(server.path) as client:
        def ask():
            try:
                replies.append(client.request("tree"))
            except BaseException as e:
                replies.append(repr(e))
        asker = threading.Thread(target=ask)
        asker.start()
        deadline = time.monotonic() + 10
        while not server._pending:  # the request waits for the loop
            assert time.monotonic() < deadline
            time.sleep(0.01)
        started = time.monotonic()
        release.set()
        asker.join(10)
    # Not the 30 s answer timeout: the run ended, and the monitor says so.
    assert time.monotonic() - started < 10
    assert replies == [{"ok": False, "text": "the program is shutting down"}]
    assert prog.error is None


FORKING_PROGRAM = textwrap.dedent("""
    import os, sys, time, yieldio

    async def main():
        pid = os.fork()
        if pid == 0:
            time.sleep(0.1)
            sys.exit(0)  # the child ends normally: the run's after_run hooks run in it
        await yieldio.to_thread(os.waitpid, pid, 0)
        print("reaped", flush=True)
        await yieldio.to_thread(sys.stdin.read)  # until the test closes stdin

    yieldio.run(main, monitor=True)
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_that_exits_leaves_the_parents_monitor_alone(tmp_path, mon_dir):
    # The child used to remove the parent's socket file and shut its
    # listener down: the parent could no longer be monitored.
    script = tmp_path / "forking.py"
    script.write_text(FORKING_PROGRAM)
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "reaped\n", proc.stderr.read()
        sock = mon_dir / f"{proc.pid}.sock"
        assert sock.exists()
        with MonitorClient(str(sock)) as client:
            assert client.request("stats")["ok"]
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
    assert proc.returncode == 0
    assert not sock.exists()  # the parent, which made it, removes it


def test_two_kernels_in_one_process_get_two_sockets(mon_dir):
    first, second = MonitorServer(announce=False), MonitorServer(announce=False)
    with Program(idle_until_stopped, first), Program(idle_until_stopped, second):
        assert first.path == str(mon_dir / f"{os.getpid()}.sock")
        assert second.path == str(mon_dir / f"{os.getpid()}-2.sock")
        for server in (first, second):
            with MonitorClient(server.path) as client:
                assert client.request("ps")["ok"]
    assert list(mon_dir.iterdir()) == []


def test_a_socket_file_removed_while_running_does_not_break_the_exit(tmp_path):
    async def main(prog):
        os.unlink(server.path)  # say, a cleaner of /tmp
        await idle_until_stopped(prog)

    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    prog = Program(main, server)
    with prog:
        pass
    assert prog.error is None


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("my notes"), "it is not a socket"),
    (None, "too long for a Unix socket"),
])
def test_a_bad_socket_path_fails_the_run_before_main(tmp_path, capsys, make, message):
    # It used to be printed as a failed instrument while main ran without a monitor.
    path = tmp_path / "m.sock" if make else tmp_path / ("x" * 120 + ".sock")
    if make:
        make(path)
    ran = []

    def main():
        ran.append(True)
        yield from yieldio.sleep(0)

    with pytest.raises(MonitorError, match=message):
        yieldio.run(main, monitor=str(path))
    assert ran == [] and capsys.readouterr().err == ""
    if make:
        assert path.read_text() == "my notes"


def test_a_socket_path_taken_after_construction_is_refused_at_run(tmp_path, capsys):
    path = str(tmp_path / "m.sock")
    late = MonitorServer(path, announce=False)
    with Program(idle_until_stopped, MonitorServer(path, announce=False)):
        yieldio.run(yieldio.sleep, 0, instruments=[late])  # runs on, without the monitor
    assert "another program's monitor already listens" in capsys.readouterr().err


def test_the_directory_follows_xdg_runtime_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("YIELDIO_MONITOR_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert monitor_dir() == str(tmp_path / "yieldio")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    assert monitor_dir() == os.path.join(tempfile.gettempdir(), f"yieldio-{os.getuid()}")


# -- the client -------------------------------------------------------------------------------
def fake_monitor(path, greeting):
    """A Unix socket server that sends ``greeting`` (bytes) to one client, then closes."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        conn.sendall(greeting)
        conn.close()
        listener.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("greeting, message", [
    (b"", "cannot talk to the monitor at .*: the program closed the monitor connection"),
    (b"not json\n", "cannot talk to the monitor"),
    (b'{"hello": "something-else"}\n', "is not a yieldio monitor"),
    (b"[1, 2]\n", "is not a yieldio monitor"),
])
def test_something_else_at_the_socket_is_a_clear_error(tmp_path, greeting, message):
    path = str(tmp_path / "other.sock")
    t = fake_monitor(path, greeting)
    with pytest.raises(MonitorError, match=message):
        MonitorClient(path)
    t.join(10)


def test_the_program_exiting_mid_session_ends_the_monitor_cleanly(tmp_path, monkeypatch, capsys):
    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    prog = Program(idle_until_stopped, server)

    class Keyboard:
        """stdin of a person: help, Ctrl-C (ignored), then a command after the program ended."""

        def __init__(self):
            self.lines = iter(["help\n", KeyboardInterrupt, "stats\n"])

        def readline(self):
            line = next(self.lines)
            if line is KeyboardInterrupt:
                raise KeyboardInterrupt
            if line == "stats\n":
                prog.__exit__()
            return line

        def isatty(self):
            return False

    monkeypatch.setattr(sys, "stdin", Keyboard())
    with prog:
        code = cmd_monitor([server.path])
    out, err = capsys.readouterr()
    assert code == 1
    assert "type 'help' for commands" in out and "where TASK" in out
    assert err.startswith("yieldio monitor: ") and "monitor connection" in err, err
    assert "Traceback" not in err


def test_interactive_monitor_on_a_pipe_ends_at_end_of_input(tmp_path):
    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    with Program(idle_until_stopped, server):
        proc = subprocess.run([sys.executable, "-m", "yieldio", "monitor", server.path],
                              input="where 1\n\nfrobnicate\ntop\n", capture_output=True,
                              text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"yieldio monitor: pid {os.getpid()} " in proc.stdout
    assert "Stack of <Task 1 'main'" in proc.stdout
    assert "CPU% is sampled" in proc.stdout  # top, not on a terminal: one view
    assert proc.stderr == "unknown command 'frobnicate'; try 'help'\n"


def test_the_interactive_monitor_greets_a_program_with_an_empty_argv(tmp_path, monkeypatch,
                                                                      capsys):
    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    monkeypatch.setattr(sys, "argv", [])  # what the server reports as the program's argv
    monkeypatch.setattr(sys, "stdin", io.StringIO("ps\nquit\n"))
    with Program(idle_until_stopped, server):
        code = cmd_monitor([server.path])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"yieldio monitor: pid {os.getpid()} (?) at {server.path}\n"), out
    assert "ID  PARENT  STATE" in out


def test_ctrl_c_stops_top_and_the_monitor_exits_cleanly(tmp_path):
    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    with Program(idle_until_stopped, server):
        proc = subprocess.Popen([sys.executable, "-m", "yieldio", "monitor", server.path,
                                 "-c", "top", "-n", "100", "-i", "60"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = ""
            while "CPU% is sampled" not in first:
                line = proc.stdout.readline()
                assert line, proc.stderr.read()
                first += line
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0 and err == "", err


def test_a_program_that_accepts_but_never_greets_is_reported_quickly(tmp_path, monkeypatch):
    from yieldio.debug import _monitor_client

    monkeypatch.setattr(_monitor_client, "HELLO_TIMEOUT", 0.2)
    path = str(tmp_path / "silent.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(path)
        silent.listen()  # connects succeed (backlog); nobody ever writes
        started = time.monotonic()
        with pytest.raises(MonitorError, match="did not greet within 0.2 s"):
            MonitorClient(path, timeout=30)
        assert time.monotonic() - started < 5
