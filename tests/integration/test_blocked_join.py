"""The KMeans-blocked embedding join finds the same matches as brute force: 100k samples x 10k prompts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from instructlake.decontam.blocked import candidates
from instructlake.decontam.match import cosine_candidates

DIM, N_ITEMS, N_SAMPLES, N_COPIES, THRESHOLD, TOP_K = 64, 10_000, 100_000, 3_000, 0.9, 3


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic(rng):
    """Clustered like real embeddings: 50 topics; members of a topic have cosine about 0.8 with each other,
    planted copies about 0.96 with their prompt."""
    topics = unit(rng.normal(size=(50, DIM)))

    def members(n):
        return unit(topics[rng.integers(0, 50, n)] + 0.5 * unit(rng.normal(size=(n, DIM))))

    items = members(N_ITEMS)
    samples = members(N_SAMPLES)
    src = rng.choice(N_ITEMS, N_COPIES, replace=False)
    samples[:N_COPIES] = unit(items[src] + 0.2 * unit(rng.normal(size=(N_COPIES, DIM))))
    return items, samples


def top_matches(rows, items, cos):
    """(sample, item) of the TOP_K best matches >= THRESHOLD per sample."""
    df = pd.DataFrame({"r": rows, "i": items, "c": cos})
    df = df[df.c >= THRESHOLD].sort_values(["r", "c"], ascending=[True, False]).groupby("r").head(TOP_K)
    return set(zip(df.r.astype(str), df.i.astype(int), strict=True))


def test_blocked_join_equals_brute_force(spark):
    rng = np.random.default_rng(7)
    items, samples = synthetic(rng)
    r, i, c = cosine_candidates(samples, items, np.zeros(N_ITEMS, np.int64), 1, THRESHOLD, TOP_K)
    brute = top_matches(r, i, c)
    assert len(brute) >= N_COPIES  # every planted copy, and some natural near pairs

    s_df = spark.createDataFrame(pd.DataFrame({"sample_id": np.arange(N_SAMPLES).astype(str),
                                               "vector": list(samples)}), "sample_id string, vector "
                                                                          "array<float>")
    i_df = spark.createDataFrame(pd.DataFrame({"item_idx": np.arange(N_ITEMS, dtype=np.int32),
                                               "bench_idx": np.zeros(N_ITEMS, np.int32), "vector": list(items)}),
                                 "item_idx int, bench_idx int, vector array<float>")
    got = candidates(spark, s_df.repartition(4), i_df, 1, THRESHOLD, TOP_K, n_clusters=100).toPandas()
    blocked = top_matches(got.sample_id.to_numpy(), got.item_idx.to_numpy(), got.cosine.to_numpy())
    assert blocked == brute
    # blocking did its job: each sample visited few of the 100 buckets (one best row per bucket visited,
    # plus its matches), so it was compared with a small share of the prompts
    visits = len(got) - len(blocked)
    assert visits < N_SAMPLES * 10, visits
