"""PEP 380 plumbing: how a ``yield from`` caller talks to its callee.

A :class:`~yieldio._trampoline.Trampoline` runs the caller and the callee of
a trampolined call as separate frames on an explicit stack, so it must do by
hand, at every step, what CPython does inside ``yield from``: the rules of
PEP 380 as ``genobject.c`` implements them. This module holds those rules as
small stateless functions; ``_trampoline.py`` holds the driver that applies
them to its stack. The rules, in the order a call meets them:

* *what is a callee* -- :func:`is_subcoroutine`: generators, coroutines, and
  hand-written objects with a callable ``send``;
* *how to resume it* -- :func:`_resume_method` / :func:`_resumer`:
  ``PyIter_Send``, which picks ``__next__`` or ``send``;
* *how to throw into it* -- :func:`_throw_args` makes the exception a
  three-argument ``throw()`` raises (``_gen_throw``), and :func:`_reraise`
  raises a delegated exception in the caller without relinking its
  ``__context__``;
* *how to close it* -- :func:`_is_generator_exit`, :func:`_suspended`, and
  the wording of the ``RuntimeError`` for a callee that ignored
  ``GeneratorExit`` (:func:`_ignored_message`), and how an abandoned callee
  chain is finalized (:func:`_detach`);
* *what the traceback shows* -- the frames of the driver and of this module
  are dropped, so that it reads as native ``yield from`` would
  (:func:`_stripper`);
* *what a debugger sees* -- :class:`_ChainView`, the trampoline's read-only
  side (``stack``, ``depth``, ``repr``), the base of the driver's class.

None of this drives the stack (the view only reads it), which is why it
lives apart from the driver. The driver imports each name into its own namespace
(``from ._pep380 import ...``), so its loops reach them with one global
lookup, as when they lived in the same module.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import CoroutineType, GeneratorType, TracebackType
from typing import Any, NoReturn

__all__ = ["is_subcoroutine"]

# Frames of this module sit at the head of a traceback too, under the
# driver's (_reraise raises, a resumer calls send(), _throw_args calls the
# exception class): the driver's _strip drops them with its own.
_GLOBALS = globals()


def is_subcoroutine(value: object) -> bool:
    """Tell whether a yielded value is a trampolined call.

    True for generator objects, coroutine objects, and any other object
    (not a class) that has a callable ``send`` attribute -- a hand-written
    coroutine. Everything else is an ordinary value, handed to the driver::

        >>> def sub():
        ...     yield
        >>> is_subcoroutine(sub()), is_subcoroutine(42), is_subcoroutine(sub)
        (True, False, False)

    Note that some I/O objects (sockets) have a ``send`` method too; a driver
    that lets them be yielded should pass its own ``subcall`` predicate to
    :class:`~yieldio._trampoline.Trampoline`.
    """
    # Generators and coroutines are nearly all calls in practice: decide
    # those by an exact type test before any attribute lookup.
    tp = type(value)
    if tp is GeneratorType or tp is CoroutineType:
        return True
    # Then one attribute lookup settles every ordinary value. An object
    # whose attribute lookup fails with something else than AttributeError
    # is no coroutine either: it goes to the driver like any value (that
    # is what ``yield from`` would do with it), not raise out of here.
    try:
        send = getattr(value, "send", None)
    except Exception:
        return False
    if send is None:
        return False
    return callable(send) and not isinstance(value, type)


def _resumer(coro: Any) -> Callable[[Any], Any]:
    """The callable that resumes a non-native coroutine with a value.

    This is CPython's ``PyIter_Send``, which is what ``yield from`` uses:
    ``None`` goes to ``__next__`` if the type has one, anything else to
    ``send``. ``send`` is looked up at each call, as CPython does.
    """
    tp = type(coro)
    if getattr(tp, "__next__", None) is None:

        def resume(value: Any) -> Any:
            return coro.send(value)

    else:

        def resume(value: Any) -> Any:
            if value is None:
                # The type's __next__, looked up now: that is the tp_iternext
                # slot CPython calls. A bound coro.__next__ taken once would
                # prefer an instance attribute, and miss a class that
                # replaces its __next__ between two steps.
                return tp.__next__(coro)
            return coro.send(value)

    return resume


def _resume_method(coro: Any) -> Callable[[Any], Any]:
    # Generators and coroutines: ``send(None)`` *is* ``__next__``, so the
    # bound ``send`` serves both and the hot path has no branch on ``None``.
    tp = type(coro)
    if tp is GeneratorType or tp is CoroutineType:
        return coro.send
    return _resumer(coro)


def _stripper(driver: dict[str, Any]) -> Callable[[BaseException], None]:
    """Make ``_strip`` for the driver module whose globals are ``driver``.

    Frames are recognised by their globals -- the driver's, then this
    module's -- which is at most two identity tests per traceback entry.
    """
    plumbing = _GLOBALS

    def _strip(exc: BaseException) -> None:
        """Drop the trampoline's frames from the head of ``exc.__traceback__``.

        The trampoline's frames only ever sit at the head: an exception enters
        them from a coroutine and leaves them towards the driver or a caller,
        which then adds its own frame in front. Stripping at each crossing
        leaves exactly the traceback that native ``yield from`` gives.
        """
        tb = exc.__traceback__
        while tb is not None and (
            (frame_globals := tb.tb_frame.f_globals) is driver or frame_globals is plumbing
        ):
            tb = tb.tb_next
        exc.__traceback__ = tb

    return _strip


def _reraise(exc: Any) -> NoReturn:
    """``raise exc`` for an exception caught earlier, keeping its ``__context__``.

    A ``raise`` statement links the exception being handled at that point as
    ``__context__``, overwriting what the exception got where it was first
    raised. CPython re-raises a delegated exception without that relinking,
    so undo it.
    """
    if not isinstance(exc, BaseException):
        raise exc  # an exception class, or garbage: raise reports it
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context


class _ThrowArgs(tuple):  # type: ignore[type-arg]
    """The arguments of a two- or three-argument ``throw()``, passed on as given.

    ``_gen_throw`` (genobject.c) hands ``(type, value, tb)`` down the chain
    unchanged: the innermost frame that has a ``throw`` gets them -- a
    generator checks and normalizes them there (a bad combination is a
    ``TypeError`` raised *by that frame*, which its caller receives), a
    hand-written coroutine's ``throw`` is called with the same number of
    arguments. The driver carries them in this type, which no exception is.
    """

    __slots__ = ()


def _throw_args(typ: Any, value: Any, tb: Any) -> BaseException:
    """The exception ``throw(typ, value, tb)`` raises, made as CPython makes it.

    The checks and the normalization of ``_gen_throw``'s ``throw_here``,
    for a frame that has no ``throw`` of its own to do them: the outermost
    of a trampoline, when it is a hand-written coroutine without one.
    """
    if tb is not None and not isinstance(tb, TracebackType):
        raise TypeError("throw() third argument must be a traceback object")
    if isinstance(typ, type) and issubclass(typ, BaseException):
        if isinstance(value, typ):
            exc = value
        elif value is None:
            exc = typ()
        elif isinstance(value, tuple):
            exc = typ(*value)
        else:
            exc = typ(value)
    elif isinstance(typ, BaseException):
        if value is not None:
            raise TypeError("instance exception may not have a separate value")
        exc = typ
    else:
        raise TypeError("exceptions must be classes or instances deriving from "
                        f"BaseException, not {type(typ).__name__}")
    if tb is not None:
        exc.__traceback__ = tb
    return exc


def _refusal(exc: Any) -> TypeError | None:
    """The ``TypeError`` with which a generator's ``throw`` refuses ``exc``, or None.

    ``exc`` is one argument or a :class:`_ThrowArgs`. These are the checks
    ``throw_here`` makes before it runs anything (an exception class whose
    constructor fails is not foreseen: constructing it twice would run user
    code twice).
    """
    typ, value, tb = (*exc, None, None)[:3] if type(exc) is _ThrowArgs else (exc, None, None)
    if tb is not None and not isinstance(tb, TracebackType):
        return TypeError("throw() third argument must be a traceback object")
    if isinstance(typ, type) and issubclass(typ, BaseException):
        return None
    if isinstance(typ, BaseException):
        if value is not None:
            return TypeError("instance exception may not have a separate value")
        return None
    return TypeError("exceptions must be classes or instances deriving from "
                     f"BaseException, not {type(typ).__name__}")


def _is_generator_exit(exc: object) -> bool:
    # PyErr_GivenExceptionMatches(typ, PyExc_GeneratorExit): class or instance.
    if isinstance(exc, type):
        return issubclass(exc, GeneratorExit)
    return isinstance(exc, GeneratorExit)


def _suspended(coro: Any) -> bool:
    # Only generators and coroutines tell their state; others are opaque.
    tp = type(coro)
    if tp is GeneratorType:
        return coro.gi_suspended
    if tp is CoroutineType:
        return coro.cr_suspended
    return False


def _ignored_message(coro: Any) -> str:
    if type(coro) is CoroutineType:
        return "coroutine ignored GeneratorExit"
    return "generator ignored GeneratorExit"


def _detach(frames: list[Any], subcall: Callable[[Any], bool], chain_type: Any) -> Any:
    """What to drop so that an abandoned chain is finalized as CPython would.

    CPython drops a suspended sub-iterator (and its own yield-from chain) by
    reference counting, and the finalizer closes the chain. A trampoline of
    the abandoned frames does the same when dropped (see ``__del__``), and
    lets cleanup code make trampolined calls. A finished frame, or one that
    is not a generator, needs no help. ``chain_type`` is the trampoline
    class (this module cannot import it).
    """
    if len(frames) == 1 and not _suspended(frames[0]):
        return frames[0]
    chain = chain_type.__new__(chain_type)
    chain._running = False
    chain._subcall = subcall
    chain._stack = frames
    chain._send = _resume_method(frames[-1])
    return chain


class _ChainView:
    """What a debugger reads of a trampoline: its chain, read-only.

    The base of :class:`~yieldio._trampoline.Trampoline`, kept here so that
    the driver module holds the machinery only. Its examples build
    trampolines: it has no use on its own.
    """

    __slots__ = ()
    _stack: list[Any]
    _running: bool

    @property
    def stack(self) -> list[Any]:
        """The coroutines of the chain, outermost first (a copy).

        >>> from yieldio._trampoline import Trampoline
        >>> def inner():
        ...     yield "waiting"
        >>> def outer():
        ...     yield inner()
        >>> t = Trampoline(outer())
        >>> next(t)
        'waiting'
        >>> [c.__name__ for c in t.stack]
        ['outer', 'inner']
        """
        return list(self._stack)

    @property
    def depth(self) -> int:
        """How many coroutines the chain holds; 1 until the first call.

        >>> from yieldio._trampoline import Trampoline
        >>> def gen():
        ...     yield
        >>> Trampoline(gen()).depth
        1
        """
        return len(self._stack)

    def __repr__(self) -> str:
        """Show the depth and the innermost coroutine::

        >>> from yieldio._trampoline import Trampoline
        >>> def gen():
        ...     yield
        >>> Trampoline(gen())  # doctest: +ELLIPSIS
        <Trampoline depth=1 innermost=gen at 0x...>
        """
        top = self._stack[-1]
        name = getattr(top, "__qualname__", None) or type(top).__qualname__
        running = " running" if self._running else ""
        return f"<Trampoline depth={len(self._stack)} innermost={name}{running} at {id(self):#x}>"


# -- where the Pythons differ (checked once, at import) ---------------------------------
#: From Python 3.12, a StopIteration thrown into a ``yield from`` whose
#: callee has no ``throw`` ends the ``yield from`` with its value (the
#: CLEANUP_THROW instruction); before, it was raised in the caller (and,
#: from a generator, became RuntimeError).
_THROWN_STOP_IS_A_RETURN = sys.version_info >= (3, 12)


def _thrown_stop(exc: Any) -> StopIteration | None:
    """The StopIteration that throwing ``exc`` raises, if it is one (else None)."""
    typ = exc[0] if type(exc) is _ThrowArgs else exc
    if isinstance(typ, StopIteration) or (isinstance(typ, type)
                                           and issubclass(typ, StopIteration)):
        made = _throw_args(*(*exc, None, None)[:3]) if type(exc) is _ThrowArgs else (
            typ if isinstance(typ, StopIteration) else typ())
        return made if isinstance(made, StopIteration) else None
    return None


#: Python 3.13's generator.close() returns what the generator returned
#: while closing (gh-104770); before, always None.
_CLOSE_RETURNS_VALUE = sys.version_info >= (3, 13)
