"""Files without blocking the loop: every operation runs on a worker thread.

::

    async def main():
        async with await yieldio.open_file("notes.txt", "w") as f:
            await f.write("hello\\n")
        async with await yieldio.open_file("notes.txt") as f:
            async for line in f:
                print(line, end="")

Regular files are always "ready" as far as epoll is concerned (it refuses
them), yet a read can block on a slow disk or a network filesystem. So, as
trio and anyio do, each method of :class:`AsyncFile` calls the method of the
same name of the underlying file object in :func:`yieldio.to_thread`. That
costs a thread hand-off (tens of microseconds) per call: read and write in
large chunks, not byte by byte.

Semantics worth knowing:

* **An operation that started always completes.** Each call is a checkpoint
  before it starts; once the thread runs it, the result is returned even if
  the task was cancelled meanwhile -- no data read is lost and the caller
  learns what was written. The cancellation is raised at the task's next
  checkpoint.
* **Closed files raise** :class:`ClosedResourceError` (the stdlib raises
  ``ValueError``), consistently with streams and sockets.
* ``aclose()`` is idempotent and always closes the file, even when cancelled.
* **Only what the wrapped file has.** Each method and optional attribute
  (``peek``, ``read1``, ``readall``, ``raw``, ``buffer``, ``getvalue``...)
  exists on the :class:`AsyncFile` exactly when the wrapped object has it, as
  with trio's wrapper: ``hasattr(af, "peek") == hasattr(af.wrapped, "peek")``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from types import MethodType
from typing import IO, Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

from ._cancel import CancelScope
from ._exceptions import Cancelled, ClosedResourceError
from .sync import Event
from .threads import to_thread

__all__ = ["open_file", "wrap_file", "AsyncFile", "Path"]


async def _complete_in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` on a worker; once it ran, return its result even if cancelled."""
    box: list[Any] = []

    def call() -> Any:
        result = fn(*args)
        box.append(result)
        return result

    try:
        return await cast(Awaitable[Any], to_thread(call))
    except Cancelled:
        if box:
            # The operation happened: report it. Cancellation is level-triggered,
            # so the task's next checkpoint raises Cancelled again.
            return box[0]
        raise


def _given(arg: Any) -> tuple[Any, ...]:
    """``(arg,)``, or ``()`` if the optional argument was left out (see ``AsyncFile._call``)."""
    return () if arg is None else (arg,)


_P = ParamSpec("_P")
_R = TypeVar("_R")


class _forwarded(Generic[_P, _R]):  # noqa: N801 (a decorator, named like one)
    """Make an :class:`AsyncFile` method exist only when the wrapped file has one of that name.

    Reading ``af.peek`` on a file without ``peek`` raises ``AttributeError``,
    so ``hasattr`` and ``getattr(af, name, default)`` -- which callers use to
    sniff a file's capabilities -- answer as they would for the wrapped file.
    Read on the class, it is the plain function (for ``help()`` and docs).
    """

    def __init__(self, fn: Callable[Concatenate[AsyncFile, _P], _R]) -> None:
        self._fn = fn
        self._name = fn.__name__
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None
                ) -> Callable[Concatenate[AsyncFile, _P], _R]: ...
    @overload
    def __get__(self, obj: AsyncFile, owner: type[Any] | None = None) -> Callable[_P, _R]: ...

    def __get__(self, obj: AsyncFile | None, owner: type[Any] | None = None) -> Any:
        if obj is None:
            return self._fn
        if not hasattr(obj._file, self._name):
            raise AttributeError(
                f"{type(obj._file).__name__!r} object has no attribute {self._name!r}")
        return MethodType(self._fn, obj)


#: Plain attributes passed through as they are: like the ``_forwarded``
#: methods, they exist only when the wrapped file has them.
_PLAIN_ATTRS = frozenset({"name", "mode", "buffer", "raw", "line_buffering", "closefd"})


def _has(obj: Any, name: str) -> bool:
    """``hasattr``, but an attribute that exists and raises (a detached file's ``name``) counts."""
    try:
        getattr(obj, name)
    except AttributeError:
        return False
    except Exception:
        return True
    return True


