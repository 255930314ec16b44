"""Report coroutines that were created but never awaited, with where they were made.

``fetch(url)`` without ``await`` creates a coroutine object and drops it:
nothing runs. CPython notices when the object is destroyed and warns
"coroutine 'fetch' was never awaited" -- pointing at the line that dropped
it, which is rarely the line with the bug, and only if warnings are shown.

In debug mode yieldio turns on ``sys.set_coroutine_origin_tracking_depth``
(CPython then records, for every new coroutine, the frames that created
it) and takes over the hook CPython calls for that warning, so the warning
points at the line that *called* ``fetch`` and says which task dropped it.
It is still a ``RuntimeWarning`` issued through :mod:`warnings` -- ``-W``
options, pytest's warnings summary and ``filterwarnings`` apply to it as to
CPython's -- only richer::

    yieldio.run(main, debug=True)

    # app.py:9: RuntimeWarning: coroutine 'fetch' was never awaited (dropped in task 'worker').
    # It was created at (most recent call last):
    #   File "app.py", line 9, in worker
    #   fetch(url)

Limits: generator-based coroutines (``@yieldio.coroutine``) are plain
generators to CPython, which does not warn about them; and the report comes
when the object is destroyed, which for an object caught in a reference
cycle is the next garbage collection (debug mode runs one when ``run``
ends).
"""

from __future__ import annotations

import gc
import linecache
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from .. import _state, _unawaited

__all__ = ["NeverAwaitedReporter", "NeverAwaited"]

#: Frames recorded per coroutine: enough to see past a helper or two.
ORIGIN_DEPTH = 16


@dataclass
class NeverAwaited:
    """One report: the coroutine's name, where it was created, which task dropped it.

    ``origin`` lists ``(filename, lineno, function)``, outermost call first,
    ending at the line that called the coroutine function::

        for r in reporter.reports:
            filename, lineno, function = r.origin[-1]
            print(f"{r.qualname}() made at {filename}:{lineno} was never awaited")
    """

    qualname: str
    origin: list[tuple[str, int, str]]
    task_id: int | None
    task_name: str | None

    def format(self, *, last_line: bool = True) -> str:
        """The report text; with ``last_line=False``, the message of the RuntimeWarning.

        It starts like CPython's own ("coroutine 'fetch' was never awaited"),
        so filters written for that one (``ignore:coroutine .* was never
        awaited``) match it too. It names the dropping task by its name, not
        its id: ids are per run, and a text that depends only on the code
        keeps the ``"default"`` / ``"once"`` actions showing a line's
        report once rather than once per run.

        ``last_line=False`` leaves out the source line of the last frame:
        the warning is located there, and :mod:`warnings` prints that line
        itself, after the message.
        """
        where = f" (dropped in task {self.task_name!r})" if self.task_id is not None else ""
        lines = [f"coroutine {self.qualname!r} was never awaited{where}."]
        if not self.origin:
            lines.append("Where it was created is unknown (it was created before debug mode "
                         "was on, or on a thread other than the kernel's).")
            return "\n".join(lines)
        lines.append("It was created at (most recent call last):")
        for i, (filename, lineno, function) in enumerate(self.origin, 1):
            lines.append(f'  File "{filename}", line {lineno}, in {function}')
            source = linecache.getline(filename, lineno).strip()
            if source and (last_line or i < len(self.origin)):
                lines.append(f"    {source}")
        return "\n".join(lines)


# One process-wide installation shared by every kernel in debug mode: the
# hook and the origin depth are interpreter-global.
_lock = threading.Lock()
_users = 0
_saved: dict[str, Any] = {}
_reporters: dict[int, NeverAwaitedReporter] = {}  # by kernel thread id


# (reporter, report) that _issue_as_cpython is handing to _hook, on this thread.
_handing = threading.local()


async def _stand_in() -> None:
    """Made and dropped unawaited on purpose by :func:`_issue_as_cpython`."""


def _issue_as_cpython(reporter: NeverAwaitedReporter, report: NeverAwaited) -> None:
    """Issue a report from outside any finalizer as CPython issues its own: from one.

    A dropped call of one of yieldio's waits is found in an instrument hook
    (after a task step), not while a coroutine is destroyed. Warning from
    there, ``-W error`` would raise the report into the kernel, which would
    remove the reporter ("...; removing it") and so lose every later report,
    even under pytest. CPython raises its own warning in the coroutine's
    finalizer, where Python turns the exception into an unraisable one
    ("Exception ignored in: <coroutine object ...>", a failure under
    pytest's ``-W error``) and goes on; the docs promise exactly that, so
    the report is not raised into the dropping task either (which would
    change what the program does). To get it, destroy a never-awaited
    stand-in coroutine named like the dropped call: CPython calls _hook from
    its finalizer, and _hook issues this report.
    """
    standin: Any = _stand_in()  # (typeshed has no __qualname__ on Coroutine)
    standin.__qualname__ = report.qualname  # its repr: <coroutine object Queue.put at ...>
    _handing.pending = (reporter, report)
    try:
        del standin  # the only reference: finalized now, on this thread
    finally:
        pending, _handing.pending = _handing.pending, None
    if pending is not None:  # _hook was not called (replaced by someone else's hook)
        reporter._report(report, None)


