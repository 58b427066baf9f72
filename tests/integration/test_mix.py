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
    wh = ["--warehouse", str(warehouse)]
    for name, n in (("big", 40), ("mid", 10), ("tail", 3)):
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps([{"instruction": f"{name} task {i}: do it well.", "input": "",
                                  "output": f"Done {name} {i}."} for i in range(n)]))
        assert main([*wh, "ingest", str(f)]) == 0
    mix = tmp_path / "mix.yaml"
    mix.write_text("by: source\nweights: {big: 3, mid: 1}\nmin_per_group: 3\n")

    def export(name: str, *args: str, settings: tuple[str, ...] = (), code: int = 0):
        out = tmp_path / name
        assert main([*wh, *settings, "export", "--out", str(out), "--allow-unchecked", *args]) == code
        return out

    budget = ("--mix", str(mix), "--max-samples", "20")
    # by hand: every source gets its minimum 3 (tail has only 3), the other 11 go 3:1 to big and mid
    # (8.25 and 2.75: 8 and 2, and the last row to the largest remainder, big): 12, 5, 3
    out = export("a", *budget)
    assert "mixed to a budget: 33 rows not drawn; drawn per group: big 12, mid 5, tail 3" in \
        capsys.readouterr().out
    drawn = _ids(out)
    assert {k: len(v) for k, v in drawn.items()} == {"big": 12, "mid": 5, "tail": 3}
    manifest = json.loads((out / "manifest.json").read_text())["mix"]
    assert manifest["available"] == {"big": 40, "mid": 10, "tail": 3} and manifest["dropped"] == 33
    assert manifest["asked"]["weights"] == {"big": 3.0, "mid": 1.0} and manifest["asked"]["max_samples"] == 20
    card = (out / "README.md").read_text()
    assert "## Mix" in card and "| big | 40 | 12 |" in card and "| tail | 3 | 3 |" in card
    # the report's export section, from the export's run record
    assert main([*wh, "report"]) == 0
    page = (warehouse / "report" / "index.html").read_text(encoding="utf-8")
    assert "<h3>Mix drawn (budget 20 rows)</h3>" in page
    assert '<tr><td>big</td><td class="num">40</td><td class="num">12</td><td>30%</td></tr>' in page
    assert '<tr><td>tail</td><td class="num">3</td><td class="num">3</td><td>100%</td></tr>' in page
    assert '<tr><td>not drawn by the mix</td><td class="num">33</td></tr>' in page
    assert '<tr><td>unknown</td><td class="num">20</td></tr>' in page  # no --license at ingest

    # the same config draws the same rows; another seed other rows in the same numbers
    assert _ids(export("b", *budget)) == drawn
    other = _ids(export("c", *budget, settings=("--set", "export.mix.seed=7")))
    assert {k: len(v) for k, v in other.items()} == {"big": 12, "mid": 5, "tail": 3}
    assert other["big"] != drawn["big"]

    # by category on a pool nobody tagged: one group, uncategorized
    cat = export("d", "--max-samples", "7")
    assert json.loads((cat / "manifest.json").read_text())["mix"]["drawn"] == {"uncategorized": 7}

    bad = tmp_path / "bad.yaml"
    bad.write_text("by: source\nweight: {big: 1}\n")
    capsys.readouterr()
    export("e", "--mix", str(bad), code=2)
    assert "--mix " + str(bad) + ": unknown key(s) ['weight']" in capsys.readouterr().err