class AsyncFile:
    """An async wrapper around a file object (from :func:`open_file` or :func:`wrap_file`).

    ::

        async with await yieldio.open_file("data.bin", "rb") as f:
            header = await f.read(16)
            await f.seek(0)

    The wrapped file is :attr:`wrapped`; cheap attributes (``name``,
    ``mode``, ``closed``, ``encoding``...) are read directly, methods that
    may block are awaited. A method or optional attribute exists only when
    the wrapped file has it: an ``AsyncFile`` of a text file has no ``read1``
    and one of a buffered binary file has ``peek``, as the stdlib objects do.
    """

    def __init__(self, file: IO[Any]) -> None:
        self._file = file
        self._aclosed = False  # for file-likes without a ``closed`` attribute
        # Calls running on worker threads now, and what aclose() waits on for
        # them to end: closing under a write on another thread could free the
        # fd number for another file to take before the write reached it.
        self._in_flight = 0
        self._all_returned: Event | None = None
        self._closing: Event | None = None  # set once aclose() has closed the file

    def __repr__(self) -> str:
        return f"<yieldio AsyncFile {self._file!r}>"

    def __dir__(self) -> list[str]:
        # Leave out what the wrapped file lacks, as reading it would fail.
        return [n for n in super().__dir__() if n not in _OPTIONAL or _has(self._file, n)]

    # -- plain attributes ------------------------------------------------------
    @property
    def wrapped(self) -> IO[Any]:
        """The synchronous file object."""
        return self._file

    @property
    def name(self) -> Any:
        """The file's name (a path, or an fd number)."""
        return self._file.name

    @property
    def mode(self) -> str:
        """The mode the file was opened with."""
        return self._file.mode

    @property
    def closed(self) -> bool:
        """True once closed."""
        # _aclosed is also set by detach(): the detached stdlib object raises
        # ValueError even for ``closed``, and the wrapper is finished with.
        return self._aclosed or bool(getattr(self._file, "closed", False))

    @property
    def encoding(self) -> str | None:
        """The text encoding (None for binary files)."""
        return getattr(self._file, "encoding", None)

    @property
    def errors(self) -> str | None:
        """The text error handler (None for binary files)."""
        return getattr(self._file, "errors", None)

    @property
    def newlines(self) -> Any:
        """Newlines seen so far by a text file in universal-newlines mode."""
        return getattr(self._file, "newlines", None)

    @property
    def buffer(self) -> Any:
        """Text files: the binary buffer under the text layer (a ``BufferedReader``...).

        Absent (``AttributeError``) when the wrapped file has none::

            async with await yieldio.open_file("notes.txt") as f:
                assert f.buffer is f.wrapped.buffer
        """
        return cast(Any, self._file).buffer

    @property
    def raw(self) -> Any:
        """Buffered binary files: the unbuffered ``FileIO`` underneath.

        ::

            async with await yieldio.open_file("data.bin", "rb") as f:
                assert f.raw is f.wrapped.raw
        """
        return cast(Any, self._file).raw

    @property
    def line_buffering(self) -> bool:
        """Text files: True if every write ending with a newline flushes.

        ::

            async with await yieldio.open_file("log.txt", "a", buffering=1) as f:
                assert f.line_buffering
        """
        return cast(Any, self._file).line_buffering

    @property
    def closefd(self) -> bool:
        """Unbuffered (``FileIO``) files: False if closing leaves the descriptor open.

        ::

            async with await yieldio.open_file("data.bin", "rb", buffering=0) as f:
                assert f.closefd
        """
        return cast(Any, self._file).closefd

    @_forwarded
    def getvalue(self) -> Any:
        """``io.BytesIO``/``io.StringIO``: the whole contents (no I/O, so not awaited).

        ::

            f = wrap_file(io.StringIO())
            await f.write("hi")
            assert f.getvalue() == "hi"
        """
        self._check_open()
        return cast(Any, self._file).getvalue()

    @_forwarded
    def getbuffer(self) -> memoryview:
        """``io.BytesIO``: a writable view of the contents, without a copy (not awaited).

        While the view is alive the ``BytesIO`` cannot be resized::

            f = wrap_file(io.BytesIO(b"abc"))
            with f.getbuffer() as view:
                view[0] = ord("x")
        """
        self._check_open()
        return cast(memoryview, cast(Any, self._file).getbuffer())

    @_forwarded
    def fileno(self) -> int:
        """The OS file descriptor."""
        self._check_open()
        return self._file.fileno()

    @_forwarded
    def readable(self) -> bool:
        """True if the file was opened for reading."""
        self._check_open()
        return self._file.readable()

    @_forwarded
    def writable(self) -> bool:
        """True if the file was opened for writing."""
        self._check_open()
        return self._file.writable()

    @_forwarded
    def seekable(self) -> bool:
        """True if the file supports random access."""
        self._check_open()
        return self._file.seekable()

    @_forwarded
    def isatty(self) -> bool:
        """True if the file is a terminal."""
        self._check_open()
        return self._file.isatty()

    # -- the thread hand-off ---------------------------------------------------
    def _check_open(self) -> None:
        if self.closed:
            raise ClosedResourceError("the file is closed")

    async def _call(self, method: str, *args: Any) -> Any:
        """Call ``method(*args)`` of the wrapped file on a worker thread.

        Optional arguments the caller left out must stay left out, not be
        filled in with io's defaults: a wrapped file-like may give them other
        meanings. ``http.client.HTTPResponse.read()`` stops at Content-Length
        but ``read(-1)`` reads until the connection closes, and minimal
        file-likes take no arguments at all. So the methods below default
        optional arguments to ``None`` and pass them on only when given,
        which is also what trio and aiofiles do.
        """
        self._check_open()
        fn = getattr(self._file, method)
        self._in_flight += 1
        try:
            return await _complete_in_thread(fn, *args)
        except ValueError:
            # Closed by another task while this call waited for a thread.
            if self.closed:
                raise ClosedResourceError("the file is closed") from None
            raise
        finally:
            self._in_flight -= 1
            if not self._in_flight and self._all_returned is not None:
                self._all_returned.set()

    # -- reading ---------------------------------------------------------------
    @_forwarded
    async def read(self, size: int | None = None) -> Any:
        """Read up to ``size`` bytes/characters (all if omitted or negative); empty at EOF.

        ::

            data = await f.read()
        """
        return await self._call("read", *_given(size))

    @_forwarded
    async def read1(self, size: int | None = None) -> bytes:
        """Buffered binary files: read up to ``size`` bytes with at most one raw read.

        ::

            chunk = await f.read1(65536)  # whatever one read(2) gives
        """
        return cast(bytes, await self._call("read1", *_given(size)))

    @_forwarded
    async def readall(self) -> bytes:
        """Unbuffered (``FileIO``) files: read until EOF with as few raw reads as possible.

        ::

            async with await yieldio.open_file("data.bin", "rb", buffering=0) as f:
                data = await f.readall()
        """
        return cast(bytes, await self._call("readall"))

    @_forwarded
    async def peek(self, size: int | None = None) -> bytes:
        """Buffered readers: the buffered bytes ahead, without moving the position.

        At most one raw read happens (when the buffer is empty); the result may
        be longer or shorter than ``size``::

            magic = (await f.peek(4))[:4]
            assert await f.read(4) == magic
        """
        return cast(bytes, await self._call("peek", *_given(size)))

    @_forwarded
    async def readinto(self, buffer: Any) -> int:
        """Binary files: read into ``buffer``; return the number of bytes read.

        ::

            buf = bytearray(4096)
            n = await f.readinto(buf)
        """
        return cast(int, await self._call("readinto", buffer))

    @_forwarded
    async def readinto1(self, buffer: Any) -> int:
        """Buffered binary files: :meth:`readinto` with at most one raw read.

        ::

            buf = bytearray(4096)
            n = await f.readinto1(buf)
        """
        return cast(int, await self._call("readinto1", buffer))

    @_forwarded
    async def readline(self, size: int | None = None) -> Any:
        """Read one line (with its newline); empty at EOF.

        ::

            first = await f.readline()
        """
        return await self._call("readline", *_given(size))

    @_forwarded
    async def readlines(self, hint: int | None = None) -> list[Any]:
        """Read the remaining lines as a list."""
        return cast("list[Any]", await self._call("readlines", *_given(hint)))

    def __aiter__(self) -> AsyncFile:
        return self

    async def __anext__(self) -> Any:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    # -- writing ---------------------------------------------------------------
    @_forwarded
    async def write(self, data: Any) -> int:
        """Write ``data``; return the number of bytes/characters written.

        ::

            await f.write(b"payload")
        """
        return cast(int, await self._call("write", data))

    @_forwarded
    async def writelines(self, lines: Iterable[Any]) -> None:
        """Write each item of ``lines`` (no newlines are added)."""
        await self._call("writelines", list(lines))

    @_forwarded
    async def flush(self) -> None:
        """Flush the write buffer to the OS."""
        await self._call("flush")

    @_forwarded
    async def truncate(self, size: int | None = None) -> int:
        """Resize the file to ``size`` bytes (default: the current position)."""
        return cast(int, await self._call("truncate", *_given(size)))

    # -- position --------------------------------------------------------------
    @_forwarded
    async def seek(self, offset: int, whence: int | None = None) -> int:
        """Move to ``offset`` relative to ``whence`` (default: the start); return the position."""
        return cast(int, await self._call("seek", offset, *_given(whence)))

    @_forwarded
    async def tell(self) -> int:
        """The current position."""
        return cast(int, await self._call("tell"))

    # -- detaching and closing --------------------------------------------------
    @_forwarded
    async def detach(self) -> AsyncFile:
        """Separate the layer underneath and return it wrapped in a new ``AsyncFile``.

        A text file gives its binary buffer, a buffered file its raw
        ``FileIO``; this wrapper is then finished with: it counts as closed
        (``closed`` is True, calls raise :class:`ClosedResourceError`,
        ``aclose()`` does nothing) and the returned one owns the file::

            async with await yieldio.open_file("data.bin", "rb") as f:
                raw = await f.detach()
            async with raw:
                data = await raw.readall()

        Awaited, as in trio: detaching flushes pending writes, which may block.
        Once the thread has run it, the new wrapper is returned even if the
        task was cancelled meanwhile, so the underlying file is never orphaned.
        """
        inner = await self._call("detach")
        self._aclosed = True
        return AsyncFile(inner)

    # -- closing ---------------------------------------------------------------
    async def aclose(self) -> None:
        """Flush and close the file (idempotent; completes even if cancelled).

        ::

            await f.aclose()
        """
        closing = self._closing
        if closing is not None:
            # Another task's aclose() is under way (waiting for calls still
            # running): return when the file is really closed, as it will be.
            with CancelScope(shield=True):
                await closing.wait()
            return
        if self.closed:
            return
        self._aclosed = True  # (new calls are refused from here: ClosedResourceError)
        closing = self._closing = Event()
        # Shielded: a task that is being cancelled must still close its files.
        try:
            with CancelScope(shield=True):
                if self._in_flight:
                    # Other tasks' calls still run on worker threads: let them
                    # end first. Closed under them, a buffered file could drop
                    # what a returned write() had put in its buffer, and an
                    # unbuffered write could land in whichever file took the
                    # fd number next.
                    self._all_returned = Event()
                    await self._all_returned.wait()
                await _complete_in_thread(self._file.close)
        except BaseException as exc:
            # Ctrl-C reaches a shielded wait too (for the calls in flight, or
            # for a close still queued behind a busy pool, which is then
            # withdrawn): close here, blocking for the flush, rather than
            # leave the data and the fd to the garbage collector. (A close
            # that ran and failed has closed the file: nothing left to do.)
            if not getattr(self._file, "closed", True):
                try:
                    self._file.close()
                except Exception as close_exc:
                    exc.add_note(f"closing {self._file!r} here failed too: {close_exc!r}")
            raise
        finally:
            closing.set()

    async def __aenter__(self) -> AsyncFile:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


