"""normalize-tags: raw tags -> canonical tags -> clusters -> the 25 categories, as the paper does.

1. Noise: a tag used by fewer samples than the frequency cut maps to nothing (status `rare`). The cut is
   `min_freq` when set, else the paper's rate (100 samples in ~7M) applied to the pool tagged, so a small
   pool is not cut to nothing by a number meant for millions of samples.
2. Synonyms: in order of frequency, each tag not yet merged absorbs every unmerged tag whose embedding
   cosine is >= `merge_threshold` (λ); the most frequent member is the canonical tag.
3. Clusters: DBSCAN (cosine distance, `dbscan_eps`) over the canonical tags' embeddings; a tag DBSCAN
   leaves alone is a cluster of its own. A cluster is named after its most frequent tag.
4. Categories: a canonical tag from the packaged taxonomy keeps its taxonomy category; any other takes the
   category whose "name: description" embedding is nearest to its cluster's centroid.

The distinct tags are few (tens of thousands at most), so steps 2-4 run on the driver with numpy and
scikit-learn; their embeddings come from the Spark embedding path. `tag_map` is rewritten every run;
`tag_stats` then counts samples per canonical tag, category and source.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.config import Config, TagNormConfig, config_hash
from instructlake.frames import rows_frame
from instructlake.runs import EmptyInputError, StageResult
from instructlake.store import Store

log = logging.getLogger(__name__)


@dataclass
class Mapping:
    raw_tag: str
    canonical_tag: str | None
    cluster: str | None
    category: str | None
    freq: int
    similarity: float | None  # cosine of the raw tag to its canonical tag
    status: str  # canonical | merged | rare


def merge_synonyms(vectors: np.ndarray, freqs: np.ndarray, names: list[str], threshold: float,
                   block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(index of each tag's canonical tag, cosine to it). Greedy in order of frequency (ties: name)."""
    n = len(names)
    order = sorted(range(n), key=lambda i: (-int(freqs[i]), names[i]))
    canon = np.full(n, -1, dtype=np.int64)
    sim = np.zeros(n, dtype=np.float32)
    for start in range(0, n, block):
        heads = [i for i in order[start:start + block]]
        sims = vectors[heads] @ vectors.T  # block x n
        for row, i in enumerate(heads):
            if canon[i] >= 0:
                continue
            canon[i], sim[i] = i, 1.0
            take = (sims[row] >= threshold) & (canon < 0)
            idx = np.nonzero(take)[0]
            canon[idx] = i
            sim[idx] = sims[row, idx]
    return canon, sim


def cluster_tags(vectors: np.ndarray, freqs: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """Cluster label per tag: DBSCAN's clusters, and a label of its own for each tag DBSCAN leaves out."""
    from sklearn.cluster import DBSCAN

    if len(vectors) == 0:
        return np.zeros(0, dtype=np.int64)
    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="cosine").fit(vectors).labels_.astype(np.int64)
    nxt = labels.max() + 1 if len(labels) else 0
    for i in np.nonzero(labels < 0)[0]:
        labels[i] = nxt
        nxt += 1
    return labels


