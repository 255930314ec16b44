"""Child processes as /proc sees them (no pgrep, no psutil: a slim machine has neither)."""

from __future__ import annotations

import os


def children_of(ppid: int) -> list[tuple[int, str]]:
    """``(pid, state)`` of every live or zombie child of ``ppid``, from /proc."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # it ended meanwhile
        # "pid (comm) state ppid ...": comm may contain spaces; split after ')'.
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if int(parent) == ppid:
            out.append((int(name), state))
    return out
