"""`pipeline run`: skips what is up to date, resumes after a crash, a refresh equals a full rebuild, and two
refreshes at once neither corrupt nor duplicate anything."""

from __future__ import annotations

import json
import shutil
import threading

import pytest

from instructlake import pipeline
from tests.integration.conftest import pipeline_settings, write_inputs

RAN_FIRST = ["ingest", "dedup", "semdedup", "filter", "tagging", "normalize_tags", "graph", "scoring", "seeds",
             "scrub", "decontam", "export", "report"]
NOT_APPLICABLE = ["train_reference", "synth", "difficulty"]  # a fixed scoring model, no LLM


def by_step(outcomes):
    return {o.step: o for o in outcomes}


def test_first_run_then_nothing_to_do(pipeline_lake):
    first, again = by_step(pipeline_lake.first), by_step(pipeline_lake.again)
    assert [s for s, o in first.items() if o.action == "ran"] == RAN_FIRST
    assert [s for s, o in first.items() if o.action == "skipped"] == NOT_APPLICABLE
    assert "LLM" in first["synth"].reason and "tiny" in first["train_reference"].reason
    assert first["decontam"].result.counts["prompts"] == 81 and first["decontam"].result.counts["flagged"] >= 1
    assert first["ingest"].result.counts["ingested"] == 130 and first["ingest"].result.counts["new_files"] == 2
    # the same inputs again: every stage is up to date and no run records are added
    assert {o.action for s, o in again.items() if s not in NOT_APPLICABLE} == {"up to date"}
    assert again["ingest"].reason == "no new or changed raw files"


def test_refresh_crash_then_resume(pipeline_lake):
    crashed, resumed = by_step(pipeline_lake.crashed), by_step(pipeline_lake.resumed)
    assert "injected crash" in str(pipeline_lake.crash)
    assert [s for s, o in crashed.items() if o.action == "ran"] == ["ingest", "dedup", "semdedup", "filter",
                                                                     "tagging", "normalize_tags"]
    assert crashed["graph"].action == "failed"
    runs = pipeline_lake.store.read("runs")
    assert runs.filter("stage = 'graph' AND status = 'failed'").count() == 1
    # the re-run resumes at the stage that failed: what completed is not done again
    assert [s for s, o in resumed.items() if o.action == "up to date"] == ["ingest", "dedup", "semdedup", "filter",
                                                                            "tagging", "normalize_tags"]
    assert [s for s, o in resumed.items() if o.action == "ran"] == ["graph", "scoring", "seeds", "scrub",
                                                                     "decontam", "export", "report"]
    # incremental: the refresh read only the new file, and each stage processed only the new samples
    ing = crashed["ingest"].result.counts
    assert (ing["new_files"], ing["records"], ing["ingested"], ing["duplicate"], ing["quarantined"]) == (1, 64, 62, 1, 1)
    d0, d = by_step(pipeline_lake.first)["dedup"].result.counts, crashed["dedup"].result.counts
    assert d["signatures_computed"] == 62
    # the near copy and the normalized-equal copy of first-load records are found across the two loads
    assert (d["near_duplicates"] - d0["near_duplicates"], d["exact_duplicates"] - d0["exact_duplicates"]) == (1, 1)
    store = pipeline_lake.store
    removed = store.read("dedup_clusters").filter("NOT is_kept").select("sample_id")
    new = store.read("samples").filter("source = 'c_alpaca_more'").join(removed, "sample_id", "left_anti")
    new_kept = new.count()
    assert 55 < new_kept <= 62
    assert crashed["filter"].result.counts["input"] == new_kept  # the filter judges what dedup kept
    # later stages read what the filter passed: its verdicts, counted here from the table's rows
    failed = store.read("quality").filter("NOT passed").select("sample_id")
    new_passed = new.join(failed, "sample_id", "left_anti").count()
    assert crashed["filter"].result.counts["filtered"] == new_kept - new_passed
    new_kept = new_passed
    assert crashed["tagging"].result.counts["input"] == new_kept
    assert resumed["scoring"].result.counts["input"] == new_kept
    assert resumed["decontam"].result.counts["input"] == new_kept
    assert resumed["scrub"].result.counts["input"] == new_kept  # scrub checks what later stages read
    assert runs.filter("stage = 'ingest' AND status = 'ok'").count() == 2


