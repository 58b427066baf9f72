"""LLM calls as data: prompts go through Spark, answers land in the `llm_cache` Delta table.

`complete(...)` takes a DataFrame of requests (request_id, messages as JSON) and returns one answer row per
request. Each request's cache key is a hash of (model, prompt version, sampling-params hash, prompt hash).
Keys already in `llm_cache` cost nothing; the rest are answered in Python workers (the engine built once
per worker), parsed and validated, and MERGEd into the cache, so a re-run, or a run after a crash, makes no
repeated calls. A prompt whose answer stays invalid after the re-asks is cached with its error (asking
again would give the same answer); a backend failure (server down, timeouts) is returned but not cached,
so the next run tries it again. Neither the cache nor the logs see an API key: keys live only in the
HTTP engine's request headers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from instructlake.config import LLMConfig, LLMSettings
from instructlake.llm import usage
from instructlake.llm.engine import SamplingParams
from instructlake.resources import gpu_profile, task_threads
from instructlake.store import Store

log = logging.getLogger(__name__)

ANSWER_COLUMNS = ["cache_key", "model", "prompt_version", "params_hash", "prompt_hash", "messages",
                  "response", "parsed", "error", "attempts", "prompt_tokens", "completion_tokens"]


@dataclass
class Task:
    """One kind of LLM call: its prompt version and the JSON schema its answers must follow."""

    prompt_version: str
    schema: dict[str, Any] | None = field(default=None)


def sampling_params(llm: LLMConfig, schema: dict[str, Any] | None) -> SamplingParams:
    return SamplingParams(temperature=llm.temperature, top_p=llm.top_p, max_tokens=llm.max_tokens,
                          seed=llm.seed, json_schema=schema)


def params_hash(llm: LLMConfig, task: Task) -> str:
    """Sampling parameters, the re-ask budget and the schema: everything besides the prompt that shapes an answer."""
    import hashlib

    payload = json.dumps({"params": sampling_params(llm, task.schema).key(), "reasks": llm.max_reasks,
                          "schema": task.schema}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def keyed(requests: DataFrame, llm: LLMConfig, task: Task) -> DataFrame:
    """Requests with their prompt hash and cache key (computed in the JVM)."""
    ph = params_hash(llm, task)
    return (requests.withColumn("prompt_hash", F.sha2(F.col("messages"), 256))
            .withColumn("cache_key", F.sha2(F.concat_ws("\u0001", F.lit(llm.model),
                                                          F.lit(task.prompt_version), F.lit(ph),
                                                          F.col("prompt_hash")), 256)))


def _answer_batches(llm: LLMConfig, settings: LLMSettings, task: Task, ph: str, threads: int = 0):
    """The mapInPandas function: answer each batch of prompts with the worker's engine."""

    def answer(batches: Iterator[Any]) -> Iterator[Any]:
        import pandas as pd

        from instructlake.llm.registry import get_engine

        engine = None  # loaded on the first prompt: an empty partition loads no model
        whole = []  # an engine that schedules its own batches gets the partition's prompts in one call
        for pdf in batches:
            if not len(pdf):
                continue
            if engine is None:
                engine = get_engine(llm, settings, threads)
            if getattr(engine, "takes_whole_batches", False):
                whole.append(pdf)
                continue
            for off in range(0, len(pdf), max(1, settings.batch_size)):
                yield _answered(engine, pdf.iloc[off: off + max(1, settings.batch_size)], llm, task, ph)
        if whole:
            # a round holds at most commit_every prompts, so the partition's share fits in memory; one
            # call instead of one per Arrow batch spares a decode tail (the last long answers running
            # alone) per batch
            yield _answered(engine, pd.concat(whole, ignore_index=True), llm, task, ph)

    return answer


def _answered(engine: Any, chunk: Any, llm: LLMConfig, task: Task, ph: str) -> Any:
    """A pandas frame of requests (cache_key, prompt_hash, messages) answered: ANSWER_SCHEMA's columns."""
    import pandas as pd

    from instructlake.llm.structured import generate_json

    prompts = [json.loads(m) for m in chunk["messages"]]
    outs = generate_json(engine, prompts, sampling_params(llm, task.schema), task.schema, llm.max_reasks)
    return pd.DataFrame({
        "cache_key": chunk["cache_key"].to_numpy(), "model": llm.model,
        "prompt_version": task.prompt_version, "params_hash": ph,
        "prompt_hash": chunk["prompt_hash"].to_numpy(), "messages": chunk["messages"].to_numpy(),
        "response": [o.text for o in outs],
        "parsed": [json.dumps(o.value, ensure_ascii=False) if o.error is None else None for o in outs],
        "error": [o.error for o in outs],
        "transport_error": [o.transport_error for o in outs],
        "attempts": [o.attempts for o in outs],
        "prompt_tokens": [o.prompt_tokens for o in outs],
        "completion_tokens": [o.completion_tokens for o in outs],
    })


ANSWER_SCHEMA = ("cache_key string, model string, prompt_version string, params_hash string, prompt_hash "
                 "string, messages string, response string, parsed string, error string, transport_error "
                 "boolean, attempts int, prompt_tokens long, completion_tokens long")


