"""A class-data-sharing (CDS) archive of the JVM classes a local Spark session loads.

A local session loads some 20,000 classes (Spark, Delta, Arrow, the JDK) as it starts and runs its first
jobs; on two cores that costs seconds of every run: every test session, every job, every bench.
`python build.py setup` runs a small ingest + dedup once with -XX:ArchiveClassesAtExit
(instructlake.jvm_archive_build), and later local sessions map the archived classes instead of parsing and
verifying them again. This module only finds the archive: it imports no Spark stage, so the session
factory can use it.

An archive fits one Java build and one classpath. Its file name carries a hash of both, so after a JDK
upgrade or a changed set of JARs a session simply finds no archive and starts the ordinary way (and the
JVM itself refuses an archive that does not match). Only local sessions use it; a cluster's JVMs are
started by the cluster.

    python -m instructlake.jvm_archive_build build   # what setup runs; nothing to do when the archive exists
    python -m instructlake.jvm_archive_build path    # the archive this environment would use
    python -m instructlake.jvm_archive_build key     # the hash of Java build and classpath that names it
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from instructlake.jvm import jars_root, java_binary, java_version_text, local_jars

log = logging.getLogger(__name__)

# Off: the JVM lists every class it cannot archive (thousands of lines) and mismatches it tolerates.
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
DUMP_ENV = "INSTRUCTLAKE_CDS_DUMP"  # set by `build`: the session archives its classes here at exit


def archive_dir() -> Path:
    return jars_root().parent / "cds"


def classpath_jars() -> list[Path]:
    """The JARs a local session puts on its classpath: pyspark's own and those `build.py setup` fetched."""
    import pyspark

    spark_jars = sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar"))
    return spark_jars + [j for group in local_jars().values() for j in group]


def archive_key() -> str | None:
    java = java_binary()
    if java is None:
        return None
    h = hashlib.sha256(f"{Path(java).resolve()}\n{java_version_text(java)}".encode())
    for jar in classpath_jars():
        st = jar.stat()
        h.update(f"{jar}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:16]


def archive_path() -> Path | None:
    """Where this environment's archive is (or would be); None when there is no Java."""
    key = archive_key()
    return archive_dir() / f"spark-{key}.jsa" if key else None


def java_options() -> str:
    """Options for a local driver JVM: use the archive when there is one (or write it, during `build`)."""
    dump = os.environ.get(DUMP_ENV)
    if dump:
        return f"-XX:ArchiveClassesAtExit={dump} {QUIET}"
    try:
        path = archive_path()
    except OSError as e:  # a JAR vanished while listing: no archive this time, never a failed start
        log.debug("class archive not checked: %s", e)
        return ""
    if path is None or not path.is_file():
        return ""
    return f"-XX:SharedArchiveFile={path} {QUIET}"
