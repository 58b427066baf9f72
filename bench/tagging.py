"""bench tagging: how well the embedded taggers' categories match labelled prompts, side by side in one run.

    python build.py bench tagging [--repeat 2] [--rounds 3] [--show 0] [--split all|tune|test] [--set K=V ...]

Four labelled sets in data/samples/labelled/:

* WizardLM_testset.jsonl: 218 instructions, each with one of 29 skills (Math, Code Generation, Roleplay,
  Law, ...). SKILLS below says which taxonomy categories count as a match for each skill, and which of the
  eight kinds it reports under (coding, math, reasoning, writing, roleplay, extraction, STEM, humanities;
  plus format, multilingual, knowledge and safety for skills that are none of those). None of these
  prompts is in the demo's pool, and no exemplar is a near copy of them or of the held-out prompts
  (tests/unit/test_exemplars_held_out.py).
* pool_categories.jsonl: 300 first user turns of the sample pool (alpaca_en_demo 80, cherry_alpaca 90,
  seed_tasks 40, oasst 40, kto 30, glaive_toolcall 20; per file the first records in the order of
  sha256("<file>:<index>"), exact repeats skipped), labelled by hand with a kind and the taxonomy
  categories a reader would accept for it. Each row has a split, tune or test (by the same hash).
* user_oriented_categories.jsonl: the 252 user-oriented instructions of Self-Instruct's human evaluation
  (requests written for apps such as Gmail, Grammarly, Leetcode or Netflix; instruction and its first
  input, as ingest joins them), none of them in the demo's pool, labelled by hand the same way and split
  by the same hash into tune (128) and test (124).
* alpaca_eval_categories.jsonl: 226 prompts of AlpacaEval's Vicuna (70) and Koala (156) parts, real users'
  requests as long and mixed as WizardLM's, labelled by hand the same way (with a tune/test split by the
  same hash, tune 114 and test 112, but scored whole: none of it is an exemplar). Left out: four Vicuna
  prompts within cosine 0.8 of a WizardLM prompt, and six that an exemplar (written before the set) is a
  near copy of.

The tune halves of the first two hand-labelled sets (their Apache-2.0 rows) are the tagger's labelled
exemplars (resources/labelled_exemplars.jsonl, bench/_labelled_exemplars.py), so `--split tune` scores
prompts the tagger was shown; `--split test`, WizardLM and AlpacaEval are held out.

Per tagger: category match (any of a prompt's tags has an accepted category), top-1 match (the best tag's
category is accepted), precision (the share of a prompt's distinct categories that are accepted, averaged:
more tags make a match easier and cost precision), coverage (at least one tag), tags per prompt, per kind
match, code/math (the match of the coding and math kinds together), and tagging speed
(samples/s of embedding plus choosing, on the prompts repeated --repeat times, the model loaded before
the timing; the best of --rounds rounds in which the taggers take turns). Each tagger runs with the
settings in conf/defaults.yaml; the first is the flat tagger, the default until the two-level one, so the
ratios are against it; the second is the two-level tagger with its written exemplars only
(`tagging.labelled_exemplars: false`), the default until the labelled ones.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

LABELLED = ROOT / "data" / "samples" / "labelled" / "WizardLM_testset.jsonl"
POOL = ROOT / "data" / "samples" / "labelled" / "pool_categories.jsonl"
USER = ROOT / "data" / "samples" / "labelled" / "user_oriented_categories.jsonl"
ALPACA_EVAL = ROOT / "data" / "samples" / "labelled" / "alpaca_eval_categories.jsonl"
CODE = ("programming", "software engineering and systems", "data science and machine learning")
SCIENCE = ("natural sciences", "engineering and technology", "medicine and health", "data science and "
                                                                                    "machine learning")
ARTS = ("literature and arts", "humanities and history")
# skill -> (kind, the categories that count as a match)
SKILLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Math": ("math", ("mathematics",)),
    "Code Generation": ("coding", CODE),
    "Code Debug": ("coding", CODE),
    "Computer Science": ("coding", (*CODE, "engineering and technology")),
    "Reasoning": ("reasoning", ("logic and reasoning", "mathematics", "planning and problem solving")),
    "Common-Sense": ("reasoning", ("logic and reasoning", "everyday life and practical skills",
                                   "knowledge question answering")),
    "Counterfactual": ("reasoning", ("logic and reasoning", "humanities and history", "creative writing")),
    "Writting": ("writing", ("creative writing", "communication and professional writing")),
    "Academic Writing": ("writing", ("education and career", "communication and professional writing",
                                     "creative writing")),
    "Roleplay": ("roleplay", ("dialogue and assistance", "creative writing")),
    "Complex Format": ("format", ("instruction following and formatting", "text processing")),
    "Multilingual": ("multilingual", ("translation and multilinguality", "language and linguistics")),
    "Biology": ("STEM", ("natural sciences", "medicine and health")),
    "Physics": ("STEM", ("natural sciences", "engineering and technology")),
    "Chemistry": ("STEM", ("natural sciences",)),
    "Technology": ("STEM", (*SCIENCE, *CODE)),
    "Medicine": ("STEM", ("medicine and health", "natural sciences")),
    "Ethics": ("humanities", ("safety and ethics", "humanities and history")),
    "Philosophy": ("humanities", ("humanities and history",)),
    "History": ("humanities", ("humanities and history",)),
    "Law": ("humanities", ("law and government",)),
    "Economy": ("humanities", ("business and finance",)),
    "Literature": ("humanities", (*ARTS, "creative writing")),
    "Art": ("humanities", ARTS),
    "Music": ("humanities", ARTS),
    "Entertainment": ("humanities", (*ARTS, "everyday life and practical skills", "knowledge question "
                                                                                  "answering")),
    "Sport": ("knowledge", ("everyday life and practical skills", "knowledge question answering")),
    "TruthfulQA": ("knowledge", ("knowledge question answering", "natural sciences", "humanities and history",
                                 "medicine and health", "logic and reasoning")),
    "Toxicity": ("safety", ("safety and ethics",)),
}
EIGHT = ("coding", "math", "reasoning", "writing", "roleplay", "extraction", "STEM", "humanities")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def wizardlm() -> list[dict]:
    """Rows of (text, kind, accepted categories) from the WizardLM test set's skills."""
    rows = read_jsonl(LABELLED)
    unknown = {r["Skill"] for r in rows} - set(SKILLS)
    if unknown:
        raise SystemExit(f"bench tagging: skills without a category mapping: {sorted(unknown)}")
    return [{"text": r["Instruction"], "kind": SKILLS[r["Skill"]][0], "accepted": SKILLS[r["Skill"]][1],
             "label": r["Skill"]} for r in rows]


