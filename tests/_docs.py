"""Shared helpers for the tests that run a Markdown page's code examples.

Conventions of the pages that use this module (README.md,
docs/seeing-inside.md, docs/architecture.md):

* Every ```python block is a complete program, run in its own interpreter
  with ``-W error::ResourceWarning``; it must exit 0 and write nothing on
  stderr.
* A ```text block right after a python block (blank lines aside, no prose in
  between) is that program's exact standard output (trailing spaces and
  trailing blank lines aside).
* A comment right before a block changes that:

  - ``<!-- not run: REASON -->`` exempts the block; the reason is required,
    so that a reader of the page (and of a failing test) sees why;
  - ``<!-- run with stub: NAME -->`` marks a fragment: the page's test module
    runs it through the stub ``NAME`` it defines (a program around the
    fragment, and its own checks). An unknown stub name fails, and so does a
    stub that no block uses.

So an unmarked example that does not run fails a test: a new example cannot
go untested silently.
"""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Each example is a small program; none needs more than a few seconds. The
# timeout turns a hung example into a clear failure, well inside pytest-timeout's.
TIMEOUT = 20.0

_FENCE = re.compile(r"^```([\w+-]*)\s*$")
_COMMENT = re.compile(r"^<!--(.*)-->$")
_NOT_RUN = re.compile(r"^not run(?::\s*(?P<reason>\S.*?))?$")
_STUB = re.compile(r"^run with stub:\s*(?P<name>[\w-]+)$")


@dataclass
class Block:
    """One fenced block of a page."""

    line: int  # 1-based line of the opening fence
    lang: str  # "" for a fence without a language
    code: str
    not_run: str | None = None  # the reason given by <!-- not run: ... -->
    stub: str | None = None  # the name given by <!-- run with stub: ... -->
    expected: str | None = None  # the ```text block right after a python block

    @property
    def marked(self) -> bool:
        return self.not_run is not None or self.stub is not None


def parse(text: str, where: str = "<text>") -> list[Block]:
    """Every fenced block of a Markdown text, with its marker and expected output."""
    lines = text.splitlines()
    blocks: list[Block] = []
    pending: tuple[str, str] | None = None  # (kind, value) of a marker not yet used
    attach: Block | None = None  # a python block a following text block belongs to
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        comment = _COMMENT.match(stripped)
        if comment:
            body = comment.group(1).strip()
            not_run, stub = _NOT_RUN.match(body), _STUB.match(body)
            if not_run:
                if not not_run.group("reason"):
                    raise ValueError(f"{where} line {i + 1}: '<!-- not run -->' needs a "
                                     "reason: '<!-- not run: why -->'")
                pending = ("not_run", not_run.group("reason"))
            elif stub:
                pending = ("stub", stub.group("name"))
            i += 1
            continue
        fence = _FENCE.match(stripped)
        if fence is None:
            if stripped:
                attach = None
                if pending is not None:
                    raise ValueError(f"{where} line {i + 1}: a marker must come right "
                                     "before a code block")
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        if i == len(lines):
            raise ValueError(f"{where} line {start + 1}: unclosed code fence")
        block = Block(start + 1, fence.group(1), "\n".join(lines[start + 1:i]) + "\n")
        i += 1
        if pending is not None:
            setattr(block, pending[0], pending[1])
            pending = None
        if block.lang == "text" and attach is not None and not block.marked:
            attach.expected = block.code
            attach = None
        else:
            attach = block if block.lang == "python" else None
        blocks.append(block)
    if pending is not None:
        raise ValueError(f"{where}: a marker at the end of the page has no block")
    return blocks


def read(path: Path) -> list[Block]:
    return parse(path.read_text(encoding="utf-8"), where=str(path.relative_to(ROOT)))


def python_blocks(blocks: list[Block]) -> list[Block]:
    return [b for b in blocks if b.lang == "python"]


def block_id(block: Block) -> str:
    return f"line{block.line}"


def check_stubs(blocks: list[Block], stubs: dict[str, object], where: str) -> None:
    """Every stub a page names exists, and every stub a test defines is used once."""
    used = [b.stub for b in blocks if b.stub is not None]
    unknown = sorted(set(used) - set(stubs))
    assert not unknown, f"{where} names stubs the test does not define: {unknown}"
    unused = sorted(set(stubs) - set(used))
    assert not unused, f"the test defines stubs {where} no longer uses: {unused}"
    assert len(used) == len(set(used)), f"{where} uses a stub twice: {used}"


def run_python(code: str | None, cwd: Path, *, args: tuple[str, ...] = (),
               env: dict[str, str] | None = None, timeout: float = TIMEOUT
               ) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (or, if None, ``args`` alone) in a fresh interpreter."""
    cmd = [sys.executable, "-W", "error::ResourceWarning"]
    cmd += ["-c", code, *args] if code is not None else list(args)
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)


def normalize(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def check_output(where: str, expected: str, actual: str) -> None:
    want, got = normalize(expected), normalize(actual)
    if want != got:
        diff = "\n".join(difflib.unified_diff(want, got, "shown in the doc", "printed",
                                              lineterm=""))
        pytest.fail(f"{where}: output differs\n{diff}")


def run_complete_program(block: Block, where: str, cwd: Path) -> None:
    """Run an unmarked python block as a program; check its exit, stderr and output."""
    proc = run_python(block.code, cwd)
    here = f"{where} line {block.line}"
    if proc.returncode != 0:
        pytest.fail(f"{here}: exit status {proc.returncode} (a fragment needs a "
                    f"'<!-- run with stub: -->' or '<!-- not run: -->' marker)\n"
                    f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    if proc.stderr:
        pytest.fail(f"{here}: the example wrote to stderr:\n{proc.stderr}")
    if block.expected is not None:
        check_output(here, block.expected, proc.stdout)
