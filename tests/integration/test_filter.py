"""The filter stage on a pool whose every sample was written to have one known defect, or none: each
sample's reasons are the ones planted, counted from the generator's own list, and a re-run judges nothing."""

from __future__ import annotations

import json

from instructlake.cli import main
from instructlake.ingest import stage as ingest

CLEAN = ("The water cycle moves water between the oceans, the air and the land. Heat from the sun evaporates "
         "water from seas and lakes, and the vapour cools into clouds. Rain and snow bring it back down.")
LOOP = "\n".join(["Step one is to open the box and take out the parts carefully."] * 10)
CASES = {  # instruction -> (answer, the criteria it must fail under the test's config)
    "Explain the water cycle.": (CLEAN, set()),
    "Describe how rain forms over the sea.": (CLEAN.replace("oceans", "seas"), set()),
    "Tell me a joke about death.": ("As an AI language model, I cannot make jokes about that topic.",
                                    {"refusal"}),
    "List the assembly steps.": (LOOP, {"repetition"}),
    "Write a function that adds two numbers.": ("Here it is:\n```python\ndef add(a, b):\n    return a + b",
                                                {"truncated"}),
    "Describe a French dessert.": ("The caf\u00c3\u00a9 serves cr\u00c3\u00a8me br\u00c3\u00bbl\u00c3\u00a9e "
                                   "with a thin layer of hard caramel on top.", {"mojibake"}),
    "D\u00e9cris le cycle de l'eau en deux phrases.": (
        "L'eau s'\u00e9vapore des oc\u00e9ans sous l'effet du soleil, puis elle se condense en nuages. "
        "Elle retombe ensuite en pluie ou en neige sur la terre.", {"language"}),
    "Is the sky blue?": ("Yes.", {"length"}),
}


def test_filter_finds_each_planted_defect_and_a_rerun_judges_nothing(spark, store, config, warehouse,
                                                                   tmp_path, capsys, monkeypatch):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps([{"instruction": k, "input": "", "output": a} for k, (a, _) in CASES.items()]))
    ingest.run(spark, store, config, [str(pool)], source="planted")
    wh = ["--warehouse", str(warehouse), "--set", "filter.keep_languages=[en]",
          "--set", "filter.min_response_chars=20"]
    assert main([*wh, "filter"]) == 0
    out = capsys.readouterr().out
    want_filtered = sum(bool(f) for _, f in CASES.values())
    assert f"{len(CASES)} of {len(CASES)} samples judged: {len(CASES) - want_filtered} passed, " \
           f"{want_filtered} filtered" in out, out

    samples = {r["sample_id"]: r["instruction"] for r in store.read("samples").collect()}
    got = {samples[r["sample_id"]]: r for r in store.read("quality").collect()}
    assert set(got) == set(CASES)
    for instruction, (_, failing) in CASES.items():
        row = got[instruction]
        kinds = {x.split(":")[0] for x in row["reasons"]}
        assert kinds == failing, (instruction, row["reasons"])
        assert row["passed"] == (not failing)
        assert row["signals"]["response_chars"] == len(CASES[instruction][0])
    assert got["D\u00e9cris le cycle de l'eau en deux phrases."]["lang"] == "fr"
    assert got["Explain the water cycle."]["lang"] == "en"
    assert got["Explain the water cycle."]["turn_langs"] == ["en", "en"]
    run = store.read("runs").filter("stage = 'filter'").first()
    assert run["counts"]["filtered"] == want_filtered and run["counts"]["reason.refusal"] == 1
    assert {r["config_hash"] for r in got.values()} == {run["config_hash"]}

    # nothing new to judge under the same config; another config judges every sample again
    assert main([*wh, "filter"]) == 0
    assert f"0 of {len(CASES)} samples judged" in capsys.readouterr().out
    from instructlake.quality import signals

    monkeypatch.setattr(signals, "VERSION", signals.VERSION + "-changed")  # changed rules: judged again
    assert main([*wh, "filter"]) == 0
    assert f"{len(CASES)} of {len(CASES)} samples judged" in capsys.readouterr().out
    monkeypatch.undo()
    assert main(["--warehouse", str(warehouse), "filter"]) == 0  # every language kept, length bound 1
    assert f"{len(CASES)} of {len(CASES)} samples judged: {len(CASES) - want_filtered + 2} passed" in \
        capsys.readouterr().out


