"""Ingest: chat files of six formats -> `samples` (MERGE on sample_id) and `quarantine`.

The driver checks every file first (exists, JSON, known format) so a bad file is one clear error before
anything is written. Python workers then parse the files (small ones packed together into a task, a large
plain JSON Lines file cut into byte ranges of a task each, other large files a task each), and every unit
of a file becomes one row: a sample or a quarantine row. Samples are merged
insert-only on their content hash, so re-ingesting a file adds nothing and a file with ten new records
adds ten.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
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

from instructlake import schemas
from instructlake.config import Config, IngestConfig
from instructlake.ingest.rawfile import FileFormatError, splittable
from instructlake.ingest.records import ROW_FIELDS, detect_file, parse_file
from instructlake.runs import StageResult
from instructlake.store import MergeResult, Store

log = logging.getLogger(__name__)

SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")

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
])
assert tuple(PARSED.fieldNames()) == ROW_FIELDS


@dataclass(frozen=True)
class InputFile:
    path: str
    source: str
    format: str
    label: str  # the name rows and quarantine entries refer to the file by
    size: int
    splittable: bool = False  # plain JSON Lines: may be parsed by byte range


@dataclass(frozen=True)
class Piece:
    """A whole file, or the lines of a plain JSON Lines file that begin in [start, end)."""
    file: InputFile
    start: int = 0
    end: int | None = None

    @property
    def size(self) -> int:
        return (self.file.size if self.end is None else self.end) - self.start


def find_files(paths: list[str], errors: list[str]) -> list[tuple[str, str]]:
    """(file, label) for each path; a directory contributes its *.json[l][.gz] files, recursively.
    Paths that do not exist are added to `errors`."""
    out: list[tuple[str, str]] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.is_file() and f.name.endswith(SUFFIXES))
            if not found:
                errors.append(f"{path}: directory holds no {', '.join(SUFFIXES)} files")
            out += [(str(f.resolve()), str(f.relative_to(path))) for f in found]
        elif path.exists():
            out.append((str(path.resolve()), path.name))
        else:
            errors.append(f"{path}: file does not exist")
    return out


def source_name(label: str) -> str:
    name = Path(label).name
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def plan(paths: list[str], source: str | None = None, fmt: str | None = None) -> list[InputFile]:
    """Check every file on the driver; all whole-file errors are reported together, before any write."""
    files: list[InputFile] = []
    errors: list[str] = []
    for path, label in find_files(paths, errors):
        try:
            f = detect_file(path, fmt)
            files.append(InputFile(path, source or source_name(label), f, label, Path(path).stat().st_size,
                                   splittable(path)))
        except FileFormatError as e:
            errors.append(str(e))
    if errors:
        raise FileFormatError("cannot ingest:\n  " + "\n  ".join(errors))
    return files


def split_size(files: list[InputFile], parallelism: int, max_bytes: int, min_bytes: int = 4 << 20) -> int:
    """Bytes per range, as Spark sizes its own file splits: enough ranges to use every core, none above
    `max_bytes`, none so small that per-task overhead dominates."""
    total = sum(f.size for f in files)
    return int(min(max_bytes, max(min_bytes, -(-total // max(1, parallelism)))))


def pack(files: list[InputFile], small_bytes: int, split_bytes: int | None = None) -> list[list[Piece]]:
    """Tasks of pieces: a large splittable file in ranges of about `split_bytes`, another large file whole,
    small files sharing a task up to `small_bytes`."""
    tasks: list[list[Piece]] = []
    current: list[Piece] = []
    size = 0
    for f in sorted(files, key=lambda f: -f.size):
        if split_bytes and f.splittable and f.size > split_bytes:
            n = -(-f.size // split_bytes)
            step = -(-f.size // n)
            tasks += [[Piece(f, a, min(a + step, f.size))] for a in range(0, f.size, step)]
            continue
        if f.size >= small_bytes:
            tasks.append([Piece(f)])
            continue
        if current and size + f.size > small_bytes:
            tasks.append(current)
            current, size = [], 0
        current.append(Piece(f))
        size += f.size
    if current:
        tasks.append(current)
    return tasks


def parse(spark: SparkSession, files: list[InputFile], cfg: IngestConfig, batch_rows: int,
          small_bytes: int, split_bytes: int | None = None) -> DataFrame:
    """DataFrame of PARSED rows for the files, parsed in Python workers."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    tasks = pack(files, small_bytes, split_bytes)
    rows = [(i, [(p.file.path, p.file.source, p.file.format, p.file.label, p.start, p.end) for p in t])
            for i, t in enumerate(tasks)]
    task_schema = ("task int, files array<struct<path:string, source:string, format:string, label:string, "
                   "start:long, end:long>>")
    tasks_df = spark.createDataFrame(spark.sparkContext.parallelize(rows, max(1, len(rows))), task_schema)
    arrow_schema = to_arrow_schema(PARSED)

    def run_tasks(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        wlog = logging.getLogger("instructlake.ingest.worker")
        for batch in batches:
            for task in batch.column("files").to_pylist():
                for f in task:
                    buf: list[dict] = []
                    n = 0
                    for row in parse_file(f["path"], f["source"], f["format"], cfg, f["label"], f["start"],
                                          f["end"]):
                        if row.get("meta") is not None:
                            row["meta"] = list(row["meta"].items())
                        buf.append(row)
                        n += 1
                        if len(buf) >= batch_rows:
                            yield pa.RecordBatch.from_pylist(buf, schema=arrow_schema)
                            buf = []
                    if buf:
                        yield pa.RecordBatch.from_pylist(buf, schema=arrow_schema)
                    where = "" if f["end"] is None else f" bytes {f['start']:,}-{f['end']:,}"
                    wlog.info("parsed %s%s: %d rows", f["label"], where, n)

    return tasks_df.mapInArrow(run_tasks, PARSED)


def choose_one_per_id(samples: DataFrame) -> DataFrame:
    """Within one ingest, a conversation seen twice keeps its first occurrence (source, file, position)."""
    w = Window.partitionBy("sample_id").orderBy("source", "source_file", "ordinal", "source_id")
    return samples.withColumn("_rank", F.row_number().over(w)).filter("_rank = 1").drop("_rank")


def run(spark: SparkSession, store: Store, config: Config, paths: list[str], source: str | None = None,
        fmt: str | None = None) -> StageResult:
    cfg = config.ingest
    chash = config.stage_hash("ingest")
    files = plan(paths, source, fmt)
    for i, f in enumerate(files, 1):
        log.info("file %d/%d: %s -> source %r, format %s, %.1f MB", i, len(files), f.label, f.source,
                 f.format, f.size / 1e6)
    ex = config.platform.execution
    split = split_size(files, spark.sparkContext.defaultParallelism, ex.split_bytes)
    # The Delta tables are created (or their logs read) on a driver thread while the workers parse:
    # the first Delta operation of a session costs seconds of JVM warm-up that need not wait for parsing.
    # The quarantine's version is read there too: a clean ingest writes nothing to it and reports that.
    warm: dict[str, int] = {}

    def prepare() -> None:
        for t in ("quarantine", "samples"):
            store.ensure(t)
        warm["quarantine"] = store.version("quarantine")

    ready = threading.Thread(target=prepare, daemon=True)
    ready.start()
    parsed = parse(spark, files, cfg, ex.arrow_batch_rows, ex.small_file_bytes, split)
    parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        return _write(spark, store, parsed, files, chash, ready, warm)
    finally:
        parsed.unpersist()


def _write(spark: SparkSession, store: Store, parsed: DataFrame, files: list[InputFile], chash: str,
           ready: threading.Thread | None = None, warm: dict[str, int] | None = None) -> StageResult:
    per_source = {(r["source"], r["kind"]): r["count"] for r in parsed.groupBy("source", "kind").count().collect()}
    if ready is not None:
        ready.join()  # a failure there shows again, with its own message, in the writes below
    read = sum(per_source.values())
    quarantined = sum(v for (_, k), v in per_source.items() if k == "quarantine")
    valid = read - quarantined
    log.info("parsed %d files: %d records, %d valid, %d quarantined", len(files), read, valid, quarantined)

    q = (parsed.filter("kind = 'quarantine'")
         .withColumn("stage", F.lit("ingest"))
         .withColumn("quarantined_at", F.current_timestamp())
         .select(*schemas.QUARANTINE.fieldNames()))
    if quarantined:
        q_result = store.merge("quarantine", q)
    else:  # the common clean case: no MERGE job, but the table exists so it can be listed and read
        store.ensure("quarantine")
        version = (warm or {}).get("quarantine")
        q_result = MergeResult(inserted=0, updated=0, version=store.version("quarantine") if version is None else version)

    samples = parsed.filter("kind = 'sample'")
    # one shuffle picks one row per conversation; persisted, it is counted and merged without a second one
    new_rows = (choose_one_per_id(samples)
                .withColumn("config_hash", F.lit(chash))
                .withColumn("ingested_at", F.current_timestamp())
                .select(*schemas.SAMPLES.fieldNames())).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        batch_distinct = new_rows.count()
        s_result = store.merge("samples", new_rows, source_is_materialized=True)
    finally:
        new_rows.unpersist()
    ingested = s_result.inserted
    # Distinct conversations not inserted were already in the table (from an earlier run, or from a
    # concurrent ingest that committed first).
    duplicate = valid - ingested
    counts = {
        "files": len(files), "read": read, "ingested": ingested, "duplicate": duplicate,
        "duplicate_in_batch": valid - batch_distinct, "duplicate_existing": batch_distinct - ingested,
        "quarantined": quarantined, "quarantine_new": q_result.inserted,
    }
    for (src, kind), n in sorted(per_source.items()):
        counts[f"source.{src}.{'valid' if kind == 'sample' else 'quarantined'}"] = n
    return StageResult(stage="ingest", config_hash=chash, counts=counts,
                       output_versions={"samples": s_result.version, "quarantine": q_result.version})
