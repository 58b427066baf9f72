"""Raw records out of one file, optionally compressed, in bounded memory, never fatal inside the file.

Two layouts. *Lines* (`.jsonl`, `.ndjson`, or a `.json` file whose first lines are whole values): every
line is read on its own, with a bounded `readline`, and holds one record, an array of records, or several
concatenated values; damage never crosses a line. *Document* (any other `.json`): the whole file is one
stream of top-level values and arrays, scanned by `scan.Scanner` (pretty-printed arrays, several arrays
or values in one file, damaged elements resynchronised at the next element of the same array).

`RecordScan(path, ...)` iterates `Raw` items in file order and counts the records it found itself
(`.records`); with `start`/`end` (plain Lines files only) just the lines that begin in that byte range,
so one large file can be parsed by several tasks. A path is local, or a URI read through Hadoop's
FileSystem on the driver (`hadoopfs`); on executors the bytes of a URI arrive as an `Opened` stream. A
record that is not valid UTF-8, not valid JSON, too large, too deep, or cut short still comes out, with
`error` set, so the caller quarantines it with its raw text. Whole-file problems (missing, empty, not
JSON at all) raise `FileFormatError` naming the file; the stage checks them on the driver before any
task starts.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructlake import hadoopfs
from instructlake.ingest import compression
from instructlake.ingest.scan import Scanner
from instructlake.ingest.window import Limits, Raw, Window

__all__ = ["FileFormatError", "Limits", "Opened", "Raw", "RecordScan", "is_compressed", "iter_raw", "layout",
           "sniff"]

LINE_SUFFIXES = tuple(f".{k}{z}" for k in ("jsonl", "ndjson") for z in ("", *compression.SUFFIXES))
CHUNK = compression.CHUNK  # the bytes a read asks for, compressed or not
# The format sniff reads records until this many parse, or this many records or bytes have gone by.
SNIFF_RECORDS, SNIFF_SCANNED, SNIFF_BYTES = 20, 2000, 64 << 20


class FileFormatError(ValueError):
    """A whole file cannot be read as JSON records; the message names the file."""


@dataclass
class Opened:
    """A file's bytes as a stream someone else opened (the byte-range source on an executor), read once:
    from byte `sent_from` on, with `prefix_lines` newlines before it. `layout` comes from the driver's
    check."""
    name: str
    stream: io.BufferedIOBase
    layout: str
    sent_from: int = 0
    prefix_lines: int = 0

    def __str__(self) -> str:
        return self.name


def open_raw(path: str | Path | Opened) -> io.BufferedIOBase:
    """The file's bytes as stored: a local file, a URI through Hadoop, or an Opened stream."""
    if isinstance(path, Opened):
        return path.stream
    if hadoopfs.is_uri(str(path)):
        st = hadoopfs.status(str(path))
        if st is None:
            raise FileFormatError(f"{path}: file does not exist")
        if st.is_dir:
            raise FileFormatError(f"{path}: is a directory, expected a file")
        return hadoopfs.open_raw(str(path))
    p = Path(path)
    if not p.exists():
        raise FileFormatError(f"{p}: file does not exist")
    if p.is_dir():
        raise FileFormatError(f"{p}: is a directory, expected a file")
    return open(p, "rb")


def open_bytes(path: str | Path | Opened) -> io.BufferedIOBase:
    """The file's bytes, decompressed as they are read when it starts with the magic number of gzip,
    bzip2 or xz (compression.decompressed)."""
    return compression.decompressed(open_raw(path))


def file_kind(path: str | Path) -> str:
    """'array', 'jsonl' (an object first) or 'other', from the first non-blank character."""
    stripped = _head(path, 4096).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if not stripped:
        raise FileFormatError(f"{path}: file is empty")
    return {"[": "array", "{": "jsonl"}.get(stripped[0], "other")


def _not_json(path: str | Path) -> FileFormatError:
    start = _head(path, 64).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")[:20]
    return FileFormatError(f"{path}: not JSON (starts with {start!r}); expected a JSON array or JSON Lines")


def _head(path: str | Path, size: int) -> bytes:
    """The first `size` bytes (fewer at the end, or where a cut gzip stops); FileFormatError if none."""
    head = b""
    try:
        with open_bytes(path) as f:
            while len(head) < size:
                piece = f.read1(size - len(head))
                if not piece:
                    break
                head += piece
    except compression.ERRORS as e:
        if not head:
            raise FileFormatError(f"{path}: cannot be read ({e})") from None
    return head


