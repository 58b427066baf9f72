"""Dedup's clusters on the driver, for pools whose signatures fit there: the signatures and the keep rule's
columns collected once (driver_table), exact groups and LSH banding with numpy (lsh_local), borderline
pairs checked exactly from shingle sets the Python workers make (exact_checker), components and the keep
rule with pandas. The same table as clusters.build_clusters, the Spark path, which the tests check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.config import DedupConfig
from instructlake.dedup.clusters import cluster_counts, repeated_ids
from instructlake.dedup.minhash import (
    HASH_BATCH_ROWS,
    MinHasher,
    optimal_bands,
    set_jaccard,
    text_shingle_sets,
)
from instructlake.graph.components import smallest_member_components
from instructlake.spark import arrow_batch_rows
from instructlake.worker_memory import give_back, giving_back

log = logging.getLogger(__name__)


def uint32_sets(column) -> tuple:
    """(offsets, values) of a chunked binary column whose values are uint32 arrays' bytes: row i's values
    are values[offsets[i]:offsets[i + 1]]; a null (a text without a shingle set) raises."""
    if column.null_count:
        raise RuntimeError("exact check: a text gave no shingle set")
    return uint32_rows(column)


def uint32_rows(column) -> tuple:
    """uint32_sets of a binary array or chunked column, a null read as no values (Spark writes a null
    with no bytes): read from Arrow's buffers, chunk by chunk, without a copy per row."""
    import numpy as np

    sizes, values = [np.zeros(0, np.int64)], [np.zeros(0, np.uint32)]
    for chunk in getattr(column, "chunks", [column]):
        _, offs, data = chunk.buffers()
        off = np.frombuffer(offs, dtype=np.int32, count=len(chunk) + 1, offset=chunk.offset * 4)
        size = np.diff(off).astype(np.int64)
        if (size % 4).any():
            raise RuntimeError("a binary value is not whole uint32 values (its length is no multiple of 4)")
        sizes.append(size // 4)
        values.append(np.frombuffer(data, dtype=np.uint32, count=(off[-1] - off[0]) // 4, offset=int(off[0]))
                      if len(chunk) and off[-1] > off[0] else np.zeros(0, np.uint32))
    return np.r_[0, np.cumsum(np.concatenate(sizes))].astype(np.int64), np.concatenate(values)


def exact_checker(spark: SparkSession, texts: DataFrame, cfg: DedupConfig, max_texts: int = 200_000):
    """(src ids, dst ids) -> exact n-gram Jaccard of each pair's texts.

    Python workers turn each text the pairs name into its sorted shingle set, once however many pairs
    name it (a bucket's root is in every pair of its bucket); the driver intersects the sets. One Spark
    job (one scan of every text) per call while the pairs name at most `max_texts` texts, which bounds
    what the driver holds; more pairs than that are checked in parts of max_texts / 2 pairs each."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    hasher = MinHasher(num_perm=cfg.num_perm, ngram=cfg.ngram, seed=cfg.seed)

    @giving_back
    def sets_of(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # each set as the bytes of its uint32 values: Spark copies a binary value whole where it copies
        # an array<int> value by value, twice (into the JVM and out to the driver): 8.9 -> 7.8 s at 1 GB
        for b in batches:
            off, vals = text_shingle_sets(hasher, b.column("text"), cfg.strip_templates)
            sets = pa.BinaryArray.from_buffers(pa.binary(), len(off) - 1, [
                None, pa.py_buffer((off * 4).astype(np.int32)), pa.py_buffer(vals.astype(np.uint32))])
            yield pa.RecordBatch.from_arrays([b.column("sample_id"), sets], names=["sample_id", "shingles"])

    def check_part(s: np.ndarray, d: np.ndarray, ids: np.ndarray) -> np.ndarray:
        t0 = time.time()
        wanted = spark.createDataFrame(pd.DataFrame({"sample_id": ids.astype(str)}), "sample_id string")
        with arrow_batch_rows(spark, HASH_BATCH_ROWS):
            got = (texts.join(F.broadcast(wanted), "sample_id", "left_semi")
                   .mapInArrow(sets_of, "sample_id string, shingles binary").toArrow())
        got_ids = got.column("sample_id").to_numpy(zero_copy_only=False).astype(str)
        order = np.argsort(got_ids)
        if len(got_ids) != len(ids) or (got_ids[order] != ids.astype(str)).any():
            raise RuntimeError(f"exact check: {len(ids) - len(set(got_ids))} of {len(ids)} texts not found")
        offsets, values = uint32_sets(got.column("shingles"))
        # the row of `got` holding each pair's sets
        a, b = order[np.searchsorted(ids, s)], order[np.searchsorted(ids, d)]
        t1 = time.time()
        out = set_jaccard(offsets, values, a, b)
        del got, offsets, values
        give_back()
        log.info("exact check: %d pairs over %d texts: shingle sets %.1fs, intersections %.1fs", len(s),
                 len(ids), t1 - t0, time.time() - t1)
        return out

    def check(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        if not len(src):
            return np.empty(0, dtype=np.float64)
        ids = np.unique(np.r_[src, dst])
        if len(ids) <= max_texts:  # one job: the sets of every text the pairs name fit
            return check_part(src, dst, ids)
        step = max(1, max_texts // 2)  # each job scans every text: parts of at most max_texts ids
        out = np.empty(len(src), dtype=np.float64)
        for lo in range(0, len(src), step):
            s, d = src[lo: lo + step], dst[lo: lo + step]
            out[lo: lo + step] = check_part(s, d, np.unique(np.r_[s, d]))
        return out

    return check


def signature_matrix(column, num_perm: int, order=None):
    """Signatures as a (rows, num_perm) uint32 matrix, straight from the Arrow buffers of their bytes (a
    row without a signature: zeros; it is never banded); its rows taken in `order` when given."""
    import numpy as np

    offsets, values = uint32_rows(column)
    sizes = np.diff(offsets)
    out = np.zeros((len(sizes), num_perm), np.uint32)
    valid = sizes > 0  # a null has no bytes
    if (sizes[valid] != num_perm).any():
        raise RuntimeError(f"dedup: a stored signature is not {num_perm} values of 4 bytes: num_perm changed "
                           "without signature_hash, or the table was written by something else")
    out[valid] = values.reshape(-1, num_perm)
    return out if order is None else out[np.asarray(order)]


def driver_table(samples: DataFrame, sigs: DataFrame, num_perm: int):
    """What the driver path needs of every sample, sorted by sample_id: a pyarrow table (sample_id, h1,
    h2, n_tokens, source, response_chars) and the signature matrix. Signatures and samples are collected
    apart and lined up by their sorted ids (a Spark join of the two took 9 s of 10 at 1 GB); raises if an
    id is in `samples` twice."""
    import pyarrow.compute as pc

    t0 = time.time()
    got = (sigs.select("sample_id", F.coalesce("exact_h1", F.lit(0)).alias("h1"),
                       F.coalesce("exact_h2", F.lit(0)).alias("h2"), "n_tokens", "signature").toArrow())
    meta = samples.select("sample_id", "source", "response_chars").toArrow()
    by_id = [("sample_id", "ascending")]
    if got.column("sample_id").equals(meta.column("sample_id")):  # computed from these rows, in their order
        got_order = meta_order = pc.sort_indices(meta, by_id)
    else:
        got_order, meta_order = pc.sort_indices(got, by_id), pc.sort_indices(meta, by_id)
    # the signatures go straight into the sorted matrix: no sorted Arrow copy of their bytes first
    sig_column, got = got.column("signature"), got.drop_columns(["signature"]).take(got_order)
    meta = meta.take(meta_order)
    ids = meta.column("sample_id").to_numpy(zero_copy_only=False)
    again = ids[1:] == ids[:-1]  # sorted: a repeated id sits next to itself
    if again.any():
        twice = sorted(set(ids[1:][again].tolist()))
        raise repeated_ids(len(twice), twice[:3])
    if not got.column("sample_id").equals(meta.column("sample_id")):
        # signatures are made from these samples (or kept for them): one each, by construction
        raise RuntimeError(f"dedup: {got.num_rows:,} signatures for {meta.num_rows:,} samples, not one each")
    sig = signature_matrix(sig_column, num_perm, got_order.to_numpy())
    table = got.append_column("source", meta.column("source")).append_column("response_chars",
                                                                             meta.column("response_chars"))
    log.info("signatures on the driver: %d rows (%.1fs)", table.num_rows, time.time() - t0)
    return table, sig


def build_clusters_driver(spark: SparkSession, samples: DataFrame, sigs: DataFrame, cfg: DedupConfig,
                          chash: str, ids_checked: Callable[[], None] | None = None
                          ) -> tuple[DataFrame, dict[str, int]]:
    """build_clusters for a pool whose signatures fit on the driver: the same table, computed with numpy
    and pandas instead of a dozen Spark shuffles (the Spark path is checked against it in the tests).
    ids_checked is called once no sample_id is known to be in `samples` twice (the caller's signature
    MERGE can then run beside the driver's work)."""
    import numpy as np
    import pandas as pd

    from instructlake.dedup import lsh_local

    table, sig = driver_table(samples, sigs, cfg.num_perm)
    give_back()  # the Arrow pool kept what collecting them freed (56 MB at 100 MB of input)
    if ids_checked is not None:
        ids_checked()
    t0 = time.time()
    pdf = table.to_pandas()
    ids = pdf["sample_id"].to_numpy()
    n = len(ids)
    matchable = (pdf["n_tokens"] > 0).to_numpy()
    # exact groups: every member linked to its group's smallest id (the representative)
    by_text = [pdf["h1"].to_numpy(), pdf["h2"].to_numpy()]
    rep = pd.Series(np.arange(n)).groupby(by_text).transform("min").to_numpy()
    rep = np.where(matchable, rep, np.arange(n))
    ex_src = np.nonzero(matchable & (rep != np.arange(n)))[0]
    ex_dst = rep[ex_src]
    log.info("exact groups: %d duplicate links (%.1fs)", len(ex_src), time.time() - t0)
    t0 = time.time()
    reps = np.nonzero(matchable & (rep == np.arange(n)))[0]
    bands, rows = optimal_bands(cfg.threshold, cfg.num_perm, cfg.fp_weight, cfg.fn_weight)
    check = exact_checker(spark, samples.select("sample_id", "text"), cfg)
    s, d, _, n_exact = lsh_local.near_pairs(ids[reps], sig[reps], bands, rows, cfg.threshold,
                                            cfg.exact_verify_margin, cfg.link_rounds, check)
    nr_src, nr_dst = reps[s], reps[d]
    log.info("LSH on the driver over %d signatures: %d bands x %d rows (threshold %.2f, %d permutations): "
             "%d verified near pairs; %d borderline pairs checked exactly (%.1fs)", len(reps), bands, rows,
             cfg.threshold, cfg.num_perm, len(nr_src), n_exact, time.time() - t0)
    t0 = time.time()
    # components over indices (a smaller index is a smaller id): root = the smallest member
    roots = smallest_member_components(zip(np.r_[ex_src, nr_src].tolist(), np.r_[ex_dst, nr_dst].tolist(),
                                           strict=True))
    comp = np.array([roots.get(i, i) for i in range(n)], dtype=np.int64)
    prio = {src: i for i, src in enumerate(cfg.source_priority)}
    pdf["comp"] = comp
    pdf["rank"] = pdf["source"].map(lambda v: prio.get(v, len(prio)))
    pdf["idx"] = np.arange(n)
    order = pdf.sort_values(["comp", "rank", "response_chars", "idx"], ascending=[True, True, False, True])
    kept_of = order.groupby("comp")["idx"].first()
    kept = kept_of.reindex(comp).to_numpy().astype(np.int64)
    is_kept = kept == np.arange(n)
    size = pdf.groupby("comp")["idx"].transform("count").to_numpy()
    twins = pdf.groupby(["comp", "h1", "h2"])["idx"].transform("count").to_numpy() if n else size
    same_text = matchable & (pdf["h1"].to_numpy() == pdf["h1"].to_numpy()[kept]) & \
        (pdf["h2"].to_numpy() == pdf["h2"].to_numpy()[kept])
    sim = np.where(is_kept | same_text, 1.0, lsh_local.estimate(sig, np.arange(n), kept))
    method = np.where(is_kept, "unique", np.where(twins > 1, "exact", "near"))
    out = pd.DataFrame({"sample_id": ids, "cluster_id": ids[comp], "method": method, "is_kept": is_kept,
                        "similarity": sim.astype(np.float64), "kept_id": ids[kept],
                        "cluster_size": size.astype(np.int64), "config_hash": chash})
    log.info("components and keep rule on the driver (%.1fs)", time.time() - t0)
    by_method = out["method"].value_counts().to_dict()
    counts = {"exact_pairs": int(len(ex_src)), "near_pairs": int(len(nr_src)), "exact_checked_pairs": n_exact,
              "bands": bands, "rows": rows,
              **cluster_counts(by_method, int((is_kept & (size > 1)).sum()), int((~matchable).sum()))}
    return local_frame(spark, out, schemas.DEDUP_CLUSTERS), counts


def local_frame(spark: SparkSession, pdf, schema, per_core: int = 4, most_rows: int = 200_000) -> DataFrame:
    """spark.createDataFrame(pdf) in about `per_core` partitions per core. pyspark makes a partition of
    each Arrow batch (10,000 rows by default), and Delta's write of 509k rows in 51 files took 4.6-5.7 s
    where 6 files took 2.5-3.0 s. A partition's rows travel inside its task, so `most_rows` bounds a
    task's size (two partitions of 250k rows each exhausted a 2 GB heap beside dedup's cache)."""
    cores = max(1, spark.sparkContext.defaultParallelism)
    rows = min(most_rows, max(10_000, -(-len(pdf) // (per_core * cores))))
    with arrow_batch_rows(spark, rows):
        return spark.createDataFrame(pdf, schema)
