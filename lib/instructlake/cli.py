"""`instructlake ...`: the command line, also behind every jobs/*.py spark-submit entry."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable

from instructlake.cli_parser import build_parser
from instructlake.config import Config, ConfigError, load_config

log = logging.getLogger("instructlake")

# Errors that mean "the input or the setup is wrong": one line, no trace, exit code 2.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ConfigError,)


def _expected_errors() -> tuple[type[BaseException], ...]:
    from instructlake.ingest.rawfile import FileFormatError
    from instructlake.runs import EmptyInputError, StaleInputError
    from instructlake.schemas import SchemaError
    from instructlake.spark import JavaMissingError
    from instructlake.store import TableNotFoundError

    return EXPECTED_ERRORS + (FileFormatError, SchemaError, JavaMissingError, TableNotFoundError, EmptyInputError,
                              StaleInputError)


def _session(cfg: Config):
    from instructlake.spark import get_session
    from instructlake.store import Store

    spark = get_session(cfg.platform)
    return spark, Store(spark, cfg.warehouse, cfg.platform.store.write_retries)


def _run_stage(name: str, cfg: Config, fn: Callable, args: dict):
    """Run one stage and append its run record, also when it fails."""
    from instructlake import runs

    spark, store = _session(cfg)
    started = runs.now()
    try:
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


def cmd_ingest(cfg: Config, a) -> int:
    from instructlake.ingest import stage

    r = _run_stage("ingest", cfg,
                   lambda sp, st, c: stage.run(sp, st, c, a.paths, a.source, a.format, a.license),
                   {"paths": a.paths, "source": a.source, "format": a.format, "license": a.license})
    c = r.counts
    print(f"ingest: {c['files']} files, {c['records']:,} records found = {c['records_with_samples']:,} gave "
          f"samples + {c['quarantined']:,} quarantined ({r.seconds:.1f}s)")
    cut = f"; {c['expansion_cut']:,} records cut at ingest.max_samples_per_record" if c["expansion_cut"] else ""
    print(f"        {c['samples']:,} samples = {c['ingested']:,} ingested + {c['duplicate_in_batch']:,} duplicate "
          f"in this batch + {c['duplicate_existing']:,} already stored + {c['duplicate_raced']:,} written "
          f"meanwhile by another ingest{cut}")
    return 0


def cmd_dedup(cfg: Config, a) -> int:
    from instructlake.dedup import stage

    r = _run_stage("dedup", cfg, lambda sp, st, c: stage.run(sp, st, c, a.engine), {"engine": a.engine})
    c = r.counts
    print(f"dedup: {c['input']:,} samples -> {c['kept']:,} kept; {c['exact_duplicates']:,} exact and "
          f"{c['near_duplicates']:,} near duplicates in {c['clusters']:,} clusters; "
          f"{c['signatures_computed']:,} new signatures ({r.seconds:.1f}s)")
    return 0


def cmd_tag(cfg: Config, a) -> int:
    from instructlake.tagging import stage

    r = _run_stage("tagging", cfg, stage.run, {})
    c = r.counts
    print(f"tag: {c['input']:,} of {c['pool']:,} samples needed tags: {c['tagged']:,} tagged, {c['untagged']:,} got "
          f"no tag, {c['backend_failed']:,} backend failures (retried next run); {c['tag_rows']:,} tags "
          f"({r.seconds:.1f}s)")
    if "llm_calls" in c:
        print(f"  LLM: {c['llm_prompts']:,} prompts, {c['llm_cache_hits']:,} cache hits, {c['llm_calls']:,} answered "
              f"now, {c['llm_invalid']:,} invalid after re-asks")
    return 0


def cmd_normalize_tags(cfg: Config, a) -> int:
    from instructlake.tagging import normalize

    r = _run_stage("normalize_tags", cfg, normalize.run, {})
    c = r.counts
    print(f"normalize-tags: {c['raw_tags']:,} raw tags -> {c['canonical_tags']:,} canonical ({c['rare_tags']:,} rare "
          f"dropped, under {c['min_freq']:,} of {c['pool']:,} samples) -> {c['clusters']:,} clusters -> "
          f"{c['categories']:,} categories ({r.seconds:.1f}s)")
    for k, v in sorted(((k[9:], v) for k, v in c.items() if k.startswith("category.")), key=lambda kv: -kv[1]):
        print(f"  {k:<40} {v:>8,} samples")
    return 0


def cmd_graph(cfg: Config, a) -> int:
    from instructlake.graph import stage

    r = _run_stage("graph", cfg, lambda sp, st, c: stage.run(sp, st, c, a.engine), {"engine": a.engine})
    c = r.counts
    print(f"graph: {c['tags']:,} tags, {c['edges']:,} edges, {c['components']:,} components "
          f"({c['isolated_tags']:,} isolated tags); {c['capped_samples']:,} samples capped at "
          f"{cfg.graph.max_tags_per_sample} tags ({r.seconds:.1f}s)")
    for f in r.extra["fits"]:
        p = "not computed" if f["p_value"] is None else f"{f['p_value']:.3f}"
        print(f"  {f['target']}: gamma {f['gamma']:.3f}, xmin {f['xmin']}, KS D {f['ks_d']:.4f}, tail {f['n_tail']:,} "
              f"of {f['n']:,}, bootstrap p {p}; R vs lognormal {f['lognormal_r']:.2f} (p {f['lognormal_p']:.3g}), "
              f"vs exponential {f['exponential_r']:.2f} (p {f['exponential_p']:.3g}): {f['verdict']}")
    print(f"  pictures: {r.extra['report_dir']}/")
    return 0


def cmd_train_reference(cfg: Config, a) -> int:
    from instructlake.scoring import stage

    r = _run_stage("train_reference", cfg, stage.train_reference, {})
    i = r.extra
    print(f"train-reference: {i['parameters'] / 1e6:.1f}M-parameter GPT, {i['steps']:,} steps over "
          f"{i['tokens_seen']:,} tokens (pool: {i['train_tokens']:,} tokens), loss {i['first_loss']:.2f} -> "
          f"{i['last_loss']:.2f}; saved to {i['path']} ({r.seconds:.0f}s)")
    return 0


def cmd_score(cfg: Config, a) -> int:
    from instructlake.scoring import stage

    r = _run_stage("scoring", cfg, stage.run, {})
    c = r.counts
    print(f"score: {c['input']:,} of {c['pool']:,} samples needed scores: {c['scored']:,} scored, {c['failed']:,} "
          f"failed, {c['truncated']:,} truncated, with {cfg.scoring.model} ({r.seconds:.1f}s)")
    return 0


def cmd_select_seeds(cfg: Config, a) -> int:
    from instructlake.scoring import seeds

    r = _run_stage("seeds", cfg, seeds.run, {})
    c = r.counts
    print(f"select-seeds: {c['seeds']:,} seeds ({c['tagged_samples']:,} tagged and {c['scored_samples']:,} scored "
          f"samples judged) ({r.seconds:.1f}s)")
    for k in seeds.CRITERIA:
        print(f"  {k:<14} {c['criterion.' + k]:>8,}")
    for k, v in c.items():
        if k.startswith("overlap.") and v:
            print(f"  {k[8:]:<28} {v:>8,} both")
    return 0


def cmd_decontam(cfg: Config, a) -> int:
    from instructlake.decontam import stage

    r = _run_stage("decontam", cfg, lambda sp, st, c: stage.run(sp, st, c, a.benchmark), {"benchmark": a.benchmark})
    c = r.counts
    print(f"decontam: {c['input']:,} of {c['pool']:,} samples needed checking against {c['prompts']:,} benchmark "
          f"prompts: {c['flagged']:,} flagged ({r.seconds:.1f}s)")
    for k, v in sorted(c.items()):
        if k.startswith("benchmark."):
            print(f"  {k[10:]:<40} {v:>8,}")
    return 0


def cmd_filter(cfg: Config, a) -> int:
    from instructlake.quality import stage

    r = _run_stage("filter", cfg, stage.run, {})
    c = r.counts
    print(f"filter: {c['input']:,} of {c['pool']:,} samples judged: {c['passed']:,} passed, {c['filtered']:,} "
          f"filtered ({r.seconds:.1f}s)")
    for prefix, what in (("reason.", "filtered for"), ("lang.", "language")):
        for k, v in c.items():
            if k.startswith(prefix):
                print(f"  {what} {k[len(prefix):]:<28} {v:>8,}")
    return 0


def cmd_scrub(cfg: Config, a) -> int:
    from instructlake.scrub import stage

    r = _run_stage("scrub", cfg, stage.run, {})
    c = r.counts
    print(f"scrub: {c['input']:,} of {c['pool']:,} samples checked: {c['scrubbed']:,} hold PII or secrets, "
          f"{c['values']:,} values to replace in export ({r.seconds:.1f}s)")
    for k, v in c.items():
        if k.startswith("kind."):
            print(f"  {k[5:]:<28} {v:>8,}")
    return 0


def cmd_semdedup(cfg: Config, a) -> int:
    from instructlake.decontam import semdedup

    r = _run_stage("semdedup", cfg, semdedup.run, {})
    c = r.counts
    print(f"semdedup: {c['input']:,} samples in {c['clusters']:,} KMeans clusters, {c['pairs']:,} pairs >= "
          f"{cfg.semdedup.threshold}: {c['semantic_duplicates']:,} semantic duplicates removed, "
          f"{c['restored']:,} restored ({r.seconds:.1f}s)")
    return 0


def cmd_evolve(cfg: Config, a) -> int:
    from instructlake.synth import evolve

    r = _run_stage("synth", cfg, evolve.run, {})
    c = r.counts
    print(f"evolve: {c['seeds']:,} seeds -> {c['evolutions']:,} evolutions: {c['valid']:,} valid, {c['rejected']:,} "
          f"rejected, {c['backend_failed']:,} backend failures (retried next run); {c['new_samples']:,} new samples "
          f"({c['evolve_calls'] + c['judge_calls'] + c['respond_calls'] + c['follow_up_calls']:,} model calls, "
          f"{r.seconds:.1f}s)")
    return 0


def cmd_diagnose(cfg: Config, a) -> int:
    from instructlake.synth import diagnose

    r = _run_stage("diagnose", cfg, lambda sp, st, c: diagnose.run(sp, st, c, a.path, a.name, a.references,
                                                                  a.iterations),
                   {"path": a.path, "name": a.name, "references": a.references, "iterations": a.iterations})
    c = r.counts
    rates = ", ".join(f"iteration {k.split('.')[1]}: {v / 10:.1f}%" for k, v in sorted(c.items())
                      if k.startswith("iteration.") and k.endswith("deficiency_rate_x1000"))
    print(f"diagnose: deficiency rate by iteration: {rates}; last iteration: {c['deficient']:,} of {c['items']:,} "
          f"items deficient over {c['skills']:,} skills; {c.get('targeted', 0):,} targeted instructions, "
          f"{c.get('new_samples', 0):,} new samples ({r.seconds:.1f}s)")
    for k, v in sorted(((k[6:], v) for k, v in c.items() if k.startswith("skill.")), key=lambda kv: -kv[1]):
        print(f"  {k:<40} {v:>6,} deficient")
    return 0


def cmd_difficulty(cfg: Config, a) -> int:
    from instructlake.synth import difficulty

    r = _run_stage("difficulty", cfg, difficulty.run, {})
    c = r.counts
    print(f"difficulty: {c['input']:,} of {c['pool']:,} samples needed a rating: {c['rated']:,} rated, "
          f"{c['invalid']:,} invalid, {c['backend_failed']:,} backend failures ({r.seconds:.1f}s)")
    return 0


def cmd_report(cfg: Config, a) -> int:
    from instructlake.report import html

    _, store = _session(cfg)
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

    r = _run_stage("export", cfg, lambda sp, st, c: stage.run(sp, st, c, a.out, a.allow_unchecked),
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
        print(f"        unchecked, shipped with --allow-unchecked: {r.counts['not_deduplicated']:,} not deduplicated, "
              f"{r.counts['not_decontaminated']:,} not decontaminated (recorded in the manifest)")
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
    spark, store = _session(cfg)
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
    _, store = _session(cfg)
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
    _, store = _session(cfg)
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
    _, store = _session(cfg)
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
