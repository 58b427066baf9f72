"""Semantic dedup on constructed paraphrase groups: one kept per group by the keep rule, the rest marked
'semantic' in dedup_clusters; a stricter threshold restores them; export follows."""

from __future__ import annotations

import json
from dataclasses import replace

from instructlake.decontam import semdedup
from instructlake.dedup import stage as dedup
from instructlake.ingest import stage as ingest

GROUPS = [
    ["How do I bake bread at home?", "How can I bake bread at home?", "What is the way to bake bread at home?"],
    ["Give me three tips for learning to play the guitar.", "Give me 3 tips for learning to play guitar.",
     "Share three tips for learning how to play the guitar."],
    ["Translate 'good morning' into Spanish.", "Translate good morning to Spanish."],
]
DISTINCT = ["Write a haiku about autumn leaves.", "Explain how a transistor works.",
            "List the planets of the solar system in order.", "What causes inflation in an economy?",
            "Suggest a name for a coffee shop.", "Summarize the plot of Hamlet in two sentences."]


def test_semdedup_collapses_paraphrase_groups(spark, store, config, tmp_path):
    records = []
    for g in GROUPS:
        for k, text in enumerate(g):
            records.append({"instruction": text, "input": "", "output": "answer " * (k + 1)})  # last: longest
    records += [{"instruction": t, "input": "", "output": "an answer"} for t in DISTINCT]
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(records))
    ingest.run(spark, store, config, [str(pool)])
    d = dedup.run(spark, store, config)
    assert d.counts["kept"] == len(records)  # MinHash on 5-grams sees no duplicates among these

    r = semdedup.run(spark, store, config)
    assert r.counts["semantic_duplicates"] == sum(len(g) - 1 for g in GROUPS) and r.counts["groups"] == len(GROUPS)
    ids = {s["instruction"]: s["sample_id"] for s in store.read("samples").collect()}
    rows = {x["sample_id"]: x for x in store.read("dedup_clusters").collect()}
    for g in GROUPS:
        keeper = ids[g[-1]]  # the longest response wins the keep rule
        assert rows[keeper]["is_kept"]
        for text in g[:-1]:
            row = rows[ids[text]]
            assert row["method"] == "semantic" and not row["is_kept"] and row["kept_id"] == keeper
            # a group joins pairs above the threshold, so a member may be linked to the kept one through
            # another
            assert 0.85 < row["similarity"] < 1.0
    assert all(rows[ids[t]]["is_kept"] for t in DISTINCT)

    again = semdedup.run(spark, store, config)  # idempotent
    assert again.counts["semantic_duplicates"] == r.counts["semantic_duplicates"] and again.counts["restored"] == 0

    strict = replace(config, semantic=replace(config.semantic, semdedup=replace(config.semdedup, threshold=0.9999)))
    s = semdedup.run(spark, store, strict)
    assert s.counts["semantic_duplicates"] == 0 and s.counts["restored"] == r.counts["semantic_duplicates"]
    assert store.read("dedup_clusters").filter("NOT is_kept").count() == 0
