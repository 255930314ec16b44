"""The task tree: every live task, nested under the task that spawned it.

Each node says what the task waits on (from the wait object's
``_describe_wait``) and where it is in the program's code::

    print(yieldio.debug.format_task_tree())      # inside a task
    # task 1 'main' [waiting] -- waiting on TaskGroup exit (2 children left)
    #     at main (app.py:30)
    #   task 2 'handler' [waiting] -- waiting on read fd 7 (127.0.0.1:5000 <- 127.0.0.1:41234)
    #       at handle (app.py:12)
    #   ...

These functions read kernel structures, so call them on the kernel's thread
(from a task, an instrument, or a ``call_soon_threadsafe`` callback); the
monitor does exactly that.
"""

from __future__ import annotations

import os
import re
import socket
import stat
from dataclasses import dataclass, field
from typing import Any

from .. import _state
from .._outside import _FdWaits
from .._task import Task
from .._timeouts import effective_deadline_of
from ..sync import Lock
from ._stack import _PACKAGE_DIR, Frame, _to_frame, _where_raw

_INF = float("inf")
_NUMBERS = re.compile(r"[-+]?\d+(?:\.\d+)?")

__all__ = ["TaskInfo", "TaskRow", "describe_wait", "describe_fd", "task_tree",
           "format_task_tree", "format_task_table", "snapshot", "render_tree", "render_table"]


@dataclass
class TaskInfo:
    """A node of :func:`task_tree`: a task, its state, its wait, its children.

    ::

        for info in yieldio.debug.task_tree():
            print(info.task.id, info.state, info.waiting_on, len(info.children))
    """

    task: Any
    state: str
    waiting_on: str
    children: list[TaskInfo] = field(default_factory=list)
    #: Where the task was when the tree was taken: its innermost frame of
    #: program code (see :func:`where_frame`).
    where: Frame | None = None


def _format_address(addr: Any) -> str:
    if isinstance(addr, tuple):
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    if isinstance(addr, bytes):
        addr = addr.decode("utf-8", "backslashreplace")
    if not addr:
        return "unnamed"
    return str(addr).replace("\0", "@", 1) if str(addr).startswith("\0") else str(addr)


def describe_fd(fd: int, writing: bool = False) -> str:
    """Say what a file descriptor is: a socket's addresses, a pipe, a file path.

    Used to make "read fd 7" readable::

        a, b = socket.socketpair()
        describe_fd(a.fileno())    # 'unix socket, unnamed'

    A connected socket reads ``local <- peer`` (``->`` when ``writing``).
    Returns "" when nothing useful is known (or the fd is closed).
    """
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return "closed"
    if stat.S_ISFIFO(mode):
        return "pipe"
    if not stat.S_ISSOCK(mode):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return ""
        if link == "anon_inode:[pidfd]":
            # What Process.wait waits on: say whose exit, not the inode.
            pid = _pidfd_pid(fd)
            return f"exit of child process {pid}" if pid else "exit of a child process"
        return link
    if socket.getdefaulttimeout() is not None:
        # Wrapping the fd would apply the default timeout to it (making it
        # non-blocking behind its owner's back): say nothing rather than that.
        return "socket"
    try:
        s = socket.socket(fileno=fd)
    except OSError:
        return "socket"
    try:
        kind = "udp" if s.type == socket.SOCK_DGRAM else ""
        family = s.family
        local = s.getsockname()
        try:
            listening = s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        except OSError:
            listening = 0
        try:
            peer: Any = s.getpeername()
        except OSError:
            peer = None
    except OSError:
        return "socket"
    finally:
        s.detach()  # the fd belongs to its owner: never close it here
    if family == socket.AF_UNIX:
        prefix = "unix socket, "
        if listening:
            return f"{prefix}listening on {_format_address(local)}"
        if peer is None or (not local and not peer):
            return prefix + _format_address(local)
        arrow = " -> " if writing else " <- "
        return prefix + _format_address(local) + arrow + _format_address(peer)
    if listening:
        return f"listening on {_format_address(local)}"
    if peer is None:
        return (kind + " " if kind else "") + _format_address(local)
    arrow = " -> " if writing else " <- "
    return (kind + " " if kind else "") + _format_address(local) + arrow + _format_address(peer)


