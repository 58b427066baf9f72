"""evolve: seeds -> harder instructions (Evol-Instruct guided by tags and category) -> oracle check ->
responses -> new samples, with lineage in `evolved`.

Per seed and round, synth.evolutions_per_seed evolutions; each one's strategy (reasoning, concretizing,
deepening, diversifying) is chosen from a hash of (parent, round, k), so a re-run picks the same. The prompt
carries the seed's canonical tags and main category. An evolved instruction passes rule pre-filters
(no usable answer, too short, too long, a leaked template marker, a refusal, a copy of its parent by word
Jaccard) and then the oracle (synth.oracle, or synth.llm) returns {valid, more_complex, same_intent, score,
reason}; it is valid when all three hold. Every evolution is kept in `evolved` with its status and reason;
valid ones are evolved again in the next round and answered by synth.llm, extended to 1-4 rounds with
follow-up user turns (synth/multiturn.py), and each becomes a sample (source "synth", meta naming its
evolution, parent and seed) that flows into dedup, decontamination and export like any other.

Every model call goes through the LLM runtime and its cache: a stage killed midway and re-run asks no
cached prompt again, and the merges on evolution_id / sample_id add no duplicate rows. Backend failures
are not recorded and are retried by the next run.
"""

from __future__ import annotations

import logging
import time

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.config import Config, ConfigError, config_hash
from instructlake.llm import usage
from instructlake.runs import EmptyInputError, StageResult
from instructlake.store import Store
from instructlake.synth.checks import LEAK, REFUSAL

log = logging.getLogger(__name__)

EVOLVE, JUDGE, RESPOND = "evolve_instruction", "judge_evolution", "respond"

METHODS = {
    "reasoning": "if the instruction can be solved with a few simple thinking steps, rewrite it to "
                 "explicitly require multiple-step reasoning.",
    "concretizing": "replace general concepts with more specific ones: named settings, concrete data, "
                    "precise conditions.",
    "deepening": "increase the depth and breadth of the inquiry: ask about underlying principles, trade-offs "
                 "or edge cases, or add one more constraint or requirement.",
    "diversifying": "write a new instruction in the same domain that needs the same skills but is rarer and "
                    "more unusual (in-breadth evolution).",
}

HOWTO = ("no LLM is configured (synth.llm.backend is none), so synthesis was skipped. Configure one of: vLLM "
         "on a GPU: --set synth.llm.backend=vllm --set synth.llm.model=NAME with its weights in "
         "platform.llm.model_paths (pip install 'instructlake[gpu]'); a local transformers model: --set "
         "synth.llm.backend=transformers --set synth.llm.model=NAME --set 'platform.llm.model_paths={NAME: "
         "/path}'; or an OpenAI-compatible endpoint: --set synth.llm.backend=http --set synth.llm.model=NAME "
         "--set platform.llm.base_url=URL (the key in OPENAI_API_KEY)")



class NoLLMError(ConfigError):
    """Synthesis needs a model and none is configured."""


def synth_hash(config: Config) -> str:
    from dataclasses import asdict

    from instructlake.llm import prompts

    cfg = {k: v for k, v in asdict(config.synth).items() if k != "max_seeds"}
    names = (EVOLVE, JUDGE, RESPOND, "follow_up", "respond_turn")
    return config_hash({"synth": cfg, "prompts": [prompts.load(p).version for p in names]})


def tag_context(store: Store) -> DataFrame | None:
    """(sample_id, tags, category): up to 8 canonical tags and the most frequent category of each tagged
    sample."""
    if not store.exists("tags"):
        return None
    tags = store.read("tags").filter(F.col("tag").isNotNull()).select("sample_id", "tag")
    if store.exists("tag_map"):
        m = store.read("tag_map").filter(F.col("canonical_tag").isNotNull())
        tags = tags.join(m.select(F.col("raw_tag").alias("tag"), "canonical_tag", "category"), "tag")
    else:
        tags = tags.select("sample_id", F.col("tag").alias("canonical_tag"),
                           F.lit(None).cast("string").alias("category"))
    return tags.groupBy("sample_id").agg(
        F.array_join(F.slice(F.sort_array(F.collect_set("canonical_tag")), 1, 8), ", ").alias("tags"),
        F.mode("category").alias("category"))


def seed_frame(store: Store, config: Config) -> DataFrame:
    if not store.exists("seeds"):
        raise EmptyInputError("evolve: there is no seeds table; run `instructlake select-seeds` first")
    seeds = store.read("seeds").select("sample_id").distinct()
    df = seeds.join(store.read("samples").select("sample_id", "instruction"), "sample_id")
    ctx = tag_context(store)
    if ctx is not None:
        df = df.join(ctx, "sample_id", "left")
    else:
        df = df.withColumns({"tags": F.lit(None).cast("string"), "category": F.lit(None).cast("string")})
    df = df.select("sample_id", "instruction", F.coalesce("tags", F.lit("unspecified")).alias("tags"),
                   F.coalesce("category", F.lit("general")).alias("category")).orderBy("sample_id")
    return df.limit(config.synth.max_seeds) if config.synth.max_seeds > 0 else df


