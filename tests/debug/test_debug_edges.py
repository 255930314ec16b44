"""Edge cases of the tools that show what tasks are doing, found by a bug hunt."""

from __future__ import annotations

import json
import socket
import threading

import pytest

import yieldio
from yieldio._cli_debug import cmd_trace
from yieldio.debug import MonitorServer, format_stack

pytestmark = pytest.mark.timeout(10)


# -- the stack of the running task --------------------------------------------------
async def _look_at_myself():
    me = yieldio.current_task()
    frames = me.stack()
    return [f.function for f in frames], format_stack(me)


async def _calls_look():
    return await _look_at_myself()


@yieldio.coroutine
def _trampolined_look():
    x = yield _calls_look()  # trampolined call
    return x


def test_the_running_task_sees_the_functions_it_is_calling_now():
    # The running coroutine has no cr_await while it executes: the walk used
    # to stop at the task's outermost coroutine and drop every function that
    # led to the stack() call.
    async def main():
        return await _calls_look()

    names, text = yieldio.run(main)
    assert [n.rsplit(".", 1)[-1] for n in names] == ["main", "_calls_look", "_look_at_myself"]
    assert "return await _look_at_myself()" in text
    # The debugging calls themselves (format_stack, Task.stack) are left out.
    assert text.splitlines()[-1].strip() == "return [f.function for f in frames], format_stack(me)"


def test_the_running_task_sees_its_calls_across_a_trampoline():
    async def main():
        return await _trampolined_look()

    names, _ = yieldio.run(main)
    assert [n.rsplit(".", 1)[-1] for n in names] == [
        "main", "_trampolined_look", "_calls_look", "_look_at_myself"]


def test_another_tasks_stack_is_not_padded_with_the_callers_frames():
    async def main():
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(yieldio.sleep_forever, name="sleeper")
            await yieldio.sleep(0)
            names = [f.function for f in t.stack()]
            tg.cancel()
        return names

    assert yieldio.run(main) == ["sleep_forever", "_park_forever"]


# -- the monitor --------------------------------------------------------------------
def test_monitor_answers_deeply_nested_json_as_a_bad_request(tmp_path):
    # json.loads raises RecursionError (not ValueError) on "[[[[...": it used
    # to kill the connection's thread with a traceback on the program's stderr.
    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    started = threading.Event()
    answers: list[dict] = []

    async def main():
        async with yieldio.TaskGroup() as tg:
            def client():
                started.wait(5)
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(5)
                    s.connect(server.path)
                    f = s.makefile("rwb")
                    f.readline()  # hello
                    for line in (b"[" * 100_000 + b"\n", b'{"cmd": "help"}\n'):
                        f.write(line)
                        f.flush()
                        answers.append(json.loads(f.readline()))
                    f.close()

            job = tg.spawn(yieldio.to_thread, client)
            started.set()
            await job.join()

    yieldio.run(main, instruments=[server])
    assert answers[0]["ok"] is False and "bad request" in answers[0]["text"]
    assert answers[1]["ok"] is True and "commands:" in answers[1]["text"]


# -- trace view on malformed files --------------------------------------------------
@pytest.mark.parametrize("event", [
    {"ph": "C", "ts": 1, "name": "x", "args": [1, 2]},      # args not an object
    {"ph": "M", "name": "thread_name", "args": "abc"},
    {"ph": "X", "ts": 1, "dur": 2, "tid": [1]},             # unhashable track id
    {"ph": "s", "ts": 1, "id": {"a": 1}},                   # unhashable flow id
])
def test_trace_view_skips_malformed_events_instead_of_a_traceback(tmp_path, capsys, event):
    src = tmp_path / "t.json"
    good = {"ph": "X", "ts": 5, "dur": 1, "name": "<script>alert(1)</script>", "tid": 2}
    src.write_text(json.dumps({"traceEvents": [event, good]}))
    assert cmd_trace(["view", str(src), "-o", str(tmp_path / "t.html")]) == 0
    page = (tmp_path / "t.html").read_text()
    assert "<script>alert(1)" not in page and "\\u003cscript>alert(1)" in page
