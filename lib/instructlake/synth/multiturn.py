"""Multi-turn expansion: a synthesized (instruction, response) pair grows into 1 to 4 rounds.

Each conversation's number of rounds is drawn from synth.multi_turn_weights with a hash of its evolution
id (so a re-run draws the same). Round by round, the user's next message is written from the conversation
so far (follow_up.yaml) and answered (respond_turn.yaml), both through the LLM cache. A conversation whose
follow-up or answer is unusable (invalid JSON, empty, a refusal) stops where it is; one that hit a backend
failure is left out of this run entirely, so the next run retries it instead of keeping a short version.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from instructlake.config import Config
from instructlake.llm import usage
from instructlake.store import Store
from instructlake.synth.checks import REFUSAL

FOLLOW_UP, RESPOND_TURN = "follow_up", "respond_turn"


def render(conversation: Column) -> Column:
    """A conversation as the prompts show it: "User: ...\\n\\nAssistant: ..."."""
    return F.array_join(F.transform(conversation, lambda t: F.concat(
        F.when(t["role"] == "user", F.lit("User: ")).otherwise(F.lit("Assistant: ")), t["content"])), "\n\n")


def target_rounds(weights: tuple[float, ...], key: Column) -> Column:
    """1..len(weights), drawn from a hash of `key` with the given weights."""
    u = F.pmod(F.xxhash64(key), F.lit(1_000_000)) / 1_000_000.0
    bounds, acc = [], 0.0
    for w in weights:
        acc += w / float(sum(weights))
        bounds.append(acc)
    out = F.lit(len(weights))
    for i in range(len(bounds) - 1, -1, -1):  # the smallest bound above u wins (a zero weight never does)
        out = F.when(u < bounds[i], F.lit(i + 1)).otherwise(out)
    return out


def _usable(text: Column) -> Column:
    t = F.trim(text)
    return text.isNotNull() & (F.length(t) > 0) & ~t.rlike(REFUSAL)


def expand(store: Store, config: Config, convs: DataFrame, counts: dict[str, int]) -> DataFrame:
    """convs: evolution_id, conversation (one round) and any other columns -> the same rows with their
    conversation grown to its target rounds; rows that hit a backend failure are dropped (retried later)."""
    from instructlake.llm import prompts
    from instructlake.llm.cache import Task, complete

    cfg = config.synth
    fp, rp = prompts.load(FOLLOW_UP), prompts.load(RESPOND_TURN)
    backend = F.coalesce(F.col("error").startswith("backend:"), F.lit(False))
    cur = (convs.withColumn("_target", target_rounds(cfg.multi_turn_weights, F.col("evolution_id")))
           .withColumn("_open", F.lit(True)).localCheckpoint())
    counts.setdefault("follow_up_calls", 0)
    counts.setdefault("multi_turn_stopped", 0)
    retry = None
    for r in range(2, len(cfg.multi_turn_weights) + 1):
        active = cur.filter(F.col("_open") & (F.col("_target") >= r))
        if not active.limit(1).count():
            break
        q_req = active.select(F.concat(F.col("evolution_id"), F.lit(f"#q{r}")).alias("request_id"),
                              fp.messages_column(conversation=render(F.col("conversation")))
                              .alias("messages"))
        q_ans, c1 = complete(store, q_req, cfg.llm, config.platform.llm, Task(fp.version, fp.schema))
        q = q_ans.select(F.regexp_replace("request_id", r"#q\d+$", "").alias("evolution_id"),
                         F.get_json_object("parsed", "$.question").alias("question"),
                         backend.alias("q_backend"))
        step = active.join(q, "evolution_id").withColumn(
            "_asked", F.concat(F.col("conversation"), F.array(F.struct(F.lit("user").alias("role"),
                                                                        F.col("question").alias("content")))))
        ok_q = step.filter(~F.col("q_backend") & _usable(F.col("question")))
        a_req = ok_q.select(F.concat(F.col("evolution_id"), F.lit(f"#a{r}")).alias("request_id"),
                            rp.messages_column(conversation=render(F.col("_asked"))).alias("messages"))
        a_ans, c2 = complete(store, a_req, cfg.llm, config.platform.llm, Task(rp.version, rp.schema))
        counts["follow_up_calls"] += c1["calls"] + c2["calls"]
        usage.add(counts, c1)
        usage.add(counts, c2)
        a = a_ans.select(F.regexp_replace("request_id", r"#a\d+$", "").alias("evolution_id"),
                         F.get_json_object("parsed", "$.response").alias("answer"),
                         backend.alias("a_backend"))
        step = step.join(a, "evolution_id", "left").localCheckpoint()
        hit = F.col("q_backend") | F.coalesce(F.col("a_backend"), F.lit(False))
        failed = step.filter(hit).select("evolution_id")
        retry = failed if retry is None else retry.unionByName(failed)
        grown = step.filter(~F.col("q_backend") & _usable(F.col("question")) & _usable(F.col("answer")))
        grown = grown.withColumn("conversation", F.concat(F.col("_asked"), F.array(F.struct(
            F.lit("assistant").alias("role"), F.col("answer").alias("content")))))
        stopped = step.join(grown.select("evolution_id"), "evolution_id", "left_anti").select("evolution_id")
        counts["multi_turn_stopped"] += stopped.count()
        cols = cur.columns
        cur = (cur.join(step.select("evolution_id"), "evolution_id", "left_anti")
               .unionByName(grown.select(*cols))
               .unionByName(cur.join(stopped, "evolution_id", "left_semi").withColumn("_open", F.lit(False))
                            .select(*cols))).localCheckpoint()
    if retry is not None:
        cur = cur.join(retry, "evolution_id", "left_anti")
    return cur.drop("_target", "_open")
