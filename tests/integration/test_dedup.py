"""Dedup end to end on small frames: clusters, keep rule, determinism, incremental refresh."""

import json
import random

import pyarrow as pa

from instructlake.config import load_config
from instructlake.dedup import clusters_driver
from instructlake.dedup import stage as dedup
from instructlake.ingest import stage as ingest

BASE = ("The quick brown fox jumps over the lazy dog near the river bank on a sunny afternoon in early "
        "spring while children play football in the park and their parents read newspapers on wooden benches "
        "under tall green trees that sway gently in the warm wind coming from the distant blue mountains")


def write(tmp_path, name, records):
    p = tmp_path / name
    p.write_text(json.dumps(records))
    return str(p)


def rec(instruction, output="A short answer that is the same for everyone here."):
    return {"instruction": instruction, "input": "", "output": output}


def clusters(store):
    return {r["sample_id"]: r for r in store.read("dedup_clusters").collect()}


def by_instruction(store):
    s = {r["sample_id"]: r["instruction"] for r in store.read("samples").collect()}
    return {s[k]: v for k, v in clusters(store).items()}


def test_exact_near_and_distinct(spark, store, config, tmp_path):
    records = [
        rec(BASE),
        rec(BASE.upper() + "!!"),  # exact after normalization
        rec(BASE + " today"),  # near: one word added
        rec("Write a haiku about autumn leaves falling slowly onto the cold quiet ground"),
        rec("Explain how photosynthesis works in plants, step by step, for a child"),
    ]
    ingest.run(spark, store, config, [write(tmp_path, "a.json", records)])
    r = dedup.run(spark, store, config)
    c = r.counts
    assert (c["input"], c["exact_duplicates"] + c["near_duplicates"], c["kept"], c["clusters"]) == (5, 2, 3, 1)
    assert c["exact_pairs"] == 1
    got = by_instruction(store)
    cluster = {got[BASE]["cluster_id"], got[BASE.upper() + "!!"]["cluster_id"], got[BASE + " today"]["cluster_id"]}
    assert len(cluster) == 1
    # equal responses, so the smallest sample_id among the three is kept
    members = {k: got[k] for k in (BASE, BASE.upper() + "!!", BASE + " today")}
    assert sum(m["is_kept"] for m in members.values()) == 1
    assert min(m["sample_id"] for m in members.values()) == next(m["sample_id"] for m in members.values() if m["is_kept"])
    assert all(m["cluster_size"] == 3 for m in members.values())
    near = got[BASE + " today"]
    if not near["is_kept"]:
        assert near["method"] == "near" and 0.8 <= near["similarity"] < 1.0
    twins = (members[BASE], members[BASE.upper() + "!!"])
    if near["is_kept"]:  # both twins removed: each has an exact twin in the cluster
        assert [t["method"] for t in twins] == ["exact", "exact"] and (c["exact_duplicates"], c["near_duplicates"]) == (2, 0)
    else:  # one twin kept: the other is exact, the extended text near
        assert sorted(m["method"] for m in members.values()) == ["exact", "near", "unique"]
        assert (c["exact_duplicates"], c["near_duplicates"]) == (1, 1)
    singles = [got[k] for k in got if k.startswith(("Write", "Explain"))]
    assert all(s["is_kept"] and s["method"] == "unique" and s["cluster_size"] == 1 for s in singles)


def test_keep_rule_source_priority_then_longest_response(spark, store, warehouse, tmp_path):
    cfg = load_config("local", ["platform.spark.shuffle_partitions=4", "dedup.source_priority=[gold]"],
                      warehouse=str(warehouse))
    ingest.run(spark, store, cfg, [write(tmp_path, "a.json", [rec(BASE, "short"), rec(BASE, "a much longer "
                                                                                            "answer")])],
               source="bulk")
    ingest.run(spark, store, cfg, [write(tmp_path, "b.json", [rec(BASE + ".", "tiny")])], source="gold")
    dedup.run(spark, store, cfg, engine="spark")
    s = {r["sample_id"]: (r["source"], r["conversation"][-1]["content"]) for r in store.read("samples").collect()}
    kept = [s[k] for k, v in clusters(store).items() if v["is_kept"]]
    assert kept == [("gold", "tiny")]
    # without the priority, the longest response wins
    cfg2 = load_config("local", ["platform.spark.shuffle_partitions=4"], warehouse=str(warehouse))
    dedup.run(spark, store, cfg2)
    kept = [s[k] for k, v in clusters(store).items() if v["is_kept"]]
    assert kept == [("bulk", "a much longer answer")]