def _pidfd_pid(fd: int) -> int | None:
    """The pid a pidfd refers to (Linux reports it in /proc/self/fdinfo), or None."""
    try:
        with open(f"/proc/self/fdinfo/{fd}") as info:
            for line in info:
                if line.startswith("Pid:"):
                    pid = int(line.split()[1])
                    return pid if pid > 0 else None
    except (OSError, ValueError, IndexError):
        pass
    return None


def describe_wait(task: Any, detail: bool = True) -> str:
    """What ``task`` waits on ("Queue.get", "read fd 7 (...)", "sleep until +1.20 s").

    "" when it does not wait (it is ready or running). With ``detail``, a
    wait on a socket names its addresses (a few syscalls: the tracer, which
    describes every wait, turns it off)::

        describe_wait(task)   # 'read fd 7 (127.0.0.1:5000 <- 127.0.0.1:41234)'
    """
    return _describe(task, detail, None)


def _describe(task: Any, detail: bool, raw: Any) -> str:
    """:func:`describe_wait`, given the task's :func:`_where_raw` when known (None: look)."""
    wait = task._wait
    if wait is None:
        return ""
    describe = getattr(wait, "_describe_wait", None)
    if describe is None:
        return type(wait).__name__
    try:
        text = str(describe(task))
    except Exception as exc:  # a debugger must not crash on a half-built object
        return f"{type(wait).__name__} (describe failed: {exc!r})"
    if detail:
        if type(wait) is _FdWaits:
            what = describe_fd(wait.fd, writing=wait.writer is task)
            if what:
                text += f" ({what})"
        else:
            name = _name_in_frame(wait, raw if raw is not None else _where_raw(task))
            if name:
                text += f" on {name}"
        # What a move_on_after/fail_after around the wait (its own or a
        # caller's, across task groups) will end it at; a shield hides the
        # deadlines outside it. Not for a task already cancelled (-inf).
        deadline = effective_deadline_of(task)
        if -_INF < deadline < _INF and not text.startswith("sleep until"):
            left = max(0.0, deadline - task._kernel.clock_now())
            text += f", deadline +{left:.2f} s"
    return text


def _name_in_frame(obj: Any, frame: Any) -> str:
    """The name ``frame``'s code knows ``obj`` by: ``done``, ``self.lock``, ``JOBS``.

    "Event.wait" alone does not say *which* Event when two tasks each wait
    for the other's; the variable at the waiting line does. Looks in the
    frame's locals (closure variables included), then one attribute deep in
    ``self``/``cls``, then the module's globals. "" when none holds it.
    """
    if frame is None or isinstance(frame, Frame):  # a class-based coroutine: no locals
        return ""
    if frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        return ""  # the whole stack is yieldio's: its locals are no name of the program's
    try:
        names = frame.f_locals
        for name, value in names.items():
            if value is obj:
                return str(name)
        for owner_name in ("self", "cls"):
            owner = names.get(owner_name)
            attrs = getattr(owner, "__dict__", None) if owner is not None else None
            if isinstance(attrs, dict):
                for name, value in attrs.items():
                    if value is obj:
                        return f"{owner_name}.{name}"
        for name, value in frame.f_globals.items():
            if value is obj:
                return str(name)
    except Exception:  # a debugger must not fail on an odd frame or mapping
        return ""
    return ""


def _by_id(task: Any) -> int:
    return task.id  # type: ignore[no-any-return]


def task_tree(kernel: Any = None) -> list[TaskInfo]:
    """The live tasks as a forest: each task under the task that spawned it.

    ::

        roots = yieldio.debug.task_tree()
        assert roots[0].task.name == "main"
    """
    k = kernel if kernel is not None else _state.current_kernel()
    tasks = sorted(k.all_tasks(), key=_by_id)  # spawn order reads best
    frames: dict[Any, Frame] = {}
    infos = {}
    cycles = _wait_cycles(tasks)
    for t in tasks:
        raw = _where_raw(t)
        infos[t] = TaskInfo(t, t.state, _describe(t, True, raw) + cycles.get(t, ""), [],
                            _to_frame(raw, frames) if raw is not None else None)
    roots: list[TaskInfo] = []
    for t in tasks:
        parent = t.parent
        if parent is not None and parent in infos:
            infos[parent].children.append(infos[t])
        else:
            roots.append(infos[t])
    return roots


