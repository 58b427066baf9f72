import json
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F

from instructlake.config import ConfigError
from instructlake.export import stage as export
from instructlake.ingest import stage as ingest
from instructlake.runs import StaleInputError


def test_export_formats_and_manifest(spark, store, config, samples_dir, tmp_path):
    ingest.run(spark, store, config, [str(samples_dir / "glaive_toolcall_en_demo.json"),
                                      str(samples_dir / "seed_tasks.jsonl")])
    n = store.count("samples")
    out = tmp_path / "export"
    stale = "instructlake dedup.*instructlake filter.*instructlake scrub.*instructlake decontam"
    with pytest.raises(StaleInputError, match=stale) as e:
        export.run(spark, store, config, str(out))
    assert f"{n:,} samples have not been through dedup" in str(e.value) and not out.exists()
    r = export.run(spark, store, config, str(out), allow_unchecked=True)  # the formats, not the checks, here
    assert r.counts["exported"] == n
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == n
    assert manifest["unchecked"] == {"allowed": True, "not_deduplicated": n, "not_filtered": n, "not_scrubbed": n,
                                     "not_decontaminated": n, "flagged_under_earlier_config_dropped": 0}
    assert manifest["rows_per_source"] == {"glaive_toolcall_en_demo": 265, "seed_tasks": 175}
    assert manifest["table_versions"]["samples"] == store.version("samples")
    assert manifest["config_hashes"]["ingest"] == [config.stage_hash("ingest")]

    share = [json.loads(x) for f in sorted((out / "sharegpt").glob("part-*.json")) for x in f.read_text().splitlines()]
    assert len(share) == n
    roles = {t["from"] for r in share for t in r["conversations"]}
    assert roles == {"human", "gpt", "observation"}
    oai = [json.loads(x) for f in sorted((out / "openai").glob("part-*.json")) for x in f.read_text().splitlines()]
    assert len(oai) == n and all(m["messages"][-1]["role"] == "assistant" for m in oai)
    assert spark.read.parquet(str(out / "parquet")).count() == n


def test_export_loads_with_datasets(spark, store, config, samples_dir, tmp_path):
    import datasets

    ingest.run(spark, store, config, [str(samples_dir / "seed_tasks.jsonl")])
    out = tmp_path / "export"
    export.run(spark, store, config, str(out), allow_unchecked=True)
    for fmt, col in (("sharegpt", "conversations"), ("openai", "messages")):
        files = [str(p) for p in sorted(Path(out, fmt).glob("part-*.json"))]
        ds = datasets.load_dataset("json", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
        assert len(ds) == 175 and col in ds.column_names
    ds = datasets.load_dataset("parquet", data_files=str(out / "parquet" / "*.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 175
    # the dataset card: one config per format, found by load_dataset on the directory itself
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    assert [c["config_name"] for c in header["configs"]] == ["sharegpt", "openai"]  # JSON Lines: card.carded
    assert header["size_categories"] == ["n<1K"] and header["task_categories"] == ["text-generation"]
    for fmt, col in (("sharegpt", "conversations"), ("openai", "messages")):
        ds = datasets.load_dataset(str(out), fmt, split="train", cache_dir=str(tmp_path / "hf-card"))
        assert len(ds) == 175 and col in ds.column_names, fmt
    assert 'datasets.load_dataset("parquet", data_files="path/to/this/dir/parquet/part-*.parquet"' in card
    assert "| seed_tasks | 175 |" in card and "--allow-unchecked" in card and "| unknown | 175 |" in card


def test_export_leaves_out_removed_duplicates(spark, store, config, tmp_path):
    from instructlake.dedup import stage as dedup

    text = ("Summarize the main causes of the French Revolution in a few clear sentences for a high school "
            "history class, mentioning the fiscal crisis, social inequality and Enlightenment ideas")
    recs = [{"instruction": text, "input": "", "output": "Debt, inequality and new ideas."},
            {"instruction": text.upper() + "!", "input": "", "output": "Debt, inequality and new ideas."},
            {"instruction": "Name three primary colors.", "input": "", "output": "Red, yellow and blue."}]
    f = tmp_path / "r.json"
    f.write_text(json.dumps(recs))
    ingest.run(spark, store, config, [str(f)])
    dedup.run(spark, store, config)
    removed = {r["sample_id"] for r in store.read("dedup_clusters").filter("NOT is_kept").collect()}
    assert len(removed) == 1
    out = tmp_path / "export"
    r = export.run(spark, store, config, str(out), allow_unchecked=True)  # decontam is not this test's
    assert (r.counts["exported"], r.counts["duplicates_dropped"], r.counts["not_deduplicated"]) == (2, 1, 0)
    ids = {json.loads(x)["id"] for p in (out / "sharegpt").glob("part-*.json") for x in p.read_text().splitlines()}
    assert len(ids) == 2 and not ids & removed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["duplicates_dropped"] == 1 and manifest["config_hashes"]["dedup"] == config.stage_hash("dedup")
    # semdedup's removals sit on top of the dedup run, under semdedup's own hash: checked, and left out
    primary = store.read("samples").filter("instruction = 'Name three primary colors.'").first()["sample_id"]
    semantic = (store.read("dedup_clusters").filter(f"sample_id = '{primary}'")
                .withColumn("method", F.lit("semantic")).withColumn("is_kept", F.lit(False))
                .withColumn("config_hash", F.lit("semdedup-hash")))
    store.merge("dedup_clusters", semantic, update=True)
    rs = export.run(spark, store, config, str(tmp_path / "export-sem"), allow_unchecked=True)
    assert (rs.counts["exported"], rs.counts["duplicates_dropped"], rs.counts["not_deduplicated"]) == (1, 2, 0)
    # a sample ingested after the last dedup run stops the export; allowed, it goes out and is counted
    g = tmp_path / "late.json"
    g.write_text(json.dumps([{"instruction": "Name a prime number.", "input": "", "output": "Seven."}]))
    ingest.run(spark, store, config, [str(g)])
    with pytest.raises(StaleInputError, match="1 samples have not been through dedup"):
        export.run(spark, store, config, str(tmp_path / "export2"))
    r2 = export.run(spark, store, config, str(tmp_path / "export2"), allow_unchecked=True)
    assert (r2.counts["exported"], r2.counts["not_deduplicated"]) == (2, 1)
    # a changed dedup config makes every cluster row stale
    from dataclasses import replace

    changed = replace(config, semantic=replace(config.semantic, dedup=replace(config.dedup, threshold=0.7)))
    # all but the semantic one
    with pytest.raises(StaleInputError, match="3 samples have not been through dedup"):
        export.run(spark, store, changed, str(tmp_path / "export3"))


def test_export_refuses_a_directory_that_is_not_an_export(spark, store, config, samples_dir, tmp_path):
    ingest.run(spark, store, config, [str(samples_dir / "seed_tasks.jsonl")])
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.tex").write_text("months of work")
    with pytest.raises(ConfigError, match="not an earlier export"):
        export.run(spark, store, config, str(notes), allow_unchecked=True)
    assert (notes / "thesis.tex").read_text() == "months of work"
    out = tmp_path / "out"
    export.run(spark, store, config, str(out), allow_unchecked=True)
    export.run(spark, store, config, str(out), allow_unchecked=True)  # over an earlier export: fine
    assert json.loads((out / "manifest.json").read_text())["rows"] == 175