def layout(path: str | Path) -> str:
    """'lines' or 'document' (see the module docstring)."""
    kind = file_kind(path)
    if str(path).lower().endswith(LINE_SUFFIXES):
        return "lines"
    if kind == "array":
        return "document"
    return "lines" if _first_lines_are_values(path) else "document"


def _first_lines_are_values(path: str | Path, lines: int = 2) -> bool:
    seen = 0
    try:
        with open_bytes(path) as f:
            while seen < lines:
                b = f.readline(8 << 20)
                if not b:
                    return seen > 0
                if not b.strip():
                    continue
                if not b.endswith(b"\n") and len(b) >= 8 << 20:
                    return False
                json.loads(b.decode("utf-8", errors="replace").lstrip("\ufeff"))
                seen += 1
    except (ValueError, RecursionError, *compression.ERRORS):
        return False
    return True


def is_compressed(path: str | Path) -> bool:
    with open_raw(path) as f:
        return compression.codec(f.read(compression.MAGIC_BYTES)) is not None


def sniff(path: str | Path, limits: Limits | None = None) -> tuple[str, list[Any]]:
    """(layout, up to 20 parsed leading records); raises FileFormatError if none of the leading records
    parses. Reads record by record, so a large first record does not hide the file's format."""
    records: list[Any] = []
    scan = RecordScan(path, limits=limits)
    scanned = 0
    try:
        for raw in scan:
            scanned += 1
            if raw.error is None:
                records.append(raw.value)
            if len(records) >= SNIFF_RECORDS or scanned >= SNIFF_SCANNED or raw.ordinal > SNIFF_BYTES:
                break
    finally:
        scan.close()
    if not records and file_kind(path) == "other":
        raise _not_json(path)
    if not records:
        raise FileFormatError(f"{path}: none of its first {scanned:,} records parses as JSON")
    return scan.kind, records


def iter_raw(
    path: str | Path,
    looks_like_record: Callable[[Any], bool] | None = None,
    start: int = 0,
    end: int | None = None,
    limits: Limits | None = None,
) -> RecordScan:
    return RecordScan(path, looks_like_record, start, end, limits)


