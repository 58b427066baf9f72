"""Budgeted mixing through `instructlake export`: the rows per group are the ones worked out by hand from
the pool the test wrote, the draw is the same under the same config, and a bad --mix file is refused."""

from __future__ import annotations

import json

from instructlake.cli import main


def _ids(out) -> dict[str, set[str]]:
    by: dict[str, set[str]] = {}
    for p in (out / "sharegpt").glob("part-*.json"):
        for r in map(json.loads, p.read_text().splitlines()):
            by.setdefault(r["source"], set()).add(r["id"])
    return by


def test_export_draws_a_budget_per_source(spark, store, warehouse, tmp_path, capsys):
    for name, n in (("big", 40), ("mid", 10), ("tail", 3)):
        f = tmp_path / f"{name}.json"
        f.write_text(
            json.dumps(
                [
                    {
                        "instruction": f"{name} task {i}: do it well.",
                        "input": "",
                        "output": f"Done {name} {i}.",
                    }
                    for i in range(n)
                ]
            )
        )
        assert main(["--warehouse", str(warehouse), "ingest", str(f)]) == 0
    mix = tmp_path / "mix.yaml"
    mix.write_text("by: source\nweights: {big: 3, mid: 1}\nmin_per_group: 3\n")
    wh = ["--warehouse", str(warehouse)]
    # by hand: every source gets its minimum 3 (tail has only 3), the other 11 go 3:1 to big and mid
    # (8.25 and 2.75: 8 and 2, and the last row to the largest remainder, big): 12, 5, 3
    out = tmp_path / "a"
    assert (
        main(
            [*wh, "export", "--out", str(out), "--allow-unchecked", "--mix", str(mix), "--max-samples", "20"]
        )
        == 0
    )
    assert (
        "mixed to a budget: 33 rows not drawn; drawn per group: big 12, mid 5, tail 3"
        in capsys.readouterr().out
    )
    drawn = _ids(out)
    assert {k: len(v) for k, v in drawn.items()} == {"big": 12, "mid": 5, "tail": 3}
    manifest = json.loads((out / "manifest.json").read_text())["mix"]
    assert manifest["available"] == {"big": 40, "mid": 10, "tail": 3} and manifest["dropped"] == 33
    assert manifest["asked"]["weights"] == {"big": 3.0, "mid": 1.0} and manifest["asked"]["max_samples"] == 20
    card = (out / "README.md").read_text()
    assert "## Mix" in card and "| big | 40 | 12 |" in card and "| tail | 3 | 3 |" in card

    # the same config draws the same rows; another seed other rows in the same numbers
    again = tmp_path / "b"
    assert (
        main(
            [
                *wh,
                "export",
                "--out",
                str(again),
                "--allow-unchecked",
                "--mix",
                str(mix),
                "--max-samples",
                "20",
            ]
        )
        == 0
    )
    assert _ids(again) == drawn
    other = tmp_path / "c"
    assert (
        main(
            [
                *wh,
                "--set",
                "export.mix.seed=7",
                "export",
                "--out",
                str(other),
                "--allow-unchecked",
                "--mix",
                str(mix),
                "--max-samples",
                "20",
            ]
        )
        == 0
    )
    assert {k: len(v) for k, v in _ids(other).items()} == {"big": 12, "mid": 5, "tail": 3}
    assert _ids(other)["big"] != drawn["big"]

    # by category on a pool nobody tagged: one group, uncategorized
    cat = tmp_path / "d"
    assert main([*wh, "export", "--out", str(cat), "--allow-unchecked", "--max-samples", "7"]) == 0
    assert json.loads((cat / "manifest.json").read_text())["mix"]["drawn"] == {"uncategorized": 7}

    bad = tmp_path / "bad.yaml"
    bad.write_text("by: source\nweight: {big: 1}\n")
    capsys.readouterr()
    assert main([*wh, "export", "--out", str(tmp_path / "e"), "--allow-unchecked", "--mix", str(bad)]) == 2
    assert "--mix " + str(bad) + ": unknown key(s) ['weight']" in capsys.readouterr().err
