"""Re-export of :mod:`yieldio._stream` (the Stream base lives outside ``net``
so that pipes and in-memory streams do not import the socket and TLS layers)."""

from .._stream import DEFAULT_READ_SIZE, BrokenStreamError, Stream

__all__ = ["Stream", "BrokenStreamError", "DEFAULT_READ_SIZE"]
