"""bench langid: accuracy of the quality filter's language identification on a labelled multilingual set,
per language, and its speed.

    python build.py bench langid [--repeat 3] [--show 15]

The set is data/samples/labelled/langid_gettext.jsonl (built by bench/_langid_set.py: 800 human
translations of program messages from Debian's gettext catalogs, 40 in each of 20 languages). A text is
right when instructlake.quality.langid.detect answers its label; "und" (too few letters) counts as wrong.
Speed: every text of the set detected `--repeat` times on one core, in texts/s.
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

LABELLED = ROOT / "data" / "samples" / "labelled" / "langid_gettext.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="passes over the set for the speed")
    ap.add_argument("--show", type=int, default=15, help="errors to print")
    args = ap.parse_args()

    from instructlake.quality.langid import detect

    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    detect("warm the model up before the clock starts")
    got = [detect(r["text"]) for r in rows]
    right: Counter = Counter()
    total: Counter = Counter()
    confused: Counter = Counter()
    errors = []
    for r, (lang, conf) in zip(rows, got, strict=True):
        total[r["lang"]] += 1
        if lang == r["lang"]:
            right[r["lang"]] += 1
        else:
            confused[(r["lang"], lang)] += 1
            errors.append((r["lang"], lang, conf, r["text"]))
    n = sum(total.values())
    print(f"language identification on {LABELLED.relative_to(ROOT)}: {sum(right.values())} of {n} right "
          f"({sum(right.values()) / n:.1%}) over {len(total)} languages")
    print(f"  {'lang':<6}{'right':>8}{'of':>6}{'accuracy':>10}  answered instead")
    for lang in sorted(total, key=lambda k: (right[k] / total[k], k)):
        instead = ", ".join(f"{g} {c}" for (want, g), c in confused.most_common() if want == lang)
        print(f"  {lang:<6}{right[lang]:>8}{total[lang]:>6}{right[lang] / total[lang]:>10.1%}  {instead}")
    for want, g, conf, text in errors[:args.show]:
        print(f"  wrong: {want} read as {g} ({conf:.2f}): {text[:110]}")

    t0 = time.perf_counter()
    for _ in range(args.repeat):
        for r in rows:
            detect(r["text"])
    secs = time.perf_counter() - t0
    chars = sum(len(r["text"]) for r in rows) * args.repeat
    print(f"speed: {n * args.repeat / secs:,.0f} texts/s, {chars / secs / 1e6:.2f} M chars/s on one core "
          f"(mean text {chars / args.repeat / n:.0f} chars)")


if __name__ == "__main__":
    main()
