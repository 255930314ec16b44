"""Chrome trace recording: tracks, steps, waits, flows, counters, the ring buffer."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict

import pytest

import yieldio
from yieldio.debug import TraceRecorder, trace_counter
from yieldio.debug._trace_html import render_html
from yieldio.testing import VirtualClock

# A task name no writer may choke on: a newline, a terminal escape sequence
# and a lone surrogate (a name decoded from a non-UTF-8 file name).
EVIL = "evil\n\x1b[2J\udcff"


def load(path):
    with open(path) as f:
        data = json.load(f)
    assert isinstance(data, dict) and isinstance(data["traceEvents"], list)
    return data


def names_by_tid(events):
    return {e["tid"]: e["args"]["name"] for e in events
            if e["ph"] == "M" and e["name"] == "thread_name"}


def strict_json(text: str):
    """json.loads as a browser's JSON.parse reads: NaN and Infinity are errors."""
    def refuse(name: str):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


async def ping(ev_in, ev_out, n):
    for _ in range(n):
        await ev_in.wait()
        ev_in.clear()
        ev_out.set()


async def small_program():
    async with yieldio.TaskGroup() as tg:
        a, b = yieldio.Event(), yieldio.Event()
        tg.spawn(ping, a, b, 3, name="ping")
        tg.spawn(ping, b, a, 3, name="pong")
        napper = tg.spawn(yieldio.sleep, 0.01, name="napper")
        a.set()
        await napper.join()
        trace_counter("bytes received", 100, add=True)
        trace_counter("bytes received", 50, add=True)
        trace_counter("queue depth", 7)


def test_trace_has_one_track_per_task_with_steps_waits_and_flows(tmp_path):
    path = tmp_path / "trace.json"
    yieldio.run(small_program, trace=str(path))
    data = load(path)
    events = data["traceEvents"]
    names = names_by_tid(events)
    assert names[0] == "kernel"
    by_name = {v.split(" (task")[0]: k for k, v in names.items()}
    assert {"main", "ping", "pong", "napper"} <= set(by_name)
    steps = defaultdict(list)
    waits = defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            assert e["dur"] >= 0 and e["ts"] >= 0 and e["pid"] == os.getpid()
            (steps if e["cat"] == "step" else waits)[e["tid"]].append(e)
    assert len(steps[by_name["ping"]]) >= 4  # 3 rounds + the start
    assert {w["name"] for w in waits[by_name["ping"]]} == {"Event.wait"}
    assert waits[by_name["napper"]][0]["name"].startswith("sleep until +0.01")
    assert "join task" in {w["name"][:9] for w in waits[by_name["main"]]}
    # Steps and waits of one task never overlap: a task is one thing at a time.
    for tid in steps:
        spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in steps[tid] + waits[tid])
        for (s1, e1), (s2, _) in zip(spans, spans[1:], strict=False):
            assert s2 >= e1 - 0.002, (tid, s1, e1, s2)
    # Spawns and joins are flows: every start has a finish with the same id.
    starts = {(e["cat"], e["id"]): e for e in events if e["ph"] == "s"}
    finishes = {(e["cat"], e["id"]): e for e in events if e["ph"] == "f"}
    assert starts.keys() == finishes.keys()
    cats = Counter(cat for cat, _ in starts)
    assert cats["spawn"] == 3 and cats["join"] >= 1
    spawn_targets = {finishes[k]["tid"] for k in starts if k[0] == "spawn"}
    assert spawn_targets == {by_name["ping"], by_name["pong"], by_name["napper"]}
    assert all(starts[k]["tid"] == by_name["main"] for k in starts if k[0] == "spawn")
    join = next(k for k in starts if k[0] == "join" and starts[k]["tid"] == by_name["napper"])
    assert finishes[join]["tid"] == by_name["main"] and finishes[join]["bp"] == "e"
    # Exits are instants, with how the task ended.
    exits = {e["tid"]: e["args"]["outcome"] for e in events if e["ph"] == "i"}
    assert exits[by_name["ping"]] == "done"
    # Counters: built-in ones and the program's own.
    counters = defaultdict(list)
    for e in events:
        if e["ph"] == "C":
            counters[e["name"]].append(e["args"]["value"])
    assert counters["bytes received"] == [100, 150]
    assert counters["queue depth"] == [7]
    assert max(counters["tasks"]) == 4 and "ready queue" in counters
    assert data["otherData"]["events_dropped"] == 0
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_trace_of_a_1000_task_run_is_valid_json_with_the_expected_tracks(tmp_path):
    path = tmp_path / "big.json"

    async def worker(i, sem):
        async with sem:
            await yieldio.sleep(0)

    async def main():
        sem = yieldio.Semaphore(10)
        async with yieldio.TaskGroup() as tg:
            for i in range(1000):
                tg.spawn(worker, i, sem, name=f"worker-{i}")

    yieldio.run(main, trace=str(path))
    events = load(path)["traceEvents"]
    names = names_by_tid(events)
    workers = {tid for tid, n in names.items() if n.startswith("worker-")}
    assert len(workers) == 1000 and len(names) == 1002  # + main + kernel
    stepped = {e["tid"] for e in events if e["ph"] == "X" and e["cat"] == "step"}
    assert workers <= stepped
    waited = {e["tid"] for e in events if e["ph"] == "X" and e["name"] == "Semaphore.acquire"}
    assert len(waited) >= 900  # most had to wait for a permit


