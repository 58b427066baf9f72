"""Ingest: chat files of six formats, JSON or Parquet -> `samples` (MERGE on sample_id) and `quarantine`.

The driver checks every file first (exists, JSON or Parquet, known format) so a bad file is one clear
error before anything is written. Python workers then parse the files (small ones packed together into a
task, a large plain JSON Lines file cut into byte ranges of a task each, other large files a task each):
every record becomes sample rows or one quarantine row, and every file (or range) a row with the number of
records its scanner found. Samples are merged insert-only on their content hash, so re-ingesting a file
adds nothing and a file with ten new records adds ten.

Two identities are checked, each side counted on its own, and ingest fails naming the file if one breaks:
records found (the scanner) = records quarantined + records that gave samples, per file, before anything
is written; samples = ingested (the MERGE's inserts) + duplicate in the batch (rows the one-per-id window
set aside) + duplicate of a stored sample (ids found in the table as it was before the MERGE) + raced (ids
a concurrent writer inserted meanwhile: at most the rows other commits inserted, from Delta's history).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake import hadoopfs, schemas
from instructlake.background import Background
from instructlake.config import Config, IngestConfig
from instructlake.ingest import compression, parquet
from instructlake.ingest.pieces import InputFile, Piece
from instructlake.ingest.rawfile import FileFormatError, is_compressed
from instructlake.ingest.read import parse_tasks
from instructlake.ingest.records import EXPANSION_CUT, inspect_file
from instructlake.runs import StageResult
from instructlake.store import MergeResult, Store

log = logging.getLogger(__name__)

# conversations seen more than once in one ingest, at most, that are broadcast to pick their first rows
# (an id and a key: about 150 bytes each); more are joined with a shuffle
BROADCAST_MAX_IDS = 500_000
KINDS = (".json", ".jsonl", ".ndjson")
SUFFIXES = (*(k + z for z in ("", *compression.SUFFIXES) for k in KINDS), parquet.SUFFIX)
# what a directory gives
READ = f"{'/'.join(KINDS)} files (plain or {'/'.join(compression.SUFFIXES)}) and {parquet.SUFFIX} files"


def find_files(paths: list[str], errors: list[str]) -> list[tuple[str, str, int]]:
    """(file, label, size) for each path, local or a URI Hadoop reads; a directory contributes its
    *.json[l] and *.ndjson files (plain, .gz, .bz2, .xz) and *.parquet files, recursively, and its other
    files are named in one warning. Paths that do not exist are added to `errors`."""
    out: list[tuple[str, str, int]] = []
    for p in paths:
        if hadoopfs.is_uri(p):
            out += _find_uri(p, errors)
            continue
        path = Path(p)
        if path.is_dir():
            files = [str(f.relative_to(path)) for f in sorted(path.rglob("*")) if f.is_file()]
            found = _read_here(str(path), files, errors)
            out += [(str((path / f).resolve()), f, (path / f).stat().st_size) for f in found]
        elif path.exists():
            out.append((str(path.resolve()), path.name, path.stat().st_size))
        else:
            errors.append(f"{path}: file does not exist")
    return out


def _find_uri(uri: str, errors: list[str]) -> list[tuple[str, str, int]]:
    st = hadoopfs.status(uri)
    if st is None:
        errors.append(f"{uri}: file does not exist")
        return []
    if not st.is_dir:
        return [(st.path, st.path.rstrip("/").rsplit("/", 1)[-1], st.size)]
    root = st.path.rstrip("/") + "/"
    listed = {f.path[len(root):]: f for f in hadoopfs.list_files(uri) if f.path.startswith(root)}
    found = _read_here(uri, list(listed), errors)
    return [(listed[f].path, f, listed[f].size) for f in found]


def ingestible(name: str) -> bool:
    """A name ingest reads in a directory: JSON, JSON Lines or NDJSON, plain or compressed, or Parquet, in
    any case."""
    return name.lower().endswith(SUFFIXES)


def _marker(relative: str) -> bool:
    """Files a data directory holds beside its records that are nobody's data: Hadoop's and Spark's
    markers and checksums (_SUCCESS, .part-0.crc), hidden files, and anything under a hidden folder."""
    return any(part.startswith((".", "_")) for part in relative.split("/"))


def _read_here(directory: str, relative: list[str], errors: list[str]) -> list[str]:
    """The files of a directory listing that ingest reads; the others are named in a warning, since a
    CSV or Avro file dropped beside the JSON would otherwise give no rows and no word."""
    found = [f for f in relative if ingestible(f)]
    if not found:
        errors.append(f"{directory}: directory holds no {READ}")
    warn_not_read(directory, [f for f in relative if not ingestible(f) and not _marker(f)])
    return found


_warned: set[tuple[str, tuple[str, ...]]] = set()


def warn_not_read(directory: str, names: list[str], show: int = 10) -> None:
    """One warning per directory and set of names in a process: `pipeline run` lists its inputs to
    plan and ingest lists them again."""
    key = (directory, tuple(names))
    if not names or key in _warned:
        return
    _warned.add(key)
    more = f" and {len(names) - show} more" if len(names) > show else ""
    log.warning("%s: %d file(s) not read, as ingest reads only %s: %s%s", directory, len(names), READ,
                ", ".join(names[:show]), more)


def source_name(label: str) -> str:
    name = Path(label).name
    if name.lower().endswith(parquet.SUFFIX):
        return parquet.source_name(name)
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def plan(paths: list[str], source: str | None = None, fmt: str | None = None) -> list[InputFile]:
    """Check every file on the driver; all whole-file errors are reported together, before any write."""
    files: list[InputFile] = []
    errors: list[str] = []
    for path, label, size in find_files(paths, errors):
        try:
            f, kind = inspect_file(path, fmt)
            plain_lines = kind == "lines" and not is_compressed(path)
            files.append(InputFile(path, source or source_name(label), f, label, size, plain_lines, kind))
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
          small_bytes: int, split_bytes: int | None = None, reader: str = "auto") -> DataFrame:
    """DataFrame of PARSED rows for the files (ingest.read), packed into tasks."""
    return parse_tasks(spark, pack(files, small_bytes, split_bytes), cfg, batch_rows, reader)


class AccountingError(RuntimeError):
    """Records or samples that do not add up: something was lost or written twice."""


def first_key() -> Column:
    """The order that picks a conversation's first occurrence in one ingest: (source, file, position),
    then the row's place in the parse, so that no two rows tie."""
    return F.struct("source", "source_file", "ordinal", "source_id", "_row")


