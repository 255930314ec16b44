"""Worker: run ONE measurement of one benchmark case on one runtime, in a fresh
interpreter, and print exactly one JSON line on stdout.

Usage::

    python bench/_worker.py BENCH RUNTIME CASE_JSON

``BENCH`` names the module ``bench/bench_<BENCH>.py``, ``RUNTIME`` a key of its
``RUNTIMES`` table and ``CASE_JSON`` the case parameters (a JSON object, as
produced by the module's ``cases()``).

The line printed is a JSON object with at least::

    {"bench": ..., "runtime": ..., "case": {...}, "status": "ok" | "skipped" | "error",
     "metrics": {name: number, ...},   # empty unless status == "ok"
     "info": {...},                    # optional diagnostics (client CPU %, counts, ...)
     "reason": "...",                  # status == "skipped"
     "error": "..."}                   # status == "error" (with "traceback")

Any other output of the runtime under test is redirected to stderr, so stdout
holds only that line. A worker that dies without printing it (segfault,
timeout, os._exit) is reported by the runner as an error cell.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from pathlib import Path

_BENCH_DIR = Path(__file__).resolve().parent
_REPO = _BENCH_DIR.parent
# Import benchmark modules as ``bench.<name>`` and yieldio from the work tree.
if sys.path and Path(sys.path[0]).resolve() == _BENCH_DIR:
    sys.path.pop(0)
sys.path.insert(0, str(_REPO))
if (_REPO / "src" / "yieldio").is_dir():
    sys.path.insert(0, str(_REPO / "src"))

from bench import _common  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    bench_name, runtime, case_json = argv
    case = json.loads(case_json)
    _common.claim_stdout({"bench": bench_name, "runtime": runtime, "case": case})
    _common.pin(0, _common.server_cpu())
    try:
        module = importlib.import_module(f"bench.bench_{bench_name}")
        try:
            fn = module.RUNTIMES[runtime]
        except KeyError:
            raise _common.Skip(f"{bench_name} has no {runtime} variant") from None
        result = fn(case)
    except _common.Skip as exc:
        _common.emit("skipped", reason=str(exc))
        return 0
    except BaseException as exc:
        _common.emit(
            "error",
            error=f"{exc.__class__.__name__}: {exc}",
            traceback=traceback.format_exc()[-4000:],
        )
        return 1
    _common.emit("ok", result.get("metrics", {}), info=result.get("info", {}))
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    # os._exit: do not wait for non-daemon threads a runtime may have left
    # behind (thread pools, resolver threads); the result is already out.
    os._exit(code)
