"""bench decontam: recall on disguised benchmark prompts and false flags on clean samples, per threshold.

    python build.py bench decontam [--contaminated 600] [--clean 4000] [--seed 0]

Benchmark: AlpacaEval's 805 instructions (built in). Contaminated rows: prompts drawn from it and
rewritten the ways leaked prompts show up in training data, one kind per row (and two combined):
  reorder    sentences or clauses in another order
  synonyms   about a third of the common words swapped for synonyms
  wrapper    added framing and context before and after ("My teacher gave me this: ...")
  partial    a contiguous 60-80% of the words of a prompt of 10 words or more
  numbers    digits changed and first names swapped for others (prompts holding a number or a first name)
  combined   synonyms + wrapper
Clean rows: the instructions of the pool files in data/samples/ (the benchmark file excluded), those that
share a 13-gram with a benchmark prompt removed first and counted (they are real overlaps, not clean).

Matching is the stage's own code (decontam/match.py: cosine candidates and n-gram hits) on
all-MiniLM-L6-v2 vectors. Printed per cosine threshold: recall on contaminated rows (flag = cosine >=
threshold or a shared 13-gram), recall per kind, and the false-flag rate on clean rows; then the
threshold with the best recall at <= 1% false flags (the default of decontam.cosine_threshold comes
from this). Goal: recall >= 0.95 at <= 1% false flags. Also: semantic-dedup pairs/s of the blockwise
pairwise cosine on the clean rows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SYNONYMS = {
    "write": "compose", "explain": "describe", "describe": "outline", "give": "provide", "make": "create",
    "create": "produce", "list": "enumerate", "tell": "inform", "help": "assist", "good": "great", "best": "top",
    "some": "a few", "how": "in what way", "what": "which", "show": "demonstrate", "find": "locate",
    "use": "utilize", "need": "require", "want": "wish", "important": "significant", "different": "various",
    "big": "large", "small": "little", "many": "numerous", "story": "tale", "short": "brief", "simple": "easy",
    "answer": "response", "question": "query", "example": "instance", "idea": "notion", "think": "believe",
    "get": "obtain", "start": "begin", "end": "finish", "buy": "purchase", "quick": "fast", "famous": "well-known",
    "names": "titles", "people": "individuals", "job": "position", "home": "house", "kids": "children",
    "problem": "issue", "way": "method", "things": "items", "thing": "item", "help me": "assist me",
    "please": "kindly", "recipe": "set of cooking instructions", "poem": "verse", "summarize": "sum up",
}
NAMES = ["Alice", "Bob", "Carlos", "Dana", "Elena", "Farid", "Grace", "Hiro", "Ingrid", "Jamal", "Kofi", "Lena"]
# first names that may appear in prompts; only these are swapped (a place or product name is not a name)
FIRST_NAMES = set(NAMES) | {"Mike", "Jay", "Lucie", "John", "Mary", "James", "Sarah", "David", "Emma", "Tom", "Anna",
                            "Peter", "Paul", "Lisa", "Mark", "Jane", "Jack", "Emily", "Michael", "Chris", "Alex",
                            "Sam", "Kate", "Ben", "Laura", "Robert", "Linda", "Daniel", "Sophia", "Larry", "Elon"}
WRAPPERS = [
    ("My teacher gave me this assignment: ", " Can you help?"),
    ("I have a question for you. ", " Please answer in detail."),
    ("Context: I am preparing for a job interview next week.\n\n", ""),
    ("Hey! ", " Thanks in advance :)"),
    ("Answer the following as an expert would.\n", "\nKeep it concise."),
    ("Q: ", "\nA:"),
]


def reorder(p: str, rng: random.Random) -> str:
    parts = [s for s in re.split(r"(?<=[.?!])\s+", p) if s]
    if len(parts) < 2:
        parts = [s.strip() for s in re.split(r",\s*|\band\b", p) if s.strip()]
    if len(parts) < 2:
        words = p.split()
        cut = max(1, len(words) // 2)
        parts = [" ".join(words[cut:]), " ".join(words[:cut])]
    rng.shuffle(parts)
    return ", ".join(parts) if len(parts) > 1 else parts[0]


def synonyms(p: str, rng: random.Random) -> str:
    out = []
    for w in p.split(" "):
        key = w.lower().strip(".,?!:;")
        if key in SYNONYMS and rng.random() < 0.7:
            w = w.lower().replace(key, SYNONYMS[key])
        out.append(w)
    return " ".join(out)


def wrapper(p: str, rng: random.Random) -> str:
    pre, post = rng.choice(WRAPPERS)
    return pre + p + post


def partial(p: str, rng: random.Random) -> str:
    words = p.split()
    if len(words) < 5:
        return p
    k = max(3, int(len(words) * rng.uniform(0.6, 0.8)))
    start = rng.randint(0, len(words) - k)
    return " ".join(words[start: start + k])


def numbers(p: str, rng: random.Random) -> str:
    p = re.sub(r"\d", lambda m: str((int(m.group()) + rng.randint(1, 8)) % 10), p)
    return re.sub(r"\b[A-Z][a-z]+\b", lambda m: rng.choice([n for n in NAMES if n != m.group()])
                  if m.group() in FIRST_NAMES else m.group(), p)


KINDS = {"reorder": reorder, "synonyms": synonyms, "wrapper": wrapper, "partial": partial, "numbers": numbers,
         "combined": lambda p, rng: wrapper(synonyms(p, rng), rng)}
# which prompts a kind applies to: a partial copy of a 5-word prompt is a new prompt, and a prompt with no
# number or name cannot have them changed
ELIGIBLE = {"partial": lambda p: len(p.split()) >= 10,
            "numbers": lambda p: bool(re.search(r"\d", p)) or any(w in FIRST_NAMES for w in re.findall(r"\b[A-Z][a-z]+\b", p))}


def clean_instructions() -> list[str]:
    out = []
    for f in sorted((ROOT / "data" / "samples").glob("*.json*")):
        if f.name.startswith("gpt4_1106"):
            continue  # the benchmark itself
        raw = f.read_text(encoding="utf-8")
        rows = [json.loads(x) for x in raw.splitlines() if x.strip()] if f.suffix == ".jsonl" else json.loads(raw)
        for r in rows:
            t = r.get("instruction") or ""
            if r.get("input"):
                t = f"{t}\n\n{r['input']}"
            if not t and isinstance(r.get("conversations"), list) and r["conversations"]:
                t = r["conversations"][0].get("value", "")
            if not t and isinstance(r.get("messages"), list) and r["messages"]:
                t = r["messages"][0].get("content", "")
            if not t and isinstance(r.get("prompt"), dict):
                t = r["prompt"].get("text", "")
            if isinstance(t, str) and t.strip():
                out.append(t.strip())
    return list(dict.fromkeys(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contaminated", type=int, default=600)
    ap.add_argument("--clean", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-false", type=float, default=0.01, help="false-flag budget for the recommended "
                                                                  "threshold")
    a = ap.parse_args()

    import numpy as np
    import pyarrow as pa

    from instructlake.config import EmbedConfig, EmbedSettings
    from instructlake.decontam.benchmarks import builtin_path
    from instructlake.decontam.match import NgramIndex, cosine_candidates, ngram_hits
    from instructlake.decontam.semdedup import pairs_above
    from instructlake.embed.embedder import get_embedder

    rng = random.Random(a.seed)
    bench = [json.loads(x)["instruction"] for x in builtin_path("alpaca_eval").read_text().splitlines()]
    kinds = list(KINDS)
    contaminated, kind_of = [], []
    for i in range(a.contaminated):
        kind = kinds[i % len(kinds)]
        eligible = [p for p in bench if ELIGIBLE.get(kind, bool)(p)]
        contaminated.append(KINDS[kind](rng.choice(eligible), rng))
        kind_of.append(kind)
    index = NgramIndex.build(bench, 13)
    pool = clean_instructions()
    rng.shuffle(pool)
    r, _, _, _ = ngram_hits(pa.array(pool, pa.string()), index)
    overlap = set(r.tolist())
    clean = [t for i, t in enumerate(pool) if i not in overlap][: a.clean]
    print(f"benchmark: {len(bench)} AlpacaEval prompts; contaminated rows: {len(contaminated)} "
          f"({len(contaminated) // len(kinds)} per kind); clean rows: {len(clean)} ({len(overlap)} pool "
          f"instructions sharing a 13-gram with the benchmark set aside as real overlaps)", flush=True)

    model = get_embedder(EmbedConfig(), EmbedSettings())
    t0 = time.time()
    bvec = model.encode(bench)
    cvec = model.encode(contaminated)
    kvec = model.encode(clean)
    print(f"embedded {len(bench) + len(contaminated) + len(clean):,} texts with {model.model} in "
          f"{time.time() - t0:.1f}s", flush=True)

    def best_and_ngram(vecs, texts):
        rows, _, cos = cosine_candidates(vecs, bvec, np.zeros(len(bench), np.int64), 1, 2.0, 1)
        best = np.full(len(texts), -1.0)
        np.maximum.at(best, rows, cos)
        hit = np.zeros(len(texts), bool)
        hit[ngram_hits(pa.array(texts, pa.string()), index)[0]] = True
        return best, hit

    c_best, c_hit = best_and_ngram(cvec, contaminated)
    k_best, k_hit = best_and_ngram(kvec, clean)
    kinds_arr = np.asarray(kind_of)
    print(f"\n{'cosine >=':>9} {'recall':>7} {'false':>7}  " + " ".join(f"{k:>9}" for k in kinds))
    best_t, best_recall = None, -1.0
    for t in np.round(np.arange(0.50, 0.96, 0.025), 3):
        flag_c = (c_best >= t) | c_hit
        flag_k = (k_best >= t) | k_hit
        recall, false = flag_c.mean(), flag_k.mean()
        per = " ".join(f"{flag_c[kinds_arr == k].mean():>9.3f}" for k in kinds)
        print(f"{t:>9.3f} {recall:>7.3f} {false:>7.2%}  {per}")
        if false <= a.max_false and recall > best_recall:
            best_t, best_recall = t, recall
    print(f"\nn-gram alone: recall {c_hit.mean():.3f}, false flags {k_hit.mean():.2%}")
    if best_t is None:
        print(f"no threshold keeps false flags <= {a.max_false:.0%}")
    else:
        ok = "met" if best_recall >= 0.95 else "NOT met"
        print(f"recommended cosine_threshold: {best_t:.3f} (recall {best_recall:.3f} at <= {a.max_false:.0%} "
              f"false flags); goal recall >= 0.95 at <= 1% false flags: {ok}")
    worst = np.argsort(c_best)[:5]
    print("\nhardest contaminated rows (lowest cosine):")
    for i in worst:
        print(f"  {c_best[i]:.3f} {kind_of[i]:<9} {contaminated[i][:110]!r}")
    top_clean = np.argsort(-k_best)[:5]
    print("closest clean rows (highest cosine):")
    for i in top_clean:
        print(f"  {k_best[i]:.3f} {clean[i][:110]!r}")

    t0 = time.time()
    i, _, _ = pairs_above(kvec, 0.95)
    secs = time.time() - t0
    n = len(kvec)
    print(f"\nsemantic dedup, pairwise cosine of {n:,} clean rows in one cluster: "
          f"{n * (n - 1) / 2 / secs:,.0f} pairs/s ({len(i)} pairs >= 0.95)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
