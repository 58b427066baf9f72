"""`instructlake pipeline run | status`: every stage in order, resumable, incremental.

A stage is skipped when nothing it depends on changed since its last completed run: the semantic config
sections it depends on, the Delta versions of the tables it reads, and a few non-table inputs (the raw
files not ingested yet, the benchmark files, the scoring model's weights). That state is hashed into a
fingerprint stored with the stage's run record, so a run that crashed (or was killed) resumes at the first
stage without a completed run for the current state, and a scheduled refresh over a landing directory
does only what new files make necessary: each stage is itself incremental (new samples are hashed,
tagged, scored and checked; the rest is read back).

Tables a stage both reads and writes (dedup_clusters for semdedup, benchmarks for decontam) count at
their version after the stage's own write, so a stage does not invalidate itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from instructlake import progress, runs
from instructlake.config import Config, ConfigError, config_hash
from instructlake.pipeline_files import file_identity, mark_ingested, pending_files
from instructlake.pipeline_records import RecordsBehind, completed_runs, last_completed
from instructlake.runs import StageResult
from instructlake.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inputs:
    """What a pipeline run is pointed at besides the warehouse: execution, never part of a config hash."""

    raw: tuple[str, ...] = ()  # files or directories to ingest
    benchmarks: tuple[str, ...] = ()  # NAME=PATH files to decontaminate against
    export_dir: str | None = None  # None: <warehouse>/exports/<timestamp>


@dataclass(frozen=True)
class Step:
    name: str  # the stage name in `runs`
    command: str  # the CLI command that runs it alone
    sections: tuple[str, ...]  # semantic config sections its results depend on
    reads: tuple[str, ...]  # tables whose versions decide whether it runs again
    writes: tuple[str, ...]
    run: Callable[[SparkSession, Store, Config, Inputs], StageResult]
    # non-table state it depends on: (store, config, inputs) -> a JSON-able value, or a Skip saying why it
    # does not apply
    state: Callable[[Store, Config, Inputs], object] | None = None
    # what is recorded of a finished run besides its row in `runs`, written with that row
    record: Callable[[Store, Config, StageResult], None] | None = None


class Skip(Exception):
    """A step that cannot apply to this configuration (no input files, no LLM): the message says why."""


# ------------------------------------------------------------------ steps


def _ingest_state(store: Store, config: Config, inputs: Inputs) -> object:
    if not inputs.raw:
        return Skip("no raw inputs (pass --input PATH or set platform.pipeline.inputs)")
    return {"pending": [list(f) for f in pending_files(store, config, inputs.raw)]}


def _run_ingest(spark, store, config, inputs):
    from instructlake.ingest import stage

    files = pending_files(store, config, inputs.raw)
    if not files:
        raise Skip("no new or changed raw files")
    result = stage.run(spark, store, config, [f[0] for f in files])
    result.extra["raw_files"] = files
    result.counts["new_files"] = len(files)
    return result


def _record_ingest(store: Store, config: Config, result: StageResult) -> None:
    # after the samples are committed: a file is never marked ingested before its rows are stored
    mark_ingested(store, config, result.extra["raw_files"], result.run_id)


def _run(module: str, fn: str = "run") -> Callable:
    def go(spark, store, config, inputs):
        import importlib

        return getattr(importlib.import_module(module), fn)(spark, store, config)
    return go


def _reference_state(store: Store, config: Config, inputs: Inputs) -> object:
    from instructlake.scoring.reference import REFERENCE, reference_dir
    from instructlake.scoring.stage import model_identity

    if config.scoring.model != REFERENCE or config.scoring.model in config.platform.scoring.model_paths:
        return Skip(f"scoring.model is {config.scoring.model!r}, not the reference model")
    # trained once and kept: a refresh scores its new samples with the same model, so scores stay comparable
    return {"model": model_identity(reference_dir(store.warehouse))}


def _scoring_state(store: Store, config: Config, inputs: Inputs) -> object:
    from instructlake.scoring.stage import model_identity, model_path

    try:
        return {"model": model_identity(model_path(config.scoring, config.platform.scoring, store.warehouse))}
    except ConfigError:
        return {"model": None}  # the stage itself says what is missing


def _llm_state(store: Store, config: Config, inputs: Inputs) -> object:
    if config.synth.llm.backend == "none":
        return Skip("no LLM is configured (synth.llm.backend is none); `instructlake evolve --help` and the "
                    "README say how to set one")
    return {}


def _filter_state(store: Store, config: Config, inputs: Inputs) -> object:
    if not config.filter.enabled:
        return Skip("the quality filter is off (filter.enabled is false)")
    return {}


def _scrub_state(store: Store, config: Config, inputs: Inputs) -> object:
    if not config.scrub.enabled:
        return Skip("PII scrubbing is off (scrub.enabled is false)")
    return {}


def _export_state(store: Store, config: Config, inputs: Inputs) -> object:
    # the license map is platform config (never hashed), but a changed map changes what export ships
    from dataclasses import asdict

    return {"licenses": asdict(config.platform.licenses)}


def _benchmark_state(store: Store, config: Config, inputs: Inputs) -> object:
    return {"benchmarks": [[s, *file_identity(s.split("=", 1)[-1])] for s in sorted(inputs.benchmarks)]}


def _run_decontam(spark, store, config, inputs):
    from instructlake.decontam import stage

    # benchmark files are (re)loaded only when they changed since the last completed run: reloading
    # writes a new version of `benchmarks`, which would make every run look like a change
    last = last_completed(store, "decontam")
    want = _benchmark_state(store, config, inputs)
    load = list(inputs.benchmarks) if not last or last.get("state", {}).get("benchmarks") != want["benchmarks"] \
        or not store.exists("benchmarks") else []
    return stage.run(spark, store, config, load)


def _run_export(spark, store, config, inputs):
    from instructlake.export import stage

    return stage.run(spark, store, config, inputs.export_dir)


def _run_report(spark, store, config, inputs):
    from instructlake.report import html

    path = html.build(store, config)
    return StageResult(stage="report", config_hash="", extra={"path": path})


# The tables that decide which samples later stages read (pool.without_removed)
POOL = ("samples", "dedup_clusters", "quality")

STEPS: tuple[Step, ...] = (
    Step("ingest", "ingest", ("ingest",), (), ("samples", "quarantine", "ingested_files"), _run_ingest,
         state=_ingest_state, record=_record_ingest),
    Step("dedup", "dedup", ("dedup",), ("samples",), ("minhash_signatures", "dedup_clusters"),
         _run("instructlake.dedup.stage")),
    Step("semdedup", "semdedup", ("semdedup", "embed", "dedup"), ("samples", "dedup_clusters"),
         ("dedup_clusters", "embeddings"), _run("instructlake.decontam.semdedup")),
    Step("filter", "filter", ("filter",), ("samples", "dedup_clusters"), ("quality",),
         _run("instructlake.quality.stage"), state=_filter_state),
    Step("tagging", "tag", ("tagging", "embed"), POOL, ("tags", "llm_cache", "tag_agreement"),
         _run("instructlake.tagging.stage")),
    Step("normalize_tags", "normalize-tags", ("normalize_tags", "embed", "tagging"), ("tags", *POOL),
         ("tag_map", "tag_stats"), _run("instructlake.tagging.normalize")),
    Step("graph", "graph", ("graph", "tagging"), ("tags", "tag_map", *POOL[1:]),
         ("tag_edges", "tag_degrees", "powerlaw_fit"), _run("instructlake.graph.stage")),
    Step("train_reference", "train-reference", ("scoring",), (), (),
         _run("instructlake.scoring.stage", "train_reference"), state=_reference_state),
    Step("scoring", "score", ("scoring",), POOL, ("scores",), _run("instructlake.scoring.stage"),
         state=_scoring_state),
    Step("seeds", "select-seeds", ("seeds", "scoring", "tagging", "normalize_tags"),
         ("tags", "tag_map", "scores", *POOL[1:]), ("seeds",), _run("instructlake.scoring.seeds")),
    Step("synth", "evolve", ("synth",), ("seeds", "tag_map"), ("evolved", "samples", "llm_cache"),
         _run("instructlake.synth.evolve"), state=_llm_state),
    Step("difficulty", "difficulty", ("synth",), POOL, ("difficulty", "llm_cache"),
         _run("instructlake.synth.difficulty"), state=_llm_state),
    # after synth and difficulty: the samples they add are scrubbed too
    Step("scrub", "scrub", ("scrub",), POOL, ("pii",), _run("instructlake.scrub.stage"), state=_scrub_state),
    Step("decontam", "decontam", ("decontam", "embed"), (*POOL, "benchmarks"),
         ("contamination", "benchmarks", "embeddings"), _run_decontam, state=_benchmark_state),
    Step("export", "export", ("export", "filter", "scrub"), (*POOL, "contamination", "pii", "sources"), (),
         _run_export, state=_export_state),
    Step("report", "report", (), (*POOL, "tags", "tag_map", "tag_edges", "powerlaw_fit", "scores", "seeds",
                                  "evolved", "difficulty", "pii", "contamination", "quarantine"), (), _run_report),
)
NAMES = tuple(s.name for s in STEPS)


def step(name: str) -> Step:
    for s in STEPS:
        if name in (s.name, s.command):
            return s
    raise ConfigError(f"unknown pipeline stage {name!r} (stages in order: {', '.join(NAMES)})")


def select(start: str | None = None, stop: str | None = None, skip: Sequence[str] = ()) -> list[Step]:
    """The steps from `start` to `stop` inclusive, in order, without those named in `skip`."""
    i = NAMES.index(step(start).name) if start else 0
    j = NAMES.index(step(stop).name) if stop else len(STEPS) - 1
    if i > j:
        raise ConfigError(f"--from {start} comes after --to {stop} (stages in order: {', '.join(NAMES)})")
    left_out = {step(s).name for s in skip}
    return [s for s in STEPS[i:j + 1] if s.name not in left_out]


# ------------------------------------------------------------------ state and fingerprints


@dataclass
class Plan:
    step: Step
    action: str  # run | up to date | skip
    reason: str
    versions: dict[str, int] = field(default_factory=dict)


def _versions(store: Store, tables: Sequence[str]) -> dict[str, int]:
    return {t: v for t in tables if (v := store.version(t)) is not None}


def fingerprint(s: Step, config: Config, versions: dict[str, int], state: object) -> str:
    sections = {name: config_hash(getattr(config.semantic, name)) for name in s.sections}
    payload = json.dumps({"sections": sections, "versions": versions, "state": state}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def plan_step(store: Store, config: Config, inputs: Inputs, s: Step,
              done: dict[str, dict] | None = None) -> Plan:
    """What to do with a step; `done` holds the latest ok run per stage (completed_runs), read here if
    None."""
    state = s.state(store, config, inputs) if s.state else None
    if isinstance(state, Skip):
        return Plan(s, "skip", str(state))
    if s.name == "ingest":  # its state is the list of files not ingested yet: no run record to compare with
        n = len(state["pending"])
        return Plan(s, "run", f"{n} new or changed raw files") if n else \
            Plan(s, "up to date", "no new or changed raw files")
    versions = _versions(store, s.reads)
    last = (done if done is not None else completed_runs(store, [s.name])).get(s.name)
    if last is None or "fingerprint" not in last:
        return Plan(s, "run", "no completed pipeline run to compare with", versions)
    if last["fingerprint"] == fingerprint(s, config, versions, state):
        return Plan(s, "up to date", "nothing it depends on changed", versions)
    return Plan(s, "run", _why(s, config, versions, state, last), versions)


def _why(s: Step, config: Config, versions: dict[str, int], state: object, last: dict) -> str:
    old = last.get("input_versions", {})
    changed = [f"{t} v{old.get(t, '-')} -> v{v}" for t, v in versions.items() if old.get(t) != v]
    changed += [f"{t} removed" for t in old if t in s.reads and t not in versions]
    if last.get("sections") != {n: config_hash(getattr(config.semantic, n)) for n in s.sections}:
        changed.insert(0, "config changed")
    if last.get("state") != state:
        changed.append("new raw files" if s.name == "ingest" else "benchmark files changed"
                       if s.name == "decontam" else "model changed" if s.name in ("scoring", "train_reference")
                       else "inputs changed")
    return ", ".join(changed) or "inputs changed"


# ------------------------------------------------------------------ running


@dataclass
class Outcome:
    step: str
    action: str  # ran | up to date | skipped | failed
    reason: str
    seconds: float = 0.0
    result: StageResult | None = None


def run(spark: SparkSession, store: Store, config: Config, inputs: Inputs, start: str | None = None,
        stop: str | None = None, skip: Sequence[str] = (), force: bool = False,
        on_step: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run the selected steps in order; a failure records the failed run and stops the pipeline (raised)."""
    pipeline_id = uuid.uuid4().hex
    outcomes: list[Outcome] = []
    steps = select(start, stop, [*config.platform.pipeline.skip, *skip])
    log.info("pipeline %s: %s", pipeline_id[:8], " -> ".join(s.name for s in steps))
    # each step runs at most once per pipeline, so the runs recorded before it started are the ones to plan by
    done = completed_runs(store, [s.name for s in steps])
    records = RecordsBehind()
    try:
        for s in steps:
            o = _run_step(spark, store, config, inputs, s, plan_step(store, config, inputs, s, done), force,
                          pipeline_id, records, on_step)
            outcomes.append(o)
            if on_step:
                on_step(o)
    except BaseException:
        records.settle()
        raise
    records.flush()
    return outcomes


