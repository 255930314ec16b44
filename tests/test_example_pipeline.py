"""examples/subprocess_pipeline.py, run as a real program, prints the right counts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _procs import children_of

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "subprocess_pipeline.py"


@pytest.mark.parametrize("n", [0, 1, 100, 200_000])
def test_pipeline_counts_match_python(n):
    done = subprocess.run([sys.executable, str(EXAMPLE), str(n)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    expected_lines = sum("7" in str(i) for i in range(n))
    generated = sum(len(str(i)) + 1 for i in range(n))
    kept = sum(len(str(i)) + 1 for i in range(n) if "7" in str(i))
    grep_status = 0 if expected_lines else 1  # grep exits 1 when nothing matched
    assert done.stdout.splitlines() == [
        f"pumped {generated} bytes generate -> transform",
        f"pumped {kept} bytes transform -> count",
        f"exit statuses: [0, {grep_status}, 0]",
        f"lines containing 7: {expected_lines}",
    ]


def _children(pid: int) -> list[int]:
    return [child for child, _ in children_of(pid)]


@pytest.mark.skipif(sys.platform == "win32", reason="process groups, SIGINT")
def test_pipeline_ctrl_c_ends_it_quietly_and_kills_the_children():
    # Its own process group, so SIGINT to the group is Ctrl-C in a terminal
    # (the example and everything it started) and nothing of pytest's.
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), "1000000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            process_group=0)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while len(children) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            children = _children(proc.pid)
        assert len(children) == 3, f"expected 3 children, saw {children}"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert err == "interrupted\n"
        # Reaped by the example before it exited: gone, not even zombies.
        for pid in children:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if proc.poll() is None:
            # Children still listed under a live parent are ours (no pid reuse).
            for pid in _children(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.communicate()
