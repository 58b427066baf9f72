"""Export: SFT files for a training job, in ShareGPT and OpenAI-messages JSONL and in Parquet.

Each export goes to its own directory with a manifest.json (rows per source, the table versions it read,
the config hashes of the rows and of the export) so a training run can name exactly what it trained on,
and a dataset card (README.md, export/card.py) that `datasets.load_dataset(dir, FORMAT)` reads.

Export fails closed: every sample it would ship must have dedup rows under the current dedup config, a
quality-filter verdict under the current filter config (unless filter.enabled is false), a PII check under
the current scrub config (unless scrub.enabled is false; its text goes out scrubbed, scrub/stage.replace)
and contamination rows under the current decontam config and benchmark contents. If any lacks them, export
stops with an error naming the stale stage and the command to run, unless `allow_unchecked` is given;
then the manifest records how many rows went out unchecked, and samples flagged under any earlier
decontam config are still dropped. The checks are read and counted in one pass (export/checks.py).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake import licenses
from instructlake.config import Config, ConfigError
from instructlake.export import card, checks, mix
from instructlake.runs import StageResult, StaleInputError
from instructlake.scrub import stage as scrub_stage
from instructlake.store import Store

log = logging.getLogger(__name__)

SHAREGPT_ROLE = {"user": "human", "assistant": "gpt", "tool": "observation"}


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
    out = (out or default_out(store)).rstrip("/")
    check_out_dir(store, out)
    version = store.version("samples")
    samples = store.read("samples", version=version)
    verdicts = checks.Verdicts.read(store, config, samples)
    try:
        return _export(spark, store, config, out, allow_unchecked, samples.join(verdicts.kept_ids(),
                       "sample_id", "left_semi"), verdicts, version)
    finally:
        verdicts.frame.unpersist()


def _export(spark: SparkSession, store: Store, config: Config, out: str, allow_unchecked: bool,
            kept: DataFrame, verdicts: checks.Verdicts, version: int) -> StageResult:
    """Export the `kept` samples, once the checks in `verdicts` allow it."""
    cfg = config.export
    dedup, quality, decontam, scrubbed, n_samples = verdicts.counts(config)
    check_checked(dedup, decontam, allow_unchecked, quality, scrubbed)  # before the licenses' and mix's jobs
    df, lic = licenses.apply(spark, store, config, scrub_stage.replace(kept, verdicts.hits))
    df, mixed = mix.apply(store, config, df)
    hashes = {"export": config.stage_hash("export"), "dedup": config.stage_hash("dedup"), **verdicts.hashes()}
    versions = {"samples": version, **verdicts.versions()}
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
                               "skipped": n_samples - total - dropped_dups - filtered - contaminated
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
