"""Seeing inside a running program.

* :func:`format_task_tree` / :func:`task_tree`: every live task, nested under
  its parent, with what it waits on and where it is;
* :func:`format_stack` / :func:`task_stack` (also ``task.stack()``): the whole
  await / yield-from / trampolined chain of one task;
* :class:`SlowStepDetector`: reports steps that block the loop, with the
  line that blocked (on with ``run(main, debug=True)``);
* :class:`NeverAwaitedReporter`: warns (RuntimeWarning) of coroutines never awaited, with the
  line that created them (on with ``debug=True``);
* :class:`MonitorServer`: ``run(main, monitor=True)``, then
  ``python -m yieldio monitor PID``;
* :class:`TraceRecorder`: ``run(main, trace="trace.json")``, a Chrome trace;
  :func:`render_html` draws one as a self-contained HTML page.

Example, from inside a task::

    print(yieldio.debug.format_task_tree())
    print(yieldio.debug.format_stack(some_task))

See docs/seeing-inside.md.
"""

from __future__ import annotations as _annotations

from typing import Any as _Any

from ._stack import (
    Frame,
    coroutine_frames,
    format_stack,
    innermost_frame,
    task_stack,
    where_frame,
)
from ._trace import TraceRecorder, trace_counter
from ._tree import (
    TaskInfo,
    TaskRow,
    describe_fd,
    describe_wait,
    format_task_table,
    format_task_tree,
    render_table,
    render_tree,
    snapshot,
    task_tree,
)

__all__ = [
    "Frame",
    "TaskInfo",
    "TaskRow",
    "snapshot",
    "render_tree",
    "render_table",
    "task_tree",
    "format_task_tree",
    "format_task_table",
    "task_stack",
    "format_stack",
    "coroutine_frames",
    "innermost_frame",
    "where_frame",
    "describe_wait",
    "describe_fd",
    "trace_counter",
    "TraceRecorder",
    "SlowStepDetector",
    "SlowStep",
    "NeverAwaitedReporter",
    "NeverAwaited",
    "MonitorServer",
    "MonitorClient",
    "MonitorError",
    "find_monitor_socket",
    "render_html",
]

# Loaded on first use: a program that only wants a stack never imports the
# monitor's socket code or the HTML template.
_LAZY = {
    "SlowStepDetector": "._slow",
    "SlowStep": "._slow",
    "NeverAwaitedReporter": "._never_awaited",
    "NeverAwaited": "._never_awaited",
    "MonitorServer": "._monitor",
    "MonitorClient": "._monitor_client",
    "find_monitor_socket": "._monitor_client",
    "MonitorError": "._monitor_dir",
    "render_html": "._trace_html",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'yieldio.debug' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
