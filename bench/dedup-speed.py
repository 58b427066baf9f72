"""bench dedup-speed: instructlake dedup against datatrove's MinHash dedup on the same >= 100 MB corpus.

    python build.py bench dedup-speed [--mb 100]

The corpus is built from the real sample texts in data/samples/ (recombined and lightly edited, with
about 20% near duplicates) and written twice with identical text: Alpaca JSONL for instructlake, and
{"id", "text"} JSONL for datatrove. datatrove is installed into its own environment
(.bench/datatrove-venv, created on first use), never into the project's.

Each side runs once in its own process on both cores: datatrove's four MinHash stages (signatures,
buckets, clusters, filter) with 2 tasks and 2 workers; instructlake as `ingest` + `dedup` in one Spark
session, Spark start-up included (a local session maps the JVM class archive `build.py setup` wrote, as every
local run does). Printed: seconds, MB/s of input text, the ratio, and the peak resident
memory of each side's whole process tree (JVM and Python workers included).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _measure import run_measured

ROOT = Path(__file__).resolve().parents[1]
DT_VENV = ROOT / ".bench" / "datatrove-venv"
# datatrove's MinHash path needs these beside its base install (English words are split by spaCy;
# it hashes str, which xxhash 4 no longer accepts).
DT_PACKAGES = ["datatrove==0.10.1", "regex", "tokenizers", "xxhash<4", "orjson", "nltk", "spacy"]

DATATROVE_SCRIPT = r'''
import sys, time
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                              MinhashDedupFilter)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers.jsonl import JsonlWriter
from datatrove.utils.hashing import HashConfig

src, work = sys.argv[1], sys.argv[2]
cfg = MinhashConfig(hash_config=HashConfig(precision=64), n_grams=5, num_buckets=14, hashes_per_bucket=8)
t = time.time()
s1 = LocalPipelineExecutor(pipeline=[JsonlReader(src), MinhashDedupSignature(output_folder=f"{work}/sigs", config=cfg)],
                           tasks=2, workers=2, logging_dir=f"{work}/logs/s1")
s2 = LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(input_folder=f"{work}/sigs", output_folder=f"{work}/buckets",
                                                         config=cfg)],
                           tasks=cfg.num_buckets, workers=2, logging_dir=f"{work}/logs/s2", depends=s1)
s3 = LocalPipelineExecutor(pipeline=[MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove_ids",
                                                         config=cfg)],
                           tasks=1, logging_dir=f"{work}/logs/s3", depends=s2)
s4 = LocalPipelineExecutor(pipeline=[JsonlReader(src), MinhashDedupFilter(input_folder=f"{work}/remove_ids"),
                                     JsonlWriter(f"{work}/out")],
                           tasks=2, workers=2, logging_dir=f"{work}/logs/s4", depends=s3)
s4.run()
print(f"DATATROVE_SECONDS {time.time() - t:.2f}")
'''

INSTRUCTLAKE_SCRIPT = r'''
import sys, time
t = time.time()
from instructlake.config import load_config
from instructlake.dedup import stage as dedup
from instructlake.ingest import stage as ingest
from instructlake.spark import get_session
from instructlake.store import Store
cfg = load_config("local", warehouse=sys.argv[2])
spark = get_session(cfg.platform, "bench-dedup-speed")
store = Store(spark, cfg.warehouse)
t_ing = time.time()
ingest.run(spark, store, cfg, [sys.argv[1]], source="bench")
t_dd = time.time()
r = dedup.run(spark, store, cfg)
end = time.time()
print(f"INSTRUCTLAKE_SECONDS {end - t:.2f} {t_ing - t:.2f} {t_dd - t_ing:.2f} {end - t_dd:.2f}")
print(f"INSTRUCTLAKE_COUNTS {r.counts['input']} {r.counts['kept']}")
'''


def make_corpus(dir_: Path, target_mb: float, seed: int = 3) -> tuple[Path, Path, float]:
    rng = random.Random(seed)
    texts = []
    for name in ("alpaca_en_demo.json", "cherry_alpaca_5_percent.json", "gpt4_1106_preview_model_outputs.json"):
        for r in json.loads((ROOT / "data" / "samples" / name).read_text()):
            texts.append((r["instruction"] + (" " + r["input"] if r.get("input") else ""), r["output"]))
    ours, theirs = dir_ / "corpus.jsonl", dir_ / "datatrove-in" / "corpus.jsonl"
    theirs.parent.mkdir()
    size, i = 0, 0
    last = ("", "")
    with open(ours, "w") as fo, open(theirs, "w") as ft:
        while size < target_mb * 1e6:
            a, b = rng.choice(texts), rng.choice(texts)
            if rng.random() < 0.2 and i:  # a near duplicate of a recent record
                ins, out = last
                words = out.split()
                if words:
                    words[rng.randrange(len(words))] = rng.choice(("very", "also", "then"))
                out = " ".join(words)
            else:  # a new text: two real samples recombined, so most records are distinct
                ins = f"{a[0]} (case {i})"
                out = f"{a[1]} {b[1]}"
            last = (ins, out)
            fo.write(json.dumps({"instruction": ins, "input": "", "output": out}) + "\n")
            text = f"{ins}\n{out}"
            ft.write(json.dumps({"id": str(i), "text": text}) + "\n")
            size += len(text.encode())
            i += 1
    return ours, theirs.parent, size / 1e6


def ensure_datatrove() -> Path:
    py = DT_VENV / "bin" / "python"
    if not py.exists():
        print(f"installing {' '.join(DT_PACKAGES)} into {DT_VENV} (bench only, not a project dependency)", flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", str(DT_VENV)])
        subprocess.check_call([str(py), "-m", "pip", "install", "-q", *DT_PACKAGES])
    return py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=100.0, help="corpus size in MB of text (default 100)")
    a = ap.parse_args()
    dt_py = ensure_datatrove()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dedup-speed-"))
    try:
        ours, theirs, mb = make_corpus(tmp, a.mb)
        print(f"corpus: {mb:.0f} MB of text, {sum(1 for _ in open(ours)):,} records", flush=True)
        out, dt_wall, dt_mem = run_measured([str(dt_py), "-c", DATATROVE_SCRIPT, str(theirs), str(tmp / "dt")])
        dt_out = sum(1 for f in (tmp / "dt" / "out").rglob("*") if f.is_file() for _ in open_text(f))
        print(f"datatrove done: {dt_wall:.1f}s", flush=True)
        env = dict(os.environ)
        out, il_wall, il_mem = run_measured([sys.executable, "-c", INSTRUCTLAKE_SCRIPT, str(ours), str(tmp / "wh")], env)
        secs = next(ln for ln in out.splitlines() if ln.startswith("INSTRUCTLAKE_SECONDS")).split()[1:]
        counts = next(ln for ln in out.splitlines() if ln.startswith("INSTRUCTLAKE_COUNTS")).split()[1:]
        total, start, ing, dd = (float(x) for x in secs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"{'':44}{'seconds':>9}{'MB/s':>8}{'peak RSS':>10}")
    print(f"{'datatrove MinHash (4 stages, 2 workers)':44}{dt_wall:>9.1f}{mb / dt_wall:>8.2f}{dt_mem:>8.1f}GB"
          f"   kept {dt_out:,}")
    print(f"{'instructlake: Spark start + ingest + dedup':44}{il_wall:>9.1f}{mb / il_wall:>8.2f}{il_mem:>8.1f}GB"
          f"   kept {int(counts[1]):,} of {int(counts[0]):,}")
    print(f"{'  of which Spark start / ingest / dedup':44}   {start:.1f} / {ing:.1f} / {dd:.1f}")
    from instructlake.jvm_archive import archive_path

    cds = archive_path()
    print(f"  JVM class archive: {cds if cds and cds.is_file() else 'none (python build.py setup writes it)'}")
    print(f"\nratio: instructlake is {dt_wall / il_wall:.2f}x datatrove's speed end to end "
          f"({dt_wall / (start + dd):.2f}x counting Spark start + dedup only); goal >= 5x")


def open_text(path: Path):
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        yield from f


if __name__ == "__main__":
    sys.exit(main())
