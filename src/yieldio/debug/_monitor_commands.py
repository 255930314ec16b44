"""What the monitor's commands compute and how they print.

The monitor server (:mod:`._monitor`) owns the socket, its threads and the
dispatch of requests; this module holds what the commands themselves do,
and touches no socket: the command list and its help text, the functions
run on the kernel thread for a snapshot (counters, ``where``/``cancel``),
``top``'s sampler thread and table, ``stats``' text, and the ``ps``/``tree``
name filter. A reader changing what ``top`` shows reads this; one changing
how a request reaches the loop reads the server::

    _top_table(counts, tasks, samples, idle, steps_per_s)   # on the kernel thread
"""

from __future__ import annotations

import fnmatch
import threading
import time
from typing import Any

from ._stack import format_stack
from ._tree import _printable, describe_wait

__all__ = ["COMMANDS", "NAME_HELP"]

COMMANDS = {
    "ps": "ps [NAME]               one line per task: id, parent, state, name, wait, where",
    "tree": "tree [--full] [NAME]    the task tree (--full: do not fold identical siblings)",
    "where": "where TASK              the whole stack of a task (TASK: an id or a unique name)",
    "cancel": "cancel TASK             cancel a task",
    "stats": "stats                   tasks, ready queue, loop iterations/s, steps/s, fds watched",
    "top": "top                     a refreshing view of the busiest tasks (q quits)",
    "help": "help                    this list",
    "quit": "quit                    leave the monitor (the program keeps running)",
}
NAME_HELP = ("NAME shows only the tasks whose name contains it (a glob if it has * ? or [;\n"
             "quote a name with spaces); tree keeps their parents too")


# -- top's sampler ------------------------------------------------------------------
class _Sampler:
    """Which task is running, sampled from a thread; alive only while someone runs ``top``.

    Statistical, like a sampling profiler: no hook runs per step, so watching
    ``top`` costs the program a few GIL hand-offs per millisecond, not a
    slower step. A task runs at most once per loop iteration and the kernel
    clears ``current`` between steps, so "no current task" is the loop's own
    time: polling, timers -- and steps too short to be caught (see ``top``).
    """

    def __init__(self, kernel: Any, interval: float = 0.002) -> None:
        self.kernel = kernel
        self.interval = interval
        self._lock = threading.Lock()
        self._counts: dict[int, int] = {}
        self._tasks: dict[int, Any] = {}  # id -> task: an exited task keeps its name
        self._samples = 0
        self._idle = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="yieldio-monitor-sampler",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        k = self.kernel
        while not self._stop.wait(self.interval):
            cur = k.current  # one attribute read, atomic under the GIL
            with self._lock:
                self._samples += 1
                if cur is None:
                    self._idle += 1
                else:
                    tid = cur.id
                    self._counts[tid] = self._counts.get(tid, 0) + 1
                    self._tasks[tid] = cur

    def take(self) -> tuple[dict[int, int], dict[int, Any], int, int]:
        """(samples per task id, the tasks, all samples, idle samples) since the last take."""
        with self._lock:
            out = (self._counts, self._tasks, self._samples, self._idle)
            self._counts, self._tasks, self._samples, self._idle = {}, {}, 0, 0
        return out

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# -- on the kernel thread, and text -------------------------------------------------
def _snapshot(k: Any) -> dict[str, Any]:
    """The kernel's counters (on the kernel thread)."""
    return {"t": time.perf_counter(), "iterations": k.stats_iterations,
            "steps": k.stats_steps, "tasks": len(k.all_tasks()), "ready": len(k.ready),
            "fds": len(k.fds), "io_waiters": k.io_waiters,
            "timers": max(0, len(k.timers) - k.stale_timers), "thread_jobs": k.thread_jobs}


def _format_stats(s: dict[str, Any]) -> str:
    return "\n".join([
        f"pid {s['pid']}, up {s['uptime']:.0f} s",
        f"tasks          {s['tasks']:>12,}",
        f"ready queue    {s['ready']:>12,}",
        f"loop iter/s    {s['iterations_per_s']:>12,.0f}   (total {s['iterations']:,})",
        f"task steps/s   {s['steps_per_s']:>12,.0f}   (total {s['steps']:,})",
        f"fds watched    {s['fds']:>12,}   ({s['io_waiters']} tasks waiting on I/O)",
        f"timers         {s['timers']:>12,}",
        f"thread jobs    {s['thread_jobs']:>12,}",
    ])


