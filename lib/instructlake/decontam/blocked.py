"""Embedding matches against a benchmark side too big to broadcast: KMeans buckets instead of a cross join.

The prompts are clustered with Spark ML KMeans; each bucket records its radius, the largest angle between
a member and the centre. A sample can reach cosine >= t with a prompt of bucket c only if
angle(sample, centre c) <= arccos(t) + radius(c) (the triangle inequality for angles on the sphere), so
the sample is sent to exactly those buckets (and always to its nearest). Matches at or above the threshold
are therefore the same as brute force; only the best-below-threshold row of a sample is the best among the
buckets it visited. Buckets and samples meet in a cogroup, one numpy matrix product per bucket.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

SLACK = 1e-3  # radians: float32 rounding must not drop a match sitting on the bound


def centres(spark: SparkSession, items: DataFrame, k: int, seed: int) -> np.ndarray:
    """Unit-length KMeans centres of items.vector (Spark ML)."""
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.functions import array_to_vector

    data = items.select(array_to_vector("vector").alias("features"))
    model = KMeans(k=k, seed=seed, maxIter=20, initMode="k-means||").fit(data)
    c = np.asarray(model.clusterCenters(), np.float32)
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)


def candidates(spark: SparkSession, samples: DataFrame, items: DataFrame, n_bench: int, threshold: float,
               top_k: int, n_clusters: int = 0, seed: int = 0) -> DataFrame:
    """(sample_id, item_idx, cosine) as match.cosine_candidates would give per bucket visited.
    samples: (sample_id, vector); items: (item_idx int, bench_idx int, vector)."""
    from instructlake.decontam.match import as_matrix, cosine_candidates

    m = items.count()
    k = n_clusters or max(1, int(round(math.sqrt(m))))
    cen = centres(spark, items, k, seed)
    bc = spark.sparkContext.broadcast(cen)

    def assign(batches: Iterator) -> Iterator:
        import pyarrow as pa

        c = bc.value
        for b in batches:
            if not b.num_rows:
                continue
            v = as_matrix(b.column("vector"))
            sims = v @ c.T
            best = sims.argmax(1)
            ang = np.arccos(np.clip(sims[np.arange(len(v)), best], -1.0, 1.0))
            yield pa.RecordBatch.from_arrays([pa.array(best.astype(np.int32)), b.column("item_idx"), b.column("bench_idx"),
                                              pa.array(ang.astype(np.float64)), b.column("vector")],
                                             names=["bucket", "item_idx", "bench_idx", "angle", "vector"])

    placed = (items.select("item_idx", "bench_idx", "vector")
              .mapInArrow(assign, "bucket int, item_idx int, bench_idx int, angle double, vector array<float>")
              .localCheckpoint())
    radius = np.zeros(k)
    for r in placed.groupBy("bucket").agg(F.max("angle").alias("r")).collect():
        radius[r["bucket"]] = r["r"]
    reach = math.acos(min(1.0, max(-1.0, threshold)))
    rbc = spark.sparkContext.broadcast(radius)

    def probe(batches: Iterator) -> Iterator:
        import pyarrow as pa

        c, rad = bc.value, rbc.value
        for b in batches:
            if not b.num_rows:
                continue
            ang = np.arccos(np.clip(as_matrix(b.column("vector")) @ c.T, -1.0, 1.0))
            near = ang <= reach + rad[None, :] + SLACK
            near[np.arange(len(ang)), ang.argmin(1)] = True
            rr, bb = np.nonzero(near)
            take = pa.array(rr)
            yield pa.RecordBatch.from_arrays([pa.array(bb.astype(np.int32)), b.column("sample_id").take(take),
                                              b.column("vector").take(take)], names=["bucket", "sample_id", "vector"])

    probes = samples.select("sample_id", "vector").mapInArrow(probe, "bucket int, sample_id string, vector "
                                                                     "array<float>")

    def match(left, right):
        import pyarrow as pa

        empty = pa.table({"sample_id": pa.array([], pa.string()), "item_idx": pa.array([], pa.int32()),
                          "cosine": pa.array([], pa.float64())})
        if not left.num_rows or not right.num_rows:
            return empty
        right = right.sort_by("bench_idx")
        r, i, cos = cosine_candidates(as_matrix(left.column("vector")),
                                      as_matrix(right.column("vector")),
                                      right.column("bench_idx").to_numpy(), n_bench, threshold, top_k)
        return pa.table({"sample_id": left.column("sample_id").take(pa.array(r)),
                         "item_idx": right.column("item_idx").take(pa.array(i)),
                         "cosine": pa.array(cos.astype(np.float64))})

    log.info("blocked matching: %d prompts in %d KMeans buckets", m, k)
    return (probes.groupBy("bucket").cogroup(placed.select("bucket", "item_idx", "bench_idx", "vector").groupBy("bucket"))
            .applyInArrow(match, "sample_id string, item_idx int, cosine double"))
