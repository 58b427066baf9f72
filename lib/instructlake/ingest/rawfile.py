"""Raw records out of one file: JSON Lines or a JSON array, optionally gzip, never fatal inside the file.

`iter_raw(path)` yields `Raw` items in file order; `iter_raw(path, start=, end=)` only the lines that
begin inside a byte range of a plain (not gzip) JSON Lines file, so one large file can be parsed by
several tasks. A line or array element that is not valid UTF-8 or
not valid JSON still comes out, with `error` set, so the caller quarantines it with its raw text. A JSON
array damaged in the middle is resynchronised at the next element that parses; a truncated one yields its
intact elements and the broken tail.
Whole-file problems (missing, empty, not JSON at all) raise `FileFormatError` naming the file; the stage
checks them on the driver before any task starts.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GZIP_MAGIC = b"\x1f\x8b"
_DECODER = json.JSONDecoder()
_WS = re.compile(r"\s*")
# Where a new array element may begin after damage: a comma (or the opening bracket) then an object.
_RESYNC = re.compile(r",\s*(?=\{)")
# Lone surrogates: what `surrogateescape` turns undecodable bytes into.
_SURROGATE = re.compile("[\udc80-\udcff]")


class FileFormatError(ValueError):
    """A whole file cannot be read as JSON records; the message names the file."""


@dataclass
class Raw:
    locator: str  # "line:N" (1-based) or "index:N" (0-based array position)
    line: int | None  # 1-based line where the record starts
    text: str  # raw text (undecodable bytes shown as U+FFFD)
    nbytes: int  # original size in bytes
    value: Any = None  # parsed JSON when error is None
    error: tuple[str, str] | None = None  # (reason, detail)
    ordinal: int = 0  # 0-based line (JSON Lines) or element index (array): stable however a file is split


def open_bytes(path: str | Path) -> io.BufferedIOBase:
    p = Path(path)
    if not p.exists():
        raise FileFormatError(f"{p}: file does not exist")
    if p.is_dir():
        raise FileFormatError(f"{p}: is a directory, expected a file")
    f = open(p, "rb")
    if f.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=f)  # type: ignore[return-value]
    return f


def sniff(path: str | Path, limit: int = 1 << 20) -> tuple[str, list[Any]]:
    """('jsonl' | 'array', up to 20 parsed leading records); raises FileFormatError if not JSON records."""
    try:
        with open_bytes(path) as f:
            head = f.read(limit)
    except (OSError, EOFError, zlib.error) as e:
        raise FileFormatError(f"{path}: cannot be read ({e})") from None
    kind = file_kind(path)
    text = head.decode("utf-8", errors="replace")
    records: list[Any] = []
    raws = _iter_array_text(text) if kind == "array" else _iter_lines(io.BytesIO(head))
    for raw in raws:
        if raw.error is None:
            records.append(raw.value)
        if len(records) >= 20:
            break
    if not records:
        raise FileFormatError(f"{path}: no record in its first {len(head):,} bytes parses as JSON")
    return kind, records


def file_kind(path: str | Path) -> str:
    """'array' or 'jsonl', from the first non-blank character."""
    try:
        with open_bytes(path) as f:
            head = f.read(4096)
    except (OSError, EOFError, zlib.error) as e:
        raise FileFormatError(f"{path}: cannot be read ({e})") from None
    stripped = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if not stripped:
        raise FileFormatError(f"{path}: file is empty")
    if stripped[0] not in "[{":
        raise FileFormatError(f"{path}: not JSON (starts with {stripped[:20]!r}); expected a JSON array or JSON Lines")
    return "array" if stripped[0] == "[" else "jsonl"


def splittable(path: str | Path) -> bool:
    """A plain JSON Lines file: its lines can be read by byte range."""
    with open(path, "rb") as f:
        if f.read(2) == GZIP_MAGIC:
            return False
    return file_kind(path) == "jsonl"


def iter_raw(path: str | Path, looks_like_record: Callable[[Any], bool] | None = None,
             start: int = 0, end: int | None = None) -> Iterator[Raw]:
    """Raw records of a file. `looks_like_record` tells a real top-level record from a nested object when a
    damaged JSON array is resynchronised (without it, any object followed by ',' or ']' is taken).
    With `start`/`end` (plain JSON Lines only) the lines whose first byte lies in [start, end)."""
    kind = file_kind(path)
    if start or end is not None:
        if not splittable(path):
            raise ValueError(f"{path}: only plain JSON Lines files can be read by byte range")
        yield from _iter_line_range(path, start, end)
        return
    with open_bytes(path) as f:
        if kind == "jsonl":
            yield from _iter_lines(f)
        else:
            try:
                data = f.read()
            except (OSError, EOFError, zlib.error) as e:
                yield Raw("file", None, "", 0, error=("corrupt_compression", f"the file cannot be decompressed: {e}"))
                return
            yield from _iter_array_bytes(data, looks_like_record)


# ---------------------------------------------------------------- JSON Lines


def _iter_line_range(path: str | Path, start: int, end: int | None) -> Iterator[Raw]:
    """As Hadoop's line reader: a line belongs to the range holding its first byte. Line numbers come from
    counting the newlines before the range (a sequential read at memory speed, no parsing)."""
    with open(path, "rb") as f:
        if start > 0:
            f.seek(start - 1)
            f.readline()  # the rest of a line that began in the previous range (or just its newline)
        first = f.tell()
        f.seek(0)
        newlines, left = 0, first
        while left > 0:
            chunk = f.read(min(left, 1 << 24))
            if not chunk:
                break
            newlines += chunk.count(b"\n")
            left -= len(chunk)
        f.seek(first)
        yield from _iter_lines(f, first_line=newlines, end=end)


def _iter_lines(f, first_line: int = 0, end: int | None = None) -> Iterator[Raw]:
    n = first_line
    pos = f.tell() if end is not None else 0  # tracked by hand: tell() per line costs a system call
    while True:
        if end is not None and pos >= end:
            return
        try:
            b = f.readline()
        except (OSError, EOFError, zlib.error) as e:
            yield Raw(f"line:{n + 1}", n + 1, "", 0,
                      error=("corrupt_compression", f"the file cannot be decompressed after line {n}: {e}"),
                      ordinal=n)
            return
        if not b:
            return
        pos += len(b)
        n += 1
        if not b.strip():
            continue
        body = b.rstrip(b"\r\n")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            yield Raw(f"line:{n}", n, body.decode("utf-8", errors="replace"), len(body),
                      error=("invalid_utf8", f"byte {e.start} of the line is not valid UTF-8"), ordinal=n - 1)
            continue
        if n == 1:
            text = text.lstrip("\ufeff")
        try:
            value = json.loads(text)
        except ValueError as e:
            yield Raw(f"line:{n}", n, text, len(body), error=("json_parse_error", str(e)), ordinal=n - 1)
            continue
        yield Raw(f"line:{n}", n, text, len(body), value=value, ordinal=n - 1)


# ---------------------------------------------------------------- JSON arrays


def _iter_array_bytes(data: bytes, accept: Callable[[Any], bool] | None) -> Iterator[Raw]:
    text = data.decode("utf-8", errors="surrogateescape")
    yield from _iter_array_text(text, accept)


def _line_of(text: str, pos: int, cache: list[int]) -> int:
    # cache = [last_pos, last_line]: elements come in order, so count newlines incrementally.
    last_pos, last_line = cache
    line = last_line + text.count("\n", last_pos, pos)
    cache[0], cache[1] = pos, line
    return line


def _raw_for(text: str, start: int, end: int, index: int, cache: list[int]) -> Raw:
    span = text[start:end]
    nbytes = len(span.encode("utf-8", errors="surrogateescape"))
    shown = span.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
    return Raw(f"index:{index}", _line_of(text, start, cache), shown, nbytes, ordinal=index)


def _iter_array_text(text: str, accept: Callable[[Any], bool] | None = None) -> Iterator[Raw]:
    pos = _WS.match(text, 0).end()
    if text.startswith("\ufeff", pos):
        pos = _WS.match(text, pos + 1).end()
    if not text.startswith("[", pos):
        return
    pos += 1
    index = 0
    cache = [0, 1]
    n = len(text)
    while True:
        pos = _WS.match(text, pos).end()
        if pos >= n:
            return  # truncated after a complete element: nothing more to report
        if text[pos] == "]":
            return
        start = pos
        try:
            value, end = _DECODER.raw_decode(text, pos)
            after = _WS.match(text, end).end()
            if after < n and text[after] not in ",]":
                raise ValueError(f"expected ',' or ']' after the element, found {text[after]!r}")
        except ValueError as e:
            # Damaged element: it runs to the next place where an element parses cleanly.
            end = _resync(text, pos + 1, accept)
            raw = _raw_for(text, start, end, index, cache)
            raw.text = raw.text.rstrip().rstrip(",")
            raw.error = ("json_parse_error", str(e))
            yield raw
            index += 1
            pos = end + 1 if end < n and text[end] in ",[" else end
            continue
        raw = _raw_for(text, start, end, index, cache)
        if _SURROGATE.search(text, start, end):
            raw.error = ("invalid_utf8", "the element contains bytes that are not valid UTF-8")
        else:
            raw.value = value
        yield raw
        index += 1
        pos = after + 1 if after < n and text[after] == "," else after
        if after < n and text[after] == "]":
            return


def _resync(text: str, pos: int, accept: Callable[[Any], bool] | None) -> int:
    """Position of the ',' before the next element that parses, looks like a record and is followed by
    ',' or ']'; else the end of the text."""
    n = len(text)
    for m in _RESYNC.finditer(text, pos):
        at = m.end()
        try:
            value, end = _DECODER.raw_decode(text, at)
        except ValueError:
            continue
        if accept is not None and not accept(value):
            continue
        after = _WS.match(text, end).end()
        if after >= n or text[after] in ",]":
            return m.start()
    return n
