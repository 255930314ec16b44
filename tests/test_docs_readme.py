"""Run the examples of README.md (conventions: tests/_docs.py).

Its ```python blocks are complete programs whose output is the ```text block
after them. Its ```bash block is the project's two set-up commands: they are
checked against .ci/run and pyproject.toml, not run (installing is CI's job,
and ``python -m yieldio demo`` is run by tests/test_cli.py::test_demo_tours_the_model).
"""

from __future__ import annotations

import re
import shlex
import tomllib

import pytest
from _docs import ROOT, block_id, check_stubs, python_blocks, read, run_complete_program

DOC = ROOT / "README.md"
WHERE = "README.md"
BLOCKS = read(DOC)
PYTHON = python_blocks(BLOCKS)
STUBS: dict[str, object] = {}  # the README has no fragments


def test_the_readme_has_examples_with_outputs() -> None:
    assert len(PYTHON) >= 2
    assert all(b.expected is not None for b in PYTHON), "every README example shows its output"
    check_stubs(BLOCKS, STUBS, WHERE)


@pytest.mark.parametrize("block", PYTHON, ids=block_id)
def test_example(block, tmp_path) -> None:
    if block.not_run is not None:
        pytest.skip(f"{WHERE} line {block.line}: not run: {block.not_run}")
    run_complete_program(block, WHERE, tmp_path)


# -- the set-up commands ---------------------------------------------------------------

def _setup_commands() -> list[list[list[str]]]:
    """The README's first shell block: per line, its '&&'-separated commands as argv."""
    shells = [b for b in BLOCKS if b.lang in ("bash", "sh", "shell", "console")]
    assert shells, "the README lost its set-up commands"
    lines = [line for line in shells[0].code.splitlines() if line.strip()]
    return [[shlex.split(part) for part in line.split("&&")] for line in lines]


def _ci_commands() -> list[list[str]]:
    """The commands .ci/run executes, as argv, without the flags that only quieten them."""
    out = []
    for line in (ROOT / ".ci" / "run").read_text().splitlines():
        line = line.strip()
        if not line.startswith("python -m "):
            continue
        argv = shlex.split(line.split("||")[0].split(">")[0].split(";")[0])
        out.append([a for a in argv if a not in {"-q", "--upgrade", "-p", "no:cacheprovider"}])
    return out


def test_setup_commands_are_the_two_documented_ones() -> None:
    assert _setup_commands() == [
        [["pip", "install", "-e", ".[http]"], ["python", "-m", "yieldio", "demo"]],
        [["pip", "install", "-e", ".[test]"], ["python", "-m", "pytest"]],
    ]


def test_test_setup_matches_ci() -> None:
    """The README's test line installs and runs what .ci/run installs and runs."""
    (install, run_tests) = _setup_commands()[1]
    ci = _ci_commands()
    assert ["python", "-m", *install] in ci, f".ci/run does not run {install}: {ci}"
    assert run_tests in ci, f".ci/run does not run {run_tests}: {ci}"


def test_the_extras_exist() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for line in _setup_commands():
        for argv in line:
            for arg in argv:
                m = re.fullmatch(r"\.\[(\w+)\]", arg)
                if m:
                    assert m.group(1) in extras, f"pyproject.toml has no extra {m.group(1)!r}"
    # The [http] extra is what turns on the demo's HTTP section.
    assert any(dep.startswith("h11") for dep in extras["http"])


def test_the_demo_command_is_tested_elsewhere() -> None:
    """``python -m yieldio demo`` takes seconds: test_cli.py runs it; make sure it still does."""
    source = (ROOT / "tests" / "test_cli.py").read_text()
    assert re.search(r'def test_demo\w*\(.*\n(?:.*\n)*?.*run_cli\("demo"', source)


# -- the shared extractor (tests/_docs.py) -----------------------------------------------------

def test_extractor_markers_and_outputs() -> None:
    from _docs import parse
    blocks = parse("```python\nprint(1)\n```\n\n```text\n1\n```\n"
                   "<!-- not run: a fragment -->\n```python\nx\n```\n"
                   "<!-- run with stub: s -->\n```python\ny\n```\nprose\n```text\nz\n```\n")
    assert [(b.lang, b.not_run, b.stub, b.expected) for b in blocks] == [
        ("python", None, None, "1\n"), ("text", None, None, None),
        ("python", "a fragment", None, None), ("python", None, "s", None),
        ("text", None, None, None)]
    for bad in ("<!-- not run -->\n```python\nx\n```\n", "<!-- run with stub: s -->\nprose\n",
                "```python\nx\n"):
        with pytest.raises(ValueError):
            parse(bad)


def test_an_unmarked_fragment_fails(tmp_path) -> None:
    from _docs import Block
    with pytest.raises(pytest.fail.Exception, match="needs a"):
        run_complete_program(Block(3, "python", "yieldio.run(main)\n"), "x.md", tmp_path)
