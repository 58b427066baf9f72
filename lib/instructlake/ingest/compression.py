"""Compressed raw files, decompressed a bounded piece at a time as they are read: gzip, bzip2 and xz,
told by their magic numbers, not their names. A small file that expands to gigabytes never sits in
memory, and a cut file gives every byte its complete blocks hold, then EOFError, so the records before
the cut are kept (for bzip2 a block is up to 900 kB of text, decoded only when it is whole)."""

from __future__ import annotations

import bz2
import io
import lzma
import zlib

CHUNK = 1 << 20
MAGIC = {"gzip": b"\x1f\x8b", "bzip2": b"BZh", "xz": b"\xfd7zXZ\x00"}
MAGIC_BYTES = max(len(m) for m in MAGIC.values())
SUFFIXES = (".gz", ".bz2", ".xz")
# what a damaged or cut compressed stream raises while it is read (lzma's error is not an OSError)
ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)


def codec(head: bytes) -> str | None:
    """'gzip', 'bzip2' or 'xz' for a file that starts with these bytes, else None."""
    return next((name for name, magic in MAGIC.items() if head.startswith(magic)), None)


def decompressed(f: io.BufferedIOBase) -> io.BufferedIOBase:
    """The stream's bytes, decompressed when it starts with a known magic number (f as it is otherwise).
    bz2's and lzma's readers read several streams one after the other, as Gunzip reads gzip members."""
    kind = codec(f.peek(MAGIC_BYTES)[:MAGIC_BYTES])
    if kind == "gzip":
        return io.BufferedReader(Gunzip(f), CHUNK)
    if kind == "bzip2":
        return _Bunzip(f)
    if kind == "xz":
        return _Unxz(f)
    return f


class _ClosesSource:
    """bz2's and lzma's readers leave a stream they were given open: these close it with themselves (a
    Hadoop stream is a JVM object, which Python's garbage collector does not close)."""

    def __init__(self, f: io.BufferedIOBase):
        self._source = f  # first: a reader whose __init__ failed is still closed by its __del__
        super().__init__(f)  # type: ignore[call-arg]

    def close(self) -> None:
        try:
            super().close()  # type: ignore[misc]
        finally:
            self._source.close()


class _Bunzip(_ClosesSource, bz2.BZ2File):
    pass


class _Unxz(_ClosesSource, lzma.LZMAFile):
    pass


class Gunzip(io.RawIOBase):
    """gzip members decompressed a bounded piece at a time: a small file that expands to gigabytes never
    sits in memory, and a cut file gives every byte before the cut, then EOFError (GzipFile's own reader
    raises for a whole buffer, losing the records decoded before the cut)."""

    def __init__(self, f: io.BufferedIOBase):
        self.f = f
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = len(b)
        while True:
            if self.d.unconsumed_tail:
                data = self.d.decompress(self.d.unconsumed_tail, n)
            elif self.d.eof:
                rest = self.d.unused_data or self.f.read(65536)
                if not rest.lstrip(b"\0"):
                    return 0  # the end, or the zero padding some writers leave after the last member
                self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # another member follows
                data = self.d.decompress(rest, n)
            else:
                comp = self.f.read(65536)
                if not comp:
                    raise EOFError("the compressed file ends before its end-of-stream marker (cut short)")
                data = self.d.decompress(comp, n)
            if data:
                b[: len(data)] = data
                return len(data)

    def close(self) -> None:
        self.f.close()
        super().close()
