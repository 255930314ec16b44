"""The debugging options of :func:`yieldio.run`, turned into instruments.

``yieldio.run(main, debug=..., trace=..., monitor=...)`` and the environment
variables ``YIELDIO_DEBUG`` / ``YIELDIO_MONITOR`` come here; the kernel
attaches what :func:`instruments_for` returns. Nothing here is imported by a
run that uses none of them.

* ``debug=True`` (or ``YIELDIO_DEBUG=1``): the slow-step detector (100 ms)
  and the never-awaited reporter. ``debug=0.02`` sets the threshold;
  ``debug={"slow_step": 0.02, "never_awaited": False}`` picks. The
  threshold also comes from ``YIELDIO_SLOW_STEP`` (seconds).
* ``trace="trace.json"``: a Chrome trace; ``trace={"path": ..., "max_events":
  ..., "wakeups": True}`` for options.
* ``monitor=True`` (or ``YIELDIO_MONITOR=1``): the monitor socket;
  ``monitor="/path/app.sock"`` chooses the socket.

An explicit option wins over the environment: ``debug=False`` turns debug
mode off even when ``YIELDIO_DEBUG=1``.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["instruments_for", "instruments_by_option"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def _env_flag(name: str) -> bool:
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"environment variable {name}={raw!r}: use 1 or 0")


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r}: expected seconds, "
                         "like 0.1") from None
    if not value > 0:
        raise ValueError(f"environment variable {name}={raw!r}: must be > 0")
    return value


def _debug_instruments(debug: Any) -> list[Any]:
    from .debug._never_awaited import NeverAwaitedReporter
    from .debug._slow import DEFAULT_THRESHOLD, SlowStepDetector

    if debug is False or debug is None:
        return []
    slow: Any = _env_float("YIELDIO_SLOW_STEP") or DEFAULT_THRESHOLD
    never = True
    if isinstance(debug, bool):
        pass
    elif isinstance(debug, (int, float)):
        slow = float(debug)
    elif isinstance(debug, dict):
        unknown = set(debug) - {"slow_step", "never_awaited"}
        if unknown:
            raise TypeError(f"yieldio.run(debug=...): unknown keys {sorted(unknown)}; "
                            "known: 'slow_step' (seconds or None), 'never_awaited' (bool)")
        slow = debug.get("slow_step", slow)
        never = debug.get("never_awaited", True)
        if not isinstance(never, bool):
            # bool() would read the string "no" (or "false") as True.
            raise TypeError(f"yieldio.run(debug={{'never_awaited': ...}}) takes True or "
                            f"False, not {never!r}")
    else:
        raise TypeError(f"yieldio.run(debug=...) takes True/False, a slow-step threshold in "
                        f"seconds, or a dict; not {debug!r}")
    out: list[Any] = []
    # Identity, not 'in (None, False)': 0 == False, and a threshold of 0 is an
    # error to report, not a way to turn the detector off.
    if slow is not None and slow is not False:
        if isinstance(slow, bool) or not isinstance(slow, (int, float)) or not slow > 0:
            raise ValueError(f"yieldio.run(debug=...): the slow-step threshold must be "
                             f"seconds > 0, not {slow!r}")
        out.append(SlowStepDetector(float(slow)))
    if never:
        out.append(NeverAwaitedReporter())
    return out


def _trace_instruments(trace: Any) -> list[Any]:
    from .debug._trace import TraceRecorder

    if trace is None or trace is False:
        return []
    if isinstance(trace, TraceRecorder):
        return [trace]
    if isinstance(trace, (str, os.PathLike)):
        return [TraceRecorder(trace)]
    if isinstance(trace, dict):
        opts = dict(trace)
        path = opts.pop("path", None)
        if path is None:
            raise TypeError("yieldio.run(trace={...}) needs a 'path'")
        unknown = set(opts) - {"max_events", "wakeups"}
        if unknown:
            raise TypeError(f"yieldio.run(trace=...): unknown keys {sorted(unknown)}; known: "
                            "'path', 'max_events', 'wakeups'")
        return [TraceRecorder(path, **opts)]
    raise TypeError(f"yieldio.run(trace=...) takes a file path (or a dict with 'path'), "
                    f"not {trace!r}")


def _monitor_instruments(monitor: Any) -> list[Any]:
    from .debug._monitor import MonitorServer

    if monitor is None or monitor is False:
        return []
    if monitor is True:
        return [MonitorServer()]
    if isinstance(monitor, MonitorServer):
        return [monitor]
    if isinstance(monitor, (str, os.PathLike)):
        return [MonitorServer(os.fspath(monitor))]
    raise TypeError(f"yieldio.run(monitor=...) takes True/False or a socket path, "
                    f"not {monitor!r}")


def instruments_by_option(opts: dict[str, Any]) -> dict[str, list[Any]]:
    """Instruments for ``run``'s debugging options, keyed by the option that made them.

    ::

        >>> sorted(instruments_by_option({"debug": True}))
        ['debug', 'monitor', 'trace']

    Every key is present (an empty list for an option that is off), so
    ``python -m yieldio run`` can hand the three over to the script's own
    ``yieldio.run()`` and let that call's explicit options win, one by one.
    Raises ``TypeError``/``ValueError`` with a clear message for a bad value,
    before anything runs.
    """
    unknown = set(opts) - {"debug", "trace", "monitor"}
    if unknown:
        raise TypeError(f"unknown debugging options {sorted(unknown)}")
    debug = opts["debug"] if "debug" in opts else (_env_flag("YIELDIO_DEBUG") or None)
    monitor = opts["monitor"] if "monitor" in opts else (_env_flag("YIELDIO_MONITOR") or None)
    out = {"debug": _debug_instruments(debug), "trace": _trace_instruments(opts.get("trace"))}
    # The monitor last: its socket is created only when the rest is valid.
    out["monitor"] = _monitor_instruments(monitor)
    return out


def instruments_for(opts: dict[str, Any]) -> list[Any]:
    """Instruments for ``run``'s debugging options (keys among debug, trace, monitor).

    ::

        >>> [type(i).__name__ for i in instruments_for({"debug": True})]
        ['SlowStepDetector', 'NeverAwaitedReporter']

    Raises ``TypeError``/``ValueError`` with a clear message for a bad value,
    before anything runs.
    """
    by_option = instruments_by_option(opts)
    return by_option["debug"] + by_option["trace"] + by_option["monitor"]
