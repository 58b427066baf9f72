"""Precision and recall of the detectors on a labelled set (rows of text and spans with start, end, kind),
as `bench pii` prints them and tests/unit/test_pii.py checks them.

A found span is right when it overlaps a labelled span of its kind; a labelled span is found when a found
span of its kind overlaps it. Overlap rather than equality, because a placeholder that covers a little
more or less than the label (a key with its trailing '=') still removes it; `exact` counts the spans
found to the character.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from instructlake.scrub.detect import KINDS, Span


def _overlaps(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def score(rows: Iterable[dict], find: Callable[[str], list[Span]]) -> dict[str, dict[str, float]]:
    """{kind: {tp, fp, fn, exact, precision, recall}} and an `all` row; `misses` lists the errors."""
    c: dict[str, Counter] = {k: Counter() for k in (*KINDS, "all")}
    misses = []
    for row in rows:
        gold = [(s["start"], s["end"], s["kind"]) for s in row["spans"]]
        found = [(s.start, s.end, s.kind) for s in find(row["text"])]
        for f in found:
            hit = any(g[2] == f[2] and _overlaps(f, g) for g in gold)
            for k in (f[2], "all"):
                c[k]["tp" if hit else "fp"] += 1
                c[k]["exact"] += f in gold
            if not hit:
                misses.append(("false positive", f[2], row["text"][f[0] : f[1]], row["id"]))
        for g in gold:
            if not any(f[2] == g[2] and _overlaps(f, g) for f in found):
                for k in (g[2], "all"):
                    c[k]["fn"] += 1
                misses.append(("missed", g[2], row["text"][g[0] : g[1]], row["id"]))
    out: dict = {}
    for k, n in c.items():
        tp, fp, fn = n["tp"], n["fp"], n["fn"]
        out[k] = {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "exact": n["exact"],
            "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": tp / (tp + fn) if tp + fn else 1.0,
        }
    out["misses"] = misses
    return out
