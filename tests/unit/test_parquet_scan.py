"""The Parquet scanner on random files: every row comes out once, in order, whatever the row groups,
codec and batch size; a damaged row group costs its own rows only; a cut or foreign file is one clear
whole-file error, never another exception."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instructlake.ingest import parquet
from instructlake.ingest.rawfile import FileFormatError
from instructlake.ingest.records import inspect_file

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
TURN = st.fixed_dictionaries({"from": st.sampled_from(["human", "gpt"]), "value": TEXT})
ROW = st.fixed_dictionaries({
    "instruction": st.one_of(st.none(), TEXT), "output": st.one_of(st.none(), TEXT),
    "conversations": st.one_of(st.none(), st.lists(TURN, max_size=4)),
    "score": st.one_of(st.none(), st.floats(allow_nan=False)),
})
SCHEMA = pa.schema([("instruction", pa.string()), ("output", pa.string()),
                    ("conversations", pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))),
                    ("score", pa.float64())])


def write(path, rows, group_rows: int, codec: str = "snappy"):
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path, row_group_size=group_rows,
                   compression=codec)
    return path


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROW, min_size=1, max_size=60), group_rows=st.integers(1, 25), batch=st.integers(1, 30),
       codec=st.sampled_from(["none", "snappy", "gzip", "zstd"]))
def test_every_row_once_in_order(tmp_path, rows, group_rows, batch, codec):
    path = write(tmp_path / "r.parquet", rows, group_rows, codec)
    scan = parquet.ParquetScan(str(path), batch_rows=batch)
    out = list(scan)
    # the generator's own rows (null columns left out), not a second read of the file
    assert [r.value for r in out] == [{k: v for k, v in r.items() if v is not None} for r in rows]
    assert scan.records == len(rows)
    assert [r.locator for r in out] == [f"row:{i + 1}" for i in range(len(rows))]
    assert [r.ordinal for r in out] == list(range(len(rows))) and not any(r.error for r in out)


def corrupt_group(path, group: int) -> None:
    """Overwrite the start of a row group's first column chunk (its page header)."""
    col = pq.ParquetFile(path).metadata.row_group(group).column(0)
    start = col.dictionary_page_offset or col.data_page_offset
    data = bytearray(path.read_bytes())
    data[start:start + 32] = b"\xff" * 32
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("group", [0, 1, 2])
def test_a_damaged_row_group_costs_its_own_rows(tmp_path, group):
    rows = [{"instruction": f"Q{i}?", "output": f"A{i}.", "conversations": None, "score": float(i)}
            for i in range(30)]
    path = write(tmp_path / "d.parquet", rows, 10)
    corrupt_group(path, group)
    scan = parquet.ParquetScan(str(path), batch_rows=4)
    out = list(scan)
    good = [r.value["instruction"] for r in out if r.error is None]
    assert good == [r["instruction"] for r in rows[:group * 10] + rows[(group + 1) * 10:]]
    bad = [r for r in out if r.error]
    assert len(bad) == 1 and bad[0].error[0] == "corrupt_parquet"
    assert bad[0].locator == f"row:{group * 10 + 1}"
    assert f"rows {group * 10 + 1}-{group * 10 + 10} (10)" in bad[0].error[1]
    assert scan.records == 21  # twenty rows and one unreadable rest of a group


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 0.999), junk=st.binary(max_size=200))
def test_cut_or_foreign_files_are_one_clear_error(tmp_path, cut, junk):
    rows = [{"instruction": f"Q{i}?", "output": "A.", "conversations": None, "score": None}
            for i in range(50)]
    whole = write(tmp_path / "w.parquet", rows, 7).read_bytes()
    cut_file = tmp_path / "cut.parquet"
    cut_file.write_bytes(whole[: int(len(whole) * cut)])
    foreign = tmp_path / "foreign.parquet"
    foreign.write_bytes(parquet.MAGIC + junk)
    for f in (cut_file, foreign):
        with pytest.raises(FileFormatError, match=f.name):
            list(parquet.ParquetScan(str(f)))
        with pytest.raises(FileFormatError, match=f.name):
            inspect_file(str(f))


def test_format_detection_and_names(tmp_path):
    chat = [{"instruction": None, "output": None, "score": None,
             "conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]}]
    assert inspect_file(str(write(tmp_path / "c.parquet", chat, 5))) == ("sharegpt", "parquet")
    plain = [{"instruction": "Q?", "output": "A.", "conversations": None, "score": None}]
    assert inspect_file(str(write(tmp_path / "p.parquet", plain, 5))) == ("alpaca", "parquet")
    (tmp_path / "j.parquet").write_text('{"instruction": "Q?", "output": "A."}\n')
    with pytest.raises(FileFormatError, match="magic number"):
        inspect_file(str(tmp_path / "j.parquet"))
    empty = tmp_path / "e.parquet"
    pq.write_table(pa.Table.from_pylist([], schema=SCHEMA), empty)
    with pytest.raises(FileFormatError, match="no readable rows"):
        inspect_file(str(empty))
    assert parquet.source_name("part-00000-1f2e.c000.snappy.parquet") == "part-00000-1f2e.c000"
    assert parquet.source_name("train-00000-of-00002.parquet") == "train-00000-of-00002"


def test_a_benchmark_in_parquet_loads_its_prompts(tmp_path):
    """A hub benchmark as it ships (GSM8K's question/answer columns): its questions are the prompts."""
    from instructlake.decontam.benchmarks import read_file

    rows = [{"question": f"Tom has {i} apples and buys 3 more. How many has he?", "answer": f"{i + 3}"}
            for i in range(12)] + [{"question": None, "answer": "42"}]
    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=5)
    items, bad = read_file(str(path))
    want = [(str(i), r["question"]) for i, r in enumerate(rows[:12])]
    assert [(it.item_id, it.prompt) for it in items] == want
    assert [(raw.locator, reason) for raw, reason, _ in bad] == [("row:13", "missing_field")]
