"""Run every example of docs/tutorial.md and check what it prints.

The tutorial's conventions (stated at its top) are what this module parses:

* Each ```python block is a program. A block preceded by ``<!-- continue -->``
  continues the block before it: the blocks of such a *chain* run in order in
  one interpreter, sharing one namespace, as a reader pasting them into one
  session would.
* A ```text block that follows a ```python block (blank lines aside) is the
  exact standard output of that block; it is compared line by line.
* ``<!-- requires: NAME -->`` before a block names a dotted attribute
  (``yieldio.serve_tcp``) the block needs; the chain is skipped while that
  name cannot be imported (a feature still being written), never failed.

Each chain runs in a fresh subprocess with a timeout: examples start event
loops, threads and sockets, and none of that may touch the test process. The
subprocess must exit 0 and write nothing to stderr -- with ResourceWarning
enabled, so an example that forgets to close a socket fails here.
"""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "tutorial.md"

# Generous: the slowest chain takes well under a second; the timeout only
# turns a hung example (a loop that never ends) into a clear failure.
CHAIN_TIMEOUT = 30.0

_DIRECTIVE = re.compile(r"^<!--\s*(continue|requires:\s*(?P<names>[\w.,\s]+?))\s*-->\s*$")
_FENCE_OPEN = re.compile(r"^```(\w*)\s*$")


@dataclass
class Block:
    """One ```python block: where it starts, its code, and what it must print."""

    line: int  # 1-based line number of the opening fence
    code: str
    expected: str | None = None
    continues: bool = False
    requires: list[str] = field(default_factory=list)


def parse(text: str) -> list[Block]:
    """Extract the python blocks of a Markdown text, with their directives and outputs."""
    lines = text.splitlines()
    blocks: list[Block] = []
    pending_continue = False
    pending_requires: list[str] = []
    last_python: Block | None = None  # a python block a text block may still attach to
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        directive = _DIRECTIVE.match(stripped)
        if directive:
            if directive.group(1) == "continue":
                pending_continue = True
            else:
                names = directive.group("names").replace(",", " ").split()
                pending_requires.extend(names)
            i += 1
            continue
        fence = _FENCE_OPEN.match(stripped)
        if fence:
            lang = fence.group(1)
            start = i
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise ValueError(f"line {start + 1}: unclosed code fence")
            i += 1  # the closing fence
            content = textwrap.dedent("\n".join(body)) + "\n"
            if lang == "python":
                block = Block(start + 1, content, continues=pending_continue,
                              requires=pending_requires)
                blocks.append(block)
                last_python = block
            elif lang == "text" and last_python is not None:
                last_python.expected = content
                last_python = None
            else:
                last_python = None
            pending_continue = False
            pending_requires = []
            continue
        if stripped:
            # Prose between a python block and a text block detaches them:
            # only output shown *right after* the code is checked.
            last_python = None
            if pending_continue or pending_requires:
                raise ValueError(f"line {i + 1}: a directive must come right before a "
                                 "```python block")
        i += 1
    if pending_continue or pending_requires:
        raise ValueError("a directive at the end of the document has no block")
    return blocks


def chains(blocks: list[Block]) -> list[list[Block]]:
    """Group blocks into chains: a block that continues joins the previous chain."""
    out: list[list[Block]] = []
    for block in blocks:
        if block.continues:
            if not out:
                raise ValueError(f"line {block.line}: the first block cannot continue")
            out[-1].append(block)
        else:
            out.append([block])
    return out


# The program a chain runs as. Each block is compiled under a name of its own
# and registered with linecache, so that tracebacks -- including the ones an
# example prints on purpose -- show the source lines. A marker line before
# each block splits stdout into the blocks' outputs.
_RUNNER = """\
import json, linecache, sys
blocks = json.loads(sys.stdin.read())
namespace = {"__name__": "__main__"}
for index, (line, code) in enumerate(blocks):
    filename = f"<tutorial.md:{line}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    print(MARKER.format(index), flush=True)
    exec(compile(code, filename, "exec"), namespace)
    sys.stdout.flush()
"""
_MARKER = "\x00-- tutorial block {} --\x00"