def rule_reason(instruction: Column, parent: Column, config: Config) -> Column:
    """Why an evolved instruction fails the rule pre-filters, or null."""
    cfg = config.synth

    def words(c: Column) -> Column:
        return F.array_distinct(F.filter(F.split(F.lower(c), r"[^\p{L}\p{N}]+"), lambda w: F.length(w) > 0))

    a, b = words(instruction), words(parent)
    jaccard = F.size(F.array_intersect(a, b)) / F.greatest(F.size(F.array_union(a, b)), F.lit(1))
    t = F.trim(instruction)
    return (F.when(instruction.isNull(), F.lit("no instruction in the answer"))
            .when(F.length(t) < cfg.min_chars, F.lit(f"too short (< {cfg.min_chars} characters)"))
            .when(F.length(t) > cfg.max_chars, F.lit(f"too long (> {cfg.max_chars} characters)"))
            .when(t.rlike(LEAK), F.lit("leaked template marker"))
            .when(t.rlike(REFUSAL), F.lit("refusal"))
            .when(jaccard >= cfg.near_copy_jaccard,
                  F.format_string("copy of the parent (word Jaccard %.2f)", jaccard)))


def _backend(col: str = "error") -> Column:
    return F.coalesce(F.col(col).startswith("backend:"), F.lit(False))


def evolve_round(spark: SparkSession, store: Store, config: Config, parents: DataFrame, r: int, chash: str,
                 counts: dict[str, int]) -> DataFrame:
    """One round over `parents` (parent_id, seed_id, instruction, tags, category): new evolutions judged and
    merged into `evolved`; returns this round's evolution ids."""
    cfg = config.synth
    cand = _candidates(spark, parents, config, r, chash)
    todo = cand
    if store.exists("evolved"):
        todo = cand.join(store.read("evolved").select("evolution_id"), "evolution_id", "left_anti")
    todo = todo.localCheckpoint()
    n = todo.count()
    counts["evolutions"] = counts.get("evolutions", 0) + n
    log.info("evolve round %d: %d parents x %d = %d evolutions to make", r, parents.count(),
             cfg.evolutions_per_seed, n)
    if n:
        got = _evolve(store, config, todo, counts)
        judged = _judge(store, config, got.filter(F.col("reason").isNull()), counts)
        no_score = F.lit(None).cast("double")
        rejected = got.filter(F.col("reason").isNotNull()).select(
            *evolved_cols(config, chash, EVOLVE, F.lit("rejected"), F.col("reason"), no_score))
        rows = rejected.unionByName(judged.select(
            *evolved_cols(config, chash, EVOLVE, F.col("status"), F.col("judged_reason"), F.col("j_score"))))
        rows = rows.localCheckpoint()
        store.merge("evolved", rows, source_is_materialized=True)
        for st in rows.groupBy("status").count().collect():
            counts[st["status"]] = counts.get(st["status"], 0) + int(st["count"])
    return cand.select("evolution_id")


def _candidates(spark: SparkSession, parents: DataFrame, config: Config, r: int, chash: str) -> DataFrame:
    """Each parent's evolutions_per_seed evolutions of round r: an id from parent, round, k and the config,
    and a strategy drawn by hashing the same."""
    cfg = config.synth
    strategies = F.array(*[F.lit(s) for s in cfg.strategies])
    ks = spark.range(cfg.evolutions_per_seed).select(F.col("id").cast("int").alias("k"))
    key = F.concat_ws("|", "parent_id", F.col("round").cast("string"), F.col("k").cast("string"),
                      F.lit(chash))
    drawn = F.pmod(F.xxhash64("parent_id", "round", "k"), F.lit(len(cfg.strategies))) + 1
    return (parents.crossJoin(ks).withColumn("round", F.lit(r))
            .withColumn("evolution_id", F.sha2(key, 256).substr(1, 32))
            .withColumn("strategy", F.element_at(strategies, drawn.cast("int")))
            ).localCheckpoint()


