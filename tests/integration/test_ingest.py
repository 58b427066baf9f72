"""Ingest end to end on real sample files and on broken ones: counts always add up, nothing is lost.

The damage tests run twice: once with the Python workers opening local paths, once with the same files
given as file: URIs, listed and checked through Hadoop's FileSystem on the driver and read by the
byte-range source in the executor JVMs (platform.execution.raw_reader=hadoop), as an s3a:// or dbfs:/ path
is. Both must give the same rows."""

import bz2
import gzip
import json
import lzma
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import given as hgiven
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from instructlake import schemas
from instructlake.config import load_config
from instructlake.ingest import stage
from instructlake.ingest.rawfile import FileFormatError
from tests.conftest import TEST_SETTINGS


@pytest.fixture(params=["python", "hadoop"])
def reader(request) -> str:
    return request.param


@pytest.fixture
def config(reader, warehouse):
    return load_config("local", [*TEST_SETTINGS, f"platform.execution.raw_reader={reader}"],
                       warehouse=str(warehouse))


def given(reader: str, *paths) -> list[str]:
    """The paths as a user of this reader names them: local paths, or file: URIs for Hadoop."""
    return [Path(p).as_uri() if reader == "hadoop" else str(p) for p in paths]

# file -> (format, units read, distinct conversations). Units: one per record, except Self-Instruct
# (one per instance) and OASST (one per tree on the best path).
REAL = {
    "alpaca_en_demo.json": ("alpaca", 999, 985),  # 14 exact duplicates, as its source documents
    "cherry_alpaca_5_percent.json": ("alpaca", 3111, 3111),
    "dummy_conversation.json": ("sharegpt", 500, 500),
    "glaive_toolcall_en_demo.json": ("sharegpt", 300, 265),
    "kto_en_demo.json": ("openai", 300, 300),
    "en_100_tree.jsonl": ("oasst", 100, 100),
    "seed_tasks.jsonl": ("self_instruct", 175, 175),
}


@pytest.mark.parametrize("reader", ["python"])
def test_every_reader_on_its_real_sample_file(spark, store, config, samples_dir):
    files = [str(samples_dir / f) for f in REAL]
    planned = {f.label: f.format for f in stage.plan(files)}
    assert planned == {f: v[0] for f, v in REAL.items()}
    r = stage.run(spark, store, config, files)
    c = r.counts
    assert c["records"] == sum(v[1] for v in REAL.values())  # counted by hand from the files' sources
    assert c["quarantined"] == 0 and c["records_with_samples"] == c["records"]
    assert c["samples"] == c["ingested"] + c["duplicate"]
    samples = store.read("samples")
    schemas.require(samples, "samples")
    assert samples.count() == c["ingested"]
    assert samples.select("sample_id").distinct().count() == samples.count()
    per_source = {row["source"]: row["count"] for row in samples.groupBy("source").count().collect()}
    for f, (_, _, distinct) in REAL.items():
        # conversations shared across files are counted once, under the first source
        assert per_source[stage.source_name(f)] <= distinct
    assert per_source["alpaca_en_demo"] == 985
    assert per_source["kto_en_demo"] == 300
    # the record's own ids are kept; files without ids get file:line / file:index
    oasst = samples.filter("source = 'en_100_tree'").first()
    assert len(oasst["source_id"]) == 36 and oasst["lang"] == "en"
    assert samples.filter("source = 'alpaca_en_demo'").first()["source_id"].startswith("alpaca_en_demo.json:index:")
    tool = samples.filter("source = 'glaive_toolcall_en_demo' AND exists(conversation, t -> t.role = 'tool')")
    assert tool.count() > 50
    first = samples.filter("source = 'dummy_conversation'").orderBy("source_id").first()
    assert first["instruction"] == first["conversation"][0]["content"]
    assert first["n_turns"] == len(first["conversation"])


