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
