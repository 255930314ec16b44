"""Tools for testing concurrent code deterministically."""

from ._clock import VirtualClock

__all__ = ["VirtualClock"]
