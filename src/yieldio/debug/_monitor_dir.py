"""Where monitor sockets live: the per-user socket directory and its housekeeping.

One concept, shared by both ends of the monitor: the private directory
(mode 0700) that holds ``<pid>.sock`` files, the checks that refuse an
unsafe one, and the sweep of sockets left by programs that died without
removing theirs. The server (:mod:`._monitor`) makes its socket here and
the client (:mod:`._monitor_client`) looks for sockets here; keeping it
apart lets the client find a program without importing the server::

    path = os.path.join(monitor_dir(), "12345.sock")
"""

from __future__ import annotations

import os
import socket
import stat
import tempfile

__all__ = ["MonitorError", "monitor_dir"]


class MonitorError(Exception):
    """The monitor socket cannot be created, found or reached::

        try:
            path = find_monitor_socket("12345")
        except MonitorError as exc:
            print(exc)   # "no monitor socket for pid 12345 in ... (is it running ...?)"
    """


# -- where the sockets live ---------------------------------------------------------
def _check_private_dir(path: str) -> None:
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise MonitorError(f"refusing to use {path!r} for monitor sockets: it is not a "
                           "directory (a symlink?)")
    if st.st_uid != os.getuid():
        raise MonitorError(f"refusing to use {path!r} for monitor sockets: it belongs to "
                           f"uid {st.st_uid}, not to you (uid {os.getuid()})")
    if st.st_mode & 0o077:
        raise MonitorError(f"refusing to use {path!r} for monitor sockets: its mode is "
                           f"{stat.S_IMODE(st.st_mode):04o}; it must be 0700 (only you may "
                           f"enter it). Fix it with: chmod 700 {path}")


def monitor_dir(create: bool = False) -> str:
    """The per-user directory of monitor sockets, checked (and made, mode 0700).

    ``YIELDIO_MONITOR_DIR`` if set; else ``$XDG_RUNTIME_DIR/yieldio`` when
    that runtime directory is ours; else ``<tmp>/yieldio-<uid>``::

        monitor_dir()        # '/run/user/1000/yieldio'

    Raises :class:`MonitorError` if the directory exists but is not a
    directory owned by the user with mode 0700.
    """
    path = os.environ.get("YIELDIO_MONITOR_DIR")
    if not path:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        try:
            usable = bool(xdg) and os.stat(xdg).st_uid == os.getuid()  # type: ignore[arg-type]
        except OSError:
            usable = False
        if usable:
            path = os.path.join(xdg, "yieldio")  # type: ignore[arg-type]
        else:
            path = os.path.join(tempfile.gettempdir(), f"yieldio-{os.getuid()}")
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    if os.path.lexists(path):
        _check_private_dir(path)
    return path


def _remove_stale_sockets(directory: str) -> list[str]:
    """Remove the sockets in ``directory`` left by monitored programs that are gone.

    The socket is removed when a program ends normally, but SIGTERM (how
    ``timeout``, docker and systemd stop a program) and SIGKILL skip that;
    such files used to pile up until someone removed them by hand. A file is
    removed only when it is named like ours (``<pid>.sock``/``<pid>-<n>.sock``),
    is a socket, its pid is not running, *and* nothing accepts on it (a
    refused connect), so a live program in another pid namespace that shares
    the directory keeps its socket. Returns the paths removed::

        _remove_stale_sockets(monitor_dir())   # ['/tmp/yieldio-0/4242.sock']
    """
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        stem, dot, ext = name.partition(".")
        pid = stem.split("-")[0]
        if dot != "." or ext != "sock" or not pid.isdecimal():
            continue
        path = os.path.join(directory, name)
        try:
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                continue
            os.kill(int(pid), 0)
            continue  # that pid runs (or is someone else's, which we may not signal)
        except ProcessLookupError:
            pass
        except (OSError, OverflowError):
            continue
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.setblocking(False)
            probe.connect(path)
            continue  # something accepts: not stale
        except ConnectionRefusedError:
            pass
        except OSError:
            continue  # busy, gone meanwhile, or not ours to judge
        finally:
            probe.close()
        try:
            os.unlink(path)
            removed.append(path)
        except OSError:
            pass
    return removed
