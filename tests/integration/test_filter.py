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
