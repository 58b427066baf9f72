"""Which licenses each sample carries, for export's --licenses / --commercial-only, manifest and card.

A pool sample carries its source's license: the one given with `ingest --license` (the `sources` table),
else the first entry of platform.licenses.sources that names or matches the source, else `unknown`. A
synthesized sample carries the licenses of its seed, followed back through evolutions of evolutions to
pool samples, and, as model terms, the terms of every model that wrote along the way
(platform.licenses.models, else `unknown`). A diagnosis set's targeted samples carry the license of
source `diagnosis:<set>` and their writer model's terms. Nothing here is hashed or stored per row: a
changed map changes the next export, not the samples.
"""

from __future__ import annotations

import fnmatch
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake.config import Config
from instructlake.frames import rows_frame
from instructlake.store import Store

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
# how many evolutions of evolutions are followed back to a pool sample
MAX_DEPTH = 16


def normalized(license_id: str) -> str:
    return license_id.strip().lower()


def record(spark: SparkSession, store: Store, sources: set[str], license_id: str) -> None:
    """Remember that every sample of `sources` carries `license_id` (ingest --license); it replaces an
    earlier one and wins over the platform map."""
    rows = [(s, normalized(license_id)) for s in sorted(sources)]
    df = rows_frame(spark, rows, "source string, license string").withColumn("recorded_at",
                                                                          F.current_timestamp())
    store.merge("sources", df, update=True)
    log.info("license %s recorded for source(s) %s", normalized(license_id), ", ".join(s for s, _ in rows))


def source_license(source: str, recorded: dict[str, str], mapping: dict[str, str]) -> str:
    """One source's license: recorded at ingest, else the first map entry naming or matching it."""
    if source in recorded:
        return recorded[source]
    if source in mapping:
        return normalized(mapping[source])
    for pattern, lic in mapping.items():
        if fnmatch.fnmatchcase(source, pattern):
            return normalized(lic)
    return UNKNOWN


def recorded(store: Store) -> dict[str, str]:
    if not store.exists("sources"):
        return {}
    return {r["source"]: r["license"] for r in store.read("sources").select("source", "license").collect()}


def _pool_origin() -> F.Column:
    """Where a sample's license comes from: its source, or diagnosis:<set> for a targeted sample."""
    seed = F.col("meta")["seed_id"]
    return (F.when((F.col("source") == "synth") & seed.startswith("diagnosis:"),
                   F.regexp_extract(seed, r"^(diagnosis:[^#]*)", 1))
            .when(F.col("source") == "synth", F.lit(None)).otherwise(F.col("source")))


def carried(spark: SparkSession, store: Store, config: Config, samples: DataFrame) -> DataFrame:
    """(sample_id, licenses, model_terms) of every row of `samples` (it needs sample_id, source and meta;
    synthesized rows are followed back through `samples` in the store): sorted distinct ids."""
    lic = config.platform.licenses
    known = recorded(store)
    everything = store.read("samples").select("sample_id", "source", "meta")
    origins = [r[0] for r in everything.select(_pool_origin().alias("o")).where("o IS NOT NULL").distinct()
               .collect()]
    table = rows_frame(spark, [(o, source_license(o, known, lic.sources)) for o in origins] or
                                  [("", UNKNOWN)], "origin string, license string")
    models = rows_frame(spark, [(k, normalized(v)) for k, v in lic.models.items()] or [("", UNKNOWN)],
                                   "model string, terms string")
    synth = F.col("source") == "synth"
    nodes = (everything.select("sample_id", _pool_origin().alias("origin"),
                               F.when(synth, F.col("meta")["seed_id"]).alias("seed"),
                               F.when(synth, F.col("meta")["model"]).alias("model"))
             .join(table, "origin", "left").join(models, "model", "left")
             .select("sample_id", "origin", "seed", "license",
                     F.when(F.col("model").isNull(), F.lit(None))
                     .otherwise(F.coalesce("terms", F.lit(UNKNOWN))).alias("terms")))
    return _follow(nodes, samples.select("sample_id"))


