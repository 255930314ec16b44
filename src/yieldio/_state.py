"""Where the running kernel lives: one per thread, in a ``threading.local``.

A ``threading.local`` rather than a context variable, because ``to_thread``
copies the caller's context into worker threads -- a context variable would
make a worker believe it runs inside the kernel.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from ._kernel import Kernel
    from ._task import Task

local = threading.local()

#: ``python -m yieldio run``'s debugging instruments, waiting for the script's
#: first ``yieldio.run()``: ``(thread ident, {"debug": [...], "trace": [...],
#: "monitor": [...]})``, or None. See ``_run._take_cli_handoff``.
cli_handoff: tuple[int, dict[str, list[Any]]] | None = None


def outside_run() -> NoReturn:
    """Raise the error every yieldio call gives outside :func:`yieldio.run`."""
    raise RuntimeError(
        "this must be called from a task running under yieldio.run(); "
        "no yieldio kernel is running in this thread"
    )


def current_kernel() -> Kernel:
    """The kernel running in this thread, or ``RuntimeError``."""
    try:
        return local.kernel  # type: ignore[no-any-return]
    except AttributeError:
        outside_run()


def foreign_thread(k: Kernel) -> bool:
    """True if ``k`` is a live kernel and this thread is not the one running it.

    What refuses the changes that only the kernel's thread may make (a
    cancel, a spawn): from another thread they raced the loop, and a loop
    parked in a long poll learned of them only when something else woke it.
    """
    return not k.closed and getattr(local, "kernel", None) is not k


def current_task() -> Task:
    """Return the :class:`Task` that is running now.

    >>> async def main():
    ...     print(yieldio.current_task().name)
    """
    try:
        task = local.kernel.current
    except AttributeError:
        outside_run()
    if task is None:
        raise RuntimeError("no task is running: this is a kernel callback "
                           "(for example a from_thread() call of a plain function)")
    return task  # type: ignore[no-any-return]
