"""`python build.py demo`: the whole pipeline on data/samples/ into a local warehouse, in one Spark session.

Each stage adds itself here when it lands. Today: ingest every sample file (twice, to show that a
re-run adds nothing), dedup, tag (the zero-shot taxonomy tagger: no LLM here), normalize the tags, build the
tag co-occurrence graph with its power-law fits, export the SFT files, and write the HTML report.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from instructlake import runs
from instructlake.config import load_config
from instructlake.dedup import stage as dedup_stage
from instructlake.export import stage as export_stage
from instructlake.graph import stage as graph_stage
from instructlake.ingest import stage as ingest_stage
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
    # The paper drops tags used by < 100 of ~7M samples; this pool has ~5k, so the demo keeps tags used by >= 5.
    cfg = load_config("local", ["normalize_tags.min_freq=5"], warehouse=str(wh))
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
    tg = stage("tagging", lambda: tagging_stage.run(spark, store, cfg))
    nt = stage("normalize_tags", lambda: normalize_stage.run(spark, store, cfg))
    gr = stage("graph", lambda: graph_stage.run(spark, store, cfg))
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
