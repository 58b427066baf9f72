"""filter: every kept sample's quality signals and verdict -> the `quality` table.

For each sample not yet judged under the current filter config: its conversation's language (and each
turn's), the Gopher repetition measures of its answers, their length, refusal and AI-disclaimer phrases,
cut-off answers and mojibake (quality.judge), and whether it passed, with the reasons it did not. Nothing
is deleted: a filtered sample stays in `samples` and its row here says why; later stages and export leave
it out (pool.without_removed). One row per sample: judging it again under another config replaces its
verdict. The counts in the run record give the samples each criterion removed and the languages found.
"""

from __future__ import annotations

import logging
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.config import Config, config_hash
from instructlake.counts import listed
from instructlake.pool import not_checked, save_checks, stamped, without_duplicates
from instructlake.runs import StageResult
from instructlake.store import Store

log = logging.getLogger(__name__)

OUT = ("sample_id string, lang string, lang_confidence double, turn_langs array<string>, "
       "signals map<string,double>, passed boolean, reasons array<string>")


def pending(store: Store, config: Config, chash: str):
    """(samples to judge now: sample_id and conversation; the pool's size)."""
    samples = store.read("samples")
    schemas.require(samples, "samples", ["sample_id", "conversation"])
    # dedup's removals only: a sample the filter failed is judged again under a changed config
    pool = without_duplicates(store, samples) if config.filter.only_kept else samples
    return not_checked(store, "quality", chash, pool).select("sample_id", "conversation"), pool.count()


def _judge_batches(cfg):
    """The mapInArrow function: a batch of (sample_id, conversation) -> quality rows."""

    def run(batches):
        import pyarrow as pa

        from instructlake.quality.judge import judge

        schema = pa.schema([("sample_id", pa.string()), ("lang", pa.string()),
                            ("lang_confidence", pa.float64()), ("turn_langs", pa.list_(pa.string())),
                            ("signals", pa.map_(pa.string(), pa.float64())), ("passed", pa.bool_()),
                            ("reasons", pa.list_(pa.string()))])
        for b in batches:
            rows = []
            for sid, conv in zip(b.column("sample_id").to_pylist(), b.column("conversation").to_pylist(),
                                 strict=True):
                j = judge(conv or [], cfg)
                rows.append({"sample_id": sid, **j, "signals": sorted(j["signals"].items())})
            yield pa.RecordBatch.from_pylist(rows, schema=schema)

    return run


def criteria():
    """Each row's distinct failed criteria (a reason's text before its colon), one row each (explode)."""
    return F.explode(F.array_distinct(F.transform("reasons", lambda r: F.split(r, ":")[0])))


def top_languages(rows, top: int = 20) -> list[tuple[str, int]]:
    """(language, rows) of `quality` rows, the `top` most common first."""
    langs = rows.groupBy("lang").count().orderBy(F.desc("count"), "lang").limit(top).collect()
    return [(r["lang"], int(r["count"])) for r in langs]


def tally(rows) -> dict[str, int]:
    """Counts of judged rows: input, passed, filtered, samples per failed criterion, samples per language
    (the 20 most common), all aggregated in Spark (a pool of millions is never collected)."""
    agg = rows.agg(F.count("*").alias("n"), F.sum(F.col("passed").cast("int")).alias("ok")).first()
    counts = {"input": int(agg["n"]), "passed": int(agg["ok"] or 0)}
    counts["filtered"] = counts["input"] - counts["passed"]
    kinds = rows.select(criteria().alias("k")).groupBy("k").count().collect()
    counts.update({f"reason.{r['k']}": int(r["count"]) for r in sorted(kinds, key=lambda r: r["k"])})
    counts.update({f"lang.{lang}": n for lang, n in top_languages(rows)})
    return counts


def filter_hash(config: Config) -> str:
    """The filter section and the version of the signals' rules: a verdict is only as good as both."""
    from instructlake.quality.signals import VERSION

    return config_hash({"filter": config.stage_hash("filter"), "signals": VERSION})


def run(spark: SparkSession, store: Store, config: Config) -> StageResult:
    chash = filter_hash(config)
    in_version = store.version("samples")
    todo, n_pool = pending(store, config, chash)
    t0 = time.time()
    rows = stamped(todo.mapInArrow(_judge_batches(config.filter), OUT), "quality", chash)
    counts = {"pool": n_pool, **tally(rows)}
    log.info("filter: %d samples judged in %.1fs: %d passed, %d filtered (%s); languages: %s",
             counts["input"], time.time() - t0, counts["passed"], counts["filtered"],
             listed(counts, "reason."), listed(counts, "lang."))
    version = save_checks(store, "quality", rows, counts["input"])  # the latest verdict wins
    return StageResult(stage="filter", config_hash=chash, counts=counts,
                       input_versions={"samples": in_version}, output_versions={"quality": version})

