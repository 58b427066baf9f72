"""Synthesis through Spark with the scripted double: evolution, rule filters and the oracle on hostile
outputs, responses into samples with lineage, a resume after a crash, difficulty ratings, the no-LLM case."""

from __future__ import annotations

import json

import pytest
from pyspark.sql import functions as F

from instructlake import runs, schemas
from instructlake.config import load_config
from instructlake.ingest import stage as ingest
from instructlake.store import Store
from instructlake.synth import difficulty, evolve
from tests.conftest import TEST_SETTINGS, logged_tokens

DOUBLE = "instructlake.llm.scripted:synth"
SEEDS = {
    "good": "Write a python function that adds two numbers.",
    "copy": "[[copy]] Summarize the causes of the First World War in a paragraph.",
    "refuse": "[[refuse]] Explain how vaccines train the immune system.",
    "empty": "[[empty]] Describe the water cycle for a ten year old.",
    "huge": "[[huge]] List the planets of the solar system.",
    "prose": "[[prose]] Translate good morning into French.",
    "leak": "[[leak]] Write a haiku about the sea.",
    "judged": "[[judge-reject]] Give three tips for better sleep.",
    "down": "[[backend-down]] Compose an email asking for a day off.",
}


def synth_config(warehouse, calls_file, *extra):
    return load_config("local", [*TEST_SETTINGS, "synth.llm.backend=scripted", f"synth.llm.model={DOUBLE}",
                                 f"platform.llm.calls_file={calls_file}", "platform.llm.batch_size=4", *extra],
                       warehouse=str(warehouse))


def calls(path) -> int:
    return sum(1 for _ in open(path)) if path.exists() else 0


def stage_tokens(counts: dict) -> tuple[int, int]:
    return counts.get(f"tokens.prompt.{DOUBLE}", 0), counts.get(f"tokens.completion.{DOUBLE}", 0)


def make_seeds(spark, store, config, tmp_path, seeds):
    p = tmp_path / "pool.json"
    p.write_text(json.dumps([{"instruction": t, "input": "", "output": f"Answer: {t}"} for t in seeds.values()]))
    ingest.run(spark, store, config, [str(p)], source="pool")
    rows = store.read("samples").select("sample_id", F.array(F.lit("long_tail")).alias("criteria"),
                                        F.create_map(F.lit("min_tag_freq"), F.lit(1.0)).alias("evidence"),
                                        F.lit("test").alias("config_hash"), F.current_timestamp().alias("selected_at"))
    store.overwrite("seeds", rows.select(*schemas.SEEDS.fieldNames()))


def test_evolve_hostile_outputs_lineage_and_rerun(spark, warehouse, tmp_path):
    calls_file = tmp_path / "calls.txt"
    config = synth_config(warehouse, calls_file, "synth.rounds=2", "synth.multi_turn_weights=[0, 1]")
    store = Store(spark, config.warehouse)
    make_seeds(spark, store, config, tmp_path, SEEDS)
    r = evolve.run(spark, store, config)
    c = r.counts
    # every call's tokens (evolve, judge, respond, follow-ups, re-asks) reach the stage's counts
    assert stage_tokens(c) == logged_tokens(calls_file) and stage_tokens(c)[1] > 0
    # round 1: 9 seeds x 2; the backend-down seed's 2 are not recorded (retried next run); round 2: the 2
    # valid evolutions of the good seed, evolved twice each
    assert c["seeds"] == 9 and c["backend_failed"] == 2 and c["evolutions"] == 18 + 4
    rows = store.read("evolved").collect()
    assert len(rows) == 16 + 4
    ids = {s["instruction"]: s["sample_id"] for s in store.read("samples").filter("source = 'pool'").collect()}
    by_seed: dict[str, set[str]] = {}
    for x in rows:
        by_seed.setdefault(x["seed_id"], set()).add(x["reason"] if x["status"] == "rejected" else "valid")
    reasons = {k: by_seed.get(ids[v], set()) for k, v in SEEDS.items()}
    assert reasons["good"] == {"valid"}
    assert all(x.startswith("copy of the parent") for x in reasons["copy"])
    assert reasons["refuse"] == {"refusal"}
    assert all(x.startswith("too short") for x in reasons["empty"])
    assert all(x.startswith("too long") for x in reasons["huge"])
    assert all(x.startswith("invalid answer:") for x in reasons["prose"])
    assert reasons["leak"] == {"leaked template marker"}
    assert all(x.startswith("oracle: judged not valid") for x in reasons["judged"])
    assert reasons["down"] == set()
    round2 = [x for x in rows if x["round"] == 2]
    assert len(round2) == 4 and all(x["parent_id"] in {y["evolution_id"] for y in rows if y["round"] == 1}
                                    for x in round2)
    assert len({x["strategy"] for x in rows}) >= 2

    # valid evolutions were answered and became samples, with lineage both ways
    synth = store.read("samples").filter("source = 'synth'").collect()
    valid = [x for x in store.read("evolved").collect() if x["status"] == "valid"]
    # two evolutions that wrote the same instruction (same strategy) make one sample, not two
    assert len(valid) == 6 and len(synth) == len({x["instruction"] for x in valid}) == c["new_samples"] >= 2
    assert all(x["sample_id"] in {s["sample_id"] for s in synth} for x in valid)
    for s in synth:
        ev = next(x for x in valid if x["evolution_id"] == s["meta"]["evolution_id"])
        assert ev["sample_id"] == s["sample_id"] and s["meta"]["seed_id"] == ids[SEEDS["good"]]
        assert s["conversation"][0]["content"] == ev["instruction"] and s["n_turns"] == 4  # two rounds each
        assert [t["role"] for t in s["conversation"]] == ["user", "assistant", "user", "assistant"]
        assert s["conversation"][2]["content"].startswith("Could you go deeper")

    # a re-run: cached prompts are not asked again (only the backend-down seed's two), no duplicate rows
    before = calls(calls_file)
    again = evolve.run(spark, store, config)
    assert calls(calls_file) - before == 2 and again.counts["evolutions"] == 2 and again.counts["follow_up_calls"] == 0
    # cached answers cost nothing: only the two prompts asked again (failed: prompt tokens, no completion)
    assert stage_tokens(again.counts) == logged_tokens(calls_file, before) and stage_tokens(again.counts)[1] == 0
    assert store.read("evolved").count() == 20 and store.read("samples").filter("source = 'synth'").count() == len(synth)

    # difficulty of every sample, from the same double; a re-run rates nothing
    before = calls(calls_file)
    d = difficulty.run(spark, store, config)
    assert stage_tokens(d.counts) == logged_tokens(calls_file, before)
    assert d.counts["rated"] == store.read("samples").count() and d.counts["invalid"] == 0
    longest = store.read("difficulty").join(store.read("samples").filter("source = 'synth'"), "sample_id")
    assert longest.agg(F.min("difficulty")).first()[0] >= 3  # evolved instructions are longer, so harder
    assert difficulty.run(spark, store, config).counts["input"] == 0
    from instructlake.report import html

    priced = synth_config(warehouse, calls_file, f'platform.llm.prices={{"{DOUBLE}": "1,2"}}')
    for result in (r, again, d):
        runs.record(store, result, runs.now())
    page = open(html.build(store, priced), encoding="utf-8").read()
    assert '<h2 id="difficulty">Difficulty</h2>' in page and 'href="#difficulty"' in page
    assert "original pool" in page and "final export" in page
    # the LLM section: tokens per stage from the run records, and their cost at $1 / $2 per million
    prompt, completion = logged_tokens(calls_file)
    assert '<h2 id="llm-tokens">LLM tokens</h2>' in page
    cost = (prompt + 2 * completion) / 1e6
    assert f'<td class="num">{prompt:,}</td><td class="num">{completion:,}</td><td>${cost:,.4f}</td>' in page


