"""score: base-model losses of each kept sample's last response -> `scores` (incremental).

The scorer is loaded once per Python worker (mapInPandas) and batches by a token budget inside each
partition; on a cluster platform.scoring.gpus_per_task attaches a GPU ResourceProfile. Only samples
without a score under the current config hash are scored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.config import Config, ConfigError, ScoringConfig, ScoringSettings, config_hash
from instructlake.resources import gpu_profile
from instructlake.runs import StageResult
from instructlake.store import Store

log = logging.getLogger(__name__)

_SCORERS: dict[str, object] = {}
_LOCK = threading.Lock()


def get_scorer(cfg: ScoringConfig, settings: ScoringSettings):
    from instructlake.scoring.scorer import TransformersScorer

    key = config_hash({"cfg": config_hash(cfg), "settings": config_hash(settings)})
    with _LOCK:
        if key not in _SCORERS:
            path = settings.model_paths.get(cfg.model, cfg.model)
            log.info("loading scoring model %s from %s", cfg.model, path)
            _SCORERS[key] = TransformersScorer(cfg.model, path, cfg.max_length, settings.token_budget, settings.device)
        return _SCORERS[key]


def split_last_response(conv: str = "conversation") -> tuple[Column, Column]:
    """(context text, last assistant response) columns, rendered as scorer.render_turns does."""
    turns = F.col(conv)
    last = F.array_max(F.transform(F.sequence(F.lit(1), F.size(turns)),
                                   lambda i: F.when(F.element_at(turns, i)["role"] == "assistant", i)))
    before = F.slice(turns, 1, F.coalesce(last, F.lit(1)) - 1)
    label = lambda r: F.when(r == "user", "User").when(r == "assistant", "Assistant").otherwise(F.initcap(r))  # noqa: E731
    context = F.concat(
        F.array_join(F.transform(before, lambda t: F.concat(label(t["role"]), F.lit(": "), t["content"], F.lit("\n\n"))), ""),
        F.lit("Assistant:"))
    response = F.when(last.isNotNull(), F.concat(F.lit(" "), F.element_at(turns, last)["content"]))
    return context, response


def score_frame(spark: SparkSession, todo: DataFrame, cfg: ScoringConfig, settings: ScoringSettings,
                chash: str) -> DataFrame:
    def run(batches: Iterator) -> Iterator:
        import pandas as pd

        from instructlake.scoring.scorer import ScoreInput

        scorer = None
        for pdf in batches:
            if not len(pdf):
                continue
            scorer = scorer or get_scorer(cfg, settings)
            items = [ScoreInput(c or "", r or "") for c, r in zip(pdf["context"], pdf["response"], strict=True)]
            res = scorer.score(items)
            yield pd.DataFrame({
                "sample_id": pdf["sample_id"].to_numpy(), "model": cfg.model,
                "loss_cond": [s.loss_cond for s in res], "loss_uncond": [s.loss_uncond for s in res],
                "ifd": [s.ifd for s in res], "loss_reduction": [s.loss_reduction for s in res],
                "n_tokens": [s.n_tokens for s in res], "truncated": [s.truncated for s in res],
                "error": [s.error for s in res]})

    out = ("sample_id string, model string, loss_cond double, loss_uncond double, ifd double, loss_reduction double, "
           "n_tokens int, truncated boolean, error string")
    parts = spark.sparkContext.defaultParallelism
    return (todo.repartition(parts).mapInPandas(run, out, profile=gpu_profile(settings.gpus_per_task,
                                                                              settings.executor_gpus))
            .withColumn("config_hash", F.lit(chash)).withColumn("scored_at", F.current_timestamp())
            .select(*schemas.SCORES.fieldNames()))


def run(spark: SparkSession, store: Store, config: Config) -> StageResult:
    cfg = config.scoring
    if not cfg.model:
        raise ConfigError("scoring.model is not set: name the base model to score with (and its directory in "
                          "platform.scoring.model_paths)")
    chash = config.stage_hash("scoring")
    version = store.version("samples")
    samples = store.read("samples", version=version)
    schemas.require(samples, "samples", ["sample_id", "conversation"])
    pool = samples
    if cfg.only_kept and store.exists("dedup_clusters"):
        pool = pool.join(store.read("dedup_clusters").filter(~F.col("is_kept")).select("sample_id"), "sample_id",
                         "left_anti")
    todo = pool
    if store.exists("scores"):
        todo = pool.join(store.read("scores").filter(F.col("config_hash") == chash).select("sample_id"), "sample_id",
                         "left_anti")
    context, response = split_last_response()
    todo = todo.select("sample_id", context.alias("context"), response.alias("response")).localCheckpoint()
    n_pool, n_todo = pool.count(), todo.count()
    log.info("scoring %d of %d samples with %s (max_length %d, token budget %d)", n_todo, n_pool, cfg.model,
             cfg.max_length, config.platform.scoring.token_budget)
    counts = {"pool": n_pool, "input": n_todo, "scored": 0, "failed": 0, "truncated": 0}
    if n_todo:
        t0 = time.time()
        scores = score_frame(spark, todo, cfg, config.platform.scoring, chash).localCheckpoint()
        agg = scores.agg(F.count("*").alias("n"), F.sum(F.col("error").isNotNull().cast("int")).alias("failed"),
                         F.sum(F.col("truncated").cast("int")).alias("truncated"),
                         F.sum("n_tokens").alias("tokens")).first()
        counts.update({"scored": int(agg["n"]) - int(agg["failed"] or 0), "failed": int(agg["failed"] or 0),
                       "truncated": int(agg["truncated"] or 0), "response_tokens": int(agg["tokens"] or 0)})
        log.info("scored %d samples in %.1fs (%.0f response tokens/s)", n_todo, time.time() - t0,
                 counts["response_tokens"] / max(1e-9, time.time() - t0))
        store.merge("scores", scores, source_is_materialized=True)
    return StageResult(stage="scoring", config_hash=chash, counts=counts, input_versions={"samples": version},
                       output_versions={"scores": store.version("scores")} if store.exists("scores") else {})
