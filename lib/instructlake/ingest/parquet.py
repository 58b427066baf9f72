"""Parquet files: one record per row, read a batch of rows at a time, never fatal inside the file.

Many instruction sets ship as Parquet (a hub dataset's `data/train-*.parquet`, Spark's own output). A row
becomes the same JSON-like record a JSON file's object would be (columns as keys, lists and structs
nested, null columns left out), so format detection, conversion, validation and quarantine are the JSON
path's. Files are told by their magic number (`PAR1`), not by name, and are never cut into byte ranges: a
Parquet file's index is its footer, at the end.

A row group that cannot be decoded (a damaged page) gives one `corrupt_parquet` record for the rows it
had not yet given, and the scan goes on with the next group; a file whose footer cannot be read (cut
short, or not Parquet at all) is a whole-file error, raised as FileFormatError naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from instructlake import hadoopfs
from instructlake.ingest.rawfile import FileFormatError, Opened, open_raw
from instructlake.ingest.window import Limits, Raw

MAGIC = b"PAR1"
SUFFIX = ".parquet"
LAYOUT = "parquet"  # the layout a Parquet file's pieces carry (rawfile's are 'lines' and 'document')
CODEC_TAGS = (".snappy", ".gz", ".zstd", ".lz4", ".brotli", ".lzo")
# rows turned into Python values at a time (pyarrow itself decodes a whole row group: a 100 MB group of
# text took 130 MB while its rows were read)
BATCH_ROWS = 256


def is_parquet(path: Any) -> bool:
    """True for a file that starts with Parquet's magic number (an Opened stream: by its layout)."""
    if isinstance(path, Opened):
        return path.layout == LAYOUT
    with open_raw(path) as f:
        return f.read(len(MAGIC)) == MAGIC


def source_name(name: str) -> str:
    """A Parquet file's name without .parquet and the codec tag Spark's writers put before it
    (part-00000-....snappy.parquet)."""
    stem = name[: -len(SUFFIX)] if name.lower().endswith(SUFFIX) else name
    for tag in CODEC_TAGS:
        if stem.lower().endswith(tag):
            return stem[: -len(tag)]
    return stem


def _errors() -> tuple[type[BaseException], ...]:
    import pyarrow as pa

    return (pa.ArrowException, OSError, ValueError, EOFError)


class ParquetScan:
    """The rows of one Parquet file as Raw records in file order; `.records` counts those found so far
    (a row, or one unreadable rest of a row group)."""

    def __init__(self, path: Any, limits: Limits | None = None, batch_rows: int = BATCH_ROWS):
        self.path = path
        self.limits = limits or Limits()
        self.batch_rows = batch_rows
        self.records = 0
        self.kind = LAYOUT
        self._source: Any = None

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None

    def open(self):
        """The pyarrow ParquetFile; FileFormatError when its footer cannot be read."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            if isinstance(self.path, Opened):  # an executor's stream is read once, front to back
                self._source = pa.BufferReader(self.path.stream.read())
            elif hadoopfs.is_uri(str(self.path)):
                self._source = pa.PythonFile(hadoopfs.open_raw(str(self.path), seekable=True), mode="r")
            else:
                self._source = pa.OSFile(str(Path(self.path)), mode="r")
            return pq.ParquetFile(self._source)
        except _errors() as e:
            self.close()
            raise FileFormatError(f"{self.path}: not a readable Parquet file ({e})") from None

    def __iter__(self) -> Iterator[Raw]:
        try:
            pf = self.open()
            row = 0
            for g in range(pf.metadata.num_row_groups):
                n = pf.metadata.row_group(g).num_rows
                done = 0
                try:
                    for batch in pf.iter_batches(self.batch_rows, row_groups=[g], use_threads=False):
                        for value in batch.to_pylist():
                            yield self._row(value, row + done)
                            done += 1
                except _errors() as e:
                    yield self._unreadable(g, row + done, n - done, e)
                row += n
        finally:
            self.close()

    def _row(self, row: dict, index: int) -> Raw:
        self.records += 1
        # every row has every column; a null one is a field this record does not have, as a JSON object
        # would leave it out (a null `conversations` beside `instruction` must not make a row ShareGPT)
        value = {k: v for k, v in row.items() if v is not None}
        text = json.dumps(value, ensure_ascii=False, default=str)
        size = len(text.encode("utf-8", errors="surrogatepass"))
        return Raw(f"row:{index + 1}", None, text[: self.limits.keep_chars], size, value=value, ordinal=index)

    def _unreadable(self, group: int, first: int, rows: int, e: BaseException) -> Raw:
        self.records += 1
        said = "".join(c if c.isprintable() else " " for c in str(e)[:300])
        detail = (f"row group {group}: rows {first + 1:,}-{first + rows:,} ({rows:,}) cannot be decoded "
                  f"({type(e).__name__}: {' '.join(said.split())})")
        return Raw(f"row:{first + 1}", None, "", 0, ordinal=first, error=("corrupt_parquet", detail))


def sniff(path: Any, records: int = 20) -> list[dict]:
    """The first rows of a Parquet file, for format detection; FileFormatError when it has none."""
    scan = ParquetScan(path)
    out: list[dict] = []
    try:
        for raw in scan:
            if raw.error is None:
                out.append(raw.value)
            if len(out) >= records:
                break
    finally:
        scan.close()
    if not out:
        raise FileFormatError(f"{path}: the Parquet file holds no readable rows")
    return out
