"""The Delta store on real tables: MERGE, time travel, history, vacuum, and two writers racing."""

import threading

import pytest
from pyspark.sql.types import LongType, StringType, StructField, StructType

from instructlake.store import Store, TableNotFoundError

KV = StructType([StructField("k", LongType(), False), StructField("v", StringType(), True)])


def rows(spark, pairs):
    return spark.createDataFrame(pairs, KV)


def test_merge_inserts_new_keys_only_and_updates_when_asked(spark, store):
    r1 = store.merge("kv", rows(spark, [(1, "a"), (2, "b")]), keys=["k"], schema=KV)
    assert (r1.inserted, store.count("kv")) == (2, 2)
    r2 = store.merge("kv", rows(spark, [(2, "B"), (3, "c")]), keys=["k"], schema=KV)
    assert r2.inserted == 1
    assert {r["k"]: r["v"] for r in store.read("kv").collect()} == {1: "a", 2: "b", 3: "c"}
    r3 = store.merge("kv", rows(spark, [(2, "B")]), keys=["k"], update=True, schema=KV)
    assert (r3.inserted, r3.updated) == (0, 1)
    assert store.read("kv").filter("k = 2").first()["v"] == "B"


def test_duplicate_keys_in_one_write_are_inserted_once(spark, store):
    store.merge("kv", rows(spark, [(1, "a"), (1, "a"), (2, "b")]), keys=["k"], schema=KV)
    assert store.count("kv") == 2


def test_time_travel_history_and_append(spark, store):
    store.append("kv", rows(spark, [(1, "a")]), schema=KV)
    v0 = store.version("kv")
    store.append("kv", rows(spark, [(2, "b")]), schema=KV)
    assert store.count("kv") == 2
    assert store.read("kv", version=v0).count() == 1
    ts = store.history("kv").orderBy("version").collect()[-1]["timestamp"]
    assert store.read("kv", timestamp=str(ts)).count() == 2
    ops = [r["operation"] for r in store.history("kv").orderBy("version").collect()]
    assert ops[-2:] == ["WRITE", "WRITE"]
    assert store.tables() == ["kv"]


def test_vacuum_keeps_current_rows(spark, store):
    store.merge("kv", rows(spark, [(1, "a")]), keys=["k"], schema=KV)
    store.merge("kv", rows(spark, [(1, "z")]), keys=["k"], update=True, schema=KV)
    store.vacuum("kv", retain_hours=0)
    assert store.read("kv").first()["v"] == "z"
    with pytest.raises(Exception):  # noqa: B017 - the old files are gone
        store.read("kv", version=1).collect()


def test_missing_table_names_it(store):
    with pytest.raises(TableNotFoundError, match="no table 'nope'"):
        store.read("nope")


def test_two_writers_racing_on_one_table(spark, config):
    """Two MERGEs of overlapping keys at once: no lost rows, no duplicates, conflicts retried."""
    store = Store(spark, config.warehouse, retries=10)
    store.merge("kv", rows(spark, [(0, "seed")]), keys=["k"], schema=KV)
    errors = []

    def writer(offset):
        try:
            for i in range(4):
                base = offset + i * 50
                store.merge("kv", rows(spark, [(k, f"w{offset}") for k in range(base, base + 100)]), keys=["k"],
                            schema=KV)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(o,)) for o in (1, 26)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    df = store.read("kv")
    keys = [r["k"] for r in df.select("k").collect()]
    expected = {0} | {k for o in (1, 26) for i in range(4) for k in range(o + i * 50, o + i * 50 + 100)}
    assert len(keys) == len(set(keys))
    assert set(keys) == expected


def test_session_has_delta_and_reports_optional_packages(spark):
    from instructlake.jvm import local_jars
    from instructlake.spark import has_jvm_class

    assert has_jvm_class(spark, "io.delta.tables.DeltaTable")
    assert not has_jvm_class(spark, "org.example.NoSuchClass")
    # GraphFrames is usable exactly when setup could fetch its JARs
    assert has_jvm_class(spark, "org.graphframes.GraphFrame") == ("graphframes" in local_jars())
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert "DeltaSparkSessionExtension" in spark.conf.get("spark.sql.extensions")
