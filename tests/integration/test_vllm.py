"""vLLM for real: the engine on vLLM's CPU build, in a user's script and inside Spark's Python workers.

The tiny model (tests/tiny_models.build_tiny_chat_llama) has random weights: its answers are nonsense in
valid JSON. These tests check the plumbing (schemas, parsing, counts, lineage, caching, shutdown), never
what an answer says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from instructlake.llm import prompts
from tests.integration.test_tagging import calls  # lines in a calls_file: prompts an engine answered
from tests.vllm_support import engine_core_pids, require_vllm, wait_for_no_engine_core

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _vllm():
    require_vllm()


def test_engine_in_a_script_answers_every_task_schema_and_exit_stops_the_engine_core(tiny_chat_model, tmp_path):
    out = tmp_path / "probe.json"
    proc = subprocess.run([sys.executable, "-m", "tests.vllm_support", str(tiny_chat_model), str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["engine_core_pids"], "the engine core runs in its own process while the engine is up"
    assert wait_for_no_engine_core() == [], "the script exited but vLLM's engine core is still running"
    for name, t in report["tasks"].items():
        schema = prompts.load(name).schema
        assert t["errors"] == [None] * 8, (name, t["errors"], t["texts"])
        for text in t["texts"]:  # constrained decoding wrote JSON the schema accepts, with no repair
            jsonschema.validate(json.loads(text, strict=False), schema)
        # token counts are vLLM's own: the prompt as the chat template renders it, the answer's tokens
        assert t["prompt_tokens"] == t["expected_prompt_tokens"], name
        assert all(0 < n <= 400 for n in t["completion_tokens"]), name
    # a prompt over max_model_len is answered as refused (cached, not retried); the rest of the call runs
    assert "max_model_len 2048" in report["long"]["error"] and report["long"]["retryable"] is False
    assert report["long"]["prompt_tokens"] > 2048
    assert report["short"]["error"] is None and report["short"]["completion_tokens"] > 0


def test_no_engine_core_is_left_between_tests():
    assert engine_core_pids() == []


def _llm_settings(model: Path, calls_file: Path) -> list[str]:
    from tests.vllm_support import ENGINE_SETTINGS

    llm = {"backend": "vllm", "model": "tiny", "temperature": 1.0, "max_tokens": 400}
    out = [f"{stage}.{k}={v}" for stage in ("tagging.llm", "synth.llm", "synth.oracle", "synth.diagnose_model")
           for k, v in llm.items()]
    return [*out, f"platform.llm.model_paths={{tiny: {model}}}", f"platform.llm.calls_file={calls_file}",
            *ENGINE_SETTINGS]


def _pool(root: Path) -> Path:
    from tests.conftest import SAMPLES

    alpaca = json.loads((SAMPLES / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "pool.json").write_text(json.dumps(alpaca[:40]), encoding="utf-8")
    return root


def _questions(root: Path) -> Path:
    path = root / "question.jsonl"
    path.write_text("\n".join(json.dumps({"question_id": i, "category": c, "turns": [t], "reference": [r]})
                              for i, (c, t, r) in enumerate([("math", "What is 17 * 23?", "391"),
                                                              ("coding", "Reverse a list in Python.", "xs[::-1]"),
                                                              ("writing", "Write a haiku about rain.", "Rain...")]))
                    + "\n", encoding="utf-8")
    return path


# stages no LLM stage reads (the pipeline fixture and the cluster test run them): a fixed scorer, no
# semantic dedup, no co-occurrence graph; seeds read tags, tag_map and scores, not the graph's tables
NOT_LLM = ["train_reference", "semdedup", "graph"]


def _validate_cache(store) -> dict[str, int]:
    """Every cached answer parses and its schema accepts it; the answers per prompt file."""
    by_name = {}
    for row in store.read("llm_cache").select("prompt_version", "parsed", "error").collect():
        name = row["prompt_version"].split("/")[0]
        assert row["error"] is None, (name, row["error"])
        jsonschema.validate(json.loads(row["parsed"]), prompts.load(name).schema)
        by_name[name] = by_name.get(name, 0) + 1
    return by_name


def test_every_llm_stage_on_vllm_through_spark_random_weights_plumbing_only(spark, tiny_chat_model, tmp_path):
    """tag (LLM tagger), normalize-tags, evolve with the oracle, multi-turn, difficulty (pipeline run) and
    diagnose on vLLM in Spark's Python workers: every answer parses and fits its schema, rows land with
    lineage, a crash midway resumes without asking again, and a rebuild from the cache asks nothing."""
    from pyspark.sql import functions as F

    from instructlake import pipeline
    from instructlake.config import load_config
    from instructlake.store import Store
    from instructlake.synth import diagnose, multiturn
    from tests.integration.conftest import pipeline_settings
    from tests.tiny_models import build_tiny_llama

    scorer = build_tiny_llama(tmp_path / "scorer")
    calls_file = tmp_path / "calls.txt"
    settings = [*pipeline_settings(scorer), "normalize_tags.min_freq=1", "synth.min_chars=5",
                "synth.multi_turn_weights=[0.0,0.5,0.5]", *_llm_settings(tiny_chat_model, calls_file)]
    inputs = pipeline.Inputs(raw=(str(_pool(tmp_path / "in")),))
    config = load_config("local", settings, warehouse=str(tmp_path / "wh"))
    store = Store(spark, config.warehouse, retries=8)

    real_expand = multiturn.expand

    def crash(*a, **k):
        raise RuntimeError("injected crash after the responses were cached")

    multiturn.expand = crash
    try:
        with pytest.raises(RuntimeError, match="injected crash"):
            pipeline.run(spark, store, config, inputs, stop="difficulty", skip=NOT_LLM)
    finally:
        multiturn.expand = real_expand
    asked_before_crash = calls(calls_file)
    cached_before_crash = store.count("llm_cache")
    assert asked_before_crash == cached_before_crash > 40  # constrained decoding: no prompt was re-asked

    done = {o.step: o for o in pipeline.run(spark, store, config, inputs, stop="difficulty",
                                            skip=NOT_LLM)}
    assert [s for s, o in done.items() if o.action == "ran"] == ["synth", "difficulty"]
    synth = done["synth"].result.counts
    # the resumed run asks only what the crash left unasked: the follow-ups and the difficulty ratings
    assert synth["evolve_calls"] == synth["judge_calls"] == synth["respond_calls"] == 0
    assert synth["follow_up_calls"] > 0 and synth["new_samples"] > 0
    assert store.read("evolved").filter("status = 'valid'").count() >= synth["new_samples"]
    diff = done["difficulty"].result.counts
    assert diff["rated"] == diff["input"] and diff["invalid"] == diff["backend_failed"] == 0
    assert 0 < diff["calls"] <= diff["input"]  # samples with the same text share one prompt
    assert calls(calls_file) - asked_before_crash == synth["follow_up_calls"] + diff["calls"]

    d = diagnose.run(spark, store, config, str(_questions(tmp_path)), "mini").counts
    assert d["items"] == 3 and d["quarantined"] == 0

    by_name = _validate_cache(store)
    assert set(by_name) == {"tag_instruction", "evolve_instruction", "judge_evolution", "respond", "follow_up",
                            "respond_turn", "rate_difficulty", "diagnose_compare"} | (
        {"targeted_instruction"} if d["deficient"] else set())
    assert store.count("llm_cache") == calls(calls_file)  # one engine call per cached answer, none repeated
    tags = store.read("tags")
    assert tags.filter("tagger = 'llm' AND tag IS NOT NULL").select("sample_id").distinct().count() == 40
    assert store.count("tag_map") > 0
    # lineage: every synthesized sample names its evolution, its seed (a pool sample) and the model
    samples = store.read("samples")
    made = samples.filter("source = 'synth'")
    pool_ids = {r[0] for r in samples.filter("source != 'synth'").select("sample_id").collect()}
    rows = made.select("meta", "n_turns").collect()
    for row in rows:  # diagnose's targeted samples name the diagnosis item instead of a seed
        seed = row["meta"]["seed_id"]
        assert (seed in pool_ids or seed.startswith("diagnosis:mini#1:")) and row["meta"]["model"] == "tiny"
    assert sum(r["meta"]["seed_id"] in pool_ids for r in rows) == synth["new_samples"]
    assert made.filter("n_turns > 2").count() > 0  # multi-turn expansion grew conversations
    assert store.read("difficulty").filter(F.col("difficulty").isNull()).count() == 0
    assert engine_core_pids() == []  # the engine core lives in the Python worker, nothing beside it

    # a rebuild in a new warehouse from the same inputs and the cached answers asks the engine nothing
    fresh = load_config("local", settings, warehouse=str(tmp_path / "wh2"))
    store2 = Store(spark, fresh.warehouse, retries=8)
    store2.overwrite("llm_cache", store.read("llm_cache"))
    asked = calls(calls_file)
    again = {o.step: o for o in pipeline.run(spark, store2, fresh, inputs, stop="difficulty",
                                             skip=NOT_LLM)}
    assert again["tagging"].result.counts["llm_calls"] == 0 and again["tagging"].result.counts["llm_prompts"] == 40
    assert again["synth"].result.counts["new_samples"] == synth["new_samples"]
    assert calls(calls_file) == asked
    evolved = "source = 'synth' AND NOT meta['seed_id'] LIKE 'diagnosis:%'"  # store2 ran no diagnose
    ids = lambda s: sorted(r[0] for r in s.read("samples").filter(evolved).select("sample_id").collect())  # noqa: E731
    assert ids(store2) == ids(store) and len(ids(store)) == synth["new_samples"]

    # tagging.distill with vLLM as the teacher: it tags a share of the pool, the classifier the rest (other
    # sampling, so other cache keys: the teacher's prompts are asked now, in the worker that has the engine)
    from instructlake.tagging import stage as tagging

    distill = load_config("local", [*settings, "tagging.llm.max_tokens=399", "tagging.distill.sample=0.4",
                                    "tagging.distill.min_examples=1"], warehouse=str(tmp_path / "wh"))
    asked = calls(calls_file)
    c = tagging.run(spark, store, distill).counts
    # the pool now holds the synthesized samples too; samples with one text share one prompt
    assert c["input"] > 40 and calls(calls_file) - asked == c["llm_calls"] == c["llm_prompts"] > 0
    rows = store.read("tags").filter(F.col("config_hash") == tagging.tagging_hash(distill))
    per = rows.groupBy("tagger").agg(F.countDistinct("sample_id").alias("n")).collect()
    by = {r["tagger"]: r["n"] for r in per}
    assert by["llm"] + by["distilled"] == c["input"] == c["tagged"] + c["untagged"]
    assert 0.2 * c["input"] < by["llm"] < 0.6 * c["input"] and by["distilled"] == c["distill_student"]
    assert c["llm_prompts"] <= by["llm"] and 0 < c["distill_llm_tagged"] <= by["llm"]
    assert c["distill_learned_tags"] > 0
    assert engine_core_pids() == []