@dataclass(slots=True)
class TaskRow:
    """A task as plain data (no references to live objects): safe to hand to
    another thread, which can then format it while the kernel runs on::

        for row in yieldio.debug.snapshot():
            print(row.id, row.name, row.state, row.waiting_on, row.where)
    """

    id: int
    parent: int | None
    name: str
    state: str
    waiting_on: str
    where: Frame | None


def snapshot(kernel: Any = None, *, detail: bool = True) -> list[TaskRow]:
    """Every live task as a :class:`TaskRow`, in cancel-scope-tree order.

    The only part of the tree and table views that must run on the kernel
    thread; the monitor formats the rows on its own thread::

        rows = yieldio.debug.snapshot()
        print(render_tree(rows))
    """
    k = kernel if kernel is not None else _state.current_kernel()
    out = []
    frames: dict[Any, Frame] = {}
    tasks = sorted(k.all_tasks(), key=_by_id)
    cycles = _wait_cycles(tasks) if detail else {}
    for t in tasks:
        parent = t.parent
        raw = _where_raw(t)
        out.append(TaskRow(t.id, parent.id if parent is not None else None, t.name, t.state,
                           _describe(t, detail, raw) + cycles.get(t, ""),
                           _to_frame(raw, frames) if raw is not None else None))
    return out


def _waits_for(task: Any) -> Any:
    """The one task that ``task``'s wait needs to move: a Lock's owner, a joined task."""
    wait = task._wait
    if wait is None:
        return None
    if isinstance(wait, Task):
        return wait  # join: it waits for that task to end
    owner = getattr(wait, "_owner", None) if type(wait) is Lock else None
    return owner


def _wait_cycles(tasks: list[Any]) -> dict[Any, str]:
    """``{task: ", in a wait cycle: tasks 4 -> 5 -> 4"}`` for tasks that wait on each other.

    Two tasks each holding the lock the other wants (or joining each other)
    can never move, whatever else the program does -- but while it still has
    sockets or timers, the kernel cannot call it a deadlock. The tree can
    still show the cycle. One pass: each task has at most one such edge.
    """
    found: dict[Any, str] = {}
    state: dict[Any, int] = {}  # 1: on the current path, 2: done
    for start in tasks:
        path: list[Any] = []
        t = start
        while t is not None and t not in state:
            state[t] = 1
            path.append(t)
            t = _waits_for(t)
        if t is not None and state.get(t) == 1:
            loop = path[path.index(t):]
            text = ", in a wait cycle: tasks " + " -> ".join(
                str(x.id) for x in [*loop, loop[0]])
            for x in loop:
                found[x] = text
        for x in path:
            state[x] = 2
    return found


def _where(row: TaskRow) -> str:
    return row.where.short() if row.where is not None else ""


