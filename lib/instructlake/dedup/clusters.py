"""Dedup's clusters from signatures: exact groups, near pairs by LSH banding (borderline pairs checked
exactly), connected components and the keep rule. Two builders give the same table: on the driver with
numpy for pools whose signatures fit there (clusters_driver.build_clusters_driver, with lsh_local), else
in Spark (build_clusters, here). stage.run chooses between them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.config import DedupConfig
from instructlake.dedup.minhash import MinHasher, normalize, optimal_bands, pair_jaccard
from instructlake.graph.components import connected_components

log = logging.getLogger(__name__)


def jaccard(a: Column, b: Column, num_perm: int) -> Column:
    """Estimated Jaccard similarity: the share of equal signature positions (4 bytes each; in the JVM)."""
    def position(sig: Column, k: Column) -> Column:
        return F.substring(sig, k * 4 + 1, F.lit(4))

    same = F.aggregate(F.sequence(F.lit(0), F.lit(num_perm - 1)), F.lit(0),
                       lambda n, k: n + F.when(position(a, k) == position(b, k), 1).otherwise(0))
    return same / F.lit(float(num_perm))


def exact_edges(sigs: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(edges member -> group representative, representatives' signatures). Representative: smallest id."""
    # groupBy + join rather than a window: partial aggregation keeps a group of millions cheap
    reps_of = sigs.groupBy("exact_h1", "exact_h2").agg(F.min("sample_id").alias("rep"))
    tagged = sigs.join(reps_of, ["exact_h1", "exact_h2"])
    edges = (tagged.filter("sample_id <> rep")
             .select(F.col("sample_id").alias("src"), F.col("rep").alias("dst")))
    reps = tagged.filter("sample_id = rep").select("sample_id", "signature")
    return edges, reps


def exact_similarity(pairs: DataFrame, texts: DataFrame, cfg: DedupConfig) -> DataFrame:
    """(src, dst, similarity) with the exact n-gram Jaccard of the two texts (borderline pairs only)."""
    import pyarrow as pa

    # Only the texts the pairs name travel: a semi-join against their ids (small enough to broadcast)
    # instead of shuffling every text twice.
    ids = pairs.select(F.col("src").alias("sample_id")).union(pairs.select(F.col("dst").alias("sample_id")))
    needed = texts.join(F.broadcast(ids.distinct()), "sample_id", "left_semi")
    t1 = needed.select(F.col("sample_id").alias("src"), F.col("text").alias("t1"))
    t2 = needed.select(F.col("sample_id").alias("dst"), F.col("text").alias("t2"))
    joined = pairs.select("src", "dst").join(t1, "src").join(t2, "dst")
    hasher = MinHasher(num_perm=cfg.num_perm, ngram=cfg.ngram, seed=cfg.seed)

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            sims = pa.array(pair_jaccard(hasher, normalize(b.column("t1"), cfg.strip_templates),
                                         normalize(b.column("t2"), cfg.strip_templates)), pa.float64())
            yield pa.RecordBatch.from_arrays([b.column("src"), b.column("dst"), sims],
                                             names=["src", "dst", "similarity"])

    return joined.mapInArrow(score, "src string, dst string, similarity double")


