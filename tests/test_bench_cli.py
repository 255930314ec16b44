"""`python -m yieldio bench`: a tiny real run, saved and re-rendered.

Speed itself is never asserted here (bench/ measures it); these check that the
suite's command line does what it says, including on bad input.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "yieldio", "bench", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(180)
def test_saved_run_is_rendered_again_with_a_new_note(tmp_path):
    saved = tmp_path / "run.json"
    r = bench("--quick", "--only", "deep", "--peers", "asyncio", "--repeat", "1",
              "--json", str(saved))
    assert r.returncode == 0, r.stderr
    assert "== deep: depth 1,000 ==" in r.stdout
    data = json.loads(saved.read_text())
    assert data  # a real run was recorded

    again = bench("--from-json", str(saved), "--note", "after the deferred spawn")
    assert again.returncode == 0, again.stderr
    assert "- note: after the deferred spawn" in again.stdout
    # the same numbers as the run printed (the re-rendered rows may add notes)
    table = r.stdout[r.stdout.index("== deep: depth 1 =="):]
    rendered = again.stdout.splitlines()
    for line in filter(None, table.splitlines()):
        assert any(row.startswith(line.rstrip()) for row in rendered), line


@pytest.mark.timeout(60)
@pytest.mark.parametrize("content", [None, "{not json", "[]"])
def test_missing_or_malformed_saved_run_is_a_one_line_error(tmp_path, content):
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content)
    r = bench("--from-json", str(path))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "cannot read a saved run" in r.stderr


@pytest.mark.timeout(180)
def test_echo_splits_server_cpu_into_user_and_system(tmp_path):
    # The split is the evidence for the echo verdict (system time is the
    # kernel's TCP work no runtime can skip), so it must add up to the total.
    saved = tmp_path / "echo.json"
    r = bench("--quick", "--only", "echo", "--peers", "asyncio", "--repeat", "1",
              "--json", str(saved))
    assert r.returncode == 0, r.stderr
    assert "of which user" in r.stdout and "of which system" in r.stdout
    cells = [c for sec in json.loads(saved.read_text())["sections"] for c in sec["cells"]]
    runs = [run for c in cells for run in c["runs"]]
    assert {c["runtime"] for c in cells} >= {"yieldio", "floor", "asyncio"}
    assert runs
    for run in runs:
        user, system, total = run["user_us_per_req"], run["sys_us_per_req"], run["cpu_us_per_req"]
        assert user > 0 and system > 0
        assert user + system == pytest.approx(total, rel=0.25, abs=2.0)
