"""The ResourceProfile model stages attach on a cluster, built from the platform settings."""

import pytest

from instructlake.config import load_config
from instructlake.resources import gpu_profile


def test_no_profile_without_gpus():
    assert gpu_profile(0) is None
    assert load_config("local").platform.llm.gpus_per_task == 0  # local runs never ask for GPUs


def test_gpu_profile_from_settings(spark):
    cfg = load_config("local", ["platform.llm.gpus_per_task=0.5", "platform.llm.executor_gpus=2"])
    p = gpu_profile(cfg.platform.llm.gpus_per_task, cfg.platform.llm.executor_gpus, task_cpus=4,
                    executor_memory="40g")
    assert p.taskResources["gpu"].amount == 0.5 and p.taskResources["cpus"].amount == 4
    assert p.executorResources["gpu"].amount == 2 and p.executorResources["memory"].amount == 40 * 1024
    with pytest.raises(ValueError, match="exceeds"):
        gpu_profile(2, executor_gpus=1)
