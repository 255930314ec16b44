"""Content decoding for the client: ``Content-Encoding: gzip``, ``deflate``, and stacks of them.

::

    decoder = ContentDecoder.for_headers(response.headers, max_size=256 << 20)
    for raw_chunk in chunks:
        for piece in decoder.feed(raw_chunk):     # pieces of at most 64 KiB
            sink.write(piece)
    decoder.finish()                              # raises DecodingError if truncated

Decoding is incremental (``zlib.decompressobj`` with ``max_length``), so
memory stays bounded whatever the compression ratio; ``max_size`` bounds the
bytes each layer may produce, against decompression bombs. ``deflate`` is
accepted zlib-wrapped (RFC 1950, what the RFC means) and raw (RFC 1951, what
some servers send), as httpx and browsers do. A concatenation of gzip
members is decoded as one body, as ``gzip.decompress`` does.

``identity`` layers are skipped. If any layer is an encoding not known here
(``br``, ``zstd``, ``compress``...), nothing is decoded: the body is passed
through as received, with its ``Content-Encoding`` header, for the caller
to decode (httpx decodes the layers it knows and skips the others, which
can only give garbage when an unknown layer is not the innermost one).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from ._errors import DecodingError
from ._headers import Headers

__all__ = ["ContentDecoder", "DEFAULT_MAX_DECODED_SIZE"]

#: The default of ``Client(max_decoded_size=...)``: 256 MiB.
DEFAULT_MAX_DECODED_SIZE = 256 << 20
_PIECE = 65536  # the most one decompress() call returns


class _Layer:
    """One ``gzip`` or ``deflate`` layer."""

    __slots__ = ("kind", "obj", "started", "pending", "fed", "produced")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.obj = zlib.decompressobj(16 + zlib.MAX_WBITS if kind == "gzip" else zlib.MAX_WBITS)
        self.started = kind != "deflate"  # deflate: decided between zlib-wrapped and raw
        self.pending = b""  # deflate: the first bytes, until there are 2 to decide on
        self.fed = False
        self.produced = 0

    def feed(self, data: bytes, limit: int | None) -> Iterator[bytes]:
        self.fed = True
        if not self.started:
            data = self.pending + data
            if len(data) < 2:
                self.pending = data
                return
            self.pending = b""
            self.started = True
            try:
                # zlib checks its 2-byte header on the first call: not one of
                # its headers means a raw deflate stream.
                zlib.decompressobj().decompress(data[:2])
            except zlib.error:
                self.obj = zlib.decompressobj(-zlib.MAX_WBITS)
        while True:
            if self.obj.eof:
                if not data or self.kind != "gzip":
                    return  # bytes after the end of a deflate stream: ignored, as zlib does
                self.obj = zlib.decompressobj(16 + zlib.MAX_WBITS)  # another gzip member
            try:
                out = self.obj.decompress(data, _PIECE)
            except zlib.error as exc:
                raise DecodingError(f"invalid {self.kind}-encoded body: {exc}") from None
            data = self.obj.unconsumed_tail or (self.obj.unused_data if self.obj.eof else b"")
            if out:
                self.produced += len(out)
                if limit is not None and self.produced > limit:
                    raise DecodingError(f"the decoded body is larger than max_decoded_size "
                                        f"({limit} bytes): a decompression bomb?")
                yield out
            # A full piece may leave more output inside zlib, even with no input left.
            if not data and len(out) < _PIECE:
                return

    def check_end(self) -> None:
        if self.fed and (self.pending or not self.obj.eof):
            raise DecodingError(f"truncated {self.kind}-encoded body")


class ContentDecoder:
    """Decodes a response body according to its ``Content-Encoding`` (see the module doc).

    ::

        decoder = ContentDecoder(["gzip"], max_size=1 << 20)
        body = b"".join(decoder.feed(gzipped))
        decoder.finish()
    """

    def __init__(self, encodings: list[str], max_size: int | None) -> None:
        # Encodings are listed in the order they were applied: undo the last first.
        self.layers = [_Layer(e) for e in reversed(encodings)]
        self.max_size = max_size

    @classmethod
    def for_headers(cls, headers: Headers, max_size: int | None) -> ContentDecoder | None:
        """The decoder for these response headers, or None when there is nothing to decode."""
        names = [e.strip().lower() for v in headers.get_all("content-encoding")
                 for e in v.split(",")]
        names = [e for e in names if e and e != "identity"]
        if not names or any(e not in ("gzip", "x-gzip", "deflate") for e in names):
            return None
        return cls(["gzip" if e == "x-gzip" else e for e in names], max_size)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Decode the next piece of the body, as decoded pieces of at most 64 KiB."""
        if data:
            yield from self._through(0, data)

    def _through(self, i: int, data: bytes) -> Iterator[bytes]:
        if i == len(self.layers):
            yield data
            return
        for out in self.layers[i].feed(data, self.max_size):
            yield from self._through(i + 1, out)

    def finish(self) -> None:
        """After the last byte: check that every layer ended (DecodingError if truncated)."""
        for layer in self.layers:
            layer.check_end()