@pytest.mark.parametrize("reader", ["python"])
def test_reingest_adds_nothing_and_new_records_add_exactly(spark, store, config, tmp_path):
    recs = [{"instruction": f"Say the number {i}.", "input": "", "output": f"{i}"} for i in range(40)]
    f1 = tmp_path / "one.json"
    f1.write_text(json.dumps(recs[:30]))
    r1 = stage.run(spark, store, config, [str(f1)])
    assert r1.counts["ingested"] == 30
    r2 = stage.run(spark, store, config, [str(f1)])
    assert (r2.counts["ingested"], r2.counts["duplicate"]) == (0, 30)
    f2 = tmp_path / "two.json"
    f2.write_text(json.dumps(recs))  # the old 30 plus 10 new
    r3 = stage.run(spark, store, config, [str(f2)])
    assert (r3.counts["ingested"], r3.counts["duplicate"]) == (10, 30)
    assert store.count("samples") == 40


def test_broken_file_lands_in_quarantine_once(spark, store, config, tmp_path, reader):
    lines = [json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) for i in range(6)]
    lines[2] = '{"instruction": "cut off'
    lines[4] = json.dumps({"instruction": "q4"})
    f = tmp_path / "broken.jsonl"
    f.write_text("\n".join(lines))
    r = stage.run(spark, store, config, given(reader, f), source="mixed")
    assert (r.counts["records"], r.counts["ingested"], r.counts["quarantined"]) == (6, 4, 2)
    q = store.read("quarantine").orderBy("line").collect()
    assert [(x["reason"], x["line"], x["source"]) for x in q] == [
        ("json_parse_error", 3, "mixed"), ("missing_field", 5, "mixed")]
    assert q[0]["raw"] == '{"instruction": "cut off' and q[0]["raw_length"] == len(lines[2])
    again = stage.run(spark, store, config, given(reader, f), source="mixed")
    assert again.counts["quarantine_new"] == 0 and store.count("quarantine") == 2


def test_a_file_split_into_byte_ranges_ingests_like_one_task(spark, store, config, tmp_path, reader):
    from instructlake.store import Store

    rng = random.Random(1)
    lines = []
    for i in range(400):
        rec = {"instruction": f"Question {i}: " + "word " * rng.randrange(1, 40), "output": f"answer {i}"}
        lines.append(json.dumps(rec) if i % 37 else '{"instruction": "cut')
    lines[100] = lines[99]  # a duplicate that lands in another range than its twin
    lines[200] = lines[200].replace("}", ', "pad": "' + "x" * 3000 + '"}')  # a line longer than a range
    f = tmp_path / "big.jsonl"
    f.write_text("\r\n".join(lines[:50]) + "\r\n" + "\n".join(lines[50:]) + "\n")  # CRLF lines too
    whole = stage.run(spark, store, config, given(reader, f), source="s")
    # 1 KB ranges: dozens of tasks, lines cut at every possible place
    small = load_config("local", ["platform.execution.split_bytes=1000", "platform.spark.master=local[2]",
                                  f"platform.execution.raw_reader={reader}"], warehouse=str(tmp_path / "wh2"))
    assert len(stage.pack(stage.plan(given(reader, f)), small_bytes=10**9, split_bytes=1000)) > 20
    store2 = Store(spark, small.warehouse)
    split = stage.run(spark, store2, small, given(reader, f), source="s")
    assert split.counts == whole.counts
    cols = ["sample_id", "source_id"]  # source_id is file:line:N here
    assert (sorted(store2.read("samples").select(*cols).collect())
            == sorted(store.read("samples").select(*cols).collect()))
    assert (sorted(store2.read("quarantine").select("quarantine_id", "line").collect())
            == sorted(store.read("quarantine").select("quarantine_id", "line").collect()))
    assert whole.counts["quarantined"] == 11 and whole.counts["duplicate"] == 1


