"""Run every example of docs/streams.md and check what it prints.

The page's conventions (stated at its top): each ```python block is a
complete program; a ```text block right after one (blank lines aside) is its
exact standard output. A ``<!-- not run -->`` comment before a block exempts
it (for fragments). Each program runs in its own interpreter, with
ResourceWarning enabled, and must exit 0 with nothing on stderr: an example
that leaks a socket fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "streams.md"
_FENCE = re.compile(r"^```(\w*)\s*$")


def parse(text: str) -> list[tuple[int, str, str | None]]:
    """[(line, code, expected stdout or None)] for every runnable python block."""
    blocks: list[tuple[int, str, str | None]] = []
    lines = text.splitlines()
    i = 0
    skip_next = False
    pending: tuple[int, str] | None = None  # a python block waiting for its text block
    while i < len(lines):
        line = lines[i]
        if line.strip() == "<!-- not run -->":
            skip_next = True
            i += 1
            continue
        m = _FENCE.match(line)
        if m is None:
            if line.strip() and pending is not None:
                blocks.append((pending[0], pending[1], None))
                pending = None
            i += 1
            continue
        lang, start = m.group(1), i + 1
        j = start
        while not lines[j].startswith("```"):
            j += 1
        body = "\n".join(lines[start:j]) + "\n"
        if lang == "python":
            if pending is not None:
                blocks.append((pending[0], pending[1], None))
                pending = None
            if not skip_next:
                pending = (start, body)
            skip_next = False
        elif lang == "text" and pending is not None:
            blocks.append((pending[0], pending[1], body))
            pending = None
        i = j + 1
    if pending is not None:
        blocks.append((pending[0], pending[1], None))
    return blocks


BLOCKS = parse(DOC.read_text())


def test_the_page_has_examples_with_outputs():
    assert len(BLOCKS) >= 10
    assert all(expected is not None for _, _, expected in BLOCKS)


@pytest.mark.parametrize("line,code,expected", BLOCKS, ids=[f"line{b[0]}" for b in BLOCKS])
def test_doc_example(line, code, expected, tmp_path):
    done = subprocess.run([sys.executable, "-W", "error::ResourceWarning", "-X", "dev", "-c",
                           code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"docs/streams.md line {line} failed:\n{done.stderr}"
    assert done.stderr == "", f"docs/streams.md line {line} wrote to stderr:\n{done.stderr}"
    if expected is not None:
        assert done.stdout == expected, f"docs/streams.md line {line}"
