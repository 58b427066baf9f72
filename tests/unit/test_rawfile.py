import gzip
import json
import random

import pytest

from instructlake.config import IngestConfig
from instructlake.ingest.rawfile import FileFormatError, iter_raw
from instructlake.ingest.records import detect_file, parse_file

GOOD = [{"instruction": f"task {i}", "input": "", "output": f"answer {i}"} for i in range(5)]


def test_jsonl_bad_lines_are_units(tmp_path):
    p = tmp_path / "a.jsonl"
    lines = [json.dumps(r).encode() for r in GOOD]
    lines[1] = b'{"instruction": "broken'
    lines[3] = b'{"instruction": "bad \xff byte", "output": "x"}'
    p.write_bytes(b"\n".join(lines) + b"\n\n")
    raws = list(iter_raw(p))
    assert [r.locator for r in raws] == ["line:1", "line:2", "line:3", "line:4", "line:5"]
    assert [r.error[0] if r.error else None for r in raws] == [None, "json_parse_error", None, "invalid_utf8", None]
    assert "\ufffd" in raws[3].text


def test_array_with_damaged_element_resyncs(tmp_path):
    text = json.dumps(GOOD, indent=2)
    broken = text.replace('"task 2"', '"task 2', 1)  # an unterminated string inside element 2
    p = tmp_path / "a.json"
    p.write_text(broken)
    raws = list(iter_raw(p))
    good = [r.value["instruction"] for r in raws if r.error is None]
    assert "task 0" in good and "task 4" in good
    assert sum(r.error is not None for r in raws) >= 1
    assert len(raws) <= 5


def test_truncated_array_keeps_intact_elements(tmp_path):
    text = json.dumps(GOOD)
    p = tmp_path / "a.json"
    p.write_text(text[: len(text) * 3 // 4])
    raws = list(iter_raw(p))
    assert [r.value["instruction"] for r in raws if r.error is None] == ["task 0", "task 1", "task 2"]
    assert raws[-1].error[0] == "truncated"


def test_invalid_utf8_inside_array_element(tmp_path):
    data = json.dumps(GOOD).encode().replace(b"answer 1", b"answer \xfe1")
    p = tmp_path / "a.json"
    p.write_bytes(data)
    raws = list(iter_raw(p))
    assert len(raws) == 5
    assert [r.error[0] for r in raws if r.error] == ["invalid_utf8"]
    assert raws[1].locator == "index:1"


def test_gzip_jsonl(tmp_path):
    p = tmp_path / "a.jsonl.gz"
    p.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in GOOD).encode()))
    assert detect_file(str(p)) == "alpaca"
    rows = list(parse_file(str(p), "s", "alpaca", IngestConfig()))
    assert [r["kind"] for r in rows] == ["sample"] * 5 + ["file"]
    assert rows[-1]["records"] == 5


@pytest.mark.parametrize("content,match", [
    (b"", "empty"), (b"hello world", "not JSON"), (b"[1, 2, 3]", "unknown format"),
    (b'{"foo": 1}\n{"bar": 2}\n', "unknown format.*foo"),
])
def test_whole_file_errors_name_the_file(tmp_path, content, match):
    p = tmp_path / "bad.json"
    p.write_bytes(content)
    with pytest.raises(FileFormatError, match=match) as e:
        detect_file(str(p))
    assert "bad.json" in str(e.value)


def test_missing_file():
    with pytest.raises(FileFormatError, match="does not exist"):
        detect_file("/nonexistent/x.json")


def test_parse_file_quarantines_with_reason_and_truncated_raw(tmp_path):
    cfg = IngestConfig(max_record_bytes=300, quarantine_raw_chars=50)
    recs = [GOOD[0], {"instruction": "x" * 400, "output": "y"}, [1, 2], {"instruction": "q"}, GOOD[1]]
    p = tmp_path / "a.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in recs))
    rows = list(parse_file(str(p), "src", "alpaca", cfg))
    # the array line's elements are records of their own: 1 and 2, neither an object
    assert [r["kind"] for r in rows] == ["sample"] + ["quarantine"] * 4 + ["sample", "file"]
    assert [r["reason"] for r in rows if r["kind"] == "quarantine"] == [
        "too_large", "not_an_object", "not_an_object", "missing_field"]
    assert [r["locator"] for r in rows[2:4]] == ["line:3/index:0", "line:3/index:1"]
    big = rows[1]
    assert len(big["raw"]) == 50 and big["raw_length"] > 400 and big["line"] == 2
    assert "'output'" in rows[4]["detail"]
    assert rows[0]["source_id"] == "a.jsonl:line:1"