def hand_labelled(path: Path, split: str, categories: set[str]) -> list[dict]:
    """Rows of a hand-labelled set (the pool set, the user-oriented set), of one split or both."""
    rows = [r for r in read_jsonl(path) if split == "all" or r["split"] == split]
    unknown = {c for r in rows for c in r["categories"]} - categories
    if unknown:
        raise SystemExit(f"bench tagging: {path.name} names categories the taxonomy lacks: {sorted(unknown)}")
    return [{"text": r["instruction"], "kind": r["kind"], "accepted": tuple(r["categories"]),
             "label": r["id"]} for r in rows]


def taggers(config):
    """name -> tag(texts) -> [[(tag, score)]] best first: the flat tagger (the default before the two-level
    one) and the two-level one, each with conf/defaults.yaml's settings, on one embedder."""
    from dataclasses import replace

    from instructlake.embed.embedder import get_embedder
    from instructlake.tagging import taxonomy, zero_shot

    tax = taxonomy.load()
    names = [t for t, _, _ in tax.tags]
    emb = get_embedder(config.embed, config.platform.embed, threads=os.cpu_count())
    refs = {labelled: zero_shot.space(emb, tax, taxonomy.exemplars(labelled)) for labelled in (False, True)}

    def tagger(cfg):
        ref = refs[cfg.labelled_exemplars]

        def tag(texts):
            picks = zero_shot.embed_and_pick(emb, texts, emb.encode(texts), ref, cfg)
            return [[(names[j], s) for j, s in p] for p in picks]
        return tag

    two = replace(config.tagging, zero_shot="two-level")
    return {"flat (the earlier default)": tagger(replace(config.tagging, zero_shot="flat")),
            "two-level, written exemplars": tagger(replace(two, labelled_exemplars=False)),
            "two-level (default)": tagger(two)}


