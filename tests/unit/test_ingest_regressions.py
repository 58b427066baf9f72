"""One test per way records used to vanish or crash ingest, each with a file written here."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from instructlake.config import IngestConfig
from instructlake.ingest.records import detect_file, parse_file

CFG = IngestConfig()


def rec(i: int, **extra) -> dict:
    return {"instruction": f"Question {i}?", "output": f"Answer {i}.", **extra}


def rows_of(path, fmt="alpaca", cfg=CFG) -> tuple[list[str], Counter, int]:
    rows = list(parse_file(str(path), "s", fmt, cfg))
    assert rows[-1]["kind"] == "file"
    samples = [r["instruction"] for r in rows if r["kind"] == "sample"]
    reasons = Counter(r["reason"] for r in rows if r["kind"] == "quarantine")
    records = rows[-1]["records"]
    quarantined = sum(n for k, n in reasons.items() if k != "too_many_samples")
    assert records == quarantined + len({r["ordinal"] for r in rows if r["kind"] == "sample"})
    return samples, reasons, records


def test_two_top_level_arrays_in_one_json_file(tmp_path):
    p = tmp_path / "two.json"
    p.write_text(json.dumps([rec(0), rec(1)], indent=2) + "\n" + json.dumps([rec(2), rec(3), rec(4)]))
    samples, reasons, records = rows_of(p)
    assert samples == [f"Question {i}?" for i in range(5)] and not reasons and records == 5


def test_jsonl_whose_first_line_is_an_array(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text(
        json.dumps([rec(0), rec(1)]) + "\n" + "\n".join(json.dumps(rec(i)) for i in range(2, 6)) + "\n"
    )
    assert detect_file(str(p)) == "alpaca"
    samples, reasons, records = rows_of(p)
    assert samples == [f"Question {i}?" for i in range(6)] and not reasons and records == 6


@pytest.mark.parametrize("indent", [None, 2])
def test_damaged_element_holding_a_nested_list_of_records(tmp_path, indent):
    nested = rec(1, examples=[rec(100), rec(101), rec(102)])
    text = json.dumps([rec(0), nested, rec(2), rec(3)], indent=indent)
    text = text.replace('"Answer 1."', '"Answer 1.', 1)  # the string is never closed
    p = tmp_path / "nested.json"
    p.write_text(text)
    samples, reasons, records = rows_of(p)
    assert samples == ["Question 0?", "Question 2?", "Question 3?"]  # no nested object became a sample
    assert reasons == Counter({"json_parse_error": 1}) and records == 4


@pytest.mark.parametrize(
    "name, text",
    [
        ("array.json", json.dumps([rec(0), rec(1, examples=[rec(100), rec(101)]), rec(2)], indent="\t")),
        ("compact.json", json.dumps([rec(0), rec(1, examples=[rec(100), rec(101)]), rec(2)])),
        ("values.json", json.dumps(rec(0)) + "\n" + json.dumps(rec(1, examples=[rec(100)]), indent=0)),
        ("lines.jsonl", json.dumps([rec(0), rec(1, examples=[rec(100), rec(101)])]) + "\n"),
    ],
)
def test_a_file_cut_where_a_nested_list_of_records_closes(tmp_path, name, text):
    # The cut leaves record 1 open right after its examples' ']': the nested objects then look like the
    # rest of an array that closes at the end of the file (or line), but they belong to the cut record.
    cut = text.index("Question 101?" if "101" in text else "Question 100?")
    cut = text.index("]", cut) + 1
    p = tmp_path / name
    p.write_text(text[:cut])
    samples, reasons, records = rows_of(p)
    assert samples == ["Question 0?"]
    assert records == 2 and sum(reasons.values()) == 1, reasons


def test_a_record_nested_100000_levels_deep(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    for name, text in [
        (
            "deep.jsonl",
            json.dumps(rec(0)) + '\n{"instruction": ' + deep + ', "output": "x"}\n' + json.dumps(rec(1)),
        ),
        (
            "deep.json",
            "[" + json.dumps(rec(0)) + ', {"instruction": ' + deep + "}, " + json.dumps(rec(1)) + "]",
        ),
        ("deepfirst.jsonl", '{"a": ' + deep + "}\n" + json.dumps(rec(0)) + "\n" + json.dumps(rec(1))),
    ]:
        p = tmp_path / name
        p.write_text(text)
        assert detect_file(str(p)) == "alpaca"  # the driver's sniff survives it
        samples, reasons, records = rows_of(p)
        assert samples == ["Question 0?", "Question 1?"], name
        assert reasons == Counter({"too_deep": 1}) and records == 3


def test_a_compressed_line_of_40_mb_is_quarantined_with_its_head(tmp_path):
    bomb = '{"instruction": "' + "A" * 40_000_000 + '", "output": "x"}'
    p = tmp_path / "bomb.jsonl.gz"
    p.write_bytes(
        gzip.compress((json.dumps(rec(0)) + "\n" + bomb + "\n" + json.dumps(rec(1)) + "\n").encode(), 1)
    )
    assert p.stat().st_size < 1_000_000
    rows = list(parse_file(str(p), "s", "alpaca", CFG))
    q = [r for r in rows if r["kind"] == "quarantine"]
    assert [r["instruction"] for r in rows if r["kind"] == "sample"] == ["Question 0?", "Question 1?"]
    assert [r["reason"] for r in q] == ["too_large"] and q[0]["raw_length"] == len(bomb) + 1
    assert q[0]["raw"] == bomb[: CFG.quarantine_raw_chars] and q[0]["line"] == 2


def test_a_cut_json_gz_array_keeps_its_complete_records(tmp_path):
    data = gzip.compress(json.dumps([rec(i) for i in range(400)]).encode())
    p = tmp_path / "cut.json.gz"
    p.write_bytes(data[: len(data) * 2 // 3])
    assert detect_file(str(p)) == "alpaca"
    samples, reasons, records = rows_of(p)
    assert samples == [f"Question {i}?" for i in range(len(samples))] and len(samples) > 100
    assert reasons == Counter({"truncated": 1, "corrupt_compression": 1})
    assert records == len(samples) + 2


def test_a_first_record_of_1_5_mb_does_not_hide_the_format(tmp_path):
    p = tmp_path / "big.jsonl"
    p.write_text(json.dumps(rec(0, context="x" * 1_500_000)) + "\n" + json.dumps(rec(1)) + "\n")
    assert detect_file(str(p)) == "alpaca"
    samples, reasons, _ = rows_of(p)
    assert samples == ["Question 0?", "Question 1?"] and not reasons


def test_self_instruct_expansion_is_bounded(tmp_path):
    task = {
        "instruction": "Add the numbers.",
        "instances": [{"input": f"{i} + 1", "output": str(i + 1)} for i in range(5000)],
    }
    p = tmp_path / "si.jsonl"
    p.write_text(json.dumps(task) + "\n")
    samples, reasons, records = rows_of(p, "self_instruct")
    assert len(samples) == 64 and reasons == Counter({"too_many_samples": 1}) and records == 1
    cut = next(r for r in parse_file(str(p), "s", "self_instruct", CFG) if r["kind"] == "quarantine")
    assert "5,000 conversations" in cut["detail"] and "4,936 were cut" in cut["detail"]


def test_oasst_all_paths_expansion_is_bounded(tmp_path):
    # a root with 10 replies, each answered by 10 prompts each answered once: 100 leaves
    def msg(role, text, replies=()):
        return {"message_id": text, "role": role, "text": text, "replies": list(replies)}

    root = msg(
        "prompter",
        "root",
        [
            msg(
                "assistant",
                f"a{i}",
                [msg("prompter", f"p{i}.{j}", [msg("assistant", f"a{i}.{j}")]) for j in range(10)],
            )
            for i in range(10)
        ],
    )
    p = tmp_path / "tree.jsonl"
    p.write_text(json.dumps({"message_tree_id": "t1", "prompt": root}) + "\n")
    cfg = IngestConfig(oasst_paths="all", max_samples_per_record=30)
    samples, reasons, records = rows_of(p, "oasst", cfg)
    assert len(samples) == 30 and reasons == Counter({"too_many_samples": 1}) and records == 1


def test_records_that_do_not_add_up_stop_ingest_before_any_write():
    from instructlake.ingest.pieces import InputFile
    from instructlake.ingest.stage import AccountingError, check_records

    files = [
        InputFile("/x/a.jsonl", "a", "alpaca", "a.jsonl", 10),
        InputFile("/x/b.jsonl", "b", "alpaca", "b.jsonl", 10),
    ]
    good = {"records": 5, "quarantined": 1, "with_samples": 4}
    check_records({"a.jsonl": good, "b.jsonl": good}, files)
    with pytest.raises(
        AccountingError, match="b.jsonl: the scanner found 5 records, but 1 were quarantined and 3"
    ):
        check_records({"a.jsonl": good, "b.jsonl": {**good, "with_samples": 3}}, files)
    with pytest.raises(
        AccountingError, match="b.jsonl: the scanner found 0 records"
    ):  # its scan never reported
        check_records({"a.jsonl": good}, files)


def test_benchmark_files_and_diagnosis_sets_survive_deep_nesting(tmp_path):
    from instructlake.decontam.benchmarks import read_file
    from instructlake.synth.diagnose import load_set

    deep = '{"turns": ' + "[" * 100_000 + "]" * 100_000 + "}"
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"instruction": "Name a river."}) + "\n" + deep + "\n")
    items, bad = read_file(str(bench))
    assert [i.prompt for i in items] == ["Name a river."] and [b[1] for b in bad] == ["too_deep"]
    dset = tmp_path / "diag.jsonl"
    dset.write_text(json.dumps({"question_id": 1, "turns": ["Name a river."], "reference": ["The Nile."]}) + "\n"
                    + deep + "\n")
    got, bad = load_set(str(dset))
    assert len(got) == 1 and [b[1] for b in bad] == ["too_deep"]
