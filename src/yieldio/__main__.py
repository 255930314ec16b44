"""The ``yieldio`` command line: ``python -m yieldio COMMAND``.

Commands: ``demo`` (a tour), ``run SCRIPT`` (run a script's main() under
yieldio, with --trace/--monitor/--debug), ``monitor`` (attach to a running
program), ``trace view`` (render a trace as HTML), ``bench`` (the benchmark
suite, from a source checkout).
"""

from __future__ import annotations

import argparse
import sys

from . import __version__

USAGE = """\
usage: yieldio [--version] COMMAND [ARGS]

commands:
  demo               a live tour: tasks, timeouts, cancellation, deep calls, I/O
  run SCRIPT [...]   run SCRIPT's main() under yieldio (--trace F, --monitor, --debug)
  monitor [PID]      attach to a program started with monitor=True
  trace view F       render a trace file as a self-contained HTML timeline
  bench [...]        benchmarks against asyncio, uvloop, trio, curio (source checkout)
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        # Asked for: stdout, 0. No command at all is a usage error: stderr, 2.
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        if len(argv) > 1:
            print(f"yieldio: {argv[0]} takes no arguments (got {' '.join(argv[1:])!r})",
                  file=sys.stderr)
            return 2
        print(f"yieldio {__version__}")
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "demo":
        parser = argparse.ArgumentParser(
            prog="python -m yieldio demo",
            description="A live tour of yieldio: tasks, timeouts, cancellation, deep calls "
                        "and local network I/O (a TCP echo server; HTTP and WebSocket with the "
                        "[http] extra installed), on 127.0.0.1 only. Takes a few "
                        "seconds; starts no other process and writes no file.")
        parser.parse_args(rest)
        from ._demo import run_demo

        try:
            return run_demo(rest)
        except KeyboardInterrupt:
            # Ctrl-C used to end the tour with a long traceback of yieldio's
            # own frames; it is an interruption, as for 'run' (130).
            print("yieldio demo: interrupted", file=sys.stderr)
            return 130
    if cmd in ("run", "monitor", "trace"):
        try:
            from . import _cli_debug
        except ImportError:
            print(f"yieldio: '{cmd}' is not available in this build", file=sys.stderr)
            return 2
        return int(getattr(_cli_debug, f"cmd_{cmd}")(rest))
    if cmd == "bench":
        return _bench(rest)
    print(f"yieldio: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
    return 2


def _bench(rest: list[str]) -> int:
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    if not os.path.isdir(os.path.join(root, "bench")):
        print("yieldio bench runs from a source checkout (the bench/ folder is not installed)",
              file=sys.stderr)
        return 2
    sys.path.insert(0, root)
    from bench.runner import main as bench_main

    return int(bench_main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
