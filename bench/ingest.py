"""bench ingest: rows/s of `instructlake ingest` against a plain spark.read.json + Delta write.

    python build.py bench ingest [--rows 200000] [--files 8]

Both sides read the same synthetic JSONL files (a mix of Alpaca and ShareGPT records, about 1% of them
broken) in the same Spark session and write one Delta table. The ratio is the price of validation,
normalization, content hashing, quarantine and the MERGE that makes re-runs idempotent.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("data model train answer question explain write code python list sort number city river history "
         "science music story poem summary translate english french table graph value result error test").split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def make_files(root: Path, rows: int, files: int, seed: int = 7) -> list[Path]:
    rng = random.Random(seed)
    paths = []
    per = rows // files
    for fi in range(files):
        p = root / (f"alpaca_{fi}.jsonl" if fi % 2 == 0 else f"sharegpt_{fi}.jsonl")
        with open(p, "w") as f:
            for i in range(per):
                if rng.random() < 0.01:
                    f.write('{"broken": "record\n')
                    continue
                q, a = f"{sentence(rng, rng.randint(5, 30))} ({fi}-{i})", sentence(rng, rng.randint(20, 120))
                if fi % 2 == 0:
                    rec = {"instruction": q, "input": "", "output": a}
                else:
                    rec = {"id": f"{fi}-{i}", "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
                f.write(json.dumps(rec) + "\n")
        paths.append(p)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--files", type=int, default=8)
    a = ap.parse_args()

    from instructlake.config import load_config
    from instructlake.ingest import stage
    from instructlake.spark import get_session
    from instructlake.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        t = time.time()
        paths = make_files(tmp, a.rows, a.files)
        mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"generated {a.rows:,} records in {len(paths)} files ({mb:.0f} MB) in {time.time() - t:.1f}s", flush=True)
        cfg = load_config("local", warehouse=str(tmp / "wh"))
        spark = get_session(cfg.platform, "bench-ingest")
        files = [str(p) for p in paths]

        # warm-up: JVM, Python workers and Delta classes loaded once, outside both timings
        stage.run(spark, Store(spark, str(tmp / "warm")), cfg, files[:1])
        spark.read.json(files[0]).limit(10).write.format("delta").mode("overwrite").save(str(tmp / "warm-plain"))

        t = time.time()
        spark.read.json(files).write.format("delta").mode("overwrite").save(str(tmp / "plain"))
        plain = time.time() - t
        plain_rows = spark.read.format("delta").load(str(tmp / "plain")).count()

        t = time.time()
        r = stage.run(spark, Store(spark, str(tmp / "wh")), cfg, files)
        ours = time.time() - t
        c = r.counts

        print()
        print(f"{'':34}{'seconds':>10}{'rows/s':>12}")
        print(f"{'spark.read.json + Delta write':34}{plain:>10.1f}{plain_rows / plain:>12,.0f}   "
              f"({plain_rows:,} rows, no validation)")
        print(f"{'instructlake ingest':34}{ours:>10.1f}{c['read'] / ours:>12,.0f}   "
              f"(read {c['read']:,} = {c['ingested']:,} ingested + {c['duplicate']:,} duplicate + "
              f"{c['quarantined']:,} quarantined)")
        print(f"\nratio ingest / plain: {ours / plain:.2f}x the time (the price of validation)")
        spark.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
