"""The one SparkSession factory.

Locally: `local[*]`, Delta's SQL extension and catalog, and the JVM packages that `build.py setup`
fetched with Maven (INSTRUCTLAKE_JARS or <venv>/share/instructlake/jars/<package>/*.jar).
Under spark-submit, here or on a cluster: spark-submit's master and settings win over the platform file,
and the JARs come from spark-submit (locally from the spark-defaults.conf setup writes:
instructlake.submit_defaults). Arrow is on everywhere.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from instructlake.config import PlatformConfig
from instructlake.jvm import ON_DEMAND, check_java, jars_root, local_jars

log = logging.getLogger(__name__)


def wanted_packages(platform: PlatformConfig) -> set[str]:
    """The ON_DEMAND packages a session of this platform loads: those named, and its warehouse's."""
    warehouse = platform.store.warehouse or ""
    by_scheme = {p for p, schemes in ON_DEMAND.items() if warehouse.startswith(schemes)}
    return set(platform.spark.packages) | by_scheme


def submitted_conf() -> dict[str, str] | None:
    """The settings of a JVM that was running before Python (spark-submit, a notebook on a cluster),
    spark-submit's --master and --conf and spark-defaults.conf among them; None when pyspark will start
    the JVM itself."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return None
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()
    return dict(SparkConf().getAll())


def _require_delta_classes() -> None:
    """In a JVM that spark-submit started: Delta must be on its classpath already, or say how to get it."""
    from pyspark import SparkContext

    if not _jvm_has_class(SparkContext._jvm, "io.delta.sql.DeltaSparkSessionExtension"):
        raise RuntimeError(
            "the JVM spark-submit started has no Delta Lake classes: run `python build.py setup` (it writes "
            "the spark-defaults.conf that this venv's spark-submit reads; see `python -m "
            "instructlake.submit_defaults show`), or pass Delta to spark-submit (--packages "
            "io.delta:delta-spark_2.13:<version>, or --jars and --driver-class-path)")


@contextmanager
def temporary_conf(spark, key: str, value: str | None) -> Iterator[None]:
    """The session's `key` set to `value` inside the block and put back as it was after it (unset if it
    was); value None leaves the setting alone."""
    if value is None:
        yield
        return
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def arrow_batch_rows(spark, rows: int):
    """temporary_conf of the rows per Arrow batch that Spark hands Python workers (and makes of a pandas
    frame)."""
    return temporary_conf(spark, "spark.sql.execution.arrow.maxRecordsPerBatch", str(rows))


# platform.spark.jit -> the local driver JVM's options. C1 alone gets a 48 MB code cache by default (both
# compilers get 240 MB): a session running for long (the test suite's, a whole pipeline) fills it, and its
# sweeper thread then took more CPU than the compiler (12 of 64 CPU minutes in one test session's JVM).
JIT_OPTIONS = {"quick": "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m", "full": ""}
# platform.spark.gc -> the local driver JVM's option. Named even for g1, the JVM's default, which it would
# not pick on a machine of one core.
GC_OPTIONS = {"serial": "-XX:+UseSerialGC", "parallel": "-XX:+UseParallelGC", "g1": "-XX:+UseG1GC"}
_NAMES_A_GC = re.compile(r"-XX:\+Use\w+GC\b")


def _gc_option(gc: str, own: str) -> str:
    """The collector's flag, unless the platform's own driver options name one: a JVM given two refuses
    to start ("Multiple garbage collectors selected")."""
    return "" if _NAMES_A_GC.search(own) else GC_OPTIONS[gc]


def _session_settings(platform: PlatformConfig, launched: bool) -> dict[str, str]:
    """What the platform file asks of a session, by Spark key."""
    s = platform.spark
    out: dict[str, str] = {}
    if s.master:
        out["spark.master"] = s.master
    if s.driver_memory and not launched and (not s.master or s.master.startswith("local")):
        out["spark.driver.memory"] = s.driver_memory
    out.update({"spark.sql.execution.arrow.pyspark.enabled": "true",
                "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
                "spark.sql.shuffle.partitions": str(s.shuffle_partitions),
                "spark.databricks.delta.schema.autoMerge.enabled": "false",
                # What the stages cache is mostly text, which the cache's encoders (run length, dictionary)
                # do not shrink; trying them cost ingest + dedup 4 s of 40 at 100 MB (two paired runs, the
                # same peak memory) and the 1 GB signature job about 6 s.
                "spark.sql.inMemoryColumnarStorage.compressed": "false"})
    if s.delta_extensions:
        out["spark.sql.extensions"] = "io.delta.sql.DeltaSparkSessionExtension"
        out["spark.sql.catalog.spark_catalog"] = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    if s.local_jars and not launched:
        out.update(_local_jar_settings(wanted_packages(platform)))
    out.update({k: str(v) for k, v in s.conf.items()})
    if not launched and s.master and s.master.startswith("local"):
        # the JIT and GC first: for a flag given twice the JVM takes the last, so the platform's own
        # options win
        own = s.conf.get("spark.driver.extraJavaOptions", "")
        opts = [JIT_OPTIONS[s.jit], _gc_option(s.gc, own), own]
        if s.class_archive:
            from instructlake.jvm_archive import java_options

            opts.append(java_options())
        # set even when empty: the platform's value, not a class archive from spark-defaults.conf
        out["spark.driver.extraJavaOptions"] = " ".join(o for o in opts if o)
    return out


def _local_jar_settings(packages: set[str]) -> dict[str, str]:
    found = local_jars(packages)
    if "delta" not in found:
        raise RuntimeError(
            f"no Delta Lake JARs under {jars_root()}: run `python build.py setup` (it fetches them with "
            "Maven), or set INSTRUCTLAKE_JARS to a directory holding delta/*.jar")
    log.info("JVM packages on the classpath: %s", ", ".join(sorted(found)))
    for optional, fallback in (("graphframes", "graph stages use Spark-native algorithms"),
                               ("sparknlp", "embeddings use the Python (sentence-transformers) path")):
        if optional not in found:
            log.info("%s JARs not found under %s: %s", optional, jars_root(), fallback)
    for missing in sorted(packages - set(found)):
        log.warning("platform.spark.packages asks for %s but no %s JARs are under %s: run `python build.py "
                    "setup`", missing, missing, jars_root())
    return jar_conf(found)


def jar_conf(found: dict[str, list[Path]]) -> dict[str, str]:
    """The Spark settings that put these JARs on the driver's and the executors' classpaths."""
    jars = [str(j) for group in found.values() for j in group]
    if not jars:
        return {}
    # spark.jars alone reaches executors; extraClassPath makes the classes visible to the driver's
    # Delta catalog plugin, which is loaded before spark.jars is.
    return {"spark.jars": ",".join(jars), "spark.driver.extraClassPath": os.pathsep.join(jars)}


def session_conf_dir() -> Path:
    """An empty Spark conf directory for the JVMs pyspark starts itself. Spark's launcher puts its conf
    directory on the classpath, and the JVM refuses to write (or map) a class archive with a non-empty
    directory there; pip's pyspark/conf holds the spark-defaults.conf written for spark-submit, which a
    session built here does not need (it sets every key itself)."""
    d = jars_root().parent / "session-conf"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _launch(builder):
    """getOrCreate with SPARK_CONF_DIR at session_conf_dir() unless the user set one, only while the JVM
    starts: spark-submit run later from this process still reads its spark-defaults.conf."""
    own = "SPARK_CONF_DIR" in os.environ
    if not own:
        os.environ["SPARK_CONF_DIR"] = str(session_conf_dir())
    try:
        return builder.getOrCreate()
    finally:
        if not own:
            os.environ.pop("SPARK_CONF_DIR", None)


def get_session(platform: PlatformConfig, app_name: str | None = None):
    """Build (or return the active) SparkSession for this platform.

    Under spark-submit (or wherever the JVM ran before Python) what spark-submit was given wins: its
    --master and every --conf or spark-defaults.conf key are kept, and the platform file fills in only
    the keys it left unset. The session logs the master it got and where that came from."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    submitted = submitted_conf()
    launched = submitted is not None
    if not launched and platform.spark.master and platform.spark.master.startswith("local"):
        check_java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    wanted = _session_settings(platform, launched)
    kept = sorted(k for k in wanted if launched and k in submitted and submitted[k] != wanted[k])
    b = SparkSession.builder.appName(app_name or platform.spark.app_name)
    for k, v in wanted.items():
        if not (launched and k in submitted):
            b = b.config(k, v)
    if launched and platform.spark.delta_extensions:
        _require_delta_classes()
    spark = b.getOrCreate() if launched else _launch(b)
    spark.sparkContext.setLogLevel("WARN")
    master = spark.sparkContext.master
    origin = "spark-submit" if launched and "spark.master" in submitted else "the platform config"
    log.info("Spark master %s (from %s)", master, origin)
    if kept:
        log.info("spark-submit's settings kept over the platform config's: %s", ", ".join(kept))
    return spark


def has_jvm_class(spark, name: str) -> bool:
    """True when a JVM class (e.g. org.graphframes.GraphFrame) can be loaded by this session."""
    return _jvm_has_class(spark.sparkContext._jvm, name)


def _jvm_has_class(jvm, name: str) -> bool:
    try:
        jvm.java.lang.Class.forName(name, False, jvm.Thread.currentThread().getContextClassLoader())
        return True
    except Exception:  # noqa: BLE001 - Py4J wraps ClassNotFoundException in its own error type
        return False
