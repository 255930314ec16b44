"""examples/subprocess_pipeline.py, run as a real program, prints the right counts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
