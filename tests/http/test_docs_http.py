"""Every ```python block of docs/http.md runs, as its own program, and succeeds."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "http.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def _label(block: str) -> str:
    for line in block.splitlines():
        if line.startswith(("async def ", "@router", "def ", "legacy", "ca =", "net =")):
            return line[:40]
    return "block"


def test_the_doc_has_examples() -> None:
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{i}:{_label(b)}" for i, b in enumerate(BLOCKS)])
def test_doc_example_runs(block: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, f"example failed:\n{block}\n--- stderr ---\n{done.stderr}"
    assert "Traceback" not in done.stderr
