"""The debugging commands of ``python -m yieldio``: run, monitor, trace.

Each ``cmd_*`` takes the arguments after the command name and returns an
exit code::

    python -m yieldio run --trace trace.json --monitor app.py --port 8080
    python -m yieldio monitor 12345 -c tree
    python -m yieldio trace view trace.json -o trace.html
"""

from __future__ import annotations

import argparse
import inspect
import os
import runpy
import select
import stat
import sys
import threading
import time
import traceback
import types
from typing import Any

__all__ = ["cmd_run", "cmd_monitor", "cmd_trace"]


# -- run ----------------------------------------------------------------------------
def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m yieldio run",
        description="Run SCRIPT's main() -- an 'async def main()' or a generator function -- "
                    "under yieldio.run(), with debugging options. The script's top level runs "
                    "first (with __name__ set to '__yieldio_main__', so its own "
                    "'if __name__ == \"__main__\"' block is skipped); sys.argv is "
                    "[SCRIPT, ARGS...] and sys.path[0] the script's directory, as for "
                    "'python SCRIPT'. main() is called with no arguments: it reads them "
                    "from sys.argv. Everything after SCRIPT goes to the script, options "
                    "included. If the top level calls yieldio.run() itself (no __name__ "
                    "guard), that was the program's run: the options apply to its first "
                    "yieldio.run() (where that call does not set them itself), and main() "
                    "is not run again. main() returning an int exits with it, a "
                    "str is printed on stderr and exits 1 (as sys.exit() treats them); "
                    "None or any other value exits 0. sys.exit(N) gives N; an uncaught "
                    "error exits 1, Ctrl-C exits 130. "
                    "SCRIPT must be a file: 'run -m MODULE' is not supported.",
        epilog="example: python -m yieldio run --trace trace.json --debug server.py --port 8080")
    p.add_argument("--trace", metavar="FILE", help="write a Chrome trace of the run to FILE")
    p.add_argument("--monitor", action="store_true",
                   help="serve the live monitor (then: python -m yieldio monitor PID)")
    p.add_argument("--debug", action="store_true",
                   help="debug mode: report slow steps (>100 ms) and never-awaited coroutines")
    p.add_argument("--slow-step", type=float, metavar="SECONDS",
                   help="with --debug: the slow-step threshold (default 0.1)")
    p.add_argument("script", nargs="?", metavar="SCRIPT", help="the Python file to run")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    return p