def _hook(coro: Any) -> None:
    """Replacement for ``warnings._warn_unawaited_coroutine`` while installed."""
    pending = getattr(_handing, "pending", None)
    if pending is not None and getattr(coro, "cr_code", None) is _stand_in.__code__:
        _handing.pending = None
        pending[0]._report(pending[1], coro)
        return
    reporter = _reporters.get(threading.get_ident())
    task = None
    if reporter is not None:
        task = getattr(getattr(_state.local, "kernel", None), "current", None)
    elif _reporters:
        # Dropped on a thread with no debug-mode kernel (a worker thread, a
        # finalizer, a kernel run without debug): report to any active
        # reporter rather than lose it -- but name no task, since a task
        # running on this thread belongs to another run than the report's.
        reporter = next(iter(_reporters.values()), None)
    if reporter is None:
        original = _saved.get("hook")
        if original is not None:
            original(coro)
        return
    origin = _user_part([(f, n, fn) for f, n, fn in
                         reversed(getattr(coro, "cr_origin", None) or ())])
    reporter._report(NeverAwaited(getattr(coro, "__qualname__", repr(coro)), origin,
                                  task.id if task is not None else None,
                                  task.name if task is not None else None), coro)


# Registries for reports whose origin is in no imported module (a script run
# by runpy, exec'd code): one per file, as warn() keeps one per module.
_registries: dict[str, dict[Any, Any]] = {}


def _module_of(filename: str) -> tuple[str | None, dict[str, Any] | None]:
    """The name and globals of the imported module whose source is ``filename``."""
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            namespace = getattr(module, "__dict__", None)
            if isinstance(namespace, dict):
                return name, namespace
    return None, None


def _warn(report: NeverAwaited, coro: Any) -> None:
    """Issue ``report`` as a RuntimeWarning located at the line that made the coroutine.

    Runs inside the coroutine's finalization (possibly inside the garbage
    collector): an exception from ``warnings`` (``-W error``) propagates to
    CPython, which prints it as an unraisable exception ("Exception ignored
    in: <coroutine ...>") -- what it does with its own warning.
    """
    # Without the last frame's source line: warnings prints the line of the
    # location after the message, and the report showed it twice.
    text = report.format(last_line=False)
    if not report.origin:
        # Where it was made is unknown: point where CPython would, at the
        # code running when the coroutine was destroyed (below _warn,
        # _report and _hook).
        warnings.warn(text, RuntimeWarning, stacklevel=4, source=coro)
        return
    filename, lineno, _ = report.origin[-1]
    module, namespace = _module_of(filename)
    if namespace is not None:
        registry = namespace.setdefault("__warningregistry__", {})
    else:
        registry = _registries.setdefault(filename, {})
    where: dict[str, Any] = {"registry": registry}
    if module is not None:
        # Only when known: an explicit module=None makes the C warn_explicit
        # drop the warning without a word (code from ``python -c``, exec'd
        # code such as a notebook cell). Left out, it is derived from the
        # filename, as for CPython's own warning ("<string>:4: ...").
        where["module"] = module
    try:
        warnings.warn_explicit(text, RuntimeWarning, filename, lineno,
                               module_globals=namespace, **where)
    except Warning:
        # -W error: the report itself, raised (see the docstring). Printed as
        # an unraisable exception, with no location and no source line: so
        # with its last line back.
        raise RuntimeWarning(report.format()) from None
    except Exception:
        if namespace is None:
            raise
        # module_globals is only there for the source line, which the C
        # warn_explicit asks the module's loader for without catching its
        # error, as linecache would: for ``python - < app.py`` that is
        # BuiltinImporter, which raises ImportError for '__main__'. A report
        # without that line beats a lost one.
        warnings.warn_explicit(text, RuntimeWarning, filename, lineno, **where)


