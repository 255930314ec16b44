"""Benchmark runner: ``python -m yieldio bench`` / ``python bench/runner.py``.

::

    python bench/runner.py [--quick] [--only NAMES] [--peers asyncio,uvloop,trio,curio]
                           [--repeat N] [--write-results] [--json PATH] [--pin split|none]
                           [--list] [-v]

For every benchmark (``bench/bench_<name>.py``), case and runtime, each
repetition runs in a fresh interpreter (``bench/_worker.py``), which prints
one JSON line; the order of runtimes is rotated between repetitions so that
drift of the machine (thermal, other load) does not always favour the same
runtime. The table reports, per metric, the median and [min–max] of the
repetitions and the ratio of the median to the baseline runtime's median
(asyncio unless the benchmark says otherwise) from the same run.

A worker that crashes, times out or prints no JSON becomes an error cell; a
runtime that cannot run (peer not installed, yieldio piece not built) becomes
a ``skipped: <reason>`` cell. Neither stops the suite.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common  # noqa: E402

BENCH_DIR = _common.BENCH_DIR
REPO_ROOT = _common.REPO_ROOT
WORKER = BENCH_DIR / "_worker.py"
RESULTS_MD = BENCH_DIR / "RESULTS.md"

#: Benchmarks in the order they run and print.
BENCHES = ["echo", "echo_tls", "switch", "spawn", "timers", "idle", "deep", "http"]
PEERS = ["asyncio", "uvloop", "trio", "curio"]

#: Runtime name -> the peer it belongs to (for --peers). yieldio and the
#: reference implementations (floor, native) always run.
_FAMILY = {
    "asyncio-h11": "asyncio",
    "aiohttp": "asyncio",
    "uvicorn-h11": "uvloop",
    "uvicorn-httptools": "uvloop",
    "hypercorn-trio": "trio",
}
#: Third-party packages a runtime needs, checked up front for a clear skip note.
_NEEDS = {
    "uvloop": ["uvloop"],
    "trio": ["trio"],
    "curio": ["curio"],
    "uvicorn-h11": ["uvicorn", "uvloop", "h11"],
    "uvicorn-httptools": ["uvicorn", "uvloop", "httptools"],
    "hypercorn-trio": ["hypercorn", "trio"],
    "aiohttp": ["aiohttp"],
    "asyncio-h11": ["h11"],
}
#: A cell whose first run takes longer than this (seconds; quick, full) is not
#: repeated, so one pathological runtime cannot eat the time budget.
SLOW_RUN_S = {True: 10.0, False: 60.0}
#: Client CPU share from which a throughput number is marked client-bound.
CLIENT_BOUND_PCT = 85.0


def family(runtime: str) -> str:
    if runtime in _FAMILY:
        return _FAMILY[runtime]
    head = runtime.split("-", 1)[0]
    return head if head in PEERS else "always"


def needs(runtime: str) -> list[str]:
    return _NEEDS.get(runtime) or _NEEDS.get(runtime.split("-", 1)[0], [])


# --------------------------------------------------------------------------
# running workers
# --------------------------------------------------------------------------


def worker_env(pin: str) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO_ROOT)]
    if (REPO_ROOT / "src" / "yieldio").is_dir():
        paths.insert(0, str(REPO_ROOT / "src"))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["BENCH_PIN"] = pin
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def run_worker(
    bench: str, runtime: str, case: dict[str, Any], timeout: float, env: dict[str, str]
) -> dict[str, Any]:
    """Run one measurement in a fresh process; always returns a result dict."""
    cmd = [sys.executable, str(WORKER), bench, runtime, json.dumps(case)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except KeyboardInterrupt:
        # Ctrl-C reaches only the runner: the worker is in its own session, so
        # it (and its load client) would run on as orphans. Kill and reap them.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the worker and its load client
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        return {
            "status": "timeout",
            "error": f"timeout after {timeout:.0f} s",
            "elapsed": time.perf_counter() - t0,
        }
    elapsed = time.perf_counter() - t0
    lines = [ln for ln in out.splitlines() if ln.strip()]
    try:
        result = json.loads(lines[-1])
        if not isinstance(result, dict) or "status" not in result:
            raise ValueError("not a result object")
    except (IndexError, ValueError):
        tail = err.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        return {
            "status": "error",
            "error": f"no result line (rc={proc.returncode}): {tail[0]}",
            "stderr": err[-2000:],
            "elapsed": elapsed,
        }
    result["elapsed"] = elapsed
    if result["status"] == "error":
        result["stderr"] = err[-2000:]
    return result


class Cell:
    """All repetitions of one (benchmark, case, runtime)."""

    def __init__(self, runtime: str, slow_run_s: float) -> None:
        self.runtime = runtime
        self.slow_run_s = slow_run_s
        self.runs: list[dict[str, float]] = []
        self.infos: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self.skipped: str | None = None
        self.done = False  # no further repetitions
        self.elapsed: list[float] = []  # wall time of each worker process
        self.details: list[str] = []  # traceback / stderr of failed runs

    def add(self, result: dict[str, Any]) -> None:
        status = result.get("status")
        self.elapsed.append(round(result.get("elapsed", 0.0), 3))
        if status == "ok":
            self.runs.append(result.get("metrics", {}))
            self.infos.append(result.get("info", {}))
            if result.get("elapsed", 0) > self.slow_run_s and len(self.runs) == 1:
                self.done = True
        elif status == "skipped":
            self.skipped = result.get("reason", "skipped")
            self.done = True
        else:
            self.failures.append(result.get("error", status or "error"))
            self.details.append(result.get("traceback") or result.get("stderr") or "")
            if not self.runs:
                self.done = True

    def summary(self, metric: str) -> tuple[float, float, float] | None:
        values = [r[metric] for r in self.runs if isinstance(r.get(metric), (int, float))]
        if not values:
            return None
        return statistics.median(values), min(values), max(values)

    def client_bound(self) -> bool:
        pcts = [i["client_cpu_pct"] for i in self.infos if "client_cpu_pct" in i]
        return bool(pcts) and statistics.median(pcts) >= CLIENT_BOUND_PCT

    def to_json(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "runs": self.runs,
            "info": self.infos,
            "failures": self.failures,
            "skipped": self.skipped,
            "process_wall_s": self.elapsed,
            "failure_details": self.details,
        }


# --------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------


def fmt(v: float) -> str:
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_ratio(r: float) -> str:
    return f"×{r:.2f}" if r >= 0.1 else f"×{r:.2g}"


def cell_texts(
    cell: Cell, metrics: list[tuple[str, str, str]], base: Cell | None
) -> list[str] | str:
    """Per metric: 'median [min–max]' and '×ratio'; or a one-line status."""
    if cell.skipped is not None:
        return f"skipped: {cell.skipped}"
    if not cell.runs:
        return f"ERROR: {cell.failures[0] if cell.failures else 'no result'}"
    texts: list[str] = []
    for name, _label, _better in metrics:
        s = cell.summary(name)
        if s is None:
            texts += ["–", ""]
            continue
        med, lo, hi = s
        mark = "†" if name.endswith("per_s") and cell.client_bound() else ""
        texts.append(f"{fmt(med)}{mark} [{fmt(lo)}–{fmt(hi)}]")
        b = base.summary(name) if base is not None else None
        texts.append(fmt_ratio(med / b[0]) if b and b[0] else "")
    return texts


def cell_notes(cell: Cell) -> str:
    notes = []
    if cell.failures and cell.runs:
        notes.append(f"{len(cell.failures)} run(s) failed: {cell.failures[0]}")
    if cell.runs and len(cell.runs) == 1 and cell.done:
        notes.append("1 run (slow)")
    return "; ".join(notes)


def header_row(metrics: list[tuple[str, str, str]], baseline: str) -> list[str]:
    row = ["runtime"]
    for _name, label, better in metrics:
        row += [f"{label} ({'↑' if better == 'higher' else '↓'})", f"×{baseline}"]
    return row


def render_text(sections: list[dict[str, Any]]) -> str:
    out: list[str] = []
    for sec in sections:
        metrics, baseline = sec["metrics"], sec["baseline"]
        out.append(f"\n== {sec['bench']}: {sec['label']} ==")
        head = header_row(metrics, baseline)
        rows: list[list[str] | str] = []
        for cell in sec["cells"]:
            texts = cell_texts(cell, metrics, sec["base_cell"])
            if isinstance(texts, str):
                rows.append(f"{cell.runtime:<18} {texts}")
            else:
                note = cell_notes(cell)
                rows.append([cell.runtime, *texts] + ([f"  ({note})"] if note else []))
        widths = [len(h) for h in head]
        for r in rows:
            if isinstance(r, list):
                for i, t in enumerate(r[: len(head)]):
                    widths[i] = max(widths[i], len(t))
        out.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
        for r in rows:
            if isinstance(r, str):
                out.append(r)
            else:
                line = "  ".join(t.ljust(w) for t, w in zip(r, widths, strict=False))
                out.append((line + "".join(r[len(head) :])).rstrip())
    return "\n".join(out)


def render_markdown(sections: list[dict[str, Any]]) -> str:
    out: list[str] = []
    for sec in sections:
        metrics, baseline = sec["metrics"], sec["baseline"]
        out.append(f"\n#### {sec['bench']}: {sec['label']}\n")
        head = header_row(metrics, baseline) + ["notes"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join("---" for _ in head) + "|")
        for cell in sec["cells"]:
            texts = cell_texts(cell, metrics, sec["base_cell"])
            if isinstance(texts, str):
                row = [cell.runtime] + [""] * (len(head) - 2) + [texts.replace("|", "/")]
            else:
                row = [cell.runtime, *texts, cell_notes(cell).replace("|", "/")]
            out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


# --------------------------------------------------------------------------
# environment description
# --------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    v: dict[str, str] = {}
    for dist in ("uvloop", "trio", "curio", "uvicorn", "httptools", "hypercorn", "aiohttp", "h11"):
        try:
            v[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            v[dist] = "not installed"
    wrk = shutil.which("wrk")
    if wrk:
        proc = subprocess.run([wrk, "-v"], capture_output=True, text=True)
        m = re.search(r"wrk (\S+)", proc.stdout + proc.stderr)
        v["wrk"] = m.group(1) if m else "present"
    else:
        v["wrk"] = "not installed (Python client)"
    return v


def yieldio_state() -> str:
    """yieldio's version and the git commit of the work tree measured."""
    try:
        version = importlib.metadata.version("yieldio")
    except importlib.metadata.PackageNotFoundError:
        version = "not installed (src/ on PYTHONPATH)"
    git = shutil.which("git")
    commit = "no git"
    if git:
        rev = subprocess.run(
            [git, "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        )
        commit = rev.stdout.strip() or "no commits"
        dirty = subprocess.run(
            [git, "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
        )
        if dirty.stdout.strip():
            commit += " + uncommitted changes in src/"
    return f"{version}, commit {commit}"


def environment(args: argparse.Namespace, client: dict[str, str]) -> dict[str, Any]:
    date = subprocess.run(["date"], capture_output=True, text=True).stdout.strip()
    return {
        "date": date or _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "versions": versions(),
        "yieldio": yieldio_state(),
        "echo_client": client,
        "pin": args.pin,
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m yieldio bench",
        description="Benchmark yieldio against asyncio, uvloop, trio, curio and a pure-Python "
        "floor. Every measurement runs in a fresh process.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, 3 repetitions (target: under 2 minutes in total)",
    )
    p.add_argument(
        "--only",
        metavar="NAMES",
        help=f"comma-separated benchmarks to run (of: {', '.join(BENCHES)})",
    )
    p.add_argument(
        "--peers",
        metavar="LIST",
        default=",".join(PEERS),
        help="comma-separated peers to compare against (default: %(default)s); "
        "yieldio and the floor/native references always run",
    )
    p.add_argument(
        "--repeat", type=int, metavar="N", help="repetitions per cell (default 5, 3 with --quick)"
    )
    p.add_argument(
        "--write-results",
        action="store_true",
        help="write/replace this run's section in bench/RESULTS.md",
    )
    p.add_argument("--json", metavar="PATH", help="also dump all raw results as JSON")
    p.add_argument(
        "--note", metavar="TEXT", help="free-text note printed with the header and in RESULTS.md"
    )
    p.add_argument(
        "--pin",
        choices=["split", "none"],
        default="split",
        help="split: worker and load generator on different cores (default)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="per-run timeout in seconds (default 60 quick, 300 full)",
    )
    p.add_argument("--list", action="store_true", help="list benchmarks, cases and runtimes")
    p.add_argument(
        "--from-json",
        metavar="PATH",
        help="run nothing: print (and with --write-results, record) a run saved with --json",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print every run")
    args = p.parse_args(argv)
    # "is None", not falsiness: "--only ''" (an empty shell variable, say)
    # ran every benchmark, the opposite of naming none.
    args.benches = (
        BENCHES if args.only is None else [b.strip() for b in args.only.split(",") if b.strip()]
    )
    if not args.benches:  # "--only ," used to run nothing and exit 0
        p.error("--only names no benchmark")
    unknown = [b for b in args.benches if b not in BENCHES]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHES)})")
    args.peer_list = [x.strip() for x in args.peers.split(",") if x.strip()]
    bad = [x for x in args.peer_list if x not in PEERS]
    if bad:
        p.error(f"unknown peer(s): {', '.join(bad)} (known: {', '.join(PEERS)})")
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    if args.timeout is None:
        args.timeout = 60.0 if args.quick else 300.0
    if not args.timeout > 0:  # 0 or less turned every cell into an instant "timeout"
        p.error("--timeout must be > 0 seconds")
    return args


def unwritable(path: str) -> str | None:
    """Why ``path`` cannot be written (without creating it), or None."""
    target = Path(path)
    if target.is_dir():
        return "is a directory"
    parent = target.parent
    if not parent.is_dir():
        return f"directory {str(parent)!r} does not exist"
    if target.exists():
        if not os.access(target, os.W_OK):
            return "permission denied"
    elif not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create files in {str(parent)!r}"
    return None


def missing_packages(runtime: str) -> list[str]:
    return [m for m in needs(runtime) if importlib.util.find_spec(m) is None]


def run_suite(args: argparse.Namespace) -> list[dict[str, Any]]:
    env = worker_env(args.pin)
    sections: list[dict[str, Any]] = []
    for bench in args.benches:
        module = importlib.import_module(f"bench.bench_{bench}")
        runtimes = [
            rt for rt in module.RUNTIMES if family(rt) == "always" or family(rt) in args.peer_list
        ]
        if not runtimes:
            continue
        for case in module.cases(args.quick):
            label = module.case_label(case)
            cells = {rt: Cell(rt, SLOW_RUN_S[args.quick]) for rt in runtimes}
            for rt, cell in cells.items():
                missing = missing_packages(rt)
                if missing:
                    cell.skipped = f"{', '.join(missing)} not installed"
                    cell.done = True
            t0 = time.perf_counter()
            for rep in range(args.repeat):
                k = rep % len(runtimes)
                for rt in runtimes[k:] + runtimes[:k]:  # rotate the order each repetition
                    cell = cells[rt]
                    if cell.done:
                        continue
                    result = run_worker(bench, rt, case, args.timeout, env)
                    cell.add(result)
                    if args.verbose:
                        shown = result.get("metrics") or result.get("reason") or result.get("error")
                        print(
                            f"  {bench} | {label} | {rt} | rep {rep + 1}: {result['status']} "
                            f"{shown} ({result.get('elapsed', 0):.1f} s)",
                            file=sys.stderr,
                        )
                        if result["status"] in ("error", "timeout"):
                            detail = result.get("traceback") or result.get("stderr")
                            if detail:
                                print(detail, file=sys.stderr)
            print(f"[{bench}] {label}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            base = cells.get(module.BASELINE)
            sections.append(
                {
                    "bench": bench,
                    "label": label,
                    "case": case,
                    "metrics": module.METRICS,
                    "baseline": module.BASELINE,
                    "cells": list(cells.values()),
                    "base_cell": base if base is not None and base.runs else None,
                }
            )
    return sections


def prepare(args: argparse.Namespace) -> dict[str, str]:
    """Build the C echo client and the TLS certificate if a chosen bench needs them."""
    client: dict[str, str] = {}
    if {"echo", "echo_tls"} & set(args.benches):
        client = _common.build_c_client()
    if "echo_tls" in args.benches:
        try:
            _common.tls_files()
        except _common.Skip as exc:
            client["tls_cert"] = str(exc)
    return client


def describe(env: dict[str, Any], args: argparse.Namespace, elapsed: float) -> str:
    vs = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    client = "; ".join(f"{k}: {v}" for k, v in env["echo_client"].items()) or "n/a"
    return "\n".join(
        [
            f"- date: {env['date']}",
            f"- CPU: {env['cpu']} ({env['cores']} cores); pinning: {env['pin']}",
            f"- Python: {env['python']} on {env['platform']}",
            f"- peers: {vs}",
            f"- yieldio: {env['yieldio']}",
            f"- load clients: {client}",
            f"- load average at start / end: {env['loadavg_start']} / {env['loadavg_end']}",
            f"- command: `{shlex.join(['python', '-m', 'yieldio', 'bench', *shown_argv(env['argv'])])}`",
            f"- repetitions: {args.repeat} per cell, fresh process each, runtime order rotated; "
            f"wall time of the run {elapsed:.0f} s",
            *([f"- note: {args.note}"] if args.note else []),
        ]
    )


def shown_argv(argv: list[str]) -> list[str]:
    """The command line without --note's text (printed on its own line)."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--note":
            skip = True
        elif not a.startswith("--note="):
            out.append(a)
    return out


LEGEND = (
    "Cells: median [min–max] over the repetitions; ×BASE is median / the baseline "
    "runtime's median in the same run (↑ higher is better, ↓ lower is better). "
    "† = the load client used ≥85% of its core, so that throughput is bounded by the "
    "client, not the server (server CPU µs/req stays valid)."
)


def write_results(
    env: dict[str, Any], args: argparse.Namespace, sections: list[dict[str, Any]], elapsed: float
) -> Path:
    kind = "Quick run" if args.quick else "Full run"
    if args.only:
        kind += f" ({', '.join(args.benches)})"
    yieldio_cells = [c for s in sections for c in s["cells"] if c.runtime.startswith("yieldio")]
    if yieldio_cells and all(c.skipped is not None for c in yieldio_cells):
        kind += " — peers only, yieldio not yet built"
    elif not yieldio_cells:
        kind += " — peers only"
    heading = f"## {kind}"
    body = "\n".join(
        [heading, "", describe(env, args, elapsed), "", LEGEND, render_markdown(sections), ""]
    )
    intro = (
        "# yieldio benchmark results\n\n"
        "Written by `python -m yieldio bench --write-results` (see bench/README.md). "
        "Each section is replaced by the next run of the same kind; every number "
        "below was measured, none is estimated.\n"
    )
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else intro
    parts = [p.strip() for p in re.split(r"(?m)^(?=## )", text) if p.strip()]
    key = heading_key(heading)
    kept = [p for p in parts if not (p.startswith("## ") and heading_key(p.splitlines()[0]) == key)]
    if not kept or not kept[0].startswith("# "):
        kept.insert(0, intro.strip())
    RESULTS_MD.write_text("\n\n".join([*kept, body.strip()]) + "\n")
    return RESULTS_MD


def heading_key(heading: str) -> str:
    """Sections are replaced by kind (quick/full and --only set), whatever the label."""
    return heading.split(" — ")[0].strip()


def list_benches(quick: bool) -> None:
    for bench in BENCHES:
        module = importlib.import_module(f"bench.bench_{bench}")
        print((module.__doc__ or bench).strip().splitlines()[0])
        print(f"  runtimes: {', '.join(module.RUNTIMES)} (baseline {module.BASELINE})")
        for case in module.cases(quick):
            print(f"  case: {module.case_label(case)}  {json.dumps(case)}")


def load_json_run(path: str) -> tuple[dict[str, Any], argparse.Namespace, list[dict[str, Any]], float]:
    """Rebuild (environment, arguments, sections, elapsed) from a ``--json`` dump."""
    data = json.loads(Path(path).read_text())
    env = data["environment"]
    args = parse_args([a for a in env.get("argv", []) if a != "--write-results"])
    sections = []
    for raw in data["sections"]:
        sec = dict(raw)
        cells = []
        for c in raw["cells"]:
            cell = Cell(c["runtime"], slow_run_s=float("inf"))
            cell.runs, cell.infos = c["runs"], c["info"]
            cell.failures, cell.skipped = c["failures"], c["skipped"]
            cell.elapsed, cell.details = c["process_wall_s"], c["failure_details"]
            cell.done = True
            cells.append(cell)
        sec["cells"] = cells
        base = next((c for c in cells if c.runtime == sec["baseline"]), None)
        sec["base_cell"] = base if base is not None and base.runs else None
        sections.append(sec)
    elapsed = env.get("elapsed_s") or sum(sum(c.elapsed) for s in sections for c in s["cells"])
    return env, args, sections, float(elapsed)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m yieldio bench``; returns the exit status.

    Exit status 0 when every cell produced numbers or was skipped, 1 when some
    cell ended in an error or a timeout (the table is printed either way).
    """
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return _main(args, argv)
    except KeyboardInterrupt:
        # Not a traceback from wherever Ctrl-C landed (run_worker has killed
        # the running worker); 130 as for 'python -m yieldio run'.
        print("\nbench: interrupted; nothing was saved", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace, argv: list[str] | None) -> int:
    if args.list:
        list_benches(args.quick)
        return 0
    if args.from_json:
        write, note = args.write_results, args.note
        try:
            env, args, sections, elapsed = load_json_run(args.from_json)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"cannot read a saved run from {args.from_json}: {exc!r} "
                  "(expected a file written by --json)", file=sys.stderr)
            return 2
        if note:  # a note given now (say, what was learnt since) replaces the saved one
            args.note = note
        print(f"{describe(env, args, elapsed)}\n\n{LEGEND}")
        print(render_text(sections))
        if write:
            print(f"\nwrote {write_results(env, args, sections, elapsed)}", file=sys.stderr)
        return 0
    if args.json:
        # Checked now, not after a run of up to half an hour that then ended
        # in a traceback and lost every number. (Not in parse_args: --from-json
        # re-parses a saved command line whose --json path may be long gone.)
        problem = unwritable(args.json)
        if problem:
            print(f"python -m yieldio bench: error: --json {args.json}: {problem}",
                  file=sys.stderr)
            return 2
    t0 = time.perf_counter()
    client = prepare(args)
    env = environment(args, client)
    env["argv"] = sys.argv[1:] if argv is None else list(argv)
    missing = [p for p in args.peer_list if p != "asyncio" and importlib.util.find_spec(p) is None]
    if missing:
        print(f"note: peers not installed, skipped: {', '.join(missing)}", file=sys.stderr)
    if not shutil.which("wrk") and "http" in args.benches:
        print("note: wrk not installed; http uses the Python load client", file=sys.stderr)
    sections = run_suite(args)
    elapsed = time.perf_counter() - t0
    env["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    env["elapsed_s"] = round(elapsed, 1)
    print(f"\n{describe(env, args, elapsed)}\n\n{LEGEND}")
    print(render_text(sections))
    saved = save_json(args.json, env, sections) if args.json else True
    if args.write_results:
        path = write_results(env, args, sections, elapsed)
        print(f"\nwrote {path}", file=sys.stderr)
    failed = any(c.failures and not c.runs for s in sections for c in s["cells"])
    return 1 if failed or not saved else 0


def save_json(path: str, env: dict[str, Any], sections: list[dict[str, Any]]) -> bool:
    try:
        Path(path).write_text(
            json.dumps(
                {
                    "environment": env,
                    "sections": [
                        {
                            k: (v if k != "cells" else [c.to_json() for c in v])
                            for k, v in s.items()
                            if k != "base_cell"
                        }
                        for s in sections
                    ],
                },
                indent=1,
                default=str,
            )
        )
    except OSError as exc:  # checked up front, but the disk can still fill up
        print(f"bench: cannot write --json {path}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
