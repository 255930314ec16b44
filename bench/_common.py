"""Shared helpers for the benchmark workers: timing, memory, CPU pinning, the
worker result protocol and the load-generator driver.

Everything here runs inside a *worker* process (one fresh interpreter per
measurement, see ``bench/_worker.py``), except the small build/cert helpers the
runner calls once before a run.

Design notes
------------
* Wall time is ``time.perf_counter``; CPU time is ``time.process_time()``
  (user+system of the whole process, i.e. all threads, at nanosecond
  resolution), because a runtime may do work on helper threads and that work
  is part of its cost.
* Memory is read from ``/proc/self/statm`` (current RSS) and
  ``resource.getrusage(...).ru_maxrss`` (peak RSS, KiB on Linux).
* A worker pins itself to one core and the load generators (echo client, wrk)
  to another when at least two cores are available, so client and server never
  compete for the same core.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"

#: How often (seconds) a server checks whether the load generator has finished.
#: 20 wake-ups per second cost nothing measurable next to thousands of requests.
POLL_INTERVAL = 0.05

now = time.perf_counter


class Skip(Exception):
    """Raised by a benchmark function when a runtime cannot be measured.

    The worker reports it as ``status: skipped`` with the message as reason;
    the runner prints ``skipped: <reason>`` instead of numbers.
    """


# --------------------------------------------------------------------------
# imports of optional runtimes
# --------------------------------------------------------------------------


def require(module: str) -> Any:
    """Import *module* or raise :class:`Skip` saying it is not installed."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Skip(f"{module} not installed ({exc.__class__.__name__}: {exc})") from None


def require_yieldio(*attrs: str, module: str = "yieldio") -> Any:
    """Import yieldio (or a submodule) and check that it offers *attrs*.

    ``src/yieldio`` may exist while still empty, in which case Python imports
    it as a namespace package; that and any missing attribute are reported as
    a skip rather than an error, because "not built yet" is not a bug in the
    benchmark.
    """
    import importlib

    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # any failure means "not usable yet"
        raise Skip(f"{module} not importable ({exc.__class__.__name__}: {exc})") from None
    if getattr(mod, "__file__", None) is None:
        raise Skip(f"{module} is an empty namespace package (not built yet)")
    missing = [a for a in attrs if not hasattr(mod, a)]
    if missing:
        raise Skip(f"{module} lacks {', '.join(missing)} (not built yet)")
    return mod


# --------------------------------------------------------------------------
# measurements
# --------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Current resident set size of this process, from /proc/self/statm."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def peak_rss_bytes() -> int:
    """Peak RSS of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    """User+system CPU seconds consumed by this process (all threads).

    ``time.process_time`` (CLOCK_PROCESS_CPUTIME_ID) has nanosecond
    resolution; ``os.times`` only counts clock ticks (10 ms), far too coarse
    for sub-second measurement windows.
    """
    return time.process_time()


def user_sys_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds of this process minus the calling thread.

    The load driver thread calls this, so its own time is taken out: what is
    left is the server's. ``getrusage`` is precise to the microsecond on
    Linux. The split matters for echo: system time is the kernel's TCP work,
    the same for every runtime, and bounds what any of them can reach.
    """
    p = resource.getrusage(resource.RUSAGE_SELF)
    t = resource.getrusage(resource.RUSAGE_THREAD)
    return p.ru_utime - t.ru_utime, p.ru_stime - t.ru_stime