def _user_part(origin: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    """Drop the frames from the program's start down to the kernel's step call.

    The NotStarted driver in _task.py, which makes a task's coroutine in its
    first step, counts as the kernel too.
    """
    cut = 0
    for i, (filename, _, _) in enumerate(origin):
        name = filename.replace("\\", "/")
        if "/yieldio/" in name and name.endswith(("_kernel.py", "_trampoline.py", "_pep380.py", "_task.py")):
            cut = i + 1
    return origin[cut:] or origin


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _called_by_the_program(qualname: str, origin: list[tuple[str, int, str]]
                           ) -> tuple[str, list[tuple[str, int, str]]]:
    """Report a dropped wait at the program's call, under the name it called.

    A public function may make its generator through a private one
    (``to_thread`` returns ``_to_thread(...)``): the recorded origin then
    ends inside yieldio, and the report would point there, at a name the
    program never wrote. The frames inside yieldio are dropped, and the
    outermost of them names the call.
    """
    while len(origin) > 1 and origin[-1][0].startswith(_PACKAGE_DIR):
        qualname = origin[-1][2]
        origin = origin[:-1]
    return qualname, origin


def _install() -> int:
    """Turn reporting on for this thread; returns its origin depth, to restore."""
    global _users
    # The origin tracking depth is per thread (the hook is not): every
    # debug-mode kernel turns it on for its own thread.
    depth = sys.get_coroutine_origin_tracking_depth()
    sys.set_coroutine_origin_tracking_depth(max(ORIGIN_DEPTH, depth))
    with _lock:
        _users += 1
        if _users > 1:
            return depth
        _saved["hook"] = getattr(warnings, "_warn_unawaited_coroutine", None)
        # CPython looks this function up on the warnings module each time it
        # warns about an unawaited coroutine (Python/_warnings.c).
        warnings._warn_unawaited_coroutine = _hook  # type: ignore[attr-defined]
    return depth


def _uninstall(depth: int) -> None:
    global _users
    sys.set_coroutine_origin_tracking_depth(depth)
    with _lock:
        _users -= 1
        if _users > 0:
            return
        hook = _saved.pop("hook", None)
        if hook is not None:
            warnings._warn_unawaited_coroutine = hook  # type: ignore[attr-defined]


class NeverAwaitedReporter:
    """Instrument: report every coroutine created during the run and never awaited.

    ::

        reporter = yieldio.debug.NeverAwaitedReporter()
        yieldio.run(main, instruments=[reporter])
        for r in reporter.reports:
            print(r.format())

    Each report is appended to :attr:`reports` and, with ``warn=True`` (the
    default), issued as a ``RuntimeWarning`` through :mod:`warnings`, located
    at the line that created the coroutine (its message is
    ``NeverAwaited.format(last_line=False)``: warnings adds that line). Being a real warning, it shows in pytest's
    warnings summary, obeys ``-W`` / ``filterwarnings`` (``error`` makes it
    an exception, "default" shows a line's report once), and is captured by
    ``logging.captureWarnings`` if a program wants it logged. While the
    reporter is active it *replaces* CPython's plain "coroutine ... was never
    awaited" warning (one clear report, not two); outside a run the warning
    is back to normal. ``warn=False`` only collects: no output at all.

    Under ``-W error`` the warning becomes an exception inside the
    coroutine's finalization, where nothing can catch it: as with CPython's
    own warning, Python prints it as an unraisable exception ("Exception
    ignored in: <coroutine ...>"; pytest turns that into a
    ``PytestUnraisableExceptionWarning``). The report is in :attr:`reports`
    all the same.

    ``log`` is the old name of ``warn``, kept for compatibility (with a
    DeprecationWarning): these reports used to go to the ``yieldio.debug``
    logger, where test runners and ``-W`` never saw them. ``log=False``
    still means "collect silently" and the default still reports; there is
    no second, logged copy of the report -- route warnings to logging with
    ``logging.captureWarnings(True)`` for that.
    """

    def __init__(self, *, warn: bool = True, log: bool | None = None) -> None:
        if log is not None:
            warnings.warn("NeverAwaitedReporter(log=...) is now called warn=...: the report "
                          "is a RuntimeWarning, not a log record", DeprecationWarning,
                          stacklevel=2)
            warn = log
        self.warn = warn
        self.reports: list[NeverAwaited] = []
        self._thread_id: int | None = None
        self._depth = 0
        if _unawaited.ENABLED:
            # yieldio's own waits are tracked (YIELDIO_DEBUG=1 at import):
            # look for dropped ones after every step. An instance attribute,
            # so that without tracking no hook runs per step.
            self.after_task_step = self._sweep_waits

    @property
    def log(self) -> bool:
        """The old name of :attr:`warn`."""
        return self.warn

    def before_run(self) -> None:
        """Instrument hook: start watching for coroutines that are never awaited."""
        self._thread_id = threading.get_ident()
        self._depth = _install()
        _reporters[self._thread_id] = self
        if _unawaited.ENABLED:
            _unawaited.watch()

    def after_run(self) -> None:
        """Instrument hook: stop watching and report what was never awaited."""
        # Coroutines dropped inside reference cycles are only destroyed by
        # the collector: collect now, while the report still has a home.
        gc.collect()
        if _unawaited.ENABLED:
            self._sweep_waits(None)
            _unawaited.unwatch()
        if self._thread_id is not None:
            _reporters.pop(self._thread_id, None)
            self._thread_id = None
            _uninstall(self._depth)

    def _sweep_waits(self, task: Any) -> None:
        """Report the calls of yieldio's waits that were dropped unawaited (see _unawaited)."""
        for qualname, origin in _unawaited.sweep():
            qualname, origin = _called_by_the_program(qualname, _user_part(origin))
            _issue_as_cpython(self, NeverAwaited(qualname, origin,
                                                 task.id if task is not None else None,
                                                 task.name if task is not None else None))

    def _report(self, report: NeverAwaited, coro: Any) -> None:
        self.reports.append(report)  # first: kept even if the warning raises
        if self.warn:
            _warn(report, coro)