def normalize(names: list[str], freqs: list[int], vectors: np.ndarray, cfg: TagNormConfig,
              category_names: list[str], category_vectors: np.ndarray,
              taxonomy_category: dict[str, str] | None = None, min_freq: int | None = None) -> list[Mapping]:
    """One mapping per raw tag; `min_freq` is the frequency cut (default: cfg's for a pool of one)."""
    cut = cfg.cut_for(1) if min_freq is None else min_freq
    freqs_a = np.asarray(freqs, dtype=np.int64)
    keep = np.nonzero(freqs_a >= cut)[0]
    out = [Mapping(names[i], None, None, None, int(freqs_a[i]), None, "rare")
           for i in np.nonzero(freqs_a < cut)[0]]
    if len(keep) == 0:
        return out
    kv, kf, kn = vectors[keep], freqs_a[keep], [names[i] for i in keep]
    canon, sim = merge_synonyms(kv, kf, kn, cfg.merge_threshold)
    heads = sorted(set(canon.tolist()))
    head_pos = {h: j for j, h in enumerate(heads)}
    # a canonical tag's frequency is the sum of its members' (an upper bound on its samples; tag_stats counts
    # exactly)
    head_freq = np.zeros(len(heads), dtype=np.int64)
    np.add.at(head_freq, [head_pos[c] for c in canon], kf)
    labels = cluster_tags(kv[heads], head_freq, cfg.dbscan_eps, cfg.dbscan_min_samples)
    cluster_name, cluster_cat = {}, {}
    for lab in sorted(set(labels.tolist())):
        members = [j for j in range(len(heads)) if labels[j] == lab]
        top = min(members, key=lambda j: (-int(head_freq[j]), kn[heads[j]]))
        cluster_name[lab] = kn[heads[top]]
        w = head_freq[members].astype(np.float32)[:, None]
        centroid = (kv[[heads[j] for j in members]] * w).sum(0)
        centroid /= max(1e-12, float(np.linalg.norm(centroid)))
        cluster_cat[lab] = (category_names[int(np.argmax(category_vectors @ centroid))]
                            if len(category_names) else None)
    tax = taxonomy_category or {}
    for i in range(len(keep)):
        h = int(canon[i])
        j = head_pos[h]
        lab = int(labels[j])
        ctag = kn[h]
        category = tax.get(ctag) or cluster_cat[lab]
        out.append(Mapping(kn[i], ctag, cluster_name[lab], category, int(kf[i]), float(round(sim[i], 6)),
                           "canonical" if h == i else "merged"))
    return out


def tag_frequencies(tags: DataFrame) -> DataFrame:
    """Samples per raw tag."""
    return (tags.filter(F.col("tag").isNotNull()).groupBy("tag")
            .agg(F.countDistinct("sample_id").alias("freq")))


def tag_stats(store: Store, tags: DataFrame, tag_map: DataFrame, chash: str) -> DataFrame:
    """Samples per canonical tag, overall and per source."""
    samples = store.read("samples").select("sample_id", "source")
    canon = (tags.filter(F.col("tag").isNotNull()).select("sample_id", F.col("tag").alias("raw_tag"))
             .join(tag_map.filter(F.col("canonical_tag").isNotNull())
                   .select("raw_tag", "canonical_tag", "category"), "raw_tag")
             .select("sample_id", "canonical_tag", "category").distinct()
             .join(samples, "sample_id"))
    per_source = canon.groupBy("canonical_tag", "source").agg(F.count("*").alias("n"))
    by_source = per_source.groupBy("canonical_tag").agg(
        F.map_from_entries(F.collect_list(F.struct("source", "n"))).alias("freq_per_source"),
        F.count("*").alias("n_sources"))
    totals = canon.groupBy("canonical_tag", "category").agg(F.count("*").alias("frequency"))
    return (totals.join(by_source, "canonical_tag")
            .withColumn("config_hash", F.lit(chash))
            .select(*schemas.TAG_STATS.fieldNames()))


