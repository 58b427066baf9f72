"""frames.rows_frame: rows of this process as a DataFrame, the same one createDataFrame makes, read without
a Python worker."""

from datetime import datetime, timezone

import pytest

from instructlake import schemas
from instructlake.frames import rows_frame


def lineage(df) -> str:
    return df._jdf.queryExecution().toRdd().toDebugString()


def test_rows_frame_equals_create_dataframe_and_runs_no_python(spark):
    at = datetime(2026, 12, 7, 15, 0, 21, 145733, tzinfo=timezone.utc)
    run = ("r1", "ingest", "ok", "abc", at, at, 1.5, {"records": 3}, {"samples": 2}, None, "{}", None)
    ours, theirs = rows_frame(spark, [run], schemas.RUNS), spark.createDataFrame([run], schemas.RUNS)
    assert ours.schema == theirs.schema and ours.collect() == theirs.collect()
    assert "PythonRDD" not in lineage(ours) and "PythonRDD" in lineage(theirs)
    by_name = rows_frame(spark, [{"component": "c", "id": "a"}, ("b", None)], "id string, component string")
    assert [tuple(r) for r in by_name.collect()] == [("a", "c"), ("b", None)]
    empty = rows_frame(spark, [], "i long, text string")
    assert empty.count() == 0 and empty.schema.simpleString() == "struct<i:bigint,text:string>"


def test_rows_that_do_not_fit_the_schema_are_refused_naming_what(spark):
    with pytest.raises(ValueError, match=r"row 1 has 1 values for the 2 columns \(id, component\)"):
        rows_frame(spark, [("a", "b"), ("c",)], "id string, component string")
    at = datetime.now(timezone.utc)
    with pytest.raises(ValueError, match="column run_id may not be null"):
        rows_frame(spark, [(None, "ingest", "ok", "abc", at, at, 1.0, {}, None, None, None, None)], schemas.RUNS)