def test_later_stages_and_export_leave_out_what_the_filter_failed(spark, store, warehouse, tmp_path):
    from dataclasses import replace

    import pytest

    from instructlake.config import load_config
    from instructlake.dedup import stage as dedup
    from instructlake.export import stage as export
    from instructlake.pool import without_removed
    from instructlake.quality import stage as quality
    from instructlake.runs import StaleInputError
    from tests.conftest import TEST_SETTINGS

    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps([{"instruction": k, "input": "", "output": a} for k, (a, _) in CASES.items()]))
    cfg = load_config("local", [*TEST_SETTINGS, "filter.keep_languages=[en]", "filter.min_response_chars=20"],
                      warehouse=str(warehouse))
    ingest.run(spark, store, cfg, [str(pool)], source="planted")
    dedup.run(spark, store, cfg)
    quality.run(spark, store, cfg)
    clean = {k for k, (_, failing) in CASES.items() if not failing}
    instruction = {r["sample_id"]: r["instruction"] for r in store.read("samples").collect()}
    pooled = without_removed(store, store.read("samples")).collect()
    assert {r["instruction"] for r in pooled} == clean  # what tag, score, decontam and the rest read

    out = tmp_path / "export"
    r = export.run(spark, store, cfg, str(out), allow_unchecked=True)  # decontam is not this test's
    assert (r.counts["exported"], r.counts["filtered_dropped"], r.counts["not_filtered"]) == (
        len(clean), len(CASES) - len(clean), 0)
    shipped = {json.loads(x)["id"] for p in (out / "sharegpt").glob("part-*.json")
               for x in p.read_text().splitlines()}
    assert {instruction[i] for i in shipped} == clean
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["quality_filter"] == {"enabled": True, "filtered_dropped": len(CASES) - len(clean)}
    card = (out / "README.md").read_text()
    assert f"| failed the quality filter | {len(CASES) - len(clean)} |" in card and "| en | 2 |" in card
    assert manifest["config_hashes"]["filter"] == quality.filter_hash(cfg)

    # another filter config: the passed samples have no verdict under it, and export stops, naming the stage
    changed = replace(cfg, semantic=replace(cfg.semantic, filter=replace(cfg.filter, min_response_chars=5)))
    with pytest.raises(StaleInputError, match=f"{len(clean)} samples have not been through the quality filter"
                                              ".*instructlake filter"):
        export.run(spark, store, changed, str(tmp_path / "export2"))
    # judged again under it: one verdict per sample, replaced ("Yes." is 4 characters: still too short)
    assert quality.run(spark, store, changed).counts["input"] == len(CASES)
    assert store.count("quality") == len(CASES)
    assert quality.run(spark, store, changed).counts["input"] == 0  # the new verdicts replaced the old
    assert {r["config_hash"] for r in store.read("quality").collect()} == {quality.filter_hash(changed)}
    r2 = export.run(spark, store, changed, str(tmp_path / "export2"), allow_unchecked=True)
    assert r2.counts["not_filtered"] == 0
    assert {r["instruction"] for r in without_removed(store, store.read("samples")).collect()} == clean
    # the filter off: export does not ask for verdicts, and those given still keep their samples out
    off = replace(cfg, semantic=replace(cfg.semantic, filter=replace(cfg.filter, enabled=False)))
    r3 = export.run(spark, store, off, str(tmp_path / "export3"), allow_unchecked=True)
    assert (r3.counts["exported"], r3.counts["not_filtered"]) == (len(clean), 0)
    manifest = json.loads((tmp_path / "export3" / "manifest.json").read_text())
    assert manifest["quality_filter"]["enabled"] is False
    # the report shows the verdicts: each criterion with its count, and examples
    from instructlake.report import html

    page = open(html.build(store), encoding="utf-8").read()
    section = page[page.index('id="quality-filter"'):]
    assert f"{len(clean)} of {len(CASES)} judged samples passed" in section
    for _, failing in CASES.values():
        for criterion in failing:
            assert f"<td>{criterion}</td>" in section, criterion
    assert "Tell me a joke about death." in section
