"""The pipeline's raw inputs: which files under its input paths are new or changed since they were last
ingested (under the same ingest config), and the record of those ingested (`ingested_files`). A
scheduled refresh over a landing directory reads only these."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import functions as F

from instructlake import runs, schemas
from instructlake.config import Config
from instructlake.frames import rows_frame
from instructlake.store import Store


def file_identity(path: str) -> list:
    """[size, mtime in s] of a local file or a URI, or [None, None] when it is gone."""
    from instructlake import hadoopfs

    if hadoopfs.is_uri(path):
        st = hadoopfs.status(path)
        return [None, None] if st is None else [st.size, st.modified]
    try:
        st = Path(path).stat()
        return [st.st_size, int(st.st_mtime)]
    except OSError:
        return [None, None]


def input_files(paths: Sequence[str]) -> list[tuple[str, int, int]]:
    """(path, size, mtime) of every ingestible file under the paths, sorted."""
    from instructlake.ingest.stage import find_files

    errors: list[str] = []
    # absolute paths, or URIs as Hadoop names them
    found = sorted({p for p, _, _ in find_files(list(paths), errors)})
    if errors:
        from instructlake.ingest.rawfile import FileFormatError

        raise FileFormatError("cannot read the pipeline inputs:\n  " + "\n  ".join(errors))
    return [(p, *file_identity(p)) for p in found]


def pending_files(store: Store, config: Config, paths: Sequence[str]) -> list[tuple[str, int, int]]:
    """Input files not ingested yet under this ingest config, or changed (size or mtime) since."""
    files = input_files(paths)
    if not files or not store.exists("ingested_files"):
        return files
    chash = config.stage_hash("ingest")
    done = {(r["path"], r["size"], r["modified"]) for r in
            store.read("ingested_files").filter(F.col("config_hash") == chash).collect()}
    return [f for f in files if tuple(f) not in done]


def mark_ingested(store: Store, config: Config, files: Sequence[tuple[str, int, int]], run_id: str) -> None:
    rows = [(p, int(s), int(m), config.stage_hash("ingest"), run_id, runs.now()) for p, s, m in files]
    store.merge("ingested_files", rows_frame(store.spark, rows, schemas.INGESTED_FILES))
