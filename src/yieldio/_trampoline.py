"""Trampolined calls: ``result = yield sub()`` run on an explicit stack.

In a generator coroutine, ``result = yield from sub()`` is a call. CPython
runs it by native recursion: every resumption of the innermost coroutine goes
through every frame of the chain, so resuming costs O(depth), and a chain
deeper than the recursion limit (1000 by default) dies of ``RecursionError``.

A *trampolined call* is the same call written ``result = yield sub()``. The
coroutine yields the sub-coroutine object instead of delegating to it, and a
driver -- :class:`Trampoline` -- keeps the chain on an explicit list and
talks to the innermost coroutine directly. Resuming costs O(1) whatever the
depth, and the depth is limited by memory only::

    >>> def countdown(n):
    ...     if n == 0:
    ...         return 0
    ...     return (yield countdown(n - 1)) + 1
    >>> t = trampoline(countdown(100_000))
    >>> try:
    ...     next(t)
    ... except StopIteration as stop:
    ...     print(stop.value)
    100000

Apart from speed and depth, a trampolined program is indistinguishable from
the same program written with ``yield from``: the driver sees the same
yielded values, return value, exceptions and tracebacks, and ``throw()`` and
``close()`` follow PEP 380 and CPython's ``genobject.c`` step by step,
including the quirks (an object without ``throw`` is abandoned, not closed;
``close()`` closes the innermost coroutine first; ``GeneratorExit`` that is
ignored becomes ``RuntimeError``). See :class:`Trampoline` for the few things
a pure-Python driver cannot imitate.

This module is the driver: the stack and the loop that runs it. The rules
it applies at each step -- what is a callee, how to resume, throw into and
close one, which frames a traceback shows -- do not depend on the stack, and
live in ``_pep380.py``. Everything here is iterative: nothing recurses on the
depth of the chain.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import CoroutineType, GeneratorType
from typing import Any

from ._pep380 import (
    _CLOSE_RETURNS_VALUE,
    _THROWN_STOP_IS_A_RETURN,
    _ChainView,
    _detach,
    _ignored_message,
    _is_generator_exit,
    _refusal,
    _reraise,
    _resume_method,
    _resumer,
    _stripper,
    _suspended,
    _throw_args,
    _ThrowArgs,
    _thrown_stop,
    is_subcoroutine,
)

__all__ = ["Trampoline", "is_subcoroutine", "trampoline"]

# Frames of this module (and of _pep380) are dropped from tracebacks.
_strip = _stripper(globals())

# "Resume by sending, not by throwing". ``None`` cannot mean that: it is a
# legal (if wrong) argument to ``throw()``, and must reach the coroutine.
_SEND: Any = object()
# throw()'s "argument not given": throw(e, None) passes on two arguments.
_NO_ARG: Any = object()


#: What _close_frame returns for a frame that yielded instead of exiting.
_YIELDED: Any = object()


class Trampoline(_ChainView):
    """Drives a coroutine with trampolined calls on an explicit stack.

    ``Trampoline(coro)`` is itself a coroutine: drive it with ``send()``,
    ``throw()`` and ``close()`` (or iterate it) exactly as you would drive
    ``coro``. Whenever the innermost coroutine yields a *sub-coroutine*
    (``subcall(value)`` is true; by default :func:`is_subcoroutine`), the
    trampoline pushes it and starts it; when it returns, its value is sent
    to the caller; when it raises, the exception is thrown into the caller
    at its ``yield``. Any other yielded value goes out to the driver::

        >>> def add(a, b):
        ...     x = yield f"need {a}"
        ...     y = yield f"need {b}"
        ...     return x + y
        >>> def main():
        ...     total = yield add("a", "b")
        ...     return total * 10
        >>> t = Trampoline(main())
        >>> next(t), t.depth, t.send(1)
        ('need a', 2, 'need b')
        >>> try:
        ...     t.send(2)
        ... except StopIteration as stop:
        ...     print(stop.value)
        30

    Every observable -- yielded values, ``StopIteration.value``, exceptions
    and their tracebacks, the order in which ``throw()`` and ``close()``
    reach the frames -- is the one the same program has when written with
    ``yield from`` and driven natively (PEP 380, CPython 3.11). The outermost
    coroutine is never popped: once it has finished, the trampoline keeps
    forwarding to it, so it acts as the finished coroutine does (a finished
    generator raises ``StopIteration`` on ``send()``, re-raises on
    ``throw()``, and ignores ``close()``).

    What a pure-Python driver cannot imitate, because a suspended caller is
    not *running* while its callee runs:

    * a callee does not see the exception its callers are handling:
      ``sys.exc_info()``, implicit ``__context__`` chaining and a bare
      ``raise`` inside a callee called from an ``except`` block differ;
    * ``sys._getframe().f_back`` in a callee is the trampoline, not the
      caller (use :attr:`stack`); ``gi_yieldfrom`` of a caller is ``None``;
    * a callee that sends to one of its own callers (or yields one of them)
      resumes it instead of failing with "generator already executing";
    * when a trampolined frame delegates with native ``yield from`` and is
      closed (``close()``, a thrown ``GeneratorExit``, finalization), CPython
      closes that native chain itself: cleanup code *inside it* that makes a
      trampolined call only yields, which ``gen_close`` reports as "generator
      ignored GeneratorExit" (cleanup code of the trampolined frames
      themselves may make calls);
    * a hand-written coroutine's methods are called from the trampoline's
      frames, so a traceback that outlives them keeps the trampoline alive
      (natively it would keep the driver's frame alive instead);
    * when a trampoline is garbage collected, it closes the chain as CPython
      closes a generator's; an outermost coroutine that ignores that
      ``GeneratorExit`` later gets another one from its own finalizer, where
      CPython would finalize it only once. (Ignoring ``GeneratorExit`` is a
      bug that Python reports as "Exception ignored" either way.)
    """

    __slots__ = ("_stack", "_send", "_subcall", "_running", "__weakref__")

    def __init__(
        self,
        coro: Any,
        *,
        subcall: Callable[[Any], bool] = is_subcoroutine,
        started: bool = False,
    ) -> None:
        """Wrap ``coro``, the outermost coroutine.

        ``subcall`` decides which yielded values are calls. ``started`` is
        accepted for drivers that wrap a coroutine that already ran (the
        kernel does, when a task makes its first trampolined call); it
        changes nothing, because the trampoline keeps no state of its own
        about that -- a generator knows whether it was started::

            >>> def gen():
            ...     yield 1
            >>> Trampoline(gen(), subcall=lambda value: False).depth
            1
        """
        # These two first: __del__ reads them even if __init__ fails.
        self._running = False
        self._stack: list[Any] = [coro]
        if not (is_subcoroutine(coro) or getattr(type(coro), "__next__", None) is not None):
            hint = " (did you forget to call it?)" if callable(coro) else ""
            raise TypeError(f"Trampoline needs a coroutine, not {type(coro).__name__}{hint}")
        self._subcall = subcall
        # The innermost coroutine's resume callable, cached: send() is one
        # attribute load and one call away from the coroutine.
        self._send: Callable[[Any], Any] = _resume_method(coro)

    # -- the coroutine protocol ------------------------------------------------
    def send(self, value: Any) -> Any:
        """Resume with ``value``; return the next value yielded out.

        Sub-coroutines yielded on the way are run, not returned. Raises
        ``StopIteration(result)`` when the outermost coroutine returns, and
        whatever it raises::

            >>> def inner():
            ...     return (yield "inner waits") * 2
            >>> def outer():
            ...     return (yield inner()) + 1
            >>> t = Trampoline(outer())
            >>> t.send(None)
            'inner waits'
            >>> t.send(20)
            Traceback (most recent call last):
              ...
            StopIteration: 41
        """
        try:
            if self._running:
                raise ValueError("generator already executing")
            self._running = True
            try:
                # The first step of _drive()'s loop, inlined: usually the
                # innermost coroutine just yields a value, and that is all.
                try:
                    yielded = self._send(value)
                except StopIteration as stop:
                    if len(self._stack) == 1:
                        raise
                    stop.__traceback__ = None  # see _drive
                    value = stop.value
                    error: Any = _SEND
                except BaseException as failure:
                    if len(self._stack) == 1:
                        raise
                    _strip(failure)
                    error = failure
                else:
                    if not self._subcall(yielded):
                        return yielded
                    self._push(yielded)
                    del yielded
                    return self._drive(0, None, _SEND)
                self._pop()
                return self._drive(0, value, error)
            finally:
                self._running = False
        except BaseException as exc:
            # Leave with the traceback native code gives: driver, then frames.
            _strip(exc)
            raise

    def __next__(self) -> Any:
        """``send(None)``, so that a trampoline can be iterated::

        >>> def gen():
        ...     yield 1
        ...     yield (yield gen2())
        >>> def gen2():
        ...     yield 2
        ...     return 3
        >>> list(Trampoline(gen()))
        [1, 2, 3]
        """
        try:
            return self.send(None)
        except BaseException as exc:
            _strip(exc)  # this frame too: tracebacks start at the driver
            raise

    def __iter__(self) -> Trampoline:
        """Return ``self``: a trampoline is an iterator, like a generator.

        >>> t = Trampoline(iter([1]))
        >>> iter(t) is t
        True
        """
        return self

    def throw(self, exc: Any, value: Any = _NO_ARG, tb: Any = _NO_ARG) -> Any:
        """Raise ``exc`` (an exception instance or class) at the innermost ``yield``.

        Returns the next value yielded out, or raises like :meth:`send`. As
        with ``yield from``: a coroutine without a ``throw`` method is
        abandoned and ``exc`` is raised in its caller; ``GeneratorExit``
        closes every callee innermost-first before it reaches the outermost
        coroutine. The three-argument form ``throw(type, value, traceback)``
        (which CPython 3.11 still uses, in ``contextlib`` and when a generator
        delegating to a trampoline with ``yield from`` is thrown into that
        way) is passed on as ``yield from`` passes it: the innermost
        coroutine's ``throw`` gets the same arguments, so a generator there
        makes the exception (or refuses a bad combination, which its caller
        then receives), and a hand-written one sees them as given::

            >>> def inner():
            ...     yield "inner"
            >>> def outer():
            ...     try:
            ...         yield inner()
            ...     except KeyError:
            ...         yield "outer caught it"
            >>> t = Trampoline(outer())
            >>> next(t)
            'inner'
            >>> t.throw(KeyError)
            'outer caught it'
        """
        try:
            if self._running:
                raise ValueError("generator already executing")
            self._running = True
            try:
                typ = exc
                if value is not _NO_ARG or tb is not _NO_ARG:
                    # Not normalized here: see _ThrowArgs.
                    exc = _ThrowArgs((exc, None if value is _NO_ARG else value)
                                     if tb is _NO_ARG else (exc, value, tb))
                if _is_generator_exit(typ) and len(self._stack) > 1:
                    # _gen_throw: the callee chain is *closed* (close
                    # semantics, innermost first); GeneratorExit -- or the
                    # error closing raised -- then reaches the outermost
                    # with throw semantics: it may yield, or make calls.
                    pending = self._unwind(0)
                    if pending is not None:
                        exc = pending
                return self._drive(0, None, exc)
            finally:
                self._running = False
        except BaseException as error:
            _strip(error)
            raise

    def close(self) -> Any:
        """Close the whole chain, innermost first, like ``generator.close()``.

        Each frame gets ``GeneratorExit`` -- or the error that closing its
        callee raised. Returns ``None`` (from Python 3.13, as a generator's
        ``close()`` does: what the outermost coroutine returned while
        closing, if it returned); raises ``RuntimeError`` if the
        outermost coroutine yields instead of exiting, and propagates any
        other error. Closing twice, or closing a finished trampoline, does
        nothing::

            >>> def inner():
            ...     try:
            ...         yield "inner"
            ...     finally:
            ...         print("inner closed")
            >>> def outer():
            ...     try:
            ...         yield inner()
            ...     finally:
            ...         print("outer closed")
            >>> t = Trampoline(outer())
            >>> next(t)
            'inner'
            >>> t.close()
            inner closed
            outer closed
        """
        try:
            if self._running:
                raise ValueError("generator already executing")
            self._running = True
            try:
                leaf = len(self._stack) == 1
                pending = self._unwind(0)
                # As in _unwind, except that a yield is reported to the
                # driver and the frames stay: the driver may resume them.
                value = self._close_frame(0, pending, leaf)
                if value is _YIELDED:
                    raise RuntimeError(_ignored_message(self._stack[0]))
                return value if _CLOSE_RETURNS_VALUE else None
            finally:
                self._running = False
        except BaseException as exc:
            _strip(exc)
            raise

    # -- a driver that saw the call first ------------------------------------------
    def push(self, sub: Any) -> None:
        """Push ``sub`` as if the innermost coroutine had just yielded it.

        For a driver that saw the call first (the kernel, which only wraps a
        task in a trampoline at its first call). ``sub`` is not started: the
        next ``send(None)`` starts it::

            >>> def outer():
            ...     return (yield "placeholder")
            >>> def sub():
            ...     yield "sub runs"
            ...     return "sub's result"
            >>> t = Trampoline(outer())
            >>> next(t)
            'placeholder'
            >>> t.push(sub())
            >>> next(t)
            'sub runs'
            >>> try:
            ...     next(t)
            ... except StopIteration as stop:
            ...     print(stop.value)
            sub's result
        """
        if self._running:
            raise ValueError("cannot push onto a running trampoline")
        self._push(sub)

    def __del__(self) -> None:
        # CPython closes a generator that is garbage collected, and the close
        # runs through its whole yield-from chain. Do the same for the
        # explicit chain. Left to themselves, the frames would be finalized
        # one by one: an error in a callee's cleanup would not reach its
        # caller, and cleanup code could not make trampolined calls.
        stack = self._stack
        if self._running or (len(stack) == 1 and not _suspended(stack[0])):
            return
        try:
            self.close()
        finally:
            if len(stack) > 1:
                # The outermost coroutine ignored GeneratorExit inside a call.
                # CPython reports that, then clears the frame, which drops the
                # callee chain, which closes it. A dying list drops its items
                # last to first: parked after the outermost coroutine, the
                # chain goes first, and after the report, as in CPython.
                doomed = _detach(stack[1:], self._subcall, Trampoline)
                del stack[1:]
                stack.append(doomed)
                del doomed
                self._send = _resume_method(stack[0])

    # -- the machinery --------------------------------------------------------
    def _push(self, sub: Any) -> None:
        self._stack.append(sub)
        self._send = _resume_method(sub)

    def _pop(self) -> None:
        stack = self._stack
        del stack[-1]
        # Replacing the cached method drops the last reference to the popped
        # coroutine here and now -- before its caller resumes, as CPython
        # does when it pops a finished or abandoned sub-iterator.
        self._send = _resume_method(stack[-1])

    def _drive(self, base: int, value: Any, exc: Any) -> Any:
        """Resume the innermost frame with ``value`` (or ``exc``) and run.

        Runs until a frame above ``base`` yields a value that is not a call
        (returned), or frame ``base`` itself returns or raises (raised here,
        as ``StopIteration`` or the exception). Frames above ``base`` that
        finish are popped and their result delivered to their caller; frame
        ``base`` is left for the caller of this method to deal with.
        """
        stack = self._stack
        subcall = self._subcall
        throw: Any = None
        refused: Any = None  # raised from the try below for the driver, not a frame's error
        while True:
            try:
                if exc is _SEND:
                    yielded = self._send(value)
                else:
                    throw = getattr(stack[-1], "throw", None)
                    if throw is None:
                        if len(stack) - 1 > base:
                            # _gen_throw: no throw() means "raise it in the
                            # caller"; the callee is dropped, not closed --
                            # unless a generator caller refuses the arguments:
                            # then it fails without running, callee in place.
                            tp = type(stack[-2])
                            if tp is GeneratorType or tp is CoroutineType:
                                refused = _refusal(exc)
                            if refused is None:
                                self._pop()
                                if _THROWN_STOP_IS_A_RETURN and (
                                        tp is GeneratorType or tp is CoroutineType):
                                    stop = _thrown_stop(exc)
                                    if stop is not None:
                                        # 3.12+: the caller's ``yield from``
                                        # takes a StopIteration raised at it
                                        # as the callee's return (CLEANUP_THROW).
                                        value = stop.value
                                        exc = _SEND
                                continue
                            if len(stack) - 2 <= base:
                                raise refused
                            self._abandon(len(stack) - 2)  # its caller gets it
                            exc = refused
                            continue
                        _reraise(_throw_args(*exc) if type(exc) is _ThrowArgs else exc)
                    yielded = throw(*exc) if type(exc) is _ThrowArgs else throw(exc)
                    throw = None
            except StopIteration as stop:
                if len(stack) - 1 <= base:
                    raise
                # The return value is all that is wanted. The exception may
                # sit in a reference cycle (a class coroutine that raised it
                # from a local variable), and its traceback would then keep
                # this frame, and the whole chain, alive until the garbage
                # collector runs. CPython discards it at once, so do we.
                stop.__traceback__ = None
                value = stop.value
                exc = _SEND
            except BaseException as error:
                if len(stack) - 1 <= base or error is refused:
                    raise
                _strip(error)
                exc = error
            else:
                if not subcall(yielded):
                    return yielded
                # A call: push it (this is _push, inlined for deep descents).
                stack.append(yielded)
                tp = type(yielded)
                if tp is GeneratorType or tp is CoroutineType:
                    self._send = yielded.send
                else:
                    self._send = _resumer(yielded)
                yielded = None  # the stack owns it now; see _pop
                value = None
                exc = _SEND
                continue
            # The innermost frame returned or raised: pop it and resume its
            # caller with the outcome -- outside the except block, so that the
            # caller runs with no exception of ours being "handled". (This is
            # _pop, inlined for deep ascents.)
            throw = None
            del stack[-1]
            top = stack[-1]
            tp = type(top)
            if tp is GeneratorType or tp is CoroutineType:
                self._send = top.send
            else:
                self._send = _resumer(top)
            del top

    def _close_frame(self, k: int, pending: BaseException | None, leaf: bool) -> Any:
        """Close frame ``k``, the innermost, as ``gen_close()`` would.

        ``pending`` is what closing its callee raised (``None``: nothing, or
        no callee; ``leaf``: it never had one). Returns what the frame
        returned if it exited (``None`` for ``GeneratorExit``), ``_YIELDED``
        if it yielded instead; raises what it raised.
        """
        frame = self._stack[k]
        tp = type(frame)
        native = tp is GeneratorType or tp is CoroutineType
        if not native and (leaf or getattr(frame, "throw", None) is None):
            # gen_close_iter() on an object: call close() if it has one. It
            # cannot receive a pending error; that goes on to the caller.
            close = getattr(frame, "close", None)
            del frame
            if close is not None:
                close()
            if pending is not None:
                _reraise(pending)
            return None
        if tp is CoroutineType and frame.cr_frame is None:
            return None  # an exhausted coroutine closes silently
        del frame
        # Raise GeneratorExit (a fresh one per frame, as gen_close does) or
        # the pending error at the frame's yield -- through _drive, so that
        # cleanup code may make trampolined calls too.
        try:
            self._drive(k, None, GeneratorExit if pending is None else pending)
        except StopIteration as exited:
            _strip(exited)  # see _drive
            return exited.value
        except GeneratorExit as exited:
            _strip(exited)
            return None
        return _YIELDED

    def _unwind(self, base: int) -> BaseException | None:
        """Close the frames above ``base``, innermost first; pop them.

        Returns what must be raised in frame ``base``: ``None`` for a plain
        ``GeneratorExit``, or the error that closing its callee raised.
        """
        stack = self._stack
        pending: BaseException | None = None
        leaf = True
        while len(stack) - 1 > base:
            k = len(stack) - 1
            try:
                ignored = self._close_frame(k, pending, leaf) is _YIELDED
            except BaseException as error:
                _strip(error)
                pending = error
            else:
                pending = None
                if ignored:
                    pending = RuntimeError(_ignored_message(stack[k]))
                    # CPython creates it while the driver's exception (if
                    # any) is being handled, and chains it implicitly.
                    pending.__context__ = sys.exception()
            leaf = False
            self._abandon(k)
        return pending

    def _abandon(self, k: int) -> None:
        """Drop frames ``k`` and up (frame ``k``'s own pending calls, if any).

        Normally only frame ``k`` is left, finished. If it ignored
        ``GeneratorExit``, it is suspended, possibly in calls made by its
        cleanup code; CPython drops it with its yield-from chain, and its
        finalizer closes the chain. :func:`_detach` does the same.
        """
        stack = self._stack
        doomed = _detach(stack[k:], self._subcall, Trampoline)
        del stack[k:]
        self._send = _resume_method(stack[-1])
        del doomed  # finalized here, before the caller resumes


def trampoline(coro: Any) -> Trampoline:
    """Run ``coro`` with trampolined calls: ``yieldio.trampoline(gen)``.

    The same as ``Trampoline(coro)``::

        >>> def fib(n):
        ...     if n < 2:
        ...         return n
        ...     return (yield fib(n - 1)) + (yield fib(n - 2))
        >>> t = trampoline(fib(15))
        >>> try:
        ...     next(t)
        ... except StopIteration as stop:
        ...     print(stop.value)
        610
    """
    return Trampoline(coro)