def test_status_after_resume(pipeline_lake):
    inputs = pipeline.Inputs(raw=(str(pipeline_lake.landing),), benchmarks=pipeline_lake.benchmarks)
    rows = {r["stage"]: r for r in pipeline.status(pipeline_lake.store, pipeline_lake.config, inputs)}
    assert list(rows) == list(pipeline.NAMES)
    assert {rows[s]["next"] for s in RAN_FIRST} == {"up to date"}
    assert {rows[s]["next"] for s in NOT_APPLICABLE} == {"skip"}
    assert rows["graph"]["last_status"] == "ok" and rows["scoring"]["last_counts"]["input"] > 0
    # a changed setting makes exactly the stages that depend on it due again
    from instructlake.config import load_config

    changed = load_config("local", [*pipeline_settings(pipeline_lake.model_dir), "graph.bootstrap=3"],
                          warehouse=str(pipeline_lake.warehouse))
    due = [r["stage"] for r in pipeline.status(pipeline_lake.store, changed, inputs) if r["next"] == "run"]
    assert due == ["graph"]


def _rows(store, table, cols, where=None):
    df = store.read(table)
    if where is not None:
        df = df.filter(where)
    return sorted(tuple(r) for r in df.select(*cols).collect())


def test_refresh_equals_full_rebuild(spark, pipeline_lake, tmp_path):
    from instructlake.store import Store

    first, refresh = write_inputs(tmp_path / "files")
    landing = tmp_path / "landing"
    landing.mkdir()
    for f in [*first, *refresh]:
        shutil.copy(f, landing / f.name)
    from instructlake.config import load_config

    cfg = load_config("local", pipeline_settings(pipeline_lake.model_dir), warehouse=str(tmp_path / "wh"))
    full = Store(spark, cfg.warehouse, retries=8)
    out = by_step(pipeline.run(spark, full, cfg, pipeline.Inputs(raw=(str(landing),),
                                                                   benchmarks=pipeline_lake.benchmarks,
                                                                   export_dir=str(tmp_path / "export")),
                               stop="export"))
    assert out["export"].action == "ran"
    inc = pipeline_lake.store
    compare = {
        "samples": ["sample_id", "source", "source_id", "instruction", "n_turns"],
        "quarantine": ["quarantine_id", "reason"],
        "dedup_clusters": ["sample_id", "cluster_id", "method", "is_kept", "kept_id"],
        "minhash_signatures": ["sample_id", "signature_hash", "exact_h1", "exact_h2"],
        "tag_map": ["raw_tag", "canonical_tag", "category", "freq"],
        "tag_stats": ["canonical_tag", "category", "frequency", "n_sources"],
        "tag_edges": ["tag_a", "tag_b", "weight"],
        "tag_degrees": ["tag", "degree", "frequency"],
        "seeds": ["sample_id", "criteria"],
    }
    for table, cols in compare.items():
        a, b = _rows(inc, table, cols), _rows(full, table, cols)
        assert a == b, f"{table}: refresh and full rebuild differ ({len(a)} vs {len(b)} rows)"
    # per-sample caches keep rows of samples a refresh turned into duplicates (no model call is repeated if
    # they come back); for the samples kept they are the same
    kept = full.read("dedup_clusters").filter("is_kept").select("sample_id")
    for table, cols in {"tags": ["sample_id", "tag"], "contamination": ["sample_id", "benchmark", "item_id", "flagged"]}.items():
        a = sorted(tuple(r) for r in inc.read(table).join(kept, "sample_id", "left_semi").select(*cols).collect())
        b = sorted(tuple(r) for r in full.read(table).join(kept, "sample_id", "left_semi").select(*cols).collect())
        assert a == b, f"{table}: refresh and full rebuild differ on kept samples ({len(a)} vs {len(b)} rows)"
    assert full.read("contamination").filter("flagged").count() >= 1

    def losses(store):
        rows = store.read("scores").join(kept, "sample_id", "left_semi").select("sample_id", "loss_cond", "loss_uncond")
        return {r[0]: r[1:] for r in rows.collect()}

    sa, sb = losses(inc), losses(full)
    assert sa.keys() == sb.keys()
    assert max(abs(x - y) for k in sa for x, y in zip(sa[k], sb[k], strict=True)) < 1e-4
    ids = [json.loads(x)["id"] for d in (pipeline_lake.root / "export", tmp_path / "export")
           for x in [ln for p in sorted((d / "sharegpt").glob("part-*.json")) for ln in p.read_text().splitlines()]]
    n = len(ids) // 2
    assert n > 100 and sorted(ids[:n]) == sorted(ids[n:]) and len(set(ids)) == n


