"""difficulty: an LLM rates each instruction 1-10 with a rationale -> `difficulty` (incremental).

The rater is synth.oracle (or synth.llm). Rated: every sample not removed by dedup (the original pool and
the synthesized samples alike), only those without a rating under the current config. A rating that is
still not valid JSON after the re-asks is kept with its error; a backend failure is retried next run.
"""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from instructlake.config import Config, config_hash
from instructlake.llm import usage
from instructlake.pool import without_removed
from instructlake.runs import StageResult
from instructlake.store import Store
from instructlake.synth.evolve import HOWTO, NoLLMError

log = logging.getLogger(__name__)

PROMPT = "rate_difficulty"


def difficulty_hash(config: Config) -> str:
    from dataclasses import asdict

    from instructlake.llm import prompts

    return config_hash({"rater": asdict(config.synth.judge), "prompt": prompts.load(PROMPT).version})


def run(spark: SparkSession, store: Store, config: Config) -> StageResult:
    from instructlake.llm import prompts
    from instructlake.llm.cache import Task, complete

    rater = config.synth.judge
    if rater.backend == "none":
        raise NoLLMError(HOWTO.replace("synthesis", "difficulty rating"))
    chash = difficulty_hash(config)
    p = prompts.load(PROMPT)
    version = store.version("samples")
    pool = without_removed(store, store.read("samples", version=version)).select("sample_id", "instruction")
    todo = pool
    if store.exists("difficulty"):
        todo = pool.join(store.read("difficulty").filter(F.col("config_hash") == chash).select("sample_id"),
                         "sample_id", "left_anti")
    todo = todo.localCheckpoint()
    counts = {"pool": pool.count(), "input": todo.count(), "rated": 0, "invalid": 0, "backend_failed": 0}
    if counts["input"]:
        req = todo.select(F.col("sample_id").alias("request_id"),
                          p.messages_column(instruction=F.substring("instruction", 1, 4000))
                          .alias("messages"))
        answers, c = complete(store, req, rater, config.platform.llm, Task(p.version, p.schema))
        counts["calls"] = c["calls"]
        usage.add(counts, c)
        backend = F.coalesce(F.col("error").startswith("backend:"), F.lit(False))
        got = answers.localCheckpoint()
        counts["backend_failed"] = got.filter(backend).count()
        rows = (got.filter(~backend).select(
            F.col("request_id").alias("sample_id"),
            F.get_json_object("parsed", "$.difficulty").cast("int").alias("difficulty"),
            F.get_json_object("parsed", "$.rationale").alias("rationale"), "error",
            F.lit(rater.model).alias("model"), F.lit(p.version).alias("prompt_version"),
            F.lit(chash).alias("config_hash"), F.current_timestamp().alias("rated_at"))).localCheckpoint()
        store.merge("difficulty", rows, source_is_materialized=True)
        counts["rated"] = rows.filter(F.col("difficulty").isNotNull()).count()
        counts["invalid"] = rows.filter(F.col("difficulty").isNull()).count()
    log.info("difficulty: %d of %d samples needed a rating: %d rated, %d invalid, %d backend failures",
             counts["input"], counts["pool"], counts["rated"], counts["invalid"], counts["backend_failed"])
    outputs = {"difficulty": store.version("difficulty")} if store.exists("difficulty") else {}
    return StageResult(stage="difficulty", config_hash=chash, counts=counts,
                       input_versions={"samples": version}, output_versions=outputs)
