"""Unix domain sockets: ``open_unix_stream`` and ``serve_unix``.

Both go through :func:`current_network`, like their TCP twins; the server is
the same :class:`Server`.
"""

from __future__ import annotations

import os
from collections.abc import Coroutine
from typing import Any, overload

from .._stream import Stream
from .._taskgroup import TaskGroup, TaskStatus
from ._network import Listener, current_network
from ._tcp import Handler, Server

__all__ = ["open_unix_stream", "serve_unix"]


async def open_unix_stream(path: str | bytes | os.PathLike[str]) -> Stream:
    """Connect to the Unix socket at ``path`` and return a :class:`Stream`.

    ::

        stream = await yieldio.open_unix_stream("/run/app.sock")
        await stream.write(b"status\\n")

    Raises ``FileNotFoundError`` if there is no such socket, and
    ``ConnectionRefusedError`` if nobody listens on it.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str, bytes or os.PathLike, not {type(path).__name__}")
    return await current_network().connect_unix(os.fspath(path))  # type: ignore[no-any-return]


@overload
def serve_unix(handler: Handler, path: str | bytes | os.PathLike[str], *, backlog: int = 128,
               handler_nursery: TaskGroup | None = None, task_status: None = None) -> Server: ...
@overload
def serve_unix(handler: Handler, path: str | bytes | os.PathLike[str], *, backlog: int = 128,
               handler_nursery: TaskGroup | None = None,
               task_status: TaskStatus) -> Coroutine[Any, Any, None]: ...
def serve_unix(handler: Handler, path: str | bytes | os.PathLike[str], *, backlog: int = 128,
               handler_nursery: TaskGroup | None = None,
               task_status: TaskStatus | None = None) -> Server | Coroutine[Any, Any, None]:
    """Serve on the Unix socket ``path``: ``async with serve_unix(...) as server:``.

    ::

        async with yieldio.serve_unix(handler, "/tmp/app.sock") as server:
            await server.serve_forever()

    A leftover socket file that nobody listens on (a crashed server's) is
    replaced; a live server's raises ``OSError(EADDRINUSE)``; a path that is
    not a socket is never removed (``FileExistsError``). The socket file is
    removed when the server stops. Everything else is as in
    :func:`serve_tcp` (``server.addresses == [path]``), including ``await
    serve_unix(...)`` and ``tg.start(serve_unix, handler, path)``.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str, bytes or os.PathLike, not {type(path).__name__}")
    if backlog < 1:
        raise ValueError("backlog must be >= 1")

    fspath = os.fspath(path)

    async def open_listeners() -> list[Listener]:
        listener: Any = await current_network().listen_unix(fspath, backlog=backlog)
        return [listener]

    server = Server(handler, open_listeners, handler_nursery=handler_nursery)
    return server if task_status is None else server.serve(task_status=task_status)
