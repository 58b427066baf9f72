"""Parquet inputs through both readers (Python workers on local paths; Hadoop's FileSystem and the byte-range
source for URIs): a directory as Spark or a dataset hub writes it, counts written here by the generator."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from instructlake.ingest import stage
from instructlake.ingest.rawfile import FileFormatError
from tests.integration.test_ingest import config, given, reader  # noqa: F401 - fixtures
from tests.unit.test_parquet_scan import corrupt_group

TURNS = pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))


def alpaca_rows(n: int, start: int = 0) -> list[dict]:
    return [{"instruction": f"Name river number {i}.", "input": "" if i % 3 else "in Europe",
             "output": f"River {i} flows to the sea."} for i in range(start, start + n)]


def sharegpt_rows(n: int) -> list[dict]:
    return [{"id": f"c{i}", "conversations": [{"from": "human", "value": f"What is {i} squared?"},
                                              {"from": "gpt", "value": f"{i * i}."}]} for i in range(n)]


def test_parquet_directory_ingests_like_its_json_twin(spark, store, config, tmp_path, reader):  # noqa: F811
    d = tmp_path / "landing"
    d.mkdir()
    good = alpaca_rows(40)
    bad = [{"instruction": "An empty answer follows.", "input": "", "output": "  "},  # empty_content
           {"instruction": None, "input": None, "output": "An answer to nothing."}]  # no instruction
    pq.write_table(pa.Table.from_pylist(good[:20] + bad + good[20:]),
                   d / "part-00000-7a1b.c000.snappy.parquet", row_group_size=8)
    chats = sharegpt_rows(15)
    schema = pa.schema([("id", pa.string()), ("conversations", TURNS)])
    pq.write_table(pa.Table.from_pylist(chats, schema=schema), d / "part-00001-7a1b.c000.snappy.parquet",
                   row_group_size=4, compression="zstd")
    (d / "_SUCCESS").write_text("")
    # the same alpaca records as JSON Lines: each gives the same sample as its Parquet row, so a duplicate
    twin = d / "twin.jsonl"
    twin.write_text("\n".join(json.dumps(r) for r in good) + "\n")
    damaged = d / "damaged.parquet"
    pq.write_table(pa.Table.from_pylist(alpaca_rows(30, start=1000)), damaged, row_group_size=10)
    corrupt_group(damaged, 1)

    # column chunks of several hundred kB: more than one read of Hadoop's stream (hadoopfs.PY4J_READ)
    rng = random.Random(7)
    long = [{"instruction": f"Repeat code {i}.", "output": "".join(rng.choices("0123456789abcdef", k=2000))}
            for i in range(200)]
    pq.write_table(pa.Table.from_pylist(long), d / "long.parquet", compression="none")

    files = stage.plan(given(reader, d))
    assert sorted((f.source, f.format, f.layout) for f in files) == [
        ("damaged", "alpaca", "parquet"), ("long", "alpaca", "parquet"),
        ("part-00000-7a1b.c000", "alpaca", "parquet"), ("part-00001-7a1b.c000", "sharegpt", "parquet"),
        ("twin", "alpaca", "lines")]
    c = stage.run(spark, store, config, given(reader, d)).counts
    # written above: 42 + 15 + 40 + (20 rows + 1 unreadable group) + 200 records; 2 bad rows and the group
    # quarantined
    assert c["records"] == 42 + 15 + 40 + 21 + 200 and c["quarantined"] == 3
    assert c["ingested"] == 40 + 15 + 20 + 200 and c["duplicate_in_batch"] == 40
    assert (c["source.part-00001-7a1b.c000.samples"], c["source.damaged.records"]) == (15, 21)
    q = sorted((r["source_file"], r["locator"], r["reason"]) for r in store.read("quarantine").collect())
    assert q == [("damaged.parquet", "row:11", "corrupt_parquet"),
                 ("part-00000-7a1b.c000.snappy.parquet", "row:21", "empty_content"),
                 ("part-00000-7a1b.c000.snappy.parquet", "row:22", "missing_field")]
    samples = store.read("samples")
    pq_ids = {r["sample_id"] for r in samples.filter("source = 'part-00000-7a1b.c000'").collect()}
    json_ids = {r["sample_id"] for r in samples.filter("source = 'twin'").collect()}
    # the first occurrence of each (source, file, position) kept the Parquet rows; their ids are the JSON's
    assert len(pq_ids) == 40 and not json_ids
    from instructlake.ingest.records import sample_id

    user = [r["instruction"] + (f"\n\n{r['input']}" if r["input"] else "") for r in good]
    assert pq_ids == {sample_id(None, [("user", u), ("assistant", r["output"])])
                      for u, r in zip(user, good, strict=True)}
    chat = samples.filter("source_id = 'c7'").first()
    assert [t["content"] for t in chat["conversation"]] == ["What is 7 squared?", "49."]

    again = stage.run(spark, store, config, given(reader, d)).counts  # idempotent
    assert again["ingested"] == 0 and again["quarantine_new"] == 0


def test_a_cut_parquet_file_is_named(spark, store, config, tmp_path, reader):  # noqa: F811
    whole = tmp_path / "w.parquet"
    pq.write_table(pa.Table.from_pylist(alpaca_rows(20)), whole)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole.read_bytes()[:-100])
    with pytest.raises(FileFormatError, match=r"cut\.parquet: not a readable Parquet file"):
        stage.run(spark, store, config, given(reader, whole, cut))
    assert not store.exists("samples") or store.count("samples") == 0  # nothing written