def _top_table(counts: dict[int, int], tasks: dict[int, Any], samples: int, idle: int,
               steps_per_s: float, rows: int = 20) -> str:
    """The busiest tasks since the last refresh (on the kernel thread)."""
    if samples == 0:
        return "(collecting samples: refresh again)"
    ranked = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[:rows]
    # "No task running" is not "idle": it is also the loop's own work, and
    # steps shorter than the sampling interval fall between samples. This
    # used to say "loop idle 100%" and "no task ran" while stats counted
    # 100 steps/s; the step counter tells which it is.
    out = [f"no task running {100 * idle / samples:5.1f}%   ({samples} samples; CPU% is "
           "sampled: short steps are missed)",
           "",
           f"{'ID':>7}  {'CPU%':>6}  {'STATE':<8} {'NAME':<24} WAITING ON"]
    if not ranked and steps_per_s > 0:
        rate = f"{steps_per_s:,.0f}" if steps_per_s >= 1 else "under 1"
        out.append(f"  (no task seen in {samples} samples: the {rate} task steps/s were "
                   "each too short to catch)")
    elif not ranked:
        out.append(f"  (no task seen in {samples} samples, and no task step ran: "
                   "the loop is idle)")
    for tid, n in ranked:
        t = tasks[tid]
        # Escaped like ps: a newline or an escape sequence in a name must
        # not break the table or reach the viewer's terminal. A task that
        # has exited since keeps its name; its state says it is gone.
        name = _printable(t.name)
        wait = _printable(describe_wait(t, detail=False))
        out.append(f"{tid:>7}  {100 * n / samples:>6.1f}  {t.state:<8} {name[:24]:<24} {wait}")
    return "\n".join(out)


def _matching(rows: list[Any], name: str, with_parents: bool) -> list[Any]:
    """The rows whose task name contains ``name`` (a glob if it has ``*?[``), in order.

    ``with_parents`` keeps their ancestors too, so a filtered tree keeps its shape.
    """
    if any(c in name for c in "*?["):
        keep = {r.id for r in rows if fnmatch.fnmatchcase(r.name, name)}
    else:
        keep = {r.id for r in rows if name in r.name}
    if with_parents and keep:
        parent = {r.id: r.parent for r in rows}
        for tid in list(keep):
            up = parent.get(tid)
            while up is not None and up not in keep and up in parent:
                keep.add(up)
                up = parent[up]
    return [r for r in rows if r.id in keep]


def _find_task(k: Any, key: str) -> tuple[Any, str]:
    tasks = k.all_tasks()
    if key.isdecimal():  # not isdigit: int("²") fails
        for t in tasks:
            if t.id == int(key):
                return t, ""
        return None, f"no live task with id {key}"
    matches = [t for t in tasks if t.name == key]
    if len(matches) == 1:
        return matches[0], ""
    if not matches:
        # Matched as 'ps NAME' does: 'where worker' with tasks worker-0 to
        # worker-3 said "no live task named 'worker'" though ps listed four.
        # Listed, not picked: a part of a name is too loose for 'cancel'.
        similar = _matching(tasks, key, with_parents=False)
        if not similar:
            return None, f"no live task named {key!r} (use an id from 'ps')"
        listed = ", ".join(f"{t.id} {t.name!r}" for t in similar[:20])
        more = f", and {len(similar) - 20} more" if len(similar) > 20 else ""
        if len(similar) == 1:
            return None, (f"no task is named {key!r}; one task's name matches it: "
                          f"{listed}; give its id")
        return None, (f"{key!r} is ambiguous: {len(similar)} tasks' names match it: "
                      f"{listed}{more}; give an id")
    ids = ", ".join(str(t.id) for t in matches[:20])
    return None, f"{len(matches)} tasks are named {key!r} (ids {ids}); give an id"


def _where_or_cancel(k: Any, cmd: str, key: str) -> tuple[bool, str]:
    task, err = _find_task(k, key)
    if task is None:
        return False, err
    if cmd == "where":
        return True, format_stack(task)
    task.cancel()
    return True, f"cancelled task {task.id} {task.name!r} (it stops at its next checkpoint)"
