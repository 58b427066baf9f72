"""bench ingest-memory: what one gzip-bomb line adds to the peak memory of an ingest.

    python build.py bench ingest-memory [--bomb-mb 400] [--rows 20000] [--repeat 1]

Two ingests of the same pool, each `instructlake ingest` in a fresh process on a fresh warehouse: the
pool alone, and the pool plus one file holding a valid record, one line of --bomb-mb MB (a single
string: it compresses about a thousandfold) and another valid record. Printed: wall seconds and the peak
resident memory of each process tree (driver JVM, Python workers, CLI), polled every 0.5 s, and the
difference, which is what the bomb costs. Goal: under 300 MB for a 400 MB line. The bomb's quarantine
row (reason too_large, with its first ingest.quarantine_raw_chars) is checked too. With --repeat N the
two runs alternate N times and the medians are printed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _measure import run_measured

WORDS = "data model train answer question explain write code python list sort number city river".split()


def write_pool(path: Path, rows: int) -> None:
    rng = random.Random(3)
    with gzip.open(path, "wt", compresslevel=1) as f:
        for i in range(rows):
            q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30)))
            a = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 120)))
            f.write(json.dumps({"instruction": f"{q} ({i})", "input": "", "output": a}) + "\n")


def write_bomb(path: Path, mb: int) -> int:
    """A .jsonl.gz with a record, one line of `mb` MB, another record; returns the bomb line's bytes."""
    head, tail = '{"instruction": "', '", "output": "x"}'
    block = "A" * (1 << 20)
    with gzip.open(path, "wt", compresslevel=9) as f:
        f.write(json.dumps({"instruction": "before the bomb", "output": "kept"}) + "\n")
        f.write(head)
        for _ in range(mb):
            f.write(block)
        f.write(tail + "\n")
        f.write(json.dumps({"instruction": "after the bomb", "output": "kept"}) + "\n")
    return len(head) + mb * len(block) + len(tail)


def ingest(cli: str, warehouse: Path, files: list[Path]) -> tuple[float, float]:
    out, wall, peak, _ = run_measured([cli, "--warehouse", str(warehouse), "ingest", *map(str, files)])
    print("   ", out.strip().splitlines()[-2] if out.strip() else "", flush=True)
    return wall, peak


def check_quarantine(warehouse: Path, bomb_bytes: int) -> str:
    import pyarrow.dataset as ds

    rows = (
        ds.dataset(str(warehouse / "quarantine"), format="parquet")
        .to_table(columns=["reason", "raw_length", "raw"])
        .to_pylist()
    )
    big = [r for r in rows if r["reason"] == "too_large"]
    if len(big) != 1 or big[0]["raw_length"] != bomb_bytes + 1:
        raise SystemExit(
            f"the bomb's quarantine row is not as expected: {[(r['reason'], r['raw_length']) for r in rows]}"
        )
    return f"quarantined once as too_large, {big[0]['raw_length']:,} bytes, {len(big[0]['raw']):,} chars kept"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bomb-mb", type=int, default=400)
    ap.add_argument("--rows", type=int, default=20_000, help="records in the pool both runs ingest")
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    cli = str(Path(sys.executable).with_name("instructlake"))
    tmp = Path(tempfile.mkdtemp(prefix="il-bench-mem-"))
    try:
        pool, bomb = tmp / "pool.jsonl.gz", tmp / "bomb.jsonl.gz"
        write_pool(pool, a.rows)
        bomb_bytes = write_bomb(bomb, a.bomb_mb)
        print(
            f"pool: {a.rows:,} records ({pool.stat().st_size / 1e6:.1f} MB gz); bomb: one line of "
            f"{bomb_bytes / 1e6:.0f} MB in {bomb.stat().st_size / 1e3:.0f} KB of gzip",
            flush=True,
        )
        base, with_bomb = [], []
        for k in range(a.repeat):
            print(f"run {k + 1}: pool alone", flush=True)
            base.append(ingest(cli, tmp / f"wh-base-{k}", [pool]))
            print(f"run {k + 1}: pool + bomb", flush=True)
            with_bomb.append(ingest(cli, tmp / f"wh-bomb-{k}", [pool, bomb]))
            note = check_quarantine(tmp / f"wh-bomb-{k}", bomb_bytes)
        b_wall, b_mem = (statistics.median(x) for x in zip(*base, strict=True))
        w_wall, w_mem = (statistics.median(x) for x in zip(*with_bomb, strict=True))
        print(f"\n{'':28}{'seconds':>9}{'peak tree RSS':>15}")
        print(f"{'pool alone':28}{b_wall:9.1f}{b_mem * 1000:12.0f} MB")
        print(f"{'pool + bomb line':28}{w_wall:9.1f}{w_mem * 1000:12.0f} MB")
        diff = (w_mem - b_mem) * 1000
        print(f"the bomb adds {diff:.0f} MB to the peak (goal < 300 MB for a 400 MB line); {note}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
