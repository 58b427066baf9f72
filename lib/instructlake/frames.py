"""DataFrames of rows this process holds (run records, file lists, tag maps, a driver-side graph's
components), sent to the JVM as one Arrow table.

`spark.createDataFrame(list_of_rows)` makes the DataFrame from a Python RDD: every job that reads it runs
Python workers to unpickle rows the driver already had. Those workers belong to a daemon of their own
(their environment differs from the Arrow UDFs'), so a local `pipeline run --to dedup` of 100 MB
carried a second daemon and two more workers, 0.15 GB, from its run records alone. As Arrow the rows go
straight to the JVM; no Python worker reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType


def rows_frame(spark: SparkSession, rows: Iterable[Any], schema: StructType | str) -> DataFrame:
    """spark.createDataFrame(rows, schema) for rows in this process: tuples (and Rows) by position, dicts by
    name. Raises ValueError for a row of the wrong width or a null in a non-nullable column, naming it."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    struct = schema if isinstance(schema, StructType) else _parse(schema)
    names = struct.fieldNames()
    columns: list[list] = [[] for _ in names]
    for i, row in enumerate(rows):
        values = [row.get(n) for n in names] if isinstance(row, dict) else row
        if len(values) != len(names):
            raise ValueError(f"row {i} has {len(values)} values for the {len(names)} columns "
                             f"({', '.join(names)})")
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    for field, column in zip(struct.fields, columns, strict=True):
        if not field.nullable and any(v is None for v in column):
            raise ValueError(f"column {field.name} may not be null, and a row holds a null there")
    arrow = to_arrow_schema(struct, timezone="UTC")
    table = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, arrow, strict=True)],
                                 schema=arrow)
    return spark.createDataFrame(table, struct)


def _parse(ddl: str) -> StructType:
    """A DDL row schema ('id string, n long'), parsed by the active session's JVM."""
    parsed = StructType.fromDDL(ddl)
    if not isinstance(parsed, StructType):
        raise ValueError(f"not a row schema: {ddl!r}")
    return parsed
