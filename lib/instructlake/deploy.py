"""The one command line every deployment runs: `jobs/pipeline.py` with these arguments.

The standalone-cluster test submits `pipeline_args(...)` (all stages in one run) to a real master and two
workers; the EMR step (deploy/emr/steps.json) is that same command with EMR's platform and S3 paths; the
Databricks job (resources/refresh.job.yml) runs it once per stage (`stage=`), as its stages alternate
between a CPU and a GPU job cluster. tests/unit/test_deploy.py checks both files against this module, so
what the clusters run is what the cluster test ran.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# instructlake-io.jar (ingest's Hadoop reader) as the deployments ship it: beside the wheel in dist/.
IO_JAR = "instructlake-io.jar"


def pipeline_args(warehouse: str, *, platform: str | None = None, settings: Sequence[str] = (),
                  landing: str | None = None, benchmarks: Sequence[str] = (), export_dir: str | None = None,
                  stage: str | None = None) -> list[str]:
    """Arguments of jobs/pipeline.py: global options, then `run` for every stage, or `--from S --to S` for
    one; each stage-specific option only where its stage runs."""
    out = ["--platform", platform] if platform else []
    out += ["--warehouse", warehouse]
    for s in settings:
        out += ["--set", s]
    out.append("run")
    if stage:
        out += ["--from", stage, "--to", stage]
    if landing and stage in (None, "ingest"):
        out += ["--input", landing]
    if stage in (None, "decontam"):
        for b in benchmarks:
            out += ["--benchmark", b]
    if export_dir and stage in (None, "export"):
        out += ["--export-dir", export_dir]
    return out


def submit_args(master: str, entry: str, jars: Sequence[str] = (), conf: Sequence[str] = (),
                deploy_mode: str = "client") -> list[str]:
    """spark-submit's own options and the entry, before pipeline_args."""
    out = ["--deploy-mode", deploy_mode, "--master", master]
    if jars:
        out += ["--jars", ",".join(jars)]
    for c in conf:
        out += ["--conf", c]
    return [*out, entry]


# The EMR refresh: one step per stage (a step with nothing new to do skips itself), in pipeline order.
EMR_ROOT = "s3://CHANGE-ME/instructlake"


def emr_steps(stages: Sequence[str]) -> list[dict]:
    """deploy/emr/steps.json: `python -m instructlake.deploy emr-steps > deploy/emr/steps.json`."""
    steps = []
    for stage in stages:
        args = submit_args("yarn", f"{EMR_ROOT}/jobs/pipeline.py", jars=[f"{EMR_ROOT}/{IO_JAR}"])
        args += pipeline_args(f"{EMR_ROOT}/lakehouse", platform="emr", landing=f"{EMR_ROOT}/landing",
                              stage=stage)
        steps.append({"Name": f"instructlake {stage}", "ActionOnFailure": "CANCEL_AND_WAIT",
                      "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", *args]}})
    return steps


def main(argv: Sequence[str]) -> int:
    import json

    from instructlake.config import load_config
    from instructlake.pipeline import NAMES

    if list(argv) != ["emr-steps"]:
        print("usage: python -m instructlake.deploy emr-steps", file=sys.stderr)
        return 2
    skipped = set(load_config("emr").platform.pipeline.skip)
    print(json.dumps(emr_steps([s for s in NAMES if s not in skipped]), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
