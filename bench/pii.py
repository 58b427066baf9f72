"""bench pii: precision and recall of the scrub stage's detectors on the labelled set, and their speed.

    python build.py bench pii [--repeat 3] [--show 20]

The labelled set is data/samples/labelled/pii_planted.jsonl (built by bench/_pii_set.py: 1,000 real texts
from data/samples, half with code, 480 planted PII values of five kinds, 120 planted look-alikes, the base
texts' own PII labelled by hand). Scoring: instructlake.scrub.evaluate (a found span is right when it
overlaps a labelled span of its kind). Then every text of the sample files (about 12,600 instructions,
inputs and answers) is scanned: what is found there is listed for a reader to judge, and the time gives
the speed in texts/s and MB/s on one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT / "bench"))

LABELLED = ROOT / "data" / "samples" / "labelled" / "pii_planted.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="passes over the sample texts for the speed")
    ap.add_argument("--show", type=int, default=20, help="errors to print")
    args = ap.parse_args()

    from _pii_set import base_texts

    from instructlake.scrub.detect import find
    from instructlake.scrub.evaluate import score

    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    result = score(rows, find)
    misses = result.pop("misses")
    print(f"labelled set: {len(rows):,} texts, {sum(len(r['spans']) for r in rows):,} labelled spans")
    print(f"{'kind':12} {'labelled':>8} {'found':>6} {'right':>6} {'exact':>6} {'precision':>9} {'recall':>7}")
    for kind, r in result.items():
        print(f"{kind:12} {r['tp'] + r['fn']:8} {r['tp'] + r['fp']:6} {r['tp']:6} {r['exact']:6} "
              f"{r['precision']:9.3f} {r['recall']:7.3f}")
    for what, kind, text, rid in misses[:args.show]:
        print(f"  {what}: {kind} {text[:80]!r} (text {rid})")

    texts = [t for _, t in base_texts()]
    found = Counter()
    t0 = time.perf_counter()
    for _ in range(args.repeat):
        for t in texts:
            for s in find(t):
                found[(s.kind, t[s.start:s.end])] += 1
    seconds = (time.perf_counter() - t0) / args.repeat
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f"\nall sample texts: {len(texts):,} texts, {mb:.1f} MB: {len(texts) / seconds:,.0f} texts/s, "
          f"{mb / seconds:.2f} MB/s on one core")
    print("found there (to judge by eye):")
    for (kind, value), n in sorted(found.items()):
        print(f"  {kind:12} {n // args.repeat:3}x {value[:80]!r}")


if __name__ == "__main__":
    main()
