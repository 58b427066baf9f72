"""decontam: flag samples close to benchmark prompts -> `contamination` (incremental).

Evidence per (sample, prompt): the cosine of their embeddings and the word n-grams they share. A benchmark
side up to platform.decontam.broadcast_max_rows prompts is broadcast (vectors and n-gram hashes) and each
Arrow batch of samples is matched with matrix products; a bigger one goes through KMeans buckets
(decontam/blocked.py) for the embeddings while its n-gram hashes are still broadcast.

Kept per sample and benchmark: the best prompt by cosine (flagged or not: it shows how close the sample
came), every prompt flagged by n-grams, and up to top_k prompts flagged by cosine. Only samples without
rows under the current config hash (decontam section, embedding model, benchmark contents) are checked.
Export drops flagged samples and refuses samples not checked under the current config.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import numpy as np
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.config import Config, config_hash
from instructlake.embed.table import instruction_vectors
from instructlake.frames import rows_frame
from instructlake.pool import not_checked, without_removed
from instructlake.runs import EmptyInputError, StageResult
from instructlake.store import Store

log = logging.getLogger(__name__)

EVIDENCE = "sample_id string, item_idx int, cosine double, ngram_shared int, ngram_example string"


def benchmark_items(store: Store) -> DataFrame:
    """(item_idx, bench_idx, benchmark, item_id, prompt), each benchmark's items contiguous in item_idx
    (numbered on the driver: the prompts are collected for the n-gram index anyway)."""
    rows = (store.read("benchmarks").select("benchmark", "item_id", "prompt")
            .orderBy("benchmark", "item_id").collect())
    names = sorted({r["benchmark"] for r in rows})
    bench_idx = {n: i for i, n in enumerate(names)}
    return rows_frame(
        store.spark,
        [(i, bench_idx[r["benchmark"]], r["benchmark"], r["item_id"], r["prompt"])
         for i, r in enumerate(rows)],
        "item_idx int, bench_idx int, benchmark string, item_id string, prompt string")


def decontam_hash(config: Config, items: DataFrame) -> str:
    fingerprint = config_hash({"items": sorted(r[0] for r in items.select(
        F.xxhash64("benchmark", "item_id", "prompt")).collect())})
    return config_hash({"decontam": config_hash(config.decontam), "embed": config.embed.model,
                        "benchmarks": fingerprint})


def broadcast_evidence(spark: SparkSession, todo: DataFrame, item_vecs: np.ndarray, bench_of_item: np.ndarray,
                       n_bench: int, prompts: list[str], config: Config) -> DataFrame:
    """One pass over (sample_id, instruction, vector): cosine candidates and n-gram hits per Arrow batch."""
    from instructlake.decontam.match import NgramIndex

    cfg = config.decontam
    bc = spark.sparkContext.broadcast((item_vecs, bench_of_item, NgramIndex.build(prompts, cfg.ngram)))

    def run(batches: Iterator) -> Iterator:
        import pyarrow as pa

        from instructlake.decontam.match import as_matrix, cosine_candidates, ngram_hits

        bench, of_item, nidx = bc.value
        for b in batches:
            if not b.num_rows:
                continue
            vec = as_matrix(b.column("vector"))
            r1, i1, c1 = cosine_candidates(vec, bench, of_item, n_bench, cfg.cosine_threshold, cfg.top_k)
            r2, i2, shared, examples = ngram_hits(b.column("instruction"), nidx)
            c2 = np.einsum("ij,ij->i", vec[r2], bench[i2]) if len(r2) else np.zeros(0, np.float32)
            ids = np.asarray(b.column("sample_id").to_pylist(), dtype=object)
            yield pa.RecordBatch.from_arrays(
                [pa.array(np.concatenate([ids[r1], ids[r2]]), pa.string()),
                 pa.array(np.concatenate([i1, i2]).astype(np.int32)),
                 pa.array(np.concatenate([c1, c2]).astype(np.float64)),
                 pa.array(np.concatenate([np.zeros(len(r1), np.int32), shared.astype(np.int32)])),
                 pa.array([None] * len(r1) + examples, pa.string())],
                names=["sample_id", "item_idx", "cosine", "ngram_shared", "ngram_example"])

    return todo.select("sample_id", "instruction", "vector").mapInArrow(run, EVIDENCE)


def ngram_evidence(spark: SparkSession, todo: DataFrame, prompts: list[str], ngram: int) -> DataFrame:
    from instructlake.decontam.match import NgramIndex

    bc = spark.sparkContext.broadcast(NgramIndex.build(prompts, ngram))

    def run(batches: Iterator) -> Iterator:
        import pyarrow as pa

        from instructlake.decontam.match import ngram_hits

        for b in batches:
            r, i, shared, examples = ngram_hits(b.column("instruction"), bc.value)
            ids = np.asarray(b.column("sample_id").to_pylist(), dtype=object)
            yield pa.RecordBatch.from_arrays(
                [pa.array(ids[r], pa.string()), pa.array(i.astype(np.int32)), pa.nulls(len(r), pa.float64()),
                 pa.array(shared.astype(np.int32)), pa.array(examples, pa.string())],
                names=["sample_id", "item_idx", "cosine", "ngram_shared", "ngram_example"])

    return todo.select("sample_id", "instruction").mapInArrow(run, EVIDENCE)


def finalize(evidence: DataFrame, items: DataFrame, per_item: DataFrame, config: Config,
             chash: str) -> DataFrame:
    """Evidence rows -> contamination rows: one per (sample, prompt), flags, methods, the keep rule."""
    cfg = config.decontam
    e = (evidence.groupBy("sample_id", "item_idx")
         .agg(F.max("cosine").alias("cosine"), F.max("ngram_shared").alias("ngram_shared"),
              F.max("ngram_example").alias("ngram_example"))
         .join(F.broadcast(items.select("item_idx", "benchmark", "item_id")), "item_idx")
         .join(F.broadcast(per_item), "item_idx", "left"))
    ratio = F.when(F.col("n_ngrams") > 0, F.col("ngram_shared") / F.col("n_ngrams")).otherwise(0.0)
    by_emb = F.coalesce(F.col("cosine") >= cfg.cosine_threshold, F.lit(False))
    by_ng = F.lit(False)
    if cfg.ngram_min_shared > 0:
        by_ng = by_ng | (F.col("ngram_shared") >= cfg.ngram_min_shared)
    if cfg.ngram_min_ratio > 0:
        by_ng = by_ng | (F.col("ngram_ratio") >= cfg.ngram_min_ratio)
    rank = F.row_number().over(Window.partitionBy("sample_id", "benchmark")
                               .orderBy(F.col("cosine").desc_nulls_last(), F.col("ngram_shared").desc(),
                                        "item_id"))
    methods = F.filter(F.array(F.when(F.col("by_emb"), F.lit("embedding")),
                               F.when(F.col("by_ng"), F.lit("ngram"))),
                       lambda x: x.isNotNull())
    return (e.withColumn("ngram_ratio", ratio).withColumn("by_emb", by_emb).withColumn("by_ng", by_ng)
            .withColumn("rank", rank)
            .filter((F.col("rank") == 1) | F.col("by_ng") | (F.col("by_emb") & (F.col("rank") <= cfg.top_k)))
            .withColumn("methods", methods).withColumn("flagged", F.col("by_emb") | F.col("by_ng"))
            .withColumn("ngram_example", F.when(F.col("ngram_shared") > 0, F.col("ngram_example")))
            .withColumn("config_hash", F.lit(chash)).withColumn("checked_at", F.current_timestamp())
            .select(*schemas.CONTAMINATION.fieldNames()))


def run(spark: SparkSession, store: Store, config: Config,
        benchmarks: list[str] | tuple[str, ...] = ()) -> StageResult:
    from instructlake.decontam.benchmarks import DEFAULT, load

    cfg = config.decontam
    loaded = {}
    if benchmarks:
        loaded = load(spark, store, list(benchmarks), config.ingest.quarantine_raw_chars)
    elif not store.exists("benchmarks") or not store.read("benchmarks").limit(1).count():
        log.info("no benchmarks loaded yet: loading the built-in %s (add others with --benchmark NAME=PATH)",
                 DEFAULT)
        loaded = load(spark, store, [DEFAULT], config.ingest.quarantine_raw_chars)
    if not store.exists("samples"):
        raise EmptyInputError("decontam: there is no samples table; run `instructlake ingest` first")
    items = benchmark_items(store).localCheckpoint()
    item_rows = items.orderBy("item_idx").collect()
    names = sorted({r["benchmark"] for r in item_rows})
    chash = decontam_hash(config, items)

    version = store.version("samples")
    samples = store.read("samples", version=version)
    pool = without_removed(store, samples) if cfg.only_kept else samples
    todo = not_checked(store, "contamination", chash, pool.select("sample_id", "instruction"))
    todo = todo.localCheckpoint()
    n_pool, n_todo = pool.count(), todo.count()
    log.info("decontam: %d of %d samples to check against %d prompts of %s (cosine >= %.2f, %d-gram)", n_todo,
             n_pool, len(item_rows), ", ".join(names), cfg.cosine_threshold, cfg.ngram)
    counts: dict[str, int] = {"pool": n_pool, "input": n_todo, "prompts": len(item_rows), "flagged": 0,
                              **{f"benchmark.{k}.loaded": v for k, v in loaded.items()}}
    if n_todo:
        t0 = time.time()
        prompts = [r["prompt"] for r in item_rows]
        svec, n_new = instruction_vectors(spark, store, config, todo)
        bench_text = items.select(
            F.concat(F.lit("benchmark:"), F.sha2("prompt", 256).substr(1, 32)).alias("sample_id"),
            F.col("prompt").alias("instruction"), "item_idx", "bench_idx")
        bvec, _ = instruction_vectors(spark, store, config, bench_text)
        bvec = bench_text.join(bvec, "sample_id").select("item_idx", "bench_idx", "vector")
        counts["embedded"] = n_new
        with_vec = todo.join(svec, "sample_id")
        per_item = rows_frame(spark, [(i, int(n)) for i, n in enumerate(_ngram_counts(prompts, cfg.ngram))],
                              "item_idx int, n_ngrams long")
        if len(item_rows) <= config.platform.decontam.broadcast_max_rows:
            rows = sorted(bvec.collect(), key=lambda r: r["item_idx"])
            mat = np.stack([np.asarray(r["vector"], np.float32) for r in rows])
            of_item = np.asarray([r["bench_idx"] for r in rows])
            evidence = broadcast_evidence(spark, with_vec, mat, of_item, len(names), prompts, config)
        else:
            from instructlake.decontam.blocked import candidates

            emb = candidates(spark, with_vec.select("sample_id", "vector"), bvec, len(names),
                             cfg.cosine_threshold, cfg.top_k, config.platform.decontam.ivf_clusters)
            emb = emb.select("sample_id", "item_idx", "cosine", F.lit(0).alias("ngram_shared"),
                             F.lit(None).cast("string").alias("ngram_example"))
            evidence = emb.unionByName(ngram_evidence(spark, todo, prompts, cfg.ngram))
        rows = finalize(evidence, items, per_item, config, chash).localCheckpoint()
        store.merge("contamination", rows, source_is_materialized=True)
        stats = (rows.groupBy("benchmark").agg(
            F.countDistinct(F.when(F.col("flagged"), F.col("sample_id"))).alias("flagged"),
            F.countDistinct(F.when(F.array_contains("methods", "embedding"), F.col("sample_id")))
            .alias("embedding"),
            F.countDistinct(F.when(F.array_contains("methods", "ngram"), F.col("sample_id"))).alias("ngram"))
            .collect())
        for r in stats:
            for k in ("flagged", "embedding", "ngram"):
                counts[f"benchmark.{r['benchmark']}.{k}"] = int(r[k])
        counts["flagged"] = rows.filter("flagged").select("sample_id").distinct().count()
        log.info("decontam: %d of %d samples flagged in %.1fs", counts["flagged"], n_todo, time.time() - t0)
    return StageResult(stage="decontam", config_hash=chash, counts=counts,
                       input_versions={"samples": version, "benchmarks": store.version("benchmarks")},
                       output_versions={"contamination": store.version("contamination")}
                       if store.exists("contamination") else {})


def _ngram_counts(prompts: list[str], ngram: int) -> np.ndarray:
    from instructlake.decontam.match import NgramIndex

    return NgramIndex.build(prompts, ngram).per_item
