"""select-seeds: the paper's four seed criteria, with the values that triggered each, per sample.

* long_tail: the sample has a canonical tag used by fewer than seeds.long_tail_max_freq samples (unset:
  twice normalize-tags' frequency cut, as the paper's 200 is twice its cut of 100);
* multi_skill: it has at least seeds.multi_skill_min_tags canonical tags;
* hard: its loss reduction (loss_uncond - loss_cond) is in the lowest seeds.hard_quantile of the pool:
  the instruction barely helps the base model predict the response;
* undertrained: its loss (seeds.undertrained_metric: loss_cond_per_byte by default, or loss_cond) exceeds
  mean + seeds.undertrained_sigma * std, over the pool or within the sample's main category (the category
  of its best-ranked tag). The evidence names it undertrained.loss_cond either way.

Tags come through tag_map (canonical) when normalize-tags has run; scores are those of the current scoring
config. Samples without tags or scores are judged on the criteria they can be judged on. `seeds` is
rewritten each run (thresholds depend on the whole pool); the run record counts each criterion and each
pair's overlap.
"""

from __future__ import annotations

import itertools
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.config import Config, config_hash
from instructlake.frames import rows_frame
from instructlake.runs import EmptyInputError, StageResult
from instructlake.store import Store

log = logging.getLogger(__name__)

CRITERIA = ("long_tail", "multi_skill", "hard", "undertrained")


def tag_features(store: Store, config: Config) -> DataFrame:
    """(sample_id, n_tags, min_tag_freq, category) from the canonical tags."""
    from instructlake.graph.cooccur import sample_tags
    from instructlake.graph.stage import categories_of
    from instructlake.tagging.stage import tagging_hash

    tagged = sample_tags(store, tagging_hash(config))
    exploded = tagged.select("sample_id", F.posexplode("tags").alias("pos", "tag"))
    freq = exploded.groupBy("tag").agg(F.countDistinct("sample_id").alias("freq"))
    cats = rows_frame(store.spark, sorted(categories_of(store).items()), "tag string, category string")
    per = (exploded.join(freq, "tag").join(F.broadcast(cats), "tag", "left")
           .groupBy("sample_id").agg(F.count("*").alias("n_tags"), F.min("freq").alias("min_tag_freq"),
                                     F.min_by("category", "pos").alias("category")))
    return per


def long_tail_threshold(store: Store, config: Config) -> int:
    """seeds.long_tail_max_freq when set, else twice the frequency cut normalize-tags applies to the pool
    tagged under the current tagging config (the samples of cooccur.tag_rows, as normalize-tags counts)."""
    from instructlake.graph.cooccur import tag_rows
    from instructlake.tagging.stage import tagging_hash

    if config.seeds.long_tail_max_freq is not None:
        return config.seeds.long_tail_max_freq
    if not store.exists("tags"):
        return 2 * config.normalize_tags.cut_for(0)
    pool = tag_rows(store, tagging_hash(config)).select("sample_id").distinct().count()
    return 2 * config.normalize_tags.cut_for(pool)


def select(spark: SparkSession, feats: DataFrame | None, scores: DataFrame | None, config: Config,
           long_tail_max: int) -> tuple[DataFrame, dict]:
    """(seeds rows without hash/time, thresholds)."""
    cfg = config.seeds
    if feats is None and scores is None:
        raise EmptyInputError("select-seeds: there are neither tags nor scores; run `instructlake tag` and "
                              "`instructlake score` first")
    if feats is None:
        base = (scores.withColumn("n_tags", F.lit(None).cast("long"))
                .withColumn("min_tag_freq", F.lit(None).cast("long"))
                .withColumn("category", F.lit(None).cast("string")))
    elif scores is None:
        base = (feats.withColumn("loss_cond", F.lit(None).cast("double"))
                .withColumn("loss_reduction", F.lit(None).cast("double")))
    else:
        base = feats.join(scores, "sample_id", "full")
    base = base.localCheckpoint()
    thresholds: dict[str, float] = {"long_tail.max_freq": float(long_tail_max)}
    ev: dict[str, F.Column] = {}
    conds: dict[str, F.Column] = {
        "long_tail": F.col("min_tag_freq") < long_tail_max,
        "multi_skill": F.col("n_tags") >= cfg.multi_skill_min_tags,
    }
    ev["long_tail"] = F.create_map(F.lit("long_tail.min_tag_freq"), F.col("min_tag_freq").cast("double"),
                                   F.lit("long_tail.threshold"), F.lit(float(long_tail_max)))
    ev["multi_skill"] = F.create_map(F.lit("multi_skill.tags"), F.col("n_tags").cast("double"),
                                     F.lit("multi_skill.threshold"), F.lit(float(cfg.multi_skill_min_tags)))
    scored = base.filter(F.col("loss_reduction").isNotNull())
    if scored.limit(1).count():
        [q] = scored.approxQuantile("loss_reduction", [cfg.hard_quantile], 1e-4)
        thresholds["hard.loss_reduction_quantile"] = q
        conds["hard"] = F.col("loss_reduction") <= F.lit(q)
        ev["hard"] = F.create_map(F.lit("hard.loss_reduction"), F.col("loss_reduction"),
                                  F.lit("hard.threshold"), F.lit(q))
        if cfg.undertrained_scope == "pool":
            st = scored.agg(F.mean("loss_cond").alias("m"), F.stddev_samp("loss_cond").alias("s")).first()
            base = base.withColumn("_limit",
                                   F.lit(float(st["m"]) + cfg.undertrained_sigma * float(st["s"] or 0.0)))
            thresholds.update({"undertrained.mean": float(st["m"]),
                               "undertrained.std": float(st["s"] or 0.0)})
        else:
            per = scored.groupBy("category").agg(
                (F.mean("loss_cond")
                 + cfg.undertrained_sigma * F.coalesce(F.stddev_samp("loss_cond"), F.lit(0.0)))
                .alias("_limit"))
            base = base.join(per, base["category"].eqNullSafe(per["category"]), "left").drop(per["category"])
        conds["undertrained"] = F.col("loss_cond") > F.col("_limit")
        ev["undertrained"] = F.create_map(F.lit("undertrained.loss_cond"), F.col("loss_cond"),
                                          F.lit("undertrained.threshold"), F.col("_limit"))
    crit = F.filter(F.array(*[F.when(F.coalesce(c, F.lit(False)), F.lit(name)) for name, c in conds.items()]),
                    lambda x: x.isNotNull())
    empty = F.create_map().cast("map<string,double>")
    evidence = F.map_concat(*[F.when(F.coalesce(c, F.lit(False)), ev[name]).otherwise(empty)
                              for name, c in conds.items()])
    rows = (base.select("sample_id", crit.alias("criteria"), evidence.alias("evidence"))
            .filter(F.size("criteria") > 0))
    return rows, thresholds


