"""Writing the JVM class archive instructlake.jvm_archive finds: a small ingest + dedup in a child process
whose JVM archives the classes it loaded as it exits. Kept apart from jvm_archive because it imports the
ingest and dedup stages, which import the session factory, which imports jvm_archive.

    python -m instructlake.jvm_archive_build build   # what setup runs; nothing to do when the archive exists
    python -m instructlake.jvm_archive_build path    # the archive this environment would use
    python -m instructlake.jvm_archive_build key     # the hash of Java build and classpath that names it
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from instructlake.jvm_archive import DUMP_ENV, archive_key, archive_path

log = logging.getLogger(__name__)


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
        proc = subprocess.run([sys.executable, "-m", "instructlake.jvm_archive_build", "_workload", d],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not tmp_archive.is_file():
            log.warning("class archive not written (sessions start without it):\n%s", proc.stderr[-3000:])
            return None
        for old in target.parent.glob("spark-*.jsa"):  # archives of earlier JDKs or JAR sets
            old.unlink(missing_ok=True)
        part = target.with_suffix(f".{os.getpid()}.part")
        shutil.move(str(tmp_archive), part)
        os.replace(part, target)  # atomic: a session never maps a half-written archive
    log.info("class archive written in %.0fs: %s (%.0f MB)", time.time() - t0, target,
             target.stat().st_size / 1e6)
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
