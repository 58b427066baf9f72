"""`python build.py bundle`: a wheel that carries conf/ (found with no checkout beside it) and the package's
resources, plus dist/jobs/ with every spark-submit entry and dist/instructlake-io.jar."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bundle_builds_a_self_contained_wheel(tmp_path):
    r = subprocess.run([sys.executable, "build.py", "bundle"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    wheels = sorted((ROOT / "dist").glob("instructlake-*.whl"))
    assert len(wheels) == 1
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    for f in ["instructlake/_conf/defaults.yaml", "instructlake/_conf/platform/local.yaml",
              "instructlake/_conf/platform/databricks.yaml", "instructlake/_conf/platform/emr.yaml",
              "instructlake/pipeline.py", "instructlake/resources/taxonomy.yaml",
              "instructlake/resources/benchmarks/alpaca_eval.jsonl"]:
        assert f in names, f
    assert not (ROOT / "lib" / "instructlake" / "_conf").exists()  # the copy packed in is cleaned up
    assert {p.name for p in (ROOT / "dist" / "jobs").glob("*.py")} == {p.name for p in (ROOT / "jobs").glob("*.py")}
    # ingest's Hadoop reader, beside the wheel for the clusters' classpath (the job files name it there)
    jar = zipfile.ZipFile(ROOT / "dist" / "instructlake-io.jar")
    assert "io/instructlake/spark/ByteRanges.class" in jar.namelist()
    # the wheel's config module, away from any checkout, finds its packed conf and loads every platform
    zipfile.ZipFile(wheels[0]).extractall(tmp_path)
    spec = importlib.util.spec_from_file_location("wheel_config", tmp_path / "instructlake" / "config.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["wheel_config"] = mod  # dataclass type hints resolve through the module registry
    try:
        spec.loader.exec_module(mod)
        assert mod.conf_dir() == tmp_path / "instructlake" / "_conf"
        for platform in ("local", "databricks", "emr"):
            assert mod.load_config(platform).platform.name == platform
    finally:
        del sys.modules["wheel_config"]
