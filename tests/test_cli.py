"""The command line: python -m yieldio ..."""

from __future__ import annotations

import subprocess
import sys

import pytest

import yieldio


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "yieldio", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"yieldio {yieldio.__version__}"


def test_help_and_unknown_command():
    assert run_cli("--help").returncode == 0
    bad = run_cli("frobnicate")
    assert bad.returncode == 2 and "unknown command" in bad.stderr


@pytest.mark.timeout(120)
def test_demo_tours_the_model():
    out = run_cli("demo", timeout=100)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for expected in ("liftoff", "500 tasks finished", "cancelled_caught=True",
                     "sleeper state: cancelled", "no RecursionError", "ExceptionGroup",
                     "1000/1000 clients done", "latency p50"):
        assert expected in text, (expected, text)
    # Piped, not a terminal: no "\r" progress redraws run together on one line.
    assert "\r" not in text
