"""The record scanner: top-level JSON records out of a stream of text, in bounded memory, never fatal.

A record is one top-level JSON value, or one element of a top-level array; a file may hold several arrays
or several concatenated values. The scanner counts the records it finds itself (`Scanner.records`),
whatever later becomes of them, so the stage can check that each one ends somewhere.

Each record comes out as a `Raw`: parsed, or with an error (json_parse_error, truncated, too_large,
too_deep, invalid_utf8). Memory stays near `max_record_bytes` plus a read chunk: a record over the limit
is followed to its end while only its first `keep_chars` are kept. Nesting is followed with an explicit
stack, so no record recurses, and a record deeper than `max_depth` is reported, never parsed.

After damage the scanner resynchronises at the next boundary of the same level: for an array element,
the next place from which the array goes on cleanly to its ']' (a nested list of record-shaped objects
inside the damaged element fails that check at its own ']'), for a top-level value the next line that
starts with '{' or '['. A record that is valid JSON up to the end of the file (or line) is not damaged
but cut: it runs to the end, and nothing record-shaped inside it is resynchronised to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from instructlake.ingest.extent import Extent
from instructlake.ingest.window import Limits, Raw, Window, nbytes, shown
from instructlake.jsontext import cut_short, depth_of

__all__ = ["Limits", "Raw", "Scanner", "Window"]

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\r\n]*")
_SURROGATE = re.compile("[\udc80-\udcff]")
_TOP_BOUNDARY = re.compile(r"\n(?=[\[{])")
_ELEMENT_BOUNDARY = re.compile(r"[,\n](?=[ \t\r\n]*[\[{])")
# How many following elements a resynchronisation candidate must scan cleanly through (or reach the end).
VERIFY_ELEMENTS = 64
# Text kept before a resynchronisation search's window is cut, so a candidate is not cut in half.
TAIL = 65536
# Text read past before the window forgets it (forgetting per record would copy the look-ahead each time).
COMPACT = 4 << 20


class Scanner:
    """`iter()` yields every record of a Window. `accept(value)` tells a real record from a nested object
    when a damaged array element is resynchronised. `plain_first_array`: the file's first array, when it
    starts on line 1, numbers its elements "index:N" (the locator JSON array files always had)."""

    def __init__(
        self,
        win: Window,
        limits: Limits,
        accept: Callable[[Any], bool] | None = None,
        plain_first_array: bool = True,
        unit: str = "file",
    ):
        self.win = win
        self.unit = unit  # what the window holds: a "file", or one "line" of a Lines file
        self.lim = limits
        self.accept = accept
        self.records = 0
        self.plain_first_array = plain_first_array
        self._line_values = (0, 0)  # (line, values started on it so far)
        self.ahead = limits.max_record_bytes + TAIL

    def iter(self) -> Iterator[Raw]:
        win = self.win
        win.fill(0, 1)
        pos = 1 if win.buf.startswith("\ufeff") else 0
        arrays = 0
        while True:
            pos = self._skip_ws(pos)
            if pos >= len(win.buf):
                break
            pos = self._compact(pos)
            _, line = win.where(pos)
            if win.buf[pos] == "[":
                plain = arrays == 0 and self.plain_first_array and line == 1
                arrays += 1
                pos = yield from self._array(pos + 1, "" if plain else f"{self._locator(line)}/")
                continue
            raw, pos = self._record(pos, self._locator(line), top=True)
            yield raw
        if win.stream_error:
            b, line = win.where(len(win.buf))
            self.records += 1  # the unreadable rest holds records no one can count: one row says so
            yield Raw(
                f"byte:{b}",
                line,
                "",
                0,
                ordinal=b,
                error=(
                    "corrupt_compression",
                    f"the file cannot be decompressed after byte {b:,}: {win.stream_error}",
                ),
            )

    def _compact(self, pos: int) -> int:
        """Forget the text before pos once there is enough of it (dropping per record would copy the
        look-ahead each time)."""
        if pos > COMPACT:
            self.win.drop(pos)
            return 0
        return pos

    def _locator(self, line: int) -> str:
        seen, k = self._line_values
        k = k + 1 if seen == line else 1
        self._line_values = (line, k)
        return f"line:{line}" if k == 1 else f"line:{line}:{k}"

    def _skip_ws(self, pos: int) -> int:
        win = self.win
        while True:
            pos = _WS.match(win.buf, pos).end()
            if pos < len(win.buf):
                return pos
            win.drop(pos)
            pos = 0
            if not win.more():
                return 0

    def _array(self, pos: int, prefix: str) -> Iterator[Raw]:
        """Elements of the array whose '[' is just before buf[pos]; returns the position after its ']'."""
        win = self.win
        index = 0
        while True:
            pos = self._skip_ws(pos)
            if pos >= len(win.buf):
                return pos  # cut after a complete element: no record is lost
            c = win.buf[pos]
            if c == "]":
                return pos + 1
            if c == ",":  # an empty slot (",,"): no record there
                pos += 1
                continue
            raw, pos = self._record(self._compact(pos), f"{prefix}index:{index}", top=False)
            index += 1
            yield raw

    # ---------------------------------------------------------------- one record

    def _record(self, s: int, locator: str, top: bool) -> tuple[Raw, int]:
        """The record starting at buf[s] and the position after it."""
        win = self.win
        self.records += 1
        win.fill(s, self.ahead)
        byte, line = win.where(s)
        try:
            value, end = _DECODER.raw_decode(win.buf, s)
            ok = top or self._element_ends(end)
        except (ValueError, RecursionError):
            ok = False
        if ok:
            return self._finish(win.buf[s:end], locator, line, byte, value), end
        return self._slow(s, locator, line, byte, top)

    def _element_ends(self, end: int) -> bool:
        buf = self.win.buf
        after = _WS.match(buf, end).end()
        return after >= len(buf) or buf[after] in ",]"

    def _finish(
        self,
        text: str,
        locator: str,
        line: int,
        byte: int,
        value: Any = None,
        error: tuple[str, str] | None = None,
    ) -> Raw:
        lim = self.lim
        size = nbytes(text)
        raw = Raw(locator, line, shown(text[: lim.keep_chars]), size, ordinal=byte)
        if size > lim.max_record_bytes:
            raw.error = ("too_large", self._too_large(size))
        elif text.count("{") + text.count("[") > lim.max_depth and depth_of(text) > lim.max_depth:
            raw.error = (
                "too_deep",
                f"the record nests deeper than ingest.max_depth = {lim.max_depth} levels",
            )
        elif error is not None:
            raw.error = error
        elif _SURROGATE.search(text):
            raw.error = ("invalid_utf8", "the record contains bytes that are not valid UTF-8")
        else:
            raw.value = value
        return raw

    def _too_large(self, size: int) -> str:
        return f"{size:,} bytes > ingest.max_record_bytes = {self.lim.max_record_bytes:,}"

    def _slow(self, s: int, locator: str, line: int, byte: int, top: bool) -> tuple[Raw, int]:
        """A record that did not parse as it stands: where it ends (or where its damage is), keeping at
        most keep_chars of a record over the limit, and what is wrong with it."""
        ext = Extent(self.win, self.lim, s)
        end, problem = ext.scan()
        if problem is None and ext.kept is None:
            raw = self._balanced(self.win.buf[s:end], locator, line, byte)
            if raw.error is None or raw.error[0] != "json_parse_error":
                return raw, end
            # Brackets can close by chance after a lost quote turns strings inside out, beyond the next
            # records: a verified boundary inside the span ends the record there instead.
            verdict, cut = self._boundary(s + 1, top, False)
            if verdict != "found" or cut >= end:
                return raw, end
            text = self.win.buf[s:cut].rstrip().rstrip(",")
            return self._finish(text, locator, line, byte, error=raw.error), cut
        if problem is None:
            return self._big(ext, locator, line, byte, None), end
        if not self._cut(ext, problem):
            end = self._resync(ext, top, truncated=problem[0] == "truncated")
        if ext.kept is not None:
            return self._big(ext, locator, line, byte, problem), end
        text = self.win.buf[ext.start : end].rstrip().rstrip(",")
        if problem[0] == "truncated" and end < len(self.win.buf):
            problem = ("json_parse_error", "its brackets do not close before the next record")
        elif problem[0] == "truncated" and self.unit == "line":
            problem = ("json_parse_error", "the line ends inside the record")
        return self._finish(text, locator, line, byte, error=problem), end

    def _cut(self, ext: Extent, problem: tuple[str, str]) -> bool:
        """A record that is valid JSON up to the end of the file (or line) was cut there, not damaged: all
        of the rest is its own. Nothing in it is a record, however record-shaped, even where a nested
        list of objects closes right at the cut and so looks like the rest of its array."""
        if problem[0] != "truncated" or ext.kept is not None or ext.too_deep:
            return False
        return cut_short(self.win.buf[ext.start :])

    def _balanced(self, text: str, locator: str, line: int, byte: int) -> Raw:
        """Brackets that close: a value with its error (or none: an array element without its comma)."""
        if depth_of(text) > self.lim.max_depth:
            return self._finish(text, locator, line, byte)
        try:
            return self._finish(text, locator, line, byte, json.loads(text))
        except (ValueError, RecursionError) as e:
            return self._finish(text, locator, line, byte, error=("json_parse_error", str(e)))

    def _big(self, ext: Extent, locator: str, line: int, byte: int, problem: tuple[str, str] | None) -> Raw:
        detail = self._too_large(ext.size)
        if ext.too_deep:
            detail += f"; nests deeper than ingest.max_depth = {self.lim.max_depth} levels"
        if problem is not None:
            detail += f"; damaged: {problem[1]}"
        return Raw(locator, line, shown(ext.kept or ""), ext.size, ordinal=byte, error=("too_large", detail))

    # ---------------------------------------------------------------- resynchronisation

    def _resync(self, ext: Extent, top: bool, truncated: bool) -> int:
        """Where the next record of this level begins after a damaged one that begins at buf[ext.start]
        (or whose first keep_chars the Extent kept), reading on (and forgetting, past the limit) until
        one is found or the file ends. A record the file cut short (`truncated`) only ends early where
        the array it is in can be seen to close."""
        win, lim = self.win, self.lim
        at = ext.start + 1 if ext.kept is None else 0
        while True:
            verdict, at = self._boundary(at, top, truncated)
            if verdict == "found":
                break
            if verdict == "none" or not win.more():
                at = len(win.buf)
                break
            if ext.kept is None and len(win.buf) - ext.start > lim.max_record_bytes + TAIL:
                ext.keep()
            if ext.kept is not None and at > TAIL:
                ext.forget(at - TAIL)
                at = TAIL
        if ext.kept is not None:
            ext.size = ext.dropped + nbytes(win.buf[ext.start : at])
        return at

    def _boundary(self, at: int, top: bool, truncated: bool) -> tuple[str, int]:
        """("found", p): the next record begins after buf[p]; ("more", p): read on, then search again
        from p; ("none", _): nothing in the rest of the file."""
        buf, eof = self.win.buf, self.win.eof
        pattern = _TOP_BOUNDARY if top else _ELEMENT_BOUNDARY
        while True:
            m = pattern.search(buf, at)
            if m is None:
                return ("none", at) if eof else ("more", max(at, len(buf) - 4096))
            if top:
                return "found", m.start() + 1
            verdict = self._continues_array(_WS.match(buf, m.end()).end(), truncated)
            if verdict is None:
                return "more", m.start()
            if verdict:
                return "found", m.start()
            at = m.end()

    def _continues_array(self, at: int, must_close: bool) -> bool | None:
        """Does an array go on cleanly from buf[at]: elements, then ']', then the end of the file or the
        start of another top-level value? None when the text ends before that can be told."""
        buf, eof = self.win.buf, self.win.eof
        for k in range(VERIFY_ELEMENTS):
            try:
                value, end = _DECODER.raw_decode(buf, at)
            except (ValueError, RecursionError):
                return False if eof or len(buf) - at > self.lim.max_record_bytes else None
            if k == 0 and self.accept is not None and not self.accept(value):
                return False
            after = _WS.match(buf, end).end()
            if after >= len(buf):
                return (not must_close) if eof else None
            if buf[after] == "]":
                rest = _WS.match(buf, after + 1).end()
                if rest >= len(buf):
                    return True if eof else None
                return buf[rest] in "[{"
            if buf[after] != ",":
                return False
            at = _WS.match(buf, after + 1).end()
        return not must_close
