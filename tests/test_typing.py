"""The public API's type hints, as a user's type checker sees them.

Runs ``mypy --strict`` on tests/typing_sample.py, a small user program whose
``assert_type`` calls pin the key types (``Queue[int].get()`` is an ``int``,
``spawn`` gives a ``Task[T]``, ``yieldio.run`` returns the main's result...).
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("mypy.api", reason="mypy is not installed (pip install '.[test]')")

SAMPLE = pathlib.Path(__file__).with_name("typing_sample.py")
ROOT = SAMPLE.parent.parent


def test_typing_sample_passes_mypy_strict(tmp_path: pathlib.Path) -> None:
    # In a child process, as a user runs it: mypy run in this process keeps
    # some 500,000 objects alive, which made every later gc.collect() (the
    # leak check runs one after each test) some 0.3 s slower.
    proc = subprocess.run([
        sys.executable, "-m", "mypy",
        "--strict",
        "--config-file", str(ROOT / "pyproject.toml"),
        "--cache-dir", str(tmp_path / "mypy_cache"),
        "--no-error-summary",
        "--show-error-codes",
        str(SAMPLE),
    ], capture_output=True, text=True, timeout=120)
    stdout, stderr, status = proc.stdout, proc.stderr, proc.returncode
    assert status == 0 and not stdout.strip(), f"mypy found errors:\n{stdout}{stderr}"
