"""The whole await / yield-from chain of a task, as frames.

A suspended task is a chain of coroutine objects: the task's outermost
coroutine awaits another, which awaits another, down to the small generator
that yielded a trap to the kernel. CPython exposes each link differently, and
:func:`task_stack` follows all of them:

* ``async def`` coroutines: ``cr_frame`` and ``cr_await``;
* generators (``yield from``, ``@yieldio.coroutine``): ``gi_frame`` and
  ``gi_yieldfrom``;
* async generators: ``ag_frame`` and ``ag_await``;
* the wrappers CPython puts between them (``coroutine_wrapper`` from
  ``coro.__await__()``, ``async_generator_asend``/``athrow`` from ``async
  for``): they hide the object they drive, which is found through
  :func:`gc.get_referents` -- debugging-only and never on a hot path;
* trampolined calls (``x = yield sub()``): the task's ``Trampoline`` keeps
  the chain on an explicit list, :attr:`Trampoline.stack`; so does a
  ``yieldio.trampoline(gen)`` that a task runs or delegates to;
* class-based coroutines (anything with ``send``/``throw``): there is no
  Python frame to show, so they appear as one opaque frame named after
  their class.

Example::

    async def main():
        for frame in yieldio.current_task().stack():
            print(frame.function, frame.lineno)
"""

from __future__ import annotations

import bisect
import gc
import linecache
import os
import sys
from dataclasses import dataclass
from types import AsyncGeneratorType, CoroutineType, GeneratorType
from typing import Any

from .. import _state
from .._task import RUNNING, NotStarted, Task
from .._trampoline import Trampoline

__all__ = ["Frame", "task_stack", "format_stack", "coroutine_frames", "innermost_frame",
           "where_frame"]

# CPython's wrapper types that drive a coroutine or async generator but do
# not expose it as an attribute. Matched by name: they are not importable.
_WRAPPERS = frozenset({"coroutine_wrapper", "async_generator_asend", "async_generator_athrow"})

