"""spark-defaults.conf for `spark-submit` from this environment.

A session built by instructlake.spark.get_session adds Delta's JARs and the JVM class archive itself, but
`spark-submit` starts its JVM before any Python runs: that JVM finds Delta only through the Spark conf
directory. `python build.py setup` therefore writes a spark-defaults.conf where the venv's spark-submit
reads it (<pyspark>/conf, or $SPARK_CONF_DIR when that is set), and then

    spark-submit jobs/ingest.py --warehouse ./lakehouse data/samples/alpaca_sample.json
    spark-submit --master spark://127.0.0.1:7077 jobs/pipeline.py --warehouse ./lakehouse run ...

work from the venv as they do on a cluster. What it sets: the JARs setup fetched (spark.jars for the
executors, spark.driver.extraClassPath for the driver's catalog plugin), the venv's Python for the driver
and the executors' Python workers, and the class archive for the driver JVM when there is one. Lines a
user added to the file are kept; only the keys below are rewritten. Beside it, unless one is there
already, a log4j2.properties that keeps Spark's own messages at WARN.

    python -m instructlake.submit_defaults write   # what setup runs
    python -m instructlake.submit_defaults show    # the file's path and what this environment would write
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

MARK = "# instructlake (python build.py setup) sets the lines below; edit above this mark"


def conf_dir() -> Path:
    """Where the venv's spark-submit reads spark-defaults.conf: SPARK_CONF_DIR, else <SPARK_HOME>/conf."""
    env = os.environ.get("SPARK_CONF_DIR")
    if env:
        return Path(env)
    home = os.environ.get("SPARK_HOME")
    if home:
        return Path(home) / "conf"
    import pyspark

    return Path(pyspark.__file__).parent / "conf"


def entries() -> dict[str, str]:
    """The settings a JVM started by spark-submit needs from this environment."""
    from instructlake.jvm import local_jars
    from instructlake.jvm_archive import java_options
    from instructlake.spark import jar_conf

    out = jar_conf(local_jars())
    # the venv's interpreter (not resolved: a symlink into the venv is what selects its site-packages)
    out["spark.pyspark.python"] = sys.executable
    out["spark.pyspark.driver.python"] = sys.executable
    opts = java_options()
    if opts:
        out["spark.driver.extraJavaOptions"] = opts
    return out


def render(existing: str, settings: dict[str, str]) -> str:
    """The new file: the user's own lines (above the mark, without the keys set here), then ours."""
    own = existing.split(MARK, 1)[0].splitlines()
    kept = [ln for ln in own if not (ln.split() and ln.split()[0] in settings)]
    while kept and not kept[-1].strip():
        kept.pop()
    body = [f"{k} {v}" for k, v in settings.items()]
    return "\n".join([*kept, *([""] if kept else []), MARK, *body]) + "\n"


# Spark's own INFO lines (a hundred per job start) would bury the stages' progress lines; a user's own
# log4j2.properties in the conf directory is never replaced.
LOG4J = """# instructlake (python build.py setup): Spark's messages at WARN and above;
# delete this file to get Spark's defaults
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
"""


def write() -> Path:
    path = conf_dir() / "spark-defaults.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(render(existing, entries()), encoding="utf-8")
    log4j = path.parent / "log4j2.properties"
    if not log4j.exists():
        log4j.write_text(LOG4J, encoding="utf-8")
    return path


def main(argv: list[str]) -> None:
    cmd = argv[0] if argv else "show"
    if cmd == "write":
        print(f"spark-submit defaults written to {write()}")
    elif cmd == "show":
        print(f"# {conf_dir() / 'spark-defaults.conf'}")
        print(render("", entries()), end="")
    else:
        raise SystemExit("usage: python -m instructlake.submit_defaults [write|show]")


if __name__ == "__main__":
    main(sys.argv[1:])
