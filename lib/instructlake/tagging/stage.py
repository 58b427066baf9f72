"""Tagging: the fine-grained skills and knowledge each instruction asks for -> `tags`.

Two taggers:
* llm: the InsTag-style prompt (llm/prompts/tag_instruction.yaml) through the LLM runtime and its cache;
  the answer is a JSON array of {tag, explanation}; tags are lower-cased and stripped.
* zero-shot (the default when no LLM is configured): embedding similarity to the packaged taxonomy.

Only samples without tags under the current config hash are tagged, so a refresh tags only new samples,
and a re-run makes no model calls. Every tagged sample has at least one row: a sample that got no tag
(an answer still invalid after the re-asks, nothing above the similarity threshold) has one row with a
null tag and the reason. Samples whose backend call failed get no row, are counted, and are tried again
by the next run: input = tagged + untagged + backend_failed.
"""

from __future__ import annotations

import logging
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.config import Config, config_hash
from instructlake.llm import usage
from instructlake.pool import not_checked, without_removed
from instructlake.runs import StageResult
from instructlake.store import Store

log = logging.getLogger(__name__)

PROMPT = "tag_instruction"
# an open tag has no score: it is a phrase of the instruction (tagging/open_tags.py), not a similarity
OPEN_TAG_EXPLANATION = "open tag: the instruction's intent or a phrase of it"


def tagger_identity(config: Config) -> tuple[str, str, str]:
    """(tagger, model, prompt_version) of the configured tagger."""
    cfg = config.tagging
    if cfg.kind == "llm":
        from instructlake.llm import prompts

        return "llm", cfg.llm.model, prompts.load(PROMPT).version
    from instructlake.tagging import zero_shot

    return "zero-shot", config.embed.model, zero_shot.version(cfg)


def tagging_hash(config: Config) -> str:
    """The tagging section plus what else shapes tags: the prompt or taxonomy version, the embedder."""
    tagger, model, version = tagger_identity(config)
    parts = {"tagging": config_hash(config.tagging), "tagger": tagger, "model": model, "version": version}
    if tagger == "zero-shot":
        parts["embed"] = config_hash(config.embed)
    return config_hash(parts)


def to_tag(raw):
    """A tag as stored (a column): lower case, single spaces, no surrounding punctuation or quotes."""
    spaced = F.regexp_replace(F.lower(raw), r"\s+", " ")
    return F.trim(F.regexp_replace(spaced, r"^[\s.,;:!?\"'`]+|[\s.,;:!?\"'`]+$", ""))


def pending(store: Store, config: Config, chash: str) -> tuple[DataFrame, int]:
    """Samples to tag now: (sample_id, text) not yet tagged under chash; and the size of the pool."""
    samples = store.read("samples")
    schemas.require(samples, "samples", ["sample_id", "instruction"])
    pool = without_removed(store, samples) if config.tagging.only_kept else samples
    n_pool = pool.count()
    todo = not_checked(store, "tags", chash, pool)
    return todo.select("sample_id", instruction_text(config).alias("text")), n_pool


def instruction_text(config: Config):
    """What a tagger reads of a sample (a column): its instruction, cut to max_instruction_chars."""
    return F.substring(F.col("instruction"), 1, config.tagging.max_instruction_chars)


def llm_rows(store: Store, config: Config, todo: DataFrame, chash: str) -> tuple[DataFrame, dict[str, int]]:
    from instructlake.llm import prompts
    from instructlake.llm.cache import Task, complete

    cfg = config.tagging
    prompt = prompts.load(PROMPT)
    requests = todo.select(F.col("sample_id").alias("request_id"),
                           prompt.messages_column(instruction=F.col("text")).alias("messages"))
    answers, counts = complete(store, requests, cfg.llm, config.platform.llm,
                               Task(prompt.version, prompt.schema))
    item = "array<struct<tag:string,explanation:string>>"
    parsed = answers.withColumn("_tags", _answer_tags(F.from_json("parsed", item)))
    # one pass from answers to rows: no shuffle, no second read of the answers
    rows = parsed.select(F.col("request_id").alias("sample_id"),
                         F.explode(_row_entries(F.col("_tags"))).alias("e"))
    return rows.select("sample_id", "e.tag", "e.explanation", "e.rank",
                       F.lit(None).cast("double").alias("score"), "e.error"), counts


def _answer_tags(items):
    """An answer's items as stored: normalized, blank ones dropped, each with its rank in the answer."""
    tags = F.transform(items, lambda x, i: F.struct(to_tag(x["tag"]).alias("tag"),
                                                    x["explanation"].alias("explanation"),
                                                    (i + 1).cast("int").alias("rank"),
                                                    F.lit(None).cast("string").alias("error")))
    return F.filter(tags, lambda x: F.length(x["tag"]) > 0)


def _row_entries(tags):
    """Each answer's tag rows: its distinct tags (the first of a repeated one), or one row with a null tag
    and the reason (an invalid answer, or one whose tags were all blank); none for a backend failure,
    which the next run asks again."""
    first = F.filter(tags, lambda x, i: ~F.exists(F.slice(tags, 1, i), lambda y: y["tag"] == x["tag"]))

    def untagged(reason):
        return F.array(F.struct(F.lit(None).cast("string").alias("tag"),
                                F.lit(None).cast("string").alias("explanation"),
                                F.lit(None).cast("int").alias("rank"), reason.alias("error")))

    ok = F.col("error").isNull()
    return (F.when(ok & (F.size(first) > 0), first)
            .when(ok, untagged(F.lit("the answer held no usable tag")))
            .when(~F.col("error").startswith("backend:"), untagged(F.col("error")))
            .otherwise(F.filter(untagged(F.lit(None).cast("string")), lambda x: F.lit(False))))