def render_tree(rows: list[TaskRow], *, collapse: bool = False) -> str:
    """Format snapshot rows as the task tree (see :func:`format_task_tree`)::

        rows = yieldio.debug.snapshot()          # on the kernel thread
        print(render_tree(rows, collapse=True))  # anywhere, any time later
    """
    children: dict[int | None, list[TaskRow]] = {}
    ids = {r.id for r in rows}
    for r in rows:
        children.setdefault(r.parent if r.parent in ids else None, []).append(r)
    lines: list[str] = []

    def line_for(r: TaskRow, depth: int) -> None:
        pad = "  " * depth
        wait = f" -- waiting on {_printable(r.waiting_on)}" if r.waiting_on else ""
        lines.append(f"{pad}task {r.id} {r.name!r} [{r.state}]{wait}")
        where = _where(r)
        if where:
            lines.append(f"{pad}    at {_printable(where)}")

    def walk(r: TaskRow, depth: int) -> None:
        line_for(r, depth)
        kids = children.get(r.id, ())
        if not collapse:
            for child in kids:
                walk(child, depth + 1)
            return
        # Group leaf children by how they look; keep first-seen order.
        groups: dict[tuple[str, ...], list[TaskRow]] = {}
        order: list[Any] = []
        for child in kids:
            if child.id in children:
                order.append(child)
                continue
            # Numbers differ between otherwise identical waits ("sleep until
            # +0.31 s", "read fd 12"): fold them too.
            key = (child.name, child.state, _NUMBERS.sub("#", child.waiting_on), _where(child))
            group = groups.get(key)
            if group is None:
                groups[key] = [child]
                order.append(key)
            else:
                group.append(child)
        for item in order:
            if isinstance(item, TaskRow):
                walk(item, depth + 1)
                continue
            group = groups[item]
            line_for(group[0], depth + 1)
            if len(group) > 1:
                rest = [g.id for g in group[1:]]
                if len(rest) == 1:
                    span = f"task {rest[0]}"
                elif rest == list(range(rest[0], rest[-1] + 1)):
                    span = f"tasks {rest[0]}-{rest[-1]}"
                else:
                    span = "tasks " + ", ".join(map(str, rest[:5])) + (", ..." if len(rest) > 5
                                                                       else "")
                lines.append(f"{'  ' * (depth + 2)}... and {len(rest):,} more like it ({span})")

    for root in children.get(None, ()):
        walk(root, 0)
    return "\n".join(lines) if lines else "(no tasks)"


def format_task_tree(kernel: Any = None, *, collapse: bool = False) -> str:
    """Render the task tree as indented text, two lines per task.

    ::

        print(yieldio.debug.format_task_tree())
        # task 1 'main' [waiting] -- waiting on TaskGroup exit (2 children left)
        #     at main (app.py:30)
        #   task 2 'server' [waiting] -- waiting on read fd 7 (listening on 127.0.0.1:5000)
        #       at wait_readable (yieldio/_io.py:70)

    With ``collapse``, siblings that look the same (same name and state, the
    same wait up to numbers, the same innermost frame, no children) are
    shown once with a count -- the readable view of 10,000 workers::

        #   task 12 'worker' [waiting] -- waiting on Queue.get
        #       at get (yieldio/queue.py:180)
        #     ... and 9,998 more like it (tasks 13-10010)
    """
    return render_tree(snapshot(kernel), collapse=collapse)


def render_table(rows: list[TaskRow], *, limit: int | None = None) -> str:
    """Format snapshot rows as the task table (see :func:`format_task_table`)::

        print(render_table(yieldio.debug.snapshot(), limit=50))
    """
    shown = rows if limit is None else rows[:limit]
    table = [("ID", "PARENT", "STATE", "NAME", "WAITING ON", "WHERE")]
    for r in shown:
        table.append((str(r.id), str(r.parent) if r.parent is not None else "-", r.state,
                      _clip(_printable(r.name), 28), _clip(_printable(r.waiting_on), 48),
                      _printable(_where(r))))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    out = []
    for row in table:
        cells = [row[0].rjust(widths[0]), row[1].rjust(widths[1])]
        cells += [row[i].ljust(widths[i]) for i in (2, 3, 4)]
        out.append("  ".join(cells + [row[5]]).rstrip())
    if len(shown) < len(rows):
        out.append(f"... {len(rows) - len(shown):,} more tasks not shown")
    return "\n".join(out)


def format_task_table(kernel: Any = None, *, limit: int | None = None) -> str:
    """One line per live task: id, parent, state, name, wait, innermost frame.

    ::

        print(yieldio.debug.format_task_table())
        #  ID  PARENT  STATE    NAME    WAITING ON                  WHERE
        #   1       -  waiting  main    TaskGroup exit (2 left)     main (app.py:30)
    """
    return render_table(snapshot(kernel), limit=limit)


def _printable(text: str) -> str:
    """``text`` safe for one cell of a line: control characters and lone
    surrogates escaped as in ``repr`` (the tree shows names with ``!r``).

    A task named "a\nb" split the table's row in two, an escape sequence in
    a name reached the terminal, and a lone surrogate (a name decoded from
    a non-UTF-8 file name) made printing the table fail.
    """
    return text if text.isprintable() else repr(text)[1:-1]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
