"""Tag co-occurrence on small tag sets with known answers, the graph stage end to end, and the report."""

from __future__ import annotations

import json
import math

from instructlake.graph import cooccur


def tagged(spark, rows):
    return spark.createDataFrame([(f"s{i}", tags) for i, tags in enumerate(rows)], "sample_id string, tags "
                                                                                   "array<string>")


def test_edges_weights_pmi_degrees_and_components(spark):
    df = tagged(spark, [["a", "b", "c"], ["b", "a"], ["d"], ["e", "f"]])
    edges, freq = cooccur.pair_edges(df, max_tags=12)
    got = {(r["tag_a"], r["tag_b"]): (r["weight"], r["pmi"]) for r in edges.collect()}
    assert set(got) == {("a", "b"), ("a", "c"), ("b", "c"), ("e", "f")}
    assert got[("a", "b")][0] == 2 and math.isclose(got[("a", "b")][1], math.log(2 * 4 / (2 * 2)))
    assert got[("e", "f")][0] == 1 and math.isclose(got[("e", "f")][1], math.log(1 * 4 / (1 * 1)))
    deg = {r["tag"]: r for r in cooccur.degrees(spark, edges, freq).collect()}
    assert {t: r["degree"] for t, r in deg.items()} == {"a": 2, "b": 2, "c": 2, "d": 0, "e": 1, "f": 1}
    assert deg["a"]["weighted_degree"] == 3 and deg["c"]["weighted_degree"] == 2
    assert {t: r["component"] for t, r in deg.items()} == {"a": "a", "b": "a", "c": "a", "d": "d", "e": "e", "f": "e"}
    for engine in ("spark", "driver"):  # both component engines agree
        again = {r["tag"]: r["component"] for r in cooccur.degrees(spark, edges, freq, engine).collect()}
        assert again == {t: r["component"] for t, r in deg.items()}


def test_a_sample_with_many_tags_is_capped_not_quadratic(spark):
    many = [f"t{i:02d}" for i in range(40)]
    df = tagged(spark, [many, ["t00", "t01"]])
    edges, _ = cooccur.pair_edges(df, max_tags=12)
    assert edges.count() == 12 * 11 // 2  # the first 12 tags by rank, not 40 * 39 / 2
    c = cooccur.cap_counts(df, 12)
    assert c == {"capped_samples": 1, "capped_pairs_dropped": 40 * 39 // 2 - 66, "max_tags_seen": 40}


def test_graph_stage_and_report_end_to_end(spark, warehouse, tmp_path, capsys):
    from instructlake.cli import main

    # a hub-and-spoke pool: tag k of 40 co-occurs with the hubs and with a few other tags, so degrees spread
    records = []
    for i in range(400):
        a, b = i % 40, (i * 7 + 3) % 40
        tags = [f"skill {min(a, b) % 5}", f"skill {a}", f"skill {b}"]
        records.append({"instruction": f"Task {i} [[tags: {' | '.join(tags)}]]", "input": "", "output": f"a{i}"})
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(records))
    wh = ["--warehouse", str(warehouse), "--set", "tagging.llm.backend=scripted",
          "--set", "tagging.llm.model=instructlake.llm.scripted:declared_tags", "--set", "normalize_tags.min_freq=1",
          # distinct "skill N" tags must stay distinct: no synonym merging, no clustering
          "--set", "normalize_tags.merge_threshold=1.0", "--set", "normalize_tags.dbscan_eps=0.0001"]
    assert main(wh + ["graph"]) == 2 and "run `instructlake tag` first" in capsys.readouterr().err
    assert main(wh + ["ingest", str(pool), "--source", "t"]) == 0
    assert main(wh + ["tag"]) == 0
    assert main(wh + ["normalize-tags"]) == 0  # canonical tags and categories for the graph
    assert main(wh + ["graph"]) == 0
    out = capsys.readouterr().out
    assert "40 tags" in out and "degree: gamma" in out, out
    deg = {r["tag"]: r for r in spark.read.format("delta").load(str(warehouse / "tag_degrees")).collect()}
    expected: dict[str, set] = {}
    for i in range(400):
        a, b = i % 40, (i * 7 + 3) % 40
        ts = {f"skill {min(a, b) % 5}", f"skill {a}", f"skill {b}"}
        for t in ts:
            expected.setdefault(t, set()).update(ts - {t})
    assert {t: r["degree"] for t, r in deg.items()} == {t: len(n) for t, n in expected.items()}
    assert deg["skill 0"]["degree"] > deg["skill 39"]["degree"]  # a hub
    comp: dict[str, str] = {}
    for start in sorted(expected):  # components by search; each labelled by its smallest tag
        if start in comp:
            continue
        todo, seen = [start], {start}
        while todo:
            for nb in expected[todo.pop()] - seen:
                seen.add(nb)
                todo.append(nb)
        for t in seen:
            comp[t] = min(seen)
    assert {t: r["component"] for t, r in deg.items()} == comp
    fits = {r["target"]: r for r in spark.read.format("delta").load(str(warehouse / "powerlaw_fit")).collect()}
    assert set(fits) == {"degree", "tag_frequency"} and fits["degree"]["gamma"] > 1
    assert main(wh + ["report"]) == 0
    page = (warehouse / "report" / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 4
    for stage in ("ingest", "tagging", "graph"):
        assert f"<td>{stage}</td>" in page
    assert "Most connected tags" in page and not list((warehouse / "report").glob(".*.crc"))
