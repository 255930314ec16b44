"""A virtual clock: time that moves only when the program says so (or when idle).

With ``autojump=True``, whenever every task is blocked and no real I/O or
thread work is pending, the kernel jumps the clock straight to the next
timer, so a program that sleeps an hour finishes in milliseconds and still
sees the hour pass.
"""

from __future__ import annotations

import math

__all__ = ["VirtualClock"]


class VirtualClock:
    """A clock for :func:`yieldio.run` that only moves when told to.

    ::

        clock = yieldio.testing.VirtualClock(autojump=True)

        async def main():
            await yieldio.sleep(3600)
            return yieldio.current_time()

        assert yieldio.run(main, clock=clock) == 3600.0   # instantly

    Without ``autojump``, call :meth:`jump` from a task to move time.
    """

    def __init__(self, start: float = 0.0, *, autojump: bool = False) -> None:
        self._start = self._now = _finite("start", start)
        if not isinstance(autojump, bool):
            # Only its truth is read, so autojump=0.5 (trio's MockClock takes a
            # threshold in seconds) or "no" would silently mean True.
            raise TypeError(f"VirtualClock(autojump=...) takes True or False (it jumps as "
                            f"soon as every task is blocked; there is no threshold), "
                            f"not {autojump!r}")
        self.autojump = autojump

    def __repr__(self) -> str:
        return f"<VirtualClock now={self._now:.6f} autojump={self.autojump}>"

    def current_time(self) -> float:
        """The virtual time now."""
        return self._now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        """How long the kernel may block for ``deadline``: 0 if due, else for ever.

        (Real time does not move this clock; the kernel calls this, not you.)
        """
        # Real time does not move virtual time: block until I/O or a thread
        # wakes the loop (or, with autojump, never block on timers at all).
        return 0.0 if deadline <= self._now else math.inf

    def jump(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (timers due by then fire)."""
        seconds = _finite("seconds", seconds)
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        self._now += seconds

    def jump_to(self, deadline: float) -> None:
        """Move time forward to ``deadline`` (no-op if it already passed)."""
        if deadline != deadline:
            # NaN compares false with everything: it would pass for "already
            # passed" and hide the caller's bug.
            raise ValueError("cannot jump to NaN")
        if deadline == math.inf:
            # As jump(inf): now would be inf for the rest of the run, every
            # sleep's deadline inf too, and no timer could ever fire again.
            raise ValueError("cannot jump to infinity: time would stop for the rest of the run")
        if deadline > self._now:
            self._now = deadline

    def _rewind(self) -> None:
        """Back to the start time (the pytest plugin does this before each explored seed,
        so that every seed replays exactly as it would in a run of its own)."""
        self._now = self._start


def _finite(what: str, value: float) -> float:
    """``value`` as a float; NaN or infinity would corrupt the clock for the rest
    of the run (``now + nan`` is NaN: every timer comparison turns false)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number of seconds, not {value!r}")
    return value
