"""Stage-level scheduling: model stages ask Spark for GPUs with a ResourceProfile on a cluster.

Only the model steps (LLM calls, embeddings, loss scoring) carry the profile, so the rest of a job keeps
running on CPU executors. Locally (gpus_per_task = 0, the default) no profile is built: local mode has no
stage-level scheduling. On Databricks/EMR the platform config sets the amounts; the cluster must have
dynamic allocation (or a standalone/Kubernetes/YARN master that supports profiles) and GPU discovery.

executor_gpus = 0 builds a task-only profile (TaskResourceProfile): the one kind Spark accepts when
dynamic allocation is off, as on Databricks job clusters with a fixed number of workers, where every
executor already has its GPU and model tasks just claim a bigger share of it than CPU tasks do.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def task_threads(spark, explicit: int = 0) -> int:
    """CPU threads for one model task's Python worker: `explicit` when set, else the host's cores over its
    task slots (local mode) or an executor's cores over spark.task.cpus (a cluster); 0 when a cluster does
    not say its executors' cores."""
    if explicit > 0:
        return explicit
    conf = spark.sparkContext.getConf()
    if conf.get("spark.master", "").startswith("local"):
        return max(1, (os.cpu_count() or 1) // max(1, spark.sparkContext.defaultParallelism))
    cores = int(conf.get("spark.executor.cores", "0") or 0)
    return max(1, cores // max(1, int(float(conf.get("spark.task.cpus", "1"))))) if cores else 0


def gpu_profile(gpus_per_task: float, executor_gpus: int = 1, task_cpus: int = 1, executor_cores: int = 0,
                executor_memory: str = ""):
    """A ResourceProfile asking for GPUs, or None when gpus_per_task is 0 (run where CPU tasks run)."""
    if gpus_per_task <= 0:
        return None
    from pyspark.resource import ExecutorResourceRequests, ResourceProfileBuilder, TaskResourceRequests

    task = TaskResourceRequests().resource("gpu", gpus_per_task).cpus(task_cpus)
    if executor_gpus <= 0:
        log.info("model stage requests %s GPU per task through a task resource profile", gpus_per_task)
        return ResourceProfileBuilder().require(task).build
    if gpus_per_task > executor_gpus:
        raise ValueError(f"gpus_per_task {gpus_per_task} exceeds executor_gpus {executor_gpus}")
    ex = ExecutorResourceRequests().resource("gpu", executor_gpus)
    if executor_cores:
        ex = ex.cores(executor_cores)
    if executor_memory:
        ex = ex.memory(executor_memory)
    profile = ResourceProfileBuilder().require(ex).require(task).build
    log.info("model stage requests %s GPU per task (%d per executor) through a ResourceProfile",
             gpus_per_task, executor_gpus)
    return profile
