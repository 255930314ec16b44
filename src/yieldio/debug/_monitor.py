"""The live monitor: look at a running program from another terminal.

``yieldio.run(main, monitor=True)`` (or ``YIELDIO_MONITOR=1``) serves a
monitor on a Unix socket -- never TCP -- named ``<pid>.sock`` in a directory
that only the user can enter (mode 0700: ``$XDG_RUNTIME_DIR/yieldio``, else
``/tmp/yieldio-<uid>``; ``YIELDIO_MONITOR_DIR`` overrides). Then::

    $ python -m yieldio monitor 12345
    yieldio monitor: pid 12345 (app.py), 10,003 tasks
    > tree
    > where 17
    > top

How it stays out of the program's way: the socket is served by a daemon
thread with blocking I/O, so an idle monitor costs the event loop nothing.
Each command that needs kernel state is run *on the kernel thread* through
``call_soon_threadsafe`` between two batches of task steps, and the answer
is handed back through a ``threading.Event`` with a timeout: snapshots are
consistent, and no other thread ever walks kernel structures. If the loop
does not answer in time (a step is blocking it), the monitor says so and
shows where the kernel thread is, from ``sys._current_frames()``.

The protocol is JSON lines: a greeting, then one response per request
``{"cmd": "tree", "arg": ""}`` -> ``{"ok": true, "text": "..."}``.

This module is the server that lives in the monitored program: the socket,
its threads, the protocol, the dispatch of requests and the hand-off to the
kernel thread. What each command computes and prints is in
:mod:`._monitor_commands`; where the sockets live (the private directory,
the sweep of stale sockets) in :mod:`._monitor_dir`, shared with the client.
``COMMANDS``, ``NAME_HELP``, ``MonitorError`` and ``monitor_dir`` are
importable from here too.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import stat
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from .. import _state
from ._monitor_commands import (
    COMMANDS,
    NAME_HELP,
    _format_stats,
    _matching,
    _Sampler,
    _snapshot,
    _top_table,
    _where_or_cancel,
)
from ._monitor_dir import MonitorError, _remove_stale_sockets, monitor_dir
from ._tree import render_table, render_tree, snapshot

__all__ = ["MonitorServer", "monitor_dir", "COMMANDS", "MonitorError"]

PROTOCOL = 1
#: Seconds a command waits for the kernel thread to answer.
ANSWER_TIMEOUT = 2.0


# -- the server ---------------------------------------------------------------------
class MonitorServer:
    """Instrument that serves the monitor while the kernel runs.

    ``yieldio.run(main, monitor=True)`` attaches one; to choose the socket::

        yieldio.run(main, instruments=[MonitorServer("/run/user/1000/app.sock")])

    The socket (mode 0600, in a 0700 directory) is removed when the run ends.
    ``announce`` prints where it listens on stderr.
    """

    def __init__(self, path: str | None = None, *, announce: bool = True,
                 answer_timeout: float = ANSWER_TIMEOUT) -> None:
        if path is None:
            self._dir: str | None = monitor_dir(create=True)
        else:
            self._dir = None
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise MonitorError(f"cannot create the monitor socket {path!r}: directory "
                                   f"{parent!r} does not exist")
            # Checked here too, so that run() fails before the program starts
            # (an instrument's error in before_run would only be printed).
            self._check_path(path)
        self.path = path
        self.announce = announce
        self.answer_timeout = answer_timeout
        self._kernel: Any = None
        self._kernel_thread = 0
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._started = time.time()
        self._samplers: set[_Sampler] = set()
        self._pending: set[threading.Event] = set()
        self._owner_pid = 0  # the process that bound the socket (see after_run)

    # -- lifecycle (kernel thread) -----------------------------------------------
    def before_run(self) -> None:
        """Instrument hook: start serving the monitor socket."""
        self._kernel = _state.current_kernel()
        self._kernel_thread = threading.get_ident()
        self._started = time.time()
        if self.path is None and self._dir is not None:
            _remove_stale_sockets(self._dir)
        path = self.path or self._free_path()
        self._check_path(path)
        if os.path.lexists(path):
            os.unlink(path)  # left behind by a program that died (same pid reused)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            # Not os.umask(): it is process-wide, and other threads create files.
            # In the 0700 directory nobody else can reach the socket meanwhile.
            os.chmod(path, 0o600)
            listener.listen(16)
        except BaseException:
            listener.close()
            if os.path.exists(path) and stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
            raise
        self.path = path
        self._listener = listener
        self._owner_pid = os.getpid()
        t = threading.Thread(target=self._accept_loop, name="yieldio-monitor", daemon=True)
        self._threads.append(t)
        t.start()
        if self.announce:
            pid = os.path.basename(path).split(".")[0]
            print(f"yieldio: monitor listening on {path} "
                  f"(python -m yieldio monitor {pid})", file=sys.stderr, flush=True)

    def after_run(self) -> None:
        """Instrument hook: stop serving and remove the socket file."""
        if self._owner_pid != os.getpid():
            self._forget_in_forked_child()
            return
        with self._lock:
            self._stopping = True
            conns = list(self._conns)
            # A command waiting for the loop would wait out its timeout:
            # the loop has ended, release it now.
            for waiting in self._pending:
                waiting.set()
        listener = self._listener
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            except OSError:
                pass
        for c in conns:
            try:
                # Wakes a blocked readline() with EOF. Only the reading side:
                # a connection whose command was just released still has
                # to write its "shutting down" answer.
                c.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(timeout=5)
        with self._lock:
            samplers, self._samplers = list(self._samplers), set()
        for sampler in samplers:
            sampler.stop()
        if listener is not None:
            listener.close()
            self._listener = None
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        self._kernel = None

    def _forget_in_forked_child(self) -> None:
        """End of a run in a child forked by the program: leave the parent's monitor alone.

        The child inherits the kernel, this instrument and copies of its
        sockets, but none of its threads. Removing the socket file or
        shutting the listener down (which acts on the socket shared with the
        parent, not on the child's copy) took the parent's monitor away when
        a forked helper exited normally. Only closing the child's copies is
        safe.
        """
        with self._lock:
            self._stopping = True
            conns, self._conns = list(self._conns), set()
            self._samplers, self._pending, self._threads = set(), set(), []
        for sock in [self._listener, *conns]:
            if sock is not None:
                sock.close()
        self._listener = None
        self._kernel = None

    def _free_path(self) -> str:
        assert self._dir is not None
        pid = os.getpid()
        path = os.path.join(self._dir, f"{pid}.sock")
        n = 1
        # Several kernels (one per thread) in one process: <pid>-2.sock, ...
        while os.path.exists(path) and self._in_use(path):
            n += 1
            path = os.path.join(self._dir, f"{pid}-{n}.sock")
        return path

    @staticmethod
    def _in_use(path: str) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(path)
            return True
        except OSError:
            return False
        finally:
            probe.close()

    @classmethod
    def _check_path(cls, path: str) -> None:
        """Raise MonitorError unless a socket can be made at ``path`` (replacing a stale one)."""
        if len(os.fsencode(path)) > 107:
            raise MonitorError(f"the monitor socket path is too long for a Unix socket: {path!r}")
        if not os.path.lexists(path):
            return
        if cls._in_use(path):
            raise MonitorError(f"another program's monitor already listens at {path!r}")
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise MonitorError(f"refusing to replace {path!r}: it is not a socket")

    # -- serving (monitor threads) -----------------------------------------------------
    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # shut down by after_run
            with self._lock:
                if self._stopping:
                    conn.close()
                    return
                self._conns.add(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                 name="yieldio-monitor-conn")
            with self._lock:
                self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        state: dict[str, Any] = {"last_stats": None}
        try:
            with conn, conn.makefile("rwb") as f:
                self._send(f, {"hello": "yieldio-monitor", "protocol": PROTOCOL,
                               "pid": os.getpid(), "argv": sys.argv,
                               "socket": self.path})
                for raw in f:
                    try:
                        req = json.loads(raw)
                        cmd, arg = str(req.get("cmd", "")), str(req.get("arg", "") or "")
                    # RecursionError: deeply nested JSON ("[[[[...") must get
                    # the same answer, not kill this thread with a traceback.
                    except (ValueError, AttributeError, RecursionError):
                        self._send(f, {"ok": False, "text": "bad request: send one JSON "
                                       "object per line, like {\"cmd\": \"tree\"}"})
                        continue
                    try:
                        reply = self._command(cmd.strip(), arg.strip(), state)
                    except Exception as exc:  # a bug here must not kill the connection
                        reply = {"ok": False, "text": "monitor error: " + "".join(
                            traceback.format_exception_only(type(exc), exc)).strip()}
                    self._send(f, reply)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            self._top_release(state)

    @staticmethod
    def _send(f: Any, obj: dict[str, Any]) -> None:
        f.write(json.dumps(obj).encode() + b"\n")
        f.flush()

    def _ask(self, fn: Callable[[Any], Any]) -> tuple[bool, Any]:
        """Run ``fn(kernel)`` on the kernel thread; (True, result) or (False, message)."""
        k = self._kernel
        if k is None:
            return False, "the program is shutting down"
        done = threading.Event()
        box: list[tuple[bool, Any]] = []
        # A call the loop does not take in time is withdrawn, not left queued:
        # a 'cancel' reported as failed used to cancel the task anyway once
        # the loop was free. Under ``gate`` exactly one of "it ran" and "it
        # was withdrawn" happens.
        gate = threading.Lock()
        status = ["queued"]

        def on_kernel_thread() -> None:
            with gate:
                if status[0] == "withdrawn":
                    return
                status[0] = "ran"
            try:
                box.append((True, fn(k)))
            except Exception as exc:  # never let a monitor command break the loop
                box.append((False, "".join(traceback.format_exception(exc)).strip()))
            finally:
                done.set()

        with self._lock:
            if self._stopping:
                return False, "the program is shutting down"
            self._pending.add(done)
        try:
            try:
                k.call_soon_threadsafe(on_kernel_thread)
            except RuntimeError:
                return False, "the program is shutting down"
            if not done.wait(self.answer_timeout):
                with gate:
                    if status[0] == "queued":
                        status[0] = "withdrawn"
                if status[0] == "withdrawn":
                    return False, self._busy_report(k)
                done.wait()  # it started just now: a short monitor call, let it finish
        finally:
            with self._lock:
                self._pending.discard(done)
        if not box:  # released by after_run: the loop has ended
            return False, "the program is shutting down"
        return box[0]

    def _busy_report(self, k: Any) -> str:
        lines = [f"the event loop did not answer within {self.answer_timeout:g} s: "
                 "a task step is blocking it (or the program is stuck outside the loop).",
                 "The command was not done (it was withdrawn: it will not run later)."]
        task = k.current  # one attribute read: safe from this thread
        if task is not None:
            lines.append(f"It is running a step of task {task.id} {task.name!r}.")
        frame = sys._current_frames().get(self._kernel_thread)
        if frame is not None:
            stack = traceback.StackSummary.extract(traceback.walk_stack(frame))
            stack.reverse()
            if task is not None:
                # From the task's own code down, as a slow-step report shows
                # it: the program's start, runpy and the kernel are noise here.
                from ._slow import _task_part

                stack = _task_part(stack) or stack
            lines.append("The kernel thread is here (most recent call last):")
            lines.append("".join(stack.format()).rstrip())
        return "\n".join(lines)

    # -- commands ------------------------------------------------------------------
    def _command(self, cmd: str, arg: str, state: dict[str, Any]) -> dict[str, Any]:
        if cmd == "help" or cmd == "":
            return {"ok": True, "text": "commands:\n" + "\n".join(
                "  " + v for v in COMMANDS.values()) + "\n" + NAME_HELP}
        # Only the snapshot runs on the kernel thread; rows are plain data,
        # formatted here while the program runs on.
        if cmd in ("ps", "tree"):
            # With 10,000 tasks both printed 10,000+ lines, and words after
            # them were silently ignored: one NAME filters, more is an error.
            try:
                words = shlex.split(arg)
            except ValueError as exc:
                return {"ok": False, "text": f"{exc}; usage: {COMMANDS[cmd]}"}
            full = cmd == "tree" and bool(words) and words[0] in ("--full", "-f", "full")
            words = words[1:] if full else words
            if len(words) > 1 or (words and words[0].startswith("-")):
                return {"ok": False, "text": f"unexpected argument(s) {' '.join(words)!r}; "
                        f"usage: {COMMANDS[cmd]}\n{NAME_HELP}"}
            ok, rows = self._ask(snapshot)
            if not ok:
                return {"ok": False, "text": rows}
            if words:
                rows = _matching(rows, words[0], with_parents=cmd == "tree")
                if not rows:
                    return {"ok": True, "text": f"no live task's name matches {words[0]!r}"}
            text = render_table(rows) if cmd == "ps" else render_tree(rows, collapse=not full)
            return {"ok": True, "text": text}
        if cmd in ("where", "cancel"):
            if not arg:
                return {"ok": False, "text": f"usage: {COMMANDS[cmd]}"}
            ok, text = self._ask(lambda k: _where_or_cancel(k, cmd, arg))
            if ok and isinstance(text, tuple):
                ok, text = text
            return {"ok": ok, "text": text}
        if cmd == "stats":
            ok, data = self._stats(state)
            return {"ok": ok, "text": _format_stats(data) if ok else data, "data": data}
        if cmd == "top":
            return self._top(state, arg)
        if cmd == "quit":
            return {"ok": True, "text": "bye"}
        return {"ok": False, "text": f"unknown command {cmd!r}; try 'help'"}

    def _stats(self, state: dict[str, Any]) -> tuple[bool, Any]:
        ok, now = self._ask(_snapshot)
        if not ok:
            return ok, now
        last = state.get("last_stats")
        if last is None or now["t"] - last["t"] > 30 or now["t"] - last["t"] < 0.05:
            # No recent sample to compare with: take one a moment later.
            time.sleep(0.25)
            last = now
            ok, now = self._ask(_snapshot)
            if not ok:
                return ok, now
        state["last_stats"] = now
        dt = now["t"] - last["t"]
        now = dict(now)
        now["iterations_per_s"] = (now["iterations"] - last["iterations"]) / dt
        now["steps_per_s"] = (now["steps"] - last["steps"]) / dt
        now["uptime"] = time.time() - self._started
        now["pid"] = os.getpid()
        return True, now

    def _top(self, state: dict[str, Any], arg: str) -> dict[str, Any]:
        if arg == "stop":
            self._top_release(state)
            return {"ok": True, "text": "top stopped"}
        sampler = state.get("sampler")
        if sampler is None:
            # One sampler per viewer: two people running top do not steal
            # each other's samples.
            with self._lock:
                if self._stopping or self._kernel is None:
                    return {"ok": False, "text": "the program is shutting down"}
                sampler = state["sampler"] = _Sampler(self._kernel)
                self._samplers.add(sampler)
        ok, stats = self._stats(state)
        if not ok:
            return {"ok": False, "text": stats}
        counts, tasks, samples, idle = sampler.take()
        steps = stats["steps_per_s"]
        ok, table = self._ask(lambda k: _top_table(counts, tasks, samples, idle, steps))
        if not ok:
            return {"ok": False, "text": table}
        return {"ok": True, "text": _format_stats(stats) + "\n\n" + table, "data": stats}

    def _top_release(self, state: dict[str, Any]) -> None:
        sampler = state.pop("sampler", None)
        if sampler is not None:
            with self._lock:
                self._samplers.discard(sampler)
            sampler.stop()
