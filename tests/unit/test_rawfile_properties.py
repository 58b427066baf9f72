"""Property tests of the readers: files built from records the generator counts itself, in every layout
(JSON Lines, array lines, one or several arrays, pretty-printed concatenated values), compressed or not,
with nested record-shaped objects, garbage, damage and truncation. Every valid record must be found
exactly once, and the scanner's count must match the generator's."""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instructlake.config import IngestConfig
from instructlake.ingest.rawfile import FileFormatError
from instructlake.ingest.records import parse_file

# PROPERTY_EXAMPLES=2000 searches harder (by hand); the default keeps the suite fast.
SETTINGS = settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CFG = IngestConfig()

# Text with what makes JSON hard: quotes, backslashes, brackets, newlines, non-ASCII, astral characters.
TEXT = st.text(alphabet=st.sampled_from(list('ab "\\{}[],:\n\té€😀x')), min_size=1, max_size=30)
ANSWER = TEXT.filter(lambda s: s.strip())  # a blank answer is a record that cannot be a sample


@dataclass
class Built:
    data: bytes
    markers: list[str]  # the instruction marker of every top-level record, in file order
    spans: list[tuple[int, int]]  # byte span of each record in the uncompressed file
    suffix: str


@st.composite
def records(draw, min_size=1, max_size=12):
    n = draw(st.integers(min_size, max_size))
    out = []
    for i in range(n):
        rec = {"instruction": f"M{i:03d} " + draw(TEXT), "output": draw(ANSWER)}
        if draw(st.booleans()):
            # record-shaped objects nested inside: never records of their own
            rec["examples"] = [
                {"instruction": f"N{i:03d}{k} " + draw(TEXT), "output": "x"}
                for k in range(draw(st.integers(1, 4)))
            ]
        out.append(rec)
    return out


def marker(instruction: str) -> str:
    return instruction.split(" ", 1)[0]


def build(recs: list[dict], shape: str, indent, group: int) -> Built:
    """The file's text assembled piece by piece, so the span of every record is known."""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    size = 0

    def put(s: str, record: bool = False) -> None:
        nonlocal size
        b = len(s.encode("utf-8"))
        if record:
            spans.append((size, size + b))
        parts.append(s)
        size += b

    if shape == "lines":
        for i in range(0, len(recs), group):
            chunk = recs[i : i + group]
            if group > 1:  # an array of records on one line
                put("[")
                for k, r in enumerate(chunk):
                    put(", " if k else "")
                    put(json.dumps(r, ensure_ascii=False), record=True)
                put("]\n")
            else:
                put(json.dumps(chunk[0], ensure_ascii=False), record=True)
                put("\n")
        return Built("".join(parts).encode(), [marker(r["instruction"]) for r in recs], spans, ".jsonl")
    if shape == "arrays":  # one or several top-level arrays, pretty-printed or not
        for i in range(0, len(recs), group):
            put("[")
            for k, r in enumerate(recs[i : i + group]):
                put(",\n  " if k else "\n  ")
                put(json.dumps(r, ensure_ascii=False, indent=indent), record=True)
            put("\n]\n")
    else:  # concatenated pretty-printed top-level objects
        for r in recs:
            put(json.dumps(r, ensure_ascii=False, indent=indent or 2), record=True)
            put("\n")
    return Built("".join(parts).encode(), [marker(r["instruction"]) for r in recs], spans, ".json")


LAYOUTS = st.tuples(
    st.sampled_from(["lines", "arrays", "concat"]), st.sampled_from([None, 2, 4, "\t"]), st.integers(1, 5)
)


def scan(tmp_path, data: bytes, suffix: str, gz: bool = False, name: str = "f"):
    p = tmp_path / (name + suffix + (".gz" if gz else ""))
    p.write_bytes(gzip.compress(data) if gz else data)
    rows = list(parse_file(str(p), "s", "alpaca", CFG))
    file_rows = [r for r in rows if r["kind"] == "file"]
    assert len(file_rows) == 1 and rows[-1] is file_rows[0]
    samples = [r for r in rows if r["kind"] == "sample"]
    quarantined = [r for r in rows if r["kind"] == "quarantine"]
    # the identity, each side counted on its own: the scanner's count against the rows records became
    with_samples = {r["ordinal"] for r in samples}
    assert sum(r["records"] for r in samples) == len(with_samples)  # the stage counts the first-sample mark
    assert file_rows[0]["records"] == len(quarantined) + len(with_samples)
    return Counter(marker(r["instruction"]) for r in samples), quarantined, file_rows[0]["records"]


@SETTINGS
@given(recs=records(), layout=LAYOUTS, gz=st.booleans())
def test_every_record_of_a_clean_file_is_found_once(tmp_path_factory, recs, layout, gz):
    built = build(recs, *layout)
    found, quarantined, n = scan(tmp_path_factory.mktemp("p"), built.data, built.suffix, gz)
    assert n == len(recs)
    assert quarantined == []
    assert found == Counter(built.markers)


