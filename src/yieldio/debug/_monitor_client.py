"""The monitor's client side: find a monitored program, connect, send commands.

``python -m yieldio monitor`` (see :mod:`yieldio._cli_debug`) is a thin
shell around :class:`MonitorClient`::

    with MonitorClient(find_monitor_socket("12345")) as mon:
        print(mon.request("tree")["text"])
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from ._monitor_dir import MonitorError, monitor_dir

__all__ = ["MonitorClient", "find_monitor_socket"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_monitor_socket(target: str | None = None) -> str:
    """Resolve ``target`` (a PID, a socket path, or None) to a socket path.

    With None there must be exactly one monitored program of this user::

        path = find_monitor_socket("12345")
    """
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    if target and not target.isdecimal():
        if not os.path.exists(target):
            raise MonitorError(f"no monitor socket at {target!r}")
        return target
    directory = monitor_dir()
    if target:
        path = os.path.join(directory, f"{target}.sock")
        if not os.path.exists(path):
            alive = _pid_alive(int(target))
            why = ("is it running with monitor=True or YIELDIO_MONITOR=1?" if alive
                   else "no process has that pid")
            raise MonitorError(f"no monitor socket for pid {target} in {directory} ({why})")
        return path
    found: list[str] = []
    stale: list[str] = []
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            pid = name.split(".")[0].split("-")[0]
            if name.endswith(".sock") and pid.isdigit():
                path = os.path.join(directory, name)
                (found if _pid_alive(int(pid)) else stale).append(path)
    if not found:
        # Say what is there: "no socket in DIR" was untrue when sockets of
        # programs killed by a signal (which cannot remove theirs) were left.
        names = ", ".join(os.path.basename(p) for p in stale[:5])
        more = f" and {len(stale) - 5} more" if len(stale) > 5 else ""
        there = (f"{directory} holds only stale sockets of programs no longer running: "
                 f"{names}{more}; they can be removed" if stale
                 else f"no socket in {directory}")
        raise MonitorError(f"no monitored yieldio program is running ({there}); start one "
                           "with yieldio.run(main, monitor=True) or YIELDIO_MONITOR=1")
    if len(found) > 1:
        listing = "\n  ".join(found)
        raise MonitorError(f"several monitored programs are running; name one by pid or "
                           f"path:\n  {listing}")
    return found[0]


HELLO_TIMEOUT = 5.0  # seconds to wait for the monitor's greeting


class MonitorClient:
    """A connection to a monitored program; :meth:`request` sends one command.

    ::

        with MonitorClient(find_monitor_socket("12345")) as mon:
            print(mon.request("tree")["text"])
    """

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # The greeting comes from the monitor's own thread, not the event
        # loop: a live program sends it at once. Waiting the full request
        # timeout for it only delayed saying that the program is stopped
        # (SIGSTOP, a debugger) or holds the GIL.
        hello_timeout = min(timeout, HELLO_TIMEOUT)
        try:
            self._sock.settimeout(hello_timeout)
            self._sock.connect(path)
            self._file = self._sock.makefile("rwb")
            self.hello = self._read()
            self._sock.settimeout(timeout)
        except TimeoutError:
            self._sock.close()
            raise MonitorError(f"the program at {path!r} accepted the monitor connection but "
                               f"did not greet within {hello_timeout:g} s: is it stopped, or "
                               "stuck in code that holds the GIL?") from None
        except (OSError, ValueError, MonitorError) as exc:
            self._sock.close()
            raise MonitorError(f"cannot talk to the monitor at {path!r}: {exc}") from None
        if not isinstance(self.hello, dict) or self.hello.get("hello") != "yieldio-monitor":
            self.close()
            raise MonitorError(f"{path!r} is not a yieldio monitor")

    def _read(self) -> dict[str, Any]:
        line = self._file.readline()
        if not line:
            raise MonitorError("the program closed the monitor connection (it has exited?)")
        result: dict[str, Any] = json.loads(line)
        return result

    def request(self, cmd: str, arg: str = "") -> dict[str, Any]:
        """Send a command; return ``{"ok": bool, "text": str, ...}``."""
        try:
            self._file.write(json.dumps({"cmd": cmd, "arg": arg}).encode() + b"\n")
            self._file.flush()
            return self._read()
        except (BrokenPipeError, ConnectionResetError):
            raise MonitorError("the program closed the monitor connection "
                               "(it has exited?)") from None
        except (OSError, ValueError) as exc:
            raise MonitorError(f"lost the monitor connection: {exc}") from None

    def close(self) -> None:
        """Close the connection (the program keeps running)."""
        try:
            self._file.close()
        except OSError:
            pass  # the program went away with a request unsent: nothing to flush to
        finally:
            self._sock.close()

    def __enter__(self) -> MonitorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