# A chain longer than this is cut (with a marker frame): the walk must
# terminate even on a pathological object graph, and nobody reads 10,000
# frames. Trampolined chains can be deeper than any native one, though: a
# cut stack keeps its outermost and its innermost frames (where the task
# waits), and the marker between them says how much is left out.
MAX_FRAMES = 10_000


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame of a task's stack: where one coroutine is suspended.

    ``opaque`` frames stand for class-based coroutines, which have no Python
    frame: ``function`` is the class's qualified name and ``lineno`` is 0::

        >>> Frame("app.py", 12, "handler").format()
        '  File "app.py", line 12, in handler'
    """

    filename: str
    lineno: int
    function: str
    opaque: bool = False

    @property
    def line(self) -> str:
        """The source line (stripped), or "" when it cannot be read."""
        if self.opaque or not self.filename:
            return ""
        return linecache.getline(self.filename, self.lineno).strip()

    def format(self) -> str:
        """Render like a traceback entry (two lines when the source is known)."""
        if self.opaque and self.function.startswith("..."):
            # The marker of a cut stack (see task_stack), not a coroutine:
            # it read "<... stack cut ...> class-based coroutine, no frame".
            return f"  {self.function}"
        if self.opaque:
            where = f' (defined in "{self.filename}")' if self.filename else ""
            return f"  <{self.function}> class-based coroutine, no frame{where}"
        out = f'  File "{self.filename}", line {self.lineno}, in {self.function}'
        line = self.line
        return out + (f"\n    {line}" if line else "")

    def short(self) -> str:
        """``function (file:line)`` on one line, for tables and trees."""
        if self.opaque:
            return f"<{self.function}>"
        return f"{self.function} ({_shorten(self.filename)}:{self.lineno})"


def _shorten(filename: str) -> str:
    # Trees and tables have little room: keep the last two path components.
    parts = filename.replace("\\", "/").rsplit("/", 2)
    return "/".join(parts[-2:]) if len(parts) > 2 else filename


def _opaque(obj: Any) -> Frame:
    cls = type(obj)
    module = sys.modules.get(cls.__module__)
    filename = getattr(module, "__file__", None) or ""
    return Frame(filename, 0, cls.__qualname__, opaque=True)


def _unwrap(obj: Any) -> Any:
    """The coroutine or async generator a CPython wrapper object drives, or None."""
    for ref in gc.get_referents(obj):
        if hasattr(ref, "cr_frame") or hasattr(ref, "ag_frame") or hasattr(ref, "gi_frame"):
            return ref
    return None


def _links(coro: Any) -> tuple[Any, Any] | None:
    """(frame, next coroutine) of one link of a chain; None for an opaque object.

    Exact type tests first: this runs for every task when the monitor draws
    a tree of 10,000 tasks, on the kernel thread.
    """
    tp = type(coro)
    if tp is CoroutineType:
        return coro.cr_frame, coro.cr_await
    if tp is GeneratorType:
        return coro.gi_frame, coro.gi_yieldfrom
    if tp is AsyncGeneratorType:
        return coro.ag_frame, coro.ag_await
    # Look-alikes (Cython coroutines, subclasses of nothing) by attribute.
    if hasattr(coro, "cr_code"):
        return getattr(coro, "cr_frame", None), getattr(coro, "cr_await", None)
    if hasattr(coro, "gi_code"):
        return getattr(coro, "gi_frame", None), getattr(coro, "gi_yieldfrom", None)
    if hasattr(coro, "ag_code"):
        return getattr(coro, "ag_frame", None), getattr(coro, "ag_await", None)
    return None


def coroutine_frames(coro: Any, out: list[Frame] | None = None) -> list[Frame]:
    """Append the frames of ``coro`` and of everything it natively awaits.

    Returns ``out`` (a new list if none is given). A finished coroutine adds
    nothing; an object without a Python frame adds one opaque frame; a
    :class:`~yieldio.trampoline` adds the frames of its whole call stack::

        >>> def gen():
        ...     yield
        >>> g = gen(); next(g)
        >>> [f.function for f in coroutine_frames(g)]
        ['gen']
    """
    if out is None:
        out = []
    _walk(coro, out, MAX_FRAMES)
    return out


def _walk(coro: Any, out: list[Frame], limit: int) -> bool:
    """Append the frames of ``coro``'s chain to ``out`` while ``len(out) < limit``.

    Returns False if the limit cut the chain short.
    """
    seen: set[int] = set()
    pending: list[Any] = []  # the rest of a trampoline's stack (popped outermost first)
    while True:
        if coro is None:
            if not pending:
                return True
            coro = pending.pop()
        if len(out) >= limit:
            return False
        if id(coro) in seen:  # a cycle would be a bug elsewhere; never loop on it
            return True
        seen.add(id(coro))
        if type(coro) is Trampoline:
            # A trampoline driven as a coroutine (by a task, or by 'yield
            # from'): its explicit stack is the rest of the chain.
            calls = coro._stack
            if len(calls) > 1:
                if len(calls) - 1 > limit - len(out):  # only what can be shown
                    calls = calls[: limit - len(out) + 1]
                pending.extend(reversed(calls[1:]))
            coro = calls[0]
            continue
        link = _links(coro)
        if link is None:
            if type(coro).__name__ in _WRAPPERS:
                coro = _unwrap(coro)
                continue
            out.append(_opaque(coro))
            coro = None
            continue
        frame, nxt = link
        if frame is None:  # finished (or closed): nothing suspended here
            coro = None
            continue
        code = frame.f_code
        lineno = frame.f_lineno
        out.append(Frame(code.co_filename, lineno if lineno is not None else 0,
                         code.co_qualname))
        coro = nxt


def _unstarted_frame(task: Any) -> Frame | None:
    """The frame of a task whose coroutine is not made yet (see ``NotStarted``), or None.

    Read from the function's code -- the ``def`` line, what the coroutine's
    own frame would say before its first step -- instead of ``task.coro``:
    that property *makes* the coroutine, so merely looking (a ``ps`` during
    a burst of 100,000 spawns) gave every waiting task a coroutine object
    and changed what the kernel sends in its first step.
    """
    if type(task._driver) is not NotStarted:
        return None
    code = task._coro.__code__
    return Frame(code.co_filename, code.co_firstlineno, code.co_qualname)


def _calls(task: Any) -> list[Any]:
    """The task's trampolined calls, outermost first: its trampoline's own list.

    Not a copy (``Trampoline.stack`` copies, which costs O(depth)): read it
    and do not keep it. A task whose coroutine is itself a
    ``yieldio.trampoline(...)`` is shown through it. Not for a task that has
    not started (see :func:`_unstarted_frame`).
    """
    tramp = task._tramp
    calls = tramp._stack if tramp is not None else [task.coro]
    while len(calls) == 1 and type(calls[0]) is Trampoline:
        calls = calls[0]._stack
    return calls


def _innermost_link(coro: Any) -> Any:
    # A trampoline in a chain: go on with its innermost call.
    while type(coro) is Trampoline:
        coro = coro._stack[-1]
    return coro


def innermost_frame(task: Any, cache: dict[Any, Frame] | None = None) -> Frame | None:
    """Where ``task`` is suspended: the last frame of :func:`task_stack`, cheaply.

    ``cache`` (a dict kept across calls of one snapshot) shares one
    :class:`Frame` between tasks suspended at the same instruction -- the
    usual case with thousands of identical workers::

        f = innermost_frame(task)
        print(f.function if f else "(finished)")
    """
    if task._state is not RUNNING:
        return None
    unstarted = _unstarted_frame(task)
    if unstarted is not None:
        return unstarted
    calls = _calls(task)
    last, opaque = _walk_native_chain(calls[-1])
    if opaque is not None:
        return _opaque(opaque)
    if last is None:
        if len(calls) > 1:  # the innermost call finished; fall back to the walk
            frames = task_stack(task)
            return frames[-1] if frames else None
        return None
    return _to_frame(last, cache)


# Frames of yieldio itself (sync.py, _io.py, ...) are skipped by where_frame.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _to_frame(obj: Any, cache: dict[Any, Frame] | None) -> Frame:
    if isinstance(obj, Frame):
        return obj
    code = obj.f_code
    key = (code, obj.f_lasti)
    found = cache.get(key) if cache is not None else None
    if found is None:
        lineno = obj.f_lineno
        found = Frame(code.co_filename, lineno if lineno is not None else 0, code.co_qualname)
        if cache is not None:
            cache[key] = found
    return found


def where_frame(task: Any, cache: dict[Any, Frame] | None = None) -> Frame | None:
    """The innermost frame of the *program's* code in ``task``'s stack.

    Like :func:`innermost_frame`, but frames inside yieldio itself (the
    ``Event.wait`` or ``wait_readable`` at the bottom of every wait) are
    skipped, so the answer is the line of your code that is waiting. Falls
    back to the innermost frame when the whole stack is yieldio's (a
    server's accept loop, say). The tree and the task table show this::

        f = where_frame(task)
        print(f"{f.function} at {f.filename}:{f.lineno}")
    """
    raw = _where_raw(task)
    return _to_frame(raw, cache) if raw is not None else None


def _where_raw(task: Any) -> Any:
    """:func:`where_frame`'s answer before it becomes a :class:`Frame`.

    The live Python frame object (or a :class:`Frame` for a class-based
    coroutine, which has none), for readers that need its locals: the task
    tree names the object a task waits on from them.
    """
    if task._state is not RUNNING:
        return None
    unstarted = _unstarted_frame(task)
    if unstarted is not None:
        return unstarted
    coros = _calls(task)
    innermost: Any = None
    # Innermost trampolined call first; inside it, follow the native chain.
    for i in range(len(coros) - 1, -1, -1):
        coro = coros[i]
        last_user: Any = None
        last_any: Any = None
        for _ in range(MAX_FRAMES):
            coro = _innermost_link(coro)
            link = _links(coro)
            if link is None:
                if type(coro).__name__ in _WRAPPERS:
                    coro = _unwrap(coro)
                    if coro is None:
                        break
                    continue
                last_any = _opaque(coro)
                if not last_any.filename.startswith(_PACKAGE_DIR):
                    last_user = last_any
                break
            frame, nxt = link
            if frame is None:
                break
            last_any = frame
            if not frame.f_code.co_filename.startswith(_PACKAGE_DIR):
                last_user = frame
            if nxt is None:
                break
            coro = nxt
        if innermost is None:
            innermost = last_any
        if last_user is not None:
            return last_user
    return innermost


def task_stack(task: Any) -> list[Frame]:
    """The task's suspended frames, outermost first, across every kind of call.

    Follows ``cr_await`` (async def), ``gi_yieldfrom`` (generators),
    ``ag_await`` (async generators), CPython's hidden wrappers and the
    trampoline's explicit stack. A finished task has an empty stack. A stack
    of more than ``MAX_FRAMES`` frames (a deep trampolined one) keeps the
    outermost and the innermost frames, with an opaque marker frame between
    them, so the last frame is still where the task waits. The running task
    asking for its own stack also gets the frames it is executing now, down
    to the function that called ``stack()``.
    ``task.stack()`` is the same call::

        frames = yieldio.debug.task_stack(task)
        print(frames[-1].function)     # where it waits, e.g. 'wait_readable'
    """
    out: list[Frame] = []
    if task._state is not RUNNING:
        return out
    unstarted = _unstarted_frame(task)
    if unstarted is not None:
        return [unstarted]
    calls = _calls(task)
    ends: list[int] = []  # len(out) after each call's frames
    for coro in calls:
        complete = _walk(coro, out, MAX_FRAMES)
        ends.append(len(out))
        if not complete:
            break
    else:
        if getattr(getattr(_state.local, "kernel", None), "current", None) is task:
            # The task is running and asked for its own stack. Its innermost
            # suspended-or-running coroutine reports no cr_await/gi_yieldfrom
            # while it executes, so the walk stops there; the functions it
            # is calling now (the ones that called stack()) are only on the
            # live Python stack.
            out.extend(_running_tail(calls[-1]))
        return out
    # Too many frames. Keep the outermost half and the innermost frames --
    # where the task waits, what debugging it is for -- walking the calls
    # from the innermost one back, and never over the call the head stops in.
    half = MAX_FRAMES // 2
    del out[half:]
    k = bisect.bisect_left(ends, half)  # the call that frame half-1 belongs to
    tail: list[list[Frame]] = []
    shown = 0
    j = len(calls) - 1
    tail_partial = False
    while j > k and shown < half:
        frames: list[Frame] = []
        room = half - shown
        tail_partial = not _walk(calls[j], frames, room)
        if tail_partial:
            # A call too long to show whole: its *innermost* frames, the ones
            # that lead to the calls shown after it. (Its outermost ones sat
            # next to frames it never called, with no marker between.)
            frames = []
            if _walk(calls[j], frames, room + MAX_FRAMES):
                frames = frames[-room:]
            else:
                frames = []  # longer still: left to the marker entirely
        tail.append(frames)
        shown += len(frames)
        j -= 1
    if tail:
        # Calls k..j are hidden, or shown only in part at either edge. Call k
        # is wholly in the head when the head ends exactly where it ends
        # (counting it said "190,003 of 200,001" where 190,002 were missing);
        # the tail's outermost call counts if the tail cut it short.
        first = k + 1 if ends[k] == half else k
        hidden = j - first + 1 + tail_partial
        note = (f"... stack cut: {hidden:,} of {len(calls):,} trampolined calls "
                f"not shown (or only in part) ...")
    else:
        note = f"... stack cut at {half} frames"
    out.append(Frame("", 0, note, opaque=True))
    for frames in reversed(tail):
        out.extend(frames)
    return out


def _walk_native_chain(coro: Any) -> tuple[Any, Any]:
    """Follow ``coro``'s native await chain to its innermost link.

    Returns ``(frame, opaque)``: the innermost Python frame object (or None),
    and the object without frames the chain ends at (or None), such as a
    hand-written coroutine class.
    """
    last = None
    for _ in range(MAX_FRAMES):
        coro = _innermost_link(coro)
        link = _links(coro)
        if link is None:
            if type(coro).__name__ in _WRAPPERS:
                coro = _unwrap(coro)
                if coro is not None:
                    continue
                break
            return last, coro
        frame, nxt = link
        if frame is None:
            break
        last = frame
        if nxt is None:
            break
        coro = nxt
    return last, None


def _running_tail(innermost_call: Any) -> list[Frame]:
    """The live frames below the running task's innermost coroutine, outermost first.

    Stops short of the debugging calls themselves (``task_stack``,
    ``Task.stack``, ``format_stack``). Empty if that coroutine's frame is not
    on this thread's stack (it is not executing).
    """
    top = _walk_native_chain(innermost_call)[0]
    if top is None:
        return []
    live: list[Any] = []
    f: Any = sys._getframe(1)
    while f is not None and f is not top:
        live.append(f)
        f = f.f_back
    if f is None:
        return []
    live.reverse()
    while live and live[-1].f_code in _SELF_CODES:
        live.pop()
    return [_to_frame(x, None) for x in live]


def format_stack(task: Any) -> str:
    """``task_stack(task)`` as text, like a traceback, headed by what it waits on::

        print(yieldio.debug.format_stack(task))
        # Stack of <Task 7 'handler' waiting>, waiting on read fd 9 (...):
        #   File "server.py", line 20, in handler
        #     data = await stream.receive_some()
        #   ...
    """
    from ._tree import describe_wait

    frames = task_stack(task)
    wait = describe_wait(task, detail=True)
    head = f"Stack of {task!r}" + (f", waiting on {wait}" if wait else "")
    if not frames:
        return head + ": (no frames: the task has finished)"
    return "\n".join([head + ":"] + _fold_repeats(frames))


#: Identical consecutive frames shown before the rest are folded (as in tracebacks).
_REPEATS_SHOWN = 3


def _fold_repeats(frames: list[Frame]) -> list[str]:
    """Format frames, folding runs of identical ones as Python's tracebacks do.

    A recursive chain 10,000 calls deep was 20,000 lines (half a megabyte
    through the monitor's ``where``) saying the same thing; now it is a few
    lines and "[Previous line repeated 9,997 more times]".
    """
    out: list[str] = []
    last: Frame | None = None
    count = 0
    for f in frames:
        if f == last:
            count += 1
        else:
            if count > _REPEATS_SHOWN:
                out.append(_repeated(count - _REPEATS_SHOWN))
            last, count = f, 1
        if count <= _REPEATS_SHOWN:
            out.append(f.format())
    if count > _REPEATS_SHOWN:
        out.append(_repeated(count - _REPEATS_SHOWN))
    return out


def _repeated(n: int) -> str:
    return f"  [Previous line repeated {n:,} more time{'s' if n > 1 else ''}]"


# The debugging calls that lead to _running_tail: never part of the stack shown.
_SELF_CODES = frozenset({task_stack.__code__, format_stack.__code__, _running_tail.__code__,
                         Task.stack.__code__})