def test_ring_buffer_bounds_memory_and_keeps_the_newest(tmp_path):
    path = tmp_path / "ring.json"
    rec = TraceRecorder(path, max_events=500)

    async def main():
        for _ in range(2000):
            await yieldio.sleep(0)
        trace_counter("last", 1)

    yieldio.run(main, instruments=[rec])
    data = load(path)
    timed = [e for e in data["traceEvents"] if e["ph"] != "M"]
    assert len(timed) == 500 and len(rec._buf) == 500
    assert data["otherData"]["events_dropped"] == rec.recorded - 500 > 0
    assert timed[-1]["name"] in ("main", "exit", "tasks", "ready queue")
    assert any(e["ph"] == "C" and e["name"] == "last" for e in timed)
    # The task keeps its name even though its spawn event was dropped.
    main_tid = next(e["tid"] for e in timed if e["ph"] == "X" and e["cat"] == "step")
    assert not any(e["ph"] == "N" for e in timed)
    assert names_by_tid(data["traceEvents"])[main_tid] == f"main (task {main_tid})"


def test_virtual_time_is_in_args_real_time_is_the_timeline(tmp_path):
    path = tmp_path / "v.json"

    async def main():
        await yieldio.sleep(3600)
        await yieldio.sleep(1)

    yieldio.run(main, trace=str(path), clock=VirtualClock(autojump=True))
    events = load(path)["traceEvents"]
    steps = [e for e in events if e["ph"] == "X" and e["cat"] == "step"]
    assert [e["args"]["clock"] for e in steps] == [0.0, 3600.0, 3601.0]
    # An hour of virtual time took (much) less than an hour of timeline.
    assert steps[-1]["ts"] < 3600 * 1e6


def test_trace_counter_is_a_no_op_without_a_trace():
    trace_counter("x", 1)
    assert trace_counter.enabled is False

    async def main():
        trace_counter("x", 1, add=True)
        return trace_counter.enabled

    assert yieldio.run(main) is False
    assert yieldio.run(main, instruments=[TraceRecorder()]) is True
    assert trace_counter.enabled is False


def test_recorder_without_a_path_keeps_events_in_memory():
    rec = TraceRecorder(wakeups=True)
    yieldio.run(small_program, instruments=[rec])
    events = list(rec.trace_events())
    assert any(e["ph"] == "s" and e["cat"] == "wakeup" for e in events)
    starts = {e["id"] for e in events if e["ph"] == "s"}
    assert starts == {e["id"] for e in events if e["ph"] == "f"}


def test_trace_to_a_missing_directory_fails_before_the_program_runs(tmp_path):
    ran = []

    def main():  # a generator: no coroutine left unawaited by the refused run
        ran.append(1)
        yield from yieldio.sleep(0)

    with pytest.raises(FileNotFoundError, match="directory .* does not exist"):
        yieldio.run(main, trace=str(tmp_path / "no" / "such" / "t.json"))
    assert ran == []


def test_bad_ring_size_is_refused():
    with pytest.raises(ValueError, match="max_events must be a positive int"):
        TraceRecorder(max_events=0)


def test_a_failing_task_and_a_cancelled_task_say_so(tmp_path):
    path = tmp_path / "f.json"

    async def fails():
        await yieldio.sleep(0)
        raise KeyError("nope")

    async def main():
        try:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(fails, name="fails")
                tg.spawn(yieldio.sleep_forever, name="victim")
        except ExceptionGroup:
            pass

    yieldio.run(main, trace=str(path))
    events = load(path)["traceEvents"]
    names = {v.split(" (task")[0]: k for k, v in names_by_tid(events).items()}
    exits = {e["tid"]: e["args"]["outcome"] for e in events if e["ph"] == "i"}
    assert exits[names["fails"]] == "failed: KeyError: 'nope'"
    assert exits[names["victim"]] == "cancelled"


def test_a_task_name_with_a_lone_surrogate_does_not_lose_the_trace(tmp_path):
    path = tmp_path / "trace.json"

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(yieldio.sleep, 0, name=EVIL)
        raise KeyError("boom")  # a crashed run's trace is written too

    with pytest.raises(KeyError):
        yieldio.run(main, trace=str(path))
    trace = strict_json(path.read_text(encoding="utf-8"))
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


