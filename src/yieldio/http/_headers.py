"""Multi-valued mappings: :class:`Headers` (case-insensitive) and :class:`QueryParams`.

HTTP lets a name appear several times (``Set-Cookie``, ``?tag=a&tag=b``), so
both keep an ordered list of ``(name, value)`` pairs. Indexing returns the
*first* value; :meth:`~MultiDict.get_all` returns every value::

    >>> h = Headers([("Accept", "text/html"), ("accept", "*/*")])
    >>> h["ACCEPT"], h.get_all("accept")
    ('text/html', ['text/html', '*/*'])
    >>> q = QueryParams("tag=a&tag=b&x=1")
    >>> q["tag"], q.get_all("tag"), dict(q.items())["x"]
    ('a', ['a', 'b'], '1')

Header names are stored lower-cased (HTTP/1.1 names are case-insensitive;
HTTP/2 sends them lower-cased); values keep their case. Bytes decode as
ISO-8859-1, the historical charset of HTTP headers, so no input can fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar, Union, overload
from urllib.parse import parse_qsl, urlencode

__all__ = ["MultiDict", "Headers", "QueryParams", "HeadersLike"]

T = TypeVar("T")
_MISSING: Any = object()

#: What a ``headers=`` argument accepts.
HeadersLike = Union["Headers", Mapping[str, str], Iterable[tuple[str, str]], None]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return str(value)


class MultiDict:
    """An ordered multi-valued mapping of ``str`` to ``str`` (the base of the two below).

    ::

        d = MultiDict([("a", "1"), ("a", "2")])
        d["a"]            # '1'  (the first value)
        d.get_all("a")    # ['1', '2']
        d.add("a", "3")   # append a value
        d["a"] = "x"      # replace every value
    """

    __slots__ = ("_items",)

    def __init__(self, items: Any = None) -> None:
        self._items: list[tuple[str, str]] = []
        if items is not None:
            self.update(items)

    # Subclasses normalise names (Headers lower-cases them).
    @staticmethod
    def _key(name: str) -> str:
        return name

    # -- reading ------------------------------------------------------------------
    def __getitem__(self, name: str) -> str:
        key = self._key(name)
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(name)

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: T) -> str | T: ...
    def get(self, name: str, default: Any = None) -> Any:
        """The first value of ``name``, or ``default``."""
        key = self._key(name)
        for k, v in self._items:
            if k == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order (``[]`` if absent)."""
        key = self._key(name)
        return [v for k, v in self._items if k == key]

    getlist = get_all

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = self._key(name)
        for k, _ in self._items:
            if k == key:
                return True
        return False

    def keys(self) -> list[str]:
        """The distinct names, in order of first appearance."""
        return list(dict.fromkeys(k for k, _ in self._items))

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def values(self) -> list[str]:
        """Every value (one per pair)."""
        return [v for _, v in self._items]

    def items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair, duplicates included, in order."""
        return list(self._items)

    def __len__(self) -> int:
        """The number of pairs (a name given twice counts twice)."""
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MultiDict):
            return type(self) is type(other) and sorted(self._items) == sorted(other._items)
        if isinstance(other, Mapping):
            return sorted(self._items) == sorted(
                (self._key(str(k)), _text(v)) for k, v in other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"

    def to_dict(self) -> dict[str, str]:
        """A plain dict with the first value of each name."""
        out: dict[str, str] = {}
        for k, v in self._items:
            out.setdefault(k, v)
        return out

    # -- writing ------------------------------------------------------------------
    def add(self, name: str, value: Any) -> None:
        """Append one more value for ``name``."""
        self._items.append((self._key(_text(name)), _text(value)))

    def __setitem__(self, name: str, value: Any) -> None:
        """Replace every value of ``name`` by ``value`` (kept at the first one's place)."""
        key = self._key(_text(name))
        value = _text(value)
        out = []
        placed = False
        for k, v in self._items:
            if k == key:
                if not placed:
                    out.append((key, value))
                    placed = True
            else:
                out.append((k, v))
        if not placed:
            out.append((key, value))
        self._items = out

    def __delitem__(self, name: str) -> None:
        key = self._key(name)
        kept = [(k, v) for k, v in self._items if k != key]
        if len(kept) == len(self._items):
            raise KeyError(name)
        self._items = kept

    def pop(self, name: str, default: Any = _MISSING) -> Any:
        """Remove ``name`` and return its first value (or ``default``)."""
        try:
            value = self[name]
        except KeyError:
            if default is _MISSING:
                raise
            return default
        del self[name]
        return value

    def setdefault(self, name: str, value: Any) -> str:
        """Return the first value of ``name``, adding ``value`` first if absent."""
        current = self.get(name, _MISSING)
        if current is _MISSING:
            self.add(name, value)
            return _text(value)
        return str(current)

    def update(self, items: Any) -> None:
        """Add pairs from a mapping, a MultiDict (every pair) or an iterable of pairs.

        A name given by a mapping replaces its earlier values; pairs are appended.
        """
        if isinstance(items, MultiDict):
            for k, v in items._items:
                self._items.append((self._key(k), v))
        elif type(items) is dict and not self._items:
            # The common case, ``Response(200, {"content-type": ...})``: one
            # pass, no per-name replace; names that collide once normalised
            # ("A" and "a") take the replace path below.
            key = self._key
            pairs = [(key(k if type(k) is str else _text(k)), v if type(v) is str else _text(v))
                     for k, v in items.items()]
            if len(pairs) < 2 or len({k for k, _ in pairs}) == len(pairs):
                self._items = pairs
            else:
                for k, v in items.items():
                    self[_text(k)] = v
        elif isinstance(items, Mapping):
            for k, v in items.items():
                self[_text(k)] = v
        else:
            key = self._key
            append = self._items.append
            for k, v in items:
                append((key(k if type(k) is str else _text(k)), v if type(v) is str else _text(v)))

    def copy(self) -> MultiDict:
        new = type(self).__new__(type(self))
        new._items = list(self._items)
        return new


class Headers(MultiDict):
    """Case-insensitive multi-valued HTTP headers.

    ::

        h = Headers({"Content-Type": "text/plain"})
        h["content-type"]            # 'text/plain'
        h.add("Set-Cookie", "a=1")
        h.add("Set-Cookie", "b=2")
        h.get_all("set-cookie")      # ['a=1', 'b=2']
        "CONTENT-TYPE" in h          # True
    """

    __slots__ = ()

    @staticmethod
    def _key(name: str) -> str:
        return name.lower()

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Build from h11's ``(lower-cased name, value)`` byte pairs, without re-checking."""
        h = cls.__new__(cls)
        # h11's Headers keeps (raw name, lower-cased name, value) triples:
        # reading them directly skips its Sequence protocol, a call per item.
        full = getattr(raw, "_full_items", None)
        if full is not None:
            h._items = [(n.decode("latin-1"), v.decode("latin-1")) for _, n, v in full]
        else:
            h._items = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw]
        return h

    def raw(self) -> list[tuple[bytes, bytes]]:
        """The pairs as bytes, ready for h11 (ISO-8859-1)."""
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self._items]


class QueryParams(MultiDict):
    """The parsed query string of a URL (names are case-sensitive).

    ::

        q = QueryParams("page=2&tag=a&tag=b")
        int(q.get("page", "1"))      # 2
        q.get_all("tag")             # ['a', 'b']
        str(q)                       # 'page=2&tag=a&tag=b'

    Blank values are kept (``?flag=`` gives ``{"flag": ""}``); ``+`` and
    ``%XX`` escapes are decoded as UTF-8 (invalid bytes become U+FFFD).
    """

    __slots__ = ()

    def __init__(self, items: Any = None) -> None:
        if isinstance(items, (str, bytes)):
            text = items.decode("latin-1") if isinstance(items, bytes) else items
            items = parse_qsl(text, keep_blank_values=True, errors="replace")
        super().__init__(items)

    def __str__(self) -> str:
        return urlencode(self._items)
