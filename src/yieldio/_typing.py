"""Names for type checkers: what yieldio's awaitables are, at no cost at run time.

Most of yieldio's waits are generator coroutines (made by :func:`types.coroutine`):
one object that is both awaitable (``await q.get()``) and a generator
(``yield from q.get()`` in a generator coroutine). ``typing`` has no public
name for that, and typeshed types ``types.coroutine`` as returning a plain
``Awaitable``, which type checkers then refuse in ``yield from``. So:

* :data:`Waitable` ``[T]`` is that type: awaiting it or ``yield from`` it gives ``T``;
* :func:`awaitable` is :func:`types.coroutine` itself at run time (the very
  same function: nothing changes), typed to return a :data:`Waitable`::

      @awaitable
      def get(self) -> Generator[Any, Any, T]:
          ...

      x = await q.get()            # x: T
      x = yield from q.get()       # x: T, in a generator coroutine
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")

if TYPE_CHECKING:
    from typing import AwaitableGenerator  # typeshed's name for "Awaitable and Generator"

    Waitable = AwaitableGenerator[Any, Any, _T, Generator[Any, Any, _T]]

    class SendThrow(Protocol):
        """A hand-written coroutine: any object with ``send`` (and usually ``throw``)."""

        def send(self, value: Any, /) -> Any: ...

    def awaitable(fn: Callable[_P, Generator[Any, Any, _R]]) -> Callable[_P, Waitable[_R]]:
        ...
else:
    from ._unawaited import ENABLED as _TRACK_UNAWAITED

    if _TRACK_UNAWAITED:
        # YIELDIO_DEBUG=1 at import: each call is recorded, so that debug
        # mode can report a wait that was never awaited (see _unawaited).
        from ._unawaited import tracked as awaitable
    else:
        awaitable = types.coroutine  # the same object: no run-time cost at all
    Waitable = Awaitable  # (annotations are never evaluated: a stand-in for importers)
    SendThrow = object  # (likewise)

__all__ = ["SendThrow", "Waitable", "awaitable"]
