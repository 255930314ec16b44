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
  ``GeneratorExit`` (:func:`_ignored_message`);
* *what the traceback shows* -- the frames of the driver and of this module
  are dropped, so that it reads as native ``yield from`` would
  (:func:`_stripper`).

None of this depends on the shape of the stack, which is why it lives apart
from the driver. The driver imports each name into its own namespace
(``from ._pep380 import ...``), so its loops reach them with one global
lookup, as when they lived in the same module.
"""

from __future__ import annotations

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
    if getattr(type(coro), "__next__", None) is None:

        def resume(value: Any) -> Any:
            return coro.send(value)

    else:
        next_ = coro.__next__

        def resume(value: Any) -> Any:
            if value is None:
                return next_()
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


def _throw_args(typ: Any, value: Any, tb: Any) -> BaseException:
    """The exception ``throw(typ, value, tb)`` raises, made as CPython makes it.

    The checks and the normalization of ``_gen_throw`` (genobject.c), done
    before anything runs: a bad combination is refused here, and the frames
    are left as they were.
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
