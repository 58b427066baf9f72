"""The scrub stage and export on a pool whose PII the test planted itself: the counts by kind are the
generator's, no planted value reaches any exported file (turns, system prompts, the parquet instruction),
text without PII goes out unchanged, and export fails closed on samples scrub has not checked."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from instructlake.cli import main
from instructlake.ingest import stage as ingest

# (system prompt, user turn, answer, {kind: values planted}); the values are random and nobody's
PLANTED = [
    ("You are a helpful assistant.", "Email lena.kowalski@proton.me the minutes, please.",
     "Done: I sent the minutes to lena.kowalski@proton.me and copied the team.", {"EMAIL": 2}),
    ("Support bot for ACME. Escalations: +1 415 867 5309.", "My card 4539 1488 0343 6467 was charged twice.",
     "I am sorry. I have flagged the charge on the card ending 6467 for a refund.",
     {"PHONE": 1, "CREDIT_CARD": 1}),
    (None, "Why does my script fail?\n```python\nclient = Client(api_key=\"sk-proj-"
     "Zx81kQ0pLm2Ww9Rt5Yu7Io3Pa1Sd4Fg6Hj8Kl0Zx2Cv4Bn6Mq8Wr\")\n```",
     "Never paste keys: rotate sk-proj-Zx81kQ0pLm2Ww9Rt5Yu7Io3Pa1Sd4Fg6Hj8Kl0Zx2Cv4Bn6Mq8Wr now. "
     "The error is "
     "a timeout from 52.14.200.7, your server.", {"SECRET": 2, "IP_ADDRESS": 1}),
]
CLEAN = [  # look-alikes included: none of these is PII
    (None, "Write a function that sends mail to user@example.com.",
     "```python\ndef send(to='user@example.com'):\n    smtp.connect('127.0.0.1', 25)\n```"),
    ("Be brief.", "What is 95808 + 3036165596?", "95808 + 3036165596 = 3036261404."),
    (None, "Explain the water cycle.", "Water evaporates, condenses into clouds and falls as rain."),
]
VALUES = ["lena.kowalski@proton.me", "+1 415 867 5309", "4539 1488 0343 6467", "52.14.200.7",
          "sk-proj-Zx81kQ0pLm2Ww9Rt5Yu7Io3Pa1Sd4Fg6Hj8Kl0Zx2Cv4Bn6Mq8Wr"]


def _pool(path):
    def conv(system, user, answer):
        turns = ([{"from": "system", "value": system}] if system else []) + [
            {"from": "human", "value": user}, {"from": "gpt", "value": answer}]
        return {"conversations": turns}

    path.write_text(json.dumps([conv(s, u, a) for s, u, a, _ in PLANTED] + [conv(*c) for c in CLEAN]))
    return path


def _exported_text(out) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for fmt in ("sharegpt", "openai")
                     for p in (out / fmt).glob("part-*.json"))


def test_scrub_counts_what_was_planted_and_export_ships_none_of_it(spark, store, config, warehouse, tmp_path,
                                                                     capsys):
    from instructlake.export import stage as export
    from instructlake.runs import StaleInputError
    from instructlake.scrub import stage as scrub

    ingest.run(spark, store, config, [str(_pool(tmp_path / "pool.json"))], source="planted")
    n = len(PLANTED) + len(CLEAN)
    want = {}
    for *_, kinds in PLANTED:
        for k, v in kinds.items():
            want[k] = want.get(k, 0) + v

    # not scrubbed yet: export refuses, naming the stage
    refused = f"{n} samples have not been checked for PII.*instructlake scrub"
    with pytest.raises(StaleInputError, match=refused):
        export.run(spark, store, config, str(tmp_path / "refused"))
    assert not (tmp_path / "refused" / "manifest.json").exists()

    assert main(["--warehouse", str(warehouse), "scrub"]) == 0
    out = capsys.readouterr().out
    values = sum(want.values())
    assert f"{n} of {n} samples checked: {len(PLANTED)} hold PII or secrets, {values} values" in out
    rows = {r["sample_id"]: r for r in store.read("pii").collect()}
    assert len(rows) == n
    by_kind = {}
    for r in rows.values():
        for k, v in r["counts"].items():
            by_kind[k] = by_kind.get(k, 0) + v
    assert by_kind == want
    run = store.read("runs").filter("stage = 'scrub'").first()
    assert {k[5:]: v for k, v in run["counts"].items() if k.startswith("kind.")} == want
    # samples keep the original text (dedup, decontam and scoring read it)
    originals = "\n".join([t["content"] for r in store.read("samples").collect() for t in r["conversation"]]
                          + [r["system"] or "" for r in store.read("samples").collect()])
    assert all(v in originals for v in VALUES)

    out_dir = tmp_path / "export"
    # dedup, decontam: not tested here
    r = export.run(spark, store, config, str(out_dir), allow_unchecked=True)
    assert (r.counts["exported"], r.counts["scrubbed"], r.counts["not_scrubbed"]) == (n, len(PLANTED), 0)
    text = _exported_text(out_dir)
    parquet = spark.read.parquet(str(out_dir / "parquet"))
    text += "\n".join(json.dumps(row.asDict(recursive=True), default=str) for row in parquet.collect())
    leaked = [v for v in VALUES if v in text]
    assert leaked == []
    for placeholder in ("<EMAIL>", "<PHONE>", "<CREDIT_CARD>", "<SECRET>", "<IP_ADDRESS>"):
        assert placeholder in text, placeholder
    # the parquet instruction column (the first user turn) is scrubbed too
    instructions = {row["instruction"] for row in parquet.collect()}
    assert "Email <EMAIL> the minutes, please." in instructions
    # text without PII goes out exactly as it came in
    for _system, user, answer in CLEAN:
        assert json.dumps(answer)[1:-1] in text and json.dumps(user)[1:-1] in text
    shipped_systems = {json.loads(x).get("system") for x in (out_dir / "sharegpt").glob("part-*.json")
                       for x in x.read_text().splitlines()}
    assert "Support bot for ACME. Escalations: <PHONE>." in shipped_systems and "Be brief." in shipped_systems
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["scrub"] == {"enabled": True, "scrubbed": len(PLANTED), "values_by_kind": want}
    assert manifest["config_hashes"]["scrub"] == scrub.scrub_hash(config)

    # a re-run checks nothing; another config checks every sample again and replaces its row
    assert scrub.run(spark, store, config).counts["input"] == 0
    email_only = replace(config.scrub, kinds=["EMAIL"])
    no_phone = replace(config, semantic=replace(config.semantic, scrub=email_only))
    with pytest.raises(StaleInputError, match="instructlake scrub"):
        export.run(spark, store, no_phone, str(tmp_path / "export2"), allow_unchecked=False)
    c = scrub.run(spark, store, no_phone).counts
    assert (c["input"], c["scrubbed"], c["values"]) == (n, 1, 2) and store.count("pii") == n
    export.run(spark, store, no_phone, str(tmp_path / "export2"), allow_unchecked=True)
    text2 = _exported_text(tmp_path / "export2")
    assert "lena.kowalski@proton.me" not in text2 and "4539 1488 0343 6467" in text2

    # the report: values per kind, and passages as exported (the placeholder, never the value)
    from instructlake.report import html

    page = open(html.build(store), encoding="utf-8").read()
    section = page[page.index('id="pii-and-secrets"'):]
    assert "1 of 6 checked samples hold" in section and '<td>EMAIL</td><td class="num">2</td>' in section
    assert "Email &lt;EMAIL&gt; the minutes" in section and "lena.kowalski" not in page

    # scrub off: export asks for nothing and says so
    off = replace(config, semantic=replace(config.semantic, scrub=replace(config.scrub, enabled=False)))
    r3 = export.run(spark, store, off, str(tmp_path / "export3"), allow_unchecked=True)
    assert r3.counts["not_scrubbed"] == 0 and r3.counts["scrubbed"] == 0
    assert json.loads((tmp_path / "export3" / "manifest.json").read_text())["scrub"] == {"enabled": False,
                                                                                          "scrubbed": 0}
