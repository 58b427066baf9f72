"""An EMR-shaped run: a real Spark standalone cluster (a master and two one-core workers on 127.0.0.1, each
worker with its own executor JVM and Python workers) and object storage (moto's S3 API server, reached
through Hadoop's S3A connector): the whole pipeline, submitted with spark-submit, reads its inputs, the
benchmark and the scoring model from s3a://, keeps its warehouse, report and export there, and gives the
same tables as the in-process local[2] run of the same inputs and settings from a local disk (the pipeline
fixture's first run, read back at the table versions it wrote)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, FloatType, MapType, TimestampType

from instructlake import cluster, deploy
from tests.integration.conftest import pipeline_settings
from tests.integration.test_spark_submit import ROOT, submit, user_env
from tests.s3_support import BUCKET, s3a_jars

# what the comparison leaves out: when a row was written and by which run
VOLATILE = {"run_id", "duration_s"}
# Four JVMs share this machine's two cores here, and the executors' JIT compilers took more CPU than their
# tasks (140 s against 110 s in one run): on a few hundred rows, C1's quicker compiles pay and C2's faster
# code does not. Test-only: a user's executors run long tasks, where C2 is the right default.
EXECUTOR_JIT = ["spark.executor.extraJavaOptions=-XX:TieredStopAtLevel=1"]
# tables whose rows are about a run, not about the data
RUN_TABLES = {"runs", "ingested_files"}


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    c = cluster.up(root, workers=2, cores=1, memory="2g")
    yield c
    pids = list(c.pids)
    assert cluster.down(root)
    assert not [p for p in pids if cluster.pid_alive(p)], "a cluster daemon outlived `down`"


def comparable(df: DataFrame) -> DataFrame:
    """The columns that say what the data is: no timestamps or run ids, file names without their
    directory, doubles to 1e-4 (float sums in another partitioning may differ in the last bits), maps as
    their sorted entries."""
    cols = []
    for f in df.schema.fields:
        if isinstance(f.dataType, TimestampType) or f.name in VOLATILE:
            continue
        c = F.col(f"`{f.name}`")
        if f.name in ("source_file", "path"):
            c = F.regexp_extract(c, r"([^/]+)$", 1)
        elif isinstance(f.dataType, DoubleType | FloatType):
            c = F.round(c, 4)
        elif isinstance(f.dataType, ArrayType) and isinstance(f.dataType.elementType, DoubleType | FloatType):
            c = F.transform(c, lambda x: F.round(x, 4))
        elif isinstance(f.dataType, MapType):  # set operations refuse maps: their sorted entries instead
            c = F.array_sort(F.map_entries(c))
        cols.append(c.alias(f.name))
    return df.select(*cols)


def differences(a: DataFrame, b: DataFrame) -> tuple[int, int, int, int]:
    """(rows of a, rows of b, rows only in a, rows only in b) as multisets of comparable() rows, counted
    by one query: 83 Spark jobs for the pipeline's 17 tables, where two exceptAll and two counts per table
    took 234."""
    a, b = comparable(a), comparable(b)
    marked = a.withColumns({"_a": F.lit(1), "_b": F.lit(0)}).unionByName(
        b.withColumns({"_a": F.lit(0), "_b": F.lit(1)}))
    per_row = marked.groupBy(*a.columns).agg(F.sum("_a").alias("na"), F.sum("_b").alias("nb"))
    r = per_row.agg(F.sum("na"), F.sum("nb"), F.sum(F.greatest(F.col("na") - F.col("nb"), F.lit(0))),
                    F.sum(F.greatest(F.col("nb") - F.col("na"), F.lit(0)))).first()
    return tuple(int(x or 0) for x in r)


def test_differences_counts_rows_as_multisets(spark):
    """The comparison the cluster test rests on: repeated rows, nulls, rounding and maps."""
    rows = [("a", 1.00001, {"k": "v"}, None), ("a", 1.00001, {"k": "v"}, None), ("b", 2.0, None, [1, 2])]
    schema = "id string, x double, m map<string,string>, xs array<int>"
    a = spark.createDataFrame(rows, schema)
    assert differences(a, a) == (3, 3, 0, 0)
    assert differences(a, spark.createDataFrame(rows[1:], schema)) == (3, 2, 1, 0)  # one "a" row fewer
    moved = [("a", 1.00002, {"k": "v"}, None), *rows[1:]]  # equal to 1e-4
    assert differences(a, spark.createDataFrame(moved, schema)) == (3, 3, 0, 0)
    other = [*rows[:2], ("b", 2.0, None, [2, 1])]
    assert differences(a, spark.createDataFrame(other, schema)) == (3, 3, 1, 1)


def s3a_submit_conf(s3) -> list[str]:
    """What a user's cluster has for S3: the connector's JARs on the driver's and executors' classpaths
    (an EMR or Databricks image has them built in; spark.jars would copy 700 MB to each executor) and the
    endpoint's fs.s3a settings, given to spark-submit."""
    from instructlake.jvm import local_jars

    s3a = os.pathsep.join(str(j) for j in s3a_jars())
    own = os.pathsep.join(str(j) for name, group in local_jars().items() for j in group)
    return [f"spark.driver.extraClassPath={own}{os.pathsep}{s3a}", f"spark.executor.extraClassPath={s3a}",
            *[f"spark.hadoop.{k}={v}" for k, v in s3.hadoop_settings().items()]]