def per_file_counts(parsed: DataFrame) -> dict[str, dict[str, int]]:
    """For each file label: records the scanner found, records quarantined, records that gave samples,
    sample rows, and rows of expansion cut off (one Spark job)."""
    kind, reason = F.col("kind"), F.col("reason")
    rows = parsed.groupBy("source_file").agg(
        F.sum(F.when(kind == "file", F.col("records"))).alias("records"),
        F.count(F.when((kind == "quarantine") & (reason != EXPANSION_CUT), 1)).alias("quarantined"),
        F.sum(F.when(kind == "sample", F.col("records"))).alias("with_samples"),
        F.count(F.when(kind == "sample", 1)).alias("samples"),
        F.count(F.when(reason == EXPANSION_CUT, 1)).alias("expansion_cut"),
    ).collect()
    keys = ("records", "quarantined", "with_samples", "samples", "expansion_cut")
    return {r["source_file"]: {k: int(r[k] or 0) for k in keys} for r in rows}


def check_records(per_file: dict[str, dict[str, int]], files: list[InputFile]) -> None:
    """Every record found ends as samples or as one quarantine row; a file whose scan never reported
    counts as losing all its records."""
    bad = []
    for f in files:
        c = per_file.get(f.label, {"records": 0, "quarantined": 0, "with_samples": 0})
        if c["records"] != c["quarantined"] + c["with_samples"] or f.label not in per_file:
            bad.append(f"{f.label}: the scanner found {c['records']:,} records, but {c['quarantined']:,} "
                       f"were quarantined and {c['with_samples']:,} gave samples")
    if bad:
        raise AccountingError("ingest does not account for every record; nothing was written:\n  "
                              + "\n  ".join(bad))


