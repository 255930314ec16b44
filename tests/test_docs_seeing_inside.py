"""Run the examples of docs/seeing-inside.md (conventions: tests/_docs.py).

The page shows one-line fragments (``yieldio.run(main, monitor=True)``) and
the output of programs it only describes (``shop.py``, ``deadlock.py``,
``forgot.py``). Each fragment is marked ``<!-- run with stub: NAME -->`` and
run here inside the program its output comes from; the STUBS below are those
programs. ``shop.py`` is the page's appendix, which also runs on its own.

Paths in the task tree are shown as the code's file name: the doc's output
comes from a script run by a relative name (``python -m yieldio run shop.py``),
so the stubs compile their program under its bare file name too.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from _docs import (
    ROOT,
    Block,
    block_id,
    check_output,
    check_stubs,
    python_blocks,
    read,
    run_complete_program,
    run_python,
)

DOC = ROOT / "docs" / "seeing-inside.md"
WHERE = "docs/seeing-inside.md"
BLOCKS = read(DOC)
PYTHON = python_blocks(BLOCKS)


def _appendix() -> str:
    """The source of shop.py: the python block under the 'Appendix' heading."""
    text = DOC.read_text(encoding="utf-8")
    heading = text.splitlines().index("## Appendix: the example program") + 1
    blocks = [b for b in PYTHON if b.line > heading]
    assert len(blocks) == 1, "the appendix must hold exactly one python block"
    return blocks[0].code


def _text_block(containing: str) -> str:
    found = [b.code for b in BLOCKS if b.lang == "text" and containing in b.code]
    assert len(found) == 1, f"{WHERE}: expected one text block with {containing!r}"
    return found[0]


def _run_file(name: str, source: str, tmp_path: Path, *, env: dict[str, str] | None = None):
    """Run ``source`` as the script ``name``, compiled under that bare file name."""
    (tmp_path / name).write_text(source)
    runner = f"import runpy; runpy.run_path({name!r}, run_name='__main__')"
    return run_python(runner, tmp_path, env=env)


# -- the stubs ---------------------------------------------------------------------------

# The snapshot is taken between two loop iterations (an I/O instrument's hook
# runs on the loop thread, with every task parked), again and again, until the
# tree has the shape the page shows: the page shows one real moment of the
# program, not every moment. Ports, fds, task ids and yieldio's own line
# numbers may differ; the lines in shop.py may not.
_SHOP_TREE_HARNESS = """\
import contextlib, io, re, sys
import yieldio

sys.argv = ["shop.py", "60"]
shop = {"__name__": "shop"}
exec(compile(SHOP, "shop.py", "exec"), shop)


class Probe(yieldio.Instrument):
    found = None
    last = ""

    def before_io_wait(self, timeout):
        if self.found is None:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(FRAGMENT, {"yieldio": yieldio})
            self.last = out.getvalue()
            if re.fullmatch(PATTERN, self.last):
                self.found = self.last


probe = Probe()
yieldio.run(shop["main"], instruments=[probe])
if probe.found is None:
    sys.exit("the tree never had the documented shape; the last one was:\\n" + probe.last)
print(probe.found, end="")
"""


def _tree_pattern(shown: str) -> str:
    """A regex for a task tree as shown: '...' lines stand for any lines."""
    parts = []
    for line in shown.splitlines():
        if line.strip() == "...":
            parts.append(r"(?:.*\n)*?")
            continue
        line = line.rstrip()
        pos = 0
        for m in re.finditer(r"shop\.py:\d+|[+-]+\d+\.\d+|\d+", line):
            parts.append(re.escape(line[pos:m.start()]))
            token = m.group()
            if token.startswith("shop.py:"):
                parts.append(re.escape(token))  # the lines in shop.py are exact
            elif "." in token:
                parts.append(r"[+-]+\d+\.\d+")  # a sleep's offset
            else:
                parts.append(r"\d+")  # ids, ports, fds, counts, yieldio's line numbers
            pos = m.end()
        parts.append(re.escape(line[pos:]) + r"\n")
    return "".join(parts)


def stub_shop_tree(block: Block, tmp_path: Path) -> None:
    assert block.expected is not None, "the task tree example lost its output"
    pattern = _tree_pattern(block.expected)
    code = (f"SHOP = {_appendix()!r}\nFRAGMENT = {block.code!r}\nPATTERN = {pattern!r}\n"
            + _SHOP_TREE_HARNESS)
    proc = run_python(code, tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", f"{WHERE} line {block.line}:\n{proc.stderr}"


# deadlock.py: the fragment at lines 3-5, so that the lines in the output are the page's.
_DEADLOCK_HEAD = "import yieldio\n\n"
_DEADLOCK_TAIL = """
async def main():
    alice, bob = yieldio.Event(), yieldio.Event()
    async with yieldio.TaskGroup() as tg:
        tg.spawn(transfer, "alice", alice, bob, name="alice")
        tg.spawn(transfer, "bob", bob, alice, name="bob")

yieldio.run(main)
"""


def stub_deadlock(block: Block, tmp_path: Path) -> None:
    assert block.expected is not None, "the deadlock example lost its output"
    proc = _run_file("deadlock.py", _DEADLOCK_HEAD + block.code + _DEADLOCK_TAIL, tmp_path)
    assert proc.returncode == 1, proc.stderr
    want = block.expected.splitlines()
    got = proc.stderr.splitlines()[-len(want):]
    check_output(f"{WHERE} line {block.line} (the end of stderr)", block.expected,
                 "\n".join(got))


# forgot.py: the page's never-awaited report names its lines 7 and 11; the
# fragment (run with debug=True) is its last line.
_FORGOT_HEAD = """\
import yieldio

