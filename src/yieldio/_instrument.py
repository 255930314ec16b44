"""Instruments: objects whose methods the kernel calls at points of interest.

Pass them to ``yieldio.run(main, instruments=[...])``. Define only the hooks
you need; the kernel collects the bound methods once, so hooks you do not
define cost nothing, and a run without instruments pays only a local-flag
test per batch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["Instrument", "InstrumentHooks", "HOOK_NAMES"]

#: Every hook an instrument may define, in the order a run meets them.
HOOK_NAMES = (
    "before_run",
    "after_run",
    "task_spawned",
    "task_scheduled",
    "before_task_step",
    "after_task_step",
    "task_exited",
    "before_io_wait",
    "after_io_wait",
)


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


class InstrumentHooks:
    """Kernel methods that attach instruments and call their hooks (a mixin of Kernel).

    The kernel keeps one tuple of bound methods per hook name, rebuilt when
    an instrument comes or goes, so the hot loop tests a tuple's truth and
    never looks a hook up.
    """

    # Set by Kernel.__init__ (declared here for type checkers).
    instruments: list[Any]
    _hooks: dict[str, tuple[Callable[..., Any], ...]]
    spawn_hooked: bool
    reschedule: Callable[..., None]
    reschedule_error: Callable[..., None]
    _reschedule_instrumented: Callable[..., None]
    _reschedule_error_instrumented: Callable[..., None]

    def add_instrument(self, inst: Any) -> None:
        """Attach an instrument; its hook methods are called from now on."""
        self.instruments.append(inst)
        self._rebuild_hooks()

    def remove_instrument(self, inst: Any) -> None:
        """Detach ``inst`` (this very object); ``ValueError`` if it is not attached."""
        # By identity, not list.remove's ==: two instruments that compare equal
        # (dataclasses with the same fields) are still two instruments, and an
        # __eq__ that raises must not stop a broken one being removed.
        for i, attached in enumerate(self.instruments):
            if attached is inst:
                del self.instruments[i]
                self._rebuild_hooks()
                return
        raise ValueError(f"{inst!r} is not an instrument of this run")

    def _rebuild_hooks(self) -> None:
        defined = [(_defined_hooks(i), i) for i in self.instruments]
        for name in HOOK_NAMES:
            self._hooks[name] = tuple(getattr(i, name) for names, i in defined if name in names)
        # One flag for TaskGroup.spawn's fast path: does a new task concern anyone?
        self.spawn_hooked = bool(self._hooks["task_spawned"] or self._hooks["task_scheduled"])
        if self._hooks["task_scheduled"]:
            self.reschedule = self._reschedule_instrumented  # type: ignore[method-assign]
            self.reschedule_error = self._reschedule_error_instrumented  # type: ignore[method-assign]
        else:
            self.__dict__.pop("reschedule", None)
            self.__dict__.pop("reschedule_error", None)

    def _instrument_failed(self, hook: Any, exc: Exception, name: str = "?") -> None:
        """A broken instrument is reported and removed, never fatal to the program."""
        inst = getattr(hook, "__self__", hook)
        try:
            shown = repr(inst)
        except Exception:  # a broken __repr__ must not make this fatal after all
            shown = f"<{type(inst).__qualname__} object at {id(inst):#x}>"
        # ``name`` is the hook (the method's own __name__ may differ).
        print(f"yieldio: instrument {shown} raised {exc!r} in {name}; removing it",
              file=sys.stderr)
        if any(attached is inst for attached in self.instruments):
            self.remove_instrument(inst)

    def _call_hooks(self, name: str, *args: Any) -> None:
        for hook in self._hooks[name]:
            try:  # free in CPython 3.11 when nothing raises
                hook(*args)
            except Exception as exc:
                self._instrument_failed(hook, exc, name)
