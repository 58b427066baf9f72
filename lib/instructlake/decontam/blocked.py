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


def _matrix(col) -> np.ndarray:
    vals = list(col)
    if not vals:
        return np.zeros((0, 0), np.float32)
    return np.stack([np.asarray(v, np.float32) for v in vals])


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
    from instructlake.decontam.match import cosine_candidates

    m = items.count()
    k = n_clusters or max(1, int(round(math.sqrt(m))))
    cen = centres(spark, items, k, seed)
    bc = spark.sparkContext.broadcast(cen)

    def assign(batches: Iterator) -> Iterator:
        import pandas as pd

        c = bc.value
        for pdf in batches:
            v = _matrix(pdf["vector"])
            if not len(v):
                continue
            sims = v @ c.T
            best = sims.argmax(1)
            ang = np.arccos(np.clip(sims[np.arange(len(v)), best], -1.0, 1.0))
            yield pd.DataFrame({"bucket": best.astype(np.int32), "item_idx": pdf["item_idx"].to_numpy(),
                                "bench_idx": pdf["bench_idx"].to_numpy(), "angle": ang, "vector": pdf["vector"]})

    placed = items.mapInPandas(assign, "bucket int, item_idx int, bench_idx int, angle double, vector array<float>") \
        .localCheckpoint()
    radius = np.zeros(k)
    for r in placed.groupBy("bucket").agg(F.max("angle").alias("r")).collect():
        radius[r["bucket"]] = r["r"]
    reach = math.acos(min(1.0, max(-1.0, threshold)))
    rbc = spark.sparkContext.broadcast(radius)

    def probe(batches: Iterator) -> Iterator:
        import pandas as pd

        c, rad = bc.value, rbc.value
        for pdf in batches:
            v = _matrix(pdf["vector"])
            if not len(v):
                continue
            ang = np.arccos(np.clip(v @ c.T, -1.0, 1.0))
            near = ang <= reach + rad[None, :] + SLACK
            near[np.arange(len(v)), ang.argmin(1)] = True
            rr, bb = np.nonzero(near)
            yield pd.DataFrame({"bucket": bb.astype(np.int32), "sample_id": pdf["sample_id"].to_numpy()[rr],
                                "vector": pdf["vector"].to_numpy()[rr]})

    probes = samples.mapInPandas(probe, "bucket int, sample_id string, vector array<float>")

    def match(left, right):
        import pandas as pd

        if not len(left) or not len(right):
            return pd.DataFrame({"sample_id": [], "item_idx": [], "cosine": []})
        right = right.sort_values("bench_idx", kind="stable")
        r, i, cos = cosine_candidates(_matrix(left["vector"]), _matrix(right["vector"]),
                                      right["bench_idx"].to_numpy(), n_bench, threshold, top_k)
        return pd.DataFrame({"sample_id": left["sample_id"].to_numpy()[r],
                             "item_idx": right["item_idx"].to_numpy()[i].astype(np.int32), "cosine": cos.astype(float)})

    log.info("blocked matching: %d prompts in %d KMeans buckets", m, k)
    return (probes.groupBy("bucket").cogroup(placed.select("bucket", "item_idx", "bench_idx", "vector").groupBy("bucket"))
            .applyInPandas(match, "sample_id string, item_idx int, cosine double"))
