"""`python build.py demo`: the whole pipeline on data/samples/ into a local warehouse, in one Spark session.

`pipeline run` over every sample file: ingest, dedup, semantic dedup, tag (the zero-shot taxonomy tagger:
no LLM here), normalize the tags, build the tag co-occurrence graph with its power-law fits, train the
reference model, score every sample, select seeds, evolve them and rate difficulty when an LLM is
configured (with none the pipeline says how to configure one and skips them), decontaminate against
AlpacaEval, export the SFT files and write the HTML report. Then the same command again, which finds
every stage up to date and does nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from instructlake import pipeline
from instructlake.config import load_config
from instructlake.counts import listed
from instructlake.ingest import stage as ingest_stage
from instructlake.scoring import seeds as seeds_stage
from instructlake.spark import get_session
from instructlake.store import Store

# Benchmarks are not training data: decontamination reads them, ingest into the pool does not.
BENCHMARK_FILES = {"gpt4_1106_preview_model_outputs.json"}
# The sample files' licenses (platform.licenses.sources), as data/samples/NOTICE.md gives them
SAMPLE_LICENSES = ("{alpaca_en_demo: apache-2.0, glaive_toolcall_en_demo: apache-2.0, "
                   "kto_en_demo: apache-2.0, dummy_conversation: apache-2.0, en_100_tree: apache-2.0, "
                   "seed_tasks: apache-2.0, cherry_alpaca_5_percent: cc-by-nc-4.0}")


# Written into a warehouse the demo creates: only such a directory is ever wiped by a later demo.
MARKER = ".instructlake-demo"


def fresh_warehouse(wh: Path) -> None:
    """An empty warehouse at wh, marked as the demo's. Removes wh only if a demo made it; raises
    FileExistsError for any other non-empty path."""
    if wh.exists() and not (wh.is_dir() and (wh / MARKER).exists()):
        if wh.is_dir() and not any(wh.iterdir()):
            _mark(wh)
            return
        raise FileExistsError(f"{wh} exists and was not made by the demo; nothing was deleted. Pass "
                              "--warehouse with a new path, or remove it yourself")
    if wh.exists():
        import shutil

        shutil.rmtree(wh)
    wh.mkdir(parents=True)
    _mark(wh)


def _mark(wh: Path) -> None:
    (wh / MARKER).write_text("made by python build.py demo; a later demo run replaces this directory\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m instructlake.demo", description=__doc__)
    p.add_argument("--samples", default="data/samples", help="directory of sample files")
    p.add_argument("--warehouse", default="lakehouse/demo",
                   help="warehouse directory: created, or wiped first if an earlier demo created it "
                        "(any other non-empty directory is refused)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("py4j").setLevel(logging.WARNING)

    wh = Path(a.warehouse).resolve()
    try:
        fresh_warehouse(wh)
    except FileExistsError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    # The paper's frequency thresholds are for ~7M samples; this pool has ~5k: the demo keeps tags used by
    # >= 5 samples and calls a tag long-tail under 20. The reference model trains for a minute here.
    # export's manifest and card list the licenses per row (cherry_alpaca's come from Stanford Alpaca)
    cfg = load_config("local", ["normalize_tags.min_freq=5", "seeds.long_tail_max_freq=20",
                                "scoring.reference_seconds=60",
                                f"platform.licenses.sources={SAMPLE_LICENSES}"], warehouse=str(wh))
    spark = get_session(cfg.platform, "instructlake-demo")
    store = Store(spark, cfg.warehouse)
    files = sorted(str(f) for f in Path(a.samples).iterdir()
                   if ingest_stage.ingestible(f.name) and f.name not in BENCHMARK_FILES)

    print(f"\n== instructlake demo: {len(files)} sample files -> {wh}\n", flush=True)
    benchmarks = tuple(f"alpaca_eval={Path(a.samples) / name}" for name in sorted(BENCHMARK_FILES))
    inputs = pipeline.Inputs(raw=tuple(files), benchmarks=benchmarks)

    def show(o) -> None:
        print(f"  {o.step:<16} {o.action:<11} " + (o.result.summary() if o.result is not None else f"({o.reason})"),
              flush=True)

    outcomes = pipeline.run(spark, store, cfg, inputs, on_step=show)
    print("\n== the same command again: every stage compares its inputs with its last run", flush=True)
    again = pipeline.run(spark, store, cfg, inputs)
    ran_again = [o.step for o in again if o.action == "ran"]
    r = {o.step: o.result for o in outcomes if o.result is not None}
    fl = r["filter"]
    first, dd, sem, tg, nt, gr = r["ingest"], r["dedup"], r["semdedup"], r["tagging"], r["normalize_tags"], r["graph"]
    ref, sc, sd, dc, exp = r["train_reference"], r["scoring"], r["seeds"], r["decontam"], r["export"]

    c = first.counts
    print("\n== results")
    print(f"  ingest: {c['records']:,} records found = {c['records_with_samples']:,} gave samples + "
          f"{c['quarantined']:,} quarantined; {c['samples']:,} samples = {c['ingested']:,} ingested + "
          f"{c['duplicate']:,} duplicate")
    print(f"  a second pipeline run on the same files ran {len(ran_again)} stages"
          + (f" ({', '.join(ran_again)})" if ran_again else ": everything was up to date"))
    per_source: dict[str, dict[str, int]] = {}
    for key, v in c.items():
        if key.startswith("source."):
            src, what = key[7:].rsplit(".", 1)
            per_source.setdefault(src, {})[what] = v
    for src, n in sorted(per_source.items()):
        print(f"    {src:<44} {n.get('records', 0):>7,} records {n.get('samples', 0):>7,} samples "
              f"{n.get('quarantined', 0):>5,} quarantined")
    d = dd.counts
    print(f"  dedup: {d['input']:,} samples -> {d['kept']:,} kept ({d['exact_duplicates']:,} exact + "
          f"{d['near_duplicates']:,} near duplicates in {d['clusters']:,} clusters; LSH {d['bands']} bands x "
          f"{d['rows']} rows)")
    m = sem.counts
    print(f"  semdedup: {m['input']:,} kept samples in {m['clusters']:,} KMeans clusters -> "
          f"{m['semantic_duplicates']:,} semantic duplicates removed ({m['groups']:,} groups, cosine >= "
          f"{cfg.semdedup.threshold})")
    t, n = tg.counts, nt.counts
    print(f"  tag ({tg.extra.get('tagger', 'zero-shot')}): {t['tagged']:,} of {t['input']:,} samples tagged, "
          f"{t['tag_rows']:,} tags; {t['untagged']:,} without a tag above the similarity threshold")
    print(f"  normalize-tags: {n['raw_tags']:,} raw tags -> {n['canonical_tags']:,} canonical "
          f"({n['rare_tags']:,} rare) -> {n['clusters']:,} clusters -> {n['categories']:,} categories")
    for k, v in sorted(((k[9:], v) for k, v in n.items() if k.startswith("category.")), key=lambda kv: -kv[1])[:8]:
        print(f"    {k:<44} {v:>7,} samples")
    g = gr.counts
    print(f"  graph: {g['tags']:,} tags, {g['edges']:,} co-occurrence edges, {g['components']:,} components")
    for f in gr.extra["fits"]:
        print(f"    power law of {f['target']}: gamma {f['gamma']:.2f} (xmin {f['xmin']}, tail "
              f"{f['n_tail']:,} of {f['n']:,}); R vs lognormal {f['lognormal_r']:.2f}, vs exponential "
              f"{f['exponential_r']:.2f}: {f['verdict']}")
    i = ref.extra
    print(f"  train-reference: {i['parameters'] / 1e6:.1f}M-parameter GPT, {i['steps']} steps, loss "
          f"{i['first_loss']:.2f} -> {i['last_loss']:.2f}; score: {sc.counts['scored']:,} samples scored "
          f"({sc.counts['truncated']:,} truncated)")
    c = sd.counts
    print(f"  select-seeds: {c['seeds']:,} seeds: " + ", ".join(f"{k} {c['criterion.' + k]:,}"
                                                               for k in seeds_stage.CRITERIA))
    c = dc.counts
    print(f"  decontam: {c['flagged']:,} of {c['input']:,} samples flagged against {c['prompts']:,} "
          f"AlpacaEval prompts ({c.get('benchmark.alpaca_eval.embedding', 0):,} by embedding cosine >= "
          f"{cfg.decontam.cosine_threshold}, {c.get('benchmark.alpaca_eval.ngram', 0):,} by shared "
          f"{cfg.decontam.ngram}-grams); export drops them")
    c = fl.counts
    print(f"  filter: {c['passed']:,} of {c['input']:,} samples pass the quality filter (later stages and "
          f"export skip the rest); filtered for {listed(c, 'reason.', 'nothing')}; languages "
          f"{listed(c, 'lang.', '')}")
    c = r["scrub"].counts
    print(f"  scrub: {c['scrubbed']:,} of {c['input']:,} samples hold PII or secrets; export replaces "
          f"{c['values']:,} values: {listed(c, 'kind.')}")
    print("  tables:")
    for name in store.tables():
        print(f"    {name:<16} {store.count(name):>8,} rows   {store.path(name)}")
    print(f"  export: {exp.counts['exported']:,} samples in {exp.extra['out']}; rows per license: "
          + ", ".join(f"{k} {v:,}" for k, v in exp.extra["manifest"]["licenses"]["rows_per_license"].items()))
    for fmt, info in exp.extra["manifest"]["files"].items():
        print(f"    {fmt:<9} {info['path']}")
    print(f"    manifest  {exp.extra['out']}/manifest.json")
    print(f"    card      {exp.extra['out']}/README.md (datasets.load_dataset(DIR, \"sharegpt\") loads it)")
    print(f"  report: {r['report'].extra['path']}")
    print(f"\n  look around: .venv/bin/instructlake --warehouse {wh} tables | show samples | show quarantine | "
          "pipeline status")
    print(f"  notebooks:   INSTRUCTLAKE_WAREHOUSE={wh} .venv/bin/python notebooks/cooccurrence.py (and the "
          f"others)")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
