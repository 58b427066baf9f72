"""JSON from outside (raw files, benchmark sets, LLM answers, HTTP bodies) parsed without recursion risk.

`json.loads` recurses once per nesting level, so a text of 100,000 '[' raises RecursionError wherever it
is parsed. `loads(text, max_depth)` measures the nesting first with a loop and refuses a text deeper than
`max_depth` with a ValueError, like any other unusable JSON. `compact_dumps` is json's compact dumps
through orjson, for the values where it writes the same bytes. `scrub_surrogates` replaces the lone
surrogates a JSON escape such as "\\ud83d" can produce (they cannot be written as UTF-8: Arrow and Delta
refuse them) with U+FFFD.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# Shared with the ingest scanner: what changes nesting outside strings, and what ends plain string text.
STRUCT = re.compile(r'["{}\[\]]')
STRING_STOP = re.compile(r'["\\\x00-\x1f]')
_LONE = re.compile("[\ud800-\udfff]")
# What a cut can leave of the last token: an open string (written unrolled, so a failed match cannot
# backtrack without end), the start of a \u escape, or the start of a number or literal.
_CUT_STRING = re.compile(r'"[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*\\?')
# json's decoder reports a \u escape at the very end (and a high surrogate's pair) as invalid.
_CUT_ESCAPE = re.compile(r"u[0-9a-fA-F]{0,4}(?:\\(?:u[0-9a-fA-F]{0,4})?)?")
_CUT_VALUE = re.compile(r"[-0-9][-+.eE0-9]{0,40}|t(?:ru?)?|f(?:a(?:ls?)?)?|n(?:ul?)?")
_CUT_NUMBER = re.compile(r"[.eE][-+.eE0-9]{0,40}")  # after the digits the decoder took as a number


def compact_dumps(value: Any) -> bytes:
    """json.dumps(value, ensure_ascii=False, separators=(",", ":")) as UTF-8, byte for byte, for a value of
    strings, lists and dicts with string keys (what a sample id hashes; floats are written differently), about
    4x faster: orjson writes the same bytes for those; a string orjson refuses (a lone surrogate) goes to
    json, which fails as before."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class TooDeepError(ValueError):
    """The JSON nests deeper than allowed."""


def depth_of(text: str) -> int:
    """Deepest nesting of a JSON text, strings skipped, without recursion."""
    depth = best = 0
    i, n = 0, len(text)
    while i < n:
        m = STRUCT.search(text, i)
        if m is None:
            break
        i = m.start()
        ch = text[i]
        if ch == '"':
            i += 1
            while True:
                m = STRING_STOP.search(text, i)
                if m is None:
                    return best
                i = m.start() + 1
                if text[i - 1] == "\\":
                    i += 1
                elif text[i - 1] == '"':
                    break
            continue
        if ch in "[{":
            depth += 1
            best = max(best, depth)
        else:
            depth -= 1
        i += 1
    return best


def cut_short(text: str) -> bool:
    """Is text the start of one JSON value, valid as far as it goes, that ends before the value closes?
    That is what a file cut inside its last record leaves of it; damage (a lost quote, a lost or stray
    bracket) leaves text that stops being JSON before its end. Read by json's C decoder: its first error
    is where the text stops being a valid prefix, unless that is the end or the last token cut short."""
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg.startswith("Unterminated string"):
            return _CUT_STRING.fullmatch(text, e.pos) is not None
        if e.msg.startswith("Invalid \\uXXXX"):
            return _CUT_ESCAPE.fullmatch(text, e.pos) is not None
        if e.pos == len(text):  # valid up to the end: a value, key, ',' or ':' would come next
            return True
        if e.msg == "Expecting value":
            return _CUT_VALUE.fullmatch(text, e.pos) is not None
        if e.msg == "Expecting ',' delimiter" and text[e.pos - 1].isdigit():
            return _CUT_NUMBER.fullmatch(text, e.pos) is not None
        return False
    except RecursionError:
        return False
    return False  # a whole value: nothing was cut


def loads(text: str | bytes, max_depth: int = 64, strict: bool = True) -> Any:
    """json.loads, but a text nested deeper than max_depth raises TooDeepError (a ValueError).
    strict=False lets strings hold raw control characters (a tab or newline a model did not escape)."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    if text.count("[") + text.count("{") > max_depth:
        depth = depth_of(text)
        if depth > max_depth:
            raise TooDeepError(f"the JSON nests {depth} levels deep (at most {max_depth} are read)")
    try:
        return json.loads(text, strict=strict)
    except RecursionError:
        raise TooDeepError("the JSON nests too deeply to read") from None


def scrub_text(s: str) -> str:
    return _LONE.sub("\ufffd", s) if _LONE.search(s) else s


def scrub_surrogates(value: Any) -> Any:
    """The value with every lone surrogate in its strings (keys too) replaced by U+FFFD; iterative."""
    if isinstance(value, str):
        return scrub_text(value)
    if not isinstance(value, (list, dict)):
        return value
    root: list[Any] = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        parent, key = stack.pop()
        v = parent[key]
        if isinstance(v, str):
            parent[key] = scrub_text(v)
        elif isinstance(v, list):
            stack.extend((v, i) for i in range(len(v)))
        elif isinstance(v, dict):
            clean = {scrub_text(k) if isinstance(k, str) else k: x for k, x in v.items()}
            parent[key] = clean
            stack.extend((clean, k) for k in clean)
    return root[0]