def test_pipeline_on_a_cluster_with_data_on_s3_equals_the_local_run(spark, pipeline_lake, standalone, s3,
                                                                    tmp_path):
    lake = pipeline_lake
    landing = s3.upload(lake.first_landing, "landing")
    name, bench = lake.benchmarks[0].split("=", 1)
    bench = s3.upload(Path(bench), "benchmarks/bench.jsonl")
    model = s3.upload(lake.model_dir, "models/tiny")
    wh, export = f"s3a://{BUCKET}/wh", f"s3a://{BUCKET}/export"
    # the command the Databricks job and the EMR steps run (instructlake.deploy): first the ingest step
    # alone, as a deployment's first task runs it, then the rest of the pipeline in one run
    submit_opts = deploy.submit_args(standalone.master_url, str(ROOT / "jobs" / "pipeline.py"),
                                     conf=["spark.executor.memory=1g", "spark.driver.host=127.0.0.1",
                                           *EXECUTOR_JIT, *s3a_submit_conf(s3)])
    settings = [*pipeline_settings(lake.model_dir), f"platform.scoring.model_paths={{tiny: {model}}}"]
    args = dict(settings=settings, landing=f"{landing}/", benchmarks=[f"{name}={bench}"], export_dir=export)
    env = user_env(SPARK_LOCAL_IP="127.0.0.1")
    first = submit([*submit_opts, *deploy.pipeline_args(wh, stage="ingest", **args)], cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stdout[-4000:]
    r = submit([*submit_opts, *deploy.pipeline_args(wh, **args)], cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout[-4000:]
    assert "ingest           up to date" in r.stdout, r.stdout[-3000:]
    print("\n".join(ln for ln in r.stdout.splitlines()
                    if " INFO instructlake.pipeline" in ln or ln.startswith("pipeline")))
    assert f"Spark master {standalone.master_url} (from spark-submit)" in r.stdout
    apps = standalone.applications()
    assert apps and apps[-1]["cores"] == 2, apps  # both workers' executors took part
    # the report and its pictures, and the export with its manifest, were written to the bucket
    report = s3.keys("wh/report/")
    assert "wh/report/index.html" in report and sum(k.endswith(".png") for k in report) >= 3, report
    shipped_keys = s3.keys("export/")
    assert "export/manifest.json" in shipped_keys and any(k.endswith(".parquet") for k in shipped_keys)

    down = s3.download("wh/", tmp_path / "down")

    def compare(name: str) -> tuple[int, int, int, int]:
        local = lake.store.read(name, version=lake.first_versions[name])
        remote = spark.read.format("delta").load(str(down / name))
        if name == "scores":  # its config hash holds the model files' times, which the upload renewed
            local, remote = local.drop("config_hash"), remote.drop("config_hash")
        return differences(local, remote)

    names = sorted(set(lake.first_versions) - RUN_TABLES)
    with ThreadPoolExecutor(4) as pool:  # small jobs: Spark runs those of several threads side by side
        compared = dict(zip(names, pool.map(compare, names), strict=True))
    print("local vs cluster (rows local, rows cluster, only local, only cluster):", compared)
    core = {"samples", "dedup_clusters", "quality", "tags", "seeds", "scores", "pii", "contamination"}
    assert core <= set(compared) and all(compared[t][0] > 0 for t in core), compared
    assert {k: v for k, v in compared.items() if v[0] != v[1] or v[2] or v[3]} == {}
    assert spark.read.format("delta").load(str(down / "contamination")).filter("flagged").count() >= 1

    local_scores = lake.store.read("scores", version=lake.first_versions["scores"])
    remote_scores = spark.read.format("delta").load(str(down / "scores"))
    assert remote_scores.select("config_hash").distinct().count() == 1
    joined = local_scores.alias("a").join(remote_scores.alias("b"), "sample_id")
    assert joined.count() == local_scores.count()
    gaps = [F.abs(F.col(f"a.{c}") - F.col(f"b.{c}")) for c in ("loss_cond", "loss_uncond")]
    worst = joined.select(F.max(F.greatest(*gaps))).first()[0]
    assert worst is not None and worst <= 1e-4

    def exported(root):
        rows = spark.read.parquet(str(root / "parquet")).select("sample_id").collect()
        return {r["sample_id"] for r in rows}

    shipped = exported(s3.download("export/", tmp_path / "down"))
    assert shipped and shipped == exported(lake.first_export)
