"""bench graph: tag co-occurrence edges + degrees + components + power-law fit on synthetic tag sets.

    python build.py bench graph [--sizes 10000,100000,1000000] [--vocab 20000]

Each sample gets 1-8 tags drawn from a vocabulary with a heavy-tailed (log-uniform) popularity, generated
inside Spark from hashes of (sample, slot), so the data never passes through the driver. Per size: the
seconds of the whole analysis (pairs, weights and PMI, degrees, components, the fit on the collected
degrees), then the log-log slope of seconds against samples (goal: <= 1.1, i.e. about linear).
A warm-up run on 2,000 samples is not counted.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from pyspark.sql import functions as F


def synthetic(spark, n: int, vocab: int):
    k = (F.abs(F.xxhash64(F.col("id"), F.lit(-1))) % 8 + 1).cast("int")
    u = lambda j: (F.abs(F.xxhash64(F.col("id"), j)) % 1_000_003) / F.lit(1_000_003.0)  # noqa: E731
    tag = lambda j: F.concat(F.lit("tag "), F.floor(F.pow(F.lit(float(vocab)), u(j))).cast("string"))  # noqa: E731
    return (spark.range(n).select(F.col("id").cast("string").alias("sample_id"),
                                  F.array_distinct(F.transform(F.sequence(F.lit(1), k), tag)).alias("tags")))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--vocab", type=int, default=20_000)
    ap.add_argument("--max-tags", type=int, default=12)
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]

    from instructlake.config import load_config
    from instructlake.graph import cooccur, powerlaw_fit
    from instructlake.spark import get_session

    cfg = load_config("local")
    spark = get_session(cfg.platform, "bench-graph")
    spark.sparkContext.setLogLevel("ERROR")

    def analyse(n: int) -> tuple[float, dict]:
        t = time.time()
        tagged = synthetic(spark, n, a.vocab).localCheckpoint()
        edges, freq = cooccur.pair_edges(tagged, a.max_tags)
        edges = edges.localCheckpoint()
        deg = cooccur.degrees(spark, edges, freq).select("degree").toPandas()["degree"].to_numpy()
        f = powerlaw_fit.fit(deg, "degree")
        return time.time() - t, {"edges": edges.count(), "tags": len(deg), "gamma": f.gamma, "xmin": f.xmin}

    analyse(2000)  # warm-up: JIT, Python workers
    rows = []
    for n in sizes:
        secs, info = analyse(n)
        rows.append((n, secs, info))
        print(f"{n:>10,} samples  {secs:7.1f}s  {info['edges']:>10,} edges  {info['tags']:>7,} tags  "
              f"gamma {info['gamma']:.2f} (xmin {info['xmin']})", flush=True)
    spark.stop()
    print()
    for (n1, s1, _), (n2, s2, _) in zip(rows, rows[1:], strict=False):
        print(f"slope {n1:,} -> {n2:,}: {math.log(s2 / s1) / math.log(n2 / n1):.2f}")
    if len(rows) > 1:
        xs = [math.log(n) for n, _, _ in rows]
        ys = [math.log(s) for _, s, _ in rows]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
        print(f"log-log slope of seconds against samples (least squares over all sizes): {slope:.2f}; goal "
              f"<= 1.1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
