"""Licenses from ingest to export: `ingest --license`, the platform map, synthesized samples carrying their
seeds' licenses and their models' terms, and `export --licenses` / `--commercial-only`. The expected
licenses of every row are written down from how the test built the pool, not read from the code."""

from __future__ import annotations

import json

from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.cli import main


def _records(prefix: str, n: int) -> list[dict]:
    return [
        {
            "instruction": f"{prefix} question number {i}: explain it.",
            "input": "",
            "output": f"{prefix} answer number {i}, explained.",
        }
        for i in range(n)
    ]


def _synth_rows(spark, parents: dict[str, tuple[str, str]]):
    """Samples as evolve and diagnose write them (source synth; meta seed_id and model), one per
    name -> (seed id, model)."""
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    rows = []
    for name, (seed, model) in parents.items():
        conv = [
            {"role": "user", "content": f"Evolved {name}?"},
            {"role": "assistant", "content": f"Yes, {name}."},
        ]
        rows.append(
            (
                name,
                "synth",
                name,
                conv,
                None,
                f"Evolved {name}?",
                2,
                None,
                20,
                {"seed_id": seed, "model": model},
                "synth",
                "synth",
                "x",
                now,
            )
        )
    return spark.createDataFrame(rows, schemas.SAMPLES)


def _exported(out) -> dict[str, dict]:
    return {
        r["id"]: r
        for p in (out / "sharegpt").glob("part-*.json")
        for r in map(json.loads, p.read_text().splitlines())
    }


def test_licenses_from_ingest_to_export(spark, store, warehouse, tmp_path, capsys):
    files = {}
    for name, n in (("alpaca", 3), ("cherry", 2), ("mystery", 2), ("stray", 1)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(_records(name, n)))
    settings = [
        "--set",
        "platform.licenses.sources={myst*: MIT}",
        "--set",
        "platform.licenses.models={m1: apache-2.0}",
    ]
    wh = ["--warehouse", str(warehouse), *settings]
    assert main([*wh, "ingest", str(files["alpaca"]), "--license", "Apache-2.0"]) == 0
    assert main([*wh, "ingest", str(files["cherry"]), "--license", "cc-by-nc-4.0"]) == 0
    assert main([*wh, "ingest", str(files["mystery"]), str(files["stray"])]) == 0
    ids = {
        r["instruction"].split(" ")[0]: r["sample_id"]
        for r in store.read("samples").collect()
        if r["instruction"].endswith("number 0: explain it.")
    }
    # s1 evolves an alpaca sample with m1, s2 evolves s1 with m2 (no terms in the map), s3 a cherry sample,
    # s4 is a diagnosis set's targeted sample, s5 names a seed that is not in the pool
    store.merge(
        "samples",
        _synth_rows(
            spark,
            {
                "s1": (ids["alpaca"], "m1"),
                "s2": ("s1", "m2"),
                "s3": (ids["cherry"], "m1"),
                "s4": ("diagnosis:mt#1:3", "m1"),
                "s5": ("gone", "m1"),
            },
        ),
    )
    want = {
        "s1": (["apache-2.0"], ["apache-2.0"]),
        "s2": (["apache-2.0"], ["apache-2.0", "unknown"]),
        "s3": (["cc-by-nc-4.0"], ["apache-2.0"]),
        "s4": (["unknown"], ["apache-2.0"]),
        "s5": (["unknown"], ["apache-2.0"]),
    }
    for r in store.read("samples").filter("source != 'synth'").collect():
        lic = {"alpaca": "apache-2.0", "cherry": "cc-by-nc-4.0", "mystery": "mit", "stray": "unknown"}[
            r["source"]
        ]
        want[r["sample_id"]] = ([lic], [])
    assert len(want) == 8 + 5

    out = tmp_path / "all"
    assert main([*wh, "export", "--out", str(out), "--allow-unchecked"]) == 0
    rows = _exported(out)
    assert {k: (v["licenses"], v.get("model_terms", [])) for k, v in rows.items()} == want
    manifest = json.loads((out / "manifest.json").read_text())
    per = {}
    for lic, _ in want.values():
        per["+".join(lic)] = per.get("+".join(lic), 0) + 1
    assert manifest["licenses"]["rows_per_license"] == per and manifest["licenses"]["dropped"] == 0
    card = (out / "README.md").read_text()
    assert "license: other" in card and "| cc-by-nc-4.0 | 3 |" in card
    parquet = spark.read.parquet(str(out / "parquet"))
    assert {r["sample_id"]: r["licenses"] for r in parquet.collect()} == {k: v[0] for k, v in want.items()}

    def only(allowed_ids: set[str]) -> set[str]:
        return {
            k for k, (lic, terms) in want.items() if set(lic) <= allowed_ids and set(terms) <= allowed_ids
        }

    out2 = tmp_path / "apache-mit"
    assert (
        main([*wh, "export", "--out", str(out2), "--allow-unchecked", "--licenses", "apache-2.0, MIT"]) == 0
    )
    assert set(_exported(out2)) == only({"apache-2.0", "mit"})
    assert (
        f"{len(want) - len(only({'apache-2.0', 'mit'}))} left out for their licenses"
        in capsys.readouterr().out
    )
    m2 = json.loads((out2 / "manifest.json").read_text())["licenses"]
    assert m2["asked"] == {"licenses": ["apache-2.0", "mit"], "commercial_only": False}

    out3 = tmp_path / "commercial"
    assert main([*wh, "export", "--out", str(out3), "--allow-unchecked", "--commercial-only"]) == 0
    commercial = only({"apache-2.0", "mit", "cc-by-4.0"})
    assert set(_exported(out3)) == commercial and all(
        "nc" not in r["licenses"][0] for r in _exported(out3).values()
    )
    assert json.loads((out3 / "manifest.json").read_text())["licenses"]["dropped"] == len(want) - len(
        commercial
    )

    # one license for every row: the card's header names it
    out4 = tmp_path / "cherry-only"
    assert main([*wh, "export", "--out", str(out4), "--allow-unchecked", "--licenses", "cc-by-nc-4.0"]) == 0
    assert (
        set(_exported(out4)) == only({"cc-by-nc-4.0"})
        and "license: cc-by-nc-4.0" in (out4 / "README.md").read_text()
    )
    # the report: each source's license and where it came from
    from instructlake.config import load_config
    from instructlake.report import html

    cfg = load_config("local", ["platform.licenses.sources={myst*: MIT}"], warehouse=str(warehouse))
    page = open(html.build(store, cfg), encoding="utf-8").read()
    section = page[page.index('id="licenses"') :]
    assert "<td>cherry</td><td>cc-by-nc-4.0</td><td>ingest --license</td>" in section
    assert "<td>mystery</td><td>mit</td>" in section and "<td>stray</td><td>unknown</td>" in section
    # a license given again at ingest replaces the recorded one
    assert main([*wh, "ingest", str(files["cherry"]), "--license", "cc-by-4.0"]) == 0
    assert {r["source"]: r["license"] for r in store.read("sources").collect()} == {
        "alpaca": "apache-2.0",
        "cherry": "cc-by-4.0",
    }
    assert store.read("samples").filter(F.col("source") == "cherry").count() == 2
