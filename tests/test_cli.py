"""The command line: python -m yieldio ..."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import yieldio


def run_cli(*args: str, timeout: float = 60,
            cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "yieldio", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


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
    ("async def main():\n    return 4\n", 4, ""),
    # A result, not a status: it gave 1 with the list on stderr.
    ("async def main():\n    return [1, 2]\n", 0, ""),
])
def test_run_exit_codes_follow_sys_exit(tmp_path, body, code, stderr):
    script = tmp_path / "app.py"
    script.write_text(body)
    out = run_cli_env(tmp_path, "run", str(script))
    assert (out.returncode, out.stderr, out.stdout) == (code, stderr, "")


def test_run_readme_examples_run_once(tmp_path):
    # README's examples call yieldio.run() at top level, unguarded: 'run'
    # ran main() a second time, then exited 1 with its list on stderr.
    from concurrent.futures import ThreadPoolExecutor

    from _docs import ROOT, python_blocks, read

    blocks = python_blocks(read(ROOT / "README.md"))
    assert len(blocks) >= 2
    scripts = []
    for i, block in enumerate(blocks):
        script = tmp_path / f"readme_{i}.py"
        script.write_text(block.code)
        scripts.append(script)
    # Each in its own process, all at once (the first one mostly sleeps).
    with ThreadPoolExecutor(len(scripts)) as pool:
        outs = list(pool.map(lambda script: run_cli_env(tmp_path, "run", str(script)), scripts))
    for block, out in zip(blocks, outs, strict=True):
        assert (out.returncode, out.stderr) == (0, ""), out.stderr
        assert out.stdout.strip() == (block.expected or "").strip()


def _task_names(trace_path):
    import json

    events = json.loads(trace_path.read_text())["traceEvents"]
    # Each task is a thread of the trace, named "NAME (task N)".
    return {e["args"]["name"].split(" (task")[0] for e in events
            if e.get("name") == "thread_name"}


def test_run_tools_reach_a_script_that_calls_yieldio_run_itself(tmp_path):
    # README's scripts call yieldio.run(main) at their top level, with no
    # __name__ guard: --trace used to be dropped there with a note.
    script = tmp_path / "app.py"
    script.write_text("import yieldio\nasync def worker():\n    await yieldio.sleep(0)\n"
                      "async def main():\n    async with yieldio.TaskGroup() as tg:\n"
                      "        tg.spawn(worker)\n    print('main')\n    return 'x'\n"
                      "yieldio.run(main)\n")
    trace = tmp_path / "t.json"
    out = run_cli_env(tmp_path, "run", "--trace", str(trace), str(script))
    assert (out.returncode, out.stdout, out.stderr) == (0, "main\n", "")
    assert {"main", "worker"} <= _task_names(trace)


def test_run_tools_the_scripts_own_option_wins_and_later_runs_are_named(tmp_path):
    script = tmp_path / "app.py"
    script.write_text("import time, yieldio\n"
                      "async def slow():\n    time.sleep(0.05)\n"
                      "async def in_first():\n    await slow()\n"
                      "async def in_second():\n    await slow()\n"
                      "async def first():\n    async with yieldio.TaskGroup() as tg:\n"
                      "        tg.spawn(in_first)\n"
                      "async def second():\n    async with yieldio.TaskGroup() as tg:\n"
                      "        tg.spawn(in_second)\n"
                      # Its own debug option: no slow-step report, even with --debug.
                      "yieldio.run(first, debug=False)\n"
                      "yieldio.run(second)\n")
    trace = tmp_path / "t.json"
    out = run_cli_env(tmp_path, "run", "--debug", "--slow-step", "0.01", "--trace", str(trace),
                      str(script))
    assert out.returncode == 0, out.stderr
    assert out.stderr == (f"yieldio run: --trace/--debug applied to the first of the 2 "
                          f"yieldio.run() calls {script} made\n")
    names = _task_names(trace)
    assert "in_first" in names and "in_second" not in names


def test_run_debug_reaches_a_script_that_calls_yieldio_run_itself(tmp_path):
    script = tmp_path / "app.py"
    script.write_text("import time, yieldio\nasync def main():\n    time.sleep(0.05)\n"
                      "yieldio.run(main)\n")
    out = run_cli_env(tmp_path, "run", "--debug", "--slow-step", "0.01", str(script))
    assert out.returncode == 0, out.stderr
    assert "task 1 'main' blocked the event loop" in out.stderr, out.stderr


def test_no_command_is_a_usage_error_on_stderr():
    # It printed the usage on stdout while exiting 2.
    out = run_cli()
    assert out.returncode == 2 and out.stdout == "" and "usage: yieldio" in out.stderr


def _interrupt_after_first_line(args, timeout=30):
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "yieldio", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
        proc.wait()
    return proc.returncode, first + out, err


@pytest.mark.timeout(60)
def test_ctrl_c_during_demo_is_a_clean_interruption():
    # It used to end in a long traceback of yieldio's frames (and -SIGINT).
    code, out, err = _interrupt_after_first_line(["demo"])
    if code == 0:
        pytest.skip("the demo finished before the signal arrived")
    assert (code, err.strip()) == (130, "yieldio demo: interrupted"), err


@pytest.mark.timeout(60)
def test_ctrl_c_during_run_exits_130_without_noise(tmp_path):
    script = tmp_path / "app.py"
    script.write_text("import yieldio\nasync def main():\n    print('up', flush=True)\n"
                      "    await yieldio.sleep(30)\n")
    code, out, err = _interrupt_after_first_line(["run", str(script)])
    assert (code, out, err) == (130, "up\n", "yieldio run: interrupted\n")


def test_run_syntax_error_shows_the_script_not_yieldio(tmp_path):
    # Every frame was yieldio's or runpy's, so the whole traceback was shown.
    script = tmp_path / "app.py"
    script.write_text("def main(:\n    pass\n")
    out = run_cli("run", str(script))
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "runpy" not in out.stderr, out.stderr
    assert out.stderr.startswith(f'  File "{script}", line 1\n')
    assert out.stderr.endswith("SyntaxError: invalid syntax\n")


@pytest.mark.parametrize("body, message", [
    # A class is callable: it was called "a plain function".
    ("class main:\n    pass\n", "main in {} is a class; it must be 'async def main()'"),
    ("def main():\n    pass\n", "main in {} is a plain function"),
])
def test_run_names_what_main_is(tmp_path, body, message):
    script = tmp_path / "app.py"
    script.write_text(body)
    out = run_cli("run", str(script))
    assert out.returncode == 2 and out.stderr.startswith("yieldio run: " + message.format(script))


def test_run_a_directory_says_so(tmp_path):
    # It said "no such file" about a directory that plainly exists.
    out = run_cli("run", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr == f"yieldio run: {str(tmp_path)!r} is a directory, not a Python file\n"


def test_run_script_sees_its_directory_and_can_be_pickled(tmp_path):
    # sys.path[0] is the script's directory (imports of its neighbours work),
    # and its module stays in sys.modules while main() runs: pickle used to
    # fail with "import of module '__yieldio_main__' failed".
    (tmp_path / "helper.py").write_text("X = 42\n")
    script = tmp_path / "app.py"
    script.write_text(
        "import dataclasses, pickle, sys, typing\nimport helper\n\n"
        "@dataclasses.dataclass\nclass Point:\n    x: 'int'\n\n"
        "async def main():\n"
        "    p = pickle.loads(pickle.dumps(Point(helper.X)))\n"
        "    print(sys.path[0], p, typing.get_type_hints(Point), __name__)\n"
        "if __name__ == '__main__':\n    print('the guard ran')\n")
    out = run_cli("run", str(script), cwd=str(tmp_path.parent))
    assert out.returncode == 0, out.stderr
    assert out.stdout == (f"{tmp_path} Point(x=42) {{'x': <class 'int'>}} __yieldio_main__\n")


_MP_SCRIPT = """\
import multiprocessing, sys
from concurrent.futures import ProcessPoolExecutor

