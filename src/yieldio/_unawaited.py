"""Calls of yieldio's own waits that were never awaited: tracked under ``YIELDIO_DEBUG=1``.

``q.put(item)`` without ``await`` makes a generator and drops it, and the
item is never put. CPython warns when an ``async def`` coroutine is dropped
unawaited, but not a generator; yieldio's waits (``sleep``, ``Event.wait``,
``Queue.put``, ...) are generator coroutines made by
:func:`types.coroutine`, because that is what lets ``yield from`` call them
and what keeps a wait to one object. So the most common forgotten ``await``
went unreported, even in debug mode.

When ``YIELDIO_DEBUG`` is set in the environment *as yieldio is imported*,
:func:`tracked` replaces :func:`types.coroutine` for those functions: each
call records the generator it made and the lines that made it, while a
debug-mode run on that thread is watching (:func:`watch`). The never-awaited
reporter calls :func:`sweep` after each task step: a generator nobody has
started and nobody else holds any more was dropped, and is reported like a
dropped coroutine::

    $ YIELDIO_DEBUG=1 python app.py
    app.py:7: RuntimeWarning: coroutine 'Queue.put' was never awaited (dropped in task 'main').

Why only then: the wrapper is one more Python call on every wait, a cost
the hot path does not pay otherwise. Without the variable the functions are
the plain ones; ``debug=True`` alone still reports dropped ``async def``
coroutines, which CPython sees by itself.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

__all__ = ["ENABLED", "tracked", "watch", "unwatch", "sweep"]


def _started_as_run_debug() -> bool:
    """Whether this process is ``python -m yieldio run --debug ...``, starting.

    ``run --debug`` cannot set YIELDIO_DEBUG in time: ``python -m yieldio``
    imports the package -- and so this module, which decides -- before
    yieldio's __main__ reads its arguments. But while runpy imports it,
    ``sys.argv`` is ``["-m", ARGS...]`` (it becomes __main__'s path just
    after), and ``sys.orig_argv`` has the module's name just before ARGS.
    """
    argv, orig = getattr(sys, "argv", []), getattr(sys, "orig_argv", [])
    if argv[:1] != ["-m"] or len(orig) < len(argv) or orig[-len(argv)] not in (
            "yieldio", "-myieldio") or argv[1:2] != ["run"]:
        return False

    def is_option(word: str, option: str) -> bool:  # argparse takes "--deb" for "--debug"
        return len(word) > 2 and option.startswith(word)

    words = iter(argv[2:])
    for word in words:
        if is_option(word, "--debug"):
            return True
        if is_option(word, "--trace") or is_option(word, "--slow-step"):
            next(words, None)  # the option's value
        elif word == "--" or not word.startswith("-"):
            return False  # SCRIPT: the words after it are the script's own
    return False


#: Whether waits are tracked in this process (decided once, at import).
ENABLED = (os.environ.get("YIELDIO_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}
           or _started_as_run_debug())

#: Frames recorded per call, as the coroutine origin depth of debug mode.
DEPTH = 16

_GeneratorType = types.GeneratorType
_local = threading.local()


def tracked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``types.coroutine(fn)``, whose calls are recorded while a run watches.

    ::

        put = tracked(put_generator_function)
        g = put(item)          # recorded with this line, when watched
    """
    inner = types.coroutine(fn)
    name = getattr(fn, "__qualname__", repr(fn))

    @functools.wraps(inner)
    def call(*args: Any, **kwargs: Any) -> Any:
        made = inner(*args, **kwargs)
        fresh = getattr(_local, "fresh", None)
        if fresh is not None and type(made) is _GeneratorType:
            # The origin as plain tuples now: holding the caller's frame
            # would keep its locals (and this generator) alive.
            origin: list[tuple[str, int, str]] = []
            frame: types.FrameType | None = sys._getframe(1)
            while frame is not None and len(origin) < DEPTH:
                origin.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
                frame = frame.f_back
            origin.reverse()
            fresh.append((made, name, origin))
        return made

    return call


def watch() -> None:
    """Start recording calls made on this thread (a debug-mode run begins)."""
    _local.fresh = []


def unwatch() -> None:
    """Stop recording on this thread and forget what was recorded."""
    _local.fresh = None


def sweep() -> list[tuple[str, list[tuple[str, int, str]]]]:
    """Return ``(qualname, origin)`` of each recorded call dropped unstarted, and forget it.

    A generator that was started (awaited, ``yield from``-ed, spawned) is
    forgotten; one not started yet but still held somewhere (made now,
    awaited later) is kept for the next sweep.
    """
    fresh = getattr(_local, "fresh", None)
    if not fresh:
        return []
    dropped = []
    keep = []
    getrefcount = sys.getrefcount
    for item in fresh:
        made = item[0]
        if made.gi_frame is None or made.gi_suspended or made.gi_running:
            continue  # started (or finished): it was awaited
        # References: the tuple, ``made`` and getrefcount's argument.
        if getrefcount(made) <= 3:
            dropped.append((item[1], item[2]))
        else:
            keep.append(item)
    fresh[:] = keep
    return dropped