def run(spark: SparkSession, store: Store, config: Config) -> StageResult:
    from instructlake.embed.spark_embed import embed
    from instructlake.graph.cooccur import tag_rows
    from instructlake.tagging import taxonomy
    from instructlake.tagging.stage import tagging_hash

    cfg = config.normalize_tags
    thash = tagging_hash(config)
    chash = config_hash({"normalize_tags": config_hash(cfg), "embed": config_hash(config.embed),
                         "tagging": thash})
    in_version = store.version("tags")
    tags = tag_rows(store, thash, version=in_version)
    freq = tag_frequencies(tags).collect()
    if not freq:
        raise EmptyInputError(f"normalize-tags: the tags table has no tags under the current tagging config "
                              f"({thash}); run `instructlake tag` first")
    names = [r["tag"] for r in freq]
    freqs = [int(r["freq"]) for r in freq]
    # samples per number of tags (0: a sample tagged with none); the pool the cut scales with is their sum
    per_sample = (tags.groupBy("sample_id").agg(F.count("tag").alias("k")).groupBy("k").count().collect())
    pool = sum(int(r["count"]) for r in per_sample)
    cut = cfg.cut_for(pool)
    log.info("normalize-tags: frequency cut %d %s", cut, _cut_origin(cfg, pool))
    tax = taxonomy.load()
    texts = [("t", n) for n in names] + [("c", t) for t in tax.category_texts()]
    df = rows_frame(spark, [(i, k, t) for i, (k, t) in enumerate(texts)], "i long, kind string, text string")
    vecs = {r["i"]: np.asarray(r["vector"], np.float32) for r in
            embed(spark, df, "text", config.embed, config.platform.embed, keep=("i",)).collect()}
    mat = np.stack([vecs[i] for i in range(len(texts))])
    tag_vecs, cat_vecs = mat[: len(names)], mat[len(names):]
    maps = normalize(names, freqs, tag_vecs, cfg, [c for c, _ in tax.categories], cat_vecs,
                     tax.category_of() if cfg.taxonomy_categories else None, min_freq=cut)
    rows = [(m.raw_tag, m.canonical_tag, m.cluster, m.category, m.freq, m.similarity, m.status, chash)
            for m in maps]
    tag_map = rows_frame(spark, rows, schemas.TAG_MAP)
    store.overwrite("tag_map", tag_map)
    tag_map = store.read("tag_map")
    stats = tag_stats(store, tags, tag_map, chash).localCheckpoint()
    store.overwrite("tag_stats", stats)

    n_raw = len(maps)
    kept = [m for m in maps if m.status != "rare"]
    canonical = {m.canonical_tag for m in kept}
    clusters = {m.cluster for m in kept}
    categories = {m.category for m in kept}
    per_cat = (tags.filter(F.col("tag").isNotNull()).select("sample_id", F.col("tag").alias("raw_tag"))
               .join(tag_map.filter("category IS NOT NULL"), "raw_tag").groupBy("category")
               .agg(F.countDistinct("sample_id").alias("n")).collect())
    counts = {"pool": pool, "min_freq": cut, "raw_tags": n_raw, "rare_tags": n_raw - len(kept),
              "canonical_tags": len(canonical),
              "clusters": len(clusters), "categories": len(categories), "tagged_samples": pool}
    counts.update({f"category.{r['category']}": int(r["n"]) for r in per_cat})
    counts.update({f"tags_per_sample.{int(r['k'])}": int(r["count"]) for r in per_sample})
    log.info("normalize-tags: %d raw tags -> %d canonical tags (%d rare dropped) -> %d clusters -> %d "
             "categories",
             n_raw, len(canonical), n_raw - len(kept), len(clusters), len(categories))
    warning = None if kept else all_rare_warning(n_raw, cut, cfg, pool)
    if warning:
        log.warning(warning)
    return StageResult(stage="normalize_tags", config_hash=chash, counts=counts,
                       input_versions={"tags": in_version},
                       output_versions={"tag_map": store.version("tag_map"),
                                        "tag_stats": store.version("tag_stats")},
                       warning=warning)


# what the warnings of the stages that find no canonical tag after the cut tell the user to do
CUT_ADVICE = "lower normalize_tags.min_freq or leave it unset to scale the cut with the pool"


def _cut_origin(cfg: TagNormConfig, pool: int) -> str:
    if cfg.min_freq is not None:
        return "(normalize_tags.min_freq)"
    return (f"(normalize_tags.min_freq_per_million {cfg.min_freq_per_million:g} x {pool:,} tagged samples, "
            f"at least 1; set normalize_tags.min_freq to fix it)")


def all_rare_warning(n_raw: int, cut: int, cfg: TagNormConfig, pool: int) -> str:
    """What to say when the frequency cut leaves no canonical tag: the stages after it get no tags."""
    setting = "normalize_tags.min_freq" if cfg.min_freq is not None else "normalize_tags.min_freq_per_million"
    return (f"normalize-tags: all {n_raw:,} raw tags are used by fewer than {cut:,} samples "
            f"{_cut_origin(cfg, pool)}, so none is kept: graph and the tag criteria of select-seeds have no "
            f"tags to work on. Lower {setting} (or leave normalize_tags.min_freq unset to scale the cut with "
            f"the pool)")
