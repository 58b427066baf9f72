"""A stage's progress in the log while it runs: every `platform.execution.progress_seconds`, one line with
the Spark stages the process has running, their tasks done of all, and the time left at their pace so far.

A stage on millions of rows runs for hours in a few Spark jobs whose tasks finish one by one; its own log
lines come at its start and end. Spark's status tracker knows each running stage's task counts on the
driver, so a thread reads it: nothing is added to the stage's jobs. The lines speak of every job of the
process, which is the stage's own while one stage runs at a time (the pipeline, a command, a job).

    tag: 12m30s in; Spark stage 14 (mapInPandas at llm/cache.py:177): 37 of 200 tasks done, 2 running,
    about 54m left at this pace
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger("instructlake.progress")


@dataclass(frozen=True)
class StageTasks:
    """What the status tracker says of one running Spark stage."""

    stage_id: int
    attempt: int
    name: str
    tasks: int
    done: int
    running: int
    failed: int


def duration(seconds: float) -> str:
    """45s, 12m30s, 3h05m."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def short_name(name: str) -> str | None:
    """Spark's call site with the file's last two path parts (`mapInPandas at llm/cache.py:177`), when it
    is a line of Python; None for a JVM-side one (`$anonfun$... at CompletableFuture.java:1768`, a query
    stage Spark or Delta started), which would say nothing to the reader."""
    head, sep, where = name.partition(" at ")
    if not sep or not re.search(r"\.py:\d+$", where):
        return None
    return f"{head} at {'/'.join(where.split('/')[-2:])}"


class Pace:
    """Each Spark stage's tasks done when it was first seen, to give the time left at its pace since."""

    def __init__(self) -> None:
        self._first: dict[tuple[int, int], tuple[float, int]] = {}

    def left(self, s: StageTasks, now: float) -> float | None:
        """Seconds left for the stage's remaining tasks at the rate seen so far; None before a task ended
        while it was watched."""
        t0, done0 = self._first.setdefault((s.stage_id, s.attempt), (now, s.done))
        if s.done <= done0 or now <= t0:
            return None
        return (s.tasks - s.done) * (now - t0) / (s.done - done0)


def line(stage: str, elapsed: float, running: list[StageTasks], pace: Pace, now: float) -> str:
    """One progress line for the stage `elapsed` seconds in, from the Spark stages running now."""
    parts = []
    for s in sorted(running, key=lambda s: s.stage_id):
        name = short_name(s.name)
        text = (f"Spark stage {s.stage_id}{f' ({name})' if name else ''}: {s.done:,} of {s.tasks:,} tasks "
                f"done, {s.running:,} running")
        if s.failed:
            text += f", {s.failed:,} failed (retried)"
        left = pace.left(s, now)
        if left is not None:
            text += f", about {duration(left)} left at this pace"
        parts.append(text)
    what = "; ".join(parts) if parts else "no Spark task running (the driver is at work)"
    return f"{stage}: {duration(elapsed)} in; {what}"


def running_stages(spark) -> list[StageTasks]:
    """The Spark stages the status tracker holds as active (a stage that ended meanwhile is left out)."""
    tracker = spark.sparkContext.statusTracker()
    out = []
    for sid in tracker.getActiveStageIds():
        info = tracker.getStageInfo(sid)
        if info is not None:
            out.append(StageTasks(info.stageId, info.currentAttemptId, info.name, info.numTasks,
                                  info.numCompletedTasks, info.numActiveTasks, info.numFailedTasks))
    return out


@contextmanager
def reporting(spark, stage: str, every: float) -> Iterator[None]:
    """Log a progress line every `every` seconds while the block runs (0: none); the thread is stopped
    and joined when the block ends, also when it raises."""
    if every <= 0:
        yield
        return
    stop = threading.Event()
    started = time.monotonic()
    pace = Pace()

    def watch() -> None:
        while not stop.wait(every):
            try:
                now = time.monotonic()
                text = line(stage, now - started, running_stages(spark), pace, now)
            except Exception as e:  # noqa: BLE001 - a session stopping under it; the stage says why
                log.debug("no progress line: %s", e)
                continue
            if not stop.is_set():
                log.info("%s", text)

    thread = threading.Thread(target=watch, name=f"progress of {stage}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
