"""An async :class:`pathlib.Path`: the same names, with the file-system calls awaited.

::

    config = await yieldio.Path("~/.config/app.toml").expanduser()
    if await config.exists():
        text = await config.read_text()

Why a separate class: every :class:`pathlib.Path` method that touches the
disk (``stat``, ``read_text``, ``mkdir``, ``iterdir``...) blocks the thread
that calls it, so a slow disk or a network filesystem would stall every task.
Here those methods run on a worker thread, like :mod:`yieldio.files`, and are
awaited; the methods that only compute with the path's text (``name``,
``parent``, ``/``, ``with_suffix``, ``relative_to``...) are plain and
synchronous, because they never block. trio's ``trio.Path`` and anyio's
``anyio.Path`` draw the same line.

Semantics, as for files: each awaited method is a checkpoint before it
starts; once its thread runs it, it completes and its result is returned even
if the task was cancelled meanwhile (the cancellation is raised at the next
checkpoint), so a ``mkdir`` or ``rename`` never half-happens from the
caller's point of view. Errors are pathlib's (``FileNotFoundError``...).

Newer pathlib, newer Path: what pathlib gained after 3.11 (``walk``,
``is_junction``, ``with_segments`` in 3.12; ``full_match``, ``from_uri``,
``parser`` in 3.13) exists here exactly when the running Python's pathlib has
it, so ``hasattr(yieldio.Path, "walk") == hasattr(pathlib.Path, "walk")``.
Likewise the newer keyword arguments (``exists(follow_symlinks=)``,
``glob(case_sensitive=)``, ``read_text(newline=)``...) are passed on only
when given, and only if the running pathlib takes them; otherwise the call
raises ``TypeError`` at once, as pathlib's own would.

The text-only methods are in :mod:`yieldio._purepath` (the base class
``_PurePath``, as pathlib's ``PurePath`` is its ``Path``'s); this module
holds the ones that do I/O.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from ._purepath import _UNSET, _options, _PurePath, _StrPath
from .files import AsyncFile, _complete_in_thread, open_file

__all__ = ["Path"]

#: Directory entries fetched per thread hand-off by iterdir/glob/rglob: one
#: hop per entry would cost tens of microseconds each; the whole listing at
#: once could hold a huge tree in memory before the first entry is seen.
_BATCH = 256

_T = TypeVar("_T")
_U = TypeVar("_U")


def _take(it: Iterator[_T], n: int) -> list[_T]:
    return list(itertools.islice(it, n))


class Path(_PurePath):
    """A file-system path whose I/O methods are awaited (see the module docstring).

    ::

        logs = yieldio.Path("/var/log/app")
        await logs.mkdir(parents=True, exist_ok=True)
        await (logs / "started").write_text("ok\\n")
        async for entry in logs.iterdir():
            print(entry.name, (await entry.stat()).st_size)

    It accepts what :class:`pathlib.Path` accepts (strings, ``os.PathLike``
    objects, other :class:`Path` objects) and is itself ``os.PathLike``, so
    it can be passed to :func:`open`, :func:`yieldio.open_file` or
    :mod:`os` functions. :attr:`wrapped` is the synchronous
    :class:`pathlib.Path`.
    """

    __slots__ = ()

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await _complete_in_thread(fn, *args)

    # -- where we are ------------------------------------------------------------
    @classmethod
    async def cwd(cls) -> Path:
        """The current working directory."""
        return cls._wrap(await _complete_in_thread(pathlib.Path.cwd))

    @classmethod
    async def home(cls) -> Path:
        """The user's home directory."""
        return cls._wrap(await _complete_in_thread(pathlib.Path.home))

    async def absolute(self) -> Path:
        """The path made absolute against the current directory (no symlinks resolved)."""
        return self._wrap(await self._run(self._path.absolute))

    async def resolve(self, strict: bool = False) -> Path:
        """The absolute path with symlinks and ``..`` resolved.

        With ``strict=True``, a missing path raises ``FileNotFoundError``.
        """
        return self._wrap(await self._run(self._path.resolve, strict))

    async def expanduser(self) -> Path:
        """``~`` and ``~user`` expanded (reads the password database)."""
        return self._wrap(await self._run(self._path.expanduser))

    # -- asking about the file ---------------------------------------------------
    async def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        """``os.stat`` of the path."""
        return await self._run(lambda: self._path.stat(follow_symlinks=follow_symlinks))

    async def lstat(self) -> os.stat_result:
        """``os.lstat``: like :meth:`stat`, about a symlink itself."""
        return await self._run(self._path.lstat)

    async def exists(self, *, follow_symlinks: bool = _UNSET) -> bool:
        """True if the path exists (a broken symlink does not).

        ``follow_symlinks=False`` (Python 3.12+) asks about a symlink itself::

            assert await broken_link.exists(follow_symlinks=False)
        """
        opts = _options("exists", follow_symlinks=follow_symlinks)
        return await self._run(lambda: self._path.exists(**opts))

    async def is_file(self, *, follow_symlinks: bool = _UNSET) -> bool:
        """True for a regular file (or a symlink to one, unless ``follow_symlinks=False``, 3.13+)."""
        opts = _options("is_file", follow_symlinks=follow_symlinks)
        return await self._run(lambda: self._path.is_file(**opts))

    async def is_dir(self, *, follow_symlinks: bool = _UNSET) -> bool:
        """True for a directory (or a symlink to one, unless ``follow_symlinks=False``, 3.13+)."""
        opts = _options("is_dir", follow_symlinks=follow_symlinks)
        return await self._run(lambda: self._path.is_dir(**opts))

    async def is_symlink(self) -> bool:
        """True for a symbolic link."""
        return await self._run(self._path.is_symlink)

    if sys.version_info >= (3, 12):
        async def is_junction(self) -> bool:
            """True for a Windows junction (Python 3.12+); always False on POSIX.

            ::

                assert not await Path("/tmp").is_junction()
            """
            return await self._run(self._path.is_junction)

    async def is_mount(self) -> bool:
        """True for a mount point."""
        return await self._run(self._path.is_mount)

    async def is_socket(self) -> bool:
        """True for a Unix socket."""
        return await self._run(self._path.is_socket)

    async def is_fifo(self) -> bool:
        """True for a FIFO (named pipe)."""
        return await self._run(self._path.is_fifo)

    async def is_block_device(self) -> bool:
        """True for a block device."""
        return await self._run(self._path.is_block_device)

    async def is_char_device(self) -> bool:
        """True for a character device."""
        return await self._run(self._path.is_char_device)

    async def samefile(self, other: _StrPath) -> bool:
        """True if ``other`` is the same file (same device and inode)."""
        return await self._run(self._path.samefile, os.fspath(other))

    async def owner(self, *, follow_symlinks: bool = _UNSET) -> str:
        """The name of the file's owner (of a symlink itself with ``follow_symlinks=False``, 3.13+)."""
        opts = _options("owner", follow_symlinks=follow_symlinks)
        return await self._run(lambda: self._path.owner(**opts))

    async def group(self, *, follow_symlinks: bool = _UNSET) -> str:
        """The name of the file's group (of a symlink itself with ``follow_symlinks=False``, 3.13+)."""
        opts = _options("group", follow_symlinks=follow_symlinks)
        return await self._run(lambda: self._path.group(**opts))

    # -- reading and writing -----------------------------------------------------
    async def open(self, mode: str = "r", buffering: int = -1, encoding: str | None = None,
                   errors: str | None = None, newline: str | None = None) -> AsyncFile:
        """Open the file: :func:`yieldio.open_file` on this path.

        ::

            async with await path.open("a") as f:
                await f.write("one more line\\n")
        """
        return await open_file(self._path, mode, buffering, encoding, errors, newline)

    async def read_bytes(self) -> bytes:
        """The whole file's bytes."""
        return await self._run(self._path.read_bytes)

    async def read_text(self, encoding: str | None = None, errors: str | None = None,
                        newline: str | None = _UNSET) -> str:
        """The whole file decoded.

        ``newline`` (Python 3.13+) is :func:`open`'s: ``""`` keeps ``"\\r\\n"``::

            text = await path.read_text(newline="")
        """
        opts = _options("read_text", newline=newline)
        return await self._run(lambda: self._path.read_text(encoding, errors, **opts))

    async def write_bytes(self, data: Any) -> int:
        """Replace the file's contents with ``data`` (any bytes-like object); return the byte count."""
        # Check on the loop thread, as pathlib does: memoryview() takes every
        # bytes-like object (array.array, mmap...), not only bytes/bytearray.
        try:
            memoryview(data).release()
        except TypeError:
            raise TypeError(f"write_bytes() needs bytes or another bytes-like object, "
                            f"not {type(data).__name__}") from None
        return await self._run(self._path.write_bytes, data)

    async def write_text(self, data: str, encoding: str | None = None,
                         errors: str | None = None, newline: str | None = None) -> int:
        """Replace the file's contents with ``data`` encoded; return the character count."""
        if not isinstance(data, str):
            raise TypeError(f"write_text() needs str, not {type(data).__name__}")
        return await self._run(self._path.write_text, data, encoding, errors, newline)

    # -- changing the file system ------------------------------------------------
    async def touch(self, mode: int = 0o666, exist_ok: bool = True) -> None:
        """Create the file, or update its modification time if it exists."""
        await self._run(self._path.touch, mode, exist_ok)

    async def mkdir(self, mode: int = 0o777, parents: bool = False,
                    exist_ok: bool = False) -> None:
        """Create the directory (and its parents, with ``parents=True``)."""
        await self._run(self._path.mkdir, mode, parents, exist_ok)

    async def rmdir(self) -> None:
        """Remove the (empty) directory."""
        await self._run(self._path.rmdir)

    async def unlink(self, missing_ok: bool = False) -> None:
        """Remove the file or symlink."""
        await self._run(self._path.unlink, missing_ok)

    async def chmod(self, mode: int, *, follow_symlinks: bool = True) -> None:
        """Change the permission bits."""
        await self._run(lambda: self._path.chmod(mode, follow_symlinks=follow_symlinks))

    async def lchmod(self, mode: int) -> None:
        """Like :meth:`chmod` of a symlink itself.

        Where the OS cannot change a link's mode (Linux), it raises what
        ``pathlib.Path.lchmod`` raises there.
        """
        await self._run(self._path.lchmod, mode)

    async def rename(self, target: _StrPath) -> Path:
        """Rename to ``target``; return the new path."""
        return self._wrap(await self._run(self._path.rename, os.fspath(target)))

    async def replace(self, target: _StrPath) -> Path:
        """Rename to ``target``, replacing it if it exists; return the new path."""
        return self._wrap(await self._run(self._path.replace, os.fspath(target)))

    async def symlink_to(self, target: _StrPath, target_is_directory: bool = False) -> None:
        """Make this path a symbolic link to ``target``."""
        await self._run(self._path.symlink_to, os.fspath(target), target_is_directory)

    async def hardlink_to(self, target: _StrPath) -> None:
        """Make this path a hard link to ``target``."""
        await self._run(self._path.hardlink_to, os.fspath(target))

    async def readlink(self) -> Path:
        """The path a symbolic link points to."""
        return self._wrap(await self._run(self._path.readlink))

    # -- listing -----------------------------------------------------------------
    def iterdir(self) -> AsyncIterator[Path]:
        """The directory's entries, in arbitrary order: ``async for p in d.iterdir()``.

        Entries are read on a worker thread in batches; a missing directory
        raises ``FileNotFoundError`` at the first iteration.
        """
        return self._listing(self._path.iterdir, self._wrap)

    def glob(self, pattern: str, *, case_sensitive: bool | None = _UNSET,
             recurse_symlinks: bool = _UNSET) -> AsyncIterator[Path]:
        """Entries matching ``pattern`` (``"*.py"``, ``"*/setup.cfg"``), relative to this directory.

        ``case_sensitive`` (Python 3.12+) and ``recurse_symlinks`` (3.13+)
        are pathlib's::

            found = [p async for p in d.glob("*.PY", case_sensitive=False)]
        """
        opts = _options("glob", case_sensitive=case_sensitive, recurse_symlinks=recurse_symlinks)
        return self._listing(lambda: self._path.glob(pattern, **opts), self._wrap)

    def rglob(self, pattern: str, *, case_sensitive: bool | None = _UNSET,
              recurse_symlinks: bool = _UNSET) -> AsyncIterator[Path]:
        """Like :meth:`glob` with ``"**/"`` in front: matches at any depth."""
        opts = _options("rglob", case_sensitive=case_sensitive, recurse_symlinks=recurse_symlinks)
        return self._listing(lambda: self._path.rglob(pattern, **opts), self._wrap)

    if sys.version_info >= (3, 12):
        def walk(self, top_down: bool = True,
                 on_error: Callable[[OSError], object] | None = None,
                 follow_symlinks: bool = False
                 ) -> AsyncIterator[tuple[Path, list[str], list[str]]]:
            """The tree below this directory, like :func:`os.walk` (Python 3.12+).

            ``async for dirpath, dirnames, filenames in d.walk()``; ``dirpath``
            is a :class:`Path`. With ``top_down`` (the default), removing names
            from ``dirnames`` prunes the walk, as with pathlib::

                async for top, dirs, files in base.walk():
                    dirs[:] = [d for d in dirs if not d.startswith(".")]
                    print(top, files)

            Each directory is read on a worker thread; ``on_error`` is called
            there too. Top-down, one directory is fetched per thread hand-off
            (pathlib must see the pruned ``dirnames`` before going on);
            bottom-up, up to 256 at a time.
            """
            def convert(item: tuple[pathlib.Path, list[str], list[str]]
                        ) -> tuple[Path, list[str], list[str]]:
                return self._wrap(item[0]), item[1], item[2]

            return self._listing(
                lambda: self._path.walk(top_down, on_error, follow_symlinks), convert,
                1 if top_down else _BATCH)

    async def _listing(self, make: Callable[[], Iterator[_T]], convert: Callable[[_T], _U],
                       batch_size: int = _BATCH) -> AsyncIterator[_U]:
        # pathlib's iterators are lazy generators (glob keeps a directory
        # open while it walks it): they are made, advanced and closed on a
        # worker thread, never on the loop's.
        it = await _complete_in_thread(make)
        try:
            while True:
                batch = await _complete_in_thread(_take, it, batch_size)
                for found in batch:
                    yield convert(found)
                if len(batch) < batch_size:
                    return
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # finishes at once: a generator's own cleanup only closes fds
