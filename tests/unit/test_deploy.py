"""The Databricks bundle and the EMR steps name only things that exist: job files, CLI options, pipeline
stages, platform configs, clusters, variables; and the GPU profiles their platform configs ask for build."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from instructlake import deploy, pipeline
from instructlake.cli import build_parser, split_global_options
from instructlake.config import load_config

ROOT = Path(__file__).resolve().parents[2]
MODEL_STAGES = {"semdedup", "tagging", "scoring", "synth", "difficulty", "decontam"}


def check_entry(job_file: Path, argv: list[str]) -> object:
    assert job_file.parent == ROOT / "jobs" and job_file.exists(), job_file
    command = re.search(r'stage_main\("([\w-]+)"\)', job_file.read_text()).group(1)
    globals_, rest = split_global_options(argv)  # as jobs/<name>.py hands it to the CLI
    a = build_parser().parse_args([*globals_, command, *rest])  # SystemExit on an unknown option
    load_config(a.platform)  # the platform config exists and loads
    if command == "pipeline" and a.pipeline_command == "run":
        for s in (a.start, a.stop):
            if s:
                pipeline.step(s)
    return a


def test_databricks_bundle():
    bundle = yaml.safe_load((ROOT / "databricks.yml").read_text())
    declared = set(bundle["variables"])
    assert bundle["artifacts"]["instructlake_wheel"]["build"] == "python build.py bundle"
    assert "def bundle(" in (ROOT / "build.py").read_text()
    jobs = {}
    for pattern in bundle["include"]:
        for f in sorted(ROOT.glob(pattern)):
            text = f.read_text()
            used = set(re.findall(r"\$\{var\.(\w+)\}", text))
            assert used <= declared, f"{f.name} uses undeclared variables {used - declared}"
            jobs.update({k: (f, v) for k, v in yaml.safe_load(text)["resources"]["jobs"].items()})
    f, job = jobs["refresh"]
    assert job["schedule"]["quartz_cron_expression"] and job["max_concurrent_runs"] == 1
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in job["job_clusters"]}
    assert "gpu" in clusters["gpu"]["spark_version"] and "gpu" not in clusters["cpu"]["spark_version"]
    keys = [t["task_key"] for t in job["tasks"]]
    assert keys == [s for s in pipeline.NAMES if s != "train_reference"]  # every stage, in pipeline order
    for prev, t in zip([None, *keys], job["tasks"], strict=False):
        assert t["job_cluster_key"] in clusters
        assert [d["task_key"] for d in t.get("depends_on", [])] == ([prev] if prev else [])
        assert (t["job_cluster_key"] == "gpu") == (t["task_key"] in MODEL_STAGES), t["task_key"]
        entry = (f.parent / t["spark_python_task"]["python_file"]).resolve()
        argv = [a.replace("${var.", "VAR.") for a in t["spark_python_task"]["parameters"]]
        a = check_entry(entry, argv)
        assert a.platform == "databricks" and a.start == a.stop == t["task_key"]
        # the command the standalone-cluster test submits, for one stage
        assert t["spark_python_task"]["parameters"] == deploy.pipeline_args(
            "${var.warehouse}", platform="databricks", landing="${var.landing}", stage=t["task_key"])
        assert t["libraries"] == [{"whl": "../dist/*.whl"}, {"jar": f"../dist/{deploy.IO_JAR}"}]
        if t["task_key"] == "ingest":
            assert a.input == ["VAR.landing}"]


def test_emr_steps_and_bootstrap():
    steps = json.loads((ROOT / "deploy" / "emr" / "steps.json").read_text())
    names = []
    for s in steps:
        args = s["HadoopJarStep"]["Args"]
        assert s["HadoopJarStep"]["Jar"] == "command-runner.jar" and args[0] == "spark-submit"
        i = next(i for i, x in enumerate(args) if x.endswith(".py"))
        a = check_entry(ROOT / "jobs" / Path(args[i]).name, args[i + 1:])
        assert a.platform == "emr"
        names.append(a.start)
    assert names == [s for s in pipeline.NAMES if s != "train_reference"]
    assert steps == deploy.emr_steps(names)  # the standalone-cluster test's command, per stage
    boot = ROOT / "deploy" / "emr" / "bootstrap.sh"
    assert subprocess.run(["bash", "-n", str(boot)]).returncode == 0
    assert "torch==2.13.0" in boot.read_text() and "instructlake-*.whl" in boot.read_text()
    conf = json.loads((ROOT / "deploy" / "emr" / "configurations.json").read_text())
    env = next(c for c in conf if c["Classification"] == "spark-env")["Configurations"][0]["Properties"]
    assert env["INSTRUCTLAKE_PLATFORM"] == "emr"


@pytest.mark.parametrize("platform", ["databricks", "emr"])
def test_cluster_gpu_profiles_build(spark, platform):
    from instructlake.resources import gpu_profile

    cfg = load_config(platform).platform
    for settings in (cfg.llm, cfg.embed, cfg.scoring):
        p = gpu_profile(settings.gpus_per_task, settings.executor_gpus)
        assert p is not None and p.taskResources["gpu"].amount == settings.gpus_per_task
        # Databricks job clusters have a fixed size: task-only profiles; EMR (dynamic allocation): executors
        # too
        assert ("gpu" in p.executorResources) == (platform == "emr")
    assert "train_reference" in cfg.pipeline.skip


def test_every_job_file_is_a_cli_command():
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    for f in sorted((ROOT / "jobs").glob("*.py")):
        m = re.search(r'stage_main\("([\w-]+)"\)', f.read_text())
        assert m and m.group(1) in commands, f.name