def run(spark: SparkSession, store: Store, config: Config) -> StageResult:
    from instructlake.scoring.stage import model_path, scoring_hash

    feats = tag_features(store, config) if store.exists("tags") else None
    scores = None
    if store.exists("scores"):
        try:
            shash = scoring_hash(config, model_path(config.scoring, config.platform.scoring, store.warehouse))
        except Exception:  # noqa: BLE001 - no model to identify: use no scores rather than stale ones
            shash = None
        if shash:
            from instructlake.pool import without_removed

            # scores of samples dedup removed after scoring stay cached but are not candidates
            scores = (without_removed(store, store.read("scores"))
                      .filter((F.col("config_hash") == shash) & F.col("error").isNull())
                      .select("sample_id", F.col(config.seeds.undertrained_metric).alias("loss_cond"),
                              "loss_reduction"))
    chash = config_hash({"seeds": config_hash(config.seeds),
                         "inputs": [store.version(t) if store.exists(t) else None
                                    for t in ("tags", "tag_map", "scores")]})
    rows, thresholds = select(spark, feats, scores, config, long_tail_threshold(store, config))
    rows = (rows.withColumn("config_hash", F.lit(chash)).withColumn("selected_at", F.current_timestamp())
            .select(*schemas.SEEDS.fieldNames())).localCheckpoint()
    store.overwrite("seeds", rows)
    counts = {"seeds": rows.count(), "tagged_samples": feats.count() if feats is not None else 0,
              "scored_samples": scores.count() if scores is not None else 0}
    flags = rows.select(*[F.array_contains("criteria", c).cast("int").alias(c) for c in CRITERIA])
    agg = flags.agg(*[F.sum(c).alias(c) for c in CRITERIA],
                    *[F.sum(F.col(a) * F.col(b)).alias(f"{a}+{b}")
                      for a, b in itertools.combinations(CRITERIA, 2)]).first()
    for k in agg.asDict():
        counts[("criterion." if "+" not in k else "overlap.") + k] = int(agg[k] or 0)
    log.info("select-seeds: %d seeds; %s; thresholds %s", counts["seeds"],
             ", ".join(f"{c} {counts['criterion.' + c]}" for c in CRITERIA), thresholds)
    warning = _no_tags_warning(store, config) if feats is not None and not counts["tagged_samples"] else None
    if warning:
        log.warning(warning)
    return StageResult(stage="seeds", config_hash=chash, counts=counts, extra={"thresholds": thresholds},
                       output_versions={"seeds": store.version("seeds")}, warning=warning)


def _no_tags_warning(store: Store, config: Config) -> str | None:
    """Why no sample has a canonical tag, when the reason is normalize-tags' frequency cut."""
    from instructlake.graph.cooccur import cut_to_nothing
    from instructlake.tagging.normalize import CUT_ADVICE
    from instructlake.tagging.stage import tagging_hash

    if not cut_to_nothing(store, tagging_hash(config)):
        return None
    return ("select-seeds: no sample has a canonical tag (normalize-tags' frequency cut, "
            f"normalize_tags.min_freq, kept none), so long_tail and multi_skill select nothing; {CUT_ADVICE}")
