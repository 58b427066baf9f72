"""What the record scanner reads and yields: a sliding window of decoded text over a byte stream, the
limits a record is held to, and `Raw`, one record found in a file."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from instructlake.ingest import compression


@dataclass(frozen=True)
class Limits:
    max_record_bytes: int = 2_000_000
    keep_chars: int = 20_000
    max_depth: int = 256


@dataclass
class Raw:
    locator: (
        str  # "line:N", "index:N", "line:N/index:K" (element K of an array starting on line N), "line:N:2"
    )
    line: int | None  # 1-based line where the record starts
    text: str  # raw text, or its first keep_chars (undecodable bytes shown as U+FFFD)
    nbytes: int  # original size in bytes
    value: Any = None  # parsed JSON when error is None
    error: tuple[str, str] | None = None  # (reason, detail)
    ordinal: int = 0  # byte offset of the record's first byte in the (decompressed) file: stable, unique


class Window:
    """Decoded text over a byte stream: `buf`, refilled by `more()`; `drop(p)` forgets buf[:p]. Byte
    offsets and line numbers of positions come from `where(p)`, counted incrementally."""

    def __init__(self, chunks: Iterator[bytes] | None = None, text: str = "", byte0: int = 0, line0: int = 1):
        self.chunks = chunks
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        self.buf = text
        self.eof = chunks is None
        self.stream_error: str | None = None
        self._mark = (0, byte0, line0)  # (pos in buf, byte offset, line) of the last position asked for

    def more(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = next(self.chunks, None)  # type: ignore[arg-type]
        except compression.ERRORS as e:
            self.stream_error = str(e) or type(e).__name__
            chunk = None
        if not chunk:
            self.eof = True
            self.buf += self.decoder.decode(b"", final=True)
            return False
        self.buf += self.decoder.decode(chunk)
        return True

    def fill(self, pos: int, ahead: int) -> None:
        while len(self.buf) - pos < ahead and self.more():
            pass

    def where(self, pos: int) -> tuple[int, int]:
        """(byte offset, line) of buf[pos]; positions are asked for in increasing order."""
        p0, b0, l0 = self._mark
        span = self.buf[p0:pos]
        b = b0 + nbytes(span)
        line = l0 + span.count("\n")
        self._mark = (pos, b, line)
        return b, line

    def drop(self, pos: int) -> None:
        if pos <= 0:
            return
        b, line = self.where(pos)
        self.buf = self.buf[pos:]
        self._mark = (0, b, line)


def nbytes(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogateescape"))


def shown(text: str) -> str:
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
