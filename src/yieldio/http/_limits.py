"""Limits: the resource bounds of an HTTP server (and of the client's connection pool).

Every limit has a safe default, so a server exposed to the internet as-is
cannot be exhausted by one client::

    limits = yieldio.http.Limits(max_body_size=50 << 20, header_timeout=5)
    async with yieldio.http.serve(app, "0.0.0.0", 8080, limits=limits) as server:
        ...

What happens when each is exceeded (server side):

==========================  ===================================================
``max_header_size``         request line + headers larger: **431**, connection closed
``max_body_size``           request body larger: **413** (before reading it when
                            Content-Length says so), connection closed
``header_timeout``          request line + headers not complete in time (slowloris,
                            or a connection that never sends): connection closed
``keep_alive_timeout``      idle between two requests: connection closed
``body_timeout``            no progress reading the body for this long: closed
``write_timeout``           the client reads nothing for this long: closed (a
                            WebSocket: aborted, close code **1011**)
``max_connections``         more connections at once: **503** and closed at once
``max_websocket_message``   a bigger message (UTF-8 bytes): close code **1009**
``websocket_ping_interval`` a WebSocket ping every this many seconds, and
``websocket_ping_timeout``  no pong this long after: peer gone, close **1011**
==========================  ===================================================

The client (:class:`yieldio.http.Client`) uses ``max_connections`` (open
connections in total), ``max_connections_per_host``, ``keep_alive_timeout``
(how long an idle pooled connection is kept), ``max_header_size`` and
``max_websocket_message``; the ``timeout=`` argument bounds its waits.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """Resource limits (see the module docstring for what each one does).

    ::

        Limits()                                  # the defaults
        Limits(max_body_size=None)                # no body size limit
        Limits(header_timeout=2.0, max_connections=10_000)

    Sizes are in bytes, times in seconds; ``None`` disables a limit.
    """

    max_header_size: int = 16 * 1024
    max_body_size: int | None = 10 * 1024 * 1024
    header_timeout: float | None = 10.0
    keep_alive_timeout: float | None = 5.0
    body_timeout: float | None = 30.0
    write_timeout: float | None = 30.0
    max_connections: int | None = 1000
    max_connections_per_host: int | None = 10
    max_websocket_message: int = 1024 * 1024
    websocket_ping_interval: float | None = 20.0
    websocket_ping_timeout: float | None = 20.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                if f.name in ("max_header_size", "max_websocket_message"):
                    raise ValueError(f"Limits.{f.name} cannot be None")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Limits.{f.name} must be a number or None, not {value!r}")
            if not value > 0:  # (NaN too: a NaN deadline would never pass)
                raise ValueError(f"Limits.{f.name} must be > 0, not {value!r}")