def run(spark: SparkSession, store: Store, config: Config, paths: list[str], source: str | None = None,
        fmt: str | None = None, license_id: str | None = None) -> StageResult:
    cfg = config.ingest
    chash = config.stage_hash("ingest")
    files = plan(paths, source, fmt)
    if license_id:
        from instructlake import licenses

        licenses.record(spark, store, {f.source for f in files}, license_id)
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
        # Delta builds a version's file list with a Spark job of its own the first time it is asked
        # (about 4 s in a new session); asked here, the duplicate check and the MERGE find it built
        store.read("samples", version=store.version("samples")).inputFiles()

    ready = Background("prepare the Delta tables", prepare)
    ready.start()
    parsed = parse(spark, files, cfg, ex.arrow_batch_rows, ex.small_file_bytes, split, ex.raw_reader)
    # _DESER: the cached column batches are kept as they are, not passed through Java serialization on
    # the way in and out (what DataFrame.cache() does too); the same bytes in memory. At 1 GB the parse
    # and its counts took 26.3-27.1 s against 28.0-30.5 s, and each later scan of the cache 0.5 s less.
    parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK_DESER)
    try:
        return _write(spark, store, parsed, files, chash, ready, warm)
    finally:
        parsed.unpersist()


def _write(spark: SparkSession, store: Store, parsed: DataFrame, files: list[InputFile], chash: str,
           ready: Background | None = None, warm: dict[str, int] | None = None) -> StageResult:
    per_file = per_file_counts(parsed)
    check_records(per_file, files)
    # counted while the Delta tables are still being prepared: the job reads no table
    rows, per_id = _ids_of(parsed.filter("kind = 'sample'"))
    if ready is not None:
        try:
            ready.result()
        except Exception as e:  # noqa: BLE001 - the writes below meet it again, with their own message
            log.warning("preparing the Delta tables beside the parse failed: %s", e)
    total = {k: sum(c[k] for c in per_file.values()) for k in next(iter(per_file.values()), {})}
    records, quarantined = total.get("records", 0), total.get("quarantined", 0)
    n_samples = total.get("samples", 0)
    log.info("parsed %d files: %d records, %d quarantined, %d gave %d samples", len(files), records,
             quarantined, total.get("with_samples", 0), n_samples)

    q = (parsed.filter("kind = 'quarantine'")
         .withColumn("stage", F.lit("ingest"))
         .withColumn("quarantined_at", F.current_timestamp())
         .select(*schemas.QUARANTINE.fieldNames()))
    if quarantined or total.get("expansion_cut"):
        q_result = store.merge("quarantine", q)
    else:  # the common clean case: no MERGE job, but the table exists so it can be listed and read
        store.ensure("quarantine")
        version = (warm or {}).get("quarantine")
        q_result = MergeResult(inserted=0, updated=0, version=store.version("quarantine") if version is None else version)

    s_result, dup = _merge_samples(store, rows, per_id, chash, n_samples)
    counts = {
        "files": len(files), "records": records, "records_with_samples": total.get("with_samples", 0),
        "quarantined": quarantined, "samples": n_samples, "expansion_cut": total.get("expansion_cut", 0),
        "ingested": s_result.inserted, "duplicate": sum(dup.values()), **dup,
        "quarantine_new": q_result.inserted,
    }
    label_source = {f.label: f.source for f in files}
    for label, c in sorted(per_file.items()):
        src = label_source.get(label, label)
        for k in ("records", "samples", "quarantined"):
            counts[f"source.{src}.{k}"] = counts.get(f"source.{src}.{k}", 0) + c[k]
    return StageResult(stage="ingest", config_hash=chash, counts=counts,
                       output_versions={"samples": s_result.version, "quarantine": q_result.version})


