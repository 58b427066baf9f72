"""Where one JSON record ends, found with an explicit stack in bounded memory (the scanner's slow path)."""

from __future__ import annotations

import re

from instructlake.ingest.window import Limits, Window, nbytes, shown
from instructlake.jsontext import STRING_STOP as _STR_STOP
from instructlake.jsontext import STRUCT as _STRUCT

_OPEN = re.compile(r"[\[{]+")
_TOKEN_END = re.compile(r"[\s,\]}\[{\"]")


class Extent:
    """Follows one record from buf[start] to its end with an explicit stack, refilling the window; past
    max_record_bytes it keeps only the first keep_chars and forgets the rest as it goes."""

    def __init__(self, win: Window, lim: Limits, start: int):
        self.win = win
        self.lim = lim
        self.start = start  # where the record begins in buf; 0 once its head is kept aside
        self.kept: str | None = None  # the first keep_chars, once the record is over the limit
        self.dropped = 0  # bytes forgotten so far
        self.size = 0
        self.too_deep = False

    def keep(self) -> None:
        self.kept = self.win.buf[self.start : self.start + self.lim.keep_chars]

    def forget(self, cut: int) -> None:
        self.dropped += nbytes(self.win.buf[self.start : cut])
        self.win.drop(cut)
        self.start = 0

    def _length(self, i: int) -> int:
        return self.dropped + nbytes(self.win.buf[self.start : i])

    def scan(self) -> tuple[int, tuple[str, str] | None]:
        """(end, None) when the record's nesting closes; (where, (reason, detail)) at damage."""
        win, lim = self.win, self.lim
        i = self.start
        if i >= len(win.buf) or win.buf[i] not in "[{":
            return self._scalar()
        stack: list[str] = []
        deep = 0  # levels past max_depth: counted, not stacked
        while True:
            if i >= len(win.buf):
                i = self._refill(i)
                if i < 0:
                    self.size = self._length(len(win.buf))
                    return len(win.buf), ("truncated", "the file ends inside the record")
                continue
            m = _STRUCT.search(win.buf, i)
            if m is None:
                i = len(win.buf)
                continue
            i = m.start()
            ch = win.buf[i]
            if ch == '"':
                j = self._string_end(i + 1)
                if j < 0:
                    return self._unclosed(-j - 1)
                i = j
            elif ch in "[{":
                run = _OPEN.match(win.buf, i).group()
                room = max(0, lim.max_depth - len(stack))
                stack.extend(run[:room])
                if len(run) > room:
                    deep += len(run) - room
                    self.too_deep = True
                i += len(run)
            else:
                if deep:
                    deep -= 1
                elif not stack or (stack.pop() == "[") != (ch == "]"):
                    return self._damaged(i, f"a {ch!r} that closes nothing open")
                i += 1
                if not stack and not deep:
                    self.size = self._length(i)
                    return i, None

    def _refill(self, i: int) -> int:
        """Read on from the end of the buffer (i == len(buf), or a backslash just before it), forgetting
        what is past the limit. The position i has moved to, or -1 at the end of the file."""
        if self.kept is None and self._length(i) > self.lim.max_record_bytes:
            self.keep()
        if self.kept is not None and i > self.start:
            self.forget(i)
            i = 0
        return i if self.win.more() else -1

    def _unclosed(self, at: int) -> tuple[int, tuple[str, str]]:
        if at >= len(self.win.buf) and self.win.eof:
            self.size = self._length(at)
            return at, ("truncated", "the file ends inside the record")
        return self._damaged(at, "a string is not closed before the end of its line")

    def _damaged(self, at: int, detail: str) -> tuple[int, tuple[str, str]]:
        self.size = self._length(at)
        return at, ("json_parse_error", detail)

    def _string_end(self, i: int) -> int:
        """Position after the closing quote of a string whose body starts at i; -(p + 1) for a raw line
        break or control character at p inside it, or the end of the file (never closed)."""
        win = self.win
        while True:
            m = _STR_STOP.search(win.buf, i)
            if m is None:
                i = self._refill(len(win.buf))
                if i < 0:
                    return -len(win.buf) - 1
                continue
            i = m.start()
            ch = win.buf[i]
            if ch == '"':
                return i + 1
            if ch == "\\":
                if i + 1 >= len(win.buf):
                    i = self._refill(i)  # keeps the backslash: the window is not cut mid-escape
                    if i < 0:
                        return -len(win.buf) - 1
                    continue
                i += 2
                continue
            return -i - 1

    def _scalar(self) -> tuple[int, tuple[str, str] | None]:
        """A value that is not an object or array and did not parse: a bad string or a stray token."""
        buf, s = self.win.buf, self.start
        if buf.startswith('"', s):
            j = self._string_end(s + 1)
            if j < 0:
                return self._unclosed(-j - 1)
            self.size = self._length(j)
            return j, ("json_parse_error", "a string that does not parse")
        m = _TOKEN_END.search(buf, s + 1)
        end = m.start() if m else len(buf)
        self.size = self._length(end)
        return end, ("json_parse_error", f"{shown(buf[s:end][:40])!r} is not a JSON value")