def test_same_clusters_whatever_the_partition_count(spark, store, warehouse, tmp_path, samples_dir):
    cfg = load_config("local", ["platform.spark.shuffle_partitions=4"], warehouse=str(warehouse))
    ingest.run(spark, store, cfg, [str(samples_dir / "dummy_conversation.json"),
                                   str(samples_dir / "alpaca_en_demo.json")])
    dedup.run(spark, store, cfg)
    first = {k: (v["cluster_id"], v["is_kept"], v["method"]) for k, v in clusters(store).items()}
    spark.conf.set("spark.sql.shuffle.partitions", "11")
    try:
        # recompute everything
        store.overwrite("minhash_signatures", store.read("minhash_signatures").limit(0))
        r = dedup.run(spark, store, cfg)
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", "4")
    assert r.counts["signatures_computed"] == len(first)
    second = {k: (v["cluster_id"], v["is_kept"], v["method"]) for k, v in clusters(store).items()}
    assert first == second
    assert sum(1 for v in first.values() if not v[1]) > 20  # the dummy file repeats itself a lot


def test_refresh_hashes_only_new_samples_and_finds_near_duplicates_of_old(spark, store, config, tmp_path):
    # shuffles
    old = [rec(" ".join(random.Random(i).sample(BASE.split(), 50))) for i in range(5)] + [rec(BASE)]
    ingest.run(spark, store, config, [write(tmp_path, "old.json", old)])
    r1 = dedup.run(spark, store, config)
    assert r1.counts["signatures_computed"] == 6 and r1.counts["kept"] == 6
    new = [rec(BASE + " today")]
    ingest.run(spark, store, config, [write(tmp_path, "new.json", new)])
    r2 = dedup.run(spark, store, config)
    assert r2.counts["signatures_computed"] == 1 and r2.counts["input"] == 7
    got = by_instruction(store)
    a = got[BASE]
    b = got[BASE + " today"]
    assert a["cluster_id"] == b["cluster_id"] and a["is_kept"] != b["is_kept"]
    r3 = dedup.run(spark, store, config)
    assert r3.counts["signatures_computed"] == 0


def test_signatures_stored_as_int_arrays_are_rewritten_as_bytes_and_not_computed_again(spark, store, config,
                                                                                        tmp_path):
    """A minhash_signatures table an earlier version wrote (signature array<int>): dedup rewrites it as bytes
    with the same values, hashes nothing again, and finds the same clusters."""
    import numpy as np
    from pyspark.sql.types import ArrayType, BinaryType, IntegerType, StructField, StructType

    from instructlake import schemas

    texts = [rec(" ".join(random.Random(i).sample(BASE.split(), 40))) for i in range(6)]
    texts += [rec(BASE), rec("!!!", "???"), rec(BASE + " again")]  # the second normalizes to nothing
    ingest.run(spark, store, config, [write(tmp_path, "a.json", texts)])
    dedup.run(spark, store, config)
    first = clusters(store)
    stored = {r["sample_id"]: r.asDict() for r in store.read("minhash_signatures").collect()}
    assert any(r["signature"] is None for r in stored.values())  # the empty text has none
    old = StructType([StructField(f.name, ArrayType(IntegerType()), True) if f.name == "signature" else f
                      for f in schemas.MINHASH_SIGNATURES.fields])
    rows = [{**r, "signature": None if r["signature"] is None
             else np.frombuffer(r["signature"], "<i4").tolist()} for r in stored.values()]
    store.replace("minhash_signatures", spark.createDataFrame(rows, old))
    assert isinstance(store.read("minhash_signatures").schema["signature"].dataType, ArrayType)

    r = dedup.run(spark, store, config)
    assert r.counts["signatures_computed"] == 0
    assert isinstance(store.read("minhash_signatures").schema["signature"].dataType, BinaryType)
    assert {r["sample_id"]: r.asDict() for r in store.read("minhash_signatures").collect()} == stored
    assert clusters(store) == first


