"""Progress lines while a stage runs (instructlake.progress): read from Spark's status tracker of the real
session, and the arithmetic of the time left on snapshots the test writes itself."""

from __future__ import annotations

import logging
import re
import time

import pytest

from instructlake import progress
from instructlake.config import load_config
from instructlake.errors import ConfigError
from instructlake.progress import Pace, StageTasks, duration, line

TASKS = 8


def _slow_job(spark, tasks: int) -> int:
    """A job of `tasks` one-second tasks (the function is built here so it travels by value to the
    workers, which cannot import this test module)."""

    def slow(rows):
        import time

        time.sleep(1.0)
        yield from rows

    return spark.sparkContext.parallelize(range(tasks), tasks).mapPartitions(slow).count()


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "instructlake.progress"]


def test_a_running_job_is_reported_with_its_tasks_and_nothing_after_the_block(spark, caplog):
    caplog.set_level(logging.INFO, logger="instructlake.progress")
    # 8 one-second tasks on the fixture's two cores: about 4 s, a line every 0.25 s
    with progress.reporting(spark, "lab stage", 0.25):
        assert _slow_job(spark, TASKS) == TASKS
    lines = _lines(caplog)
    assert lines and all(x.startswith("lab stage: ") for x in lines), lines
    jobs = [x for x in lines if f"of {TASKS} tasks done" in x]
    assert jobs, lines
    assert "(count at integration/test_progress.py:" in jobs[0], jobs[0]  # where the job was asked for
    done = [int(re.search(rf"(\d+) of {TASKS} tasks done", x).group(1)) for x in jobs]
    assert done == sorted(done) and done[-1] >= 2, done  # counted as the tasks end, never backwards
    assert any(re.search(r"about \d+s left at this pace", x) for x in jobs), jobs
    # the thread ends with the block: no line comes after it
    n = len(_lines(caplog))
    time.sleep(0.8)
    assert len(_lines(caplog)) == n


def test_no_thread_and_no_line_when_turned_off(spark, caplog):
    caplog.set_level(logging.INFO, logger="instructlake.progress")
    with progress.reporting(spark, "lab stage", 0):
        _slow_job(spark, 2)
    assert _lines(caplog) == []


def test_the_block_raises_as_it_would_and_the_thread_stops(spark, caplog):
    caplog.set_level(logging.INFO, logger="instructlake.progress")
    with pytest.raises(ZeroDivisionError), progress.reporting(spark, "failing stage", 0.1):
        time.sleep(0.35)
        raise ZeroDivisionError
    n = len(_lines(caplog))
    assert n >= 1 and "failing stage: 0s in; no Spark task running (the driver is at work)" in _lines(caplog)
    time.sleep(0.3)
    assert len(_lines(caplog)) == n


def _at(done: int, running: int = 2, failed: int = 0, attempt: int = 0) -> StageTasks:
    return StageTasks(7, attempt, "mapInPandas at /opt/app/lib/instructlake/llm/cache.py:177", 100, done,
                      running, failed)


def test_time_left_is_the_pace_since_the_stage_was_first_seen():
    pace = Pace()
    first = line("tag", 30, [_at(10)], pace, now=1000.0)
    assert first == ("tag: 30s in; Spark stage 7 (mapInPandas at llm/cache.py:177): 10 of 100 tasks done, "
                     "2 running")  # no pace yet: nothing ended while it was watched
    assert line("tag", 90, [_at(10)], pace, now=1060.0).endswith("2 running")
    # 20 tasks in 120 s: the 70 left take 420 s
    assert line("tag", 150, [_at(30)], pace, now=1120.0).endswith("30 of 100 tasks done, 2 running, "
                                                                   "about 7m00s left at this pace")
    # a retried attempt of the stage is a stage of its own to the pace
    assert line("tag", 160, [_at(30, attempt=1)], pace, now=1130.0).endswith("2 running")
    assert "3 failed (retried)" in line("tag", 170, [_at(31, failed=3)], pace, now=1140.0)


def test_several_stages_in_order_unnamed_jvm_call_sites_and_durations():
    # a JVM-side call site (a query stage Spark or Delta started) is left unnamed
    two = [StageTasks(12, 0, "$anonfun$withThreadLocalCaptured$1 at CompletableFuture.java:1768", 4, 1, 1, 0),
           StageTasks(3, 0, "collect at /a/b/x.py:1", 2, 0, 2, 0)]
    assert line("dedup", 3725, two, Pace(), 0.0) == (
        "dedup: 1h02m in; Spark stage 3 (collect at b/x.py:1): 0 of 2 tasks done, 2 running; "
        "Spark stage 12: 1 of 4 tasks done, 1 running")
    assert [duration(s) for s in (0, 59.9, 60, 754, 3600, 86399)] == ["0s", "59s", "1m00s", "12m34s",
                                                                      "1h00m", "23h59m"]


def test_the_setting_and_its_checks():
    assert load_config("local").platform.execution.progress_seconds == 60.0
    off = load_config("local", ["platform.execution.progress_seconds=0"])
    assert off.platform.execution.progress_seconds == 0
    with pytest.raises(ConfigError, match="progress_seconds"):
        load_config("local", ["platform.execution.progress_seconds=-1"])


def test_a_pipeline_step_and_a_command_report_while_they_run(spark, warehouse, samples_dir, caplog):
    from instructlake.cli import main

    caplog.set_level(logging.INFO, logger="instructlake.progress")
    opts = ["--warehouse", str(warehouse), "--set", "platform.execution.progress_seconds=0.2"]
    assert main([*opts, "pipeline", "run", "--input", str(samples_dir / "seed_tasks.jsonl"), "--to",
                 "ingest"]) == 0
    assert any(x.startswith("ingest: ") for x in _lines(caplog)), _lines(caplog)
    caplog.clear()
    assert main([*opts, "dedup"]) == 0
    assert any(x.startswith("dedup: ") for x in _lines(caplog)), _lines(caplog)