def test_evolve_resumes_after_a_crash_like_an_uninterrupted_run(spark, tmp_path):
    seeds = {f"s{i}": f"Explain topic number {i} to a curious student in simple words." for i in range(4)}
    seeds["s3"] = f"[[crash-once:{tmp_path / 'crash-marker'}]] " + seeds["s3"]

    def run(name, expect_crash):
        calls_file = tmp_path / f"{name}-calls.txt"
        # single-turn conversations: the crash is in the evolution round, follow-up rounds would only add jobs
        config = synth_config(tmp_path / name, calls_file, "platform.llm.commit_every=4", "synth.multi_turn_weights=[1]")
        store = Store(spark, config.warehouse)
        make_seeds(spark, store, config, tmp_path, seeds)
        if expect_crash:
            with pytest.raises(Exception, match="scripted crash"):
                evolve.run(spark, store, config)
        evolve.run(spark, store, config)
        cols = ["evolution_id", "parent_id", "seed_id", "round", "k", "strategy", "instruction", "status", "reason",
                "sample_id"]
        return sorted(tuple(x) for x in store.read("evolved").select(*cols).collect()), calls(calls_file)

    crashed, crashed_calls = run("crashed", True)
    whole, whole_calls = run("whole", False)  # the marker file exists now: no crash
    assert crashed == whole and len(whole) == 8
    # the crashed run asked again only what its crash lost: at most one commit round of 4 prompts
    assert whole_calls <= crashed_calls <= whole_calls + 4


def test_no_llm_says_how_to_configure_one(spark, store, config):
    with pytest.raises(evolve.NoLLMError, match="vLLM on a GPU.*transformers.*OpenAI-compatible"):
        evolve.run(spark, store, config)


def test_evolve_on_a_tiny_transformers_model_through_spark(spark, tmp_path):
    from tests.tiny_models import build_tiny_llama

    model = build_tiny_llama(tmp_path / "tiny", seed=2)
    config = load_config("local", [*TEST_SETTINGS, "synth.llm.backend=transformers", "synth.llm.model=tiny",
                                   "synth.llm.max_tokens=12", "synth.llm.max_reasks=0",
                                   f"platform.llm.model_paths={{tiny: {model}}}"], warehouse=str(tmp_path / "wh"))
    store = Store(spark, config.warehouse)
    make_seeds(spark, store, config, tmp_path, {"a": "Write a poem about the sea.", "b": "Add two numbers."})
    r = evolve.run(spark, store, config)
    # random weights write no JSON: every evolution is recorded as rejected, with the reason, nothing crashes
    assert r.counts["evolutions"] == 4 and r.counts["rejected"] == 4 and r.counts["new_samples"] == 0
    assert all(x["reason"].startswith("invalid answer") for x in store.read("evolved").collect())


def test_multi_turn_rounds_follow_the_weights(spark):
    from instructlake.synth.multiturn import target_rounds

    keys = spark.range(8000).select(F.col("id").cast("string").alias("k"))
    for weights in ((0.25, 0.25, 0.25, 0.25), (0.1, 0.0, 0.6, 0.3), (0.0, 1.0)):
        got = {r[0]: r[1] for r in keys.groupBy(target_rounds(weights, F.col("k"))).count().collect()}
        for i, w in enumerate(weights, 1):
            assert abs(got.get(i, 0) / 8000 - w) < 0.03, (weights, got)