def children_cpu_seconds() -> float:
    """User+system CPU seconds of waited-for child processes (µs resolution)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def full_gc() -> None:
    """Collect all generations (twice, so finalizers' garbage goes too)."""
    gc.collect()
    gc.collect()


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (0 < p <= 100) of *values*."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


# --------------------------------------------------------------------------
# CPU pinning
# --------------------------------------------------------------------------


def _initial_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []


#: Cores this process could use when it started (before any pinning), so that
#: the load generator still finds "the other core" after the worker pinned
#: itself.
_CPUS = _initial_cpus()


#: Pinning policy, from the runner's --pin option (env BENCH_PIN):
#: "split" (default): worker on the first core, load generator on the second;
#: "none": no pinning at all.
PIN_MODE = os.environ.get("BENCH_PIN", "split")


def server_cpu() -> int | None:
    """Core the measured (worker) process is pinned to, or None if not pinning."""
    if PIN_MODE == "none" or len(_CPUS) < 2:
        return None
    return _CPUS[0]


def load_cpu() -> int | None:
    """Core the load generator is pinned to, or None if not pinning."""
    if PIN_MODE == "none" or len(_CPUS) < 2:
        return None
    return _CPUS[1]


def pin(pid: int, cpu: int | None) -> None:
    """Pin *pid* (0 = this process) to *cpu*; silently ignored if impossible."""
    if cpu is None:
        return
    try:
        os.sched_setaffinity(pid, {cpu})
    except (AttributeError, OSError):
        pass


# --------------------------------------------------------------------------
# worker result protocol
# --------------------------------------------------------------------------

_result_fd: int | None = None
_emit_lock = threading.Lock()
_emitted = threading.Event()
_context: dict[str, Any] = {}


def claim_stdout(context: dict[str, Any]) -> None:
    """Reserve the real stdout for the single JSON result line.

    Anything else written to fd 1 (library banners, prints, logging to stdout)
    is redirected to stderr, so the worker's stdout holds exactly one line.
    """
    global _result_fd
    sys.stdout.flush()
    _result_fd = os.dup(1)
    os.dup2(2, 1)
    _context.update(context)


def emit(status: str, metrics: dict[str, float] | None = None, **fields: Any) -> bool:
    """Write the worker's one JSON result line; later calls are ignored.

    Returns False if a result had already been emitted.
    """
    with _emit_lock:
        if _emitted.is_set():
            return False
        record = dict(_context)
        record["status"] = status
        record["metrics"] = metrics or {}
        record.update(fields)
        line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
        fd = _result_fd if _result_fd is not None else 1
        os.write(fd, line)
        _emitted.set()
        return True


def hard_exit(metrics: dict[str, float], info: dict[str, Any]) -> None:
    """Emit an ok result and terminate the process immediately.

    Used when a runtime does not shut down by itself after the measurement
    (e.g. an API without a documented way to stop a server): the numbers are
    already final, so there is no reason to wait for it.
    """
    emit("ok", metrics, info=dict(info, forced_exit=True))
    sys.stderr.flush()
    os._exit(0)


# --------------------------------------------------------------------------
# load generators
# --------------------------------------------------------------------------


def python_exe() -> str:
    return sys.executable


def echo_client_cmd(port: int, conns: int, size: int, duration: float, tls: bool) -> list[str]:
    """Command line of the echo load client: the C one if built, else Python.

    Both print one JSON line: {"requests", "seconds", "errors", ...}.
    """
    args = ["127.0.0.1", str(port), str(conns), str(size), f"{duration:g}"]
    if tls:
        args.append("tls")
    exe = c_client("echo_client_tls" if tls else "echo_client")
    if exe:
        return [exe, *args]
    return [python_exe(), str(BENCH_DIR / "_echo_client.py"), *args]


def build_c_client() -> dict[str, str]:
    """Compile the C load clients into bench/out/ when a compiler is present.

    Targets: ``echo_client`` (plain), ``echo_client_tls`` (with OpenSSL) and
    ``http_client``. Returns {target: status}. Rebuilds only when the source
    is newer than the binary. A missing compiler or OpenSSL headers leave the
    Python fallback clients in use.
    """
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    targets = {
        "echo_client": ("echo_client.c", []),
        "echo_client_tls": ("echo_client.c", ["-DWITH_TLS"]),
        "http_client": ("http_client.c", []),
    }
    if cc is None:
        return {name: "no C compiler: Python client" for name in targets}
    OUT_DIR.mkdir(exist_ok=True)
    status: dict[str, str] = {}
    for name, (source, flags) in targets.items():
        src = BENCH_DIR / source
        exe = OUT_DIR / name
        if exe.exists() and exe.stat().st_mtime >= src.stat().st_mtime:
            status[name] = "C (cached)"
            continue
        cmd = [cc, "-O2", "-Wall", *flags, "-o", str(exe), str(src)]
        if "-DWITH_TLS" in flags:
            cmd += ["-lssl", "-lcrypto"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode == 0:
            status[name] = "C (built)"
        else:
            exe.unlink(missing_ok=True)
            status[name] = "C build failed, Python client: " + proc.stderr.strip()[-200:]
    return status


def c_client(name: str) -> str | None:
    """Path of a built C client in bench/out/, or None."""
    exe = OUT_DIR / name
    return str(exe) if exe.exists() and os.access(exe, os.X_OK) else None


def tls_files() -> tuple[Path, Path]:
    """Return (certfile, keyfile) of a throw-away localhost certificate.

    Made with trustme when installed, else with the ``openssl`` command; cached
    in bench/out/. Raises Skip if neither is available.
    """
    cert = OUT_DIR / "tls_cert.pem"
    key = OUT_DIR / "tls_key.pem"
    if cert.exists() and key.exists():
        return cert, key
    OUT_DIR.mkdir(exist_ok=True)
    tmp_cert = cert.with_suffix(f".{os.getpid()}.tmp")
    tmp_key = key.with_suffix(f".{os.getpid()}.tmp")
    try:
        import trustme

        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1", "localhost")
        issued.cert_chain_pems[0].write_to_path(str(tmp_cert))
        for extra in issued.cert_chain_pems[1:]:
            extra.write_to_path(str(tmp_cert), append=True)
        issued.private_key_pem.write_to_path(str(tmp_key))
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise Skip("neither trustme nor openssl available to make a certificate") from None
        subprocess.run(
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-keyout",
                str(tmp_key),
                "-out",
                str(tmp_cert),
            ],
            check=True,
            capture_output=True,
        )
    os.replace(tmp_key, key)
    os.replace(tmp_cert, cert)
    return cert, key


class LoadDriver:
    """Run a load generator in a helper thread while the server runs here.

    The server under test runs in the main thread with whatever runtime is
    being measured; this driver starts the (optional) warm-up run and then the
    measured run of an external load generator, pinned to the other core.
    Around the measured run it records the server process's CPU time
    (``time.process_time``, minus the helper thread's own ``thread_time``) and
    the client's CPU time (``RUSAGE_CHILDREN``), so the result carries both throughput
    and CPU cost per request, plus a check that the client was not saturated.

    The server side polls :meth:`finished` every :data:`POLL_INTERVAL` seconds
    with its own runtime's ``sleep`` and then shuts down and returns
    :meth:`metrics`. If the server has not returned within *grace* seconds
    after the measurement, the driver emits the result itself and exits the
    process (see :func:`hard_exit`).
    """

    def __init__(
        self,
        measured: list[str],
        finalize: Callable[[dict[str, Any]], tuple[dict[str, float], dict[str, Any]]],
        warmup: list[str] | None = None,
        parse: Callable[[str], dict[str, Any]] | None = None,
        timeout: float = 120.0,
        grace: float = 10.0,
    ) -> None:
        self.measured = measured
        self.warmup = warmup
        self.finalize = finalize
        self.parse = parse or (lambda out: json.loads(out.strip().splitlines()[-1]))
        self.timeout = timeout
        self.grace = grace
        self.done = threading.Event()
        self.raw: dict[str, Any] = {}
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="load-driver", daemon=True)

    def start(self) -> LoadDriver:
        self._thread.start()
        return self

    def finished(self) -> bool:
        return self.done.is_set()

    def _spawn(self, cmd: list[str]) -> tuple[str, str, int]:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        pin(proc.pid, load_cpu())
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise RuntimeError(f"load generator timed out: {' '.join(cmd)}") from None
        return out, err, proc.returncode

    def _run(self) -> None:
        try:
            if self.warmup:
                _, err, rc = self._spawn(self.warmup)
                if rc != 0:
                    raise RuntimeError(f"warm-up client failed rc={rc}: {err.strip()[-300:]}")
            th0 = time.thread_time()
            us0 = user_sys_seconds()
            c0 = cpu_seconds()
            ch0 = children_cpu_seconds()
            w0 = now()
            out, err, rc = self._spawn(self.measured)
            w1 = now()
            ch1 = children_cpu_seconds()
            c1 = cpu_seconds()
            us1 = user_sys_seconds()
            th1 = time.thread_time()
            if rc != 0:
                raise RuntimeError(f"load client failed rc={rc}: {err.strip()[-300:]}")
            raw = self.parse(out)
            raw["server_cpu_s"] = (c1 - c0) - (th1 - th0)
            raw["server_user_s"] = us1[0] - us0[0]
            raw["server_sys_s"] = us1[1] - us0[1]
            raw["client_cpu_s"] = ch1 - ch0
            raw["client_wall_s"] = w1 - w0
            self.raw = raw
        except Exception as exc:  # reported through the result line
            self.error = f"{exc.__class__.__name__}: {exc}"
        finally:
            self.done.set()
        # Watchdog: give the server *grace* seconds to shut down and report.
        if not _emitted.wait(self.grace):
            if self.error:
                emit("error", error=self.error + " (server did not stop)")
                os._exit(1)
            metrics, info = self.finalize(self.raw)
            hard_exit(metrics, info)

    def metrics(self) -> dict[str, Any]:
        """Final metrics of the measured run (raises if the client failed)."""
        self.done.wait()
        if self.error:
            raise RuntimeError(self.error)
        metrics, info = self.finalize(self.raw)
        return {"metrics": metrics, "info": info}


def request_metrics(raw: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """Turn a load generator's raw result into req/s and server CPU µs/req."""
    requests = raw.get("requests", 0)
    seconds = raw.get("seconds", 0.0)
    if not requests or not seconds:
        raise RuntimeError(f"load client completed no requests: {raw}")
    metrics = {
        "req_per_s": requests / seconds,
        "cpu_us_per_req": raw["server_cpu_s"] / requests * 1e6,
    }
    if "server_user_s" in raw:
        metrics["user_us_per_req"] = raw["server_user_s"] / requests * 1e6
        metrics["sys_us_per_req"] = raw["server_sys_s"] / requests * 1e6
    info = {
        "requests": requests,
        "client_cpu_pct": round(100.0 * raw["client_cpu_s"] / max(raw["client_wall_s"], 1e-9), 1),
        "client_errors": raw.get("errors", 0),
    }
    for key in ("latency_p99_ms", "non_2xx", "socket_errors"):
        if key in raw:
            info[key] = raw[key]
    return metrics, info
