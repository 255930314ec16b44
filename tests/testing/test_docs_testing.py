"""Run every example of docs/testing.md ("Testing concurrent code").

The page's conventions: each ```python block is a complete program; a
```text block right after one (blank lines aside) is its exact standard
output. ``<!-- pytest -->`` before a block makes it a test file, run with
pytest and the yieldio plugin (all its tests must pass); ``<!-- not run -->``
exempts a block. Programs run in their own interpreter with ResourceWarning
enabled and must exit 0 with nothing on stderr.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .test_pytest_plugin import PLUGIN, QUIET

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
_FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Example:
    line: int
    code: str
    kind: str  # "program" or "pytest"
    expected: str | None = None


def parse(text: str) -> list[Example]:
    examples: list[Example] = []
    lines = text.splitlines()
    directive: str | None = None
    last: Example | None = None
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped in ("<!-- pytest -->", "<!-- not run -->"):
            directive = stripped
            i += 1
            continue
        m = _FENCE.match(stripped)
        if m is None:
            if stripped:
                last = None
            i += 1
            continue
        lang, start = m.group(1), i + 1
        j = start
        while lines[j].strip() != "```":
            j += 1
        body = "\n".join(lines[start:j]) + "\n"
        if directive == "<!-- not run -->":
            last = None
        elif lang == "python":
            last = Example(start, body, "pytest" if directive == "<!-- pytest -->" else "program")
            examples.append(last)
        elif lang == "text" and last is not None and last.kind == "program":
            last.expected = body
            last = None
        directive = None
        i = j + 1
    return examples


EXAMPLES = parse(DOC.read_text())


def test_the_page_has_examples():
    kinds = [e.kind for e in EXAMPLES]
    assert kinds.count("program") >= 8 and kinds.count("pytest") >= 1
    assert all(e.expected for e in EXAMPLES if e.kind == "program")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"line{e.line}")
def test_example(example, tmp_path):
    if example.kind == "pytest":
        (tmp_path / "test_doc_example.py").write_text(example.code)
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", *PLUGIN, "-p", "no:cacheprovider", "-q",
             "-p", "no:hypothesispytest", *QUIET,
             str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 0, f"docs/testing.md line {example.line}:\n{proc.stdout}"
        return
    proc = subprocess.run([sys.executable, "-W", "default::ResourceWarning", "-c", example.code],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    where = f"docs/testing.md line {example.line}"
    assert proc.returncode == 0, f"{where}: exit {proc.returncode}\n{proc.stderr}"
    assert proc.stderr == "", f"{where}: wrote to stderr:\n{proc.stderr}"
    want = [line.rstrip() for line in (example.expected or "").strip("\n").splitlines()]
    got = [line.rstrip() for line in proc.stdout.strip("\n").splitlines()]
    assert got == want, f"{where}: output differs"
