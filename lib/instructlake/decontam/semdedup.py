"""semdedup: SemDeDup-style semantic dedup of the samples exact/near dedup kept -> `dedup_clusters`.

KMeans (Spark ML) over the instruction embeddings; within each KMeans cluster every pair with cosine >=
semdedup.threshold is a duplicate pair (numpy, blockwise). Pairs join into groups (union-find); one member
per group is kept by the dedup keep rule (source priority, longest response, smallest id), the others get
method "semantic", is_kept false, kept_id the kept member and similarity their cosine with it. Their
cluster_id and cluster_size still describe their exact/near cluster.

A re-run judges the dedup survivors again, together with the samples it marked before: one no longer a
duplicate (a higher threshold) is restored to kept. dedup rewrites dedup_clusters, so run semdedup after it.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.config import Config, config_hash
from instructlake.dedup.clusters import choose_kept
from instructlake.dedup.stage import response_chars
from instructlake.embed.table import instruction_vectors
from instructlake.frames import rows_frame
from instructlake.graph.components import smallest_member_components
from instructlake.runs import EmptyInputError, StageResult
from instructlake.store import Store

log = logging.getLogger(__name__)

BLOCK = 4096  # rows per side of one block of a cluster's similarity matrix


def pairs_above(vecs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) for i < j with cosine >= threshold, computed in BLOCK x BLOCK tiles."""
    out_i, out_j, out_c = [], [], []
    n = len(vecs)
    for a in range(0, n, BLOCK):
        for b in range(a, n, BLOCK):
            sims = vecs[a: a + BLOCK] @ vecs[b: b + BLOCK].T
            ii, jj = np.nonzero(sims >= threshold)
            ii, jj = ii + a, jj + b
            keep = ii < jj
            out_i.append(ii[keep])
            out_j.append(jj[keep])
            out_c.append(sims[ii[keep] - a, jj[keep] - b])
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_c)


def run(spark: SparkSession, store: Store, config: Config) -> StageResult:
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.functions import array_to_vector

    cfg = config.semdedup
    if not store.exists("dedup_clusters"):
        raise EmptyInputError("semdedup: there is no dedup_clusters table; run `instructlake dedup` first")
    chash = config_hash({"semdedup": config_hash(cfg), "embed": config.embed.model})
    cv = store.version("dedup_clusters")
    clusters = store.read("dedup_clusters", version=cv)
    judged = (clusters.filter(F.col("is_kept") | (F.col("method") == "semantic")) if cfg.only_kept
              else clusters)
    version = store.version("samples")
    samples = store.read("samples", version=version)
    pool = (samples.join(judged.select("sample_id"), "sample_id", "left_semi")
            .select("sample_id", "instruction", "source", response_chars().alias("response_chars"))
            ).localCheckpoint()
    n = pool.count()
    counts = {"input": n, "clusters": 0, "pairs": 0, "groups": 0, "semantic_duplicates": 0, "restored": 0}
    if n < 2:
        return StageResult(stage="semdedup", config_hash=chash, counts=counts,
                           input_versions={"samples": version})
    t0 = time.time()
    vectors, counts["embedded"] = instruction_vectors(spark, store, config, pool)
    k = cfg.clusters or max(1, int(round(math.sqrt(n / 4))))
    k = min(k, n)
    data = (vectors.select("sample_id", array_to_vector("vector").alias("features"), "vector")
            .localCheckpoint())
    train = data
    if cfg.train_per_cluster and n > k * cfg.train_per_cluster:
        train = data.sample(fraction=k * cfg.train_per_cluster / n, seed=cfg.seed)
    assigned = KMeans(k=k, seed=cfg.seed, maxIter=20).fit(train).transform(data)
    counts["clusters"] = k
    threshold = cfg.threshold

    def within(t):
        import pyarrow as pa

        from instructlake.decontam.match import as_matrix

        i, j, c = pairs_above(as_matrix(t.column("vector")), threshold)
        ids = t.column("sample_id")
        return pa.table({"a": ids.take(pa.array(i)), "b": ids.take(pa.array(j)),
                         "cosine": pa.array(c.astype(np.float64))})

    pairs = (assigned.select("sample_id", "vector", "prediction").groupBy("prediction")
             .applyInArrow(within, "a string, b string, cosine double").collect())
    counts["pairs"] = len(pairs)
    comp = smallest_member_components((r["a"], r["b"]) for r in pairs)
    log.info("semdedup: %d samples, %d KMeans clusters, %d pairs with cosine >= %.2f, %d groups (%.1fs)", n,
             k, len(pairs), threshold, len(set(comp.values())), time.time() - t0)

    removed_rows = []
    if comp:
        members = rows_frame(spark, list(comp.items()), "sample_id string, component string")
        ranked = choose_kept(members.join(pool.select("sample_id", "source", "response_chars"), "sample_id"),
                             config.dedup).collect()
        keeper = {r["component"]: r["sample_id"] for r in ranked if r["is_kept"]}
        vec_of = {r["sample_id"]: np.asarray(r["vector"], np.float32)
                  for r in vectors.join(members, "sample_id", "left_semi").collect()}
        for r in ranked:
            if not r["is_kept"]:
                kid = keeper[r["component"]]
                removed_rows.append((r["sample_id"], kid, float(vec_of[r["sample_id"]] @ vec_of[kid])))
        counts["groups"] = len(keeper)
    counts["semantic_duplicates"] = len(removed_rows)
    removed = rows_frame(spark, removed_rows, "sample_id string, new_kept string, new_sim double")
    old = clusters.filter(F.col("method") == "semantic").select("sample_id")
    restored = old.join(removed, "sample_id", "left_anti")
    counts["restored"] = restored.count()
    updates = (clusters.join(removed, "sample_id")
               .withColumn("method", F.lit("semantic")).withColumn("is_kept", F.lit(False))
               .withColumn("kept_id", F.col("new_kept")).withColumn("similarity", F.col("new_sim"))
               .withColumn("config_hash", F.lit(chash)).select(*schemas.DEDUP_CLUSTERS.fieldNames())
               .unionByName(clusters.join(restored, "sample_id", "left_semi")
                            .withColumn("method", F.lit("unique")).withColumn("is_kept", F.lit(True))
                            .withColumn("kept_id", F.col("sample_id")).withColumn("similarity", F.lit(1.0))
                            .select(*schemas.DEDUP_CLUSTERS.fieldNames()))).localCheckpoint()
    if updates.count():
        store.merge("dedup_clusters", updates, update=True, source_is_materialized=True)
    return StageResult(stage="semdedup", config_hash=chash, counts=counts,
                       input_versions={"samples": version, "dedup_clusters": cv},
                       output_versions={"dedup_clusters": store.version("dedup_clusters")})