def complete(store: Store, requests: DataFrame, llm: LLMConfig, settings: LLMSettings,
             task: Task) -> tuple[DataFrame, dict[str, int]]:
    """Answers for `requests` (request_id, messages JSON): request_id plus ANSWER_COLUMNS, and counts
    (prompts, cache_hits, calls = prompts answered by the engine now, invalid, backend_errors, and the
    tokens those calls spent: usage.PROMPT + model, usage.COMPLETION + model)."""
    ph = params_hash(llm, task)
    req = keyed(requests.select("request_id", "messages"), llm, task).localCheckpoint()
    distinct = req.select("cache_key", "prompt_hash", "messages").dropDuplicates(["cache_key"])
    store.ensure("llm_cache")
    # one snapshot for what is cached: the keys to answer and the answers read back come from the same one
    snapshot = store.read("llm_cache", version=store.version("llm_cache"))
    # one job finds both counts: each distinct prompt flagged cached or not, the misses kept for answering
    # with the hash that splits them into rounds (a count, then an anti-join, then a checkpoint took 3)
    cached = snapshot.select("cache_key", F.lit(True).alias("_cached"))
    flagged = (distinct.join(cached, "cache_key", "left")
               .withColumn("_hash", F.xxhash64("cache_key")).localCheckpoint())
    # distinct counts: right even if the cache ever held a key twice (a left join would repeat the prompt)
    tally = flagged.agg(F.countDistinct("cache_key").alias("n"),
                        F.countDistinct(F.when(F.col("_cached"), F.col("cache_key"))).alias("hits")).first()
    n_prompts, n_hits = int(tally["n"]), int(tally["hits"])
    n_miss = n_prompts - n_hits
    misses = flagged.filter(F.col("_cached").isNull()).drop("_cached")
    counts = {"prompts": n_prompts, "cache_hits": n_hits, "calls": n_miss}
    # the answers: cached ones, this run's (as cached), backend failures (this run only, never cached)
    parts = []
    if n_prompts > n_miss or not n_miss:
        parts.append(snapshot.select(*ANSWER_COLUMNS).join(req.select("cache_key"), "cache_key", "left_semi"))
    counts["backend_errors"] = counts["invalid"] = 0
    if n_miss:
        parts += _answer_misses(store, misses, n_miss, llm, settings, task, ph, counts)
    answers = parts[0]
    for p in parts[1:]:
        answers = answers.unionByName(p)
    out = req.select("request_id", "cache_key").join(answers, "cache_key")
    return out.select("request_id", *ANSWER_COLUMNS), counts


def _answer_misses(store: Store, misses: DataFrame, n_miss: int, llm: LLMConfig, settings: LLMSettings,
                   task: Task, ph: str, counts: dict[str, int]) -> list[DataFrame]:
    """Answer the uncached prompts in rounds of commit_every, each round MERGEd into llm_cache; returns
    the answers as DataFrames and adds to counts' invalid and backend_errors."""
    spark = store.spark
    parts = settings.partitions or spark.sparkContext.defaultParallelism
    rounds = max(1, -(-n_miss // max(1, settings.commit_every)))
    # the thread count is part of the engine's identity: one per worker, whatever a call's size
    threads = task_threads(spark, settings.threads)
    log.info("LLM %s (%s, %s): %d prompts, %d cached, %d to answer in %d round(s) on %d partitions",
             llm.backend, llm.model, task.prompt_version, counts["prompts"], counts["cache_hits"], n_miss,
             rounds, min(parts, n_miss))
    answers = []
    t0 = time.time()
    for r in range(rounds):
        todo = misses.filter(F.pmod(F.col("_hash"), F.lit(rounds)) == r).drop("_hash")
        # localCheckpoint: the answers are computed exactly once, however often they are read below
        fresh = (todo.repartition(min(parts, n_miss), "cache_key")
                 .mapInPandas(_answer_batches(llm, settings, task, ph, threads), ANSWER_SCHEMA,
                              profile=gpu_profile(settings.gpus_per_task, settings.executor_gpus))
                 .withColumn("created_at", F.current_timestamp())
                 .localCheckpoint())
        invalid = F.col("error").isNotNull() & ~F.col("transport_error")
        agg = fresh.agg(F.count("*").alias("n"), F.sum(F.col("transport_error").cast("int")).alias("t"),
                        F.sum(invalid.cast("int")).alias("i"),
                        F.sum("prompt_tokens").alias("pt"), F.sum("completion_tokens").alias("ct")).first()
        n, failed = int(agg["n"]), int(agg["t"] or 0)
        counts["backend_errors"] += failed
        counts["invalid"] += int(agg["i"] or 0)
        # every attempt's tokens (re-asks included), also of answers not cached: what the backend was paid for
        usage.add(counts, usage.spent(llm.model, agg["pt"] or 0, agg["ct"] or 0))
        kept = fresh.filter(~F.col("transport_error")).drop("transport_error")
        merged = store.merge("llm_cache", kept, source_is_materialized=True)
        if merged.inserted == n - failed:
            # every row went in as it is: no need to read it back
            answers.append(kept.select(*ANSWER_COLUMNS))
        else:  # another run cached some of these keys first: its answers are the ones to use
            answers.append(store.read("llm_cache").select(*ANSWER_COLUMNS)
                           .join(kept.select("cache_key"), "cache_key", "left_semi"))
        if failed:
            answers.append(fresh.filter("transport_error").select(*ANSWER_COLUMNS))
        spent = time.time() - t0
        log.info("LLM round %d/%d: %d answered and cached (%.0fs so far, about %.0fs to go)", r + 1, rounds,
                 n, spent, spent / (r + 1) * (rounds - r - 1))
    log.info("LLM answered %d prompts in %.1fs (%d invalid after re-asks, %d backend errors); %s", n_miss,
             time.time() - t0, counts["invalid"], counts["backend_errors"],
             usage.line(counts, settings.prices))
    return answers
