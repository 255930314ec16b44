"""The command line: python -m yieldio ..."""

from __future__ import annotations

import os
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


def run_cli_env(tmp_path, *args, **env):
    """run_cli with the monitor directory in tmp_path (plus ``env``)."""
    full = {k: v for k, v in os.environ.items() if k != "YIELDIO_MONITOR"}
    full.update(YIELDIO_MONITOR_DIR=str(tmp_path / "mon"), **env)
    return subprocess.run([sys.executable, "-m", "yieldio", *args], capture_output=True,
                          text=True, timeout=60, env=full)


@pytest.mark.parametrize("args, code, message", [
    # "²" is a digit to str.isdigit(), not to int(): it used to crash with a traceback.
    (["monitor", "\u00b2"], 1, "yieldio monitor: no monitor socket at '\u00b2'\n"),
    # -n 0 used to print nothing and succeed.
    (["monitor", "-n", "0", "-c", "top"], 2, "yieldio monitor: --iterations must be >= 1\n"),
    (["monitor", "-i", "0"], 2, "yieldio monitor: --interval must be > 0\n"),
    (["monitor", "1", "-c", "ps"], 1,
     "(is it running with monitor=True or YIELDIO_MONITOR=1?)\n"),
])
def test_monitor_usage_errors_are_one_line(tmp_path, args, code, message):
    out = run_cli_env(tmp_path, *args)
    assert out.returncode == code and out.stderr.endswith(message), out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_run_with_an_unsafe_monitor_directory_is_a_usage_error(tmp_path):
    # It used to end in a MonitorError traceback from deep inside yieldio.
    (tmp_path / "mon").mkdir(mode=0o755)
    (tmp_path / "mon").chmod(0o755)
    script = tmp_path / "app.py"
    script.write_text("async def main():\n    print('ran')\n")
    for args, env in [(["--monitor"], {}), ([], {"YIELDIO_MONITOR": "1"})]:
        out = run_cli_env(tmp_path, "run", *args, str(script), **env)
        assert out.returncode == 2 and out.stdout == "", out.stderr
        assert out.stderr.startswith("yieldio run: refusing to use ") and "chmod 700" in out.stderr
        assert "Traceback" not in out.stderr


@pytest.mark.parametrize("body, code, stderr", [
    ("async def main():\n    return 'config file missing'\n", 1, "config file missing\n"),
    ("import sys\nasync def main():\n    sys.exit(5)\n", 5, ""),
    ("import sys\nasync def main():\n    sys.exit('bad input')\n", 1, "bad input\n"),
    ("async def main():\n    return False\n", 0, ""),
])
def test_run_exit_codes_follow_sys_exit(tmp_path, body, code, stderr):
    script = tmp_path / "app.py"
    script.write_text(body)
    out = run_cli_env(tmp_path, "run", str(script))
    assert (out.returncode, out.stderr, out.stdout) == (code, stderr, "")
