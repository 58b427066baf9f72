"""`instructlake ...`: the command line, also behind every jobs/*.py spark-submit entry."""

from __future__ import annotations

import json
import logging
import sys

from instructlake.cli_parser import build_parser
from instructlake.cli_run import run_stage, session
from instructlake.cli_stages import (
    cmd_decontam,
    cmd_dedup,
    cmd_diagnose,
    cmd_difficulty,
    cmd_evolve,
    cmd_filter,
    cmd_graph,
    cmd_ingest,
    cmd_normalize_tags,
    cmd_score,
    cmd_scrub,
    cmd_select_seeds,
    cmd_semdedup,
    cmd_tag,
    cmd_train_reference,
    print_tokens,
)
from instructlake.config import Config, ConfigError, load_config

log = logging.getLogger("instructlake")

# Errors that mean "the input or the setup is wrong": one line, no trace, exit code 2.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ConfigError,)


def _expected_errors() -> tuple[type[BaseException], ...]:
    from instructlake.ingest.rawfile import FileFormatError
    from instructlake.jvm import JavaMissingError
    from instructlake.runs import EmptyInputError, StaleInputError
    from instructlake.schemas import SchemaError
    from instructlake.store import TableNotFoundError

    return EXPECTED_ERRORS + (FileFormatError, SchemaError, JavaMissingError, TableNotFoundError, EmptyInputError,
                              StaleInputError)


def cmd_report(cfg: Config, a) -> int:
    from instructlake.report import html

    _, store = session(cfg)
    print(f"report: {html.build(store, cfg)}")
    return 0


def cmd_export(cfg: Config, a) -> int:
    from dataclasses import replace

    from instructlake.export import stage

    ex = cfg.export
    if a.licenses:
        ex = replace(ex, licenses=tuple(a.licenses.split(",")))
    if a.commercial_only:
        ex = replace(ex, commercial_only=True)
    if a.mix or a.max_samples is not None:
        ex = replace(ex, mix=_mix_settings(ex.mix, a.mix, a.max_samples))
    cfg = replace(cfg, semantic=replace(cfg.semantic, export=ex))

    r = run_stage("export", cfg, lambda sp, st, c: stage.run(sp, st, c, a.out, a.allow_unchecked),
                   {"out": a.out, "allow_unchecked": a.allow_unchecked})
    print(f"export: {r.counts['exported']:,} samples -> {r.extra['out']} (manifest.json inside)")
    if r.counts["mix_dropped"]:
        drawn = r.extra["manifest"]["mix"]["drawn"]
        print(f"        mixed to a budget: {r.counts['mix_dropped']:,} rows not drawn; drawn per group: "
              + ", ".join(f"{g} {n:,}" for g, n in sorted(drawn.items(), key=lambda kv: -kv[1])))
    if r.counts["license_dropped"]:
        print(f"        {r.counts['license_dropped']:,} left out for their licenses or model terms")
    unchecked = r.counts["not_deduplicated"] + r.counts["not_decontaminated"]
    if unchecked:
        print(f"        unchecked, shipped with --allow-unchecked: {r.counts['not_deduplicated']:,} not "
              f"deduplicated, {r.counts['not_decontaminated']:,} not decontaminated (recorded in the "
              f"manifest)")
    return 0


def _mix_settings(base, path: str | None, max_samples: int | None):
    """export.mix with a --mix file's keys and --max-samples over it."""
    from dataclasses import asdict, replace

    import yaml

    from instructlake.config import MixConfig

    values = asdict(base)
    if path:
        with open(path, encoding="utf-8") as f:
            loaded = yaml.safe_load(f) or {}
        unknown = sorted(set(loaded) - set(values)) if isinstance(loaded, dict) else ["(not a mapping)"]
        if unknown:
            raise ConfigError(f"--mix {path}: unknown key(s) {unknown}; known: {sorted(values)}")
        values.update(loaded)
    mix = MixConfig(**values)
    return replace(mix, max_samples=max_samples) if max_samples is not None else mix


