"""Timeouts: cancel scopes with a deadline, and the deadline a task can see.

:func:`move_on_after` / :func:`move_on_at` give up silently (check
``scope.cancelled_caught``); :func:`fail_after` / :func:`fail_at` raise the
built-in ``TimeoutError``. All four are plain :class:`CancelScope` objects
(``fail_*`` a subclass that raises on exit), so a timeout costs one object
and, while armed, one timer-heap entry. The ``*_after`` forms count from the
moment the ``with`` is entered, as trio does since 0.27.

::

    with yieldio.move_on_after(1.5) as scope:
        await slow()
    if scope.cancelled_caught:
        print("gave up")
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from . import _state
from ._cancel import _INF, CancelScope

__all__ = ["move_on_after", "move_on_at", "fail_after", "fail_at", "current_effective_deadline"]


def _scope_after(seconds: float, shield: bool, cls: type[CancelScope] = CancelScope) -> CancelScope:
    # (On the path of every request a server times out: max() is a comparison.)
    try:
        if seconds < 0.0:
            seconds = 0.0
    except TypeError:
        raise TypeError(f"timeout must be a number of seconds, not {seconds!r}") from None
    if seconds != seconds:
        raise ValueError("timeout must not be NaN")
    scope = cls(shield=shield)
    if seconds != _INF:
        scope._relative = seconds  # checked above: not _check_relative's call again
    return scope


def current_effective_deadline() -> float:
    """The earliest time a deadline can cancel the calling task: ``inf`` if none.

    ::

        with yieldio.move_on_after(5):
            left = yieldio.current_effective_deadline() - yieldio.current_time()
            await yieldio.to_thread(blocking_call, timeout=left)

    It walks out from the task's innermost cancel scope and stops at a
    shield, as trio's function of the same name does: that is the deadline
    code inside can actually be cancelled by. ``-inf`` if the task is
    already cancelled (the next checkpoint raises). For handing a timeout
    to something that cannot be cancelled (a blocking call in a thread, a
    protocol message that carries one).
    """
    try:
        task = _state.local.kernel.current
    except AttributeError:
        _state.outside_run()
    return effective_deadline_of(task)


def effective_deadline_of(task: Any) -> float:
    """:func:`current_effective_deadline` for any task (the task tree shows it)."""
    if task._cancel_pending:
        return -math.inf
    deadline = math.inf
    scope: CancelScope | None = task._scope
    while scope is not None:
        if scope._deadline < deadline:
            deadline = scope._deadline
        if scope._shield:
            break
        scope = scope._parent
    return deadline


def move_on_at(deadline: float, *, shield: bool = False) -> CancelScope:
    """A scope cancelled at ``deadline``; leaving it after a timeout is silent.

    ::

        with yieldio.move_on_at(yieldio.current_time() + 5) as scope:
            await long_job()
    """
    return CancelScope(deadline=deadline, shield=shield)


def move_on_after(seconds: float, *, shield: bool = False) -> CancelScope:
    """A scope cancelled ``seconds`` after it is entered; check ``scope.cancelled_caught``.

    The time counts from the ``with``, not from the call (as in trio since
    0.27): a scope made ahead and entered later gets its full ``seconds``.
    A negative ``seconds`` counts as 0.

    ::

        with yieldio.move_on_after(1.5) as scope:
            await slow()
        if scope.cancelled_caught:
            print("gave up")
    """
    return _scope_after(seconds, shield)


class _FailScope(CancelScope):
    """The scope behind :func:`fail_after`: raises ``TimeoutError`` when its deadline ends it.

    A subclass rather than a wrapper around a scope: no second object and no
    forwarding calls on enter and exit (fail_after guards many requests).
    """

    # What the user asked for, for the error message: the seconds given to
    # fail_after (the absolute deadline alone reads as a clock value nobody
    # chose), or None for fail_at.
    # (Unset for fail_at: read with getattr, on the timeout path only, so
    # that making a scope costs no extra __init__.)
    __slots__ = ("_seconds",)
    _seconds: float

    def __exit__(self, etype: Any, exc: BaseException | None, tb: Any) -> bool:
        caught = CancelScope.__exit__(self, etype, exc, tb)
        if caught and self._by_deadline:
            seconds = getattr(self, "_seconds", None)
            if seconds is not None:
                what = f"fail_after({seconds:g}) timed out"
            else:
                what = f"fail_at({self._deadline:.3f}) timed out: its deadline passed"
            raise TimeoutError(what) from exc
        return caught

    @property
    def scope(self) -> CancelScope:
        """The scope itself (kept from when fail_after returned a wrapper)."""
        return self

    def __iter__(self) -> Iterator[Any]:  # pragma: no cover - guard against misuse
        raise TypeError("use 'with yieldio.fail_after(...)', not 'await'/'yield from'")


def fail_at(deadline: float, *, shield: bool = False) -> _FailScope:
    """Like :func:`move_on_at` but raise the built-in ``TimeoutError`` on timeout.

    ::

        with yieldio.fail_at(deadline):
            await handshake()
    """
    return _FailScope(deadline=deadline, shield=shield)


def fail_after(seconds: float, *, shield: bool = False) -> _FailScope:
    """Like :func:`move_on_after` (``seconds`` count from entering) but raise
    ``TimeoutError`` when time runs out.

    ::

        try:
            with yieldio.fail_after(2):
                await yieldio.sleep(10)
        except TimeoutError:
            print("too slow")
    """
    scope: _FailScope = _scope_after(seconds, shield, _FailScope)  # type: ignore[assignment]
    # The value as given, not clamped: a negative one times out at once (as
    # 0 does), but "fail_after(0) timed out" named a call nobody wrote.
    scope._seconds = seconds
    return scope
