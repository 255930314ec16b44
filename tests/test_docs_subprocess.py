"""Every ```python block of docs/subprocess_signals_files.md runs, as its own program.

A line ``print(...)  # text`` must print ``text``: the comment is what the reader trusts.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "subprocess_signals_files.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def _first_code_line(block: str) -> str:
    lines = [line for line in block.splitlines() if line and not line.startswith(("import", "from"))]
    return lines[0][:40] if lines else "empty"


def test_the_doc_has_examples():
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{i}:{_first_code_line(b)}"
                                               for i, b in enumerate(BLOCKS)])
def test_doc_example_runs(block, tmp_path):
    # A separate interpreter per block: the examples send signals and must
    # not share state with the test process or with each other.
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, f"example failed:\n{block}\n--- stderr ---\n{done.stderr}"
    assert "Traceback" not in done.stderr
    printed = done.stdout.splitlines()
    for expected in re.findall(r"^\s*print\(.*\)\s+#\s*(.+?)\s*$", block, flags=re.M):
        assert expected in printed, (f"the example says it prints {expected!r}; "
                                     f"it printed:\n{done.stdout}")