async def send_email(user):
    await yieldio.sleep(0)

async def signup(user):
    send_email(user)            # BUG: forgot 'await'


async def main():
    await signup("bob@example.com")


"""


def stub_debug_forgot(block: Block, tmp_path: Path) -> None:
    proc = _run_file("forgot.py", _FORGOT_HEAD + block.code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = _text_block("was never awaited")
    assert report in proc.stderr, f"{WHERE}: the report differs:\n{proc.stderr}"


_MAIN = "import yieldio\n\nasync def main():\n    await yieldio.sleep(0)\n\n"
_MONITOR_LINE = (r"yieldio: monitor listening on (?P<dir>\S+)/(?P<pid>\d+)\.sock "
                 r"\(python -m yieldio monitor (?P=pid)\)")


def stub_monitor(block: Block, tmp_path: Path) -> None:
    assert block.expected is not None, "the monitor example lost its transcript"
    shown = block.expected.splitlines()[1]
    assert re.fullmatch(_MONITOR_LINE, shown), shown
    env = {k: v for k, v in os.environ.items() if k != "YIELDIO_MONITOR"}
    env["YIELDIO_MONITOR_DIR"] = str(tmp_path / "mon")
    proc = run_python(_MAIN + block.code, tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    m = re.fullmatch(_MONITOR_LINE + r"\n", proc.stderr)
    assert m, f"{WHERE} line {block.line}: the monitor said {proc.stderr!r}"
    assert m.group("dir") == str(tmp_path / "mon")


def stub_trace(block: Block, tmp_path: Path) -> None:
    proc = run_python(_MAIN + block.code, tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    events = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    assert any(e.get("cat") == "step" for e in events)
    # The shell lines after it: 'trace view' renders the file.
    assert block.expected is not None
    view = [line for line in block.expected.splitlines() if " trace view " in line]
    assert view == ["$ python -m yieldio trace view trace.json -o trace.html"]
    proc = run_python(None, tmp_path, args=("-m", "yieldio", "trace", "view", "trace.json",
                                            "-o", "trace.html"))
    assert proc.returncode == 0, proc.stderr
    assert "<canvas" in (tmp_path / "trace.html").read_text()


STUBS = {
    "shop-tree": stub_shop_tree,
    "deadlock": stub_deadlock,
    "debug-forgot": stub_debug_forgot,
    "monitor": stub_monitor,
    "trace": stub_trace,
}


# -- the tests ----------------------------------------------------------------------------

def test_the_page_has_examples() -> None:
    assert len(PYTHON) >= 6
    check_stubs(BLOCKS, STUBS, WHERE)


@pytest.mark.parametrize("block", PYTHON, ids=block_id)
def test_example(block: Block, tmp_path: Path) -> None:
    if block.not_run is not None:
        pytest.skip(f"{WHERE} line {block.line}: not run: {block.not_run}")
    if block.stub is not None:
        STUBS[block.stub](block, tmp_path)
    else:
        run_complete_program(block, WHERE, tmp_path)


def test_shop_line_numbers_match_the_appendix() -> None:
    """Every 'shop.py:N' and 'File "shop.py", line N' on the page is an await in the appendix."""
    shop = _appendix().splitlines()
    text = DOC.read_text(encoding="utf-8")
    refs = [(m.group(1), int(m.group(2)), None)
            for m in re.finditer(r"(\w+) \(shop\.py:(\d+)\)", text)]
    refs += [(m.group(2), int(m.group(1)), m.group(3).strip())
             for m in re.finditer(r'File "shop\.py", line (\d+), in (\w+)\n(.*)', text)]
    assert len(refs) >= 10
    for function, lineno, source in refs:
        line = shop[lineno - 1]
        assert "await" in line or "async with" in line, (function, lineno, line)
        defs = [i for i, s in enumerate(shop[:lineno]) if re.match(r"(async )?def ", s)]
        assert shop[defs[-1]].split("(")[0].split()[-1] == function, (function, lineno)
        if source is not None:
            assert line.strip() == source, (lineno, line, source)


def test_the_appendix_runs_with_an_argument(tmp_path: Path) -> None:
    """shop.py takes the number of orders per client as its first argument."""
    (tmp_path / "shop.py").write_text(_appendix())
    proc = run_python(None, tmp_path, args=("shop.py", "2"))
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == "", proc.stderr


def test_tree_pattern() -> None:
    shown = "task 5 'x' -- waiting on read fd 8 (shop.py:39)\n  ...\nlast +0.00 s\n"
    pattern = _tree_pattern(shown)
    assert re.fullmatch(pattern, "task 6 'x' -- waiting on read fd 11 (shop.py:39)\nlast -0.01 s\n")
    assert re.fullmatch(pattern, "task 6 'x' -- waiting on read fd 11 (shop.py:39)\na\nb\n"
                        "last +1.25 s\n")
    assert not re.fullmatch(pattern, "task 6 'x' -- waiting on read fd 11 (shop.py:40)\n"
                            "last +0.00 s\n")


if sys.platform != "linux":  # the monitor and the stubs' expectations are Linux ones
    pytestmark = pytest.mark.skip(reason="docs/seeing-inside.md shows Linux output")