def test_pack_gives_large_files_their_own_task():
    from instructlake.ingest.pieces import InputFile
    from instructlake.ingest.stage import pack

    files = [InputFile(f"f{i}", "s", "alpaca", f"f{i}", size) for i, size in enumerate([50, 5, 5, 5, 30, 1])]
    tasks = pack(files, small_bytes=20)
    assert [[p.file.path for p in t] for t in tasks] == [["f0"], ["f4"], ["f1", "f2", "f3", "f5"]]
    assert sorted(p.file.path for t in tasks for p in t) == sorted(f.path for f in files)


def test_pack_cuts_large_jsonl_files_into_ranges_that_tile_the_file():
    from instructlake.ingest.pieces import InputFile
    from instructlake.ingest.stage import pack, split_size

    files = [InputFile("big.jsonl", "s", "alpaca", "big", 1000, splittable=True),
             InputFile("big.json", "s", "alpaca", "arr", 900), InputFile("small", "s", "alpaca", "small", 5)]
    tasks = pack(files, small_bytes=20, split_bytes=300)
    ranges = [(p.start, p.end) for t in tasks for p in t if p.file.label == "big"]
    assert ranges == [(0, 250), (250, 500), (500, 750), (750, 1000)]
    # arrays: whole
    assert [(p.start, p.end) for t in tasks for p in t if p.file.label == "arr"] == [(0, None)]
    # sized like Spark's file splits: every core busy, never above the cap, never tiny
    assert split_size(files, parallelism=2, max_bytes=10**9, min_bytes=1) == 953
    assert split_size(files, parallelism=2, max_bytes=400, min_bytes=1) == 400
    assert split_size(files, parallelism=64, max_bytes=10**9, min_bytes=100) == 100


@pytest.mark.parametrize("seed", range(6))
def test_byte_ranges_read_every_line_once_with_its_line_number(tmp_path, seed):
    rng = random.Random(seed)
    lines = []
    for i in range(rng.randrange(1, 40)):
        kind = rng.random()
        if kind < 0.1:
            lines.append("")  # blank line
        elif kind < 0.2:
            lines.append('{"instruction": "broken')
        else:
            lines.append(json.dumps({"instruction": "é" * rng.randrange(0, 30) + str(i), "output": "ok"}))
    eol = rng.choice(["\n", "\r\n"])
    data = eol.join(lines) + rng.choice(["", eol])
    p = tmp_path / "a.jsonl"
    p.write_bytes(data.encode("utf-8"))
    whole = [(r.locator, r.line, r.ordinal, r.text, r.error) for r in iter_raw(p)]
    size = p.stat().st_size
    cuts = sorted({0, size, *(rng.randrange(0, size + 1) for _ in range(rng.randrange(1, 6)))})
    pieces = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        pieces += [(r.locator, r.line, r.ordinal, r.text, r.error) for r in iter_raw(p, start=a, end=b)]
    assert pieces == whole
    # the ordinal is the byte offset where the record's line begins
    starts = [0] + [i + 1 for i, b in enumerate(data.encode("utf-8")) if b == 10]
    assert [o for _, _, o, _, _ in whole] == [starts[ln - 1] for _, ln, _, _, _ in whole]


def test_byte_ranges_refused_for_arrays_and_gzip(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps(GOOD))
    g = tmp_path / "g.jsonl.gz"
    g.write_bytes(gzip.compress(b'{"instruction": "x", "output": "y"}\n'))
    for p in (a, g):
        with pytest.raises(ValueError, match="byte range"):
            list(iter_raw(p, start=0, end=5))


def test_unpaired_surrogate_escape_is_quarantined_not_fatal(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"instruction": "smile \\ud83d", "output": "ok"}\n' + json.dumps(GOOD[0]) + "\n")
    rows = list(parse_file(str(p), "s", "alpaca", IngestConfig()))
    assert [r["kind"] for r in rows] == ["quarantine", "sample", "file"]
    assert rows[0]["reason"] == "invalid_utf8"
    rows[0]["raw"].encode("utf-8")  # the raw text itself is storable


@pytest.mark.parametrize("codec", ["gzip", "bz2", "lzma"])
def test_closing_a_decompressed_stream_closes_the_file_it_reads(tmp_path, codec):
    """bz2's and lzma's readers leave a stream they were given open; a Hadoop stream must not be left so."""
    import bz2
    import lzma

    from instructlake.ingest import compression

    compress = {"gzip": gzip.compress, "bz2": bz2.compress, "lzma": lzma.compress}[codec]
    path = tmp_path / "x.jsonl.z"
    path.write_bytes(compress(b'{"instruction": "a", "output": "b"}\n'))
    source = open(path, "rb")
    with compression.decompressed(source) as f:
        assert f.read() == b'{"instruction": "a", "output": "b"}\n'
    assert source.closed
