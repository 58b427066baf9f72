"""Ingest's parse: tasks of file pieces -> a DataFrame of PARSED rows, parsed in Python workers.

The bytes come from the workers' own file I/O (local paths) or from instructlake-io.jar's byte-range
source in the executor JVMs (any URI Hadoop reads; platform.execution.raw_reader); either way the same
record scanner turns them into rows (records.parse_file).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
)

from instructlake import hadoopfs, schemas
from instructlake.config import IngestConfig
from instructlake.frames import rows_frame
from instructlake.ingest.pieces import InputFile, Piece
from instructlake.ingest.rawfile import Opened
from instructlake.ingest.records import ROW_FIELDS, parse_file
from instructlake.worker_memory import giving_back

# Rows of the byte-range source (Hadoop reader): a chunk of a file each.
CHUNK_BYTES = 1 << 20

PARSED = StructType([
    StructField("kind", StringType()),
    StructField("sample_id", StringType()),
    StructField("source", StringType()),
    StructField("source_id", StringType()),
    StructField("conversation", ArrayType(schemas.TURN)),
    StructField("system", StringType()),
    StructField("instruction", StringType()),
    StructField("n_turns", IntegerType()),
    StructField("lang", StringType()),
    StructField("chars", LongType()),
    StructField("meta", MapType(StringType(), StringType())),
    StructField("source_file", StringType()),
    StructField("format", StringType()),
    StructField("locator", StringType()),
    StructField("ordinal", LongType()),
    StructField("line", LongType()),
    StructField("reason", StringType()),
    StructField("detail", StringType()),
    StructField("raw", StringType()),
    StructField("raw_length", LongType()),
    StructField("quarantine_id", StringType()),
    StructField("records", LongType()),
])
assert tuple(PARSED.fieldNames()) == ROW_FIELDS


def parse_tasks(spark: SparkSession, tasks: list[list[Piece]], cfg: IngestConfig, batch_rows: int,
                reader: str = "auto") -> DataFrame:
    """DataFrame of PARSED rows for tasks of pieces (stage.pack), parsed in Python workers; the bytes are
    read by the workers themselves (local files) or by Hadoop's FileSystem in the executor JVMs
    (`uses_hadoop`)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    arrow_schema = to_arrow_schema(PARSED)
    if uses_hadoop([p.file for t in tasks for p in t], reader):
        hadoopfs.require_reader(spark)
        return _parse_hadoop(spark, tasks, cfg, batch_rows, arrow_schema)
    task_schema = StructType([StructField("task", LongType()), StructField("files", ArrayType(StructType(
        [StructField(k, StringType()) for k in ("path", "source", "format", "label")]
        + [StructField(k, LongType()) for k in ("start", "end")])))])
    task_rows = [(i, [{"path": p.file.path, "source": p.file.source, "format": p.file.format,
                       "label": p.file.label, "start": p.start, "end": p.end} for p in t])
                 for i, t in enumerate(tasks)]
    # One partition per task: a range of task ids, one per partition, joined with the task rows broadcast
    # (the stream side keeps the range's partitions). The rows go to the JVM as Arrow (rows_frame): a
    # DataFrame made from Python rows (an RDD or a list) is a Python RDD, and each task then started a second
    # Python worker beside the parsing one to unpickle its row: 0.1 GB more in the process tree.
    ids = spark.range(0, len(tasks), 1, max(1, len(tasks)))
    tasks_df = ids.join(F.broadcast(rows_frame(spark, task_rows, task_schema)), F.col("id") == F.col("task"))

    @giving_back
    def run_tasks(batches):
        for batch in batches:
            for task in batch.column("files").to_pylist():
                for f in task:
                    rows = parse_file(f["path"], f["source"], f["format"], cfg, f["label"], f["start"],
                                      f["end"])
                    yield from _batches(rows, f["label"], f["start"], f["end"], arrow_schema, batch_rows)

    return tasks_df.select("files").mapInArrow(run_tasks, PARSED)


def uses_hadoop(files: list[InputFile], reader: str) -> bool:
    """`hadoop`, or `auto` with a URI among the files (platform.execution.raw_reader)."""
    return reader == "hadoop" or (reader == "auto" and any(hadoopfs.is_uri(f.path) for f in files))


def _uri(path: str) -> str:
    return path if hadoopfs.is_uri(path) else Path(path).resolve().as_uri()


def _parse_hadoop(spark: SparkSession, tasks: list[list[Piece]], cfg: IngestConfig, batch_rows: int,
                  arrow_schema) -> DataFrame:
    """The pieces' bytes from the byte-range source (one Spark partition per task), parsed as they come."""
    pieces = [(i, p) for i, t in enumerate(tasks) for p in t]
    spec = [(i, _uri(p.file.path), p.start, p.end) for i, p in pieces]
    meta = [(p.file.source, p.file.format, p.file.label, p.file.layout, p.start, p.end) for _, p in pieces]
    options = hadoopfs.source_options(spec, CHUNK_BYTES)
    raw = spark.read.format(hadoopfs.SOURCE_CLASS).options(**options).load()

    @giving_back
    def run_pieces(batches):
        for _, k, prefix, stream in hadoopfs.pieces_of(batches):
            source, fmt, label, kind, start, end = meta[k]
            opened = Opened(label, stream, kind, hadoopfs.piece_range(start, end).sent_from, prefix)
            rows = parse_file(opened, source, fmt, cfg, label, start, end)
            yield from _batches(rows, label, start, end, arrow_schema, batch_rows)

    return raw.mapInArrow(run_pieces, PARSED)


def _batches(rows: Iterator[dict], label: str, start: int, end: int | None, arrow_schema,
             batch_rows: int) -> Iterator:
    """Arrow batches of PARSED rows, `batch_rows` at most each; logs the piece's row count."""
    import pyarrow as pa

    buf: list[dict] = []
    n = 0
    for row in rows:
        if row.get("meta") is not None:
            row["meta"] = list(row["meta"].items())
        buf.append(row)
        n += 1
        if len(buf) >= batch_rows:
            yield pa.RecordBatch.from_pylist(buf, schema=arrow_schema)
            buf = []
    if buf:
        yield pa.RecordBatch.from_pylist(buf, schema=arrow_schema)
    where = "" if end is None else f" bytes {start:,}-{end:,}"
    logging.getLogger("instructlake.ingest.worker").info("parsed %s%s: %d rows", label, where, n)
