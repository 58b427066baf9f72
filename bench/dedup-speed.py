"""bench dedup-speed: instructlake's ingest + dedup against datasketch and datatrove on the same corpus.

    python build.py bench dedup-speed [--mb 100] [--no-datatrove] [--no-pipeline]

The corpus is built from the real sample texts in data/samples/ (recombined and lightly edited, with
about 20% near duplicates) and written twice with identical text: Alpaca JSONL for instructlake, and
{"id", "text"} JSONL for the others. datatrove and datasketch are installed into environments of their
own (.bench/datatrove-venv, .bench/datasketch-venv, created on first use), never into the project's.

Every side runs in its own process, start-up included, one after the other:
- datasketch 2.0: a plain one-process loop, MinHash with 128 permutations over word 5-gram shingles of
  the text lower-cased with punctuation taken out, MinHashLSH at threshold 0.8; a record is a duplicate
  when the index already holds a candidate for it (what most dedup scripts do);
- datatrove 0.10.1: its four MinHash stages (signatures, buckets, clusters, filter), 2 tasks and 2 workers
  (`--no-datatrove` leaves it out: at 1 GB it takes most of an hour);
- instructlake in one Spark session: `ingest` + `dedup` (Spark start-up included; a local session maps
  the JVM class archive `build.py setup` wrote, as every local run does);
- instructlake the way a user runs it: `instructlake pipeline run --input corpus --to dedup`
  (`--no-pipeline` leaves it out).
Printed: seconds, MB/s of input text, peak resident memory of each side's whole process tree (JVM and
Python workers included), rows kept, and instructlake's ratios to datasketch and datatrove.
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
DS_VENV = ROOT / ".bench" / "datasketch-venv"
DS_PACKAGES = ["datasketch==2.0.0"]

DATASKETCH_SCRIPT = r'''
import json, re, sys, time
from datasketch import MinHash, MinHashLSH

t = time.time()
punct = re.compile(r"[^\w\s]+")
lsh = MinHashLSH(threshold=0.8, num_perm=128)
kept = seen = 0
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        words = punct.sub(" ", r["text"].lower()).split()
        grams = {" ".join(words[i:i + 5]).encode() for i in range(max(1, len(words) - 4))}
        m = MinHash(num_perm=128)
        m.update_batch(list(grams))
        seen += 1
        if not lsh.query(m):
            lsh.insert(r["id"], m)
            kept += 1
print(f"DATASKETCH_SECONDS {time.time() - t:.2f}")
print(f"DATASKETCH_COUNTS {seen} {kept}")
'''

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


def bench_venv(venv: Path, packages: list[str]) -> Path:
    """The python of a bench-only environment holding `packages`, created on first use."""
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"installing {' '.join(packages)} into {venv} (bench only, not a project dependency)",
              flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", str(venv)])
        subprocess.check_call([str(py), "-m", "pip", "install", "-q", *packages])
    return py


def marked(out: str, mark: str) -> list[str]:
    """The values a side printed after its marker line, e.g. DATASKETCH_SECONDS 39.3."""
    return next(ln for ln in out.splitlines() if ln.startswith(mark)).split()[1:]


def run_datasketch(theirs: Path) -> dict:
    py = bench_venv(DS_VENV, DS_PACKAGES)
    out, wall, mem, pss = run_measured([str(py), "-c", DATASKETCH_SCRIPT, str(theirs / "corpus.jsonl")])
    return {"wall": wall, "mem": mem, "pss": pss, "kept": int(marked(out, "DATASKETCH_COUNTS")[1])}


def run_datatrove(theirs: Path, work: Path) -> dict:
    py = bench_venv(DT_VENV, DT_PACKAGES)
    _, wall, mem, pss = run_measured([str(py), "-c", DATATROVE_SCRIPT, str(theirs), str(work)])
    kept = sum(1 for f in (work / "out").rglob("*") if f.is_file() for _ in open_text(f))
    return {"wall": wall, "mem": mem, "pss": pss, "kept": kept}


def run_instructlake(ours: Path, warehouse: Path) -> dict:
    out, wall, mem, pss = run_measured([sys.executable, "-c", INSTRUCTLAKE_SCRIPT, str(ours), str(warehouse)],
                                       dict(os.environ))
    total, start, ing, dd = (float(x) for x in marked(out, "INSTRUCTLAKE_SECONDS"))
    n_in, kept = (int(x) for x in marked(out, "INSTRUCTLAKE_COUNTS"))
    return {"wall": wall, "mem": mem, "pss": pss, "kept": kept, "input": n_in, "parts": (start, ing, dd)}


def run_pipeline(ours: Path, warehouse: Path) -> dict:
    exe = Path(sys.executable).parent / "instructlake"
    out, wall, mem, pss = run_measured([str(exe), "--warehouse", str(warehouse), "pipeline", "run",
                                        "--input", str(ours), "--to", "dedup"], dict(os.environ))
    import re

    line = next((ln for ln in out.splitlines() if ln.strip().startswith("dedup ")), "")
    got = re.search(r"input=([\d,]+).*kept=([\d,]+)", line)
    if got is None:
        raise SystemExit(f"pipeline run printed no dedup line:\n{out[-3000:]}")
    n_in, kept = (int(x.replace(",", "")) for x in got.groups())
    return {"wall": wall, "mem": mem, "pss": pss, "kept": kept, "input": n_in}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=100.0, help="corpus size in MB of text (default 100)")
    ap.add_argument("--no-datatrove", action="store_true", help="leave datatrove out (slow at 1 GB)")
    ap.add_argument("--no-pipeline", action="store_true", help="leave out `pipeline run --to dedup`")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dedup-speed-"))
    sides: dict[str, dict] = {}
    try:
        ours, theirs, mb = make_corpus(tmp, a.mb)
        shown = f"{mb:.0f}" if mb >= 10 else f"{mb:.2f}"  # --mb 0.2 measures what any run costs
        print(f"corpus: {shown} MB of text, {sum(1 for _ in open(ours)):,} records", flush=True)
        sides["datasketch"] = run_datasketch(theirs)
        print(f"datasketch done: {sides['datasketch']['wall']:.1f}s", flush=True)
        if not a.no_datatrove:
            sides["datatrove"] = run_datatrove(theirs, tmp / "dt")
            print(f"datatrove done: {sides['datatrove']['wall']:.1f}s", flush=True)
        sides["instructlake"] = run_instructlake(ours, tmp / "wh")
        print(f"instructlake done: {sides['instructlake']['wall']:.1f}s", flush=True)
        if not a.no_pipeline:
            sides["pipeline"] = run_pipeline(ours, tmp / "wh-pipeline")
            print(f"pipeline run done: {sides['pipeline']['wall']:.1f}s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(sides, mb)


LABELS = {"datasketch": "datasketch 2.0 MinHashLSH, one process",
          "datatrove": "datatrove MinHash (4 stages, 2 workers)",
          "instructlake": "instructlake: Spark start + ingest + dedup",
          "pipeline": "instructlake pipeline run --to dedup"}


def report(sides: dict[str, dict], mb: float) -> None:
    print()
    print(f"{'':46}{'seconds':>9}{'MB/s':>8}{'peak RSS':>10}{'peak PSS':>10}  kept")
    for name, s in sides.items():
        kept = f"{s['kept']:,}" + (f" of {s['input']:,}" if "input" in s else "")
        # two decimals: the memory goal (2 GB at 100 MB) is within a tenth of where the peak is
        mem = f"{s['mem']:>8.2f}GB{s['pss']:>8.2f}GB"
        print(f"{LABELS[name]:46}{s['wall']:>9.1f}{mb / s['wall']:>8.2f}{mem}  {kept}")
    il = sides["instructlake"]
    print(f"{'  of which Spark start / ingest / dedup':46}   {' / '.join(f'{x:.1f}' for x in il['parts'])}")
    from instructlake.jvm_archive import archive_path

    cds = archive_path()
    print(f"  JVM class archive: {cds if cds and cds.is_file() else 'none (python build.py setup writes it)'}")
    print()
    for name in ("instructlake", "pipeline"):
        if name not in sides:
            continue
        ratios = [f"{sides[o]['wall'] / sides[name]['wall']:.2f}x {o}" for o in ("datasketch", "datatrove")
                  if o in sides]
        print(f"ratio, {LABELS[name]}: " + ", ".join(ratios) + " (speed; goals >= 3x datasketch, "
              ">= 10x datatrove)")


def open_text(path: Path):
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        yield from f


if __name__ == "__main__":
    sys.exit(main())