def _run_step(spark: SparkSession, store: Store, config: Config, inputs: Inputs, s: Step, p: Plan,
              force: bool, pipeline_id: str, records: RecordsBehind,
              on_step: Callable[[Outcome], None] | None) -> Outcome:
    """Run one planned step (or say why not); its records are left to `records` to write. A failed step is
    recorded (and told to on_step) here, and its error raised."""
    if p.action == "skip" or (p.action == "up to date" and not (force and s.name != "ingest")):
        o = Outcome(s.name, "skipped" if p.action == "skip" else "up to date", p.reason)
        log.info("pipeline: %s %s (%s)", s.name, o.action, p.reason)
        return o
    reason = "forced" if force and p.action == "up to date" else p.reason
    log.info("pipeline: running %s (%s)", s.name, reason)
    started, t0 = runs.now(), time.time()
    try:
        with progress.reporting(spark, s.name, config.platform.execution.progress_seconds):
            result = s.run(spark, store, config, inputs)
    except Skip as e:
        return Outcome(s.name, "up to date", str(e))
    except BaseException as e:
        records.settle()
        failed = runs.StageResult(stage=s.name, config_hash="")
        try:
            runs.record(store, failed, started, status="failed", message=f"{type(e).__name__}: {e}"[:4000],
                        args={"pipeline": pipeline_id})
        except Exception:  # noqa: BLE001 - the stage's error matters more than its record
            log.exception("could not record the failed run of %s", s.name)
        if on_step:
            on_step(Outcome(s.name, "failed", f"{type(e).__name__}: {e}", time.time() - t0))
        raise
    finished = runs.now()
    # the state after the stage's own writes: what the next run compares with
    if s.name == "ingest":  # what it ingested is recorded with its run
        state = {"pending": []}
    else:
        state = s.state(store, config, inputs) if s.state else None
    own = set(s.writes)
    versions = {**p.versions, **_versions(store, [t for t in s.reads if t in own])}
    result.input_versions = {**result.input_versions, **versions}
    args = {"pipeline": pipeline_id, "fingerprint": fingerprint(s, config, versions, state), "state": state,
            "sections": {n: config_hash(getattr(config.semantic, n)) for n in s.sections}, "reason": reason}
    result.seconds = (finished - started).total_seconds()

    def write() -> None:
        if s.record:
            s.record(store, config, result)
        runs.record(store, result, started, args=args, finished=finished)

    records.write(s.name, write)
    return Outcome(s.name, "ran", reason, result.seconds, result)


def status(store: Store, config: Config, inputs: Inputs) -> list[dict]:
    """Per step: its last run (any status) and what `pipeline run` would do now."""
    last_any: dict[str, dict] = {}
    if store.exists("runs"):
        from pyspark.sql import Window

        w = Window.partitionBy("stage").orderBy(F.desc("finished_at"))
        for r in (store.read("runs").withColumn("_n", F.row_number().over(w)).filter("_n = 1")
                  .select("stage", "status", "finished_at", "seconds", "counts").collect()):
            last_any[r["stage"]] = r.asDict()
    out = []
    skipped = set(config.platform.pipeline.skip)
    done = completed_runs(store, [s.name for s in STEPS])
    for s in STEPS:
        p = Plan(s, "skip", "left out by platform.pipeline.skip") if s.name in skipped else \
            plan_step(store, config, inputs, s, done)
        r = last_any.get(s.name)
        out.append({"stage": s.name, "next": p.action, "reason": p.reason,
                    "last_status": r["status"] if r else None,
                    "last_finished": str(r["finished_at"])[:19] if r else None,
                    "last_seconds": float(r["seconds"]) if r else None,
                    "last_counts": dict(r["counts"] or {}) if r else {}})
    return out
