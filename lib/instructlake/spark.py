"""The one SparkSession factory.

Locally: `local[*]`, Delta's SQL extension and catalog, and the JVM packages that `build.py setup`
fetched with Maven (INSTRUCTLAKE_JARS or <venv>/share/instructlake/jars/<package>/*.jar).
On a cluster (platform databricks / emr): the master comes from spark-submit and the runtime's own
Delta and packages are used. Arrow is on everywhere.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from instructlake.config import PlatformConfig

log = logging.getLogger(__name__)


class JavaMissingError(RuntimeError):
    """No usable Java: Spark cannot start."""


def jars_root() -> Path:
    env = os.environ.get("INSTRUCTLAKE_JARS")
    return Path(env) if env else Path(sys.prefix) / "share" / "instructlake" / "jars"


def local_jars() -> dict[str, list[Path]]:
    """JARs per package (delta, graphframes, sparknlp) found under jars_root()."""
    root = jars_root()
    if not root.is_dir():
        return {}
    return {d.name: sorted(d.glob("*.jar")) for d in sorted(root.iterdir()) if d.is_dir() and any(d.glob("*.jar"))}


def java_binary() -> str | None:
    """The java Spark's launcher runs: JAVA_HOME's when it has one, else the first on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


@lru_cache(maxsize=4)
def java_version_text(java: str) -> str:
    """What `java -version` prints (on stderr): run once per binary and process."""
    return subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr


def check_java() -> None:
    """Fail with one sentence, not a Py4J trace, when there is no Java 17+."""
    java = java_binary()
    if not java:
        raise JavaMissingError(
            "Spark needs Java 17 or newer and no `java` was found on PATH or in JAVA_HOME; install one "
            "(for example `apt-get install openjdk-17-jre-headless`) and run again.")
    try:
        out = java_version_text(java)
    except (OSError, subprocess.SubprocessError) as e:
        raise JavaMissingError(f"`{java} -version` failed ({e}); Spark needs a working Java 17 or newer.") from None
    m = re.search(r'version "(\d+)', out)
    if m and int(m.group(1)) < 17:
        raise JavaMissingError(f"Spark 4 needs Java 17 or newer but {java} is version {m.group(1)}; "
                               "install Java 17 and point JAVA_HOME at it.")


def get_session(platform: PlatformConfig, app_name: str | None = None):
    """Build (or return the active) SparkSession for this platform."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    s = platform.spark
    if s.master and s.master.startswith("local"):
        check_java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    b = SparkSession.builder.appName(app_name or s.app_name)
    if s.master:
        b = b.master(s.master)
    if s.driver_memory and (not s.master or s.master.startswith("local")):
        b = b.config("spark.driver.memory", s.driver_memory)
    b = (b.config("spark.sql.execution.arrow.pyspark.enabled", "true")
          .config("spark.sql.execution.arrow.pyspark.fallback.enabled", "false")
          .config("spark.sql.shuffle.partitions", str(s.shuffle_partitions))
          .config("spark.databricks.delta.schema.autoMerge.enabled", "false"))
    if s.delta_extensions:
        b = (b.config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
              .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"))
    if s.local_jars:
        found = local_jars()
        if "delta" not in found:
            raise RuntimeError(
                f"no Delta Lake JARs under {jars_root()}: run `python build.py setup` (it fetches them with "
                "Maven), or set INSTRUCTLAKE_JARS to a directory holding delta/*.jar")
        jars = [str(j) for group in found.values() for j in group]
        # spark.jars alone reaches executors; extraClassPath makes the classes visible to the driver's
        # Delta catalog plugin, which is loaded before spark.jars is.
        b = b.config("spark.jars", ",".join(jars))
        b = b.config("spark.driver.extraClassPath", os.pathsep.join(jars))
        log.info("JVM packages on the classpath: %s", ", ".join(sorted(found)))
        for optional, fallback in (("graphframes", "graph stages use Spark-native algorithms"),
                                   ("sparknlp", "embeddings use the Python (sentence-transformers) path")):
            if optional not in found:
                log.info("%s JARs not found under %s: %s", optional, jars_root(), fallback)
    for k, v in s.conf.items():
        b = b.config(k, v)
    if s.class_archive and s.master and s.master.startswith("local"):
        from instructlake.jvm_archive import java_options

        opts = java_options()
        if opts:
            b = b.config("spark.driver.extraJavaOptions",
                         f"{s.conf.get('spark.driver.extraJavaOptions', '')} {opts}".strip())
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def has_jvm_class(spark, name: str) -> bool:
    """True when a JVM class (e.g. org.graphframes.GraphFrame) can be loaded by this session."""
    try:
        spark.sparkContext._jvm.java.lang.Class.forName(
            name, False, spark.sparkContext._jvm.Thread.currentThread().getContextClassLoader())
        return True
    except Exception:  # noqa: BLE001 - Py4J wraps ClassNotFoundException in its own error type
        return False
