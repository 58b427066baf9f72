"""Files through Hadoop's FileSystem, so ingest reads and the model stages keep their models wherever the
cluster can reach (s3a://, abfss://, gs://, dbfs:/, hdfs://, file:).

On the driver, through the session's JVM: listing, sizes and byte streams for ingest's format checks, and
model directories uploaded (train-reference) and handed to the executors (`ship_dir`: Spark's addFile, so
each executor keeps a local copy). Raw input bytes on the executors come through instructlake-io.jar's
byte-range source (jvm/io, `io.instructlake.spark.ByteRanges`):
raw bytes of whole files or byte ranges, one chunk per row, that the Python workers hand to the same record
scanner as a local file (`rawfile.Opened`). Nothing is decoded or decompressed in the JVM, so damaged, cut
and compressed files behave as they do on a local disk.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

SOURCE_CLASS = "io.instructlake.spark.ByteRanges"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")


class HadoopReaderMissing(RuntimeError):
    """The session's JVM has no instructlake-io.jar: only local files can be read."""


def is_uri(path: str) -> bool:
    """A path with a scheme (s3a://..., dbfs:/..., file:/...): read through Hadoop's FileSystem."""
    return bool(_SCHEME.match(str(path)))


def _jvm():
    from pyspark import SparkContext

    sc = SparkContext._active_spark_context
    if sc is None:
        raise RuntimeError("reading a URI needs a running Spark session")
    return sc._jvm, sc._jsc.hadoopConfiguration()


def _session_fs_conf() -> dict[str, str]:
    """`fs.*` settings made on the session (spark.conf.set), which Spark's own file sources honour too."""
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is None:
        return {}
    return {k: v for k, v in spark.conf.getAll.items() if k.startswith("fs.")}


def _fs_path(path: str):
    jvm, conf = _jvm()
    extra = _session_fs_conf()
    if extra:
        conf = jvm.org.apache.hadoop.conf.Configuration(conf)
        for k, v in extra.items():
            conf.set(k, v)
    p = jvm.org.apache.hadoop.fs.Path(path)
    return p.getFileSystem(conf), p


@dataclass(frozen=True)
class Status:
    path: str  # fully qualified, as Hadoop names it
    size: int
    is_dir: bool
    modified: int = 0  # seconds since the epoch