def _evolve(store: Store, config: Config, todo: DataFrame, counts: dict[str, int]) -> DataFrame:
    """The evolved instruction of each row of `todo` (`new`), and `reason` where the answer is invalid or
    fails a rule (null where it goes on to the judge); rows with a backend failure are left for a re-run."""
    from instructlake.llm import prompts
    from instructlake.llm.cache import Task, complete

    cfg = config.synth
    p = prompts.load(EVOLVE)
    methods = F.create_map(*[x for s in cfg.strategies for x in (F.lit(s), F.lit(METHODS[s]))])
    messages = p.messages_column(method=methods[F.col("strategy")], tags=F.col("tags"),
                                 category=F.col("category"), instruction=F.col("instruction"))
    req = todo.select(F.col("evolution_id").alias("request_id"), messages.alias("messages"))
    answers, c = complete(store, req, cfg.llm, config.platform.llm, Task(p.version, p.schema))
    counts["evolve_calls"] = counts.get("evolve_calls", 0) + c["calls"]
    usage.add(counts, c)
    new = F.get_json_object("parsed", "$.instruction").alias("new")
    got = todo.join(answers.select(F.col("request_id").alias("evolution_id"), new, "error"), "evolution_id")
    got = got.localCheckpoint()
    counts["backend_failed"] = counts.get("backend_failed", 0) + got.filter(_backend()).count()
    reason = (F.when(F.col("error").isNotNull(), F.concat(F.lit("invalid answer: "), F.col("error")))
              .otherwise(rule_reason(F.col("new"), F.col("instruction"), config)))
    return got.filter(~_backend()).withColumn("reason", reason).localCheckpoint()


def _judge(store: Store, config: Config, passed: DataFrame, counts: dict[str, int]) -> DataFrame:
    """The oracle's verdict on each evolution that passed the rules: `status` (valid when it is valid, more
    complex and of the same intent), `judged_reason` and `j_score`; backend failures are left for a re-run."""
    from instructlake.llm import prompts
    from instructlake.llm.cache import Task, complete

    cfg = config.synth
    p = prompts.load(JUDGE)
    messages = p.messages_column(parent=F.col("instruction"), instruction=F.col("new"))
    req = passed.select(F.col("evolution_id").alias("request_id"), messages.alias("messages"))
    answers, c = complete(store, req, cfg.judge, config.platform.llm, Task(p.version, p.schema))
    counts["judge_calls"] = counts.get("judge_calls", 0) + c["calls"]
    usage.add(counts, c)
    v = lambda k: F.get_json_object("parsed", f"$.{k}")  # noqa: E731
    verdict = answers.select(F.col("request_id").alias("evolution_id"), F.col("error").alias("jerror"),
                             (v("valid") == "true").alias("j_valid"),
                             (v("more_complex") == "true").alias("j_more"),
                             (v("same_intent") == "true").alias("j_same"),
                             v("score").cast("double").alias("j_score"), v("reason").alias("j_reason"))
    judged = passed.join(verdict, "evolution_id").localCheckpoint()
    counts["backend_failed"] += judged.filter(_backend("jerror")).count()
    judged = judged.filter(~_backend("jerror"))
    ok = F.col("j_valid") & F.col("j_more") & F.col("j_same")
    why_not = F.concat_ws("; ", F.when(~F.col("j_valid"), F.lit("judged not valid")),
                          F.when(~F.col("j_more"), F.lit("not more complex")),
                          F.when(~F.col("j_same"), F.lit("changed the intent")))
    no_answer = F.col("jerror").isNotNull()
    status = F.when(no_answer, F.lit("rejected")).when(ok, F.lit("valid")).otherwise(F.lit("rejected"))
    oracle = F.concat(F.lit("oracle: "), why_not, F.lit(" ("), F.coalesce(F.col("j_reason"), F.lit("")),
                      F.lit(")"))
    reason = (F.when(no_answer, F.concat(F.lit("judge gave no usable answer: "), F.col("jerror")))
              .when(ok, F.col("j_reason")).otherwise(oracle))
    return judged.select("*", status.alias("status"), reason.alias("judged_reason"))


def evolved_cols(config: Config, chash: str, prompt: str, status: Column, reason: Column,
                 score: Column) -> list[Column]:
    """The columns of `evolved` for rows (evolution_id, parent_id, seed_id, round, k, strategy, new) written
    with the prompt file `prompt`."""
    from instructlake.llm import prompts

    cfg = config.synth
    return [F.col("evolution_id"), F.col("parent_id"), F.col("seed_id"), F.col("round"), F.col("k"),
            F.col("strategy"), F.col("new").alias("instruction"), status.alias("status"),
            reason.alias("reason"), score.alias("judge_score"), F.lit(None).cast("string").alias("sample_id"),
            F.lit(cfg.llm.model).alias("model"), F.lit(cfg.judge.model).alias("judge_model"),
            F.lit(prompts.load(prompt).version).alias("prompt_version"), F.lit(chash).alias("config_hash"),
            F.current_timestamp().alias("created_at")]


