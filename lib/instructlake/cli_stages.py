"""The commands that run one stage of the method (ingest, dedup, ..., difficulty): each runs it through
cli_run.run_stage, which records the run, and prints what it did."""

from __future__ import annotations

from instructlake.cli_run import run_stage
from instructlake.config import Config
from instructlake.counts import prefixed
from instructlake.llm import usage


def cmd_ingest(cfg: Config, a) -> int:
    from instructlake.ingest import stage

    r = run_stage("ingest", cfg,
                   lambda sp, st, c: stage.run(sp, st, c, a.paths, a.source, a.format, a.license),
                   {"paths": a.paths, "source": a.source, "format": a.format, "license": a.license})
    c = r.counts
    print(f"ingest: {c['files']} files, {c['records']:,} records found = {c['records_with_samples']:,} gave "
          f"samples + {c['quarantined']:,} quarantined ({r.seconds:.1f}s)")
    cut = f"; {c['expansion_cut']:,} records cut at ingest.max_samples_per_record" if c["expansion_cut"] else ""
    print(f"        {c['samples']:,} samples = {c['ingested']:,} ingested + {c['duplicate_in_batch']:,} "
          f"duplicate in this batch + {c['duplicate_existing']:,} already stored + {c['duplicate_raced']:,} "
          f"written meanwhile by another ingest{cut}")
    return 0


def cmd_dedup(cfg: Config, a) -> int:
    from instructlake.dedup import stage

    r = run_stage("dedup", cfg, lambda sp, st, c: stage.run(sp, st, c, a.engine), {"engine": a.engine})
    c = r.counts
    print(f"dedup: {c['input']:,} samples -> {c['kept']:,} kept; {c['exact_duplicates']:,} exact and "
          f"{c['near_duplicates']:,} near duplicates in {c['clusters']:,} clusters; "
          f"{c['signatures_computed']:,} new signatures ({r.seconds:.1f}s)")
    return 0


def cmd_tag(cfg: Config, a) -> int:
    from instructlake.tagging import stage

    r = run_stage("tagging", cfg, stage.run, {})
    c = r.counts
    print(f"tag: {c['input']:,} of {c['pool']:,} samples needed tags: {c['tagged']:,} tagged, "
          f"{c['untagged']:,} got no tag, {c['backend_failed']:,} backend failures (retried next run); "
          f"{c['tag_rows']:,} tags ({r.seconds:.1f}s)")
    if "llm_calls" in c:
        print(f"  LLM: {c['llm_prompts']:,} prompts, {c['llm_cache_hits']:,} cache hits, {c['llm_calls']:,} "
              f"answered now, {c['llm_invalid']:,} invalid after re-asks")
    print_tokens(cfg, r)
    return 0


def cmd_normalize_tags(cfg: Config, a) -> int:
    from instructlake.tagging import normalize

    r = run_stage("normalize_tags", cfg, normalize.run, {})
    c = r.counts
    print(f"normalize-tags: {c['raw_tags']:,} raw tags -> {c['canonical_tags']:,} canonical "
          f"({c['rare_tags']:,} rare dropped, under {c['min_freq']:,} of {c['pool']:,} samples) -> "
          f"{c['clusters']:,} clusters -> {c['categories']:,} categories ({r.seconds:.1f}s)")
    for k, v in sorted(((k[9:], v) for k, v in c.items() if k.startswith("category.")), key=lambda kv: -kv[1]):
        print(f"  {k:<40} {v:>8,} samples")
    return 0


def cmd_graph(cfg: Config, a) -> int:
    from instructlake.graph import stage

    r = run_stage("graph", cfg, lambda sp, st, c: stage.run(sp, st, c, a.engine), {"engine": a.engine})
    c = r.counts
    print(f"graph: {c['tags']:,} tags, {c['edges']:,} edges, {c['components']:,} components "
          f"({c['isolated_tags']:,} isolated tags); {c['capped_samples']:,} samples capped at "
          f"{cfg.graph.max_tags_per_sample} tags ({r.seconds:.1f}s)")
    for f in r.extra["fits"]:
        p = "not computed" if f["p_value"] is None else f"{f['p_value']:.3f}"
        print(f"  {f['target']}: gamma {f['gamma']:.3f}, xmin {f['xmin']}, KS D {f['ks_d']:.4f}, tail "
              f"{f['n_tail']:,} of {f['n']:,}, bootstrap p {p}; R vs lognormal {f['lognormal_r']:.2f} (p "
              f"{f['lognormal_p']:.3g}), vs exponential {f['exponential_r']:.2f} (p "
              f"{f['exponential_p']:.3g}): {f['verdict']}")
    print(f"  pictures: {r.extra['report_dir']}/")
    return 0


def cmd_train_reference(cfg: Config, a) -> int:
    from instructlake.scoring import stage

    r = run_stage("train_reference", cfg, stage.train_reference, {})
    i = r.extra
    print(f"train-reference: {i['parameters'] / 1e6:.1f}M-parameter GPT, {i['steps']:,} steps over "
          f"{i['tokens_seen']:,} tokens (pool: {i['train_tokens']:,} tokens), loss {i['first_loss']:.2f} -> "
          f"{i['last_loss']:.2f}; saved to {i['path']} ({r.seconds:.0f}s)")
    return 0


def cmd_score(cfg: Config, a) -> int:
    from instructlake.scoring import stage

    r = run_stage("scoring", cfg, stage.run, {})
    c = r.counts
    print(f"score: {c['input']:,} of {c['pool']:,} samples needed scores: {c['scored']:,} scored, {c['failed']:,} "
          f"failed, {c['truncated']:,} truncated, with {cfg.scoring.model} ({r.seconds:.1f}s)")
    return 0


