"""Object storage for real: moto's S3 API server on 127.0.0.1 (a separate process speaking the S3 REST API)
and Hadoop's S3A connector. A user's `instructlake pipeline run` reads its inputs from s3a://, keeps the
warehouse, the reference model, the report and the export there, and gives the same samples and
quarantine rows as an ingest of the same files from a local disk."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from instructlake.cluster import free_port
from instructlake.spark import local_jars
from tests.conftest import TEST_SETTINGS
from tests.integration.conftest import write_benchmark, write_inputs
from tests.integration.test_spark_submit import user_env

BUCKET = "lake"
KEY = "test"  # moto accepts any credentials


@dataclass
class S3:
    endpoint: str
    client: object

    def keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def download(self, prefix: str, dest: Path) -> Path:
        for key in self.keys(prefix):
            out = dest / key
            out.parent.mkdir(parents=True, exist_ok=True)
            if not key.endswith("/"):
                self.client.download_file(BUCKET, key, str(out))
        return dest / prefix


@pytest.fixture(scope="module")
def s3():
    if "s3" not in local_jars(["s3"]):
        pytest.fail("no S3A JARs under the venv: `python build.py setup` fetches them (jvm/pom.xml, profile s3)")
    import boto3

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=KEY,
                          region_name="us-east-1")
    deadline = time.time() + 60
    while True:
        try:
            client.create_bucket(Bucket=BUCKET)
            break
        except Exception:  # noqa: BLE001 - not listening yet
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.3)
    yield S3(endpoint, client)
    proc.terminate()
    proc.wait(timeout=30)


def s3a_config(path: Path, endpoint: str) -> Path:
    """What a user puts in a --config file for an S3-compatible endpoint (Hadoop's fs.s3a.* settings)."""
    settings = {
        "fs.s3a.endpoint": endpoint, "fs.s3a.endpoint.region": "us-east-1", "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false", "fs.s3a.access.key": KEY, "fs.s3a.secret.key": KEY,
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    }
    lines = ["platform:", "  spark:", "    conf:"] + [f'      spark.hadoop.{k}: "{v}"' for k, v in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_pipeline_with_inputs_warehouse_model_report_and_export_on_s3(spark, s3, tmp_path, config, store):
    first, _ = write_inputs(tmp_path / "landing")
    for f in first:
        s3.client.upload_file(str(f), BUCKET, f"landing/{f.name}")
    bench = write_benchmark(tmp_path).split("=", 1)[1]
    s3.client.upload_file(bench, BUCKET, "benchmarks/bench.jsonl")
    settings = [*TEST_SETTINGS, "normalize_tags.min_freq=2", "scoring.reference_seconds=10",
                "platform.scoring.token_budget=4096"]
    cmd = [str(Path(sys.executable).parent / "instructlake"), "--warehouse", f"s3a://{BUCKET}/wh",
           "--config", str(s3a_config(tmp_path / "s3.yaml", s3.endpoint)),
           *[x for s in settings for x in ("--set", s)],
           # semdedup and seeds add time here, not coverage: their tables are written like the others
           "pipeline", "run", "--skip", "semdedup", "--skip", "seeds", "--input", f"s3a://{BUCKET}/landing/",
           "--benchmark", f"mini=s3a://{BUCKET}/benchmarks/bench.jsonl", "--export-dir", f"s3a://{BUCKET}/export"]
    r = subprocess.run(cmd, cwd=tmp_path, env=user_env(), capture_output=True, text=True, timeout=900)
    print("\n".join(ln for ln in (r.stdout + r.stderr).splitlines() if "instructlake.pipeline" in ln))
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    assert "JVM packages on the classpath: delta, instructlake, s3" in r.stderr
    assert f"reference model uploaded to s3a://{BUCKET}/wh/models/reference" in r.stderr

    model = s3.keys("wh/models/reference/")
    assert {"wh/models/reference/model.safetensors", "wh/models/reference/tokenizer.json"} <= set(model), model
    assert "wh/report/index.html" in s3.keys("wh/report/")
    exported = s3.keys("export/")
    assert "export/manifest.json" in exported and any(k.endswith(".parquet") for k in exported), exported

    # the warehouse, downloaded, read with this session: the same rows as a local ingest of the files
    wh = s3.download("wh/", tmp_path / "down")
    remote = {t: spark.read.format("delta").load(str(wh / t)) for t in ("samples", "quarantine", "scores",
                                                                       "contamination", "tags")}
    from instructlake.ingest import stage

    stage.run(spark, store, config, [str(f) for f in first])
    cols = ["sample_id", "source", "source_id", "source_file"]
    assert sorted(remote["samples"].select(*cols).collect()) == sorted(store.read("samples").select(*cols).collect())
    q = ["quarantine_id", "reason", "line"]
    assert sorted(remote["quarantine"].select(*q).collect()) == sorted(store.read("quarantine").select(*q).collect())
    assert remote["tags"].count() > 0
    # every kept sample scored by the model trained and stored on S3, and checked against the benchmark
    scored = remote["scores"].filter("loss_cond IS NOT NULL").select("sample_id").distinct().count()
    checked = remote["contamination"].select("sample_id").distinct().count()
    assert scored > 0 and scored == checked
    flagged = {r["sample_id"] for r in remote["contamination"].filter("flagged").collect()}
    assert flagged  # the planted benchmark instruction
    shipped = spark.read.parquet(str(s3.download("export/", tmp_path / "down") / "parquet"))
    ids = {r["sample_id"] for r in shipped.select("sample_id").collect()}
    assert ids and not ids & flagged
    shutil.rmtree(tmp_path / "down")
