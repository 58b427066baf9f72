"""Object storage for real: moto's S3 API server on 127.0.0.1 (tests/s3_support.py) and Hadoop's S3A
connector, from a user's `instructlake pipeline run` in local mode (the session adds the S3A JARs itself
when the warehouse is on s3a://). The whole pipeline on S3, with executors in their own JVMs, is the
cluster test's; this one covers what that run does not: the reference model trained by the pipeline, kept
in the warehouse on S3, and loaded back from there to score."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import SMALL_DATA_JVM, TEST_SETTINGS
from tests.integration.conftest import write_inputs
from tests.integration.test_spark_submit import user_env
from tests.s3_support import BUCKET


def test_reference_model_trained_into_a_warehouse_on_s3_scores_from_there(spark, s3, tmp_path):
    first, _ = write_inputs(tmp_path / "landing")
    landing = s3.upload(first[1], "storage/landing/b_seed.jsonl").rsplit("/", 1)[0]
    settings = [*TEST_SETTINGS, *SMALL_DATA_JVM, "scoring.reference_seconds=5",
                "platform.scoring.token_budget=4096"]
    # only the stages the reference model needs: the rest write their tables as the cluster test's run does
    skip = [x for s in ["semdedup", "filter", "tagging", "normalize_tags", "graph"] for x in ("--skip", s)]
    cmd = [str(Path(sys.executable).parent / "instructlake"), "--warehouse", f"s3a://{BUCKET}/storage/wh",
           "--config", str(s3.config_file(tmp_path / "s3.yaml")),
           *[x for s in settings for x in ("--set", s)],
           "pipeline", "run", "--input", f"{landing}/", "--to", "scoring", *skip]
    r = subprocess.run(cmd, cwd=tmp_path, env=user_env(), capture_output=True, text=True, timeout=900)
    print("\n".join(ln for ln in (r.stdout + r.stderr).splitlines() if "instructlake.pipeline" in ln))
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    assert "JVM packages on the classpath: delta, instructlake, s3" in r.stderr
    assert f"reference model uploaded to s3a://{BUCKET}/storage/wh/models/reference" in r.stderr

    model = s3.keys("storage/wh/models/reference/")
    want = {"storage/wh/models/reference/model.safetensors", "storage/wh/models/reference/tokenizer.json"}
    assert want <= set(model), model
    # the warehouse, downloaded: every sample dedup kept was scored by the model read back from S3
    wh = s3.download("storage/wh/", tmp_path / "down")
    kept = spark.read.format("delta").load(str(wh / "dedup_clusters")).filter("is_kept")
    assert kept.count() == 40  # the file's 40 seed tasks, all distinct
    scores = spark.read.format("delta").load(str(wh / "scores"))
    scored = scores.filter("loss_cond IS NOT NULL").select("sample_id", "model")
    assert sorted(r["sample_id"] for r in scored.collect()) == sorted(r["sample_id"] for r in kept.collect())
    assert {r["model"] for r in scored.collect()} == {"reference"}