def cmd_run(argv: list[str]) -> int:
    """``python -m yieldio run [--trace FILE] [--monitor] [--debug] SCRIPT [ARGS...]``."""
    parser = _run_parser()
    args = parser.parse_args(argv)
    script = args.script
    if script is None:
        # (argparse would name "args" as required too: REMAINDER is optional.)
        parser.error("the following argument is required: SCRIPT")
    args.args = _script_args(argv, script, args.args)
    if os.path.isdir(script):
        # Not "no such file": it exists, it is just not something run can execute.
        print(f"yieldio run: {script!r} is a directory, not a Python file", file=sys.stderr)
        return 2
    if not os.path.isfile(script):
        print(f"yieldio run: no such file: {script!r}", file=sys.stderr)
        return 2
    opts: dict[str, Any] = {}
    if args.trace:
        opts["trace"] = args.trace
    if args.monitor:
        opts["monitor"] = True
    # "is not None", not truthiness: --slow-step 0 is a bad value to report,
    # not "no threshold given" (it silently meant the 100 ms default).
    if args.slow_step is not None and not args.slow_step > 0:
        print(f"yieldio run: --slow-step must be > 0 seconds, not {args.slow_step:g}",
              file=sys.stderr)
        return 2
    if args.debug:
        opts["debug"] = args.slow_step if args.slow_step is not None else True
    elif args.slow_step is not None:
        print("yieldio run: --slow-step needs --debug", file=sys.stderr)
        return 2

    import yieldio

    from . import _runopts, _state
    from .debug._monitor_dir import MonitorError

    # Build the instruments here, not inside run(): a bad --trace path is a
    # usage error reported before the script is even imported. Options not
    # given still come from YIELDIO_DEBUG / YIELDIO_MONITOR.
    try:
        instruments = _runopts.instruments_by_option(opts)
    except (TypeError, ValueError, OSError, MonitorError) as exc:
        print(f"yieldio run: {exc}", file=sys.stderr)
        return 2
    tools = [opt for opt, on in (("--trace", args.trace), ("--monitor", args.monitor),
                                 ("--debug", args.debug)) if on]

    saved_argv, saved_path = sys.argv[:], sys.path[:]
    saved_modules = {name: sys.modules.get(name) for name in _MODULE_NAMES}
    sys.argv = [script, *args.args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    # Last, so it shadows nothing: how a "spawn"/"forkserver" child of the
    # script finds __yieldio_main__ (see _mp_main/__yieldio_main__.py).
    sys.path.append(_MP_MAIN_DIR)
    runs_before = getattr(_state.local, "runs", 0)
    # For the first yieldio.run() in this thread: the script's own, if its
    # top level makes one, else main()'s below (see _run._take_cli_handoff).
    _state.cli_handoff = (threading.get_ident(), instruments)
    try:
        try:
            namespace = _exec_script(script)
        except SystemExit as exc:
            return _exit_code(exc.code)
        except KeyboardInterrupt:
            # Ctrl-C while the script's top level runs (a slow import, a
            # blocking setup call): the same answer as during main().
            print("yieldio run: interrupted", file=sys.stderr)
            return 130
        except BaseException as exc:
            _print_user_traceback(exc)
            return 1
        runs = getattr(_state.local, "runs", 0) - runs_before
        if runs:
            # The top level called yieldio.run() itself, with no __name__
            # guard (README's examples do): the program has run, as under
            # 'python SCRIPT', with the tools. Running main() again ran it
            # twice and then took its result (a list, say) for an error
            # exit status.
            if runs > 1 and tools:
                print(f"yieldio run: {'/'.join(tools)} applied to the first of the "
                      f"{runs} yieldio.run() calls {script} made", file=sys.stderr)
            return 0
        main = namespace.get("main")
        if main is None:
            print(f"yieldio run: {script} has no main() function; define 'async def main()' "
                  "(or a generator function main) for yieldio to run", file=sys.stderr)
            return 2
        if not (inspect.iscoroutinefunction(main) or inspect.isgeneratorfunction(main)):
            # A class is callable too: it is not a "plain function".
            kind = ("class" if inspect.isclass(main) else
                    type(main).__name__ if not callable(main) else "plain function")
            print(f"yieldio run: main in {script} is a {kind}; it must be 'async def main()' "
                  "or a generator function", file=sys.stderr)
            return 2
        try:
            inspect.signature(main).bind()
        except TypeError:
            # Else a traceback made only of yieldio's frames, for what is a
            # usage error: main() is called with no arguments.
            print(f"yieldio run: main in {script} needs arguments; it is called as main() "
                  "(its arguments are in sys.argv)", file=sys.stderr)
            return 2
        except ValueError:
            pass  # no signature to check (a builtin): let the call say
        try:
            # The tools (and the environment, read above) come from the handoff.
            result = yieldio.run(main)
        except SystemExit as exc:
            return _exit_code(exc.code)
        except KeyboardInterrupt:
            print("yieldio run: interrupted", file=sys.stderr)
            return 130
        except BaseException as exc:
            _print_user_traceback(exc)
            return 1
        return _result_code(result)
    finally:
        _state.cli_handoff = None
        sys.argv, sys.path[:] = saved_argv, saved_path
        for name, module in saved_modules.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


_RUN_NAME = "__yieldio_main__"
# The script's module goes by all three names while it runs: its own, and
# "__main__" and "__mp_main__" as for 'python SCRIPT' (multiprocessing
# aliases these two when first imported, which may have happened already).
_MODULE_NAMES = (_RUN_NAME, "__main__", "__mp_main__")
_MP_MAIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_mp_main")


def _exec_script(path: str) -> dict[str, Any]:
    """Run the script's top level as module ``__yieldio_main__``; return its globals.

    Not runpy.run_path(): that removes the module from sys.modules as soon as
    the top level has run, so while main() runs, pickle (a process pool, a
    queue to another process) and typing.get_type_hints() could not find the
    script's classes by their module ("import of module '__yieldio_main__'
    failed"), which 'python SCRIPT' allows. The module stays registered until
    cmd_run returns.

    It is sys.modules["__main__"] too, with __file__ and no __spec__, as for
    'python SCRIPT': a multiprocessing child started with "spawn" or
    "forkserver" re-runs the script from there. Left as yieldio's own
    __main__ (whose __spec__ names yieldio.__main__), the child ran nothing
    and failed to unpickle the script's functions and classes ("No module
    named '__yieldio_main__'").
    """
    with open(path, "rb") as f:  # bytes: compile() honours a coding cookie
        source = f.read()
    module = types.ModuleType(_RUN_NAME)
    module.__file__ = path
    module.__cached__ = None  # type: ignore[attr-defined]
    for name in _MODULE_NAMES:
        sys.modules[name] = module
    code = compile(source, path, "exec", dont_inherit=True)
    exec(code, module.__dict__)
    return module.__dict__


def _script_args(argv: list[str], script: str, parsed: list[str]) -> list[str]:
    """The script's arguments exactly as given: ``parsed`` plus any ``--`` argparse ate.

    argparse drops the first ``--`` of the command line even when it comes
    after SCRIPT, where it belongs to the script: ``run app.py -- -x`` gave
    the script ``['-x']``, not ``['--', '-x']`` as ``python app.py -- -x``
    does. The script's arguments are the tail of ``argv``; if the word just
    before that tail is the first ``--`` and follows SCRIPT, it was eaten.
    """
    cut = len(argv) - len(parsed)
    if (cut >= 2 and argv[cut - 1] == "--" and argv[cut - 2] == script
            and "--" not in argv[: cut - 1]):
        return argv[cut - 1:]
    return parsed


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_RUNPY = (os.path.abspath(runpy.__file__), "<frozen runpy>")


def _print_user_traceback(exc: BaseException) -> None:
    """Print ``exc`` as Python would, minus the leading frames of yieldio and runpy.

    Those frames (this command, ``yieldio.run``, the kernel re-raising the
    main task's error) come before the script's own and say nothing about
    its bug. If no frame is the script's, the traceback is printed whole --
    except for an error of yieldio's whose message says it all.
    """
    from ._exceptions import Deadlock

    _trim(exc)
    if isinstance(exc, Deadlock) and _all_ours(exc.__traceback__):
        # Its message names every blocked task and where it waits; the frames
        # (this command, yieldio.run re-raising it) only pushed that down.
        print(f"yieldio.{type(exc).__name__}: {exc}", file=sys.stderr)
        return
    if isinstance(exc, SyntaxError) and _all_ours(exc.__traceback__):
        # The script does not compile: like 'python SCRIPT', show just the
        # file, line and caret, not the frames of this command that read it.
        exc.__traceback__ = None
    traceback.print_exception(exc)


def _all_ours(tb: Any) -> bool:
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not (os.path.abspath(filename).startswith(_PACKAGE_DIR) or filename in _RUNPY):
            return False
        tb = tb.tb_next
    return True


def _trim(exc: BaseException) -> None:
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not (os.path.abspath(filename).startswith(_PACKAGE_DIR) or filename in _RUNPY):
            break
        tb = tb.tb_next
    if tb is not None:
        exc.__traceback__ = tb
    if isinstance(exc, BaseExceptionGroup):  # a child task's error starts in the kernel too
        for inner in exc.exceptions:
            _trim(inner)


def _result_code(result: Any) -> int:
    """The exit code for what main() returned.

    An int or a str is an exit status, as ``sys.exit(yieldio.run(main))``
    would take it. Any other value is a result, not a status: it gives 0, as
    'python SCRIPT' ignores what a bare ``yieldio.run(main)`` returns. A
    main() returning a list of results used to exit 1, the list on stderr.
    """
    if isinstance(result, (int, str)):
        return _exit_code(result)
    return 0


def _exit_code(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int):  # like sys.exit(): True is 1, False is 0
        return value
    print(value, file=sys.stderr)
    return 1


# -- monitor -----------------------------------------------------------------------------
def _monitor_parser() -> argparse.ArgumentParser:
    from .debug._monitor_commands import COMMANDS, NAME_HELP

    p = argparse.ArgumentParser(
        prog="python -m yieldio monitor",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Attach to a yieldio program started with monitor=True (or\n"
                    "YIELDIO_MONITOR=1, or 'python -m yieldio run --monitor') and look\n"
                    "inside it while it runs. Without -c, an interactive prompt.\n\n"
                    "commands:\n" + "\n".join("  " + v for v in COMMANDS.values())
                    + "\n" + NAME_HELP,
        epilog="examples:\n  python -m yieldio monitor 12345\n"
               "  python -m yieldio monitor 12345 -c tree -c 'where 7'\n"
               "  python -m yieldio monitor /run/user/1000/yieldio/12345.sock -c stats")
    p.add_argument("target", nargs="?",
                   help="the program's PID or monitor socket path (default: the only one "
                        "running)")
    p.add_argument("-c", "--command", action="append", metavar="CMD",
                   help="run CMD, print its answer and exit (may be repeated)")
    p.add_argument("-n", "--iterations", type=int, default=None, metavar="N",
                   help="top: refresh N times then exit (default: until q; 1 with -c)")
    p.add_argument("-i", "--interval", type=float, default=1.0, metavar="SECONDS",
                   help="top: seconds between refreshes (default 1)")
    return p


def cmd_monitor(argv: list[str]) -> int:
    """``python -m yieldio monitor [PID | SOCKET] [-c CMD]...``."""
    from .debug._monitor_client import MonitorClient, find_monitor_socket
    from .debug._monitor_dir import MonitorError

    args = _monitor_parser().parse_args(argv)
    if args.interval <= 0:
        print("yieldio monitor: --interval must be > 0", file=sys.stderr)
        return 2
    if args.iterations is not None and args.iterations < 1:
        print("yieldio monitor: --iterations must be >= 1", file=sys.stderr)
        return 2
    path = None
    try:
        path = find_monitor_socket(args.target)
        client = MonitorClient(path)
    except MonitorError as exc:
        print(f"yieldio monitor: {_why_no_connection(path) or exc}", file=sys.stderr)
        return 1
    try:
        if args.command:
            status = 0
            for line in args.command:
                code = _one_command(client, line, args, interactive=False)
                if code is None:
                    break
                status = status or code
            return status
        return _interactive(client, args)
    except MonitorError as exc:
        print(f"yieldio monitor: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()


def _why_no_connection(path: str | None) -> str | None:
    """A plainer reason than "Connection refused" when ``path`` cannot be a live monitor.

    A program killed with SIGKILL leaves its socket behind; naming its pid
    (or any file that is no socket) got "[Errno 111] Connection refused".
    """
    if path is None:
        return None
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if not stat.S_ISSOCK(mode):
        return f"{path!r} is not a socket (give a PID or a monitor socket path)"
    pid = os.path.basename(path).split(".")[0].split("-")[0]
    if pid.isdecimal():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return (f"{path!r} is a stale socket: pid {pid} is no longer running "
                    "(the file can be removed)")
        except (PermissionError, OverflowError):
            pass
    return None


def _one_command(client: Any, line: str, args: argparse.Namespace,
                 interactive: bool) -> int | None:
    """Run one command line; None means quit. Returns 0 or 1 (the answer's ok)."""
    cmd, _, arg = line.strip().partition(" ")
    if not cmd:
        return 0
    if cmd in ("quit", "exit", "q"):
        return None
    if cmd == "top":
        return _top(client, args, interactive)
    reply = client.request(cmd, arg.strip())
    out = sys.stdout if reply.get("ok") else sys.stderr
    print(reply.get("text", ""), file=out, flush=True)
    return 0 if reply.get("ok") else 1


def _interactive(client: Any, args: argparse.Namespace) -> int:
    hello = client.hello
    # A program may have emptied sys.argv (or be embedded, with none):
    # 'argv[0]' must not end the session with an IndexError.
    argv = hello.get("argv")
    prog = os.path.basename(str(argv[0]) if isinstance(argv, list) and argv else "") or "?"
    print(f"yieldio monitor: pid {hello.get('pid')} ({prog}) at {client.path}")
    print("type 'help' for commands, 'quit' to leave (the program keeps running)")
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    while True:
        try:
            line = input("yieldio> ")
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:
            print()
            continue
        if _one_command(client, line, args, interactive=True) is None:
            return 0


def _top(client: Any, args: argparse.Namespace, interactive: bool) -> int:
    """A refreshing view: redraw in place until q (or N refreshes)."""
    tty = interactive and sys.stdin.isatty() and sys.stdout.isatty()
    count = args.iterations if args.iterations is not None else (None if tty else 1)
    refreshes = 0
    status = 0
    saved = None
    if tty:
        import termios
        import tty as _tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        _tty.setcbreak(fd)
    try:
        while count is None or refreshes < count:
            reply = client.request("top")
            refreshes += 1
            status = 0 if reply.get("ok") else 1
            if tty:
                # Home the cursor and clear the screen: the view refreshes in place.
                sys.stdout.write("\x1b[H\x1b[2J")
                sys.stdout.write(reply.get("text", "") + "\n\n(q to quit)\n")
                sys.stdout.flush()
            else:
                print(reply.get("text", ""), flush=True)
                if count is None or refreshes < count:
                    print()
            if count is not None and refreshes >= count:
                break
            if tty:
                ready, _, _ = select.select([sys.stdin], [], [], args.interval)
                if ready and sys.stdin.read(1).lower() == "q":
                    break
            else:
                time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
        client.request("top", "stop")
    return status


# -- trace --------------------------------------------------------------------------------
def _trace_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m yieldio trace",
        description="Work with trace files written by yieldio.run(main, trace='trace.json') "
                    "or 'python -m yieldio run --trace FILE'. They are Chrome trace event "
                    "JSON: https://ui.perfetto.dev and chrome://tracing open them too.")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    view = sub.add_parser(
        "view", help="render a trace as a self-contained HTML timeline",
        description="Render TRACE as one HTML file that needs no network: one row per task, "
                    "zoom with the mouse wheel, drag to pan, hover for details.")
    view.add_argument("trace", help="the trace file (JSON)")
    view.add_argument("-o", "--output", metavar="HTML",
                      help="where to write the page (default: next to TRACE, its name with "
                           ".html, e.g. run.json -> run.html); an existing file is "
                           "replaced; '-' writes it to standard output")
    view.add_argument("--title", help="the page title (default: the trace file name)")
    return p


def cmd_trace(argv: list[str]) -> int:
    """``python -m yieldio trace view TRACE [-o HTML]``."""
    from .debug._trace_html import load_trace, render_html

    args = _trace_parser().parse_args(argv)
    src = args.trace
    out = args.output or (os.path.splitext(src)[0] + ".html")
    if out != "-" and os.path.abspath(out) == os.path.abspath(src):
        # "use -o" was the advice even when -o had named the trace itself.
        hint = "choose another -o" if args.output else "name the page with -o"
        print(f"yieldio trace view: the output would overwrite the trace; {hint}",
              file=sys.stderr)
        return 2
    try:
        trace = load_trace(src)
    except FileNotFoundError:
        print(f"yieldio trace view: no such file: {src!r}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"yieldio trace view: {exc}", file=sys.stderr)
        return 2
    page = render_html(trace, title=args.title or f"yieldio trace: {os.path.basename(src)}")
    if out == "-":
        # The usual meaning of "-"; it used to write a file named "-".
        sys.stdout.write(page)
        sys.stdout.flush()
        return 0
    tmp = f"{out}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, out)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        # strerror, not str(exc): that names our temporary file, not the output.
        print(f"yieldio trace view: cannot write {out!r}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    print(f"wrote {out} ({len(page) // 1024:,} KiB); open it in a browser")
    return 0
