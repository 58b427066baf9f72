"""Export: SFT files for a training job, in ShareGPT and OpenAI-messages JSONL and in Parquet.

Each export goes to its own directory with a manifest.json (rows per source, the table versions it read,
the config hashes of the rows and of the export) so a training run can name exactly what it trained on.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.config import Config
from instructlake.runs import StageResult
from instructlake.store import Store

log = logging.getLogger(__name__)

SHAREGPT_ROLE = {"user": "human", "assistant": "gpt", "tool": "observation"}


def exportable(samples: DataFrame, min_assistant_turns: int) -> DataFrame:
    """Samples a training job should see. Later stages narrow this (dedup keeps, decontamination drops)."""
    schemas.require(samples, "samples", ["sample_id", "source", "conversation", "system"])
    n_assistant = F.size(F.filter("conversation", lambda t: t["role"] == "assistant"))
    return samples.filter(n_assistant >= min_assistant_turns)


def to_sharegpt(df: DataFrame) -> DataFrame:
    role = F.create_map(*[x for k, v in SHAREGPT_ROLE.items() for x in (F.lit(k), F.lit(v))])
    turns = F.transform("conversation", lambda t: F.struct(role[t["role"]].alias("from"), t["content"].alias("value")))
    return df.select(F.col("sample_id").alias("id"), "source", turns.alias("conversations"), "system")


def to_openai(df: DataFrame) -> DataFrame:
    turns = F.transform("conversation", lambda t: F.struct(t["role"].alias("role"), t["content"].alias("content")))
    system = F.array(F.struct(F.lit("system").alias("role"), F.col("system").alias("content")))
    messages = F.when(F.col("system").isNull(), turns).otherwise(F.concat(system, turns))
    return df.select(F.col("sample_id").alias("id"), "source", messages.alias("messages"))


def default_out(store: Store) -> str:
    return f"{store.warehouse}/exports/{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"


def run(spark: SparkSession, store: Store, config: Config, out: str | None = None) -> StageResult:
    cfg = config.export
    out = (out or default_out(store)).rstrip("/")
    version = store.version("samples")
    samples = store.read("samples", version=version)
    df = exportable(samples, cfg.min_assistant_turns)
    versions = {"samples": version}
    dropped_dups = not_deduped = 0
    hashes: dict[str, object] = {"export": config.stage_hash("export")}
    if store.exists("dedup_clusters"):
        versions["dedup_clusters"] = store.version("dedup_clusters")
        clusters = store.read("dedup_clusters", version=versions["dedup_clusters"])
        hashes["dedup"] = sorted(r[0] for r in clusters.select("config_hash").distinct().collect())
        dropped = clusters.filter("NOT is_kept").select("sample_id")
        dropped_dups = df.join(dropped, "sample_id", "left_semi").count()
        df = df.join(dropped, "sample_id", "left_anti")
        not_deduped = df.join(clusters.select("sample_id"), "sample_id", "left_anti").count()
        if not_deduped:
            log.warning("%d samples have not been through dedup yet (ingested after its last run); they are "
                        "exported, run `instructlake dedup` first to deduplicate them", not_deduped)
    else:
        log.warning("no dedup_clusters table: exporting every sample; run `instructlake dedup` first")
    from instructlake.decontam.stage import current_flags

    contaminated = 0
    flags = current_flags(store, config)
    if flags is not None:
        versions["contamination"] = store.version("contamination")
        contaminated = df.join(flags, "sample_id", "left_semi").count()
        df = df.join(flags, "sample_id", "left_anti")
        log.info("dropped %d samples flagged as benchmark contamination", contaminated)
    else:
        log.warning("no contamination table: nothing was checked against benchmarks; run `instructlake decontam`")
    df = df.cache()
    try:
        per_source = {r["source"]: r["count"] for r in df.groupBy("source").count().collect()}
        ingest_hashes = sorted(r[0] for r in df.select("config_hash").distinct().collect())
        files: dict[str, str] = {}
        writers = {
            "sharegpt": lambda p: to_sharegpt(df).write.mode("overwrite").json(p),
            "openai": lambda p: to_openai(df).write.mode("overwrite").json(p),
            "parquet": lambda p: df.drop("meta").write.mode("overwrite").parquet(p),
        }
        for fmt in cfg.formats:
            path = f"{out}/{fmt}"
            log.info("writing %s to %s", fmt, path)
            writers[fmt](path)
            files[fmt] = path
    finally:
        df.unpersist()
    total = sum(per_source.values())
    manifest = {
        "created_at": datetime.now(timezone.utc).isoformat(),
        "rows": total,
        "rows_per_source": dict(sorted(per_source.items())),
        "table_versions": versions,
        "duplicates_dropped": dropped_dups,
        "contaminated_dropped": contaminated,
        "not_deduplicated": not_deduped,
        "config_hashes": {**hashes, "ingest": ingest_hashes},
        "files": {fmt: {"path": p, "pattern": "part-*.json" if fmt != "parquet" else "part-*.parquet"}
                  for fmt, p in files.items()},
    }
    store.write_text(f"{out}/manifest.json", json.dumps(manifest, indent=2))
    log.info("exported %d samples to %s", total, out)
    return StageResult(stage="export", config_hash=config.stage_hash("export"),
                       counts={"exported": total, "duplicates_dropped": dropped_dups,
                               "contaminated_dropped": contaminated, "not_deduplicated": not_deduped,
                               "skipped": samples.count() - total - dropped_dups - contaminated},
                       input_versions=versions, extra={"out": out, "manifest": manifest})
