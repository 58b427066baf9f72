"""bench ingest-cases: hostile files that real pools contain, one ingest each, both record sums printed.

    python build.py bench ingest-cases

Each case is written here with its expected record count (the generator's own), ingested into a fresh
warehouse through the ingest stage in one Spark session, and printed as

    records found = gave samples + quarantined        (found: the scanner's count; expected: ours)
    samples = ingested + duplicate in batch + already stored + raced

Cases: two top-level arrays in one .json; a .jsonl whose first line is an array; a damaged array element
holding a nested list of record-shaped objects; a record nested 100,000 levels deep; a .json.gz array cut
short; a .jsonl whose first record is 1.5 MB; a Self-Instruct task with 5,000 instances; a gzip line of
--bomb-mb MB (default 40; bench ingest-memory measures 400).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import tempfile
from pathlib import Path


def alpaca(i: int, **extra) -> dict:
    return {"instruction": f"Explain case {i} in one sentence.", "output": f"Case {i} explained.", **extra}


def cases(root: Path, bomb_mb: int) -> list[tuple[str, Path, int]]:
    """(name, file, records the file holds)."""
    out = []

    def put(name: str, data: bytes, records: int) -> None:
        p = root / name
        p.write_bytes(data)
        out.append((name, p, records))

    put(
        "two-arrays.json",
        (
            json.dumps([alpaca(i) for i in range(3)], indent=2)
            + "\n"
            + json.dumps([alpaca(i) for i in range(3, 7)])
        ).encode(),
        7,
    )
    put(
        "array-first-line.jsonl",
        (
            json.dumps([alpaca(10), alpaca(11)])
            + "\n"
            + "\n".join(json.dumps(alpaca(i)) for i in range(12, 20))
            + "\n"
        ).encode(),
        10,
    )
    damaged = json.dumps(
        [alpaca(20), alpaca(21, examples=[alpaca(900), alpaca(901)]), alpaca(22), alpaca(23)]
    )
    put("nested-damaged.json", damaged.replace('"Case 21 explained."', '"Case 21 explained.', 1).encode(), 4)
    deep = "[" * 100_000 + "]" * 100_000
    put(
        "deep.jsonl",
        (
            json.dumps(alpaca(30)) + '\n{"instruction": ' + deep + "}\n" + json.dumps(alpaca(31)) + "\n"
        ).encode(),
        3,
    )
    whole = gzip.compress(json.dumps([alpaca(i) for i in range(100, 400)]).encode())
    # the cut leaves a partial record and the unreadable rest: one row each
    put("cut.json.gz", whole[: len(whole) // 2], -1)
    put(
        "big-first.jsonl",
        (json.dumps(alpaca(40, input="word " * 300_000)) + "\n" + json.dumps(alpaca(41)) + "\n").encode(),
        2,
    )
    task = {
        "instruction": "Double the number.",
        "instances": [{"input": str(i), "output": str(2 * i)} for i in range(5000)],
    }
    put("self-instruct-5000.jsonl", (json.dumps(task) + "\n").encode(), 1)
    bomb = root / "bomb.jsonl.gz"
    with gzip.open(bomb, "wt", compresslevel=9) as f:
        f.write(
            json.dumps(alpaca(50))
            + '\n{"instruction": "'
            + "A" * (bomb_mb << 20)
            + '", "output": "x"}\n'
            + json.dumps(alpaca(51))
            + "\n"
        )
    out.append((f"bomb-{bomb_mb}mb.jsonl.gz", bomb, 3))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bomb-mb", type=int, default=40)
    a = ap.parse_args()

    from instructlake.config import load_config
    from instructlake.ingest import stage
    from instructlake.spark import get_session
    from instructlake.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="il-bench-cases-"))
    try:
        todo = cases(tmp, a.bomb_mb)
        config = load_config("local", warehouse=str(tmp / "wh"))
        spark = get_session(config.platform, "bench-ingest-cases")
        for k, (name, path, expected) in enumerate(todo):
            store = Store(spark, str(tmp / f"wh{k}"))
            c = stage.run(spark, store, config, [str(path)]).counts
            reasons = {
                r["reason"]: r["count"] for r in store.read("quarantine").groupBy("reason").count().collect()
            }
            exp = "?" if expected < 0 else f"{expected:,}"
            print(
                f"{name:26} records found {c['records']:,} (written: {exp}) = "
                f"{c['records_with_samples']:,} gave samples + {c['quarantined']:,} quarantined "
                f"{dict(sorted(reasons.items()))}"
            )
            print(
                f"{'':26} samples {c['samples']:,} = {c['ingested']:,} ingested + "
                f"{c['duplicate_in_batch']:,} in batch + {c['duplicate_existing']:,} stored + "
                f"{c['duplicate_raced']:,} raced; stored rows "
                f"{store.count('samples'):,}",
                flush=True,
            )
            if expected >= 0 and c["records"] != expected:
                raise SystemExit(
                    f"{name}: the scanner found {c['records']} records, the file holds {expected}"
                )
        spark.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
