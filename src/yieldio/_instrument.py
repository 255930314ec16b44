"""Instruments: objects whose methods the kernel calls at points of interest.

Pass them to ``yieldio.run(main, instruments=[...])``. Define only the hooks
you need; the kernel collects the bound methods once, so hooks you do not
define cost nothing, and a run without instruments pays only a local-flag
test per batch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Instrument"]


class Instrument:
    """Base class listing every hook (subclassing it is optional).

    ::

        class CountSteps(yieldio.Instrument):
            def __init__(self):
                self.steps = 0
            def before_task_step(self, task):
                self.steps += 1

        counter = CountSteps()
        yieldio.run(main, instruments=[counter])

    An instrument that raises is reported on stderr and removed.
    """

    def before_run(self) -> None:
        """The kernel is about to start the main task."""

    def after_run(self) -> None:
        """The loop has ended (before ``run`` returns or raises)."""

    def task_spawned(self, task: Any) -> None:
        """A task was created (it is ready to run)."""

    def task_scheduled(self, task: Any) -> None:
        """A task was made ready: just spawned, or its wait ended (as in trio)."""

    def before_task_step(self, task: Any) -> None:
        """The kernel is about to resume ``task``."""

    def after_task_step(self, task: Any) -> None:
        """``task`` yielded back to the kernel (or finished)."""

    def task_exited(self, task: Any) -> None:
        """``task`` finished; ``task.state`` says how."""

    def before_io_wait(self, timeout: float) -> None:
        """The kernel will poll for I/O for up to ``timeout`` s (-1: no limit)."""

    def after_io_wait(self, timeout: float) -> None:
        """The poll returned."""


# Hooks that the base class defines as no-ops must not be collected by the
# kernel, or every subclass would pay for all of them.
def _defined_hooks(inst: Any) -> set[str]:
    names = set()
    for name, value in vars(Instrument).items():
        if name.startswith("_") or not callable(value):
            continue
        impl = getattr(type(inst), name, None)
        if impl is not None and impl is not value:
            names.add(name)
        elif impl is None and callable(getattr(inst, name, None)):
            names.add(name)
    return names
