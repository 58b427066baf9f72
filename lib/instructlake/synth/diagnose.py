"""diagnose: find what a model is weak at and write training data aimed at it -> `diagnosis` + samples.

One iteration of the paper's loop: the model under test (synth.diagnose_model, its own engine
config) answers a diagnosis set (instructions with reference answers); the oracle (synth.oracle, or
synth.llm) compares each answer with its reference and returns {deficient, skill, explanation} with the
skill abstracted and free of entities; deficiencies are counted per skill; synth.targeted_per_deficiency
new instructions per deficiency are written for each skill (rule-checked like evolutions, kept in
`evolved` with strategy "targeted") and answered into samples. A run makes synth.diagnose_iterations
iterations (--iterations): each next one probes the model under test with the targeted instructions just
written (synth.llm's answers as references), so the weak skills are tested again with fresh questions.
After training on the new data, point synth.diagnose_model at the new model and run again: every
iteration's deficiency rate sits beside the others in `diagnosis`.

A diagnosis set is any supported chat format (the first user turn and the reply after it), or JSON/JSONL
records with a prompt (as for benchmarks) and a reference (reference / answer / output / response /
target; MT-Bench's question.jsonl carries `reference` for its math, reasoning and coding questions), or
such questions plus a second file of reference answers matched on question_id (MT-Bench's
model_answer/gpt-4.jsonl: choices[0].turns). Records with no reference are quarantined.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake.config import Config, ConfigError, IngestConfig, config_hash
from instructlake.frames import rows_frame
from instructlake.ingest.formats import CONVERTERS, RecordError, detect
from instructlake.ingest.records import scan_records
from instructlake.llm import usage
from instructlake.runs import StageResult
from instructlake.store import Store

log = logging.getLogger(__name__)

COMPARE, TARGETED, ANSWER = "diagnose_compare", "targeted_instruction", "respond"
REFERENCE_KEYS = ("reference", "answer", "output", "response", "target")


def _first_text(v: Any) -> str | None:
    if isinstance(v, list):
        v = next((x for x in v if isinstance(x, str) and x.strip()), None)
    return v if isinstance(v, str) and v.strip() else None


def _reference_in(record: Any) -> str | None:
    """The first reference field (REFERENCE_KEYS, in order) of a record that holds text."""
    if not isinstance(record, dict):
        return None
    return next((t for k in REFERENCE_KEYS if (t := _first_text(record.get(k)))), None)


def item_of(record: Any, index: int, references: dict[str, str]) -> tuple[str, str, str]:
    """(item_id, instruction, reference) of one record; RecordError when it lacks either."""
    from instructlake.decontam.benchmarks import prompts_of

    fmt = detect(record) if isinstance(record, dict) else None
    if fmt is not None:
        conv = next(iter(CONVERTERS[fmt](record, IngestConfig())), None)
        turns = conv.turns if conv else []
        users = [i for i, (r, _) in enumerate(turns) if r == "user"]
        if users and users[0] + 1 < len(turns) and turns[users[0] + 1][0] == "assistant":
            own = (conv.own_id if conv and conv.own_id else str(index))
            return own, turns[users[0]][1], turns[users[0] + 1][1]
    first = prompts_of(record, index)[0]
    own = first.item_id.split("#")[0]
    ref = references.get(own) or _reference_in(record)
    if not ref:
        raise RecordError("missing_field", "no reference answer: expected one of "
                          + ", ".join(REFERENCE_KEYS) + " (or a --references file matched on question_id)")
    return own, first.prompt, ref


def load_references(path: str) -> dict[str, str]:
    """question_id -> the first reference turn, from an MT-Bench style answer file."""
    out = {}
    for raw in scan_records(path):
        r = raw.value
        if raw.error or not isinstance(r, dict) or r.get("question_id") is None:
            continue
        choices = r.get("choices")
        first = choices[0] if isinstance(choices, list) and choices else None
        turns = first.get("turns") if isinstance(first, dict) else None
        text = _first_text(turns) or _reference_in(r)
        if text:
            out[str(r["question_id"])] = text
    return out


def load_set(path: str, references: str | None = None) -> tuple[list[tuple[str, str, str]], list]:
    if not Path(path).exists():
        raise ConfigError(f"diagnose: {path} does not exist")
    refs = load_references(references) if references else {}
    items, bad, seen = [], [], set()
    for i, raw in enumerate(scan_records(path)):
        if raw.error is not None:
            bad.append((raw, *raw.error))
            continue
        try:
            item = item_of(raw.value, i, refs)
        except RecordError as e:
            bad.append((raw, e.reason, e.detail))
            continue
        if item[0] not in seen:
            seen.add(item[0])
            items.append(item)
    return items, bad


def diagnose_hash(config: Config) -> str:
    from dataclasses import asdict

    from instructlake.llm import prompts

    cfg = config.synth
    return config_hash({"model": asdict(cfg.diagnose_model), "judge": asdict(cfg.judge),
                        "writer": asdict(cfg.llm),
                        "per_deficiency": cfg.targeted_per_deficiency,
                        "prompts": [prompts.load(p).version for p in (COMPARE, TARGETED, ANSWER)]})


def run(spark: SparkSession, store: Store, config: Config, path: str, name: str | None = None,
        references: str | None = None, iterations: int | None = None) -> StageResult:
    """`iterations` (default synth.diagnose_iterations) rounds: after the first, the model under test is
    probed again with the targeted instructions just written, synth.llm's answers to them serving as
    references, so each round tests the weak skills with fresh questions."""
    from instructlake.decontam.benchmarks import quarantine_records
    from instructlake.synth.evolve import HOWTO, NoLLMError

    cfg = config.synth
    if cfg.diagnose_model.backend == "none" or cfg.judge.backend == "none":
        raise NoLLMError(HOWTO.replace("synth.llm.backend is none", "synth.diagnose_model or the oracle has "
                                       "no backend").replace("synthesis", "diagnosis"))
    name = name or Path(path).stem
    items, bad = load_set(path, references)
    if bad:
        log.warning("diagnosis set %s: %d records quarantined (first: %s)", name, len(bad), bad[0][2])
        quarantine_records(store, "diagnose", name, Path(path).name, bad, config.ingest.quarantine_raw_chars)
    if not items:
        raise ConfigError(f"diagnose: {path} holds no instruction with a reference answer")
    iteration = 1
    if store.exists("diagnosis"):
        mine = store.read("diagnosis").filter(F.col("diagnosis_set") == name)
        last = mine.agg(F.max("iteration")).first()[0]
        iteration = (last or 0) + 1
    df = rows_frame(spark, items, "item_id string, instruction string, reference string").localCheckpoint()
    total: dict[str, int] = {"quarantined": len(bad)}
    for i in range(max(1, iterations or cfg.diagnose_iterations)):
        counts, probes = one_iteration(spark, store, config, name, iteration, df)
        for k, v in counts.items():
            total[k] = v if k in ("iteration", "items", "deficient", "deficiency_rate_x1000", "skills") or \
                k.startswith("skill.") else total.get(k, 0) + v
        total[f"iteration.{iteration}.deficiency_rate_x1000"] = counts["deficiency_rate_x1000"]
        if i == 0:
            total["first_iteration"] = iteration
        if probes is None or not probes.count():
            break
        df, iteration = probes, iteration + 1
    return StageResult(stage="diagnose", config_hash=diagnose_hash(config), counts=total,
                       output_versions={"diagnosis": store.version("diagnosis")})


def one_iteration(spark: SparkSession, store: Store, config: Config, name: str, iteration: int, df):
    """Diagnose `df` (item_id, instruction, reference) as `iteration`; write targeted instructions and
    answer them. Returns (counts, the answered targeted instructions as the next round's items)."""
    from instructlake.synth.evolve import respond, synth_hash

    rows, counts, per_skill = _diagnose(store, config, name, iteration, df)
    chash = synth_hash(config)
    ids = _write_targeted(spark, store, config, rows, per_skill=per_skill, iteration=iteration, chash=chash,
                          parent_prefix=f"diagnosis:{name}#{iteration}:", counts=counts)
    respond(spark, store, config, chash, counts)
    return {k: int(v) for k, v in counts.items()}, _probes(store, ids)


# the diagnosis rows that name a skill the model lacks
SKILLED = "deficient AND skill IS NOT NULL AND skill != ''"


def _diagnose(store: Store, config: Config, name: str, iteration: int,
              df: DataFrame) -> tuple[DataFrame, dict[str, int], dict[str, int]]:
    """The model under test answers each item and the oracle compares its answer with the reference: this
    iteration's `diagnosis` rows (merged), their counts, and the deficient items per skill."""
    from instructlake.llm import prompts
    from instructlake.llm.cache import Task, complete

    cfg = config.synth
    ans_p, cmp_p = prompts.load(ANSWER), prompts.load(COMPARE)
    ans_req = df.select(F.col("item_id").alias("request_id"),
                        ans_p.messages_column(instruction=F.col("instruction")).alias("messages"))
    answers, c1 = complete(store, ans_req, cfg.diagnose_model, config.platform.llm,
                           Task(ans_p.version, ans_p.schema))
    answer = F.get_json_object("parsed", "$.response").alias("answer")
    got = df.join(answers.select(F.col("request_id").alias("item_id"), answer,
                                 F.col("error").alias("answer_error")), "item_id").localCheckpoint()
    cmp_req = got.filter(F.col("answer").isNotNull()).select(
        F.col("item_id").alias("request_id"),
        cmp_p.messages_column(instruction=F.col("instruction"), reference=F.col("reference"),
                              answer=F.col("answer")).alias("messages"))
    verdicts, c2 = complete(store, cmp_req, cfg.judge, config.platform.llm, Task(cmp_p.version, cmp_p.schema))
    v = lambda k: F.get_json_object("parsed", f"$.{k}")  # noqa: E731
    judged = verdicts.select(F.col("request_id").alias("item_id"),
                             (v("deficient") == "true").alias("deficient"),
                             F.lower(F.trim(v("skill"))).alias("skill"),
                             v("explanation").alias("explanation"), F.col("error").alias("judge_error"))
    # an item the model could not answer at all counts as deficient, with the skill left open
    unanswered_or_judged = F.when(F.col("answer").isNull(), F.lit(True)).otherwise(F.col("deficient"))
    rows = (got.join(judged, "item_id", "left")
            .withColumn("deficient", unanswered_or_judged)
            .withColumn("explanation", F.coalesce("explanation", F.col("answer_error"), F.col("judge_error")))
            .select(F.lit(name).alias("diagnosis_set"), F.lit(iteration).alias("iteration"), "item_id",
                    "instruction", "reference", "answer", "deficient",
                    F.when(F.col("deficient"), F.col("skill")).alias("skill"), "explanation",
                    F.lit(cfg.diagnose_model.model).alias("model"),
                    F.lit(cfg.judge.model).alias("judge_model"),
                    F.lit(diagnose_hash(config)).alias("config_hash"),
                    F.current_timestamp().alias("diagnosed_at"))).localCheckpoint()
    store.merge("diagnosis", rows, source_is_materialized=True)
    n = rows.count()
    deficient = rows.filter("deficient").count()
    per_skill = {r["skill"]: int(r["count"]) for r in rows.filter(SKILLED).groupBy("skill").count().collect()}
    counts: dict[str, int] = {"iteration": iteration, "items": n, "deficient": deficient,
                              "deficiency_rate_x1000": round(1000 * deficient / max(1, n)),
                              "skills": len(per_skill), "answer_calls": c1["calls"],
                              "judge_calls": c2["calls"]}
    usage.add(counts, c1)
    usage.add(counts, c2)
    counts.update({f"skill.{k}": v for k, v in per_skill.items()})
    log.info("diagnose %s iteration %d: %d of %d items deficient (%.1f%%) over %d skills", name, iteration,
             deficient, n, 100 * deficient / max(1, n), len(per_skill))
    return rows, counts, per_skill


def _write_targeted(spark: SparkSession, store: Store, config: Config, rows: DataFrame, *,
                    per_skill: dict[str, int], iteration: int, chash: str, parent_prefix: str,
                    counts: dict[str, int]) -> DataFrame:
    """synth.targeted_per_deficiency targeted instructions per deficient item, per skill, from the writer
    model, checked by evolution's rules and merged into `evolved` (parent: parent_prefix + the skill).
    Returns the ids of all of this iteration's, also those a resumed run recorded before."""
    from instructlake.llm import prompts
    from instructlake.llm.cache import Task, complete
    from instructlake.synth.evolve import evolved_cols, rule_reason

    cfg = config.synth
    tgt_p = prompts.load(TARGETED)
    why = F.array_join(F.slice(F.collect_list("explanation"), 1, 3), " / ").alias("why")
    expl = rows.filter(SKILLED).groupBy("skill").agg(F.count("*").alias("n"), why)
    ks = spark.range(max(per_skill.values(), default=0) * cfg.targeted_per_deficiency).select(
        F.col("id").cast("int").alias("k"))
    key = F.concat_ws("|", "parent_id", F.col("k").cast("string"), F.lit(chash))
    cand = (expl.crossJoin(ks).filter(F.col("k") < F.col("n") * cfg.targeted_per_deficiency)
            .withColumn("parent_id", F.concat(F.lit(parent_prefix), F.col("skill")))
            .withColumn("evolution_id", F.sha2(key, 256).substr(1, 32))).localCheckpoint()
    ids = cand.select("evolution_id")
    if store.exists("evolved"):
        cand = cand.join(store.read("evolved").select("evolution_id"), "evolution_id", "left_anti")
    if not cand.limit(1).count():
        return ids
    messages = tgt_p.messages_column(skill=F.col("skill"), explanations=F.coalesce("why", F.lit("")),
                                     index=(F.col("k") + 1).cast("string"))
    req = cand.select(F.col("evolution_id").alias("request_id"), messages.alias("messages"))
    written, c3 = complete(store, req, cfg.llm, config.platform.llm, Task(tgt_p.version, tgt_p.schema))
    counts["targeted_calls"] = c3["calls"]
    usage.add(counts, c3)
    instruction = F.get_json_object("parsed", "$.instruction").alias("new")
    new = cand.join(written.select(F.col("request_id").alias("evolution_id"), instruction, "error"),
                    "evolution_id")
    new = new.filter(~F.coalesce(F.col("error").startswith("backend:"), F.lit(False)))
    reason = (F.when(F.col("error").isNotNull(), F.concat(F.lit("invalid answer: "), F.col("error")))
              .otherwise(rule_reason(F.col("new"), F.col("skill"), config)))
    status = F.when(reason.isNull(), F.lit("valid")).otherwise(F.lit("rejected"))
    stated = F.coalesce(reason, F.concat(F.lit("targets the diagnosed skill: "), F.col("skill")))
    targeted = {"seed_id": F.col("parent_id"), "round": F.lit(iteration), "strategy": F.lit("targeted")}
    ev = new.withColumns(targeted).select(
        *evolved_cols(config, chash, TARGETED, status, stated, F.lit(None).cast("double"))).localCheckpoint()
    store.merge("evolved", ev, source_is_materialized=True)
    counts["targeted"] = ev.filter("status = 'valid'").count()
    counts["targeted_rejected"] = ev.filter("status = 'rejected'").count()
    return ids


def _probes(store: Store, ids: DataFrame) -> DataFrame | None:
    """The answered targeted instructions of `ids`, their answers as references: the next iteration's
    items."""
    if not store.exists("evolved"):
        return None
    answered = (store.read("evolved").join(ids, "evolution_id", "left_semi")
                .filter(F.col("sample_id").isNotNull()).select("evolution_id", "instruction", "sample_id"))
    reference = F.element_at("conversation", 2)["content"].alias("reference")
    return (answered.join(store.read("samples").select("sample_id", reference), "sample_id")
            .select(F.col("evolution_id").alias("item_id"), "instruction", "reference")).localCheckpoint()