def near_edges(reps: DataFrame, texts: DataFrame, cfg: DedupConfig) -> tuple[DataFrame, int, int, int]:
    """Verified near-duplicate pairs (src, dst, similarity) among representatives; also bands, rows and
    the number of pairs checked exactly.

    In each band bucket every member is linked to the bucket's smallest id (n - 1 pairs, not n^2).
    A pair is accepted when its estimated Jaccard clears the threshold by dedup.exact_verify_margin,
    rejected when it misses by more, and decided by the exact n-gram Jaccard of the texts in between.
    Members that fail against the root get further rounds among themselves (dedup.link_rounds)."""
    bands, rows = optimal_bands(cfg.threshold, cfg.num_perm, cfg.fp_weight, cfg.fn_weight)
    keyed = reps.select(
        "sample_id",
        F.posexplode(F.array(*[F.xxhash64(F.substring("signature", 1 + i * rows * 4, rows * 4))
                               for i in range(bands)]))
        .alias("band", "bucket"))
    sig = reps.select("sample_id", "signature")
    sig_src = sig.withColumnRenamed("sample_id", "src").withColumnRenamed("signature", "s1")
    sig_dst = sig.withColumnRenamed("sample_id", "dst").withColumnRenamed("signature", "s2")
    lo, hi = cfg.threshold - cfg.exact_verify_margin, cfg.threshold + cfg.exact_verify_margin
    remaining = keyed
    verified = None
    cached = []
    n_exact = 0
    for rnd in range(1, cfg.link_rounds + 1):
        roots = (remaining.groupBy("band", "bucket")
                 .agg(F.min("sample_id").alias("root"), F.count("*").alias("n")))
        cand = (remaining.join(roots.filter("n > 1"), ["band", "bucket"]).filter("sample_id <> root")
                .select(F.col("sample_id").alias("src"), F.col("root").alias("dst"), "band", "bucket")
                ).cache()
        scored = (cand.select("src", "dst").distinct().join(sig_src, "src").join(sig_dst, "dst")
                  .select("src", "dst", jaccard(F.col("s1"), F.col("s2"), cfg.num_perm).alias("similarity"))
                  ).cache()
        cached += [cand, scored]
        sure = scored.filter(F.col("similarity") >= F.lit(max(hi, cfg.threshold)))
        ok = sure
        if cfg.exact_verify_margin > 0:
            border = scored.filter((F.col("similarity") >= F.lit(lo)) & (F.col("similarity") < F.lit(hi)))
            checked = exact_similarity(border, texts, cfg).localCheckpoint()
            n_exact += checked.count()
            ok = sure.unionByName(checked.filter(F.col("similarity") >= cfg.threshold))
        ok = ok.localCheckpoint()
        verified = ok if verified is None else verified.unionByName(ok)
        if rnd == cfg.link_rounds:
            break
        failed = cand.join(ok.select("src", "dst"), ["src", "dst"], "left_anti")
        remaining = failed.select(F.col("src").alias("sample_id"), "band", "bucket").localCheckpoint()
    result = verified.dropDuplicates(["src", "dst"]).localCheckpoint()
    for df in cached:
        df.unpersist()
    return result, bands, rows, n_exact


def unique_ids(samples: DataFrame) -> None:
    """Check that each sample_id is in `samples` once (the key of its MERGE): a table written around the
    pipeline could hold one twice, which would give one id two signature rows. Shuffles only the ids."""
    r = samples.agg(F.count(F.lit(1)).alias("rows"), F.count_distinct("sample_id").alias("ids")).first()
    if r["rows"] != r["ids"]:
        twice = samples.groupBy("sample_id").count().filter("count > 1")
        examples = [t["sample_id"] for t in twice.orderBy("sample_id").limit(3).collect()]
        raise repeated_ids(twice.count(), examples)


def repeated_ids(n: int, examples: list[str]) -> RuntimeError:
    return RuntimeError(f"dedup: samples holds {n:,} sample_id(s) in more than one row (for example "
                        f"{', '.join(examples)}); its rows are keyed by sample_id, so was it written around "
                        "instructlake's ingest? Nothing was written.")


def choose_kept(members: DataFrame, cfg: DedupConfig) -> DataFrame:
    """Mark one member per component as kept: source priority, then longest response, then smallest id."""
    prio = {s: i for i, s in enumerate(cfg.source_priority)}
    rank = F.lit(len(prio))
    for s, i in prio.items():
        rank = F.when(F.col("source") == s, F.lit(i)).otherwise(rank)
    w = (Window.partitionBy("component")
         .orderBy(rank.asc(), F.col("response_chars").desc(), F.col("sample_id").asc()))
    return (members.withColumn("_pos", F.row_number().over(w))
            .withColumn("is_kept", F.col("_pos") == 1).drop("_pos"))