def test_two_refreshes_at_once(spark, tmp_path, caplog):
    """Two pipelines over the same new files in one warehouse, started together: Delta's optimistic
    concurrency with the store's bounded retries leaves every table as one run would."""
    import logging

    from instructlake.config import load_config
    from instructlake.store import Store

    first, refresh = write_inputs(tmp_path / "files")
    landing = tmp_path / "landing"
    landing.mkdir()
    for f in [*first, *refresh]:
        shutil.copy(f, landing / f.name)
    cfg = load_config("local", pipeline_settings(tmp_path / "no-model"), warehouse=str(tmp_path / "wh"))
    inputs = pipeline.Inputs(raw=(str(landing),))
    errors: list[BaseException] = []
    results: list[list] = []
    barrier = threading.Barrier(2)

    def go():
        try:
            # like two spark-submits: own SQL settings, one JVM (Delta's local log store)
            session = spark.newSession()
            barrier.wait()
            results.append(pipeline.run(session, Store(session, cfg.warehouse, retries=10), cfg, inputs, stop="dedup"))
        except BaseException as e:  # noqa: BLE001 - reported below
            import traceback

            errors.append(f"{type(e).__name__}: {e}\n{traceback.format_exc()[-3000:]}")

    with caplog.at_level(logging.WARNING, logger="instructlake.store"):
        threads = [threading.Thread(target=go) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
    assert not errors, errors
    races = [r.getMessage() for r in caplog.records if "concurrent-write race" in r.getMessage()]
    assert races, "the two pipelines never collided: the test did not exercise concurrent writes"
    store = Store(spark, cfg.warehouse)
    samples = store.read("samples")
    assert samples.count() == 192 == samples.select("sample_id").distinct().count()  # 130 + 62 new
    clusters = store.read("dedup_clusters")
    assert clusters.count() == clusters.select("sample_id").distinct().count() == 192
    one = [by_step(r)["dedup"] for r in results if by_step(r)["dedup"].action == "ran"]
    assert one and clusters.filter("NOT is_kept").count() == \
        one[0].result.counts["exact_duplicates"] + one[0].result.counts["near_duplicates"] >= 2
    sigs = store.read("minhash_signatures")
    assert sigs.count() == sigs.select("sample_id").distinct().count() == 192
    files = store.read("ingested_files")
    assert files.count() == 3 == files.select("path").distinct().count()
    assert store.read("quarantine").count() == 1


def test_unknown_stage_is_a_clear_error():
    from instructlake.config import ConfigError

    with pytest.raises(ConfigError, match="unknown pipeline stage 'dedupe'.*ingest, dedup"):
        pipeline.select("dedupe")
    with pytest.raises(ConfigError, match="comes after"):
        pipeline.select("export", "dedup")
    assert [s.name for s in pipeline.select("tag", "graph")] == ["tagging", "normalize_tags", "graph"]


def test_resume_after_the_process_is_killed(spark, tmp_path):
    """`pipeline run` in its own process, killed (SIGKILL, JVM included) while dedup runs; the next run finds
    ingest done and runs dedup again, and the tables hold each sample once."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from instructlake.config import load_config
    from instructlake.store import Store

    first, refresh = write_inputs(tmp_path / "files")
    landing = tmp_path / "landing"
    landing.mkdir()
    for f in first:
        shutil.copy(f, landing / f.name)
    settings = pipeline_settings(tmp_path / "no-model")
    wh = tmp_path / "wh"
    cmd = [sys.executable, "-m", "instructlake.cli", "--warehouse", str(wh),
           *[x for s in settings for x in ("--set", s)], "pipeline", "run", "--input", str(landing), "--to", "dedup"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = []
    try:
        deadline = time.time() + 300
        for line in proc.stdout:
            seen.append(line)
            if "pipeline: running dedup" in line:
                break
            assert time.time() < deadline, "".join(seen[-30:])
        # ingest's records are written beside dedup: killed once they are in (the runs table's first
        # append), while dedup runs
        first_append = wh / "runs" / "_delta_log" / f"{1:020d}.json"
        while not first_append.exists():
            assert time.time() < deadline and proc.poll() is None, "".join(seen[-30:])
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(60)
    assert any("pipeline: running dedup" in x for x in seen), "".join(seen[-30:])

    cfg = load_config("local", settings, warehouse=str(wh))
    store = Store(spark, cfg.warehouse)
    runs = store.read("runs")
    assert runs.filter("stage = 'ingest' AND status = 'ok'").count() == 1
    assert runs.filter("stage = 'dedup'").count() == 0  # killed: not even a failed record
    out = by_step(pipeline.run(spark, store, cfg, pipeline.Inputs(raw=(str(landing),)), stop="dedup"))
    assert out["ingest"].action == "up to date" and out["dedup"].action == "ran"
    samples = store.read("samples")
    assert samples.count() == 130 == samples.select("sample_id").distinct().count()
    clusters = store.read("dedup_clusters")
    assert clusters.count() == clusters.select("sample_id").distinct().count() == 130


def test_records_not_written_make_the_next_run_ingest_again_adding_nothing(spark, tmp_path, monkeypatch):
    """Ingest's records (ingested_files, its run) are written beside dedup; when that fails the pipeline
    raises that error once dedup is done, and the next run ingests the same files again: every sample is
    already stored, so nothing is added."""
    from instructlake.config import load_config
    from instructlake.store import Store

    first, _ = write_inputs(tmp_path / "files")
    landing = tmp_path / "landing"
    landing.mkdir()
    for f in first:
        shutil.copy(f, landing / f.name)
    cfg = load_config("local", pipeline_settings(tmp_path / "no-model"), warehouse=str(tmp_path / "wh"))
    store = Store(spark, cfg.warehouse)
    inputs = pipeline.Inputs(raw=(str(landing),))

    def lost(*a, **k):
        raise OSError("injected: ingest's records lost")

    monkeypatch.setattr(pipeline, "mark_ingested", lost)
    seen = []
    with pytest.raises(OSError, match="records lost"):
        pipeline.run(spark, store, cfg, inputs, stop="dedup", on_step=seen.append)
    assert [(o.step, o.action) for o in seen] == [("ingest", "ran")]  # dedup ran, but is not reported done
    assert not store.exists("runs") and not store.exists("ingested_files")  # no record of either stage
    monkeypatch.undo()

    out = by_step(pipeline.run(spark, store, cfg, inputs, stop="dedup"))
    again = out["ingest"].result.counts
    assert out["ingest"].action == "ran" and out["dedup"].action == "ran"
    assert (again["samples"], again["ingested"], again["duplicate_existing"]) == (130, 0, 130)
    samples = store.read("samples")
    assert samples.count() == 130 == samples.select("sample_id").distinct().count()
    assert store.read("ingested_files").count() == len(first)
    assert store.read("runs").filter("status = 'ok'").count() == 2
    later = by_step(pipeline.run(spark, store, cfg, inputs, stop="dedup"))
    assert {o.action for o in later.values()} == {"up to date"}
