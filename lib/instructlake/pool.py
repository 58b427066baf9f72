"""The pool later stages read: every sample but the duplicates dedup removed and those the filter failed.

Nothing is deleted from `samples`: a removed sample keeps its row there and the reason lives in
`dedup_clusters` (is_kept false) or `quality` (passed false, with its reasons). `quality` holds one verdict
per sample, the latest, under the filter config that gave it; export checks that config against the
current one and fails closed on samples not judged under it. The stages that check each sample once per
config (filter, scrub, tagging, decontam) find what is left with `not_checked`; filter and scrub keep one
row per sample in their tables with `stamped` and `save_checks`.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.store import Store


def without_duplicates(store: Store, samples: DataFrame) -> DataFrame:
    """The samples dedup kept, and those it has not seen yet: everything but the duplicates it removed."""
    if not store.exists("dedup_clusters"):
        return samples
    removed = store.read("dedup_clusters").filter(~F.col("is_kept")).select("sample_id")
    return samples.join(removed, "sample_id", "left_anti")


def failed_filter(store: Store) -> DataFrame | None:
    """The ids of samples whose verdict in `quality` is a fail; None before the filter first ran."""
    if not store.exists("quality"):
        return None
    return store.read("quality").filter(~F.col("passed")).select("sample_id")


def not_checked(store: Store, table: str, chash: str, pool: DataFrame) -> DataFrame:
    """The rows of `pool` that `table` has no row for under config hash `chash` (all of them before the
    table exists): what a stage that checks each sample once per config still has to do."""
    if not store.exists(table):
        return pool
    done = store.read(table).filter(F.col("config_hash") == chash).select("sample_id")
    return pool.join(done, "sample_id", "left_anti")


def stamped(rows: DataFrame, table: str, chash: str) -> DataFrame:
    """Rows of a per-sample check table (quality, pii) with the config hash and time of the check, in the
    table's column order, materialized (counted, then merged, without running the check twice)."""
    return (rows.withColumn("config_hash", F.lit(chash)).withColumn("checked_at", F.current_timestamp())
            .select(*schemas.TABLES[table].fieldNames())).localCheckpoint()


def save_checks(store: Store, table: str, rows: DataFrame, n: int) -> int:
    """Write `n` stamped rows to a per-sample check table: one row per sample, the latest check replacing
    an earlier one under another config; the table exists afterwards even when nothing was checked.
    Returns its version."""
    if n:
        store.merge(table, rows, update=True, source_is_materialized=True)
    else:
        store.ensure(table)
    return store.version(table)


def without_removed(store: Store, samples: DataFrame) -> DataFrame:
    """What later stages read: the samples neither dedup nor the quality filter removed (and those neither
    has seen yet)."""
    kept = without_duplicates(store, samples)
    failed = failed_filter(store)
    return kept if failed is None else kept.join(failed, "sample_id", "left_anti")