def run_chain(chain: list[Block]) -> list[str]:
    """Run a chain in a subprocess; return each block's stdout. Fails the test on error."""
    payload = json.dumps([[b.line, b.code] for b in chain])
    proc = subprocess.run(
        [sys.executable, "-W", "default::ResourceWarning", "-c",
         f"MARKER = {_MARKER!r}\n" + _RUNNER],
        input=payload, capture_output=True, text=True, timeout=CHAIN_TIMEOUT, cwd=ROOT,
    )
    where = f"docs/tutorial.md line {chain[0].line}"
    if proc.returncode != 0:
        pytest.fail(f"{where}: exit status {proc.returncode}\n--- stdout\n{proc.stdout}"
                    f"\n--- stderr\n{proc.stderr}")
    if proc.stderr:
        pytest.fail(f"{where}: the example wrote to stderr:\n{proc.stderr}")
    parts = proc.stdout.split("\n")
    if parts[-1] == "":
        parts.pop()  # the text after the final newline
    outputs: list[list[str]] = []
    for line in parts:
        if line == _MARKER.format(len(outputs)):
            outputs.append([])
        elif outputs:
            outputs[-1].append(line)
        else:
            pytest.fail(f"{where}: unexpected output before the first block: {line!r}")
    assert len(outputs) == len(chain), "the runner lost a block"
    return ["\n".join(o) for o in outputs]


