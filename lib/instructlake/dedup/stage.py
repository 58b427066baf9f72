"""Dedup: exact and MinHash-LSH near-duplicate clusters over `samples` -> `dedup_clusters`.

1. Signatures: only samples without one (for the current signature settings) are hashed, in Python
   workers, vectorized per Arrow batch; they are merged into `minhash_signatures`. A refresh therefore
   hashes only new samples.
2. Exact groups: samples with the same 128-bit hash of their normalized text.
3. Near pairs: one representative per exact group; each band of the signature is a bucket key; every
   member of a bucket is linked to the bucket's smallest id (n - 1 pairs, never n^2, so a template shared
   by thousands of samples costs thousands of pairs); a pair is kept if its estimated Jaccard similarity
   clears the threshold by dedup.exact_verify_margin, and pairs within that margin are decided by the
   exact n-gram Jaccard of their texts.
4. Clusters: connected components over exact and near pairs (graph module); cluster_id = smallest
   sample_id; one member kept by the configured rule. The table is rewritten from all signatures each
   run, so the result equals a full rebuild and does not depend on partitioning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.background import Background
from instructlake.config import Config, DedupConfig, config_hash
from instructlake.dedup.clusters import build_clusters, unique_ids
from instructlake.dedup.clusters_driver import build_clusters_driver
from instructlake.dedup.minhash import HASH_BATCH_ROWS, MinHasher
from instructlake.runs import StageResult
from instructlake.spark import arrow_batch_rows
from instructlake.store import Store
from instructlake.worker_memory import giving_back

log = logging.getLogger(__name__)


def signature_hash(cfg: DedupConfig) -> str:
    return config_hash(cfg.signature_fields())


def match_text(samples: DataFrame, cfg: DedupConfig) -> Column:
    """The text compared for duplicates: the chosen turns joined by newlines (and the system prompt).

    The contents are taken as a field of the turns (`turns.content`), which Spark compiles, rather than
    with `transform`, a higher-order function it interprets row by row."""
    if cfg.turns == "all":
        turns = F.col("conversation")
    elif cfg.turns == "user":
        turns = F.filter("conversation", lambda t: t["role"] == "user")
    else:
        turns = F.slice(F.filter("conversation", lambda t: t["role"] == "user"), 1, 1)
    text = F.array_join(turns.getField("content"), "\n")
    if cfg.include_system:
        text = F.concat_ws("\n", F.col("system"), text)
    return text


def compute_signatures(samples: DataFrame, cfg: DedupConfig, batch_rows: int = 2000) -> DataFrame:
    """(sample_id, signature_hash, exact_h1, exact_h2, n_tokens, signature, computed_at) per sample of a
    narrow() frame."""
    import numpy as np
    import pyarrow as pa

    hasher = MinHasher(num_perm=cfg.num_perm, ngram=cfg.ngram, seed=cfg.seed)
    sh = signature_hash(cfg)
    out_schema = ("sample_id string, exact_h1 bigint, exact_h2 bigint, n_tokens int, signature binary")

    @giving_back
    def sign(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for big in batches:
            for off in range(0, big.num_rows, batch_rows):
                batch = big.slice(off, batch_rows)
                sig, has, h1, h2, n_tok = hasher.sketch_texts(batch.column("text"), cfg.strip_templates)
                n_tok = np.where(has, n_tok, 0).astype(np.int32)
                sigs = signature_bytes(sig, has)
                yield pa.RecordBatch.from_arrays(
                    [batch.column("sample_id"), pa.array(np.where(has, h1, 0).view(np.int64), mask=~has),
                     pa.array(np.where(has, h2, 0).view(np.int64), mask=~has), pa.array(n_tok), sigs],
                    names=["sample_id", "exact_h1", "exact_h2", "n_tokens", "signature"])

    return (samples.select("sample_id", "text")
            .mapInArrow(sign, out_schema)
            .withColumn("signature_hash", F.lit(sh))
            .withColumn("computed_at", F.current_timestamp())
            .select(*schemas.MINHASH_SIGNATURES.fieldNames()))


def signature_bytes(sig, has):
    """A (rows, num_perm) uint32 matrix as a binary array of its rows' little-endian bytes, null where
    `has` is false. Bytes rather than array<int>: Spark and Parquet copy a value whole rather than value by
    value (at 1 GB, checkpointing 509k signatures took 1.8-1.9 s against 2.8-6.9 s, writing them to Delta
    2.2-3.3 s against 5.3-9.6 s)."""
    import numpy as np
    import pyarrow as pa

    rows = np.ascontiguousarray(sig, dtype="<u4")
    width = rows.shape[1] * 4
    offsets = np.where(np.r_[False, has], width, 0).cumsum().astype(np.int32)
    return pa.BinaryArray.from_buffers(pa.binary(), len(rows), [
        pa.array(has).buffers()[1], pa.py_buffer(offsets), pa.py_buffer(rows[has].tobytes())],
        null_count=int((~has).sum()))


def upgrade_signatures(store: Store) -> None:
    """Rewrite a minhash_signatures table whose signatures are array<int> (as versions before bytes wrote
    them) with the same values as bytes, in one commit: nothing is computed again."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyspark.sql.types import BinaryType

    if not store.exists("minhash_signatures"):
        return
    table = store.read("minhash_signatures")
    if isinstance(table.schema["signature"].dataType, BinaryType):
        return
    log.warning("minhash_signatures holds signatures as array<int>: rewriting them as bytes (once)")

    def to_bytes(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            lists = b.column("signature")
            sizes = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False) * 4
            values = lists.flatten().to_numpy(zero_copy_only=False).astype("<i4")
            valid = pa.array(pc.is_valid(lists).to_numpy(zero_copy_only=False))
            sigs = pa.BinaryArray.from_buffers(pa.binary(), len(lists), [
                valid.buffers()[1], pa.py_buffer(np.r_[0, sizes.cumsum()].astype(np.int32)),
                pa.py_buffer(values.tobytes())], null_count=lists.null_count)
            yield b.set_column(b.schema.get_field_index("signature"), "signature", sigs)

    store.replace("minhash_signatures", table.mapInArrow(to_bytes, schemas.MINHASH_SIGNATURES))


