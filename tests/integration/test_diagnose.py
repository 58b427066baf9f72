"""The deficiency diagnosis loop with the scripted double: MT-Bench-style files, per-skill deficiencies,
targeted instructions answered into samples, iterations recorded side by side."""

from __future__ import annotations

import json

from pyspark.sql import functions as F

from instructlake.config import load_config
from instructlake.store import Store
from instructlake.synth import diagnose
from tests.conftest import TEST_SETTINGS

DOUBLE = "instructlake.llm.scripted:synth"


def test_diagnose_finds_skills_writes_targeted_data_and_records_iterations(spark, tmp_path):
    questions = tmp_path / "question.jsonl"
    questions.write_text("\n".join(json.dumps(r) for r in [
        {"question_id": 101, "category": "math", "turns": ["[[weak:multi-step arithmetic]] What is 17 * 23 + "
                                                           "4?"],
         "reference": ["395"]},
        {"question_id": 102, "category": "math", "turns": ["[[weak:multi-step arithmetic]] Compute 3^4 - 2^5."]},
        {"question_id": 103, "category": "coding", "turns": ["[[weak:recursion in python]] Write a recursive "
                                                             "factorial."], "reference": ["def f(n): ..."]},
        {"question_id": 104, "category": "writing", "turns": ["Write a haiku about rain."], "reference": ["Rain..."]},
        {"question_id": 105, "category": "writing", "turns": ["No reference anywhere."]},
    ]) + "\n")
    answers = tmp_path / "gpt-4.jsonl"  # MT-Bench style reference answers, matched on question_id
    answers.write_text(json.dumps({"question_id": 102, "model_id": "gpt-4", "choices": [{"index": 0, "turns": ["49"]}]})
                       + "\n")
    config = load_config("local", [*TEST_SETTINGS, "synth.llm.backend=scripted", f"synth.llm.model={DOUBLE}",
                                   "synth.diagnose_model.backend=scripted", f"synth.diagnose_model.model={DOUBLE}",
                                   "synth.targeted_per_deficiency=2", "synth.multi_turn_weights=[1]"],
                         warehouse=str(tmp_path / "wh"))
    store = Store(spark, config.warehouse)
    r = diagnose.run(spark, store, config, str(questions), "mtbench", str(answers))
    c = r.counts
    assert c["iteration"] == 1 and c["items"] == 4 and c["quarantined"] == 1 and c["deficient"] == 3
    assert c["skill.multi-step arithmetic"] == 2 and c["skill.recursion in python"] == 1
    rows = {x["item_id"]: x for x in store.read("diagnosis").collect()}
    assert rows["102"]["reference"] == "49" and rows["104"]["deficient"] is False and rows["104"]["skill"] is None
    assert store.read("quarantine").filter("stage = 'diagnose'").first()["reason"] == "missing_field"
    # targeted instructions: 2 per deficiency, per skill, answered into samples with lineage
    targeted = store.read("evolved").filter("strategy = 'targeted'").collect()
    assert len(targeted) == 6 and {x["status"] for x in targeted} == {"valid"}
    assert sum("multi-step arithmetic" in x["instruction"] for x in targeted) == 4
    synth = store.read("samples").filter("source = 'synth'").collect()
    assert len(synth) == 6 and all(s["meta"]["seed_id"].startswith("diagnosis:mtbench#1:") for s in synth)

    # a second run is the next iteration of the set; it then probes the model with the targeted
    # instructions it wrote (the double answers those well, so the loop ends there)
    again = diagnose.run(spark, store, config, str(questions), "mtbench", str(answers), iterations=3)
    assert again.counts["first_iteration"] == 2 and again.counts["iteration"] == 3
    rates = {x["iteration"]: (x["rate"], x["n"]) for x in store.read("diagnosis").groupBy("iteration")
             .agg(F.avg(F.col("deficient").cast("double")).alias("rate"), F.count("*").alias("n")).collect()}
    assert rates == {1: (0.75, 4), 2: (0.75, 4), 3: (0.0, 6)}
    assert again.counts["iteration.2.deficiency_rate_x1000"] == 750 and again.counts["iteration.3.deficiency_rate_x1000"] == 0
