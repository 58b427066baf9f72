"""Export: SFT files for a training job, in ShareGPT and OpenAI-messages JSONL and in Parquet.

Each export goes to its own directory with a manifest.json (rows per source, the table versions it read,
the config hashes of the rows and of the export) so a training run can name exactly what it trained on,
and a dataset card (README.md, export/card.py) that `datasets.load_dataset(dir, FORMAT)` reads.

Export fails closed: every sample it would ship must have dedup rows under the current dedup config, a
quality-filter verdict under the current filter config (unless filter.enabled is false), a PII check under
the current scrub config (unless scrub.enabled is false; its text goes out scrubbed, scrub/stage.apply)
and contamination rows under the current decontam config and benchmark contents. If any lacks them, export
stops with an error naming the stale stage and the command to run, unless `allow_unchecked` is given;
then the manifest records how many rows went out unchecked, and samples flagged under any earlier
decontam config are still dropped.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake import licenses, schemas
from instructlake.config import Config, ConfigError
from instructlake.export import card, mix
from instructlake.runs import StageResult, StaleInputError
from instructlake.scrub import stage as scrub_stage
from instructlake.store import Store

log = logging.getLogger(__name__)

SHAREGPT_ROLE = {"user": "human", "assistant": "gpt", "tool": "observation"}


def exportable(samples: DataFrame, min_assistant_turns: int) -> DataFrame:
    """Samples a training job should see. Later stages narrow this (dedup keeps, the quality filter and
    decontamination drop)."""
    schemas.require(samples, "samples", ["sample_id", "source", "conversation", "system"])
    n_assistant = F.size(F.filter("conversation", lambda t: t["role"] == "assistant"))
    return samples.filter(n_assistant >= min_assistant_turns)


def to_sharegpt(df: DataFrame) -> DataFrame:
    role = F.create_map(*[x for k, v in SHAREGPT_ROLE.items() for x in (F.lit(k), F.lit(v))])
    turns = F.transform("conversation", lambda t: F.struct(role[t["role"]].alias("from"), t["content"].alias("value")))
    return df.select(F.col("sample_id").alias("id"), "source", turns.alias("conversations"), "system",
                     "licenses", "model_terms")


def to_openai(df: DataFrame) -> DataFrame:
    turns = F.transform("conversation", lambda t: F.struct(t["role"].alias("role"), t["content"].alias("content")))
    system = F.array(F.struct(F.lit("system").alias("role"), F.col("system").alias("content")))
    messages = F.when(F.col("system").isNull(), turns).otherwise(F.concat(system, turns))
    return df.select(F.col("sample_id").alias("id"), "source", messages.alias("messages"), "licenses",
                     "model_terms")


def default_out(store: Store) -> str:
    return f"{store.warehouse}/exports/{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"


def check_out_dir(store: Store, out: str) -> None:
    """An export writes into a new or empty directory, or over an earlier export (it has a manifest.json);
    anything else is refused rather than overwritten."""
    try:
        names = store.entries(out)
    except NotADirectoryError:
        raise ConfigError(f"export --out {out}: is a file, not a directory") from None
    if names and "manifest.json" not in names:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise ConfigError(f"export --out {out}: the directory holds files ({shown}) and is not an earlier "
                          "export (no manifest.json); choose a new or empty directory")


def dedup_filter(store: Store, config: Config, df: DataFrame) -> tuple[DataFrame, dict]:
    """Drop the duplicates dedup (and semdedup) removed; count the samples without a dedup row under the
    current config. semdedup marks its removals over the latest dedup run, under its own hash (a dedup run
    rewrites every row), so a `semantic` row counts as checked."""
    chash = config.stage_hash("dedup")
    if not store.exists("dedup_clusters"):
        return df, {"not_deduplicated": df.count(), "duplicates_dropped": 0}
    version = store.version("dedup_clusters")
    clusters = store.read("dedup_clusters", version=version)
    current = clusters.filter((F.col("config_hash") == chash) | (F.col("method") == "semantic"))
    dropped = current.filter("NOT is_kept").select("sample_id")
    n_dropped = df.join(dropped, "sample_id", "left_semi").count()
    df = df.join(dropped, "sample_id", "left_anti")
    unchecked = df.join(current.select("sample_id"), "sample_id", "left_anti").count()
    return df, {"not_deduplicated": unchecked, "duplicates_dropped": n_dropped, "version": version}


def decontam_filter(store: Store, config: Config, df: DataFrame) -> tuple[DataFrame, dict]:
    """Drop samples flagged under the current decontam config; count those never checked under it, and
    drop those flagged under an earlier one (they only go out with allow_unchecked, and not flagged)."""
    from instructlake.decontam.stage import benchmark_items, decontam_hash

    if not (store.exists("contamination") and store.exists("benchmarks")):
        return df, {"not_decontaminated": df.count(), "contaminated_dropped": 0, "flagged_earlier_dropped": 0}
    version = store.version("contamination")
    rows = store.read("contamination", version=version)
    chash = decontam_hash(config, benchmark_items(store))
    current = rows.filter(F.col("config_hash") == chash)
    flagged = current.filter("flagged").select("sample_id").distinct()
    n_flagged = df.join(flagged, "sample_id", "left_semi").count()
    df = df.join(flagged, "sample_id", "left_anti")
    unchecked = df.join(current.select("sample_id"), "sample_id", "left_anti")
    flagged_any = rows.filter("flagged").select("sample_id")
    earlier = unchecked.join(flagged_any, "sample_id", "left_semi").select("sample_id")
    n_earlier = earlier.count()
    df = df.join(earlier, "sample_id", "left_anti")
    return df, {"not_decontaminated": unchecked.count(), "contaminated_dropped": n_flagged,
                "flagged_earlier_dropped": n_earlier, "version": version, "hash": chash}


def quality_filter(store: Store, config: Config, df: DataFrame) -> tuple[DataFrame, dict]:
    """Drop the samples the quality filter failed (under any config: `quality` holds each sample's latest
    verdict); count those not judged under the current filter config (none when the filter is off)."""
    from instructlake.quality.stage import filter_hash

    enabled = config.filter.enabled
    if not store.exists("quality"):
        return df, {"not_filtered": df.count() if enabled else 0, "filtered_dropped": 0, "enabled": enabled}
    version = store.version("quality")
    rows = store.read("quality", version=version)
    failed = rows.filter(~F.col("passed")).select("sample_id")
    n_failed = df.join(failed, "sample_id", "left_semi").count()
    df = df.join(failed, "sample_id", "left_anti")
    chash = filter_hash(config)
    current = rows.filter(F.col("config_hash") == chash).select("sample_id")
    unchecked = df.join(current, "sample_id", "left_anti").count() if enabled else 0
    return df, {"not_filtered": unchecked, "filtered_dropped": n_failed, "enabled": enabled,
                "version": version, "hash": chash}


def check_checked(dedup: dict, decontam: dict, allow_unchecked: bool, quality: dict | None = None,
                  scrubbed: dict | None = None) -> None:
    """Fail closed: name the stale stage and the command that brings it up to date."""
    stale = []
    if dedup["not_deduplicated"]:
        stale.append(f"{dedup['not_deduplicated']:,} samples have not been through dedup under the current "
                     "dedup config: run `instructlake dedup`")
    if quality and quality["not_filtered"]:
        stale.append(f"{quality['not_filtered']:,} samples have not been through the quality filter under "
                     "the current filter config: run `instructlake filter` (or set filter.enabled=false)")
    if scrubbed and scrubbed["not_scrubbed"]:
        stale.append(f"{scrubbed['not_scrubbed']:,} samples have not been checked for PII and secrets under "
                     "the current scrub config: run `instructlake scrub` (or set scrub.enabled=false)")
    if decontam["not_decontaminated"]:
        stale.append(f"{decontam['not_decontaminated']:,} samples have not been checked against the "
                     "benchmarks under the current decontam config and benchmark set: run "
                     "`instructlake decontam`")
    if stale and not allow_unchecked:
        raise StaleInputError("export refused, nothing was written: " + "; ".join(stale)
                              + " (or `instructlake pipeline run`, which runs them first; "
                              "`export --allow-unchecked` ships them anyway and says so in the manifest)")
    for line in stale:
        log.warning("exporting unchecked samples (--allow-unchecked): %s", line)


def run(spark: SparkSession, store: Store, config: Config, out: str | None = None,
        allow_unchecked: bool = False) -> StageResult:
    cfg = config.export
    out = (out or default_out(store)).rstrip("/")
    check_out_dir(store, out)
    version = store.version("samples")
    samples = store.read("samples", version=version)
    df = exportable(samples, cfg.min_assistant_turns)
    hashes: dict[str, object] = {"export": config.stage_hash("export"), "dedup": config.stage_hash("dedup")}
    df, dedup = dedup_filter(store, config, df)
    df, quality = quality_filter(store, config, df)
    df, decontam = decontam_filter(store, config, df)
    df, scrubbed = scrub_stage.apply(store, config, df)
    check_checked(dedup, decontam, allow_unchecked, quality, scrubbed)  # before the licenses' and mix's jobs
    df, lic = licenses.apply(spark, store, config, df)
    df, mixed = mix.apply(store, config, df)
    for stage, checks in (("decontam", decontam), ("filter", quality), ("scrub", scrubbed)):
        if "hash" in checks:
            hashes[stage] = checks["hash"]
    checked = (("dedup_clusters", dedup), ("quality", quality), ("contamination", decontam),
               ("pii", scrubbed))
    versions = {"samples": version, **{t: c["version"] for t, c in checked if "version" in c}}
    dropped_dups, contaminated = dedup["duplicates_dropped"], decontam["contaminated_dropped"]
    filtered = quality["filtered_dropped"]
    log.info("dropped %d duplicates, %d samples the quality filter failed, %d flagged as benchmark "
             "contamination and %d outside the licenses asked for", dropped_dups, filtered, contaminated,
             lic["dropped"])
    df = df.cache()
    try:
        per_source = {r["source"]: r["count"] for r in df.groupBy("source").count().collect()}
        ingest_hashes = sorted(r[0] for r in df.select("config_hash").distinct().collect())
        lic.update(licenses.tally(df))
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
        card_stats = card.stats(store, config, df)
    finally:
        df.unpersist()
    total = sum(per_source.values())
    unchecked = {"allowed": allow_unchecked, "not_deduplicated": dedup["not_deduplicated"],
                 "not_filtered": quality["not_filtered"], "not_scrubbed": scrubbed["not_scrubbed"],
                 "not_decontaminated": decontam["not_decontaminated"],
                 "flagged_under_earlier_config_dropped": decontam["flagged_earlier_dropped"]}
    manifest = {
        "created_at": datetime.now(timezone.utc).isoformat(),
        "rows": total,
        "rows_per_source": dict(sorted(per_source.items())),
        "table_versions": versions,
        "duplicates_dropped": dropped_dups,
        "contaminated_dropped": contaminated,
        "quality_filter": {"enabled": quality["enabled"], "filtered_dropped": filtered},
        "scrub": {k: scrubbed[k] for k in ("enabled", "scrubbed", "values_by_kind") if k in scrubbed},
        "licenses": lic,
        **({"mix": mixed} if mixed else {}),
        "not_deduplicated": dedup["not_deduplicated"],
        "unchecked": unchecked,
        "config_hashes": {**hashes, "ingest": ingest_hashes},
        "files": {fmt: {"path": p, "pattern": "part-*.json" if fmt != "parquet" else "part-*.parquet"}
                  for fmt, p in files.items()},
    }
    store.write_text(f"{out}/manifest.json", json.dumps(manifest, indent=2))
    card.write(store, out, manifest, card_stats)
    log.info("exported %d samples to %s", total, out)
    return StageResult(stage="export", config_hash=config.stage_hash("export"),
                       counts={"exported": total, "duplicates_dropped": dropped_dups,
                               "filtered_dropped": filtered, "contaminated_dropped": contaminated,
                               "not_deduplicated": dedup["not_deduplicated"],
                               "not_filtered": quality["not_filtered"],
                               "not_scrubbed": scrubbed["not_scrubbed"], "scrubbed": scrubbed["scrubbed"],
                               "license_dropped": lic["dropped"], "mix_dropped": mixed.get("dropped", 0),
                               "not_decontaminated": decontam["not_decontaminated"],
                               "flagged_earlier_dropped": decontam["flagged_earlier_dropped"],
                               "skipped": samples.count() - total - dropped_dups - filtered - contaminated
                               - decontam["flagged_earlier_dropped"] - lic["dropped"]
                               - mixed.get("dropped", 0),
                               **shipped_counts(lic, mixed, config.export.mix.max_samples)},
                       input_versions=versions, extra={"out": out, "manifest": manifest})


def shipped_counts(lic: dict, mixed: dict, budget: int) -> dict[str, int]:
    """Rows per license set and, when mixed, per group available and drawn: the run record keeps them
    (the report's export section reads them there, not from an export directory that may have moved)."""
    out = {f"license.{k}": v for k, v in lic.get("rows_per_license", {}).items()}
    if mixed:
        out["mix_budget"] = budget
        for what in ("available", "drawn"):
            out.update({f"mix.{what}.{g}": n for g, n in mixed[what].items()})
    return out