def respond(spark: SparkSession, store: Store, config: Config, chash: str, counts: dict[str, int]) -> None:
    """Answer the valid evolutions without a sample yet; each answered one becomes a sample."""
    from instructlake.ingest.records import sample_id as make_id
    from instructlake.llm import prompts
    from instructlake.llm.cache import Task, complete
    from instructlake.synth.multiturn import expand

    cfg = config.synth
    p = prompts.load(RESPOND)
    todo = (store.read("evolved").filter((F.col("status") == "valid") & F.col("sample_id").isNull()
                                         & (F.col("config_hash") == chash))).localCheckpoint()
    if not todo.count():
        return
    req = todo.select(F.col("evolution_id").alias("request_id"),
                      p.messages_column(instruction=F.col("instruction")).alias("messages"))
    answers, c = complete(store, req, cfg.llm, config.platform.llm, Task(p.version, p.schema))
    counts["respond_calls"] = c["calls"]
    usage.add(counts, c)
    response = F.get_json_object("parsed", "$.response").alias("response")
    got = todo.join(answers.select(F.col("request_id").alias("evolution_id"), response, "error"),
                    "evolution_id")
    got = got.localCheckpoint()
    counts["response_failed"] = got.filter(F.col("error").isNotNull()).count()
    ok = got.filter(F.col("error").isNull() & (F.length(F.trim("response")) > 0))
    turn = lambda role, c: F.struct(F.lit(role).alias("role"), c.alias("content"))  # noqa: E731
    convs = ok.withColumn("conversation", F.array(turn("user", F.col("instruction")),
                                                  turn("assistant", F.col("response"))))
    # 1 to 4 rounds; a conversation hit by a backend failure waits
    convs = expand(store, config, convs, counts)
    sid = F.udf(lambda conv: make_id(None, [(t["role"], t["content"]) for t in conv]), "string")
    samples = convs.select(
        sid("conversation").alias("sample_id"), F.lit("synth").alias("source"),
        F.col("evolution_id").alias("source_id"), "conversation",
        F.lit(None).cast("string").alias("system"), "instruction", F.size("conversation").alias("n_turns"),
        F.lit(None).cast("string").alias("lang"),
        F.aggregate("conversation", F.lit(0).cast("long"),
                    lambda acc, t: acc + F.length(t["content"])).alias("chars"),
        F.create_map(F.lit("evolution_id"), "evolution_id", F.lit("parent_id"), "parent_id",
                     F.lit("seed_id"), "seed_id", F.lit("strategy"), "strategy",
                     F.lit("round"), F.col("round").cast("string"),
                     F.lit("model"), F.col("model")).alias("meta"),
        F.lit("evolve").alias("source_file"), F.lit("synth").alias("format"),
        F.lit(chash).alias("config_hash"),
        F.current_timestamp().alias("ingested_at"), "evolution_id").localCheckpoint()
    res = store.merge("samples", samples.drop("evolution_id"), source_is_materialized=True)
    counts["new_samples"] = res.inserted
    linked = (todo.drop("sample_id").join(samples.select("evolution_id", "sample_id"), "evolution_id")
              .select(*schemas.EVOLVED.fieldNames()))
    store.merge("evolved", linked, update=True)


def run(spark: SparkSession, store: Store, config: Config) -> StageResult:
    cfg = config.synth
    if cfg.llm.backend == "none":
        raise NoLLMError(HOWTO)
    chash = synth_hash(config)
    seeds = seed_frame(store, config).localCheckpoint()
    n_seeds = seeds.count()
    counts: dict[str, int] = {"seeds": n_seeds, "evolutions": 0, "valid": 0, "rejected": 0,
                              "backend_failed": 0}
    t0 = time.time()
    parents = seeds.select(F.col("sample_id").alias("parent_id"), F.col("sample_id").alias("seed_id"),
                           "instruction", "tags", "category")
    ctx = seeds.select(F.col("sample_id").alias("seed_id"), "tags", "category")
    for r in range(1, cfg.rounds + 1):
        ids = evolve_round(spark, store, config, parents, r, chash, counts)
        parents = (store.read("evolved").join(ids, "evolution_id", "left_semi")
                   .filter(F.col("status") == "valid")
                   .select(F.col("evolution_id").alias("parent_id"), "seed_id", "instruction")
                   .join(ctx, "seed_id").localCheckpoint())
        if not parents.count():
            break
    respond(spark, store, config, chash, counts)
    for k in ("evolve_calls", "judge_calls", "respond_calls", "response_failed", "new_samples",
              "follow_up_calls", "multi_turn_stopped"):
        counts.setdefault(k, 0)
    log.info("evolve: %d seeds -> %d evolutions (%d valid, %d rejected), %d new samples in %.1fs",
             n_seeds, counts["evolutions"], counts["valid"], counts["rejected"], counts["new_samples"],
             time.time() - t0)
    outputs = ({"evolved": store.version("evolved"), "samples": store.version("samples")}
               if store.exists("evolved") else {})
    return StageResult(stage="synth", config_hash=chash, counts=counts,
                       input_versions={"seeds": store.version("seeds")}, output_versions=outputs)
