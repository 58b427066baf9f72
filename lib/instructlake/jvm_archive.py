"""A class-data-sharing (CDS) archive of the JVM classes a local Spark session loads.

A local session loads some 20,000 classes (Spark, Delta, Arrow, the JDK) as it starts and runs its first
jobs; on two cores that costs seconds of every run: every test session, every job, every bench.
`python build.py setup` runs a small ingest + dedup once with -XX:ArchiveClassesAtExit, and later local
sessions map the archived classes instead of parsing and verifying them again.

An archive fits one Java build and one classpath. Its file name carries a hash of both, so after a JDK
upgrade or a changed set of JARs a session simply finds no archive and starts the ordinary way (and the
JVM itself refuses an archive that does not match). Only local sessions use it; a cluster's JVMs are
started by the cluster.

    python -m instructlake.jvm_archive build   # what setup runs; does nothing when the archive exists
    python -m instructlake.jvm_archive path    # the archive this environment would use
    python -m instructlake.jvm_archive key     # the hash of Java build and classpath that names it
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

# Off: the JVM lists every class it cannot archive (thousands of lines) and mismatches it tolerates.
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
DUMP_ENV = "INSTRUCTLAKE_CDS_DUMP"  # set by `build`: the session archives its classes here at exit


def archive_dir() -> Path:
    from instructlake.spark import jars_root

    return jars_root().parent / "cds"


def classpath_jars() -> list[Path]:
    """The JARs a local session puts on its classpath: pyspark's own and those `build.py setup` fetched."""
    import pyspark

    from instructlake.spark import local_jars

    spark_jars = sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar"))
    return spark_jars + [j for group in local_jars().values() for j in group]


def archive_key() -> str | None:
    from instructlake.spark import java_binary, java_version_text

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


def _workload(tmp: Path) -> None:
    """A small ingest, a second ingest into the existing table, and a dedup: the classes most runs use
    (Delta create, MERGE, overwrite and log replay; Arrow Python workers; shuffles, windows, joins)."""
    import json

    from instructlake.config import load_config
    from instructlake.dedup import stage as dedup
    from instructlake.ingest import stage as ingest
    from instructlake.spark import get_session
    from instructlake.store import Store

    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron sigma tau".split()
    lines = []
    for i in range(400):
        text = " ".join(words[(i * 7 + k) % len(words)] for k in range(12 + i % 9))
        lines.append(json.dumps({"instruction": f"Explain {text} ({i % 300})", "input": "", "output": text}))
    (tmp / "in").mkdir()
    (tmp / "in" / "a.jsonl").write_text("\n".join(lines[:300]) + "\n{broken\n")
    (tmp / "in" / "b.json").write_text(json.dumps([{"conversations": [
        {"from": "human", "value": f"Say {w} twice"}, {"from": "gpt", "value": f"{w} {w}"}]} for w in words]))
    cfg = load_config("local", warehouse=str(tmp / "wh"))
    spark = get_session(cfg.platform, "instructlake-class-archive")
    store = Store(spark, cfg.warehouse)
    ingest.run(spark, store, cfg, [str(tmp / "in")])
    (tmp / "in2").mkdir()
    (tmp / "in2" / "c.jsonl").write_text("\n".join(lines[250:]) + "\n")
    ingest.run(spark, store, cfg, [str(tmp / "in2")])
    dedup.run(spark, store, cfg)
    store.read("dedup_clusters").groupBy("method").count().collect()
    spark.stop()


def build(force: bool = False) -> Path | None:
    """Write the archive for this environment (a minute of work, once); return its path."""
    target = archive_path()
    if target is None:
        log.warning("no java found: no class archive")
        return None
    if target.is_file() and not force:
        log.info("class archive up to date: %s", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("writing the JVM class archive (once per Java build and JAR set, about a minute): seconds less "
             "start-up for every local Spark session")
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="instructlake-cds-") as d:
        tmp_archive = Path(d) / "spark.jsa"
        env = dict(os.environ, **{DUMP_ENV: str(tmp_archive)})
        # In a child process: the JVM writes the archive when it exits, and the child waits for that.
        proc = subprocess.run([sys.executable, "-m", "instructlake.jvm_archive", "_workload", d], env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0 or not tmp_archive.is_file():
            log.warning("class archive not written (sessions start without it):\n%s", proc.stderr[-3000:])
            return None
        for old in target.parent.glob("spark-*.jsa"):  # archives of earlier JDKs or JAR sets
            old.unlink(missing_ok=True)
        part = target.with_suffix(f".{os.getpid()}.part")
        shutil.move(str(tmp_archive), part)
        os.replace(part, target)  # atomic: a session never maps a half-written archive
    log.info("class archive written in %.0fs: %s (%.0f MB)", time.time() - t0, target, target.stat().st_size / 1e6)
    return target


def _run_workload(d: str) -> None:
    from pyspark import SparkContext

    _workload(Path(d))
    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None) if gateway is not None else None
    if gateway is not None:
        gateway.shutdown()
    if proc is not None:  # closing its stdin makes the JVM exit; it writes the archive on the way out
        proc.stdin.close()
        proc.wait(timeout=300)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv[:1] == ["build"]:
        build(force="--force" in argv)  # a failure is logged: sessions then start without the archive
        return 0
    if argv[:1] == ["key"]:
        print(archive_key() or "")
        return 0
    if argv[:1] == ["path"]:
        p = archive_path()
        print(p if p and p.is_file() else f"none (would be {p})")
        return 0
    if argv[:1] == ["_workload"]:
        _run_workload(argv[1])
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
