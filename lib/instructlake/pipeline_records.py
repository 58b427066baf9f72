"""The pipeline's run records: reading the completed ones it plans by, and writing a finished stage's records
while the next stage runs.

Writing a stage's records (its row in `runs`; for ingest, its files in `ingested_files`) is a Delta commit
or two: ingest's took a new warehouse 2.3-2.4 s, which the next stage need not wait for, as it
reads neither table. Every stage is idempotent, so a process that dies before a record is written only
makes the next run do that stage again: ingest re-reads files whose samples are already stored and adds
nothing; a later stage finds its inputs unchanged in content and writes the same rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence

from pyspark.sql import functions as F

from instructlake.background import Background
from instructlake.store import Store

log = logging.getLogger(__name__)


def last_completed(store: Store, stage: str) -> dict | None:
    """The latest ok run of a stage that the pipeline recorded (its args carry the fingerprint), else None."""
    return completed_runs(store, [stage]).get(stage)


def completed_runs(store: Store, stages: Sequence[str]) -> dict[str, dict]:
    """The latest ok run of each stage, read in one query: a pipeline plans every step against them, and
    one read of `runs` per step cost about a second each."""
    if not store.exists("runs") or not stages:
        return {}
    from pyspark.sql import Window

    w = Window.partitionBy("stage").orderBy(F.desc("finished_at"))
    rows = (store.read("runs").filter((F.col("status") == "ok") & F.col("stage").isin(list(stages)))
            .withColumn("_n", F.row_number().over(w)).filter("_n = 1")
            .select("stage", "args", "input_versions", "finished_at").collect())
    return {r["stage"]: _completed(r) for r in rows}


def _completed(row) -> dict:
    try:
        args = json.loads(row["args"] or "{}")
    except ValueError:
        args = {}
    return {**args, "input_versions": dict(row["input_versions"] or {}), "finished_at": row["finished_at"]}


class RecordsBehind:
    """Each finished stage's records written on a driver thread, one stage's at a time and in stage
    order: the next stage's are started only once the last ones are in. `flush` waits and raises what
    went wrong; a pipeline flushes before it records a failed run and before it returns."""

    def __init__(self) -> None:
        self._writing: Background | None = None

    def write(self, stage: str, call: Callable[[], None]) -> None:
        """Start writing `stage`'s records once the previous stage's are written (raising their error)."""
        self.flush()
        self._writing = Background(f"record the {stage} run", call)
        self._writing.start()

    def flush(self) -> None:
        """Wait for the records being written; raise their error."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def settle(self) -> None:
        """flush() where another error is already on its way up: this one is logged, not raised."""
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - the stage's own error is the one raised
            log.exception("could not record an earlier stage's run")