def test_the_python_readers_parse_is_one_partition_per_task_and_no_python_rdd(spark, tmp_path):
    """The tasks reach the JVM as Arrow: a DataFrame made from Python rows of them is a Python RDD, and made
    every task start a second Python worker, kept for the session."""
    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps({"instruction": f"q{i} " + "w " * 50, "output": "a"}) + "\n"
                         for i in range(200)))
    files = stage.plan(given("python", f))
    tasks = stage.pack(files, small_bytes=10**9, split_bytes=1000)
    cfg = load_config("local", TEST_SETTINGS).ingest
    parsed = stage.parse(spark, files, cfg, 100, small_bytes=10**9, split_bytes=1000, reader="python")
    lineage = parsed._jdf.queryExecution().toRdd().toDebugString()
    assert "PythonRDD" not in lineage, lineage
    assert parsed.rdd.getNumPartitions() == len(tasks) > 10
    kinds = {r["kind"]: r["count"] for r in parsed.groupBy("kind").count().collect()}
    assert kinds == {"sample": 200, "file": sum(len(t) for t in tasks)}  # a "file" row for each piece


def test_bad_files_are_one_clear_error_before_any_write(spark, store, config, tmp_path, samples_dir, reader):
    bad = tmp_path / "notes.json"
    bad.write_text("these are not records")
    with pytest.raises(FileFormatError) as e:
        stage.run(spark, store, config, given(reader, samples_dir / "seed_tasks.jsonl", bad, tmp_path / "gone.json"))
    assert "notes.json: not JSON" in str(e.value) and "gone.json: file does not exist" in str(e.value)
    assert not store.exists("samples")