def _normalize(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def check_output(block: Block, actual: str) -> None:
    if block.expected is None:
        return
    want, got = _normalize(block.expected), _normalize(actual)
    if want != got:
        diff = "\n".join(difflib.unified_diff(want, got, "shown in the doc", "printed",
                                              lineterm=""))
        pytest.fail(f"docs/tutorial.md line {block.line}: output differs\n{diff}")


def requirement_available(name: str) -> bool:
    """Whether ``name`` (``module.attr...``) imports, checked in a fresh interpreter."""
    module, _, attr = name.partition(".")
    code = f"import {module}\n"
    if attr:
        code += f"{module}.{attr}\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          timeout=CHAIN_TIMEOUT, cwd=ROOT)
    return proc.returncode == 0


# -- the examples ----------------------------------------------------------------

ALL_BLOCKS = parse(DOC.read_text(encoding="utf-8"))
ALL_CHAINS = chains(ALL_BLOCKS)


def _chain_id(chain: list[Block]) -> str:
    return f"line{chain[0].line}" + (f"+{len(chain) - 1}" if len(chain) > 1 else "")


@pytest.mark.parametrize("chain", ALL_CHAINS, ids=[_chain_id(c) for c in ALL_CHAINS])
def test_example(chain: list[Block]) -> None:
    for block in chain:
        for name in block.requires:
            if not requirement_available(name):
                pytest.skip(f"{name} is not importable yet (docs/tutorial.md line {block.line})")
    outputs = run_chain(chain)
    for block, output in zip(chain, outputs, strict=True):
        check_output(block, output)


# -- the document as a whole ------------------------------------------------------

def test_every_python_block_is_collected() -> None:
    text = DOC.read_text(encoding="utf-8")
    fences = sum(1 for line in text.splitlines() if line.strip() == "```python")
    assert fences == len(ALL_BLOCKS) > 20


def test_every_text_block_is_checked() -> None:
    """A ```text block that is not attached to code would be shown but never checked."""
    text = DOC.read_text(encoding="utf-8")
    shown = sum(1 for line in text.splitlines() if line.strip() == "```text")
    checked = sum(1 for b in ALL_BLOCKS if b.expected is not None)
    assert shown == checked


def test_the_tutorial_walks_the_whole_path() -> None:
    text = DOC.read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    for topic in ("send()", "generator", "by hand", "yield from", "event loop",
                  "async def", "yieldio adds"):
        assert any(topic in h for h in headings), f"no section about {topic!r}: {headings}"
    for name in ("yieldio.trampoline", "PARK", "SCHEDULE", "@yieldio.coroutine",
                 "TaskGroup", "move_on_after", "fail_after", "Queue", "Event", "to_thread",
                 "serve_tcp", "open_tcp_stream", "selectors", "heapq"):
        assert name in text, f"the tutorial never mentions {name}"


def test_network_example_is_marked() -> None:
    """The streams example is marked as needing the network part -- which must be there.

    (The marker let the example be skipped while yieldio.net was written; now
    an unavailable serve_tcp must fail here, not skip the example quietly.)
    """
    assert requirement_available("yieldio.serve_tcp")
    marked = [b for b in ALL_BLOCKS if "yieldio.serve_tcp" in b.requires]
    assert marked, "the serve_tcp example lost its <!-- requires: --> marker"
    for block in ALL_BLOCKS:
        if "serve_tcp" in block.code or "open_tcp_stream" in block.code:
            assert "yieldio.serve_tcp" in block.requires, f"line {block.line} is not marked"


# -- the extractor itself ------------------------------------------------------------

SAMPLE = """\
Intro.

```python
x = 1
print(x)
```

```text
1
```

Some prose.

<!-- continue -->
```python
print(x + 1)
```
Prose detaches what follows.
```text
not checked
```

<!-- requires: yieldio.nothing_here -->
```python
    print("indented fences are dedented")
```

```sh
echo not python
```
"""


def test_parse_attaches_outputs_and_directives() -> None:
    blocks = parse(SAMPLE)
    assert [b.line for b in blocks] == [3, 15, 24]
    assert blocks[0].expected == "1\n" and not blocks[0].continues
    assert blocks[1].continues and blocks[1].expected is None
    assert blocks[2].requires == ["yieldio.nothing_here"]
    assert blocks[2].code == 'print("indented fences are dedented")\n'
    assert [[b.line for b in c] for c in chains(blocks)] == [[3, 15], [24]]


@pytest.mark.parametrize("bad", [
    "<!-- continue -->\nprose\n```python\npass\n```\n",
    "```python\npass\n",
    "text\n<!-- requires: x -->\n",
])
def test_parse_rejects_malformed_documents(bad: str) -> None:
    with pytest.raises(ValueError):
        parse(bad)


def test_chains_reject_a_leading_continue() -> None:
    with pytest.raises(ValueError, match="cannot continue"):
        chains(parse("<!-- continue -->\n```python\npass\n```\n"))


def test_run_chain_shares_a_namespace_and_splits_output() -> None:
    chain = chains(parse(SAMPLE))[0]
    assert run_chain(chain) == ["1", "2"]


def test_run_chain_reports_a_failing_example() -> None:
    chain = [Block(7, "print('before')\nraise ValueError('boom')\n")]
    with pytest.raises(pytest.fail.Exception, match=r"(?s)line 7.*ValueError: boom"):
        run_chain(chain)


def test_run_chain_fails_an_example_that_leaks_a_socket() -> None:
    chain = [Block(9, "import socket, gc\ns = socket.socket()\ndel s\ngc.collect()\n")]
    with pytest.raises(pytest.fail.Exception, match="ResourceWarning"):
        run_chain(chain)


def test_check_output_shows_a_diff() -> None:
    block = Block(5, "", expected="a\nb\n")
    check_output(block, "a\nb  \n\n")  # trailing spaces and blank lines do not matter
    with pytest.raises(pytest.fail.Exception, match=r"(?s)line 5.*-b.*\+c"):
        check_output(block, "a\nc\n")


def test_requirement_available() -> None:
    assert requirement_available("yieldio.TaskGroup")
    assert not requirement_available("yieldio.no_such_name_anywhere")


def test_example_skips_when_a_requirement_is_missing() -> None:
    chain = [Block(3, "raise SystemExit(1)\n", requires=["yieldio.no_such_name_anywhere"])]
    with pytest.raises(pytest.skip.Exception, match="not importable yet"):
        test_example(chain)