class RecordScan:
    """The records of one file (see the module docstring); `.records` counts those found so far.
    `looks_like_record` tells a real top-level record from a nested object when a damaged array element
    is resynchronised."""

    def __init__(
        self,
        path: str | Path | Opened,
        looks_like_record: Callable[[Any], bool] | None = None,
        start: int = 0,
        end: int | None = None,
        limits: Limits | None = None,
    ):
        self.path = path
        self.accept = looks_like_record
        self.start, self.end = start, end
        self.limits = limits or Limits()
        self.records = 0
        self.kind = ""  # the layout, once iteration has begun
        self._file: io.BufferedIOBase | None = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __iter__(self) -> Iterator[Raw]:
        opened = isinstance(self.path, Opened)
        self.kind = kind = self.path.layout if opened else layout(self.path)
        ranged = bool(self.start) or self.end is not None
        if ranged and not opened and (kind != "lines" or is_compressed(self.path)):
            raise ValueError(f"{self.path}: only plain JSON Lines files can be read by byte range")
        try:
            if ranged:
                yield from self._line_range()
                return
            self._file = open_bytes(self.path)
            if kind == "lines":
                yield from self._lines(self._file)
            else:
                scanner = Scanner(Window(_chunks(self._file)), self.limits, self.accept)
                for raw in scanner.iter():
                    self.records = scanner.records
                    yield raw
                self.records = scanner.records
        finally:
            self.close()

    # ---------------------------------------------------------------- Lines

    def _line_range(self) -> Iterator[Raw]:
        """As Hadoop's line reader: a line belongs to the range holding its first byte. Line numbers come
        from counting the newlines before the range (a sequential read at memory speed, no parsing)."""
        at = max(0, self.start - 1)
        if isinstance(self.path, Opened):
            f, newlines = self.path.stream, self.path.prefix_lines
            if self.path.sent_from != at:
                raise ValueError(f"{self.path}: the range starting at {self.start} was sent from byte "
                                 f"{self.path.sent_from}, not {at}")
        else:
            f = open(self.path, "rb")
            newlines = _newlines_before(f, at)
        self._file = f
        if self.start > 0:
            skipped, ended = _skip_line(f)  # the rest of a line begun in the previous range, or its newline
            at += skipped
            newlines += ended
        yield from self._lines(f, first_line=newlines, byte0=at)

    def _lines(self, f, first_line: int = 0, byte0: int = 0) -> Iterator[Raw]:
        lim, end = self.limits, self.end
        n, pos = first_line, byte0  # the position is tracked by hand: tell() per line costs a system call
        while end is None or pos < end:
            try:
                b = f.readline(lim.max_record_bytes + 1)
            except compression.ERRORS as e:
                yield self._count(
                    Raw(
                        f"line:{n + 1}",
                        n + 1,
                        "",
                        0,
                        ordinal=pos,
                        error=("corrupt_compression", f"the file cannot be decompressed after line {n}: {e}"),
                    )
                )
                return
            if not b:
                return
            n += 1
            line_start = pos
            if len(b) > lim.max_record_bytes and not b.endswith(b"\n"):
                raw, size = self._long_line(f, b, n, line_start)
                pos += size
                yield self._count(raw)
                continue
            pos += len(b)
            if not b.strip():
                continue
            yield from self._line(b.rstrip(b"\r\n"), n, line_start)

    def _line(self, body: bytes, n: int, byte0: int) -> Iterator[Raw]:
        """The records of one line: usually one object (parsed in one call); else the scanner's."""
        lim = self.limits
        try:
            text, clean = body.decode("utf-8"), True
        except UnicodeDecodeError:
            # the scanner flags just the records holding the bad bytes (seen as lone surrogates)
            text, clean = body.decode("utf-8", errors="surrogateescape"), False
        bom = 3 if text.startswith("\ufeff") else 0
        text = text[1:] if bom else text
        if clean and text.lstrip().startswith("{") and text.count("{") + text.count("[") <= lim.max_depth:
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):
                value = None
            if isinstance(value, dict):
                shown = text if len(text) <= lim.keep_chars else text[: lim.keep_chars]
                yield self._count(
                    Raw(f"line:{n}", n, shown, len(body) - bom, value=value, ordinal=byte0 + bom)
                )
                return
        scanner = Scanner(
            Window(text=text, byte0=byte0 + bom, line0=n),
            lim,
            self.accept,
            plain_first_array=False,
            unit="line",
        )
        for raw in scanner.iter():
            yield self._count(raw)

    def _long_line(self, f, head: bytes, n: int, byte0: int) -> tuple[Raw, int]:
        """A line over the limit: read to its end, keeping only its head."""
        size = len(head)
        error = None
        while True:
            try:
                more = f.readline(CHUNK)
            except compression.ERRORS as e:
                error = f"; the file cannot be decompressed after it: {e}"
                break
            size += len(more)
            if not more or more.endswith(b"\n"):
                break
        shown = head[: self.limits.keep_chars * 4].decode("utf-8", errors="replace")[: self.limits.keep_chars]
        detail = f"the line holds {size:,} bytes > ingest.max_record_bytes = {self.limits.max_record_bytes:,}"
        return Raw(
            f"line:{n}", n, shown, size, ordinal=byte0, error=("too_large", detail + (error or ""))
        ), size

    def _count(self, raw: Raw) -> Raw:
        self.records += 1
        return raw


def _newlines_before(f, at: int) -> int:
    """Newlines in the file's first `at` bytes, leaving the file at byte `at`."""
    newlines, left = 0, at
    while left > 0:
        chunk = f.read(min(left, 1 << 24))
        if not chunk:
            break
        newlines += chunk.count(b"\n")
        left -= len(chunk)
    return newlines


def _skip_line(f) -> tuple[int, int]:
    """Reads through the next newline, a piece at a time however long the line: (bytes, newlines read)."""
    skipped = 0
    while True:
        piece = f.readline(CHUNK)
        skipped += len(piece)
        if not piece or piece.endswith(b"\n"):
            return skipped, int(piece.endswith(b"\n"))


def _chunks(f) -> Iterator[bytes]:
    while True:
        chunk = f.read1(CHUNK)  # one read at a time: a cut gzip gives what came before the cut
        if not chunk:
            return
        yield chunk
