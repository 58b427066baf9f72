"""`python build.py demo`: the whole pipeline on data/samples/ into a local warehouse, in one Spark session.

Each stage adds itself here when it lands. Today: ingest every sample file (twice, to show that a
re-run adds nothing), dedup, semantic dedup, tag (the zero-shot taxonomy tagger: no LLM here), normalize the
tags, build the tag co-occurrence graph with its power-law fits, train the reference model, score every
sample, select seeds, evolve them and rate difficulty when an LLM is configured (with none it says how
to configure one and skips them), decontaminate against AlpacaEval, export the SFT files, and write the
HTML report.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from instructlake import runs
from instructlake.config import load_config
from instructlake.decontam import semdedup as semdedup_stage
from instructlake.decontam import stage as decontam_stage
from instructlake.dedup import stage as dedup_stage
from instructlake.export import stage as export_stage
from instructlake.graph import stage as graph_stage
from instructlake.ingest import stage as ingest_stage
from instructlake.scoring import seeds as seeds_stage
from instructlake.scoring import stage as scoring_stage
from instructlake.spark import get_session
from instructlake.store import Store
from instructlake.tagging import normalize as normalize_stage
from instructlake.tagging import stage as tagging_stage

# Benchmarks are not training data: decontamination reads them, ingest into the pool does not.
BENCHMARK_FILES = {"gpt4_1106_preview_model_outputs.json"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m instructlake.demo", description=__doc__)
    p.add_argument("--samples", default="data/samples", help="directory of sample files")
    p.add_argument("--warehouse", default="lakehouse/demo", help="warehouse directory (wiped first)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("py4j").setLevel(logging.WARNING)

    wh = Path(a.warehouse).resolve()
    if wh.exists():
        import shutil

        shutil.rmtree(wh)
    # The paper's frequency thresholds are for ~7M samples; this pool has ~5k: the demo keeps tags used by
    # >= 5 samples and calls a tag long-tail under 20. The reference model trains for a minute here.
    cfg = load_config("local", ["normalize_tags.min_freq=5", "seeds.long_tail_max_freq=20",
                                "scoring.reference_seconds=60"], warehouse=str(wh))
    spark = get_session(cfg.platform, "instructlake-demo")
    store = Store(spark, cfg.warehouse)
    files = sorted(str(f) for f in Path(a.samples).iterdir()
                   if f.name.endswith(ingest_stage.SUFFIXES) and f.name not in BENCHMARK_FILES)

    def stage(name, fn):
        started = runs.now()
        result = fn()
        runs.record(store, result, started, args={"demo": True})
        print(f"  {result.summary()}", flush=True)
        return result

    print(f"\n== instructlake demo: {len(files)} sample files -> {wh}\n", flush=True)
    first = stage("ingest", lambda: ingest_stage.run(spark, store, cfg, files))
    again = stage("ingest", lambda: ingest_stage.run(spark, store, cfg, files))
    dd = stage("dedup", lambda: dedup_stage.run(spark, store, cfg))
    sem = stage("semdedup", lambda: semdedup_stage.run(spark, store, cfg))
    tg = stage("tagging", lambda: tagging_stage.run(spark, store, cfg))
    nt = stage("normalize_tags", lambda: normalize_stage.run(spark, store, cfg))
    gr = stage("graph", lambda: graph_stage.run(spark, store, cfg))
    ref = stage("train_reference", lambda: scoring_stage.train_reference(spark, store, cfg))
    sc = stage("scoring", lambda: scoring_stage.run(spark, store, cfg))
    sd = stage("seeds", lambda: seeds_stage.run(spark, store, cfg))
    if cfg.synth.llm.backend == "none":
        from instructlake.synth.evolve import HOWTO

        print(f"  synthesis (evolve, difficulty) skipped: {HOWTO}", flush=True)
    else:
        from instructlake.synth import difficulty as difficulty_stage
        from instructlake.synth import evolve as evolve_stage

        stage("synth", lambda: evolve_stage.run(spark, store, cfg))
        stage("difficulty", lambda: difficulty_stage.run(spark, store, cfg))
    benchmarks = [f"alpaca_eval={Path(a.samples) / name}" for name in sorted(BENCHMARK_FILES)]
    dc = stage("decontam", lambda: decontam_stage.run(spark, store, cfg, benchmarks))
    exp = stage("export", lambda: export_stage.run(spark, store, cfg))

    c = first.counts
    print("\n== results")
    print(f"  ingest: {c['read']:,} records read = {c['ingested']:,} ingested + {c['duplicate']:,} duplicate "
          f"+ {c['quarantined']:,} quarantined")
    print(f"  re-ingest of the same files added {again.counts['ingested']} rows")
    for key in sorted(k for k in c if k.startswith("source.")):
        print(f"    {key[7:]:<48} {c[key]:>7,}")
    d = dd.counts
    print(f"  dedup: {d['input']:,} samples -> {d['kept']:,} kept ({d['exact_duplicates']:,} exact + "
          f"{d['near_duplicates']:,} near duplicates in {d['clusters']:,} clusters; LSH {d['bands']} bands x "
          f"{d['rows']} rows)")
    m = sem.counts
    print(f"  semdedup: {m['input']:,} kept samples in {m['clusters']:,} KMeans clusters -> {m['semantic_duplicates']:,} "
          f"semantic duplicates removed ({m['groups']:,} groups, cosine >= {cfg.semdedup.threshold})")
    t, n = tg.counts, nt.counts
    print(f"  tag ({tg.extra.get('tagger', 'zero-shot')}): {t['tagged']:,} of {t['input']:,} samples tagged, "
          f"{t['tag_rows']:,} tags; {t['untagged']:,} without a tag above the similarity threshold")
    print(f"  normalize-tags: {n['raw_tags']:,} raw tags -> {n['canonical_tags']:,} canonical ({n['rare_tags']:,} "
          f"rare) -> {n['clusters']:,} clusters -> {n['categories']:,} categories")
    for k, v in sorted(((k[9:], v) for k, v in n.items() if k.startswith("category.")), key=lambda kv: -kv[1])[:8]:
        print(f"    {k:<44} {v:>7,} samples")
    g = gr.counts
    print(f"  graph: {g['tags']:,} tags, {g['edges']:,} co-occurrence edges, {g['components']:,} components")
    for f in gr.extra["fits"]:
        print(f"    power law of {f['target']}: gamma {f['gamma']:.2f} (xmin {f['xmin']}, tail {f['n_tail']:,} of "
              f"{f['n']:,}); R vs lognormal {f['lognormal_r']:.2f}, vs exponential {f['exponential_r']:.2f}: "
              f"{f['verdict']}")
    i = ref.extra
    print(f"  train-reference: {i['parameters'] / 1e6:.1f}M-parameter GPT, {i['steps']} steps, loss "
          f"{i['first_loss']:.2f} -> {i['last_loss']:.2f}; score: {sc.counts['scored']:,} samples scored "
          f"({sc.counts['truncated']:,} truncated)")
    c = sd.counts
    print(f"  select-seeds: {c['seeds']:,} seeds: " + ", ".join(f"{k} {c['criterion.' + k]:,}"
                                                               for k in seeds_stage.CRITERIA))
    c = dc.counts
    print(f"  decontam: {c['flagged']:,} of {c['input']:,} samples flagged against {c['prompts']:,} AlpacaEval "
          f"prompts ({c.get('benchmark.alpaca_eval.embedding', 0):,} by embedding cosine >= "
          f"{cfg.decontam.cosine_threshold}, {c.get('benchmark.alpaca_eval.ngram', 0):,} by shared "
          f"{cfg.decontam.ngram}-grams); export drops them")
    print("  tables:")
    for name in store.tables():
        print(f"    {name:<16} {store.count(name):>8,} rows   {store.path(name)}")
    print(f"  export: {exp.counts['exported']:,} samples in {exp.extra['out']}")
    for fmt, info in exp.extra["manifest"]["files"].items():
        print(f"    {fmt:<9} {info['path']}")
    print(f"    manifest  {exp.extra['out']}/manifest.json")
    from instructlake.report import html

    print(f"  report: {html.build(store)}")
    print(f"\n  look around: .venv/bin/instructlake --warehouse {wh} tables | show samples | show quarantine")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
