"""One Spark session for the whole test run; a fresh warehouse per test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # vLLM logs every engine step of every worker at INFO

TEST_SETTINGS = ["platform.spark.master=local[2]", "platform.spark.shuffle_partitions=4",
                 "platform.spark.driver_memory=3g"]
# For the local-mode JVMs of the `spark` fixture and the object-storage test's CLI run, where hundreds of tiny
# queries each run once: generated code is compiled by Janino and then by the JIT for every new plan, and the
# JIT's C2 thread took over a third of the driver JVM's CPU in a pipeline run of the fixture's pool.
# Interpreted expressions and later JIT compiles cut that run from 142-150 s to 103-127 s (four runs each).
# Test-only: on a user's millions of rows generated code pays. The cluster and spark-submit runs keep Spark's
# defaults, so the cluster test also compares generated code (there) with interpreted (here).
# The fixture's JVM keeps both compilers (platform.spark.jit=full), as every suite did before C1 became the
# local default: it lives for the whole suite. A suite run with C1 only, and C1's then 48 MB code cache,
# took over an hour against 34-41 min before, its code cache sweeper busy for 12 of the JVM's 64 CPU
# minutes. C1 with the 240 MB cache `quick` now asks for is not measured over the suite.
SMALL_DATA_JVM = ["platform.spark.conf.spark.sql.codegen.wholeStage=false",
                  "platform.spark.conf.spark.sql.codegen.factoryMode=NO_CODEGEN",
                  "platform.spark.conf.spark.driver.extraJavaOptions=-XX:CompileThresholdScaling=3"]


# `python build.py test` runs the suite in two xdist workers. The tests of one group run in one worker: the
# files of the pipeline fixture, so its four pipeline runs happen once, and vLLM's, which look for engine
# processes machine-wide and so must not overlap; every other test is a unit of its own. (A scheduler of
# ours, as xdist's own `xdist_group` marks do not group under pytest 9.2: xdist 3.8 appends the group to
# `item._nodeid`, and pytest 9.2 keeps a test's id elsewhere.)
GROUPS = {"test_pipeline.py": "pipeline_lake", "test_cluster.py": "pipeline_lake",
          "test_notebooks.py": "pipeline_lake", "test_report_browser.py": "pipeline_lake",
          "test_vllm.py": "vllm", "test_vllm_serve.py": "vllm"}


def group_of(nodeid: str) -> str:
    return GROUPS.get(nodeid.split("::", 1)[0].rsplit("/", 1)[-1], nodeid)


@pytest.hookimpl(optionalhook=True)  # defined only where xdist is installed
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    if config.getvalue("dist") != "load":  # another --dist given: xdist's own
        return None

    class Grouped(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return Grouped(config, log)


@pytest.fixture(scope="session")
def spark():
    from instructlake.config import load_config
    from instructlake.spark import get_session

    session = get_session(load_config("local", [*TEST_SETTINGS, *SMALL_DATA_JVM, "platform.spark.jit=full"])
                          .platform, "instructlake-tests")
    yield session
    session.stop()


@pytest.fixture
def warehouse(tmp_path) -> Path:
    return tmp_path / "wh"


@pytest.fixture
def config(warehouse):
    from instructlake.config import load_config

    return load_config("local", TEST_SETTINGS, warehouse=str(warehouse))


@pytest.fixture
def store(spark, config):
    from instructlake.store import Store

    return Store(spark, config.warehouse, retries=8)


@pytest.fixture
def samples_dir() -> Path:
    return SAMPLES


def logged_tokens(path, skip: int = 0) -> tuple[int, int]:
    """(prompt, completion) tokens the scripted double reported in its calls_file, summed over the lines
    after the first `skip`: counted where the calls were made, not by the code under test."""
    lines = open(path).read().splitlines()[skip:]
    return sum(int(x.split()[2]) for x in lines), sum(int(x.split()[3]) for x in lines)