def response_chars() -> Column:
    """Characters of the assistant turns, in one pass over the turns (no filtered copy of them first)."""
    return F.aggregate("conversation", F.lit(0).cast("long"), lambda acc, t: acc + F.when(
        t["role"] == "assistant", F.length(t["content"])).otherwise(0))


def narrow(samples: DataFrame, cfg: DedupConfig) -> DataFrame:
    """What dedup needs of a sample, read once: (sample_id, source, text matched, response length)."""
    return samples.select("sample_id", "source", match_text(samples, cfg).alias("text"),
                          response_chars().alias("response_chars"))


def run(spark: SparkSession, store: Store, config: Config, engine: str = "auto",
        lsh: str = "auto") -> StageResult:
    """lsh: where banding, components and the keep rule run: auto (the driver up to
    platform.execution.driver_lsh_max_rows signatures, else Spark), driver or spark. engine: the
    connected-components engine of the Spark path (auto | graphframes | spark)."""
    cfg = config.dedup
    lsh_max = {"auto": config.platform.execution.driver_lsh_max_rows, "driver": 1 << 62, "spark": -1}[lsh]
    chash = config.stage_hash("dedup")
    sh = signature_hash(cfg)
    version = store.version("samples")
    raw = store.read("samples", version=version)
    schemas.require(raw, "samples", ["sample_id", "source", "conversation", "system"])
    # conversations are decoded once: signatures, exact checks and the keep rule read this cached frame,
    # filled by the signature job's own scan (no pass of its own)
    samples = narrow(raw, cfg).persist(StorageLevel.MEMORY_AND_DISK_DESER)

    new, old_sigs = samples, None
    upgrade_signatures(store)
    if store.exists("minhash_signatures"):
        # pinned: the rows merged below are told apart from these by sample_id, not by a re-read
        old_sigs = (store.read("minhash_signatures", version=store.version("minhash_signatures"))
                    .filter(F.col("signature_hash") == sh).join(samples.select("sample_id"), "sample_id", "left_semi"))
        new = samples.join(old_sigs.select("sample_id"), "sample_id", "left_anti")
    t0 = time.time()
    # checkpointed: the Python hashing runs once, and the MERGE reads the rows without copying them again
    with arrow_batch_rows(spark, HASH_BATCH_ROWS):
        new_sigs = compute_signatures(new, cfg, HASH_BATCH_ROWS).localCheckpoint()
    n_input = samples.count()
    log.info("signatures: computed for new samples (%d samples in all) in %.1fs", n_input, time.time() - t0)

    # Every sample's signature: the earlier ones and those just computed. (A new signature that another
    # writer merged first is the same row: signatures are a function of the text and the settings.)
    sigs = new_sigs if old_sigs is None else old_sigs.unionByName(new_sigs).cache()
    # The signature MERGE needs only the signatures: it runs on a thread beside the driver's banding
    # (one core busy) once the ids are known to be unique, and beside the write of the clusters. (Should it
    # fail after the clusters are written, those are still right: the next run computes the signatures again.)
    merging = Background("merge minhash_signatures", lambda: store.merge(
        "minhash_signatures", new_sigs, source_is_materialized=True, distinct_keys=True))
    try:
        n_sigs = sigs.count()
        # Both paths check that no sample_id is in `samples` twice before anything is written, so the
        # signatures go in with one row per id assumed: no duplicate-key shuffle (8 s of 18 at 1 GB).
        if n_sigs <= lsh_max and engine == "auto":
            clusters, pair_counts = build_clusters_driver(spark, samples, sigs, cfg, chash, merging.start)
        else:
            unique_ids(samples)
            merging.start()
            clusters, pair_counts = build_clusters(spark, samples, sigs, cfg, chash, engine)
        t0 = time.time()
        store.overwrite("dedup_clusters", clusters)
        log.info("dedup_clusters written (%.1fs)", time.time() - t0)
        clusters.unpersist()
        sig_result = merging.result()
        log.info("signatures: %d new merged into minhash_signatures (%.1fs)", sig_result.inserted,
                 merging.seconds)
    finally:
        merging.wait()
        sigs.unpersist()
        samples.unpersist()
    counts = {"input": n_input, "signatures_computed": sig_result.inserted, **pair_counts}
    return StageResult(stage="dedup", config_hash=chash, counts=counts, input_versions={"samples": version},
                       output_versions={"dedup_clusters": store.version("dedup_clusters"),
                                        "minhash_signatures": sig_result.version})