def build_clusters(spark: SparkSession, samples: DataFrame, sigs: DataFrame, cfg: DedupConfig, chash: str,
                   engine: str = "auto") -> tuple[DataFrame, dict[str, int]]:
    """Clusters from signatures, all in Spark; `samples` is the narrow() frame of the pool."""
    matchable = sigs.filter("n_tokens > 0")
    t0 = time.time()
    ex_edges, reps = exact_edges(matchable)
    ex_edges = ex_edges.localCheckpoint()
    log.info("exact groups: %d duplicate links (%.1fs)", ex_edges.count(), time.time() - t0)
    t0 = time.time()
    nr_edges, bands, rows, n_exact = near_edges(reps, samples.select("sample_id", "text"), cfg)
    log.info("LSH in Spark: %d bands x %d rows (threshold %.2f, %d permutations): %d verified near pairs; %d "
             "borderline pairs checked exactly (%.1fs)", bands, rows, cfg.threshold, cfg.num_perm,
             nr_edges.count(), n_exact, time.time() - t0)
    t0 = time.time()
    edges = ex_edges.unionByName(nr_edges.select("src", "dst"))
    comps = connected_components(spark, edges, sigs.select(F.col("sample_id").alias("id")), engine)
    members = (comps.withColumnRenamed("id", "sample_id")
               .join(samples.select("sample_id", "source", "response_chars"), "sample_id")
               .join(sigs.select("sample_id", "exact_h1", "exact_h2", "signature"), "sample_id"))
    members = choose_kept(members, cfg)
    log.info("components built (%.1fs)", time.time() - t0)
    kept = members.filter("is_kept").select(
        F.col("component"), F.col("sample_id").alias("kept_id"), F.col("exact_h1").alias("k1"),
        F.col("exact_h2").alias("k2"), F.col("signature").alias("ksig"))
    size = Window.partitionBy("component")
    same_text = (F.col("exact_h1") == F.col("k1")) & (F.col("exact_h2") == F.col("k2"))
    out = (members.join(kept, "component")
           .withColumn("cluster_size", F.count("*").over(size))
           .withColumn("twins", F.count("*").over(Window.partitionBy("component", "exact_h1", "exact_h2")))
           # exact: another member of the cluster has the same normalized text; near: only similar ones do
           .withColumn("method", F.when(F.col("is_kept"), "unique").when(F.col("twins") > 1, "exact")
                       .otherwise("near"))
           .withColumn("similarity", F.when(F.col("is_kept") | same_text, F.lit(1.0))
                       .otherwise(jaccard(F.col("signature"), F.col("ksig"), cfg.num_perm)))
           .withColumn("cluster_id", F.col("component"))
           .withColumn("config_hash", F.lit(chash))
           .select(*schemas.DEDUP_CLUSTERS.fieldNames()))
    out = out.cache()
    by_method = {r["method"]: r["count"] for r in out.groupBy("method").count().collect()}
    counts = {"exact_pairs": ex_edges.count(), "near_pairs": nr_edges.count(), "exact_checked_pairs": n_exact,
              "bands": bands, "rows": rows, **cluster_counts(by_method, out.filter("cluster_size > 1 AND "
                                                                                   "is_kept").count(),
                                                              sigs.filter("n_tokens = 0").count())}
    return out, counts


def cluster_counts(by_method: dict[str, int], clusters: int, empty: int) -> dict[str, int]:
    return {"exact_duplicates": int(by_method.get("exact", 0)),
            "near_duplicates": int(by_method.get("near", 0)), "clusters": int(clusters),
            "kept": int(by_method.get("unique", 0)), "empty_text": int(empty)}