def cmd_pipeline(cfg: Config, a) -> int:
    from instructlake import pipeline

    p = cfg.platform.pipeline
    inputs = pipeline.Inputs(raw=tuple(a.input) or p.inputs, benchmarks=tuple(a.benchmark) or p.benchmarks,
                             export_dir=getattr(a, "export_dir", None) or p.export_dir or None)
    if a.pipeline_command == "run":  # a misspelt stage is a usage error: said before a JVM starts
        pipeline.select(a.start, a.stop, [*p.skip, *a.skip])
    spark, store = session(cfg)
    if a.pipeline_command == "status":
        rows = pipeline.status(store, cfg, inputs)
        if a.json:
            print(json.dumps(rows, indent=2, default=str))
            return 0
        print(f"{'stage':<16}{'next run':<12}{'last run':<9}{'finished (UTC)':<21}{'seconds':>8}  why")
        for r in rows:
            secs = f"{r['last_seconds']:.1f}" if r["last_seconds"] is not None else "-"
            print(f"{r['stage']:<16}{r['next']:<12}{r['last_status'] or '-':<9}{r['last_finished'] or '-':<21}"
                  f"{secs:>8}  {r['reason']}")
        return 0

    def show(o) -> None:
        extra = f" {o.result.summary()}" if o.result is not None else ""
        print(f"  {o.step:<16} {o.action:<11} ({o.reason}){extra}", flush=True)
        if o.result is not None and o.result.warning:
            print(f"  {'':<16} warning: {o.result.warning}", flush=True)
        if o.result is not None:
            print_tokens(cfg, o.result, f"  {'':<16} ")

    print(f"pipeline: warehouse {store.warehouse}", flush=True)
    try:
        outcomes = pipeline.run(spark, store, cfg, inputs, a.start, a.stop, a.skip, a.force, on_step=show)
    except Exception as e:  # the failed run is recorded; say how to resume
        print(f"pipeline: stopped: {type(e).__name__}: {e}\n  the completed stages are recorded: run "
              f"`instructlake pipeline run` again to resume", file=sys.stderr)
        raise
    ran = [o.step for o in outcomes if o.action == "ran"]
    print(f"pipeline: {len(ran)} of {len(outcomes)} stages ran" + (f" ({', '.join(ran)})" if ran else
                                                                    " (everything was up to date)"))
    return 0


def cmd_tables(cfg: Config, a) -> int:
    _, store = session(cfg)
    counts = {name: store.count(name) for name in store.tables()}
    if a.json:
        print(json.dumps(counts, indent=2))
    else:
        if not counts:
            print(f"no tables in {store.warehouse}")
        for name, n in counts.items():
            print(f"{name:<24} {n:>12,}")
    return 0


def cmd_table(cfg: Config, a) -> int:
    _, store = session(cfg)
    from pyspark.sql import functions as F

    df = store.read(a.name, version=a.version)
    n = 0
    with open(a.out, "w", encoding="utf-8") as f:
        for row in df.select(F.to_json(F.struct("*"))).toLocalIterator():
            f.write(row[0] + "\n")
            n += 1
    print(f"table {a.name}: {n:,} rows -> {a.out}")
    return 0


def cmd_show(cfg: Config, a) -> int:
    _, store = session(cfg)
    store.read(a.name).show(a.n, truncate=a.width if a.width > 0 else False, vertical=False)
    return 0


COMMANDS = {"ingest": cmd_ingest, "dedup": cmd_dedup, "tag": cmd_tag, "normalize-tags": cmd_normalize_tags,
            "graph": cmd_graph, "train-reference": cmd_train_reference, "score": cmd_score,
            "select-seeds": cmd_select_seeds, "decontam": cmd_decontam, "semdedup": cmd_semdedup,
            "filter": cmd_filter, "scrub": cmd_scrub,
            "evolve": cmd_evolve, "diagnose": cmd_diagnose, "difficulty": cmd_difficulty,
            "report": cmd_report, "pipeline": cmd_pipeline,
            "export": cmd_export, "tables": cmd_tables, "table": cmd_table, "show": cmd_show}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        cfg = load_config(args.platform, args.overrides, args.config, warehouse=args.warehouse)
        return COMMANDS[args.command](cfg, args)
    except _expected_errors() as e:
        print(f"instructlake: error: {e}", file=sys.stderr)
        return 2


def split_global_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """(global options, the rest) of a jobs/<stage>.py command line, where both may be mixed."""
    globals_, rest, i = [], [], 0
    takes_value = {"--warehouse", "--platform", "--config", "--set"}
    while i < len(argv):
        if argv[i] in takes_value and i + 1 < len(argv):
            globals_ += argv[i:i + 2]
            i += 2
        elif argv[i] in ("-q", "--quiet"):
            globals_.append(argv[i])
            i += 1
        else:
            rest.append(argv[i])
            i += 1
    return globals_, rest


def stage_main(command: str) -> None:
    """Entry of jobs/<stage>.py under spark-submit: `spark-submit jobs/ingest.py [global options] PATH...`."""
    # Global options come before the command; everything else belongs to the command.
    globals_, rest = split_global_options(sys.argv[1:])
    sys.exit(main([*globals_, command, *rest]))


if __name__ == "__main__":
    sys.exit(main())