def _ids_of(samples: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(the sample rows numbered, per id: its rows and its first row's key), the second checkpointed. The
    parse is persisted: the row numbers are the same in every job that reads it."""
    rows = samples.withColumn("_row", F.monotonically_increasing_id())
    per_id = (rows.groupBy("sample_id").agg(F.count(F.lit(1)).alias("n"), F.min(first_key()).alias("first"))
              .localCheckpoint())
    return rows, per_id


def _merge_samples(store: Store, rows: DataFrame, per_id: DataFrame, chash: str,
                   n_samples: int) -> tuple[MergeResult, dict]:
    """MERGE the first occurrence of each conversation (rows and per_id from _ids_of); the duplicates, each
    kind counted where it is found. Raises AccountingError when samples != inserted + the duplicates.

    Only the ids and the order columns travel to find the first occurrences (a shuffle of whole rows
    and a sort of 1 GB of text cost half a minute at 1 GB of input): the few conversations seen more than
    once in the batch are broadcast with their first row's key, and every other row is its own first."""
    t0 = time.time()
    store.ensure("samples")
    before = store.version("samples")
    firsts, in_batch, existing, repeated = _duplicate_counts(store, per_id, before)
    log.info("duplicates counted: %d conversations, %d seen again in this batch, %d already stored (%.1fs)",
             firsts, in_batch, existing, time.time() - t0)
    t0 = time.time()
    repeats = per_id.filter("n > 1").select("sample_id", "first")
    repeats = F.broadcast(repeats) if repeated <= BROADCAST_MAX_IDS else repeats
    new_rows = (rows.join(repeats, "sample_id", "left")
                .filter(F.col("first").isNull() | (first_key() == F.col("first")))
                .withColumn("config_hash", F.lit(chash))
                .withColumn("ingested_at", F.current_timestamp())
                .select(*schemas.SAMPLES.fieldNames()))
    # one row per id by construction (the first key is unique per row), so no safety-net shuffle
    result = store.merge("samples", new_rows, source_is_materialized=True, distinct_keys=True)
    log.info("samples: %d new merged (%.1fs)", result.inserted, time.time() - t0)
    after = store.version("samples")
    raced = firsts - result.inserted - existing
    dup = {"duplicate_in_batch": in_batch, "duplicate_existing": existing, "duplicate_raced": raced}
    others = inserted_by_others(store, before, after, result.inserted) if raced > 0 else 0
    if firsts + in_batch != n_samples or raced < 0 or raced > others:
        raise AccountingError(
            f"ingest: {n_samples:,} samples parsed, but {result.inserted:,} were inserted, {in_batch:,} are "
            f"duplicates within the batch, {existing:,} were already stored and {raced:,} unaccounted for "
            f"(samples v{before} -> v{after}; other writers inserted {others:,} rows meanwhile)")
    return result, dup


def _duplicate_counts(store: Store, per_id: DataFrame, before: int) -> tuple[int, int, int, int]:
    """(conversations, later occurrences in the batch, conversations already in `samples` at version
    `before`, conversations seen more than once in the batch) from the per-id counts, in one Spark job;
    no join when that version holds no files."""
    stored = store.read("samples", version=before)
    ids = per_id.select("sample_id", "n")
    if stored.inputFiles():
        ids = ids.join(stored.select("sample_id", F.lit(True).alias("stored")), "sample_id", "left")
    else:
        ids = ids.withColumn("stored", F.lit(None).cast("boolean"))
    r = ids.agg(F.count(F.lit(1)).alias("ids"), F.sum("n").alias("rows"), F.count("stored").alias("stored"),
                F.count(F.when(F.col("n") > 1, 1)).alias("repeated")).first()
    n_ids, n_rows = int(r["ids"]), int(r["rows"] or 0)
    return n_ids, n_rows - n_ids, int(r["stored"]), int(r["repeated"])


def inserted_by_others(store: Store, before: int, after: int | None, ours: int) -> int:
    """Rows the commits after version `before` (up to `after`) inserted, less this ingest's own: what
    concurrent writers can have taken from this batch. From Delta's history, not from this batch."""
    if after is None or after <= before:
        return 0
    commits = (store.history("samples").filter((F.col("version") > before) & (F.col("version") <= after))
               .select("operationMetrics").collect())
    total = 0
    for c in commits:
        m = c["operationMetrics"] or {}
        total += int(m.get("numTargetRowsInserted") or m.get("numOutputRows") or 0)
    return max(0, total - ours)