def test_templated_bucket_does_not_explode(spark, store, config, tmp_path):
    """2,000 samples sharing one long template: pairs stay linear (each linked to its bucket's root)."""
    records = [rec(f"Please answer this support ticket politely. {BASE} Ticket {i}.") for i in range(2000)]
    ingest.run(spark, store, config, [write(tmp_path, "t.json", records)])
    r = dedup.run(spark, store, config)
    assert r.counts["near_pairs"] <= 2000 * r.counts["bands"]
    assert r.counts["kept"] < 50


def test_driver_and_spark_banding_give_the_same_pairs_and_clusters(spark, store, warehouse, tmp_path, samples_dir):
    """Banding on the driver (numpy) and in Spark agree pair for pair, borderline checks and rounds included."""
    rng = random.Random(5)
    words = BASE.split()
    variants = []
    for i in range(120):  # graded edits around the threshold, so many pairs land in the exact-check margin
        w = list(words)
        for _ in range(rng.randrange(1, 9)):
            w[rng.randrange(len(w))] = rng.choice(("red", "blue", "small", "quiet", "old"))
        variants.append(rec(" ".join(w) + f" v{i % 7}"))
    cfg = load_config("local", ["platform.spark.shuffle_partitions=4", "dedup.link_rounds=2"], warehouse=str(warehouse))
    ingest.run(spark, store, cfg, [write(tmp_path, "v.json", variants), str(samples_dir / "dummy_conversation.json")])
    results = {}
    for lsh in ("spark", "driver"):
        r = dedup.run(spark, store, cfg, lsh=lsh)
        results[lsh] = (r.counts, {k: (v["cluster_id"], v["is_kept"], v["method"], round(v["similarity"], 9))
                                   for k, v in clusters(store).items()})
    (c_spark, spark_clusters), (c_driver, driver_clusters) = results["spark"], results["driver"]
    for key in ("near_pairs", "exact_checked_pairs", "kept", "clusters", "near_duplicates"):
        assert c_spark[key] == c_driver[key], key
    assert c_spark["exact_checked_pairs"] > 100 and c_spark["near_duplicates"] > 20
    assert spark_clusters == driver_clusters


def test_exact_checker_scans_the_texts_once_per_call_and_in_parts_when_told(spark, config):
    """The exact check of borderline pairs: every pair's n-gram Jaccard as the plain-Python reference
    computes it; one Spark job per call while the texts fit, one per part when they do not."""
    import numpy as np

    from instructlake.dedup.minhash import exact_jaccard, normalize

    rng = random.Random(7)
    words = BASE.split()
    texts = {f"s{i:03d}": " ".join(rng.sample(words, 24)) for i in range(40)}
    frame = spark.createDataFrame(sorted(texts.items()), "sample_id string, text string")
    src = np.array([f"s{rng.randrange(40):03d}" for _ in range(60)])
    dst = np.array([f"s{rng.randrange(40):03d}" for _ in range(60)])
    cfg = config.dedup
    norm = lambda t: normalize(pa.array([t]), cfg.strip_templates)[0].as_py()  # noqa: E731
    want = [exact_jaccard(norm(texts[a]), norm(texts[b]), cfg.ngram) for a, b in zip(src, dst, strict=True)]
    tracker = spark.sparkContext.statusTracker()
    for max_texts, parts in ((200_000, 1), (8, 15)):  # parts of 4 pairs: 15 parts of the 60 pairs
        group = f"exact-check-{max_texts}"
        spark.sparkContext.setJobGroup(group, group)
        try:
            got = clusters_driver.exact_checker(spark, frame, cfg, max_texts=max_texts)(src, dst)
        finally:
            spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
        assert np.allclose(got, want), max_texts
        # per part: the broadcast of the wanted ids, then the one scan of the texts
        assert len(tracker.getJobIdsForGroup(group)) == 2 * parts, max_texts


