"""scrub: PII and secrets in every sample export may ship -> the `pii` table; export ships the scrubbed text.

For each sample of the pool (pool.without_removed: synthesized samples included) not yet checked under the
current scrub config: the values of each kind found in its turns and system prompt (scrub.detect), their
counts by kind, and, when any was found, the conversation and system prompt with each value replaced by
its placeholder (<EMAIL>, <PHONE>, <IP_ADDRESS>, <CREDIT_CARD>, <SECRET>). `samples` keeps the original
text (dedup, decontamination and scoring read it); export replaces it with the scrubbed text (`replace`)
and fails closed on a sample without a row under the current config (export/checks.py). One row per
sample: checking it again under another config replaces its row.
"""

from __future__ import annotations

import logging
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.config import Config, config_hash
from instructlake.counts import listed
from instructlake.pool import not_checked, save_checks, stamped, without_removed
from instructlake.runs import StageResult
from instructlake.store import Store

log = logging.getLogger(__name__)

OUT = ("sample_id string, counts map<string,int>, found int, "
       "conversation array<struct<role:string,content:string>>, system string")


def scrub_hash(config: Config) -> str:
    """The scrub section and the detectors' VERSION: a check is only as good as both."""
    from instructlake.scrub.detect import VERSION

    return config_hash({"scrub": config.stage_hash("scrub"), "detect": VERSION})


def pending(store: Store, chash: str) -> tuple[DataFrame, int]:
    """(samples to check now: sample_id, conversation, system; the pool's size)."""
    samples = store.read("samples")
    schemas.require(samples, "samples", ["sample_id", "conversation", "system"])
    pool = without_removed(store, samples)
    todo = not_checked(store, "pii", chash, pool)
    return todo.select("sample_id", "conversation", "system"), pool.count()


def find_options(cfg) -> dict:
    """detect.find's keyword arguments from the scrub config (built once per batch function, not per text)."""
    return {"kinds": tuple(cfg.kinds), "phone_regions": tuple(cfg.phone_regions),
            "keep_email_domains": frozenset(d.lower() for d in cfg.keep_email_domains)}


def scrub_sample(conversation: list[dict], system: str | None, opts: dict) -> dict:
    """One sample's counts by kind and, when anything was found, its scrubbed turns and system prompt."""
    from instructlake.scrub.detect import find, scrub

    counts: dict[str, int] = {}

    def clean(text: str | None) -> str | None:
        if not text:
            return text
        spans = find(text, **opts)
        for s in spans:
            counts[s.kind] = counts.get(s.kind, 0) + 1
        return scrub(text, spans) if spans else text

    turns = [{"role": t["role"], "content": clean(t["content"])} for t in conversation]
    new_system = clean(system)
    found = sum(counts.values())
    return {"counts": sorted(counts.items()), "found": found, "conversation": turns if found else None,
            "system": new_system if found else None}


def _scrub_batches(cfg):
    """The mapInArrow function: a batch of (sample_id, conversation, system) -> pii rows."""

    opts = find_options(cfg)

    def run(batches):
        import pyarrow as pa

        turn = pa.struct([("role", pa.string()), ("content", pa.string())])
        schema = pa.schema([("sample_id", pa.string()), ("counts", pa.map_(pa.string(), pa.int32())),
                            ("found", pa.int32()), ("conversation", pa.list_(turn)), ("system", pa.string())])
        for b in batches:
            rows = [{"sample_id": sid, **scrub_sample(conv or [], system, opts)}
                    for sid, conv, system in zip(b.column("sample_id").to_pylist(),
                                                 b.column("conversation").to_pylist(),
                                                 b.column("system").to_pylist(), strict=True)]
            yield pa.RecordBatch.from_pylist(rows, schema=schema)

    return run


def tally(rows: DataFrame) -> dict[str, int]:
    """Counts of checked rows: input, samples with anything found, values replaced per kind (in Spark)."""
    agg = rows.agg(F.count("*").alias("n"), F.sum((F.col("found") > 0).cast("int")).alias("hit"),
                   F.sum("found").alias("values")).first()
    counts = {"input": int(agg["n"]), "scrubbed": int(agg["hit"] or 0), "values": int(agg["values"] or 0)}
    kinds = rows.select(F.explode("counts").alias("kind", "n")).groupBy("kind").agg(F.sum("n").alias("n"))
    counts.update({f"kind.{r['kind']}": int(r["n"]) for r in sorted(kinds.collect())})
    return counts


def run(spark: SparkSession, store: Store, config: Config) -> StageResult:
    chash = scrub_hash(config)
    in_version = store.version("samples")
    todo, n_pool = pending(store, chash)
    t0 = time.time()
    rows = stamped(todo.mapInArrow(_scrub_batches(config.scrub), OUT), "pii", chash)
    counts = {"pool": n_pool, **tally(rows)}
    log.info("scrub: %d samples checked in %.1fs: %d with PII or secrets, %d values replaced (%s)",
             counts["input"], time.time() - t0, counts["scrubbed"], counts["values"],
             listed(counts, "kind."))
    version = save_checks(store, "pii", rows, counts["input"])  # the latest check wins
    return StageResult(stage="scrub", config_hash=chash, counts=counts,
                       input_versions={"samples": in_version}, output_versions={"pii": version})


def replace(df: DataFrame, hits: DataFrame | None) -> DataFrame:
    """Export's view: `df` (samples) with the scrubbed turns, system prompt and instruction of every sample
    scrub found something in (`hits`: its `pii` rows under the current config with found > 0; None when
    scrub is off, and the text goes out as it is). The counts are export/checks.py's."""
    if hits is None:
        return df
    hits = hits.select("sample_id", F.col("conversation").alias("_conv"), F.col("system").alias("_system"))
    out = df.join(hits, "sample_id", "left")
    hit = F.col("_conv").isNotNull()
    first_user = F.filter("_conv", lambda t: t["role"] == "user")[0]["content"]
    out = (out.withColumn("conversation", F.when(hit, F.col("_conv")).otherwise(F.col("conversation")))
           .withColumn("system", F.when(hit, F.col("_system")).otherwise(F.col("system")))
           .withColumn("instruction", F.when(hit, F.coalesce(first_user, F.lit("")))
                       .otherwise(F.col("instruction"))))
    return out.drop("_conv", "_system")
