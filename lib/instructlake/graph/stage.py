"""graph: the tag co-occurrence graph, its degrees and components, power-law fits, and the pictures.

Reads `tags` (canonical through `tag_map` when normalize-tags has run) and writes `tag_edges`,
`tag_degrees` and `powerlaw_fit` (rewritten each run: they are derived from the whole pool), plus PNGs
under <warehouse>/report/ that the HTML report embeds.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.config import Config, config_hash
from instructlake.frames import rows_frame
from instructlake.graph import cooccur, powerlaw_fit
from instructlake.report import plots
from instructlake.runs import EmptyInputError, StageResult
from instructlake.store import Store

log = logging.getLogger(__name__)

PICTURES = {
    "degree_ccdf.png": "Tag co-occurrence degree CCDF with the power-law fit",
    "tag_frequency_rank.png": "Tag frequency by rank",
    "categories.png": "Samples per category",
    "tags_per_sample.png": "Tags per sample",
}


def report_dir(store: Store) -> str:
    return f"{store.warehouse}/report"


def categories_of(store: Store) -> dict[str, str]:
    from instructlake.tagging import taxonomy

    cats = dict(taxonomy.load().category_of())
    if store.exists("tag_map"):
        for r in store.read("tag_map").filter("canonical_tag IS NOT NULL AND category IS NOT NULL") \
                .select("canonical_tag", "category").distinct().collect():
            cats.setdefault(r["canonical_tag"], r["category"])
    return cats


def run(spark: SparkSession, store: Store, config: Config, engine: str = "auto") -> StageResult:
    from instructlake.tagging.stage import tagging_hash

    cfg = config.graph
    if not store.exists("tags"):
        raise EmptyInputError("graph: there is no tags table yet; run `instructlake tag` first")
    thash = tagging_hash(config)
    chash = config_hash({"graph": config_hash(cfg), "tagging": thash,
                         "tag_map": store.version("tag_map") if store.exists("tag_map") else None})
    in_versions = {"tags": store.version("tags")}
    if store.exists("tag_map"):
        in_versions["tag_map"] = store.version("tag_map")
    tagged = cooccur.sample_tags(store, thash).localCheckpoint()
    n_samples = tagged.count()
    if n_samples == 0 and not cooccur.cut_to_nothing(store, thash):
        raise EmptyInputError(f"graph: no tagged samples under the current tagging config ({thash})")
    if n_samples == 0:
        return _empty_graph(spark, store, chash, in_versions)
    counts = {"samples": n_samples, **cooccur.cap_counts(tagged, cfg.max_tags_per_sample)}
    edges, freq = cooccur.pair_edges(tagged, cfg.max_tags_per_sample)
    edges = edges.localCheckpoint()
    store.overwrite("tag_edges", edges.withColumn("config_hash", F.lit(chash)))
    cats = rows_frame(spark, sorted(categories_of(store).items()), "tag string, category string")
    deg = (cooccur.degrees(spark, edges, freq, engine).join(F.broadcast(cats), "tag", "left")
           .withColumn("config_hash", F.lit(chash)).select(*schemas.TAG_DEGREES.fieldNames()).localCheckpoint())
    store.overwrite("tag_degrees", deg)
    rows = deg.select("tag", "category", "frequency", "degree", "weighted_degree", "component").collect()
    degrees = [r["degree"] for r in rows]
    freqs = [r["frequency"] for r in rows]
    counts.update({"tags": len(rows), "edges": edges.count(), "components": len({r["component"] for r in rows}),
                   "isolated_tags": sum(1 for d in degrees if d == 0), "max_degree": max(degrees, default=0)})

    fits = []
    for target, values in (("degree", degrees), ("tag_frequency", freqs)):
        try:
            fits.append(powerlaw_fit.fit(values, target, cfg.bootstrap, cfg.seed))
        except ValueError as e:  # too few tags to fit: say so, keep the rest of the stage
            log.warning("power-law fit skipped: %s", e)
    now = datetime.now(timezone.utc)
    if fits:
        fit_rows = [(f.target, f.n, f.gamma, f.xmin, f.ks_d, f.n_tail, f.p_value, f.bootstrap, f.lognormal_r,
                     f.lognormal_p, f.exponential_r, f.exponential_p, f.verdict, chash, now) for f in fits]
        store.overwrite("powerlaw_fit", rows_frame(spark, fit_rows, schemas.POWERLAW_FIT))
    for f in fits:
        log.info("power law of %s: gamma %.3f, xmin %d, KS D %.4f, tail %d of %d; vs lognormal R %.2f (p %.3g), "
                 "vs exponential R %.2f (p %.3g): %s", f.target, f.gamma, f.xmin, f.ks_d, f.n_tail, f.n,
                 f.lognormal_r, f.lognormal_p, f.exponential_r, f.exponential_p, f.verdict)

    # pictures, written beside the report
    out = report_dir(store)
    by_target = {f.target: f for f in fits}
    if "degree" in by_target:
        f = by_target["degree"]
        store.write_bytes(f"{out}/degree_ccdf.png", plots.ccdf_with_fit(
            degrees, f.gamma, f.xmin, "Tag co-occurrence degree", "degree (distinct co-occurring tags)"))
    store.write_bytes(f"{out}/tag_frequency_rank.png", plots.rank_plot(freqs, "Tag frequency by rank"))
    per_cat: dict[str, int] = {}
    sample_cats = (tagged.select("sample_id", F.explode("tags").alias("tag"))
                   .join(F.broadcast(cats), "tag").filter("category IS NOT NULL")
                   .groupBy("category").agg(F.countDistinct("sample_id").alias("n")).collect())
    for r in sample_cats:
        per_cat[r["category"]] = int(r["n"])
    if per_cat:
        labels = sorted(per_cat)
        store.write_bytes(f"{out}/categories.png", plots.bar_chart(labels, [per_cat[k] for k in labels],
                                                                    "Samples per category", "samples"))
    hist = {int(r["k"]): int(r["count"]) for r in tagged.groupBy(F.size("tags").alias("k")).count().collect()}
    store.write_bytes(f"{out}/tags_per_sample.png", plots.histogram(hist, "Tags per sample", "tags"))
    for f in fits:
        counts[f"{f.target}.gamma_x1000"] = int(round(f.gamma * 1000))
        counts[f"{f.target}.xmin"] = f.xmin
    return StageResult(stage="graph", config_hash=chash, counts=counts, input_versions=in_versions,
                       output_versions={"tag_edges": store.version("tag_edges"),
                                        "tag_degrees": store.version("tag_degrees"),
                                        "powerlaw_fit": store.version("powerlaw_fit")},
                       extra={"fits": [f.row() for f in fits], "report_dir": out})


def _empty_graph(spark: SparkSession, store: Store, chash: str, in_versions: dict[str, int]) -> StageResult:
    """Samples have tags, but normalize-tags' frequency cut kept none of them: an empty graph (its tables
    emptied, so no earlier graph is read as this one's), a warning naming the setting, and the pipeline
    goes on to the stages that do not need tags."""
    for name in ("tag_edges", "tag_degrees", "powerlaw_fit"):
        store.overwrite(name, rows_frame(spark, [], schemas.TABLES[name]))
    from instructlake.tagging.normalize import CUT_ADVICE

    warning = ("graph: normalize-tags kept no canonical tag (every raw tag is under its frequency cut, "
               f"normalize_tags.min_freq), so the graph is empty; {CUT_ADVICE}, then run normalize-tags and "
               "graph again")
    log.warning(warning)
    counts = {"samples": 0, "capped_samples": 0, "capped_pairs_dropped": 0, "max_tags_seen": 0, "tags": 0,
              "edges": 0, "components": 0, "isolated_tags": 0, "max_degree": 0}
    return StageResult(stage="graph", config_hash=chash, counts=counts, input_versions=in_versions,
                       output_versions={n: store.version(n) for n in ("tag_edges", "tag_degrees", "powerlaw_fit")},
                       extra={"fits": [], "report_dir": report_dir(store)}, warning=warning)