import yieldio


class Box:
    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f"Box({self.value})"


def square(box):
    return Box(box.value * box.value)


def in_pool(method):
    with multiprocessing.get_context(method).Pool(1) as pool:
        # Bounded: a worker that cannot unpickle its task leaves map() waiting forever.
        return pool.map_async(square, [Box(2), Box(3)]).get(timeout=30)


def in_executor(method):
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method)) as ex:
        return ex.submit(square, Box(5)).result(timeout=30)


async def main():
    print(sys.modules["__main__"].__file__ == __file__)
    for method in ("spawn", "forkserver"):
        print(method, in_executor(method), await yieldio.to_thread(in_pool, method))


if __name__ == "__main__":
    yieldio.run(main)
"""


@pytest.mark.timeout(150)
def test_run_script_can_use_spawn_and_forkserver_processes(tmp_path):
    # A "spawn" or "forkserver" child re-runs the script from
    # sys.modules["__main__"].__file__ to find what it must unpickle. Under
    # 'yieldio run' __main__ was yieldio's own (its __spec__ names
    # yieldio.__main__): the child ran nothing, and unpickling the script's
    # function failed with "No module named '__yieldio_main__'" (a
    # ProcessPoolExecutor broke; a Pool waited forever).
    script = tmp_path / "app.py"
    script.write_text(_MP_SCRIPT)
    expected = ("True\nspawn Box(25) [Box(4), Box(9)]\n"
                "forkserver Box(25) [Box(4), Box(9)]\n")
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           timeout=60, cwd=str(tmp_path))
    assert (plain.returncode, plain.stdout) == (0, expected), plain.stderr
    out = run_cli("run", str(script), cwd=str(tmp_path.parent))
    assert (out.returncode, out.stdout) == (0, expected), out.stderr


def test_run_makes_the_script_main_only_while_it_runs(tmp_path, capsys):
    # In-process: the script is sys.modules["__main__"] (and "__mp_main__")
    # while it runs, and the process's own modules and sys.path come back.
    from yieldio._cli_debug import cmd_run

    script = tmp_path / "app.py"
    script.write_text("import sys\n\nasync def main():\n"
                      "    me = sys.modules[__name__]\n"
                      "    print(sys.modules['__main__'] is me, sys.modules['__mp_main__'] is me)\n")
    names = ("__main__", "__mp_main__", "__yieldio_main__")
    before = {name: sys.modules.get(name) for name in names}
    path = sys.path[:]
    assert cmd_run([str(script)]) == 0
    assert capsys.readouterr().out == "True True\n"
    assert {name: sys.modules.get(name) for name in names} == before and sys.path == path


def test_monitor_explains_a_stale_socket_and_a_non_socket(tmp_path):
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mon = tmp_path / "mon"
    mon.mkdir(mode=0o700)
    path = mon / f"{dead.pid}.sock"
    with socket.socket(socket.AF_UNIX) as s:  # bound, never listening: what SIGKILL leaves
        s.bind(str(path))
    # Both used to say only "[Errno 111] Connection refused".
    out = run_cli_env(tmp_path, "monitor", str(dead.pid), "-c", "ps")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr == (f"yieldio monitor: {str(path)!r} is a stale socket: pid {dead.pid} "
                          "is no longer running (the file can be removed)\n")
    plain = tmp_path / "notes.txt"
    plain.write_text("")
    out = run_cli_env(tmp_path, "monitor", str(plain), "-c", "ps")
    assert out.returncode == 1
    assert out.stderr == (f"yieldio monitor: {str(plain)!r} is not a socket (give a PID or a "
                          "monitor socket path)\n")


def _trace(tmp_path):
    script = tmp_path / "app.py"
    script.write_text("import yieldio\nasync def main():\n    await yieldio.sleep(0)\n")
    trace = tmp_path / "run.json"
    assert run_cli("run", "--trace", str(trace), str(script)).returncode == 0
    return trace


def test_trace_view_output_paths(tmp_path):
    trace = _trace(tmp_path)
    # Default: next to the trace, replaced if it exists.
    (tmp_path / "run.html").write_text("old")
    out = run_cli("trace", "view", str(trace), cwd=str(tmp_path.parent))
    assert out.returncode == 0 and out.stdout.startswith(f"wrote {tmp_path / 'run.html'} ")
    assert (tmp_path / "run.html").read_text().startswith("<!")
    # "-o -" is standard output; it used to write a file named "-".
    out = run_cli("trace", "view", str(trace), "-o", "-", cwd=str(tmp_path))
    assert out.returncode == 0 and out.stdout.startswith("<!") and "</html>" in out.stdout
    assert not (tmp_path / "-").exists()
    # -o naming the trace itself: the hint was "use -o", which had been used.
    out = run_cli("trace", "view", str(trace), "-o", str(trace))
    assert out.returncode == 2
    assert out.stderr == ("yieldio trace view: the output would overwrite the trace; "
                          "choose another -o\n")


def test_run_without_a_script_and_version_with_extra_words_are_usage_errors():
    r = run_cli("run")
    assert r.returncode == 2
    assert "required: SCRIPT" in r.stderr and "args" not in r.stderr.splitlines()[-1]
    r = run_cli("--version", "extra")
    assert r.returncode == 2 and "takes no arguments" in r.stderr and not r.stdout
