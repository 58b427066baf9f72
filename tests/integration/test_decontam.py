"""Decontamination against the built-in AlpacaEval prompts and a loaded MT-Bench-style file, through Spark."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from pyspark.sql import functions as F

from instructlake.decontam import stage as decontam
from instructlake.decontam.benchmarks import builtin_path, prompts_of
from instructlake.dedup import stage as dedup
from instructlake.export import stage as export
from instructlake.ingest import stage as ingest
from instructlake.quality import stage as quality
from instructlake.runs import StaleInputError
from instructlake.scrub import stage as scrub

EVAL = [json.loads(x)["instruction"] for x in builtin_path("alpaca_eval").read_text().splitlines()]


def test_builtin_alpaca_eval_is_the_sample_file(samples_dir):
    rows = json.loads((samples_dir / "gpt4_1106_preview_model_outputs.json").read_text())
    assert [r["instruction"] for r in rows] == EVAL and len(EVAL) == 805


def test_prompt_shapes():
    assert [i.prompt for i in prompts_of({"question_id": 81, "turns": ["Plan a trip.", "Now in verse."]}, 0)] == \
        ["Plan a trip.", "Now in verse."]
    assert [i.item_id for i in prompts_of({"question_id": 81, "turns": ["a b", "c d"]}, 0)] == ["81", "81#t2"]
    assert prompts_of({"uid": "x", "turns": [{"content": "arena prompt"}]}, 3)[0].item_id == "x"
    assert prompts_of("just a prompt", 7)[0].item_id == "7"
    assert prompts_of({"instruction": "Sum", "input": "1 2"}, 0)[0].prompt == "Sum\n\n1 2"
    assert prompts_of({"messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "x"}]},
                      0)[0].prompt == "hi there"


def test_decontam_flags_copies_and_paraphrases_and_export_drops_them(spark, store, config, samples_dir, tmp_path):
    clean = json.loads((samples_dir / "alpaca_en_demo.json").read_text())[:40]
    contaminated = [
        {"instruction": EVAL[0], "input": "", "output": "Hugh Jackman and others."},  # exact copy
        {"instruction": "Question from a friend: " + EVAL[4].lower().replace("neatly", "nicely") + " Thanks!",
         "input": "", "output": "Fold the paper."},  # wrapper + synonym
        # long copy
        {"instruction": "Translate to French, then answer: " + EVAL[9], "input": "", "output": "..."},
    ]
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(clean + contaminated))
    bench = tmp_path / "mtbench.jsonl"
    bench.write_text("\n".join([
        json.dumps({"question_id": 81, "category": "writing",
                    "turns": ["Describe the migration route of the arctic tern, and explain how scientists track "
                              "these birds across the globe with tiny geolocators.", "Rewrite it starting every "
                              "sentence with the letter A."]}),
        json.dumps({"question_id": 82, "category": "broken"}),  # no prompt: quarantined
        "{not json",
    ]) + "\n")
    travel = {"instruction": "describe the migration route of the arctic tern and explain how scientists track "
                             "these birds across the globe with tiny geolocators", "input": "", "output": "Far."}
    (tmp_path / "more.json").write_text(json.dumps([travel]))
    ingest.run(spark, store, config, [str(pool), str(tmp_path / "more.json")])

    r = decontam.run(spark, store, config)  # nothing loaded: the built-in alpaca_eval
    assert r.counts["benchmark.alpaca_eval.loaded"] == 805 and r.counts["input"] == 44
    rows = store.read("contamination").collect()
    by_sample = {}
    for row in rows:
        by_sample.setdefault(row["sample_id"], []).append(row)
    assert len(by_sample) == 44  # every checked sample has its best match recorded
    ids = {s["instruction"]: s["sample_id"] for s in store.read("samples").collect()}
    flagged = {row["sample_id"] for row in rows if row["flagged"]}
    assert flagged == {ids[c["instruction"]] for c in contaminated}, "exactly the contaminated samples are flagged"
    copy = [x for x in by_sample[ids[EVAL[0]]] if x["flagged"]][0]
    assert copy["item_id"] == "0" and copy["cosine"] > 0.99 and set(copy["methods"]) == {"embedding", "ngram"}
    assert copy["ngram_ratio"] == 1.0
    long_copy = [x for x in by_sample[ids[contaminated[2]["instruction"]]] if x["flagged"]]
    assert any("ngram" in x["methods"] and x["item_id"] == "9" and x["ngram_shared"] >= 20 for x in long_copy)
    assert "recipe for kubdari" in long_copy[0]["ngram_example"] or long_copy[0]["ngram_example"]
    assert r.counts["benchmark.alpaca_eval.flagged"] == 3

    again = decontam.run(spark, store, config)
    assert again.counts["input"] == 0 and store.read("contamination").count() == len(rows)

    # a second benchmark: the hash changes (new prompts), everything is checked against both
    r2 = decontam.run(spark, store, config, [f"mtbench={bench}"])
    assert r2.counts["benchmark.mtbench.loaded"] == 2 and r2.counts["input"] == 44
    q = store.read("quarantine").filter(F.col("stage") == "benchmarks").collect()
    assert {x["reason"] for x in q} == {"missing_field", "json_parse_error"} and len(q) == 2
    items = {x["item_id"] for x in store.read("benchmarks").filter("benchmark = 'mtbench'").collect()}
    assert items == {"81", "81#t2"}
    assert r2.counts["benchmark.mtbench.flagged"] == 1 and r2.counts["flagged"] == 4

    # the blocked path (KMeans buckets) flags the same samples; top_k changes the hash so all are rechecked
    blocked = replace(config, semantic=replace(config.semantic, decontam=replace(config.decontam, top_k=4)),
                      platform=replace(config.platform, decontam=replace(config.platform.decontam,
                                                                         broadcast_max_rows=0, ivf_clusters=8)))
    r3 = decontam.run(spark, store, blocked)
    assert r3.counts["input"] == 44 and r3.counts["flagged"] == 4
    flagged_blocked = {x["sample_id"] for x in store.read("contamination").filter(
        (F.col("config_hash") == r3.config_hash) & F.col("flagged")).collect()}
    flagged_broadcast = {x["sample_id"] for x in store.read("contamination").filter(
        (F.col("config_hash") == r2.config_hash) & F.col("flagged")).collect()}
    assert flagged_blocked == flagged_broadcast

    # fails closed: without dedup rows, export stops and names the stage to run
    with pytest.raises(StaleInputError, match="instructlake dedup"):
        export.run(spark, store, config, str(tmp_path / "export"))
    dedup.run(spark, store, config)
    with pytest.raises(StaleInputError, match="instructlake filter"):
        export.run(spark, store, config, str(tmp_path / "export"))
    quality.run(spark, store, config)
    with pytest.raises(StaleInputError, match="instructlake scrub"):
        export.run(spark, store, config, str(tmp_path / "export"))
    scrub.run(spark, store, config)
    out = export.run(spark, store, config, str(tmp_path / "export"))
    assert out.counts["contaminated_dropped"] == 4 and out.counts["exported"] == 40
    from instructlake.report import html

    page = open(html.build(store), encoding="utf-8").read()
    assert "Benchmark contamination" in page and "flagged matches" in page and "mtbench #81" in page
    exported = {json.loads(x)["id"] for f in (tmp_path / "export" / "sharegpt").glob("part-*.json")
                for x in f.read_text().splitlines()}
    assert not exported & flagged

    # a changed threshold leaves every sample unchecked under the current config: export stops ...
    looser = replace(config, semantic=replace(config.semantic, decontam=replace(config.decontam,
                                                                                cosine_threshold=0.95)))
    with pytest.raises(StaleInputError, match="44 samples have not been checked.*instructlake decontam"):
        export.run(spark, store, looser, str(tmp_path / "export-looser"))
    # ... and allowed through, the samples flagged under an earlier config still stay out
    out2 = export.run(spark, store, looser, str(tmp_path / "export-looser"), allow_unchecked=True)
    assert (out2.counts["exported"], out2.counts["flagged_earlier_dropped"], out2.counts["not_decontaminated"]) == (
        40, 4, 44)
    manifest = json.loads((tmp_path / "export-looser" / "manifest.json").read_text())
    assert manifest["unchecked"]["not_decontaminated"] == 44 and manifest["unchecked"]["allowed"] is True
    # a sample ingested after decontam ran is not exported unchecked
    (tmp_path / "late.json").write_text(json.dumps([{"instruction": EVAL[1], "input": "", "output": "x"}]))
    ingest.run(spark, store, config, [str(tmp_path / "late.json")])
    dedup.run(spark, store, config)
    quality.run(spark, store, config)
    scrub.run(spark, store, config)
    with pytest.raises(StaleInputError, match="1 samples have not been checked against the benchmarks"):
        export.run(spark, store, config, str(tmp_path / "export-late"))
