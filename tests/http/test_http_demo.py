"""The HTTP section of ``python -m yieldio demo`` runs on its own and ends by itself."""

from __future__ import annotations

import subprocess
import sys


def test_http_demo_section_runs_and_finishes() -> None:
    done = subprocess.run([sys.executable, "-m", "yieldio._demo_net_http"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "serving the chat page at http://127.0.0.1:" in out
    assert "GET /            -> 200" in out
    assert "{'members': 2, 'runtime': 'yieldio'}" in out
    assert "bob heard '" in out and "hello from alice'" in out
    assert "shared 1 kept-alive connection" in out
    assert "server shut down gracefully" in out
    assert "Traceback" not in done.stderr
