"""Timeline traces in the Chrome trace event format (Perfetto, chrome://tracing).

``yieldio.run(main, trace="trace.json")`` records, for every task:

* a track (``tid`` = task id, named after the task);
* a complete slice (``"ph": "X"``) for each step -- the code it ran between
  two yields -- and a slice in category ``wait`` for what it waited on in
  between ("Event.wait", "read fd 7", "sleep until +0.50 s" ...);
* flows (``"s"``/``"f"``) from a parent's step to its child's first step
  (spawn) and from a task's last step to the step of the task its exit woke
  (join: ``task.join()`` or the end of a ``TaskGroup``);
* an instant (``"i"``) when it exits, saying how;

plus a ``kernel`` track (tid 0) with the time the loop spent blocked in
``epoll_wait``, counters for the number of live tasks and the ready queue,
and any counter the program reports with :func:`trace_counter`.

Timestamps are real time (``time.perf_counter``, in µs from the start of
the run), even under a virtual clock, whose time is then added to each
step's ``args`` as ``clock``. Memory is bounded: events go to a ring buffer
(``collections.deque(maxlen=max_events)``, one million by default) and the
oldest are dropped on long runs; the file is written when the run ends::

    yieldio.run(main, trace="trace.json")
    # then open https://ui.perfetto.dev, or:
    #   python -m yieldio trace view trace.json -o trace.html
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from math import isfinite
from typing import Any

from .. import _state
from .._task import RUNNING
from ._tree import describe_wait

__all__ = ["TraceRecorder", "trace_counter", "DEFAULT_MAX_EVENTS"]

DEFAULT_MAX_EVENTS = 1_000_000

_perf = time.perf_counter

# Active recorders by kernel thread id. trace_counter() tests this dict's
# truth first, so a program without a trace pays one global load and one
# truth test per call.
_recorders: dict[int, TraceRecorder] = {}


def trace_counter(name: str, value: float, *, add: bool = False) -> None:
    """Record counter ``name`` = ``value`` in the active trace (no-op without one).

    With ``add=True`` the value is added to the counter's running total --
    what I/O code wants for bytes::

        yieldio.debug.trace_counter("bytes received", len(data), add=True)

    Perfetto draws each counter name as its own track. A call costs ~0.1 µs
    without a trace; on a hot path, test the function attribute first
    (~20 ns)::

        if trace_counter.enabled:
            trace_counter("bytes sent", n, add=True)
    """
    if not _recorders:
        return
    rec = _recorders.get(threading.get_ident())
    if rec is not None:
        rec.counter(name, value, add=add)


#: True while any trace is being recorded (in any thread).
trace_counter.enabled = False  # type: ignore[attr-defined]


def _counter_value(name: str, value: Any) -> float:
    """A counter value the trace file can hold, checked when it is recorded.

    The file is written as JSON when the run ends: a Decimal or a numpy
    integer kept as is would make that write fail and lose the whole trace,
    far from the call that caused it. Anything ``float()`` accepts is
    converted here; anything else -- and NaN or an infinity, which JSON
    cannot hold -- is refused at the call.
    """
    if not isinstance(value, (str, bytes, bytearray)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            pass
        else:
            _check_finite(name, number)
            return number
    raise TypeError(f"trace_counter({name!r}, ...): the value must be a number, "
                    f"not {type(value).__name__} {value!r}")


def _check_finite(name: str, value: float) -> None:
    """Refuse NaN and infinities: JSON has no such numbers.

    Python would write them as ``NaN``/``Infinity``, which Perfetto,
    chrome://tracing and the HTML viewer refuse: one bad sample would make
    the whole trace file unreadable.
    """
    if not isfinite(value):
        raise ValueError(f"trace_counter({name!r}, ...): the value must be a finite "
                         f"number, not {value!r}")


class TraceRecorder:
    """Instrument that records a timeline and writes it as Chrome trace JSON.

    ::

        rec = yieldio.debug.TraceRecorder("trace.json", max_events=200_000)
        yieldio.run(main, instruments=[rec])

    ``path`` may be None: then nothing is written and the events are read
    with :meth:`trace_events` (or written later with :meth:`write`).
    ``wakeups=True`` adds a flow for every wake-up of a task by another
    (``Event.set`` -> ``Event.wait``, a queue hand-off ...), not only joins.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 max_events: int = DEFAULT_MAX_EVENTS, wakeups: bool = False) -> None:
        if not isinstance(max_events, int) or max_events < 1:
            raise ValueError(f"max_events must be a positive int, not {max_events!r}")
        self.path = os.path.abspath(os.fspath(path)) if path is not None else None
        if self.path is not None:
            parent = os.path.dirname(self.path)
            if not os.path.isdir(parent):
                raise FileNotFoundError(f"cannot write the trace to {self.path!r}: "
                                        f"directory {parent!r} does not exist")
            if os.path.isdir(self.path):
                # Otherwise found only when the run ends, and the trace is lost.
                raise IsADirectoryError(f"cannot write the trace to {self.path!r}: "
                                        "it is a directory")
            if not os.access(parent, os.W_OK):
                raise PermissionError(f"cannot write the trace to {self.path!r}: "
                                      f"directory {parent!r} is not writable")
        self.max_events = max_events
        self.wakeups = wakeups
        # Events are tuples, converted to JSON objects only when written:
        #   ("X", tid, start, end, name, cat, args)   a slice
        #   ("i", tid, t, name, args)                 an instant
        #   ("s"/"f", tid, t, flow_id, cat)           a flow's ends
        #   ("C", 0, t, name, value)                  a counter sample
        #   ("N", tid, t, name)                       a task's name (at spawn/rename)
        self._buf: deque[tuple[Any, ...]] = deque(maxlen=max_events)
        self._append = self._buf.append
        self.recorded = 0  # events ever recorded; recorded - len(buffer) were dropped
        self._t0 = 0.0
        self._t_end: float | None = None
        self._kernel: Any = None
        self._clock_now: Any = None
        self._step_start = 0.0
        self._waiting: dict[int, tuple[float, str]] = {}
        self._flow_in: dict[int, tuple[int, str]] = {}
        self._flow_ids = 0
        self._totals: dict[str, float] = {}
        self._live = 0
        self._last_counts = (-1, -1)
        self._poll_start = 0.0
        self._thread_id: int | None = None

    # -- hooks -------------------------------------------------------------------
    def before_run(self) -> None:
        """Instrument hook: start recording."""
        if self._kernel is None:
            self._start()

    def _start(self) -> None:
        # The kernel spawns the main task before it calls before_run: the
        # first hook to run starts the recording.
        k = _state.current_kernel()
        self._kernel = k
        from .._timers import SystemClock

        # Real time is the timeline; a virtual clock's time goes in args.
        self._clock_now = None if type(k.clock) is SystemClock else k.clock_now
        self._t0 = _perf()
        self._thread_id = threading.get_ident()
        _recorders[self._thread_id] = self
        trace_counter.enabled = True  # type: ignore[attr-defined]

    def after_run(self) -> None:
        """Instrument hook: stop recording and write the trace file (if a path was given)."""
        end = self._t_end = _perf()
        append = self._append
        for tid, (start, desc) in self._waiting.items():
            append(("X", tid, start, end, desc, "wait", None))
            self.recorded += 1
        self._waiting.clear()
        if self._thread_id is not None:
            _recorders.pop(self._thread_id, None)
            trace_counter.enabled = bool(_recorders)  # type: ignore[attr-defined]
        self._kernel = None
        if self.path is not None:
            try:
                self.write(self.path)
            except OSError as exc:
                print(f"yieldio: could not write the trace to {self.path!r}: {exc}",
                      file=sys.stderr)

    def task_spawned(self, task: Any) -> None:
        """Instrument hook: a task was created (an instant event, and its row's name)."""
        if self._kernel is None:
            self._start()
        now = _perf()
        self._live += 1
        self._append(("N", task.id, now, task.name))
        self.recorded += 1
        parent = self._kernel.current
        if parent is not None:
            self._flow_ids += 1
            fid = self._flow_ids
            self._append(("s", parent.id, now, fid, "spawn"))
            self.recorded += 1
            self._flow_in[task.id] = (fid, "spawn")

    def task_scheduled(self, task: Any) -> None:
        """Instrument hook: a task became ready (a flow arrow to its next step)."""
        cur = self._kernel.current
        if cur is None or cur is task or task.id in self._flow_in:
            return
        if cur._state is not RUNNING:
            cat = "join"  # woken by the exit of the task whose step is ending
        elif self.wakeups:
            cat = "wakeup"
        else:
            return
        self._flow_ids += 1
        fid = self._flow_ids
        self._append(("s", cur.id, _perf(), fid, cat))
        self.recorded += 1
        self._flow_in[task.id] = (fid, cat)

    def before_task_step(self, task: Any) -> None:
        """Instrument hook: a task step begins."""
        start = self._step_start = _perf()
        tid = task.id
        if self._waiting:
            w = self._waiting.pop(tid, None)
            if w is not None:
                self._append(("X", tid, w[0], start, w[1], "wait", None))
                self.recorded += 1
        if self._flow_in:
            f = self._flow_in.pop(tid, None)
            if f is not None:
                self._append(("f", tid, start, f[0], f[1]))
                self.recorded += 1

    def after_task_step(self, task: Any) -> None:
        """Instrument hook: a task step ends (one slice on the task's row)."""
        end = _perf()
        clock = self._clock_now
        args = {"clock": round(clock(), 6)} if clock is not None else None
        self._append(("X", task.id, self._step_start, end, task.name, "step",
                      args))
        self.recorded += 1
        if task._wait is not None:
            self._waiting[task.id] = (end, describe_wait(task, detail=False))

    def task_exited(self, task: Any) -> None:
        """Instrument hook: a task ended (an instant event with its outcome)."""
        self._live -= 1
        state = task._state
        exc = task._exc if state == "failed" else None
        how = f"{state}: {type(exc).__name__}: {exc}" if exc is not None else state
        self._append(("i", task.id, _perf(), "exit", {"outcome": how}))
        self.recorded += 1
        self._waiting.pop(task.id, None)

    def before_io_wait(self, timeout: float) -> None:
        """Instrument hook: the kernel starts waiting for I/O."""
        self._poll_start = _perf()

    def after_io_wait(self, timeout: float) -> None:
        """Instrument hook: the I/O wait ended (one slice on the kernel's row)."""
        now = _perf()
        append = self._append
        if timeout != 0:
            append(("X", 0, self._poll_start, now, "epoll_wait", "io",
                    {"timeout": "none" if timeout < 0 else round(timeout, 6)}))
            self.recorded += 1
        counts = (self._live, len(self._kernel.ready))
        if counts != self._last_counts:
            last = self._last_counts
            self._last_counts = counts
            if counts[0] != last[0]:
                append(("C", 0, now, "tasks", counts[0]))
                self.recorded += 1
            if counts[1] != last[1]:
                append(("C", 0, now, "ready queue", counts[1]))
                self.recorded += 1

    # -- counters ----------------------------------------------------------------
    def counter(self, name: str, value: float, *, add: bool = False) -> None:
        """Record a counter sample now (see :func:`trace_counter`)."""
        if type(value) is float:
            if not isfinite(value):
                _check_finite(name, value)
        elif type(value) is not int:
            value = _counter_value(name, value)
        if add:
            value = self._totals[name] = self._totals.get(name, 0) + value
        self._append(("C", 0, _perf(), str(name), value))
        self.recorded += 1

    # -- output ------------------------------------------------------------------
    @property
    def dropped(self) -> int:
        """How many of the oldest events the ring buffer has dropped."""
        return self.recorded - len(self._buf)

    def _metadata(self, events: list[tuple[Any, ...]], pid: int) -> Iterator[dict[str, Any]]:
        # Names are not in the ring's metadata (it would be evicted): they
        # come from the spawn ("N") events and, when those were dropped, from
        # the step slices, which carry the task's name.
        names: dict[int, str] = {0: "kernel"}
        for ev in events:
            kind = ev[0]
            if kind == "N":
                names[ev[1]] = ev[3]
            elif kind == "X" and ev[5] == "step" and ev[1] not in names:
                names[ev[1]] = ev[4]
            elif ev[1] not in names:
                names[ev[1]] = f"task {ev[1]}"
        yield {"ph": "M", "pid": pid, "tid": 0, "name": "process_name",
               "args": {"name": f"yieldio {os.path.basename(sys.argv[0]) or 'program'}"}}
        for tid, name in names.items():
            label = name if tid == 0 else f"{name} (task {tid})"
            yield {"ph": "M", "pid": pid, "tid": tid, "name": "thread_name",
                   "args": {"name": label}}
            yield {"ph": "M", "pid": pid, "tid": tid, "name": "thread_sort_index",
                   "args": {"sort_index": tid}}

    @staticmethod
    def _to_dict(ev: tuple[Any, ...], pid: int, t0: float) -> dict[str, Any] | None:
        kind = ev[0]
        if kind == "X":
            out: dict[str, Any] = {"ph": "X", "pid": pid, "tid": ev[1],
                                   "ts": round((ev[2] - t0) * 1e6, 3),
                                   "dur": round((ev[3] - ev[2]) * 1e6, 3), "name": ev[4],
                                   "cat": ev[5]}
            if ev[6]:
                out["args"] = ev[6]
            return out
        ts = round((ev[2] - t0) * 1e6, 3)
        if kind == "i":
            return {"ph": "i", "s": "t", "pid": pid, "tid": ev[1], "ts": ts, "name": ev[3],
                    "cat": "task", "args": ev[4]}
        if kind == "s":
            return {"ph": "s", "pid": pid, "tid": ev[1], "ts": ts, "id": ev[3], "name": ev[4],
                    "cat": ev[4]}
        if kind == "f":
            return {"ph": "f", "bp": "e", "pid": pid, "tid": ev[1], "ts": ts, "id": ev[3],
                    "name": ev[4], "cat": ev[4]}
        if kind == "C":
            return {"ph": "C", "pid": pid, "tid": 0, "ts": ts, "name": ev[3],
                    "args": {"value": ev[4]}}
        return None  # "N": folded into the metadata

    def trace_events(self) -> Iterator[dict[str, Any]]:
        """The events as Chrome trace JSON objects: metadata first, then the ring.

        ::

            names = {e["tid"]: e["args"]["name"] for e in rec.trace_events()
                     if e["ph"] == "M" and e["name"] == "thread_name"}
        """
        pid, t0 = os.getpid(), self._t0
        events = list(self._buf)
        yield from self._metadata(events, pid)
        for ev in events:
            out = self._to_dict(ev, pid, t0)
            if out is not None:
                yield out

    def _json_items(self) -> Iterator[str]:
        """trace_events() as JSON texts; slices (most of a trace) without a dict each."""
        pid, t0 = os.getpid(), self._t0
        dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        quoted: dict[str, str] = {}  # names repeat: quote each once
        events = list(self._buf)
        for meta in self._metadata(events, pid):
            yield dumps(meta)
        head = f'{{"ph":"X","pid":{pid},"tid":'
        for ev in events:
            if ev[0] == "X":
                name = ev[4]
                q = quoted.get(name)
                if q is None:
                    q = quoted[name] = dumps(name)
                tail = f',"args":{dumps(ev[6])}}}' if ev[6] else "}"
                yield (f'{head}{ev[1]},"ts":{round((ev[2] - t0) * 1e6, 3)},'
                       f'"dur":{round((ev[3] - ev[2]) * 1e6, 3)},"name":{q},'
                       f'"cat":"{ev[5]}"{tail}')
            else:
                out = self._to_dict(ev, pid, t0)
                if out is not None:
                    yield dumps(out)

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the trace file (JSON object format), atomically (temp file + rename)."""
        path = os.fspath(path)
        tmp = f"{path}.{os.getpid()}.tmp"
        end = self._t_end if self._t_end is not None else _perf()
        other = {"generator": "yieldio", "events_recorded": self.recorded,
                 "events_dropped": self.dropped, "max_events": self.max_events,
                 "duration_us": round((end - self._t0) * 1e6, 3)}
        dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        try:
            # backslashreplace: a lone surrogate (a task named after a
            # non-UTF-8 file name, decoded with surrogateescape) is written
            # as the JSON escape "\udcff" -- the same string again on
            # reading -- instead of failing the write and losing the trace.
            with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as f:
                f.write('{"displayTimeUnit":"ms","otherData":' + dumps(other)
                        + ',"traceEvents":[\n')
                chunk: list[str] = []
                sep = ""
                for text in self._json_items():
                    chunk.append(text)
                    if len(chunk) >= 4096:
                        f.write(sep + ",\n".join(chunk))
                        sep = ",\n"
                        chunk.clear()
                if chunk:
                    f.write(sep + ",\n".join(chunk))
                f.write("\n]}\n")
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
