"""The public API's type hints, as a user's type checker sees them.

Runs ``mypy --strict`` on tests/typing_sample.py, a small user program whose
``assert_type`` calls pin the key types (``Queue[int].get()`` is an ``int``,
``spawn`` gives a ``Task[T]``, ``yieldio.run`` returns the main's result...).
"""

from __future__ import annotations

import pathlib

import pytest

api = pytest.importorskip("mypy.api", reason="mypy is not installed (pip install '.[test]')")

SAMPLE = pathlib.Path(__file__).with_name("typing_sample.py")
ROOT = SAMPLE.parent.parent


def test_typing_sample_passes_mypy_strict(tmp_path: pathlib.Path) -> None:
    stdout, stderr, status = api.run([
        "--strict",
        "--config-file", str(ROOT / "pyproject.toml"),
        "--cache-dir", str(tmp_path / "mypy_cache"),
        "--no-error-summary",
        "--show-error-codes",
        str(SAMPLE),
    ])
    assert status == 0 and not stdout.strip(), f"mypy found errors:\n{stdout}{stderr}"
