import json
from pathlib import Path

from instructlake.export import stage as export
from instructlake.ingest import stage as ingest


def test_export_formats_and_manifest(spark, store, config, samples_dir, tmp_path):
    ingest.run(spark, store, config, [str(samples_dir / "glaive_toolcall_en_demo.json"),
                                      str(samples_dir / "seed_tasks.jsonl")])
    n = store.count("samples")
    out = tmp_path / "export"
    r = export.run(spark, store, config, str(out))
    assert r.counts["exported"] == n
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == n
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
    export.run(spark, store, config, str(out))
    for fmt, col in (("sharegpt", "conversations"), ("openai", "messages")):
        files = [str(p) for p in sorted(Path(out, fmt).glob("part-*.json"))]
        ds = datasets.load_dataset("json", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
        assert len(ds) == 175 and col in ds.column_names
    ds = datasets.load_dataset("parquet", data_files=str(out / "parquet" / "*.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 175


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
    r = export.run(spark, store, config, str(out))
    assert (r.counts["exported"], r.counts["duplicates_dropped"], r.counts["not_deduplicated"]) == (2, 1, 0)
    ids = {json.loads(x)["id"] for p in (out / "sharegpt").glob("part-*.json") for x in p.read_text().splitlines()}
    assert len(ids) == 2 and not ids & removed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["duplicates_dropped"] == 1 and manifest["config_hashes"]["dedup"] == [config.stage_hash("dedup")]
    # a sample ingested after the last dedup run is exported and counted, not silently dropped
    g = tmp_path / "late.json"
    g.write_text(json.dumps([{"instruction": "Name a prime number.", "input": "", "output": "Seven."}]))
    ingest.run(spark, store, config, [str(g)])
    r2 = export.run(spark, store, config, str(tmp_path / "export2"))
    assert (r2.counts["exported"], r2.counts["not_deduplicated"]) == (3, 1)