def cmd_select_seeds(cfg: Config, a) -> int:
    from instructlake.scoring import seeds

    r = run_stage("seeds", cfg, seeds.run, {})
    c = r.counts
    print(f"select-seeds: {c['seeds']:,} seeds ({c['tagged_samples']:,} tagged and {c['scored_samples']:,} "
          f"scored samples judged) ({r.seconds:.1f}s)")
    for k in seeds.CRITERIA:
        print(f"  {k:<14} {c['criterion.' + k]:>8,}")
    for k, v in c.items():
        if k.startswith("overlap.") and v:
            print(f"  {k[8:]:<28} {v:>8,} both")
    return 0


def cmd_decontam(cfg: Config, a) -> int:
    from instructlake.decontam import stage

    r = run_stage("decontam", cfg, lambda sp, st, c: stage.run(sp, st, c, a.benchmark), {"benchmark": a.benchmark})
    c = r.counts
    print(f"decontam: {c['input']:,} of {c['pool']:,} samples needed checking against {c['prompts']:,} "
          f"benchmark prompts: {c['flagged']:,} flagged ({r.seconds:.1f}s)")
    for name, v in sorted(prefixed(c, "benchmark.")):
        print(f"  {name:<40} {v:>8,}")
    return 0


def cmd_filter(cfg: Config, a) -> int:
    from instructlake.quality import stage

    r = run_stage("filter", cfg, stage.run, {})
    c = r.counts
    print(f"filter: {c['input']:,} of {c['pool']:,} samples judged: {c['passed']:,} passed, "
          f"{c['filtered']:,} filtered ({r.seconds:.1f}s)")
    for prefix, what in (("reason.", "filtered for"), ("lang.", "language")):
        for name, v in prefixed(c, prefix):
            print(f"  {what} {name:<28} {v:>8,}")
    return 0


def cmd_scrub(cfg: Config, a) -> int:
    from instructlake.scrub import stage

    r = run_stage("scrub", cfg, stage.run, {})
    c = r.counts
    print(f"scrub: {c['input']:,} of {c['pool']:,} samples checked: {c['scrubbed']:,} hold PII or secrets, "
          f"{c['values']:,} values to replace in export ({r.seconds:.1f}s)")
    for name, v in prefixed(c, "kind."):
        print(f"  {name:<28} {v:>8,}")
    return 0


def cmd_semdedup(cfg: Config, a) -> int:
    from instructlake.decontam import semdedup

    r = run_stage("semdedup", cfg, semdedup.run, {})
    c = r.counts
    print(f"semdedup: {c['input']:,} samples in {c['clusters']:,} KMeans clusters, {c['pairs']:,} pairs >= "
          f"{cfg.semdedup.threshold}: {c['semantic_duplicates']:,} semantic duplicates removed, "
          f"{c['restored']:,} restored ({r.seconds:.1f}s)")
    return 0


def cmd_evolve(cfg: Config, a) -> int:
    from instructlake.synth import evolve

    r = run_stage("synth", cfg, evolve.run, {})
    c = r.counts
    print(f"evolve: {c['seeds']:,} seeds -> {c['evolutions']:,} evolutions: {c['valid']:,} valid, "
          f"{c['rejected']:,} rejected, {c['backend_failed']:,} backend failures (retried next run); "
          f"{c['new_samples']:,} new samples "
          f"({c['evolve_calls'] + c['judge_calls'] + c['respond_calls'] + c['follow_up_calls']:,} model "
          f"calls, {r.seconds:.1f}s)")
    print_tokens(cfg, r)
    return 0


def cmd_diagnose(cfg: Config, a) -> int:
    from instructlake.synth import diagnose

    r = run_stage("diagnose", cfg, lambda sp, st, c: diagnose.run(sp, st, c, a.path, a.name, a.references,
                                                                  a.iterations),
                   {"path": a.path, "name": a.name, "references": a.references, "iterations": a.iterations})
    c = r.counts
    rates = ", ".join(f"iteration {k.split('.')[1]}: {v / 10:.1f}%" for k, v in sorted(c.items())
                      if k.startswith("iteration.") and k.endswith("deficiency_rate_x1000"))
    print(f"diagnose: deficiency rate by iteration: {rates}; last iteration: {c['deficient']:,} of "
          f"{c['items']:,} items deficient over {c['skills']:,} skills; {c.get('targeted', 0):,} targeted "
          f"instructions, {c.get('new_samples', 0):,} new samples ({r.seconds:.1f}s)")
    for k, v in sorted(((k[6:], v) for k, v in c.items() if k.startswith("skill.")), key=lambda kv: -kv[1]):
        print(f"  {k:<40} {v:>6,} deficient")
    print_tokens(cfg, r)
    return 0


def cmd_difficulty(cfg: Config, a) -> int:
    from instructlake.synth import difficulty

    r = run_stage("difficulty", cfg, difficulty.run, {})
    c = r.counts
    print(f"difficulty: {c['input']:,} of {c['pool']:,} samples needed a rating: {c['rated']:,} rated, "
          f"{c['invalid']:,} invalid, {c['backend_failed']:,} backend failures ({r.seconds:.1f}s)")
    print_tokens(cfg, r)
    return 0


def print_tokens(cfg: Config, r, indent: str = "  ") -> None:
    """The LLM tokens the stage's calls spent now, per model, with their cost where a price is set."""
    spent = usage.line(r.counts, cfg.platform.llm.prices)
    if spent:
        print(f"{indent}LLM tokens: {spent}", flush=True)
