"""What every command shares: the Spark session and store of a config, and running one stage with its run
record."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from instructlake.config import Config

log = logging.getLogger("instructlake")


def session(cfg: Config):
    from instructlake.spark import get_session
    from instructlake.store import Store

    spark = get_session(cfg.platform)
    return spark, Store(spark, cfg.warehouse, cfg.platform.store.write_retries)


def run_stage(name: str, cfg: Config, fn: Callable, args: dict):
    """Run one stage and append its run record, also when it fails."""
    from instructlake import progress, runs

    spark, store = session(cfg)
    started = runs.now()
    try:
        with progress.reporting(spark, name, cfg.platform.execution.progress_seconds):
            result = fn(spark, store, cfg)
    except BaseException as e:
        failed = runs.StageResult(stage=name, config_hash=cfg.stage_hash(name) if hasattr(cfg.semantic, name) else "")
        try:
            runs.record(store, failed, started, status="failed", args=args, message=f"{type(e).__name__}: {e}"[:4000])
        except Exception:  # noqa: BLE001 - the original error matters more than the record
            log.exception("could not record the failed run")
        raise
    runs.record(store, result, started, args=args)
    if result.warning:
        print(f"warning: {result.warning}", file=sys.stderr, flush=True)
    return result
