"""Run records: every stage run appends one row to `runs` (config hash, counts, table versions, timings)."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from instructlake import schemas
from instructlake.frames import rows_frame
from instructlake.store import Store

log = logging.getLogger(__name__)


class EmptyInputError(ValueError):
    """A stage has nothing to work on because an earlier stage has not run; the message says which."""


class StaleInputError(ValueError):
    """A stage's input has not been through an earlier stage under the current config; the message names
    that stage and the command that brings it up to date."""


@dataclass
class StageResult:
    stage: str
    config_hash: str
    counts: dict[str, int] = field(default_factory=dict)
    input_versions: dict[str, int] = field(default_factory=dict)
    output_versions: dict[str, int] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    seconds: float = 0.0
    # the stage finished, but what it wrote leaves the stages after it with nothing (the setting to change
    # is named): logged, printed, and kept as the run record's message
    warning: str | None = None

    def summary(self) -> str:
        counts = ", ".join(f"{k}={v:,}" for k, v in self.counts.items() if "." not in k)
        return f"{self.stage}: {counts} ({self.seconds:.1f}s)"


def record(store: Store, result: StageResult, started: datetime, status: str = "ok",
           args: dict | None = None, message: str | None = None, finished: datetime | None = None) -> None:
    """Append the run's row; `finished` (default: now) is when the stage ended, for a record written later."""
    finished = finished or datetime.now(timezone.utc)
    result.seconds = (finished - started).total_seconds()
    row = (
        result.run_id, result.stage, status, result.config_hash,
        started, finished, result.seconds,
        {k: int(v) for k, v in result.counts.items()},
        {k: int(v) for k, v in result.input_versions.items() if v is not None},
        {k: int(v) for k, v in result.output_versions.items() if v is not None},
        json.dumps(args or {}, default=str, sort_keys=True), message if message is not None else result.warning,
    )
    df = rows_frame(store.spark, [row], schemas.RUNS)
    store.append("runs", df)


def now() -> datetime:
    return datetime.now(timezone.utc)