#: What an AsyncFile has only if its wrapped file has it (``dir()`` leaves the rest out).
_OPTIONAL = _PLAIN_ATTRS | {n for n, v in vars(AsyncFile).items() if isinstance(v, _forwarded)}


def wrap_file(file: Any) -> AsyncFile:
    """Wrap an already open file object (anything with ``close`` and ``read`` or ``write``).

    ::

        import io
        f = yieldio.files.wrap_file(io.BytesIO(b"data"))
        assert await f.read() == b"data"
    """
    if not hasattr(file, "close") or not (hasattr(file, "read") or hasattr(file, "write")):
        raise TypeError(f"{file!r} does not look like a file object (needs close() and "
                        "read() or write())")
    return AsyncFile(file)


async def open_file(file: str | bytes | os.PathLike[Any] | int, mode: str = "r",
                    buffering: int = -1, encoding: str | None = None,
                    errors: str | None = None, newline: str | None = None,
                    closefd: bool = True, opener: Any = None) -> AsyncFile:
    """Open a file on a worker thread, like the builtin :func:`open`; return an :class:`AsyncFile`.

    ::

        async with await yieldio.open_file("log.txt", "a") as f:
            await f.write("started\\n")

    Errors are those of :func:`open` (``FileNotFoundError``, ``IsADirectoryError``...).
    If the caller is cancelled while the thread opens the file, the file is
    closed again and ``Cancelled`` propagates: no descriptor leaks.
    """
    box: list[IO[Any]] = []

    def do_open() -> None:
        box.append(open(file, mode, buffering, encoding, errors, newline, closefd, opener))

    try:
        await cast(Awaitable[Any], to_thread(do_open))
    except BaseException:
        if box:  # opened, but the caller was cancelled: nobody would close it
            box[0].close()
        raise
    return AsyncFile(box[0])


from ._path import Path  # noqa: E402  (it builds on open_file and AsyncFile above)