@pytest.mark.parametrize("n_steps", [4096 - 40, 4096 * 2])
def test_written_file_is_valid_json_at_any_size(tmp_path, n_steps):
    path = tmp_path / "n.json"
    rec = TraceRecorder(path)

    async def main():
        for _ in range(n_steps):
            await yieldio.sleep(0)

    yieldio.run(main, instruments=[rec])
    data = load(path)
    assert len(data["traceEvents"]) == len(list(rec.trace_events()))
    assert data["traceEvents"] == json.loads(json.dumps(list(rec.trace_events())))


def test_counter_values_that_json_cannot_hold_do_not_lose_the_trace(tmp_path):
    # A Decimal (or a numpy integer) used to be kept as is, and json failed
    # on it when the run ended: the whole trace was lost, far from the cause.
    import decimal

    path = tmp_path / "t.json"

    async def main():
        trace_counter("ratio", decimal.Decimal("1.5"))
        trace_counter("bytes", decimal.Decimal(2), add=True)
        trace_counter("bytes", 3, add=True)
        with pytest.raises(TypeError, match="'label'.*must be a number"):
            trace_counter("label", "high")

    yieldio.run(main, trace=str(path))
    counters = [(e["name"], e["args"]["value"]) for e in json.loads(path.read_text())["traceEvents"]
                if e["ph"] == "C" and e["name"] in ("ratio", "bytes")]
    assert counters == [("ratio", 1.5), ("bytes", 2.0), ("bytes", 5.0)]


def test_a_counter_value_that_is_no_number_at_all_is_refused(tmp_path):
    async def main():
        with pytest.raises(TypeError, match="'peers'.*must be a number, not object"):
            trace_counter("peers", object())
        with pytest.raises(TypeError, match="'peers'.*not list"):
            trace_counter("peers", [1, 2])

    yieldio.run(main, trace=str(tmp_path / "t.json"))


class Num:
    """A number type that float() converts (like a numpy float)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __float__(self) -> float:
        return self.value


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_counter_is_refused_not_written_as_invalid_json(tmp_path, value):
    path = tmp_path / "trace.json"

    async def main():
        trace_counter("fine", 1.5)
        with pytest.raises(ValueError, match="finite"):
            trace_counter("ratio", value)
        with pytest.raises(ValueError, match="finite"):
            trace_counter("ratio", Num(value))

    yieldio.run(main, trace=str(path))
    events = strict_json(path.read_text(encoding="utf-8"))["traceEvents"]
    assert [e["args"]["value"] for e in events if e["name"] == "fine"] == [1.5]
    assert not [e for e in events if e["name"] == "ratio"]


def test_a_trace_that_cannot_be_written_at_the_end_is_reported_not_raised(tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    path = out_dir / "t.json"

    async def main():
        out_dir.rmdir()  # gone while the program ran
        return "result"

    assert yieldio.run(main, trace=str(path)) == "result"
    err = capsys.readouterr().err
    assert err.startswith(f"yieldio: could not write the trace to {str(path)!r}: ")
    assert "No such file or directory" in err
    assert not out_dir.exists()  # and no temporary file was left behind (nor a directory)


# -- a trace from a program stopped by SIGTERM (docs/seeing-inside.md) ---------------------

def _sigterm_example() -> str:
    """The page's example that ends its run on SIGTERM (so that the trace is written)."""
    doc = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "seeing-inside.md")
    with open(doc, encoding="utf-8") as f:
        text = f.read()
    after = text.split("**Stopped by SIGTERM?**", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def _wait_until_it_handles_sigterm(proc, timeout=20.0):
    """Until the process has a handler for SIGTERM (before that, SIGTERM kills it)."""
    import signal
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        with open(f"/proc/{proc.pid}/status") as f:
            caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.02)
    raise AssertionError("the program never started handling SIGTERM")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc (Linux)")
@pytest.mark.parametrize("how", ["python app.py", "yieldio run --trace"])
def test_the_documented_way_to_get_a_trace_when_stopped_by_sigterm(tmp_path, how):
    import signal
    import subprocess
    import sys

    (tmp_path / "app.py").write_text(_sigterm_example())
    cmd = [sys.executable, "app.py"] if how == "python app.py" else [
        sys.executable, "-m", "yieldio", "run", "--trace", "trace.json", "app.py"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        _wait_until_it_handles_sigterm(proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0 and err == "", err
    events = load(tmp_path / "trace.json")["traceEvents"]
    names = {v.split(" (task")[0]: k for k, v in names_by_tid(events).items()}
    exits = {e["tid"]: e["args"]["outcome"] for e in events if e["ph"] == "i"}
    assert exits[names["serve"]] == "cancelled"
