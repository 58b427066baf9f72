"""The local Java and the JARs `build.py setup` fetched: what a local Spark session and the JVM class
archive are built from. No Spark here, so both instructlake.spark and instructlake.jvm_archive import it
without importing each other."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path


class JavaMissingError(RuntimeError):
    """No usable Java: Spark cannot start."""


def jars_root() -> Path:
    env = os.environ.get("INSTRUCTLAKE_JARS")
    return Path(env) if env else Path(sys.prefix) / "share" / "instructlake" / "jars"


# Packages setup fetches that a session loads only when asked (platform.spark.packages) or when its warehouse
# is on their scheme: Hadoop's S3A connector brings a 690 MB AWS SDK that costs every JVM start a second.
ON_DEMAND = {"s3": ("s3a://",)}


def local_jars(packages: Iterable[str] = ()) -> dict[str, list[Path]]:
    """JARs per package (delta, instructlake, graphframes, sparknlp; an ON_DEMAND one only when named in
    `packages`) found under jars_root()."""
    root = jars_root()
    if not root.is_dir():
        return {}
    wanted = set(packages)
    return {d.name: sorted(d.glob("*.jar")) for d in sorted(root.iterdir())
            if d.is_dir() and any(d.glob("*.jar")) and (d.name not in ON_DEMAND or d.name in wanted)}


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
        raise JavaMissingError(f"`{java} -version` failed ({e}); Spark needs a working Java 17 or "
                               "newer.") from None
    m = re.search(r'version "(\d+)', out)
    if m and int(m.group(1)) < 17:
        raise JavaMissingError(f"Spark 4 needs Java 17 or newer but {java} is version {m.group(1)}; "
                               "install Java 17 and point JAVA_HOME at it.")
