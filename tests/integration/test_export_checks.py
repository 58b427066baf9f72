"""Export's checks counted in one pass (export/checks.py) against a plain-Python reference that applies
them one after another, as export did before: random samples and random rows in each check's table (several
rows per sample, rows under other config hashes, samples a table has no row for), generated here, so the
expected counts and kept ids come from the generator and not from the code under test."""

from __future__ import annotations

import random

import pytest
from pyspark.sql import types as T

from instructlake.export import checks

DEDUP, QUALITY, DECONTAM = "d-now", "q-now", "c-now"
TURN = T.StructType([T.StructField("role", T.StringType()), T.StructField("content", T.StringType())])
SAMPLES = T.StructType([T.StructField("sample_id", T.StringType()), T.StructField("source", T.StringType()),
                        T.StructField("conversation", T.ArrayType(TURN)),
                        T.StructField("system", T.StringType())])


def generate(seed: int, n: int = 300) -> dict:
    rnd = random.Random(seed)
    ids = [f"s{i:04d}" for i in range(n)]
    some = lambda p: [i for i in ids if rnd.random() < p]  # noqa: E731
    return {
        "samples": [(i, "src", [("user", "q")] + [("assistant", "a")] * rnd.choice([0, 1, 1, 2]), None)
                    for i in ids],
        "dedup": [(i, rnd.choice([DEDUP, DEDUP, "d-old"]), rnd.choice(["exact", "minhash", "semantic"]),
                   rnd.random() < 0.8) for i in some(0.9) for _ in range(rnd.choice([1, 1, 2]))],
        "quality": [(i, rnd.choice([QUALITY, "q-old"]), rnd.random() < 0.85) for i in some(0.9)],
        "decontam": [(i, rnd.choice([DECONTAM, DECONTAM, "c-old"]), rnd.random() < 0.1)
                     for i in some(0.9) for _ in range(rnd.choice([1, 2]))],
        "pii": [(i, rnd.choice([0, 0, 0, 2]), {"EMAIL": 1}) for i in some(0.9)],
    }


def reference(g: dict, min_turns: int, quality_on: bool, scrub_on: bool) -> tuple[dict, set]:
    """The checks one after another on sets of ids, each over what the one before kept."""
    ids = {s[0] for s in g["samples"] if sum(r == "assistant" for r, _ in s[2]) >= min_turns}
    current = [r for r in g["dedup"] if r[1] == DEDUP or r[2] == "semantic"]
    dropped = {r[0] for r in current if not r[3]}
    n = {"samples": len(g["samples"]), "duplicates_dropped": len(ids & dropped)}
    ids -= dropped
    n["not_deduplicated"] = len(ids - {r[0] for r in current})
    failed = {r[0] for r in g["quality"] if not r[2]}
    n["filtered_dropped"] = len(ids & failed)
    ids -= failed
    n["not_filtered"] = len(ids - {r[0] for r in g["quality"] if r[1] == QUALITY}) if quality_on else 0
    flagged = {r[0] for r in g["decontam"] if r[1] == DECONTAM and r[2]}
    n["contaminated_dropped"] = len(ids & flagged)
    ids -= flagged
    unchecked = ids - {r[0] for r in g["decontam"] if r[1] == DECONTAM}
    earlier = unchecked & {r[0] for r in g["decontam"] if r[2]}
    n["not_decontaminated"], n["flagged_earlier_dropped"] = len(unchecked), len(earlier)
    ids -= earlier
    n["not_scrubbed"] = len(ids - {r[0] for r in g["pii"]}) if scrub_on else 0
    n["scrubbed"] = len(ids & {r[0] for r in g["pii"] if r[1] > 0}) if scrub_on else 0
    n["kept"] = len(ids)
    return n, ids


def frames(spark, g: dict, scrub_on: bool) -> tuple:
    samples = spark.createDataFrame(g["samples"], SAMPLES)
    dedup = spark.createDataFrame(g["dedup"], "sample_id string, config_hash string, method string, "
                                              "is_kept boolean")
    quality = spark.createDataFrame(g["quality"], "sample_id string, config_hash string, passed boolean")
    decontam = spark.createDataFrame(g["decontam"], "sample_id string, config_hash string, flagged boolean")
    pii = spark.createDataFrame(g["pii"], "sample_id string, found int, counts map<string,int>")
    flags = [checks.Flags(checks.dedup_verdicts(dedup, DEDUP)),
             checks.Flags(checks.quality_verdicts(quality, QUALITY)),
             checks.Flags(checks.decontam_verdicts(decontam, DECONTAM)),
             checks.Flags(checks.scrub_verdicts(pii) if scrub_on else None)]
    return samples, flags, pii.filter("found > 0")


@pytest.mark.parametrize("seed,min_turns,quality_on,scrub_on", [(1, 1, True, True), (2, 2, False, True),
                                                                 (3, 1, True, False), (4, 0, True, True)])
def test_counts_and_kept_ids_match_the_checks_applied_one_by_one(spark, seed, min_turns, quality_on,
                                                                 scrub_on):
    g = generate(seed)
    want, want_ids = reference(g, min_turns, quality_on, scrub_on)
    samples, flags, hits = frames(spark, g, scrub_on)
    v = checks.verdicts(samples, min_turns, flags)
    assert checks.tally(v, quality_on, scrub_on) == want
    assert {r[0] for r in v.filter("_kept").select("sample_id").collect()} == want_ids
    # every kind of verdict occurs, so each count above was put to the test
    assert all(want[k] for k in ("duplicates_dropped", "not_deduplicated", "filtered_dropped",
                                 "contaminated_dropped", "not_decontaminated", "flagged_earlier_dropped"))
    if scrub_on:
        kept = v.filter("_kept").select("sample_id")
        assert checks.scrubbed_values(hits, kept) == {"EMAIL": want["scrubbed"]}


def test_no_tables_means_nothing_is_checked(spark):
    g = generate(5, n=40)
    samples, _, _ = frames(spark, g, True)
    v = checks.verdicts(samples, 1, [checks.Flags(None)] * 4)
    n = checks.tally(v, True, True)
    shaped = sum(sum(r == "assistant" for r, _ in s[2]) >= 1 for s in g["samples"])
    assert n["kept"] == shaped and n["not_deduplicated"] == n["not_filtered"] == shaped
    assert n["not_decontaminated"] == n["not_scrubbed"] == shaped
    assert n["duplicates_dropped"] == n["filtered_dropped"] == n["contaminated_dropped"] == 0
