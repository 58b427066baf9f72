"""`python build.py demo`: the whole pipeline on data/samples/ into a local warehouse, in one Spark session.

Each stage adds itself here when it lands. Today: ingest every sample file (twice, to show that a
re-run adds nothing), dedup, then export the SFT files.
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
from instructlake.ingest import stage as ingest_stage
from instructlake.spark import get_session
from instructlake.store import Store

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
    cfg = load_config("local", warehouse=str(wh))
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
    print("  tables:")
    for name in store.tables():
        print(f"    {name:<16} {store.count(name):>8,} rows   {store.path(name)}")
    print(f"  export: {exp.counts['exported']:,} samples in {exp.extra['out']}")
    for fmt, info in exp.extra["manifest"]["files"].items():
        print(f"    {fmt:<9} {info['path']}")
    print(f"    manifest  {exp.extra['out']}/manifest.json")
    print(f"\n  look around: .venv/bin/instructlake --warehouse {wh} tables | show samples | show quarantine")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
