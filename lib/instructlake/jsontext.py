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