def test_a_sample_id_twice_in_samples_stops_dedup_before_it_writes(spark, store, config, tmp_path):
    """samples is keyed by sample_id (ingest MERGEs on it); a row appended around ingest repeats one.
    Dedup names it and writes no signature, where a MERGE with one row per id assumed would store two."""
    import pytest

    records = [rec(BASE), rec("Name three primary colours")]
    ingest.run(spark, store, config, [write(tmp_path, "a.json", records)])
    one = store.read("samples").limit(1)
    twice = one.first()["sample_id"]
    store.append("samples", one)
    for lsh in ("driver", "spark"):
        message = f"holds 1 sample_id.s. in more than one row .for example {twice}"
        with pytest.raises(RuntimeError, match=message):
            dedup.run(spark, store, config, lsh=lsh)
        assert store.count("minhash_signatures") == 0 and not store.exists("dedup_clusters")


def test_local_frame_sizes_partitions_by_cores_and_keeps_every_row(spark):
    import pandas as pd

    from instructlake.dedup.clusters_driver import local_frame

    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key, None)
    cores = spark.sparkContext.defaultParallelism
    pdf = pd.DataFrame({"k": range(50_000 * cores)})
    # data past this threshold (48 MB by default, as dedup's clusters of 500k samples are) is shipped as
    # one partition per Arrow batch; below it pyspark makes a local relation of it
    spark.conf.set("spark.sql.execution.arrow.localRelationThreshold", "0")
    try:
        df = local_frame(spark, pdf, "k long", per_core=2)
        assert df.rdd.getNumPartitions() == 2 * cores  # 25,000 rows each, not five partitions of 10,000
        assert sorted(r["k"] for r in df.collect()) == list(range(50_000 * cores))
        assert local_frame(spark, pdf, "k long", most_rows=10_000).rdd.getNumPartitions() == 5 * cores
    finally:
        spark.conf.unset("spark.sql.execution.arrow.localRelationThreshold")
    assert spark.conf.get(key, None) == before


def test_the_narrow_frame_matches_plain_python_for_every_turn_choice(spark):
    """match_text and response_chars against the same rules written in Python: turns joined by newlines,
    null contents left out, the system prompt first when asked, assistant characters summed (null when
    an assistant turn has no content)."""
    from pyspark.sql.types import StringType, StructField, StructType

    from instructlake import schemas
    from instructlake.config import DedupConfig

    def turn(role, content):
        return {"role": role, "content": content}

    rows = [("a", "sys", [turn("user", "q1"), turn("assistant", "answer one"), turn("user", "q2"),
                          turn("assistant", "two")]),
            ("b", None, [turn("assistant", "first"), turn("user", None), turn("user", "later")]),
            ("c", "", []),
            ("d", "s", [turn("tool", "t"), turn(None, "no role"), turn("assistant", None)]),
            ("e", None, [turn("user", "only")])]
    schema = StructType([StructField("sample_id", StringType()), StructField("source", StringType()),
                         StructField("system", StringType()),
                         StructField("conversation", schemas.SAMPLES["conversation"].dataType)])
    df = spark.createDataFrame([(i, "src", system, conv) for i, system, conv in rows], schema)

    def expected(system, conv, turns, include_system):
        chosen = [t for t in conv if turns == "all" or t["role"] == "user"]
        chosen = chosen[:1] if turns == "first_user" else chosen
        text = "\n".join(t["content"] for t in chosen if t["content"] is not None)
        return "\n".join(x for x in (system, text) if x is not None) if include_system else text

    for turns in ("all", "user", "first_user"):
        for include_system in (False, True):
            cfg = DedupConfig(turns=turns, include_system=include_system)
            got = {r["sample_id"]: (r["text"], r["response_chars"])
                   for r in dedup.narrow(df, cfg).collect()}
            for i, system, conv in rows:
                answers = [t["content"] for t in conv if t["role"] == "assistant"]
                chars = None if None in answers else sum(map(len, answers))
                assert got[i] == (expected(system, conv, turns, include_system), chars), (turns, i)
