"""The job entries under `spark-submit`, as a user types them: the venv's spark-submit, nothing else set.

spark-submit starts its JVM before Python, so Delta's JARs reach it only through the spark-defaults.conf
that `python build.py setup` writes (instructlake.submit_defaults); and its --master and --conf must win
over the platform file (whose master is local[*]).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from instructlake.submit_defaults import conf_dir

ROOT = Path(__file__).resolve().parents[2]
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"


def user_env(**extra: str) -> dict[str, str]:
    """A shell with the venv on PATH and none of the variables build.py or this test run set."""
    drop = ("PYSPARK_", "INSTRUCTLAKE_", "SPARK_", "PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = f"{SPARK_SUBMIT.parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


def submit(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(SPARK_SUBMIT), *args], cwd=cwd, env=env or user_env(), capture_output=True,
                          text=True, timeout=600)


def pool(path: Path, n: int, start: int = 0) -> Path:
    """n distinct records, then the first two again and one broken line: n + 3 records, n distinct."""
    recs = [{"instruction": f"Explain idea number {i} about {'rivers' if i % 2 else 'stars'} in detail.",
             "input": "", "output": f"Idea {i} is explained here with enough words to be a real answer."}
            for i in range(start, start + n)]
    lines = [json.dumps(r) for r in recs + recs[:2]] + ['{"instruction": "cut off']
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def defaults_written():
    path = conf_dir() / "spark-defaults.conf"
    if not path.exists() or "spark.jars" not in path.read_text():
        pytest.fail(f"{path} is missing or has no spark.jars: `python build.py setup` writes it")
    return path


def test_spark_submit_runs_the_jobs_with_its_own_master(spark, defaults_written, tmp_path):
    wh = tmp_path / "wh"
    first = pool(tmp_path / "first.jsonl", 30)
    r = submit(["--master", "local[1]", "--conf", "spark.sql.shuffle.partitions=3",
                str(ROOT / "jobs" / "ingest.py"), "--warehouse", str(wh), str(first)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    # spark-submit's master and --conf, not the platform file's local[*] and 8 partitions
    # (spark-submit passes the Python driver's stderr on to its own stdout)
    assert "Spark master local[1] (from spark-submit)" in r.stdout
    assert re.search(r"settings kept over the platform config's: spark.master, spark.sql.shuffle.partitions",
                     r.stdout)
    assert "33 records found = 32 gave samples + 1 quarantined" in r.stdout

    r = submit([str(ROOT / "jobs" / "dedup.py"), "--warehouse", str(wh)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Spark master local[*] (from spark-submit)" in r.stdout
    assert "30 samples -> 30 kept" in r.stdout

    second = pool(tmp_path / "second.jsonl", 10, start=30)
    r = submit(["--master", "local[2]", str(ROOT / "jobs" / "pipeline.py"), "--warehouse", str(wh), "run",
                "--input", str(second), "--to", "dedup"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]

    samples = spark.read.format("delta").load(str(wh / "samples"))
    assert samples.count() == 40 and samples.select("sample_id").distinct().count() == 40
    assert spark.read.format("delta").load(str(wh / "quarantine")).count() == 2
    runs = {(r["stage"], r["status"]) for r in spark.read.format("delta").load(str(wh / "runs")).collect()}
    assert {("ingest", "ok"), ("dedup", "ok")} <= runs


def test_without_the_defaults_the_error_says_what_to_do(tmp_path):
    """The same submit with an empty conf directory: no Delta classes in the JVM, one clear message."""
    empty = tmp_path / "conf"
    empty.mkdir()
    r = submit([str(ROOT / "jobs" / "ingest.py"), "--warehouse", str(tmp_path / "wh"),
                str(pool(tmp_path / "p.jsonl", 3))], cwd=tmp_path, env=user_env(SPARK_CONF_DIR=str(empty)))
    assert r.returncode != 0
    assert "the JVM spark-submit started has no Delta Lake classes: run `python build.py setup`" in r.stdout
