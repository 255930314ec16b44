"""Seeing inside a running program: the task tree and full coroutine stacks.

``format_task_tree()`` shows every live task, nested under the task that
opened its group, with what it waits on; ``format_stack(task)`` shows the
whole await / yield-from chain of one task, including trampolined calls.
"""

from __future__ import annotations

import linecache
from dataclasses import dataclass, field
from typing import Any

from . import _state
from ._task import Task

__all__ = ["TaskInfo", "Frame", "task_tree", "format_task_tree", "task_stack", "format_stack",
           "describe_wait"]


@dataclass
class Frame:
    """One frame of a task's stack: where a coroutine is suspended."""

    filename: str
    lineno: int
    function: str
    opaque: bool = False  # a class-based coroutine: no Python frame to show

    def format(self) -> str:
        if self.opaque:
            return f"  <{self.function}> (class-based coroutine, no frame)"
        line = linecache.getline(self.filename, self.lineno).strip()
        out = f'  File "{self.filename}", line {self.lineno}, in {self.function}'
        return out + (f"\n    {line}" if line else "")


@dataclass
class TaskInfo:
    """A node of :func:`task_tree`: a task, its state, its wait, its children."""

    task: Task
    state: str
    waiting_on: str
    children: list[TaskInfo] = field(default_factory=list)


def describe_wait(task: Task) -> str:
    """A human description of what ``task`` waits on ("Queue.get", "read fd 7" ...)."""
    wait = task._wait
    if wait is None:
        return ""
    describe = getattr(wait, "_describe_wait", None)
    if describe is None:
        return type(wait).__name__
    try:
        return str(describe(task))
    except Exception as exc:  # a debugger must not crash on a half-built object
        return f"{type(wait).__name__} (describe failed: {exc!r})"


def _coro_frames(coro: Any, out: list[Frame]) -> None:
    """Append the frames of ``coro`` and everything it natively delegates to."""
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) \
            or getattr(coro, "ag_frame", None)
        if frame is None:
            if not any(hasattr(coro, a) for a in ("cr_code", "gi_code", "ag_code")):
                out.append(Frame("", 0, type(coro).__qualname__, opaque=True))
            return
        out.append(Frame(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_qualname))
        coro = (getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
                or getattr(coro, "ag_await", None))


def task_stack(task: Task) -> list[Frame]:
    """The task's suspended frames, outermost first, across every kind of call.

    Follows ``cr_await`` (async def), ``gi_yieldfrom`` (generators),
    ``ag_await`` (async generators) and the trampoline's explicit stack.
    """
    out: list[Frame] = []
    tramp = task._tramp
    coros = tramp.stack if tramp is not None else [task.coro]
    for coro in coros:
        _coro_frames(coro, out)
    return out


def format_stack(task: Task) -> str:
    """``task_stack(task)`` as text, like a traceback."""
    frames = task_stack(task)
    head = f"Stack of {task!r}" + (f", waiting on {describe_wait(task)}" if task._wait else "")
    return "\n".join([head + ":"] + [f.format() for f in frames])


def task_tree(kernel: Any = None) -> list[TaskInfo]:
    """The live tasks as a forest: each task under the task that spawned it."""
    k = kernel if kernel is not None else _state.current_kernel()
    tasks = k.all_tasks()
    infos = {t: TaskInfo(t, t.state, describe_wait(t)) for t in tasks}
    roots: list[TaskInfo] = []
    for t in tasks:
        parent = t.parent
        if parent is not None and parent in infos:
            infos[parent].children.append(infos[t])
        else:
            roots.append(infos[t])
    return roots


def format_task_tree(kernel: Any = None) -> str:
    """Render :func:`task_tree` as indented text, one task per line."""
    lines: list[str] = []

    def walk(info: TaskInfo, depth: int) -> None:
        t = info.task
        wait = f" -- waiting on {info.waiting_on}" if info.waiting_on else ""
        lines.append(f"{'  ' * depth}task {t.id} {t.name!r} [{info.state}]{wait}")
        frames = task_stack(t)
        if frames:
            f = frames[-1]
            where = f.function if f.opaque else f"{f.function} at {f.filename}:{f.lineno}"
            lines.append(f"{'  ' * depth}    at {where}")
        for child in info.children:
            walk(child, depth + 1)

    for root in task_tree(kernel):
        walk(root, 0)
    return "\n".join(lines) if lines else "(no tasks)"
