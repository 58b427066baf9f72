"""score: base-model losses of each kept sample's responses (scoring.turns) -> `scores` (incremental).

The scorer is loaded once per Python worker (mapInPandas) and batches by a token budget inside each
partition; on a cluster platform.scoring.gpus_per_task attaches a GPU ResourceProfile. Only samples
without a score under the current config hash are scored.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake import hadoopfs, schemas
from instructlake.config import Config, ConfigError, ScoringConfig, ScoringSettings, config_hash
from instructlake.pool import without_removed
from instructlake.resources import gpu_profile
from instructlake.runs import StageResult
from instructlake.scoring.scorer import CPU_TOKEN_BUDGET, GPU_TOKEN_BUDGET
from instructlake.store import Store
from instructlake.worker_models import once_per_worker

log = logging.getLogger(__name__)


def model_path(cfg: ScoringConfig, settings: ScoringSettings, warehouse: str) -> str:
    from instructlake.scoring.reference import REFERENCE, reference_dir

    if cfg.model in settings.model_paths:
        return settings.model_paths[cfg.model]
    if cfg.model == REFERENCE:
        path = reference_dir(warehouse)
        there = hadoopfs.tree_identity(path) if _remote(path) else Path(path).is_dir()
        if not there:
            raise ConfigError(f"scoring.model is 'reference' but {path} does not exist: run `instructlake "
                              "train-reference` first, or set scoring.model to your base model")
        return path
    return cfg.model


def get_scorer(cfg: ScoringConfig, settings: ScoringSettings, path: str):
    from instructlake.scoring.scorer import TransformersScorer

    def load():
        log.info("loading scoring model %s from %s", cfg.model, path)
        local = hadoopfs.worker_dir(path)  # a remote model: this executor's copy (ship_dir)
        return TransformersScorer(cfg.model, local, cfg.max_length, settings.token_budget, settings.device)

    return once_per_worker("scorer", {"cfg": config_hash(cfg), "settings": config_hash(settings),
                                      "path": path}, load)


def score_frame(spark: SparkSession, todo: DataFrame, cfg: ScoringConfig, settings: ScoringSettings,
                chash: str, path: str) -> DataFrame:
    def run(batches: Iterator) -> Iterator:
        import pandas as pd

        from instructlake.scoring.scorer import ScoreInput

        scorer = None
        for pdf in batches:
            if not len(pdf):
                continue
            scorer = scorer or get_scorer(cfg, settings, path)
            items = [ScoreInput.from_turns([(t["role"], t["content"]) for t in conv], cfg.turns)
                     for conv in pdf["conversation"]]
            res = scorer.score(items)
            yield pd.DataFrame({
                "sample_id": pdf["sample_id"].to_numpy(), "model": cfg.model,
                "loss_cond": [s.loss_cond for s in res], "loss_uncond": [s.loss_uncond for s in res],
                "ifd": [s.ifd for s in res], "loss_reduction": [s.loss_reduction for s in res],
                "n_tokens": [s.n_tokens for s in res], "response_bytes": [s.response_bytes for s in res],
                "loss_cond_per_byte": [s.loss_cond_per_byte for s in res],
                "truncated": [s.truncated for s in res], "error": [s.error for s in res]})

    out = ("sample_id string, model string, loss_cond double, loss_uncond double, ifd double, loss_reduction "
           "double, n_tokens int, response_bytes int, loss_cond_per_byte double, truncated boolean, error "
           "string")
    parts = spark.sparkContext.defaultParallelism
    return (todo.repartition(parts).mapInPandas(run, out, profile=gpu_profile(settings.gpus_per_task,
                                                                              settings.executor_gpus))
            .withColumn("config_hash", F.lit(chash)).withColumn("scored_at", F.current_timestamp())
            .select(*schemas.SCORES.fieldNames()))


def _remote(path: str) -> bool:
    return hadoopfs.is_uri(path) and not path.startswith("file:")


def model_identity(path: str) -> str:
    """A hash of a model directory's weight files (size and mtime; local or remote), or the name for anything
    else (a model hub name)."""
    if _remote(path):
        files = hadoopfs.tree_identity(path)
        if files is None:
            return path
        return config_hash({"files": [f for f in files if f[0].endswith((".safetensors", ".bin", ".json"))]})
    d = Path(path)
    if not d.is_dir():
        return path
    files = sorted((f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in d.iterdir()
                   if f.suffix in (".safetensors", ".bin", ".json"))
    return config_hash({"files": files})


def scoring_hash(config: Config, path: str) -> str:
    """The scoring section and the model's identity (the reference model is retrained in place)."""
    return config_hash({"scoring": config_hash(config.scoring), "model": model_identity(path)})