def _follow(nodes: DataFrame, wanted: DataFrame) -> DataFrame:
    """Walk from each wanted sample to its pool origin, gathering licenses and model terms on the way: one
    join per step back, until every walk has ended (at most MAX_DEPTH steps; most pools need one)."""
    walk = (wanted.join(nodes, "sample_id", "left")
            .select("sample_id", F.col("seed").alias("at"), "origin",
                    F.array_compact(F.array("license")).alias("licenses"),
                    F.array_compact(F.array("terms")).alias("model_terms"))).localCheckpoint()
    edges = nodes.select(F.col("sample_id").alias("e_at"), F.col("seed").alias("e_next"),
                         F.col("origin").alias("e_origin"), F.col("license").alias("e_license"),
                         F.col("terms").alias("e_terms"))
    for _ in range(MAX_DEPTH):
        if walk.filter(F.col("origin").isNull() & F.col("at").isNotNull()).isEmpty():
            break
        stepping = F.col("origin").isNull() & (F.col("at") == F.col("e_at"))
        walk = (walk.join(edges, stepping, "left")
                .select("sample_id", F.when(F.col("e_at").isNotNull(), F.col("e_next")).otherwise(F.lit(None))
                        .alias("at"), F.coalesce("origin", "e_origin").alias("origin"),
                        F.array_compact(F.concat("licenses", F.array("e_license"))).alias("licenses"),
                        F.array_compact(F.concat("model_terms", F.array("e_terms"))).alias("model_terms"))
                .localCheckpoint())
    else:
        log.warning("licenses: some synthesized samples are more than %d evolutions from a pool sample; "
                    "they carry `unknown`", MAX_DEPTH)
    done = F.when(F.col("origin").isNull() | (F.size("licenses") == 0), F.array(F.lit(UNKNOWN))).otherwise(
        F.array_sort(F.array_distinct("licenses")))
    return walk.select("sample_id", done.alias("licenses"),
                       F.array_sort(F.array_distinct("model_terms")).alias("model_terms"))


def allowed(rows: DataFrame, ids: tuple[str, ...], commercial_only: bool, commercial: tuple[str, ...]):
    """The condition a row's licenses and model terms must meet under export.licenses and
    export.commercial_only (None: no condition)."""
    cond = None
    for names in ([*ids] if ids else None, [*commercial] if commercial_only else None):
        if names is None:
            continue
        ok = F.array(*[F.lit(n) for n in names])
        c = (F.size(F.array_except("licenses", ok)) == 0) & (F.size(F.array_except("model_terms", ok)) == 0)
        cond = c if cond is None else cond & c
    return cond


def apply(spark: SparkSession, store: Store, config: Config, df: DataFrame) -> tuple[DataFrame, dict]:
    """Export's view: `df` with each row's licenses and model terms as columns, less the rows that
    export.licenses or export.commercial_only leave out; what was asked and how many rows it dropped."""
    ex, lic = config.export, config.platform.licenses
    out = df.join(carried(spark, store, config, df), "sample_id", "left")
    cond = allowed(out, ex.licenses, ex.commercial_only, lic.commercial)
    info = {"asked": {"licenses": list(ex.licenses), "commercial_only": ex.commercial_only}, "dropped": 0}
    if cond is not None:
        info["dropped"] = out.filter(~cond).count()
        out = out.filter(cond)
    return out, info


def tally(df: DataFrame) -> dict[str, dict[str, int]]:
    """Rows per license set (ids joined by +) and per model terms set, of the rows export writes."""
    out = {}
    for col, key in (("licenses", "rows_per_license"), ("model_terms", "rows_per_model_terms")):
        rows = df.groupBy(F.array_join(col, "+").alias("k")).count().collect()
        out[key] = {(r["k"] or "none"): int(r["count"]) for r in sorted(rows, key=lambda r: r["k"] or "")}
    return out