@SETTINGS
@given(recs=records(min_size=2), layout=LAYOUTS, gz=st.booleans(), data=st.data())
def test_a_damaged_record_costs_only_itself(tmp_path_factory, recs, layout, gz, data):
    built = build(recs, *layout)
    k = data.draw(st.integers(0, len(recs) - 1))
    a, b = built.spans[k]
    text = built.data[a:b].decode()
    how = data.draw(st.sampled_from(["unterminated", "no_close", "garbage", "cut_examples"]))
    if how == "unterminated":  # the closing quote of the output string goes
        i = text.rindex('"', 0, text.rindex('"output"') + 12 + len(json.dumps(recs[k]["output"])))
        broken = text[:i] + text[i + 1 :]
    elif how == "no_close":  # the record's own closing brace goes
        broken = text[: text.rindex("}")] + text[text.rindex("}") + 1 :]
    elif how == "garbage":
        broken = text[:1] + " @@ not json @@ " + text[1:]
    else:  # a nested list cut open inside the damaged record
        broken = text.replace('"examples": [', '"examples": [[', 1) if "examples" in text else text[:-1]
    damaged = built.data[:a] + broken.encode() + built.data[b:]
    found, quarantined, n = scan(tmp_path_factory.mktemp("p"), damaged, built.suffix, gz)
    others = [m for i, m in enumerate(built.markers) if i != k]
    assert all(found[m] == 1 for m in others), (how, found, others)
    assert all(c == 1 for c in found.values())
    assert not any(m.startswith("N") for m in found)  # no nested object became a sample
    assert quarantined, "the damage was noticed"


@SETTINGS
@given(recs=records(), layout=LAYOUTS, data=st.data())
def test_a_cut_file_keeps_every_record_before_the_cut(tmp_path_factory, recs, layout, data):
    built = build(recs, *layout)
    cut = data.draw(st.integers(1, len(built.data)))
    gz = data.draw(st.booleans())
    if gz:  # the compressed stream is cut where the uncompressed text is
        comp = gzip.compress(built.data)
        comp_cut = max(1, cut * len(comp) // len(built.data))
        p = tmp_path_factory.mktemp("p") / ("f" + built.suffix + ".gz")
        p.write_bytes(comp[:comp_cut])
        try:
            rows = list(parse_file(str(p), "s", "alpaca", CFG))
        except FileFormatError as e:  # cut inside the gzip header: nothing decodes, and the file is named
            assert p.name in str(e)
            return
        found = Counter(marker(r["instruction"]) for r in rows if r["kind"] == "sample")
        # what comes out is records in file order, each once; the decompressor decides where text ends
        order = [m for m in built.markers if m in found]
        assert order == built.markers[: len(order)] and all(c == 1 for c in found.values())
        return
    found, quarantined, _ = scan(tmp_path_factory.mktemp("p"), built.data[:cut], built.suffix)
    whole = [m for m, (_, e) in zip(built.markers, built.spans, strict=True) if e <= cut]
    assert all(found[m] == 1 for m in whole), (found, whole)
    assert all(c == 1 for c in found.values())
    assert len(found) <= len(whole) + 1  # at most the record the cut went through, if it still parses


GARBAGE = st.text(alphabet=st.sampled_from(list('ab1 "\\{}[]:,@\t')), min_size=1, max_size=20)


@SETTINGS
@given(recs=records(), garbage=st.lists(GARBAGE, min_size=1, max_size=5), data=st.data())
def test_garbage_lines_between_records_are_quarantined_and_lose_nothing(
    tmp_path_factory, recs, garbage, data
):
    lines = [json.dumps(r, ensure_ascii=False) for r in recs]
    for g in garbage:
        if isinstance(_loads(g), (dict, list)):
            continue  # valid JSON is not garbage
        lines.insert(data.draw(st.integers(1, len(lines))), g)  # after the first line: the layout stays lines
    found, quarantined, n = scan(tmp_path_factory.mktemp("p"), "\n".join(lines).encode(), ".jsonl")
    assert found == Counter(marker(r["instruction"]) for r in recs)
    assert n == len(recs) + len(quarantined)


def _loads(s: str):
    try:
        return json.loads(s)
    except ValueError:
        return None


@SETTINGS
@given(recs=records(min_size=2, max_size=6), layout=LAYOUTS)
def test_random_bytes_never_crash_the_reader(tmp_path_factory, recs, layout):
    built = build(recs, *layout)
    data = bytearray(built.data)
    for i in range(0, len(data), max(1, len(data) // 7)):
        data[i] = (data[i] * 31 + 7) % 256
    p = tmp_path_factory.mktemp("p") / ("f" + built.suffix)
    p.write_bytes(bytes(data))
    rows = list(parse_file(str(p), "s", "alpaca", CFG))
    file_row = rows[-1]
    samples = {r["ordinal"] for r in rows if r["kind"] == "sample"}
    assert file_row["records"] == sum(r["kind"] == "quarantine" for r in rows) + len(samples)