def run(spark: SparkSession, store: Store, config: Config) -> StageResult:
    cfg = config.scoring
    if not cfg.model:
        raise ConfigError("scoring.model is not set: name the base model to score with (and its directory in "
                          "platform.scoring.model_paths), or 'reference'")
    path = model_path(cfg, config.platform.scoring, store.warehouse)
    chash = scoring_hash(config, path)
    version = store.version("samples")
    samples = store.read("samples", version=version)
    schemas.require(samples, "samples", ["sample_id", "conversation"])
    pool = without_removed(store, samples) if cfg.only_kept else samples
    todo = pool
    if store.exists("scores"):
        todo = pool.join(store.read("scores").filter(F.col("config_hash") == chash).select("sample_id"),
                         "sample_id", "left_anti")
    todo = todo.select("sample_id", "conversation").localCheckpoint()
    n_pool, n_todo = pool.count(), todo.count()
    budget = config.platform.scoring.token_budget
    log.info("scoring %d of %d samples with %s from %s (max_length %d, token budget %s)", n_todo, n_pool,
             cfg.model, path, cfg.max_length,
             budget or f"by device: {CPU_TOKEN_BUDGET} on a CPU, {GPU_TOKEN_BUDGET} on a GPU")
    counts = {"pool": n_pool, "input": n_todo, "scored": 0, "failed": 0, "truncated": 0}
    if n_todo:
        t0 = time.time()
        if _remote(path):
            hadoopfs.ship_dir(spark, path, model_identity(path))
        scores = score_frame(spark, todo, cfg, config.platform.scoring, chash, path).localCheckpoint()
        agg = scores.agg(F.count("*").alias("n"),
                         F.sum(F.col("error").isNotNull().cast("int")).alias("failed"),
                         F.sum(F.col("truncated").cast("int")).alias("truncated"),
                         F.sum("n_tokens").alias("tokens")).first()
        counts.update({"scored": int(agg["n"]) - int(agg["failed"] or 0), "failed": int(agg["failed"] or 0),
                       "truncated": int(agg["truncated"] or 0), "response_tokens": int(agg["tokens"] or 0)})
        log.info("scored %d samples in %.1fs (%.0f response tokens/s)", n_todo, time.time() - t0,
                 counts["response_tokens"] / max(1e-9, time.time() - t0))
        store.merge("scores", scores, source_is_materialized=True)
    return StageResult(stage="scoring", config_hash=chash, counts=counts, input_versions={"samples": version},
                       output_versions={"scores": store.version("scores")} if store.exists("scores") else {})


def train_reference(spark: SparkSession, store: Store, config: Config) -> StageResult:
    """instructlake train-reference: a small GPT trained on the pool, saved in the warehouse."""
    from dataclasses import replace

    from instructlake.scoring.reference import ReferenceSpec, pool_texts, reference_dir, train_reference

    cfg = config.scoring
    out = reference_dir(store.warehouse)
    texts = pool_texts(store)
    if not texts:
        from instructlake.runs import EmptyInputError

        raise EmptyInputError("train-reference: the samples table is empty; run `instructlake ingest` first")
    spec = replace(ReferenceSpec(), seconds=cfg.reference_seconds, vocab_size=cfg.reference_vocab)
    if _remote(out):  # trained in a local directory, then uploaded beside the tables
        with tempfile.TemporaryDirectory(prefix="instructlake-reference-") as tmp:
            info = train_reference(texts, tmp, spec, device=config.platform.scoring.device)
            hadoopfs.upload_dir(tmp, out)
        info["path"] = out
        log.info("reference model uploaded to %s", out)
    else:
        info = train_reference(texts, out, spec, device=config.platform.scoring.device)
    counts = {"samples": len(texts), "parameters": info["parameters"], "steps": info["steps"],
              "tokens_seen": info["tokens_seen"], "train_tokens": info["train_tokens"],
              "last_loss_x1000": int(round((info["last_loss"] or 0) * 1000))}
    return StageResult(stage="train_reference", config_hash=config_hash({"spec": config_hash(spec)}),
                       counts=counts, input_versions={"samples": store.version("samples")}, extra=info)