def status(path: str) -> Status | None:
    """The file or directory at a URI; None when there is nothing there."""
    fs, p = _fs_path(path)
    try:
        st = fs.getFileStatus(p)
    except Exception as e:  # noqa: BLE001 - Py4J wraps java.io.FileNotFoundException
        if "FileNotFoundException" in str(e):
            return None
        raise
    return Status(st.getPath().toString(), int(st.getLen()), bool(st.isDirectory()),
                  int(st.getModificationTime()) // 1000)


def upload_dir(local: str, uri: str) -> None:
    """A local directory's files to `uri` (replaced: whatever was there is deleted first)."""
    fs, p = _fs_path(uri)
    jvm, conf = _jvm()
    if fs.exists(p):
        fs.delete(p, True)
    src = jvm.org.apache.hadoop.fs.Path(Path(local).resolve().as_uri())
    # FileUtil.copy streams each file through create(): S3A's own copyFromLocalFile waits forever on its
    # bounded upload pool here (seen with hadoop-aws 3.5.0)
    jvm.org.apache.hadoop.fs.FileUtil.copy(src.getFileSystem(conf), src, fs, p, False, conf)


def tree_identity(uri: str) -> list[tuple[str, int, int]] | None:
    """(name, size, mtime in s) of the files under a directory URI, or None when it is not a directory."""
    st = status(uri)
    if st is None or not st.is_dir:
        return None
    root = st.path.rstrip("/") + "/"
    fs, p = _fs_path(uri)
    it = fs.listFiles(p, True)
    out = []
    while it.hasNext():
        f = it.next()
        name = f.getPath().toString()[len(root):]
        out.append((name, int(f.getLen()), int(f.getModificationTime()) // 1000))
    return sorted(out)


# directory URI -> its identity when this session handed it to the executors
_shipped: dict[str, object] = {}


def ship_dir(spark, uri: str, identity: object) -> None:
    """Hand a remote directory to every executor (SparkContext.addFile: each fetches it once into its own
    local cache; `worker_dir` finds it there). Spark keeps the first copy for the session, so a directory
    that changed since is an error rather than a silently stale model."""
    if uri in _shipped:
        if _shipped[uri] != identity:
            raise RuntimeError(f"{uri} changed since this Spark session handed it to the executors, and "
                               "Spark cannot replace a file it shipped: run this step in a new session")
        return
    spark.sparkContext.addFile(uri, recursive=True)
    _shipped[uri] = identity


def worker_dir(uri: str) -> str:
    """On an executor: the local copy of a directory `ship_dir` handed out; a local path as it is."""
    if not is_uri(uri) or uri.startswith("file:"):
        return uri[len("file://"):] if uri.startswith("file://") else uri
    from pyspark import SparkFiles

    return SparkFiles.get(uri.rstrip("/").rsplit("/", 1)[-1])


def list_files(path: str) -> list[Status]:
    """Every file under a directory URI, recursively, in path order."""
    fs, p = _fs_path(path)
    it = fs.listFiles(p, True)
    out = []
    while it.hasNext():
        st = it.next()
        modified = int(st.getModificationTime()) // 1000
        out.append(Status(st.getPath().toString(), int(st.getLen()), False, modified))
    return sorted(out, key=lambda s: s.path)


# Bytes per Py4J call: the format checks mostly read a file's first kilobytes, and Py4J sends bytes as text.
PY4J_READ = 64 << 10


class JvmStream(io.RawIOBase):
    """A Hadoop input stream read through Py4J (driver only: the format checks read a file's head)."""

    def __init__(self, path: str):
        fs, p = _fs_path(path)
        self._in = fs.open(p)
        self._fs, self._p = fs, p
        self._length: int | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self._in.readNBytes(min(len(b), PY4J_READ))
        n = len(data)
        b[:n] = data
        return n

    def read(self, size: int | None = -1) -> bytes:
        """`size` bytes unless the file ends first (a reader that seeks expects no short reads)."""
        if size is None or size < 0:
            return self.readall()
        out = bytearray()
        while len(out) < size:
            data = self._in.readNBytes(min(size - len(out), PY4J_READ))
            if not data:
                break
            out += data
        return bytes(out)

    # Hadoop's input streams seek: a Parquet reader goes to the footer first, then to the row groups
    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return int(self._in.getPos())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self.tell()
        elif whence == io.SEEK_END:
            if self._length is None:
                self._length = int(self._fs.getFileStatus(self._p).getLen())
            offset += self._length
        self._in.seek(offset)
        return offset

    def close(self) -> None:
        if not self.closed:
            self._in.close()
        super().close()


def open_raw(path: str, seekable: bool = False) -> io.BufferedIOBase:
    """The file's bytes through Hadoop, buffered; `seekable`: the stream itself, for readers that seek
    (a buffer in front would read ahead of every seek)."""
    return JvmStream(path) if seekable else io.BufferedReader(JvmStream(path), PY4J_READ)


def require_reader(spark) -> None:
    from instructlake.jvm import jars_root
    from instructlake.spark import has_jvm_class

    if not has_jvm_class(spark, SOURCE_CLASS):
        raise HadoopReaderMissing(
            f"reading raw files through Hadoop's FileSystem needs instructlake-io.jar on Spark's classpath "
            f"({SOURCE_CLASS} was not found): `python build.py setup` builds it into "
            f"{jars_root() / 'instructlake'} (a JDK's javac is needed) and `python build.py bundle` copies "
            f"it to dist/; on a cluster add it with --jars or as a cluster library")


# ---------------------------------------------------------------- the executors' side


@dataclass(frozen=True)
class Range:
    """What the byte-range source sends for a piece: bytes from `sent_from`, newlines before it counted."""
    sent_from: int
    end: int  # -1: to the end of the file
    count_lines: bool
    line_end: bool


def piece_range(start: int, end: int | None) -> Range:
    """A whole file from byte 0; a byte range of a Lines file from the byte before its start (the scanner
    skips the rest of the line begun in the previous range), through the end of its last line."""
    if end is None and start == 0:
        return Range(0, -1, False, False)
    first = max(0, start - 1)
    return Range(first, -1 if end is None else end, first > 0, end is not None)


def source_options(pieces: list[tuple[int, str, int, int | None]], chunk_bytes: int) -> dict[str, str]:
    """Options of the byte-range source for (task, path, start, end) pieces, numbered in list order."""
    opts = {"pieces": str(len(pieces)), "chunk_bytes": str(chunk_bytes), **_session_fs_conf()}
    for i, (task, path, start, end) in enumerate(pieces):
        r = piece_range(start, end)
        opts.update({f"p.{i}.task": str(task), f"p.{i}.path": path, f"p.{i}.from": str(r.sent_from),
                     f"p.{i}.end": str(r.end), f"p.{i}.lines": str(r.count_lines).lower(),
                     f"p.{i}.line_end": str(r.line_end).lower()})
    return opts


class Chunks(io.RawIOBase):
    """One piece's chunks as a readable byte stream."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        while not self._left:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._left = memoryview(nxt)
        n = min(len(b), len(self._left))
        b[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def pieces_of(batches) -> Iterator[tuple[int, int, int, io.BufferedReader]]:
    """(task, piece, prefix_lines, stream) for each piece in the source's Arrow batches, in order. A
    stream must be read (or dropped) before the next piece is asked for."""
    def rows():
        for batch in batches:
            tasks, pieces = batch.column("task").to_pylist(), batch.column("piece").to_pylist()
            prefix, data = batch.column("prefix_lines").to_pylist(), batch.column("data")
            for i in range(batch.num_rows):
                yield (tasks[i], pieces[i], prefix[i]), data[i].as_py()

    for (task, piece, prefix), group in groupby(rows(), key=lambda r: r[0]):
        yield task, piece, prefix, io.BufferedReader(Chunks(d for _, d in group), 1 << 20)
