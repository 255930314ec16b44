"""Regression tests for the seeing-inside tools: the run command's argv, traces
that must stay writable and readable, tables that must stay one line per task,
and stacks that must stay readable when deep."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading

import pytest

import yieldio
from yieldio.debug import MonitorClient, MonitorServer, TraceRecorder, format_stack
from yieldio.debug._stack import MAX_FRAMES
from yieldio.debug._trace_html import render_html

# A name that a table row must not print raw: a newline, a terminal escape
# sequence and a lone surrogate (a name decoded from a non-UTF-8 file name).
EVIL = "evil\n\x1b[2J\udcff"


def _strict_json(text: str):
    """json.loads as a browser's JSON.parse reads: NaN and Infinity are errors."""
    def refuse(name: str):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


# -- python -m yieldio run ---------------------------------------------------------
def test_run_passes_a_double_dash_after_the_script_on_to_it(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        import json, sys

        async def main():
            print(json.dumps(sys.argv[1:]))

        if __name__ == "__main__":
            import yieldio
            yieldio.run(main)
    """))
    for args in (["--", "-x"], ["a", "--", "b"], ["--"]):
        plain = subprocess.run([sys.executable, str(script), *args], capture_output=True,
                               text=True, timeout=30)
        under = subprocess.run([sys.executable, "-m", "yieldio", "run", str(script), *args],
                               capture_output=True, text=True, timeout=30)
        assert under.returncode == 0, under.stderr
        # What 'python app.py ARGS' gives the script, 'yieldio run app.py ARGS' gives too.
        assert json.loads(under.stdout) == json.loads(plain.stdout) == args


# -- traces --------------------------------------------------------------------------
def test_a_trace_path_that_is_a_directory_is_refused_before_the_script_runs(tmp_path):
    ran = tmp_path / "ran"
    script = tmp_path / "app.py"
    script.write_text(f"open({str(ran)!r}, 'w').close()\nasync def main():\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "yieldio", "run", "--trace", str(tmp_path),
                           str(script)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "is a directory" in proc.stderr, proc.stderr
    assert not ran.exists()  # refused up front, not after the whole run
    with pytest.raises(IsADirectoryError):
        TraceRecorder(tmp_path)


def test_a_task_name_with_a_lone_surrogate_does_not_lose_the_trace(tmp_path):
    path = tmp_path / "trace.json"

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.sleep, 0, name=EVIL)
        raise KeyError("boom")  # a crashed run's trace is written too

    with pytest.raises(KeyError):
        yieldio.run(main, trace=str(path))
    trace = _strict_json(path.read_text(encoding="utf-8"))
    events = trace["traceEvents"]
    names = {e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    assert f"{EVIL} (task 2)" in names
    for e in events:  # the Chrome trace format's required fields
        assert {"ph", "pid", "tid", "name"} <= e.keys(), e
        if e["ph"] != "M":
            assert isinstance(e["ts"], (int, float)), e
    assert any(e["ph"] == "i" and "KeyError" in e["args"]["outcome"] for e in events)
    html = render_html(trace)  # and the viewer takes it
    assert "evil" in html


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_counter_is_refused_not_written_as_invalid_json(tmp_path, value):
    path = tmp_path / "trace.json"

    async def main():
        yieldio.debug.trace_counter("fine", 1.5)
        with pytest.raises(ValueError, match="finite"):
            yieldio.debug.trace_counter("ratio", value)
        with pytest.raises(ValueError, match="finite"):
            yieldio.debug.trace_counter("ratio", _Num(value))

    yieldio.run(main, trace=str(path))
    events = _strict_json(path.read_text(encoding="utf-8"))["traceEvents"]
    assert [e["args"]["value"] for e in events if e["name"] == "fine"] == [1.5]
    assert not [e for e in events if e["name"] == "ratio"]


class _Num:
    """A number type that float() converts (like a numpy float)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __float__(self) -> float:
        return self.value


def test_trace_view_drops_numbers_a_browser_cannot_parse(tmp_path):
    # json.load accepts NaN, Infinity and 1e400; the page's JSON.parse does
    # not: one such number made the whole page blank.
    src = tmp_path / "foreign.json"
    src.write_text('[{"ph":"X","ts":1,"dur":2,"tid":1,"name":"ok"},'
                   '{"ph":"X","ts":NaN,"dur":1,"tid":1,"name":"a"},'
                   '{"ph":"X","ts":1e400,"dur":1,"tid":1,"name":"b"},'
                   '{"ph":"X","ts":2,"dur":Infinity,"tid":1,"name":"c"},'
                   f'{{"ph":"X","ts":{10 ** 400},"dur":1,"tid":1,"name":"d"}},'
                   '{"ph":"C","ts":3,"name":"n","args":{"value":-Infinity}}]')
    out = tmp_path / "page.html"
    proc = subprocess.run([sys.executable, "-m", "yieldio", "trace", "view", str(src),
                           "-o", str(out)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text(encoding="utf-8")
    data = re.search(r'<script id="trace-data" type="application/json">(.*?)</script>',
                     page, re.S)
    assert data is not None
    model = _strict_json(data.group(1))
    assert model["end"] == 2.0  # 'c' keeps its start; its infinite duration counts as 0
    assert sum(len(t["slices"]) for t in model["tracks"]) == 2


# -- tables --------------------------------------------------------------------------
def test_the_task_table_keeps_one_line_per_task_whatever_the_names():
    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.sleep, 3600, name=EVIL)
            await yieldio.sleep(0)
            table = yieldio.debug.format_task_table()
            tree = yieldio.debug.format_task_tree()
            tg.cancel()
        return table, tree

    table, tree = yieldio.run(main)
    lines = table.splitlines()
    assert len(lines) == 3, table  # the header, main, the evil one
    assert "evil\\n\\x1b[2J\\udcff" in lines[2]
    assert "\x1b" not in table and "\udcff" not in table
    table.encode("utf-8")  # printable on a strict UTF-8 terminal
    assert len(tree.splitlines()) == 4 and "\x1b" not in tree


class _Program:
    """Run ``main(prog)`` under yieldio with a monitor, in a background thread."""

    def __init__(self, main, server) -> None:
        self.started = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=lambda: yieldio.run(main, self, instruments=[server]))

    def __enter__(self):
        self.thread.start()
        assert self.started.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_monitor_ps_and_top_escape_names_too(tmp_path):
    async def busy(prog):
        while not prog.stop.is_set():
            await yieldio.sleep(0)

    async def main(prog):
        async with yieldio.TaskGroup() as tg:
            tg.spawn(busy, prog, name=EVIL)
            prog.started.set()
            while not prog.stop.is_set():
                await yieldio.sleep(0.01)

    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    with _Program(main, server), MonitorClient(server.path) as client:
        ps = client.request("ps")["text"]
        top = client.request("top")["text"]
        client.request("top", "stop")
    for text in (ps, top):
        assert "\x1b" not in text and "\udcff" not in text and "evil\n" not in text, text
    assert "evil\\n\\x1b[2J\\udcff" in ps
    assert "evil\\n\\x1b[2J" in top


# -- stacks --------------------------------------------------------------------------
async def _recurse(n: int, ev: yieldio.Event) -> None:
    if n == 0:
        await ev.wait()
        return
    await _recurse(n - 1, ev)


def test_format_stack_folds_repeated_frames_like_a_traceback():
    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(_recurse, 200, ev)
            await yieldio.sleep(0)
            frames, text = t.stack(), format_stack(t)
            ev.set()
        return frames, text

    frames, text = yieldio.run(main)
    assert len(frames) > 200  # the data keeps every frame
    lines = text.splitlines()
    assert len(lines) < 20, text
    assert lines[1:7:2] == [lines[1]] * 3 and "in _recurse" in lines[1]
    assert "  [Previous line repeated 197 more times]" in lines
    assert "in Event.wait" in text  # the innermost frames are still there


def _deep(n, ev):
    if n == 0:
        yield from ev.wait()
        return 0
    return (yield _deep(n - 1, ev)) + 1


def test_the_cut_marker_of_a_deep_stack_is_not_shown_as_a_coroutine():
    depth = MAX_FRAMES + 10

    async def main():
        ev = yieldio.Event()
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(_deep, depth, ev)
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


def test_the_interactive_monitor_greets_a_program_with_an_empty_argv(tmp_path, monkeypatch,
                                                                      capsys):
    import io

    from yieldio._cli_debug import cmd_monitor

    async def main(prog):
        prog.started.set()
        while not prog.stop.is_set():
            await yieldio.sleep(0.01)

    server = MonitorServer(str(tmp_path / "m.sock"), announce=False)
    monkeypatch.setattr(sys, "argv", [])  # what the server reports as the program's argv
    monkeypatch.setattr(sys, "stdin", io.StringIO("ps\nquit\n"))
    with _Program(main, server):
        code = cmd_monitor([server.path])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"yieldio monitor: pid {os.getpid()} (?) at {server.path}\n"), out
    assert "ID  PARENT  STATE" in out


def test_run_refuses_a_main_that_needs_arguments_with_a_usage_error(tmp_path):
    script = tmp_path / "app.py"
    script.write_text("async def main(port):\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "yieldio", "run", str(script), "8080"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.startswith("yieldio run: main in ") and "needs arguments" in proc.stderr
    assert "Traceback" not in proc.stderr
