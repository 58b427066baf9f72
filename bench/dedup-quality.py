"""bench dedup-quality: pair precision / recall / F1 of `instructlake dedup` on a benchmark with known truth.

    python build.py bench dedup-quality [--bases 800] [--seed 1]

Bases are distinct real Alpaca samples from data/samples/. Each base gets variants: case / whitespace /
punctuation edits, word insertions, deletions and swaps at 1%, 2% and 5% of the words, a short prefix
and suffix, a prompt-template wrapper; and distinct-but-similar texts: a new task in the same template,
halves of two bases glued together, the base's instruction with another response.
Ground truth is the definition dedup implements, computed exactly: two samples are duplicates when the
Jaccard similarity of their normalized word 5-gram sets reaches the threshold, closed transitively.
Pair precision / recall: every two samples in one predicted cluster vs in one true cluster. The table
after it says, per kind, how often the variant was clustered with its base and how often it truly is
a duplicate by that definition (short texts with a few edited words often are not).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILLER = "really quite very also just then still even more some".split()
# Common prompt formats (dedup strips their scaffolding before matching).
TEMPLATES = [
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\n{x}\n\n### Response:",
    "[INST] {x} [/INST]",
    "<|im_start|>user\n{x}<|im_end|>",
]


def load_bases(n: int, rng: random.Random) -> list[dict]:
    seen, out = set(), []
    for name in ("alpaca_en_demo.json", "cherry_alpaca_5_percent.json"):
        for r in json.loads((ROOT / "data" / "samples" / name).read_text()):
            key = (r["instruction"].strip().lower(), r["input"].strip().lower())
            words = len((r["instruction"] + " " + r["input"] + " " + r["output"]).split())
            if key in seen or words < 40:
                continue
            seen.add(key)
            out.append({"instruction": r["instruction"], "input": r["input"], "output": r["output"]})
    rng.shuffle(out)
    return out[:n]


def edit_words(text: str, rate: float, rng: random.Random) -> str:
    words = text.split(" ")
    k = max(1, round(len(words) * rate))
    for _ in range(k):
        op = rng.choice(("insert", "delete", "swap"))
        i = rng.randrange(len(words))
        if op == "insert":
            words.insert(i, rng.choice(FILLER))
        elif op == "delete" and len(words) > 5:
            del words[i]
        elif i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def surface(text: str, rng: random.Random) -> str:
    t = text.upper() if rng.random() < 0.5 else text.lower()
    t = t.replace(" ", "  ", 3).replace(".", " .", 2)
    return t + rng.choice(("!", "?!", " ..."))


def build(bases: list[dict], fresh: list[dict], rng: random.Random) -> list[tuple[dict, int, str, tuple]]:
    """(record, family, kind, related families). Variants belong to their base's family; negatives are
    made from other bases' parts or from fresh samples and relate to the families they borrow from."""
    rows: list[tuple[dict, int, str, tuple]] = []
    n = len(bases)
    for g, b in enumerate(bases):
        fam = (g,)
        rows.append((b, g, "base", fam))
        rows.append(({**b, "instruction": surface(b["instruction"], rng), "output": surface(b["output"], rng)},
                     g, "case/space/punct", fam))
        for rate in (0.01, 0.02, 0.05):
            rows.append(({**b, "instruction": edit_words(b["instruction"], rate, rng),
                          "output": edit_words(b["output"], rate, rng)}, g, f"word edits {rate:.0%}", fam))
        pre = rng.choice(("Please help: ", "Quick question. ", "Task: "))
        rows.append(({**b, "instruction": pre + b["instruction"], "output": b["output"] + " Hope this helps."},
                     g, "prefix/suffix", fam))
        tmpl = TEMPLATES[g % len(TEMPLATES)]
        rows.append(({**b, "instruction": tmpl.format(x=b["instruction"])}, g, "template wrapper", fam))
        other = bases[(g + 1) % n]
        f = fresh[g % len(fresh)]
        rows.append(({**f, "instruction": tmpl.format(x=f["instruction"])}, -1, "neg: same template, new task",
                     (g,)))
        half_b = (b["instruction"] + " " + b["output"]).split()
        half_o = (other["instruction"] + " " + other["output"]).split()
        rows.append(({"instruction": " ".join(half_b[: len(half_b) // 2]), "input": "",
                      "output": " ".join(half_o[len(half_o) // 2:])}, -1, "neg: halves of two bases",
                     (g, (g + 1) % n)))
        rows.append(({**b, "output": bases[(g + 7) % n]["output"]}, -1, "neg: other response", (g, (g + 7) % n)))
    return rows


def conv_text(r: dict) -> str:
    user = f"{r['instruction'].strip()}\n\n{r['input'].strip()}" if r["input"].strip() else r["instruction"].strip()
    return f"{user}\n{r['output'].strip()}"


def true_pairs(rows, ids: dict[int, str], threshold: float, ngram: int) -> tuple[set, dict]:
    """Pairs whose exact shingle Jaccard reaches the threshold, closed transitively (clusters are
    components). Compared: every two rows related to one family."""
    import pyarrow as pa

    from instructlake.dedup.minhash import normalize, shingle_set

    order = list(ids)
    texts = normalize(pa.array([conv_text(rows[i][0]) for i in order])).to_pylist()
    sets = {i: shingle_set(t, ngram) for i, t in zip(order, texts, strict=True)}
    by_family = defaultdict(list)
    for i in ids:
        for fam in rows[i][3]:
            by_family[fam].append(i)
    parent = {i: i for i in ids}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    best = {}
    for members in by_family.values():
        for a, b in itertools.combinations(members, 2):
            sa, sb = sets[a], sets[b]
            j = len(sa & sb) / len(sa | sb) if sa | sb else 0.0
            best[(a, b)] = best[(b, a)] = max(j, best.get((a, b), 0.0))
            if j >= threshold:
                parent[find(a)] = find(b)
    groups = {ids[i]: find(i) for i in ids}
    return pairs(groups), best


def pairs(groups: dict[str, object]) -> set[tuple[str, str]]:
    members = defaultdict(list)
    for sid, grp in groups.items():
        members[grp].append(sid)
    out = set()
    for m in members.values():
        out.update(itertools.combinations(sorted(m), 2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bases", type=int, default=800)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. dedup.threshold=0.7")
    a = ap.parse_args()

    from instructlake.config import load_config
    from instructlake.dedup import stage as dedup
    from instructlake.ingest import stage as ingest
    from instructlake.spark import get_session
    from instructlake.store import Store

    rng = random.Random(a.seed)
    pool = load_bases(a.bases * 2, rng)
    rows = build(pool[: a.bases], pool[a.bases:], rng)
    tmp = Path(tempfile.mkdtemp(prefix="bench-dedup-quality-"))
    try:
        path = tmp / "bench.jsonl"
        path.write_text("\n".join(json.dumps(r[0]) for r in rows))
        cfg = load_config("local", a.set, warehouse=str(tmp / "wh"))
        spark = get_session(cfg.platform, "bench-dedup-quality")
        store = Store(spark, cfg.warehouse)
        ingest.run(spark, store, cfg, [str(path)], source="bench")
        t = time.time()
        r = dedup.run(spark, store, cfg)
        secs = time.time() - t
        line_of = {s["sample_id"]: int(s["source_id"].rsplit(":", 1)[1]) - 1
                   for s in store.read("samples").select("sample_id", "source_id").collect()}
        pred_all = {c["sample_id"]: c["cluster_id"] for c in store.read("dedup_clusters").collect()}
        spark.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ids = {i: sid for sid, i in line_of.items()}
    t_pairs, best_j = true_pairs(rows, ids, cfg.dedup.threshold, cfg.dedup.ngram)
    p_pairs = pairs(pred_all)
    tp = len(t_pairs & p_pairs)
    base_of = {rows[i][1]: i for i in ids if rows[i][2] == "base"}
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for i, sid in ids.items():
        rec, fam, kind, related = rows[i]
        if kind == "base":
            continue
        same = [pred_all[sid] == pred_all[ids[base_of[f]]] for f in related if f in base_of]
        js = [best_j.get((i, base_of[f]), 0.0) for f in related if f in base_of]
        kinds[kind][0] += int(any(same))
        kinds[kind][1] += int(any(j >= cfg.dedup.threshold for j in js))
        kinds[kind][2] += 1
    precision = tp / len(p_pairs) if p_pairs else 1.0
    recall = tp / len(t_pairs) if t_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    print(f"\nbenchmark: {len(rows):,} records from {a.bases} real bases; {len(line_of):,} distinct samples "
          f"after ingest; {len(t_pairs):,} true duplicate pairs (exact shingle Jaccard >= "
          f"{cfg.dedup.threshold}, clusters closed transitively)")
    print(f"dedup ({secs:.1f}s, threshold {cfg.dedup.threshold}, {r.counts['bands']} bands x "
          f"{r.counts['rows']} rows): {r.counts['exact_duplicates']:,} exact + "
          f"{r.counts['near_duplicates']:,} near duplicates, {len(p_pairs):,} predicted pairs")
    print(f"pair precision {precision:.4f}  recall {recall:.4f}  F1 {f1:.4f}   (goal: F1 >= 0.95)")
    print("\nper variant kind: share clustered with its base / share whose true Jaccard to it reaches the "
          "threshold")
    for kind, (hit, true, n) in sorted(kinds.items()):
        print(f"  {kind:<32} clustered {hit / n:6.3f}   truly >= threshold {true / n:6.3f}   of {n:,}")


if __name__ == "__main__":
    sys.exit(main())