def evaluate(rows: list[dict], picks: list[list[tuple[str, float]]], category_of: dict[str, str]) -> dict:
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    hit = top1 = covered = n_tags = 0
    precision = 0.0
    for r, p in zip(rows, picks, strict=True):
        cats = [category_of[t] for t, _ in p]
        ok = any(c in r["accepted"] for c in cats)
        given = set(cats)
        precision += len(given & set(r["accepted"])) / len(given) if given else 0.0
        hit += ok
        top1 += bool(cats) and cats[0] in r["accepted"]
        covered += bool(p)
        n_tags += len(p)
        per_kind[r["kind"]][0] += ok
        per_kind[r["kind"]][1] += 1
    n = len(rows)
    code_math = [per_kind[k] for k in ("coding", "math") if k in per_kind]
    return {"match": hit / n, "top1": top1 / n, "coverage": covered / n, "tags": n_tags / n,
            "precision": precision / n,
            "kinds": {k: v[0] / v[1] for k, v in per_kind.items()},
            "code/math": sum(h for h, _ in code_math) / max(1, sum(t for _, t in code_math))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=2, help="the prompts this many times for the speed figure")
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds; each tagger's best counts")
    ap.add_argument("--show", type=int, default=0, help="print this many prompts of each set with their tags")
    ap.add_argument("--split", choices=("all", "tune", "test"), default="all",
                    help="which half of the pool and user-oriented sets to score (tune: the labelled "
                         "exemplars' source; test: held out)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config setting for both taggers, as instructlake's --set (tagging.exemplar_k=3)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from instructlake.config import load_config
    from instructlake.tagging import taxonomy

    tax = taxonomy.load()
    category_of = tax.category_of()
    names = {c for c, _ in tax.categories}
    sets = {f"WizardLM test set ({LABELLED.name})": wizardlm(),
            f"pool set, {args.split} ({POOL.name})": hand_labelled(POOL, args.split, names),
            f"user-oriented set, {args.split} ({USER.name})": hand_labelled(USER, args.split, names),
            f"AlpacaEval set, all ({ALPACA_EVAL.name})": hand_labelled(ALPACA_EVAL, "all", names)}
    config = load_config("local", args.set)
    results: dict[str, dict[str, dict]] = defaultdict(dict)
    shown: dict[str, dict[str, list]] = defaultdict(dict)
    texts = [r["text"] for r in sets[next(iter(sets))]]  # the WizardLM prompts time every tagger
    tagging = taggers(config)
    speed = timed(tagging, texts * args.repeat, args.rounds)
    for name, tag in tagging.items():
        for set_name, rows in sets.items():
            picks = tag([r["text"] for r in rows])
            results[set_name][name] = {**evaluate(rows, picks, category_of), "speed": speed[name]}
            shown[set_name][name] = picks
    print(f"\nbench tagging on {os.cpu_count()} cores (speed: the WizardLM prompts x {args.repeat}, best of "
          f"{args.rounds} rounds)")
    for set_name, rows in sets.items():
        print_table(set_name, rows, results[set_name])
    print("\n  goals: WizardLM match >= 0.85, none of the eight kinds below 0.6, coverage >= 0.98; pool set "
          "code/math >= 0.9, coverage >= 0.97 (both hand-labelled sets); speed >= 0.7x of the flat tagger")
    for set_name, rows in sets.items():
        for i, r in enumerate(rows[: args.show]):
            print(f"\n  [{r['label']}: {r['kind']}] {r['text'][:100]!r}")
            for name, picks in shown[set_name].items():
                print(f"    {name:26} " + ", ".join(f"{t} ({category_of[t]})" for t, _ in picks[i]))


def timed(tagging: dict, texts: list[str], rounds: int) -> dict[str, float]:
    """Samples/s of each tagger: the best of `rounds` rounds, the taggers taking turns in each, so a slow
    spell of a shared machine does not fall on one of them only."""
    best: dict[str, float] = defaultdict(float)
    for tag in tagging.values():
        tag(texts[:8])  # warm-up
    for _ in range(rounds):
        for name, tag in tagging.items():
            t0 = time.time()
            tag(texts)
            best[name] = max(best[name], len(texts) / (time.time() - t0))
    return best


def print_table(set_name: str, rows: list[dict], results: dict[str, dict]) -> None:
    kinds = [k for k in EIGHT if any(k in r["kinds"] for r in results.values())]
    extra = sorted({k for r in results.values() for k in r["kinds"]} - set(kinds))
    print(f"\n{set_name}: {len(rows)} prompts")
    head = (f"  {'tagger':28}{'match':>7}{'top-1':>7}{'prec':>6}{'cover':>7}{'tags':>6}{'samp/s':>8}"
            f"{'code/math':>10}")
    print(head + "".join(f"{k[:9]:>10}" for k in kinds + extra))
    base = None
    for name, r in results.items():
        base = base or r["speed"]
        print(f"  {name:28}{r['match']:7.3f}{r['top1']:7.2f}{r['precision']:6.2f}{r['coverage']:7.2f}"
              f"{r['tags']:6.2f}{r['speed']:8.0f}"
              f"{r['code/math']:10.2f}"
              + "".join(f"{r['kinds'].get(k, float('nan')):10.2f}" for k in kinds + extra))
    for name, r in results.items():
        print(f"  {name}: speed {r['speed'] / base:.2f}x of the first; worst of the eight kinds "
              f"{min(r['kinds'][k] for k in kinds):.2f}")


if __name__ == "__main__":
    main()
