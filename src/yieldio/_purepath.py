"""The methods of :class:`yieldio.Path` that only compute with the path's text.

``name``, ``parent``, ``/``, ``with_suffix``, ``relative_to``, comparisons...:
plain and synchronous, because they never touch the disk, so never block.
They live in :class:`_PurePath`, the base class of :class:`yieldio.Path`
(in :mod:`yieldio._path`, with every method that does I/O on a worker
thread), as pathlib's ``PurePath`` is the base of its ``Path``. Also here:
how a keyword argument that only newer pathlibs take is passed on
(:func:`_options`), which both halves use.
"""

from __future__ import annotations

import functools
import inspect
import os
import pathlib
import sys
from typing import Any, Self

__all__: list[str] = []

_StrPath = str | os.PathLike[str]


class _Unset:
    def __repr__(self) -> str:
        return "<pathlib's default>"


#: The default of a keyword argument that only newer pathlibs take: left
#: out of the call unless given (typed Any, so it fits any annotation).
_UNSET: Any = _Unset()


@functools.cache
def _keywords(method: str) -> frozenset[str]:
    """The keyword arguments ``pathlib.Path.<method>`` takes on the running Python."""
    params = inspect.signature(getattr(pathlib.Path, method)).parameters.values()
    return frozenset(p.name for p in params
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def _options(method: str, **options: Any) -> dict[str, Any]:
    """The options the caller gave; ``TypeError`` for one this Python's pathlib lacks."""
    given = {k: v for k, v in options.items() if v is not _UNSET}
    for name in given:
        if name not in _keywords(method):
            raise TypeError(f"{method}() got an unexpected keyword argument {name!r} "
                            f"(pathlib of Python {sys.version_info[0]}.{sys.version_info[1]} "
                            "has no such parameter)")
    return given


class _PurePath:
    """The text-only half of :class:`yieldio.Path` (see the module docstring)."""

    __slots__ = ("_path",)

    def __init__(self, *segments: _StrPath) -> None:
        self._path = pathlib.Path(*segments)

    @classmethod
    def _wrap(cls, path: pathlib.Path) -> Self:
        new = cls.__new__(cls)
        new._path = path
        return new

    # -- the path as text: plain, never blocks -----------------------------------
    @property
    def wrapped(self) -> pathlib.Path:
        """The synchronous :class:`pathlib.Path`."""
        return self._path

    def __fspath__(self) -> str:
        return os.fspath(self._path)

    def __str__(self) -> str:
        return str(self._path)

    def __bytes__(self) -> bytes:
        return bytes(self._path)

    def __repr__(self) -> str:
        return f"yieldio.Path({str(self._path)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _PurePath):
            return self._path == other._path
        if isinstance(other, pathlib.PurePath):
            return self._path == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._path)

    def __reduce__(self) -> tuple[Any, ...]:
        # With __slots__ and no __reduce__, pickle protocols 0 and 1 refused
        # the object; pathlib paths pickle with every protocol.
        return (type(self), (str(self._path),))

    # Ordering: a non-path gets NotImplemented, so that Python reports
    # "between instances of 'Path' and 'int'" (not pathlib's 'PosixPath',
    # a class the caller never used) or tries the other operand's method.
    def __lt__(self, other: _PurePath | pathlib.PurePath) -> bool:
        other = other._path if isinstance(other, _PurePath) else other
        return self._path < other if isinstance(other, pathlib.PurePath) else NotImplemented

    def __le__(self, other: _PurePath | pathlib.PurePath) -> bool:
        other = other._path if isinstance(other, _PurePath) else other
        return self._path <= other if isinstance(other, pathlib.PurePath) else NotImplemented

    def __gt__(self, other: _PurePath | pathlib.PurePath) -> bool:
        other = other._path if isinstance(other, _PurePath) else other
        return self._path > other if isinstance(other, pathlib.PurePath) else NotImplemented

    def __ge__(self, other: _PurePath | pathlib.PurePath) -> bool:
        other = other._path if isinstance(other, _PurePath) else other
        return self._path >= other if isinstance(other, pathlib.PurePath) else NotImplemented

    # A non-path operand gets NotImplemented, as for the comparisons above:
    # the TypeError then names 'Path', not pathlib's 'PosixPath'.
    def __truediv__(self, other: _StrPath) -> Self:
        try:
            return self._wrap(self._path / other)
        except TypeError:
            return NotImplemented

    def __rtruediv__(self, other: _StrPath) -> Self:
        try:
            return self._wrap(pathlib.Path(other) / self._path)
        except TypeError:
            return NotImplemented

    @property
    def name(self) -> str:
        """The final component: ``Path("a/b.tar.gz").name == "b.tar.gz"``."""
        return self._path.name

    @property
    def suffix(self) -> str:
        """The last suffix: ``".gz"`` for ``"b.tar.gz"``."""
        return self._path.suffix

    @property
    def suffixes(self) -> list[str]:
        """Every suffix: ``[".tar", ".gz"]`` for ``"b.tar.gz"``."""
        return self._path.suffixes

    @property
    def stem(self) -> str:
        """The final component without its last suffix: ``"b.tar"``."""
        return self._path.stem

    @property
    def parent(self) -> Self:
        """The path without its final component."""
        return self._wrap(self._path.parent)

    @property
    def parents(self) -> tuple[Self, ...]:
        """Every ancestor, nearest first."""
        return tuple(self._wrap(p) for p in self._path.parents)

    @property
    def parts(self) -> tuple[str, ...]:
        """The components: ``("/", "usr", "bin")``."""
        return self._path.parts

    @property
    def anchor(self) -> str:
        """Drive plus root (``"/"`` for an absolute POSIX path, else ``""``)."""
        return self._path.anchor

    @property
    def drive(self) -> str:
        """The drive letter or UNC share (always ``""`` on POSIX)."""
        return self._path.drive

    @property
    def root(self) -> str:
        """``"/"`` for an absolute POSIX path, else ``""``."""
        return self._path.root

    def joinpath(self, *segments: _StrPath) -> Self:
        """``self / segments[0] / segments[1] ...``"""
        return self._wrap(self._path.joinpath(*segments))

    def with_name(self, name: str) -> Self:
        """The path with its final component replaced."""
        return self._wrap(self._path.with_name(name))

    def with_stem(self, stem: str) -> Self:
        """The path with its stem replaced (the suffix is kept)."""
        return self._wrap(self._path.with_stem(stem))

    def with_suffix(self, suffix: str) -> Self:
        """The path with its last suffix replaced (``""`` removes it)."""
        return self._wrap(self._path.with_suffix(suffix))

    def relative_to(self, *other: _StrPath, walk_up: bool = _UNSET) -> Self:
        """This path relative to ``other``; ``ValueError`` if it is not under it.

        ``walk_up=True`` (Python 3.12+) allows ``..`` steps instead::

            assert Path("/a/b").relative_to("/a/c", walk_up=True) == Path("../b")
        """
        opts = _options("relative_to", walk_up=walk_up)
        return self._wrap(self._path.relative_to(*other, **opts))

    def is_relative_to(self, *other: _StrPath) -> bool:
        """True if this path is under ``other`` (text only: no symlinks resolved)."""
        return self._path.is_relative_to(*other)

    def is_reserved(self) -> bool:
        """True for a name Windows reserves (``NUL``, ``CON``...); always False on POSIX."""
        return self._path.is_reserved()

    def is_absolute(self) -> bool:
        """True if the path has a root (text only)."""
        return self._path.is_absolute()

    def match(self, pattern: str, *, case_sensitive: bool | None = _UNSET) -> bool:
        """True if the path matches the glob-style ``pattern``, from the right.

        ``case_sensitive`` (Python 3.12+) overrides the platform's rule::

            assert Path("a/B.PY").match("*.py", case_sensitive=False)
        """
        return self._path.match(pattern, **_options("match", case_sensitive=case_sensitive))

    def as_posix(self) -> str:
        """The path with forward slashes."""
        return self._path.as_posix()

    def as_uri(self) -> str:
        """A ``file://`` URI; ``ValueError`` for a relative path."""
        return self._path.as_uri()

    if sys.version_info >= (3, 12):
        def with_segments(self, *segments: _StrPath) -> Self:
            """A new path of this type from ``segments`` (Python 3.12+; pure, not awaited).

            ::

                assert Path("a/b").with_segments("c", "d") == Path("c/d")
            """
            return type(self)(*segments)

    if sys.version_info >= (3, 13):
        def full_match(self, pattern: str, *, case_sensitive: bool | None = None) -> bool:
            """True if the whole path matches the glob-style ``pattern`` (Python 3.13+; pure).

            Unlike :meth:`match`, ``**`` spans directories and the match is
            anchored at both ends::

                assert Path("src/pkg/mod.py").full_match("src/**/*.py")
            """
            return self._path.full_match(pattern, case_sensitive=case_sensitive)

        @classmethod
        def from_uri(cls, uri: str) -> Self:
            """The path of a ``file:`` URI (Python 3.13+; pure, not awaited).

            ::

                assert Path.from_uri("file:///etc/hosts") == Path("/etc/hosts")
            """
            return cls._wrap(pathlib.Path.from_uri(uri))

        @property
        def parser(self) -> Any:
            """The ``os.path`` flavour module the path uses (Python 3.13+): ``posixpath``.

            ::

                assert Path("a").parser.sep == "/"
            """
            return self._path.parser
