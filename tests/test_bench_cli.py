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


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, message", [
    # Each of these used to start measuring: --timeout 0 turned every cell
    # into an instant "timeout", "--only ," ran nothing and exited 0, and an
    # unwritable --json ended a (possibly 30-minute) run in a traceback.
    (["--timeout", "0"], "--timeout must be > 0 seconds"),
    (["--timeout", "-1"], "--timeout must be > 0 seconds"),
    (["--only", ","], "--only names no benchmark"),
    # Empty: it ran every benchmark.
    (["--only", ""], "--only names no benchmark"),
    (["--only", "nope"], "unknown benchmark(s): nope"),
    (["--peers", "nope"], "unknown peer(s): nope"),
    (["--repeat", "0"], "--repeat must be >= 1"),
    (["--quick", "--repeat", "-2"], "--repeat must be >= 1"),
    (["--json", "{tmp}/no/such/dir/run.json"], "does not exist"),
    (["--json", "{tmp}"], "is a directory"),
])
def test_bad_options_fail_before_measuring(tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = bench("--only", "deep", *args, timeout=30)
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1].startswith("python -m yieldio bench: error: ")
    assert message in r.stderr


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def _live_in_group(pgid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


@pytest.mark.timeout(90)
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_ctrl_c_stops_the_run_and_its_worker(tmp_path):
    import signal
    import time

    # A full-size echo cell: its worker runs for seconds, so Ctrl-C lands
    # while it runs. The worker is in its own session (the terminal's SIGINT
    # does not reach it): it used to run on as an orphan, after a traceback.
    proc = subprocess.Popen([sys.executable, "-m", "yieldio", "bench", "--only", "echo",
                             "--peers", "asyncio", "--repeat", "1",
                             "--json", str(tmp_path / "run.json")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while not workers and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            workers = _children(proc.pid)
        assert workers, "no worker started"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.rstrip().endswith("bench: interrupted; nothing was saved")
    assert not (tmp_path / "run.json").exists()
    time.sleep(0.2)
    for worker in workers:
        assert _live_in_group(worker) == [], "the worker or its load client is still running"


@pytest.mark.timeout(60)
def test_outside_a_source_checkout_is_a_clear_error(tmp_path):
    import shutil

    shutil.copytree(ROOT / "src" / "yieldio", tmp_path / "lib" / "yieldio",
                    ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, "-m", "yieldio", "bench", "--quick"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=30,
                       env={"PYTHONPATH": str(tmp_path / "lib"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == ("yieldio bench runs from a source checkout "
                        "(the bench/ folder is not installed)\n")
