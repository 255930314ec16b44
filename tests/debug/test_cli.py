"""python -m yieldio run: a script's main() under yieldio, with --trace/--monitor/--debug."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from yieldio._cli_debug import cmd_run
from yieldio.debug import TraceRecorder


def script(tmp_path, body, name="app.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_runs_main_with_argv_and_returns_its_exit_code(tmp_path, capsys):
    path = script(tmp_path, """
        import sys, yieldio

        async def main():
            await yieldio.sleep(0)
            print("args", sys.argv[1:], __name__)
            return 3

        if __name__ == "__main__":
            raise SystemExit("the script's own entry point must not run")
    """)
    assert cmd_run([str(path), "--port", "8080"]) == 3
    assert capsys.readouterr().out == "args ['--port', '8080'] __yieldio_main__\n"


def test_run_passes_a_double_dash_after_the_script_on_to_it(tmp_path):
    path = script(tmp_path, """
        import json, sys

        async def main():
            print(json.dumps(sys.argv[1:]))

        if __name__ == "__main__":
            import yieldio
            yieldio.run(main)
    """)
    for args in (["--", "-x"], ["a", "--", "b"], ["--"]):
        plain = subprocess.run([sys.executable, str(path), *args], capture_output=True,
                               text=True, timeout=30)
        under = subprocess.run([sys.executable, "-m", "yieldio", "run", str(path), *args],
                               capture_output=True, text=True, timeout=30)
        assert under.returncode == 0, under.stderr
        # What 'python app.py ARGS' gives the script, 'yieldio run app.py ARGS' gives too.
        assert json.loads(under.stdout) == json.loads(plain.stdout) == args


def test_generator_main_and_trace(tmp_path):
    path = script(tmp_path, """
        import yieldio

        def main():
            yield from yieldio.sleep(0)
    """)
    trace = tmp_path / "t.json"
    assert cmd_run(["--trace", str(trace), str(path)]) == 0
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(e["ph"] == "X" and e["name"] == "main" for e in events)


def test_debug_flag_reports_slow_steps(tmp_path, caplog):
    path = script(tmp_path, """
        import time, yieldio

        async def main():
            await yieldio.sleep(0)
            time.sleep(0.2)
    """)
    assert cmd_run(["--debug", "--slow-step", "0.05", str(path)]) == 0
    assert any("blocked the event loop" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("body, code, message", [
    ("x = 1\n", 2, "has no main() function"),
    ("def main():\n    return 1\n", 2, "main in {} is a plain function"),
    ("main = 42\n", 2, "main in {} is a int"),
    ("async def main():\n    raise KeyError('x')\n", 1, "KeyError: 'x'"),
    ("raise RuntimeError('at import')\n", 1, "RuntimeError: at import"),
    ("import sys\nsys.exit(4)\n", 4, ""),
    # Ctrl-C at the top level is an interruption (130), as in main(), not a crash (1).
    ("raise KeyboardInterrupt\n", 130, "yieldio run: interrupted"),
    ("async def main():\n    raise KeyboardInterrupt\n", 130, "yieldio run: interrupted"),
])
def test_scripts_that_cannot_run_get_clear_errors(tmp_path, capsys, body, code, message):
    path = script(tmp_path, body)
    assert cmd_run([str(path)]) == code
    assert message.format(path) in capsys.readouterr().err


def test_run_refuses_a_main_that_needs_arguments_with_a_usage_error(tmp_path):
    path = script(tmp_path, "async def main(port):\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "yieldio", "run", str(path), "8080"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.startswith("yieldio run: main in ") and "needs arguments" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("body, first_frame", [
    ("async def main():\n    await helper()\n"
     "async def helper():\n    raise ValueError('boom')\n", "in main"),
    ("import yieldio\nasync def child():\n    raise KeyError('k')\n"
     "async def main():\n    async with yieldio.TaskGroup() as tg:\n        tg.spawn(child)\n",
     "in main"),
    ("raise RuntimeError('at import')\n", "in <module>"),
])
def test_tracebacks_start_at_the_scripts_own_frames(tmp_path, capsys, body, first_frame):
    # The frames of this command, yieldio.run, the kernel and runpy come
    # before the script's own and say nothing about its bug: left out.
    path = script(tmp_path, body)
    assert cmd_run([str(path)]) == 1
    err = capsys.readouterr().err
    frames = [line.strip() for line in err.splitlines() if line.strip().lstrip("| ").startswith("File ")]
    assert frames and str(path) in frames[0] and first_frame in frames[0], err
    assert "_kernel.py" not in err and "runpy" not in err and "_cli_debug" not in err


def test_a_deadlock_is_its_message_not_yieldios_frames(tmp_path, capsys):
    # No frame is the script's, so the whole traceback was printed: this
    # command's and yieldio.run's frames, above the report that says it all.
    path = script(tmp_path, """
        import yieldio

        async def main():
            await yieldio.Event().wait()
    """)
    assert cmd_run([str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("yieldio.Deadlock: every task is blocked and nothing can wake them:\n")
    assert "Traceback" not in err and "_cli_debug" not in err and "_run.py" not in err, err
    assert "app.py:5)" in err, err


def test_missing_script_and_bad_options(tmp_path, capsys):
    assert cmd_run([str(tmp_path / "nope.py")]) == 2
    assert "no such file" in capsys.readouterr().err
    path = script(tmp_path, "async def main():\n    pass\n")
    assert cmd_run(["--slow-step", "0.1", str(path)]) == 2
    assert "--slow-step needs --debug" in capsys.readouterr().err
    assert cmd_run(["--trace", str(tmp_path / "no" / "dir.json"), str(path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cmd_run(["--help"])
    assert info.value.code == 0
    assert "--trace FILE" in capsys.readouterr().out


def test_a_trace_path_that_is_a_directory_is_refused_before_the_script_runs(tmp_path):
    ran = tmp_path / "ran"
    path = script(tmp_path, f"open({str(ran)!r}, 'w').close()\nasync def main():\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "yieldio", "run", "--trace", str(tmp_path),
                           str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "is a directory" in proc.stderr, proc.stderr
    assert not ran.exists()  # refused up front, not after the whole run
    with pytest.raises(IsADirectoryError):
        TraceRecorder(tmp_path)


@pytest.mark.parametrize("extra", [["--debug"], []])
def test_slow_step_zero_is_refused_not_ignored(tmp_path, capsys, extra):
    # --slow-step 0 used to be taken for "not given": the 100 ms default ran
    # instead, and without --debug it was not even reported.
    path = script(tmp_path, "async def main():\n    pass\n")
    assert cmd_run([*extra, "--slow-step", "0", str(path)]) == 2
    assert "--slow-step must be > 0" in capsys.readouterr().err


def test_sys_argv_and_path_are_restored(tmp_path):
    path = script(tmp_path, "async def main():\n    pass\n")
    argv, syspath = sys.argv[:], sys.path[:]
    cmd_run([str(path), "a"])
    assert sys.argv == argv and sys.path == syspath


def test_in_a_real_process_with_monitor(tmp_path):
    path = script(tmp_path, """
        import yieldio

        async def main():
            await yieldio.sleep(0.05)
            print("done")
    """)
    code = "import sys; from yieldio._cli_debug import cmd_run; sys.exit(cmd_run(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "--monitor", str(path)],
                          capture_output=True, text=True, timeout=60,
                          env={"YIELDIO_MONITOR_DIR": str(tmp_path / "mon"),
                               "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "done\n" and "monitor listening on" in proc.stderr
    assert list((tmp_path / "mon").iterdir()) == []
