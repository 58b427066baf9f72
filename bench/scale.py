"""bench scale: seconds per stage of the non-LLM pipeline on 10k, 100k and 1M synthetic samples, the
log-log slope of cost against size, and peak memory.

    python build.py bench scale [--sizes 10000,100000,1000000] [--keep DIR]

Each size is a fresh warehouse filled by `pipeline run` (ingest, dedup, semdedup, filter, tagging,
normalize_tags, graph, seeds, scrub, decontam, export) in one Spark session (local[*]). The records are
synthetic instructions written from the taxonomy's tag descriptions (1-3 tags each, heavy-tailed
popularity) with random filler words and answers; 8% are near copies (one word changed) and 2% exact
copies of other records, 0.5% are broken JSON. Embeddings come from the model-free hashing embedder
(embed.backend hashing): a sentence model's cost is linear in rows by construction and on 2 cores
would dominate every figure, so this measures the stages' own Spark work. Scoring (a causal LM) and the
LLM stages are left out for the same reason. Goal: slope <= 1.1.
Peak memory: the largest resident set of this process and all its children (the JVM and the Python
workers) sampled every 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from _measure import tree_rss_kb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

STAGES = ["ingest", "dedup", "semdedup", "filter", "tagging", "normalize_tags", "graph", "seeds", "scrub",
          "decontam", "export"]


def vocabulary():
    import yaml

    tax = yaml.safe_load((ROOT / "lib" / "instructlake" / "resources" / "taxonomy.yaml").read_text())
    return [(tag, desc) for c in tax["categories"] for tag, desc in c["tags"].items()]


def make_files(root: Path, rows: int, seed: int = 11) -> list[Path]:
    rng = random.Random(seed)
    tags = vocabulary()
    weights = [1.0 / (i + 1) ** 1.1 for i in range(len(tags))]  # Zipf-like tag popularity
    filler = [f"w{i}" for i in range(20000)]
    verbs = ["Explain", "Write", "Describe", "Summarize", "Compare", "List", "Solve", "Plan", "Review", "Design"]
    files = max(2, rows // 125_000)
    per = -(-rows // files)
    out, made, history = [], 0, []
    for fi in range(files):
        p = root / f"part_{fi:03d}.jsonl"
        with open(p, "w", encoding="utf-8") as f:
            for _ in range(min(per, rows - made)):
                made += 1
                r = rng.random()
                if r < 0.005:
                    f.write('{"instruction": "broken\n')
                    continue
                if history and r < 0.025:
                    rec = dict(rng.choice(history))  # an exact copy
                elif history and r < 0.105:
                    rec = dict(rng.choice(history))  # a near copy: one word of the instruction changed
                    words = rec["instruction"].split()
                    words[rng.randrange(len(words))] = rng.choice(filler)
                    rec["instruction"] = " ".join(words)
                else:
                    picked = rng.choices(tags, weights, k=rng.randint(1, 3))
                    about = "; ".join(f"{t}: {d}" for t, d in picked)
                    rec = {"instruction": f"{rng.choice(verbs)} {about}. " + " ".join(rng.choices(filler, k=12)),
                           "input": "", "output": " ".join(rng.choices(filler, k=rng.randint(20, 80)))}
                    if len(history) < 50_000:
                        history.append(rec)
                    elif rng.random() < 0.01:
                        history[rng.randrange(len(history))] = rec
                f.write(json.dumps(rec) + "\n")
        out.append(p)
    return out


class PeakRSS:
    """Largest summed RSS of this process tree, sampled in a thread."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_kb(os.getpid()) * 1024)
            time.sleep(0.2)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def slope(xs: list[float], ys: list[float]) -> float:
    if len(set(xs)) < 2:
        return float("nan")  # one size: no slope to fit
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-3)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--keep", help="keep the warehouses and files here instead of a temporary directory")
    ap.add_argument("--driver-memory", default="10g")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]

    from instructlake import pipeline
    from instructlake.config import load_config
    from instructlake.spark import get_session
    from instructlake.store import Store

    tmp = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench-scale-"))
    tmp.mkdir(parents=True, exist_ok=True)
    settings = ["embed.backend=hashing", "embed.model=hashing-384", "normalize_tags.min_freq=5",
                f"platform.spark.driver_memory={a.driver_memory}", "platform.spark.shuffle_partitions=16"]
    skip = ["train_reference", "scoring", "synth", "difficulty", "report"]
    results: dict[int, dict[str, float]] = {}
    peaks: dict[int, int] = {}
    try:
        spark = None
        for n in [1000, *sizes]:  # 1,000 first: JVM, workers and Delta warmed up outside the figures
            d = tmp / f"n{n}"
            shutil.rmtree(d, ignore_errors=True)
            (d / "in").mkdir(parents=True)
            t = time.time()
            files = make_files(d / "in", n)
            mb = sum(f.stat().st_size for f in files) / 1e6
            print(f"{n:,} records: {len(files)} files, {mb:.0f} MB, generated in {time.time() - t:.0f}s", flush=True)
            cfg = load_config("local", settings, warehouse=str(d / "wh"))
            spark = spark or get_session(cfg.platform, "bench-scale")
            store = Store(spark, cfg.warehouse)
            inputs = pipeline.Inputs(raw=(str(d / "in"),), export_dir=str(d / "export"))
            with PeakRSS() as mem:
                outcomes = pipeline.run(spark, store, cfg, inputs, skip=skip,
                                        on_step=lambda o: print(f"  {o.step:<15} {o.action:<10} "
                                                                f"{o.seconds:7.1f}s",
                                                                flush=True))
            if n == 1000:
                continue
            results[n] = {o.step: o.seconds for o in outcomes if o.action == "ran"}
            peaks[n] = mem.peak
            kept = next(o.result.counts for o in outcomes if o.step == "dedup")
            print(f"  kept {kept['kept']:,} of {kept['input']:,}; peak memory {mem.peak / 2**30:.1f} GiB", flush=True)
            shutil.rmtree(d / "wh", ignore_errors=True)  # disk: the 1M warehouse holds GBs of vectors
            shutil.rmtree(d / "in", ignore_errors=True)
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    # slope: least squares over every size; last: between the two largest sizes, where fixed costs
    # (Spark jobs, Delta commits) weigh least, so it is the fairer reading of how cost grows
    print(f"\n{'stage':<16}" + "".join(f"{n:>12,}" for n in sizes) + f"{'slope':>8}{'last':>8}")
    for name in [*STAGES, "total"]:
        ys = [sum(results[n].values()) if name == "total" else results[n].get(name, 0.0) for n in sizes]
        print(f"{name:<16}" + "".join(f"{y:>11.1f}s" for y in ys) + f"{slope(sizes, ys):>8.2f}"
              f"{slope(sizes[-2:], ys[-2:]):>8.2f}")
    print(f"{'peak memory':<16}" + "".join(f"{peaks[n] / 2**30:>10.1f}GB" for n in sizes))
    totals = [sum(results[n].values()) for n in sizes]
    s, last = slope(sizes, totals), slope(sizes[-2:], totals[-2:])
    if len(sizes) < 2:
        print("\none size: no slope (give --sizes two or more sizes)")
        return 0
    print(f"\nlog-log slope of total seconds against samples: {s:.2f} over all sizes, {last:.2f} between the "
          f"two largest (goal <= 1.1): {'met' if max(s, last) <= 1.1 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