def test_a_directory_names_the_files_ingest_does_not_read(spark, tmp_path, reader, caplog):
    """JSON and Parquet in any case are read; an Avro or CSV file beside them is named in one warning (once
    per process), and Hadoop's markers, checksums and hidden files are not."""
    d = tmp_path / "landing"
    (d / "sub").mkdir(parents=True)
    (d / ".cache").mkdir()
    for name in ("a.json", "B.JSONL", "sub/c.ndjson.gz", "_SUCCESS", ".a.json.crc", ".cache/x.bin",
                 "d.avro", "E.Parquet", "sub/e.csv", "notes.txt"):
        (d / name).write_text("[]")
    with caplog.at_level("WARNING", logger="instructlake.ingest.stage"):
        found = stage.find_files(given(reader, d), errors := [])
        again = stage.find_files(given(reader, d), [])
    assert errors == [] and again == found
    assert [label for _, label, _ in found] == ["B.JSONL", "E.Parquet", "a.json", "sub/c.ndjson.gz"]
    assert [stage.source_name(label) for _, label, _ in found] == ["B", "E", "a", "c"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "3 file(s) not read" in warnings[0] and "d.avro, notes.txt, sub/e.csv" in warnings[0]
    (d / "f.xml").write_text("<x/>")  # the listing changed: a new warning
    with caplog.at_level("WARNING", logger="instructlake.ingest.stage"):
        stage.find_files(given(reader, d), [])
    assert "4 file(s) not read" in caplog.records[-1].getMessage()


# ---------------------------------------------------------------- fuzz


def corrupt(data: bytes, kind: str, rng: random.Random) -> bytes:
    if kind == "truncate":
        return data[: rng.randint(len(data) // 3, len(data) - 1)]
    if kind == "byteflip":
        b = bytearray(data)
        for _ in range(25):
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256)
        return bytes(b)
    text = data.decode("utf-8")
    if kind == "typeswap":  # strings become numbers / lists / null in places
        for key in ("instruction", "output", "value", "content", "text", "role", "from"):
            text = text.replace(f'"{key}": "', f'"{key}": {rng.choice(["17", "null", "[1]", "{}"])}, "_was": '
                                               f'"', 3)
        return text.encode()
    if kind == "delete":  # fields removed
        for key in ("output", "value", "content", "replies", "instances", "role"):
            text = text.replace(f'"{key}":', f'"_{key}_gone":', 5)
        return text.encode()
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["truncate", "byteflip", "typeswap", "delete"])
def test_fuzzed_sample_files_never_crash_and_add_up(spark, store, config, tmp_path, samples_dir, kind, reader):
    rng = random.Random(hash(kind) & 0xFFFF)
    files = []
    for name in REAL:
        if name.startswith("cherry"):
            continue  # a large copy of the alpaca format adds time, not coverage
        out = tmp_path / name
        out.write_bytes(corrupt((samples_dir / name).read_bytes(), kind, rng))
        files += given(reader, out)
    try:
        planned = stage.plan(files)
    except FileFormatError:
        planned = []
    # Files whose first records are all ruined are refused as a whole, by name; the rest go in.
    ok = [f.path for f in planned] if planned else []
    if not ok:
        for f in files:
            try:
                ok += [p.path for p in stage.plan([f])]
            except FileFormatError as e:
                assert f.split("/")[-1] in str(e)
    r = stage.run(spark, store, config, ok)
    c = r.counts
    assert c["records"] == c["records_with_samples"] + c["quarantined"]
    assert c["samples"] == c["ingested"] + c["duplicate"]
    assert store.count("samples") == c["ingested"]
    assert store.count("quarantine") == c["quarantine_new"]
    if kind != "truncate":
        assert c["quarantined"] > 0
    q = store.read("quarantine")
    assert q.filter("reason IS NULL OR raw IS NULL OR raw_length IS NULL").count() == 0


@pytest.mark.parametrize("reader", ["python"])
@pytest.mark.parametrize("broadcast_max", [500_000, 0], ids=["broadcast", "shuffle"])
def test_the_first_occurrence_of_a_repeated_conversation_is_stored_once(spark, store, config, tmp_path,
                                                                         monkeypatch, broadcast_max):
    """A conversation repeated within a file, across files and inside one record (two equal instances:
    the same source, file and position) is stored once, from its first file and first position, whether
    the repeated ids are broadcast or joined with a shuffle."""
    monkeypatch.setattr(stage, "BROADCAST_MAX_IDS", broadcast_max)

    def rec(i):
        return {"instruction": f"Name colour number {i}.", "output": f"Colour {i}."}

    lines = [rec(0), rec(1), rec(0), rec(2), rec(0)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (tmp_path / "b.jsonl").write_text(json.dumps(rec(1)) + "\n" + json.dumps(rec(3)) + "\n")
    task = {"instruction": "Echo the word.", "instances": [{"input": w, "output": w} for w in ("x", "x", "y")]}
    (tmp_path / "c.jsonl").write_text(json.dumps(task) + "\n")
    c = stage.run(spark, store, config, [str(tmp_path / n) for n in ("a.jsonl", "b.jsonl", "c.jsonl")]).counts
    # samples 5 + 2 + 3 = 10; distinct: colours 0-3 and echo x, y = 6; repeats: 0 twice, 1 once, x once
    assert (c["samples"], c["ingested"], c["duplicate_in_batch"], c["duplicate_existing"]) == (10, 6, 4, 0)
    rows = store.read("samples").collect()
    assert len(rows) == len({r["sample_id"] for r in rows}) == 6
    zero = [r for r in rows if r["instruction"] == "Name colour number 0."][0]
    one = [r for r in rows if r["instruction"] == "Name colour number 1."][0]
    assert zero["source_file"].endswith("a.jsonl") and zero["source_id"].endswith(":1"), zero
    assert one["source_file"].endswith("a.jsonl"), one


def test_hostile_files_add_up_against_counts_written_by_hand(spark, store, config, tmp_path, reader):
    """Through Spark and Delta: several arrays in one file, array lines, a damaged element holding nested
    records, deep nesting, a bounded expansion, and records shared across files. Every number below is
    counted from the files as written here, not from what ingest reports."""
    def rec(i):
        return {"instruction": f"Give fact number {i}.", "output": f"Fact {i}."}

    (tmp_path / "arrays.json").write_text(json.dumps([rec(0), rec(1)]) + "\n" + json.dumps([rec(2), rec(3)]))
    (tmp_path / "lines.jsonl").write_text(json.dumps([rec(3), rec(4)]) + "\n" + json.dumps(rec(5)) + "\n"
                                          + '{"instruction": ' + "[" * 50_000 + "]" * 50_000 + "}\n")
    damaged = json.dumps([rec(6), {**rec(7), "examples": [rec(100), rec(101)]}, rec(8)])
    (tmp_path / "damaged.json").write_text(damaged.replace('"Fact 7."', '"Fact 7.', 1))
    task = {"instruction": "Repeat the word.", "instances": [{"input": f"w{i}", "output": f"w{i}"} for i in range(70)]}
    (tmp_path / "tasks.jsonl").write_text(json.dumps(task) + "\n")
    names = ("arrays.json", "lines.jsonl", "damaged.json", "tasks.jsonl")
    c = stage.run(spark, store, config, given(reader, *(tmp_path / n for n in names))).counts
    # records: 4 + (2 + 1 + 1) + 3 + 1 = 12; quarantined: the deep one and the damaged one
    assert (c["records"], c["quarantined"], c["records_with_samples"]) == (12, 2, 10)
    # samples: 4 + 3 + 2 + 64 (of 70 instances) = 73; rec(3) appears twice
    assert (c["samples"], c["expansion_cut"]) == (73, 1)
    assert (c["ingested"], c["duplicate_in_batch"], c["duplicate_existing"]) == (72, 1, 0)
    assert store.count("samples") == 72
    reasons = sorted(r["reason"] for r in store.read("quarantine").collect())
    assert reasons == ["json_parse_error", "too_deep", "too_many_samples"]
    instructions = {r["instruction"] for r in store.read("samples").collect()}
    assert "Give fact number 100." not in instructions and "Give fact number 8." in instructions
    again = stage.run(spark, store, config, given(reader, tmp_path / "arrays.json")).counts
    assert (again["ingested"], again["duplicate_existing"]) == (0, 4)


# codec -> (suffix, compress): bzip2 at level 1 (100 kB blocks), so a cut file still has whole blocks
CODECS = {"gzip": (".gz", lambda b: gzip.compress(b, mtime=0)),
          "bzip2": (".bz2", lambda b: bz2.compress(b, 1)),
          "xz": (".xz", lzma.compress)}


@pytest.mark.parametrize(("reader", "codec"), [("python", "gzip"), ("hadoop", "gzip"), ("python", "bzip2"),
                                               ("hadoop", "xz")])  # each codec through each reader costs time
def test_compressed_files_stream_whole_cut_and_in_members(spark, store, config, tmp_path, reader, codec):
    """Three compressed files: two streams one after the other, cut inside its stream, and a
    pretty-printed array. Counts are those written here."""
    suffix, compress = CODECS[codec]

    def rec(i):
        return json.dumps({"instruction": f"Name the colour number {i}.", "output": f"Colour {i}."})

    members = tmp_path / f"members.jsonl{suffix}"
    members.write_bytes(compress(("\n".join(rec(i) for i in range(30)) + "\n").encode())
                        + compress(("\n".join(rec(i) for i in range(30, 50)) + "\n").encode()))
    n = 4000  # about 250 kB of text: three bzip2 blocks
    whole = compress(("\n".join(rec(i) for i in range(10_000, 10_000 + n)) + "\n").encode())
    cut = tmp_path / f"cut.jsonl{suffix}"
    cut.write_bytes(whole[: len(whole) // 2])
    pretty = tmp_path / f"pretty.json{suffix}"
    pretty.write_bytes(compress(json.dumps([json.loads(rec(i)) for i in range(500, 520)], indent=2).encode()))
    files = [members, cut, pretty]
    assert [f for f in files if not stage.plan([str(f)])[0].splittable] == files  # no byte ranges
    c = stage.run(spark, store, config, given(reader, members, cut, pretty)).counts
    samples = {r["instruction"] for r in store.read("samples").select("instruction").collect()}
    assert {f"Name the colour number {i}." for i in [*range(50), *range(500, 520)]} <= samples
    from_cut = len(samples) - 70
    assert 0 < from_cut < n  # the records before the cut, then one row for the unreadable rest
    q = store.read("quarantine").collect()
    assert [(r["reason"], r["source_file"]) for r in q] == [("corrupt_compression", cut.name)]
    assert c["records"] == 70 + from_cut + 1 and c["quarantined"] == 1 and c["ingested"] == 70 + from_cut


# ---------------------------------------------------------------- both readers, random files

LINE = st.one_of(
    st.integers(0, 10**6).map(lambda i: ("record", json.dumps({"instruction": f"Q{i}?", "output": f"A{i}."}))),
    st.integers(0, 10**6).map(lambda i: ("record", '{"instruction": "cut ' + str(i))),  # damaged
    st.integers(1, 3).map(lambda k: ("records", k)),  # an array of k records on one line
    st.just(("blank", "")),
    st.integers(200, 3000).map(lambda n: ("record", json.dumps({"instruction": "x" * n, "output": "y"}))),
    st.just(("record", '{"instruction": "bad BADBYTE bytes", "output": "z"}')),  # not UTF-8
)


def _file_bytes(lines, crlf: bool) -> tuple[bytes, int]:
    """The file, and the number of records written into it."""
    out, records = [], 0
    for kind, v in lines:
        if kind == "records":
            out.append(json.dumps([{"instruction": f"item {j}", "output": "ok"} for j in range(v)]))
            records += v
        else:
            out.append(v)
            records += kind == "record"
    text = ("\r\n" if crlf else "\n").join(out)
    return text.encode().replace(b"BADBYTE", b"\xff\xfe"), records


def _parsed(spark, files, config, split: int) -> list[tuple]:
    rows = stage.parse(spark, files, config.ingest, 500, small_bytes=10**9, split_bytes=split,
                       reader=config.platform.execution.raw_reader).collect()
    return sorted(tuple(r[k] for k in ("kind", "source_file", "locator", "line", "ordinal", "reason",
                                       "sample_id", "quarantine_id", "records")) for r in rows)


@pytest.mark.parametrize("reader", ["hadoop"])
@hsettings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@hgiven(lines=st.lists(LINE, min_size=1, max_size=40), crlf=st.booleans(), end_newline=st.booleans(),
        split=st.integers(64, 4000), gz=st.booleans())
def test_random_line_files_read_the_same_through_hadoop_as_locally(spark, config, tmp_path, lines, crlf,
                                                                    end_newline, split, gz):
    # a whole record first: a file none of whose leading records parses is refused before any reading
    lines = [("record", json.dumps({"instruction": "First?", "output": "Yes."})), *lines]
    data, records = _file_bytes(lines, crlf)
    data += b"\n" if end_newline else b""
    path = tmp_path / f"random{len(list(tmp_path.iterdir()))}.jsonl{'.gz' if gz else ''}"
    path.write_bytes(gzip.compress(data) if gz else data)
    planned = stage.plan([str(path)])
    via_uri = stage.plan(given("hadoop", path))
    assert [(f.label, f.size, f.format, f.layout, f.splittable) for f in via_uri] == \
        [(f.label, f.size, f.format, f.layout, f.splittable) for f in planned]
    local = load_config("local", [*TEST_SETTINGS, "platform.execution.raw_reader=python"])
    ours, theirs = _parsed(spark, via_uri, config, split), _parsed(spark, planned, local, split)
    assert ours == theirs
    assert sum(r[-1] or 0 for r in ours if r[0] == "file") == records  # as written above