def zero_shot_rows(spark: SparkSession, config: Config, todo: DataFrame) -> DataFrame:
    from instructlake.tagging import zero_shot

    # checkpointed: both branches below read it, and the model must run once per sample, not once per branch
    picked = zero_shot.tag(spark, todo, config.tagging, config.embed, config.platform.embed).localCheckpoint()
    some = picked.filter(F.size("tags") > 0).select("sample_id", F.explode("tags").alias("t"))
    tagged = some.select("sample_id", F.col("t.tag").alias("tag"), F.col("t.score").alias("score"),
                         F.col("t.rank").alias("rank"),
                         F.when(F.col("t.score").isNull(), F.lit(OPEN_TAG_EXPLANATION))
                         .otherwise(F.format_string("cosine %.3f to the taxonomy tag's description",
                                                    F.col("t.score"))).alias("explanation"),
                         F.lit(None).cast("string").alias("error"))
    none = picked.filter(F.size("tags") == 0).select(
        "sample_id", F.lit(None).cast("string").alias("tag"), F.lit(None).cast("double").alias("score"),
        F.lit(None).cast("int").alias("rank"), F.lit(None).cast("string").alias("explanation"),
        F.lit(_untagged_reason(config)).alias("error"))
    return tagged.unionByName(none)


def _untagged_reason(config: Config) -> str:
    if config.tagging.zero_shot == "flat":
        return f"no taxonomy tag with cosine >= {config.tagging.min_similarity}"
    return "no taxonomy tag (the text gave no embedding to compare)"


def run(spark: SparkSession, store: Store, config: Config) -> StageResult:
    chash = tagging_hash(config)
    tagger, model, version = tagger_identity(config)
    in_version = store.version("samples")
    todo, n_pool = pending(store, config, chash)
    todo = todo.localCheckpoint()
    n_todo = todo.count()
    log.info("tagging with the %s tagger (%s, %s): %d of %d samples need tags", tagger, model, version,
             n_todo, n_pool)
    llm_counts: dict[str, int] = {}
    warning = None
    t0 = time.time()
    if n_todo == 0:
        rows = None
    elif tagger == "llm" and config.tagging.distill.on:
        from instructlake.tagging.distill import distilled_rows

        # every sample's text: the classifier learns from this run's and earlier runs' LLM-tagged samples
        texts = store.read("samples").select("sample_id", instruction_text(config).alias("text"))
        rows, llm_counts, warning = distilled_rows(spark, store, config, todo, n_todo, chash, llm_rows, texts)
    elif tagger == "llm":
        rows, llm_counts = llm_rows(store, config, todo, chash)
    else:
        rows = zero_shot_rows(spark, config, todo)
    counts = {"pool": n_pool, "input": n_todo, "tagged": 0, "untagged": 0, "backend_failed": 0, "tag_rows": 0}
    if rows is not None:
        # distillation's rows say which tagger gave them: the LLM, or the classifier that learned from it
        who = F.col("tagger") if "tagger" in rows.columns else F.lit(tagger)
        rows = (rows.withColumn("model", F.when(who == "distilled", F.lit(distilled_model(config, model)))
                                .otherwise(F.lit(model))).withColumn("tagger", who)
                .withColumn("prompt_version", F.lit(version)).withColumn("config_hash", F.lit(chash))
                .withColumn("tagged_at", F.current_timestamp())
                .select(*schemas.TAGS.fieldNames())).localCheckpoint()
        per = rows.agg(F.countDistinct("sample_id").alias("n"), F.count("tag").alias("tag_rows"),
                       F.countDistinct(F.when(F.col("tag").isNotNull(), F.col("sample_id"))).alias("tagged")
                       ).first()
        counts["tagged"] = int(per["tagged"] or 0)
        counts["untagged"] = int(per["n"] or 0) - counts["tagged"]
        counts["backend_failed"] = n_todo - int(per["n"] or 0)
        counts["tag_rows"] = int(per["tag_rows"] or 0)
        log.info("tagged %d samples in %.1fs (%.0f samples/s); writing %d tag rows", n_todo, time.time() - t0,
                 n_todo / max(1e-9, time.time() - t0), counts["tag_rows"])
        store.merge("tags", rows, source_is_materialized=True)
    if warning:
        log.warning(warning)
    if counts["backend_failed"]:
        log.warning("%d samples got no answer from the backend; they have no tag rows and the next run "
                    "retries them",
                    counts["backend_failed"])
    counts.update({k if k.startswith(("distill_", usage.PREFIX)) else f"llm_{k}": v
                   for k, v in llm_counts.items()})
    return StageResult(stage="tagging", config_hash=chash, counts=counts,
                       input_versions={"samples": in_version},
                       output_versions={"tags": store.version("tags")},
                       extra={"tagger": tagger, "model": model, "version": version}, warning=warning)


def distilled_model(config: Config, model: str) -> str:
    """The `model` of a distilled tag row: the classifier, its embedder and the LLM it learned from."""
    return f"knn-{config.tagging.distill.k} over {config.embed.model}, from {model}"
