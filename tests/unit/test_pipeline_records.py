"""RecordsBehind: a finished stage's records are written beside the next stage, one stage's at a time, in
order, and an error in them is raised, never dropped."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from instructlake.pipeline_records import RecordsBehind


def test_records_are_written_in_stage_order_one_at_a_time():
    events: list[str] = []
    first_running = threading.Event()

    def slow(name: str):
        def write():
            events.append(f"{name} start")
            first_running.set()
            time.sleep(0.3)
            events.append(f"{name} end")
        return write

    records = RecordsBehind()
    records.write("ingest", slow("ingest"))
    assert first_running.wait(5)
    events.append("next stage runs")  # the caller goes on while ingest's records are written
    records.write("dedup", slow("dedup"))  # waits for ingest's to be written first
    records.flush()
    assert events == ["ingest start", "next stage runs", "ingest end", "dedup start", "dedup end"]


def test_an_error_in_the_records_is_raised_by_the_next_write_or_flush():
    def broken():
        raise OSError("disk full")

    later: list[str] = []
    records = RecordsBehind()
    records.write("ingest", broken)
    with pytest.raises(OSError, match="disk full"):
        records.write("dedup", lambda: later.append("dedup"))
    assert later == []  # a stage's records never go in after an earlier stage's failed
    records.write("ingest", broken)
    with pytest.raises(OSError, match="disk full"):
        records.flush()
    records.flush()  # raised once: nothing is left in flight


def test_settle_logs_instead_of_raising(caplog):
    def broken():
        raise OSError("disk full")

    records = RecordsBehind()
    records.write("ingest", broken)
    with caplog.at_level(logging.ERROR, logger="instructlake.pipeline_records"):
        records.settle()
    assert "could not record an earlier stage's run" in caplog.text and "disk full" in caplog.text
